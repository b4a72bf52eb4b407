//! kill -9 during an undo and during a restore of live, at every point of their switch:
//! after recovery live is whole (its database and files hold the same marker), the activity
//! is ended as interrupted, the site's lock is free, and an undo's kept copy is still kept.

use sitetrail_core::{ActivityKind, BackupId, Environment, Status};
use sitetrail_staging::wordpress::{self, Service, mysql};
use sitetrail_staging::{BackupReason, Operation, Push};

use super::flow_scopes::{completed, staging};
use super::{
    CRASH_POINTS, Fixture, assert_interrupted_and_unlocked, assert_live_whole,
    assert_no_leftover_tables, fixture, kill_child_at,
};

fn set_live_marker(f: &Fixture, marker: &str) {
    f.live
        .php(&format!("update_option('sitetrail_marker', '{marker}');"))
        .unwrap();
    std::fs::write(f.live.docroot.join("marker.txt"), marker).unwrap();
}

/// No half-built (`stn…`) tables, nor tables an undo took out (`stu…`), remain.
fn assert_no_undo_leftovers(db: &str, round: usize) {
    let n = mysql(&format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{db}' AND (table_name LIKE 'stn%' OR table_name LIKE 'stu%')")).unwrap();
    assert_eq!(n.trim(), "0", "round {round}");
}

#[ignore = "a kill -9 round: scripts/reliability.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_an_undo_leaves_live_whole_and_the_push_still_undoable() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    completed(&f, Operation::CreateStaging).await;
    {
        let staging = staging(&f);
        staging
            .php("update_option('sitetrail_marker', 'new');")
            .unwrap();
        std::fs::write(staging.docroot.join("marker.txt"), "new").unwrap();
    }
    set_live_marker(&f, "old");
    completed(
        &f,
        Operation::PushToLive(Push {
            keep_staging: true,
            ..Push::site()
        }),
    )
    .await;
    assert_eq!(assert_live_whole(&f, 0).await, "new");
    for (round, pause) in ["", "between_switches", "switched"].iter().enumerate() {
        kill_child_at(&f, "undo", pause, round).await;
        let ended = f.engine.recover().await.unwrap();
        let marker = assert_live_whole(&f, round).await;
        assert_eq!(
            marker, "new",
            "round {round}: the undo was rolled back whole"
        );
        assert_no_undo_leftovers(&f.live.db, round);
        assert_interrupted_and_unlocked(&f, ActivityKind::UndoPush, &ended, round).await;
        assert!(
            f.engine.undo_window(&f.site).await.unwrap().is_some(),
            "round {round}: the push can still be undone"
        );
    }
    completed(&f, Operation::UndoPush).await;
    assert_eq!(assert_live_whole(&f, 9).await, "old");
}

#[ignore = "a kill -9 round: scripts/reliability.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_restore_of_live_leaves_live_whole() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    set_live_marker(&f, "old");
    let backup = completed(
        &f,
        Operation::Backup {
            environment: Environment::Live,
            reason: BackupReason::Manual,
        },
    )
    .await;
    let backup = BackupId::parse(backup.details["backup"].as_str().unwrap()).unwrap();
    set_live_marker(&f, "new");
    let mut seen = Vec::new();
    for (round, pause) in CRASH_POINTS.iter().enumerate() {
        kill_child_at(&f, &format!("restore:{backup}"), pause, round).await;
        let ended = f.engine.recover().await.unwrap();
        let marker = assert_live_whole(&f, round).await;
        assert_no_leftover_tables(&f.live.db, round);
        let a =
            assert_interrupted_and_unlocked(&f, ActivityKind::RestoreLiveFromBackup, &ended, round)
                .await;
        assert_eq!(a.status, Status::Failed);
        seen.push(marker.clone());
        if marker == "old" {
            set_live_marker(&f, "new");
        }
    }
    eprintln!("crash rounds: {seen:?}");
}
