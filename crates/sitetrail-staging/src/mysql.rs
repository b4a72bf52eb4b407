//! WordPress databases on MariaDB/MySQL: listing a site's tables, reading them as rows of
//! bytes (the text protocol, so zero dates and any charset pass through untouched), writing
//! them into new tables, and switching table sets with one atomic `RENAME TABLE`.

use anyhow::Context;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, Row, Value};

use crate::policy::{self, DatabasePolicy};
use crate::wpconfig::{DbHost, WpConfig};

/// One cell: NULL or the bytes MySQL sent.
pub type Cell = Option<Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    /// Text columns are where URLs live; they are the only ones rewritten (never an ENUM or
    /// a SET: a value outside their list cannot be written).
    pub textual: bool,
    /// Generated (`STORED` or `VIRTUAL`): made by its definition, never written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
    /// Part of the primary key: names a row in a report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
    /// How long a value a text column takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
}

pub use crate::schema::Limit;

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

/// A database step that failed, as people read it: what to do next, with no SQL and no
/// server detail. The driver's own words go to the server's log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DatabaseError(&'static str);

fn says(e: &mysql_async::Error) -> &'static str {
    use mysql_async::Error as E;
    match e {
        E::Server(s) => match s.code {
            1045 | 1698 => {
                "the database server refused the site's database user and password (DB_USER and DB_PASSWORD in wp-config.php); check them, or ask your host"
            }
            1044 | 1049 => {
                "the site's database user may not use the database wp-config.php names (DB_NAME), or it does not exist; check it, or ask your host"
            }
            1040 | 1203 | 1226 | 1205 | 1213 => {
                "the database server is busy; try again in a few minutes, or ask your host if it goes on"
            }
            1142 | 1143 | 1227 | 1370 => {
                "the site's database user lacks a right this operation needs; ask your host"
            }
            1021 | 1114 => "the database server is out of space; ask your host",
            _ => {
                "the database server refused a step of the operation; try again, or ask your host if it fails again"
            }
        },
        E::Io(_) | E::Driver(_) => {
            "the database server could not be reached or ended the connection; try again in a few minutes, or ask your host if it goes on"
        }
        _ => "the database connection failed; ask your host",
    }
}

/// Driver results: their errors become a sentence for people, the chain goes to the log.
pub(crate) trait ForPeople<T> {
    fn or_say(self, doing: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T> ForPeople<T> for Result<T, mysql_async::Error> {
    fn or_say(self, doing: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| {
            let doing = doing();
            tracing::warn!(error = %e, %doing, "a database step failed");
            anyhow::Error::new(DatabaseError(says(&e))).context(doing)
        })
    }
}

fn opts(config: &WpConfig, db: Option<&str>, setup: Vec<String>) -> OptsBuilder {
    let base = OptsBuilder::default()
        .user(Some(config.user.clone()))
        .pass(Some(config.password.clone()))
        .db_name(db.map(str::to_owned))
        .prefer_socket(false)
        .setup(setup);
    match &config.host {
        DbHost::Tcp { host, port } => base.ip_or_hostname(host.clone()).tcp_port(*port),
        DbHost::Socket(path) => base.socket(Some(path.to_string_lossy().into_owned())),
    }
}

fn is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// The server's `sql_mode` as a list of plain mode names (anything else is dropped, so the
/// list can be written into a statement).
fn modes(server: &str) -> Vec<String> {
    server
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect()
}

fn with(mut modes: Vec<String>, add: &[&str]) -> String {
    for m in add {
        if !modes.iter().any(|x| x == m) {
            modes.push((*m).to_owned());
        }
    }
    modes.join(",")
}

/// A site's session: the server's mode, strict, with what a faithful copy needs added
/// (`NO_AUTO_VALUE_ON_ZERO`: a 0 in an AUTO_INCREMENT column stays 0) and what would change
/// the copy taken out (WordPress's zero dates; padded CHARs; `SHOW CREATE TABLE` without
/// its options; the combination modes that bring those back). On MariaDB,
/// `NO_AUTO_CREATE_USER` is always in it.
pub fn session_sql_mode(server: &str, mariadb: bool) -> String {
    const CHANGE_THE_COPY: [&str; 15] = [
        "NO_ZERO_DATE",
        "NO_ZERO_IN_DATE",
        "PAD_CHAR_TO_FULL_LENGTH",
        "NO_KEY_OPTIONS",
        "NO_TABLE_OPTIONS",
        "NO_FIELD_OPTIONS",
        "TRADITIONAL",
        "ANSI",
        "DB2",
        "MAXDB",
        "MSSQL",
        "ORACLE",
        "POSTGRESQL",
        "MYSQL323",
        "MYSQL40",
    ];
    let mut kept: Vec<String> = modes(server)
        .into_iter()
        .filter(|m| !CHANGE_THE_COPY.contains(&m.as_str()))
        .collect();
    if !kept
        .iter()
        .any(|m| m == "STRICT_TRANS_TABLES" || m == "STRICT_ALL_TABLES")
    {
        kept.push("STRICT_TRANS_TABLES".into());
    }
    let mut add = vec!["NO_AUTO_VALUE_ON_ZERO"];
    if mariadb {
        add.push("NO_AUTO_CREATE_USER");
    }
    with(kept, &add)
}

/// The admin connection's session: the server's mode, never the copy's, with
/// `NO_AUTO_CREATE_USER` on MariaDB (a GRANT never makes an account) and backslashes
/// escaping in string literals (as [`string_literal`] writes them).
pub fn admin_sql_mode(server: &str, mariadb: bool) -> String {
    let kept: Vec<String> = modes(server)
        .into_iter()
        .filter(|m| m != "NO_BACKSLASH_ESCAPES")
        .collect();
    with(
        kept,
        if mariadb {
            &["NO_AUTO_CREATE_USER"]
        } else {
            &[]
        },
    )
}

/// The server's `sql_mode` and whether it is MariaDB.
async fn server_mode(
    conn: &mut Conn,
    doing: &(dyn Fn() -> String + Sync),
) -> anyhow::Result<(String, bool)> {
    let (mode, version): (String, String) = conn
        .query_first("SELECT @@SESSION.sql_mode, VERSION()")
        .await
        .or_say(doing)?
        .context("the database server did not say its version")?;
    Ok((mode, is_mariadb(&version)))
}

/// A name between backticks, a backtick in it doubled. Refused only what cannot be a
/// MariaDB name: empty, with a NUL, or longer than 64 characters.
pub fn quote(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 64 && !name.contains('\0'),
        "not a database name: {name:?}"
    );
    Ok(crate::schema::quoted(name))
}

