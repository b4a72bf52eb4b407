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
use futures::TryStreamExt;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Audience, Colour, Email, Ending, NewActivity,
    Page, Site, SiteId, StoredActivity, Timestamp,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{broadcast, oneshot};

use crate::chain::{self, AccountReport, Chains, CheckpointBody, CheckpointKey, Verifier};
use crate::keys::{self, ApiKey, KeyCache, KeyCheck, StoredKey};
use crate::record::{self, SearchText};
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
                chains: Chains::default(),
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
    /// The chains the current group moves (read afresh by every group: another process
    /// may have written the file in between).
    chains: Chains,
}

impl GroupWriter for SqliteWriter {
    async fn apply_group(&mut self, group: &[Work]) -> anyhow::Result<GroupOutcome> {
        let conn = &mut self.conn;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        // The write lock is ours until COMMIT: read the counter once, hand out numbers in
        // memory, write it back once.
        let start: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change'")
            .fetch_one(&mut *conn)
            .await?;
        let mut counter = Counter(start);
        let mut results = Vec::with_capacity(group.len());
        self.chains.clear();
        let mut checkpoints = Vec::new();
        for (i, work) in group.iter().enumerate() {
            if let Work::Checkpoint(key) = work {
                checkpoints.push((i, key));
                results.push(Ok(Done::Unit));
                continue;
            }
            // Only a batch of several activities or a prune can fail after writing part of
            // itself; every other request checks everything before its one write, so it needs
            // no savepoint.
            let partial = matches!(work, Work::Record(batch) if batch.len() > 1)
                || matches!(work, Work::Prune(_));
            let before = counter.0;
            let mark = self.chains.mark();
            if partial {
                sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
            }
            let r = apply(conn, &mut self.sites, &mut self.chains, work, &mut counter).await;
            if r.is_err() {
                counter.0 = before;
                self.chains.truncate(mark);
                if partial {
                    sqlx::query("ROLLBACK TO op").execute(&mut *conn).await?;
                }
            }
            if partial {
                sqlx::query("RELEASE op").execute(&mut *conn).await?;
            }
            // A database failure inside one request fails the whole group, so that nothing
            // is half-applied and nobody is told "written" by a group that did not commit.
            if let Err(StoreError::Internal(e)) = &r {
                anyhow::bail!("{e:#}");
            }
            results.push(r);
        }
        write_links(conn, &self.chains).await?;
        for (i, key) in checkpoints {
            results[i] = Ok(Done::Checkpointed(sign_checkpoints(conn, key).await?));
        }
        let last_change = (counter.0 != start).then_some(counter.0);
        if let Some(n) = last_change {
            sqlx::query("UPDATE counters SET value = ? WHERE name = 'change'")
                .bind(n)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok((results, last_change))
    }

    async fn recover(&mut self) {
        self.sites.clear();
        self.chains.clear();
        let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
    }
}

async fn apply(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    chains: &mut Chains,
    work: &Work,
    counter: &mut Counter,
) -> StoreResult<Done> {
    let now = Timestamp::now();
    match work {
        Work::Record(batch) => {
            let mut out = Vec::with_capacity(batch.len());
            for new in batch {
                out.push(record_linked(conn, sites, chains, new, now, counter).await?);
            }
            Ok(Done::Recorded(out))
        }
        Work::Prune(request) => prune(conn, sites, chains, request, now, counter).await,
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
        Work::Checkpoint(_) => unreachable!("checkpoints are applied after their group"),
        Work::End(id, ending) => {
            let current = select_by_id(&mut *conn, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            if current.status.is_ended() {
                return Err(StoreError::Conflict(format!(
                    "activity {id} has already ended as {}",
                    current.status
                )));
            }
            ending.validate(current.created_at)?;
            let mut next = record::ended(&current, ending, now);
            load_head(conn, chains, next.account_id.as_str()).await?;
            let change = counter.next();
            let search = SearchText::of(&next);
            let updated = sqlx::query(
                "UPDATE activities SET status = ?, completed_at = ?, description = ?, error = ?, \
                 details = ?, change_no = ?, search_internal = ?, search_client = ? \
                 WHERE seq = ? AND status = 'in_progress'",
            )
            .bind(next.status.as_str())
            .bind(next.completed_at.map(Timestamp::millis))
            .bind(&next.description)
            .bind(&next.error)
            .bind(serde_json::to_string(&next.details).map_err(anyhow::Error::from)?)
            .bind(change)
            .bind(&search.internal)
            .bind(&search.client)
            .bind(current.seq)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "activity {id} has already ended"
                )));
            }
            next.seq = current.seq;
            chains.append(&next);
            Ok(Done::Ended(Box::new(next)))
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

async fn record_one(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    new: &NewActivity,
    now: Timestamp,
    counter: &mut Counter,
) -> StoreResult<Recorded> {
    new.validate(new.activity.service())?;
    let hash = record::request_sha256(new);
    if let Some(id) = &new.id
        && let Some(existing) = select_by_id(&mut *conn, id).await?
    {
        let stored_hash: Vec<u8> =
            sqlx::query_scalar("SELECT request_sha256 FROM activities WHERE seq = ?")
                .bind(existing.seq)
                .fetch_one(&mut *conn)
                .await?;
        if stored_hash == hash {
            return Ok(Recorded {
                activity: existing,
                created: false,
            });
        }
        return Err(StoreError::Conflict(format!(
            "activity {id} was already recorded with another body"
        )));
    }
    let owner = match sites.get(&new.site_id) {
        Some(owner) => Some(owner.clone()),
        None => {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT account_id FROM sites WHERE id = ?")
                    .bind(new.site_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            let owner = owner
                .map(|o| AccountId::parse(&o))
                .transpose()
                .map_err(anyhow::Error::from)?;
            if let Some(o) = &owner {
                sites.insert(new.site_id.clone(), o.clone());
            }
            owner
        }
    };
    match owner {
        None => {
            return Err(sitetrail_core::InvalidField::new(
                "site_id",
                "unknown site; register it with PUT /api/v1/sites/{site}",
            )
            .into());
        }
        Some(o) if o != new.account_id => {
            return Err(sitetrail_core::InvalidField::new(
                "site_id",
                "the site belongs to another account",
            )
            .into());
        }
        Some(_) => {}
    }
    let mut stored = record::new_stored(new, now);
    let change = counter.next();
    let search = SearchText::of(&stored);
    let details = serde_json::to_string(&stored.details).map_err(anyhow::Error::from)?;
    let seq = sqlx::query(
        "INSERT INTO activities (id, account_id, site_id, environment, service, activity, status, \
         actor_kind, actor_email, actor_name, description, error, details, created_at, \
         completed_at, change_no, request_sha256, search_internal, search_client) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(stored.id.as_str())
    .bind(stored.account_id.as_str())
    .bind(stored.site_id.as_str())
    .bind(stored.environment.as_str())
    .bind(stored.service.as_str())
    .bind(stored.activity.as_str())
    .bind(stored.status.as_str())
    .bind(stored.actor.kind.as_str())
    .bind(stored.actor.email.as_ref().map(Email::expose))
    .bind(&stored.actor.name)
    .bind(&stored.description)
    .bind(&stored.error)
    .bind(details)
    .bind(stored.created_at.millis())
    .bind(stored.completed_at.map(Timestamp::millis))
    .bind(change)
    .bind(hash)
    .bind(&search.internal)
    .bind(&search.client)
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    stored.seq = seq;
    Ok(Recorded {
        activity: stored,
        created: true,
    })
}

/// Records one activity and, when it is new, appends its link to its account's chain.
async fn record_linked(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    chains: &mut Chains,
    new: &NewActivity,
    now: Timestamp,
    counter: &mut Counter,
) -> StoreResult<Recorded> {
    let r = record_one(conn, sites, new, now, counter).await?;
    if r.created {
        load_head(conn, chains, r.activity.account_id.as_str()).await?;
        chains.append(&r.activity);
    }
    Ok(r)
}

/// Reads an account's chain head into the group's chains, once per group.
async fn load_head(
    conn: &mut SqliteConnection,
    chains: &mut Chains,
    account: &str,
) -> StoreResult<()> {
    if chains.has_head(account) {
        return Ok(());
    }
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT link_no, link_sha256 FROM chain_heads WHERE account_id = ?")
            .bind(account)
            .fetch_optional(&mut *conn)
            .await?;
    chains.load_head(account, head.map(chain::decode_head).transpose()?);
    Ok(())
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
    for (account, link_no, hash) in chains.moved_heads() {
        sqlx::query(
            "INSERT INTO chain_heads (account_id, link_no, link_sha256) VALUES (?, ?, ?) \
             ON CONFLICT (account_id) DO UPDATE SET link_no = excluded.link_no, \
             link_sha256 = excluded.link_sha256",
        )
        .bind(account)
        .bind(link_no)
        .bind(&hash[..])
        .execute(&mut *conn)
        .await?;
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

/// One bounded pass of the retention policy over one account.
async fn prune(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    chains: &mut Chains,
    request: &PruneRequest,
    now: Timestamp,
    counter: &mut Counter,
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
    for (site, group) in record::by_site(selected) {
        let mut sealed: Vec<(String, chain::Hash)> = group
            .iter()
            .map(|a| (a.id.as_str().to_owned(), chain::content_sha256(a)))
            .collect();
        let entry = record::prune_entry(request, &site, &mut sealed);
        let logged = record_linked(conn, sites, chains, &entry, now, counter).await?;
        for chunk in group.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO pruned_activities (account_id, activity_id, prune_id) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.account_id.as_str())
                    .push_bind(a.id.as_str())
                    .push_bind(logged.activity.id.as_str());
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
        pruned.logged.push(logged.activity);
    }
    Ok(Done::Pruned(pruned))
}

/// The `change` counter while a group holds the write lock.
struct Counter(i64);

impl Counter {
    fn next(&mut self) -> i64 {
        self.0 += 1;
        self.0
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
        match self.writer.write(Work::Record(batch)).await? {
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
            let mut v = Verifier::new(&account, trusted);
            let a = account.as_str();
            let checkpoints: Vec<(i64, Vec<u8>, i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
                "SELECT link_no, link_sha256, made_at, public_key, signature \
                 FROM chain_checkpoints WHERE account_id = ? ORDER BY link_no",
            )
            .bind(a)
            .fetch_all(&mut *tx)
            .await?;
            for cp in checkpoints {
                v.checkpoint(chain::stored_checkpoint(a, cp)?);
            }
            {
                let mut links = sqlx::query_as::<_, (i64, String, Vec<u8>, Vec<u8>)>(
                    "SELECT link_no, activity_id, content_sha256, link_sha256 FROM chain_links \
                     WHERE account_id = ? ORDER BY link_no",
                )
                .bind(a)
                .fetch(&mut *tx);
                while let Some((no, id, content, hash)) = links.try_next().await? {
                    v.link(
                        no,
                        &id,
                        chain::decode_hash(&content)?,
                        chain::decode_hash(&hash)?,
                    );
                }
            }
            let head: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT link_no, link_sha256 FROM chain_heads WHERE account_id = ?")
                    .bind(a)
                    .fetch_optional(&mut *tx)
                    .await?;
            v.head(head.map(chain::decode_head).transpose()?);
            {
                let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
                q.push(COLS)
                    .push(" FROM activities WHERE account_id = ")
                    .push_bind(a);
                let mut rows = q.build_query_as::<ActivityRow>().fetch(&mut *tx);
                while let Some(row) = rows.try_next().await? {
                    let (id, seq) = (row.id.clone(), row.seq);
                    match row.decode() {
                        Ok(activity) => v.activity(&activity),
                        Err(_) => v.unreadable(&id, seq),
                    }
                }
            }
            {
                let mut pruned = sqlx::query_as::<_, (String, String)>(
                    "SELECT activity_id, prune_id FROM pruned_activities WHERE account_id = ?",
                )
                .bind(a)
                .fetch(&mut *tx);
                while let Some((id, prune_id)) = pruned.try_next().await? {
                    v.pruned(&id, &prune_id);
                }
            }
            reports.push(v.finish());
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
}
