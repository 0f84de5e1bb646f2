//! Self-healing: one bad accepted reading must not block a vehicle for good.
//!
//! A lone outlier that was accepted (a first reading of 0 km, a car that reported another car's
//! odometer once) makes every true reading after it look out of sequence or implausible. The rule:
//! when at least [`Policy::supersede_after`] readings refused because of the *same* accepted entry
//! agree with each other, that entry is superseded (voided, with the reason kept) and they are
//! judged again. The caller judges them again with [`crate::judge`] against the timeline without
//! the entry, and keeps the supersession only if every one of them is then accepted: the entry
//! must have been their only obstacle. So a single glitch never voids a consistent history (it is
//! one reading, and it would not be accepted without the history either), and K consistent
//! readings win over one outlier whatever the order they arrive in.

use std::fmt;

use crate::{decide, Neighbours, Policy, Reading};

/// An accepted entry that readings refused because of it outvote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supersession {
    /// The readings that agree with each other, in time order (at least `supersede_after`).
    pub agreeing: Vec<Reading>,
}

impl fmt::Display for Supersession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "superseded: {} later readings refused because of it agree with each other",
            self.agreeing.len()
        )?;
        if let (Some(first), Some(last)) = (self.agreeing.first(), self.agreeing.last()) {
            write!(f, " ({first} to {last})")?;
        }
        Ok(())
    }
}

/// Whether the readings `refused` because of one accepted entry outvote it: `Some` when at least
/// `policy.supersede_after` of them (and never fewer than two) agree with each other. 0 turns
/// the rule off.
pub fn supersession(refused: &[Reading], policy: &Policy) -> Option<Supersession> {
    let needed = usize::try_from(policy.supersede_after).unwrap_or(usize::MAX);
    if needed == 0 || refused.len() < needed.max(2) {
        return None;
    }
    let agreeing = agreeing(refused, policy);
    (agreeing.len() >= needed.max(2)).then_some(Supersession { agreeing })
}

/// The largest set of `readings` that agree with each other, in time order: each is accepted by
/// the rules right after the one before it (in sequence, plausible, not a duplicate).
pub fn agreeing(readings: &[Reading], policy: &Policy) -> Vec<Reading> {
    let mut sorted = readings.to_vec();
    sorted.sort_by_key(|r| (r.observed_at, r.distance));
    sorted.dedup();
    let follows = |before: Reading, next: Reading| {
        let neighbours = Neighbours {
            before: Some(before),
            after: None,
            window: Vec::new(),
        };
        decide(next, &neighbours, policy).is_accept()
    };
    // Longest chain: best[j] is the length of the longest chain ending at j, from[j] its
    // predecessor. The sets are small (the caller bounds them).
    let mut best = vec![1usize; sorted.len()];
    let mut from: Vec<Option<usize>> = vec![None; sorted.len()];
    for j in 0..sorted.len() {
        for i in 0..j {
            if best[i] + 1 > best[j] && follows(sorted[i], sorted[j]) {
                best[j] = best[i] + 1;
                from[j] = Some(i);
            }
        }
    }
    let Some(mut at) = (0..sorted.len()).max_by_key(|&j| (best[j], std::cmp::Reverse(j))) else {
        return Vec::new();
    };
    let mut chain = vec![sorted[at]];
    while let Some(i) = from[at] {
        chain.push(sorted[i]);
        at = i;
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Distance, Millis};

    const H: i64 = Millis::HOUR;

    fn r(km: i64, at_ms: i64) -> Reading {
        Reading::new(
            Distance::from_metres(km * 1_000).expect("valid"),
            Millis(at_ms),
        )
    }

    /// `refused` (km, hours) and the number of agreeing readings expected (0: no supersession).
    fn check(refused: &[(i64, i64)], expected: usize) {
        let readings: Vec<Reading> = refused.iter().map(|&(km, h)| r(km, h * H)).collect();
        let found = supersession(&readings, &Policy::default()).map_or(0, |s| s.agreeing.len());
        assert_eq!(found, expected, "{refused:?}");
    }

    #[test]
    fn cases() {
        check(&[], 0);
        check(&[(100, 1)], 0);
        check(&[(100, 1), (110, 2)], 0);
        check(&[(100, 1), (110, 2), (120, 3)], 3);
        // Any arrival order.
        check(&[(120, 3), (100, 1), (110, 2)], 3);
        // Going backwards: they do not agree.
        check(&[(120, 1), (110, 2), (100, 3)], 0);
        // One of four disagrees; three still do.
        check(&[(100, 1), (5, 2), (110, 3), (120, 4)], 3);
        // Implausibly fast between each other: no.
        check(&[(100, 1), (2_000, 2), (4_000, 3)], 0);
    }

    #[test]
    fn the_rule_can_be_turned_off_and_never_takes_one() {
        let readings = [r(100, H), r(110, 2 * H), r(120, 3 * H)];
        let off = Policy {
            supersede_after: 0,
            ..Policy::default()
        };
        assert_eq!(supersession(&readings, &off), None);
        let one = Policy {
            supersede_after: 1,
            ..Policy::default()
        };
        assert_eq!(
            supersession(&readings[..1], &one),
            None,
            "never a lone reading"
        );
        assert_eq!(
            supersession(&readings[..2], &one).map(|s| s.agreeing.len()),
            Some(2)
        );
    }

    #[test]
    fn the_reason_names_the_readings() {
        let s = supersession(
            &[r(100, H), r(110, 2 * H), r(120, 3 * H)],
            &Policy::default(),
        )
        .expect("supersedes");
        let text = s.to_string();
        assert!(text.starts_with("superseded: 3 later readings"), "{text}");
    }
}
