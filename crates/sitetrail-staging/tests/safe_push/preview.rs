//! A preview changes nothing, and its numbers are what the push confirming it then does: the
//! push's own report equals the preview's, and each table's row count in live moves by its
//! added minus removed. Confirming a preview after live changed stops and re-previews.

use std::collections::BTreeMap;

use sitetrail_core::Status;
use sitetrail_staging::wordpress::{self, Service, mysql};
use sitetrail_staging::{Operation, Push, PushScope};

use super::fixture;
use super::safe_push_shop as shop;
use super::safe_push_support::{
    completed, differing, for_people, push, report, table_checksums, tree,
};

/// Rows per table of a site's MariaDB database (sitetrail's tables aside left out).
fn row_counts(db: &str) -> BTreeMap<String, i64> {
    let tables = mysql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'"
    ))
    .unwrap();
    tables
        .lines()
        .filter(|t| !t.starts_with("stn") && !t.starts_with("sto"))
        .map(|t| {
            let n = mysql(&format!("SELECT COUNT(*) FROM `{db}`.`{t}`")).unwrap();
            (t.to_owned(), n.trim().parse().unwrap())
        })
        .collect()
}

fn confirming(preview: &sitetrail_core::StoredActivity) -> Operation {
    Operation::PushToLive(Push {
        preview: Some(preview.id.clone()),
        ..push(PushScope::Site)
    })
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_previews_numbers_are_what_the_push_then_does_and_a_stale_preview_is_not_pushed() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    shop::install(&f.live);
    shop::place_orders(&f.live, 2, "before-staging");
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    staging
        .php(&format!(
            "for ($i = 0; $i < 3; $i++) {{ wp_insert_post(['post_title' => \"New $i\", 'post_status' => 'publish', \
             'post_content' => '<a href=\"{u}/new-'.$i.'\">link</a>']); }} \
             wp_update_post(['ID' => 2, 'post_content' => 'Changed on staging']); \
             wp_delete_post(1, true);",
            u = f.staging_url
        ))
        .unwrap();
    std::fs::write(
        staging.docroot.join("wp-content/preview-note.txt"),
        "twelve bytes",
    )
    .unwrap();
    // Live has this file (Debian's WordPress has no `wp-content/index.php`).
    let readme = "wp-content/themes/twentytwentythree/readme.txt";
    assert!(f.live.docroot.join(readme).is_file());
    std::fs::write(staging.docroot.join(readme), "Changed on staging.\n").unwrap();
    let taken = shop::place_orders(&f.live, 2, "after-staging");
    shop::add_comment(&f.live, "A comment live took");

    let counts = row_counts(&f.live.db);
    let (tables, files) = (table_checksums(&f.live.db), tree(&f.live.docroot));
    let preview = completed(&f, Operation::PreviewPush(push(PushScope::Site))).await;
    assert_eq!(preview.activity, sitetrail_core::ActivityKind::PreviewPush);
    assert_eq!(
        differing(&table_checksums(&f.live.db), &tables),
        Vec::<String>::new(),
        "a preview changes no table of live"
    );
    assert_eq!(
        differing(&tree(&f.live.docroot), &files),
        Vec::<String>::new(),
        "a preview changes no file of live"
    );
    let previewed = report(&preview);
    let posts = format!("{}posts", f.live.prefix);
    let posts_change = previewed
        .tables
        .iter()
        .find(|t| t.table == posts)
        .unwrap_or_else(|| panic!("{posts} is in the preview: {previewed:?}"));
    assert!(posts_change.added >= 3 && posts_change.removed >= 1 && posts_change.changed >= 1);
    assert!(posts_change.kept_from_live >= 1, "{posts_change:?}");
    assert!(previewed.kept_from_live >= 2, "{previewed:?}");
    assert!(previewed.conflicts.is_empty(), "{:?}", previewed.conflicts);
    assert!(previewed.url_rewrites >= 3, "{previewed:?}");
    assert!(
        previewed.files.added >= 1 && previewed.files.changed >= 1,
        "{:?}",
        previewed.files
    );
    let listed = |path: &str| {
        previewed
            .files
            .list
            .iter()
            .find(|c| c.path == path)
            .cloned()
    };
    let note = listed("wp-content/preview-note.txt").expect("the added file is listed");
    assert_eq!((note.change.as_str(), note.bytes), ("added", 12));
    assert_eq!(listed(readme).map(|c| c.change), Some("changed".into()));
    assert!(previewed.files.bytes_added >= 12);
    assert!(!previewed.live_fingerprint.is_empty());

    let pushed = completed(&f, confirming(&preview)).await;
    assert_eq!(
        report(&pushed),
        previewed,
        "the push did what its preview said"
    );
    let after = row_counts(&f.live.db);
    // Options are left out: WordPress adds transients when the health check after the switch
    // serves live's pages, so their count moves by more than the push did.
    for t in previewed
        .tables
        .iter()
        .filter(|t| !t.table.ends_with("options"))
    {
        let moved =
            after.get(&t.table).copied().unwrap_or(0) - counts.get(&t.table).copied().unwrap_or(0);
        assert_eq!(
            moved,
            t.added as i64 - t.removed as i64,
            "{}: rows moved by added - removed ({t:?})",
            t.table
        );
    }
    for (table, n) in &after {
        if !previewed.tables.iter().any(|t| &t.table == table) {
            assert_eq!(
                counts.get(table),
                Some(n),
                "{table} changed without being in the preview"
            );
        }
    }
    assert!(
        shop::orders(&f.live, &taken)
            .iter()
            .all(|o| o.contains("item:Baguette")),
        "the orders live took are kept"
    );
    assert!(
        f.live.docroot.join("wp-content/preview-note.txt").is_file(),
        "the file went live"
    );

    // A preview, then live takes an order: confirming it pushes nothing and re-previews.
    staging
        .php("wp_insert_post(['post_title' => 'Second round', 'post_status' => 'publish']);")
        .unwrap();
    let second = completed(&f, Operation::PreviewPush(push(PushScope::Site))).await;
    let late = shop::place_orders(&f.live, 1, "during-review");
    let (tables, files) = (table_checksums(&f.live.db), tree(&f.live.docroot));
    let stale = f.run(confirming(&second)).await;
    assert_eq!(stale.status, Status::Failed, "{:?}", stale.details);
    for_people(stale.error.as_deref().unwrap());
    assert_eq!(
        differing(&table_checksums(&f.live.db), &tables),
        Vec::<String>::new(),
        "a stale confirmation changes no table of live"
    );
    assert_eq!(
        differing(&tree(&f.live.docroot), &files),
        Vec::<String>::new()
    );
    let fresh = report(&stale);
    assert_ne!(
        fresh.live_fingerprint,
        report(&second).live_fingerprint,
        "the new preview is of live as it is now"
    );
    assert!(
        fresh.kept_from_live > report(&second).kept_from_live,
        "the new preview keeps the order live took since: {} then {} ({:?})",
        report(&second).kept_from_live,
        fresh.kept_from_live,
        fresh.tables
    );
    let third = completed(&f, Operation::PreviewPush(push(PushScope::Site))).await;
    completed(&f, confirming(&third)).await;
    assert!(shop::order(&f.live, late[0]).contains("item:Croissant"));
    assert!(
        f.live
            .php("echo count(get_posts(['title' => 'Second round', 'post_type' => 'post']));")
            .unwrap()
            == "1"
    );
}

