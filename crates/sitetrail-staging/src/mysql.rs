//! WordPress databases on MariaDB/MySQL: listing a site's tables, reading them as rows of
//! bytes (the text protocol, so zero dates and any charset pass through untouched), writing
//! them into new tables, and switching table sets with one atomic `RENAME TABLE`.

use anyhow::Context;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, Row, Value};

use crate::wpconfig::{DbHost, WpConfig};

/// One cell: NULL or the bytes MySQL sent.
pub type Cell = Option<Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    /// Text columns are where URLs live; they are the only ones rewritten.
    pub textual: bool,
}

/// A table's definition: its name, its `CREATE TABLE` and its columns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableDef {
    pub name: String,
    pub create: String,
    pub columns: Vec<Column>,
}

pub struct MysqlDb {
    pool: Pool,
    pub name: String,
}

impl std::fmt::Debug for MysqlDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MysqlDb({})", self.name)
    }
}

pub fn opts(config: &WpConfig, db: Option<&str>) -> OptsBuilder {
    let base = OptsBuilder::default()
        .user(Some(config.user.clone()))
        .pass(Some(config.password.clone()))
        .db_name(db.map(str::to_owned))
        .prefer_socket(false)
        .init(vec![
            "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
            "SET NAMES utf8mb4",
        ]);
    match &config.host {
        DbHost::Tcp { host, port } => base.ip_or_hostname(host.clone()).tcp_port(*port),
        DbHost::Socket(path) => base.socket(Some(path.to_string_lossy().into_owned())),
    }
}

/// A name MySQL can quote with backticks safely.
pub fn quote(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 64 && !name.contains(['`', '\0']),
        "unsafe identifier {name:?}"
    );
    Ok(format!("`{name}`"))
}

fn is_textual(column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    ["char", "text", "enum", "set", "json"]
        .iter()
        .any(|k| t.contains(k))
        && !t.contains("binary")
}

impl MysqlDb {
    pub async fn connect(config: &WpConfig) -> anyhow::Result<Self> {
        let pool = Pool::new(opts(config, Some(&config.name)));
        let mut conn = pool
            .get_conn()
            .await
            .with_context(|| format!("connecting to the database {}", config.name))?;
        conn.ping().await?;
        Ok(MysqlDb {
            pool,
            name: config.name.clone(),
        })
    }

    pub async fn conn(&self) -> anyhow::Result<Conn> {
        self.pool
            .get_conn()
            .await
            .with_context(|| format!("connecting to the database {}", self.name))
    }

    /// The tables whose names start with `prefix`, sorted.
    pub async fn tables(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let all: Vec<String> = conn
            .exec("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", (self.name.clone(),))
            .await
            .context("listing tables")?;
        let mut mine: Vec<String> = all.into_iter().filter(|t| t.starts_with(prefix)).collect();
        mine.sort();
        Ok(mine)
    }

    pub async fn table_def(&self, table: &str) -> anyhow::Result<TableDef> {
        let mut conn = self.conn().await?;
        let row: Option<(String, String)> = conn
            .query_first(format!("SHOW CREATE TABLE {}", quote(table)?))
            .await
            .with_context(|| format!("reading the definition of {table}"))?;
        let (_, create) = row.with_context(|| format!("no table {table}"))?;
        let cols: Vec<(String, String)> = conn
            .exec(
                "SELECT column_name, column_type FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                (self.name.clone(), table.to_owned()),
            )
            .await?;
        Ok(TableDef {
            name: table.to_owned(),
            create,
            columns: cols
                .into_iter()
                .map(|(name, ty)| Column {
                    textual: is_textual(&ty),
                    name,
                })
                .collect(),
        })
    }

