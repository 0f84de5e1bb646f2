//! Signed notifications of the changes (the sender lives in the server): which changes are to be
//! sent, each claimed by one sender at a time with a lease, their retries, and every attempt.
//!
//! - **Queued in order.** A change is queued after `notify_progress.queued_through`, the way a
//!   reader follows the record: positions become visible in commit order, so none is passed
//!   over. The first queueing starts at the last position then: changes recorded before
//!   notifications were turned on are not sent unless asked ([`Store::notify_requeue`]).
//! - **One sender at a time.** A claim sets `lease_owner` and `lease_until` on rows whose lease is
//!   free or expired, in one `UPDATE`; an instance that dies (kill -9) holds its rows only until
//!   the lease expires, then another sends them again (at least once).
//! - **In order per vehicle.** Only the earliest pending change of a lane (the app vehicle) can be
//!   claimed: a later one waits while an earlier one is retried; other lanes keep flowing.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::changes::{last_position, Change};
use crate::db::on_backend;
use crate::schema::{changes, notification_attempts, notifications, notify_progress};
use crate::{now, Result, Store};

/// `notifications.state` of a change still to send.
const PENDING: &str = "pending";
/// `notifications.state` of a change the receiver accepted.
const DELIVERED: &str = "delivered";
/// `notifications.state` of a change given up on after its retries.
const FAILED: &str = "failed";

/// A change claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The change.
    pub change: Change,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// How one attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// A 2xx answer.
    Delivered,
    /// Any other answer.
    Rejected,
    /// No answer in time.
    Timeout,
    /// No connection (refused, name not found, TLS).
    Unreachable,
}

impl AttemptResult {
    /// Every result, for metrics.
    pub const ALL: [AttemptResult; 4] = [
        AttemptResult::Delivered,
        AttemptResult::Rejected,
        AttemptResult::Timeout,
        AttemptResult::Unreachable,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Rejected => "rejected",
            AttemptResult::Timeout => "timeout",
            AttemptResult::Unreachable => "unreachable",
        }
    }
}

/// One attempt to send a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// When it started (UTC).
    pub at: NaiveDateTime,
    /// How it went.
    pub result: AttemptResult,
    /// The answer's status, if there was one.
    pub status: Option<u16>,
    /// The start of the answer (capped by the sender), or why there was none.
    pub answer: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// What becomes of a change after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Sent: done.
    Delivered,
    /// Try again at this time.
    RetryAt(NaiveDateTime),
    /// Given up on.
    Failed,
}

/// A stored attempt, as `notify` commands show it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = notification_attempts)]
pub struct AttemptRow {
    /// The change's position.
    pub position: i64,
    /// When it started.
    pub attempted_at: NaiveDateTime,
    /// `delivered`, `rejected`, `timeout` or `unreachable`.
    pub result: String,
    /// The answer's status.
    pub status: Option<i32>,
    /// The start of the answer.
    pub answer: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// Where sending stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyStatus {
    /// The last position recorded.
    pub last_position: i64,
    /// The last position queued for sending; `None` before notifications were first on.
    pub queued_through: Option<i64>,
    /// Changes queued and not yet delivered (nor failed).
    pub pending: i64,
    /// Changes given up on.
    pub failed: i64,
    /// When the oldest change not yet delivered (queued or not) was recorded.
    pub oldest_unsent_at: Option<NaiveDateTime>,
}

impl NotifyStatus {
    /// Changes recorded and not yet delivered nor failed: pending plus not yet queued.
    pub fn lag_records(&self) -> i64 {
        self.pending + (self.last_position - self.queued_through.unwrap_or(self.last_position))
    }
}

impl Store {
    /// Queues up to `batch` changes recorded since the last queueing; returns how many. The first
    /// call on a database only marks where sending starts (the last position now).
    pub fn notify_queue(&self, batch: i64) -> Result<usize> {
        use notify_progress::dsl as q;
        {
            // A read first: nothing new is the usual case and takes no write lock.
            let mut conn = self.conn()?;
            let through: Option<i64> = q::notify_progress
                .filter(q::id.eq(1))
                .select(q::queued_through)
                .first(&mut *conn)?;
            if through.is_some_and(|t| t >= last_position(&mut conn).unwrap_or(t)) {
                return Ok(0);
            }
        }
        self.write(|tx| {
            let through = lock_progress(tx.conn)?;
            let Some(through) = through else {
                let last = last_position(tx.conn)?;
                set_progress(tx.conn, last)?;
                return Ok(0);
            };
            let rows: Vec<(i64, Option<String>, Option<String>)> = changes::table
                .filter(changes::position.gt(through))
                .order(changes::position.asc())
                .limit(batch.max(1))
                .select((
                    changes::position,
                    changes::vehicle_id,
                    changes::smartcar_vehicle_id,
                ))
                .load(tx.conn)?;
            let Some(&(last, _, _)) = rows.last() else {
                return Ok(0);
            };
            let at = now();
            let positions: Vec<(i64, String)> = rows
                .into_iter()
                .map(|(position, vehicle, smartcar)| {
                    (position, vehicle.or(smartcar).unwrap_or_default())
                })
                .collect();
            insert_pending(tx.conn, &positions, at)?;
            set_progress(tx.conn, last)?;
            Ok(positions.len())
        })
    }

