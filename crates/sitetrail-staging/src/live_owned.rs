//! The tables live owns: the profile sitetrail ships and what a site adds to it. A push carries
//! live's rows of these tables over (see `merge.rs`); everything else is staging's.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sitetrail_core::SiteId;

use crate::blocking;
use crate::operations::{Engine, EngineError};
use crate::push::{LiveOwned, OwnedTable};

/// WooCommerce's order post types: orders, refunds, and the placeholders through which HPOS
/// allocates order ids in the posts table.
pub(crate) const ORDER_POST_TYPES: [&str; 3] =
    ["shop_order", "shop_order_refund", "shop_order_placehold"];

/// Which rows of a live-owned table are live's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rows {
    All,
    /// `posts` rows of an order post type.
    OrderPosts,
    /// `postmeta` rows of such a post.
    OrderPostmeta,
}

/// One table of the profile, resolved for the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    /// Without a prefix.
    pub suffix: String,
    pub rows: Rows,
}

impl Owned {
    /// SQL (the same on MariaDB and SQLite) that is true for a row live owns; `quote` quotes
    /// an identifier, `prefix` is the side's table prefix.
    pub fn selected(
        &self,
        prefix: &str,
        quote: &dyn Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<String> {
        let types = ORDER_POST_TYPES.map(|t| format!("'{t}'")).join(", ");
        Ok(match self.rows {
            Rows::All => "1".into(),
            Rows::OrderPosts => format!("{} IN ({types})", quote("post_type")?),
            Rows::OrderPostmeta => format!(
                "{} IN (SELECT {} FROM {} WHERE {} IN ({types}))",
                quote("post_id")?,
                quote("ID")?,
                quote(&format!("{prefix}posts"))?,
                quote("post_type")?
            ),
        })
    }

    /// SQL true for a row that is live's whatever staging did, never reported as a conflict:
    /// the login sessions in `usermeta` (`session_tokens`). Logging in to staging writes them
    /// there, logging in to live writes them on live; neither is content, and reporting them
    /// would block every push made by someone logged in on both sides. Live's are kept, so
    /// nobody on live is logged out by a push.
    pub fn always_live(
        &self,
        quote: &dyn Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<String> {
        Ok(match self.suffix.as_str() {
            "usermeta" => format!("{} = 'session_tokens'", quote("meta_key")?),
            _ => "0".into(),
        })
    }
}

/// The profile sitetrail ships: table (without a prefix), what it holds, which rows.
const SHIPPED: &[(&str, &str, Rows)] = &[
    ("comments", "Comments", Rows::All),
    ("commentmeta", "Comments", Rows::All),
    ("users", "Users and customers", Rows::All),
    ("usermeta", "Users and customers", Rows::All),
    (
        "posts",
        "WooCommerce orders stored as posts",
        Rows::OrderPosts,
    ),
    (
        "postmeta",
        "WooCommerce orders stored as posts",
        Rows::OrderPostmeta,
    ),
    (
        "woocommerce_order_items",
        "WooCommerce order items",
        Rows::All,
    ),
    (
        "woocommerce_order_itemmeta",
        "WooCommerce order items",
        Rows::All,
    ),
    ("wc_orders", "WooCommerce orders (HPOS)", Rows::All),
    ("wc_orders_meta", "WooCommerce orders (HPOS)", Rows::All),
    ("wc_order_addresses", "WooCommerce orders (HPOS)", Rows::All),
    (
        "wc_order_operational_data",
        "WooCommerce orders (HPOS)",
        Rows::All,
    ),
    ("wc_customer_lookup", "WooCommerce customers", Rows::All),
    ("wc_order_stats", "WooCommerce order analytics", Rows::All),
    (
        "wc_order_product_lookup",
        "WooCommerce order analytics",
        Rows::All,
    ),
    (
        "wc_order_tax_lookup",
        "WooCommerce order analytics",
        Rows::All,
    ),
    (
        "wc_order_coupon_lookup",
        "WooCommerce order analytics",
        Rows::All,
    ),
    (
        "woocommerce_downloadable_product_permissions",
        "WooCommerce customers' downloads",
        Rows::All,
    ),
    (
        "wc_download_log",
        "WooCommerce customers' downloads",
        Rows::All,
    ),
    (
        "woocommerce_payment_tokens",
        "WooCommerce customers' saved payment methods",
        Rows::All,
    ),
    (
        "woocommerce_payment_tokenmeta",
        "WooCommerce customers' saved payment methods",
        Rows::All,
    ),
    ("gf_entry", "Gravity Forms entries", Rows::All),
    ("gf_entry_meta", "Gravity Forms entries", Rows::All),
    ("gf_entry_notes", "Gravity Forms entries", Rows::All),
    ("wpforms_entries", "WPForms entries", Rows::All),
    ("wpforms_entry_meta", "WPForms entries", Rows::All),
    ("wpforms_entry_fields", "WPForms entries", Rows::All),
    ("frm_items", "Formidable Forms entries", Rows::All),
    ("frm_item_metas", "Formidable Forms entries", Rows::All),
    ("fluentform_submissions", "Fluent Forms entries", Rows::All),
    (
        "fluentform_submission_meta",
        "Fluent Forms entries",
        Rows::All,
    ),
    ("e_submissions", "Elementor form submissions", Rows::All),
    (
        "e_submissions_values",
        "Elementor form submissions",
        Rows::All,
    ),
];

fn shipped() -> Vec<OwnedTable> {
    SHIPPED
        .iter()
        .map(|(table, holds, rows)| OwnedTable {
            table: (*table).into(),
            holds: (*holds).into(),
            rows: match rows {
                Rows::All => None,
                Rows::OrderPosts => Some(format!("posts of type {}", ORDER_POST_TYPES.join(", "))),
                Rows::OrderPostmeta => Some("the meta of those posts".into()),
            },
        })
        .collect()
}

/// The profile as the merge uses it: shipped tables, then the site's additions (whole tables).
pub(crate) fn resolve(profile: &LiveOwned) -> Vec<Owned> {
    let mut out: Vec<Owned> = SHIPPED
        .iter()
        .map(|(t, _, rows)| Owned {
            suffix: (*t).into(),
            rows: *rows,
        })
        .collect();
    for extra in &profile.extra {
        if !out.iter().any(|o| &o.suffix == extra) {
            out.push(Owned {
                suffix: extra.clone(),
                rows: Rows::All,
            });
        }
    }
    out
}

/// A table name a site may add: what MariaDB and SQLite both take unquoted.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Extra {
    extra: Vec<String>,
}

fn path(data_dir: &Path, site: &SiteId) -> PathBuf {
    data_dir
        .join("live-owned")
        .join(format!("{}.json", site.as_str()))
}

fn read_extra(data_dir: &Path, site: &SiteId) -> anyhow::Result<Vec<String>> {
    let path = path(data_dir, site);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice::<Extra>(&bytes)
            .with_context(|| format!("reading {}", path.display()))?
            .extra),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written beside it (0600), synced, renamed over it.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a file has a directory")?;
    sitetrail_store::private::create_dir(dir)?;
    let name = path
        .file_name()
        .context("a file has a name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.new"));
    sitetrail_store::private::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

