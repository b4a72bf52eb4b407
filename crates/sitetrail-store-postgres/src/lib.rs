//! PostgreSQL, for when one machine is not enough: several sitetrail servers may share one
//! database.
//!
//! Writes use the same group commit as SQLite ([`crate::writer`]), on one connection. Each
//! group first locks the `change` counter row and holds it until COMMIT, so the groups of
//! every server commit one at a time and change numbers are handed out in commit order: a
//! feed polling by `change_no` never passes a lower number that is still to commit. Under
//! that lock a group reads what it names, is planned in memory ([`crate::plan`]), and is
//! written with a few statements whose values go as arrays: a handful of round trips per
//! group, whatever its size. The commit carries a NOTIFY, so every server's feed wakes at
//! once; polling remains the fallback.

mod export;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sitetrail_core::{AccountId, ActivityFilter, ActivityId, Audience, Email, SiteId, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder, Row};
use tokio::sync::{broadcast, oneshot};

use sitetrail_store::backend::{Backend, Shared};
use sitetrail_store::chain::{self, Chains};
use sitetrail_store::plan::Plan;
use sitetrail_store::record::SearchText;
use sitetrail_store::roster::RosterEntry;
use sitetrail_store::rows::{self, COLS};
use sitetrail_store::verify::HeadQuery;
use sitetrail_store::writer::{Done, GroupOutcome, GroupWriter, Work, WriterHandle};
use sitetrail_store::writes;
use sitetrail_store::{Access, PruneRequest, Pruned, Scope, StoreError, StoreResult};
use sitetrail_store::{ExportColumns, ExportStream};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The NOTIFY channel every commit that changes an activity signals, with its last change
/// number as the payload.
pub const CHANNEL: &str = "sitetrail_changes";

/// Read connections per server. Reads are short index range scans; more connections than
/// this only queue on two cores.
const READ_CONNECTIONS: u32 = 8;

pub struct PgStore {
    /// The reads, the writer and the caches every backend shares.
    shared: Shared<Postgres>,
    /// Exports' connections, apart from the pages' (see [`crate::export`]).
    export: PgPool,
    /// Dropping the store stops its listener.
    _stop_listening: oneshot::Sender<()>,
}

impl PgStore {
    /// Connects, brings the schema up to date (migrations take an advisory lock, so servers
    /// starting together are safe) and starts the writer and the listener.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("reading the database URL {shown}"))?
            .application_name("sitetrail");
        let mut conn = PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {shown}"))?;
        MIGRATOR
            .run(&mut conn)
            .await
            .context("migrating the PostgreSQL database")?;
        // The writer opens its own connection on its own runtime.
        conn.close().await?;
        // A page must cost the same for a site of ten activities and one of a million, so
        // readers never sort what an index gives in order: with generic plans (sqlx prepares
        // every statement) PostgreSQL would otherwise plan for the average site and could
        // choose to read and sort all of a big one.
        let read = PgPoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .min_connections(1)
            .connect_with(options.clone().options([("enable_sort", "off")]))
            .await
            .with_context(|| format!("opening read connections to {shown}"))?;
        let export = PgPoolOptions::new()
            .max_connections(sitetrail_store::EXPORT_READERS as u32)
            .min_connections(0)
            .acquire_timeout(sitetrail_store::export::READER_WAIT)
            .connect_lazy_with(options.clone().options([("enable_sort", "off")]));
        let (commits, _) = broadcast::channel(1024);
        let writer = WriterHandle::spawn_on_own_runtime(
            PgWriter {
                options: options.clone(),
                conn: None,
            },
            commits.clone(),
        )?;
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(listen(listen_pool, commits.downgrade(), stopped));
        Ok(PgStore {
            shared: Shared::new(read, writer, commits),
            export,
            _stop_listening: stop,
        })
    }

    /// PostgreSQL's plan for a list query, one line per node: lets tests prove a page comes
    /// from an index range without a sort.
    #[cfg(feature = "testkit")]
    pub async fn explain_list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: sitetrail_core::Page,
    ) -> StoreResult<Vec<String>> {
        let mut q = rows::list_query::<Postgres>("EXPLAIN SELECT ", scope, audience, filter, page);
        let found = q.build().fetch_all(self.shared.read()).await?;
        found
            .iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Refreshes the planner's statistics (after a bulk load in a test).
    #[cfg(feature = "testkit")]
    pub async fn analyze(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE activities")
            .execute(self.shared.read())
            .await?;
        Ok(())
    }
}

