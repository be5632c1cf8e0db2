//! Reads: a small pool of read-only connections, used only from tokio's blocking threads
//! (`spawn_blocking`), never on the runtime's worker threads. In WAL mode they read while
//! the writer writes.

use crate::error::HttpError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Idle connections kept for reuse.
const KEEP: usize = 4;

/// The pool of reader connections.
pub struct Readers {
    dir: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// A pool on the database in `dir` (created by the writer beforehand).
    pub fn new(dir: PathBuf) -> Arc<Self> {
        Arc::new(Readers {
            dir,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` with a connection on a blocking thread.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, HttpError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let taken = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match taken {
                Some(c) => c,
                None => crate::db::open_reader(&pool.dir)?,
            };
            let out = f(&mut conn);
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < KEEP {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| {
            HttpError::internal(
                "reader failed",
                format!("a database read panicked or was cancelled ({e}); see the server's log"),
            )
        })?
        .map_err(HttpError::from)
    }
}
