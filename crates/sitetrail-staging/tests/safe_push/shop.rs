//! A shop on a real WordPress, shaped as WooCommerce stores it, without WooCommerce: orders as
//! `shop_order` posts with their postmeta, or as HPOS rows (`wc_orders`, `wc_orders_meta`,
//! `wc_order_addresses`, `wc_order_operational_data`) whose ids come from a
//! `shop_order_placehold` post as WooCommerce allocates them; line items with their itemmeta;
//! comments and users. Written with `$wpdb` so that it runs on MariaDB and on SQLite. Used by
//! the safe push tests and by the push benchmark.

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
    }
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
    return implode('|', $s);
}
"#;

/// Creates the tables WooCommerce would (the ones orders live in), on live before staging is
/// made.
pub fn install(site: &WpSite) {
    site.php(
        r#"global $wpdb; $p = $wpdb->prefix;
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$p}woocommerce_order_items (order_item_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, order_item_name text NOT NULL, order_item_type varchar(200) NOT NULL DEFAULT '', order_id bigint(20) unsigned NOT NULL, PRIMARY KEY (order_item_id), KEY order_id (order_id))");
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$p}woocommerce_order_itemmeta (meta_id bigint(20) unsigned NOT NULL AUTO_INCREMENT, order_item_id bigint(20) unsigned NOT NULL, meta_key varchar(255) DEFAULT NULL, meta_value longtext NULL, PRIMARY KEY (meta_id), KEY order_item_id (order_item_id))");
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$p}wc_orders (id bigint(20) unsigned NOT NULL, status varchar(20) NULL, currency varchar(10) NULL, type varchar(20) NULL, tax_amount decimal(26,8) NULL, total_amount decimal(26,8) NULL, customer_id bigint(20) unsigned NULL, billing_email varchar(320) NULL, date_created_gmt datetime NULL, date_updated_gmt datetime NULL, parent_order_id bigint(20) unsigned NULL, payment_method varchar(100) NULL, payment_method_title text NULL, transaction_id varchar(100) NULL, ip_address varchar(100) NULL, user_agent text NULL, customer_note text NULL, PRIMARY KEY (id), KEY status (status), KEY customer_id_billing_email (customer_id, billing_email(171)), KEY type_status_date (type, status, date_created_gmt), KEY parent_order_id (parent_order_id))");
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$p}wc_orders_meta (id bigint(20) unsigned NOT NULL AUTO_INCREMENT, order_id bigint(20) unsigned NULL, meta_key varchar(255), meta_value text NULL, PRIMARY KEY (id), KEY meta_key_value (meta_key(100), meta_value(82)), KEY order_id_meta_key_meta_value (order_id, meta_key(100), meta_value(82)))");
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$p}wc_order_addresses (id bigint(20) unsigned NOT NULL AUTO_INCREMENT, order_id bigint(20) unsigned NOT NULL, address_type varchar(20) NULL, first_name text NULL, last_name text NULL, company text NULL, address_1 text NULL, city text NULL, postcode text NULL, country text NULL, email varchar(320) NULL, phone varchar(100) NULL, PRIMARY KEY (id), UNIQUE KEY address_type_order_id (address_type, order_id), KEY email (email(191)))");
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$p}wc_order_operational_data (id bigint(20) unsigned NOT NULL AUTO_INCREMENT, order_id bigint(20) unsigned NULL, created_via varchar(100) NULL, woocommerce_version varchar(20) NULL, prices_include_tax tinyint(1) NULL, cart_hash varchar(100) NULL, new_order_email_sent tinyint(1) NULL, order_key varchar(100) NULL, date_paid_gmt datetime NULL, date_completed_gmt datetime NULL, PRIMARY KEY (id), UNIQUE KEY order_id (order_id), KEY order_key (order_key))");
        echo $wpdb->last_error;"#,
    )
    .map(|err| assert_eq!(err.trim(), "", "WooCommerce's tables are made"))
    .unwrap();
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
