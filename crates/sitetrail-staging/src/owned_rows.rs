//! Reading a live-owned table's rows as the merge compares them: per row key (its primary
//! key's values), a hash of the row's stored columns, and whether the profile's selector holds.
//! The same on MariaDB (raw bytes of the text protocol) and SQLite (each value as SQLite's
//! own `quote()` writes it, which is also a literal the merge can write back).

use std::collections::BTreeMap;

use futures::StreamExt;
use mysql_async::Row;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};
use sqlx::{Row as _, SqliteConnection};

use crate::live_owned::Owned;
use crate::mysql::{Cell, MysqlDb, quote};

/// A row's hash, hex: the first 16 bytes of a SHA-256 over its columns' names and values.
pub(crate) type Hash = String;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The key's values: raw bytes (MariaDB) or SQL literals (SQLite).
    pub key: Vec<Cell>,
    pub hash: Hash,
    pub selected: bool,
    pub always_live: bool,
}

/// One table on one side.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableRows {
    /// Its primary key's columns; empty: the table has none (then it is live's whole).
    pub key_columns: Vec<String>,
    /// Its stored columns (generated ones are left out), in table order.
    pub columns: Vec<String>,
    /// By key text (`ID=123`).
    pub rows: BTreeMap<String, Seen>,
}

/// The hash of a row: columns in name order, each name with its value (NULL distinct from
/// any bytes), so that the order of a table's columns does not matter.
pub(crate) fn row_hash(columns: &[String], cells: &[Cell]) -> Hash {
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by(|a, b| columns[*a].cmp(&columns[*b]));
    let mut h = Sha256::new();
    for i in order {
        h.update((columns[i].len() as u64).to_le_bytes());
        h.update(columns[i].as_bytes());
        match &cells[i] {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_le_bytes());
                h.update(v);
            }
        }
    }
    hex::encode(&h.finalize()[..16])
}

/// `ID=123` or `order_item_id=5, order_id=7`; SQLite's quoted text loses its quotes.
pub(crate) fn key_text(columns: &[String], cells: &[Cell]) -> String {
    columns
        .iter()
        .zip(cells)
        .map(|(c, v)| {
            let v = match v {
                None => "NULL".to_owned(),
                Some(b) => {
                    let s = String::from_utf8_lossy(b);
                    match s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                        Some(inner) => inner.replace("''", "'"),
                        None => s.into_owned(),
                    }
                }
            };
            format!("{c}={v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn truthy(cell: &Cell) -> bool {
    matches!(cell.as_deref(), Some(b) if b != b"0" && !b.is_empty())
}

/// A table's stored columns and primary key on MariaDB; none: no such table.
pub(crate) async fn mysql_shape(
    db: &MysqlDb,
    table: &str,
) -> anyhow::Result<Option<(Vec<String>, Vec<String>)>> {
    let mut conn = db.conn().await?;
    let cols: Vec<(String, String, String)> = conn
        .exec(
            "SELECT column_name, UPPER(extra), column_key FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (db.name.clone(), table.to_owned()),
        )
        .await?;
    if cols.is_empty() {
        return Ok(None);
    }
    let key: Vec<String> = conn
        .exec(
            "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = ? \
             AND table_name = ? AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            (db.name.clone(), table.to_owned()),
        )
        .await?;
    let stored = cols
        .into_iter()
        .filter(|(_, extra, _)| !extra.contains("GENERATED"))
        .map(|(c, _, _)| c)
        .collect();
    Ok(Some((stored, key)))
}

/// Reads a table of live or staging on MariaDB.
pub(crate) async fn mysql_rows(
    db: &MysqlDb,
    table: &str,
    owned: &Owned,
    prefix: &str,
) -> anyhow::Result<Option<TableRows>> {
    let Some((columns, key_columns)) = mysql_shape(db, table).await? else {
        return Ok(None);
    };
    let mut out = TableRows {
        key_columns,
        columns,
        rows: BTreeMap::new(),
    };
    if out.key_columns.is_empty() {
        return Ok(Some(out));
    }
    let q = |s: &str| quote(s);
    let list = out
        .columns
        .iter()
        .chain(&out.key_columns)
        .map(|c| quote(c))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    let sql = format!(
        "SELECT {list}, ({}), ({}) FROM {}",
        owned.selected(prefix, &q)?,
        owned.always_live(&q)?,
        quote(table)?
    );
    let n = out.columns.len();
    let k = out.key_columns.len();
    let mut conn = db.conn().await?;
    let mut result = conn.query_iter(sql).await?;
    if let Some(mut stream) = result.stream::<Row>().await? {
        while let Some(row) = stream.next().await {
            let cells: Vec<Cell> = row?
                .unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
                })
                .collect();
            let key = cells[n..n + k].to_vec();
            out.rows.insert(
                key_text(&out.key_columns, &key),
                Seen {
                    hash: row_hash(&out.columns, &cells[..n]),
                    key,
                    selected: truthy(&cells[n + k]),
                    always_live: truthy(&cells[n + k + 1]),
                },
            );
        }
    }
    Ok(Some(out))
}

