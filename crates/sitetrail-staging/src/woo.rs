//! A WooCommerce-shaped shop on a real WordPress, for tests: WooCommerce's own tables as its
//! installer defines them (orders as posts with their meta and items, the HPOS tables,
//! customers and analytics lookups), and helpers that write an order, a customer or a comment
//! the way WooCommerce does. The plugin itself is not installable here, so ids are allocated
//! as WooCommerce allocates them: an HPOS order's id is a placeholder post's
//! (`shop_order_placehold`), so order ids and page ids share the posts table's counter.
//!
//! Everything goes through WordPress's own `$wpdb` (PHP), so the same fixture runs on
//! MariaDB and on WordPress's SQLite integration.

use anyhow::Context;

use crate::wordpress::WpSite;

/// Where WooCommerce keeps an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A `shop_order` post, its postmeta, its items.
    Posts,
    /// High-performance order storage: `wc_orders*` rows sharing the id of a
    /// `shop_order_placehold` post, and the items.
    Hpos,
}

/// An order as placed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Order {
    pub id: u64,
    pub items: Vec<u64>,
}

/// WooCommerce's tables this fixture makes, named without a prefix: orders (both storage
/// forms share the items tables), HPOS, customers and the analytics lookups written per order.
pub const TABLES: &[&str] = &[
    "woocommerce_order_items",
    "woocommerce_order_itemmeta",
    "wc_orders",
    "wc_order_addresses",
    "wc_order_operational_data",
    "wc_orders_meta",
    "wc_customer_lookup",
    "wc_order_stats",
    "wc_order_product_lookup",
];

