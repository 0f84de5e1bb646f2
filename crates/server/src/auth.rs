//! Credentials: the read API's bearer token (`Authorization: Bearer <token>`) and the status
//! page's password (`Authorization: Basic …`, RFC 7617). Schemes in any case (RFC 9110 §11.1:
//! schemes are case-insensitive); secrets compared in constant time, through their SHA-256 so that
//! comparing reveals neither content nor length.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The API token, kept as its SHA-256 so that comparing reveals neither content nor length.
#[derive(Clone)]
pub struct ApiToken([u8; 32]);

impl ApiToken {
    /// Wraps the configured token.
    pub fn new(token: &str) -> ApiToken {
        ApiToken(digest(token.as_bytes()))
    }

    /// Whether the request carries `Authorization: Bearer <token>`.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        authorization(req).is_some_and(|value| self.admits_header(value))
    }

    /// Whether an `Authorization` header value is `Bearer <token>`; constant time in the token.
    pub fn admits_header(&self, value: &[u8]) -> bool {
        credentials(value, b"Bearer").is_some_and(|token| matches(&self.0, token))
    }
}

/// The status page's password (`METERHOOK_UI_PASSWORD`), kept as its SHA-256.
#[derive(Clone)]
pub struct UiPassword([u8; 32]);

impl UiPassword {
    /// Wraps the configured password.
    pub fn new(password: &str) -> UiPassword {
        UiPassword(digest(password.as_bytes()))
    }

    /// Whether the request carries `Authorization: Basic` with this password.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        authorization(req).is_some_and(|value| self.admits_header(value))
    }

    /// Whether an `Authorization` header value is `Basic base64(user:password)` with this
    /// password; any user name (there is one account). Constant time in the password.
    pub fn admits_header(&self, value: &[u8]) -> bool {
        let Some(credentials) = credentials(value, b"Basic") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        matches(&self.0, &decoded[colon + 1..])
    }
}

impl std::fmt::Debug for UiPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UiPassword([redacted])")
    }
}

/// Which secret a request was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Realm {
    /// The API's bearer token.
    Api,
    /// The status pages' password.
    Ui,
}

impl Realm {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Realm::Api => "api",
            Realm::Ui => "ui",
        }
    }
}

/// What a request's credentials earned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right secret: served, whatever else is going on.
    Admitted,
    /// No credentials (a browser's first request): 401, which asks for them.
    Missing,
    /// Wrong credentials: 401.
    Wrong,
    /// Wrong credentials from a peer (or, overall, from everyone) that has failed too often
    /// lately: 429, with the seconds to wait.
    Throttled(u64),
}

/// A token bucket: `capacity` failures at once, one more every `every`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How many failures a bucket allows.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Failures allowed at once.
    pub burst: u32,
    /// One more failure allowed every so often.
    pub every: Duration,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() / rate.every.as_secs_f64();
        self.tokens = (self.tokens + gained).min(f64::from(rate.burst));
        self.at = now;
    }

    /// Takes a token if there is one; otherwise the seconds until there is.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u64> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) * rate.every.as_secs_f64();
            Err((wait.ceil() as u64).max(1))
        }
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= f64::from(rate.burst)
    }
}

/// Failed logins, limited per peer and overall so that guessing is throttled and answered
/// cheaply, while the right secret is always admitted (it is checked first, and a success takes
/// nothing from any bucket): an attack cannot lock the owner out, even from the attacker's own
/// address (a reverse proxy in front makes every client one peer).
#[derive(Debug)]
pub struct Failures {
    per_peer: Rate,
    overall_rate: Rate,
    peers: Mutex<HashMap<(Realm, IpAddr), Bucket>>,
    overall: Mutex<HashMap<Realm, Bucket>>,
}

/// Peers remembered at most; beyond, buckets that have refilled are forgotten, and a new peer
/// meets only the overall limit until there is room.
const MAX_PEERS: usize = 4_096;

impl Default for Failures {
    fn default() -> Self {
        Failures::new(
            Rate {
                burst: 30,
                every: Duration::from_secs(2),
            },
            Rate {
                burst: 300,
                every: Duration::from_millis(200),
            },
        )
    }
}

