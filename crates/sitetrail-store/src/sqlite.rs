//! The embedded default: one SQLite file in the data dir.
//!
//! Writes go through one writer task that owns the only writing connection
//! ([`crate::writer`]). It takes every request waiting in its queue, applies them in one
//! transaction (a request that could fail half-way, a batch of several activities, in a
//! savepoint of its own) and commits once (group commit): many publishers posting one
//! activity each share one fsync. Nobody is answered before the commit. Reads use a pool of
//! read-only connections (WAL mode).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Audience, Colour, Email, Ending, NewActivity,
    Page, Site, SiteId, StoredActivity, Timestamp,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{broadcast, oneshot};

use crate::chain::{self, AccountReport, Chains, CheckpointBody, CheckpointKey};
use crate::keys::{self, ApiKey, KeyCache, KeyCheck, StoredKey};
use crate::plan::Plan;
use crate::record::{self, Rendered, SearchText};
use crate::rows::{self, ActivityRow, COLS, SITE_COLS, SiteRow};
use crate::writer::{Done, GroupOutcome, GroupWriter, Work, WriterHandle};
use crate::{
    Access, Change, ChangeKind, Listing, PruneRequest, Pruned, Recorded, Scope, Store, StoreError,
    StoreResult,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    writer: WriterHandle,
    keys: KeyCache,
    commits: broadcast::Sender<i64>,
    /// Dropping the store stops its checkpoints.
    _stop_checkpoints: oneshot::Sender<()>,
}

