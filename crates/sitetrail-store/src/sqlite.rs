//! The embedded default: one SQLite file in the data dir.
//!
//! Writes go through one writer ([`crate::writer`], on a thread of its own) and the only
//! writing connection ([`crate::sqlite_writer`]). It takes every request waiting in its
//! queue, plans them in memory, writes them in one transaction and commits once (group
//! commit): many publishers posting one activity each share one fsync. Nobody is answered
//! before the commit. Reads use a pool of read-only connections (WAL mode); exports open a
//! read-only connection each ([`crate::export`]). One driver throughout: sqlx.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Audience, Colour, Ending, NewActivity, Page,
    Roster, Site, SiteId, StoredActivity,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{broadcast, oneshot};

use crate::chain::{AccountReport, CheckpointBody, CheckpointKey};
use crate::export::SqliteReaders;
use crate::keys::{self, ApiKey, KeyCache, KeyCheck, StoredKey};
use crate::record;
use crate::roster::{self, RosterEntry};
use crate::rows::{self, ActivityRow, COLS, SITE_COLS, SiteRow};
use crate::sqlite_writer::SqliteWriter;
use crate::writer::{Done, Work, WriterHandle};
use crate::{
    Access, Change, ChangeKind, Listing, PruneRequest, Pruned, Recorded, Scope, Store, StoreError,
    StoreResult,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    /// Exports, each on a read-only connection of its own (see [`crate::export`]).
    exports: SqliteReaders,
    writer: WriterHandle,
    keys: KeyCache,
    roster_written: roster::Written,
    rosters: roster::RosterCache,
    commits: broadcast::Sender<i64>,
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
        crate::private::touch(path)?;
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
            read,
            exports: SqliteReaders::new(read_only),
            writer,
            keys: KeyCache::default(),
            roster_written: roster::Written::default(),
            rosters: roster::RosterCache::default(),
            commits,
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
        let rows = q.build().fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("detail").map_err(StoreError::from))
            .collect()
    }
}

