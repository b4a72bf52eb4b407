//! A WooCommerce-shaped shop on a real WordPress, for tests: WooCommerce's own tables as its
//! installer creates them (orders as posts with their meta and items, the HPOS tables,
//! customers and analytics lookups), and helpers that write an order, a customer or a comment
//! the way WooCommerce does. The plugin itself is not installable here, so ids are allocated
//! as WooCommerce allocates them: an HPOS order's id is a placeholder post's.

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: u64,
    pub items: Vec<u64>,
}

/// Creates WooCommerce's tables in the site's database.
pub fn install(_site: &WpSite) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// Places an order of `lines` (name, quantity, total) for a customer's email.
pub fn place_order(
    _site: &WpSite,
    _storage: Storage,
    _email: &str,
    _lines: &[(&str, u32, &str)],
) -> anyhow::Result<Order> {
    anyhow::bail!("not built yet")
}

/// Adds a customer: a WordPress user with the `customer` role and its lookup row.
pub fn add_customer(_site: &WpSite, _email: &str) -> anyhow::Result<u64> {
    anyhow::bail!("not built yet")
}

/// Adds an approved comment on a post.
pub fn add_comment(_site: &WpSite, _post: u64, _text: &str) -> anyhow::Result<u64> {
    anyhow::bail!("not built yet")
}
