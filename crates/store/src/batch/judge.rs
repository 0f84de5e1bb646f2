//! The second phase of a batch: the point look-ups of each reading's stored neighbours, the
//! domain's judgement ([`meterhook_domain::judge`], in the batch's order), and where the batch
//! must end so that a supersession happens where it would one delivery at a time.

use chrono::TimeDelta;
use meterhook_domain::{judge, Candidate, Outcome, Policy};

use super::plan::Plan;
use crate::db::DbConnection;
use crate::entries::load_neighbours;
use crate::supersession::{refusers, Refused, Refusers};
use crate::Result;

/// What judging a batch found beyond each step's judgement.
pub(crate) struct Verdict<'a> {
    /// The stored entries behind the readings that refused others.
    pub refusers: Refusers<'a>,
    /// The deliveries to write now: the batch up to the refusal that completes a supersession,
    /// or all of it.
    pub end: usize,
    /// Whether the batch then ends with that refusal (the supersession is tried).
    pub completes: bool,
}

/// Judges the readings of `plan` (setting each step's judgement and outcome) and finds where
/// the batch of `len` deliveries ends. Reads only.
pub(crate) fn judge_readings<'a>(
    conn: &mut DbConnection,
    plan: &mut Plan<'a>,
    len: usize,
    policy: &Policy,
) -> Result<Verdict<'a>> {
    let mut candidates: Vec<Candidate<&str>> = plan
        .steps
        .iter()
        .filter_map(|step| {
            Some(Candidate {
                vehicle: step.active_vehicle()?.vehicle_id.as_str(),
                reading: step.reading.as_ref()?.reading,
                stored: Default::default(),
            })
        })
        .collect();
    let window = TimeDelta::milliseconds(policy.duplicate_window_ms.max(0));
    let found = load_neighbours(conn, &candidates, window)?;
    for (candidate, stored) in candidates.iter_mut().zip(found) {
        candidate.stored = stored;
    }
    let mut judgements = judge(&candidates, policy).into_iter();
    let mut refused = Vec::new();
    for step in &mut plan.steps {
        let vehicle = step.active_vehicle();
        let Some(judged) = step.reading.as_mut() else {
            continue;
        };
        let Some(judgement) = judgements.next() else {
            continue;
        };
        step.outcome = Outcome::of(&judgement.decision);
        if let (Some(by), Some(vehicle)) = (judgement.refused_by(), vehicle) {
            refused.push(Refused {
                index: step.index,
                vehicle_id: vehicle.vehicle_id.as_str(),
                reading: judged.reading,
                by,
            });
        }
        judged.judgement = Some(judgement);
    }
    let (refusers, end) = refusers(conn, &refused, policy)?;
    Ok(Verdict {
        refusers,
        end: end.unwrap_or(len).min(len),
        completes: end.is_some_and(|end| end <= len),
    })
}