/// The definitions, `{p}` standing for the prefix (types and keys as WooCommerce's installer
/// and its orders table data store declare them).
const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}woocommerce_order_items (
  order_item_id bigint(20) unsigned NOT NULL auto_increment,
  order_item_name text NOT NULL,
  order_item_type varchar(200) NOT NULL DEFAULT '',
  order_id bigint(20) unsigned NOT NULL,
  PRIMARY KEY (order_item_id),
  KEY order_id (order_id)
)",
    "CREATE TABLE {p}woocommerce_order_itemmeta (
  meta_id bigint(20) unsigned NOT NULL auto_increment,
  order_item_id bigint(20) unsigned NOT NULL,
  meta_key varchar(255) default NULL,
  meta_value longtext NULL,
  PRIMARY KEY (meta_id),
  KEY order_item_id (order_item_id),
  KEY meta_key (meta_key(32))
)",
    "CREATE TABLE {p}wc_orders (
  id bigint(20) unsigned NOT NULL,
  status varchar(20) null,
  currency varchar(10) null,
  type varchar(20) null,
  tax_amount decimal(26,8) null,
  total_amount decimal(26,8) null,
  customer_id bigint(20) unsigned null,
  billing_email varchar(320) null,
  date_created_gmt datetime null,
  date_updated_gmt datetime null,
  parent_order_id bigint(20) unsigned null,
  payment_method varchar(100) null,
  payment_method_title text null,
  transaction_id varchar(100) null,
  ip_address varchar(100) null,
  user_agent text null,
  customer_note text null,
  PRIMARY KEY (id),
  KEY status (status),
  KEY date_created (date_created_gmt),
  KEY customer_id_billing_email (customer_id, billing_email),
  KEY type_status (type, status),
  KEY parent_order_id (parent_order_id)
)",
    "CREATE TABLE {p}wc_order_addresses (
  id bigint(20) unsigned NOT NULL auto_increment,
  order_id bigint(20) unsigned NOT NULL,
  address_type varchar(20) null,
  first_name text null,
  last_name text null,
  company text null,
  address_1 text null,
  address_2 text null,
  city text null,
  state text null,
  postcode text null,
  country text null,
  email varchar(320) null,
  phone varchar(100) null,
  PRIMARY KEY (id),
  KEY order_id (order_id),
  UNIQUE KEY address_type_order_id (address_type, order_id)
)",
    "CREATE TABLE {p}wc_order_operational_data (
  id bigint(20) unsigned NOT NULL auto_increment,
  order_id bigint(20) unsigned NULL,
  created_via varchar(100) NULL,
  woocommerce_version varchar(20) NULL,
  prices_include_tax tinyint(1) NULL,
  coupon_usages_are_counted tinyint(1) NULL,
  download_permission_granted tinyint(1) NULL,
  cart_hash varchar(100) NULL,
  new_order_email_sent tinyint(1) NULL,
  order_key varchar(100) NULL,
  order_stock_reduced tinyint(1) NULL,
  date_paid_gmt datetime NULL,
  date_completed_gmt datetime NULL,
  shipping_tax_amount decimal(26,8) NULL,
  shipping_total_amount decimal(26,8) NULL,
  discount_tax_amount decimal(26,8) NULL,
  discount_total_amount decimal(26,8) NULL,
  recorded_sales tinyint(1) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY order_id (order_id),
  KEY order_key (order_key)
)",
    "CREATE TABLE {p}wc_orders_meta (
  id bigint(20) unsigned NOT NULL auto_increment,
  order_id bigint(20) unsigned null,
  meta_key varchar(255),
  meta_value text null,
  PRIMARY KEY (id),
  KEY meta_key_value (meta_key(100), meta_value(100)),
  KEY order_id_meta_key (order_id, meta_key(100))
)",
    "CREATE TABLE {p}wc_customer_lookup (
  customer_id bigint(20) unsigned NOT NULL auto_increment,
  user_id bigint(20) unsigned DEFAULT NULL,
  username varchar(60) DEFAULT '' NOT NULL,
  first_name varchar(255) NOT NULL,
  last_name varchar(255) NOT NULL,
  email varchar(100) NULL default NULL,
  date_last_active timestamp NULL default null,
  date_registered timestamp NULL default null,
  country char(2) DEFAULT '' NOT NULL,
  postcode varchar(20) DEFAULT '' NOT NULL,
  city varchar(100) DEFAULT '' NOT NULL,
  state varchar(100) DEFAULT '' NOT NULL,
  PRIMARY KEY (customer_id),
  UNIQUE KEY user_id (user_id),
  KEY email (email)
)",
    "CREATE TABLE {p}wc_order_stats (
  order_id bigint(20) unsigned NOT NULL,
  parent_id bigint(20) unsigned DEFAULT 0 NOT NULL,
  date_created datetime DEFAULT '0000-00-00 00:00:00' NOT NULL,
  date_created_gmt datetime DEFAULT '0000-00-00 00:00:00' NOT NULL,
  date_paid datetime DEFAULT '0000-00-00 00:00:00',
  date_completed datetime DEFAULT '0000-00-00 00:00:00',
  num_items_sold int(11) DEFAULT 0 NOT NULL,
  total_sales double DEFAULT 0 NOT NULL,
  tax_total double DEFAULT 0 NOT NULL,
  shipping_total double DEFAULT 0 NOT NULL,
  net_total double DEFAULT 0 NOT NULL,
  returning_customer tinyint(1) DEFAULT NULL,
  status varchar(200) NOT NULL,
  customer_id bigint(20) unsigned NOT NULL,
  PRIMARY KEY (order_id),
  KEY date_created (date_created),
  KEY customer_id (customer_id),
  KEY status (status(191))
)",
    "CREATE TABLE {p}wc_order_product_lookup (
  order_item_id bigint(20) unsigned NOT NULL,
  order_id bigint(20) unsigned NOT NULL,
  product_id bigint(20) unsigned NOT NULL,
  variation_id bigint(20) unsigned NOT NULL,
  customer_id bigint(20) unsigned NULL,
  date_created datetime DEFAULT '0000-00-00 00:00:00' NOT NULL,
  product_qty int(11) NOT NULL,
  product_net_revenue double DEFAULT 0 NOT NULL,
  product_gross_revenue double DEFAULT 0 NOT NULL,
  PRIMARY KEY (order_item_id, order_id),
  KEY order_id (order_id),
  KEY product_id (product_id),
  KEY customer_id (customer_id)
)",
];

