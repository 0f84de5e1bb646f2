//! Consistent copies of a SQLite database while it is in use.

use std::path::Path;

use diesel::connection::SimpleConnection;

use crate::{Backend, Result, Store, StoreError};

impl Store {
    /// Writes a consistent copy of the SQLite database to `path` with `VACUUM INTO`, while other
    /// connections go on reading and writing: the copy is one transaction's snapshot, WAL
    /// included (a plain copy of the file may miss the WAL, or tear a page). `path` must not
    /// exist; it is created readable and writable by its owner only, like the database, and the
    /// copy is always written exactly there (SQLite is handed an absolute path, which it never
    /// reads as a `file:` URI).
    ///
    /// PostgreSQL has its own tools (`pg_dump`): [`StoreError::Invalid`].
    pub fn backup_to(&self, path: &Path) -> Result<()> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::Invalid(
                "backup copies SQLite databases; back up PostgreSQL with pg_dump".into(),
            ));
        }
        let shown = path.display();
        // SQLite reads a name that starts with `file:` as a URI (`file:copy.db` wrote `copy.db`
        // and left an empty `file:copy.db`); an absolute path never starts with it.
        let absolute = std::path::absolute(path)
            .map_err(|e| StoreError::Invalid(format!("cannot resolve {shown}: {e}")))?;
        let target = absolute
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("{shown} is not a UTF-8 path")))?;
        create_empty_private(&absolute).map_err(|e| {
            StoreError::Invalid(if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!("{shown} already exists; backup never overwrites")
            } else {
                format!("cannot create {shown}: {e}")
            })
        })?;
        // VACUUM INTO writes into an existing file only when it is empty: the one just created.
        let copied = self.conn().and_then(|mut conn| {
            conn.batch_execute(&format!("VACUUM INTO '{}'", target.replace('\'', "''")))
                .map_err(StoreError::from)
        });
        if copied.is_err() {
            let _ = std::fs::remove_file(&absolute);
        }
        copied
    }
}

#[cfg(unix)]
fn create_empty_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_empty_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}
