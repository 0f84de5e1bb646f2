//! The store (a connection pool on one backend) and its write transaction, [`Tx`].

use diesel::result::Error as DieselError;
use diesel::Connection;

use crate::db::{self, open_connection, pending_migrations, run_migrations, Create, DbConnection};
use crate::{checkpoint, Backend, DatabaseUrl, PoolOptions, Result, StoreError};

/// A pooled connection.
pub type Pool = r2d2::Pool<db::Manager>;

/// The store: a connection pool on one backend; its reads and whole operations are methods, each
/// in the module of what it holds (vehicles, events, entries, …).
///
/// Every method blocks; async callers run them off their executor threads.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    url: DatabaseUrl,
    /// The background checkpoints, while any handle on the store lives.
    checkpointer: Option<std::sync::Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    pub fn open(url: &str, options: &PoolOptions) -> Result<Store> {
        let store = Store::open_lazy(url, options)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing, migrated database, creating and changing nothing: a missing SQLite file
    /// is [`StoreError::Missing`], pending migrations are [`StoreError::Outdated`]. For the
    /// commands that only use a database, so that a mistyped path never becomes a new one.
    pub fn open_existing(url: &str, options: &PoolOptions) -> Result<Store> {
        let store = Store::build(url, options, Create::Never)?;
        // One connection of its own first: the pool would retry a missing file or a refused
        // connection until its timeout, and then report only that it timed out.
        let mut conn = open_connection(&store.url, options.busy_timeout, Create::Never)?;
        let pending = pending_migrations(&mut conn)?;
        if !pending.is_empty() {
            return Err(StoreError::Outdated(pending));
        }
        Ok(store)
    }

    /// Builds the pool without connecting; the first use connects (and fails if it cannot).
    pub fn open_lazy(url: &str, options: &PoolOptions) -> Result<Store> {
        Ok(Store::with_pool(
            DatabaseUrl::parse(url)?,
            options,
            Create::IfMissing,
        ))
    }

    fn build(url: &str, options: &PoolOptions, create: Create) -> Result<Store> {
        Ok(Store::with_pool(DatabaseUrl::parse(url)?, options, create))
    }

    /// Another handle on the same database with a pool of its own, sized by `options`: work on
    /// one pool never waits for a connection held on the other (the server keeps its readers off
    /// the writers' pool this way). Connects lazily, like [`Store::open_lazy`], and never creates
    /// a database.
    pub fn with_own_pool(&self, options: &PoolOptions) -> Store {
        Store::with_pool(self.url.clone(), options, Create::Never)
    }

    fn with_pool(url: DatabaseUrl, options: &PoolOptions, create: Create) -> Store {
        let checkpointer = if options.background_checkpoints && url.backend() == Backend::Sqlite {
            match checkpoint::start(&url, options.busy_timeout) {
                Ok(c) => Some(std::sync::Arc::new(c)),
                Err(e) => {
                    log::warn!("cannot start the background checkpoints ({e}); commits checkpoint");
                    None
                }
            }
        } else {
            None
        };
        let manager = db::Manager::new(
            url.clone(),
            options.busy_timeout,
            create,
            checkpointer.is_none(),
        );
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(options.connection_timeout)
            // A connection that died with the server is found before it is handed out.
            .test_on_check_out(url.backend() == Backend::Postgres)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Store {
            pool,
            url,
            checkpointer,
        }
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize> {
        let mut conn = self.conn()?;
        run_migrations(&mut conn)
    }

    /// The embedded migrations this database lacks, by name; reads only.
    pub fn pending_migrations(&self) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        pending_migrations(&mut conn)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The database URL (its `Debug` and `redacted()` hide any password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Checks that the database answers.
    pub fn ping(&self) -> Result<()> {
        use diesel::connection::SimpleConnection;
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> Result<r2d2::PooledConnection<db::Manager>> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` in one transaction: one commit (one fsync) for everything it writes. The
    /// server's writer uses it to commit many deliveries at once (group commit).
    pub fn write<T>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        #[cfg(feature = "sqlite")]
        use diesel::connection::AnsiTransactionManager;
        use diesel::connection::TransactionManager;
        type Manager = <DbConnection as Connection>::TransactionManager;
        let mut pooled = self.conn()?;
        let conn: &mut DbConnection = &mut pooled;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.before_write(conn);
        }
        match conn {
            // IMMEDIATE: the write lock from the start (waiting on the busy timeout), so that a
            // transaction that reads before it writes cannot find its snapshot stale at the
            // first write (SQLITE_BUSY_SNAPSHOT, which no waiting cures).
            #[cfg(feature = "sqlite")]
            DbConnection::Sqlite(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
            }
            #[cfg(feature = "postgres")]
            DbConnection::Pg(_) => Manager::begin_transaction(conn)?,
        }
        match work(&mut Tx { conn: &mut *conn }) {
            Ok(value) => {
                Manager::commit_transaction(conn)?;
                Ok(value)
            }
            Err(e) => match Manager::rollback_transaction(conn) {
                Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(e),
                Err(rollback) => Err(rollback.into()),
            },
        }
    }
}

/// Writes inside one transaction ([`Store::write`]). Each method runs in a savepoint of its
/// own, so a failed step is undone alone and the rest of the transaction goes on.
pub struct Tx<'a> {
    pub(crate) conn: &'a mut DbConnection,
}

impl Tx<'_> {
    /// Runs `work` in a savepoint: on error it is rolled back alone.
    pub fn savepoint<T>(&mut self, work: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.conn.transaction(|conn| work(&mut Tx { conn }))
    }
}

/// Deletes rows a batch at a time (each statement its own transaction, so a long prune never
/// holds the write lock for long): `next` selects the ids of the next batch of at most `batch`
/// rows, `delete` deletes them; `progress` gets the running total. Returns how many went.
pub(crate) fn delete_in_batches(
    conn: &mut DbConnection,
    batch: i64,
    mut progress: impl FnMut(u64),
    mut next: impl FnMut(&mut DbConnection, i64) -> Result<Vec<i64>>,
    mut delete: impl FnMut(&mut DbConnection, &[i64]) -> Result<usize>,
) -> Result<u64> {
    let mut deleted = 0u64;
    loop {
        let ids = next(conn, batch.max(1))?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        deleted += delete(conn, &ids)? as u64;
        progress(deleted);
    }
}