/// Creates WooCommerce's tables in the site's database, and its `customer` role.
pub fn install(site: &WpSite) -> anyhow::Result<()> {
    let mut php = String::from("global $wpdb; $c = $wpdb->get_charset_collate();\n");
    for sql in SCHEMA {
        php.push_str(&format!(
            "if ($wpdb->query(str_replace('{{p}}', $wpdb->prefix, {sql:?}) . ' ' . $c) === false) {{ fwrite(STDERR, $wpdb->last_error); exit(1); }}\n"
        ));
    }
    php.push_str("add_role('customer', 'Customer', ['read' => true]);\necho 'ok';");
    let out = site.php(&php).context("creating WooCommerce's tables")?;
    anyhow::ensure!(out.ends_with("ok"), "creating WooCommerce's tables: {out}");
    Ok(())
}

/// Places an order of `lines` (product name, quantity, line total) for a customer's email,
/// as WooCommerce writes it with either storage.
pub fn place_order(
    site: &WpSite,
    storage: Storage,
    email: &str,
    lines: &[(&str, u32, &str)],
) -> anyhow::Result<Order> {
    let lines_php = lines
        .iter()
        .map(|(name, qty, total)| format!("[{name:?}, {qty}, {total:?}]"))
        .collect::<Vec<_>>()
        .join(", ");
    let hpos = storage == Storage::Hpos;
    let php = format!(
        r#"global $wpdb; $p = $wpdb->prefix; $email = {email:?}; $lines = [{lines_php}];
$hpos = {hpos};
$total = 0.0; $qtys = 0; foreach ($lines as $l) {{ $total += (float) $l[2]; $qtys += $l[1]; }}
$now = current_time('mysql', true); $key = 'wc_order_' . wp_generate_password(13, false);
$customer = (int) $wpdb->get_var($wpdb->prepare("SELECT ID FROM {{$wpdb->users}} WHERE user_email = %s", $email));
// The order's id: its post's (a placeholder's with HPOS).
$id = wp_insert_post(['post_type' => $hpos ? 'shop_order_placehold' : 'shop_order',
    'post_status' => $hpos ? 'draft' : 'wc-processing', 'post_title' => 'Order &ndash; ' . $now,
    'post_password' => $key, 'comment_status' => 'closed', 'ping_status' => 'closed',
    'post_author' => 1], true);
if (is_wp_error($id)) {{ fwrite(STDERR, $id->get_error_message()); exit(1); }}
if ($hpos) {{
    $wpdb->insert("{{$p}}wc_orders", ['id' => $id, 'status' => 'wc-processing', 'currency' => 'EUR',
        'type' => 'shop_order', 'tax_amount' => 0, 'total_amount' => $total, 'customer_id' => $customer,
        'billing_email' => $email, 'date_created_gmt' => $now, 'date_updated_gmt' => $now,
        'parent_order_id' => 0, 'payment_method' => 'cod', 'payment_method_title' => 'Cash on delivery',
        'ip_address' => '127.0.0.1', 'user_agent' => 'sitetrail-test']);
    foreach (['billing', 'shipping'] as $t) {{
        $wpdb->insert("{{$p}}wc_order_addresses", ['order_id' => $id, 'address_type' => $t,
            'first_name' => 'Ada', 'last_name' => 'Shopper', 'address_1' => '1 Flour Street',
            'city' => 'Lyon', 'postcode' => '69001', 'country' => 'FR', 'email' => $email]);
    }}
    $wpdb->insert("{{$p}}wc_order_operational_data", ['order_id' => $id, 'created_via' => 'checkout',
        'woocommerce_version' => '9.9.0', 'prices_include_tax' => 0, 'order_key' => $key,
        'cart_hash' => md5($email . $now), 'date_paid_gmt' => $now, 'recorded_sales' => 1]);
    $wpdb->insert("{{$p}}wc_orders_meta", ['order_id' => $id, 'meta_key' => '_order_attribution_source_type', 'meta_value' => 'typein']);
}} else {{
    foreach (['_order_key' => $key, '_billing_email' => $email, '_billing_first_name' => 'Ada',
        '_billing_last_name' => 'Shopper', '_billing_city' => 'Lyon', '_billing_country' => 'FR',
        '_order_total' => $total, '_order_currency' => 'EUR', '_customer_user' => $customer,
        '_payment_method' => 'cod', '_created_via' => 'checkout', '_date_paid' => time()] as $k => $v) {{
        add_post_meta($id, $k, $v);
    }}
}}
$items = [];
foreach ($lines as $l) {{
    $wpdb->insert("{{$p}}woocommerce_order_items", ['order_item_name' => $l[0], 'order_item_type' => 'line_item', 'order_id' => $id]);
    $item = $wpdb->insert_id; $items[] = $item;
    foreach (['_product_id' => 0, '_variation_id' => 0, '_qty' => $l[1], '_line_subtotal' => $l[2], '_line_total' => $l[2], '_line_tax' => 0] as $k => $v) {{
        $wpdb->insert("{{$p}}woocommerce_order_itemmeta", ['order_item_id' => $item, 'meta_key' => $k, 'meta_value' => $v]);
    }}
    $wpdb->insert("{{$p}}wc_order_product_lookup", ['order_item_id' => $item, 'order_id' => $id, 'product_id' => 0,
        'variation_id' => 0, 'customer_id' => $customer, 'date_created' => $now, 'product_qty' => $l[1],
        'product_net_revenue' => $l[2], 'product_gross_revenue' => $l[2]]);
}}
$wpdb->insert("{{$p}}wc_order_stats", ['order_id' => $id, 'parent_id' => 0, 'date_created' => $now,
    'date_created_gmt' => $now, 'num_items_sold' => $qtys, 'total_sales' => $total, 'net_total' => $total,
    'status' => 'wc-processing', 'customer_id' => $customer]);
if ($wpdb->last_error) {{ fwrite(STDERR, $wpdb->last_error); exit(1); }}
echo json_encode(['id' => $id, 'items' => $items]);"#,
        hpos = if hpos { "true" } else { "false" },
    );
    let out = site.php(&php).context("placing an order")?;
    serde_json::from_str(out.trim()).with_context(|| format!("placing an order: {out}"))
}

