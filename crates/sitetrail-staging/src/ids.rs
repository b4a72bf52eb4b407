//! Id separation: when staging is made, each of staging's AUTO_INCREMENT counters (SQLite:
//! its `sqlite_sequence` entry) is moved far past live's, so that rows created on live and on
//! staging afterwards never get the same id. WooCommerce makes this matter: with HPOS an order
//! id is a placeholder post's id, so orders on live and pages on staging draw from the same
//! counter of the posts table.
//!
//! The gap depends on the id column's type, because every create-and-push moves the counter
//! on by one gap (the new live continues from staging's counter):
//! - `bigint` (WordPress's own ids, WooCommerce's, most plugins'): 1,000,000,000. Live would
//!   have to create a billion rows in one table before a push for its ids to reach staging's,
//!   and a signed bigint still has room for billions of cycles. Ids stay far below 2^53, so
//!   JavaScript clients (the block editor, the REST API) keep them exact.
//! - `int` (some plugins' entry tables, up to 2,147,483,647 signed): 10,000,000, room for
//!   about 200 cycles of creating staging and pushing it.
//! - `mediumint`: 100,000; `smallint` and `tinyint` are too small to separate and are left
//!   alone.
//!
//! When a counter cannot move (its type is too small or would overflow), nothing breaks: a
//! collision that still happens is caught by the merge as a conflict (both sides added the
//! same key), never applied silently.

use mysql_async::prelude::Queryable;

use crate::db::SiteDb;
use crate::mysql::{MysqlDb, quote};
use crate::operations::Env;
use crate::owned_rows::{Reader, sqlite_quote};

/// The gap and the largest value of an AUTO_INCREMENT column's type (MariaDB's
/// `column_type`, such as `bigint(20) unsigned`); none: too small to separate.
pub(crate) fn gap(column_type: &str) -> Option<(u64, u64)> {
    let t = column_type.to_ascii_lowercase();
    let unsigned = t.contains("unsigned");
    let (gap, signed_max, unsigned_max) = if t.starts_with("bigint") {
        (1_000_000_000, i64::MAX as u64, u64::MAX)
    } else if t.starts_with("mediumint") {
        (100_000, 8_388_607, 16_777_215)
    } else if t.starts_with("int") || t.starts_with("integer") {
        (10_000_000, i32::MAX as u64, u32::MAX as u64)
    } else {
        return None;
    };
    Some((gap, if unsigned { unsigned_max } else { signed_max }))
}

/// Where staging's counter goes: past both sides' next ids by the gap, unless it is there
/// already or the type has no room.
pub(crate) fn target(live_next: u64, staging_next: u64, column_type: &str) -> Option<u64> {
    let (gap, max) = gap(column_type)?;
    let target = live_next.max(staging_next).checked_add(gap)?;
    (target <= max && staging_next < live_next.saturating_add(gap)).then_some(target)
}

/// Moves each staging table's counter past live's (tables are matched by their name
/// without the prefix).
pub(crate) async fn separate(
    live: &Env,
    live_db: &SiteDb,
    staging: &Env,
    staging_db: &SiteDb,
) -> anyhow::Result<()> {
    match (live_db, staging_db) {
        (SiteDb::Mysql(l), SiteDb::Mysql(s)) => {
            let live_next = mysql_counters(l, &live.config.prefix).await?;
            let staging_next = mysql_counters(s, &staging.config.prefix).await?;
            let mut conn = s.conn().await?;
            for (suffix, (next, column_type)) in staging_next {
                let from_live = live_next.get(&suffix).map_or(0, |(n, _)| *n);
                if let Some(to) = target(from_live, next, &column_type) {
                    let table = format!("{}{suffix}", staging.config.prefix);
                    conn.query_drop(format!(
                        "ALTER TABLE {} AUTO_INCREMENT = {to}",
                        quote(&table)?
                    ))
                    .await?;
                }
            }
            Ok(())
        }
        (SiteDb::Sqlite(_), SiteDb::Sqlite(_)) => {
            let mut l = Reader::open(live, live_db).await?;
            let mut s = Reader::open(staging, staging_db).await?;
            let done = async {
                let (Reader::Sqlite { conn: lc, .. }, Reader::Sqlite { conn: sc, .. }) =
                    (&mut l, &mut s)
                else {
                    anyhow::bail!("both sides are SQLite");
                };
                let live_next = sqlite_counters(lc, &live.config.prefix).await?;
                let staging_next = sqlite_counters(sc, &staging.config.prefix).await?;
                for (suffix, next) in staging_next {
                    let from_live = live_next.get(&suffix).copied().unwrap_or(0);
                    // SQLite's integers are 64-bit whatever the declared type.
                    if let Some(to) = target(from_live, next, "bigint") {
                        let table = format!("{}{suffix}", staging.config.prefix);
                        sqlx::query("DELETE FROM sqlite_sequence WHERE name = ?")
                            .bind(&table)
                            .execute(&mut *sc)
                            .await?;
                        // The sequence holds the last id given: the next is one more.
                        sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)")
                            .bind(&table)
                            .bind((to - 1) as i64)
                            .execute(&mut *sc)
                            .await?;
                    }
                }
                anyhow::Ok(())
            }
            .await;
            l.close().await;
            s.close().await;
            done
        }
        _ => Ok(()),
    }
}

