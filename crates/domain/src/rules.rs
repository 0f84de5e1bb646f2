//! The odometer rules: a new reading, its neighbours in time and a policy in; a decision out.
//!
//! Every outcome is a value, not an error: a skipped duplicate is business as usual. Each decision
//! carries the reading it was compared with, so a log line can say why.

use std::fmt;

use crate::{Distance, Millis, Reading};

/// The knobs of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A reading with the same value within this many milliseconds (either side) is a duplicate.
    pub duplicate_window_ms: i64,
    /// The highest plausible average speed between neighbouring readings, km/h; 0 turns the check off.
    pub max_speed_kmh: u32,
    /// Differences up to this distance never count as a jump (rounding between close readings).
    pub jump_tolerance: Distance,
    /// How many readings refused because of one accepted entry, agreeing with each other, void
    /// it ([`crate::supersede`]); 0 turns self-healing off.
    pub supersede_after: u32,
}

impl Default for Policy {
    /// One hour, 300 km/h, 1 km, 3 readings to supersede an entry.
    fn default() -> Self {
        Policy {
            duplicate_window_ms: Millis::HOUR,
            max_speed_kmh: 300,
            jump_tolerance: Distance::from_metres(1_000).unwrap_or(Distance::ZERO),
            supersede_after: 3,
        }
    }
}

/// The vehicle's existing (non-void) readings around the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbours {
    /// The latest reading observed at or before the new one's time (on a tie, the highest value).
    pub before: Option<Reading>,
    /// The earliest reading observed after the new one's time (on a tie, the lowest value).
    pub after: Option<Reading>,
    /// Readings within the duplicate window of the new one's time; at least those of equal value.
    pub window: Vec<Reading>,
}

/// Which side of the new reading a neighbour stands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Observed at or before the new reading.
    Before,
    /// Observed after the new reading.
    After,
}

/// What to do with a new reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Record it; it fits between these neighbours.
    Accept {
        /// The neighbour before, if any.
        before: Option<Reading>,
        /// The neighbour after, if any.
        after: Option<Reading>,
    },
    /// Skip it: the same value was already read within the window.
    Duplicate {
        /// The existing reading it repeats.
        existing: Reading,
    },
    /// Keep it out: lower than the reading before it, or higher than the reading after it.
    OutOfSequence {
        /// The neighbour it contradicts.
        neighbour: Reading,
        /// Where that neighbour stands.
        side: Side,
    },
    /// Keep it out: reaching it from its nearest neighbour implies an impossible average speed.
    ImplausibleJump {
        /// The nearest neighbour in time.
        neighbour: Reading,
        /// The implied speed beyond the tolerance, km/h (infinite when the times are equal).
        speed_kmh: f64,
    },
}

