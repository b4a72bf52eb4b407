//! Preview, confirm, undo, the health check and restore on real WordPress: a preview's
//! numbers are what the push then does; a confirm after live changed re-previews; an undo
//! puts the old site back (tables and files) as an activity of its own; a push that breaks
//! live is undone by the health check; live is restored whole, database only or files only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use sitetrail_core::{ActivityKind, BackupId, Environment, Status};
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{BackupReason, EngineError, Operation, Push, PushReport, PushScope};

use super::flow_scopes::{
    changed_files, changed_tables, completed, post_titles, staging, table_sums, tree_sums, visit,
};
use super::{Fixture, fixture, fixture_sqlite, owner};

fn report(details: &serde_json::Map<String, Value>) -> PushReport {
    serde_json::from_value(details["preview"].clone()).unwrap()
}

fn posts_in_live(f: &Fixture) -> u64 {
    f.live
        .php("global $wpdb; echo $wpdb->get_var(\"SELECT COUNT(*) FROM {$wpdb->posts}\");")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn preview_then_push(f: Fixture) {
    completed(&f, Operation::CreateStaging).await;
    let staging = staging(&f);
    staging
        .php(
            "foreach (['One', 'Two', 'Three'] as $t) { wp_insert_post(['post_title' => \"Staging $t\", \
             'post_status' => 'publish', 'post_content' => 'See ' . home_url('/shop/')]); }",
        )
        .unwrap();
    std::fs::write(staging.docroot.join("wp-content/new.txt"), "new file").unwrap();
    std::fs::write(
        staging.docroot.join("index.php"),
        "<?php // changed\ndefine('WP_USE_THEMES', true);\nrequire __DIR__ . '/wp-blog-header.php';\n",
    )
    .unwrap();
    let push = Push {
        keep_staging: true,
        ..Push::site()
    };
    let posts = posts_in_live(&f);
    visit(&f).await;
    let (tables, files) = (table_sums(&f), tree_sums(&f.live.docroot));
    let preview = completed(&f, Operation::PreviewPush(push.clone())).await;
    assert_eq!(preview.activity, ActivityKind::PreviewPush);
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new(),
        "a preview changes nothing"
    );
    assert_eq!(
        changed_files(&files, &tree_sums(&f.live.docroot)),
        Vec::<String>::new()
    );
    let previewed = report(&preview.details);
    let t = previewed
        .tables
        .iter()
        .find(|t| t.table == "wp_posts")
        .unwrap();
    assert_eq!((t.added, t.removed), (3, 0), "{previewed:?}");
    assert_eq!(
        (
            previewed.files.added,
            previewed.files.changed,
            previewed.files.removed
        ),
        (1, 1, 0),
        "{:?}",
        previewed.files.list
    );
    assert!(
        previewed
            .files
            .list
            .iter()
            .any(|c| c.path == "wp-content/new.txt" && c.bytes == 8)
    );
    assert!(previewed.url_rewrites >= 3, "{}", previewed.url_rewrites);
    assert!(!previewed.live_fingerprint.is_empty());

    // Confirming that preview pushes exactly what it showed.
    let pushed = completed(
        &f,
        Operation::PushToLive(Push {
            preview: Some(preview.id.clone()),
            ..push.clone()
        }),
    )
    .await;
    assert_eq!(
        report(&pushed.details),
        previewed,
        "the push did what its preview said"
    );
    assert_eq!(posts_in_live(&f), posts + t.added - t.removed);
    assert_eq!(
        std::fs::read_to_string(f.live.docroot.join("wp-content/new.txt")).unwrap(),
        "new file"
    );

    // Live changes after a second preview: confirming it re-previews and pushes nothing.
    staging
        .php("wp_insert_post(['post_title' => 'Staging Four', 'post_status' => 'publish']);")
        .unwrap();
    let second = completed(&f, Operation::PreviewPush(push.clone())).await;
    f.live
        .php("wp_insert_post(['post_title' => 'Made on live meanwhile', 'post_status' => 'publish']);")
        .unwrap();
    let tables = table_sums(&f);
    let refused = f
        .run(Operation::PushToLive(Push {
            preview: Some(second.id.clone()),
            ..push.clone()
        }))
        .await;
    assert_eq!(refused.status, Status::Failed);
    assert_eq!(
        refused.error.as_deref(),
        Some(
            "Live changed since the preview, so nothing was pushed. Review the new preview and \
             confirm it."
        )
    );
    let fresh = report(&refused.details);
    assert_ne!(
        fresh.live_fingerprint,
        report(&second.details).live_fingerprint
    );
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new(),
        "live was not changed"
    );
    assert!(!post_titles(&f.live).contains("Staging Four"));
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_previews_numbers_are_what_the_push_does_and_a_confirm_after_live_changed_re_previews() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    preview_then_push(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_a_previews_numbers_are_what_the_push_does() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    preview_then_push(fixture_sqlite().await).await;
}

