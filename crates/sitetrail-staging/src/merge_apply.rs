//! Writing the merge's decisions (`merge.rs`) into a copy that is not live yet: the built
//! tables of a push, or the kept pre-push tables of an undo. On MariaDB they are tables in
//! live's database, so live's rows are copied with `INSERT ... SELECT` and an explicit column
//! list; on SQLite the copy is a file of its own and live's database is attached, read pinned.

use mysql_async::Value;
use mysql_async::prelude::Queryable;
use sqlx::SqliteConnection;

use crate::db::SiteDb;
use crate::merge::{Built, TablePlan};
use crate::mysql::{Cell, MysqlDb, quote};
use crate::operations::Env;
use crate::owned_rows::{Reader, mysql_shape, sqlite_open, sqlite_quote, sqlite_shape};

/// How many keys one statement names.
const KEYS_PER_STATEMENT: usize = 300;

/// The prefix the built (or kept) copy's tables have before live's own names.
pub(crate) fn temp_prefix(tables: &[(String, String)]) -> Option<String> {
    tables
        .iter()
        .find_map(|(t, f)| t.strip_suffix(f.as_str()).map(str::to_owned))
}

/// A name for one more table of a built copy: a build names its tables `{temp}{n}`
/// (`copy.rs`), a kept copy keeps a prefix before live's names.
fn next_temp_name(tables: &[(String, String)], live: &str) -> Option<String> {
    if let Some(p) = temp_prefix(tables) {
        return Some(format!("{p}{live}"));
    }
    let (first, _) = tables.first()?;
    let stem = first.trim_end_matches(|c: char| c.is_ascii_digit());
    (stem.len() < first.len()).then(|| format!("{stem}{}", tables.len()))
}

/// The columns both copies store (generated ones left out), in the first one's order.
fn common(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|c| b.contains(c)).cloned().collect()
}

/// A reader of the copy, and the prefix its live-owned tables have there.
pub(crate) async fn open_copy<'a>(
    live_db: &'a SiteDb,
    copy: &Built<'_>,
    live_prefix: &str,
) -> anyhow::Result<(Reader<'a>, String)> {
    match (copy, live_db) {
        (Built::Mysql { tables, .. }, SiteDb::Mysql(db)) => {
            let p = temp_prefix(tables).ok_or_else(|| anyhow::anyhow!("the copy has no tables"))?;
            Ok((Reader::Mysql(db), format!("{p}{live_prefix}")))
        }
        (Built::Sqlite { file, .. }, SiteDb::Sqlite(_)) => {
            let conn = sqlite_open(file).await?;
            Ok((Reader::Sqlite { conn, pin: None }, live_prefix.to_owned()))
        }
        _ => anyhow::bail!("the copy and live are databases of different kinds"),
    }
}

/// Applies every table's plan to the copy.
pub(crate) async fn apply_all(
    live: &Env,
    live_db: &SiteDb,
    copy: Built<'_>,
    plans: &[TablePlan],
) -> anyhow::Result<()> {
    match (copy, live_db) {
        (
            Built::Mysql {
                tables,
                whole_database,
            },
            SiteDb::Mysql(db),
        ) => {
            // The copy is not live yet; its foreign keys are checked by nobody's writes but
            // these, which restore rows as a consistent live had them (and must not cascade).
            let mut conn = db.conn().await?;
            conn.query_drop("SET SESSION foreign_key_checks = 0")
                .await?;
            let mut done = Ok(());
            for plan in plans.iter().filter(|p| p.on_live) {
                done = apply_mysql(db, &mut conn, tables, whole_database, plan).await;
                if done.is_err() {
                    break;
                }
            }
            let _ = conn.query_drop("SET SESSION foreign_key_checks = 1").await;
            done
        }
        (
            Built::Sqlite {
                file,
                whole_database,
            },
            SiteDb::Sqlite(live_file),
        ) => {
            let (docroot, live_file) = (live.docroot.clone(), live_file.clone());
            let pin =
                crate::blocking(move || crate::confined::PinnedFile::new(&docroot, &live_file))
                    .await?;
            let mut conn = sqlite_open(file).await?;
            let done = async {
                sqlx::query("ATTACH DATABASE ? AS live")
                    .bind(pin.path().to_string_lossy().into_owned())
                    .execute(&mut conn)
                    .await?;
                sqlx::query("BEGIN").execute(&mut conn).await?;
                for plan in plans.iter().filter(|p| p.on_live) {
                    apply_sqlite(&mut conn, whole_database, plan).await?;
                }
                sqlx::query("COMMIT").execute(&mut conn).await?;
                sqlx::query("DETACH DATABASE live")
                    .execute(&mut conn)
                    .await?;
                anyhow::Ok(())
            }
            .await;
            let _ = sqlx::Connection::close(conn).await;
            crate::blocking(move || {
                drop(pin);
                Ok(())
            })
            .await?;
            done
        }
        _ => anyhow::bail!("the copy and live are databases of different kinds"),
    }
}