/// SQLite's quoting of an identifier.
pub(crate) fn sqlite_quote(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!name.contains(['"', '\0']), "unsafe identifier {name:?}");
    Ok(format!("\"{name}\""))
}

/// A table's stored columns and primary key on SQLite, in schema `schema` (`main` or an
/// attached one); none: no such table.
pub(crate) async fn sqlite_shape(
    conn: &mut SqliteConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<Option<(Vec<String>, Vec<String>)>> {
    // The schema is the pragma's second argument: a qualified `schema.pragma_table_xinfo`
    // still finds a table of that name in any attached database.
    let cols: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, pk, hidden FROM pragma_table_xinfo(?, ?) ORDER BY cid")
            .bind(table)
            .bind(schema)
            .fetch_all(&mut *conn)
            .await?;
    if cols.is_empty() {
        return Ok(None);
    }
    let mut key: Vec<(i64, String)> = cols
        .iter()
        .filter(|(_, pk, _)| *pk > 0)
        .map(|(n, pk, _)| (*pk, n.clone()))
        .collect();
    key.sort();
    let stored = cols
        .into_iter()
        .filter(|(_, _, hidden)| *hidden == 0)
        .map(|(n, _, _)| n)
        .collect();
    Ok(Some((stored, key.into_iter().map(|(_, n)| n).collect())))
}

/// Reads a table on SQLite (schema `main` or an attached one).
pub(crate) async fn sqlite_rows(
    conn: &mut SqliteConnection,
    schema: &str,
    table: &str,
    owned: &Owned,
    prefix: &str,
) -> anyhow::Result<Option<TableRows>> {
    let Some((columns, key_columns)) = sqlite_shape(conn, schema, table).await? else {
        return Ok(None);
    };
    let mut out = TableRows {
        key_columns,
        columns,
        rows: BTreeMap::new(),
    };
    if out.key_columns.is_empty() {
        return Ok(Some(out));
    }
    let q = |s: &str| sqlite_quote(s);
    let list = out
        .columns
        .iter()
        .chain(&out.key_columns)
        .map(|c| Ok(format!("quote({})", sqlite_quote(c)?)))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    // The selector names its own tables unqualified: they are resolved in `main` first, so
    // an attached side is read with the selector over its own tables qualified.
    let selected = owned
        .selected(prefix, &q)?
        .replace(" FROM \"", &format!(" FROM {}.\"", sqlite_quote(schema)?));
    let sql = format!(
        "SELECT {list}, ({selected}), ({}) FROM {}.{}",
        owned.always_live(&q)?,
        sqlite_quote(schema)?,
        sqlite_quote(table)?
    );
    let n = out.columns.len();
    let k = out.key_columns.len();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let mut cells: Vec<Cell> = Vec::with_capacity(n + k);
        for i in 0..n + k {
            let s: String = row.try_get(i)?;
            cells.push(Some(s.into_bytes()));
        }
        let selected: Option<i64> = row.try_get(n + k)?;
        let always: Option<i64> = row.try_get(n + k + 1)?;
        let key = cells[n..n + k].to_vec();
        out.rows.insert(
            key_text(&out.key_columns, &key),
            Seen {
                hash: row_hash(&out.columns, &cells[..n]),
                key,
                selected: selected.unwrap_or(0) != 0,
                always_live: always.unwrap_or(0) != 0,
            },
        );
    }
    Ok(Some(out))
}

