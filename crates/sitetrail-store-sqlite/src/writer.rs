//! SQLite's side of group commit: the one writing connection (sqlx), used by nobody else. A
//! whole group is applied in one `BEGIN IMMEDIATE` transaction, in a few statements: the
//! group's new activities and links go in as multi-row INSERTs, every value bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sitetrail_core::{AccountId, ActivityId, Email, SiteId, Timestamp};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite, SqliteConnection};

use sitetrail_store::chain;
use sitetrail_store::plan::Plan;
use sitetrail_store::record::{Rendered, SearchText};
use sitetrail_store::rows::{self, COLS};
use sitetrail_store::writer::{Done, GroupOutcome, GroupWriter, Work};
use sitetrail_store::writes;
use sitetrail_store::{PruneRequest, Pruned, StoreError, StoreResult};

/// Binds per statement: SQLite takes at most 32,766.
const MAX_BINDS: usize = 30_000;

pub(crate) struct SqliteWriter {
    options: SqliteConnectOptions,
    /// Opened on the first group, on the writer's own runtime; dropped after a failed group
    /// (closing it rolls back whatever it held), and opened again by the next one.
    conn: Option<SqliteConnection>,
    /// Which account each site belongs to (a site never moves).
    sites: HashMap<SiteId, AccountId>,
    /// Set by the store's checkpoint task when the WAL has grown past its limit.
    restart_wal: Arc<AtomicBool>,
}

impl SqliteWriter {
    /// `options`: the store's, with what only the writer sets (see [`crate::sqlite`]).
    pub fn new(options: SqliteConnectOptions, restart_wal: Arc<AtomicBool>) -> Self {
        SqliteWriter {
            options,
            conn: None,
            sites: HashMap::new(),
            restart_wal,
        }
    }

    async fn connection(&mut self) -> anyhow::Result<&mut SqliteConnection> {
        if self.conn.is_none() {
            let conn = self.options.connect().await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }
}

impl GroupWriter for SqliteWriter {
    async fn apply_group(&mut self, group: Vec<Work>) -> anyhow::Result<GroupOutcome> {
        let sites = std::mem::take(&mut self.sites);
        let conn = self.connection().await?;
        let (outcome, sites) = apply_group(conn, sites, group).await?;
        self.sites = sites;
        Ok(outcome)
    }

    async fn recover(&mut self) {
        // The failed group's transaction ends with its connection; the next group starts
        // afresh, on a new connection and with no cached owners.
        self.sites.clear();
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// Restarts the WAL when the checkpoint task asked for it, after the last group's
    /// answers went out and before the next group: the one moment no write transaction is
    /// open. Requests arriving meanwhile wait and make the next group larger.
    async fn between_groups(&mut self) {
        // Asked again by the next checkpoint if the WAL is still too long: a reader that
        // holds the restart back (a long export) then costs writers one wait per checkpoint,
        // not one per group.
        if !self.restart_wal.swap(false, Ordering::Relaxed) {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match restart_wal(conn).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!("a reader held the WAL's restart back"),
            Err(e) => {
                tracing::warn!(error = ?e, "restarting the WAL failed; the next checkpoint asks again")
            }
        }
    }
}

/// A RESTART checkpoint: copies the whole WAL into the database file and waits, 100 ms at
/// most, for readers of older snapshots, so that the next commit writes the WAL from its
/// start (and cuts its file back to `journal_size_limit`). `Ok(false)`: a reader held it back.
async fn restart_wal(conn: &mut SqliteConnection) -> anyhow::Result<bool> {
    sqlx::query("PRAGMA busy_timeout = 100")
        .execute(&mut *conn)
        .await?;
    let restarted: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await;
    sqlx::query("PRAGMA busy_timeout = 10000")
        .execute(&mut *conn)
        .await?;
    Ok(restarted?.0 == 0)
}

/// Applies every request and commits once; gives back the site cache it was lent. On `Err`
/// the transaction was rolled back and the cache is dropped.
async fn apply_group(
    conn: &mut SqliteConnection,
    sites: HashMap<SiteId, AccountId>,
    group: Vec<Work>,
) -> anyhow::Result<(GroupOutcome, HashMap<SiteId, AccountId>)> {
    let now = Timestamp::now();
    // The write lock is ours until COMMIT: read the counter and the chain heads once
    // (another process may have written the file since the last group), plan the group in
    // memory, write it in a few statements, commit once.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let start: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'change'")
        .fetch_one(&mut *tx)
        .await?;
    let mut plan = Plan::new(start, sites);
    prefetch(&mut tx, &mut plan, &group).await?;
    let mut results = Vec::with_capacity(group.len());
    let mut checkpoints = Vec::new();
    for (i, work) in group.into_iter().enumerate() {
        let r = match work {
            Work::Record(batch) => plan.record(batch),
            Work::End(id, ending) => plan.end(&id, &ending, now),
            Work::Prune(request) => prune(&mut tx, &mut plan, &request, now).await,
            // Applied once the group's own links are written, so it seals them too.
            Work::Checkpoint(key) => {
                checkpoints.push((i, key));
                Ok(Done::Unit)
            }
            other => apply(&mut tx, &mut plan.owners, &other, now).await,
        };
        // A database failure inside one request fails the whole group, so that nothing is
        // half-applied and nobody is told "written" by a group that did not commit.
        if let Err(StoreError::Internal(e)) = &r {
            anyhow::bail!("{e:#}");
        }
        results.push(r);
    }
    let last_change = flush(&mut tx, &mut plan, &mut results).await?;
    plan.answer(&mut results);
    for (i, key) in checkpoints {
        results[i] = Ok(Done::Checkpointed(
            writes::sign_checkpoints::<Sqlite>(&mut tx, &key).await?,
        ));
    }
    tx.commit().await?;
    Ok(((results, last_change), plan.owners))
}

/// `head` followed by `(?, ?, ...)` with one bind per item.
fn in_list<'a>(head: &str, items: impl IntoIterator<Item = &'a str>) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(head);
    q.push(" (");
    let mut list = q.separated(", ");
    for item in items {
        list.push_bind(item);
    }
    q.push(")");
    q
}

