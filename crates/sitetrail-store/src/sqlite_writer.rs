//! SQLite's side of group commit: the one writing connection, opened with rusqlite and used
//! by nobody else, on the writer's own thread. A whole group is applied in one
//! `BEGIN IMMEDIATE` transaction, with statements prepared once and kept: no handoff between
//! threads inside a group, and values bound without being copied (the sqlx connection it
//! replaced paid both for every row, BENCHMARKS.md).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use sitetrail_core::{AccountId, Colour, Email, SiteId, Timestamp};

use crate::chain::{self, CheckpointBody, CheckpointKey};
use crate::plan::Plan;
use crate::record::SearchText;
use crate::rows::{ActivityRow, COLS};
use crate::wal_vfs;
use crate::writer::{BlockingGroupWriter, Done, GroupOutcome, Work};
use crate::{PruneRequest, Pruned, StoreError, StoreResult};

pub(crate) struct SqliteWriter {
    path: PathBuf,
    wal_bytes: i64,
    /// `None` only while a group is being applied (or after one panicked: the next group
    /// reconnects).
    conn: Option<Connection>,
    /// Which account each site belongs to (a site never moves).
    sites: HashMap<SiteId, AccountId>,
    /// Set by the store's checkpoint task when the WAL has grown past its limit.
    restart_wal: Arc<AtomicBool>,
}

/// Opens the writing connection with the settings every write relies on.
fn connect(path: &Path, wal_bytes: i64) -> anyhow::Result<Connection> {
    wal_vfs::register()
        .map_err(|rc| anyhow::anyhow!("registering the WAL-combining VFS failed ({rc})"))?;
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        wal_vfs::VFS_NAME,
    )
    .with_context(|| format!("opening the SQLite database {} to write", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "SQLite refused WAL mode ({mode})"
    );
    // FULL: a commit is on disk before anyone is answered (invariant 6).
    // The WAL-combining VFS relies on it too: its held frames are written out at the sync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    anyhow::ensure!(
        synchronous == 2,
        "SQLite refused synchronous = FULL ({synchronous})"
    );
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The writer never checkpoints: a commit that crossed the autocheckpoint threshold would
    // copy the WAL into the database file and fsync it before anyone in its group is
    // answered. The store's checkpoint task does it in the background.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // When the WAL starts afresh, its file is cut back to this size.
    conn.pragma_update(None, "journal_size_limit", wal_bytes)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl SqliteWriter {
    /// `wal_bytes`: the size the WAL's file is cut back to when it starts afresh.
    pub fn open(path: &Path, restart_wal: Arc<AtomicBool>, wal_bytes: i64) -> anyhow::Result<Self> {
        Ok(SqliteWriter {
            path: path.to_owned(),
            wal_bytes,
            conn: Some(connect(path, wal_bytes)?),
            sites: HashMap::new(),
            restart_wal,
        })
    }
}

impl BlockingGroupWriter for SqliteWriter {
    fn apply_group(&mut self, group: Vec<Work>) -> anyhow::Result<GroupOutcome> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => connect(&self.path, self.wal_bytes)?,
        };
        // A panic inside the group loses the connection (and the open transaction with it)
        // and fails the group; the next group reconnects.
        let sites = &mut self.sites;
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| apply_group(&mut conn, sites, group)))
                .map_err(|_| anyhow::anyhow!("the SQLite writer panicked"))?;
        self.conn = Some(conn);
        outcome
    }

    fn recover(&mut self) {
        // The failed group's transaction was rolled back when it was dropped. The next group
        // starts afresh, on a new connection too.
        self.sites.clear();
        self.conn = None;
    }

    /// Restarts the WAL when the checkpoint task asked for it, after the last group's
    /// answers went out and before the next group: the one moment no write transaction is
    /// open. Requests arriving meanwhile wait and make the next group larger.
    fn between_groups(&mut self) {
        if !self.restart_wal.load(Ordering::Relaxed) {
            return;
        }
        let Some(conn) = &self.conn else {
            return;
        };
        let restarted = restart_wal(conn);
        // Asked again by the next checkpoint if the WAL is still too long: a reader that
        // holds the restart back (a long export) then costs writers one wait per checkpoint,
        // not one per group.
        self.restart_wal.store(false, Ordering::Relaxed);
        match restarted {
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
fn restart_wal(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(Duration::from_millis(100))?;
    let busy: rusqlite::Result<i64> =
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0));
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(busy? == 0)
}

