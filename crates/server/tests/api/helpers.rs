//! One way to start the app for a test: a real server on a real port, on a throwaway database.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use meterhook::{Application, Secret, Settings};
use meterhook_store::testing::TestDatabase;
use meterhook_store::{PoolOptions, Store};

/// The token the official SDK vectors were computed with.
pub const TOKEN: &str = "test-amt-123";

/// A running meterhook.
pub struct TestApp {
    pub address: String,
    pub store: Store,
    pub db: TestDatabase,
    pub spool_dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
    thread: Option<thread::JoinHandle<()>>,
}

/// Settings for a test server on `db`, listening on a free port.
pub fn test_settings(db: &TestDatabase) -> Settings {
    let mut settings = Settings::default_settings();
    settings.management_token = Some(Secret::new(TOKEN));
    settings.database_url = Secret::new(db.url());
    settings.listen = "127.0.0.1:0".into();
    settings.workers = 2;
    settings
}

/// A server on a new SQLite database.
pub fn spawn_app() -> TestApp {
    spawn_app_on(TestDatabase::sqlite(), PoolOptions::default())
}

/// A server on `db`, with a store opened with `pool`.
pub fn spawn_app_on(db: TestDatabase, pool: PoolOptions) -> TestApp {
    spawn_app_with(db, pool, |_| {})
}

/// A server on `db` with settings adjusted by `adjust`.
pub fn spawn_app_with(
    db: TestDatabase,
    pool: PoolOptions,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&db);
    let spool_dir = tempfile::tempdir().expect("spool folder");
    settings.spool_path = spool_dir.path().join("spool.db").display().to_string();
    adjust(&mut settings);
    let store = Store::open(db.url(), &pool).expect("open store");
    let (tx, rx) = mpsc::channel();
    let (app_settings, app_store) = (settings.clone(), store.clone());
    let thread = thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build_with_store(&app_settings, app_store).expect("build app");
            tx.send((app.port(), app.handle())).expect("report port");
            app.run_until_stopped().await.expect("server ran");
        });
    });
    let (port, handle) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server started");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        store,
        db,
        spool_dir,
        handle,
        thread: Some(thread),
    }
}

/// Every backend available: SQLite, plus PostgreSQL when `TEST_DATABASE_URL` is set.
pub fn spawn_apps() -> Vec<TestApp> {
    TestDatabase::all()
        .into_iter()
        .map(|db| spawn_app_on(db, PoolOptions::default()))
        .collect()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::System::new().block_on(handle.stop(true));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Posts every (url, body) signed with the test token, all released at once from their own
/// threads; returns (status, body) of each answer, in order.
pub fn post_all_at_once(deliveries: Vec<(String, String)>) -> Vec<(u16, String)> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(deliveries.len()));
    let threads: Vec<_> = deliveries
        .into_iter()
        .map(|(url, body)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
                barrier.wait();
                let mut r = agent()
                    .post(&url)
                    .header("SC-Signature", &sig)
                    .send(body.as_bytes())
                    .expect("sent");
                (
                    r.status().as_u16(),
                    r.body_mut().read_to_string().unwrap_or_default(),
                )
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("sender"))
        .collect()
}

/// The sequence rule on stored active entries: by reading time, the values never go down.
pub fn assert_in_sequence(entries: &[meterhook_store::MeterEntry]) {
    assert!(entries.len() > 1, "too few entries to judge: {entries:?}");
    for pair in entries.windows(2) {
        assert!(
            pair[0].entry_date <= pair[1].entry_date && pair[0].value_m <= pair[1].value_m,
            "out of sequence: {pair:?}"
        );
    }
}

