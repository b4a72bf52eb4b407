//! WordPress databases on SQLite (WordPress's SQLite database integration): a consistent
//! copy of the file, then table prefixes and URLs rewritten in place in the copy.

use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Row, SqliteConnection};

use crate::copy::{DbStats, Rewrite};
use crate::mysql::{Column, TableDef};

/// The integration's own table: MySQL column types, keyed by table name.
const TYPES_CACHE: &str = "_mysql_data_types_cache";

async fn open(path: &Path, create: bool) -> anyhow::Result<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Delete)
        .busy_timeout(std::time::Duration::from_secs(30));
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the SQLite database {}", path.display()))
}

fn quote(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!name.contains(['"', '\0']), "unsafe identifier {name:?}");
    Ok(format!("\"{name}\""))
}

/// A consistent copy of a live database, even while WordPress writes to it. The copy is a new
/// file made with exactly `mode` (SQLite would make it world-readable under a usual umask);
/// its directory must exist.
pub async fn copy(src: &Path, dst: &Path, mode: u32) -> anyhow::Result<()> {
    let dir = dst.parent().context("a database file has a directory")?;
    let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
        dst.file_name().context("a database file has a name")?,
    ))?;
    // Made empty first, exclusively and without following a link: VACUUM INTO fills an
    // empty file.
    crate::confined::Root::open(dir)
        .and_then(|d| d.create_file(&name, mode))
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dst.display()))?;
    let mut conn = open(src, false).await?;
    sqlx::query("VACUUM INTO ?")
        .bind(dst.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .with_context(|| format!("copying {}", src.display()))?;
    conn.close().await?;
    Ok(())
}

/// The tables of a prefix.
async fn tables(conn: &mut SqliteConnection, prefix: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Renames a copy's tables to the target prefix and rewrites its URLs and prefixed keys,
/// in one transaction.
pub async fn rewrite(
    path: &Path,
    rewrite: &Rewrite,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<DbStats> {
    let mut conn = open(path, false).await?;
    let mut tx = conn.begin().await?;
    let mut stats = DbStats::default();
    let mut names = Vec::new();
    for table in tables(&mut tx, &rewrite.from_prefix).await? {
        let new = rewrite.table_name(&table);
        if new != table {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {} RENAME TO {}",
                quote(&table)?,
                quote(&new)?
            )))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("renaming {table}"))?;
            // Index names carry the table's name (`wp_options__option_name`): they follow.
            let indexes: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
            )
            .bind(&new)
            .fetch_all(&mut *tx)
            .await?;
            for (name, sql) in indexes {
                let (Some(sql), true) = (sql, name.starts_with(&table)) else {
                    continue;
                };
                let renamed = format!("{new}{}", &name[table.len()..]);
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {}", quote(&name)?)))
                    .execute(&mut *tx)
                    .await?;
                let sql = sql.replacen(&quote(&name)?, &quote(&renamed)?, 1);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await?;
            }
            let has_cache: Option<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(TYPES_CACHE)
            .fetch_optional(&mut *tx)
            .await?;
            if has_cache.is_some() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {TYPES_CACHE} SET \"table\" = ? WHERE \"table\" = ?"
                )))
                .bind(&new)
                .bind(&table)
                .execute(&mut *tx)
                .await?;
            }
        }
        names.push(new);
    }
    for table in names {
        let cols: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type FROM pragma_table_info({})",
            quote(&table).map(|q| format!("'{}'", q.trim_matches('"')))?
        )))
        .fetch_all(&mut *tx)
        .await?;
        let def = TableDef {
            name: rewrite.from_prefix.clone()
                + table.strip_prefix(&rewrite.to_prefix).unwrap_or(&table),
            create: String::new(),
            columns: cols
                .iter()
                .map(|(name, ty)| Column {
                    name: name.clone(),
                    textual: ty.is_empty()
                        || ["text", "char", "clob"]
                            .iter()
                            .any(|k| ty.to_ascii_lowercase().contains(k)),
                    generated: false,
                    key: false,
                    limit: None,
                })
                .collect(),
        };
        let plan = rewrite.plan_for(&def);
        stats.tables += 1;
        let select = format!(
            "SELECT rowid, {} FROM {}",
            cols.iter()
                .map(|(n, _)| quote(n))
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(", "),
            quote(&table)?
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .fetch_all(&mut *tx)
            .await?;
        stats.rows += rows.len() as u64;
        progress(rows.len() as u64);
        for row in rows {
            let rowid: i64 = row.try_get(0)?;
            let mut cells: Vec<Option<Vec<u8>>> = (0..cols.len())
                .map(|i| {
                    // Text comes back as text; numbers are left alone (not textual).
                    row.try_get::<Option<Vec<u8>>, _>(i + 1)
                        .or_else(|_| {
                            row.try_get::<Option<String>, _>(i + 1)
                                .map(|s| s.map(String::into_bytes))
                        })
                        .unwrap_or(None)
                })
                .collect();
            let before = cells.clone();
            let changed = plan.apply(&mut cells);
            if changed == 0 {
                continue;
            }
            stats.rewritten_cells += changed;
            for (i, (new, old)) in cells.iter().zip(&before).enumerate() {
                if new != old {
                    let text = new
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned());
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {} SET {} = ? WHERE rowid = ?",
                        quote(&table)?,
                        quote(&cols[i].0)?
                    )))
                    .bind(text)
                    .bind(rowid)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
    }
    tx.commit().await?;
    // Old values stay in free pages until a vacuum: none of the source's may remain.
    sqlx::query("VACUUM").execute(&mut conn).await?;
    conn.close().await?;
    Ok(stats)
}

/// How many tables of a prefix a database holds (a source must have WordPress's).
pub async fn has_wordpress(path: &Path, prefix: &str) -> anyhow::Result<bool> {
    let mut conn = open(path, false).await?;
    let found = tables(&mut conn, prefix)
        .await?
        .iter()
        .any(|t| t.ends_with("options"));
    conn.close().await?;
    Ok(found)
}

/// How many tables of a prefix and rows a database holds.
pub async fn stats(path: &Path, prefix: &str) -> anyhow::Result<DbStats> {
    let mut conn = open(path, false).await?;
    let mut stats = DbStats::default();
    for table in tables(&mut conn, prefix).await? {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            quote(&table)?
        )))
        .fetch_one(&mut conn)
        .await?;
        stats.tables += 1;
        stats.rows += n as u64;
    }
    conn.close().await?;
    Ok(stats)
}

/// An option's value in a WordPress options table (none: no such option).
pub async fn option(path: &Path, table: &str, name: &str) -> anyhow::Result<Option<String>> {
    let mut conn = open(path, false).await?;
    let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT option_value FROM {} WHERE option_name = ?",
        quote(table)?
    )))
    .bind(name)
    .fetch_optional(&mut conn)
    .await?;
    conn.close().await?;
    Ok(value)
}

/// Sets an existing option's value in a WordPress options table.
pub async fn set_option(path: &Path, table: &str, name: &str, value: &str) -> anyhow::Result<()> {
    let mut conn = open(path, false).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET option_value = ? WHERE option_name = ?",
        quote(table)?
    )))
    .bind(value)
    .bind(name)
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}
