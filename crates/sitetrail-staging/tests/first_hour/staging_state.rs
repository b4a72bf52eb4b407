//! What the engine records about staging (exists, made when and from what, last pushed, size)
//! and what it says about the operation running on a site, on real WordPress.

use std::os::unix::fs::PermissionsExt;

use sitetrail_core::Status;
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{Operation, PushScope, StagingSource};

use super::{Fixture, fixture, fixture_sqlite};

async fn staging_is_recorded_from_creation_to_push(f: Fixture) {
    let before = f.engine.staging_state(&f.site).await.unwrap();
    assert!(!before.exists, "nothing made yet: {before:?}");
    assert!(before.created.is_none() && before.size_bytes.is_none());

    let started = f.start(Operation::CreateStaging).await;
    let running = f.engine.running(&f.site).expect("the creation is running");
    assert_eq!(running.activity, started.activity.id);
    let mut progress = running.progress;
    let watched = tokio::spawn(async move {
        let mut seen = vec![progress.borrow_and_update().clone()];
        while progress.changed().await.is_ok() {
            seen.push(progress.borrow_and_update().clone());
        }
        seen
    });
    let created = started.finished.await.unwrap();
    let seen = watched.await.unwrap();
    assert_eq!(seen[0].phase, "Getting ready");
    for phase in [
        "Copying the database",
        "Copying the files",
        "Switching staging",
    ] {
        assert!(seen.iter().any(|p| p.phase == phase), "{phase} in {seen:?}");
    }
    for counting in ["Copying the database", "Copying the files"] {
        let steps: Vec<_> = seen.iter().filter(|p| p.phase == counting).collect();
        // (A step's total is 0 only while it is being counted, before anything is done.)
        assert!(
            steps.iter().any(|p| p.total > 0)
                && steps
                    .iter()
                    .all(|p| p.done <= p.total && (p.total > 0 || p.done == 0)),
            "{counting} counts towards a total: {steps:?}"
        );
    }
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    assert!(f.engine.running(&f.site).is_none(), "it has ended");

    let state = f.engine.staging_state(&f.site).await.unwrap();
    assert!(state.exists);
    let origin = state.created.clone().unwrap();
    assert_eq!(origin.from, StagingSource::Live);
    assert!(origin.at >= created.created_at);
    assert!(state.last_pushed.is_none());
    assert!(
        state.size_bytes.unwrap() > 1_000_000,
        "files and database: {:?}",
        state.size_bytes
    );
    let record = f.dir.path().join("data/staging-state/shop.json");
    assert_eq!(
        std::fs::metadata(&record).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let pushed = f
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Files,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    let kept = f.engine.staging_state(&f.site).await.unwrap();
    assert!(kept.exists, "keep_staging kept it");
    assert_eq!(kept.created, state.created);
    assert!(kept.last_pushed.unwrap() >= pushed.created_at);

    // A site the engine has no record of (its staging made before records were kept) is
    // read from the log, never guessed as absent: Create would otherwise replace it unbacked.
    std::fs::remove_file(&record).unwrap();
    let from_log = f.engine.staging_state(&f.site).await.unwrap();
    assert!(from_log.exists, "{from_log:?}");
    assert_eq!(
        from_log.created.map(|c| c.from),
        Some(StagingSource::Live),
        "made from live, as the log says"
    );
    assert!(from_log.last_pushed.is_some());
    let removed = f
        .run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Files,
            keep_staging: false,
            ..Default::default()
        }))
        .await;
    assert_eq!(removed.status, Status::Completed, "{:?}", removed.error);
    std::fs::remove_file(&record).unwrap();
    let gone = f.engine.staging_state(&f.site).await.unwrap();
    assert!(!gone.exists, "the log's last push removed it: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staging_is_recorded_from_creation_to_push_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    staging_is_recorded_from_creation_to_push(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staging_is_recorded_from_creation_to_push_on_sqlite() {
    if !wordpress::services(&[Service::WordPressSqlite]) {
        return;
    }
    staging_is_recorded_from_creation_to_push(fixture_sqlite().await).await;
}
