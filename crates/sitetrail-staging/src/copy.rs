//! Moving a site's tables: from a database or a snapshot, into new tables of another
//! database or into a snapshot, rewriting URLs (serialization-aware) and table prefixes on
//! the way.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use php_serial::UrlRewrite;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::mysql::{Cell, Limit, MysqlDb, TableDef};
use crate::push::SkippedCell;
use crate::schema::{self, Extras, TriggerDef, ViewDef};

const BATCH: usize = 500;

/// What changes when rows move from one environment to another.
pub struct Rewrite {
    pub url: Option<UrlRewrite>,
    pub from_prefix: String,
    pub to_prefix: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbStats {
    pub tables: u64,
    pub rows: u64,
    pub rewritten_cells: u64,
    /// Cells left as they were because their column cannot take the rewritten value (the
    /// first [`SKIPPED_LISTED`]), as WP-CLI's search-replace does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_cells: Vec<SkippedCell>,
    /// How many cells were left so, listed or not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_cells_total: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many skipped cells a copy's details name one by one.
pub const SKIPPED_LISTED: usize = 100;

impl DbStats {
    fn skip(&mut self, cell: SkippedCell) {
        self.skipped_cells_total += 1;
        if self.skipped_cells.len() < SKIPPED_LISTED {
            self.skipped_cells.push(cell);
        }
    }
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
    /// The table's name in the target and its columns, for the cells a rewrite cannot go
    /// into.
    table: String,
    def: Option<&'r TableDef>,
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

    /// A plan that checks each rewritten value against its column's length (the target's
    /// table, `def`) and leaves a value that does not fit as it was.
    fn checked_plan<'a>(&'a self, def: &'a TableDef) -> TablePlan<'a> {
        TablePlan {
            def: Some(def),
            table: self.table_name(&def.name),
            ..self.plan(def)
        }
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
                .filter(|(_, c)| c.textual && !c.generated)
                .map(|(i, _)| i)
                .collect(),
            key_fix,
            table: String::new(),
            def: None,
        }
    }
}

impl TablePlan<'_> {
    /// Rewrites one row in place; returns how many cells changed.
    pub(crate) fn apply(&self, row: &mut [Cell]) -> u64 {
        self.apply_checked(row, &mut DbStats::default())
    }

    /// Whether column `i` takes `value`; when not, the cell is reported in `stats`.
    fn fits(&self, row: &[Cell], i: usize, value: &[u8], stats: &mut DbStats) -> bool {
        let Some(def) = self.def else {
            return true;
        };
        let Some(limit) = def.columns.get(i).and_then(|c| c.limit) else {
            return true;
        };
        if limit.fits(value) {
            return true;
        }
        let key = def
            .columns
            .iter()
            .zip(row)
            .filter(|(c, _)| c.key)
            .map(|(c, v)| {
                let v = v.as_deref().map_or("NULL".into(), String::from_utf8_lossy);
                format!("{}={}", c.name, v.chars().take(100).collect::<String>())
            })
            .collect::<Vec<_>>()
            .join(",");
        let reason = match limit {
            Limit::Chars(n) => format!(
                "the column holds at most {n} characters and the value with the new address would be longer; it was left as it was"
            ),
            Limit::Bytes(n) => format!(
                "the column holds at most {n} bytes and the value with the new address would be longer; it was left as it was"
            ),
        };
        stats.skip(SkippedCell {
            table: self.table.clone(),
            column: def.columns[i].name.clone(),
            key,
            reason,
        });
        false
    }

    /// Rewrites one row in place, leaving a cell whose column cannot take its new value as
    /// it was (reported in `stats`); returns how many cells changed.
    fn apply_checked(&self, row: &mut [Cell], stats: &mut DbStats) -> u64 {
        let mut changed = 0;
        if let Some(url) = &self.rewrite.url {
            for &i in &self.textual {
                if let Some(Some(bytes)) = row.get(i)
                    && let Some(new) = url.apply(bytes)
                    && self.fits(row, i, &new, stats)
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
                    let new = [to, b"user_roles"].concat();
                    if self.fits(row, i, &new, stats) {
                        row[i] = Some(new);
                        changed += 1;
                    }
                }
            }
            Some(KeyFix::UsermetaKeys(i)) => {
                if let Some(Some(key)) = row.get(i)
                    && let Some(rest) = key.strip_prefix(from)
                {
                    let new = [to, rest].concat();
                    if self.fits(row, i, &new, stats) {
                        row[i] = Some(new);
                        changed += 1;
                    }
                }
            }
            None => {}
        }
        changed
    }
}

/// Makes `def`'s table aside in `target` ([`schema::create_aside`]): returns its name and its
/// definition there (its columns as the target has them: their lengths, generated ones).
async fn create_aside(
    target: &MysqlDb,
    def: TableDef,
    rewrite: &Rewrite,
    temp: &str,
) -> anyhow::Result<(String, TableDef)> {
    let new = schema::temp_table(temp, &rewrite.table_name(&def.name));
    target
        .create_as(&new, schema::create_aside(&def, rewrite, temp)?)
        .await?;
    let columns = target.columns(&new).await?;
    anyhow::ensure!(
        columns.len() == def.columns.len()
            && columns
                .iter()
                .zip(&def.columns)
                .all(|(a, b)| a.name == b.name),
        "the copy of {} has other columns than its source",
        def.name
    );
    Ok((new, TableDef { columns, ..def }))
}

