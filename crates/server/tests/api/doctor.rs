//! `meterhook doctor`, run for real against real servers.

use base64::Engine as _;
use meterhook::config::SETTINGS;
use meterhook::Secret;
use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const LONG_TOKEN: &str = "doctor-token-0123456789";

/// An address nothing listens on (a port that was free a moment ago): doctor asks the service
/// at METERHOOK_LISTEN for its refusals, and must not find another test's server, or the
/// machine's, at the default 127.0.0.1:3000.
fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// The line of doctor's settings table for `var`.
fn setting_line(out: &str, var: &str) -> String {
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{var} ")))
        .unwrap_or_else(|| panic!("no {var} line in {out}"))
        .to_owned()
}

#[test]
fn a_good_set_up_passes_with_each_settings_source_named() {
    let app = spawn_app_with(TestDatabase::sqlite(), PoolOptions::default(), |s| {
        s.management_token = Some(Secret::new(LONG_TOKEN));
    });
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join(".env.local"),
        "METERHOOK_MAX_SPEED_KMH=250\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join(".env"),
        "METERHOOK_WORKERS=3\nMETERHOOK_MAX_SPEED_KMH=1\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("meterhook.toml"),
        "duplicate_window = \"2h\"\n",
    )
    .expect("write");
    let closed = closed_address();
    let env = [
        ("DATABASE_URL", app.db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_LISTEN", closed.as_str()),
    ];
    let out = meterhook(dir.path(), &env, &["doctor", "--url", &app.webhook_url()]);
    let printed = stdout(&out);
    assert!(out.status.success(), "{printed}{}", stderr(&out));
    assert!(!printed.contains(LONG_TOKEN), "the token was printed");
    for (var, value, origin) in [
        (
            "SMARTCAR_MANAGEMENT_TOKEN",
            "[redacted] (23 bytes)",
            "environment",
        ),
        ("DATABASE_URL", app.db.url(), "environment"),
        ("METERHOOK_MAX_SPEED_KMH", "250", ".env.local"),
        ("METERHOOK_WORKERS", "3", ".env"),
        ("METERHOOK_DUPLICATE_WINDOW", "2h", "file meterhook.toml"),
        ("METERHOOK_LISTEN", closed.as_str(), "environment"),
        ("METERHOOK_BODY_LIMIT", "65536", "default"),
        ("METERHOOK_UI_PASSWORD", "not set", "default"),
        ("METERHOOK_QUEUE", "4096", "default"),
        ("METERHOOK_API_TOKEN", "not set", "default"),
        ("METERHOOK_SIGNAL_RETENTION", "90d", "default"),
        ("METERHOOK_RETRY_BACKOFF", "5s", "default"),
    ] {
        let line = setting_line(&printed, var);
        assert!(
            line.contains(value) && line.trim_end().ends_with(origin),
            "{var}: {line}"
        );
    }
    assert!(
        printed.contains("reachable, migrations current"),
        "{printed}"
    );
    assert!(
        printed.contains("VERIFY round trip answered with this management token"),
        "{printed}"
    );
    assert!(printed.contains("no problems found"), "{printed}");
    // An http URL is fine for a local check, but Smartcar needs https: a warning, not a problem.
    assert!(
        printed.contains("warning") && printed.contains("not https"),
        "{printed}"
    );
}

#[test]
fn each_problem_is_listed_with_its_fix_and_nothing_is_created() {
    // A server that runs with another token than the one doctor is given.
    let app = spawn_app_with(TestDatabase::sqlite(), PoolOptions::default(), |s| {
        s.management_token = Some(Secret::new(LONG_TOKEN));
    });
    let dir = tempfile::tempdir().expect("tmp");
    let typo = dir.path().join("typo.db");
    let url = format!("sqlite://{}", typo.display());
    let closed = closed_address();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SMARTCAR_MANAGEMENT_TOKEN", "half token"),
        ("METERHOOK_LISTEN", closed.as_str()),
    ];
    let out = meterhook(dir.path(), &env, &["doctor", "--url", &app.webhook_url()]);
    let printed = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert_eq!(stderr(&out), "error: doctor found 4 problems\n");
    for problem in [
        "SMARTCAR_MANAGEMENT_TOKEN contains whitespace",
        "SMARTCAR_MANAGEMENT_TOKEN is only 10 bytes long",
        &format!("no SQLite database at {}", typo.display()),
        "VERIFY answered, but not with this management token's hash",
    ] {
        let at = printed
            .find(problem)
            .unwrap_or_else(|| panic!("{problem:?} not in {printed}"));
        let next = printed[at..].lines().nth(1).unwrap_or_default();
        assert!(next.trim_start().starts_with("fix: "), "{problem}: {next}");
    }
    assert!(
        printed.contains("create it with `meterhook migrate`"),
        "{printed}"
    );
    assert!(!typo.exists(), "doctor created the database");
    assert!(!printed.contains("half token"), "{printed}");
}

