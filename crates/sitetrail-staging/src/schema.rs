//! A site's schema beyond its rows, on MariaDB/MySQL: foreign keys, generated columns,
//! column lengths, views and triggers, carried through every copy (create staging, resets,
//! backups and restores, push).
//!
//! Everything is built aside with the operation's temporary prefix and named so that it
//! never collides with the target's own objects:
//! - a table built aside is `{temp}{hash of its final name}` ([`temp_table`]);
//! - foreign keys keep their place in the `CREATE TABLE`, named `{temp}{final name}` and
//!   referencing the parent's table built aside (checks are off on sitetrail's sessions, so
//!   the order tables are made in does not matter); `RENAME TABLE` carries the references;
//! - triggers are made on the tables built aside once their rows are in (a copy never fires
//!   them), named `{temp}{final name}`, their statements naming the final tables; they move
//!   with their tables at the switch;
//! - views are made aside as `{temp}{final name}` over the tables built aside.
//!
//! After the switch, [`after_switch`] gives each its final name: the replaced tables' foreign
//! keys and triggers of the same name (their tables now under the old tables' prefix) give
//! it up first, taking the old tables' prefix themselves (`{old}{name}`), so that switching
//! the replaced tables back and calling [`after_switch`] with the prefixes the other way
//! round names them as they were; the views are made (`CREATE OR REPLACE`) over the final
//! tables and the ones aside dropped. A live view staging does not have is left as it is. Views and
//! triggers run with the rights of whoever uses them: views are made `SQL SECURITY INVOKER`
//! and no `DEFINER` is copied, so the site's own database user can make them.
//!
//! An object whose final name is too long to be built aside under the temporary prefix
//! (over 54 characters) stops the operation before anything is switched.

mod sql;

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use crate::copy::Rewrite;
use crate::db::SiteDb;
use crate::mysql::{Column, MysqlDb, TableDef, quote};
pub(crate) use sql::quoted;

/// The longest value a text column takes: `CHAR`/`VARCHAR` count characters, `TEXT`s bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Chars(u64),
    Bytes(u64),
}

impl Limit {
    /// Whether `value` fits; a value that is not UTF-8 counts a character per byte.
    pub fn fits(self, value: &[u8]) -> bool {
        match self {
            Limit::Bytes(n) => value.len() as u64 <= n,
            Limit::Chars(n) => {
                let chars = std::str::from_utf8(value).map_or(value.len(), |s| s.chars().count());
                chars as u64 <= n
            }
        }
    }
}

impl Column {
    /// A column as `information_schema.columns` describes it.
    pub fn new(
        name: String,
        data_type: &str,
        chars: Option<u64>,
        bytes: Option<u64>,
        generated: bool,
        key: bool,
    ) -> Column {
        let t = data_type.to_ascii_lowercase();
        let limit = match t.as_str() {
            "char" | "varchar" => chars.map(Limit::Chars),
            "tinytext" | "text" | "mediumtext" | "longtext" => bytes.map(Limit::Bytes),
            _ => None,
        };
        Column {
            textual: is_textual(&t),
            name,
            generated,
            key,
            limit,
        }
    }
}

/// Whether a column of this `data_type` holds text a URL can be in. ENUM and SET hold one of
/// their listed values, so they are never rewritten.
fn is_textual(data_type: &str) -> bool {
    matches!(
        data_type,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json"
    )
}

/// A view: its name and its `SELECT`, with names unqualified by a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    pub name: String,
    pub select: String,
}

/// A trigger: `{timing} {event} ON {table} FOR EACH ROW {statement}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDef {
    pub name: String,
    pub table: String,
    /// `BEFORE` or `AFTER`.
    pub timing: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub event: String,
    pub statement: String,
}

/// The views and triggers of a site's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub views: Vec<ViewDef>,
    pub triggers: Vec<TriggerDef>,
}

/// The name a table with the final name `final_name` is built under, aside: short whatever
/// the final name's length, and found again from it.
pub fn temp_table(temp: &str, final_name: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(final_name.as_bytes());
    format!("{temp}{}", hex::encode(&hash[..6]))
}

/// The name an object (foreign key, trigger, view) with the final name `final_name` has
/// while it is aside.
fn temp_object(temp: &str, final_name: &str) -> anyhow::Result<String> {
    let name = format!("{temp}{final_name}");
    anyhow::ensure!(
        name.chars().count() <= 64,
        "the site's schema has a view, trigger or foreign key named {final_name:?}, longer than sitetrail can copy ({} characters at most); rename it and try again",
        64 - temp.chars().count()
    );
    Ok(name)
}

