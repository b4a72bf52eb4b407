//! What a push changes, measured on the new live built aside against live now: rows per
//! table (by primary key and a hash of the row; a table without a key compares its rows as
//! a multiset), files by name, size and content; and a fingerprint of live for the confirm
//! step (its tables' checksums and its tree's names, sizes and modification times).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, Row, SqliteConnection};

use crate::blocking;
use crate::confined::{self, Entry, Root};
use crate::mysql::{MysqlDb, quote};
use crate::push::{FILES_LISTED, FileChange, FilesChange, TableChange};
use crate::tree;

/// A table's rows: by key when it has a primary key, otherwise as a multiset of hashes.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    keyed: bool,
    by_key: HashMap<String, [u8; 32]>,
    counts: HashMap<[u8; 32], u64>,
}

impl Rows {
    fn push(&mut self, key: Option<String>, hash: [u8; 32]) {
        match key {
            Some(k) => {
                self.keyed = true;
                self.by_key.insert(k, hash);
            }
            None => *self.counts.entry(hash).or_default() += 1,
        }
    }

    fn len(&self) -> u64 {
        if self.keyed {
            self.by_key.len() as u64
        } else {
            self.counts.values().sum()
        }
    }
}

/// Rows of the new table against the old: added, removed, changed.
pub(crate) fn compare(new: &Rows, old: &Rows) -> (u64, u64, u64) {
    if new.keyed && old.keyed {
        let mut added = 0;
        let mut changed = 0;
        for (k, h) in &new.by_key {
            match old.by_key.get(k) {
                None => added += 1,
                Some(o) if o != h => changed += 1,
                Some(_) => {}
            }
        }
        let removed = old
            .by_key
            .keys()
            .filter(|k| !new.by_key.contains_key(*k))
            .count();
        return (added, removed as u64, changed);
    }
    // Without a key on both sides: rows as a multiset, each one identified by its whole hash.
    let as_counts = |r: &Rows| -> HashMap<[u8; 32], u64> {
        if r.keyed {
            let mut c = HashMap::new();
            for h in r.by_key.values() {
                *c.entry(*h).or_default() += 1;
            }
            c
        } else {
            r.counts.clone()
        }
    };
    let (n, o) = (as_counts(new), as_counts(old));
    let added = n
        .iter()
        .map(|(h, c)| c.saturating_sub(*o.get(h).unwrap_or(&0)))
        .sum();
    let removed = o
        .iter()
        .map(|(h, c)| c.saturating_sub(*n.get(h).unwrap_or(&0)))
        .sum();
    (added, removed, 0)
}

/// A MariaDB table's rows, read as their key and a hash computed by the server.
pub(crate) async fn mysql_rows(db: &MysqlDb, table: &str) -> anyhow::Result<Rows> {
    let mut conn = db.conn().await?;
    let cols: Vec<(String, String)> = conn
        .exec(
            "SELECT column_name, column_key FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (db.name.clone(), table.to_owned()),
        )
        .await
        .with_context(|| format!("reading the columns of {table}"))?;
    let quoted = |c: &str| quote(c).map(|q| format!("QUOTE({q})"));
    let all = cols
        .iter()
        .map(|(c, _)| quoted(c))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    let key = cols
        .iter()
        .filter(|(_, k)| k == "PRI")
        .map(|(c, _)| quoted(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = match key.is_empty() {
        true => "NULL".to_owned(),
        false => format!("CONCAT_WS(',', {})", key.join(", ")),
    };
    let sql = format!(
        "SELECT {key}, SHA2(CONCAT_WS(',', {all}), 256) FROM {}",
        quote(table)?
    );
    let found: Vec<(Option<Vec<u8>>, String)> = conn
        .query(sql)
        .await
        .with_context(|| format!("reading the rows of {table}"))?;
    let mut rows = Rows::default();
    for (k, h) in found {
        let k = k.map(hex::encode);
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&h, &mut hash).context("a row hash")?;
        rows.push(k, hash);
    }
    Ok(rows)
}

async fn open_sqlite(path: &Path) -> anyhow::Result<SqliteConnection> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30));
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the SQLite database {}", path.display()))
}

fn sqlite_quote(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!name.contains(['"', '\0']), "unsafe identifier {name:?}");
    Ok(format!("\"{name}\""))
}

