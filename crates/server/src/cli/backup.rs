//! `meterhook backup PATH`: a consistent copy of the SQLite database while the service runs.

use std::path::Path;

use meterhook_store::Store;

use super::CliError;

/// Runs `meterhook backup PATH`.
pub fn run(store: &Store, path: &Path) -> Result<(), CliError> {
    store.backup_to(path).map_err(|e| match e {
        meterhook_store::StoreError::Invalid(_) => {
            CliError::new(format!("{e} (docs/OPERATIONS.md, \"Backup and restore\")"))
        }
        e => CliError::new(format!("backup failed: {e}")),
    })?;
    println!("backed up {} to {}", store.url().redacted(), path.display());
    Ok(())
}
