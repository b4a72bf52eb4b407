//! The first scenario, on MariaDB and on SQLite: staging changes a page while live
//! takes orders (as posts with meta and items, and as HPOS rows), a comment and a user. After
//! the push live has staging's page and everything live took, read inside WordPress and over
//! HTTP; a poller on live sees no failed request during the push.

use sitetrail_core::Status;
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{Operation, PushScope};

use super::safe_push_shop as shop;
use super::safe_push_support::{completed, page_text, push, report, run_polled};
use super::{Fixture, fixture, fixture_sqlite};

const PAGE_TEXT: &str = "Opening hours from staging: 7 to 19";

async fn live_keeps_what_it_took_while_staging_changed_a_page(f: Fixture) {
    shop::install(&f.live);
    let older = shop::place_orders(&f.live, 2, "before-staging");
    let old_comment = shop::add_comment(&f.live, "Written before staging was made");
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    staging
        .php(&format!(
            "$r = wp_update_post(['ID' => 2, 'post_content' => '{PAGE_TEXT}'], true); \
             if (is_wp_error($r)) {{ echo $r->get_error_message(); exit(1); }}"
        ))
        .unwrap();

    // Live's business goes on after staging was made.
    let taken = shop::place_orders(&f.live, 4, "after-staging");
    let comment = shop::add_comment(&f.live, "Lovely croissants");
    let user = shop::add_user(&f.live, "shopper");
    assert!(user > 1);
    let all: Vec<u64> = older.iter().chain(&taken).copied().collect();
    let orders_before = shop::orders(&f.live, &all);
    assert_eq!(orders_before.len(), 6);
    assert!(
        orders_before.iter().all(|o| o.contains("item:Croissant")),
        "{orders_before:?}"
    );
    assert!(orders_before[2].starts_with("shop_order_placehold|"));
    assert!(orders_before[2].contains("hpos:wc-processing"));
    assert!(orders_before[3].starts_with("shop_order|wc-processing"));
    let comments_before = (
        shop::comment(&f.live, comment),
        shop::comment(&f.live, old_comment),
    );
    let user_before = shop::user(&f.live, "shopper");
    assert_eq!(user_before, "shopper@example.test|Lyon|subscriber");

    let pushed = run_polled(&f, Operation::PushToLive(push(PushScope::Site))).await;
    assert_eq!(
        pushed.status,
        Status::Completed,
        "{:?} {:?}",
        pushed.error,
        pushed.details
    );
    // Live took nothing during the switch: nothing to say about it.
    assert_eq!(pushed.description, "Successfully pushed staging to live");
    assert!(
        pushed
            .details
            .get("caught_up_after_switch_failed")
            .is_none(),
        "{:?}",
        pushed.details
    );

    // Inside WordPress: every order with its meta and items, the comments, the user.
    assert_eq!(
        shop::orders(&f.live, &all),
        orders_before,
        "every order live took is there, whole"
    );
    assert_eq!(
        (
            shop::comment(&f.live, comment),
            shop::comment(&f.live, old_comment)
        ),
        comments_before
    );
    assert_eq!(shop::user(&f.live, "shopper"), user_before);
    assert_eq!(
        f.live.php("echo get_post(2)->post_content;").unwrap(),
        PAGE_TEXT,
        "staging's page is live's"
    );
    // Over HTTP, at live's URL.
    let page = page_text(&f.live.url, 2).await;
    assert!(page.contains(PAGE_TEXT), "live serves staging's page");
    assert!(
        !page.contains(f.staging_url.trim_start_matches("http://")),
        "no staging URL on live's page"
    );
    assert!(
        super::admin_can_log_in(&f.live.url).await,
        "the admin still logs in"
    );
    // The push says what it kept.
    let r = report(&pushed);
    assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
    assert!(
        r.kept_from_live >= 4,
        "the rows live took are counted as kept: {r:?}"
    );
    assert_eq!(
        pushed.details["pushed"]["scope"], "site",
        "{:?}",
        pushed.details
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_keeps_the_orders_comments_and_users_live_took_and_brings_stagings_page() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    live_keeps_what_it_took_while_staging_changed_a_page(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_a_push_keeps_the_orders_comments_and_users_live_took_and_brings_stagings_page() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    live_keeps_what_it_took_while_staging_changed_a_page(fixture_sqlite().await).await;
}
