//! Overload: readers beside the writers, full queues, many slow connections, a full spool.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const T0: i64 = 1_769_852_860_000;
const API_TOKEN: &str = "api-token-0123456789";

/// The value of the metric line `name` (with its labels), if the scrape has it.
fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn scrapes_and_api_reads_never_make_a_delivery_wait() {
    for db in TestDatabase::all() {
        // The writers get one connection and wait for it at most 250 ms: a single read taking
        // it would be enough to turn a delivery into a 503 (or a spooled one).
        let pool = PoolOptions {
            max_size: 1,
            connection_timeout: Duration::from_millis(250),
            ..PoolOptions::default()
        };
        let app = spawn_app_with(db, pool, |s| {
            s.api_token = Some(meterhook::Secret::new(API_TOKEN));
            s.metrics_interval = Duration::from_millis(100);
            s.read_pool_size = 2;
        });
        for v in 0..4 {
            app.store
                .register_vehicle(&format!("sc-{v}"), &format!("car-{v}"))
                .expect("register");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..8)
            .map(|r| {
                let (address, stop, reads) = (app.address.clone(), stop.clone(), reads.clone());
                thread::spawn(move || {
                    let agent = agent();
                    let paths = [
                        "/metrics".to_owned(),
                        format!("/api/vehicles/car-{}/meter-entries?limit=1000", r % 4),
                        format!("/api/vehicles/car-{}/signals/latest", r % 4),
                        format!("/api/vehicles/car-{}/health", r % 4),
                        "/readyz".to_owned(),
                    ];
                    let mut ok = 0;
                    while !stop.load(Ordering::Relaxed) {
                        for path in &paths {
                            let status = agent
                                .get(format!("{address}{path}"))
                                .header("Authorization", format!("Bearer {API_TOKEN}"))
                                .call()
                                .expect("read")
                                .status()
                                .as_u16();
                            // A reader may wait for its own pool, and be told to come back.
                            assert!(status == 200 || status == 503, "{path}: {status}");
                            ok += usize::from(status == 200);
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    ok
                })
            })
            .collect();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let url = app.webhook_url();
                thread::spawn(move || {
                    let agent = agent();
                    (0..60)
                        .map(|i| {
                            let body = odometer_event(
                                &format!("w{w}-{i}"),
                                &format!("sc-{w}"),
                                100.0 + f64::from(i),
                                "km",
                                T0 + i64::from(i) * 60_000,
                            );
                            let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
                            let mut r = agent
                                .post(&url)
                                .header("SC-Signature", &sig)
                                .send(body.as_bytes())
                                .expect("sent");
                            (
                                r.status().as_u16(),
                                r.body_mut().read_to_string().unwrap_or_default(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let answers: Vec<(u16, String)> = writers
            .into_iter()
            .flat_map(|t| t.join().expect("writer"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        let ok_reads: usize = readers.into_iter().map(|t| t.join().expect("reader")).sum();
        assert_eq!(answers.len(), 240);
        for (status, body) in &answers {
            assert_eq!(*status, 200, "{body}");
            assert!(body.contains(r#""status":"accepted""#), "{body}");
        }
        assert!(
            ok_reads > 0 && reads.load(Ordering::Relaxed) >= 40,
            "the readers hardly ran: {ok_reads} of {}",
            reads.load(Ordering::Relaxed)
        );
        assert_eq!(app.event_count(), 240);
    }
}

#[test]
fn a_full_queue_is_answered_503_with_retry_after_and_counted() {
    use diesel::connection::SimpleConnection;
    // The writer waits on the lock the test holds, far longer than the test needs.
    let pool = PoolOptions {
        busy_timeout: Duration::from_secs(25),
        ..PoolOptions::default()
    };
    let app = spawn_app_with(TestDatabase::sqlite(), pool, |s| {
        s.queue = 1;
        s.writers = 1;
    });
    let url = meterhook_store::DatabaseUrl::parse(app.db.url()).expect("url");
    let mut locker = meterhook_store::connect(&url, Duration::from_secs(1)).expect("connect");
    locker.batch_execute("BEGIN EXCLUSIVE").expect("lock");

    // One delivery is being written (stuck on the lock), one or two wait in the queue or the
    // writer's batch: at most 3 of 12 are accepted, the rest are refused at once.
    let (tx, answers) = mpsc::channel();
    for i in 0..12 {
        let (url, tx) = (app.webhook_url(), tx.clone());
        thread::spawn(move || {
            let body = odometer_event(&format!("q{i}"), "sc-1", 1.0 + f64::from(i), "km", T0);
            let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
            let r = agent()
                .post(&url)
                .header("SC-Signature", &sig)
                .send(body.as_bytes())
                .expect("sent");
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            tx.send((r.status().as_u16(), retry_after)).expect("report");
        });
    }
    drop(tx);
    let mut got = Vec::new();
    for _ in 0..9 {
        got.push(
            answers
                .recv_timeout(Duration::from_secs(20))
                .expect("an answer while locked"),
        );
    }
    // Those came while the writer was stuck: all refusals.
    assert!(got.iter().all(|(s, _)| *s == 503), "{got:?}");
    assert_eq!(
        metric(&app, "meterhook_queue_depth").map(|d| d <= 1.0),
        Some(true)
    );
    locker.batch_execute("COMMIT").expect("unlock");
    got.extend(answers.iter());
    assert_eq!(got.len(), 12);
    let refused = got.iter().filter(|(s, _)| *s == 503).count();
    let accepted = got.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(refused + accepted, 12, "{got:?}");
    assert!((1..=3).contains(&accepted), "{got:?}");
    for (status, retry_after) in &got {
        if *status == 503 {
            assert_eq!(retry_after.as_deref(), Some("5"));
        }
    }
    assert_eq!(app.event_count(), accepted);
    assert_eq!(
        metric(
            &app,
            r#"meterhook_deliveries_refused_total{reason="queue_full"}"#
        ),
        Some(refused as f64)
    );
}

/// Sockets the process has open now (its accepted connections among them).
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// A memory figure of a process from /proc (`VmRSS`, `VmData`), in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc")
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a memory figure")
}

/// A connection that declares a body of the full limit, sends a few bytes of it, and stalls.
fn stalled(address: &str) -> TcpStream {
    let mut s = TcpStream::connect(address).expect("connect");
    s.write_all(
        format!(
            "POST /api/smartcar/webhook HTTP/1.1\r\nHost: x\r\nSC-Signature: {}\r\n\
             Content-Length: 65536\r\n\r\n{{\"eventId\":",
            "0".repeat(64)
        )
        .as_bytes(),
    )
    .expect("head");
    s
}

#[test]
fn stalled_connections_hold_little_memory_and_a_delivery_still_gets_through() {
    let server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
        ("METERHOOK_WORKERS", "2"),
        ("METERHOOK_CLIENT_TIMEOUT", "60s"),
    ]);
    let pid = server.pid();
    let url = server.url("/api/smartcar/webhook");
    let deliver = |id: &str| {
        let body = odometer_event(id, "sc-1", 1.0, "km", T0);
        let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
        agent()
            .post(&url)
            .header("SC-Signature", &sig)
            .send(body.as_bytes())
            .expect("sent")
            .status()
            .as_u16()
    };
    assert_eq!(deliver("before"), 200);
    let sockets_before = open_sockets(pid);
    let (rss_before, data_before) = (memory_kib(pid, "VmRSS"), memory_kib(pid, "VmData"));
    // 2,000 stalled connections, each declaring a 64 KiB body: within the default connection
    // limit (1,024 a worker), so every one is accepted and its body read begins.
    let connections: Vec<TcpStream> = (0..2_000).map(|_| stalled(&server.address)).collect();
    // A little slack: the first delivery's connection may still have been open when counted.
    wait_until(60, "the stalled connections to be accepted", || {
        open_sockets(pid) + 4 >= sockets_before + 2_000
    });
    assert_eq!(deliver("during"), 200);
    let (rss_after, data_after) = (memory_kib(pid, "VmRSS"), memory_kib(pid, "VmData"));
    let data_grown = data_after.saturating_sub(data_before);
    eprintln!(
        "2,000 stalled 64 KiB bodies: RSS {rss_before} -> {rss_after} KiB, allocated (VmData) \
         {data_before} -> {data_after} KiB (+{data_grown} KiB, {} bytes a connection)",
        data_grown * 1024 / 2_000
    );
    // Allocated, not resident: untouched capacity costs no RSS until it is written, but it is
    // memory the process has asked for. actix keeps about 20 KiB a connection; sizing each body
    // buffer from its declared length added 2,000 × 64 KiB = 125 MiB on top.
    assert!(
        data_grown < 96 * 1024,
        "+{data_grown} KiB allocated for 2,000 stalled connections"
    );
    drop(connections);
}

#[test]
fn connections_beyond_the_limit_wait_outside_the_process() {
    let server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
        ("METERHOOK_WORKERS", "1"),
        ("METERHOOK_MAX_CONNECTIONS", "50"),
        ("METERHOOK_CLIENT_TIMEOUT", "1s"),
    ]);
    let pid = server.pid();
    let base = open_sockets(pid);
    let connections: Vec<TcpStream> = (0..300).map(|_| stalled(&server.address)).collect();
    // A delivery behind them is served once the stalled ones ahead are cut off (1 s each round).
    let url = server.url("/api/smartcar/webhook");
    let delivery = thread::spawn(move || {
        let body = odometer_event("behind", "sc-1", 1.0, "km", T0);
        let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
        agent()
            .post(&url)
            .header("SC-Signature", &sig)
            .send(body.as_bytes())
            .expect("sent")
            .status()
            .as_u16()
    });
    let mut most = 0;
    while !delivery.is_finished() {
        most = most.max(open_sockets(pid).saturating_sub(base));
        // Sampling, not waiting for anything: the loop ends when the delivery is answered.
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(delivery.join().expect("delivery"), 200);
    // The limit, plus the delivery's own connection and a little slack for the accept loop.
    assert!(most <= 50 + 4, "{most} connections held at once");
    assert!(
        most >= 40,
        "the stalled connections were never accepted: {most}"
    );
    drop(connections);
}

#[test]
fn a_full_spool_answers_503_and_says_so() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let pool = PoolOptions {
        connection_timeout: Duration::from_millis(500),
        ..PoolOptions::default()
    };
    let app = spawn_app_with(db, pool, |s| s.spool_max_events = 3);
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    assert_eq!(metric(&app, "meterhook_spool_limit"), Some(3.0));
    let outage = Outage::start(&app);
    let mut answers = Vec::new();
    for i in 0..5 {
        let body = odometer_event(
            &format!("s{i}"),
            "sc-1",
            10.0 + f64::from(i),
            "km",
            T0 + i64::from(i) * 60_000,
        );
        answers.push(app.post_signed(body.as_bytes()));
    }
    for a in &answers[..3] {
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["status"], "spooled");
    }
    for a in &answers[3..] {
        assert_eq!(a.status, 503, "{}", a.body);
        assert_eq!(a.header("retry-after"), Some("5"));
    }
    assert_eq!(
        metric(
            &app,
            r#"meterhook_deliveries_refused_total{reason="spool_full"}"#
        ),
        Some(2.0)
    );
    drop(outage);
    // Once PostgreSQL is back the spool drains, and Smartcar's retries are stored.
    wait_until(30, "the spool to drain", || {
        app.store
            .find_event("s2")
            .ok()
            .flatten()
            .is_some_and(|e| e.processed)
    });
    for i in 3..5 {
        let body = odometer_event(
            &format!("s{i}"),
            "sc-1",
            10.0 + f64::from(i),
            "km",
            T0 + i64::from(i) * 60_000,
        );
        let a = app.post_signed(body.as_bytes());
        assert_eq!(a.status, 200, "{}", a.body);
    }
    wait_until(30, "every event stored and processed", || {
        (0..5).all(|i| {
            app.store
                .find_event(&format!("s{i}"))
                .ok()
                .flatten()
                .is_some_and(|e| e.processed)
        })
    });
    assert_eq!(app.event_count(), 5);
}

#[test]
fn readers_stuck_on_a_lock_never_hold_a_connection_a_delivery_needs() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let app = spawn_app_with(db, PoolOptions::default(), |s| {
        s.api_token = Some(meterhook::Secret::new(API_TOKEN));
        s.read_pool_size = 2;
    });
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    // Every read of a vehicle's health now waits on this lock, holding its connection; the
    // deliveries below never touch that table.
    let mut locker = diesel::pg::PgConnection::establish(app.db.url()).expect("connect");
    locker
        .batch_execute("BEGIN; LOCK TABLE vehicle_errors IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let (tx, refused) = mpsc::channel();
    // More readers than the writers' pool has connections (8): were they on that pool, it
    // would be exhausted too.
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let (address, tx) = (app.address.clone(), tx.clone());
            thread::spawn(move || {
                let status = agent()
                    .get(format!("{address}/api/vehicles/car-1/health"))
                    .header("Authorization", format!("Bearer {API_TOKEN}"))
                    .call()
                    .expect("read")
                    .status()
                    .as_u16();
                let _ = tx.send(status);
                status
            })
        })
        .collect();
    // Two readers hold the readers' pool; the others give up waiting for it: it is exhausted.
    let first = refused
        .recv_timeout(Duration::from_secs(20))
        .expect("a reader answered");
    assert_eq!(first, 503);
    // The deliveries have their own pool: stored now, not spooled, not refused.
    for i in 0..20 {
        let answer = app.post_signed(
            odometer_event(
                &format!("l{i}"),
                "sc-1",
                1.0 + f64::from(i),
                "km",
                T0 + i64::from(i) * 60_000,
            )
            .as_bytes(),
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json()["status"], "accepted", "{}", answer.body);
    }
    locker.batch_execute("COMMIT").expect("unlock");
    let statuses: Vec<u16> = readers
        .into_iter()
        .map(|t| t.join().expect("reader"))
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&503),
        "{statuses:?}"
    );
}

/// A registration that declares a body of `length` bytes and sends none of it.
fn announced_upload(address: &str, token: Option<&str>, length: usize) -> TcpStream {
    let mut s = TcpStream::connect(address).expect("connect");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(
        format!(
            "PUT /api/smartcar-vehicles/sc-1 HTTP/1.1\r\nHost: x\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("head");
    s
}

/// The status line of the answer on `s`, read until the server answers or closes; the read
/// timeout only bounds a test that fails.
fn status_line(s: &mut TcpStream) -> String {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or("").to_owned()
}

#[test]
fn a_registration_is_refused_before_its_body_is_read() {
    // A client timeout far longer than the socket's read timeout: an answer that waited for the
    // body would never come in time.
    let app = spawn_app_with(TestDatabase::sqlite(), PoolOptions::default(), |s| {
        s.api_token = Some(meterhook::Secret::new(API_TOKEN));
        s.client_timeout = Duration::from_secs(600);
    });
    let address = app.address.trim_start_matches("http://");
    let mut without = announced_upload(address, None, 100_000);
    assert_eq!(status_line(&mut without), "HTTP/1.1 401 Unauthorized");
    let mut wrong = announced_upload(address, Some("not-the-token"), 100_000);
    assert_eq!(status_line(&mut wrong), "HTTP/1.1 401 Unauthorized");
    // With the token, the body limit is METERHOOK_BODY_LIMIT (64 KiB), not actix's 256 KiB, and
    // a declared length over it is refused before a byte is read.
    let mut large = announced_upload(address, Some(API_TOKEN), 100_000);
    assert_eq!(status_line(&mut large), "HTTP/1.1 413 Payload Too Large");
    assert!(app.store.list_vehicles().expect("list").is_empty());
}

#[test]
fn stalled_api_uploads_do_not_starve_a_signed_delivery() {
    let server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
        ("METERHOOK_API_TOKEN", API_TOKEN),
        ("METERHOOK_WORKERS", "1"),
        ("METERHOOK_MAX_CONNECTIONS", "50"),
        ("METERHOOK_CLIENT_TIMEOUT", "1s"),
    ]);
    // 40 uploads with the token that stall after their head, and 40 without it: more than the
    // worker's connections once a delivery comes too.
    let mut with_token: Vec<TcpStream> = (0..40)
        .map(|_| announced_upload(&server.address, Some(API_TOKEN), 60_000))
        .collect();
    let mut without: Vec<TcpStream> = (0..40)
        .map(|_| announced_upload(&server.address, None, 60_000))
        .collect();
    let body = odometer_event("behind-uploads", "sc-1", 1.0, "km", T0);
    let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
    let status = agent()
        .post(server.url("/api/smartcar/webhook"))
        .header("SC-Signature", &sig)
        .send(body.as_bytes())
        .expect("sent")
        .status()
        .as_u16();
    assert_eq!(status, 200);
    // Those without the token were refused at once, those with it cut off by the client
    // timeout.
    for s in &mut without {
        assert_eq!(status_line(s), "HTTP/1.1 401 Unauthorized");
    }
    for s in &mut with_token {
        assert_eq!(status_line(s), "HTTP/1.1 408 Request Timeout");
    }
}
