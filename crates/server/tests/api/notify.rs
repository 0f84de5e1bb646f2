//! Signed notifications of the changes to a receiver: Standard Webhooks messages, retried, in
//! order per vehicle; `doctor`'s ping; the settings that refuse an unsafe URL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use meterhook::notify::NotifySecret;
use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;
use serde_json::Value;

use crate::helpers::*;

/// A message as the receiver got it, and the status it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
    pub status: u16,
}

type Script = Box<dyn FnMut(&Received, &[Received]) -> u16 + Send>;

/// A receiver on a loopback port: records each message and answers what `script` says.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(mut script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/hooks/meterhook",
            listener.local_addr().expect("addr").port()
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let trimmed = line.trim_end();
                    if trimmed.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = trimmed.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let length: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut message = Received {
                    id: headers.get("webhook-id").cloned().unwrap_or_default(),
                    timestamp: headers
                        .get("webhook-timestamp")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0),
                    signature: headers
                        .get("webhook-signature")
                        .cloned()
                        .unwrap_or_default(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    status: 0,
                };
                let mut log = log.lock().expect("log");
                message.status = script(&message, &log);
                log.push(message.clone());
                drop(log);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {} X\r\ncontent-length: 9\r\nconnection: close\r\n\r\nanswered.",
                    message.status
                );
            }
        });
        Receiver { url, received }
    }

    pub fn delivered_ids(&self) -> Vec<String> {
        self.received
            .lock()
            .expect("log")
            .iter()
            .filter(|m| (200..300).contains(&m.status))
            .map(|m| m.id.clone())
            .collect()
    }
}

const UI_PASSWORD: &str = "ui-password-0123456789";

fn notifying_app(db: TestDatabase, receiver: &Receiver, secret: &NotifySecret) -> TestApp {
    let url = receiver.url.clone();
    let secret = secret.expose();
    spawn_app_with(db, PoolOptions::default(), move |s| {
        s.notify_url = Some(url);
        s.notify_secret = Some(meterhook::Secret::new(secret));
        s.ui_password = Some(meterhook::Secret::new(UI_PASSWORD));
    })
}

#[test]
fn each_change_is_signed_sent_retried_and_kept_in_order_per_vehicle() {
    for db in TestDatabase::all() {
        let secret = NotifySecret::generate().expect("secret");
        // The first attempt at car-1's first change fails; everything else is accepted.
        let receiver = Receiver::start(Box::new(|m, log| {
            if m.id == "chg_1" && !log.iter().any(|r| r.id == "chg_1") {
                500
            } else {
                204
            }
        }));
        let app = notifying_app(db, &receiver, &secret);
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register"); // chg_1
        app.store.set_vehicle_active("sc-1", false).expect("off"); // chg_2
        app.store
            .register_vehicle("sc-2", "car-2")
            .expect("register"); // chg_3
        wait_until(30, "every change delivered", || {
            receiver.delivered_ids().len() >= 3
        });
        let log = receiver.received.lock().expect("log").clone();
        for m in &log {
            assert_eq!(
                secret.sign(&m.id, m.timestamp, m.body.as_bytes()),
                m.signature,
                "{m:?}"
            );
            let body: Value = serde_json::from_str(&m.body).expect("JSON body");
            assert_eq!(body["data"]["id"], m.id.as_str());
            assert_eq!(body["type"], body["data"]["type"]);
            assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
            let now = chrono::Utc::now().timestamp();
            assert!((now - m.timestamp).abs() < 300, "{m:?}");
        }
        let ids: Vec<(&str, u16)> = log.iter().map(|m| (m.id.as_str(), m.status)).collect();
        let at = |id: &str, ok: bool| {
            ids.iter()
                .position(|(i, s)| *i == id && ((200..300).contains(s) == ok))
                .unwrap_or_else(|| panic!("{id} {ok} in {ids:?}"))
        };
        // car-1's second change waited for its first; car-2's went meanwhile.
        assert!(at("chg_2", true) > at("chg_1", true), "{ids:?}");
        assert!(at("chg_3", true) < at("chg_1", true), "{ids:?}");
        // The retry carries the same id: the app deduplicates by it.
        assert_eq!(ids.iter().filter(|(i, _)| *i == "chg_1").count(), 2);
        assert_eq!(log.iter().filter(|m| m.id != "chg_1").count(), 2, "{ids:?}");

        wait_until(10, "the attempts recorded", || {
            app.store.notify_attempts(1).expect("attempts").len() == 2
        });
        let attempts = app.store.notify_attempts(1).expect("attempts");
        assert_eq!(attempts[0].result, "rejected");
        assert_eq!(attempts[0].status, Some(500));
        assert_eq!(attempts[0].answer.as_deref(), Some("answered."));
        assert_eq!(attempts[1].result, "delivered");
        let metrics = app.get("/metrics").body;
        assert!(
            metrics.contains("meterhook_notify_attempts_total{result=\"rejected\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("meterhook_notify_lag_records "),
            "{metrics}"
        );
        let overview = answer(
            agent()
                .get(format!("{}/ui/", app.address))
                .header(
                    "Authorization",
                    &format!(
                        "Basic {}",
                        base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            format!("admin:{UI_PASSWORD}")
                        )
                    ),
                )
                .call()
                .expect("sent"),
        );
        assert_eq!(overview.status, 200);
        assert!(
            overview
                .body
                .contains("changes waiting to be sent to the app"),
            "{}",
            overview.body
        );
    }
}

