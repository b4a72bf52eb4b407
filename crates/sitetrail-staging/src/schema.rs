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
//! After the switch, [`after_switch`] gives each its final name: the replaced tables' objects
//! of the same name (now under the old tables' prefix) give it up first, the views are made
//! (`CREATE OR REPLACE`) over the final tables and the ones aside dropped. Views and
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
        if let Some((_, holder)) = all.iter().find(|(n, _)| n == final_name) {
            anyhow::ensure!(
                holder.starts_with(old),
                "the foreign key {final_name} exists on {holder}"
            );
            db.run(
                format!(
                    "ALTER TABLE {} DROP FOREIGN KEY {}",
                    quote(holder)?,
                    quote(final_name)?
                ),
                "freeing a foreign key's name",
            )
            .await?;
        }
        let (_, create): (String, String) = conn
            .query_first(format!("SHOW CREATE TABLE {}", quote(table)?))
            .await?
            .context("a table without a definition")?;
        let line = create
            .split('\n')
            .find_map(|l| {
                let toks = sql::tokens(l.trim());
                let named = toks.iter().filter_map(sql::Tok::ident).nth(1) == Some(name.as_str());
                (l.trim_start().starts_with("CONSTRAINT") && named).then(|| {
                    let mut toks = toks;
                    if let Some(t) = toks.iter_mut().find(|t| t.ident() == Some(name.as_str())) {
                        *t = sql::Tok::Quoted(final_name.to_owned());
                    }
                    sql::join(&toks).trim_end_matches(',').to_owned()
                })
            })
            .context("a foreign key not in its table's definition")?;
        db.run(
            format!(
                "ALTER TABLE {} DROP FOREIGN KEY {}, ADD {line}",
                quote(table)?,
                quote(name)?
            ),
            "naming a foreign key",
        )
        .await?;
    }
    Ok(())
}

async fn rename_triggers(db: &MysqlDb, new: &str, old: &str) -> anyhow::Result<()> {
    let all = db.triggers("").await?;
    for t in all.iter().filter(|t| t.name.starts_with(new)) {
        let final_name = &t.name[new.len()..];
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
        }
        let create = t.create(final_name, &t.table, &t.statement)?;
        db.run(
            format!("DROP TRIGGER {}", quote(&t.name)?),
            "naming a trigger",
        )
        .await?;
        db.run(create, "naming a trigger").await?;
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
