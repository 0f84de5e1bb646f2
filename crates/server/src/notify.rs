//! Signed notifications to the app (`METERHOOK_NOTIFY_URL`): each change POSTed as a Standard
//! Webhooks message (standardwebhooks.com), retried with backoff for about a day, in order per
//! vehicle, at least once. The queue, the leases and the attempts are the store's
//! (`meterhook_store::Store::notify_claim`); this module signs, sends and decides what follows.
//!
//! The sender is a thread of its own with connections of its own: a slow or dead receiver never
//! slows ingestion. Sending needs the `http-client` feature (ureq); a build without it refuses a
//! notification URL at start.

use std::time::Duration;

use base64::Engine as _;
use meterhook_store::Change;
use serde::Serialize;

use crate::feed;

/// The prefix of a secret's text.
const SECRET_PREFIX: &str = "whsec_";

/// The default delays before each retry (`METERHOOK_NOTIFY_RETRY_SCHEDULE`): Svix's schedule
/// (after the first attempt at once: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; 8 attempts over
/// about 27 h), each stretched or shortened by up to 20 % at random so that retries of many
/// changes spread out. After the last, the change is marked failed (`meterhook notify retry
/// --failed` sends it again).
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How much of an answer is read and kept.
pub const ANSWER_CAP: usize = 1024;
/// How long a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole attempt may take, answer included (Svix: 15 s).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claim holds a change: well beyond one attempt, so that only a dead sender's
/// changes are sent again by another.
pub const LEASE: Duration = Duration::from_secs(60);

/// A signing secret: `whsec_` and the base64 of the key bytes. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifySecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for NotifySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifySecret([redacted])")
    }
}

impl NotifySecret {
    /// Parses `whsec_<base64>` (the prefix may be left out, as the official libraries allow);
    /// the key must be 16 to 64 bytes. The error never repeats the text.
    pub fn parse(text: &str) -> Result<NotifySecret, String> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                "is not whsec_ followed by base64 (meterhook notify new-secret makes one)"
                    .to_owned()
            })?;
        if !(16..=64).contains(&key.len()) {
            return Err(format!(
                "holds a key of {} bytes; use 16 to 64 (meterhook notify new-secret makes one of 32)",
                key.len()
            ));
        }
        Ok(NotifySecret { key })
    }

    /// A new random secret of 32 bytes.
    pub fn generate() -> Result<NotifySecret, String> {
        use ring::rand::SecureRandom as _;
        let mut key = vec![0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| "no randomness available".to_owned())?;
        Ok(NotifySecret { key })
    }

    /// The text to configure: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(&self.key)
        )
    }

    /// The `webhook-signature` value: `v1,<base64 of HMAC-SHA256(key, "id.timestamp.body")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
        )
    }
}

/// Whether `url` may receive notifications: `https`, or `http` to a loopback address (or any
/// with `allow_http`). Checked at start, so a typo fails early.
pub fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "is not an absolute URL (https://app.example.com/meterhook)".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(host) => Ok(()),
        "http" => Err("is http to a host that is not loopback: use https (or set METERHOOK_NOTIFY_ALLOW_HTTP=true on a private network)".to_owned()),
        other => Err(format!("has the scheme {other:?}; use https")),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The URL without its query and user info, for logs.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let path = rest[authority_end..].split(['?', '#']).next().unwrap_or("");
    format!("{scheme}://{host}{path}")
}

/// A message's body: `{"type", "timestamp", "data"}`, `data` being the change as
/// `GET /api/changes` shows it.
#[derive(Debug, Serialize)]
struct Body<'a, T: Serialize> {
    #[serde(rename = "type")]
    message_type: &'a str,
    timestamp: String,
    data: T,
}