/// Applies every request and commits once. On `Err` the transaction is rolled back (dropped)
/// and the site cache is left empty.
fn apply_group(
    conn: &mut Connection,
    sites: &mut HashMap<SiteId, AccountId>,
    group: Vec<Work>,
) -> anyhow::Result<GroupOutcome> {
    let now = Timestamp::now();
    // The write lock is ours until COMMIT: read the counter and the chain heads once
    // (another process may have written the file since the last group), plan the group in
    // memory, write it, commit once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let start: i64 = tx.query_row(
        "SELECT value FROM counters WHERE name = 'change'",
        [],
        |r| r.get(0),
    )?;
    let mut plan = Plan::new(start, std::mem::take(sites));
    prefetch(&tx, &mut plan, &group)?;
    let mut results = Vec::with_capacity(group.len());
    let mut checkpoints = Vec::new();
    for (i, work) in group.into_iter().enumerate() {
        let r = match work {
            Work::Record(batch) => plan.record(batch),
            Work::End(id, ending) => plan.end(&id, &ending, now),
            Work::Prune(request) => prune(&tx, &mut plan, &request, now),
            // Applied once the group's own links are written, so it seals them too.
            Work::Checkpoint(key) => {
                checkpoints.push((i, key));
                Ok(Done::Unit)
            }
            other => apply(&tx, &mut plan.owners, &other, now),
        };
        // A database failure inside one request fails the whole group, so that nothing is
        // half-applied and nobody is told "written" by a group that did not commit.
        if let Err(StoreError::Internal(e)) = &r {
            anyhow::bail!("{e:#}");
        }
        results.push(r);
    }
    let last_change = flush(&tx, &mut plan, &mut results)?;
    plan.answer(&mut results);
    for (i, key) in checkpoints {
        results[i] = Ok(Done::Checkpointed(sign_checkpoints(&tx, &key)?));
    }
    tx.commit()?;
    *sites = plan.owners;
    Ok((results, last_change))
}

static SELECT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLS}, request_sha256 FROM activities WHERE id = ?1"));

static SELECT_PRUNABLE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLS} FROM activities WHERE account_id = ?1 AND created_at < ?2 \
         AND status <> 'in_progress' AND activity <> 'prune_activity_log' \
         ORDER BY created_at, seq LIMIT ?3"
    )
});

/// An activity's columns in the order of [`COLS`].
fn activity_row(r: &Row<'_>) -> rusqlite::Result<ActivityRow> {
    Ok(ActivityRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        account_id: r.get(2)?,
        site_id: r.get(3)?,
        environment: r.get(4)?,
        service: r.get(5)?,
        activity: r.get(6)?,
        status: r.get(7)?,
        actor_kind: r.get(8)?,
        actor_email: r.get(9)?,
        actor_name: r.get(10)?,
        description: r.get(11)?,
        error: r.get(12)?,
        details: r.get(13)?,
        created_at: r.get(14)?,
        completed_at: r.get(15)?,
        change_no: r.get(16)?,
    })
}