/// Copies the WAL into the database file every [`CHECKPOINT_EVERY`], without blocking the
/// writer or the readers (PASSIVE), then once more when the store is dropped.
async fn checkpoint(mut conn: SqliteConnection, mut stop: oneshot::Receiver<()>) {
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => false,
        };
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = ?e, "a WAL checkpoint failed; the next one retries");
        }
        if stopping {
            return;
        }
    }
}

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
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
        // The writer never checkpoints: a commit that crossed the autocheckpoint threshold
        // would copy the WAL into the database file and fsync it before anyone in its group is
        // answered. A task of its own checkpoints in the background instead.
        let writing = options.clone().pragma("wal_autocheckpoint", "0");
        let mut conn = SqliteConnection::connect_with(&writing)
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .context("migrating the SQLite database")?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.clone().read_only(true))
            .await
            .context("opening read connections")?;
        let checkpoints = SqliteConnection::connect_with(&writing)
            .await
            .context("opening the checkpoint connection")?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(checkpoint(checkpoints, stopped));
        let (commits, _) = broadcast::channel(1024);
        let writer = WriterHandle::spawn(
            SqliteWriter {
                conn,
                sites: HashMap::new(),
            },
            commits.clone(),
        );
        Ok(SqliteStore {
            read,
            writer,
            keys: KeyCache::default(),
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

struct SqliteWriter {
    conn: SqliteConnection,
    /// Which account each site belongs to (a site never moves).
    sites: HashMap<SiteId, AccountId>,
}

impl GroupWriter for SqliteWriter {
    async fn apply_group(&mut self, group: &[Work]) -> anyhow::Result<GroupOutcome> {
        let now = Timestamp::now();
        let conn = &mut self.conn;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        // The write lock is ours until COMMIT: read the counter and the chain heads once
        // (another process may have written the file since the last group), plan the group
        // in memory, write it in a few statements, commit once.
        let start: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change'")
            .fetch_one(&mut *conn)
            .await?;
        let mut plan = Plan::new(start, std::mem::take(&mut self.sites));
        prefetch(conn, &mut plan, group).await?;
        let mut results = Vec::with_capacity(group.len());
        let mut checkpoints = Vec::new();
        for (i, work) in group.iter().enumerate() {
            let r = match work {
                Work::Record(batch) => plan.record(batch),
                Work::End(id, ending) => plan.end(id, ending, now),
                Work::Prune(request) => prune(conn, &mut plan, request, now).await,
                // Applied once the group's own links are written, so it seals them too.
                Work::Checkpoint(key) => {
                    checkpoints.push((i, key));
                    Ok(Done::Unit)
                }
                other => apply(conn, &mut plan.owners, other, now).await,
            };
            // A database failure inside one request fails the whole group, so that nothing
            // is half-applied and nobody is told "written" by a group that did not commit.
            if let Err(StoreError::Internal(e)) = &r {
                anyhow::bail!("{e:#}");
            }
            results.push(r);
        }
        let last_change = flush(conn, &mut plan, &mut results).await?;
        for (i, key) in checkpoints {
            results[i] = Ok(Done::Checkpointed(sign_checkpoints(conn, key).await?));
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        self.sites = plan.owners;
        Ok((results, last_change))
    }

    async fn recover(&mut self) {
        self.sites.clear();
        let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
    }
}

/// Binds per statement: SQLite takes at most 32,766.
const MAX_BINDS: usize = 30_000;

/// Reads every activity the group names, the owner of every site it records on that is not
/// cached, and the chain heads of the accounts it may append to.
async fn prefetch(
    conn: &mut SqliteConnection,
    plan: &mut Plan,
    group: &[Work],
) -> anyhow::Result<()> {
    let (ids, sites) = plan.wanted(group);
    for chunk in ids.chunks(MAX_BINDS) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(COLS)
            .push(", request_sha256 FROM activities WHERE id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        let found: Vec<rows::Prefetched> = q.build_query_as().fetch_all(&mut *conn).await?;
        for p in found {
            let change_no = p.row.change_no;
            plan.found(p.row.decode()?, p.request_sha256, change_no);
        }
    }
    for chunk in sites.chunks(MAX_BINDS) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, account_id FROM sites WHERE id IN (");
        let mut list = q.separated(", ");
        for site in chunk {
            list.push_bind(*site);
        }
        q.push(")");
        let found: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        for (site, account) in found {
            plan.owners
                .insert(SiteId::parse(&site)?, AccountId::parse(&account)?);
        }
    }
    let accounts: Vec<String> = plan
        .accounts(group)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for chunk in accounts.chunks(MAX_BINDS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT account_id, link_no, link_sha256 FROM chain_heads WHERE account_id IN (",
        );
        let mut list = q.separated(", ");
        for account in chunk {
            list.push_bind(account.as_str());
        }
        q.push(")");
        let found: Vec<(String, i64, Vec<u8>)> = q.build_query_as().fetch_all(&mut *conn).await?;
        let mut heads: HashMap<String, (i64, chain::Hash)> = HashMap::new();
        for (account, no, hash) in found {
            heads.insert(account, chain::decode_head((no, hash))?);
        }
        for account in chunk {
            plan.chains.load_head(account, heads.get(account).copied());
        }
    }
    Ok(())
}

/// Writes the planned rows (multi-row INSERTs), the ends, the links and the counter.
async fn flush(
    conn: &mut SqliteConnection,
    plan: &mut Plan,
    results: &mut [StoreResult<Done>],
) -> anyhow::Result<Option<i64>> {
    const COLUMNS: usize = 19;
    let mut seqs = Vec::with_capacity(plan.inserts.len());
    let inserts = std::mem::take(&mut plan.inserts);
    for chunk in inserts.chunks(MAX_BINDS / COLUMNS) {
        let rendered: Vec<Rendered> = chunk.iter().map(|id| plan.take_rendered(id)).collect();
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO activities (id, account_id, site_id, environment, service, activity, \
             status, actor_kind, actor_email, actor_name, description, error, details, \
             created_at, completed_at, change_no, request_sha256, search_internal, \
             search_client) ",
        );
        q.push_values(chunk.iter().zip(&rendered), |mut b, (id, r)| {
            let t = &plan.touched[id];
            let a = &t.activity;
            b.push_bind(a.id.as_str())
                .push_bind(a.account_id.as_str())
                .push_bind(a.site_id.as_str())
                .push_bind(a.environment.as_str())
                .push_bind(a.service.as_str())
                .push_bind(a.activity.as_str())
                .push_bind(a.status.as_str())
                .push_bind(a.actor.kind.as_str())
                .push_bind(a.actor.email.as_ref().map(Email::expose))
                .push_bind(a.actor.name.as_deref())
                .push_bind(a.description.as_str())
                .push_bind(a.error.as_deref())
                .push_bind(r.details_json.as_str())
                .push_bind(a.created_at.millis())
                .push_bind(a.completed_at.map(Timestamp::millis))
                .push_bind(t.change_no)
                .push_bind(&t.request_sha256[..])
                .push_bind(r.search.internal.as_str())
                .push_bind(r.search.client.as_deref());
        });
        q.push(" RETURNING id, seq");
        let found: Vec<(String, i64)> = q.build_query_as().fetch_all(&mut *conn).await?;
        anyhow::ensure!(
            found.len() == chunk.len(),
            "inserted {} of {} activities",
            found.len(),
            chunk.len()
        );
        for (id, seq) in found {
            seqs.push((ActivityId::parse(&id)?, seq));
        }
    }
    plan.inserts = inserts;
    plan.assign_seqs(seqs, results);
    for id in &plan.ends {
        let t = &plan.touched[id];
        let a = &t.activity;
        let search = SearchText::of(a);
        // The condition is the store's guarantee of one transition; the write lock makes a
        // miss impossible, so a miss means something wrote around the store.
        let updated = sqlx::query(
            "UPDATE activities SET status = ?, completed_at = ?, description = ?, error = ?, \
             details = ?, change_no = ?, search_internal = ?, search_client = ? \
             WHERE id = ? AND status = 'in_progress'",
        )
        .bind(a.status.as_str())
        .bind(a.completed_at.map(Timestamp::millis))
        .bind(&a.description)
        .bind(&a.error)
        .bind(serde_json::to_string(&a.details)?)
        .bind(t.change_no)
        .bind(&search.internal)
        .bind(&search.client)
        .bind(a.id.as_str())
        .execute(&mut *conn)
        .await?;
        anyhow::ensure!(
            updated.rows_affected() == 1,
            "activity {id} did not end: the log was written around the store"
        );
    }
    write_links(conn, &plan.chains).await?;
    let last = plan.last_change();
    if let Some(n) = last {
        sqlx::query("UPDATE counters SET value = ? WHERE name = 'change'")
            .bind(n)
            .execute(&mut *conn)
            .await?;
    }
    Ok(last)
}

/// One bounded pass of the retention policy over one account. The prune activities go
/// through the group's plan (and so into the chain); the removal is written at once.
async fn prune(
    conn: &mut SqliteConnection,
    plan: &mut Plan,
    request: &PruneRequest,
    now: Timestamp,
) -> StoreResult<Done> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
    q.push(COLS)
        .push(" FROM activities WHERE account_id = ")
        .push_bind(request.account.as_str())
        .push(" AND created_at < ")
        .push_bind(request.before.millis())
        .push(" AND status <> 'in_progress' AND activity <> 'prune_activity_log' ")
        .push("ORDER BY created_at, seq LIMIT ")
        .push_bind(i64::from(request.limit));
    let found: Vec<ActivityRow> = q.build_query_as().fetch_all(&mut *conn).await?;
    let selected = found
        .into_iter()
        .map(ActivityRow::decode)
        .collect::<StoreResult<Vec<_>>>()?;
    let mut pruned = Pruned::default();
    for (logged, group) in plan.prune(request, selected, now)? {
        for chunk in group.chunks(MAX_BINDS / 3) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO pruned_activities (account_id, activity_id, prune_id) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.account_id.as_str())
                    .push_bind(a.id.as_str())
                    .push_bind(logged.id.as_str());
            });
            q.build().execute(&mut *conn).await?;
            let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM activities WHERE seq IN (");
            let mut seqs = q.separated(", ");
            for a in chunk {
                seqs.push_bind(a.seq);
            }
            q.push(")");
            q.build().execute(&mut *conn).await?;
        }
        pruned.removed += group.len() as u64;
        pruned.logged.push(logged);
    }
    Ok(Done::Pruned(pruned))
}

