//! What runs on its own: the daily backup of every hosted site's live environment (and the
//! pruning of old ones), the chain's signed checkpoints, and the log's retention policy.

use std::time::Duration;

use sitetrail_core::{Actor, Environment, Timestamp};
use sitetrail_staging::{BackupReason, Engine, Operation};
use sitetrail_store::{CheckpointKey, DynStore, PruneRequest};

const CHECK_EVERY: Duration = Duration::from_secs(15 * 60);
/// The first check waits, so that a starting server (and whoever just started it) has the
/// sites to itself for a moment.
const FIRST_CHECK_AFTER: Duration = Duration::from_secs(5 * 60);
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Daily backups kept per site; manual and automatic ones are kept until deleted.
pub const DAILY_KEPT: usize = 7;

pub async fn daily_backups(store: DynStore, engine: Engine) {
    tokio::time::sleep(FIRST_CHECK_AFTER).await;
    loop {
        if let Err(e) = run_due(&store, &engine, Timestamp::now(), DAILY_KEPT).await {
            tracing::warn!(error = ?e, "checking daily backups failed");
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// How often closed undo windows are looked for.
const UNDO_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Drops the lives that pushes replaced once their undo window has closed, every minute.
pub async fn undo_windows(engine: Engine) {
    let mut tick = tokio::time::interval(UNDO_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        expire_undo(&engine).await;
    }
}

/// One tick of [`undo_windows`]: how many replaced lives went.
pub async fn expire_undo(engine: &Engine) -> usize {
    match engine.expire_undo().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = ?e, "expiring undo windows failed; the next tick retries");
            0
        }
    }
}

/// Backs up live of every hosted site whose newest daily backup is a day old at `now`, and
/// removes daily backups beyond the newest `keep`.
pub async fn run_due(
    store: &DynStore,
    engine: &Engine,
    now: Timestamp,
    keep: usize,
) -> anyhow::Result<()> {
    let now = now.millis();
    for site in store.hosted_sites().await? {
        let dailies: Vec<_> = engine
            .snapshots()
            .backups(&site.id)?
            .into_iter()
            .filter(|m| m.reason == BackupReason::Daily)
            .collect();
        if dailies
            .first()
            .is_some_and(|m| now - m.created_at.millis() < DAY_MS)
        {
            continue;
        }
        let op = Operation::Backup {
            environment: Environment::Live,
            reason: BackupReason::Daily,
        };
        match engine.start(&site.id, op, Actor::system()).await {
            // One site at a time: backups are heavy, and the machine is shared.
            Ok(started) => {
                let _ = started.finished.await;
            }
            Err(e) => {
                tracing::warn!(site = %site.id, error = %e, "the daily backup could not start")
            }
        }
        let backups = engine.snapshots().backups(&site.id)?;
        let dailies = backups.iter().filter(|m| m.reason == BackupReason::Daily);
        for old in dailies.skip(keep) {
            engine.snapshots().remove_backup(&site.id, &old.id)?;
        }
    }
    Ok(())
}

/// Activities one retention pass removes at most: one transaction stays short, so writers
/// never wait long behind a prune.
pub const PRUNE_BATCH: u32 = 2000;

/// Signs checkpoints every `checkpoint_every` and applies the retention policy every
/// `retention_every`, for as long as the server runs.
pub async fn integrity(
    store: DynStore,
    key: CheckpointKey,
    checkpoint_every: Duration,
    retention_every: Duration,
) {
    let mut checkpoints = tokio::time::interval(checkpoint_every);
    let mut retention = tokio::time::interval(retention_every);
    // The first tick of an interval is at once: let a starting server settle first.
    checkpoints.reset();
    retention.reset_after(FIRST_CHECK_AFTER);
    loop {
        tokio::select! {
            _ = checkpoints.tick() => {
                if let Err(e) = store.checkpoint(&key).await {
                    tracing::warn!(error = ?e, "signing checkpoints failed; the next tick retries");
                }
            }
            _ = retention.tick() => {
                if let Err(e) = apply_retention(&store, &key, Timestamp::now(), PRUNE_BATCH).await {
                    tracing::warn!(error = ?e, "applying the retention policy failed");
                }
            }
        }
    }
}

/// What one run of the retention policy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionRun {
    pub accounts: usize,
    pub removed: u64,
    pub passes: u64,
}

/// Applies every account's retention period at `now`: bounded passes until nothing old is
/// left, then a checkpoint that seals what was removed.
pub async fn apply_retention(
    store: &DynStore,
    key: &CheckpointKey,
    now: Timestamp,
    batch: u32,
) -> anyhow::Result<RetentionRun> {
    let mut run = RetentionRun::default();
    for account in store.account_ids().await? {
        let days = store.retention_days(&account).await?;
        let before = Timestamp::from_millis(now.millis() - i64::from(days) * DAY_MS)
            .ok_or_else(|| anyhow::anyhow!("a retention period reaching before 1970"))?;
        let mut removed_here = 0;
        loop {
            let pruned = store
                .prune(PruneRequest {
                    account: account.clone(),
                    before,
                    limit: batch,
                    retention_days: days,
                })
                .await?;
            if pruned.removed == 0 {
                break;
            }
            run.passes += 1;
            removed_here += pruned.removed;
            metrics::counter!("sitetrail_pruned_activities_total").increment(pruned.removed);
            if pruned.removed < u64::from(batch) {
                break;
            }
        }
        if removed_here > 0 {
            run.accounts += 1;
            run.removed += removed_here;
            tracing::info!(account = %account, removed = removed_here, days, "applied the retention period");
        }
    }
    if run.removed > 0 {
        store.checkpoint(key).await?;
    }
    Ok(run)
}