async fn apply_mysql(
    db: &MysqlDb,
    conn: &mut mysql_async::Conn,
    tables: &mut Vec<(String, String)>,
    whole_database: bool,
    plan: &TablePlan,
) -> anyhow::Result<()> {
    let live = &plan.table;
    let temp = match tables.iter().find(|(_, f)| f == live) {
        Some((t, _)) => t.clone(),
        None => {
            // Live has the table, the copy does not: live's whole table comes along.
            let Some(temp) = next_temp_name(tables, live).filter(|_| whole_database) else {
                return Ok(());
            };
            let (stored, _) = mysql_shape(db, live)
                .await?
                .ok_or_else(|| anyhow::anyhow!("live's {live} went away"))?;
            let cols = stored
                .iter()
                .map(|c| quote(c))
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(", ");
            conn.query_drop(format!(
                "CREATE TABLE {} LIKE {}",
                quote(&temp)?,
                quote(live)?
            ))
            .await?;
            conn.query_drop(format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
                quote(&temp)?,
                quote(live)?
            ))
            .await?;
            tables.push((temp, live.clone()));
            return Ok(());
        }
    };
    copy_rows_mysql(db, conn, &temp, live, plan).await
}

/// Writes one table's plan into `into` from `from`, both tables of the same database: the
/// merge writes live's rows into the built copy, the catch-up after a switch writes the kept
/// old live's rows into live. Each planned key's row in `into` goes, and `from`'s row takes
/// its place when the plan says so; a table without a key is copied whole.
pub(crate) async fn copy_rows_mysql(
    db: &MysqlDb,
    conn: &mut mysql_async::Conn,
    into: &str,
    from: &str,
    plan: &TablePlan,
) -> anyhow::Result<()> {
    let (Some((into_cols, _)), Some((from_cols, _))) =
        (mysql_shape(db, into).await?, mysql_shape(db, from).await?)
    else {
        return Ok(());
    };
    let cols = common(&from_cols, &into_cols)
        .iter()
        .map(|c| quote(c))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    let (t, f) = (quote(into)?, quote(from)?);
    if plan.whole_table {
        conn.query_drop(format!("DELETE FROM {t}")).await?;
        conn.query_drop(format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {f}"))
            .await?;
        return Ok(());
    }
    let key = plan
        .key_columns
        .iter()
        .map(|c| quote(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let one = match key.len() {
        1 => "?".to_owned(),
        n => format!("({})", vec!["?"; n].join(", ")),
    };
    let lhs = match key.len() {
        1 => key[0].clone(),
        _ => format!("({})", key.join(", ")),
    };
    let params = |keys: &[&Vec<Cell>]| -> Vec<Value> {
        keys.iter()
            .flat_map(|k| k.iter())
            .map(|c| c.clone().map_or(Value::NULL, Value::Bytes))
            .collect()
    };
    for chunk in plan.take.chunks(KEYS_PER_STATEMENT) {
        let all: Vec<&Vec<Cell>> = chunk.iter().map(|(k, _)| k).collect();
        let list = vec![one.as_str(); all.len()].join(", ");
        conn.exec_drop(
            format!("DELETE FROM {t} WHERE {lhs} IN ({list})"),
            params(&all),
        )
        .await?;
        let taken: Vec<&Vec<Cell>> = chunk
            .iter()
            .filter(|(_, there)| *there)
            .map(|(k, _)| k)
            .collect();
        if taken.is_empty() {
            continue;
        }
        let list = vec![one.as_str(); taken.len()].join(", ");
        conn.exec_drop(
            format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {f} WHERE {lhs} IN ({list})"),
            params(&taken),
        )
        .await?;
    }
    Ok(())
}

/// `k IN (1, 2)` or `(a, b) IN (VALUES (1, 2), (3, 4))`, the values being SQLite's own
/// literals (`quote()`).
fn sqlite_in(key: &[String], keys: &[&Vec<Cell>]) -> anyhow::Result<String> {
    let lit = |c: &Cell| -> anyhow::Result<String> {
        let c = c.as_ref().ok_or_else(|| anyhow::anyhow!("a NULL key"))?;
        Ok(String::from_utf8(c.clone())?)
    };
    if key.len() == 1 {
        let list = keys
            .iter()
            .map(|k| lit(&k[0]))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(", ");
        return Ok(format!("{} IN ({list})", key[0]));
    }
    let rows = keys
        .iter()
        .map(|k| {
            Ok(format!(
                "({})",
                k.iter()
                    .map(lit)
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .join(", ")
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    Ok(format!("({}) IN (VALUES {rows})", key.join(", ")))
}

async fn apply_sqlite(
    conn: &mut SqliteConnection,
    whole_database: bool,
    plan: &TablePlan,
) -> anyhow::Result<()> {
    let name = sqlite_quote(&plan.table)?;
    let Some((copy_cols, _)) = sqlite_shape(conn, "main", &plan.table).await? else {
        if !whole_database {
            return Ok(());
        }
        // Live has the table, the copy does not: live's whole table comes along, with its
        // indexes and the integration's record of its column types.
        let create: Option<String> = sqlx::query_scalar(
            "SELECT sql FROM live.sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(&plan.table)
        .fetch_optional(&mut *conn)
        .await?;
        let create =
            create.ok_or_else(|| anyhow::anyhow!("live's {} has no definition", plan.table))?;
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM live.sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        )
        .bind(&plan.table)
        .fetch_all(&mut *conn)
        .await?;
        for sql in std::iter::once(create).chain(indexes) {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO main.{name} SELECT * FROM live.{name}"
        )))
        .execute(&mut *conn)
        .await?;
        let _ = sqlx::query(
            "INSERT INTO main._mysql_data_types_cache SELECT * FROM live._mysql_data_types_cache WHERE \"table\" = ?",
        )
        .bind(&plan.table)
        .execute(&mut *conn)
        .await;
        return Ok(());
    };
    let Some((live_cols, _)) = sqlite_shape(conn, "live", &plan.table).await? else {
        return Ok(());
    };
    let cols = common(&live_cols, &copy_cols)
        .iter()
        .map(|c| sqlite_quote(c))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    if plan.whole_table {
        for sql in [
            format!("DELETE FROM main.{name}"),
            format!("INSERT INTO main.{name} ({cols}) SELECT {cols} FROM live.{name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?;
        }
        return Ok(());
    }
    let key = plan
        .key_columns
        .iter()
        .map(|c| sqlite_quote(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for chunk in plan.take.chunks(KEYS_PER_STATEMENT) {
        let all: Vec<&Vec<Cell>> = chunk.iter().map(|(k, _)| k).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM main.{name} WHERE {}",
            sqlite_in(&key, &all)?
        )))
        .execute(&mut *conn)
        .await?;
        let from_live: Vec<&Vec<Cell>> = chunk
            .iter()
            .filter(|(_, on_live)| *on_live)
            .map(|(k, _)| k)
            .collect();
        if from_live.is_empty() {
            continue;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO main.{name} ({cols}) SELECT {cols} FROM live.{name} WHERE {}",
            sqlite_in(&key, &from_live)?
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copys_prefix_comes_from_its_pairs() {
        let pairs = vec![("stnab12_wp_posts".to_owned(), "wp_posts".to_owned())];
        assert_eq!(temp_prefix(&pairs).as_deref(), Some("stnab12_"));
        assert_eq!(temp_prefix(&[]), None);
        assert_eq!(
            next_temp_name(&pairs, "wp_x").as_deref(),
            Some("stnab12_wp_x")
        );
        let built = vec![
            ("stnab12_0".to_owned(), "wp_posts".to_owned()),
            ("stnab12_1".to_owned(), "wp_options".to_owned()),
        ];
        assert_eq!(next_temp_name(&built, "wp_x").as_deref(), Some("stnab12_2"));
        assert_eq!(next_temp_name(&[], "wp_x"), None);
    }

    #[test]
    fn sqlite_keys_are_its_own_literals() {
        let k1 = vec![Some(b"12".to_vec())];
        let k2 = vec![Some(b"'a''b'".to_vec())];
        assert_eq!(
            sqlite_in(&["\"ID\"".into()], &[&k1, &k2]).unwrap(),
            "\"ID\" IN (12, 'a''b')"
        );
        let pair = vec![Some(b"5".to_vec()), Some(b"7".to_vec())];
        assert_eq!(
            sqlite_in(&["\"a\"".into(), "\"b\"".into()], &[&pair]).unwrap(),
            "(\"a\", \"b\") IN (VALUES (5, 7))"
        );
    }
}
