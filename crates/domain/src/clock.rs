//! Car clocks that run ahead: which time to trust for an observation.
//!
//! A car whose clock is wrong reports readings "observed" in the future. Dated as sent, such a
//! reading would sort after every real one and make them all look out of sequence, so a time
//! later than the moment of receipt (plus a tolerance for clocks that are merely a little off)
//! is replaced, and the replacement is reported so it can be logged.

use std::fmt;
use std::time::Duration;

use crate::Millis;

/// The tolerance used when the caller names none: five minutes.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Where the trusted time came from when the car's own time was not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// When the data was retrieved from the car (Smartcar's `retrievedAt`).
    Retrieved,
    /// When the delivery reached us.
    Received,
}

impl TimeSource {
    /// `retrieved` or `received`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Retrieved => "retrieved",
            TimeSource::Received => "received",
        }
    }
}

impl fmt::Display for TimeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A car-reported observation time that was not trusted, and what replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockCorrection {
    /// The observation time as reported.
    pub original: Millis,
    /// The time used instead.
    pub corrected: Millis,
    /// Where `corrected` came from.
    pub source: TimeSource,
}

impl fmt::Display for ClockCorrection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "observation time {} is later than its receipt allows; used the {} time {}",
            self.original, self.source, self.corrected
        )
    }
}

/// The time to trust for an observation, and the correction made to reach it, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrustedTime {
    /// The time to date the observation with.
    pub at: Millis,
    /// Set when `at` is not the reported observation time.
    pub correction: Option<ClockCorrection>,
}

/// The time to trust for an observation reported at `observed`, retrieved at `retrieved` (when
/// known) and received at `received`.
///
/// `observed` is trusted unless it is later than `received + max_skew`. Then `retrieved` is used
/// if it is itself no later than that limit, else `received`. Times never run backwards on the
/// way to us, so an earlier time is always kept: late deliveries are normal.
pub fn trusted_time(
    observed: Millis,
    retrieved: Option<Millis>,
    received: Millis,
    max_skew: Duration,
) -> TrustedTime {
    let skew_ms = i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX);
    let limit = Millis(received.0.saturating_add(skew_ms));
    if observed <= limit {
        return TrustedTime {
            at: observed,
            correction: None,
        };
    }
    let (corrected, source) = match retrieved {
        Some(r) if r <= limit => (r, TimeSource::Retrieved),
        _ => (received, TimeSource::Received),
    };
    TrustedTime {
        at: corrected,
        correction: Some(ClockCorrection {
            original: observed,
            corrected,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// The moment of receipt in every case.
    const NOW: i64 = 1_800_000_000_000;
    const FIVE_MIN: Duration = Duration::from_secs(300);

    /// `expected`: the trusted time and, when corrected, the source used.
    fn check(
        observed: i64,
        retrieved: Option<i64>,
        max_skew: Duration,
        expected: (i64, Option<TimeSource>),
    ) {
        let got = trusted_time(
            Millis(observed),
            retrieved.map(Millis),
            Millis(NOW),
            max_skew,
        );
        let (at, source) = expected;
        assert_eq!(
            (got.at, got.correction.map(|c| c.source)),
            (Millis(at), source),
            "observed {observed}, retrieved {retrieved:?}, skew {max_skew:?}"
        );
        if let Some(c) = got.correction {
            assert_eq!((c.original, c.corrected), (Millis(observed), got.at));
        }
    }

    #[test]
    fn trusted_times() {
        let retrieved = Some(NOW - MIN);
        // In the past, at receipt, within the tolerance: kept as reported.
        check(
            NOW - 24 * 60 * MIN,
            retrieved,
            FIVE_MIN,
            (NOW - 24 * 60 * MIN, None),
        );
        check(NOW, retrieved, FIVE_MIN, (NOW, None));
        check(NOW + 5 * MIN, retrieved, FIVE_MIN, (NOW + 5 * MIN, None));
        // One millisecond past the tolerance: the retrieval time.
        check(
            NOW + 5 * MIN + 1,
            retrieved,
            FIVE_MIN,
            (NOW - MIN, Some(TimeSource::Retrieved)),
        );
        check(
            NOW + 365 * 24 * 60 * MIN,
            retrieved,
            FIVE_MIN,
            (NOW - MIN, Some(TimeSource::Retrieved)),
        );
        // A retrieval time within the tolerance is good enough, even if after receipt.
        check(
            NOW + 60 * MIN,
            Some(NOW + 5 * MIN),
            FIVE_MIN,
            (NOW + 5 * MIN, Some(TimeSource::Retrieved)),
        );
        // A retrieval time beyond the tolerance too, or none: the time of receipt.
        check(
            NOW + 60 * MIN,
            Some(NOW + 5 * MIN + 1),
            FIVE_MIN,
            (NOW, Some(TimeSource::Received)),
        );
        check(
            NOW + 60 * MIN,
            Some(NOW + 60 * MIN),
            FIVE_MIN,
            (NOW, Some(TimeSource::Received)),
        );
        check(
            NOW + 60 * MIN,
            None,
            FIVE_MIN,
            (NOW, Some(TimeSource::Received)),
        );
        // No tolerance: anything after receipt is corrected.
        check(NOW, None, Duration::ZERO, (NOW, None));
        check(
            NOW + 1,
            Some(NOW),
            Duration::ZERO,
            (NOW, Some(TimeSource::Retrieved)),
        );
        check(
            NOW + 1,
            None,
            Duration::ZERO,
            (NOW, Some(TimeSource::Received)),
        );
        // The extremes never overflow.
        check(i64::MAX, None, FIVE_MIN, (NOW, Some(TimeSource::Received)));
        check(
            i64::MAX,
            Some(i64::MIN),
            FIVE_MIN,
            (i64::MIN, Some(TimeSource::Retrieved)),
        );
        check(i64::MIN, None, FIVE_MIN, (i64::MIN, None));
        check(i64::MAX, None, Duration::MAX, (i64::MAX, None));
    }

    #[test]
    fn received_at_the_end_of_time() {
        let got = trusted_time(Millis(i64::MAX), None, Millis(i64::MAX), FIVE_MIN);
        assert_eq!((got.at, got.correction), (Millis(i64::MAX), None));
    }

    #[test]
    fn corrections_say_what_happened() {
        let got = trusted_time(
            Millis(NOW + 60 * MIN),
            Some(Millis(NOW - MIN)),
            Millis(NOW),
            FIVE_MIN,
        );
        assert_eq!(
            got.correction,
            Some(ClockCorrection {
                original: Millis(NOW + 60 * MIN),
                corrected: Millis(NOW - MIN),
                source: TimeSource::Retrieved,
            })
        );
        assert_eq!(
            got.correction.map(|c| c.to_string()).as_deref(),
            Some("observation time 2027-01-15 09:00:00 UTC is later than its receipt allows; used the retrieved time 2027-01-15 07:59:00 UTC")
        );
        assert_eq!(TimeSource::Received.to_string(), "received");
        assert_eq!(DEFAULT_MAX_CLOCK_SKEW, FIVE_MIN);
    }
}
