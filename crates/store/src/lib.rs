#![doc = include_str!("../README.md")]

mod backup;
mod batch;
mod changes;
mod checkpoint;
mod db;
mod delivery;
mod entries;
mod error;
mod events;
mod listings;
mod notifications;
mod prepared;
pub mod schema;
mod signals;
mod statistics;
mod store;
mod supersession;
mod sync_logs;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod vehicle_errors;
mod vehicles;
pub mod views;

pub use batch::{Processed, Receipt};
pub use changes::{Change, ChangeFilter, ChangeType, ChangesError, ChangesPage};
pub use checkpoint::RESTART_FRAMES;
#[cfg(feature = "testing")]
pub use db::{connect, pending_migrations, revert_all_migrations, run_migrations, DbConnection};
pub use db::{migration_names, Backend, DatabaseUrl, PoolOptions};
pub use delivery::{Arrival, Delivery, Odometer, Work};
pub use entries::{EntryCursor, LastReading, MeterEntry, UnvoidRefusal, SOURCE_SMARTCAR_WEBHOOK};
pub use error::{Result, StoreError};
pub use events::{EventRecord, EventSummary, NewEvent, Recorded, Reprocess, MIN_RETENTION_DAYS};
pub use listings::EventFilter;
pub use notifications::{Attempt, AttemptResult, AttemptRow, Claimed, NextStep, NotifyStatus};
pub use signals::{NewSignal, SignalRow};
pub use statistics::{Backlog, HourlyCount, Stats, TypeCount};
pub use store::{Pool, Store, Tx};
pub use sync_logs::{SyncLog, SyncStatus};
pub use time::{now, to_millis, to_timestamp};
pub use vehicle_errors::{ErrorReport, VehicleErrorRow};
pub use vehicles::{Purged, Vehicle};
