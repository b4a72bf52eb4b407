//! The embedded default: one SQLite file in the data dir.
//!
//! Writes go through one writer task that owns the only writing connection. It takes every
//! request waiting in its queue, applies each in a savepoint of one transaction and commits
//! once (group commit): many publishers posting one activity each share one fsync. Nobody is
//! answered before the commit. Reads use a pool of read-only connections (WAL mode).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, ActivityKind, Actor, ActorKind, Audience,
    Colour, Cursor, Direction, Email, Ending, EnvironmentSpec, NewActivity, Page, Service, Site,
    SiteId, SiteUrl, Status, StoredActivity, Timestamp, UserPredicate,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::keys::{self, ApiKey, KeyCheck};
use crate::record::{self, SearchText};
use crate::{Change, ChangeKind, Listing, Recorded, Scope, Store, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The most requests one commit takes; the rest wait for the next one.
const MAX_GROUP: usize = 256;

const COLS: &str = "seq, id, account_id, site_id, environment, service, activity, status, \
    actor_kind, actor_email, actor_name, description, error, details, created_at, completed_at, \
    change_no";

pub struct SqliteStore {
    read: SqlitePool,
    writer: mpsc::Sender<Write>,
    commits: broadcast::Sender<i64>,
}

enum Work {
    Record(Vec<NewActivity>),
    End(ActivityId, Ending),
    UpsertAccount(Account),
    UpsertSite(Site),
    CreateKey(ApiKey),
}

enum Done {
    Recorded(Vec<Recorded>),
    Ended(Box<StoredActivity>),
    Unit,
}

struct Write {
    work: Work,
    reply: oneshot::Sender<StoreResult<Done>>,
}

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
        let mut conn = SqliteConnection::connect_with(&options)
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
        let (tx, rx) = mpsc::channel(4096);
        let (commits, _) = broadcast::channel(1024);
        tokio::spawn(writer_loop(conn, rx, commits.clone()));
        Ok(SqliteStore {
            read,
            writer: tx,
            commits,
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
        let mut q = list_query("EXPLAIN QUERY PLAN SELECT ", scope, audience, filter, page);
        let rows = q.build().fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("detail").map_err(StoreError::from))
            .collect()
    }

    async fn write(&self, work: Work) -> StoreResult<Done> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Write { work, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the store's writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the store's writer stopped before answering"))?
    }
}

async fn writer_loop(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Write>,
    commits: broadcast::Sender<i64>,
) {
    let mut sites: HashMap<SiteId, AccountId> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        let outcome = apply_group(&mut conn, &mut sites, &mut group).await;
        match outcome {
            Ok((results, last_change)) => {
                for (w, r) in group.into_iter().zip(results) {
                    let _ = w.reply.send(r);
                }
                if let Some(change) = last_change {
                    let _ = commits.send(change);
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, "a group commit failed; nothing in it was written");
                sites.clear();
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                for w in group {
                    let _ = w.reply.send(Err(
                        anyhow::anyhow!("the write could not be committed").into()
                    ));
                }
            }
        }
    }
}

type GroupOutcome = (Vec<StoreResult<Done>>, Option<i64>);

async fn apply_group(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    group: &mut [Write],
) -> anyhow::Result<GroupOutcome> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let mut results = Vec::with_capacity(group.len());
    let mut last_change = None;
    for w in group.iter() {
        sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
        let r = apply(conn, sites, &w.work, &mut last_change).await;
        if r.is_err() {
            sqlx::query("ROLLBACK TO op").execute(&mut *conn).await?;
        }
        sqlx::query("RELEASE op").execute(&mut *conn).await?;
        // A database failure inside one request fails the whole group, so that nothing is
        // half-applied and nobody is told "written" by a group that did not commit.
        if let Err(StoreError::Internal(e)) = &r {
            anyhow::bail!("{e:#}");
        }
        results.push(r);
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok((results, last_change))
}

