//! Connections: one Diesel `MultiConnection` over SQLite and PostgreSQL, the pool, and migrations.

use std::fmt;
use std::time::Duration;

use diesel::connection::SimpleConnection;
#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
#[cfg(feature = "sqlite")]
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::StoreError;

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("meterhook-store needs the `sqlite` feature, the `postgres` feature, or both");

/// A connection to either backend; queries written once run on both. Each backend is a cargo
/// feature (`sqlite`, `postgres`; both by default), so a service that only wants SQLite needs no
/// libpq. Diesel's derive takes no `cfg` on variants: one enum per set of features.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for production and for several instances sharing one database.
    Pg(PgConnection),
    /// Embedded SQLite, the default.
    Sqlite(SqliteConnection),
}

/// A connection to the one backend built in.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL.
    Pg(PgConnection),
}

/// A connection to the one backend built in.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// Embedded SQLite.
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the inner connection of whichever backend `$conn` is; for the few
/// statements (`ON CONFLICT`) that do not go through the `MultiConnection` enum.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Pg($c) => $body,
            #[cfg(feature = "sqlite")]
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

#[cfg(feature = "sqlite")]
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The migrations embedded for `backend`; `None` when it is not built in.
fn migrations_of(backend: Backend) -> Option<EmbeddedMigrations> {
    match backend {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Some(SQLITE_MIGRATIONS),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Some(POSTGRES_MIGRATIONS),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// A backend type to list embedded migrations with (their names do not depend on it).
#[cfg(feature = "sqlite")]
type ListingBackend = diesel::sqlite::Sqlite;
#[cfg(not(feature = "sqlite"))]
type ListingBackend = diesel::pg::Pg;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database location, with the backend chosen from its scheme (never by trial: SQLite would accept
/// any string as a file name).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// For SQLite the file path; for PostgreSQL the whole URL (which may hold a password).
    target: String,
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `postgres://…`, `postgresql://…`, or a plain file path
    /// ending in `.db`, `.sqlite` or `.sqlite3`.
    ///
    /// Anything else is refused, and the refusal never repeats the value: SQLite would take any
    /// string as a file name, libpq's `host=db password=…` included.
    ///
    /// ```
    /// use meterhook_store::{Backend, DatabaseUrl};
    ///
    /// let url = DatabaseUrl::parse("postgres://meter:s3cret@db.internal/meterhook")?;
    /// assert_eq!(url.backend(), Backend::Postgres);
    /// assert_eq!(url.redacted(), "postgres://meter:[redacted]@db.internal/meterhook");
    /// assert_eq!(DatabaseUrl::parse("data/meterhook.db")?.sqlite_path(), Some("data/meterhook.db"));
    ///
    /// let refused = DatabaseUrl::parse("host=db password=s3cret").unwrap_err().to_string();
    /// assert!(!refused.contains("s3cret"));
    /// # Ok::<(), meterhook_store::StoreError>(())
    /// ```
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreError::InvalidUrl("the database URL is empty".into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl {
                backend: Backend::Postgres,
                target: url.to_owned(),
            });
        }
        let explicit = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        let path = explicit.unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::InvalidUrl(
                "the SQLite URL names no file".into(),
            ));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            // Only a plain scheme is repeated; `user:password@host://` is not.
            let shown = scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            return Err(StoreError::InvalidUrl(if shown {
                format!("unsupported database scheme {scheme:?} (use sqlite:// or postgres://)")
            } else {
                "unsupported database scheme (use sqlite:// or postgres://)".into()
            }));
        }
        if explicit.is_none() {
            const NOT_SHOWN: &str = "the value is not shown: it may hold a password";
            if path.contains('=') {
                return Err(StoreError::InvalidUrl(format!(
                    "key=value settings (libpq's form) are not supported; write them as \
                     postgres://user:password@host:port/dbname ({NOT_SHOWN})"
                )));
            }
            let lower = path.to_ascii_lowercase();
            if ![".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|ext| lower.ends_with(ext))
            {
                return Err(StoreError::InvalidUrl(format!(
                    "expected sqlite://PATH, postgres://… or a file path ending in .db, .sqlite \
                     or .sqlite3 ({NOT_SHOWN})"
                )));
            }
        }
        Ok(DatabaseUrl {
            backend: Backend::Sqlite,
            target: path.to_owned(),
        })
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file path, when the backend is SQLite.
    pub fn sqlite_path(&self) -> Option<&str> {
        (self.backend == Backend::Sqlite).then_some(self.target.as_str())
    }

    /// The URL with any password hidden, for logs.
    pub fn redacted(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.target),
            Backend::Postgres => redact_password(&self.target),
        }
    }

    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.target
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Hides the password of `scheme://user:password@host/…` and of a `password=` query parameter.
///
/// A password with an unencoded `?`, `/` or `@` is hidden too: the user information ends at the
/// last `@` before the path, or when there is none there (a `/` in the password), at the last `@`
/// at all. That may hide more than the password, never less.
fn redact_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &out[rest_start..];
        let before_path = rest.find('/').map_or(rest, |i| &rest[..i]);
        let at = before_path.rfind('@').or_else(|| rest.rfind('@'));
        if let Some(at) = at {
            if let Some(colon) = rest[..at].find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "[redacted]");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|kv| {
                if kv.to_ascii_lowercase().starts_with("password=") {
                    "password=[redacted]".to_owned()
                } else {
                    kv.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

/// How connections are made and pooled.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections in the pool.
    pub max_size: u32,
    /// How long to wait for a connection before reporting the database unavailable.
    pub connection_timeout: Duration,
    /// How long SQLite waits on a lock held by another connection.
    pub busy_timeout: Duration,
    /// SQLite: checkpoint in a thread of the store's own rather than in the commits of the pool's
    /// connections (`crate::checkpoint`). For a long-running writer such as the server.
    pub background_checkpoints: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 8,
            connection_timeout: Duration::from_secs(2),
            busy_timeout: Duration::from_secs(5),
            background_checkpoints: false,
        }
    }
}