async fn undo_puts_the_old_site_back(f: Fixture) {
    completed(&f, Operation::CreateStaging).await;
    {
        let staging = staging(&f);
        staging
            .php("wp_insert_post(['post_title' => 'Made on staging', 'post_status' => 'publish']);")
            .unwrap();
        std::fs::write(staging.docroot.join("wp-content/new.txt"), "new file").unwrap();
    }
    visit(&f).await;
    let (tables, files) = (table_sums(&f), tree_sums(&f.live.docroot));
    assert!(f.engine.undo_window(&f.site).await.unwrap().is_none());
    // On SQLite too: a request that spans the tree's exchange cannot write the database
    // that moved (SQLite refuses a write to a file that is no longer at its path).
    let stop = Arc::new(AtomicBool::new(false));
    let (poller, failed, total) = super::poll(f.live.url.clone(), stop.clone());
    let pushed = completed(&f, Operation::PushToLive(Push::site())).await;
    assert!(post_titles(&f.live).contains("Made on staging"));
    let (pushed_tables, pushed_files) = (table_sums(&f), tree_sums(&f.live.docroot));
    let window = f.engine.undo_window(&f.site).await.unwrap().unwrap();
    assert_eq!(window.push, pushed.id);
    assert!(!window.puts_push_back);
    let undone = completed(&f, Operation::UndoPush).await;
    assert_eq!(undone.activity, ActivityKind::UndoPush);
    assert_eq!(
        undone.details["undone_push"],
        Value::String(pushed.id.to_string())
    );
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new(),
        "live's tables are back"
    );
    assert_eq!(
        changed_files(&files, &tree_sums(&f.live.docroot)),
        Vec::<String>::new(),
        "live's files are back"
    );
    assert!(!post_titles(&f.live).contains("Made on staging"));
    assert_eq!(super::get(&f.live.url).await.0, 200);
    // An undo destroys nothing, so it takes no backup: the pushed site is kept instead, and
    // undoing again puts it back.
    let log = super::site_log(&f).await;
    assert!(!log.iter().any(|a| a.activity == ActivityKind::CreateBackup
        && a.details.get("before").and_then(Value::as_str) == Some(undone.id.as_str())));
    let window = f.engine.undo_window(&f.site).await.unwrap().unwrap();
    assert_eq!(
        (window.push.clone(), window.puts_push_back),
        (undone.id.clone(), true)
    );
    let redone = completed(&f, Operation::UndoPush).await;
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();
    assert_eq!(
        redone.details["undone_undo"],
        Value::String(undone.id.to_string())
    );
    assert_eq!(
        changed_tables(&pushed_tables, &table_sums(&f)),
        Vec::<String>::new(),
        "the pushed tables are back"
    );
    assert_eq!(
        changed_files(&pushed_files, &tree_sums(&f.live.docroot)),
        Vec::<String>::new(),
        "the pushed files are back"
    );
    assert!(post_titles(&f.live).contains("Made on staging"));
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request to live failed during the push, the undo and the undo's undo ({} made)",
        total.load(Ordering::Relaxed)
    );
    let window = f.engine.undo_window(&f.site).await.unwrap().unwrap();
    assert_eq!((window.push, window.puts_push_back), (redone.id, false));
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undo_puts_the_old_site_back_with_its_files_and_is_logged() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    undo_puts_the_old_site_back(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_undo_puts_the_old_site_back() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    undo_puts_the_old_site_back(fixture_sqlite().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_health_check_undoes_a_push_whose_theme_has_a_php_fatal() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    completed(&f, Operation::CreateStaging).await;
    {
        let staging = staging(&f);
        staging
            .php("wp_insert_post(['post_title' => 'Made on staging', 'post_status' => 'publish']);")
            .unwrap();
        let theme = staging.option("stylesheet").unwrap();
        let functions = staging
            .docroot
            .join(format!("wp-content/themes/{}/functions.php", theme.trim()));
        // (Block themes may have no functions.php: WordPress loads one when it is there.)
        let text = std::fs::read_to_string(&functions).unwrap_or_else(|_| "<?php\n".into());
        std::fs::write(
            &functions,
            text.replacen("<?php", "<?php sitetrail_no_such_function();", 1),
        )
        .unwrap();
    }
    visit(&f).await;
    let (tables, files) = (table_sums(&f), tree_sums(&f.live.docroot));
    let pushed = f
        .run(Operation::PushToLive(Push {
            keep_staging: true,
            ..Push::site()
        }))
        .await;
    assert_eq!(pushed.status, Status::Failed);
    let error = pushed.error.unwrap();
    assert!(
        error.starts_with("The home page ") && error.contains("so the push was undone automatically: live serves the site as it was before the push"),
        "{error}"
    );
    assert!(
        pushed.details["health"]["pages"].is_array(),
        "{:?}",
        pushed.details
    );
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new()
    );
    assert_eq!(
        changed_files(&files, &tree_sums(&f.live.docroot)),
        Vec::<String>::new()
    );
    let (status, home) = super::get(&f.live.url).await;
    assert_eq!(status, 200);
    assert!(!home.contains("critical error") && !home.contains("Made on staging"));
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_is_restored_from_a_backup_database_only_files_only_and_whole() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    visit(&f).await;
    let backup = completed(
        &f,
        Operation::Backup {
            environment: Environment::Live,
            reason: BackupReason::Manual,
        },
    )
    .await;
    let backup = BackupId::parse(backup.details["backup"].as_str().unwrap()).unwrap();
    let (tables, files) = (table_sums(&f), tree_sums(&f.live.docroot));
    let change_live = || {
        f.live
            .php(
                "wp_insert_post(['post_title' => 'After the backup', 'post_status' => 'publish']);",
            )
            .unwrap();
        std::fs::write(f.live.docroot.join("wp-content/after.txt"), "after").unwrap();
    };
    change_live();
    let restore = |scope| Operation::RestoreLive {
        backup: backup.clone(),
        scope,
    };
    let a = completed(&f, restore(PushScope::Database)).await;
    assert_eq!(a.activity, ActivityKind::RestoreLiveFromBackup);
    assert!(a.details["automatic_backup"].is_string());
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new()
    );
    assert!(
        f.live.docroot.join("wp-content/after.txt").is_file(),
        "files untouched"
    );
    completed(&f, restore(PushScope::Files)).await;
    assert_eq!(
        changed_files(&files, &tree_sums(&f.live.docroot)),
        Vec::<String>::new()
    );
    change_live();
    completed(&f, restore(PushScope::Site)).await;
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new()
    );
    assert_eq!(
        changed_files(&files, &tree_sums(&f.live.docroot)),
        Vec::<String>::new()
    );
    assert_eq!(f.live.option("siteurl").unwrap(), f.live.url);
    assert_eq!(super::get(&f.live.url).await.0, 200);
    let missing = f
        .engine
        .start(&f.site, restore_of("nope"), owner())
        .await
        .err();
    assert!(
        matches!(missing, Some(EngineError::NotFound(_))),
        "{missing:?}"
    );
}

fn restore_of(backup: &str) -> Operation {
    Operation::RestoreLive {
        backup: BackupId::parse(backup).unwrap(),
        scope: PushScope::Site,
    }
}