async fn apply(
    conn: &mut SqliteConnection,
    sites: &mut HashMap<SiteId, AccountId>,
    work: &Work,
    last_change: &mut Option<i64>,
) -> StoreResult<Done> {
    let now = Timestamp::now();
    match work {
        Work::Record(batch) => {
            let mut out = Vec::with_capacity(batch.len());
            for new in batch {
                out.push(record_one(conn, sites, new, now, last_change).await?);
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
            let change = next_change(conn, last_change).await?;
            let search = SearchText::of(&next);
            let updated = sqlx::query(
                "UPDATE activities SET status = ?, completed_at = ?, description = ?, error = ?, \
                 change_no = ?, search_internal = ?, search_client = ? \
                 WHERE seq = ? AND status = 'in_progress'",
            )
            .bind(next.status.as_str())
            .bind(next.completed_at.map(Timestamp::millis))
            .bind(&next.description)
            .bind(&next.error)
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
    last_change: &mut Option<i64>,
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
    let change = next_change(conn, last_change).await?;
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

async fn next_change(
    conn: &mut SqliteConnection,
    last_change: &mut Option<i64>,
) -> StoreResult<i64> {
    let n: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'change' RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await?;
    *last_change = Some(n);
    Ok(n)
}

async fn select_by_id<'c, E>(exec: E, id: &ActivityId) -> StoreResult<Option<StoredActivity>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
    q.push(COLS)
        .push(" FROM activities WHERE id = ")
        .push_bind(id.as_str());
    let row = q.build().fetch_optional(exec).await?;
    row.map(|r| decode(&r)).transpose()
}

fn decode(row: &SqliteRow) -> StoreResult<StoredActivity> {
    fn parse<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> anyhow::Result<T> {
        r.map_err(|e| anyhow::anyhow!("corrupt {what} in the activity log: {e}"))
    }
    let inner = || -> anyhow::Result<StoredActivity> {
        let kind: String = row.try_get("actor_kind")?;
        let email: Option<String> = row.try_get("actor_email")?;
        let details: String = row.try_get("details")?;
        let details: serde_json::Value = serde_json::from_str(&details)?;
        let created: i64 = row.try_get("created_at")?;
        let completed: Option<i64> = row.try_get("completed_at")?;
        Ok(StoredActivity {
            seq: row.try_get("seq")?,
            id: parse(ActivityId::parse(row.try_get("id")?), "id")?,
            account_id: parse(AccountId::parse(row.try_get("account_id")?), "account")?,
            site_id: parse(SiteId::parse(row.try_get("site_id")?), "site")?,
            environment: parse(
                sitetrail_core::Environment::parse(row.try_get("environment")?),
                "environment",
            )?,
            service: parse(Service::parse(row.try_get("service")?), "service")?,
            activity: parse(ActivityKind::parse(row.try_get("activity")?), "activity")?,
            status: parse(Status::parse(row.try_get("status")?), "status")?,
            actor: Actor {
                kind: ActorKind::parse(&kind)
                    .ok_or_else(|| anyhow::anyhow!("corrupt actor kind in the activity log"))?,
                email: email
                    .map(|e| parse(Email::parse(&e), "actor email"))
                    .transpose()?,
                name: row.try_get("actor_name")?,
            },
            description: row.try_get("description")?,
            error: row.try_get("error")?,
            details: match details {
                serde_json::Value::Object(m) => m,
                _ => anyhow::bail!("corrupt details in the activity log"),
            },
            created_at: Timestamp::from_millis(created)
                .ok_or_else(|| anyhow::anyhow!("corrupt created_at in the activity log"))?,
            completed_at: completed
                .map(|c| {
                    Timestamp::from_millis(c)
                        .ok_or_else(|| anyhow::anyhow!("corrupt completed_at in the activity log"))
                })
                .transpose()?,
        })
    };
    inner().map_err(StoreError::Internal)
}

fn push_filters(q: &mut QueryBuilder<Sqlite>, audience: Audience, f: &ActivityFilter) {
    if let Some(k) = f.activity {
        q.push(" AND activity = ").push_bind(k.as_str());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(s) = f.service {
        q.push(" AND service = ").push_bind(s.as_str());
    }
    match &f.user {
        None => {}
        Some(UserPredicate::Kind(k)) => {
            q.push(" AND actor_kind = ").push_bind(k.as_str());
        }
        Some(UserPredicate::Email { email_lower, kinds }) => {
            q.push(" AND lower(actor_email) = ")
                .push_bind(email_lower.clone());
            q.push(" AND actor_kind IN (");
            let mut sep = q.separated(", ");
            for k in kinds.iter() {
                sep.push_bind(k.as_str());
            }
            q.push(")");
        }
    }
    if let Some(t) = f.from {
        q.push(" AND created_at >= ").push_bind(t.millis());
    }
    if let Some(t) = f.to {
        q.push(" AND created_at < ").push_bind(t.millis());
    }
    if let Some(text) = &f.q {
        let pattern = format!("%{}%", escape_like(text));
        match audience {
            Audience::Internal => q.push(" AND search_internal LIKE "),
            Audience::Client => q.push(" AND coalesce(search_client, search_internal) LIKE "),
        };
        q.push_bind(pattern).push(" ESCAPE '\\'");
    }
}

fn list_query(
    head: &'static str,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    page: Page,
) -> QueryBuilder<Sqlite> {
    let direction = page.cursor.map_or(Direction::Older, |c| c.direction);
    let mut q = QueryBuilder::<Sqlite>::new(head);
    q.push(COLS).push(" FROM activities WHERE ");
    match &scope.site {
        Some(site) => {
            q.push("site_id = ").push_bind(site.as_str());
            q.push(" AND account_id = ")
                .push_bind(scope.account.as_str());
        }
        None => {
            q.push("account_id = ").push_bind(scope.account.as_str());
        }
    }
    push_filters(&mut q, audience, filter);
    if let Some(c) = page.cursor {
        match c.direction {
            Direction::Older => q.push(" AND (created_at, seq) < ("),
            Direction::Newer => q.push(" AND (created_at, seq) > ("),
        };
        q.push_bind(c.created_at.millis())
            .push(", ")
            .push_bind(c.seq)
            .push(")");
    }
    match direction {
        Direction::Older => q.push(" ORDER BY created_at DESC, seq DESC LIMIT "),
        Direction::Newer => q.push(" ORDER BY created_at ASC, seq ASC LIMIT "),
    };
    q.push_bind(i64::from(page.limit) + 1);
    q
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_account(&self, account: &Account) -> StoreResult<()> {
        self.write(Work::UpsertAccount(account.clone()))
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
        self.write(Work::UpsertSite(site.clone())).await.map(|_| ())
    }

    async fn site(&self, id: &SiteId) -> StoreResult<Option<Site>> {
        let row = sqlx::query(
            "SELECT id, account_id, name, live_url, live_docroot, staging_url, staging_docroot \
             FROM sites WHERE id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| decode_site(&r)).transpose()
    }

    async fn sites_of(&self, account: &AccountId) -> StoreResult<Vec<Site>> {
        let rows = sqlx::query(
            "SELECT id, account_id, name, live_url, live_docroot, staging_url, staging_docroot \
             FROM sites WHERE account_id = ? ORDER BY name, id",
        )
        .bind(account.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode_site).collect()
    }

    async fn record(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<Recorded>> {
        match self.write(Work::Record(batch)).await? {
            Done::Recorded(r) => Ok(r),
            _ => unreachable!("record answers with Recorded"),
        }
    }

    async fn end(&self, id: &ActivityId, ending: Ending) -> StoreResult<StoredActivity> {
        match self.write(Work::End(id.clone(), ending)).await? {
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
        let direction = page.cursor.map_or(Direction::Older, |c| c.direction);
        let mut q = list_query("SELECT ", scope, audience, filter, page);
        let rows = q.build().fetch_all(&self.read).await?;
        let mut items = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        Ok(match direction {
            Direction::Older => Listing {
                next: more
                    .then(|| items.last().map(|a| Cursor::after(a, Direction::Older)))
                    .flatten(),
                prev: page
                    .cursor
                    .and(items.first().map(|a| Cursor::after(a, Direction::Newer))),
                items,
            },
            Direction::Newer => {
                items.reverse();
                Listing {
                    prev: more
                        .then(|| items.first().map(|a| Cursor::after(a, Direction::Newer)))
                        .flatten(),
                    next: items.last().map(|a| Cursor::after(a, Direction::Older)),
                    items,
                }
            }
        })
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
        let rows = q.build().fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                let activity = decode(r)?;
                Ok(Change {
                    change_no: r.try_get("change_no")?,
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
        self.write(Work::CreateKey(key)).await?;
        Ok(shown)
    }

    async fn check_api_key(&self, presented: &str) -> StoreResult<KeyCheck> {
        let Some((id, secret)) = keys::split(presented) else {
            return Ok(KeyCheck::Invalid);
        };
        let row = sqlx::query("SELECT name, secret_sha256 FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(r) => {
                let hash: Vec<u8> = r.try_get("secret_sha256")?;
                if keys::secret_matches(secret, &hash) {
                    KeyCheck::Valid {
                        id: id.to_owned(),
                        name: r.try_get("name")?,
                    }
                } else {
                    KeyCheck::Invalid
                }
            }
            None => KeyCheck::Invalid,
        })
    }
}

fn decode_site(r: &SqliteRow) -> StoreResult<Site> {
    let env = |url: Option<String>,
               docroot: Option<String>|
     -> anyhow::Result<Option<EnvironmentSpec>> {
        url.map(|u| {
            Ok(EnvironmentSpec {
                url: SiteUrl::parse(&u).map_err(|e| anyhow::anyhow!("corrupt site URL: {e}"))?,
                docroot,
            })
        })
        .transpose()
    };
    let inner = || -> anyhow::Result<Site> {
        Ok(Site {
            id: SiteId::from_str(r.try_get("id")?)?,
            account_id: AccountId::from_str(r.try_get("account_id")?)?,
            name: r.try_get("name")?,
            live: env(r.try_get("live_url")?, r.try_get("live_docroot")?)?
                .ok_or_else(|| anyhow::anyhow!("a site without live"))?,
            staging: env(r.try_get("staging_url")?, r.try_get("staging_docroot")?)?,
        })
    };
    inner().map_err(StoreError::Internal)
}
