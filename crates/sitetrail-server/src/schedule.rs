//! The daily backup of every hosted site's live environment, and pruning of old ones.

use std::time::Duration;

use sitetrail_core::{Actor, Environment, Timestamp};
use sitetrail_staging::{BackupReason, Engine, Operation};
use sitetrail_store::DynStore;

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