/// Per table of a prefix (named without it): the next id and the id column's type.
async fn mysql_counters(
    db: &MysqlDb,
    prefix: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, (u64, String)>> {
    let mut conn = db.conn().await?;
    let rows: Vec<(String, String, String, Option<u64>)> = conn
        .exec(
            "SELECT c.table_name, c.column_name, c.column_type, t.auto_increment \
             FROM information_schema.columns c JOIN information_schema.tables t \
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = ? AND c.extra LIKE '%auto_increment%' AND t.table_type = 'BASE TABLE'",
            (db.name.clone(),),
        )
        .await?;
    let mut out = std::collections::BTreeMap::new();
    for (table, column, column_type, next) in rows {
        let Some(suffix) = table.strip_prefix(prefix) else {
            continue;
        };
        let max: Option<u64> = conn
            .query_first(format!(
                "SELECT CAST(COALESCE(MAX({}), 0) AS UNSIGNED) FROM {}",
                quote(&column)?,
                quote(&table)?
            ))
            .await?;
        let next = next.unwrap_or(1).max(max.unwrap_or(0) + 1);
        out.insert(suffix.to_owned(), (next, column_type));
    }
    Ok(out)
}

/// Per AUTOINCREMENT table of a prefix (named without it): the next id.
async fn sqlite_counters(
    conn: &mut sqlx::SqliteConnection,
    prefix: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = std::collections::BTreeMap::new();
    for table in tables {
        let Some(suffix) = table.strip_prefix(prefix) else {
            continue;
        };
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
            .bind(&table)
            .fetch_optional(&mut *conn)
            .await?;
        let max: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT MAX(rowid) FROM {}",
            sqlite_quote(&table)?
        )))
        .fetch_one(&mut *conn)
        .await?;
        let last = seq.unwrap_or(0).max(max.unwrap_or(0)).max(0) as u64;
        out.insert(suffix.to_owned(), last + 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_fits_the_id_columns_type() {
        assert_eq!(gap("bigint(20) unsigned"), Some((1_000_000_000, u64::MAX)));
        assert_eq!(gap("bigint(20)"), Some((1_000_000_000, i64::MAX as u64)));
        assert_eq!(gap("int(10) unsigned"), Some((10_000_000, u32::MAX as u64)));
        assert_eq!(gap("int(11)"), Some((10_000_000, i32::MAX as u64)));
        assert_eq!(gap("mediumint(8) unsigned"), Some((100_000, 16_777_215)));
        assert_eq!(gap("smallint(5)"), None);
        assert_eq!(gap("tinyint(1)"), None);
    }

    #[test]
    fn staging_starts_a_gap_past_both_sides() {
        assert_eq!(target(120, 118, "bigint(20) unsigned"), Some(1_000_000_120));
        // Staging already ahead (made again from a live that took staging's ids).
        assert_eq!(
            target(1_000_000_500, 1_000_000_400, "bigint(20) unsigned"),
            Some(2_000_000_500)
        );
        // Already separated: left where it is.
        assert_eq!(target(120, 1_000_000_200, "bigint(20) unsigned"), None);
        // No room left in the type: the merge catches a collision instead.
        assert_eq!(target(2_140_000_000, 5, "int(11)"), None);
        assert_eq!(target(10, 5, "smallint(5)"), None);
    }
}