/// A foreign key's or a trigger's name in the target: the source's prefix in it becomes the
/// target's (`fk_wp_wc_download_log_permission_id` → `fk_stg_...`).
pub fn object_name(rewrite: &Rewrite, name: &str) -> String {
    if rewrite.from_prefix.is_empty() || rewrite.from_prefix == rewrite.to_prefix {
        return name.to_owned();
    }
    name.replacen(&rewrite.from_prefix, &rewrite.to_prefix, 1)
}

/// The `CREATE TABLE` of `def`'s table built aside: its name, and its foreign keys named
/// aside and referencing the parents' tables built aside.
pub fn create_aside(def: &TableDef, rewrite: &Rewrite, temp: &str) -> anyhow::Result<String> {
    let (_, rest) = sql::split_create_table(&def.create)?;
    let rest = sql::rewrite_foreign_keys(&rest, &mut |fk| {
        let name = temp_object(temp, &object_name(rewrite, &fk.name))?;
        let parent = match &fk.references {
            Some(t) if t.starts_with(&rewrite.from_prefix) => {
                temp_table(temp, &rewrite.table_name(t))
            }
            Some(t) => t.clone(),
            None => {
                tracing::warn!(table = %def.name, constraint = %fk.name, "a foreign key to another database is not copied");
                return Ok(None);
            }
        };
        Ok(Some((name, parent)))
    })?;
    Ok(format!(
        "CREATE TABLE {}{rest}",
        quote(&temp_table(temp, &rewrite.table_name(&def.name)))?
    ))
}

impl MysqlDb {
    /// A table's columns in order: which are text (rewritten), generated (never written),
    /// part of the primary key, and how long a value they take.
    pub async fn columns(&self, table: &str) -> anyhow::Result<Vec<Column>> {
        type Row = (String, String, Option<u64>, Option<u64>, String, String);
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = conn
            .exec(
                "SELECT column_name, data_type, character_maximum_length, character_octet_length, \
                 is_generated, column_key FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                (self.name.clone(), table.to_owned()),
            )
            .await
            .with_context(|| format!("reading the columns of {table}"))?;
        Ok(rows
            .into_iter()
            .map(|(name, data_type, chars, bytes, generated, key)| {
                Column::new(
                    name,
                    &data_type,
                    chars,
                    bytes,
                    generated != "NEVER",
                    key == "PRI",
                )
            })
            .collect())
    }

    /// The views whose names start with `prefix`, their `SELECT`s unqualified.
    pub async fn views(&self, prefix: &str) -> anyhow::Result<Vec<ViewDef>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String)> = conn
            .exec(
                "SELECT table_name, view_definition FROM information_schema.views \
                 WHERE table_schema = ? ORDER BY table_name",
                (self.name.clone(),),
            )
            .await
            .context("listing views")?;
        Ok(rows
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, select)| ViewDef {
                select: sql::rename_identifiers(&select, Some(&self.name), &|_| None),
                name,
            })
            .collect())
    }

    /// The triggers on the tables whose names start with `prefix`, in the order they fire.
    pub async fn triggers(&self, prefix: &str) -> anyhow::Result<Vec<TriggerDef>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(String, String, String, String, String)> = conn
            .exec(
                "SELECT trigger_name, event_object_table, action_timing, event_manipulation, \
                 action_statement FROM information_schema.triggers WHERE trigger_schema = ? \
                 ORDER BY event_object_table, action_timing, event_manipulation, action_order",
                (self.name.clone(),),
            )
            .await
            .context("listing triggers")?;
        Ok(rows
            .into_iter()
            .filter(|(_, table, ..)| table.starts_with(prefix))
            .map(|(name, table, timing, event, statement)| TriggerDef {
                name,
                table,
                timing,
                event,
                statement,
            })
            .collect())
    }

    /// The views and triggers of the tables whose names start with `prefix`.
    pub async fn extras(&self, prefix: &str) -> anyhow::Result<Extras> {
        Ok(Extras {
            views: self.views(prefix).await?,
            triggers: self.triggers(prefix).await?,
        })
    }

    async fn run(&self, sql: String, doing: &str) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        conn.query_drop(sql)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, %doing, "a schema step failed");
                anyhow::anyhow!("{doing}: the database server refused it; try again, or ask your host if it fails again")
            })
    }
}

