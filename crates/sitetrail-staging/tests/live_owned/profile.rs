//! A site's additions to the profile, tables live gained after staging was made, and a push
//! without a recorded base.

use std::os::unix::fs::PermissionsExt;

use sitetrail_core::Status;
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{EngineError, OnConflict, Operation, Push, PushScope};

use super::{Fixture, fixture, fixture_sqlite};

fn push() -> Operation {
    Operation::PushToLive(Push {
        scope: PushScope::Site,
        keep_staging: true,
        on_conflict: OnConflict::Stop,
        ..Push::default()
    })
}

async fn a_sites_own_tables_are_kept_and_so_is_a_table_live_made_after_staging(f: Fixture) {
    // Refused names say what to do; nothing is written.
    match f
        .engine
        .set_live_owned(&f.site, vec!["book`ings".into()])
        .await
    {
        Err(EngineError::Invalid(m)) => assert!(m.contains("letters, digits"), "{m}"),
        other => panic!("{other:?}"),
    }
    let profile = f
        .engine
        .set_live_owned(&f.site, vec!["bookings".into(), "waitlist".into()])
        .await
        .unwrap();
    assert_eq!(profile.extra, vec!["bookings", "waitlist"]);
    assert!(profile.shipped.iter().any(|t| t.table == "wc_orders"));
    let file = f.dir.path().join("data/live-owned/shop.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(f.engine.live_owned(&f.site).await.unwrap(), profile);

    f.live
        .php("global $wpdb; $wpdb->query(\"CREATE TABLE {$wpdb->prefix}bookings (id bigint(20) unsigned NOT NULL auto_increment, guest varchar(100) NOT NULL, PRIMARY KEY (id))\"); $wpdb->insert($wpdb->prefix . 'bookings', ['guest' => 'before']);")
        .unwrap();
    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    f.live
        .php("global $wpdb; $wpdb->insert($wpdb->prefix . 'bookings', ['guest' => 'after']);
              $wpdb->query(\"CREATE TABLE {$wpdb->prefix}waitlist (id bigint(20) unsigned NOT NULL auto_increment, guest varchar(100) NOT NULL, PRIMARY KEY (id))\");
              $wpdb->insert($wpdb->prefix . 'waitlist', ['guest' => 'queued']);")
        .unwrap();
    let pushed = f.run(push()).await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    let seen = f
        .live
        .php("global $wpdb; echo implode(',', $wpdb->get_col(\"SELECT guest FROM {$wpdb->prefix}bookings ORDER BY id\")), '|', implode(',', $wpdb->get_col(\"SELECT guest FROM {$wpdb->prefix}waitlist\"));")
        .unwrap();
    assert_eq!(seen, "before,after|queued");
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sites_own_tables_are_kept_and_so_is_a_table_live_made_after_staging_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    a_sites_own_tables_are_kept_and_so_is_a_table_live_made_after_staging(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sites_own_tables_are_kept_and_so_is_a_table_live_made_after_staging_on_sqlite() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    a_sites_own_tables_are_kept_and_so_is_a_table_live_made_after_staging(fixture_sqlite().await)
        .await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_base_a_push_keeps_all_of_lives_rows_and_says_so() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let base = f.dir.path().join("data/staging-base/shop.json");
    assert_eq!(
        std::fs::metadata(&base).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Staging made before bases were recorded.
    std::fs::remove_file(&base).unwrap();
    let staging = f.staging();
    staging
        .php("wp_update_comment(['comment_ID' => 1, 'comment_content' => 'Edited on staging']); wp_update_post(['ID' => 1, 'post_title' => 'Fresh from staging']);")
        .unwrap();
    f.live
        .php("wp_insert_comment(['comment_post_ID' => 1, 'comment_content' => 'Taken on live', 'comment_approved' => 1]);")
        .unwrap();
    let pushed = f.run(push()).await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    assert_eq!(pushed.details["without_base"], true);
    let seen = f
        .live
        .php("echo get_post(1)->post_title, '|', get_comment(1)->comment_content, '|', get_comments(['post_id' => 1, 'count' => true]);")
        .unwrap();
    let (title, rest) = seen.split_once('|').unwrap();
    assert_eq!(title, "Fresh from staging");
    // Live's version of its first comment, and the one it took.
    assert!(
        rest.starts_with("Hi, this is a comment.") && rest.ends_with("|2"),
        "{rest}"
    );
}
