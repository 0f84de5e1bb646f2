//! Query plans of the statements the server runs on a timer, on SQLite: they must read an index
//! of the few rows they want, never walk a table that grows with every event. Each statement's
//! text is captured as Diesel runs it, then given to `EXPLAIN QUERY PLAN`. (Its own process: the
//! capture is Diesel's process-wide default instrumentation.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Mutex;

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use meterhook_store::testing::TestDatabase;
use meterhook_store::{now, DatabaseUrl, PoolOptions, Store};

static QUERIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let text = query.to_string();
            let sql = text
                .split(" -- binds:")
                .next()
                .unwrap_or_default()
                .to_owned();
            QUERIES.lock().unwrap().push(sql);
        }
    }))
}

#[derive(QueryableByName)]
struct Step {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

/// The plan's steps of `sql` (its placeholders left unbound: the plan does not depend on them).
fn plan(url: &str, sql: &str) -> Vec<String> {
    let url = DatabaseUrl::parse(url).unwrap();
    let mut conn = meterhook_store::connect(&url, std::time::Duration::from_secs(5)).unwrap();
    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
        .load::<Step>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|s| s.detail)
        .collect()
}

#[test]
fn the_retry_pass_reads_the_pending_index_not_the_events_table() {
    let db = TestDatabase::sqlite();
    let store = Store::open(db.url(), &PoolOptions::default()).unwrap();
    set_default_instrumentation(capture).unwrap();
    // A new connection, so that it has the capture.
    let store = store.with_own_pool(&PoolOptions::default());
    QUERIES.lock().unwrap().clear();
    let at = now();
    store.due_events(at, at, 64).unwrap();
    let sql = QUERIES
        .lock()
        .unwrap()
        .iter()
        .find(|q| q.contains("smartcar_webhook_events"))
        .cloned()
        .expect("the due-events statement");
    let steps = plan(db.url(), &sql);
    assert!(
        steps
            .iter()
            .any(|s| s.contains("smartcar_webhook_events_pending_idx")),
        "{sql}\n{steps:?}"
    );
    assert!(
        !steps
            .iter()
            .any(|s| s.trim_end() == "SCAN smartcar_webhook_events"),
        "a full scan: {sql}\n{steps:?}"
    );
}
