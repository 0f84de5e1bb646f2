//! Self-healing: one bad accepted reading must not block a vehicle for good.
//!
//! A lone outlier that was accepted (a first reading of 0 km, a car that reported another car's
//! odometer once) makes every true reading after it look out of sequence or implausible. The rule:
//! when at least [`Policy::supersede_after`] readings refused because of the *same* accepted entry
//! agree with each other, that entry is superseded (voided, with the reason kept) and they are
//! judged again with [`crate::judge`] against the timeline without the entry; the supersession
//! holds only if every one of them is then accepted: the entry must have been their only
//! obstacle. So a single glitch never voids a consistent history (it is one reading, and it would
//! not be accepted without the history either), and K consistent readings win over one outlier
//! whatever the order they arrive in.
//!
//! The whole rule is here: [`window`] bounds how many refusals count, [`Tally`] finds the refusal
//! of a batch that completes a set, and [`supersede`] decides. The store only loads and saves.

use std::fmt;

use crate::{judge, Candidate, Policy, Reading, Stored};

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

/// How many of the latest readings refused because of one entry count: twice the number that
/// supersedes (so a set that agrees is found among stray ones), at least 4, at most 64. A bound
/// on the work a flood of refusals can cause.
pub fn window(policy: &Policy) -> usize {
    usize::try_from(policy.supersede_after)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .clamp(4, 64)
}

/// The refusals of a batch, counted per refusing reading (`K` names it), each over the latest
/// [`window`] of them: finds the refusal that completes a supersession, so that the batch can
/// end there, as one delivery at a time would.
#[derive(Debug, Clone)]
pub struct Tally<K> {
    refusers: Vec<(K, Vec<Reading>)>,
    window: usize,
    on: bool,
}

impl<K: PartialEq> Tally<K> {
    /// An empty tally under `policy`.
    pub fn new(policy: &Policy) -> Self {
        Tally {
            refusers: Vec::new(),
            window: window(policy),
            on: policy.supersede_after > 0,
        }
    }

    /// The readings `refuser` refused before the batch, oldest first.
    pub fn stored(&mut self, refuser: K, refused: Vec<Reading>) {
        self.refusers.push((refuser, refused));
    }

    /// Counts `reading`, refused because of `refuser`; true when it completes a supersession.
    pub fn refuse(&mut self, refuser: K, reading: Reading, policy: &Policy) -> bool {
        if !self.on {
            return false;
        }
        let at = match self.refusers.iter().position(|(k, _)| *k == refuser) {
            Some(at) => at,
            None => {
                self.refusers.push((refuser, Vec::new()));
                self.refusers.len() - 1
            }
        };
        let readings = &mut self.refusers[at].1;
        readings.push(reading);
        if readings.len() > self.window {
            readings.remove(0);
        }
        supersession(readings, policy).is_some()
    }
}

/// The rule, whole: whether the readings `refused` because of one accepted entry (oldest first;
/// only the latest [`window`] count) supersede it. `without_entry` voids the entry and returns,
/// for each agreeing reading, the stored entries around it on the timeline without it; the
/// supersession holds when every agreeing reading is then accepted. `Ok(None)`: the entry stays
/// (and the caller undoes what `without_entry` did).
pub fn supersede<E>(
    refused: &[Reading],
    policy: &Policy,
    without_entry: impl FnOnce(&[Reading]) -> Result<Vec<Stored>, E>,
) -> Result<Option<Supersession>, E> {
    let latest = &refused[refused.len().saturating_sub(window(policy))..];
    let Some(outvoted) = supersession(latest, policy) else {
        return Ok(None);
    };
    let stored = without_entry(&outvoted.agreeing)?;
    let candidates: Vec<Candidate<()>> = outvoted
        .agreeing
        .iter()
        .zip(stored)
        .map(|(reading, stored)| Candidate {
            vehicle: (),
            reading: *reading,
            stored,
        })
        .collect();
    let accepted = candidates.len() == outvoted.agreeing.len()
        && judge(&candidates, policy)
            .iter()
            .all(|j| j.decision.is_accept());
    Ok(accepted.then_some(outvoted))
}