impl MysqlDb {
    /// Connects to a site's database, if the operator's policy allows its settings: a
    /// refused server is never contacted.
    pub async fn connect(config: &WpConfig, policy: &DatabasePolicy) -> anyhow::Result<Self> {
        policy.check(config)?;
        let doing = || format!("connecting to the database {}", config.name);
        let mut first = Conn::new(opts(config, Some(&config.name), Vec::new()))
            .await
            .or_say(doing)?;
        let (mode, mariadb) = server_mode(&mut first, &doing).await?;
        let _ = first.disconnect().await;
        // `setup` runs again each time the pool resets a connection.
        let setup = vec![
            format!(
                "SET SESSION sql_mode = '{}'",
                session_sql_mode(&mode, mariadb)
            ),
            "SET NAMES utf8mb4".to_owned(),
            // Tables are built aside in any order, their foreign keys naming parents built
            // aside; rows are copied as they are.
            "SET SESSION foreign_key_checks = 0".to_owned(),
        ];
        let pool = Pool::new(opts(config, Some(&config.name), setup));
        let mut conn = pool.get_conn().await.or_say(doing)?;
        conn.ping().await.or_say(doing)?;
        Ok(MysqlDb {
            pool,
            name: config.name.clone(),
        })
    }

    pub async fn conn(&self) -> anyhow::Result<Conn> {
        self.pool
            .get_conn()
            .await
            .or_say(|| format!("connecting to the database {}", self.name))
    }

    /// The tables whose names start with `prefix`, sorted.
    pub async fn tables(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let all: Vec<String> = conn
            .exec("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", (self.name.clone(),))
            .await
            .or_say(|| "listing tables".into())?;
        let mut mine: Vec<String> = all.into_iter().filter(|t| t.starts_with(prefix)).collect();
        mine.sort();
        Ok(mine)
    }

    /// The server's clock, to the second (`2026-12-07 03:30:45`).
    pub async fn now(&self) -> anyhow::Result<String> {
        let mut conn = self.conn().await?;
        let now: Option<String> = conn
            .query_first("SELECT CAST(NOW() AS CHAR)")
            .await
            .or_say(|| "reading the server's clock".into())?;
        now.ok_or_else(|| anyhow::anyhow!("the server has no clock"))
    }