    /// Claims up to `limit` changes due for sending for `owner` until `lease_until`: at most the
    /// earliest pending change of each lane, never one another sender holds. By position.
    pub fn notify_claim(
        &self,
        owner: &str,
        limit: i64,
        lease_until: NaiveDateTime,
    ) -> Result<Vec<Claimed>> {
        use notifications::dsl as n;
        let at = now();
        let mut conn = self.conn()?;
        let earlier = diesel::alias!(notifications as earlier);
        let due: Vec<i64> = n::notifications
            .filter(n::state.eq(PENDING))
            .filter(n::next_attempt_at.le(at))
            .filter(n::lease_until.is_null().or(n::lease_until.lt(at)))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                earlier
                    .filter(earlier.field(n::lane).eq(n::lane))
                    .filter(earlier.field(n::state).eq(PENDING))
                    .filter(earlier.field(n::position).lt(n::position)),
            )))
            .order(n::position.asc())
            .limit(limit.max(1))
            .select(n::position)
            .load(&mut *conn)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // The lease again in the condition: of two senders that chose the same rows, only one
        // sets it.
        diesel::update(
            n::notifications
                .filter(n::position.eq_any(&due))
                .filter(n::state.eq(PENDING))
                .filter(n::lease_until.is_null().or(n::lease_until.lt(at))),
        )
        .set((n::lease_owner.eq(owner), n::lease_until.eq(lease_until)))
        .execute(&mut *conn)?;
        let claimed: Vec<(i32, Change)> = n::notifications
            .inner_join(changes::table.on(changes::position.eq(n::position)))
            .filter(n::position.eq_any(&due))
            .filter(n::lease_owner.eq(owner))
            .filter(n::state.eq(PENDING))
            .order(n::position.asc())
            .select((n::attempts, Change::as_select()))
            .load(&mut *conn)?;
        Ok(claimed
            .into_iter()
            .map(|(attempts, change)| Claimed { change, attempts })
            .collect())
    }

    /// Records an attempt at sending the change at `position` and what follows it, releasing
    /// `owner`'s lease. The attempt is recorded even if the lease was lost meanwhile.
    pub fn notify_finish(
        &self,
        position: i64,
        owner: &str,
        attempt: &Attempt,
        next: NextStep,
    ) -> Result<()> {
        use notifications::dsl as n;
        self.write(|tx| {
            diesel::insert_into(notification_attempts::table)
                .values((
                    notification_attempts::position.eq(position),
                    notification_attempts::attempted_at.eq(attempt.at),
                    notification_attempts::result.eq(attempt.result.as_str()),
                    notification_attempts::status.eq(attempt.status.map(i32::from)),
                    notification_attempts::answer.eq(attempt.answer.as_deref()),
                    notification_attempts::duration_ms.eq(attempt.duration_ms),
                ))
                .execute(tx.conn)?;
            let (state, next_at, delivered_at) = match next {
                NextStep::Delivered => (DELIVERED, attempt.at, Some(now())),
                NextStep::RetryAt(at) => (PENDING, at, None),
                NextStep::Failed => (FAILED, attempt.at, None),
            };
            diesel::update(
                n::notifications
                    .filter(n::position.eq(position))
                    .filter(n::lease_owner.eq(owner)),
            )
            .set((
                n::state.eq(state),
                n::attempts.eq(n::attempts + 1),
                n::next_attempt_at.eq(next_at),
                n::delivered_at.eq(delivered_at),
                n::lease_owner.eq(None::<String>),
                n::lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(tx.conn)?;
            Ok(())
        })
    }

    /// Sends changes again from their first attempt: the failed ones after `after` with
    /// `failed_only`, otherwise every change kept after `after`, delivered or not, including
    /// those recorded before notifications were on. Returns how many were queued again.
    pub fn notify_requeue(&self, after: Option<i64>, failed_only: bool) -> Result<u64> {
        use notifications::dsl as n;
        let after = after.unwrap_or(0);
        self.write(|tx| {
            let at = now();
            let reset = (
                n::state.eq(PENDING),
                n::attempts.eq(0),
                n::next_attempt_at.eq(at),
                n::delivered_at.eq(None::<NaiveDateTime>),
                n::lease_owner.eq(None::<String>),
                n::lease_until.eq(None::<NaiveDateTime>),
            );
            if failed_only {
                return Ok(diesel::update(
                    n::notifications
                        .filter(n::state.eq(FAILED))
                        .filter(n::position.gt(after)),
                )
                .set(reset)
                .execute(tx.conn)? as u64);
            }
            let through = match lock_progress(tx.conn)? {
                Some(through) => through,
                None => {
                    let last = last_position(tx.conn)?;
                    set_progress(tx.conn, last)?;
                    last
                }
            };
            let updated = diesel::update(
                n::notifications
                    .filter(n::position.gt(after))
                    .filter(n::position.le(through)),
            )
            .set(reset)
            .execute(tx.conn)? as u64;
            // Changes in the range that were never queued (recorded before notifications were
            // on): queued now.
            let missing: Vec<(i64, Option<String>, Option<String>)> = changes::table
                .left_join(n::notifications.on(n::position.eq(changes::position)))
                .filter(n::position.is_null())
                .filter(changes::position.gt(after))
                .filter(changes::position.le(through))
                .select((
                    changes::position,
                    changes::vehicle_id,
                    changes::smartcar_vehicle_id,
                ))
                .load(tx.conn)?;
            let missing: Vec<(i64, String)> = missing
                .into_iter()
                .map(|(p, v, s)| (p, v.or(s).unwrap_or_default()))
                .collect();
            for chunk in missing.chunks(500) {
                insert_pending(tx.conn, chunk, at)?;
            }
            Ok(updated + missing.len() as u64)
        })
    }

    /// Where sending stands: counts and the oldest change not yet delivered.
    pub fn notify_status(&self) -> Result<NotifyStatus> {
        use notifications::dsl as n;
        use notify_progress::dsl as q;
        let mut conn = self.conn()?;
        let last = last_position(&mut conn)?;
        let queued_through: Option<i64> = q::notify_progress
            .filter(q::id.eq(1))
            .select(q::queued_through)
            .first(&mut *conn)?;
        let count = |conn: &mut crate::db::DbConnection, state: &str| -> Result<i64> {
            Ok(n::notifications
                .filter(n::state.eq(state))
                .count()
                .get_result(conn)?)
        };
        let pending = count(&mut conn, PENDING)?;
        let failed = count(&mut conn, FAILED)?;
        let oldest_pending: Option<i64> = n::notifications
            .filter(n::state.eq(PENDING))
            .select(diesel::dsl::min(n::position))
            .first(&mut *conn)?;
        // The oldest unsent: the oldest pending, or else the first not yet queued.
        let oldest = oldest_pending.or(queued_through.filter(|t| *t < last).map(|t| t + 1));
        let oldest_unsent_at = match oldest {
            Some(position) => changes::table
                .filter(changes::position.ge(position))
                .order(changes::position.asc())
                .select(changes::created_at)
                .first(&mut *conn)
                .optional()?,
            None => None,
        };
        Ok(NotifyStatus {
            last_position: last,
            queued_through,
            pending,
            failed,
            oldest_unsent_at,
        })
    }

    /// The attempts at sending the change at `position`, oldest first.
    pub fn notify_attempts(&self, position: i64) -> Result<Vec<AttemptRow>> {
        use notification_attempts::dsl as a;
        let mut conn = self.conn()?;
        Ok(a::notification_attempts
            .filter(a::position.eq(position))
            .order(a::id.asc())
            .select(AttemptRow::as_select())
            .load(&mut *conn)?)
    }
}

/// Locks the progress row until the transaction ends, and reads it.
fn lock_progress(conn: &mut crate::db::DbConnection) -> Result<Option<i64>> {
    use notify_progress::dsl as q;
    diesel::update(q::notify_progress.filter(q::id.eq(1)))
        .set(q::queued_through.eq(q::queued_through))
        .execute(conn)?;
    Ok(q::notify_progress
        .filter(q::id.eq(1))
        .select(q::queued_through)
        .first(conn)?)
}

fn set_progress(conn: &mut crate::db::DbConnection, through: i64) -> Result<()> {
    use notify_progress::dsl as q;
    diesel::update(q::notify_progress.filter(q::id.eq(1)))
        .set(q::queued_through.eq(Some(through)))
        .execute(conn)?;
    Ok(())
}

/// Queues `(position, lane)` rows as pending, due now; rows already there are left as they are.
fn insert_pending(
    conn: &mut crate::db::DbConnection,
    rows: &[(i64, String)],
    at: NaiveDateTime,
) -> Result<()> {
    use notifications::dsl as n;
    let values: Vec<_> = rows
        .iter()
        .map(|(position, lane)| {
            (
                n::position.eq(*position),
                n::lane.eq(lane.as_str()),
                n::state.eq(PENDING),
                n::attempts.eq(0),
                n::next_attempt_at.eq(at),
                n::created_at.eq(at),
            )
        })
        .collect();
    on_backend!(conn, |c| diesel::insert_into(n::notifications)
        .values(&values)
        .on_conflict(n::position)
        .do_nothing()
        .execute(c))?;
    Ok(())
}

/// Deletes the notifications and attempts of the changes at positions `first..=last`, with them.
pub(crate) fn delete_range(
    conn: &mut crate::db::DbConnection,
    first: i64,
    last: i64,
) -> Result<()> {
    use notification_attempts::dsl as a;
    use notifications::dsl as n;
    diesel::delete(
        a::notification_attempts
            .filter(a::position.ge(first))
            .filter(a::position.le(last)),
    )
    .execute(conn)?;
    diesel::delete(
        n::notifications
            .filter(n::position.ge(first))
            .filter(n::position.le(last)),
    )
    .execute(conn)?;
    Ok(())
}