/// The writer's session: a writer that stalls inside a transaction must not hold the
/// counter (and so every other server's writes) for long.
async fn prepare_writer(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SET idle_in_transaction_session_timeout = '30s'")
        .execute(&mut *conn)
        .await
        .context("setting up the writer's session")?;
    Ok(())
}

/// Wakes this server's feed when any server commits a change.
async fn listen(
    pool: PgPool,
    commits: broadcast::WeakSender<i64>,
    mut stop: oneshot::Receiver<()>,
) {
    let wake = |n: i64| match commits.upgrade() {
        Some(tx) => {
            let _ = tx.send(n);
            true
        }
        None => false,
    };
    let mut last = 0;
    loop {
        let mut listener = tokio::select! {
            _ = &mut stop => return,
            l = connect_listener(&pool) => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot LISTEN for changes; polling only, retrying");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    }
                }
            },
        };
        loop {
            tokio::select! {
                _ = &mut stop => return,
                n = listener.try_recv() => match n {
                    Ok(Some(note)) => {
                        last = note.payload().parse().unwrap_or(last);
                        if !wake(last) {
                            return;
                        }
                    }
                    // The connection was lost (it reconnects on the next call): a notification
                    // may have been missed, so the readers look for themselves.
                    Ok(None) => {
                        if !wake(last) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "the change listener failed; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        break;
                    }
                },
            }
        }
    }
}