impl Engine {
    /// The site's profile of live-owned tables: the shipped one and the site's additions.
    pub async fn live_owned(&self, site: &SiteId) -> anyhow::Result<LiveOwned> {
        let (dir, id) = (self.inner.data_dir.clone(), site.clone());
        let extra = blocking(move || read_extra(&dir, &id)).await?;
        Ok(LiveOwned {
            shipped: shipped(),
            extra,
        })
    }

    /// Replaces the site's additions to the profile (tables named without a prefix).
    /// Invalid names are refused with [`EngineError::Invalid`].
    pub async fn set_live_owned(
        &self,
        site: &SiteId,
        extra: Vec<String>,
    ) -> Result<LiveOwned, EngineError> {
        if let Some(bad) = extra.iter().find(|n| !valid_name(n)) {
            return Err(EngineError::Invalid(format!(
                "\"{}\" is not a table name sitetrail can keep: use 1 to 64 letters, digits, _ or $, without the table prefix",
                bad.chars().take(80).collect::<String>()
            )));
        }
        let mut extra = extra;
        extra.sort();
        extra.dedup();
        let bytes = serde_json::to_vec_pretty(&Extra { extra }).map_err(anyhow::Error::from)?;
        let (dir, id) = (self.inner.data_dir.clone(), site.clone());
        blocking(move || write_private(&path(&dir, &id), &bytes)).await?;
        Ok(self.live_owned(site).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> anyhow::Result<String> {
        Ok(format!("`{s}`"))
    }

    #[test]
    fn names_a_site_may_add_are_plain_identifiers() {
        for good in ["gf_entry", "my$table", "A1", &"x".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "a-b",
            "a`b",
            "a b",
            "wp_posts;drop",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn orders_are_selected_by_post_type_and_their_meta_by_post() {
        let posts = Owned {
            suffix: "posts".into(),
            rows: Rows::OrderPosts,
        };
        assert_eq!(
            posts.selected("wp_", &q).unwrap(),
            "`post_type` IN ('shop_order', 'shop_order_refund', 'shop_order_placehold')"
        );
        let meta = Owned {
            suffix: "postmeta".into(),
            rows: Rows::OrderPostmeta,
        };
        assert_eq!(
            meta.selected("wp_", &q).unwrap(),
            "`post_id` IN (SELECT `ID` FROM `wp_posts` WHERE `post_type` IN ('shop_order', 'shop_order_refund', 'shop_order_placehold'))"
        );
        let users = Owned {
            suffix: "usermeta".into(),
            rows: Rows::All,
        };
        assert_eq!(users.selected("wp_", &q).unwrap(), "1");
        assert_eq!(
            users.always_live(&q).unwrap(),
            "`meta_key` = 'session_tokens'"
        );
        assert_eq!(posts.always_live(&q).unwrap(), "0");
    }

    #[test]
    fn a_sites_additions_follow_the_shipped_tables_once() {
        let profile = LiveOwned {
            shipped: shipped(),
            extra: vec!["bookings".into(), "comments".into()],
        };
        let resolved = resolve(&profile);
        assert_eq!(resolved.len(), SHIPPED.len() + 1);
        assert_eq!(resolved.last().unwrap().suffix, "bookings");
        assert!(shipped().iter().any(|t| t.table == "wc_orders"));
        assert!(
            shipped()
                .iter()
                .any(|t| t.table == "posts" && t.rows.is_some())
        );
    }
}
