//! An undo puts the replaced live back: what live took since the push is carried into that
//! kept copy first (`carry_since_push`), here on a kept copy made by hand.

use sitetrail_staging::woo::{self, Storage};
use sitetrail_staging::wordpress::{self, Service, mysql};

use super::fixture;

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kept_copy_gets_what_live_took_since_the_push_on_mariadb() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    woo::install(&f.live).unwrap();
    let before = woo::place_order(
        &f.live,
        Storage::Hpos,
        "ada@example.test",
        &[("Loaf", 1, "2.50")],
    )
    .unwrap();
    // Without a push base, every row of live's is carried and that is said.
    let db = &f.live.db;
    let tables: Vec<String> = mysql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' AND table_name LIKE 'wp\\_%'"
    ))
    .unwrap()
    .lines()
    .map(str::to_owned)
    .collect();
    let keep = |tag: &str| -> Vec<(String, String)> {
        tables
            .iter()
            .map(|t| {
                let kept = format!("sto{tag}_{t}");
                mysql(&format!(
                    "CREATE TABLE `{db}`.`{kept}` LIKE `{db}`.`{t}`; INSERT INTO `{db}`.`{kept}` SELECT * FROM `{db}`.`{t}`"
                ))
                .unwrap();
                (kept, t.clone())
            })
            .collect()
    };
    f.engine.record_push_base_for_tests(&f.site).await.unwrap();
    let kept = keep("k1");
    f.live
        .php("update_option('blogname', 'Changed after the push');")
        .unwrap();
    let after = woo::place_order(
        &f.live,
        Storage::Hpos,
        "bo@example.test",
        &[("Tart", 2, "8.00")],
    )
    .unwrap();
    let comment = woo::add_comment(&f.live, 1, "Written after the push").unwrap();
    f.live
        .php(&format!(
            "global $wpdb; $wpdb->delete($wpdb->prefix . 'wc_orders', ['id' => {}]);",
            before.id
        ))
        .unwrap();
    let (gained, without_base) = f
        .engine
        .carry_since_push_for_tests(&f.site, kept)
        .await
        .unwrap();
    assert!(!without_base);
    assert!(gained >= 8, "{gained}");
    let count = |sql: &str| {
        mysql(&format!("USE `{db}`; {sql}"))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM stok1_wp_wc_orders WHERE id = {}",
            after.id
        )),
        "1"
    );
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM stok1_wp_wc_orders WHERE id = {}",
            before.id
        )),
        "0",
        "live deleted it since"
    );
    assert_eq!(
        count(&format!(
            "SELECT COUNT(*) FROM stok1_wp_woocommerce_order_itemmeta m JOIN stok1_wp_woocommerce_order_items i ON i.order_item_id = m.order_item_id WHERE i.order_id = {}",
            after.id
        )),
        "6"
    );
    assert_eq!(
        count(&format!(
            "SELECT comment_content FROM stok1_wp_comments WHERE comment_ID = {comment}"
        )),
        "Written after the push"
    );
    assert_eq!(
        count(&format!(
            "SELECT post_type FROM stok1_wp_posts WHERE ID = {}",
            after.id
        )),
        "shop_order_placehold"
    );
    // What live does not own stays as the kept copy had it.
    assert_ne!(
        count("SELECT option_value FROM stok1_wp_options WHERE option_name = 'blogname'"),
        "Changed after the push"
    );
}
