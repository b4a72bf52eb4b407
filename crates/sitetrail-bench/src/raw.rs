//! The baselines: the same database doing the same work with nothing in between (batched
//! INSERT, COPY, one row per transaction, the store's own SELECTs, the command-line CSV
//! export), and the way popular WordPress activity-log plugins page: OFFSET with a COUNT.

use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, QueryBuilder, SqlitePool};

use crate::log::Shape;
use crate::stats::Latencies;
use sitetrail_core::{
    AccountId, ActivityId, ActivityKind, Audience, Environment, SiteId, Status, StoredActivity,
    Timestamp, hides_from_clients, search_text,
};

const COLS: &str = "seq, id, account_id, site_id, environment, service, activity, status, \
    actor_kind, actor_email, actor_name, description, error, details, created_at, completed_at, \
    change_no";
const INSERT_COLS: &str = "id, account_id, site_id, environment, service, activity, status, \
    actor_kind, actor_email, actor_name, description, error, details, created_at, completed_at, \
    change_no, request_sha256, search_internal, search_client";
const EXPORT_COLS: &str = "created_at, coalesce(actor_email, actor_kind), service, activity, status, description, \
     completed_at";

pub enum Raw {
    Sqlite {
        path: PathBuf,
        /// The store's settings (WAL, synchronous FULL).
        pool: SqlitePool,
    },
    Postgres {
        url: String,
        /// The store's read settings (enable_sort off), for its own SELECTs.
        same: PgPool,
        /// Defaults, for the plugins' way and the raw inserts.
        plain: PgPool,
    },
}

/// One row of a plain table, as the store writes it for the same activity: a generated
/// UUIDv7 id, the details' JSON, and the search texts the redaction function renders for each
/// audience (`search_client` only where it differs). The baselines insert the same bytes the
/// store does, so their rates compare with sitetrail's.
struct Row {
    id: String,
    account_id: String,
    site_id: String,
    environment: &'static str,
    service: &'static str,
    activity: &'static str,
    status: &'static str,
    actor_kind: String,
    actor_email: Option<String>,
    actor_name: Option<String>,
    description: String,
    error: Option<String>,
    details: String,
    created_at: i64,
    completed_at: Option<i64>,
    change_no: i64,
    request_sha256: Vec<u8>,
    search_internal: String,
    search_client: Option<String>,
}

/// Activity `i` of the log as the store keeps it.
fn stored(shape: &Shape, a: &crate::log::Activity) -> anyhow::Result<StoredActivity> {
    let time = |ms: i64| Timestamp::from_millis(ms).context("a generated time is in range");
    let details = match serde_json::to_value(a.details())? {
        serde_json::Value::Object(map) => map,
        other => anyhow::bail!("details are an object, not {other}"),
    };
    let activity = ActivityKind::parse(a.kind)?;
    Ok(StoredActivity {
        seq: 0,
        id: ActivityId::generate(),
        account_id: AccountId::parse(&shape.account_name(a.account))?,
        site_id: SiteId::parse(&shape.site_name(a.site))?,
        environment: Environment::parse(a.environment())?,
        service: activity.service(),
        activity,
        status: Status::parse(a.status)?,
        actor: serde_json::from_value(serde_json::to_value(&a.actor)?)?,
        description: a.description(),
        error: a.error(),
        details,
        created_at: time(a.created_ms)?,
        completed_at: a.completed_ms().map(time).transpose()?,
    })
}

fn row(shape: &Shape, i: u64) -> Row {
    let a = shape.activity(i);
    let s = stored(shape, &a).expect("the generated log holds valid activities");
    let search_internal = search_text(&s, Audience::Internal);
    let search_client = hides_from_clients(&s)
        .then(|| search_text(&s, Audience::Client))
        .filter(|client| *client != search_internal);
    Row {
        id: s.id.as_str().to_owned(),
        account_id: s.account_id.as_str().to_owned(),
        site_id: s.site_id.as_str().to_owned(),
        environment: a.environment(),
        service: a.service(),
        activity: a.kind,
        status: a.status,
        actor_kind: a.actor.kind.to_owned(),
        actor_email: a.actor.email.clone(),
        actor_name: a.actor.name.clone(),
        description: s.description,
        error: s.error,
        details: serde_json::to_string(&s.details).expect("a JSON map serializes"),
        created_at: a.created_ms,
        completed_at: a.completed_ms(),
        change_no: i as i64 + 1,
        request_sha256: (0..32).map(|b| (i as u8).wrapping_add(b)).collect(),
        search_internal,
        search_client,
    }
}

