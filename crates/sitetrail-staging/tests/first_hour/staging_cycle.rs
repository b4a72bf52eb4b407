//! The first hour on real WordPress (MariaDB and SQLite): create staging, push it with the
//! defaults (staging goes entirely), create it again, reset it from a backup, push again.
//! Also a site left as earlier releases left it after a push (a SQLite-style `wp-config.php`
//! with nothing else), which Create Staging replaces without following its links.

use std::path::Path;

use sitetrail_core::{BackupId, Environment, Status};
use sitetrail_staging::wordpress::{self, Service, mysql};
use sitetrail_staging::{BackupReason, EngineError, NO_STAGING, Operation};

use super::{Fixture, fixture, fixture_sqlite, owner};

fn default_push() -> Operation {
    Operation::PushToLive(sitetrail_staging::Push::site())
}

/// Staging's tables (MariaDB) with its prefix.
fn staging_tables(f: &Fixture) -> String {
    if f.live.db.is_empty() {
        return String::new();
    }
    mysql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}_staging'",
        f.live.db
    ))
    .unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn completed(f: &Fixture, op: Operation) -> sitetrail_core::StoredActivity {
    let a = f.run(op).await;
    assert_eq!(
        a.status,
        Status::Completed,
        "{:?}: {:?}",
        a.activity,
        a.error
    );
    a
}

async fn the_first_hour(f: Fixture) {
    let staging_dir = f.dir.path().join("staging");
    completed(&f, Operation::CreateStaging).await;
    // (A `WpSite` drops its database when it goes; staging's database is the fixture's to
    // drop, so this handle is forgotten, not dropped.)
    let staging = f.staging();
    staging
        .php("wp_insert_post(['post_title' => 'Made on staging', 'post_status' => 'publish']);")
        .unwrap();
    assert_eq!(f.live.option("blog_public").unwrap(), "1");
    assert_eq!(
        staging.option("blog_public").unwrap(),
        "0",
        "search engines are asked not to index staging"
    );
    completed(&f, default_push()).await;
    std::mem::forget(staging);
    assert!(
        entries(&staging_dir).is_empty(),
        "a default push removes staging's files, wp-config.php included: {:?}",
        entries(&staging_dir)
    );
    assert_eq!(staging_tables(&f), "", "and its tables");
    let state = f.engine.staging_state(&f.site).await.unwrap();
    assert!(!state.exists && state.created.is_none() && state.last_pushed.is_some());

    // Nothing to push or back up now: refused before anything is logged, in words.
    let before = super::site_log(&f).await.len();
    for op in [
        default_push(),
        Operation::Backup {
            environment: Environment::Staging,
            reason: BackupReason::Manual,
        },
    ] {
        match f.engine.start(&f.site, op, owner()).await {
            Err(EngineError::Conflict(reason)) => assert_eq!(reason, NO_STAGING),
            other => panic!("refused, not {:?}", other.map(|s| s.activity)),
        }
    }
    assert_eq!(super::site_log(&f).await.len(), before, "nothing logged");

    completed(&f, Operation::CreateStaging).await;
    let (_, home) = super::get(&f.live.url).await;
    assert!(home.contains("Made on staging"), "live has the push");
    assert_eq!(
        f.live.option("blog_public").unwrap(),
        "1",
        "a push keeps live's own setting"
    );
    let backup = completed(
        &f,
        Operation::Backup {
            environment: Environment::Live,
            reason: BackupReason::Manual,
        },
    )
    .await;
    let id = backup.details["backup"].as_str().unwrap().to_owned();
    let listed = f.engine.snapshots().backups(&f.site).unwrap();
    let listed = listed.iter().find(|m| m.id == id).unwrap();
    assert_eq!(
        (listed.created_at, listed.activity.as_ref()),
        (backup.created_at, Some(&backup.id)),
        "one time for one backup: the list's is its activity's"
    );
    let reset = completed(
        &f,
        Operation::ResetFromBackup(BackupId::parse(&id).unwrap()),
    )
    .await;
    assert_eq!(
        reset.description,
        format!("Created environment for staging from backup {id}")
    );
    assert_eq!(reset.details["backup"], id.as_str(), "the source backup");
    let reset_staging = f.staging();
    assert_eq!(reset_staging.option("blog_public").unwrap(), "0");
    std::mem::forget(reset_staging);
    let automatic = reset.details["automatic_backup"].as_str().unwrap();
    assert_ne!(automatic, id, "staging's own backup, taken first");
    assert!(automatic.starts_with("staging-"), "{automatic}");
    let state = f.engine.staging_state(&f.site).await.unwrap();
    assert_eq!(
        state.created.unwrap().from,
        sitetrail_staging::StagingSource::Backup { id: id.clone() }
    );
    completed(&f, default_push()).await;
    assert!(entries(&staging_dir).is_empty());
    let (status, _) = super::get(&f.live.url).await;
    assert_eq!(status, 200, "live serves after the second push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_hour_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    the_first_hour(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_hour_on_sqlite() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    the_first_hour(fixture_sqlite().await).await;
}

/// What an earlier release left after a default push: staging's SQLite-style
/// `wp-config.php` and nothing else (read as MariaDB with an empty user), plus a link out
/// of the docroot. Create Staging replaces it; the link's target is untouched.
async fn create_staging_replaces_a_leftover(f: Fixture) {
    let staging_dir = f.dir.path().join("staging");
    std::fs::create_dir_all(&staging_dir).unwrap();
    std::fs::write(
        staging_dir.join("wp-config.php"),
        "<?php\ndefine('DB_NAME', 'unused_staging');\ndefine('DB_USER', '');\n\
         define('DB_PASSWORD', '');\ndefine('DB_HOST', 'localhost');\n$table_prefix = 'stg_';\n",
    )
    .unwrap();
    let outside = f.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), "not staging's").unwrap();
    std::os::unix::fs::symlink(&outside, staging_dir.join("wp-content")).unwrap();

    completed(&f, Operation::CreateStaging).await;
    assert_eq!(
        std::fs::read_to_string(outside.join("keep.txt")).unwrap(),
        "not staging's",
        "no link out of the docroot was followed"
    );
    assert!(
        !staging_dir
            .join("wp-content")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
    let mut staging = f.staging();
    staging.serve().unwrap();
    let (status, home) = super::get(&f.staging_url).await;
    assert_eq!(status, 200);
    assert!(home.contains("Acme Bakery"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_staging_replaces_a_leftover_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    create_staging_replaces_a_leftover(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_staging_replaces_a_leftover_on_sqlite() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    create_staging_replaces_a_leftover(fixture_sqlite().await).await;
}
