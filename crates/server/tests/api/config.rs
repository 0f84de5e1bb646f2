//! Settings as the real binary reads them: from the environment, as text.

use crate::helpers::*;

const LONG_TOKEN: &str = "t0k3n-long-enough-123";

/// Runs `meterhook serve` in a fresh folder with `env`; it must refuse to start.
fn refused(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let mut env = env.to_vec();
    env.push(("METERHOOK_LISTEN", "127.0.0.1:0"));
    let out = meterhook(dir.path(), &env, &["serve"]);
    // EX_CONFIG: the systemd unit does not restart on it.
    assert_eq!(
        out.status.code(),
        Some(78),
        "{env:?} started: {}",
        stderr(&out)
    );
    stderr(&out)
}

#[test]
fn a_bad_value_stops_the_start_naming_its_variable() {
    let cases = [
        (
            "METERHOOK_RETRY_BACKOFF",
            "abc",
            r#"error: configuration: METERHOOK_RETRY_BACKOFF: invalid duration "abc""#,
        ),
        (
            "METERHOOK_CLIENT_TIMEOUT",
            "10",
            "METERHOOK_CLIENT_TIMEOUT: invalid duration",
        ),
        // Overflows chrono's calendar: it must not start and prune with a made-up cut-off.
        (
            "METERHOOK_RETENTION",
            "1000000y",
            r#"METERHOOK_RETENTION: "1000000y" is too long"#,
        ),
        (
            "METERHOOK_RETENTION",
            "6d",
            "METERHOOK_RETENTION: must be at least 7d",
        ),
        (
            "METERHOOK_POOL_SIZE",
            "-1",
            r#"METERHOOK_POOL_SIZE: invalid count "-1""#,
        ),
        (
            "METERHOOK_MAX_ATTEMPTS",
            "0",
            "METERHOOK_MAX_ATTEMPTS: must be from 1",
        ),
        (
            "METERHOOK_WORKERS",
            "many",
            "METERHOOK_WORKERS: invalid count",
        ),
    ];
    for (var, value, expected) in cases {
        let err = refused(&[("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN), (var, value)]);
        assert!(err.contains(expected), "{var}={value}: {err}");
    }
}

#[test]
fn a_long_retention_is_accepted_and_served() {
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_RETENTION", "100y"),
    ]);
    let answer = agent().get(server.url("/healthz")).call().expect("sent");
    assert_eq!(answer.status().as_u16(), 200);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// POSTs a reading signed with `key` to the real server; returns the status.
fn post_signed_with(server: &BinaryServer, key: &str) -> u16 {
    let body = odometer_event("e-1", "sc-1", 100.0, "km", 1_700_000_000_000);
    agent()
        .post(server.url("/api/smartcar/webhook"))
        .content_type("application/json")
        .header(
            "SC-Signature",
            meterhook_smartcar::sign(key.as_bytes(), body.as_bytes()),
        )
        .send(body.as_bytes())
        .expect("sent")
        .status()
        .as_u16()
}

/// GETs a read API page with `Authorization: <authorization>`; returns the status.
fn api_status(server: &BinaryServer, authorization: &str) -> u16 {
    agent()
        .get(server.url("/api/vehicles/car-1/meter-entries"))
        .header("Authorization", authorization)
        .call()
        .expect("sent")
        .status()
        .as_u16()
}

#[test]
fn tokens_that_look_like_numbers_are_kept_as_written() {
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", "0001"),
        ("METERHOOK_API_TOKEN", "0001234567890123456"),
    ]);
    assert_eq!(post_signed_with(&server, "1"), 401);
    assert_eq!(post_signed_with(&server, "0001"), 200);
    assert_eq!(api_status(&server, "Bearer 1234567890123456"), 401);
    assert_eq!(api_status(&server, "Bearer 0001234567890123456"), 200);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn keys_and_tokens_read_from_files_lose_their_newline() {
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", "tok-from-a-secrets-file\n"),
        ("SMARTCAR_WEBHOOK_SECRET", "  previous-token-abcdef \n"),
        ("METERHOOK_API_TOKEN", "api-token-from-a-file-0123\n"),
    ]);
    assert_eq!(post_signed_with(&server, "tok-from-a-secrets-file\n"), 401);
    assert_eq!(post_signed_with(&server, "tok-from-a-secrets-file"), 200);
    assert_eq!(post_signed_with(&server, "previous-token-abcdef"), 200);
    assert_eq!(
        api_status(&server, "Bearer api-token-from-a-file-0123"),
        200
    );
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("shorter than 16"), "{log}");
}