/// Copies every table of `prefix` from `source` into new tables of `target`, named
/// [`schema::temp_table`], with their views and triggers ([`schema`]). Returns each new
/// table with the name it is to take, and what moved.
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
    let tables = source.tables(&rewrite.from_prefix).await?;
    for table in &tables {
        let def = source.table_def(table).await?;
        let (new, target_def) = create_aside(target, def.clone(), rewrite, temp).await?;
        created.push((new.clone(), rewrite.table_name(table)));
        let plan = rewrite.checked_plan(&target_def);
        stats.tables += 1;
        let mut batches = source.read_rows(&def, BATCH).await?;
        while let Some(rows) = batches.recv().await {
            let mut rows = rows?;
            for row in rows.iter_mut() {
                let changed = plan.apply_checked(row, &mut stats);
                stats.rewritten_cells += changed;
            }
            stats.rows += rows.len() as u64;
            progress(rows.len() as u64);
            target
                .insert_rows(&mut conn, &new, &target_def, rows)
                .await?;
        }
    }
    let extras = source.extras(&rewrite.from_prefix).await?;
    let mut sources: HashSet<String> = tables.into_iter().collect();
    sources.extend(extras.views.iter().map(|v| v.name.clone()));
    schema::build_extras(target, &extras, rewrite, temp, &sources).await?;
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
/// table's definition, then a line per row; then a line per view (`{"view": ...}`) and per
/// trigger (`{"trigger": ...}`). Returns the file's SHA-256 and what it holds.
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
    // Views and triggers after the tables: a loader makes them once the rows are in.
    let extras = source.extras(prefix).await?;
    let lines = extras
        .views
        .iter()
        .map(|v| serde_json::json!({ "view": v }))
        .chain(
            extras
                .triggers
                .iter()
                .map(|t| serde_json::json!({ "trigger": t })),
        );
    for line in lines {
        let mut line = serde_json::to_vec(&line)?;
        line.push(b'\n');
        sha2::Digest::update(&mut hash, &line);
        bytes += line.len() as u64;
        w.write_all(&line).await?;
    }
    w.flush().await?;
    w.into_inner().sync_all().await?;
    Ok((hex::encode(sha2::Digest::finalize(hash)), bytes, stats))
}

/// Loads a snapshot's `database.jsonl` into new tables of `target`, with its views and
/// triggers (a dump from before they were kept has none).
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
    let mut extras = Extras::default();
    let mut sources = HashSet::new();
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
                sources.insert(def.name.clone());
                let (name, def) = create_aside(target, def, rewrite, temp).await?;
                created.push((name.clone(), rewrite.table_name(&def.name)));
                stats.tables += 1;
                current = Some((def, name));
            }
            Value::Object(mut m) if m.contains_key("view") => {
                let view: ViewDef = serde_json::from_value(m.remove("view").expect("checked"))?;
                sources.insert(view.name.clone());
                extras.views.push(view);
            }
            Value::Object(mut m) if m.contains_key("trigger") => {
                let trigger: TriggerDef =
                    serde_json::from_value(m.remove("trigger").expect("checked"))?;
                extras.triggers.push(trigger);
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
                let changed = rewrite
                    .checked_plan(def)
                    .apply_checked(&mut row, &mut stats);
                stats.rewritten_cells += changed;
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
    schema::build_extras(target, &extras, rewrite, temp, &sources).await?;
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
                .map(|(n, t)| {
                    Column::new(
                        (*n).into(),
                        if *t { "longtext" } else { "bigint" },
                        None,
                        None,
                        false,
                        false,
                    )
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
    fn a_value_too_long_for_its_column_is_left_as_it_was_and_reported() {
        let r = Rewrite {
            url: Some(UrlRewrite::new("http://127.0.0.1:8082", "http://127.0.0.1:18082").unwrap()),
            from_prefix: "wp_".into(),
            to_prefix: "stg_".into(),
        };
        let col = |n: &str, t: &str, chars, key| {
            Column::new(n.into(), t, chars, chars.map(|c| c * 4), false, key)
        };
        let t = TableDef {
            name: "wp_shapes".into(),
            create: String::new(),
            columns: vec![
                col("id", "int", None, true),
                col("short", "varchar", Some(21), false),
                col("long", "varchar", Some(200), false),
                Column {
                    generated: true,
                    ..col("upper", "varchar", Some(200), false)
                },
            ],
        };
        let u = "http://127.0.0.1:8082";
        let mut row = vec![
            Some(b"7".to_vec()),
            Some(u.as_bytes().to_vec()),
            Some(u.as_bytes().to_vec()),
            Some(u.as_bytes().to_vec()),
        ];
        let mut stats = DbStats::default();
        assert_eq!(r.checked_plan(&t).apply_checked(&mut row, &mut stats), 1);
        assert_eq!(row[1].as_deref(), Some(u.as_bytes()), "left as it was");
        assert_eq!(row[2].as_deref(), Some(&b"http://127.0.0.1:18082"[..]));
        assert_eq!(
            row[3].as_deref(),
            Some(u.as_bytes()),
            "generated: never written"
        );
        assert_eq!(stats.skipped_cells_total, 1);
        let cell = stats.skipped_cells[0].clone();
        assert_eq!(
            (cell.table.as_str(), cell.column.as_str(), cell.key.as_str()),
            ("stg_shapes", "short", "id=7")
        );
        for _ in 0..150 {
            stats.skip(cell.clone());
        }
        assert_eq!(stats.skipped_cells.len(), SKIPPED_LISTED);
        assert_eq!(stats.skipped_cells_total, 151);
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
