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

use crate::keys::{self, ApiKey, KeyCache, KeyCheck, StoredKey};
use crate::record::{self, SearchText};
use crate::rows::{self, ActivityRow, COLS, SITE_COLS, SiteRow};
use crate::writer::{Done, GroupOutcome, GroupWriter, Work, WriterHandle};
use crate::{Change, ChangeKind, Listing, Recorded, Scope, Store, StoreError, StoreResult};

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
        let conn = &mut self.conn;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        // The write lock is ours until COMMIT: read the counter once, hand out numbers in
        // memory, write it back once.
        let start: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change'")
            .fetch_one(&mut *conn)
            .await?;
        let mut counter = Counter(start);
        let mut results = Vec::with_capacity(group.len());
        for work in group {
            // Only a batch of several activities can fail after writing part of itself; every
            // other request checks everything before its one write, so it needs no savepoint.
            let partial = matches!(work, Work::Record(batch) if batch.len() > 1);
            let before = counter.0;
            if partial {
                sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
            }
            let r = apply(conn, &mut self.sites, work, &mut counter).await;
            if r.is_err() {
                counter.0 = before;
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
        let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
    }
}

async fn apply(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    work: &Work,
    counter: &mut Counter,
) -> StoreResult<Done> {
    let now = Timestamp::now();
    match work {
        Work::Record(batch) => {
            let mut out = Vec::with_capacity(batch.len());
            for new in batch {
                out.push(record_one(conn, sites, new, now, counter).await?);
            }
            Ok(Done::Recorded(out))
        }
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
