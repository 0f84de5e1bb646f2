//! Requests anyone can send (unsigned, wrongly signed, a handshake, a wrong API token or status
//! page password) and deliveries refused under overload, counted and logged as one line per interval instead of one line each: a line per
//! request would let a sender fill the disk, or bury the lines that matter under its own.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What happened to a request that is logged only in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// No `SC-Signature` (and not a VERIFY handshake): 401.
    MissingSignature,
    /// An `SC-Signature` that does not match: 401.
    InvalidSignature,
    /// A VERIFY without a challenge, or with one that is not answered: 400.
    ChallengeRefused,
    /// The writers' queues were full: 503.
    Overloaded,
    /// The outage spool was full: 503.
    SpoolFull,
    /// A wrong API bearer token: 401.
    WrongApiToken,
    /// A wrong status page password: 401.
    WrongUiPassword,
    /// Wrong credentials once too often (per peer or overall): 429.
    LoginThrottled,
    /// A VERIFY challenge answered: 200 (an INFO line, not a warning).
    ChallengeAnswered,
}

impl Noted {
    const ALL: [Noted; 9] = [
        Noted::MissingSignature,
        Noted::InvalidSignature,
        Noted::ChallengeRefused,
        Noted::Overloaded,
        Noted::SpoolFull,
        Noted::WrongApiToken,
        Noted::WrongUiPassword,
        Noted::LoginThrottled,
        Noted::ChallengeAnswered,
    ];

    fn label(self) -> &'static str {
        match self {
            Noted::MissingSignature => "missing SC-Signature",
            Noted::InvalidSignature => "invalid SC-Signature",
            Noted::ChallengeRefused => "VERIFY challenge refused",
            Noted::Overloaded => "writers' queues full",
            Noted::SpoolFull => "spool full",
            Noted::WrongApiToken => "wrong API token",
            Noted::WrongUiPassword => "wrong status page password",
            Noted::LoginThrottled => "failed logins throttled (429)",
            Noted::ChallengeAnswered => "VERIFY challenge answered",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counts since the last summary, and the last peer that was refused.
#[derive(Debug, Default)]
pub struct Rejections {
    counts: [AtomicU64; Noted::ALL.len()],
    last_peer: Mutex<Option<IpAddr>>,
}

/// What [`Rejections::take`] found: the two lines to log, when there is something to say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `Refused <n> requests: <n> <why>, …` (a WARN line).
    pub refused: Option<String>,
    /// `Answered <n> VERIFY challenges` (an INFO line).
    pub answered: Option<String>,
}

impl Rejections {
    /// Counts one request; `peer` is remembered for the summary.
    pub fn note(&self, what: Noted, peer: Option<IpAddr>) {
        self.counts[what.index()].fetch_add(1, Ordering::Relaxed);
        if what != Noted::ChallengeAnswered && peer.is_some() {
            if let Ok(mut last) = self.last_peer.lock() {
                *last = peer;
            }
        }
    }

    /// Takes the counts (they start again at 0) and words them, `over` naming the period.
    pub fn take(&self, over: &str) -> Summary {
        let counts = Noted::ALL.map(|n| (n, self.counts[n.index()].swap(0, Ordering::Relaxed)));
        let last_peer = self.last_peer.lock().ok().and_then(|mut p| p.take());
        let refused: Vec<_> = counts
            .iter()
            .filter(|(n, c)| *n != Noted::ChallengeAnswered && *c > 0)
            .collect();
        let total: u64 = refused.iter().map(|(_, c)| c).sum();
        let refused = (total > 0).then(|| {
            let mut line = format!("Refused {total} request{} {over}:", plural(total));
            for (i, (what, count)) in refused.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let _ = write!(line, "{sep}{count} {}", what.label());
            }
            if let Some(peer) = last_peer {
                let _ = write!(line, " (the last from {peer})");
            }
            line
        });
        let answered = counts[Noted::ChallengeAnswered.index()].1;
        Summary {
            refused,
            answered: (answered > 0).then(|| {
                format!(
                    "Answered {answered} VERIFY challenge{} {over}",
                    plural(answered)
                )
            }),
        }
    }

    /// Logs what was counted since the last call: at most one WARN and one INFO line.
    pub fn log(&self, over: &str) {
        let summary = self.take(over);
        if let Some(line) = summary.refused {
            log::warn!("{line}");
        }
        if let Some(line) = summary.answered {
            log::info!("{line}");
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summarised_once_then_start_again() {
        let r = Rejections::default();
        assert_eq!(r.take("in the last 10s"), Summary::default());
        let peer: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..998 {
            r.note(Noted::MissingSignature, None);
        }
        r.note(Noted::InvalidSignature, Some(peer));
        r.note(Noted::Overloaded, None);
        r.note(Noted::WrongApiToken, None);
        r.note(Noted::WrongUiPassword, None);
        r.note(Noted::LoginThrottled, None);
        r.note(Noted::ChallengeAnswered, None);
        let summary = r.take("in the last 10s");
        assert_eq!(
            summary.refused.as_deref(),
            Some(
                "Refused 1003 requests in the last 10s: 998 missing SC-Signature, \
                 1 invalid SC-Signature, 1 writers' queues full, 1 wrong API token, \
                 1 wrong status page password, 1 failed logins throttled (429) \
                 (the last from 192.0.2.7)"
            )
        );
        assert_eq!(
            summary.answered.as_deref(),
            Some("Answered 1 VERIFY challenge in the last 10s")
        );
        assert_eq!(r.take("in the last 10s"), Summary::default());
    }
}
