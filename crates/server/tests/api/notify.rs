
#[test]
fn notify_retry_and_status_commands() {
    let db = TestDatabase::sqlite();
    let store = db.store();
    let dir = tempfile::tempdir().expect("dir");
    let env = [("DATABASE_URL", db.url())];
    store.register_vehicle("sc-1", "car-1").expect("register");

    let out = meterhook(dir.path(), &env, &["notify", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("have not been on"), "{}", stdout(&out));

    let out = meterhook(dir.path(), &env, &["notify", "retry"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--failed, --after"), "{}", stderr(&out));

    // Everything after 0: the registration recorded before notifications were ever on.
    let out = meterhook(dir.path(), &env, &["notify", "retry", "--after", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("1 change queued"), "{}", stdout(&out));
    let out = meterhook(dir.path(), &env, &["notify", "status", "--json"]);
    let status: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(status["pending"], 1, "{status}");
    assert_eq!(status["lag_records"], 1, "{status}");
    assert_eq!(status["failed"], 0, "{status}");
    let out = meterhook(dir.path(), &env, &["notify", "retry", "--failed"]);
    assert!(stdout(&out).starts_with("0 changes queued"), "{}", stdout(&out));
}
