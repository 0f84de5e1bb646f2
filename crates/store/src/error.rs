//! What can go wrong in the store, and which failures are worth retrying.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong in the store. Messages never contain the database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or answered that it is unavailable; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The URL is not one the store understands.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database asked to open without creating it does not exist.
    #[error("database not found: {0}")]
    Missing(String),
    /// The database exists but lacks migrations that this version needs.
    #[error("the database schema is out of date: {} migration(s) pending, from {}", .0.len(), .0.first().map_or("?", String::as_str))]
    Outdated(Vec<String>),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored.
    #[error("{0}")]
    Invalid(String),
    /// Another writer changed what this one was writing; nothing was written, try again.
    #[error("write conflict: {0}")]
    Conflict(String),
    /// Any other database error.
    #[error("database error: {}", one_line(&.0.to_string()))]
    Query(DieselError),
}

impl StoreError {
    /// Whether trying again later may succeed (connection lost, lock timeout, pool exhausted).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Query(e) => is_transient_diesel(e),
            _ => false,
        }
    }
}

fn is_transient_diesel(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure => true,
            _ => {
                let msg = info.message().to_ascii_lowercase();
                msg.contains("database is locked")
                    || msg.contains("deadlock detected")
                    || msg.contains("busy")
                    || msg.contains("terminating connection")
                    || msg.contains("server closed the connection")
                    || msg.contains("no connection to the server")
                    || msg.contains("the database system is")
                    || msg.contains("disk i/o error")
            }
        },
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        if is_transient_diesel(&e) {
            StoreError::Unavailable(one_line(&e.to_string()))
        } else {
            StoreError::Query(e)
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A message on one line: the lines of a multi-line one (libpq's) trimmed and joined, so that
/// every error the store gives fits one log line.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