/// Whether the readings `refused` because of one accepted entry outvote it: `Some` when at least
/// `policy.supersede_after` of them (and never fewer than two) agree with each other. 0 turns
/// the rule off.
fn supersession(refused: &[Reading], policy: &Policy) -> Option<Supersession> {
    let needed = usize::try_from(policy.supersede_after).unwrap_or(usize::MAX);
    if needed == 0 || refused.len() < needed.max(2) {
        return None;
    }
    let agreeing = agreeing(refused, policy);
    (agreeing.len() >= needed.max(2)).then_some(Supersession { agreeing })
}

/// The largest set of `readings` that agree with each other, in time order: each is accepted by
/// the rules ([`judge`]) right after the one before it (in sequence, plausible, not a duplicate).
fn agreeing(readings: &[Reading], policy: &Policy) -> Vec<Reading> {
    let mut sorted = readings.to_vec();
    sorted.sort_by_key(|r| (r.observed_at, r.distance));
    sorted.dedup();
    let follows = |before: Reading, next: Reading| {
        let candidate = Candidate {
            vehicle: (),
            reading: next,
            stored: Stored {
                before: Some(before),
                after: None,
                same_value: Vec::new(),
            },
        };
        judge(&[candidate], policy)
            .first()
            .is_some_and(|j| j.decision.is_accept())
    };
    // Longest chain: best[j] is the length of the longest chain ending at j, from[j] its
    // predecessor. The sets are small (`window` bounds them).
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

    #[test]
    fn supersede_holds_only_when_the_entry_was_their_only_obstacle() {
        let refused = [r(100, H), r(110, 2 * H), r(120, 3 * H)];
        let policy = Policy::default();
        // Nothing else on the timeline: they are accepted without the entry.
        let free = supersede(&refused, &policy, |agreeing| {
            Ok::<_, ()>(vec![Stored::default(); agreeing.len()])
        });
        assert_eq!(free.map(|s| s.map(|s| s.agreeing.len())), Ok(Some(3)));
        // Another stored entry after them, far lower: still refused, so the entry stays.
        let blocked = supersede(&refused, &policy, |agreeing| {
            let later = Stored {
                after: Some(r(50, 10 * H)),
                ..Stored::default()
            };
            Ok::<_, ()>(vec![later; agreeing.len()])
        });
        assert_eq!(blocked, Ok(None));
        // Too few: the timeline is never even asked for.
        let asked = supersede(&refused[..2], &policy, |_| -> Result<Vec<Stored>, ()> {
            panic!("not asked")
        });
        assert_eq!(asked, Ok(None));
    }

    #[test]
    fn only_the_latest_window_of_refusals_counts() {
        let policy = Policy::default();
        // Three that agree, then a window's worth of strays that agree with nothing (each lower
        // than the one before).
        let mut refused = vec![r(100, H), r(110, 2 * H), r(120, 3 * H)];
        let strays = (0..window(&policy) as i64).map(|i| r(900 - 10 * i, (4 + i) * H));
        refused.extend(strays);
        let found = supersede(&refused, &policy, |a| {
            Ok::<_, ()>(vec![Stored::default(); a.len()])
        });
        assert_eq!(found, Ok(None));
    }

    #[test]
    fn the_tally_finds_the_refusal_that_completes_a_set() {
        let policy = Policy::default();
        let mut tally = Tally::new(&policy);
        tally.stored("a", vec![r(100, H)]);
        assert!(!tally.refuse("b", r(100, H), &policy), "another refuser");
        assert!(!tally.refuse("a", r(110, 2 * H), &policy));
        assert!(
            tally.refuse("a", r(120, 3 * H), &policy),
            "the third that agrees"
        );
        let off = Policy {
            supersede_after: 0,
            ..Policy::default()
        };
        let mut tally = Tally::new(&off);
        for h in 1..10 {
            assert!(!tally.refuse("a", r(100 + h, h * H), &off));
        }
    }
}