impl TriggerDef {
    fn create(&self, name: &str, table: &str, statement: &str) -> anyhow::Result<String> {
        let timing = self.timing.to_ascii_uppercase();
        let event = self.event.to_ascii_uppercase();
        anyhow::ensure!(
            matches!(timing.as_str(), "BEFORE" | "AFTER")
                && matches!(event.as_str(), "INSERT" | "UPDATE" | "DELETE"),
            "a trigger of an unknown kind"
        );
        Ok(format!(
            "CREATE TRIGGER {} {timing} {event} ON {} FOR EACH ROW {statement}",
            quote(name)?,
            quote(table)?
        ))
    }
}

/// Makes the source's views and triggers aside, once the tables built aside hold their rows.
/// `sources` are the names of the source's tables and views: identifiers naming one of them
/// in a definition follow the rename.
pub async fn build_extras(
    target: &MysqlDb,
    extras: &Extras,
    rewrite: &Rewrite,
    temp: &str,
    sources: &HashSet<String>,
) -> anyhow::Result<()> {
    let url = |text: String| match &rewrite.url {
        Some(u) => u
            .apply(text.as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or(text),
        None => text,
    };
    let views: HashSet<&str> = extras.views.iter().map(|v| v.name.as_str()).collect();
    for t in &extras.triggers {
        let to_final = |n: &str| sources.contains(n).then(|| rewrite.table_name(n));
        let statement = url(sql::rename_identifiers(&t.statement, None, &to_final));
        let name = temp_object(temp, &object_name(rewrite, &t.name))?;
        let table = temp_table(temp, &rewrite.table_name(&t.table));
        target
            .run(t.create(&name, &table, &statement)?, "making a trigger")
            .await?;
    }
    // A view over another view is made after it.
    let mut pending: Vec<(String, String)> = Vec::new();
    for v in &extras.views {
        let aside = |n: &str| {
            if views.contains(n) {
                temp_object(temp, &rewrite.table_name(n)).ok()
            } else {
                sources
                    .contains(n)
                    .then(|| temp_table(temp, &rewrite.table_name(n)))
            }
        };
        let select = url(sql::rename_identifiers(&v.select, None, &aside));
        pending.push((temp_object(temp, &rewrite.table_name(&v.name))?, select));
    }
    create_views(target, pending, false).await
}

/// Makes views, each once the views it reads exist: the ones that fail are tried again while
/// others succeed.
async fn create_views(
    db: &MysqlDb,
    mut pending: Vec<(String, String)>,
    replace: bool,
) -> anyhow::Result<()> {
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        let mut last = None;
        for (name, select) in std::mem::take(&mut pending) {
            let sql = format!(
                "CREATE {}SQL SECURITY INVOKER VIEW {} AS {select}",
                if replace { "OR REPLACE " } else { "" },
                quote(&name)?
            );
            if let Err(e) = db.run(sql, "making a view").await {
                last = Some(e);
                failed.push((name, select));
            }
        }
        // No view was made this round: none will be.
        if failed.len() == before
            && let Some(e) = last
        {
            return Err(e);
        }
        pending = failed;
    }
    Ok(())
}

/// After a switch that put tables built aside under `new` in place of the ones now under
/// `old`: foreign keys, triggers and views built aside take their final names. A step that
/// fails leaves the object working under its name aside, and is logged.
pub async fn after_switch(db: Option<&SiteDb>, new: &str, old: &str) {
    let Some(SiteDb::Mysql(db)) = db else {
        return;
    };
    for (what, done) in [
        ("foreign keys", rename_foreign_keys(db, new, old).await),
        ("triggers", rename_triggers(db, new, old).await),
        ("views", rename_views(db, new).await),
    ] {
        if let Err(e) = done {
            tracing::warn!(error = ?e, "{what} built aside kept their temporary names");
        }
    }
}

/// Drops the views a failed build left aside (its tables, and their triggers, are dropped
/// with the rest of the build).
pub async fn undo_build(db: &MysqlDb, new: &str) {
    let dropped = async {
        let views: Vec<String> = db.views(new).await?.into_iter().map(|v| v.name).collect();
        if views.is_empty() {
            return Ok(());
        }
        let list = views
            .iter()
            .map(|v| quote(v))
            .collect::<anyhow::Result<Vec<_>>>()?;
        db.run(
            format!("DROP VIEW IF EXISTS {}", list.join(", ")),
            "dropping views",
        )
        .await
    }
    .await;
    if let Err(e) = dropped {
        tracing::warn!(error = ?e, "dropping the views built aside failed");
    }
}