/// A request that writes around the plan: accounts, sites, keys, retention, looks.
async fn apply(
    conn: &mut SqliteConnection,
    owners: &mut HashMap<SiteId, AccountId>,
    work: &Work,
    now: Timestamp,
) -> StoreResult<Done> {
    match work {
        Work::SetRetention(account, days) => {
            let updated = sqlx::query("UPDATE accounts SET retention_days = ? WHERE id = ?")
                .bind(days.map(i64::from))
                .bind(account.as_str())
                .execute(&mut *conn)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(Done::Unit)
        }
        Work::RecordAccess(batch) => {
            for chunk in batch.chunks(500) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO access_log (account_id, site_id, audience, actor_kind, \
                     actor_email, actor_name, action, query, at) ",
                );
                q.push_values(chunk, |mut b, a| {
                    b.push_bind(a.account_id.as_str())
                        .push_bind(a.site_id.as_ref().map(SiteId::as_str))
                        .push_bind(a.audience.as_str())
                        .push_bind(a.actor.kind.as_str())
                        .push_bind(a.actor.email.as_ref().map(Email::expose))
                        .push_bind(a.actor.name.as_deref())
                        .push_bind(a.action.as_str())
                        .push_bind(&a.query)
                        .push_bind(a.at.millis());
                });
                q.build().execute(&mut *conn).await?;
            }
            Ok(Done::Unit)
        }
        Work::Record(_) | Work::End(..) | Work::Prune(_) | Work::Checkpoint(_) => {
            unreachable!("the group's plan applies these")
        }
        Work::UpsertAccount(a) => {
            let settings = serde_json::json!({
                "partner_colour": a.partner_colour.as_ref().map(Colour::as_str),
            });
            sqlx::query(
                "INSERT INTO accounts (id, name, partner, settings, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 partner = excluded.partner, settings = excluded.settings, \
                 updated_at = excluded.updated_at",
            )
            .bind(a.id.as_str())
            .bind(&a.name)
            .bind(&a.partner)
            .bind(settings.to_string())
            .bind(now.millis())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?;
            Ok(Done::Unit)
        }
        Work::UpsertSite(s) => {
            let account: Option<String> =
                sqlx::query_scalar("SELECT id FROM accounts WHERE id = ?")
                    .bind(s.account_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            if account.is_none() {
                return Err(
                    sitetrail_core::InvalidField::new("account_id", "unknown account").into(),
                );
            }
            let owner: Option<String> =
                sqlx::query_scalar("SELECT account_id FROM sites WHERE id = ?")
                    .bind(s.id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            if owner.is_some_and(|o| o != s.account_id.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "site {} belongs to another account",
                    s.id
                )));
            }
            sqlx::query(
                "INSERT INTO sites (id, account_id, name, live_url, live_docroot, staging_url, \
                 staging_docroot, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 live_url = excluded.live_url, live_docroot = excluded.live_docroot, \
                 staging_url = excluded.staging_url, staging_docroot = excluded.staging_docroot, \
                 updated_at = excluded.updated_at",
            )
            .bind(s.id.as_str())
            .bind(s.account_id.as_str())
            .bind(&s.name)
            .bind(s.live.url.as_str())
            .bind(&s.live.docroot)
            .bind(s.staging.as_ref().map(|e| e.url.as_str()))
            .bind(s.staging.as_ref().and_then(|e| e.docroot.as_deref()))
            .bind(now.millis())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?;
            owners.insert(s.id.clone(), s.account_id.clone());
            Ok(Done::Unit)
        }
        Work::CreateKey(key) => {
            sqlx::query(
                "INSERT INTO api_keys (id, name, secret_sha256, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(&key.id)
            .bind(&key.name)
            .bind(key.secret_sha256())
            .bind(now.millis())
            .execute(&mut *conn)
            .await?;
            Ok(Done::Unit)
        }
    }
}

