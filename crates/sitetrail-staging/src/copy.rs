//! Moving a site's tables: from a database or a snapshot, into new tables of another
//! database or into a snapshot, rewriting URLs (serialization-aware) and table prefixes on
//! the way.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use php_serial::UrlRewrite;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::mysql::{Cell, MysqlDb, TableDef};

const BATCH: usize = 500;

/// What changes when rows move from one environment to another.
pub struct Rewrite {
    pub url: Option<UrlRewrite>,
    pub from_prefix: String,
    pub to_prefix: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbStats {
    pub tables: u64,
    pub rows: u64,
    pub rewritten_cells: u64,
}

enum KeyFix {
    /// `{prefix}options.option_name = '{prefix}user_roles'`
    UserRoles(usize),
    /// `{prefix}usermeta.meta_key` starting with the prefix (capabilities, user_level, ...)
    UsermetaKeys(usize),
}

pub(crate) struct TablePlan<'r> {
    rewrite: &'r Rewrite,
    textual: Vec<usize>,
    key_fix: Option<KeyFix>,
}

impl Rewrite {
    /// A table's name in the target: the same suffix after the target's prefix.
    pub fn table_name(&self, source: &str) -> String {
        let suffix = source.strip_prefix(&self.from_prefix).unwrap_or(source);
        format!("{}{suffix}", self.to_prefix)
    }

    pub(crate) fn plan_for(&self, def: &TableDef) -> TablePlan<'_> {
        self.plan(def)
    }

    fn plan(&self, def: &TableDef) -> TablePlan<'_> {
        let suffix = def
            .name
            .strip_prefix(&self.from_prefix)
            .unwrap_or(&def.name);
        let col = |name: &str| def.columns.iter().position(|c| c.name == name);
        let key_fix = if self.from_prefix == self.to_prefix {
            None
        } else {
            match suffix {
                "options" => col("option_name").map(KeyFix::UserRoles),
                "usermeta" => col("meta_key").map(KeyFix::UsermetaKeys),
                _ => None,
            }
        };
        TablePlan {
            rewrite: self,
            textual: def
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.textual)
                .map(|(i, _)| i)
                .collect(),
            key_fix,
        }
    }
}

impl TablePlan<'_> {
    /// Rewrites one row in place; returns how many cells changed.
    pub(crate) fn apply(&self, row: &mut [Cell]) -> u64 {
        let mut changed = 0;
        if let Some(url) = &self.rewrite.url {
            for &i in &self.textual {
                if let Some(Some(bytes)) = row.get(i)
                    && let Some(new) = url.apply(bytes)
                {
                    row[i] = Some(new);
                    changed += 1;
                }
            }
        }
        let from = self.rewrite.from_prefix.as_bytes();
        let to = self.rewrite.to_prefix.as_bytes();
        match self.key_fix {
            Some(KeyFix::UserRoles(i)) => {
                if let Some(Some(name)) = row.get(i)
                    && name.strip_prefix(from) == Some(&b"user_roles"[..])
                {
                    row[i] = Some([to, b"user_roles"].concat());
                    changed += 1;
                }
            }
            Some(KeyFix::UsermetaKeys(i)) => {
                if let Some(Some(key)) = row.get(i)
                    && let Some(rest) = key.strip_prefix(from)
                {
                    row[i] = Some([to, rest].concat());
                    changed += 1;
                }
            }
            None => {}
        }
        changed
    }
}

/// Copies every table of `prefix` from `source` into new tables of `target`, named
/// `{temp}{n}` (short, whatever the final name's length). Returns each new table with the
/// name it is to take, and what moved.
pub async fn copy_tables(
    source: &MysqlDb,
    target: &MysqlDb,
    rewrite: &Rewrite,
    temp: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<(Vec<(String, String)>, DbStats)> {
    let mut created = Vec::new();
    let mut stats = DbStats::default();
    let mut conn = target.conn().await?;
    for table in source.tables(&rewrite.from_prefix).await? {
        let def = source.table_def(&table).await?;
        let new = format!("{temp}{}", created.len());
        target.create_like(&def, &new).await?;
        created.push((new.clone(), rewrite.table_name(&table)));
        let plan = rewrite.plan(&def);
        stats.tables += 1;
        let mut batches = source.read_rows(&def, BATCH).await?;
        while let Some(rows) = batches.recv().await {
            let mut rows = rows?;
            for row in rows.iter_mut() {
                stats.rewritten_cells += plan.apply(row);
            }
            stats.rows += rows.len() as u64;
            progress(rows.len() as u64);
            target.insert_rows(&mut conn, &new, &def, rows).await?;
        }
    }
    Ok((created, stats))
}

fn encode_cell(c: &Cell) -> Value {
    match c {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => serde_json::json!({ "b64": STANDARD.encode(b) }),
        },
    }
}

