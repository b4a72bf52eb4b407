//! Undo a push after live took another order: live is the old site (its pages, its tree) plus
//! that order, whole; the undo is its own activity; undoing it puts the push back plus the
//! order live took in between; a poller sees no failed request during the push and the undos.

use sitetrail_core::{ActivityKind, Status};
use sitetrail_staging::wordpress::{self, Service, WpSite};
use sitetrail_staging::{Operation, PushScope};

use super::safe_push_shop as shop;
use super::safe_push_support::{completed, differing, page_text, push, run_polled, tree};
use super::{Fixture, fixture, fixture_sqlite};

/// Live's posts and pages: id, title and a hash of the content, one a line.
pub fn pages(site: &WpSite) -> String {
    site.php(
        "global $wpdb; foreach ($wpdb->get_results(\"SELECT ID, post_title, post_content, post_status FROM {$wpdb->posts} WHERE post_type IN ('post', 'page') ORDER BY ID\") as $r) { echo $r->ID, '|', $r->post_title, '|', $r->post_status, '|', md5($r->post_content), \"\\n\"; }",
    )
    .unwrap()
}

/// The rows of the base an undo measures from (`push-base/{site}.json`), by table.
fn push_base_tables(f: &Fixture) -> serde_json::Value {
    let path = f.dir.path().join(format!("data/push-base/{}.json", f.site));
    let base: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    base["tables"].clone()
}

async fn undo_after_live_took_an_order(f: Fixture) {
    shop::install(&f.live);
    shop::place_orders(&f.live, 2, "before-staging");
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    staging
        .php(
            "wp_update_post(['ID' => 2, 'post_content' => 'Pushed, then undone']); \
             wp_insert_post(['post_title' => 'From staging', 'post_status' => 'publish']);",
        )
        .unwrap();
    std::fs::write(staging.docroot.join("wp-content/staged.txt"), "staged").unwrap();
    let old_pages = pages(&f.live);
    let old_tree = tree(&f.live.docroot);
    let old_page = page_text(&f.live.url, 2).await;

    let pushed = run_polled(&f, Operation::PushToLive(push(PushScope::Site))).await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    assert!(
        page_text(&f.live.url, 2)
            .await
            .contains("Pushed, then undone")
    );
    let window = f
        .engine
        .undo_window(&f.site)
        .await
        .unwrap()
        .expect("a push opens an undo window");
    assert_eq!(window.push, pushed.id);

    // Live's business goes on after the push.
    let taken = shop::place_orders(&f.live, 2, "after-push");
    let comment = shop::add_comment(&f.live, "Written after the push");
    let taken_now = shop::orders(&f.live, &taken);

    let undone = run_polled(&f, Operation::UndoPush).await;
    assert_eq!(
        (undone.activity, undone.status),
        (ActivityKind::UndoPush, Status::Completed),
        "{:?}",
        undone.error
    );
    assert_eq!(
        undone.description,
        "Undid the last push: live is as it was before it"
    );
    assert_eq!(pages(&f.live), old_pages, "live's pages are the old site's");
    let page = page_text(&f.live.url, 2).await;
    assert!(!page.contains("Pushed, then undone"));
    assert_eq!(
        page.contains("Sample Page"),
        old_page.contains("Sample Page")
    );
    assert_eq!(
        differing(&tree(&f.live.docroot), &old_tree),
        Vec::<String>::new(),
        "live's files are the old site's"
    );
    assert_eq!(
        shop::orders(&f.live, &taken),
        taken_now,
        "plus the orders live took after the push, whole"
    );
    assert_eq!(shop::comment(&f.live, comment), "Written after the push|5");
    // The base the undo leaves for undoing it again is live's rows as they are now, as
    // reading them again would record.
    let left = push_base_tables(&f);
    f.engine.record_push_base_for_tests(&f.site).await.unwrap();
    assert_eq!(left, push_base_tables(&f));
    assert_eq!(f.live.option("siteurl").unwrap(), f.live.url);
    assert!(super::admin_can_log_in(&f.live.url).await);

    // Undoing the undo puts the push back, with the order live took in between.
    let window = f.engine.undo_window(&f.site).await.unwrap().unwrap();
    assert!(
        window.puts_push_back,
        "the pushed site is kept after an undo"
    );
    let between = shop::place_orders(&f.live, 1, "after-undo");
    let between_now = shop::orders(&f.live, &between);
    let redone = run_polled(&f, Operation::UndoPush).await;
    assert_eq!(redone.status, Status::Completed, "{:?}", redone.error);
    assert!(
        page_text(&f.live.url, 2)
            .await
            .contains("Pushed, then undone")
    );
    assert!(f.live.docroot.join("wp-content/staged.txt").exists());
    assert_eq!(
        shop::orders(&f.live, &taken),
        taken_now,
        "the orders after the push"
    );
    assert_eq!(
        shop::orders(&f.live, &between),
        between_now,
        "and the order live took after the undo, whole"
    );
    assert_eq!(shop::comment(&f.live, comment), "Written after the push|5");
    std::mem::forget(staging);
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undo_puts_back_the_old_site_plus_the_order_live_took_since() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    undo_after_live_took_an_order(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_undo_puts_back_the_old_site_plus_the_order_live_took_since() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    undo_after_live_took_an_order(fixture_sqlite().await).await;
}
