//! `meterhook backup`: a consistent copy taken while the server runs, restored with the same
//! entries.

use meterhook_store::testing::TestDatabase;

use crate::helpers::*;

#[test]
fn a_backup_taken_while_serving_restores_the_same_entries_and_events() {
    let app = spawn_app();
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let t0 = 1_767_000_000_000;
    for (i, km) in [100.0, 150.5, 180.25].into_iter().enumerate() {
        let id = format!("b{i}");
        let at = t0 + i64::try_from(i).expect("small") * 3_600_000;
        let answer = app.post_signed(odometer_event(&id, "sc-1", km, "km", at).as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let copy = dir.path().join("backup.db");
    let copy_arg = copy.display().to_string();
    let original = [("DATABASE_URL", app.db.url())];
    let out = meterhook(dir.path(), &original, &["backup", &copy_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("backed up"), "{}", stdout(&out));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The server goes on taking events; the copy is the snapshot it was.
    let later = odometer_event("b-later", "sc-1", 200.0, "km", t0 + 10 * 3_600_000);
    assert_eq!(app.post_signed(later.as_bytes()).status, 200);

    // Restore as docs/OPERATIONS.md says: the copy becomes the database file.
    let restored = dir.path().join("restored.db");
    std::fs::copy(&copy, &restored).expect("restore");
    let restored_url = format!("sqlite://{}", restored.display());
    let restored_env = [("DATABASE_URL", restored_url.as_str())];
    let entries = |env: &[(&str, &str)]| {
        let out = meterhook(
            dir.path(),
            env,
            &[
                "entries",
                "list",
                "--vehicle-id",
                "car-1",
                "--all",
                "--json",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).expect("json")
    };
    let from_backup = entries(&restored_env);
    let now = entries(&original);
    assert_eq!(
        from_backup.as_array().map(Vec::len),
        Some(3),
        "{from_backup}"
    );
    assert_eq!(now.as_array().map(Vec::len), Some(4));
    assert_eq!(
        from_backup.as_array().expect("list")[..],
        now.as_array().expect("list")[..3]
    );
    let out = meterhook(dir.path(), &restored_env, &["events", "list", "--json"]);
    let events: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(events.as_array().map(Vec::len), Some(3), "{events}");

    // Never over an existing file.
    let before = std::fs::read(&copy).expect("copy");
    let out = meterhook(dir.path(), &original, &["backup", &copy_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&copy).expect("copy"), before);
}

#[test]
fn postgres_backups_are_pg_dumps() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    db.store();
    let dir = tempfile::tempdir().expect("tmp");
    let out = meterhook(
        dir.path(),
        &[("DATABASE_URL", db.url())],
        &["backup", "copy.db"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    assert!(!dir.path().join("copy.db").exists());
}

#[test]
fn a_backup_named_like_a_uri_is_written_exactly_at_that_path() {
    let app = spawn_app();
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let answer =
        app.post_signed(odometer_event("u1", "sc-1", 10.0, "km", 1_767_000_000_000).as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let dir = tempfile::tempdir().expect("tmp");
    let env = [("DATABASE_URL", app.db.url())];
    // SQLite reads `file:…` as a URI: the copy went to `copy.db`, 0644, beside an empty file.
    for name in ["file:copy.db", "file:other.db#x"] {
        let out = meterhook(dir.path(), &env, &["backup", name]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let at = dir.path().join(name);
        let bytes = std::fs::read(&at).expect("the copy at the path given");
        assert!(
            bytes.starts_with(b"SQLite format 3\0"),
            "{name}: not a copy"
        );
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&at).expect("copy").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["file:copy.db", "file:other.db#x"]);
    // Each is a complete database (opening them adds SQLite's own side files).
    for name in ["file:copy.db", "file:other.db#x"] {
        let at = dir.path().join(name);
        let url = format!("sqlite://{}", at.display());
        let out = meterhook(
            dir.path(),
            &[("DATABASE_URL", url.as_str())],
            &["events", "list", "--json"],
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let events: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        assert_eq!(events.as_array().map(Vec::len), Some(1), "{name}: {events}");
    }
}