/// Whether opening a SQLite database may create its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create a missing file (0600): for the service and `migrate`.
    IfMissing,
    /// The file must exist: a mistyped path is an error, not a new empty database.
    Never,
}

/// Makes connections for r2d2, choosing the backend from the URL and setting SQLite up.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    busy_timeout: Duration,
    create: Create,
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    autocheckpoint: bool,
}

impl Manager {
    /// A manager for `url`; its SQLite connections checkpoint in their commits unless
    /// `autocheckpoint` is false (another thread does it).
    pub fn new(
        url: DatabaseUrl,
        busy_timeout: Duration,
        create: Create,
        autocheckpoint: bool,
    ) -> Self {
        Manager {
            url,
            busy_timeout,
            create,
            autocheckpoint,
        }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConnection, StoreError> {
        #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
        let mut conn = open_connection(&self.url, self.busy_timeout, self.create)?;
        #[cfg(feature = "sqlite")]
        if let (DbConnection::Sqlite(c), false) = (&mut conn, self.autocheckpoint) {
            c.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        conn.ping().map_err(StoreError::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Opens one connection to `url` (creating a missing SQLite file); for SQLite sets the durability
/// and locking pragmas.
#[cfg(feature = "testing")]
pub fn connect(url: &DatabaseUrl, busy_timeout: Duration) -> Result<DbConnection, StoreError> {
    open_connection(url, busy_timeout, Create::IfMissing)
}

/// Opens one connection to `url`, creating a missing SQLite file only when `create` says so.
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
pub fn open_connection(
    url: &DatabaseUrl,
    busy_timeout: Duration,
    create: Create,
) -> Result<DbConnection, StoreError> {
    match url.backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&url.target)
                // libpq's message names host and port, never the password; it spans several
                // lines, which would break one-line logs and errors.
                .map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot connect to PostgreSQL: {}",
                        crate::error::one_line(&e.to_string())
                    ))
                })?;
            // Diesel prepares its statements once per connection. After five runs PostgreSQL may
            // switch one to a generic plan made while the tables were small, and keep it as they
            // grow: `event_id = ANY($1)` became a sequential scan that took most of the server's
            // time. A custom plan each time costs a fraction of a millisecond.
            conn.batch_execute("SET plan_cache_mode = force_custom_plan")?;
            Ok(DbConnection::Pg(conn))
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            if create == Create::Never && !sqlite_file_exists(&url.target) {
                return Err(StoreError::Missing(format!(
                    "no SQLite database at {}",
                    url.target
                )));
            }
            create_private(&url.target).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create SQLite database {}: {e}",
                    url.target
                ))
            })?;
            let mut conn = SqliteConnection::establish(&url.target).map_err(|e| {
                StoreError::Unavailable(format!("cannot open SQLite database: {e}"))
            })?;
            // busy_timeout first, so that switching to WAL waits on a concurrent opener. A
            // checkpoint every 10,000 WAL pages (about 40 MB) rather than SQLite's 1,000: the
            // index pages every batch rewrites are copied back once per checkpoint, and under load
            // the writer stalls less often (docs/PERFORMANCE.md).
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {};\
                 PRAGMA journal_mode = WAL;\
                 PRAGMA synchronous = FULL;\
                 PRAGMA temp_store = MEMORY;\
                 PRAGMA wal_autocheckpoint = 10000;\
                 PRAGMA foreign_keys = ON;",
                busy_timeout.as_millis()
            ))?;
            Ok(DbConnection::Sqlite(conn))
        }
        #[allow(unreachable_patterns)]
        other => Err(StoreError::InvalidUrl(format!(
            "this build of meterhook has no {other} support (the `{other}` cargo feature)"
        ))),
    }
}