impl Decision {
    /// Whether the reading becomes an active meter entry.
    pub fn is_accept(&self) -> bool {
        matches!(self, Decision::Accept { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Accept { before, after } => {
                f.write_str("accepted")?;
                if let Some(b) = before {
                    write!(f, " after {b}")?;
                }
                if let Some(a) = after {
                    write!(f, " before {a}")?;
                }
                Ok(())
            }
            Decision::Duplicate { existing } => write!(f, "duplicate of {existing}"),
            Decision::OutOfSequence {
                neighbour,
                side: Side::Before,
            } => write!(f, "lower than the earlier reading {neighbour}"),
            Decision::OutOfSequence {
                neighbour,
                side: Side::After,
            } => write!(f, "higher than the later reading {neighbour}"),
            Decision::ImplausibleJump {
                neighbour,
                speed_kmh,
            } if speed_kmh.is_finite() => write!(
                f,
                "implausible jump from {neighbour}: {speed_kmh:.0} km/h beyond the jump tolerance"
            ),
            Decision::ImplausibleJump { neighbour, .. } => write!(
                f,
                "implausible jump from {neighbour}: a different value at the same time"
            ),
        }
    }
}

/// Decides what to do with `new` given the vehicle's `neighbours`, under `policy`.
///
/// Order: duplicate, then sequence, then plausibility; the first rule that objects decides.
pub fn decide(new: Reading, neighbours: &Neighbours, policy: &Policy) -> Decision {
    let window = policy.duplicate_window_ms.max(0).unsigned_abs();
    let candidates = neighbours
        .window
        .iter()
        .chain(neighbours.before.iter())
        .chain(neighbours.after.iter());
    if let Some(existing) = candidates
        .filter(|r| r.distance == new.distance)
        .filter(|r| new.observed_at.since(r.observed_at).unsigned_abs() <= window)
        .min_by_key(|r| new.observed_at.since(r.observed_at).unsigned_abs())
    {
        return Decision::Duplicate {
            existing: *existing,
        };
    }

    if let Some(before) = neighbours.before {
        if new.distance < before.distance {
            return Decision::OutOfSequence {
                neighbour: before,
                side: Side::Before,
            };
        }
    }
    if let Some(after) = neighbours.after {
        if new.distance > after.distance {
            return Decision::OutOfSequence {
                neighbour: after,
                side: Side::After,
            };
        }
    }

    if policy.max_speed_kmh > 0 {
        let nearest = match (neighbours.before, neighbours.after) {
            (Some(b), Some(a)) => {
                if new.observed_at.since(b.observed_at) <= a.observed_at.since(new.observed_at) {
                    Some(b)
                } else {
                    Some(a)
                }
            }
            (b, a) => b.or(a),
        };
        if let Some(neighbour) = nearest {
            if let Some(speed_kmh) = implausible_speed(new, neighbour, policy) {
                return Decision::ImplausibleJump {
                    neighbour,
                    speed_kmh,
                };
            }
        }
    }

    Decision::Accept {
        before: neighbours.before,
        after: neighbours.after,
    }
}

/// The speed beyond tolerance between two readings, when it exceeds the policy's maximum.
fn implausible_speed(new: Reading, neighbour: Reading, policy: &Policy) -> Option<f64> {
    let excess_m = i128::from(new.distance.abs_diff(neighbour.distance).metres())
        - i128::from(policy.jump_tolerance.metres());
    if excess_m <= 0 {
        return None;
    }
    let dt_ms = i128::from(new.observed_at.since(neighbour.observed_at)).abs();
    // km/h = (m / 1000) / (ms / 3_600_000) = m * 3600 / ms; compared without division.
    if excess_m * 3_600 > i128::from(policy.max_speed_kmh) * dt_ms {
        let speed = if dt_ms == 0 {
            f64::INFINITY
        } else {
            excess_m as f64 * 3_600.0 / dt_ms as f64
        };
        Some(speed)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = Millis::HOUR;

    fn r(km: f64, at_ms: i64) -> Reading {
        Reading::new(
            Distance::from_value(km, crate::DistanceUnit::Kilometres).expect("valid"),
            Millis(at_ms),
        )
    }

    fn rm(metres: i64, at_ms: i64) -> Reading {
        Reading::new(Distance::from_metres(metres).expect("valid"), Millis(at_ms))
    }

    fn n(before: Option<Reading>, after: Option<Reading>, window: &[Reading]) -> Neighbours {
        Neighbours {
            before,
            after,
            window: window.to_vec(),
        }
    }

    fn check(new: Reading, neighbours: Neighbours, expected: &str) {
        check_with(new, neighbours, Policy::default(), expected);
    }

    fn check_with(new: Reading, neighbours: Neighbours, policy: Policy, expected: &str) {
        let decision = decide(new, &neighbours, &policy);
        assert_eq!(
            crate::Outcome::of(&decision).as_str(),
            expected,
            "{new} with {neighbours:?}: {decision}"
        );
    }

    #[test]
    fn no_neighbours_is_accepted() {
        check(r(100.0, 0), n(None, None, &[]), "created");
        check(rm(0, 0), n(None, None, &[]), "created");
        check(
            Reading::new(Distance::MAX, Millis(i64::MAX)),
            n(None, None, &[]),
            "created",
        );
        check(
            Reading::new(Distance::ZERO, Millis(i64::MIN)),
            n(None, None, &[]),
            "created",
        );
    }

    #[test]
    fn duplicates() {
        // Same value, same time.
        check(
            r(100.0, 10 * H),
            n(Some(r(100.0, 10 * H)), None, &[r(100.0, 10 * H)]),
            "duplicate",
        );
        // Same value, inside the window either side.
        check(
            r(100.0, 10 * H),
            n(Some(r(100.0, 10 * H - 60_000)), None, &[]),
            "duplicate",
        );
        check(
            r(100.0, 10 * H),
            n(None, Some(r(100.0, 10 * H + 60_000)), &[]),
            "duplicate",
        );
        // Exactly on the window's edge counts as inside.
        check(
            r(100.0, 10 * H),
            n(Some(r(100.0, 9 * H)), None, &[]),
            "duplicate",
        );
        check(
            r(100.0, 10 * H),
            n(None, Some(r(100.0, 11 * H)), &[]),
            "duplicate",
        );
        // One millisecond past the edge is a new reading of an unmoved car.
        check(
            r(100.0, 10 * H),
            n(Some(r(100.0, 9 * H - 1)), None, &[]),
            "created",
        );
        check(
            r(100.0, 10 * H),
            n(None, Some(r(100.0, 11 * H + 1)), &[]),
            "created",
        );
        // Different value within the window is not a duplicate.
        check(
            r(100.001, 10 * H),
            n(Some(r(100.0, 10 * H)), None, &[]),
            "created",
        );
        // Found only through the window list (not an immediate neighbour).
        check(
            r(100.0, 10 * H),
            n(
                Some(r(100.0, 10 * H - 10)),
                Some(r(101.0, 10 * H + 10)),
                &[r(100.0, 10 * H - 20)],
            ),
            "duplicate",
        );
        // A window of zero only matches the same instant.
        let exact = Policy {
            duplicate_window_ms: 0,
            ..Policy::default()
        };
        check_with(
            r(100.0, 10 * H),
            n(Some(r(100.0, 10 * H)), None, &[]),
            exact,
            "duplicate",
        );
        check_with(
            r(100.0, 10 * H),
            n(Some(r(100.0, 10 * H - 1)), None, &[]),
            exact,
            "created",
        );
    }

    #[test]
    fn sequence() {
        // Lower than the reading before it.
        check(
            r(99.0, 10 * H),
            n(Some(r(100.0, 9 * H)), None, &[]),
            "out_of_sequence",
        );
        check(
            rm(99_999, 10 * H),
            n(Some(r(100.0, 9 * H)), None, &[]),
            "out_of_sequence",
        );
        // Higher than the reading after it (a late reading for an earlier time).
        check(
            r(120.0, 10 * H),
            n(Some(r(100.0, 9 * H)), Some(r(110.0, 11 * H)), &[]),
            "out_of_sequence",
        );
        // A late reading that fits between two others.
        check(
            r(105.0, 10 * H),
            n(Some(r(100.0, 9 * H)), Some(r(110.0, 11 * H)), &[]),
            "created",
        );
        // Equal to a neighbour outside the window is in sequence.
        check(
            r(100.0, 10 * H),
            n(Some(r(100.0, 8 * H)), Some(r(100.0, 12 * H)), &[]),
            "created",
        );
        // Only a later neighbour.
        check(
            r(90.0, 10 * H),
            n(None, Some(r(100.0, 11 * H)), &[]),
            "created",
        );
        check(
            r(101.0, 10 * H),
            n(None, Some(r(100.0, 11 * H)), &[]),
            "out_of_sequence",
        );
        // Equal timestamps: the before-neighbour at the same instant with a higher value wins.
        check(
            r(99.0, 10 * H),
            n(Some(r(100.0, 10 * H)), None, &[]),
            "out_of_sequence",
        );
        // The largest value after the smallest.
        check(
            Reading::new(Distance::MAX, Millis(100 * 365 * 24 * H)),
            n(Some(Reading::new(Distance::ZERO, Millis(0))), None, &[]),
            "created",
        );
        check(
            Reading::new(Distance::ZERO, Millis(10 * H)),
            n(Some(Reading::new(Distance::MAX, Millis(0))), None, &[]),
            "out_of_sequence",
        );
    }

    #[test]
    fn sequence_reports_the_neighbour() {
        let before = r(100.0, 9 * H);
        let decision = decide(
            r(99.0, 10 * H),
            &n(Some(before), None, &[]),
            &Policy::default(),
        );
        assert_eq!(
            decision,
            Decision::OutOfSequence {
                neighbour: before,
                side: Side::Before
            }
        );
        assert_eq!(
            decision.to_string(),
            "lower than the earlier reading 100 km at 1970-01-01 09:00:00 UTC"
        );
    }

    #[test]
    fn implausible_jumps() {
        // 400 km in one hour: implausible.
        check(
            r(500.0, 10 * H),
            n(Some(r(100.0, 9 * H)), None, &[]),
            "implausible_jump",
        );
        // 300 km + tolerance in one hour: exactly at the maximum, plausible.
        check(
            r(401.0, 10 * H),
            n(Some(r(100.0, 9 * H)), None, &[]),
            "created",
        );
        // One metre more: implausible.
        check(
            rm(401_001, 10 * H),
            n(Some(r(100.0, 9 * H)), None, &[]),
            "implausible_jump",
        );
        // Within tolerance at the same instant: rounding, never a jump.
        check(
            r(101.0, 10 * H),
            n(Some(r(100.0, 10 * H)), None, &[]),
            "created",
        );
        // Beyond tolerance at the same instant: infinite speed.
        check(
            rm(101_001, 10 * H),
            n(Some(r(100.0, 10 * H)), None, &[]),
            "implausible_jump",
        );
        // Judged against the nearest neighbour: the later one is closer in time here.
        check(
            r(150.0, 10 * H),
            n(Some(r(100.0, 0)), Some(r(151.0, 10 * H + 1_000)), &[]),
            "created",
        );
        check(
            r(110.0, 10 * H),
            n(Some(r(100.0, 0)), Some(r(200.0, 10 * H + 1_000)), &[]),
            "implausible_jump",
        );
        // Turned off.
        let off = Policy {
            max_speed_kmh: 0,
            ..Policy::default()
        };
        check_with(
            r(5000.0, 10 * H),
            n(Some(r(100.0, 10 * H - 1)), None, &[]),
            off,
            "created",
        );
        // The extreme values never overflow.
        check(
            Reading::new(Distance::MAX, Millis(i64::MAX)),
            n(
                Some(Reading::new(Distance::ZERO, Millis(i64::MIN))),
                None,
                &[],
            ),
            "created",
        );
        check(
            Reading::new(Distance::MAX, Millis(1)),
            n(Some(Reading::new(Distance::ZERO, Millis(0))), None, &[]),
            "implausible_jump",
        );
    }

    #[test]
    fn duplicate_wins_over_sequence() {
        // Equal value within the window, even if a later neighbour is lower.
        check(
            r(100.0, 10 * H),
            n(Some(r(100.0, 10 * H - 1)), Some(r(90.0, 11 * H)), &[]),
            "duplicate",
        );
    }

    #[test]
    fn miles_input() {
        let miles = |v: f64, at: i64| {
            Reading::new(
                Distance::from_value(v, crate::DistanceUnit::Miles).expect("valid"),
                Millis(at),
            )
        };
        // 1000 mi = 1609.344 km: a reading of 1609.344 km within the hour is the same value.
        check(
            miles(1000.0, 10 * H),
            n(Some(r(1609.344, 10 * H - 5)), None, &[]),
            "duplicate",
        );
        check(
            miles(1001.0, 10 * H),
            n(Some(r(1609.344, 9 * H)), None, &[]),
            "created",
        );
        check(
            miles(999.0, 10 * H),
            n(Some(r(1609.344, 9 * H)), None, &[]),
            "out_of_sequence",
        );
    }
}
