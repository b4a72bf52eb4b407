//! Restore live from a backup in one step: whole, database only, files only. Live is backed
//! up first; the orders live took since the backup are not lost; a poller sees no failed
//! request during the restore.

use sitetrail_core::{ActivityKind, BackupId, Environment, Status};
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{BackupReason, Operation, PushScope};

use super::safe_push_shop as shop;
use super::safe_push_support::{completed, differing, run_polled, table_checksums, tree};
use super::safe_push_undo::pages;
use super::{Fixture, fixture};

/// A manual backup of live; returns its id.
pub async fn back_up_live(f: &Fixture) -> BackupId {
    completed(
        f,
        Operation::Backup {
            environment: Environment::Live,
            reason: BackupReason::Manual,
        },
    )
    .await;
    let newest = f
        .engine
        .snapshots()
        .backups(&f.site)
        .unwrap()
        .into_iter()
        .filter(|m| m.reason == BackupReason::Manual)
        .max_by(|a, b| a.id.cmp(&b.id))
        .unwrap();
    BackupId::parse(&newest.id).unwrap()
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_live_from_a_backup_whole_then_database_only_then_files_only() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    shop::install(&f.live);
    shop::place_orders(&f.live, 2, "before-backup");
    let backup = back_up_live(&f).await;
    let backed_up_pages = pages(&f.live);
    let backed_up_tree = tree(&f.live.docroot);

    // Whole: live changed since the backup, and took orders.
    f.live
        .php("wp_insert_post(['post_title' => 'After the backup', 'post_status' => 'publish']);")
        .unwrap();
    std::fs::write(f.live.docroot.join("wp-content/after-backup.txt"), "x").unwrap();
    let taken = shop::place_orders(&f.live, 2, "after-backup");
    let taken_now = shop::orders(&f.live, &taken);
    let restored = run_polled(
        &f,
        Operation::RestoreLive {
            backup: backup.clone(),
            scope: PushScope::Site,
        },
    )
    .await;
    assert_eq!(
        (restored.activity, restored.status),
        (ActivityKind::RestoreLiveFromBackup, Status::Completed),
        "{:?} {:?}",
        restored.error,
        restored.details
    );
    assert_eq!(
        pages(&f.live),
        backed_up_pages,
        "live's pages are the backup's"
    );
    assert_eq!(
        differing(&tree(&f.live.docroot), &backed_up_tree),
        Vec::<String>::new(),
        "live's files are the backup's"
    );
    assert_eq!(
        shop::orders(&f.live, &taken),
        taken_now,
        "the orders live took since the backup are kept"
    );
    let automatic = super::site_log(&f).await.into_iter().find(|a| {
        a.activity == ActivityKind::CreateBackup
            && a.details.get("reason").and_then(|v| v.as_str()) == Some("automatic")
    });
    let automatic = automatic.expect("live was backed up before the restore");
    assert_eq!(automatic.status, Status::Completed);
    assert!(automatic.created_at >= restored.created_at);
    assert!(super::admin_can_log_in(&f.live.url).await);

    // Database only: the files live has now stay.
    f.live
        .php("wp_insert_post(['post_title' => 'Second change', 'post_status' => 'publish']);")
        .unwrap();
    std::fs::write(f.live.docroot.join("wp-content/second.txt"), "y").unwrap();
    let files = tree(&f.live.docroot);
    let restored = run_polled(
        &f,
        Operation::RestoreLive {
            backup: backup.clone(),
            scope: PushScope::Database,
        },
    )
    .await;
    assert_eq!(restored.status, Status::Completed, "{:?}", restored.error);
    assert_eq!(pages(&f.live), backed_up_pages);
    assert_eq!(
        differing(&tree(&f.live.docroot), &files),
        Vec::<String>::new()
    );

    // Files only: the tables live has now stay.
    let tables = table_checksums(&f.live.db);
    let restored = run_polled(
        &f,
        Operation::RestoreLive {
            backup,
            scope: PushScope::Files,
        },
    )
    .await;
    assert_eq!(restored.status, Status::Completed, "{:?}", restored.error);
    assert_eq!(
        differing(&table_checksums(&f.live.db), &tables),
        Vec::<String>::new()
    );
    assert_eq!(
        differing(&tree(&f.live.docroot), &backed_up_tree),
        Vec::<String>::new()
    );
    assert_eq!(shop::orders(&f.live, &taken), taken_now);
}