fn decode_cell(v: Value) -> anyhow::Result<Cell> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.into_bytes()),
        Value::Object(m) => {
            let b = m
                .get("b64")
                .and_then(Value::as_str)
                .context("a cell of unknown form")?;
            Some(STANDARD.decode(b)?)
        }
        _ => anyhow::bail!("a cell of unknown form"),
    })
}

/// Writes every table of `prefix` into a snapshot's `database.jsonl`: a line with each
/// table's definition, then a line per row. Returns the file's SHA-256 and what it holds.
pub async fn dump(
    source: &MysqlDb,
    prefix: &str,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<(String, u64, DbStats)> {
    // A snapshot's database is private (0600), whatever the umask.
    let file = tokio::fs::File::from_std(sitetrail_store::private::create_new(out)?);
    let mut w = tokio::io::BufWriter::new(file);
    let mut hash = <sha2::Sha256 as sha2::Digest>::new();
    let mut bytes = 0u64;
    let mut stats = DbStats::default();
    for table in source.tables(prefix).await? {
        let def = source.table_def(&table).await?;
        let mut line = serde_json::to_vec(&serde_json::json!({ "table": def }))?;
        line.push(b'\n');
        sha2::Digest::update(&mut hash, &line);
        bytes += line.len() as u64;
        w.write_all(&line).await?;
        stats.tables += 1;
        let mut batches = source.read_rows(&def, BATCH).await?;
        while let Some(rows) = batches.recv().await {
            let rows = rows?;
            let mut chunk = Vec::new();
            for row in &rows {
                serde_json::to_writer(
                    &mut chunk,
                    &row.iter().map(encode_cell).collect::<Vec<_>>(),
                )?;
                chunk.push(b'\n');
            }
            sha2::Digest::update(&mut hash, &chunk);
            bytes += chunk.len() as u64;
            stats.rows += rows.len() as u64;
            progress(rows.len() as u64);
            w.write_all(&chunk).await?;
        }
    }
    w.flush().await?;
    w.into_inner().sync_all().await?;
    Ok((hex::encode(sha2::Digest::finalize(hash)), bytes, stats))
}

/// Loads a snapshot's `database.jsonl` into new tables of `target`.
pub async fn load(
    dump: &Path,
    target: &MysqlDb,
    rewrite: &Rewrite,
    temp: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<(Vec<(String, String)>, DbStats)> {
    let file = tokio::fs::File::open(dump)
        .await
        .with_context(|| format!("opening {}", dump.display()))?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let mut conn = target.conn().await?;
    let mut created = Vec::new();
    let mut stats = DbStats::default();
    let mut current: Option<(TableDef, String)> = None;
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    async fn flush(
        target: &MysqlDb,
        conn: &mut mysql_async::Conn,
        current: &Option<(TableDef, String)>,
        rows: &mut Vec<Vec<Cell>>,
    ) -> anyhow::Result<()> {
        if let Some((def, name)) = current {
            target
                .insert_rows(conn, name, def, std::mem::take(rows))
                .await?;
        }
        Ok(())
    }
    while let Some(line) = lines.next_line().await? {
        let v: Value = serde_json::from_str(&line).context("a damaged database dump")?;
        match v {
            Value::Object(mut m) if m.contains_key("table") => {
                flush(target, &mut conn, &current, &mut rows).await?;
                let def: TableDef = serde_json::from_value(m.remove("table").expect("checked"))?;
                let name = format!("{temp}{}", created.len());
                target.create_like(&def, &name).await?;
                created.push((name.clone(), rewrite.table_name(&def.name)));
                stats.tables += 1;
                current = Some((def, name));
            }
            Value::Array(cells) => {
                let (def, _) = current
                    .as_ref()
                    .context("a row before any table in the dump")?;
                anyhow::ensure!(
                    cells.len() == def.columns.len(),
                    "a row of the wrong width in the dump"
                );
                let mut row = cells
                    .into_iter()
                    .map(decode_cell)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                stats.rewritten_cells += rewrite.plan(def).apply(&mut row);
                rows.push(row);
                stats.rows += 1;
                if rows.len() == BATCH {
                    progress(BATCH as u64);
                    flush(target, &mut conn, &current, &mut rows).await?;
                }
            }
            _ => anyhow::bail!("a damaged database dump"),
        }
    }
    progress(rows.len() as u64);
    flush(target, &mut conn, &current, &mut rows).await?;
    Ok((created, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::Column;

    fn def(name: &str, cols: &[(&str, bool)]) -> TableDef {
        TableDef {
            name: name.into(),
            create: String::new(),
            columns: cols
                .iter()
                .map(|(n, t)| Column {
                    name: (*n).into(),
                    textual: *t,
                })
                .collect(),
        }
    }

    fn rewrite() -> Rewrite {
        Rewrite {
            url: Some(UrlRewrite::new("http://127.0.0.1:8082", "https://shop.example").unwrap()),
            from_prefix: "stg_".into(),
            to_prefix: "wp_".into(),
        }
    }

    #[test]
    fn user_roles_and_prefixed_usermeta_keys_follow_the_prefix() {
        let r = rewrite();
        assert_eq!(r.table_name("stg_usermeta"), "wp_usermeta");
        let options = def(
            "stg_options",
            &[
                ("option_id", false),
                ("option_name", true),
                ("option_value", true),
            ],
        );
        let mut roles = vec![
            Some(b"7".to_vec()),
            Some(b"stg_user_roles".to_vec()),
            Some(b"a:0:{}".to_vec()),
        ];
        r.plan(&options).apply(&mut roles);
        assert_eq!(roles[1].as_deref(), Some(&b"wp_user_roles"[..]));
        // Core options that merely begin with the prefix's letters stay as they are.
        let mut other = vec![
            Some(b"8".to_vec()),
            Some(b"stg_force_deactivated_plugins".to_vec()),
            None,
        ];
        r.plan(&options).apply(&mut other);
        assert_eq!(
            other[1].as_deref(),
            Some(&b"stg_force_deactivated_plugins"[..])
        );
        let usermeta = def(
            "stg_usermeta",
            &[
                ("umeta_id", false),
                ("user_id", false),
                ("meta_key", true),
                ("meta_value", true),
            ],
        );
        let mut caps = vec![
            Some(b"1".to_vec()),
            Some(b"1".to_vec()),
            Some(b"stg_capabilities".to_vec()),
            Some(b"a:1:{s:13:\"administrator\";b:1;}".to_vec()),
        ];
        r.plan(&usermeta).apply(&mut caps);
        assert_eq!(caps[2].as_deref(), Some(&b"wp_capabilities"[..]));
    }

    #[test]
    fn urls_are_rewritten_in_text_columns_only_with_lengths_fixed() {
        let r = rewrite();
        let t = def(
            "stg_options",
            &[
                ("option_id", false),
                ("option_name", true),
                ("option_value", true),
            ],
        );
        let mut row = vec![
            Some(b"http://127.0.0.1:8082".to_vec()),
            Some(b"home".to_vec()),
            Some(br#"a:1:{s:3:"url";s:21:"http://127.0.0.1:8082";}"#.to_vec()),
        ];
        assert_eq!(r.plan(&t).apply(&mut row), 1);
        assert_eq!(
            row[0].as_deref(),
            Some(&b"http://127.0.0.1:8082"[..]),
            "not a text column"
        );
        assert_eq!(
            row[2].as_deref(),
            Some(&br#"a:1:{s:3:"url";s:20:"https://shop.example";}"#[..])
        );
    }

    #[test]
    fn cells_round_trip_through_the_dump_encoding() {
        for cell in [
            None,
            Some(b"plain".to_vec()),
            Some(vec![0xff, 0x00, 0x80]),
            Some("é".as_bytes().to_vec()),
        ] {
            assert_eq!(decode_cell(encode_cell(&cell)).unwrap(), cell);
        }
    }
}
