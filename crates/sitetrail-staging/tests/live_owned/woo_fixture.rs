//! The WooCommerce-shaped fixture writes orders as WooCommerce does, on both databases.

use sitetrail_staging::woo::{self, Storage};
use sitetrail_staging::wordpress::{self, Service, WpSite};

fn shop_places_orders_both_ways(site: &WpSite) {
    woo::install(site).unwrap();
    let customer = woo::add_customer(site, "ada@example.test").unwrap();
    let legacy = woo::place_order(
        site,
        Storage::Posts,
        "ada@example.test",
        &[("Baguette", 2, "3.20")],
    )
    .unwrap();
    let hpos = woo::place_order(
        site,
        Storage::Hpos,
        "ada@example.test",
        &[("Croissant", 3, "4.50"), ("Brioche", 1, "5.00")],
    )
    .unwrap();
    assert_eq!(hpos.items.len(), 2);
    assert!(
        hpos.id > legacy.id,
        "order ids come from the posts table's counter"
    );
    let comment = woo::add_comment(site, 1, "Lovely bread").unwrap();
    let seen = site
        .php(&format!(
            r#"global $wpdb; $p = $wpdb->prefix;
echo get_post_type({legacy}), '|', get_post_meta({legacy}, '_billing_email', true), '|',
  get_post_type({hpos}), '|', $wpdb->get_var("SELECT billing_email FROM {{$p}}wc_orders WHERE id = {hpos}"), '|',
  $wpdb->get_var("SELECT COUNT(*) FROM {{$p}}woocommerce_order_itemmeta m JOIN {{$p}}woocommerce_order_items i ON i.order_item_id = m.order_item_id WHERE i.order_id = {hpos}"), '|',
  $wpdb->get_var("SELECT user_id FROM {{$p}}wc_customer_lookup WHERE email = 'ada@example.test'"), '|',
  get_comment({comment})->comment_content, '|', (new WP_User({customer}))->roles[0];"#,
            legacy = legacy.id,
            hpos = hpos.id
        ))
        .unwrap();
    assert_eq!(
        seen,
        format!(
            "shop_order|ada@example.test|shop_order_placehold|ada@example.test|12|{customer}|Lovely bread|customer"
        )
    );
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_woo_fixture_places_orders_as_posts_and_in_hpos_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = WpSite::install(dir.path(), "shop", wordpress::free_port(4), "wp_", "Shop").unwrap();
    shop_places_orders_both_ways(&site);
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_woo_fixture_places_orders_as_posts_and_in_hpos_on_sqlite() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site =
        WpSite::install_sqlite(dir.path(), "shop", wordpress::free_port(4), "wp_", "Shop").unwrap();
    shop_places_orders_both_ways(&site);
}
