//! Properties of the rules over arbitrary readings arriving in arbitrary order.
#![allow(missing_docs)]

use meterhook_domain::{
    decide, trusted_time, Distance, Millis, Neighbours, Policy, Reading, TimeSource,
};
use proptest::prelude::*;

/// The neighbours a store would load for `new` from the accepted readings.
fn neighbours(accepted: &[Reading], new: Reading, policy: &Policy) -> Neighbours {
    let before = accepted
        .iter()
        .filter(|r| r.observed_at <= new.observed_at)
        .max_by_key(|r| (r.observed_at, r.distance))
        .copied();
    let after = accepted
        .iter()
        .filter(|r| r.observed_at > new.observed_at)
        .min_by_key(|r| (r.observed_at, r.distance))
        .copied();
    let window = accepted
        .iter()
        .filter(|r| {
            new.observed_at.since(r.observed_at).unsigned_abs()
                <= policy.duplicate_window_ms.unsigned_abs()
        })
        .copied()
        .collect();
    Neighbours {
        before,
        after,
        window,
    }
}

fn reading() -> impl Strategy<Value = Reading> {
    (0i64..2_000_000, 0i64..200 * Millis::HOUR)
        .prop_map(|(m, t)| Reading::new(Distance::from_metres(m).expect("in range"), Millis(t)))
}

proptest! {
    /// Whatever arrives, in whatever order, the accepted readings never go backwards in time.
    #[test]
    fn accepted_readings_stay_in_sequence(readings in proptest::collection::vec(reading(), 1..60), speed in 0u32..400) {
        let policy = Policy { max_speed_kmh: speed, ..Policy::default() };
        let mut accepted: Vec<Reading> = Vec::new();
        for new in readings {
            let decision = decide(new, &neighbours(&accepted, new, &policy), &policy);
            if decision.is_accept() {
                accepted.push(new);
            }
        }
        accepted.sort_by_key(|r| (r.observed_at, r.distance));
        for pair in accepted.windows(2) {
            prop_assert!(pair[0].distance <= pair[1].distance, "{} then {}", pair[0], pair[1]);
        }
    }

    /// The same reading delivered twice is never accepted twice.
    #[test]
    fn a_reading_is_accepted_at_most_once(r in reading(), repeats in 2usize..5) {
        let policy = Policy::default();
        let mut accepted: Vec<Reading> = Vec::new();
        for _ in 0..repeats {
            if decide(r, &neighbours(&accepted, r, &policy), &policy).is_accept() {
                accepted.push(r);
            }
        }
        prop_assert_eq!(accepted.len(), 1);
    }

    /// Any value and any time: a decision, never a panic.
    #[test]
    fn decide_never_panics(m in 0i64..=meterhook_domain::MAX_METRES, t in any::<i64>(), bm in 0i64..=meterhook_domain::MAX_METRES, bt in any::<i64>(), window in any::<i64>(), speed in any::<u32>()) {
        let new = Reading::new(Distance::from_metres(m).expect("in range"), Millis(t));
        let other = Reading::new(Distance::from_metres(bm).expect("in range"), Millis(bt));
        let policy = Policy { duplicate_window_ms: window, max_speed_kmh: speed, ..Policy::default() };
        let n = Neighbours { before: Some(other), after: Some(other), window: vec![other] };
        let _ = decide(new, &n, &policy);
    }

    /// A trusted time is never later than receipt plus the tolerance, and a time within it is kept.
    #[test]
    fn trusted_times_stay_within_the_tolerance(observed in any::<i64>(), retrieved in any::<Option<i64>>(), received in any::<i64>(), skew_ms in 0u64..=u64::MAX) {
        let max_skew = std::time::Duration::from_millis(skew_ms);
        let limit = Millis(received.saturating_add(i64::try_from(skew_ms).unwrap_or(i64::MAX)));
        let t = trusted_time(Millis(observed), retrieved.map(Millis), Millis(received), max_skew);
        prop_assert!(t.at <= limit);
        match t.correction {
            None => prop_assert_eq!(t.at, Millis(observed)),
            Some(c) => {
                prop_assert!(Millis(observed) > limit);
                prop_assert_eq!((c.original, c.corrected), (Millis(observed), t.at));
                let expected = match c.source {
                    TimeSource::Retrieved => retrieved.map(Millis),
                    TimeSource::Received => Some(Millis(received)),
                };
                prop_assert_eq!(Some(t.at), expected);
            }
        }
    }

    /// Conversion from any float either fails cleanly or lands in range.
    #[test]
    fn conversion_is_total(v in any::<f64>(), miles in any::<bool>()) {
        let unit = if miles { meterhook_domain::DistanceUnit::Miles } else { meterhook_domain::DistanceUnit::Kilometres };
        if let Ok(d) = Distance::from_value(v, unit) {
            prop_assert!(d >= Distance::ZERO && d <= Distance::MAX);
        }
    }
}