async fn connect_listener(pool: &PgPool) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The writer: one connection, one group at a time. Everything a group needs (the activities
/// it names, the owners of the sites it records on, the chain heads it moves) is read inside
/// its transaction, after it took the change counter's lock, so that what another server
/// committed before is always seen.
struct PgWriter {
    options: PgConnectOptions,
    /// `None` before the first group and after a failure broke it; the next group connects.
    conn: Option<PgConnection>,
}

impl PgWriter {
    async fn connection(&mut self) -> anyhow::Result<&mut PgConnection> {
        if self.conn.is_none() {
            let mut conn = PgConnection::connect_with(&self.options)
                .await
                .context("connecting the writer to PostgreSQL")?;
            prepare_writer(&mut conn).await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }
}

impl GroupWriter for PgWriter {
    async fn apply_group(&mut self, group: Vec<Work>) -> anyhow::Result<GroupOutcome> {
        let now = Timestamp::now();
        let conn = self.connection().await?;
        let counter = begin(conn).await?;
        let mut plan = Plan::new(counter, HashMap::new());
        prefetch(conn, &mut plan, &group).await?;
        let mut results = Vec::with_capacity(group.len());
        let mut checkpoints = Vec::new();
        for (i, work) in group.into_iter().enumerate() {
            let r = match work {
                Work::Record(batch) => plan.record(batch),
                Work::End(id, ending) => plan.end(&id, &ending, now),
                Work::UpsertAccount(a) => writes::upsert_account::<Postgres>(conn, &a, now).await,
                Work::UpsertSite(s) => {
                    writes::upsert_site::<Postgres>(conn, &mut plan.owners, &s, now).await
                }
                Work::CreateKey(k) => writes::create_key::<Postgres>(conn, &k, now).await,
                Work::SetRetention(account, days) => {
                    writes::set_retention::<Postgres>(conn, &account, days).await
                }
                Work::RecordAccess(batch) => record_access(conn, &batch).await,
                Work::AddToRoster(entries) => add_to_roster(conn, &entries).await,
                Work::Prune(request) => prune(conn, &mut plan, &request, now).await,
                // Applied once the group's own links are written, so it seals them too.
                Work::Checkpoint(key) => {
                    checkpoints.push((i, key));
                    Ok(Done::Unit)
                }
            };
            // A database failure inside one request fails the whole group, so that nothing
            // is half-applied and nobody is told "written" by a group that did not commit.
            if let Err(StoreError::Internal(e)) = &r {
                anyhow::bail!("{e:#}");
            }
            results.push(r);
        }
        if !plan.inserts.is_empty() {
            let seqs = insert(&mut plan, conn).await?;
            plan.assign_seqs(seqs, &mut results);
        }
        if !plan.ends.is_empty() {
            update_ends(&plan, conn).await?;
        }
        let last = plan.last_change();
        if last.is_some() || !plan.chains.links.is_empty() {
            write_links_and_counter(conn, &plan.chains, last).await?;
        }
        plan.answer(&mut results);
        for (i, key) in checkpoints {
            results[i] = Ok(Done::Checkpointed(
                writes::sign_checkpoints::<Postgres>(conn, &key).await?,
            ));
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok((results, last))
    }

    /// Rolls back whatever the connection has open; a connection that cannot is dropped.
    async fn recover(&mut self) {
        if let Some(conn) = self.conn.as_mut()
            && sqlx::query("ROLLBACK").execute(conn).await.is_err()
        {
            self.conn = None;
        }
    }
}

/// Opens the group's transaction and takes the change counter's lock (which orders every
/// server's writes) and its value: one round trip.
async fn begin(conn: &mut PgConnection) -> anyhow::Result<i64> {
    let rows = sqlx::raw_sql("BEGIN; SELECT value FROM counters WHERE name = 'change' FOR UPDATE")
        .fetch_all(&mut *conn)
        .await?;
    let row = rows.first().context("the change counter is missing")?;
    Ok(row.try_get(0)?)
}

/// Reads every activity the group names, the owner of every site it records on, and the
/// chain heads of the accounts it may append to: three queries at most.
async fn prefetch(conn: &mut PgConnection, plan: &mut Plan, group: &[Work]) -> anyhow::Result<()> {
    let (ids, sites) = plan.wanted(group);
    if !ids.is_empty() {
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
        q.push(COLS)
            .push(", request_sha256 FROM activities WHERE id = ANY(")
            .push_bind(ids)
            .push(")");
        let found: Vec<rows::Prefetched> = q.build_query_as().fetch_all(&mut *conn).await?;
        for p in found {
            let change_no = p.row.change_no;
            plan.found(p.row.decode()?, p.request_sha256, change_no);
        }
    }
    if !sites.is_empty() {
        let found: Vec<(String, String)> =
            sqlx::query_as("SELECT id, account_id FROM sites WHERE id = ANY($1)")
                .bind(sites)
                .fetch_all(&mut *conn)
                .await?;
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
    if !accounts.is_empty() {
        // A head is its chain's newest link: one backward probe of the links' key each.
        let found: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT a, h.link_no, h.link_sha256 FROM UNNEST($1::text[]) a \
             CROSS JOIN LATERAL (SELECT link_no, link_sha256 FROM chain_links \
             WHERE account_id = a ORDER BY link_no DESC LIMIT 1) h",
        )
        .bind(&accounts)
        .fetch_all(&mut *conn)
        .await?;
        let mut heads: HashMap<String, (i64, chain::Hash)> = HashMap::new();
        for (account, no, hash) in found {
            heads.insert(account, chain::decode_head((no, hash))?);
        }
        for account in accounts {
            let head = heads.get(&account).copied();
            plan.chains.load_head(&account, head);
        }
    }
    Ok(())
}

/// Rows sent in one statement; a bigger group sends several.
const ROWS_PER_STATEMENT: usize = 1000;

/// Inserts the group's new activities, in order, and returns the `seq` each was given. The
/// values go as one array per column.
async fn insert(
    plan: &mut Plan,
    conn: &mut PgConnection,
) -> anyhow::Result<Vec<(ActivityId, i64)>> {
    let inserts = std::mem::take(&mut plan.inserts);
    let mut seqs = Vec::with_capacity(inserts.len());
    for chunk in inserts.chunks(ROWS_PER_STATEMENT) {
        let mut c = InsertColumns::default();
        for id in chunk {
            let rendered = plan.take_rendered(id);
            let t = &plan.touched[id];
            let a = &t.activity;
            c.id.push(a.id.as_str().to_owned());
            c.account_id.push(a.account_id.as_str().to_owned());
            c.site_id.push(a.site_id.as_str().to_owned());
            c.environment.push(a.environment.as_str());
            c.service.push(a.service.as_str());
            c.activity.push(a.activity.as_str());
            c.status.push(a.status.as_str());
            c.actor_kind.push(a.actor.kind.as_str());
            c.actor_email
                .push(a.actor.email.as_ref().map(|e| e.expose().to_owned()));
            c.actor_name.push(a.actor.name.clone());
            c.description.push(a.description.clone());
            c.error.push(a.error.clone());
            c.details.push(rendered.details_json);
            c.created_at.push(a.created_at.millis());
            c.completed_at.push(a.completed_at.map(Timestamp::millis));
            c.change_no.push(t.change_no);
            c.request_sha256.push(t.request_sha256.clone());
            c.search_internal.push(rendered.search.internal);
            c.search_client.push(rendered.search.client);
        }
        let given: Vec<(String, i64)> = sqlx::query_as(
            "INSERT INTO activities (id, account_id, site_id, environment, service, activity, \
             status, actor_kind, actor_email, actor_name, description, error, details, \
             created_at, completed_at, change_no, request_sha256, search_internal, \
             search_client) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::text[], $14::int8[], $15::int8[], $16::int8[], $17::bytea[], \
             $18::text[], $19::text[]) \
             RETURNING id, seq",
        )
        .bind(c.id)
        .bind(c.account_id)
        .bind(c.site_id)
        .bind(c.environment)
        .bind(c.service)
        .bind(c.activity)
        .bind(c.status)
        .bind(c.actor_kind)
        .bind(c.actor_email)
        .bind(c.actor_name)
        .bind(c.description)
        .bind(c.error)
        .bind(c.details)
        .bind(c.created_at)
        .bind(c.completed_at)
        .bind(c.change_no)
        .bind(c.request_sha256)
        .bind(c.search_internal)
        .bind(c.search_client)
        .fetch_all(&mut *conn)
        .await?;
        anyhow::ensure!(
            given.len() == chunk.len(),
            "inserted {} of {} activities",
            given.len(),
            chunk.len()
        );
        let by_id: HashMap<String, i64> = given.into_iter().collect();
        for id in chunk {
            let seq = by_id
                .get(id.as_str())
                .context("an inserted activity came back without its seq")?;
            seqs.push((id.clone(), *seq));
        }
    }
    plan.inserts = inserts;
    Ok(seqs)
}

/// One statement's activities, a column at a time.
#[derive(Default)]
struct InsertColumns {
    id: Vec<String>,
    account_id: Vec<String>,
    site_id: Vec<String>,
    environment: Vec<&'static str>,
    service: Vec<&'static str>,
    activity: Vec<&'static str>,
    status: Vec<&'static str>,
    actor_kind: Vec<&'static str>,
    actor_email: Vec<Option<String>>,
    actor_name: Vec<Option<String>>,
    description: Vec<String>,
    error: Vec<Option<String>>,
    details: Vec<String>,
    created_at: Vec<i64>,
    completed_at: Vec<Option<i64>>,
    change_no: Vec<i64>,
    request_sha256: Vec<Vec<u8>>,
    search_internal: Vec<String>,
    search_client: Vec<Option<String>>,
}

async fn update_ends(plan: &Plan, conn: &mut PgConnection) -> anyhow::Result<()> {
    let n = plan.ends.len();
    let mut id = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut completed_at = Vec::with_capacity(n);
    let mut description = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut change_no = Vec::with_capacity(n);
    let mut search_internal = Vec::with_capacity(n);
    let mut search_client = Vec::with_capacity(n);
    let mut details = Vec::with_capacity(n);
    for i in &plan.ends {
        let t = &plan.touched[i];
        let a = &t.activity;
        let search = SearchText::of(a);
        id.push(a.id.as_str().to_owned());
        status.push(a.status.as_str());
        completed_at.push(a.completed_at.map(Timestamp::millis));
        description.push(a.description.clone());
        error.push(a.error.clone());
        change_no.push(t.change_no);
        search_internal.push(search.internal);
        search_client.push(search.client);
        details.push(serde_json::to_string(&a.details)?);
    }
    // The condition is the store's guarantee of one transition; the counter lock makes a
    // miss impossible, so a miss means something wrote around the store.
    let updated = sqlx::query(
        "UPDATE activities AS a SET status = u.status, completed_at = u.completed_at, \
         description = u.description, error = u.error, change_no = u.change_no, \
         search_internal = u.search_internal, search_client = u.search_client, \
         details = u.details \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], \
         $6::int8[], $7::text[], $8::text[], $9::text[]) AS u (id, status, completed_at, \
         description, error, change_no, search_internal, search_client, details) \
         WHERE a.id = u.id AND a.status = 'in_progress'",
    )
    .bind(id)
    .bind(status)
    .bind(completed_at)
    .bind(description)
    .bind(error)
    .bind(change_no)
    .bind(search_internal)
    .bind(search_client)
    .bind(details)
    .execute(&mut *conn)
    .await?;
    anyhow::ensure!(
        updated.rows_affected() == n as u64,
        "ended {} of {n} activities: the log was written around the store",
        updated.rows_affected()
    );
    Ok(())
}

async fn record_access(conn: &mut PgConnection, batch: &[Access]) -> StoreResult<Done> {
    for chunk in batch.chunks(500) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO access_log (account_id, site_id, audience, actor_kind, actor_email, \
             actor_name, action, query, at) ",
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

async fn add_to_roster(conn: &mut PgConnection, entries: &[RosterEntry]) -> StoreResult<Done> {
    for chunk in entries.chunks(500) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO support_roster (account_id, email, name, added_at) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.account.as_str())
                .push_bind(&e.email)
                .push_bind(&e.name)
                .push_bind(e.added_at.millis());
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&mut *conn).await?;
    }
    Ok(Done::Unit)
}

/// One bounded pass of the retention policy over one account. The prune activities go
/// through the group's plan (and so into the chain); the removal is written at once.
async fn prune(
    conn: &mut PgConnection,
    plan: &mut Plan,
    request: &PruneRequest,
    now: Timestamp,
) -> StoreResult<Done> {
    let selected = writes::prunable::<Postgres>(conn, request).await?;
    let mut pruned = Pruned::default();
    for (logged, group) in plan.prune(request, selected, now)? {
        let ids: Vec<&str> = group.iter().map(|a| a.id.as_str()).collect();
        sqlx::query(
            "INSERT INTO pruned_activities (account_id, activity_id, prune_id) \
             SELECT $1, id, $2 FROM UNNEST($3::text[]) AS t (id)",
        )
        .bind(request.account.as_str())
        .bind(logged.id.as_str())
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
        let seqs: Vec<i64> = group.iter().map(|a| a.seq).collect();
        sqlx::query("DELETE FROM activities WHERE seq = ANY($1)")
            .bind(&seqs)
            .execute(&mut *conn)
            .await?;
        pruned.removed += group.len() as u64;
        pruned.logged.push(logged);
    }
    Ok(Done::Pruned(pruned))
}

/// Writes the links a group appended (a chain's head is its newest link: nothing else moves)
/// and moves the change counter with a NOTIFY to every server's listener. The last (or only)
/// statement's worth of links goes with the counter's statement.
async fn write_links_and_counter(
    conn: &mut PgConnection,
    chains: &Chains,
    last_change: Option<i64>,
) -> anyhow::Result<()> {
    let links = &chains.links[..];
    let last_chunk = links.len().saturating_sub(1) / ROWS_PER_STATEMENT * ROWS_PER_STATEMENT;
    let (before, with_counter) = links.split_at(last_chunk);
    for chunk in before.chunks(ROWS_PER_STATEMENT) {
        let c = LinkColumns::of(chunk);
        sqlx::query(
            "INSERT INTO chain_links (account_id, link_no, activity_id, content_sha256, \
             link_sha256) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::bytea[], $5::bytea[])",
        )
        .bind(c.account)
        .bind(c.link_no)
        .bind(c.activity)
        .bind(c.content)
        .bind(c.link)
        .execute(&mut *conn)
        .await?;
    }
    let c = LinkColumns::of(with_counter);
    // Each part of a WITH that writes runs once, whether or not the rest refers to it.
    sqlx::query(
        "WITH links AS (INSERT INTO chain_links (account_id, link_no, activity_id, \
         content_sha256, link_sha256) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::bytea[], $5::bytea[])), \
         moved AS (UPDATE counters SET value = $6 WHERE name = 'change' AND $6 IS NOT NULL \
         RETURNING value) \
         SELECT pg_notify($7, value::text) FROM moved",
    )
    .bind(c.account)
    .bind(c.link_no)
    .bind(c.activity)
    .bind(c.content)
    .bind(c.link)
    .bind(last_change)
    .bind(CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Links, a column at a time.
struct LinkColumns<'l> {
    account: Vec<&'l str>,
    link_no: Vec<i64>,
    activity: Vec<&'l str>,
    content: Vec<&'l [u8]>,
    link: Vec<&'l [u8]>,
}

impl<'l> LinkColumns<'l> {
    fn of(links: &'l [chain::Link]) -> Self {
        LinkColumns {
            account: links.iter().map(|l| l.account_id.as_str()).collect(),
            link_no: links.iter().map(|l| l.link_no).collect(),
            activity: links.iter().map(|l| l.activity_id.as_str()).collect(),
            content: links.iter().map(|l| &l.content_sha256[..]).collect(),
            link: links.iter().map(|l| &l.link_sha256[..]).collect(),
        }
    }
}

#[async_trait]
impl Backend for PgStore {
    type Db = Postgres;
    const HEAD: HeadQuery = sitetrail_store::verify::HEAD_LINK;

    fn shared(&self) -> &Shared<Postgres> {
        &self.shared
    }

    /// One snapshot: the chain, the checkpoints and the activities as of one moment,
    /// whatever every server writes meanwhile.
    async fn snapshot(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.shared.read().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        columns: ExportColumns,
    ) -> StoreResult<ExportStream> {
        crate::export::export(&self.export, scope, audience, filter, columns).await
    }
}

/// A database URL fit for logs: the password (in the user info or a `password=` parameter)
/// is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return url.to_owned(),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_log() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.internal:5432/sitetrail",
                "postgres://app:***@db.internal:5432/sitetrail",
            ),
            (
                "postgresql://app:p%40ss@db/x?sslmode=disable&password=again",
                "postgresql://app:***@db/x?sslmode=disable&password=***",
            ),
            ("postgres://app@db/x", "postgres://app@db/x"),
            ("postgres://db", "postgres://db"),
            (
                "postgres:///x?host=/run/postgresql",
                "postgres:///x?host=/run/postgresql",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
            assert!(!redact_url(url).contains("s3cret"));
        }
    }
}
