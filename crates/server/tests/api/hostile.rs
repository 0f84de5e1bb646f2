//! Hostile input against the real binary: thousands of bad requests, slow clients, and secrets
//! that must never come out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// A small deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

/// One bad request: body, signature, content type.
struct Bad {
    body: Vec<u8>,
    signature: Option<String>,
    content_type: &'static str,
}

fn signed(body: Vec<u8>) -> Bad {
    let signature = Some(meterhook_smartcar::sign(TOKEN.as_bytes(), &body));
    Bad {
        body,
        signature,
        content_type: "application/json",
    }
}

fn unsigned(body: Vec<u8>, signature: Option<String>) -> Bad {
    Bad {
        body,
        signature,
        content_type: "application/json",
    }
}

/// The `i`-th generated bad request; `signed_ok` chooses whether valid signatures may appear.
fn generate(rng: &mut Rng, signed_ok: bool) -> Bad {
    let samples = [
        "v4_vehicle_state.json",
        "v4_vehicle_error.json",
        "seed_vehicle_state.json",
        "utf8_event.json",
    ];
    let valid = payload(samples[rng.below(samples.len())]);
    let kind = rng.below(if signed_ok { 12 } else { 6 });
    match kind {
        // Unsigned or wrongly signed.
        0 => unsigned(rng.some_bytes(300), None),
        1 => unsigned(valid.clone(), Some(hex(&rng.bytes(32)))),
        2 => unsigned(valid.clone(), Some(hex(&rng.some_bytes(40)))),
        3 => {
            let mut body = valid.clone();
            let at = rng.below(body.len());
            body[at] ^= 1 + rng.below(255) as u8;
            unsigned(
                body,
                Some(meterhook_smartcar::sign(TOKEN.as_bytes(), &valid)),
            )
        }
        4 => unsigned(
            valid.clone(),
            Some(meterhook_smartcar::sign(b"not-the-token", &valid)),
        ),
        5 => unsigned(
            b"\xff\xfe\xfd"
                .iter()
                .copied()
                .chain(rng.bytes(50))
                .collect(),
            None,
        ),
        // Signed but broken.
        6 => {
            let cut = rng.below(valid.len());
            signed(valid[..cut].to_vec())
        }
        7 => {
            let depth = 200 + rng.below(20_000);
            let open = if rng.below(2) == 0 { "[" } else { "{\"a\":" };
            let close = if open == "[" { "]" } else { "}" };
            signed(format!("{}{}", open.repeat(depth), close.repeat(depth)).into_bytes())
        }
        8 => signed([b"x".to_vec(), rng.some_bytes(500)].concat()),
        9 => {
            // Valid JSON with the wrong type in every place.
            let bodies = [
                r#"{"eventType":5,"data":"x"}"#,
                r#"{"eventId":["a"],"eventType":"VEHICLE_STATE","data":{"signals":{"code":1}}}"#,
                r#"{"eventType":"VEHICLE_STATE","vehicleId":{},"data":{"odometer":"far"}}"#,
                r#"{"eventType":"VEHICLE_STATE","data":{"vehicle":{"id":7},"signals":[null,1,"x",{"body":[]}]}}"#,
                r#"{"eventType":"VEHICLE_ERROR","data":{"errors":"none"}}"#,
                r#"{"eventType":"VERIFY","data":{"challenge":{"nested":true}}}"#,
                r#"{"eventType":"VEHICLE_STATE","data":{"signals":[{"code":"odometer-traveleddistance","body":{"value":1e308,"unit":"mi"}}]}}"#,
            ];
            let mut body = bodies[rng.below(bodies.len())].as_bytes().to_vec();
            // Unique, so each is a new event.
            body.pop();
            body.extend(format!(r#","n":{}}}"#, rng.next()).bytes());
            signed(body)
        }
        10 => {
            // Valid and signed, with a content type that is not JSON: accepted all the same.
            let mut b = signed(valid);
            b.content_type = [
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "",
            ][rng.below(4)];
            b
        }
        _ => {
            // Oversized.
            let mut body = valid;
            body.extend(std::iter::repeat_n(b' ', 64 * 1024 + rng.below(1000)));
            signed(body)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

#[test]
fn ten_thousand_bad_requests_are_answered_without_a_5xx_or_a_panic() {
    let mut server = BinaryServer::start(&[
        ("SMARTCAR_MANAGEMENT_TOKEN", TOKEN),
        ("METERHOOK_CLIENT_TIMEOUT", "1s"),
        ("RUST_LOG", "warn,meterhook=info"),
    ]);
    let url = server.url("/api/smartcar/webhook");
    let db = format!(
        "sqlite://{}",
        server.dir.path().join("meterhook.db").display()
    );
    let store =
        meterhook_store::Store::open(&db, &meterhook_store::PoolOptions::default()).expect("store");

    // Slow clients hold connections open while the flood runs; each is cut off by the timeout.
    let slow: Vec<_> = (0..8)
        .map(|i| {
            let address = server.address.clone();
            thread::spawn(move || {
                let mut s = TcpStream::connect(&address).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(15)))
                    .expect("timeout");
                let _ = s.write_all(
                    b"POST /api/smartcar/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n",
                );
                if i % 2 == 0 {
                    let _ = s.write_all(b"\r\n{\"partial\":");
                }
                let started = Instant::now();
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                (
                    started.elapsed(),
                    String::from_utf8_lossy(&buf).into_owned(),
                )
            })
        })
        .collect();

    let run_phase = |seed: u64, count: usize, signed_ok: bool| {
        let sent = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (url, sent) = (url.clone(), sent.clone());
                thread::spawn(move || {
                    let mut rng = Rng(seed * 1_000 + t + 1);
                    let agent = agent();
                    let mut statuses = Vec::new();
                    for _ in 0..count / 4 {
                        let bad = generate(&mut rng, signed_ok);
                        let mut req = agent.post(&url);
                        if !bad.content_type.is_empty() {
                            req = req.header("Content-Type", bad.content_type);
                        }
                        if let Some(sig) = &bad.signature {
                            req = req.header("SC-Signature", sig);
                        }
                        let status = match req.send(&bad.body[..]) {
                            Ok(r) => r.status().as_u16(),
                            // The server may close a connection on an oversized body before reading it.
                            Err(_) if bad.body.len() > 64 * 1024 => 413,
                            Err(e) => panic!("request failed: {e}"),
                        };
                        statuses.push(status);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    statuses
                })
            })
            .collect();
        let statuses: Vec<u16> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("sender"))
            .collect();
        (statuses, sent.load(Ordering::Relaxed))
    };

    // Phase 1: nothing validly signed. Everything is refused and nothing is stored.
    let (statuses, sent) = run_phase(1, 4_000, false);
    assert_eq!(sent, 4_000);
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 400),
        "{:?}",
        histogram(&statuses)
    );
    assert_eq!(
        store.recent_events(10).expect("events").len(),
        0,
        "a row for unsigned input"
    );

    // Phase 2: signed garbage, oversized and odd bodies, mixed with the unsigned kinds.
    let (statuses, sent) = run_phase(2, 6_400, true);
    assert_eq!(sent, 6_400);
    let h = histogram(&statuses);
    assert!(statuses.iter().all(|s| *s < 500), "a 5xx: {h:?}");
    for expected in [200, 400, 401, 413] {
        assert!(
            h.iter().any(|(s, _)| *s == expected),
            "no {expected} in {h:?}"
        );
    }

    // Raw HTTP abuse: garbage request lines and oversized headers.
    for junk in [
        b"GARBAGE\r\n\r\n".to_vec(),
        b"POST /api/smartcar/webhook HTTP/1.1\r\nContent-Length: -5\r\n\r\n".to_vec(),
        format!(
            "POST /api/smartcar/webhook HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(40 * 1024)
        )
        .into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    ] {
        let mut s = TcpStream::connect(&server.address).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = s.write_all(&junk);
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    }

    for handle in slow {
        let (waited, answer) = handle.join().expect("slow client");
        assert!(
            waited < Duration::from_secs(10),
            "a slow client held its connection {waited:?}"
        );
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
    }

    assert_eq!(
        agent()
            .get(server.url("/healthz"))
            .call()
            .expect("healthz")
            .status()
            .as_u16(),
        200
    );
    let (_, log) = server.stop();
    assert!(!log.contains("panicked"), "{log}");
}