/// The name an object of a replaced table takes when it gives its name up: the old tables'
/// prefix before it, so that a switch back ([`after_switch`] with the prefixes the other way
/// round) gives it its name again. None: too long for that; the object is dropped.
fn set_aside(old: &str, name: &str) -> Option<String> {
    let aside = format!("{old}{name}");
    (aside.chars().count() <= 64).then_some(aside)
}

async fn rename_foreign_keys(db: &MysqlDb, new: &str, old: &str) -> anyhow::Result<()> {
    let mut conn = db.conn().await?;
    let all: Vec<(String, String)> = conn
        .exec(
            "SELECT constraint_name, table_name FROM information_schema.referential_constraints \
             WHERE constraint_schema = ?",
            (db.name.clone(),),
        )
        .await
        .context("listing foreign keys")?;
    for (name, table) in all.iter().filter(|(n, _)| n.starts_with(new)) {
        let final_name = &name[new.len()..];
        let renamed = async {
            if let Some((_, holder)) = all.iter().find(|(n, _)| n == final_name) {
                anyhow::ensure!(
                    holder.starts_with(old),
                    "the foreign key {final_name} exists on {holder}"
                );
                rename_foreign_key(
                    db,
                    holder,
                    final_name,
                    set_aside(old, final_name).as_deref(),
                )
                .await?;
            }
            rename_foreign_key(db, table, name, Some(final_name)).await
        }
        .await;
        if let Err(e) = renamed {
            tracing::warn!(error = ?e, table = %table, "a foreign key kept its temporary name");
        }
    }
    Ok(())
}

/// Renames a foreign key of `table` (none: drops it) in one `ALTER TABLE`.
async fn rename_foreign_key(
    db: &MysqlDb,
    table: &str,
    from: &str,
    to: Option<&str>,
) -> anyhow::Result<()> {
    let mut add = String::new();
    if let Some(to) = to {
        let mut conn = db.conn().await?;
        let (_, create): (String, String) = conn
            .query_first(format!("SHOW CREATE TABLE {}", quote(table)?))
            .await?
            .context("a table without a definition")?;
        let line = create
            .split('\n')
            .find_map(|l| {
                let mut toks = sql::tokens(l.trim());
                let at = toks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.ident().is_some())
                    .nth(1)
                    .map(|(i, _)| i)?;
                let named =
                    l.trim_start().starts_with("CONSTRAINT") && toks[at].ident() == Some(from);
                named.then(|| {
                    toks[at] = sql::Tok::Quoted(to.to_owned());
                    sql::join(&toks).trim_end_matches(',').to_owned()
                })
            })
            .context("a foreign key not in its table's definition")?;
        add = format!(", ADD {line}");
    }
    db.run(
        format!(
            "ALTER TABLE {} DROP FOREIGN KEY {}{add}",
            quote(table)?,
            quote(from)?
        ),
        "naming a foreign key",
    )
    .await
}

async fn rename_triggers(db: &MysqlDb, new: &str, old: &str) -> anyhow::Result<()> {
    let all = db.triggers("").await?;
    for t in all.iter().filter(|t| t.name.starts_with(new)) {
        let final_name = &t.name[new.len()..];
        let renamed = async {
            if let Some(holder) = all.iter().find(|h| h.name == final_name) {
                anyhow::ensure!(
                    holder.table.starts_with(old),
                    "the trigger {final_name} exists on {}",
                    holder.table
                );
                db.run(
                    format!("DROP TRIGGER {}", quote(final_name)?),
                    "freeing a trigger's name",
                )
                .await?;
                if let Some(aside) = set_aside(old, final_name) {
                    db.run(
                        holder.create(&aside, &holder.table, &holder.statement)?,
                        "setting a replaced trigger aside",
                    )
                    .await?;
                }
            }
            let create = t.create(final_name, &t.table, &t.statement)?;
            db.run(
                format!("DROP TRIGGER {}", quote(&t.name)?),
                "naming a trigger",
            )
            .await?;
            db.run(create, "naming a trigger").await
        }
        .await;
        if let Err(e) = renamed {
            tracing::warn!(error = ?e, table = %t.table, "a trigger kept its temporary name");
        }
    }
    Ok(())
}

async fn rename_views(db: &MysqlDb, new: &str) -> anyhow::Result<()> {
    let aside = db.views(new).await?;
    if aside.is_empty() {
        return Ok(());
    }
    let tables: HashMap<String, String> = db
        .tables("")
        .await?
        .into_iter()
        .map(|t| (temp_table(new, &t), t))
        .collect();
    let final_of = |n: &str| {
        tables
            .get(n)
            .cloned()
            .or_else(|| n.strip_prefix(new).map(str::to_owned))
    };
    let pending = aside
        .iter()
        .map(|v| {
            (
                final_of(&v.name).unwrap_or_else(|| v.name.clone()),
                sql::rename_identifiers(&v.select, None, &final_of),
            )
        })
        .collect();
    create_views(db, pending, true).await?;
    undo_build_views(db, &aside).await
}