    /// Of `tables`, those written since `since` (the server's clock, as [`MysqlDb::now`]
    /// gives it) or whose last write the server does not know (it restarted since).
    pub async fn written_since(
        &self,
        tables: &[String],
        since: &str,
    ) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let written: Vec<String> = conn
            .exec(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? \
                 AND (update_time IS NULL OR update_time >= ?)",
                (self.name.clone(), since.to_owned()),
            )
            .await
            .or_say(|| "reading when tables were written".into())?;
        Ok(tables
            .iter()
            .filter(|t| written.contains(t))
            .cloned()
            .collect())
    }

    /// An option's value in a WordPress options table (none: no such option).
    pub async fn option(&self, table: &str, name: &str) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn().await?;
        conn.exec_first(
            format!(
                "SELECT option_value FROM {} WHERE option_name = ?",
                quote(table)?
            ),
            (name,),
        )
        .await
        .or_say(|| "reading an option".into())
    }

    /// Sets an existing option's value in a WordPress options table.
    pub async fn set_option(&self, table: &str, name: &str, value: &str) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        conn.exec_drop(
            format!(
                "UPDATE {} SET option_value = ? WHERE option_name = ?",
                quote(table)?
            ),
            (value, name),
        )
        .await
        .or_say(|| "setting an option".into())
    }

    /// How many rows the tables whose names start with `prefix` hold: the total a copy or a
    /// dump of them counts towards.
    pub async fn count_rows(&self, prefix: &str) -> anyhow::Result<u64> {
        let mut conn = self.conn().await?;
        let mut total = 0u64;
        for table in self.tables(prefix).await? {
            let n: Option<u64> = conn
                .query_first(format!("SELECT COUNT(*) FROM {}", quote(&table)?))
                .await
                .or_say(|| "counting rows".into())?;
            total += n.unwrap_or(0);
        }
        Ok(total)
    }

    /// What the tables whose names start with `prefix` take on disk: data and indexes.
    pub async fn size_bytes(&self, prefix: &str) -> anyhow::Result<u64> {
        let mut conn = self.conn().await?;
        let sizes: Vec<(String, Option<u64>)> = conn
            .exec("SELECT table_name, data_length + index_length FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", (self.name.clone(),))
            .await
            .or_say(|| "measuring tables".into())?;
        Ok(sizes
            .into_iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .filter_map(|(_, n)| n)
            .sum())
    }

    pub async fn table_def(&self, table: &str) -> anyhow::Result<TableDef> {
        let mut conn = self.conn().await?;
        let row: Option<(String, String)> = conn
            .query_first(format!("SHOW CREATE TABLE {}", quote(table)?))
            .await
            .or_say(|| format!("reading the definition of {table}"))?;
        let (_, create) = row.with_context(|| format!("no table {table}"))?;
        Ok(TableDef {
            name: table.to_owned(),
            create,
            columns: self.columns(table).await?,
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
                    .or_say(|| format!("reading {table}"))?;
                let mut rows = Vec::with_capacity(batch);
                if let Some(mut stream) = result
                    .stream::<Row>()
                    .await
                    .or_say(|| format!("reading {table}"))?
                {
                    while let Some(row) = stream.next().await {
                        let row = row.or_say(|| format!("reading {table}"))?;
                        rows.push(row.unwrap().into_iter().map(cell).collect::<Vec<_>>());
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

    /// Creates `name` with `create` (its `CREATE TABLE`, [`crate::schema::create_aside`]).
    pub async fn create_as(&self, name: &str, sql: String) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        conn.query_drop(format!("DROP TABLE IF EXISTS {}", quote(name)?))
            .await
            .or_say(|| format!("creating {name}"))?;
        conn.query_drop(sql)
            .await
            .or_say(|| format!("creating {name}"))
    }

    /// Inserts rows with multi-row prepared statements: every column but the generated ones.
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
        let written: Vec<usize> = (0..def.columns.len())
            .filter(|&i| !def.columns[i].generated)
            .collect();
        let cols = written.len();
        let names = written
            .iter()
            .map(|&i| quote(&def.columns[i].name))
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
                .flat_map(|mut row| {
                    written
                        .iter()
                        .map(|&i| std::mem::take(&mut row[i]).map_or(Value::NULL, Value::Bytes))
                        .collect::<Vec<_>>()
                })
                .collect();
            conn.exec_drop(sql, params)
                .await
                .or_say(|| format!("writing rows into {table}"))?;
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
            .or_say(|| "switching the tables".into())
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
            .or_say(|| "dropping tables".into())
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

/// A database name as a GRANT reads it: `_` and `%` are wildcards there, so they are
/// escaped, unless the server takes them literally (MySQL with `partial_revokes`).
pub fn grant_pattern(name: &str, literal_wildcards: bool) -> anyhow::Result<String> {
    anyhow::ensure!(policy::valid_name(name), "not a database name");
    if literal_wildcards {
        return quote(name);
    }
    quote(&name.replace('_', "\\_").replace('%', "\\%"))
}

/// A string literal for a session whose mode lets backslashes escape (the admin session's):
/// printable ASCII only, with `\` and `'` escaped.
pub fn string_literal(s: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        s.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "not a plain account name"
    );
    Ok(format!(
        "'{}'",
        s.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

/// Which server a connection reached: two connections that agree reached the same one.
async fn server_identity(
    conn: &mut Conn,
    doing: &(dyn Fn() -> String + Sync),
) -> anyhow::Result<String> {
    conn.query_first("SELECT CONCAT_WS(' ', @@hostname, @@port, @@datadir)")
        .await
        .or_say(doing)?
        .context("the database server did not say who it is")
}

const NO_ADMIN: &str = "live's database user may not create databases, so staging's could not be made; ask your host to create it or to set up sitetrail's database admin connection";
const ANOTHER_SERVER: &str = "the database admin connection reaches another database server than live's, so staging's database could not be made; ask your host";
const EXISTS: &str =
    "staging's database exists already and live's database user may not use it; ask your host";
const ACCOUNT: &str = "the database server knows live's database user under another account, so staging's database could not be given to it; ask your host";

/// Makes staging's database (`config.name`) on live's server for live's own account. Live's
/// user creates it when it may; else the operator's admin connection creates it and grants
/// it to the account the server names live's user (`CURRENT_USER()`), on that one database.
/// Nothing here creates an account, and a database that exists already is never granted.
pub async fn ensure_database(config: &WpConfig, policy: &DatabasePolicy) -> anyhow::Result<()> {
    policy.check(config)?;
    let name = quote(&config.name)?;
    let doing = || "connecting with live's database user".to_owned();
    let mut own = Conn::new(opts(config, None, Vec::new()))
        .await
        .or_say(doing)?;
    let created = own
        .query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
        .await;
    let result = match (created, policy.admin()) {
        (Ok(()), _) => Ok(()),
        (Err(e), None) => {
            tracing::warn!(error = %e, database = %config.name, "live's database user could not create staging's database and no admin connection is set");
            Err(DatabaseError(NO_ADMIN).into())
        }
        (Err(e), Some(admin)) => {
            tracing::info!(error = %e, database = %config.name, "creating staging's database with the admin connection");
            create_as_admin(&mut own, config, admin).await
        }
    };
    let _ = own.disconnect().await;
    result
}

async fn create_as_admin(
    own: &mut Conn,
    config: &WpConfig,
    admin: &WpConfig,
) -> anyhow::Result<()> {
    let live = || "reading live's database account".to_owned();
    let current: String = own
        .query_first("SELECT CURRENT_USER()")
        .await
        .or_say(live)?
        .ok_or(DatabaseError(ACCOUNT))?;
    let (user, host) = current.rsplit_once('@').ok_or(DatabaseError(ACCOUNT))?;
    if user != config.user {
        tracing::warn!(db_user = %config.user, account = %current, "live's database user logs in as another account");
        return Err(DatabaseError(ACCOUNT).into());
    }
    let account = format!("{}@{}", string_literal(user)?, string_literal(host)?);
    let live_server = server_identity(own, &live).await?;

    let doing = || "connecting with the database admin connection".to_owned();
    let mut conn = Conn::new(opts(admin, None, Vec::new()))
        .await
        .or_say(doing)?;
    let result = async {
        let (mode, mariadb) = server_mode(&mut conn, &doing).await?;
        conn.query_drop(format!(
            "SET SESSION sql_mode = '{}'",
            admin_sql_mode(&mode, mariadb)
        ))
        .await
        .or_say(doing)?;
        if server_identity(&mut conn, &doing).await? != live_server {
            tracing::warn!(database = %config.name, "the admin connection reaches another server than live's database");
            return Err(DatabaseError(ANOTHER_SERVER).into());
        }
        let literal_wildcards = !mariadb
            && conn
                .query_first::<String, _>("SELECT @@GLOBAL.partial_revokes")
                .await
                .ok()
                .flatten()
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("on"));
        let name = quote(&config.name)?;
        match conn
            .query_drop(format!(
                "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .await
        {
            Err(mysql_async::Error::Server(e)) if e.code == 1007 => {
                tracing::warn!(database = %config.name, "staging's database exists already; it is not granted");
                return Err(DatabaseError(EXISTS).into());
            }
            other => other.or_say(|| "creating staging's database".into())?,
        }
        let granted = async {
            conn.query_drop(format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {account}",
                grant_pattern(&config.name, literal_wildcards)?
            ))
            .await
            .or_say(|| "giving staging's database to live's database user".into())?;
            // Live's own account can use it.
            own.query_drop(format!("USE {name}"))
                .await
                .or_say(|| "opening staging's database as live's database user".into())
        }
        .await;
        if granted.is_err() {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await;
        }
        granted
    }
    .await;
    let _ = conn.disconnect().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: &str =
        "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION";
    const MYSQL8: &str = "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

    #[test]
    fn a_sites_session_adds_what_the_copy_needs_to_the_servers_mode() {
        assert_eq!(
            session_sql_mode(MARIADB, true),
            format!("{MARIADB},NO_AUTO_VALUE_ON_ZERO")
        );
        assert_eq!(
            session_sql_mode(MYSQL8, false),
            "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"
        );
        // A server configured loosely still gets strict sessions, and never auto-created
        // users on MariaDB.
        assert_eq!(
            session_sql_mode("", true),
            "STRICT_TRANS_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_AUTO_CREATE_USER"
        );
        assert_eq!(
            session_sql_mode("TRADITIONAL,NO_ZERO_DATE,PAD_CHAR_TO_FULL_LENGTH", false),
            "STRICT_TRANS_TABLES,NO_AUTO_VALUE_ON_ZERO"
        );
        assert_eq!(
            session_sql_mode("STRICT_ALL_TABLES,x'; DROP,no_auto_value_on_zero", true),
            "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_AUTO_CREATE_USER"
        );
    }

    #[test]
    fn the_admin_session_keeps_the_servers_mode_and_never_creates_users() {
        assert_eq!(admin_sql_mode(MARIADB, true), MARIADB);
        assert_eq!(
            admin_sql_mode("NO_BACKSLASH_ESCAPES", true),
            "NO_AUTO_CREATE_USER"
        );
        assert_eq!(admin_sql_mode(MYSQL8, false), MYSQL8);
    }

    #[test]
    fn grants_name_one_database_never_a_pattern() {
        assert_eq!(
            grant_pattern("v_ctim_staging", false).unwrap(),
            "`v\\_ctim\\_staging`"
        );
        assert_eq!(
            grant_pattern("v_ctim_staging", true).unwrap(),
            "`v_ctim_staging`"
        );
        assert_eq!(grant_pattern("cp$shop-1", false).unwrap(), "`cp$shop-1`");
        for bad in ["victim%", "a`b", "", "v\\_x"] {
            assert!(grant_pattern(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn account_names_are_escaped_string_literals() {
        assert_eq!(string_literal("shop").unwrap(), "'shop'");
        assert_eq!(string_literal("%").unwrap(), "'%'");
        assert_eq!(string_literal("10.0.0.%").unwrap(), "'10.0.0.%'");
        assert_eq!(string_literal("a'b").unwrap(), "'a\\'b'");
        assert_eq!(string_literal("a\\'b").unwrap(), "'a\\\\\\'b'");
        assert!(string_literal("a\0b").is_err());
        assert!(string_literal("a\nb").is_err());
        assert!(string_literal("é").is_err());
    }

    #[test]
    fn driver_errors_read_as_sentences_for_people() {
        let server = |code| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "Access denied for user 'shop'@'10.0.0.5' (using password: YES)".into(),
                state: "28000".into(),
            })
        };
        let e = Err::<(), _>(server(1045))
            .or_say(|| "connecting to the database shop".into())
            .unwrap_err();
        let text = format!("{e:#}");
        assert_eq!(
            text,
            "connecting to the database shop: the database server refused the site's database user and password (DB_USER and DB_PASSWORD in wp-config.php); check them, or ask your host"
        );
        for code in [1044, 1064, 1142, 1205, 2013] {
            let text = format!(
                "{:#}",
                Err::<(), _>(server(code)).or_say(String::new).unwrap_err()
            );
            assert!(
                text.contains("ask your host") || text.contains("try again"),
                "{text}"
            );
            assert!(
                !text.contains("Access denied") && !text.contains('@'),
                "{text}"
            );
        }
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(
            "connect to /run/mysqld/mysqld.sock: Connection refused",
        )));
        let text = format!("{:#}", Err::<(), _>(io).or_say(String::new).unwrap_err());
        assert!(
            !text.contains("/run") && !text.contains("refused"),
            "{text}"
        );
    }
}
