//! SQLite checkpoints off the writers' path.
//!
//! In WAL mode a commit appends the pages it changed to the WAL, and a checkpoint copies them back
//! into the database file. SQLite does that inside the commit that crosses its threshold, so one
//! batch in every few hundred pays for copying thousands of pages while its deliveries wait for
//! their answers. With [`crate::PoolOptions::background_checkpoints`] the pool's connections never
//! checkpoint (`wal_autocheckpoint = 0`) and a thread of the store's own does, on its own
//! connection (so on the other core):
//! - a PASSIVE checkpoint every [`INTERVAL`]: it copies what is committed, never waits for a
//!   writer, and no writer waits for it;
//! - once the WAL holds more than [`RESTART_FRAMES`] frames, the thread passes again until little
//!   is new (`background_pass`), and the next writer runs one PASSIVE checkpoint itself before it
//!   begins ([`Checkpointer::before_write`]). Under constant load the thread's checkpoints never
//!   end at a moment when everything is copied, so the WAL would never start over and would grow
//!   without bound. The writer copies only what came in during the thread's last pass, between
//!   two of its transactions (after the last one's answers went out), so its next transaction
//!   starts the WAL from the beginning. (A RESTART checkpoint from the thread would do the same,
//!   but waiting for the writer through SQLite's busy handler, which sleeps in steps of
//!   milliseconds, and holding the writer back meanwhile.)
//!
//! The thread ends when the last handle on the store is dropped. A database that cannot be
//! opened (not created yet, or gone) is tried again at the next interval; the pool's connections
//! report such errors to their callers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::QueryableByName;
#[cfg(feature = "sqlite")]
use diesel::RunQueryDsl;
use log::warn;

use crate::db::{open_connection, Create, DatabaseUrl, DbConnection};

/// How often the background thread checkpoints: often enough that what is left for a writer to
/// copy is a few batches' worth.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// WAL frames (pages) above which a writer finishes the copy so that the WAL starts over: 16,384
/// frames of 4 KiB, 64 MiB.
pub const RESTART_FRAMES: i64 = 16_384;

/// New frames since the pass before, under which the thread stops passing back to back and leaves
/// the rest to the writer: about two batches' pages.
pub const TAIL_FRAMES: i64 = 120;

/// Passes back to back at most: a WAL that grows faster than a pass copies it is left to the
/// writer all the same.
pub const MAX_PASSES: u32 = 20;

/// The running thread; dropping it stops the thread and waits for it.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The WAL's length in frames at the thread's last checkpoint.
    wal_frames: Arc<AtomicI64>,
}

impl Checkpointer {
    /// Called by a writer before it begins a transaction on `conn`: when the WAL has grown past
    /// [`RESTART_FRAMES`], copies the rest of it, so that this transaction starts it over. A
    /// failure only means the WAL starts over later; the write goes on.
    pub(crate) fn before_write(&self, conn: &mut DbConnection) {
        if self.wal_frames.load(Ordering::Relaxed) <= RESTART_FRAMES {
            return;
        }
        // Once, until the thread measures the WAL again.
        self.wal_frames.store(0, Ordering::Relaxed);
        if let Err(e) = checkpoint(conn, "PASSIVE") {
            warn!("checkpoint before a write failed: {e}");
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts checkpointing the SQLite database at `url` in the background.
pub(crate) fn start(url: &DatabaseUrl, busy_timeout: Duration) -> std::io::Result<Checkpointer> {
    let (stop, stopped) = channel::<()>();
    let url = url.clone();
    let wal_frames = Arc::new(AtomicI64::new(0));
    let measured = Arc::clone(&wal_frames);
    let thread = std::thread::Builder::new()
        .name("meterhook-checkpoint".into())
        .spawn(move || {
            let mut conn: Option<DbConnection> = None;
            let mut last_error = String::new();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                let result = match conn.as_mut() {
                    Some(c) => background_pass(c),
                    None => open_connection(&url, busy_timeout, Create::Never).and_then(|mut c| {
                        let r = background_pass(&mut c);
                        conn = Some(c);
                        r
                    }),
                };
                match result {
                    Ok(done) => {
                        measured.store(done.log, Ordering::Relaxed);
                        last_error.clear();
                    }
                    Err(e) => {
                        // Once per kind of failure, not every 100 ms.
                        let message = e.to_string();
                        if message != last_error {
                            warn!("background checkpoint failed: {message}");
                            last_error = message;
                        }
                        conn = None;
                    }
                }
            }
        })?;
    Ok(Checkpointer {
        stop: Some(stop),
        thread: Some(thread),
        wal_frames,
    })
}

/// The thread's checkpoint: one PASSIVE checkpoint; once the WAL is past [`RESTART_FRAMES`], more
/// passes back to back (at most [`MAX_PASSES`]) until one starts fewer than [`TAIL_FRAMES`] frames
/// after the one before. A pass copies only what was committed when it began, and under load as
/// much again comes in while it copies; each pass is shorter than the last, so what the writer is
/// left to copy before the WAL starts over ([`Checkpointer::before_write`]) is what came in during
/// a short one. (With a single pass the writer's copy took 5-20 ms, the p99 of the whole service.)
fn background_pass(conn: &mut DbConnection) -> crate::Result<Checkpointed> {
    let mut done = checkpoint(conn, "PASSIVE")?;
    let mut passes = 1;
    while done.log > RESTART_FRAMES && passes < MAX_PASSES {
        let before = done.log;
        done = checkpoint(conn, "PASSIVE")?;
        passes += 1;
        if done.log - before < TAIL_FRAMES {
            break;
        }
    }
    Ok(done)
}

/// What `PRAGMA wal_checkpoint` answers (its other two columns are not needed).
#[derive(Debug, QueryableByName)]
pub(crate) struct Checkpointed {
    /// Frames in the WAL.
    #[diesel(sql_type = BigInt)]
    pub log: i64,
}

/// Runs `PRAGMA wal_checkpoint(mode)` on a SQLite connection (PostgreSQL has nothing to do).
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
pub(crate) fn checkpoint(conn: &mut DbConnection, mode: &str) -> crate::Result<Checkpointed> {
    match conn {
        #[cfg(feature = "sqlite")]
        DbConnection::Sqlite(c) => Ok(diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})"))
            .get_result::<Checkpointed>(c)?),
        #[allow(unreachable_patterns)]
        _ => Ok(Checkpointed { log: 0 }),
    }
}

impl crate::Store {
    /// SQLite: copies the WAL's committed pages into the database file now (a PASSIVE checkpoint,
    /// which waits for nobody) and returns the WAL's length in frames. PostgreSQL: nothing, 0.
    pub fn checkpoint(&self) -> crate::Result<i64> {
        let mut conn = self.conn()?;
        Ok(checkpoint(&mut conn, "PASSIVE")?.log)
    }
}
