//! PostgreSQL, for when one machine is not enough: several sitetrail servers may share one
//! database.
//!
//! Writes use the same group commit as SQLite ([`crate::writer`]). Each group first locks the
//! `change` counter row and holds it until COMMIT, so the groups of every server commit one
//! at a time and change numbers are handed out in commit order: a feed polling by
//! `change_no` never passes a lower number that is still to commit. A group is planned in
//! memory from one read of the rows it touches, then written with one `COPY` and one
//! statement for its links and the counter: a handful of round trips per group, whatever its
//! size. The writer keeps two connections: while one group's links and commit go out on one,
//! the next group's rows go out on the other, and that group takes the counter's lock only
//! after them ([`PgWriter::apply_groups`]). The commit carries a NOTIFY, so every server's
//! feed wakes at once; polling remains the fallback.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Audience, Colour, Email, Ending, NewActivity,
    Page, Roster, Site, SiteId, StoredActivity, Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres, QueryBuilder, Row};
use tokio::sync::{broadcast, oneshot};

use crate::chain::{self, AccountReport, Chains, CheckpointBody, CheckpointKey};
use crate::copy::CopyRows;
use crate::keys::{self, ApiKey, KeyCache, KeyCheck, StoredKey};
use crate::plan::Plan;
use crate::record::{self, SearchText};
use crate::roster::{self, RosterEntry};
use crate::rows::{self, ActivityRow, COLS, SITE_COLS, SiteRow};
use crate::writer::{Done, GroupOutcome, GroupWriter, Groups, Work, WriterHandle};
use crate::{
    Access, Change, ChangeKind, Listing, PruneRequest, Pruned, Recorded, Scope, Store, StoreError,
    StoreResult,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The NOTIFY channel every commit that changes an activity signals, with its last change
/// number as the payload.
pub const CHANNEL: &str = "sitetrail_changes";

/// Read connections per server. Reads are short index range scans; more connections than
/// this only queue on two cores.
const READ_CONNECTIONS: u32 = 8;

pub struct PgStore {
    read: PgPool,
    /// Exports' connections, apart from the pages' (see [`crate::export`]).
    export: PgPool,
    writer: WriterHandle,
    ahead: Arc<AheadCounts>,
    keys: KeyCache,
    roster_written: roster::Written,
    commits: broadcast::Sender<i64>,
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
            .max_connections(crate::EXPORT_READERS as u32)
            .min_connections(0)
            .acquire_timeout(crate::export::READER_WAIT)
            .connect_lazy_with(options.clone().options([("enable_sort", "off")]));
        let (commits, _) = broadcast::channel(1024);
        let ahead = Arc::new(AheadCounts::default());
        let writer = WriterHandle::spawn_on_own_runtime(
            PgWriter {
                options: options.clone(),
                conns: [None, None],
                sites: HashMap::new(),
                heads: HashMap::new(),
                seen: None,
                seqs: VecDeque::new(),
                share: AheadShare::START,
                ahead: ahead.clone(),
            },
            commits.clone(),
        )?;
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(listen(listen_pool, commits.downgrade(), stopped));
        Ok(PgStore {
            read,
            export,
            writer,
            ahead,
            keys: KeyCache::default(),
            roster_written: roster::Written::default(),
            commits,
            _stop_listening: stop,
        })
    }

    /// How often this server's writer wrote a group ahead of the commit before it, and how
    /// often such a group was planned again.
    pub fn ahead_counts(&self) -> &AheadCounts {
        &self.ahead
    }

    /// PostgreSQL's plan for a list query, one line per node: lets tests prove a page comes
    /// from an index range without a sort.
    pub async fn explain_list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Vec<String>> {
        let mut q = rows::list_query::<Postgres>("EXPLAIN SELECT ", scope, audience, filter, page);
        let found = q.build().fetch_all(&self.read).await?;
        found
            .iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Refreshes the planner's statistics (after a bulk load).
    pub async fn analyze(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE activities")
            .execute(&self.read)
            .await?;
        Ok(())
    }
}

/// The writer's session: a writer that stalls inside a transaction must not hold the
/// counter (and so every other server's writes) for long.
/// Its socket sends each message at once (see [`crate::nodelay`]).
async fn prepare_writer(conn: &mut PgConnection, options: &PgConnectOptions) -> anyhow::Result<()> {
    sqlx::query("SET idle_in_transaction_session_timeout = '30s'")
        .execute(&mut *conn)
        .await
        .context("setting up the writer's session")?;
    let host = options.get_host();
    // A Unix socket (a path) has no Nagle's algorithm.
    if !host.starts_with('/')
        && let Ok(addrs) = tokio::net::lookup_host((host, options.get_port())).await
    {
        let servers: Vec<_> = addrs.collect();
        crate::nodelay::set_on_connections_to(&servers);
    }
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

struct PgWriter {
    options: PgConnectOptions,
    /// Two connections, so that one group's rows go out while the group before it commits
    /// ([`PgWriter::apply_groups`]). `None` before the first group and after a failure broke
    /// the connection; the next group that needs it connects.
    conns: [Option<PgConnection>; 2],
    /// Which account each site belongs to (a site never moves).
    sites: HashMap<SiteId, AccountId>,
    /// The chain heads as this writer's last commit left them, and the change counter's value
    /// then. Every write that moves a chain moves the counter, so while the counter still
    /// reads that value no other server has written and these heads are the database's.
    heads: HashMap<String, (i64, chain::Hash)>,
    seen: Option<i64>,
    /// `seq` numbers taken under the counter's lock and not used yet: a group written ahead
    /// takes its numbers from here, without the lock.
    seqs: VecDeque<i64>,
    /// The share of its rows a group written ahead writes before it takes the lock.
    share: AheadShare,
    ahead: Arc<AheadCounts>,
}

/// How often groups were written ahead of the commit before them, and how often one of them
/// had to be planned again (another server wrote in between, or the group before failed).
#[derive(Debug, Default)]
pub struct AheadCounts {
    pub written: AtomicU64,
    pub replanned: AtomicU64,
    /// Groups written ahead that left part of their rows to write under the lock.
    pub split: AtomicU64,
}

impl PgWriter {
    async fn connection(&mut self, slot: usize) -> anyhow::Result<&mut PgConnection> {
        if self.conns[slot].is_none() {
            let mut conn = PgConnection::connect_with(&self.options)
                .await
                .context("connecting the writer to PostgreSQL")?;
            prepare_writer(&mut conn, &self.options).await?;
            self.conns[slot] = Some(conn);
        }
        Ok(self.conns[slot].as_mut().expect("connected above"))
    }

    /// Opens a group on connection `slot`: takes the counter's lock, reads what the group
    /// names, plans it, and writes its rows.
    async fn start(&mut self, slot: usize, group: Vec<Work>) -> anyhow::Result<Copied> {
        let now = Timestamp::now();
        // Taken for the group, given back when it commits (and lost, harmlessly, when not).
        let cached = std::mem::take(&mut self.sites);
        let (seen, heads) = (self.seen.take(), std::mem::take(&mut self.heads));
        let records = records_in(&group);
        let wanted = (records + SEQS_AHEAD).saturating_sub(self.seqs.len());
        let conn = self.connection(slot).await?;
        let (counter, seqs) = begin(conn, wanted).await?;
        self.seqs.extend(seqs);
        let conn = self.conns[slot].as_mut().expect("connected above");
        let known = if seen == Some(counter) {
            heads
        } else {
            HashMap::new()
        };
        let mut plan = Plan::new(counter, cached);
        prefetch(conn, &mut plan, &group, &known).await?;
        let mut results = Vec::with_capacity(group.len());
        let mut checkpoints = Vec::new();
        for (i, work) in group.into_iter().enumerate() {
            let r = match work {
                Work::Record(batch) => plan.record(batch),
                Work::End(id, ending) => plan.end(&id, &ending, now),
                Work::UpsertAccount(a) => upsert_account(conn, &a, now).await,
                Work::UpsertSite(s) => upsert_site(conn, &mut plan.owners, &s, now).await,
                Work::CreateKey(k) => create_key(conn, &k, now).await,
                Work::SetRetention(account, days) => set_retention(conn, &account, days).await,
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
        let mut copied = Copied {
            plan,
            results,
            checkpoints,
            known,
            counter,
            written: 0,
        };
        write_rows(conn, &mut copied, &mut self.seqs, None).await?;
        Ok(copied)
    }

    /// Drops what the writer remembers between groups (after a failure).
    fn forget(&mut self) {
        self.sites.clear();
        self.heads.clear();
        self.seen = None;
    }

    /// Rolls back whatever connection `slot` has open; a connection that cannot is dropped.
    async fn roll_back(&mut self, slot: usize) {
        if let Some(conn) = self.conns[slot].as_mut()
            && sqlx::query("ROLLBACK").execute(conn).await.is_err()
        {
            self.conns[slot] = None;
        }
    }
}

/// `seq` numbers kept in hand beyond what the group that takes them needs: enough for the
/// group written ahead of the next commit.
const SEQS_AHEAD: usize = 8192;

/// How many activities a group may record.
fn records_in(group: &[Work]) -> usize {
    group
        .iter()
        .map(|w| match w {
            Work::Record(batch) => batch.len(),
            _ => 0,
        })
        .sum()
}

/// A group whose rows are written and whose transaction holds the change counter's lock:
/// what is left is its links, the counter, the answers and the commit.
struct Copied {
    plan: Plan,
    results: Vec<StoreResult<Done>>,
    checkpoints: Vec<(usize, CheckpointKey)>,
    /// The chain heads known before the group (with those in `plan`, all it may move).
    known: HashMap<String, (i64, chain::Hash)>,
    /// The counter's value when the group took its lock.
    counter: i64,
    /// How many of `plan.inserts`, from the first, have their rows written.
    written: usize,
}

/// What a group leaves behind it, for the group after it to be planned on before it commits.
struct After {
    counter: i64,
    owners: HashMap<SiteId, AccountId>,
    heads: HashMap<String, (i64, chain::Hash)>,
}

impl Copied {
    /// Hands on the counter, the site owners and the chain heads as this group leaves them.
    /// What is left of it is all its commit needs.
    fn hand_on(&mut self) -> After {
        let mut heads = std::mem::take(&mut self.known);
        heads.extend(self.plan.chains.heads().map(|(a, h)| (a.clone(), *h)));
        After {
            counter: self.plan.last_change().unwrap_or(self.counter),
            owners: std::mem::take(&mut self.plan.owners),
            heads,
        }
    }
}

/// Plans `group` on what the group before it leaves, reading nothing: possible when it only
/// records activities it names no id for (no replay or conflict to look up), on sites the
/// writer knows to be their account's, of accounts whose chain head it knows, with `seq`
/// numbers in hand: such a group's records cannot be refused.
/// Anything else is given back, to be applied after the group before it commits.
fn plan_ahead(
    group: Vec<Work>,
    after: After,
    seqs_in_hand: usize,
) -> Result<Copied, Box<(Vec<Work>, After)>> {
    let known = |p: &crate::record::Prepared| {
        !p.named
            && after.owners.get(&p.activity.site_id) == Some(&p.activity.account_id)
            && after.heads.contains_key(p.activity.account_id.as_str())
    };
    let plannable = group.iter().all(|w| match w {
        Work::Record(batch) => batch.iter().all(known),
        _ => false,
    });
    if !plannable || records_in(&group) > seqs_in_hand {
        return Err(Box::new((group, after)));
    }
    let After {
        counter,
        owners,
        heads,
    } = after;
    let mut plan = Plan::new(counter, owners);
    for work in &group {
        if let Work::Record(batch) = work {
            for p in batch {
                let account = p.activity.account_id.as_str();
                plan.chains.load_head(account, heads.get(account).copied());
            }
        }
    }
    let results = group
        .into_iter()
        .map(|w| match w {
            Work::Record(batch) => plan.record(batch),
            _ => unreachable!("only records are planned ahead"),
        })
        .collect();
    Ok(Copied {
        plan,
        results,
        checkpoints: Vec::new(),
        known: heads,
        counter,
        written: 0,
    })
}

/// The share of a group's rows written ahead of the commit before it, in percent; the rest go
/// in after the group takes the counter's lock, before its links. Both connections work at
/// once only while one group's rest, links and commit take as long as the next group's share:
/// after each such pair the share moves a step towards the side that finished first. Writing
/// every row ahead left one connection idle for most of each pair, and a quarter to a third
/// of the machine idle at ten million activities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AheadShare(u32);

impl AheadShare {
    const START: AheadShare = AheadShare(60);
    const LEAST: u32 = 10;
    const STEP: u32 = 5;

    fn percent(self) -> u32 {
        self.0
    }

    /// How many of `n` rows go ahead: at least one of a group that has any.
    fn of(self, n: usize) -> usize {
        (n * self.0 as usize).div_ceil(100)
    }

    /// The share for the next group, after the group before took `finishing` to finish while
    /// this one's share took `starting` to write.
    fn after(self, finishing: Duration, starting: Duration) -> Self {
        if starting > finishing {
            AheadShare(self.0.saturating_sub(Self::STEP).max(Self::LEAST))
        } else {
            AheadShare((self.0 + Self::STEP).min(100))
        }
    }
}

/// Runs `f`, and says how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let t = std::time::Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

/// Opens a transaction for a group planned ahead and writes its rows, without the counter's
/// lock: its activities are new and their ids its own, so their rows wait on nobody's.
async fn start_ahead(
    conn: &mut PgConnection,
    ahead: &mut Copied,
    seqs: &mut VecDeque<i64>,
    share: AheadShare,
) -> anyhow::Result<()> {
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
    write_rows(conn, ahead, seqs, Some(share)).await
}

/// Takes the counter's lock for a group written ahead, once the group before it has
/// committed (its lock is released then), and tops up the `seq` numbers in hand. `true`:
/// the counter reads what the group was planned on, so no other server wrote in between.
async fn lock_ahead(
    conn: &mut PgConnection,
    ahead: &Copied,
    seqs: &mut VecDeque<i64>,
) -> anyhow::Result<bool> {
    let wanted = SEQS_AHEAD.saturating_sub(seqs.len());
    let (counter, more) = lock_counter(conn, wanted).await?;
    seqs.extend(more);
    Ok(counter == ahead.counter)
}

/// Writes the rest of the group's rows (those a group written ahead left for after the lock),
/// its links, moves the counter, answers, signs checkpoints and commits.
async fn finish(conn: &mut PgConnection, group: &mut Copied) -> anyhow::Result<GroupOutcome> {
    let n = group.plan.inserts.len();
    if group.written < n {
        insert(&mut group.plan, conn, group.written..n).await?;
        group.written = n;
    }
    let last = group.plan.last_change();
    if last.is_some() || !group.plan.chains.links.is_empty() {
        write_links_and_counter(conn, &group.plan.chains, last).await?;
    }
    let mut results = std::mem::take(&mut group.results);
    group.plan.answer(&mut results);
    for (i, key) in std::mem::take(&mut group.checkpoints) {
        results[i] = Ok(Done::Checkpointed(sign_checkpoints(conn, &key).await?));
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok((results, last))
}

impl GroupWriter for PgWriter {
    async fn apply_group(&mut self, group: Vec<Work>) -> anyhow::Result<GroupOutcome> {
        let mut copied = self.start(0, group).await?;
        let after = copied.hand_on();
        let outcome = finish(self.connection(0).await?, &mut copied).await?;
        self.keep(after);
        Ok(outcome)
    }

    /// Pipelined: while one group's links and commit go out on one connection, the next
    /// group waiting, planned on what the first leaves, writes its rows on the other. It
    /// takes the counter's lock after them, so it commits after the first (readers never pass
    /// a change number still to commit), and checks that the counter reads what it was
    /// planned on; if another server wrote in between, or the first group failed, it rolls
    /// back and is planned again, from the database. Nobody is answered before their group
    /// has committed.
    async fn apply_groups(&mut self, first: Vec<Work>, groups: &mut Groups<'_>) {
        let mut next = Some(first);
        let mut current: Option<(usize, Copied)> = None;
        loop {
            let (slot, mut group) = match current.take() {
                Some(c) => c,
                None => {
                    let Some(works) = next.take().or_else(|| groups.take_waiting()) else {
                        return;
                    };
                    match self.start(0, works).await {
                        Ok(copied) => (0, copied),
                        Err(e) => {
                            groups.answer(Err(e));
                            self.recover().await;
                            continue;
                        }
                    }
                }
            };
            let after = group.hand_on();
            let mut ahead = None;
            let mut after = Some(after);
            if let Some(works) = groups.take_waiting() {
                let other = 1 - slot;
                let planned = match self.connection(other).await {
                    Ok(_) => plan_ahead(works, after.take().expect("kept"), self.seqs.len()),
                    Err(e) => {
                        tracing::warn!(error = ?e, "no second writer connection; groups go one at a time");
                        Err(Box::new((works, after.take().expect("kept"))))
                    }
                };
                match planned {
                    Ok(a) => ahead = Some(a),
                    Err(given) => {
                        let (works, back) = *given;
                        next = Some(works);
                        after = Some(back);
                    }
                }
            }
            let mut seqs = std::mem::take(&mut self.seqs);
            let share = self.share;
            let (conn, other_conn) = self.both_or_first(slot);
            let (finished, started) = match (&mut ahead, other_conn) {
                (Some(a), Some(other_conn)) => {
                    let ((f, finishing), (s, starting)) = tokio::join!(
                        timed(finish(conn, &mut group)),
                        timed(start_ahead(other_conn, a, &mut seqs, share))
                    );
                    if f.is_ok() && s.is_ok() {
                        self.share = share.after(finishing, starting);
                        metrics::gauge!("sitetrail_write_ahead_share_percent")
                            .set(f64::from(self.share.percent()));
                    }
                    (f, Some(s))
                }
                _ => (finish(conn, &mut group).await, None),
            };
            self.seqs = seqs;
            let committed = finished.is_ok();
            if !groups.answer(finished) {
                self.roll_back(slot).await;
            }
            let Some(mut a) = ahead else {
                match after {
                    Some(after) if committed => self.keep(after),
                    _ => self.forget(),
                }
                continue;
            };
            // The group written ahead goes on only if the one before committed, its rows
            // were written, and no other server wrote in between.
            let other = 1 - slot;
            let mut go_on = committed && matches!(started, Some(Ok(())));
            if go_on {
                let mut seqs = std::mem::take(&mut self.seqs);
                let conn = self.conns[other].as_mut().expect("connected above");
                go_on = matches!(lock_ahead(conn, &a, &mut seqs).await, Ok(true));
                self.seqs = seqs;
            }
            if go_on {
                self.ahead.written.fetch_add(1, Ordering::Relaxed);
                if a.written < a.plan.inserts.len() {
                    self.ahead.split.fetch_add(1, Ordering::Relaxed);
                }
                metrics::counter!("sitetrail_write_groups_ahead_total").increment(1);
                current = Some((other, a));
            } else {
                self.ahead.replanned.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sitetrail_write_groups_replanned_total").increment(1);
                self.roll_back(other).await;
                self.forget();
                match a.plan.unplan(std::mem::take(&mut a.results)) {
                    Some(works) => next = Some(works),
                    None => {
                        groups.answer(Err(anyhow::anyhow!(
                            "a group written ahead could not be planned again"
                        )));
                    }
                }
            }
        }
    }

    async fn recover(&mut self) {
        self.forget();
        for slot in 0..2 {
            self.roll_back(slot).await;
        }
    }
}

impl PgWriter {
    /// Keeps what a committed group left for the next group to start from.
    fn keep(&mut self, after: After) {
        self.sites = after.owners;
        // A bound on memory for a store of very many accounts: start afresh past it.
        if after.heads.len() <= HEADS_KEPT {
            self.heads = after.heads;
            self.seen = Some(after.counter);
        }
    }

    /// The connection at `slot`, and the other if it is open.
    fn both_or_first(&mut self, slot: usize) -> (&mut PgConnection, Option<&mut PgConnection>) {
        let [a, b] = &mut self.conns;
        let (this, other) = if slot == 0 { (a, b) } else { (b, a) };
        (
            this.as_mut().expect("the group's connection is open"),
            other.as_mut(),
        )
    }
}

/// Opens the group's transaction, takes the change counter's lock (which orders every
/// server's writes) and its value, and takes `seqs` more `seq` numbers: one round trip.
async fn begin(conn: &mut PgConnection, seqs: usize) -> anyhow::Result<(i64, Vec<i64>)> {
    counter_and_seqs(conn, "BEGIN; ", seqs).await
}

/// [`begin`] inside a transaction already open.
async fn lock_counter(conn: &mut PgConnection, seqs: usize) -> anyhow::Result<(i64, Vec<i64>)> {
    counter_and_seqs(conn, "", seqs).await
}

async fn counter_and_seqs(
    conn: &mut PgConnection,
    first: &str,
    seqs: usize,
) -> anyhow::Result<(i64, Vec<i64>)> {
    let mut sql = format!("{first}SELECT value FROM counters WHERE name = 'change' FOR UPDATE");
    if seqs > 0 {
        // A number of the writer's own making, not input: nothing to quote.
        write!(sql, "; {}", take_seqs(seqs))?;
    }
    let rows = sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    let mut values = rows.iter().map(|r| r.try_get::<i64, _>(0));
    let counter = values.next().context("the change counter is missing")??;
    let taken = match values.next() {
        Some(last) => seq_range(last?, seqs),
        None => Vec::new(),
    };
    anyhow::ensure!(values.next().is_none(), "an unexpected row began the group");
    Ok((counter, taken))
}

/// A statement that takes `n` consecutive `seq` numbers from the activities' identity
/// sequence and returns the last. One `nextval` per number cost PostgreSQL about 5 µs each,
/// a tenth of a 4,000-activity group's time; this is two calls. The range is whole because
/// only writers take numbers, and a writer holds the counter's lock while it does.
fn take_seqs(n: usize) -> String {
    const SEQ: &str = "pg_get_serial_sequence('activities', 'seq')";
    format!("SELECT setval({SEQ}, nextval({SEQ}) + {n} - 1)")
}

/// The `n` numbers that end with `last`, in order.
fn seq_range(last: i64, n: usize) -> Vec<i64> {
    let n = n as i64;
    (last - n + 1..=last).collect()
}

/// The most chain heads the writer keeps between groups.
const HEADS_KEPT: usize = 100_000;

/// Reads every activity the group names, the owner of every site it records on that is not
/// cached yet, and the chain heads of the accounts it may append to that are not `known`:
/// three queries at most.
async fn prefetch(
    conn: &mut PgConnection,
    plan: &mut Plan,
    group: &[Work],
    known: &HashMap<String, (i64, chain::Hash)>,
) -> anyhow::Result<()> {
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
    let (known_heads, unknown): (Vec<String>, Vec<String>) =
        accounts.into_iter().partition(|a| known.contains_key(a));
    for account in known_heads {
        plan.chains
            .load_head(&account, known.get(&account).copied());
    }
    if !unknown.is_empty() {
        // A head is its chain's newest link: one backward probe of the links' key each.
        let found: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT a, h.link_no, h.link_sha256 FROM UNNEST($1::text[]) a \
             CROSS JOIN LATERAL (SELECT link_no, link_sha256 FROM chain_links \
             WHERE account_id = a ORDER BY link_no DESC LIMIT 1) h",
        )
        .bind(&unknown)
        .fetch_all(&mut *conn)
        .await?;
        let mut heads: HashMap<String, (i64, chain::Hash)> = HashMap::new();
        for (account, no, hash) in found {
            heads.insert(account, chain::decode_head((no, hash))?);
        }
        for account in unknown {
            let head = heads.get(&account).copied();
            plan.chains.load_head(&account, head);
        }
    }
    Ok(())
}

/// Numbers the group's new rows from the `seq` numbers in hand, gives the answers their `seq`,
/// and writes the rows (one `COPY`) and the group's ends. A group holding the counter's lock
/// (`ahead` is `None`) may take more numbers, and writes every row. One written ahead was
/// planned only with enough numbers in hand, and writes the first `ahead` share of its rows;
/// [`finish`] writes the rest, under the lock, while the next group writes ahead.
async fn write_rows(
    conn: &mut PgConnection,
    group: &mut Copied,
    seqs: &mut VecDeque<i64>,
    ahead: Option<AheadShare>,
) -> anyhow::Result<()> {
    let plan = &mut group.plan;
    if !plan.inserts.is_empty() {
        let n = plan.inserts.len();
        if seqs.len() < n {
            anyhow::ensure!(
                ahead.is_none(),
                "a group written ahead ran out of seq numbers"
            );
            let more = n - seqs.len();
            let last: i64 = sqlx::query_scalar(AssertSqlSafe(take_seqs(more)))
                .fetch_one(&mut *conn)
                .await?;
            seqs.extend(seq_range(last, more));
        }
        // Taken now, in order, even for the rows written later: the next group written ahead
        // takes its numbers from the same hand before this one commits.
        let assigned = plan.inserts.iter().cloned().zip(seqs.drain(..n)).collect();
        plan.assign_seqs(assigned, &mut group.results);
        let now = ahead.map_or(n, |share| share.of(n));
        if now > 0 {
            insert(plan, conn, 0..now).await?;
        }
        group.written = now;
    }
    if !plan.ends.is_empty() {
        update_ends(plan, conn).await?;
    }
    Ok(())
}

/// Bytes of `COPY` rows sent at a time: about 250 activities.
const COPY_PIECE: usize = 256 * 1024;

/// The activities columns a group's `COPY` fills, in its order.
const COPY_ACTIVITIES: &str = "COPY activities (seq, id, account_id, site_id, environment, \
     service, activity, status, actor_kind, actor_email, actor_name, description, error, \
     details, created_at, completed_at, change_no, request_sha256, search_internal, \
     search_client) FROM STDIN (FORMAT binary)";

/// Inserts the group's new activities in `range` with one `COPY`, each with the `seq` number
/// it was given.
async fn insert(
    plan: &mut Plan,
    conn: &mut PgConnection,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let inserts = std::mem::take(&mut plan.inserts);
    let n = range.len();
    // The rows go out in pieces as they are written, so PostgreSQL inserts the first while
    // the writer renders the rest (the whole group's text took a tenth of its time).
    let mut copy = conn.copy_in_raw(COPY_ACTIVITIES).await?;
    let mut rows = CopyRows::with_capacity(COPY_PIECE + 16 * 1024);
    for id in &inserts[range] {
        let rendered = plan.take_rendered(id);
        let t = &plan.touched[id];
        let a = &t.activity;
        rows.int(a.seq)
            .text(a.id.as_str())
            .text(a.account_id.as_str())
            .text(a.site_id.as_str())
            .text(a.environment.as_str())
            .text(a.service.as_str())
            .text(a.activity.as_str())
            .text(a.status.as_str())
            .text(a.actor.kind.as_str())
            .opt_text(a.actor.email.as_ref().map(Email::expose))
            .opt_text(a.actor.name.as_deref())
            .text(&a.description)
            .opt_text(a.error.as_deref())
            .text(&rendered.details_json)
            .int(a.created_at.millis())
            .opt_int(a.completed_at.map(Timestamp::millis))
            .int(t.change_no)
            .bytea(&t.request_sha256)
            .text(&rendered.search.internal)
            .opt_text(rendered.search.client.as_deref());
        rows.end_row();
        if rows.len() >= COPY_PIECE {
            copy.send(rows.take()).await?;
        }
    }
    plan.inserts = inserts;
    copy.send(rows.into_bytes()).await?;
    let copied = copy.finish().await?;
    anyhow::ensure!(copied == n as u64, "copied {copied} of {n} activities");
    Ok(())
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

async fn upsert_account(conn: &mut PgConnection, a: &Account, now: Timestamp) -> StoreResult<Done> {
    let settings = serde_json::json!({
        "partner_colour": a.partner_colour.as_ref().map(Colour::as_str),
    });
    sqlx::query(
        "INSERT INTO accounts (id, name, partner, settings, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
         partner = excluded.partner, settings = excluded.settings, \
         updated_at = excluded.updated_at",
    )
    .bind(a.id.as_str())
    .bind(&a.name)
    .bind(&a.partner)
    .bind(settings.to_string())
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    Ok(Done::Unit)
}

async fn upsert_site(
    conn: &mut PgConnection,
    owners: &mut HashMap<SiteId, AccountId>,
    s: &Site,
    now: Timestamp,
) -> StoreResult<Done> {
    let account: Option<String> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = $1")
        .bind(s.account_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if account.is_none() {
        return Err(sitetrail_core::InvalidField::new("account_id", "unknown account").into());
    }
    let owner: Option<String> = sqlx::query_scalar("SELECT account_id FROM sites WHERE id = $1")
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
         staging_docroot, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
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
    .execute(&mut *conn)
    .await?;
    owners.insert(s.id.clone(), s.account_id.clone());
    Ok(Done::Unit)
}

async fn set_retention(
    conn: &mut PgConnection,
    account: &AccountId,
    days: Option<u32>,
) -> StoreResult<Done> {
    let updated = sqlx::query("UPDATE accounts SET retention_days = $1 WHERE id = $2")
        .bind(days.map(|d| d as i32))
        .bind(account.as_str())
        .execute(&mut *conn)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(Done::Unit)
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
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
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

/// The `chain_links` columns a group's `COPY` fills, in its order.
const COPY_LINKS: &str = "COPY chain_links (account_id, link_no, activity_id, content_sha256, \
     link_sha256) FROM STDIN (FORMAT binary)";

/// Links a group writes in its counter's statement; more go first by `COPY`.
const LINKS_IN_STATEMENT: usize = 64;

/// Writes the links a group appended (a chain's head is its newest link: nothing else moves)
/// and moves the change counter with a NOTIFY to every server's listener. A few links go in
/// that one statement (a group of single requests waits on each round trip); many go first
/// by `COPY`, which writes a page of them with each WAL record where an `INSERT` of many rows
/// writes one record per row.
async fn write_links_and_counter(
    conn: &mut PgConnection,
    chains: &Chains,
    last_change: Option<i64>,
) -> anyhow::Result<()> {
    let mut inline = &chains.links[..];
    if inline.len() > LINKS_IN_STATEMENT {
        let n = inline.len();
        let mut rows = CopyRows::with_capacity(n * 200);
        for l in inline {
            rows.text(&l.account_id)
                .int(l.link_no)
                .text(&l.activity_id)
                .bytea(&l.content_sha256)
                .bytea(&l.link_sha256);
            rows.end_row();
        }
        let mut copy = conn.copy_in_raw(COPY_LINKS).await?;
        copy.send(rows.into_bytes()).await?;
        let copied = copy.finish().await?;
        anyhow::ensure!(copied == n as u64, "copied {copied} of {n} chain links");
        inline = &[];
    }
    let n = inline.len();
    let mut account = Vec::with_capacity(n);
    let mut link_no = Vec::with_capacity(n);
    let mut activity = Vec::with_capacity(n);
    let mut content = Vec::with_capacity(n);
    let mut link = Vec::with_capacity(n);
    for l in inline {
        account.push(l.account_id.as_str());
        link_no.push(l.link_no);
        activity.push(l.activity_id.as_str());
        content.push(&l.content_sha256[..]);
        link.push(&l.link_sha256[..]);
    }
    // Each part of a WITH that writes runs once, whether or not the rest refers to it.
    sqlx::query(
        "WITH links AS (INSERT INTO chain_links (account_id, link_no, activity_id, \
         content_sha256, link_sha256) \
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::bytea[], $5::bytea[])), \
         moved AS (UPDATE counters SET value = $6 WHERE name = 'change' AND $6 IS NOT NULL \
         RETURNING value) \
         SELECT pg_notify($7, value::text) FROM moved",
    )
    .bind(account)
    .bind(link_no)
    .bind(activity)
    .bind(content)
    .bind(link)
    .bind(last_change)
    .bind(CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Signs a checkpoint for every chain whose head is past its last checkpoint.
async fn sign_checkpoints(
    conn: &mut PgConnection,
    key: &CheckpointKey,
) -> anyhow::Result<Vec<CheckpointBody>> {
    let moved: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(chain::HEADS_PAST_THEIR_CHECKPOINT)
        .fetch_all(&mut *conn)
        .await?;
    let made_at = Timestamp::now();
    let mut out = Vec::with_capacity(moved.len());
    for head in moved {
        let body = CheckpointBody::of_head(head, made_at)?;
        sqlx::query(
            "INSERT INTO chain_checkpoints (account_id, link_no, link_sha256, made_at, \
             public_key, signature) VALUES ($1, $2, $3, $4, $5, $6)",
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

async fn create_key(conn: &mut PgConnection, key: &ApiKey, now: Timestamp) -> StoreResult<Done> {
    sqlx::query(
        "INSERT INTO api_keys (id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(key.secret_sha256())
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    Ok(Done::Unit)
}

#[async_trait]
impl Store for PgStore {
    async fn upsert_account(&self, account: &Account) -> StoreResult<()> {
        self.writer
            .write(Work::UpsertAccount(account.clone()))
            .await
            .map(|_| ())
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT name, partner, settings FROM accounts WHERE id = $1")
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
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
        q.push(SITE_COLS)
            .push(" FROM sites WHERE id = ")
            .push_bind(id.as_str());
        let row: Option<SiteRow> = q.build_query_as().fetch_optional(&self.read).await?;
        row.map(SiteRow::decode).transpose()
    }

    async fn sites_of(&self, account: &AccountId) -> StoreResult<Vec<Site>> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
        q.push(SITE_COLS)
            .push(" FROM sites WHERE account_id = ")
            .push_bind(account.as_str())
            .push(" ORDER BY name, id");
        let found: Vec<SiteRow> = q.build_query_as().fetch_all(&self.read).await?;
        found.into_iter().map(SiteRow::decode).collect()
    }

    async fn hosted_sites(&self) -> StoreResult<Vec<Site>> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
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
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
        q.push(COLS)
            .push(" FROM activities WHERE id = ")
            .push_bind(id.as_str());
        let row: Option<ActivityRow> = q.build_query_as().fetch_optional(&self.read).await?;
        row.map(ActivityRow::decode).transpose()
    }

    async fn list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Listing> {
        let mut q = rows::list_query::<Postgres>("SELECT ", scope, audience, filter, page);
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
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
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
        let days: Option<Option<i32>> =
            sqlx::query_scalar("SELECT retention_days FROM accounts WHERE id = $1")
                .bind(account.as_str())
                .fetch_optional(&self.read)
                .await?;
        Ok(record::retention(days.flatten().map(i64::from)))
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
        // One snapshot: the chain, the checkpoints and the activities as of one moment,
        // whatever every server writes meanwhile.
        let mut tx = self.read.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let mut reports = Vec::with_capacity(accounts.len());
        for account in accounts {
            reports.push(
                crate::verify::account::<Postgres>(
                    &mut tx,
                    &account,
                    trusted,
                    crate::verify::HEAD_LINK,
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

    async fn roster(&self, account: &AccountId) -> StoreResult<Roster> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT email, name FROM support_roster WHERE account_id IN ( \
               SELECT $1::text UNION \
               SELECT id FROM accounts WHERE partner = \
                 (SELECT partner FROM accounts WHERE id = $1)) \
             LIMIT $2",
        )
        .bind(account.as_str())
        .bind(roster::MAX_ROSTER + 1)
        .fetch_all(&self.read)
        .await?;
        Ok(roster::from_rows(rows))
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
        let mut q = QueryBuilder::<Postgres>::new("SELECT ");
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
                    sqlx::query_as("SELECT name, secret_sha256 FROM api_keys WHERE id = $1")
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
        crate::export::postgres(&self.export, scope, audience, filter, columns).await
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
    fn a_seq_range_ends_with_the_number_taken_last() {
        assert_eq!(seq_range(10, 3), [8, 9, 10]);
        assert_eq!(seq_range(1, 1), [1]);
        assert!(seq_range(7, 0).is_empty());
        assert_eq!(
            take_seqs(4000),
            "SELECT setval(pg_get_serial_sequence('activities', 'seq'), \
             nextval(pg_get_serial_sequence('activities', 'seq')) + 4000 - 1)"
        );
    }

    #[test]
    fn a_group_written_ahead_writes_its_share_and_at_least_one_row() {
        let share = AheadShare(60);
        assert_eq!(share.of(0), 0);
        assert_eq!(share.of(1), 1);
        assert_eq!(share.of(1000), 600);
        assert_eq!(share.of(999), 600);
        assert_eq!(AheadShare(100).of(1000), 1000);
        assert_eq!(AheadShare(AheadShare::LEAST).of(3), 1);
    }

    #[test]
    fn the_share_moves_towards_the_side_that_finished_first_and_stays_in_bounds() {
        let (fast, slow) = (Duration::from_millis(5), Duration::from_millis(9));
        let share = AheadShare::START;
        // The rows ahead took longer than the commit beside them: write fewer ahead.
        assert_eq!(
            share.after(fast, slow).percent(),
            share.percent() - AheadShare::STEP
        );
        // The commit took longer: the next group writes more of its rows ahead.
        assert_eq!(
            share.after(slow, fast).percent(),
            share.percent() + AheadShare::STEP
        );
        let mut low = share;
        let mut high = share;
        for _ in 0..100 {
            low = low.after(fast, slow);
            high = high.after(slow, fast);
        }
        assert_eq!(low.percent(), AheadShare::LEAST);
        assert_eq!(high.percent(), 100);
    }

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