async fn select_by_id<'c, E>(exec: E, id: &ActivityId) -> StoreResult<Option<StoredActivity>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
    q.push(COLS)
        .push(" FROM activities WHERE id = ")
        .push_bind(id.as_str());
    let row: Option<ActivityRow> = q.build_query_as().fetch_optional(exec).await?;
    row.map(ActivityRow::decode).transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_account(&self, account: &Account) -> StoreResult<()> {
        self.writer
            .write(Work::UpsertAccount(account.clone()))
            .await
            .map(|_| ())
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT id, name, partner, settings FROM accounts WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| -> StoreResult<Account> {
            let settings: String = r.try_get("settings")?;
            let settings: serde_json::Value =
                serde_json::from_str(&settings).map_err(anyhow::Error::from)?;
            Ok(Account {
                id: id.clone(),
                name: r.try_get("name")?,
                partner: r.try_get("partner")?,
                partner_colour: settings
                    .get("partner_colour")
                    .and_then(|c| c.as_str())
                    .and_then(|c| Colour::parse(c).ok()),
            })
        })
        .transpose()
    }

    async fn upsert_site(&self, site: &Site) -> StoreResult<()> {
        self.writer
            .write(Work::UpsertSite(site.clone()))
            .await
            .map(|_| ())
    }

    async fn site(&self, id: &SiteId) -> StoreResult<Option<Site>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(SITE_COLS)
            .push(" FROM sites WHERE id = ")
            .push_bind(id.as_str());
        let row: Option<SiteRow> = q.build_query_as().fetch_optional(&self.read).await?;
        row.map(SiteRow::decode).transpose()
    }

    async fn sites_of(&self, account: &AccountId) -> StoreResult<Vec<Site>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(SITE_COLS)
            .push(" FROM sites WHERE account_id = ")
            .push_bind(account.as_str())
            .push(" ORDER BY name, id");
        let found: Vec<SiteRow> = q.build_query_as().fetch_all(&self.read).await?;
        found.into_iter().map(SiteRow::decode).collect()
    }

    async fn hosted_sites(&self) -> StoreResult<Vec<Site>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(SITE_COLS)
            .push(" FROM sites WHERE live_docroot IS NOT NULL ORDER BY id");
        let found: Vec<SiteRow> = q.build_query_as().fetch_all(&self.read).await?;
        found.into_iter().map(SiteRow::decode).collect()
    }

    async fn record(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<Recorded>> {
        let support = self
            .roster_written
            .unwritten(roster::support_actors(&batch));
        if !support.is_empty() {
            self.add_to_roster(support).await?;
        }
        match self
            .writer
            .write(Work::Record(record::prepare_all(batch)?))
            .await?
        {
            Done::Recorded(r) => Ok(r),
            _ => unreachable!("record answers with Recorded"),
        }
    }

    async fn end(&self, id: &ActivityId, ending: Ending) -> StoreResult<StoredActivity> {
        match self.writer.write(Work::End(id.clone(), ending)).await? {
            Done::Ended(a) => Ok(*a),
            _ => unreachable!("end answers with Ended"),
        }
    }

    async fn activity(&self, id: &ActivityId) -> StoreResult<Option<StoredActivity>> {
        select_by_id(&self.read, id).await
    }

    async fn list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Listing> {
        let mut q = rows::list_query::<Sqlite>("SELECT ", scope, audience, filter, page);
        let found: Vec<ActivityRow> = q.build_query_as().fetch_all(&self.read).await?;
        let items = found
            .into_iter()
            .map(ActivityRow::decode)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows::listing(items, page))
    }

    async fn changes_after(
        &self,
        change_no: i64,
        site: Option<&SiteId>,
        limit: u32,
    ) -> StoreResult<Vec<Change>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(COLS)
            .push(" FROM activities WHERE change_no > ")
            .push_bind(change_no);
        if let Some(site) = site {
            q.push(" AND site_id = ").push_bind(site.as_str());
        }
        q.push(" ORDER BY change_no LIMIT ")
            .push_bind(i64::from(limit));
        let found: Vec<ActivityRow> = q.build_query_as().fetch_all(&self.read).await?;
        found
            .into_iter()
            .map(|r| {
                let change_no = r.change_no;
                let activity = r.decode()?;
                Ok(Change {
                    change_no,
                    kind: ChangeKind::of(&activity),
                    activity,
                })
            })
            .collect()
    }

    async fn last_change_no(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change'")
                .fetch_one(&self.read)
                .await?,
        )
    }

    fn subscribe_commits(&self) -> broadcast::Receiver<i64> {
        self.commits.subscribe()
    }

    async fn account_ids(&self) -> StoreResult<Vec<AccountId>> {
        let ids: Vec<String> = sqlx::query_scalar(crate::rows::ACCOUNT_IDS)
            .fetch_all(&self.read)
            .await?;
        ids.iter()
            .map(|i| AccountId::parse(i).map_err(|e| anyhow::anyhow!("{e}").into()))
            .collect()
    }

    async fn set_retention_days(&self, account: &AccountId, days: Option<u32>) -> StoreResult<()> {
        self.writer
            .write(Work::SetRetention(account.clone(), days))
            .await
            .map(|_| ())
    }

    async fn retention_days(&self, account: &AccountId) -> StoreResult<u32> {
        let days: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retention_days FROM accounts WHERE id = ?")
                .bind(account.as_str())
                .fetch_optional(&self.read)
                .await?;
        Ok(record::retention(days.flatten()))
    }

    async fn prune(&self, request: PruneRequest) -> StoreResult<Pruned> {
        match self.writer.write(Work::Prune(request)).await? {
            Done::Pruned(p) => Ok(p),
            _ => unreachable!("prune answers with Pruned"),
        }
    }

    async fn checkpoint(&self, key: &CheckpointKey) -> StoreResult<Vec<CheckpointBody>> {
        match self.writer.write(Work::Checkpoint(key.clone())).await? {
            Done::Checkpointed(c) => Ok(c),
            _ => unreachable!("checkpoint answers with Checkpointed"),
        }
    }

    async fn verify(
        &self,
        account: Option<&AccountId>,
        trusted: &[[u8; 32]],
    ) -> StoreResult<Vec<AccountReport>> {
        let accounts = match account {
            Some(a) => vec![a.clone()],
            None => self.account_ids().await?,
        };
        // One read transaction: the chain, the checkpoints and the activities as of one
        // moment, whatever the writer does meanwhile.
        let mut tx = self.read.begin().await?;
        let mut reports = Vec::with_capacity(accounts.len());
        for account in accounts {
            reports.push(
                crate::verify::account::<Sqlite>(
                    &mut tx,
                    &account,
                    trusted,
                    crate::verify::HEAD_ROW,
                )
                .await?,
            );
        }
        tx.rollback().await?;
        Ok(reports)
    }

    async fn add_to_roster(&self, people: Vec<RosterEntry>) -> StoreResult<()> {
        if people.is_empty() {
            return Ok(());
        }
        self.writer.write(Work::AddToRoster(people.clone())).await?;
        self.roster_written.remember(&people);
        Ok(())
    }

    async fn roster(&self, account: &AccountId) -> StoreResult<Arc<Roster>> {
        let version: roster::RosterVersion = sqlx::query_as(
            "SELECT (SELECT partner FROM accounts WHERE id = ?1) AS partner, \
                    count(*) AS rows, coalesce(max(added_at), 0) AS newest \
             FROM support_roster WHERE account_id IN ( \
               SELECT ?1 UNION \
               SELECT id FROM accounts WHERE partner = \
                 (SELECT partner FROM accounts WHERE id = ?1))",
        )
        .bind(account.as_str())
        .fetch_one(&self.read)
        .await?;
        if let Some(roster) = self.rosters.get(account, &version) {
            return Ok(roster);
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT email, name FROM support_roster WHERE account_id IN ( \
               SELECT ?1 UNION \
               SELECT id FROM accounts WHERE partner = \
                 (SELECT partner FROM accounts WHERE id = ?1)) \
             LIMIT ?2",
        )
        .bind(account.as_str())
        .bind(roster::MAX_ROSTER + 1)
        .fetch_all(&self.read)
        .await?;
        let roster = Arc::new(roster::from_rows(rows));
        self.rosters.put(account, version, roster.clone());
        Ok(roster)
    }

    async fn record_access(&self, batch: Vec<Access>) -> StoreResult<()> {
        self.writer
            .write(Work::RecordAccess(batch))
            .await
            .map(|_| ())
    }

    async fn accesses(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Access>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(rows::ACCESS_COLS)
            .push(" FROM access_log WHERE account_id = ")
            .push_bind(account.as_str());
        if let Some(site) = site {
            q.push(" AND site_id = ").push_bind(site.as_str());
        }
        if let Some(before) = before {
            q.push(" AND seq < ").push_bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        let found: Vec<rows::AccessRow> = q.build_query_as().fetch_all(&self.read).await?;
        found.into_iter().map(rows::AccessRow::decode).collect()
    }

    async fn create_api_key(&self, name: &str) -> StoreResult<ApiKey> {
        sitetrail_core::site::check_name("name", name)?;
        let key = ApiKey::generate(name)?;
        let shown = ApiKey {
            id: key.id.clone(),
            name: key.name.clone(),
            secret: key.secret.clone(),
        };
        self.writer.write(Work::CreateKey(key)).await?;
        Ok(shown)
    }

    async fn check_api_key(&self, presented: &str) -> StoreResult<KeyCheck> {
        let Some((id, secret)) = keys::split(presented) else {
            return Ok(KeyCheck::Invalid);
        };
        let stored = match self.keys.get(id) {
            Some(k) => Some(k),
            None => {
                let row: Option<(String, Vec<u8>)> =
                    sqlx::query_as("SELECT name, secret_sha256 FROM api_keys WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&self.read)
                        .await?;
                let stored = row.map(|(name, secret_sha256)| StoredKey {
                    name,
                    secret_sha256,
                });
                if let Some(k) = &stored {
                    self.keys.put(id, k.clone());
                }
                stored
            }
        };
        Ok(keys::check(id, secret, stored.as_ref()))
    }

    async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        columns: crate::ExportColumns,
    ) -> StoreResult<crate::ExportStream> {
        self.exports.export(scope, audience, filter, columns).await
    }
}