/// Whether the SQLite database `path` names is there (in-memory and URI databases count as there:
/// SQLite resolves them).
#[cfg(feature = "sqlite")]
fn sqlite_file_exists(path: &str) -> bool {
    path == ":memory:" || path.starts_with("file:") || std::path::Path::new(path).is_file()
}

/// Creates a missing SQLite file readable and writable by its owner only: it holds locations and
/// user ids, and SQLite itself would create it 0644. SQLite gives the `-wal` and `-shm` files the
/// mode of the database file. An existing file keeps its mode.
#[cfg(all(unix, feature = "sqlite"))]
fn create_private(path: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path == ":memory:" || path.starts_with("file:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(all(not(unix), feature = "sqlite"))]
fn create_private(_path: &str) -> std::io::Result<()> {
    Ok(())
}

/// Key of the PostgreSQL advisory lock that serialises migrations across instances.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK: i64 = 0x6d65_7465_7268_6f6b; // "meterhok"

/// Applies every pending migration for the connection's backend; returns how many ran.
///
/// On PostgreSQL an advisory lock makes instances that start together take turns, so that only
/// one applies a migration (Diesel takes no lock of its own).
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let ran = match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let ran = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            ran
        }
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(ran)
}

/// The embedded migrations not yet applied to the connection's database, by name, in order.
///
/// Reads only: unlike Diesel's harness, it does not create the migrations table when it is
/// missing (a database without one has every migration pending).
pub fn pending_migrations(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    use diesel::migration::MigrationSource;
    use diesel::sql_types::Text;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        version: String,
    }
    let (table_query, backend) = match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => (
            "SELECT tablename AS version FROM pg_tables \
             WHERE schemaname = current_schema() AND tablename = '__diesel_schema_migrations'",
            Backend::Postgres,
        ),
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(_) => (
            "SELECT name AS version FROM sqlite_master \
             WHERE type = 'table' AND name = '__diesel_schema_migrations'",
            Backend::Sqlite,
        ),
    };
    let has_table = on_backend!(conn, |c| diesel::sql_query(table_query).load::<Row>(c))?;
    let applied: Vec<String> = if has_table.is_empty() {
        Vec::new()
    } else {
        on_backend!(conn, |c| diesel::sql_query(
            "SELECT version FROM __diesel_schema_migrations"
        )
        .load::<Row>(c))?
        .into_iter()
        .map(|r| r.version)
        .collect()
    };
    let source = migrations_of(backend)
        .ok_or_else(|| StoreError::Migration(format!("{backend} is not built in")))?;
    let embedded = MigrationSource::<ListingBackend>::migrations(&source)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(embedded
        .iter()
        .filter(|m| !applied.contains(&m.name().version().to_string()))
        .map(|m| m.name().to_string())
        .collect())
}

/// Reverts every applied migration; returns how many were reverted. Test support (the `testing`
/// feature): it drops every table.
#[cfg(feature = "testing")]
pub fn revert_all_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let reverted = match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(reverted.len())
}

