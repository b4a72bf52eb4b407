//! Each scope changes exactly its part of live: database only, files only, chosen tables,
//! chosen folders. Live's tables' checksums and its tree are taken before each push, and
//! everything outside the scope is the same after. Names outside what a site has are refused
//! before anything starts.

use sitetrail_core::{Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service, WpSite};
use sitetrail_staging::{Operation, Push, PushScope};

use super::safe_push_support::{completed, differing, push, table_checksums, tree};
use super::{Fixture, fixture};

fn titled(site: &WpSite, title: &str) -> String {
    site.php(&format!(
        "echo count(get_posts(['title' => {title:?}, 'post_type' => 'post', 'post_status' => 'any']));"
    ))
    .unwrap()
}

/// Runs a push and returns it with the tables and files of live it changed.
async fn changed_by(f: &Fixture, push: Push) -> (StoredActivity, Vec<String>, Vec<String>) {
    let (tables, files) = (table_checksums(&f.live.db), tree(&f.live.docroot));
    let pushed = completed(f, Operation::PushToLive(push)).await;
    (
        pushed,
        differing(&table_checksums(&f.live.db), &tables),
        differing(&tree(&f.live.docroot), &files),
    )
}

/// A push that must not start: refused, or logged as failed, and live unchanged.
async fn refused(f: &Fixture, push: Push) {
    let (tables, files) = (table_checksums(&f.live.db), tree(&f.live.docroot));
    match f
        .engine
        .start(&f.site, Operation::PushToLive(push.clone()), super::owner())
        .await
    {
        Err(e) => eprintln!("refused: {e}"),
        Ok(started) => {
            let ended = started.finished.await.unwrap();
            assert_eq!(ended.status, Status::Failed, "{push:?} is refused");
        }
    }
    assert!(differing(&table_checksums(&f.live.db), &tables).is_empty());
    assert!(differing(&tree(&f.live.docroot), &files).is_empty());
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_scope_changes_exactly_its_part_of_live() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    let p = &f.live.prefix;

    // Database only.
    staging
        .php("wp_insert_post(['post_title' => 'Database scope post', 'post_status' => 'publish']);")
        .unwrap();
    std::fs::write(staging.docroot.join("wp-content/db-scope.txt"), "db").unwrap();
    let (pushed, tables, files) = changed_by(&f, push(PushScope::Database)).await;
    assert_eq!(
        files,
        Vec::<String>::new(),
        "a database push leaves live's files"
    );
    assert!(tables.contains(&format!("{p}posts")), "{tables:?}");
    assert_eq!(titled(&f.live, "Database scope post"), "1");
    assert_eq!(
        pushed.details["pushed"]["scope"], "database",
        "{:?}",
        pushed.details
    );

    // Files only.
    std::fs::write(staging.docroot.join("wp-content/files-scope.txt"), "files").unwrap();
    let (pushed, tables, files) = changed_by(&f, push(PushScope::Files)).await;
    assert_eq!(
        tables,
        Vec::<String>::new(),
        "a files push leaves live's tables"
    );
    assert_eq!(
        files,
        ["wp-content/db-scope.txt", "wp-content/files-scope.txt"],
        "exactly the files staging changed"
    );
    assert_eq!(pushed.details["pushed"]["scope"], "files");

    // Chosen tables.
    staging
        .php(
            "wp_insert_post(['post_title' => 'Tables scope post', 'post_status' => 'publish']); \
             update_option('blogdescription', 'A tagline from staging'); \
             wp_insert_term('Staging term', 'category');",
        )
        .unwrap();
    let description = f.live.option("blogdescription").unwrap();
    let (pushed, tables, files) = changed_by(
        &f,
        Push {
            tables: vec!["posts".into(), "postmeta".into()],
            ..push(PushScope::Tables)
        },
    )
    .await;
    assert!(files.is_empty(), "{files:?}");
    assert!(tables.contains(&format!("{p}posts")), "{tables:?}");
    assert!(
        tables
            .iter()
            .all(|t| *t == format!("{p}posts") || *t == format!("{p}postmeta")),
        "only the chosen tables changed: {tables:?}"
    );
    assert_eq!(titled(&f.live, "Tables scope post"), "1");
    assert_eq!(f.live.option("blogdescription").unwrap(), description);
    assert_eq!(
        pushed.details["pushed"]["tables"],
        serde_json::json!(["posts", "postmeta"])
    );
    refused(
        &f,
        Push {
            tables: vec!["no_such_table".into()],
            ..push(PushScope::Tables)
        },
    )
    .await;

    // Chosen folders.
    let shop = staging.docroot.join("wp-content/themes/shop");
    std::fs::create_dir_all(shop.join("parts")).unwrap();
    std::fs::write(shop.join("style.css"), "/*\nTheme Name: Shop\n*/\n").unwrap();
    std::fs::write(shop.join("parts/header.html"), "<header>Shop</header>").unwrap();
    std::fs::write(staging.docroot.join("wp-content/outside.txt"), "not pushed").unwrap();
    staging
        .php("wp_insert_post(['post_title' => 'Folders scope post', 'post_status' => 'publish']);")
        .unwrap();
    let (pushed, tables, files) = changed_by(
        &f,
        Push {
            folders: vec!["wp-content/themes/shop".into()],
            ..push(PushScope::Folders)
        },
    )
    .await;
    assert!(
        tables.is_empty(),
        "a folders push leaves live's tables: {tables:?}"
    );
    assert_eq!(
        files,
        [
            "wp-content/themes/shop/parts/header.html",
            "wp-content/themes/shop/style.css"
        ],
        "exactly the chosen folder"
    );
    assert!(!f.live.docroot.join("wp-content/outside.txt").exists());
    assert_eq!(titled(&f.live, "Folders scope post"), "0");
    assert_eq!(
        pushed.details["pushed"]["folders"],
        serde_json::json!(["wp-content/themes/shop"])
    );
    for folder in ["../outside", "/etc", "wp-config.php", "wp-content/../.."] {
        refused(
            &f,
            Push {
                folders: vec![folder.into()],
                ..push(PushScope::Folders)
            },
        )
        .await;
    }
    std::mem::forget(staging);
}