#[test]
fn an_unreachable_postgres_and_an_unwritable_spool_are_problems() {
    let dir = tempfile::tempdir().expect("tmp");
    let closed = closed_address();
    let env = [
        ("DATABASE_URL", "postgres://meter:Secret-Pw9@127.0.0.1:1/m"),
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_SPOOL_PATH", "/nonexistent/folder/spool.db"),
        ("METERHOOK_LISTEN", closed.as_str()),
    ];
    let out = meterhook(dir.path(), &env, &["doctor"]);
    let printed = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(!printed.contains("Secret-Pw9"), "{printed}");
    assert!(
        printed
            .contains("database postgres://meter:[redacted]@127.0.0.1:1/m: database unavailable"),
        "{printed}"
    );
    assert!(
        printed.contains("spool /nonexistent/folder/spool.db: not writable"),
        "{printed}"
    );
    assert_eq!(printed.matches("fix: ").count(), 2, "{printed}");
    // A spool folder that exists is writable: nothing is left in it.
    let spool = dir.path().join("spool.db").display().to_string();
    let env = [
        ("DATABASE_URL", "postgres://meter@127.0.0.1:1/m"),
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_SPOOL_PATH", spool.as_str()),
    ];
    let out = meterhook(dir.path(), &env, &["doctor"]);
    assert!(
        stdout(&out).contains("spool.db: writable"),
        "{}",
        stdout(&out)
    );
    assert!(std::fs::read_dir(dir.path())
        .expect("list")
        .next()
        .is_none());
}

#[test]
fn a_broken_env_file_is_a_problem_not_an_abort() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(".env.local"), "NOT A LINE\n").expect("write");
    let out = meterhook(dir.path(), &[], &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("PROBLEM  configuration: .env.local"),
        "{printed}"
    );
    assert!(printed.contains("fix: correct that setting"), "{printed}");
    // Every other command stops at once on it: a configuration error.
    let out = meterhook(dir.path(), &[], &["vehicles", "list"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).starts_with("error: configuration: .env.local"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_setting_is_a_problem_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = meterhook(
        dir.path(),
        &[
            ("METERHOOK_WORKERS", "two"),
            ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ],
        &["doctor"],
    );
    assert_eq!(out.status.code(), Some(1));
    let printed = stdout(&out);
    assert!(
        printed.contains("PROBLEM  configuration: METERHOOK_WORKERS: invalid count"),
        "{printed}"
    );
    assert!(printed.contains("fix: correct that setting"), "{printed}");
}

/// Every declared setting has its line in doctor's table, secrets only as set and their length:
/// a setting added to the code and not shown fails here.
#[test]
fn every_setting_is_shown_and_no_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let closed = closed_address();
    let secrets = [
        ("SMARTCAR_MANAGEMENT_TOKEN", "management-token-secret-1"),
        ("SMARTCAR_WEBHOOK_SECRET", "webhook-secret-secret-22"),
        ("METERHOOK_API_TOKEN", "api-token-secret-333333"),
        ("METERHOOK_UI_PASSWORD", "ui-password-secret-4444"),
        (
            "DATABASE_URL",
            "postgres://meter:db-pw-secret-55@127.0.0.1:1/m",
        ),
    ];
    let mut env = secrets.to_vec();
    env.push(("METERHOOK_LISTEN", closed.as_str()));
    let out = meterhook(dir.path(), &env, &["doctor"]);
    let printed = stdout(&out);
    for setting in SETTINGS {
        let line = setting_line(&printed, setting.var);
        if setting.secret {
            assert!(line.contains("[redacted]"), "{line}");
        }
    }
    for secret in [
        "management-token-secret-1",
        "webhook-secret-secret-22",
        "api-token-secret-333333",
        "ui-password-secret-4444",
        "db-pw-secret-55",
    ] {
        assert!(!printed.contains(secret), "{secret} was printed: {printed}");
    }
    assert!(
        printed.contains("METERHOOK_UI_PASSWORD: the status pages are on"),
        "{printed}"
    );
}