/// One side's database, open for reading live-owned tables: MariaDB, or a SQLite file read
/// pinned (a site's file is hostile: see `confined::PinnedFile`).
pub(crate) enum Reader<'a> {
    Mysql(&'a MysqlDb),
    Sqlite {
        conn: SqliteConnection,
        pin: Option<crate::confined::PinnedFile>,
    },
}

/// Opens a SQLite file as WordPress's integration keeps it (rollback journal).
pub(crate) async fn sqlite_open(path: &std::path::Path) -> anyhow::Result<SqliteConnection> {
    use anyhow::Context;
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete)
        .busy_timeout(std::time::Duration::from_secs(30));
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the SQLite database {}", path.display()))
}

impl<'a> Reader<'a> {
    /// An environment's database; a SQLite file is pinned inside its docroot first.
    pub async fn open(
        env: &crate::operations::Env,
        db: &'a crate::db::SiteDb,
    ) -> anyhow::Result<Reader<'a>> {
        Reader::open_in(&env.docroot, db).await
    }

    /// A database in `docroot` (an environment's, or a tree kept aside); a SQLite file is
    /// pinned inside it first.
    pub async fn open_in(
        docroot: &std::path::Path,
        db: &'a crate::db::SiteDb,
    ) -> anyhow::Result<Reader<'a>> {
        match db {
            crate::db::SiteDb::Mysql(db) => Ok(Reader::Mysql(db)),
            crate::db::SiteDb::Sqlite(file) => {
                let (docroot, file) = (docroot.to_owned(), file.clone());
                let pin =
                    crate::blocking(move || crate::confined::PinnedFile::new(&docroot, &file))
                        .await?;
                let conn = sqlite_open(pin.path()).await?;
                Ok(Reader::Sqlite {
                    conn,
                    pin: Some(pin),
                })
            }
        }
    }

    pub async fn rows(
        &mut self,
        table: &str,
        owned: &Owned,
        prefix: &str,
    ) -> anyhow::Result<Option<TableRows>> {
        match self {
            Reader::Mysql(db) => mysql_rows(db, table, owned, prefix).await,
            Reader::Sqlite { conn, .. } => sqlite_rows(conn, "main", table, owned, prefix).await,
        }
    }

    /// Closes the connection, then lets go of the pinned file (off the runtime).
    pub async fn close(self) {
        if let Reader::Sqlite { conn, pin } = self {
            let _ = sqlx::Connection::close(conn).await;
            let _ = crate::blocking(move || {
                drop(pin);
                Ok(())
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_rows_hash_ignores_column_order_and_tells_null_from_text() {
        let a = row_hash(
            &cols(&["ID", "title"]),
            &[Some(b"1".to_vec()), Some(b"x".to_vec())],
        );
        let b = row_hash(
            &cols(&["title", "ID"]),
            &[Some(b"x".to_vec()), Some(b"1".to_vec())],
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        let null = row_hash(&cols(&["ID", "title"]), &[Some(b"1".to_vec()), None]);
        let empty = row_hash(
            &cols(&["ID", "title"]),
            &[Some(b"1".to_vec()), Some(Vec::new())],
        );
        let word = row_hash(
            &cols(&["ID", "title"]),
            &[Some(b"1".to_vec()), Some(b"NULL".to_vec())],
        );
        assert!(null != empty && null != word && empty != word);
        // Values do not bleed into each other.
        let ab = row_hash(
            &cols(&["a", "b"]),
            &[Some(b"xy".to_vec()), Some(b"z".to_vec())],
        );
        let ba = row_hash(
            &cols(&["a", "b"]),
            &[Some(b"x".to_vec()), Some(b"yz".to_vec())],
        );
        assert_ne!(ab, ba);
    }

    #[test]
    fn keys_read_as_column_value_pairs() {
        assert_eq!(key_text(&cols(&["ID"]), &[Some(b"123".to_vec())]), "ID=123");
        assert_eq!(
            key_text(
                &cols(&["order_item_id", "order_id"]),
                &[Some(b"5".to_vec()), Some(b"7".to_vec())]
            ),
            "order_item_id=5, order_id=7"
        );
        assert_eq!(
            key_text(&cols(&["k"]), &[Some(b"'it''s'".to_vec())]),
            "k=it's"
        );
        assert_eq!(key_text(&cols(&["k"]), &[None]), "k=NULL");
    }
}