fn histogram(statuses: &[u16]) -> Vec<(u16, usize)> {
    let mut h: Vec<(u16, usize)> = Vec::new();
    for s in statuses {
        match h.iter_mut().find(|(k, _)| k == s) {
            Some((_, n)) => *n += 1,
            None => h.push((*s, 1)),
        }
    }
    h.sort();
    h
}

#[test]
fn secrets_never_reach_logs_answers_or_cli_output() {
    let token = "Tok3n-Secret-0123456789abcdef";
    let secret = "Webhook-Secret-9876543210";
    let env = [
        ("SMARTCAR_MANAGEMENT_TOKEN", token),
        ("SMARTCAR_WEBHOOK_SECRET", secret),
        ("RUST_LOG", "trace"),
    ];
    let mut server = BinaryServer::start(&env);
    let url = server.url("/api/smartcar/webhook");
    let mut answers = String::new();
    let body = payload("v4_vehicle_state.json");
    for (body, sig) in [
        (
            body.clone(),
            Some(meterhook_smartcar::sign(token.as_bytes(), &body)),
        ),
        (
            body.clone(),
            Some(meterhook_smartcar::sign(secret.as_bytes(), &body)),
        ),
        (body.clone(), Some("00".repeat(32))),
        (body.clone(), None),
        (
            b"[1]".to_vec(),
            Some(meterhook_smartcar::sign(token.as_bytes(), b"[1]")),
        ),
        (payload("v4_verify.json"), None),
        (
            br#"{"eventType":"VERIFY","data":{"challenge":"bad challenge"}}"#.to_vec(),
            None,
        ),
    ] {
        let mut req = agent().post(&url);
        if let Some(sig) = &sig {
            req = req.header("SC-Signature", sig);
        }
        let mut r = req.send(&body[..]).expect("sent");
        answers.push_str(&r.body_mut().read_to_string().unwrap_or_default());
    }
    let dir = server.dir.path().to_path_buf();
    let cli_env = [
        ("SMARTCAR_MANAGEMENT_TOKEN", token),
        ("SMARTCAR_WEBHOOK_SECRET", secret),
        ("RUST_LOG", "trace"),
    ];
    let mut cli = String::new();
    for args in [
        vec!["send-test-event", "--url", url.as_str(), "--verify"],
        vec![
            "send-test-event",
            "--url",
            url.as_str(),
            "--vehicle",
            "v",
            "--odometer",
            "5",
        ],
        vec![
            "send-test-event",
            "--url",
            "http://127.0.0.1:1/nothing",
            "--verify",
        ],
        vec!["events", "list"],
        vec!["stats"],
        vec!["vehicles", "list", "--json"],
    ] {
        let out = meterhook(&dir, &cli_env, &args);
        cli.push_str(&stdout(&out));
        cli.push_str(&stderr(&out));
    }
    // A PostgreSQL URL's password stays hidden when the connection fails.
    let out = meterhook(
        &dir,
        &[
            (
                "DATABASE_URL",
                "postgres://meter:Pg-Passw0rd-XYZ@127.0.0.1:1/m",
            ),
            ("RUST_LOG", "trace"),
        ],
        &["vehicles", "list"],
    );
    assert_eq!(out.status.code(), Some(1));
    cli.push_str(&stdout(&out));
    cli.push_str(&stderr(&out));
    let (_, log) = server.stop();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging was on"
    );
    assert!(cli.contains("verification handshake OK"), "{cli}");
    for (name, text) in [("log", &log), ("answers", &answers), ("CLI output", &cli)] {
        for s in [token, secret, "Pg-Passw0rd-XYZ"] {
            assert!(!text.contains(s), "{s} appeared in the {name}");
        }
    }
}