/// The migration names embedded for `backend`, in order.
pub fn migration_names(backend: Backend) -> Vec<String> {
    use diesel::migration::MigrationSource;
    let Some(source) = migrations_of(backend) else {
        return Vec::new();
    };
    MigrationSource::<ListingBackend>::migrations(&source)
        .map(|ms| ms.iter().map(|m| m.name().to_string()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_scheme() {
        let cases = [
            (
                "sqlite://meterhook.db",
                Some((Backend::Sqlite, "meterhook.db")),
            ),
            (
                "sqlite:///var/lib/m.db",
                Some((Backend::Sqlite, "/var/lib/m.db")),
            ),
            ("sqlite:m.db", Some((Backend::Sqlite, "m.db"))),
            ("sqlite://data/m", Some((Backend::Sqlite, "data/m"))),
            ("./data/m.db", Some((Backend::Sqlite, "./data/m.db"))),
            (
                " /var/lib/m.sqlite3\n",
                Some((Backend::Sqlite, "/var/lib/m.sqlite3")),
            ),
            ("m.SQLITE", Some((Backend::Sqlite, "m.SQLITE"))),
            (
                "postgres://u:p@h/db",
                Some((Backend::Postgres, "postgres://u:p@h/db")),
            ),
            (
                "postgresql:///db?host=/tmp",
                Some((Backend::Postgres, "postgresql:///db?host=/tmp")),
            ),
            ("", None),
            ("sqlite://", None),
            ("mysql://h/db", None),
            ("host=db password=hunter2 dbname=x", None),
            ("dbname=m.db", None),
            ("meterhook", None),
            ("postgres:/h/db", None),
            ("localhost:5432/meterhook", None),
        ];
        for (input, expected) in cases {
            let got = DatabaseUrl::parse(input)
                .ok()
                .map(|u| (u.backend(), u.expose().to_owned()));
            assert_eq!(got, expected.map(|(b, t)| (b, t.to_owned())), "{input:?}");
        }
    }

    #[test]
    fn passwords_never_shown() {
        let cases = [
            (
                "postgres://meter:s3cret@db:5432/m",
                "postgres://meter:[redacted]@db:5432/m",
            ),
            ("postgres://meter@db/m", "postgres://meter@db/m"),
            (
                "postgresql://db/m?user=u&password=s3cret",
                "postgresql://db/m?user=u&password=[redacted]",
            ),
            (
                "postgres://a:b:c@h/m?sslmode=require",
                "postgres://a:[redacted]@h/m?sslmode=require",
            ),
            // Unencoded characters that end other parts of a URL.
            ("postgres://u:s3cret?x@h/m", "postgres://u:[redacted]@h/m"),
            ("postgres://u:s3/cret@h/m", "postgres://u:[redacted]@h/m"),
            ("postgres://u:s3@cret@h/m", "postgres://u:[redacted]@h/m"),
            ("postgres://u:s3cret#x@h/m", "postgres://u:[redacted]@h/m"),
        ];
        for (input, expected) in cases {
            let url = DatabaseUrl::parse(input).expect("valid");
            assert_eq!(url.redacted(), expected);
            assert!(!format!("{url:?}").contains("s3cret"));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_new_database_and_its_wal_and_shm_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("fresh.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        let mut conn = connect(&url, Duration::from_secs(1)).expect("open");
        run_migrations(&mut conn).expect("migrate");
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).expect(&file).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_database_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("shared.db");
        std::fs::write(&path, b"").expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        connect(&url, Duration::from_secs(1)).expect("open");
        let mode = std::fs::metadata(&path).expect("db").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn refusals_never_repeat_the_value() {
        for input in [
            "host=db password=hunter2 dbname=x",
            "user=u password=hunter2",
            "u:hunter2@db/x",
            "u:hunter2@db://x",
            "sqlite://u:hunter2@db://x",
        ] {
            let err = DatabaseUrl::parse(input).expect_err(input).to_string();
            assert!(!err.contains("hunter2"), "{input}: {err}");
        }
        let err = DatabaseUrl::parse("host=db password=hunter2")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("key=value"), "{err}");
    }
}