impl Failures {
    /// Limits of `per_peer` and `overall` failures.
    pub fn new(per_peer: Rate, overall: Rate) -> Failures {
        Failures {
            per_peer,
            overall_rate: overall,
            peers: Mutex::new(HashMap::new()),
            overall: Mutex::new(HashMap::new()),
        }
    }

    /// Judges a request's credentials for `realm`: `admitted` when they are the secret,
    /// `presented` when there were any. Only wrong credentials take from the buckets, which each
    /// realm has of its own.
    pub fn judge(
        &self,
        realm: Realm,
        admitted: bool,
        presented: bool,
        peer: Option<IpAddr>,
    ) -> Verdict {
        self.judge_at(realm, admitted, presented, peer, Instant::now())
    }

    fn judge_at(
        &self,
        realm: Realm,
        admitted: bool,
        presented: bool,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Verdict {
        if admitted {
            return Verdict::Admitted;
        }
        if !presented {
            return Verdict::Missing;
        }
        if let Some(peer) = peer.map(|p| (realm, peer_key(p))) {
            if let Ok(mut peers) = self.peers.lock() {
                if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
                    let rate = self.per_peer;
                    peers.retain(|_, b| !b.is_full(rate, now));
                }
                if peers.len() < MAX_PEERS || peers.contains_key(&peer) {
                    let bucket = peers
                        .entry(peer)
                        .or_insert_with(|| Bucket::full(self.per_peer, now));
                    if let Err(wait) = bucket.take(self.per_peer, now) {
                        return Verdict::Throttled(wait);
                    }
                }
            }
        }
        if let Ok(mut overall) = self.overall.lock() {
            let rate = self.overall_rate;
            let bucket = overall
                .entry(realm)
                .or_insert_with(|| Bucket::full(rate, now));
            if let Err(wait) = bucket.take(rate, now) {
                return Verdict::Throttled(wait);
            }
        }
        Verdict::Wrong
    }
}

/// The peer a bucket is kept for: an IPv4 address, or an IPv6 address's /64 (one host can
/// use every address of its /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
        v4 => v4,
    }
}

/// Checks a request against `realm`'s secret (the API's token or the pages' password): `Ok`
/// when admitted; otherwise the refusal, counted in `/metrics` by realm and reason and, for
/// wrong credentials, in the summary of refused requests.
pub fn check(
    req: &HttpRequest,
    state: &crate::state::AppState,
    realm: Realm,
) -> Result<(), crate::error::ApiError> {
    use crate::error::ApiError;
    use crate::rejections::Noted;
    let admitted = match realm {
        Realm::Api => state.api_token.as_ref().is_some_and(|t| t.admits(req)),
        Realm::Ui => state.ui_password.as_ref().is_some_and(|p| p.admits(req)),
    };
    let peer = req.peer_addr().map(|a| a.ip());
    let verdict = state.failures.judge(realm, admitted, presented(req), peer);
    let refused = match realm {
        Realm::Api => ApiError::BadToken,
        Realm::Ui => ApiError::BadPassword,
    };
    match verdict {
        Verdict::Admitted => Ok(()),
        Verdict::Missing => {
            state.metrics.auth_failure(realm, "missing");
            Err(refused)
        }
        Verdict::Wrong => {
            state.metrics.auth_failure(realm, "wrong");
            let noted = match realm {
                Realm::Api => Noted::WrongApiToken,
                Realm::Ui => Noted::WrongUiPassword,
            };
            state.rejections.note(noted, peer);
            Err(refused)
        }
        Verdict::Throttled(retry_after) => {
            state.metrics.auth_failure(realm, "throttled");
            state.rejections.note(Noted::LoginThrottled, peer);
            Err(ApiError::TooManyFailures(retry_after))
        }
    }
}

/// Whether the request carries an `Authorization` header at all.
pub fn presented(req: &HttpRequest) -> bool {
    authorization(req).is_some()
}

/// The request's `Authorization` header value.
fn authorization(req: &HttpRequest) -> Option<&[u8]> {
    req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())
}

/// The credentials of an `Authorization` value of `scheme` (in any case), trimmed.
fn credentials<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (given, credentials) = value.split_at(space);
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim_ascii())
}

