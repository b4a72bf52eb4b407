//! After the switch: the foreign keys, triggers and views built aside take their final
//! names, and a push keeps live's own (see the parent module).

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use mysql_async::prelude::Queryable;

use super::{ViewDef, create_views, sql, temp_table};
use crate::db::SiteDb;
use crate::mysql::{ForPeople, MysqlDb, quote};

/// After a switch that put tables built aside under `new` in place of the ones now under
/// `old`: foreign keys, triggers and views built aside take their final names. A step that
/// fails leaves the object working under its name aside, and is logged.
///
/// With `keep_replaced` (a push to live), the replaced tables' foreign keys and triggers
/// that the new tables lack (by name) are made on the new tables of the same names too:
/// live keeps what it had, even when staging was made before sitetrail copied them.
pub async fn after_switch(db: Option<&SiteDb>, new: &str, old: &str, keep_replaced: bool) {
    if let Some(SiteDb::Mysql(db)) = db {
        after_switch_mysql(db, new, old, keep_replaced).await;
    }
}

/// [`after_switch`] on MariaDB/MySQL.
pub async fn after_switch_mysql(db: &MysqlDb, new: &str, old: &str, keep_replaced: bool) {
    for (what, done) in [
        ("foreign keys", rename_foreign_keys(db, new, old).await),
        ("triggers", rename_triggers(db, new, old).await),
        ("views", rename_views(db, new).await),
    ] {
        if let Err(e) = done {
            tracing::warn!(error = ?e, "{what} built aside kept their temporary names");
        }
    }
    if keep_replaced && let Err(e) = keep_from_replaced(db, old).await {
        tracing::warn!(error = ?e, "the replaced tables' foreign keys and triggers were not all kept");
    }
}

/// Makes the foreign keys and triggers of the tables now under `old` that no new table has
/// (they still have their own names) on the new tables of the same names, each set aside
/// under `old` first.
async fn keep_from_replaced(db: &MysqlDb, old: &str) -> anyhow::Result<()> {
    let tables: HashSet<String> = db.tables("").await?.into_iter().collect();
    let current = |t: &str| {
        t.strip_prefix(old)
            .filter(|t| tables.contains(*t))
            .map(str::to_owned)
    };
    for t in db.triggers(old).await? {
        let Some(table) = current(&t.table).filter(|_| !t.name.starts_with(old)) else {
            continue;
        };
        let kept = async {
            db.run(
                format!("DROP TRIGGER {}", quote(&t.name)?),
                "keeping a trigger",
            )
            .await?;
            if let Some(aside) = set_aside(old, &t.name) {
                t.make(db, &aside, &t.table, &t.statement, "keeping a trigger")
                    .await?;
            }
            t.make(db, &t.name, &table, &t.statement, "keeping a trigger")
                .await
        }
        .await;
        if let Err(e) = kept {
            tracing::warn!(error = ?e, %table, "a trigger of live was not kept");
        }
    }
    let mut conn = db.conn().await?;
    let fks: Vec<(String, String)> = conn
        .exec(
            "SELECT constraint_name, table_name FROM information_schema.referential_constraints \
             WHERE constraint_schema = ?",
            (db.name.clone(),),
        )
        .await
        .or_say(|| "listing foreign keys".into())?;
    for (name, holder) in fks
        .iter()
        .filter(|(n, t)| t.starts_with(old) && !n.starts_with(old))
    {
        let Some(table) = current(holder) else {
            continue;
        };
        let kept = async {
            let line = fk_line(db, holder, name, name).await?;
            // The parent is the new table of the replaced parent's name.
            let line = sql::rename_identifiers(&line, None, &|n| current(n));
            anyhow::ensure!(
                !sql::tokens(&line)
                    .iter()
                    .filter_map(sql::Tok::ident)
                    .any(|n| n.starts_with(old)),
                "its parent table is not in the new live"
            );
            rename_foreign_key(db, holder, name, set_aside(old, name).as_deref()).await?;
            db.run(
                format!("ALTER TABLE {} ADD {line}", quote(&table)?),
                "keeping a foreign key",
            )
            .await
        }
        .await;
        if let Err(e) = kept {
            tracing::warn!(error = ?e, %table, "a foreign key of live was not kept");
        }
    }
    Ok(())
}

/// The name an object of a replaced table takes when it gives its name up: the old tables'
/// prefix before it, so that a switch back ([`after_switch`] with the prefixes the other way
/// round) gives it its name again. None: too long for that; the object is dropped.
pub(super) fn set_aside(old: &str, name: &str) -> Option<String> {
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
        .or_say(|| "listing foreign keys".into())?;
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
        add = format!(", ADD {}", fk_line(db, table, from, to).await?);
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

/// The `CONSTRAINT ... FOREIGN KEY ...` clause of `table`'s foreign key `name`, named `to`.
async fn fk_line(db: &MysqlDb, table: &str, name: &str, to: &str) -> anyhow::Result<String> {
    let mut conn = db.conn().await?;
    let (_, create): (String, String) = conn
        .query_first(format!("SHOW CREATE TABLE {}", quote(table)?))
        .await
        .or_say(|| format!("reading the definition of {table}"))?
        .context("a table without a definition")?;
    create
        .split('\n')
        .find_map(|l| {
            let mut toks = sql::tokens(l.trim());
            let at = toks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.ident().is_some())
                .nth(1)
                .map(|(i, _)| i)?;
            let named = l.trim_start().starts_with("CONSTRAINT") && toks[at].ident() == Some(name);
            named.then(|| {
                toks[at] = sql::Tok::Quoted(to.to_owned());
                sql::join(&toks).trim_end_matches(',').to_owned()
            })
        })
        .context("a foreign key not in its table's definition")
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
                    holder
                        .make(
                            db,
                            &aside,
                            &holder.table,
                            &holder.statement,
                            "setting a replaced trigger aside",
                        )
                        .await?;
                }
            }
            db.run(
                format!("DROP TRIGGER {}", quote(&t.name)?),
                "naming a trigger",
            )
            .await?;
            t.make(db, final_name, &t.table, &t.statement, "naming a trigger")
                .await
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
            v.renamed(
                final_of(&v.name).unwrap_or_else(|| v.name.clone()),
                sql::rename_identifiers(&v.select, None, &final_of),
            )
        })
        .collect();
    let not_made = create_views(db, pending, true).await?;
    undo_build_views(db, &aside).await?;
    anyhow::ensure!(
        not_made.is_empty(),
        "the views {not_made:?} could not take their final names"
    );
    Ok(())
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
