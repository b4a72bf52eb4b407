//! A shop on a real WordPress, shaped as WooCommerce stores it, without WooCommerce: orders as
//! `shop_order` posts with their postmeta, or as HPOS rows (`wc_orders`, `wc_orders_meta`,
//! `wc_order_addresses`, `wc_order_operational_data`) whose ids come from a
//! `shop_order_placehold` post as WooCommerce allocates them; line items with their itemmeta;
//! comments and users. Written with `$wpdb` so that it runs on MariaDB and on SQLite. Used by
//! the safe push tests and by the push benchmark. The tables are the woo fixture's
//! (`sitetrail_staging::woo`); orders are placed here in bulk, many in one PHP run, which the
//! benchmark's 2,000 orders need.

#![allow(dead_code)]

use sitetrail_staging::wordpress::WpSite;

/// PHP functions the helpers below call: `st_order()` places an order, `st_summary()` reads
/// everything an order is made of, in a stable order, so that two reads compare.
const SHOP_PHP: &str = r#"
function st_order($i, $hpos, $email) {
    global $wpdb; $p = $wpdb->prefix; $now = gmdate('Y-m-d H:i:s');
    if ($hpos) {
        $id = wp_insert_post(['post_type' => 'shop_order_placehold', 'post_status' => 'draft',
            'post_title' => '', 'post_author' => 1], true);
        $wpdb->insert("{$p}wc_orders", ['id' => $id, 'status' => 'wc-processing', 'currency' => 'EUR',
            'type' => 'shop_order', 'total_amount' => '12.50', 'customer_id' => 0,
            'billing_email' => $email, 'date_created_gmt' => $now, 'date_updated_gmt' => $now,
            'parent_order_id' => 0, 'payment_method' => 'cod', 'customer_note' => "Note $i"]);
        $wpdb->insert("{$p}wc_orders_meta", ['order_id' => $id, 'meta_key' => '_st_probe', 'meta_value' => "hpos $i"]);
        $wpdb->insert("{$p}wc_order_addresses", ['order_id' => $id, 'address_type' => 'billing',
            'first_name' => "Ann $i", 'email' => $email]);
        $wpdb->insert("{$p}wc_order_operational_data", ['order_id' => $id, 'created_via' => 'checkout',
            'cart_hash' => md5("$i")]);
    } else {
        $id = wp_insert_post(['post_type' => 'shop_order', 'post_status' => 'wc-processing',
            'post_title' => "Order $i", 'post_author' => 1], true);
        add_post_meta($id, '_order_total', '12.50');
        add_post_meta($id, '_billing_email', $email);
        add_post_meta($id, '_st_probe', "legacy $i");
    }
    foreach (['Croissant', 'Baguette'] as $k => $name) {
        $wpdb->insert("{$p}woocommerce_order_items", ['order_item_name' => $name,
            'order_item_type' => 'line_item', 'order_id' => $id]);
        $item = $wpdb->insert_id;
        foreach (['_qty' => $k + 1, '_line_total' => '6.25', '_product_id' => 10 + $k] as $mk => $mv) {
            $wpdb->insert("{$p}woocommerce_order_itemmeta", ['order_item_id' => $item,
                'meta_key' => $mk, 'meta_value' => $mv]);
        }
        $wpdb->insert("{$p}wc_order_product_lookup", ['order_item_id' => $item, 'order_id' => $id,
            'product_id' => 10 + $k, 'variation_id' => 0, 'customer_id' => 0, 'date_created' => $now,
            'product_qty' => $k + 1, 'product_net_revenue' => 6.25, 'product_gross_revenue' => 6.25]);
    }
    $wpdb->insert("{$p}wc_order_stats", ['order_id' => $id, 'parent_id' => 0, 'date_created' => $now,
        'date_created_gmt' => $now, 'num_items_sold' => 3, 'total_sales' => 12.5, 'net_total' => 12.5,
        'status' => 'wc-processing', 'customer_id' => 0]);
    if ($wpdb->last_error) { fwrite(STDERR, $wpdb->last_error); exit(1); }
    return $id;
}
function st_summary($id) {
    global $wpdb; $p = $wpdb->prefix;
    $post = get_post($id);
    if (!$post) { return 'missing'; }
    $s = [$post->post_type, $post->post_status, $post->post_title];
    $meta = get_post_meta($id); ksort($meta);
    foreach ($meta as $k => $v) { if ($k !== '_edit_lock') { $s[] = "$k=" . implode(',', $v); } }
    $o = $wpdb->get_row($wpdb->prepare("SELECT status, billing_email, customer_note FROM {$p}wc_orders WHERE id = %d", $id), ARRAY_A);
    if ($o) { $s[] = 'hpos:' . implode(',', $o); }
    foreach ($wpdb->get_col($wpdb->prepare("SELECT meta_value FROM {$p}wc_orders_meta WHERE order_id = %d ORDER BY meta_value", $id)) as $v) { $s[] = "hmeta:$v"; }
    foreach ($wpdb->get_col($wpdb->prepare("SELECT first_name FROM {$p}wc_order_addresses WHERE order_id = %d", $id)) as $v) { $s[] = "address:$v"; }
    foreach ($wpdb->get_col($wpdb->prepare("SELECT created_via FROM {$p}wc_order_operational_data WHERE order_id = %d", $id)) as $v) { $s[] = "via:$v"; }
    foreach ($wpdb->get_results($wpdb->prepare("SELECT order_item_id, order_item_name FROM {$p}woocommerce_order_items WHERE order_id = %d ORDER BY order_item_name", $id)) as $it) {
        $m = [];
        foreach ($wpdb->get_results($wpdb->prepare("SELECT meta_key, meta_value FROM {$p}woocommerce_order_itemmeta WHERE order_item_id = %d ORDER BY meta_key", $it->order_item_id)) as $im) { $m[] = "{$im->meta_key}={$im->meta_value}"; }
        $s[] = "item:{$it->order_item_name}:" . implode(',', $m);
    }
    foreach ($wpdb->get_col($wpdb->prepare("SELECT status FROM {$p}wc_order_stats WHERE order_id = %d", $id)) as $v) { $s[] = "stats:$v"; }
    $s[] = 'lookup:' . $wpdb->get_var($wpdb->prepare("SELECT COUNT(*) FROM {$p}wc_order_product_lookup WHERE order_id = %d", $id));
    return implode('|', $s);
}
"#;