async fn undo_build_views(db: &MysqlDb, views: &[ViewDef]) -> anyhow::Result<()> {
    let list = views
        .iter()
        .map(|v| quote(&v.name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    db.run(
        format!("DROP VIEW IF EXISTS {}", list.join(", ")),
        "dropping views",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use php_serial::UrlRewrite;

    fn rewrite() -> Rewrite {
        Rewrite {
            url: Some(UrlRewrite::new("http://127.0.0.1:8082", "http://127.0.0.1:18082").unwrap()),
            from_prefix: "wp_".into(),
            to_prefix: "stg_".into(),
        }
    }

    #[test]
    fn names_aside_are_short_distinct_and_found_again() {
        let a = temp_table("stnabcdef_", "stg_posts");
        assert_eq!(a, temp_table("stnabcdef_", "stg_posts"));
        assert_ne!(a, temp_table("stnabcdef_", "stg_postmeta"));
        assert_eq!(a.len(), "stnabcdef_".len() + 12);
        assert!(temp_table("stnabcdef_", &"x".repeat(64)).len() <= 64);
        assert_eq!(
            object_name(&rewrite(), "fk_wp_wc_download_log_permission_id"),
            "fk_stg_wc_download_log_permission_id"
        );
        assert_eq!(object_name(&rewrite(), "my_trigger"), "my_trigger");
        assert!(temp_object("stnabcdef_", &"x".repeat(54)).is_ok());
        assert!(temp_object("stnabcdef_", &"x".repeat(55)).is_err());
        assert_eq!(set_aside("stoabcdef_", "t").as_deref(), Some("stoabcdef_t"));
        assert_eq!(set_aside("stoabcdef_", &"t".repeat(60)), None);
    }

    #[test]
    fn a_table_aside_references_its_parent_aside() {
        let def = TableDef {
            name: "wp_wc_download_log".into(),
            create: "CREATE TABLE `wp_wc_download_log` (\n  `id` bigint NOT NULL,\n  `permission_id` bigint NOT NULL,\n  PRIMARY KEY (`id`),\n  CONSTRAINT `fk_wp_wc_download_log_permission_id` FOREIGN KEY (`permission_id`) REFERENCES `wp_woocommerce_downloadable_product_permissions` (`permission_id`) ON DELETE CASCADE,\n  CONSTRAINT `elsewhere` FOREIGN KEY (`id`) REFERENCES `other`.`t` (`id`)\n) ENGINE=InnoDB".into(),
            columns: Vec::new(),
        };
        let sql = create_aside(&def, &rewrite(), "stnabcdef_").unwrap();
        let table = temp_table("stnabcdef_", "stg_wc_download_log");
        let parent = temp_table(
            "stnabcdef_",
            "stg_woocommerce_downloadable_product_permissions",
        );
        assert_eq!(
            sql,
            format!(
                "CREATE TABLE `{table}` (\n  `id` bigint NOT NULL,\n  `permission_id` bigint NOT NULL,\n  PRIMARY KEY (`id`),\n  CONSTRAINT `stnabcdef_fk_stg_wc_download_log_permission_id` FOREIGN KEY (`permission_id`) REFERENCES `{parent}` (`permission_id`) ON DELETE CASCADE\n) ENGINE=InnoDB"
            )
        );
    }

    #[test]
    fn column_kinds_and_lengths() {
        let col = |t: &str, c, b| Column::new("c".into(), t, c, b, false, false);
        assert!(col("varchar", Some(20), Some(80)).textual);
        assert!(
            !col("enum", Some(30), Some(120)).textual,
            "ENUMs are never rewritten"
        );
        assert!(!col("set", Some(30), Some(120)).textual, "nor SETs");
        assert!(!col("varbinary", Some(30), Some(30)).textual);
        assert_eq!(
            col("varchar", Some(20), Some(80)).limit,
            Some(Limit::Chars(20))
        );
        assert_eq!(
            col("text", Some(65535), Some(65535)).limit,
            Some(Limit::Bytes(65535))
        );
        assert!(Limit::Chars(2).fits("éé".as_bytes()));
        assert!(!Limit::Chars(2).fits(b"abc"));
        assert!(!Limit::Bytes(3).fits("éé".as_bytes()));
    }
}
