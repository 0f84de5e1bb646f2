//! Throwaway databases for tests: a SQLite file in a temporary folder, and a fresh PostgreSQL
//! database per test when `TEST_DATABASE_URL` names a server.
//!
//! `REQUIRE_POSTGRES_TESTS=1` turns a missing `TEST_DATABASE_URL` into a failure instead of a skip,
//! so CI cannot pass by silently testing one backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "postgres")]
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(feature = "postgres")]
use diesel::{connection::SimpleConnection, pg::PgConnection, Connection};

use crate::{Backend, PoolOptions, Store};

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    url: String,
    backend: Backend,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres {
        admin_url: String,
        name: String,
    },
    /// Someone else's database: left alone.
    None,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestDatabase({})", self.backend)
    }
}

#[cfg(feature = "postgres")]
static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    /// A new SQLite file in its own temporary folder.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("meterhook-test.db");
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// Always `None` in a build without the `postgres` feature.
    #[cfg(not(feature = "postgres"))]
    pub fn postgres() -> Option<TestDatabase> {
        None
    }

    /// A new, empty PostgreSQL database on the server of `TEST_DATABASE_URL`; `None` when it is
    /// not set, unless `REQUIRE_POSTGRES_TESTS=1`, which makes that a panic.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Option<TestDatabase> {
        let admin_url = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                if std::env::var("REQUIRE_POSTGRES_TESTS").as_deref() == Ok("1") {
                    panic!("REQUIRE_POSTGRES_TESTS=1 but TEST_DATABASE_URL is not set");
                }
                return None;
            }
        };
        let name = format!(
            "meterhook_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_subsec_nanos()
        );
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        Some(TestDatabase {
            url: with_database(&admin_url, &name),
            backend: Backend::Postgres,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// A SQLite database, plus a PostgreSQL one when available: run the same test body on each.
    pub fn all() -> Vec<TestDatabase> {
        let mut dbs = vec![TestDatabase::sqlite()];
        dbs.extend(TestDatabase::postgres());
        dbs
    }

    /// The same database again, for a second store or server on it (several instances sharing
    /// one database); the original still removes it.
    pub fn share(&self) -> TestDatabase {
        TestDatabase {
            url: self.url.clone(),
            backend: self.backend,
            cleanup: Cleanup::None,
        }
    }

    /// The URL to open it with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A migrated store on it.
    pub fn store(&self) -> Store {
        Store::open(&self.url, &PoolOptions::default()).expect("open test store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `url` with its database name replaced by `name`; the query (host, user, …) is kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[scheme_end..].find('/') {
        Some(slash) => &head[..scheme_end + slash],
        None => head,
    };
    format!("{base}/{name}{query}")
}

/// A vehicle state received at `received_at`, for tests: its signals, and its odometer reading
/// when it has one.
pub fn received_state(
    event_id: &str,
    smartcar_vehicle_id: &str,
    reading: Option<meterhook_domain::Reading>,
    signals: Vec<crate::NewSignal>,
    received_at: chrono::NaiveDateTime,
) -> crate::Delivery {
    crate::Delivery {
        event_id: event_id.to_owned(),
        event_type: "VEHICLE_STATE".to_owned(),
        smartcar_vehicle_id: Some(smartcar_vehicle_id.to_owned()),
        arrival: crate::Arrival::Received {
            payload: format!("{{\"eventId\":{event_id:?}}}"),
            received_at,
        },
        work: crate::Work::State {
            signals,
            odometer: reading.map_or(crate::Odometer::Missing, |reading| {
                crate::Odometer::Reading {
                    reading,
                    correction: None,
                }
            }),
            test: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        for (url, expected) in [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/t1"),
            ("postgres://u@h", "postgres://u@h/t1"),
            (
                "postgresql:///postgres?host=/tmp/pg&user=postgres",
                "postgresql:///t1?host=/tmp/pg&user=postgres",
            ),
            (
                "postgresql://?host=/tmp/pg",
                "postgresql:///t1?host=/tmp/pg",
            ),
        ] {
            assert_eq!(with_database(url, "t1"), expected, "{url}");
        }
    }
}