/// Adds a customer: a WordPress user with the `customer` role and its lookup row. Returns
/// the user's id.
pub fn add_customer(site: &WpSite, email: &str) -> anyhow::Result<u64> {
    let login = email.split('@').next().unwrap_or(email);
    let php = format!(
        r#"global $wpdb; $email = {email:?};
$id = wp_insert_user(['user_login' => {login:?}, 'user_email' => $email, 'user_pass' => wp_generate_password(), 'role' => 'customer', 'first_name' => 'Ada', 'last_name' => 'Shopper']);
if (is_wp_error($id)) {{ fwrite(STDERR, $id->get_error_message()); exit(1); }}
update_user_meta($id, 'billing_email', $email);
$wpdb->insert("{{$wpdb->prefix}}wc_customer_lookup", ['user_id' => $id, 'username' => {login:?},
    'first_name' => 'Ada', 'last_name' => 'Shopper', 'email' => $email,
    'date_registered' => current_time('mysql', true), 'country' => 'FR', 'city' => 'Lyon']);
if ($wpdb->last_error) {{ fwrite(STDERR, $wpdb->last_error); exit(1); }}
echo $id;"#
    );
    let out = site.php(&php).context("adding a customer")?;
    out.trim()
        .parse()
        .with_context(|| format!("adding a customer: {out}"))
}

/// Adds an approved comment on a post; returns its id.
pub fn add_comment(site: &WpSite, post: u64, text: &str) -> anyhow::Result<u64> {
    let php = format!(
        r#"$id = wp_insert_comment(['comment_post_ID' => {post}, 'comment_content' => {text:?},
    'comment_author' => 'A visitor', 'comment_author_email' => 'visitor@example.test', 'comment_approved' => 1]);
if (!$id) {{ fwrite(STDERR, 'no comment'); exit(1); }}
add_comment_meta($id, 'rating', '5');
echo $id;"#
    );
    let out = site.php(&php).context("adding a comment")?;
    out.trim()
        .parse()
        .with_context(|| format!("adding a comment: {out}"))
}
