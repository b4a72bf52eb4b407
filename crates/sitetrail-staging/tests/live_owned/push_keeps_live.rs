//! Invariant 10 on real WordPress: a push carries into the new live every row live took in
//! the tables it owns (orders in both storage forms with their meta and items, comments,
//! users), keeps staging's own changes, keeps ids apart, and stops on a row both changed.

use sitetrail_core::Status;
use sitetrail_staging::woo::{self, Storage};
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{OnConflict, Operation, Push, PushScope};

use super::{Fixture, fixture, fixture_sqlite, get};

/// Staging's ids start this far past live's (see `ids.rs`).
const GAP: u64 = 1_000_000_000;

fn push(on_conflict: OnConflict) -> Operation {
    Operation::PushToLive(Push {
        scope: PushScope::Site,
        keep_staging: true,
        on_conflict,
        ..Push::default()
    })
}

async fn lives_orders_comments_and_users_survive_a_push(f: Fixture) {
    woo::install(&f.live).unwrap();
    woo::add_customer(&f.live, "early@example.test").unwrap();
    let early = woo::place_order(
        &f.live,
        Storage::Hpos,
        "early@example.test",
        &[("Loaf", 1, "2.50")],
    )
    .unwrap();
    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let mut staging = f.staging();
    staging.serve().unwrap();

    // Staging changes the first post and adds a page.
    staging
        .php("wp_update_post(['ID' => 1, 'post_title' => 'Fresh from staging']);")
        .unwrap();
    let page: u64 = staging
        .php("echo wp_insert_post(['post_type' => 'page', 'post_title' => 'New menu', 'post_status' => 'publish']);")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Meanwhile live takes two orders (one in each storage), a comment and a user.
    let customer = woo::add_customer(&f.live, "ada@example.test").unwrap();
    let legacy = woo::place_order(
        &f.live,
        Storage::Posts,
        "ada@example.test",
        &[("Baguette", 2, "3.20")],
    )
    .unwrap();
    let hpos = woo::place_order(
        &f.live,
        Storage::Hpos,
        "ada@example.test",
        &[("Croissant", 3, "4.50"), ("Brioche", 1, "5.00")],
    )
    .unwrap();
    let comment = woo::add_comment(&f.live, 1, "Best bread in town").unwrap();
    // Live changes an order it had before staging was made.
    f.live
        .php(&format!(
            "global $wpdb; $wpdb->update($wpdb->prefix . 'wc_orders', ['status' => 'wc-completed'], ['id' => {}]);",
            early.id
        ))
        .unwrap();

    // Ids made on each side since staging was made never meet.
    assert!(page > GAP, "staging's new page {page} starts past the gap");
    for id in [legacy.id, hpos.id, customer, comment] {
        assert!(id < GAP, "live's id {id} stays below staging's");
    }

    let pushed = f.run(push(OnConflict::Stop)).await;
    assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
    assert!(
        pushed.details["kept_from_live"].as_u64().unwrap() >= 10,
        "{:?}",
        pushed.details
    );
    assert!(
        pushed.details.get("conflicts").is_none(),
        "{:?}",
        pushed.details
    );

    // Inside WordPress: staging's content, and everything live took with its meta and items.
    let seen = f
        .live
        .php(&format!(
            r#"global $wpdb; $p = $wpdb->prefix;
echo get_post(1)->post_title, '|', get_post({page})->post_title, '|',
  get_post_type({legacy}), '|', get_post_meta({legacy}, '_billing_email', true), '|',
  $wpdb->get_var("SELECT COUNT(*) FROM {{$p}}woocommerce_order_items WHERE order_id = {legacy}"), '|',
  get_post_type({hpos}), '|', $wpdb->get_var("SELECT billing_email FROM {{$p}}wc_orders WHERE id = {hpos}"), '|',
  $wpdb->get_var("SELECT COUNT(*) FROM {{$p}}wc_order_addresses WHERE order_id = {hpos}"), '|',
  $wpdb->get_var("SELECT COUNT(*) FROM {{$p}}woocommerce_order_itemmeta m JOIN {{$p}}woocommerce_order_items i ON i.order_item_id = m.order_item_id WHERE i.order_id = {hpos}"), '|',
  $wpdb->get_var("SELECT status FROM {{$p}}wc_orders WHERE id = {early}"), '|',
  get_comment({comment})->comment_content, '|', get_comment_meta({comment}, 'rating', true), '|',
  get_user_by('id', {customer})->user_email, '|', (new WP_User({customer}))->roles[0], '|',
  $wpdb->get_var("SELECT COUNT(*) FROM {{$p}}wc_customer_lookup"), '|',
  $wpdb->get_var("SELECT COUNT(*) FROM {{$p}}wc_order_stats");"#,
            legacy = legacy.id,
            hpos = hpos.id,
            early = early.id,
        ))
        .unwrap();
    assert_eq!(
        seen,
        "Fresh from staging|New menu|shop_order|ada@example.test|1|shop_order_placehold|ada@example.test|2|12|wc-completed|Best bread in town|5|ada@example.test|customer|2|3"
    );
    // Over HTTP: the post with staging's title and live's comment.
    let (status, body) = get(&format!("{}/?p=1", f.live.url)).await;
    assert_eq!(status, 200);
    assert!(body.contains("Fresh from staging") && body.contains("Best bread in town"));
    // New ids on live continue past staging's, never into live's own old range.
    let next = woo::place_order(
        &f.live,
        Storage::Hpos,
        "ada@example.test",
        &[("Tart", 1, "6.00")],
    )
    .unwrap();
    assert!(next.id > page, "{} after {page}", next.id);
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lives_orders_comments_and_users_survive_a_push_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    lives_orders_comments_and_users_survive_a_push(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lives_orders_comments_and_users_survive_a_push_on_sqlite() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    lives_orders_comments_and_users_survive_a_push(fixture_sqlite().await).await;
}

async fn a_row_both_changed_stops_the_push_and_each_choice_gives_its_side(f: Fixture) {
    let created = f.run(Operation::CreateStaging).await;
    assert_eq!(created.status, Status::Completed, "{:?}", created.error);
    let staging = f.staging();
    // WordPress's first comment (id 1), changed on both sides; staging also changes an option.
    staging
        .php("wp_update_comment(['comment_ID' => 1, 'comment_content' => 'Edited on staging']); update_option('sitetrail_marker', 'staging');")
        .unwrap();
    f.live
        .php("wp_update_comment(['comment_ID' => 1, 'comment_content' => 'Answered on live']);")
        .unwrap();
    let comment = |f: &Fixture| {
        f.live.php("echo get_comment(1)->comment_content, '|', get_option('sitetrail_marker', 'none');").unwrap()
    };

    let stopped = f.run(push(OnConflict::Stop)).await;
    assert_eq!(stopped.status, Status::Failed);
    let reason = stopped.error.clone().unwrap();
    assert!(
        reason.contains("wp_comments comment_ID=1") && reason.contains("Nothing was pushed"),
        "{reason}"
    );
    assert_eq!(
        comment(&f),
        "Answered on live|none",
        "a stopped push changes nothing"
    );

    let live_wins = f.run(push(OnConflict::LiveWins)).await;
    assert_eq!(live_wins.status, Status::Completed, "{:?}", live_wins.error);
    assert_eq!(comment(&f), "Answered on live|staging");
    let conflicts = &live_wins.details["conflicts"];
    assert_eq!(conflicts[0]["table"], "wp_comments");
    assert_eq!(conflicts[0]["key"], "comment_ID=1");
    assert_eq!(conflicts[0]["staging"], "changed");
    assert_eq!(conflicts[0]["live"], "changed");

    let staging_wins = f.run(push(OnConflict::StagingWins)).await;
    assert_eq!(
        staging_wins.status,
        Status::Completed,
        "{:?}",
        staging_wins.error
    );
    assert_eq!(comment(&f), "Edited on staging|staging");
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_both_changed_stops_the_push_and_each_choice_gives_its_side_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    a_row_both_changed_stops_the_push_and_each_choice_gives_its_side(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_both_changed_stops_the_push_and_each_choice_gives_its_side_on_sqlite() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    a_row_both_changed_stops_the_push_and_each_choice_gives_its_side(fixture_sqlite().await).await;
}