async fn sqlite_tables(conn: &mut SqliteConnection, prefix: &str) -> anyhow::Result<Vec<String>> {
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

async fn sqlite_table_rows(conn: &mut SqliteConnection, table: &str) -> anyhow::Result<Rows> {
    let info = sqlx::query(AssertSqlSafe(format!(
        "PRAGMA table_info({})",
        sqlite_quote(table)?
    )))
    .fetch_all(&mut *conn)
    .await?;
    let mut cols = Vec::new();
    let mut key = Vec::new();
    for r in &info {
        let name: String = r.try_get("name")?;
        let pk: i64 = r.try_get("pk")?;
        if pk > 0 {
            key.push((pk, name.clone()));
        }
        cols.push(name);
    }
    key.sort();
    let q = |c: &String| sqlite_quote(c).map(|q| format!("quote({q})"));
    let all = cols
        .iter()
        .map(q)
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(" || ',' || ");
    let key = match key.is_empty() {
        true => "NULL".to_owned(),
        false => key
            .iter()
            .map(|(_, c)| q(c))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(" || ',' || "),
    };
    let sql = format!("SELECT {key}, {all} FROM {}", sqlite_quote(table)?);
    let found: Vec<(Option<String>, Option<String>)> = sqlx::query_as(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = Rows::default();
    for (k, text) in found {
        rows.push(
            k,
            Sha256::digest(text.unwrap_or_default().as_bytes()).into(),
        );
    }
    Ok(rows)
}

/// Every table of a prefix in a SQLite database, with its rows.
pub(crate) async fn sqlite_rows(
    path: &Path,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, Rows>> {
    let mut conn = open_sqlite(path).await?;
    let mut out = BTreeMap::new();
    for t in sqlite_tables(&mut conn, prefix).await? {
        let rows = sqlite_table_rows(&mut conn, &t).await?;
        out.insert(t, rows);
    }
    conn.close().await?;
    Ok(out)
}

/// One table's change, from its rows in the new live and in live now (none: missing).
pub(crate) fn table_change(table: &str, new: Option<&Rows>, old: Option<&Rows>) -> TableChange {
    let empty = Rows::default();
    let (added, removed, changed) = match (new, old) {
        (Some(n), Some(o)) => compare(n, o),
        (Some(n), None) => (n.len(), 0, 0),
        (None, Some(o)) => (0, o.len(), 0),
        (None, None) => compare(&empty, &empty),
    };
    TableChange {
        table: table.to_owned(),
        added,
        removed,
        changed,
        kept_from_live: 0,
    }
}

/// In the SQLite database `main`, the `tables` replaced by `other`'s (schema, indexes, rows).
pub(crate) async fn sqlite_replace_tables(
    main: &Path,
    other: &Path,
    tables: &[String],
) -> anyhow::Result<()> {
    let mut conn = open_sqlite(main).await?;
    sqlx::query("ATTACH DATABASE ? AS source")
        .bind(other.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await?;
    let mut tx = conn.begin().await?;
    for t in tables {
        let q = sqlite_quote(t)?;
        let sqls: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT type, sql FROM source.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL \
             ORDER BY type = 'table' DESC",
        )
        .bind(t)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS main.{q}")))
            .execute(&mut *tx)
            .await?;
        for (_, sql) in &sqls {
            if let Some(sql) = sql {
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if !sqls.is_empty() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO main.{q} SELECT * FROM source.{q}"
            )))
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    sqlx::query("DETACH DATABASE source")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Copies into `main`'s `tables` the rows of `live`'s same tables whose key `main` lacks, over
/// the columns both have. Returns how many per table.
pub(crate) async fn sqlite_insert_missing(
    main: &Path,
    live: &Path,
    tables: &[(String, String)],
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut conn = open_sqlite(main).await?;
    sqlx::query("ATTACH DATABASE ? AS live")
        .bind(live.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await?;
    let mut out = Vec::new();
    for (t, selected) in tables {
        let q = sqlite_quote(t)?;
        let cols = |schema: &str| {
            format!(
                "SELECT name FROM pragma_table_info({}, '{schema}')",
                sqlite_literal(t)
            )
        };
        let a: Vec<String> = sqlx::query_scalar(AssertSqlSafe(cols("main")))
            .fetch_all(&mut conn)
            .await?;
        let b: Vec<String> = sqlx::query_scalar(AssertSqlSafe(cols("live")))
            .fetch_all(&mut conn)
            .await?;
        let both = a
            .iter()
            .filter(|c| b.contains(c))
            .map(|c| sqlite_quote(c))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(", ");
        if both.is_empty() {
            continue;
        }
        let done = sqlx::query(AssertSqlSafe(format!(
            "INSERT OR IGNORE INTO main.{q} ({both}) SELECT {both} FROM live.{q} WHERE {selected}"
        )))
        .execute(&mut conn)
        .await?;
        out.push((t.clone(), done.rows_affected()));
    }
    sqlx::query("DETACH DATABASE live")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(out)
}

fn sqlite_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A site's SQLite database held quiet (`BEGIN EXCLUSIVE`, through a pinned path that shares
/// WordPress's locks) while its tree is exchanged: no WordPress request is halfway through a
/// write whose rollback journal, found by its path, would then be in the other tree.
pub(crate) struct Quiet {
    conn: SqliteConnection,
    pin: confined::PinnedFile,
}

impl Quiet {
    /// None when the database cannot be held (there is none yet): the exchange goes on.
    pub async fn hold(docroot: &Path, file: &Path) -> Option<Quiet> {
        let (d, f) = (docroot.to_owned(), file.to_owned());
        let pin = blocking(move || confined::PinnedFile::new(&d, &f))
            .await
            .ok()?;
        let mut conn = open_sqlite(pin.path()).await.ok()?;
        match sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await {
            Ok(_) => Some(Quiet { conn, pin }),
            Err(e) => {
                tracing::warn!(error = %e, "holding live's SQLite database failed");
                None
            }
        }
    }

    pub async fn release(mut self) {
        let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
        let pin = self.pin;
        let _ = blocking(move || {
            drop(pin);
            Ok(())
        })
        .await;
    }
}

/// A file of a tree as a preview compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub size: u64,
    pub mtime: i64,
    /// A link's target (links are compared by where they point, never followed).
    pub link: Option<Vec<u8>>,
}

/// The files of a tree (environment-specific ones left out), walked without following a
/// link.
pub(crate) fn listing(root: &Path) -> anyhow::Result<BTreeMap<PathBuf, FileInfo>> {
    fn walk(
        dir: &Root,
        rel: &Path,
        depth: usize,
        out: &mut BTreeMap<PathBuf, FileInfo>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(depth < 128, "the tree is too deep");
        for name in confined::names(dir)? {
            let rel = rel.join(confined::os(&name));
            if tree::is_environment_specific(&rel) {
                continue;
            }
            match confined::open_entry(dir, &name)? {
                Entry::Dir(sub, _) => walk(&sub, &rel, depth + 1, out)?,
                Entry::File(_, meta) => {
                    use std::os::unix::fs::MetadataExt;
                    out.insert(
                        rel,
                        FileInfo {
                            size: meta.len(),
                            mtime: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                            link: None,
                        },
                    );
                }
                Entry::Link(target) => {
                    out.insert(
                        rel,
                        FileInfo {
                            size: target.as_bytes().len() as u64,
                            mtime: 0,
                            link: Some(target.into_bytes()),
                        },
                    );
                }
                Entry::Other | Entry::Gone => {}
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    let dir = Root::open(root).map_err(|e| anyhow::anyhow!("opening {}: {e}", root.display()))?;
    walk(&dir, Path::new(""), 0, &mut out)?;
    Ok(out)
}

fn same_content(a: &Path, b: &Path, rel: &Path) -> bool {
    let hash = |root: &Path| -> Option<String> {
        let mut f = Root::open(root).ok()?.open_file(rel).ok()?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h).ok()?;
        Some(hex::encode(h.finalize()))
    };
    matches!((hash(a), hash(b)), (Some(x), Some(y)) if x == y)
}

/// The files of the new tree against live's: by name, then size, then content.
pub(crate) fn files_change(live: &Path, new: &Path) -> anyhow::Result<FilesChange> {
    let (old, now) = (listing(live)?, listing(new)?);
    let mut out = FilesChange::default();
    let list = |out: &mut FilesChange, path: &Path, change: &str, bytes: u64| {
        if out.list.len() < FILES_LISTED {
            out.list.push(FileChange {
                path: path.to_string_lossy().into_owned(),
                change: change.to_owned(),
                bytes,
            });
        }
    };
    for (path, info) in &now {
        match old.get(path) {
            None => {
                out.added += 1;
                out.bytes_added += info.size;
                list(&mut out, path, "added", info.size);
            }
            Some(o) => {
                let differs = o.link != info.link
                    || o.size != info.size
                    || (info.link.is_none() && !same_content(live, new, path));
                if differs {
                    out.changed += 1;
                    out.bytes_changed += info.size;
                    list(&mut out, path, "changed", info.size);
                }
            }
        }
    }
    for (path, info) in &old {
        if !now.contains_key(path) {
            out.removed += 1;
            out.bytes_removed += info.size;
            list(&mut out, path, "removed", info.size);
        }
    }
    Ok(out)
}

/// A hash of live's state: its tables' checksums (MariaDB) or rows (SQLite) and its tree's
/// names, sizes and modification times. It differs when live changed.
pub(crate) async fn fingerprint(
    docroot: &Path,
    prefix: &str,
    db: &crate::db::SiteDb,
) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    match db {
        crate::db::SiteDb::Mysql(db) => {
            let tables = db.tables(prefix).await?;
            if !tables.is_empty() {
                let list = tables
                    .iter()
                    .map(|t| quote(t))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .join(", ");
                let mut conn = db.conn().await?;
                let sums: Vec<(String, Option<u64>)> = conn
                    .query(format!("CHECKSUM TABLE {list}"))
                    .await
                    .context("checksumming live's tables")?;
                for (t, sum) in sums {
                    h.update(format!("{t}\t{sum:?}\n").as_bytes());
                }
            }
        }
        crate::db::SiteDb::Sqlite(file) => {
            let (d, f) = (docroot.to_owned(), file.clone());
            let pin = blocking(move || confined::PinnedFile::new(&d, &f)).await?;
            let rows = sqlite_rows(pin.path(), prefix).await;
            blocking(move || {
                drop(pin);
                Ok(())
            })
            .await?;
            for (t, rows) in rows? {
                let mut hashes: Vec<String> = rows
                    .by_key
                    .iter()
                    .map(|(k, v)| format!("{k}={}", hex::encode(v)))
                    .chain(
                        rows.counts
                            .iter()
                            .map(|(v, n)| format!("{}*{n}", hex::encode(v))),
                    )
                    .collect();
                hashes.sort();
                h.update(format!("{t}\t{}\n", hashes.join(";")).as_bytes());
            }
        }
    }
    let docroot = docroot.to_owned();
    let files = blocking(move || listing(&docroot)).await?;
    for (path, info) in files {
        h.update(format!("{}\t{}\t{}\n", path.display(), info.size, info.mtime).as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> [u8; 32] {
        Sha256::digest(s.as_bytes()).into()
    }

    #[test]
    fn rows_with_a_key_are_added_removed_or_changed_by_key() {
        let mut old = Rows::default();
        old.push(Some("1".into()), h("a"));
        old.push(Some("2".into()), h("b"));
        old.push(Some("3".into()), h("c"));
        let mut new = Rows::default();
        new.push(Some("1".into()), h("a"));
        new.push(Some("2".into()), h("B"));
        new.push(Some("4".into()), h("d"));
        new.push(Some("5".into()), h("e"));
        assert_eq!(compare(&new, &old), (2, 1, 1));
        assert_eq!(compare(&old, &old), (0, 0, 0));
    }

    #[test]
    fn rows_without_a_key_compare_as_a_multiset() {
        let mut old = Rows::default();
        old.push(None, h("a"));
        old.push(None, h("a"));
        old.push(None, h("b"));
        let mut new = Rows::default();
        new.push(None, h("a"));
        new.push(None, h("c"));
        new.push(None, h("c"));
        // One "a" and the "b" went; two "c" came.
        assert_eq!(compare(&new, &old), (2, 2, 0));
        let t = table_change("wp_log", None, Some(&old));
        assert_eq!((t.added, t.removed, t.changed), (0, 3, 0));
    }

    #[test]
    fn files_are_compared_by_name_size_and_content_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (live, new) = (dir.path().join("live"), dir.path().join("new"));
        for d in [&live, &new] {
            std::fs::create_dir_all(d.join("wp-content/themes/shop")).unwrap();
            std::fs::write(d.join("wp-config.php"), "differs on purpose").unwrap();
            std::fs::write(d.join("index.php"), "same").unwrap();
        }
        std::fs::write(live.join("wp-content/themes/shop/style.css"), "red").unwrap();
        std::fs::write(new.join("wp-content/themes/shop/style.css"), "blu").unwrap();
        std::fs::write(live.join("old.txt"), "gone").unwrap();
        std::fs::write(new.join("new.txt"), "hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", new.join("link")).unwrap();
        let c = files_change(&live, &new).unwrap();
        assert_eq!((c.added, c.changed, c.removed), (2, 1, 1));
        assert_eq!(c.bytes_added, 5 + "/etc/passwd".len() as u64);
        assert_eq!(c.bytes_removed, 4);
        assert!(
            c.list
                .iter()
                .any(|f| f.path == "wp-content/themes/shop/style.css" && f.change == "changed")
        );
        assert!(!c.list.iter().any(|f| f.path == "wp-config.php"));
    }
}
