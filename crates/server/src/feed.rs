//! The change feed as the app sees it: one JSON shape for a change (`GET /api/changes`,
//! `meterhook changes --json`, and the `data` of each notification), its cursor, and the tail
//! that long-polling readers wait on without holding a database connection.

use std::sync::Arc;
use std::time::Duration;

use meterhook_store::{Change, Store};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::views::rfc3339;

/// A change as the app receives it.
#[derive(Debug, Serialize)]
pub struct ChangeView<'a> {
    /// `chg_<position>`: the same for the pulled and the pushed copy (the `webhook-id`).
    id: String,
    /// Its place in the record; the cursor after it is this number as text.
    position: i64,
    #[serde(rename = "type")]
    change_type: &'a str,
    vehicle_id: Option<&'a str>,
    smartcar_vehicle_id: Option<&'a str>,
    created_at: String,
    /// The object as the API showed it at that moment.
    data: Value,
}

/// The view of a change.
pub fn change(c: &Change) -> ChangeView<'_> {
    ChangeView {
        id: change_id(c.position),
        position: c.position,
        change_type: &c.change_type,
        vehicle_id: c.vehicle_id.as_deref(),
        smartcar_vehicle_id: c.smartcar_vehicle_id.as_deref(),
        created_at: rfc3339(c.created_at),
        data: serde_json::from_str(&c.data).unwrap_or(Value::Null),
    }
}

/// A change's stable id: `chg_<position>`.
pub fn change_id(position: i64) -> String {
    format!("chg_{position}")
}

/// The cursor after `position`: the position as decimal text (opaque to clients).
pub fn cursor(position: i64) -> String {
    position.to_string()
}

/// A cursor this feed gave, back to its position; `None` for anything else.
pub fn parse_cursor(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// How often the tail reads the last position while someone waits: it catches changes written
/// by other instances and by the CLI; this process's own commits poke it at once.
pub const TAIL_EVERY: Duration = Duration::from_millis(250);

/// The last position recorded, as last read, for long-polling readers to wait on. One task reads
/// it while anyone waits, every [`TAIL_EVERY`] and whenever this process committed something
/// ([`ChangeTail::poke`]; pokes that come while it reads make one more read, not one each), so
/// the reads do not grow with the readers; a waiting reader holds a receiver, never a database
/// connection.
#[derive(Debug, Clone)]
pub struct ChangeTail {
    last: Arc<watch::Sender<i64>>,
    poked: Arc<tokio::sync::Notify>,
}

impl Default for ChangeTail {
    fn default() -> Self {
        ChangeTail {
            last: Arc::new(watch::channel(0).0),
            poked: Arc::default(),
        }
    }
}

impl ChangeTail {
    /// A receiver that sees each new last position.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.last.subscribe()
    }

    /// Says that this process committed something that may have recorded changes.
    pub fn poke(&self) {
        if self.last.receiver_count() > 0 {
            self.poked.notify_one();
        }
    }

    /// Reads the last position at every poke and every [`TAIL_EVERY`] until `stop` changes.
    pub async fn run(&self, store: &Store, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.poked.notified() => {}
                () = tokio::time::sleep(TAIL_EVERY) => {}
                _ = stop.changed() => return,
            }
            self.tick(store).await;
        }
    }

    /// Reads the last position if anyone waits, and wakes them if it moved.
    pub async fn tick(&self, store: &Store) {
        if self.last.receiver_count() == 0 {
            return;
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.last_change_position()).await {
            Ok(Ok(last)) => {
                self.last.send_if_modified(|old| {
                    let moved = *old != last;
                    *old = last;
                    moved
                });
            }
            Ok(Err(e)) => log::warn!("change feed: cannot read the last position: {e}"),
            Err(_) => log::error!("change feed: the tail read panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_are_decimal_positions_and_nothing_else() {
        for (text, expected) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("4 2", None),
            ("chg_42", None),
            ("0x10", None),
        ] {
            assert_eq!(parse_cursor(text), expected, "{text:?}");
        }
    }
}