/// Reads every activity the group names, the owner of every site it records on that is not
/// cached, and the chain heads of the accounts it may append to.
fn prefetch(conn: &Connection, plan: &mut Plan, group: &[Work]) -> anyhow::Result<()> {
    let (ids, sites) = plan.wanted(group);
    let mut by_id = conn.prepare_cached(&SELECT_BY_ID)?;
    for id in ids {
        let found = by_id
            .query_row([id], |r| Ok((activity_row(r)?, r.get::<_, Vec<u8>>(17)?)))
            .optional()?;
        if let Some((row, request_sha256)) = found {
            let change_no = row.change_no;
            plan.found(row.decode()?, request_sha256, change_no);
        }
    }
    let mut owner = conn.prepare_cached("SELECT account_id FROM sites WHERE id = ?1")?;
    for site in sites {
        let found: Option<String> = owner.query_row([site], |r| r.get(0)).optional()?;
        if let Some(account) = found {
            plan.owners
                .insert(SiteId::parse(site)?, AccountId::parse(&account)?);
        }
    }
    let accounts: Vec<String> = plan
        .accounts(group)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut head =
        conn.prepare_cached("SELECT link_no, link_sha256 FROM chain_heads WHERE account_id = ?1")?;
    for account in &accounts {
        let found: Option<(i64, Vec<u8>)> = head
            .query_row([account], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let found = found.map(chain::decode_head).transpose()?;
        plan.chains.load_head(account, found);
    }
    Ok(())
}

/// Writes the planned rows, the ends, the links and the counter.
fn flush(
    conn: &Connection,
    plan: &mut Plan,
    results: &mut [StoreResult<Done>],
) -> anyhow::Result<Option<i64>> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO activities (id, account_id, site_id, environment, service, activity, \
         status, actor_kind, actor_email, actor_name, description, error, details, \
         created_at, completed_at, change_no, request_sha256, search_internal, search_client) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19)",
    )?;
    let inserts = std::mem::take(&mut plan.inserts);
    let mut seqs = Vec::with_capacity(inserts.len());
    for id in &inserts {
        let r = plan.take_rendered(id);
        let t = &plan.touched[id];
        let a = &t.activity;
        insert.execute(params![
            a.id.as_str(),
            a.account_id.as_str(),
            a.site_id.as_str(),
            a.environment.as_str(),
            a.service.as_str(),
            a.activity.as_str(),
            a.status.as_str(),
            a.actor.kind.as_str(),
            a.actor.email.as_ref().map(Email::expose),
            a.actor.name.as_deref(),
            a.description,
            a.error,
            r.details_json,
            a.created_at.millis(),
            a.completed_at.map(Timestamp::millis),
            t.change_no,
            t.request_sha256,
            r.search.internal,
            r.search.client,
        ])?;
        // `seq` is the rowid.
        seqs.push((id.clone(), conn.last_insert_rowid()));
    }
    plan.inserts = inserts;
    plan.assign_seqs(seqs, results);

    let mut update = conn.prepare_cached(
        "UPDATE activities SET status = ?1, completed_at = ?2, description = ?3, error = ?4, \
         details = ?5, change_no = ?6, search_internal = ?7, search_client = ?8 \
         WHERE id = ?9 AND status = 'in_progress'",
    )?;
    for id in &plan.ends {
        let t = &plan.touched[id];
        let a = &t.activity;
        let search = SearchText::of(a);
        // The condition is the store's guarantee of one transition; the write lock makes a
        // miss impossible, so a miss means something wrote around the store.
        let updated = update.execute(params![
            a.status.as_str(),
            a.completed_at.map(Timestamp::millis),
            a.description,
            a.error,
            serde_json::to_string(&a.details)?,
            t.change_no,
            search.internal,
            search.client,
            a.id.as_str(),
        ])?;
        anyhow::ensure!(
            updated == 1,
            "activity {id} did not end: the log was written around the store"
        );
    }

    let mut link = conn.prepare_cached(
        "INSERT INTO chain_links (account_id, link_no, activity_id, content_sha256, \
         link_sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for l in &plan.chains.links {
        link.execute(params![
            l.account_id,
            l.link_no,
            l.activity_id,
            &l.content_sha256[..],
            &l.link_sha256[..],
        ])?;
    }
    let mut head = conn.prepare_cached(
        "INSERT INTO chain_heads (account_id, link_no, link_sha256) VALUES (?1, ?2, ?3) \
         ON CONFLICT (account_id) DO UPDATE SET link_no = excluded.link_no, \
         link_sha256 = excluded.link_sha256",
    )?;
    for (account, link_no, hash) in plan.chains.moved_heads() {
        head.execute(params![account, link_no, &hash[..]])?;
    }

    let last = plan.last_change();
    if let Some(n) = last {
        conn.prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'change'")?
            .execute([n])?;
    }
    Ok(last)
}