#[test]
fn an_empty_key_or_token_stops_the_start() {
    for var in [
        "SMARTCAR_MANAGEMENT_TOKEN",
        "SMARTCAR_WEBHOOK_SECRET",
        "METERHOOK_API_TOKEN",
    ] {
        for empty in ["", " \n\t"] {
            let mut env = vec![(var, empty)];
            if var != "SMARTCAR_MANAGEMENT_TOKEN" {
                env.push(("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN));
            }
            let err = refused(&env);
            assert!(
                err.contains(&format!("error: configuration: {var}: is set but empty")),
                "{var}={empty:?}: {err}"
            );
        }
    }
}

#[test]
fn a_short_api_token_or_ui_password_stops_the_start_naming_it_and_the_fix() {
    for var in ["METERHOOK_API_TOKEN", "METERHOOK_UI_PASSWORD"] {
        for short in ["1234", "fifteen-bytes!!"] {
            let dir = tempfile::tempdir().expect("tmp");
            let env = [
                ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
                (var, short),
                ("METERHOOK_LISTEN", "127.0.0.1:0"),
            ];
            let out = meterhook(dir.path(), &env, &["serve"]);
            assert_eq!(out.status.code(), Some(78), "{var}={short} started");
            assert_eq!(
                stderr(&out),
                format!(
                    "error: configuration: {var}: is only {} bytes; use at least 16 random \
                     bytes, e.g. the output of `openssl rand -hex 32`\n",
                    short.len()
                )
            );
            // Refused before the database is opened: nothing is left behind.
            let files: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
            assert!(files.is_empty(), "{var}: made files: {files:?}");
        }
    }
    // 16 bytes is enough, and both doors open.
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("METERHOOK_API_TOKEN", "sixteen-bytes-ok"),
        ("METERHOOK_UI_PASSWORD", "sixteen-bytes-ok"),
    ]);
    assert_eq!(api_status(&server, "Bearer sixteen-bytes-ok"), 200);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("sixteen-bytes-ok"), "{log}");
}

#[test]
fn a_database_url_that_is_not_one_is_refused_without_repeating_it() {
    for url in [
        "host=db password=hunter2 dbname=x",
        "dbname=x.db password=hunter2",
        "db.internal:5432/meterhook",
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let env = [
            ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
            ("DATABASE_URL", url),
            ("METERHOOK_LISTEN", "127.0.0.1:0"),
        ];
        let out = meterhook(dir.path(), &env, &["serve"]);
        assert_eq!(out.status.code(), Some(78), "{url} started");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: configuration: DATABASE_URL: "),
            "{url}: {err}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains("db.internal"),
            "{err}"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert!(files.is_empty(), "{url} made files: {files:?}");
    }
}

#[test]
fn the_start_up_log_hides_a_password_with_unencoded_characters() {
    // PostgreSQL is unreachable, so the server starts on its spool and logs the URL.
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        (
            "DATABASE_URL",
            "postgres://meter:pa?ss-Secret9@127.0.0.1:1/m",
        ),
    ]);
    let (_, log) = server.stop();
    assert!(
        log.contains("listening on") && log.contains("postgres://meter:[redacted]@127.0.0.1:1/m"),
        "{log}"
    );
    assert!(!log.contains("Secret9"), "{log}");
}

/// The permission bits of `dir/name` and of its `-wal` and `-shm` files.
fn modes(dir: &std::path::Path, name: &str) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let file = format!("{name}{suffix}");
            let meta = std::fs::metadata(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            (file, meta.permissions().mode() & 0o777)
        })
        .collect()
}

#[test]
fn the_database_and_its_wal_and_shm_files_are_private() {
    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN)]);
    assert_eq!(post_signed_with(&server, LONG_TOKEN), 200);
    // While it runs, SQLite holds the WAL and its index open.
    for (file, mode) in modes(server.dir.path(), "meterhook.db") {
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
    server.stop();
}

#[test]
fn the_spool_and_its_wal_and_shm_files_are_private() {
    // PostgreSQL is unreachable, so the server starts on its spool.
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", LONG_TOKEN),
        ("DATABASE_URL", "postgres://meter@127.0.0.1:1/m"),
    ]);
    for (file, mode) in modes(server.dir.path(), "meterhook-spool.db") {
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
    server.stop();
}