#[test]
fn doctor_pings_the_receiver_and_says_what_it_answered() {
    let secret = NotifySecret::generate().expect("secret");
    let verified = secret.clone();
    // Answers 204 to a message that verifies, 401 to others.
    let receiver = Receiver::start(Box::new(move |m, _| {
        if verified.sign(&m.id, m.timestamp, m.body.as_bytes()) == m.signature
            && m.body.contains("\"type\":\"meterhook.ping\"")
        {
            204
        } else {
            401
        }
    }));
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let _store = db.store();
    let good = secret.expose();
    let env = [
        ("DATABASE_URL", db.url()),
        ("SMARTCAR_MANAGEMENT_TOKEN", "management-token-0123456789"),
        ("METERHOOK_NOTIFY_URL", receiver.url.as_str()),
        ("METERHOOK_NOTIFY_SECRET", good.as_str()),
    ];
    let out = meterhook(dir.path(), &env, &["doctor"]);
    let text = stdout(&out);
    assert!(
        text.contains("a signed meterhook.ping was answered 204"),
        "{text}{}",
        stderr(&out)
    );
    assert!(!text.contains(&good), "the secret is never shown: {text}");

    let other = NotifySecret::generate().expect("secret").expose();
    let mut env = env;
    env[3] = ("METERHOOK_NOTIFY_SECRET", other.as_str());
    let out = meterhook(dir.path(), &env, &["doctor"]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("was answered 401"), "{text}");
    assert!(text.contains("another secret"), "{text}");
}

#[test]
fn an_unsafe_or_incomplete_notification_setting_stops_the_start() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let secret = NotifySecret::generate().expect("secret").expose();
    for (url, secret, message) in [
        (
            "http://app.example.com/hooks",
            secret.as_str(),
            "METERHOOK_NOTIFY_URL: is http to a host that is not loopback",
        ),
        (
            "https://app.example.com/hooks",
            "",
            "METERHOOK_NOTIFY_SECRET: is needed with METERHOOK_NOTIFY_URL",
        ),
        (
            "https://app.example.com/hooks",
            "whsec_c2hvcnQ=",
            "METERHOOK_NOTIFY_SECRET: holds a key of 5 bytes",
        ),
    ] {
        let mut env = vec![
            ("DATABASE_URL", db.url()),
            ("SMARTCAR_MANAGEMENT_TOKEN", "management-token-0123456789"),
            ("METERHOOK_NOTIFY_URL", url),
        ];
        if !secret.is_empty() {
            env.push(("METERHOOK_NOTIFY_SECRET", secret));
        }
        let out = meterhook(dir.path(), &env, &["serve"]);
        assert_eq!(out.status.code(), Some(78), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("c2hvcnQ"),
            "the secret is never shown"
        );
    }
    let out = meterhook(dir.path(), &[], &["notify", "new-secret"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let parsed = NotifySecret::parse(printed.trim()).expect("a valid secret");
    assert!(printed.starts_with("whsec_"));
    assert_ne!(parsed.expose(), secret, "a new one each time");
}

/// Two instances on one database: each change is sent by one of them, once (no attempt fails, so
/// a second copy could only come from both sending it).
#[test]
fn two_instances_on_one_database_send_each_change_once() {
    for db in TestDatabase::all() {
        let secret = NotifySecret::generate().expect("secret");
        let receiver = Receiver::start(Box::new(|_, _| 200));
        let second_db = db.share();
        let first = notifying_app(db, &receiver, &secret);
        let second = notifying_app(second_db, &receiver, &secret);
        for i in 0..20 {
            let store = if i % 2 == 0 {
                &first.store
            } else {
                &second.store
            };
            store
                .register_vehicle(&format!("sc-{i}"), &format!("car-{}", i % 4))
                .expect("register");
        }
        wait_until(60, "20 changes delivered", || {
            receiver.delivered_ids().len() >= 20
        });
        let mut ids = receiver.delivered_ids();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!((before, ids.len()), (20, 20), "{ids:?}");
        drop(second);
        drop(first);
    }
}

#[test]
fn notify_retry_and_status_commands() {
    let db = TestDatabase::sqlite();
    let store = db.store();
    let dir = tempfile::tempdir().expect("dir");
    let env = [("DATABASE_URL", db.url())];
    store.register_vehicle("sc-1", "car-1").expect("register");

    let out = meterhook(dir.path(), &env, &["notify", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("have not been on"),
        "{}",
        stdout(&out)
    );

    let out = meterhook(dir.path(), &env, &["notify", "retry"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--failed, --after"),
        "{}",
        stderr(&out)
    );

    // Everything after 0: the registration recorded before notifications were ever on.
    let out = meterhook(dir.path(), &env, &["notify", "retry", "--after", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("1 change queued"),
        "{}",
        stdout(&out)
    );
    let out = meterhook(dir.path(), &env, &["notify", "status", "--json"]);
    let status: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(status["pending"], 1, "{status}");
    assert_eq!(status["lag_records"], 1, "{status}");
    assert_eq!(status["failed"], 0, "{status}");
    let out = meterhook(dir.path(), &env, &["notify", "retry", "--failed"]);
    assert!(
        stdout(&out).starts_with("0 changes queued"),
        "{}",
        stdout(&out)
    );
}