#[test]
fn a_short_ui_password_or_api_token_is_a_problem_with_its_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let closed = closed_address();
    let env = [
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_UI_PASSWORD", "1234"),
        ("METERHOOK_API_TOKEN", "abcd-1234"),
        ("METERHOOK_LISTEN", closed.as_str()),
    ];
    let out = meterhook(dir.path(), &env, &["doctor"]);
    let printed = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    for (problem, var) in [
        (
            "METERHOOK_UI_PASSWORD is only 4 bytes long",
            "METERHOOK_UI_PASSWORD",
        ),
        (
            "METERHOOK_API_TOKEN is only 9 bytes long",
            "METERHOOK_API_TOKEN",
        ),
    ] {
        let at = printed
            .find(problem)
            .unwrap_or_else(|| panic!("{problem:?} not in {printed}"));
        let fix = printed[at..].lines().nth(1).unwrap_or_default();
        assert!(
            fix.contains(&format!(
                "serve refuses it: set {var} to a long random value"
            )),
            "{fix}"
        );
    }
    assert!(!printed.contains("abcd-1234"), "{printed}");
}

/// The trap: VERIFY passes (it is answered with the service's own token), but Smartcar signs live
/// deliveries with another one, and each is refused. doctor asks the running service, and the
/// status page says so first.
#[test]
fn live_signature_refusals_are_reported_by_doctor_and_the_status_page() {
    const UI_PASSWORD: &str = "status-page-password-01";
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_UI_PASSWORD", UI_PASSWORD),
    ]);
    let env = [
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_LISTEN", server.address.as_str()),
    ];
    let doctor = || {
        let out = meterhook(server.dir.path(), &env, &["doctor"]);
        (out.status.code(), stdout(&out))
    };
    let post = |signature: Option<String>| {
        let body = odometer_event("e-1", "sc-1", 100.0, "km", 1_700_000_000_000);
        let mut request = agent()
            .post(server.url("/api/smartcar/webhook"))
            .content_type("application/json");
        if let Some(signature) = signature {
            request = request.header("SC-Signature", signature);
        }
        let status = request.send(body.as_bytes()).expect("sent").status();
        assert_eq!(status.as_u16(), 401);
    };
    let page = || {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("ops:{UI_PASSWORD}"));
        let mut answer = agent()
            .get(server.url("/ui/"))
            .header("Authorization", format!("Basic {credentials}"))
            .call()
            .expect("sent");
        assert_eq!(answer.status().as_u16(), 200);
        answer.body_mut().read_to_string().expect("page")
    };
    // Unsigned requests are anyone's: they are not this trap.
    post(None);
    let (code, printed) = doctor();
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        printed.contains("refused no delivery for an invalid signature since it started"),
        "{printed}"
    );
    assert!(!page().contains("signatures refused"));

    let other_token = "the-token-smartcar-really-uses";
    post(Some(meterhook_smartcar::sign(
        other_token.as_bytes(),
        odometer_event("e-1", "sc-1", 100.0, "km", 1_700_000_000_000).as_bytes(),
    )));
    post(Some("v1=deadbeef".to_owned()));
    let (code, printed) = doctor();
    assert_eq!(code, Some(1), "{printed}");
    let at = printed
        .find(&format!(
            "PROBLEM  the service at {} refused 2 deliveries for an invalid SC-Signature",
            server.address
        ))
        .unwrap_or_else(|| panic!("no refusal problem in {printed}"));
    let problem = &printed[at..];
    assert!(
        problem.contains("another token than the service's SMARTCAR_MANAGEMENT_TOKEN"),
        "{problem}"
    );
    let fix = problem
        .lines()
        .find(|l| l.trim_start().starts_with("fix: "))
        .unwrap_or_default();
    assert!(
        fix.contains("copy the Application Management Token"),
        "{problem}"
    );
    assert!(!printed.contains(other_token), "{printed}");

    let html = page();
    let first_section = html.find("<h2").unwrap_or(html.len());
    let alert = html
        .find("signatures refused")
        .unwrap_or_else(|| panic!("no refusals on the page: {html}"));
    assert!(alert < first_section, "the refusals are not first: {html}");
    assert!(
        html.contains("2 deliveries refused for an invalid SC-Signature"),
        "{html}"
    );

    let metrics = agent()
        .get(server.url("/metrics"))
        .call()
        .expect("sent")
        .body_mut()
        .read_to_string()
        .expect("metrics");
    assert!(
        metrics.contains("meterhook_invalid_signatures_total 2")
            && metrics.contains("meterhook_signature_failures_total 3"),
        "{metrics}"
    );
    server.stop();
}