/// A signed message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `webhook-id`: stable per change (`chg_<position>`), so retries deduplicate.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Message {
    /// The message for `change`, signed at `timestamp`.
    pub fn for_change(change: &Change, secret: &NotifySecret, timestamp: i64) -> Message {
        let body = Body {
            message_type: &change.change_type,
            timestamp: crate::views::rfc3339(change.created_at),
            data: feed::change(change),
        };
        Message::signed(feed::change_id(change.position), &body, secret, timestamp)
    }

    /// A `meterhook.ping` (doctor's), with an id of its own.
    pub fn ping(secret: &NotifySecret, timestamp: i64) -> Message {
        let body = Body {
            message_type: "meterhook.ping",
            timestamp: crate::views::rfc3339(meterhook_store::now()),
            data: serde_json::json!({ "message": "a test from meterhook doctor" }),
        };
        Message::signed(format!("ping_{timestamp}"), &body, secret, timestamp)
    }

    fn signed(id: String, body: &impl Serialize, secret: &NotifySecret, timestamp: i64) -> Message {
        let body = serde_json::to_vec(body).unwrap_or_default();
        Message {
            signature: secret.sign(&id, timestamp, &body),
            id,
            timestamp,
            body,
        }
    }
}

/// When to try again after `attempts` failed attempts (this one included) by `schedule`, with
/// `jitter` in [0, 1) spreading it by ±20 %; `None` when they are all spent.
pub fn retry_delay(schedule: &[Duration], attempts: usize, jitter: f64) -> Option<Duration> {
    let base = schedule.get(attempts.checked_sub(1)?)?;
    Some(base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

#[cfg(feature = "http-client")]
pub use sender::{ping, Notifier, NotifySettings};

#[cfg(feature = "http-client")]
mod sender {
    use std::io::Read as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    use meterhook_store::{Attempt, AttemptResult, Claimed, NextStep, PoolOptions, Store};

    use super::*;
    use crate::metrics::Metrics;

    /// Changes claimed per round; sent in parallel, one per vehicle.
    const BATCH: i64 = 16;
    /// How often the sender looks for new changes when idle.
    const IDLE: Duration = Duration::from_millis(250);

    /// Where and how to send.
    #[derive(Debug, Clone)]
    pub struct NotifySettings {
        /// The receiver's URL (checked with [`check_url`]).
        pub url: String,
        /// The signing secret.
        pub secret: NotifySecret,
        /// Delays before each retry; a change fails after `len() + 1` attempts.
        pub retry_schedule: Vec<Duration>,
    }

    /// The agent every attempt goes through: no redirects, bounded times.
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(ANSWER_TIMEOUT))
            .user_agent(concat!("meterhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    }

    /// Sends one message; the attempt as it went. The answer is read up to [`ANSWER_CAP`].
    pub(crate) fn send(agent: &ureq::Agent, url: &str, message: &Message) -> Attempt {
        let at = meterhook_store::now();
        let started = Instant::now();
        let sent = agent
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", message.timestamp.to_string())
            .header("webhook-signature", &message.signature)
            .send(&message.body[..]);
        let (result, status, answer) = match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut buf = Vec::new();
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(ANSWER_CAP as u64)
                    .read_to_end(&mut buf);
                let result = if (200..300).contains(&status) {
                    AttemptResult::Delivered
                } else {
                    AttemptResult::Rejected
                };
                (
                    result,
                    Some(status),
                    Some(String::from_utf8_lossy(&buf).into_owned()),
                )
            }
            Err(ureq::Error::Timeout(_)) => (
                AttemptResult::Timeout,
                None,
                Some(format!(
                    "no answer within {}",
                    humantime::format_duration(ANSWER_TIMEOUT)
                )),
            ),
            // The kind only: an error's text may carry the URL, and with it a token.
            Err(e) => (AttemptResult::Unreachable, None, Some(error_kind(&e))),
        };
        Attempt {
            at,
            result,
            status,
            answer,
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn error_kind(e: &ureq::Error) -> String {
        match e {
            ureq::Error::HostNotFound => "host not found".to_owned(),
            ureq::Error::ConnectionFailed => "connection failed".to_owned(),
            ureq::Error::Io(io) => format!("connection failed: {}", io.kind()),
            ureq::Error::Tls(what) => format!("TLS: {what}"),
            ureq::Error::Rustls(_) => "TLS failed".to_owned(),
            _ => "no answer".to_owned(),
        }
    }

    /// `doctor`'s check: a signed `meterhook.ping` to the URL; the answer's status and start,
    /// or why there was none.
    pub fn ping(settings: &NotifySettings) -> Attempt {
        let timestamp = chrono::Utc::now().timestamp();
        send(
            &agent(),
            &settings.url,
            &Message::ping(&settings.secret, timestamp),
        )
    }

    /// The running sender; stopped when dropped or by [`Notifier::stop`].
    #[derive(Debug)]
    pub struct Notifier {
        stop: Arc<(Mutex<bool>, Condvar)>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Notifier {
        /// Starts sending the changes of `store` (on a pool of its own) to `settings.url`.
        pub fn start(
            store: &Store,
            settings: NotifySettings,
            metrics: Arc<Metrics>,
        ) -> std::io::Result<Notifier> {
            // A few connections of its own, and patience for them: a sender waiting for one
            // delays only notifications, never a delivery.
            let store = store.with_own_pool(&PoolOptions {
                max_size: 4,
                connection_timeout: Duration::from_secs(30),
                ..PoolOptions::default()
            });
            // Where sending starts is marked now: a change recorded from here on is sent.
            if let Err(e) = store.notify_queue(500) {
                log::warn!("notifications: cannot read the changes yet ({e}); retrying");
            }
            let stop = Arc::new((Mutex::new(false), Condvar::new()));
            let shown = redacted_url(&settings.url);
            let thread = std::thread::Builder::new().name("notify".into()).spawn({
                let stop = stop.clone();
                move || run(&store, &settings, &metrics, &stop)
            })?;
            log::info!("notifications of changes on, to {shown}");
            Ok(Notifier {
                stop,
                thread: Some(thread),
            })
        }

        /// Stops after the attempts in flight (at most [`ANSWER_TIMEOUT`]).
        pub fn stop(mut self) {
            self.halt();
        }

        fn halt(&mut self) {
            let (flag, wake) = &*self.stop;
            if let Ok(mut stopped) = flag.lock() {
                *stopped = true;
            }
            wake.notify_all();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    impl Drop for Notifier {
        fn drop(&mut self) {
            self.halt();
        }
    }

    /// A claim owner unique to this process and round.
    fn owner(instance: &str, round: &AtomicU64) -> String {
        format!("{instance}-{}", round.fetch_add(1, Ordering::Relaxed))
    }

    fn instance_id() -> String {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 6];
        let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", std::process::id())
    }

    fn jitter() -> f64 {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 4];
        let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
        f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
    }

    fn run(
        store: &Store,
        settings: &NotifySettings,
        metrics: &Metrics,
        stop: &(Mutex<bool>, Condvar),
    ) {
        let agent = agent();
        let instance = instance_id();
        let round = AtomicU64::new(0);
        loop {
            let busy = match round_once(store, settings, metrics, &agent, &owner(&instance, &round))
            {
                Ok(sent) => sent > 0,
                Err(e) => {
                    log::warn!("notifications: {e}");
                    false
                }
            };
            let (flag, wake) = stop;
            let Ok(guard) = flag.lock() else { return };
            if *guard {
                return;
            }
            if !busy {
                let Ok((guard, _)) = wake.wait_timeout(guard, IDLE) else {
                    return;
                };
                if *guard {
                    return;
                }
            }
        }
    }

    /// Queues new changes, claims the due ones and sends them, in parallel across vehicles.
    /// Returns how many were sent.
    fn round_once(
        store: &Store,
        settings: &NotifySettings,
        metrics: &Metrics,
        agent: &ureq::Agent,
        owner: &str,
    ) -> meterhook_store::Result<usize> {
        store.notify_queue(500)?;
        let lease_until = meterhook_store::now()
            + chrono::TimeDelta::from_std(LEASE).unwrap_or_else(|_| chrono::TimeDelta::minutes(1));
        let claimed = store.notify_claim(owner, BATCH, lease_until)?;
        let count = claimed.len();
        std::thread::scope(|scope| {
            for item in &claimed {
                scope.spawn(move || deliver(store, settings, metrics, agent, owner, item));
            }
        });
        Ok(count)
    }

    fn deliver(
        store: &Store,
        settings: &NotifySettings,
        metrics: &Metrics,
        agent: &ureq::Agent,
        owner: &str,
        item: &Claimed,
    ) {
        let timestamp = chrono::Utc::now().timestamp();
        let message = Message::for_change(&item.change, &settings.secret, timestamp);
        let attempt = send(agent, &settings.url, &message);
        metrics.notify_attempt(attempt.result);
        let attempts = usize::try_from(item.attempts).unwrap_or(0) + 1;
        let next = match attempt.result {
            AttemptResult::Delivered => NextStep::Delivered,
            _ => match retry_delay(&settings.retry_schedule, attempts, jitter()) {
                Some(delay) => NextStep::RetryAt(
                    meterhook_store::now()
                        + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1)),
                ),
                None => {
                    log::warn!(
                        "notifications: change {} failed after {attempts} attempts; `meterhook notify retry --failed` sends it again",
                        message.id
                    );
                    NextStep::Failed
                }
            },
        };
        if let Err(e) = store.notify_finish(item.change.position, owner, &attempt, next) {
            // Its lease expires and it is sent again: at least once.
            log::warn!(
                "notifications: cannot record the attempt at {}: {e}",
                message.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_official_librarys_vectors_byte_for_byte() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/notify-vectors.json");
        let text = std::fs::read_to_string(&path).expect("vectors");
        let vectors: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let vectors = vectors["vectors"].as_array().expect("vectors");
        assert!(!vectors.is_empty());
        for v in vectors {
            let secret = NotifySecret::parse(v["secret"].as_str().expect("secret")).expect("parse");
            let timestamp: i64 = v["webhook-timestamp"]
                .as_str()
                .expect("ts")
                .parse()
                .expect("int");
            let signature = secret.sign(
                v["webhook-id"].as_str().expect("id"),
                timestamp,
                v["body"].as_str().expect("body").as_bytes(),
            );
            assert_eq!(signature, v["webhook-signature"].as_str().expect("sig"));
            assert_eq!(secret.expose(), v["secret"].as_str().expect("secret"));
        }
    }

    #[test]
    fn secrets_round_trip_and_never_show() {
        let secret = NotifySecret::generate().expect("random");
        let text = secret.expose();
        assert!(text.starts_with("whsec_"), "{text}");
        assert_eq!(NotifySecret::parse(&text).expect("parse"), secret);
        assert_eq!(format!("{secret:?}"), "NotifySecret([redacted])");
        for bad in ["whsec_", "whsec_!!!", "whsec_c2hvcnQ="] {
            let e = NotifySecret::parse(bad).expect_err(bad);
            assert!(!e.contains(bad) || bad == "whsec_", "{e}");
        }
    }

    #[test]
    fn only_https_or_loopback_http_unless_allowed() {
        for (url, allow, ok) in [
            ("https://app.example.com/hooks", false, true),
            ("http://127.0.0.1:9000/hooks", false, true),
            ("http://localhost/hooks", false, true),
            ("http://[::1]:8080/", false, true),
            ("http://app.example.com/hooks", false, false),
            ("http://app.example.com/hooks", true, true),
            ("http://127.0.0.1.evil.example/", false, false),
            ("http://user@127.0.0.1:9/", false, true),
            ("ftp://127.0.0.1/", false, false),
            ("app.example.com", false, false),
            ("https://", false, false),
        ] {
            assert_eq!(check_url(url, allow).is_ok(), ok, "{url} {allow}");
        }
    }

    #[test]
    fn the_retry_schedule_spans_about_a_day_and_ends() {
        let s = &RETRY_DELAYS;
        assert_eq!(retry_delay(s, 1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(s, 2, 0.0), Some(Duration::from_secs(240)));
        assert_eq!(retry_delay(s, 7, 0.5), Some(Duration::from_secs(36_000)));
        assert_eq!(retry_delay(s, 8, 0.5), None);
        assert_eq!(retry_delay(&[], 1, 0.5), None);
        let total: Duration = RETRY_DELAYS.iter().sum();
        assert!((24..=30).contains(&(total.as_secs() / 3600)), "{total:?}");
    }
}