    /// Reads a table in batches of rows, in the order of its columns. A task reads ahead
    /// while the caller writes.
    pub async fn read_rows(
        &self,
        def: &TableDef,
        batch: usize,
    ) -> anyhow::Result<tokio::sync::mpsc::Receiver<anyhow::Result<Vec<Vec<Cell>>>>> {
        let mut conn = self.conn().await?;
        let cols = def
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(", ");
        let sql = format!("SELECT {cols} FROM {}", quote(&def.name)?);
        let table = def.name.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let read = async {
                let mut result = conn
                    .query_iter(sql)
                    .await
                    .with_context(|| format!("reading {table}"))?;
                let mut rows = Vec::with_capacity(batch);
                if let Some(mut stream) = result.stream::<Row>().await? {
                    while let Some(row) = stream.next().await {
                        rows.push(row?.unwrap().into_iter().map(cell).collect::<Vec<_>>());
                        if rows.len() == batch
                            && tx.send(Ok(std::mem::take(&mut rows))).await.is_err()
                        {
                            return anyhow::Ok(());
                        }
                    }
                }
                if !rows.is_empty() {
                    let _ = tx.send(Ok(rows)).await;
                }
                anyhow::Ok(())
            };
            if let Err(e) = read.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    /// Creates `name` from a definition (its `CREATE TABLE` with the name changed).
    pub async fn create_like(&self, def: &TableDef, name: &str) -> anyhow::Result<()> {
        let rest = def
            .create
            .split_once('(')
            .map(|(_, rest)| rest)
            .context("an unexpected CREATE TABLE")?;
        let sql = format!("CREATE TABLE {} ({rest}", quote(name)?);
        let mut conn = self.conn().await?;
        conn.query_drop(format!("DROP TABLE IF EXISTS {}", quote(name)?))
            .await?;
        conn.query_drop(sql)
            .await
            .with_context(|| format!("creating {name}"))
    }

    /// Inserts rows with multi-row prepared statements.
    pub async fn insert_rows(
        &self,
        conn: &mut Conn,
        table: &str,
        def: &TableDef,
        rows: Vec<Vec<Cell>>,
    ) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let cols = def.columns.len();
        let names = def
            .columns
            .iter()
            .map(|c| quote(&c.name))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(", ");
        let one = format!("({})", vec!["?"; cols].join(", "));
        // Stay well inside the 65,535 placeholders and the packet size.
        let per = (60_000 / cols.max(1)).clamp(1, 500);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Cell>> = rows.by_ref().take(per).collect();
            let sql = format!(
                "INSERT INTO {} ({names}) VALUES {}",
                quote(table)?,
                vec![one.as_str(); chunk.len()].join(", ")
            );
            let params: Vec<Value> = chunk
                .into_iter()
                .flatten()
                .map(|c| c.map_or(Value::NULL, Value::Bytes))
                .collect();
            conn.exec_drop(sql, params)
                .await
                .with_context(|| format!("writing rows into {table}"))?;
        }
        Ok(())
    }

    /// Renames tables in one statement: all happen or none.
    pub async fn rename_all(&self, pairs: &[(String, String)]) -> anyhow::Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let list = pairs
            .iter()
            .map(|(a, b)| Ok(format!("{} TO {}", quote(a)?, quote(b)?)))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(", ");
        let mut conn = self.conn().await?;
        conn.query_drop(format!("RENAME TABLE {list}"))
            .await
            .context("switching the tables")
    }

    pub async fn drop_tables(&self, tables: &[String]) -> anyhow::Result<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let list = tables
            .iter()
            .map(|t| quote(t))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(", ");
        let mut conn = self.conn().await?;
        conn.query_drop(format!("DROP TABLE IF EXISTS {list}"))
            .await
            .context("dropping tables")
    }

    pub async fn disconnect(self) {
        let _ = self.pool.disconnect().await;
    }
}

fn cell(v: Value) -> Cell {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b),
        // The text protocol sends bytes; anything else is written back as its SQL text.
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// Creates a database if it is missing, with the given credentials or an admin connection.
pub async fn ensure_database(config: &WpConfig, admin: Option<&WpConfig>) -> anyhow::Result<()> {
    let create = format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        quote(&config.name)?
    );
    let own = async {
        let mut conn = Conn::new(opts(config, None)).await?;
        conn.query_drop(&create).await?;
        let _ = conn.disconnect().await;
        anyhow::Ok(())
    };
    match (own.await, admin) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(admin)) => {
            let mut conn = Conn::new(opts(admin, None))
                .await
                .context("connecting with the MySQL admin connection")?;
            conn.query_drop(&create).await?;
            let grant = format!(
                "GRANT ALL PRIVILEGES ON {}.* TO ?@?",
                quote(&config.name)?
            );
            let host = match &config.host {
                DbHost::Socket(_) => "localhost".to_owned(),
                DbHost::Tcp { host, .. } if host == "127.0.0.1" || host == "localhost" => "localhost".to_owned(),
                _ => "%".to_owned(),
            };
            conn.exec_drop(grant, (config.user.clone(), host)).await.context("granting the staging database to live's user")?;
            let _ = conn.disconnect().await;
            Ok(())
        }
        (Err(e), None) => Err(e).context(
            "creating the staging database with live's credentials failed; configure an admin connection (SITETRAIL_MYSQL_ADMIN_URL)",
        ),
    }
}