/// Waits until `condition` holds, failing after `seconds`; for state reached by background work.
pub fn wait_until(seconds: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl TestApp {
    pub fn webhook_url(&self) -> String {
        format!("{}/api/smartcar/webhook", self.address)
    }

    /// POSTs `body` to the webhook with an optional `SC-Signature`.
    pub fn post_raw(&self, body: &[u8], signature: Option<&str>) -> Answer {
        let mut req = agent()
            .post(self.webhook_url())
            .content_type("application/json");
        if let Some(sig) = signature {
            req = req.header("SC-Signature", sig);
        }
        answer(req.send(body).expect("request sent"))
    }

    /// POSTs `body` signed with the test token.
    pub fn post_signed(&self, body: &[u8]) -> Answer {
        self.post_raw(
            body,
            Some(&meterhook_smartcar::sign(TOKEN.as_bytes(), body)),
        )
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(
            agent()
                .get(format!("{}{path}", self.address))
                .call()
                .expect("request sent"),
        )
    }

    pub fn outcome(&self, event_id: &str) -> String {
        self.store
            .find_event(event_id)
            .expect("query")
            .unwrap_or_else(|| panic!("event {event_id} not stored"))
            .outcome
    }

    pub fn event_count(&self) -> usize {
        self.store.recent_events(1_000_000).expect("query").len()
    }
}

pub fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// A v4 VEHICLE_STATE body with one odometer signal.
pub fn odometer_event(event_id: &str, vehicle: &str, value: f64, unit: &str, at_ms: i64) -> String {
    serde_json::json!({
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "data": {
            "vehicle": { "id": vehicle },
            "signals": [{
                "code": "odometer-traveleddistance",
                "name": "TraveledDistance",
                "group": "Odometer",
                "body": { "value": value, "unit": unit },
                "meta": { "oemUpdatedAt": at_ms, "retrievedAt": at_ms + 500 },
                "status": { "value": "SUCCESS" }
            }]
        },
        "meta": { "version": "4.0", "deliveryId": "d", "deliveredAt": at_ms + 900, "mode": "LIVE" }
    })
    .to_string()
}

/// The official payloads, from the smartcar crate's copy.
pub fn payload(name: &str) -> Vec<u8> {
    std::fs::read(payloads_dir().join(name)).expect("payload file")
}

pub fn payloads_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../smartcar/tests/data/payloads")
}

/// The built `meterhook` binary, run in `dir` with only the given environment.
pub fn meterhook(dir: impl AsRef<std::path::Path>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meterhook"));
    cmd.current_dir(dir.as_ref()).env_clear().args(args);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run meterhook")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[derive(diesel::QueryableByName)]
struct Sessions {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A PostgreSQL outage of one test database: no new connections, existing ones cut; it ends when
/// dropped.
pub struct Outage {
    admin: diesel::pg::PgConnection,
    name: String,
}

impl Outage {
    pub fn start(app: &TestApp) -> Outage {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, RunQueryDsl};
        let admin_url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
        let name = app
            .db
            .url()
            .split('?')
            .next()
            .and_then(|u| u.rsplit('/').next())
            .expect("database name")
            .to_owned();
        let mut admin = diesel::pg::PgConnection::establish(&admin_url).expect("admin connection");
        admin
            .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .expect("cut the database off");
        // A session that was being opened as the database was closed (the server's background
        // tasks open some of their own) can miss one round of terminations: repeat until none
        // is left twice in a row.
        let mut quiet = 0;
        wait_until(10, "the database's sessions to end", || {
            let left = diesel::sql_query(format!(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                 WHERE datname = '{name}'"
            ))
            .get_result::<Sessions>(&mut admin)
            .expect("terminate sessions")
            .n;
            quiet = if left == 0 { quiet + 1 } else { 0 };
            quiet >= 2
        });
        Outage { admin, name }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        let _ = self.admin.batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            self.name
        ));
    }
}

/// The real binary, serving on a free port; its log is collected until it stops.
pub struct BinaryServer {
    child: Child,
    pub address: String,
    log: Option<thread::JoinHandle<String>>,
    pub dir: tempfile::TempDir,
}

/// A server a test did not stop (it failed, or had no need to) does not outlive the test.
impl Drop for BinaryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl BinaryServer {
    pub fn start(env: &[(&str, &str)]) -> BinaryServer {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meterhook"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("METERHOOK_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start meterhook");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut early = String::new();
        let address = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("meterhook exited before listening: {early}");
            };
            early.push_str(&line);
            early.push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        let log = thread::spawn(move || {
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            format!("{early}{}", rest.join("\n"))
        });
        BinaryServer {
            child,
            address,
            log: Some(log),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The process id, to read its figures under /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it with SIGTERM; returns how it exited and everything it logged and printed.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait for meterhook");
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let log = self
            .log
            .take()
            .map(|h| h.join().expect("log"))
            .unwrap_or_default();
        (status, format!("{log}\n{out}"))
    }
}