impl Raw {
    pub async fn sqlite(path: PathBuf) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Raw::Sqlite { path, pool })
    }

    /// Copies SQLite's WAL into the database file and empties it, while the server is idle:
    /// the load leaves hundreds of MB of WAL that every reader opening the file afterwards
    /// would otherwise pay for, the command-line baseline more than the running server.
    pub async fn checkpoint_sqlite(path: &std::path::Path) -> anyhow::Result<()> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&pool)
            .await?;
        anyhow::ensure!(busy == 0, "the WAL checkpoint could not finish");
        pool.close().await;
        Ok(())
    }

    /// PostgreSQL only: lets the server settle before a load is timed, so that each load
    /// starts from the same state whatever ran before it: waits (up to a minute) for
    /// autovacuum's workers to finish what the last load left them, then writes out the dirty
    /// pages with a `CHECKPOINT` (needs a superuser or `pg_checkpoint`; skipped with a
    /// warning otherwise).
    pub async fn settle(&self) -> anyhow::Result<()> {
        let Raw::Postgres { plain, .. } = self else {
            return Ok(());
        };
        let t = Instant::now();
        loop {
            let busy: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'",
            )
            .fetch_one(plain)
            .await?;
            if busy == 0 || t.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Err(e) = sqlx::query("CHECKPOINT").execute(plain).await {
            eprintln!("    (no CHECKPOINT before the load: {e})");
        }
        Ok(())
    }

    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let same = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().options([("enable_sort", "off")]))
            .await?;
        let plain = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Raw::Postgres {
            url: url.to_owned(),
            same,
            plain,
        })
    }

    fn is_pg(&self) -> bool {
        matches!(self, Raw::Postgres { .. })
    }

    /// `?` placeholders become `$1`, `$2`, ... for PostgreSQL.
    fn sql(&self, text: &str) -> String {
        if !self.is_pg() {
            return text.to_owned();
        }
        let mut out = String::new();
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Runs `sql` with text/integer binds `n` times (after a few to warm up).
    async fn timed(
        &self,
        plugin: bool,
        sql: &str,
        binds: &[Bind],
        n: usize,
    ) -> anyhow::Result<Latencies> {
        let sql = self.sql(sql);
        let mut lat = Vec::with_capacity(n);
        for i in 0..n + 3 {
            let t = Instant::now();
            match self {
                Raw::Sqlite { pool, .. } => {
                    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                    for b in binds {
                        q = match b {
                            Bind::Text(s) => q.bind(s.clone()),
                            Bind::Int(v) => q.bind(*v),
                        };
                    }
                    q.fetch_all(pool).await?;
                }
                Raw::Postgres { same, plain, .. } => {
                    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                    for b in binds {
                        q = match b {
                            Bind::Text(s) => q.bind(s.clone()),
                            Bind::Int(v) => q.bind(*v),
                        };
                    }
                    q.fetch_all(if plugin { plain } else { same }).await?;
                }
            }
            if i >= 3 {
                lat.push(t.elapsed());
            }
        }
        Ok(Latencies::new(lat))
    }

    /// The activity log's size on disk (table and indexes; for SQLite the whole file) and
    /// its number of activities.
    pub async fn log_size(&self) -> anyhow::Result<(u64, u64)> {
        Ok(match self {
            Raw::Sqlite { pool, .. } => {
                let bytes: i64 = sqlx::query_scalar(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                )
                .fetch_one(pool)
                .await?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM activities")
                    .fetch_one(pool)
                    .await?;
                (bytes as u64, n as u64)
            }
            Raw::Postgres { plain, .. } => {
                let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('activities')")
                    .fetch_one(plain)
                    .await?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM activities")
                    .fetch_one(plain)
                    .await?;
                (bytes as u64, n as u64)
            }
        })
    }

    /// The `(created_at, seq)` of the activity `depth` deep in a site, newest first.
    pub async fn position(&self, site: &str, depth: u64) -> anyhow::Result<(i64, i64)> {
        let sql = self.sql(
            "SELECT created_at, seq FROM activities WHERE site_id = ? \
             ORDER BY created_at DESC, seq DESC LIMIT 1 OFFSET ?",
        );
        Ok(match self {
            Raw::Sqlite { pool, .. } => {
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(site)
                    .bind(depth as i64)
                    .fetch_one(pool)
                    .await?
            }
            Raw::Postgres { plain, .. } => {
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(site)
                    .bind(depth as i64)
                    .fetch_one(plain)
                    .await?
            }
        })
    }

    /// The store's list queries, issued directly: first page, filtered page, keyset page at
    /// `deep`, account-wide page.
    pub async fn same_selects(
        &self,
        site: &str,
        account: &str,
        deep: (i64, i64),
        n: usize,
    ) -> anyhow::Result<[Latencies; 4]> {
        let head = format!(
            "SELECT {COLS} FROM activities WHERE site_id = ? AND EXISTS (SELECT 1 FROM sites \
             WHERE sites.id = ? AND sites.account_id = ?)"
        );
        let tail = " ORDER BY created_at DESC, seq DESC LIMIT 51";
        let scope = [
            Bind::Text(site.into()),
            Bind::Text(site.into()),
            Bind::Text(account.into()),
        ];
        let first = self
            .timed(false, &format!("{head}{tail}"), &scope, n)
            .await?;
        let mut binds = scope.to_vec();
        binds.extend([
            Bind::Text("push_staging_to_live".into()),
            Bind::Text("failed".into()),
        ]);
        let filtered = self
            .timed(
                false,
                &format!("{head} AND activity = ? AND status = ?{tail}"),
                &binds,
                n,
            )
            .await?;
        let mut binds = scope.to_vec();
        binds.extend([Bind::Int(deep.0), Bind::Int(deep.1)]);
        let keyset = self
            .timed(
                false,
                &format!("{head} AND (created_at, seq) < (?, ?){tail}"),
                &binds,
                n,
            )
            .await?;
        let account_page = self
            .timed(
                false,
                &format!("SELECT {COLS} FROM activities WHERE account_id = ?{tail}"),
                &[Bind::Text(account.into())],
                n,
            )
            .await?;
        Ok([first, filtered, keyset, account_page])
    }

    /// A page as the popular WordPress activity-log plugins fetch it: an exact COUNT for
    /// the pager, then ORDER BY ... LIMIT 50 OFFSET `offset`.
    pub async fn offset_page(
        &self,
        site: &str,
        offset: u64,
        n: usize,
    ) -> anyhow::Result<Latencies> {
        let count = self.sql("SELECT COUNT(*) FROM activities WHERE site_id = ?");
        let page = self.sql(&format!(
            "SELECT {COLS} FROM activities WHERE site_id = ? \
             ORDER BY created_at DESC LIMIT 50 OFFSET ?"
        ));
        let mut lat = Vec::with_capacity(n);
        for i in 0..n + 1 {
            let t = Instant::now();
            match self {
                Raw::Sqlite { pool, .. } => {
                    let _: i64 = sqlx::query_scalar(AssertSqlSafe(count.clone()))
                        .bind(site)
                        .fetch_one(pool)
                        .await?;
                    sqlx::query(AssertSqlSafe(page.clone()))
                        .bind(site)
                        .bind(offset as i64)
                        .fetch_all(pool)
                        .await?;
                }
                Raw::Postgres { plain, .. } => {
                    let _: i64 = sqlx::query_scalar(AssertSqlSafe(count.clone()))
                        .bind(site)
                        .fetch_one(plain)
                        .await?;
                    sqlx::query(AssertSqlSafe(page.clone()))
                        .bind(site)
                        .bind(offset as i64)
                        .fetch_all(plain)
                        .await?;
                }
            }
            if i >= 1 {
                lat.push(t.elapsed());
            }
        }
        Ok(Latencies::new(lat))
    }

    /// `sqlite3 -csv` or `psql ... COPY (...) TO STDOUT` of a site's seven columns, newest
    /// first; rows per second.
    pub async fn export_cli(&self, site: &str, rows: u64) -> anyhow::Result<f64> {
        let select = format!(
            "SELECT {EXPORT_COLS} FROM activities WHERE site_id = '{site}' \
             ORDER BY created_at DESC, seq DESC"
        );
        let mut cmd = match self {
            Raw::Sqlite { path, .. } => {
                let mut c = tokio::process::Command::new("sqlite3");
                c.arg("-csv").arg(path).arg(&select);
                c
            }
            Raw::Postgres { url, .. } => {
                let mut c = tokio::process::Command::new("psql");
                c.arg(url)
                    .arg("-qAtc")
                    .arg(format!("COPY ({select}) TO STDOUT WITH (FORMAT csv)"));
                c
            }
        };
        let t = Instant::now();
        let status = cmd
            .stdout(Stdio::null())
            .status()
            .await
            .context("running the command-line export")?;
        anyhow::ensure!(status.success(), "the command-line export failed");
        Ok(rows as f64 / t.elapsed().as_secs_f64())
    }

    async fn create_plain_table(&self, table: &str) -> anyhow::Result<()> {
        let ddl = match self {
            Raw::Sqlite { .. } => format!(
                "DROP TABLE IF EXISTS {table}; \
                 CREATE TABLE {table} (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, \
                 account_id TEXT NOT NULL, site_id TEXT NOT NULL, environment TEXT NOT NULL, \
                 service TEXT NOT NULL, activity TEXT NOT NULL, status TEXT NOT NULL, \
                 actor_kind TEXT NOT NULL, actor_email TEXT, actor_name TEXT, \
                 description TEXT NOT NULL, error TEXT, details TEXT NOT NULL, \
                 created_at INTEGER NOT NULL, completed_at INTEGER, change_no INTEGER NOT NULL, \
                 request_sha256 BLOB NOT NULL, search_internal TEXT NOT NULL, \
                 search_client TEXT) STRICT; \
                 CREATE UNIQUE INDEX {table}_by_id ON {table} (id); \
                 CREATE INDEX {table}_by_site ON {table} (site_id, created_at); \
                 CREATE INDEX {table}_by_account ON {table} (account_id, created_at); \
                 CREATE INDEX {table}_by_change ON {table} (change_no);"
            ),
            Raw::Postgres { .. } => format!(
                "DROP TABLE IF EXISTS {table}; \
                 CREATE TABLE {table} (seq BIGINT GENERATED ALWAYS AS IDENTITY, \
                 created_at BIGINT NOT NULL, completed_at BIGINT, change_no BIGINT NOT NULL, \
                 id TEXT COLLATE \"C\" NOT NULL, account_id TEXT COLLATE \"C\" NOT NULL, \
                 site_id TEXT COLLATE \"C\" NOT NULL, environment TEXT NOT NULL, \
                 service TEXT NOT NULL, activity TEXT NOT NULL, status TEXT NOT NULL, \
                 actor_kind TEXT NOT NULL, actor_email TEXT, actor_name TEXT, \
                 description TEXT NOT NULL, error TEXT, details TEXT NOT NULL, \
                 request_sha256 BYTEA NOT NULL, search_internal TEXT NOT NULL, \
                 search_client TEXT) WITH (fillfactor = 90); \
                 CREATE UNIQUE INDEX {table}_by_id ON {table} (id); \
                 CREATE INDEX {table}_by_site ON {table} (site_id, created_at DESC, seq DESC); \
                 CREATE INDEX {table}_by_account ON {table} \
                 (account_id, created_at DESC, seq DESC); \
                 CREATE INDEX {table}_by_change ON {table} (change_no);"
            ),
        };
        match self {
            Raw::Sqlite { pool, .. } => {
                sqlx::raw_sql(AssertSqlSafe(ddl)).execute(pool).await?;
            }
            Raw::Postgres { plain, .. } => {
                sqlx::raw_sql(AssertSqlSafe(ddl)).execute(plain).await?;
            }
        }
        Ok(())
    }

    /// `rows` rows into a fresh, equally indexed plain table, 1,000 per multi-row INSERT and
    /// transaction. Rows per second.
    pub async fn insert_batched(&self, shape: &Shape, rows: u64) -> anyhow::Result<f64> {
        self.create_plain_table("bench_batched").await?;
        self.settle().await?;
        let t = Instant::now();
        let mut from = 0;
        while from < rows {
            let to = (from + 1000).min(rows);
            match self {
                Raw::Sqlite { pool, .. } => {
                    let mut q = QueryBuilder::<sqlx::Sqlite>::new(format!(
                        "INSERT INTO bench_batched ({INSERT_COLS}) "
                    ));
                    q.push_values((from..to).map(|i| row(shape, i)), |mut b, r| {
                        b.push_bind(r.id)
                            .push_bind(r.account_id)
                            .push_bind(r.site_id)
                            .push_bind(r.environment)
                            .push_bind(r.service)
                            .push_bind(r.activity)
                            .push_bind(r.status)
                            .push_bind(r.actor_kind)
                            .push_bind(r.actor_email)
                            .push_bind(r.actor_name)
                            .push_bind(r.description)
                            .push_bind(r.error)
                            .push_bind(r.details)
                            .push_bind(r.created_at)
                            .push_bind(r.completed_at)
                            .push_bind(r.change_no)
                            .push_bind(r.request_sha256)
                            .push_bind(r.search_internal)
                            .push_bind(r.search_client);
                    });
                    q.build().execute(pool).await?;
                }
                Raw::Postgres { plain, .. } => {
                    let mut q = QueryBuilder::<sqlx::Postgres>::new(format!(
                        "INSERT INTO bench_batched ({INSERT_COLS}) "
                    ));
                    q.push_values((from..to).map(|i| row(shape, i)), |mut b, r| {
                        b.push_bind(r.id)
                            .push_bind(r.account_id)
                            .push_bind(r.site_id)
                            .push_bind(r.environment)
                            .push_bind(r.service)
                            .push_bind(r.activity)
                            .push_bind(r.status)
                            .push_bind(r.actor_kind)
                            .push_bind(r.actor_email)
                            .push_bind(r.actor_name)
                            .push_bind(r.description)
                            .push_bind(r.error)
                            .push_bind(r.details)
                            .push_bind(r.created_at)
                            .push_bind(r.completed_at)
                            .push_bind(r.change_no)
                            .push_bind(r.request_sha256)
                            .push_bind(r.search_internal)
                            .push_bind(r.search_client);
                    });
                    q.build().execute(plain).await?;
                }
            }
            from = to;
            if from % 200_000 == 0 {
                let rate = from as f64 / t.elapsed().as_secs_f64();
                eprintln!("    {from} rows inserted ({rate:.0}/s)");
            }
        }
        Ok(rows as f64 / t.elapsed().as_secs_f64())
    }

    /// PostgreSQL only: `rows` rows by COPY FROM STDIN (CSV) into a fresh plain table.
    pub async fn copy(&self, shape: &Shape, rows: u64) -> anyhow::Result<Option<f64>> {
        let Raw::Postgres { plain, .. } = self else {
            return Ok(None);
        };
        self.create_plain_table("bench_copy").await?;
        self.settle().await?;
        let t = Instant::now();
        let mut conn = plain.acquire().await?;
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY bench_copy ({INSERT_COLS}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await?;
        let mut buf = String::new();
        for i in 0..rows {
            let r = row(shape, i);
            let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let opt = |s: &Option<String>| s.as_deref().map(q).unwrap_or_default();
            let hex: String = r
                .request_sha256
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            buf.push_str(
                &[
                    q(&r.id),
                    q(&r.account_id),
                    q(&r.site_id),
                    q(r.environment),
                    q(r.service),
                    q(r.activity),
                    q(r.status),
                    q(&r.actor_kind),
                    opt(&r.actor_email),
                    opt(&r.actor_name),
                    q(&r.description),
                    opt(&r.error),
                    q(&r.details),
                    r.created_at.to_string(),
                    r.completed_at.map(|c| c.to_string()).unwrap_or_default(),
                    r.change_no.to_string(),
                    format!("\\x{hex}"),
                    q(&r.search_internal),
                    opt(&r.search_client),
                ]
                .join(","),
            );
            buf.push('\n');
            if buf.len() > 1 << 20 {
                copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            }
        }
        copy.send(buf.into_bytes()).await?;
        copy.finish().await?;
        Ok(Some(rows as f64 / t.elapsed().as_secs_f64()))
    }

    /// One row per autocommitted INSERT, one client, for `seconds`, into the batched
    /// table (already holding its rows). Rows per second.
    pub async fn insert_single(&self, shape: &Shape, seconds: f64) -> anyhow::Result<f64> {
        let sql = self.sql(&format!(
            "INSERT INTO bench_batched ({INSERT_COLS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ));
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_secs_f64(seconds) {
            let r = row(shape, n);
            macro_rules! binds {
                ($q:expr) => {
                    $q.bind(r.id)
                        .bind(r.account_id)
                        .bind(r.site_id)
                        .bind(r.environment)
                        .bind(r.service)
                        .bind(r.activity)
                        .bind(r.status)
                        .bind(r.actor_kind)
                        .bind(r.actor_email)
                        .bind(r.actor_name)
                        .bind(r.description)
                        .bind(r.error)
                        .bind(r.details)
                        .bind(r.created_at)
                        .bind(r.completed_at)
                        .bind(r.change_no)
                        .bind(r.request_sha256)
                        .bind(r.search_internal)
                        .bind(r.search_client)
                };
            }
            match self {
                Raw::Sqlite { pool, .. } => {
                    binds!(sqlx::query(AssertSqlSafe(sql.clone())))
                        .execute(pool)
                        .await?;
                }
                Raw::Postgres { plain, .. } => {
                    binds!(sqlx::query(AssertSqlSafe(sql.clone())))
                        .execute(plain)
                        .await?;
                }
            }
            n += 1;
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    }
}

#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use sitetrail_core::{Account, EnvironmentSpec, NewActivity, Site, SiteUrl};
    use sitetrail_store::Store;
    use sitetrail_store_sqlite::SqliteStore;
    use sqlx::Row as _;

    use super::*;

    /// The baselines insert what the store writes: for activities of every kind of actor, the
    /// search texts, the details and the id's length are those the store kept.
    #[tokio::test]
    async fn a_baseline_row_holds_what_the_store_writes() {
        let dir = std::env::temp_dir().join(format!("sitetrail-bench-row-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let shape = Shape::of(10_000);
        let mut client_texts = 0;
        for i in 0..300 {
            let r = row(&shape, i);
            let a = shape.activity(i);
            let s = stored(&shape, &a).unwrap();
            store
                .upsert_account(&Account {
                    id: s.account_id.clone(),
                    name: "Account".into(),
                    partner: "Partner".into(),
                    partner_colour: None,
                })
                .await
                .unwrap();
            store
                .upsert_site(&Site {
                    id: s.site_id.clone(),
                    account_id: s.account_id.clone(),
                    name: "Site".into(),
                    live: EnvironmentSpec {
                        url: SiteUrl::parse("https://site.example").unwrap(),
                        docroot: None,
                    },
                    staging: None,
                })
                .await
                .unwrap();
            let recorded = store
                .record(vec![NewActivity {
                    id: None,
                    account_id: s.account_id,
                    site_id: s.site_id,
                    environment: s.environment,
                    activity: s.activity,
                    actor: s.actor,
                    description: s.description,
                    status: s.status,
                    created_at: Some(s.created_at),
                    completed_at: s.completed_at,
                    error: s.error,
                    details: s.details,
                }])
                .await
                .unwrap();
            let id = recorded[0].activity.id.as_str().to_owned();
            let pool = SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let kept = sqlx::query(
                "SELECT search_internal, search_client, details FROM activities WHERE id = ?",
            )
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            // The store's id differs (generated), but not in length; its text is in the search.
            assert_eq!(r.id.len(), id.len());
            let internal: String = kept.get(0);
            assert_eq!(
                r.search_internal,
                internal.replace(&id, &r.id),
                "activity {i}"
            );
            let client: Option<String> = kept.get(1);
            assert_eq!(
                r.search_client,
                client.map(|c| c.replace(&id, &r.id)),
                "activity {i}"
            );
            client_texts += usize::from(r.search_client.is_some());
            assert_eq!(r.details, kept.get::<String, _>(2), "activity {i}");
        }
        assert!(
            client_texts > 0,
            "some activities show clients another text"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
