//! An operation refused because another holds the site says what runs, in words, with no
//! time in it (the blocking activity's id is in `details.blocked_by`), and what happens
//! next; a scheduled backup refused so says it is skipped and taken later by itself.

use sitetrail_core::{Actor, Environment, Status};
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{BackupReason, Operation, PushScope};

use super::fixture_sqlite;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_backup_refused_during_a_push_says_it_was_skipped_and_runs_later() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let f = fixture_sqlite().await;
    assert_eq!(
        f.run(Operation::CreateStaging).await.status,
        Status::Completed
    );
    let push = f
        .start(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
    let daily = f
        .engine
        .start(
            &f.site,
            Operation::Backup {
                environment: Environment::Live,
                reason: BackupReason::Daily,
            },
            Actor::system(),
        )
        .await
        .unwrap();
    let refused = daily.finished.await.unwrap();
    assert_eq!(refused.status, Status::Failed);
    assert_eq!(
        refused.error.as_deref().unwrap(),
        "The scheduled daily backup was skipped because Push Staging to Live is running on \
         this site. It is taken automatically once that has finished; nothing needs to be done."
    );
    assert_eq!(refused.description, "Daily backup of live skipped");
    assert_eq!(refused.details["blocked_by"], push.activity.id.as_str());
    let pushed = push.finished.await.unwrap();
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
}
