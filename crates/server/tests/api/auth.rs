//! The read API's bearer token, against the real server.

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const API_TOKEN: &str = "api-token-0123456789";

#[test]
fn the_scheme_is_case_insensitive_and_the_token_is_not() {
    let app = spawn_app_with(TestDatabase::sqlite(), PoolOptions::default(), |s| {
        s.api_token = Some(meterhook::Secret::new(API_TOKEN));
    });
    let status = |authorization: &str| {
        agent()
            .get(format!("{}/api/vehicles/car-1/meter-entries", app.address))
            .header("Authorization", authorization)
            .call()
            .expect("sent")
            .status()
            .as_u16()
    };
    for accepted in [
        format!("Bearer {API_TOKEN}"),
        format!("bearer {API_TOKEN}"),
        format!("BEARER {API_TOKEN}"),
        format!("bEaReR   {API_TOKEN} "),
    ] {
        assert_eq!(status(&accepted), 200, "{accepted}");
    }
    for refused in [
        format!("Bearer {}", API_TOKEN.to_uppercase()),
        format!("Basic {API_TOKEN}"),
        format!("Bearer{API_TOKEN}"),
        format!("Bearers {API_TOKEN}"),
        API_TOKEN.to_owned(),
        "Bearer ".to_owned(),
    ] {
        assert_eq!(status(&refused), 401, "{refused}");
    }
}

#[test]
fn failed_logins_are_counted_logged_and_throttled_while_the_owner_gets_in() {
    const PASSWORD: &str = "ui-password-0123456789";
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
        ("METERHOOK_API_TOKEN", API_TOKEN),
        ("METERHOOK_UI_PASSWORD", PASSWORD),
    ]);
    let basic = |password: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("owner:{password}"))
        )
    };
    let get = |path: &str, authorization: Option<&str>| {
        let mut req = agent().get(server.url(path));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        answer(req.call().expect("sent"))
    };
    for (path, wrong, right) in [
        (
            "/api/vehicles/car-1/meter-entries",
            "Bearer not-the-token".to_owned(),
            format!("Bearer {API_TOKEN}"),
        ),
        ("/ui/", basic("not-the-password"), basic(PASSWORD)),
    ] {
        // Guesses from one peer: answered 401 at first, then 429 with Retry-After.
        let mut statuses = Vec::new();
        while statuses.len() < 200 && statuses.last() != Some(&429) {
            let answer = get(path, Some(&wrong));
            if answer.status == 429 {
                let wait: u64 = answer
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .expect("Retry-After in seconds");
                assert!(wait >= 1, "{wait}");
            }
            statuses.push(answer.status);
        }
        assert_eq!(statuses.last(), Some(&429), "{path}: never throttled");
        assert!(statuses.len() > 10, "{path}: {statuses:?}");
        assert!(
            statuses[..statuses.len() - 1].iter().all(|s| *s == 401),
            "{path}: {statuses:?}"
        );
        // The owner still gets in from the same peer, and a request without credentials is
        // still asked for them.
        assert_eq!(get(path, Some(&right)).status, 200, "{path}");
        assert_eq!(get(path, None).status, 401, "{path}");
    }
    let metrics = get("/metrics", None).body;
    let count = |line: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in {metrics}"))
    };
    for realm in ["api", "ui"] {
        assert!(
            count(&format!(
                "meterhook_auth_failures_total{{realm=\"{realm}\",reason=\"wrong\"}}"
            )) > 10.0
        );
        assert_eq!(
            count(&format!(
                "meterhook_auth_failures_total{{realm=\"{realm}\",reason=\"throttled\"}}"
            )),
            1.0
        );
        assert_eq!(
            count(&format!(
                "meterhook_auth_failures_total{{realm=\"{realm}\",reason=\"missing\"}}"
            )),
            1.0
        );
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let summaries: Vec<&str> = log.lines().filter(|l| l.contains("Refused ")).collect();
    for label in [
        "wrong API token",
        "wrong status page password",
        "failed logins throttled (429)",
    ] {
        assert!(
            summaries.iter().any(|l| l.contains(label)),
            "{label}: {log}"
        );
    }
    assert!(!log.contains(API_TOKEN) && !log.contains(PASSWORD), "{log}");
}
