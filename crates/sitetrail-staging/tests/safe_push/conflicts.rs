//! A row both sides changed (an order whose status staging and live both set, differently):
//! the push stops before switching, names the table and the key, and changes nothing in live
//! (its tables' checksums and its tree are the same after); then each choice gives its result.

use sitetrail_core::Status;
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{OnConflict, Operation, PushScope};

use super::safe_push_shop as shop;
use super::safe_push_support::{
    completed, differing, for_people, page_text, push, push_choosing, report, table_checksums, tree,
};
use super::{Fixture, fixture};

const PAGE_TEXT: &str = "Staging rewrote the sample page";

/// Makes the conflict, checks that a push stops on it without changing live, and returns
/// the order both sides changed.
async fn a_conflicting_push_stops_and_changes_nothing(f: &Fixture) -> u64 {
    shop::install(&f.live);
    let ids = shop::place_orders(&f.live, 2, "shared");
    let order = ids[1];
    completed(f, Operation::CreateStaging).await;
    let staging = f.staging();
    staging
        .php(&format!(
            "wp_update_post(['ID' => {order}, 'post_status' => 'wc-cancelled']); \
             wp_update_post(['ID' => 2, 'post_content' => '{PAGE_TEXT}']);"
        ))
        .unwrap();
    f.live
        .php(&format!(
            "wp_update_post(['ID' => {order}, 'post_status' => 'wc-completed']);"
        ))
        .unwrap();
    let live_order = shop::order(&f.live, order);
    assert!(
        live_order.starts_with("shop_order|wc-completed"),
        "{live_order}"
    );
    let tables = table_checksums(&f.live.db);
    let files = tree(&f.live.docroot);

    let stopped = f.run(Operation::PushToLive(push(PushScope::Site))).await;
    assert_eq!(stopped.status, Status::Failed, "{:?}", stopped.details);
    let error = stopped.error.clone().unwrap();
    for_people(&error);
    let conflicts = report(&stopped).conflicts;
    let posts = format!("{}posts", f.live.prefix);
    assert!(
        conflicts
            .iter()
            .any(|c| c.table == posts && c.key == format!("ID={order}")),
        "the conflict names {posts} and ID={order}: {conflicts:?}"
    );
    let ours = conflicts.iter().find(|c| c.table == posts).unwrap();
    assert_eq!(
        (ours.staging.as_str(), ours.live.as_str()),
        ("changed", "changed")
    );

    assert_eq!(
        differing(&table_checksums(&f.live.db), &tables),
        Vec::<String>::new(),
        "no table of live changed"
    );
    assert_eq!(
        differing(&tree(&f.live.docroot), &files),
        Vec::<String>::new(),
        "no file of live changed"
    );
    assert_eq!(shop::order(&f.live, order), live_order);
    assert!(!page_text(&f.live.url, 2).await.contains(PAGE_TEXT));
    std::mem::forget(staging);
    order
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_stops_the_push_unchanged_and_staging_wins_when_chosen() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    let order = a_conflicting_push_stops_and_changes_nothing(&f).await;
    let pushed = completed(
        &f,
        Operation::PushToLive(push_choosing(OnConflict::StagingWins)),
    )
    .await;
    assert!(
        shop::order(&f.live, order).starts_with("shop_order|wc-cancelled"),
        "staging's version of the order went live"
    );
    assert!(page_text(&f.live.url, 2).await.contains(PAGE_TEXT));
    assert_eq!(
        pushed.details["on_conflict"], "staging_wins",
        "{:?}",
        pushed.details
    );
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_stops_the_push_unchanged_and_live_wins_when_chosen() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    let order = a_conflicting_push_stops_and_changes_nothing(&f).await;
    completed(
        &f,
        Operation::PushToLive(push_choosing(OnConflict::LiveWins)),
    )
    .await;
    let now = shop::order(&f.live, order);
    assert!(
        now.starts_with("shop_order|wc-completed"),
        "live kept its version of the order: {now}"
    );
    assert!(now.contains("item:Croissant"), "with its items: {now}");
    assert!(page_text(&f.live.url, 2).await.contains(PAGE_TEXT));
}