/// Creates WooCommerce's tables with the woo fixture (`sitetrail_staging::woo`), on live
/// before staging is made.
pub fn install(site: &WpSite) {
    sitetrail_staging::woo::install(site).unwrap();
}

/// Places `n` orders, HPOS and posts in turn (the first one HPOS), tagged in their notes;
/// returns their ids.
pub fn place_orders(site: &WpSite, n: usize, tag: &str) -> Vec<u64> {
    let out = site
        .php(&format!(
            r#"{SHOP_PHP}
            wp_defer_term_counting(true); wp_suspend_cache_addition(true);
            $ids = [];
            for ($i = 0; $i < {n}; $i++) {{ $ids[] = st_order("{tag}-$i", $i % 2 == 0, "buyer-{tag}-$i@example.test"); }}
            echo implode(',', $ids);"#
        ))
        .unwrap();
    out.trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|_| panic!("an order id: {out}")))
        .collect()
}

/// Everything order `id` is made of, read through WordPress (`get_post`, `get_post_meta`)
/// and `$wpdb` for the HPOS and item tables; `missing` when its post is gone.
pub fn order(site: &WpSite, id: u64) -> String {
    site.php(&format!("{SHOP_PHP} echo st_summary({id});"))
        .unwrap()
}

/// Every order of `ids`, one line each.
pub fn orders(site: &WpSite, ids: &[u64]) -> Vec<String> {
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    site.php(&format!(
        "{SHOP_PHP} foreach ([{list}] as $id) {{ echo st_summary($id), \"\\n\"; }}"
    ))
    .unwrap()
    .lines()
    .map(str::to_owned)
    .collect()
}

/// An approved comment with a meta value on post 1; returns its id.
pub fn add_comment(site: &WpSite, text: &str) -> u64 {
    site.php(&format!(
        "$id = wp_insert_comment(['comment_post_ID' => 1, 'comment_content' => {text:?}, \
         'comment_approved' => 1, 'comment_author' => 'A buyer']); \
         add_comment_meta($id, 'rating', '5'); echo $id;"
    ))
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

/// A comment's text and meta, or `missing`.
pub fn comment(site: &WpSite, id: u64) -> String {
    site.php(&format!(
        "$c = get_comment({id}); echo $c ? $c->comment_content . '|' . get_comment_meta({id}, 'rating', true) : 'missing';"
    ))
    .unwrap()
}

/// A subscriber with a meta value; returns its id.
pub fn add_user(site: &WpSite, login: &str) -> u64 {
    site.php(&format!(
        "$id = wp_insert_user(['user_login' => {login:?}, 'user_pass' => 'pw-{login}', \
         'user_email' => '{login}@example.test', 'role' => 'subscriber']); \
         if (is_wp_error($id)) {{ echo $id->get_error_message(); exit(1); }} \
         update_user_meta($id, 'billing_city', 'Lyon'); echo $id;"
    ))
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

/// A user's email, meta value and role as WordPress reads them, or `missing`.
pub fn user(site: &WpSite, login: &str) -> String {
    site.php(&format!(
        "$u = get_user_by('login', {login:?}); echo $u ? $u->user_email . '|' . get_user_meta($u->ID, 'billing_city', true) . '|' . implode(',', $u->roles) : 'missing';"
    ))
    .unwrap()
}