/// One bounded pass of the retention policy over one account. The prune activities go
/// through the group's plan (and so into the chain); the removal is written at once.
fn prune(
    conn: &Connection,
    plan: &mut Plan,
    request: &PruneRequest,
    now: Timestamp,
) -> StoreResult<Done> {
    let selected = conn
        .prepare_cached(&SELECT_PRUNABLE)
        .and_then(|mut q| {
            q.query_map(
                params![
                    request.account.as_str(),
                    request.before.millis(),
                    i64::from(request.limit)
                ],
                activity_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(internal)?
        .into_iter()
        .map(ActivityRow::decode)
        .collect::<StoreResult<Vec<_>>>()?;
    let mut pruned = Pruned::default();
    let mut mark = conn
        .prepare_cached(
            "INSERT INTO pruned_activities (account_id, activity_id, prune_id) \
             VALUES (?1, ?2, ?3)",
        )
        .map_err(internal)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM activities WHERE seq = ?1")
        .map_err(internal)?;
    for (logged, group) in plan.prune(request, selected, now)? {
        for a in &group {
            mark.execute(params![
                a.account_id.as_str(),
                a.id.as_str(),
                logged.id.as_str()
            ])
            .map_err(internal)?;
            delete.execute([a.seq]).map_err(internal)?;
        }
        pruned.removed += group.len() as u64;
        pruned.logged.push(logged);
    }
    Ok(Done::Pruned(pruned))
}

fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.into())
}

/// A request that writes around the plan: accounts, sites, keys, retention, looks.
fn apply(
    conn: &Connection,
    owners: &mut HashMap<SiteId, AccountId>,
    work: &Work,
    now: Timestamp,
) -> StoreResult<Done> {
    match work {
        Work::SetRetention(account, days) => {
            let updated = conn
                .prepare_cached("UPDATE accounts SET retention_days = ?1 WHERE id = ?2")
                .and_then(|mut q| q.execute(params![days.map(i64::from), account.as_str()]))
                .map_err(internal)?;
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(Done::Unit)
        }
        Work::RecordAccess(batch) => {
            let mut q = conn
                .prepare_cached(
                    "INSERT INTO access_log (account_id, site_id, audience, actor_kind, \
                     actor_email, actor_name, action, query, at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(internal)?;
            for a in batch {
                q.execute(params![
                    a.account_id.as_str(),
                    a.site_id.as_ref().map(SiteId::as_str),
                    a.audience.as_str(),
                    a.actor.kind.as_str(),
                    a.actor.email.as_ref().map(Email::expose),
                    a.actor.name.as_deref(),
                    a.action.as_str(),
                    a.query,
                    a.at.millis(),
                ])
                .map_err(internal)?;
            }
            Ok(Done::Unit)
        }
        Work::AddToRoster(entries) => {
            let mut q = conn
                .prepare_cached(
                    "INSERT INTO support_roster (account_id, email, name, added_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )
                .map_err(internal)?;
            for e in entries {
                q.execute(params![
                    e.account.as_str(),
                    e.email,
                    e.name,
                    e.added_at.millis()
                ])
                .map_err(internal)?;
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
            conn.prepare_cached(
                "INSERT INTO accounts (id, name, partner, settings, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (id) DO UPDATE SET \
                 name = excluded.name, partner = excluded.partner, \
                 settings = excluded.settings, updated_at = excluded.updated_at",
            )
            .and_then(|mut q| {
                q.execute(params![
                    a.id.as_str(),
                    a.name,
                    a.partner,
                    settings.to_string(),
                    now.millis(),
                ])
            })
            .map_err(internal)?;
            Ok(Done::Unit)
        }
        Work::UpsertSite(s) => {
            let account: Option<String> = conn
                .query_row(
                    "SELECT id FROM accounts WHERE id = ?1",
                    [s.account_id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            if account.is_none() {
                return Err(
                    sitetrail_core::InvalidField::new("account_id", "unknown account").into(),
                );
            }
            let owner: Option<String> = conn
                .query_row(
                    "SELECT account_id FROM sites WHERE id = ?1",
                    [s.id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            if owner.is_some_and(|o| o != s.account_id.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "site {} belongs to another account",
                    s.id
                )));
            }
            conn.prepare_cached(
                "INSERT INTO sites (id, account_id, name, live_url, live_docroot, staging_url, \
                 staging_docroot, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 live_url = excluded.live_url, live_docroot = excluded.live_docroot, \
                 staging_url = excluded.staging_url, staging_docroot = excluded.staging_docroot, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut q| {
                q.execute(params![
                    s.id.as_str(),
                    s.account_id.as_str(),
                    s.name,
                    s.live.url.as_str(),
                    s.live.docroot,
                    s.staging.as_ref().map(|e| e.url.as_str()),
                    s.staging.as_ref().and_then(|e| e.docroot.as_deref()),
                    now.millis(),
                ])
            })
            .map_err(internal)?;
            owners.insert(s.id.clone(), s.account_id.clone());
            Ok(Done::Unit)
        }
        Work::CreateKey(key) => {
            conn.execute(
                "INSERT INTO api_keys (id, name, secret_sha256, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![key.id, key.name, key.secret_sha256(), now.millis()],
            )
            .map_err(internal)?;
            Ok(Done::Unit)
        }
    }
}

/// Signs a checkpoint for every chain whose head is past its last checkpoint.
fn sign_checkpoints(conn: &Connection, key: &CheckpointKey) -> anyhow::Result<Vec<CheckpointBody>> {
    let moved: Vec<(String, i64, Vec<u8>)> = conn
        .prepare_cached(chain::HEADS_PAST_THEIR_CHECKPOINT)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let made_at = Timestamp::now();
    let mut insert = conn.prepare_cached(
        "INSERT INTO chain_checkpoints (account_id, link_no, link_sha256, made_at, \
         public_key, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut out = Vec::with_capacity(moved.len());
    for head in moved {
        let body = CheckpointBody::of_head(head, made_at)?;
        insert.execute(params![
            body.account_id,
            body.link_no,
            &body.link_sha256[..],
            made_at.millis(),
            &key.public_key()[..],
            &key.sign(&body)[..],
        ])?;
        out.push(body);
    }
    Ok(out)
}