/// Reads every activity the group names, the owner of every site it records on that is not
/// cached, and the chain heads of the accounts it may append to.
async fn prefetch(
    conn: &mut SqliteConnection,
    plan: &mut Plan,
    group: &[Work],
) -> anyhow::Result<()> {
    let (ids, sites) = plan.wanted(group);
    for chunk in ids.chunks(MAX_BINDS) {
        let head = format!("SELECT {COLS}, request_sha256 FROM activities WHERE id IN");
        let mut q = in_list(&head, chunk.iter().copied());
        let found: Vec<rows::Prefetched> = q.build_query_as().fetch_all(&mut *conn).await?;
        for p in found {
            let change_no = p.row.change_no;
            plan.found(p.row.decode()?, p.request_sha256, change_no);
        }
    }
    for chunk in sites.chunks(MAX_BINDS) {
        let mut q = in_list(
            "SELECT id, account_id FROM sites WHERE id IN",
            chunk.iter().copied(),
        );
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
        let mut q = in_list(
            "SELECT account_id, link_no, link_sha256 FROM chain_heads WHERE account_id IN",
            chunk.iter().map(String::as_str),
        );
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

/// Writes the planned rows, the ends, the links and the counter.
async fn flush(
    conn: &mut SqliteConnection,
    plan: &mut Plan,
    results: &mut [StoreResult<Done>],
) -> anyhow::Result<Option<i64>> {
    const COLUMNS: usize = 19;
    let inserts = std::mem::take(&mut plan.inserts);
    let mut seqs = Vec::with_capacity(inserts.len());
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
        // `seq` is the rowid; SQLite returns the rows of a multi-row INSERT in no set order.
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
        .bind(a.description.as_str())
        .bind(a.error.as_deref())
        .bind(serde_json::to_string(&a.details)?)
        .bind(t.change_no)
        .bind(search.internal)
        .bind(search.client)
        .bind(a.id.as_str())
        .execute(&mut *conn)
        .await?;
        anyhow::ensure!(
            updated.rows_affected() == 1,
            "activity {id} did not end: the log was written around the store"
        );
    }

    for chunk in plan.chains.links.chunks(MAX_BINDS / 5) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chain_links (account_id, link_no, activity_id, content_sha256, \
             link_sha256) ",
        );
        q.push_values(chunk, |mut b, l| {
            b.push_bind(l.account_id.as_str())
                .push_bind(l.link_no)
                .push_bind(l.activity_id.as_str())
                .push_bind(&l.content_sha256[..])
                .push_bind(&l.link_sha256[..]);
        });
        q.build().execute(&mut *conn).await?;
    }
    // One statement for every head the group moved (a group of single activities from many
    // publishers moves many accounts' heads).
    let heads = plan.chains.moved_heads();
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
    let selected = writes::prunable::<Sqlite>(conn, request).await?;
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
            writes::set_retention::<Sqlite>(conn, account, *days).await
        }
        Work::RecordAccess(batch) => {
            for chunk in batch.chunks(MAX_BINDS / 9) {
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
                        .push_bind(a.query.as_str())
                        .push_bind(a.at.millis());
                });
                q.build().execute(&mut *conn).await?;
            }
            Ok(Done::Unit)
        }
        Work::AddToRoster(entries) => {
            for chunk in entries.chunks(MAX_BINDS / 4) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO support_roster (account_id, email, name, added_at) ",
                );
                q.push_values(chunk, |mut b, e| {
                    b.push_bind(e.account.as_str())
                        .push_bind(e.email.as_str())
                        .push_bind(e.name.as_str())
                        .push_bind(e.added_at.millis());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *conn).await?;
            }
            Ok(Done::Unit)
        }
        Work::Record(_) | Work::End(..) | Work::Prune(_) | Work::Checkpoint(_) => {
            unreachable!("the group's plan applies these")
        }
        Work::UpsertAccount(a) => writes::upsert_account::<Sqlite>(conn, a, now).await,
        Work::UpsertSite(s) => writes::upsert_site::<Sqlite>(conn, owners, s, now).await,
        Work::CreateKey(key) => writes::create_key::<Sqlite>(conn, key, now).await,
    }
}
