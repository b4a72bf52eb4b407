//! The embedded default: one SQLite file in the data dir.
//!
//! Writes go through one writer ([`crate::writer`], on a thread of its own) and the only
//! writing connection ([`crate::sqlite_writer`]). It takes every request waiting in its
//! queue, plans them in memory, writes them in one transaction and commits once (group
//! commit): many publishers posting one activity each share one fsync. Nobody is answered
//! before the commit. Reads use a pool of read-only connections (WAL mode); exports open a
//! read-only connection each ([`crate::export`]). One driver throughout: sqlx.

mod export;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sitetrail_core::{ActivityFilter, Audience, Page};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, Sqlite, SqliteConnection};
use tokio::sync::{broadcast, oneshot};

use crate::export::SqliteReaders;
use crate::writer::SqliteWriter;
use sitetrail_store::backend::{Backend, Shared};
use sitetrail_store::rows::{self};
use sitetrail_store::verify::HeadQuery;
use sitetrail_store::writer::WriterHandle;
use sitetrail_store::{ExportColumns, ExportStream};
use sitetrail_store::{Scope, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct SqliteStore {
    /// The reads, the writer and the caches every backend shares.
    shared: Shared<Sqlite>,
    /// Exports, each on a read-only connection of its own (see [`crate::export`]).
    exports: SqliteReaders,
    /// Dropping the store stops its checkpoints.
    _stop_checkpoints: oneshot::Sender<()>,
}

/// Copies the WAL into the database file every [`WalPolicy::checkpoint_every`], without
/// blocking the writer or the readers (PASSIVE), then once more when the store is dropped. A
/// passive checkpoint never makes the WAL start afresh while writes keep coming, so under
/// sustained ingest the WAL grew without bound (to the disk's end during the 10M-activity
/// benchmark).
/// Once it holds more than `restart_frames`, this task asks the writer to restart it between
/// two groups (`restart_wal`). It cannot do that itself: a RESTART checkpoint must hold the
/// write lock, and the writer, committing group after group, takes it back before a waiting
/// checkpointer ever sees it free (the 10M-activity load grew the WAL to 1.3 GB that way).
async fn checkpoint(
    mut conn: SqliteConnection,
    mut stop: oneshot::Receiver<()>,
    policy: WalPolicy,
    restart_wal: Arc<AtomicBool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(policy.checkpoint_every) => false,
        };
        let passive: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await;
        match passive {
            Ok((_, frames, _)) if frames > policy.restart_frames => {
                restart_wal.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = ?e, "a WAL checkpoint failed; the next one retries");
            }
        }
        if stopping {
            return;
        }
    }
}

/// How the store keeps SQLite's WAL in check while writes keep coming.
#[derive(Clone, Copy, Debug)]
pub struct WalPolicy {
    /// How often the WAL is copied into the database file (a PASSIVE checkpoint).
    pub checkpoint_every: Duration,
    /// Past this many frames the writer restarts the WAL between two groups; its file is
    /// cut back to as many pages' worth when it starts afresh.
    pub restart_frames: i64,
}

impl Default for WalPolicy {
    /// Every 4 s, restarted past 512 MiB of 4 KiB pages. Sustained ingest writes each page it
    /// dirties into the WAL at every commit and into the database at every checkpoint: the
    /// fewer checkpoints, the more of a page's many versions one copy covers, and the fewer
    /// restarts stall the writer. The price is a WAL file of up to about 1 GB on disk under
    /// sustained ingest, and as much for SQLite to read back after a crash.
    fn default() -> Self {
        WalPolicy {
            checkpoint_every: Duration::from_secs(4),
            restart_frames: 131_072,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with_wal_policy(path, WalPolicy::default()).await
    }

    /// [`SqliteStore::open`] with its own WAL policy (tests use a small limit).
    pub async fn open_with_wal_policy(path: &Path, policy: WalPolicy) -> anyhow::Result<Self> {
        // Private from its first byte: SQLite gives the WAL and shared-memory files the
        // database file's mode.
        sitetrail_store::private::touch(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before anyone is answered (invariant 6).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        // Only the writer checkpoints (see `sqlite_writer`): in the background, never inside a
        // commit.
        let writing = options.clone().pragma("wal_autocheckpoint", "0");
        let mut conn = SqliteConnection::connect_with(&writing)
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .context("migrating the SQLite database")?;
        conn.close().await?;
        let restart_wal = Arc::new(AtomicBool::new(false));
        // When the WAL starts afresh, its file is cut back to as many pages' worth.
        // A group's INSERT returns a row per activity: handed over without waiting.
        let writer = SqliteWriter::new(
            writing
                .clone()
                .pragma(
                    "journal_size_limit",
                    (policy.restart_frames * 4096).to_string(),
                )
                .row_buffer_size(4096),
            restart_wal.clone(),
        );
        // sqlx runs each connection on a thread of its own and hands rows over through a
        // channel; each time one side waits for the other costs a wakeup, which on a busy
        // machine costs milliseconds. A page (at most 201 rows) goes over in one go, and a
        // pooled connection is not pinged before it is lent.
        let read_only = options.clone().read_only(true).row_buffer_size(1024);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(read_only.clone())
            .await
            .context("opening read connections")?;
        // A checkpoint under sustained writes takes a second or more, as it should: not a
        // slow statement to warn about.
        let checkpoints =
            SqliteConnection::connect_with(&writing.clone().disable_statement_logging())
                .await
                .context("opening the checkpoint connection")?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(checkpoint(checkpoints, stopped, policy, restart_wal));
        let (commits, _) = broadcast::channel(1024);
        let writer = WriterHandle::spawn_on_own_runtime(writer, commits.clone())
            .context("starting the writer's thread")?;
        Ok(SqliteStore {
            shared: Shared::new(read, writer, commits),
            exports: SqliteReaders::new(read_only),
            _stop_checkpoints: stop,
        })
    }

    /// SQLite's plan for a list query, one line per step: lets tests prove a page comes
    /// from an index without sorting.
    pub async fn explain_list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Vec<String>> {
        let mut q =
            rows::list_query::<Sqlite>("EXPLAIN QUERY PLAN SELECT ", scope, audience, filter, page);
        let rows = q.build().fetch_all(self.shared.read()).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("detail").map_err(StoreError::from))
            .collect()
    }
}

#[async_trait]
impl Backend for SqliteStore {
    type Db = Sqlite;
    const HEAD: HeadQuery = sitetrail_store::verify::HEAD_ROW;

    fn shared(&self) -> &Shared<Sqlite> {
        &self.shared
    }

    /// A read transaction: the chain, the checkpoints and the activities as of one moment,
    /// whatever the writer does meanwhile.
    async fn snapshot(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.shared.read().begin().await?)
    }

    async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        columns: ExportColumns,
    ) -> StoreResult<ExportStream> {
        self.exports.export(scope, audience, filter, columns).await
    }
}