/// Whether `candidate` is the secret whose digest is `expected`, in constant time.
fn matches(expected: &[u8; 32], candidate: &[u8]) -> bool {
    bool::from(digest(candidate).ct_eq(expected))
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: &str, admitted: bool) {
        let token = ApiToken::new("tok-123");
        assert_eq!(
            token.admits_header(header.as_bytes()),
            admitted,
            "{header:?}"
        );
    }

    #[test]
    fn bearer_in_any_case_with_the_exact_token() {
        check("Bearer tok-123", true);
        check("bearer tok-123", true);
        check("BEARER tok-123", true);
        check("Bearer   tok-123  ", true);
        check("Bearer TOK-123", false);
        check("Bearer tok-1234", false);
        check("Bearer ", false);
        check("Bearertok-123", false);
        check("Basic tok-123", false);
        check("tok-123", false);
        check("", false);
    }

    #[test]
    fn failures_are_limited_per_peer_and_overall_and_the_secret_always_admitted() {
        let rate = |burst, secs| Rate {
            burst,
            every: Duration::from_secs(secs),
        };
        let failures = Failures::new(rate(3, 10), rate(5, 1));
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let judge = |admitted, presented, peer, secs| {
            failures.judge_at(
                Realm::Api,
                admitted,
                presented,
                Some(peer),
                t0 + Duration::from_secs(secs),
            )
        };
        // Three failures from a, then it waits; no credentials at all are not a guess.
        for _ in 0..3 {
            assert_eq!(judge(false, true, a, 0), Verdict::Wrong);
        }
        assert_eq!(judge(false, true, a, 0), Verdict::Throttled(10));
        assert_eq!(judge(false, false, a, 0), Verdict::Missing);
        // The secret gets in from the throttled peer too.
        assert_eq!(judge(true, true, a, 0), Verdict::Admitted);
        // b has its own bucket, but the overall one (5) runs out after two more.
        assert_eq!(judge(false, true, b, 0), Verdict::Wrong);
        assert_eq!(judge(false, true, b, 0), Verdict::Wrong);
        assert_eq!(judge(false, true, b, 0), Verdict::Throttled(1));
        assert_eq!(judge(true, true, b, 0), Verdict::Admitted);
        // The other realm has buckets of its own.
        assert_eq!(
            failures.judge_at(Realm::Ui, false, true, Some(a), t0),
            Verdict::Wrong
        );
        // Time refills both.
        let c: IpAddr = "192.0.2.3".parse().expect("ip");
        assert_eq!(judge(false, true, c, 1), Verdict::Wrong);
        assert_eq!(judge(false, true, a, 10), Verdict::Wrong);
        // An IPv6 host is one peer across its /64.
        let failures = Failures::new(rate(1, 60), rate(100, 1));
        let v6 = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(
            failures.judge_at(Realm::Api, false, true, v6("2001:db8::1"), t0),
            Verdict::Wrong
        );
        assert_eq!(
            failures.judge_at(Realm::Api, false, true, v6("2001:db8::2:3"), t0),
            Verdict::Throttled(60)
        );
        assert_eq!(
            failures.judge_at(Realm::Api, false, true, v6("2001:db8:0:1::1"), t0),
            Verdict::Wrong
        );
    }

    #[track_caller]
    fn check_basic(header: &str, admitted: bool) {
        let password = UiPassword::new("pass:word");
        assert_eq!(
            password.admits_header(header.as_bytes()),
            admitted,
            "{header:?}"
        );
    }

    fn basic(user_and_password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(user_and_password)
    }

    #[test]
    fn basic_in_any_case_with_any_user_and_the_exact_password() {
        // The password may hold a colon: the user name ends at the first one (RFC 7617).
        check_basic(&format!("Basic {}", basic("admin:pass:word")), true);
        check_basic(&format!("basic {}", basic(":pass:word")), true);
        check_basic(&format!("BASIC  {} ", basic("ops:pass:word")), true);
        check_basic(&format!("Basic {}", basic("admin:pass:wor")), false);
        check_basic(&format!("Basic {}", basic("admin:PASS:WORD")), false);
        check_basic(&format!("Basic {}", basic("pass:word")), false);
        check_basic(&format!("Basic {}", basic("password")), false);
        check_basic(&format!("Bearer {}", basic("admin:pass:word")), false);
        check_basic("Basic not*base64", false);
        check_basic("Basic", false);
        check_basic("", false);
    }
}