#[test]
fn a_short_token_draws_a_warning_at_start() {
    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", "short")]);
    let (_, log) = server.stop();
    assert!(
        log.contains("SMARTCAR_MANAGEMENT_TOKEN is shorter than 16 bytes"),
        "{log}"
    );
    assert!(
        !log.contains("\"short\"") && !log.contains(" short "),
        "{log}"
    );
    let mut server =
        BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", "a-token-of-sixteen-bytes")]);
    assert!(!server.stop().1.contains("shorter than 16 bytes"));
}

#[test]
fn a_flood_of_refused_requests_is_logged_as_a_few_summary_lines() {
    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", TOKEN)]);
    let url = server.url("/api/smartcar/webhook");
    let body = payload("v4_vehicle_state.json");
    let wrong = meterhook_smartcar::sign(b"not-the-token", &body);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (url, body, wrong) = (url.clone(), body.clone(), wrong.clone());
            thread::spawn(move || {
                let agent = agent();
                let mut statuses = Vec::new();
                for i in 0..250 {
                    let (request_body, signature): (Vec<u8>, Option<&str>) = match i % 25 {
                        // A bad challenge, then a good one: both unsigned.
                        0 => (
                            br#"{"eventType":"VERIFY","data":{"challenge":"not safe"}}"#.to_vec(),
                            None,
                        ),
                        1 => (payload("v4_verify.json"), None),
                        2..=6 => (body.clone(), Some(wrong.as_str())),
                        _ => (format!("junk {t} {i}").into_bytes(), None),
                    };
                    let mut req = agent.post(&url);
                    if let Some(sig) = signature {
                        req = req.header("SC-Signature", sig);
                    }
                    statuses.push(req.send(&request_body[..]).expect("sent").status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("sender"))
        .collect();
    assert_eq!(statuses.len(), 1_000);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    // 40 handshakes answered, 40 refused (400), 200 wrongly signed and 720 unsigned (401).
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    assert_eq!((count(200), count(400), count(401)), (40, 40, 920));

    // Every refusal is in a summary line, and there are only a few of them.
    let summaries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Refused ") && l.contains(" request"))
        .collect();
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Answered ") && l.contains("VERIFY challenge"))
        .collect();
    let sum = |lines: &[&str], label: &str| -> u64 {
        lines
            .iter()
            .flat_map(|l| l.split([':', ',', '(']))
            .filter_map(|part| part.trim().strip_suffix(label))
            .map(|n| n.trim().parse::<u64>().expect("a count"))
            .sum()
    };
    assert_eq!(sum(&summaries, "missing SC-Signature"), 720, "{log}");
    assert_eq!(sum(&summaries, "invalid SC-Signature"), 200, "{log}");
    assert_eq!(sum(&summaries, "VERIFY challenge refused"), 40, "{log}");
    let answered_total: u64 = answered
        .iter()
        .filter_map(|l| {
            l.split("Answered ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(answered_total, 40, "{log}");
    // One WARN and one INFO line per 10 s at most, and one of each at the stop.
    assert!(
        !summaries.is_empty() && summaries.len() <= 6 && answered.len() <= 6,
        "{log}"
    );
    assert!(
        log.lines().count() < 40,
        "{} log lines for 1,000 refused requests:\n{log}",
        log.lines().count()
    );
    assert!(summaries.iter().all(|l| l.contains("WARN")), "{log}");
}

#[test]
fn a_signed_body_cannot_forge_a_log_line() {
    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", TOKEN)]);
    let url = server.url("/api/smartcar/webhook");
    let post = |body: &str| {
        let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
        agent()
            .post(&url)
            .header("SC-Signature", &sig)
            .send(body.as_bytes())
            .expect("sent")
            .status()
            .as_u16()
    };
    // Free text may hold line breaks, so an event type may: it is logged with the event.
    let typed = serde_json::json!({"eventId": "forge-1",
        "eventType": "VEHICLE_STATE\nFORGED-1 admin logged in\r\u{2028}x",
        "data": {"vehicle": {"id": "sc-1"}}, "meta": {"version": "4.0", "mode": "LIVE"}});
    assert_eq!(post(&typed.to_string()), 200);
    // An id with a line break makes the body malformed: kept and logged under its hash.
    let malformed =
        r#"{"eventId":"forge-2\nFORGED-2 admin logged in","eventType":"VEHICLE_STATE"}"#;
    assert_eq!(post(malformed), 400);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.lines()
            .all(|l| !l.starts_with("FORGED") && !l.starts_with('x')),
        "{log}"
    );
    assert!(
        log.contains(r"VEHICLE_STATE\nFORGED-1 admin logged in\r\u{2028}x"),
        "{log}"
    );
}