/// A push that changes thousands of files ends like any other: its details name the first
/// ones and say how many there were, within what the log keeps (an ending too long for the
/// log used to leave the push `in_progress`, and the site locked, for good).
#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_of_thousands_of_files_ends_and_its_details_say_how_many_were_listed() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    let uploads = staging
        .docroot
        .join("wp-content/uploads/2026/12/a-gallery-with-rather-long-file-names");
    std::fs::create_dir_all(&uploads).unwrap();
    for i in 0..3_000 {
        std::fs::write(
            uploads.join(format!("photo-of-the-shop-front-{i:05}.jpg")),
            [1u8],
        )
        .unwrap();
    }
    let pushed = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        f.run(Operation::PushToLive(push(PushScope::Files))),
    )
    .await
    .expect("the push ends");
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    let files = &pushed.details["preview"]["files"];
    assert_eq!(files["added"], 3_000);
    assert!(files["list_total"].as_u64().unwrap() > 0);
    let listed = files["list"].as_array().unwrap();
    assert!(!listed.is_empty() && listed.len() < 3_000);
    assert!(
        serde_json::to_string(&pushed.details).unwrap().len() <= sitetrail_core::MAX_DETAILS_BYTES
    );
    assert!(
        f.live
            .docroot
            .join("wp-content/uploads/2026/12/a-gallery-with-rather-long-file-names/photo-of-the-shop-front-02999.jpg")
            .exists()
    );
    std::mem::forget(staging);
}