/// Writes the links a group appended and moves their chains' heads.
async fn write_links(conn: &mut SqliteConnection, chains: &Chains) -> anyhow::Result<()> {
    for chunk in chains.links.chunks(1000) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chain_links (account_id, link_no, activity_id, content_sha256, \
             link_sha256) ",
        );
        q.push_values(chunk, |mut b, l| {
            b.push_bind(&l.account_id)
                .push_bind(l.link_no)
                .push_bind(&l.activity_id)
                .push_bind(&l.content_sha256[..])
                .push_bind(&l.link_sha256[..]);
        });
        q.build().execute(&mut *conn).await?;
    }
    // One statement for every head the group moved (a group of single activities from many
    // publishers moves many accounts' heads).
    let heads = chains.moved_heads();
    for chunk in heads.chunks(MAX_BINDS / 3) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chain_heads (account_id, link_no, link_sha256) ",
        );
        q.push_values(chunk, |mut b, (account, link_no, hash)| {
            b.push_bind(account.as_str())
                .push_bind(*link_no)
                .push_bind(&hash[..]);
        });
        q.push(
            " ON CONFLICT (account_id) DO UPDATE SET link_no = excluded.link_no, \
             link_sha256 = excluded.link_sha256",
        );
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Signs a checkpoint for every chain whose head is past its last checkpoint.
async fn sign_checkpoints(
    conn: &mut SqliteConnection,
    key: &CheckpointKey,
) -> anyhow::Result<Vec<CheckpointBody>> {
    let moved: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT h.account_id, h.link_no, h.link_sha256 FROM chain_heads h \
         WHERE h.link_no > COALESCE((SELECT MAX(c.link_no) FROM chain_checkpoints c \
         WHERE c.account_id = h.account_id), 0) ORDER BY h.account_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let made_at = Timestamp::now();
    let mut out = Vec::with_capacity(moved.len());
    for (account_id, link_no, hash) in moved {
        let (_, link_sha256) = chain::decode_head((link_no, hash))?;
        let body = CheckpointBody {
            account_id,
            link_no,
            link_sha256,
            made_at,
        };
        sqlx::query(
            "INSERT INTO chain_checkpoints (account_id, link_no, link_sha256, made_at, \
             public_key, signature) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&body.account_id)
        .bind(body.link_no)
        .bind(&body.link_sha256[..])
        .bind(made_at.millis())
        .bind(&key.public_key()[..])
        .bind(&key.sign(&body)[..])
        .execute(&mut *conn)
        .await?;
        out.push(body);
    }
    Ok(out)
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
        match self
            .writer
            .write(Work::Record(record::prepare_all(&batch)?))
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
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM accounts UNION SELECT account_id FROM chain_heads \
             UNION SELECT DISTINCT account_id FROM activities ORDER BY 1",
        )
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
            reports.push(crate::verify::account::<Sqlite>(&mut tx, &account, trusted).await?);
        }
        tx.rollback().await?;
        Ok(reports)
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
        let path = self.read.connect_options().get_filename().to_owned();
        Ok(crate::export::sqlite(
            path, scope, audience, filter, columns,
        ))
    }
}
