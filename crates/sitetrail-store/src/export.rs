//! Exports: everything a page of the log could show for one scope, audience and filter, in
//! the same order (newest first), read as one long statement in index order instead of page
//! after page. A reader (a thread of its own on SQLite, a task on PostgreSQL) decodes rows
//! into chunks and hands them over through a bounded channel: when the consumer (an HTTP
//! body) is slower, the reader waits, so memory stays flat whatever the size.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use sitetrail_core::{
    AccountId, ActivityFilter, ActivityId, ActivityKind, Actor, ActorKind, Audience, Email,
    Environment, Service, SiteId, Status, StoredActivity, Timestamp,
};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use tokio::sync::mpsc;

use crate::rows::{self, SqlSink};
use crate::{Scope, StoreError, StoreResult};

/// Activities per chunk.
const CHUNK: usize = 512;
/// Chunks decoded ahead of the consumer.
const AHEAD: usize = 4;
/// The SQLite export connection's page cache, KiB: the read is one pass, so a big cache
/// would only add to the server's memory.
const SQLITE_CACHE_KIB: i64 = 4096;

/// What an export reads of each activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportColumns {
    /// Every column (NDJSON).
    All,
    /// What the CSV shows: `error` and `details` are not read and come back empty.
    Table,
}

/// The activities of an export, chunk after chunk. Dropping it stops the read.
pub struct ExportStream {
    chunks: mpsc::Receiver<StoreResult<Vec<StoredActivity>>>,
}

impl ExportStream {
    /// The next chunk, `None` at the end; after an error, nothing more comes.
    pub async fn next_chunk(&mut self) -> Option<StoreResult<Vec<StoredActivity>>> {
        self.chunks.recv().await
    }

    /// Every activity at once (tests, small exports).
    pub async fn collect(mut self) -> StoreResult<Vec<StoredActivity>> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            all.extend(chunk?);
        }
        Ok(all)
    }
}

type Sender = mpsc::Sender<StoreResult<Vec<StoredActivity>>>;

/// The columns in the order [`decode`] reads them.
fn columns(which: ExportColumns) -> &'static str {
    match which {
        ExportColumns::All => {
            "seq, id, account_id, site_id, environment, service, activity, status, actor_kind, \
             actor_email, actor_name, description, error, details, created_at, completed_at"
        }
        ExportColumns::Table => {
            "seq, id, account_id, site_id, environment, service, activity, status, actor_kind, \
             actor_email, actor_name, description, CAST(NULL AS TEXT), CAST(NULL AS TEXT), \
             created_at, completed_at"
        }
    }
}

/// The export's statement: the conditions of a page, without cursor or limit.
fn build(q: &mut impl SqlSink, scope: &Scope, audience: Audience, filter: &ActivityFilter) {
    rows::push_conditions(q, scope, audience, filter);
    q.sql(" ORDER BY created_at DESC, seq DESC");
}

/// One row's columns, whichever database it comes from.
trait Columns {
    fn int(&self, i: usize) -> anyhow::Result<i64>;
    fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>>;
    fn text(&self, i: usize) -> anyhow::Result<&str>;
    fn opt_text(&self, i: usize) -> anyhow::Result<Option<&str>>;
}

/// An activity from the columns of [`columns`], with the checks of a page's decoding.
fn decode(r: &impl Columns) -> anyhow::Result<StoredActivity> {
    fn parse<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> anyhow::Result<T> {
        r.map_err(|e| anyhow::anyhow!("corrupt {what} in the activity log: {e}"))
    }
    let time = |ms: i64, what: &str| {
        Timestamp::from_millis(ms)
            .ok_or_else(|| anyhow::anyhow!("corrupt {what} in the activity log"))
    };
    let details = match r.opt_text(13)? {
        None => serde_json::Map::new(),
        Some(d) => serde_json::from_str(d)
            .map_err(|_| anyhow::anyhow!("corrupt details in the activity log"))?,
    };
    Ok(StoredActivity {
        seq: r.int(0)?,
        id: parse(ActivityId::parse(r.text(1)?), "id")?,
        account_id: parse(AccountId::parse(r.text(2)?), "account")?,
        site_id: parse(SiteId::parse(r.text(3)?), "site")?,
        environment: parse(Environment::parse(r.text(4)?), "environment")?,
        service: parse(Service::parse(r.text(5)?), "service")?,
        activity: parse(ActivityKind::parse(r.text(6)?), "activity")?,
        status: parse(Status::parse(r.text(7)?), "status")?,
        actor: Actor {
            kind: ActorKind::parse(r.text(8)?)
                .ok_or_else(|| anyhow::anyhow!("corrupt actor kind in the activity log"))?,
            email: r
                .opt_text(9)?
                .map(|e| parse(Email::parse(e), "actor email"))
                .transpose()?,
            name: r.opt_text(10)?.map(str::to_owned),
        },
        description: r.text(11)?.to_owned(),
        error: r.opt_text(12)?.map(str::to_owned),
        details,
        created_at: time(r.int(14)?, "created_at")?,
        completed_at: r
            .opt_int(15)?
            .map(|c| time(c, "completed_at"))
            .transpose()?,
    })
}

/// Sends full chunks; false once the consumer has gone.
struct Chunker {
    chunk: Vec<StoredActivity>,
}

impl Chunker {
    fn new() -> Self {
        Chunker {
            chunk: Vec::with_capacity(CHUNK),
        }
    }

    fn full(&self) -> bool {
        self.chunk.len() >= CHUNK
    }

    fn take(&mut self) -> Vec<StoredActivity> {
        std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK))
    }
}

// SQLite: a read-only connection of the export's own, on a blocking thread, stepping one
// statement. sqlx's SQLite driver copies every value of every row and sends each row
// through a channel; stepping directly reads the columns in place.

struct SqliteQuery {
    sql: String,
    binds: Vec<rusqlite::types::Value>,
}

impl SqlSink for SqliteQuery {
    fn sql(&mut self, text: &str) {
        self.sql.push_str(text);
    }

    fn text(&mut self, value: &str) {
        self.sql.push('?');
        self.binds
            .push(rusqlite::types::Value::Text(value.to_owned()));
    }

    fn int(&mut self, value: i64) {
        self.sql.push('?');
        self.binds.push(rusqlite::types::Value::Integer(value));
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> anyhow::Result<i64> {
        Ok(self.get_ref(i)?.as_i64()?)
    }

    fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.get_ref(i)?.as_i64_or_null()?)
    }

    fn text(&self, i: usize) -> anyhow::Result<&str> {
        Ok(self.get_ref(i)?.as_str()?)
    }

    fn opt_text(&self, i: usize) -> anyhow::Result<Option<&str>> {
        Ok(self.get_ref(i)?.as_str_or_null()?)
    }
}

pub(crate) fn sqlite(
    path: PathBuf,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    which: ExportColumns,
) -> ExportStream {
    let mut q = SqliteQuery {
        sql: format!("SELECT {} FROM activities WHERE ", columns(which)),
        binds: Vec::new(),
    };
    build(&mut q, scope, audience, filter);
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_sqlite(&path, &q, &tx) {
            let _ = tx.blocking_send(Err(StoreError::Internal(e)));
        }
    });
    ExportStream { chunks: rx }
}

fn read_sqlite(path: &std::path::Path, q: &SqliteQuery, tx: &Sender) -> anyhow::Result<()> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} for an export", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -SQLITE_CACHE_KIB)?;
    let mut stmt = conn.prepare(&q.sql).context("preparing the export")?;
    let mut found = stmt.query(rusqlite::params_from_iter(&q.binds))?;
    let mut out = Chunker::new();
    while let Some(row) = found.next()? {
        out.chunk.push(decode(row)?);
        if out.full() && tx.blocking_send(Ok(out.take())).is_err() {
            return Ok(());
        }
    }
    if !out.chunk.is_empty() {
        let _ = tx.blocking_send(Ok(out.take()));
    }
    Ok(())
}

// PostgreSQL: one statement whose rows the server streams as they are read; the socket's
// backpressure holds it when the reader waits. A single statement sees one snapshot.

impl Columns for sqlx::postgres::PgRow {
    fn int(&self, i: usize) -> anyhow::Result<i64> {
        Ok(self.try_get(i)?)
    }

    fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }

    fn text(&self, i: usize) -> anyhow::Result<&str> {
        Ok(self.try_get(i)?)
    }

    fn opt_text(&self, i: usize) -> anyhow::Result<Option<&str>> {
        Ok(self.try_get(i)?)
    }
}

pub(crate) async fn postgres(
    pool: &PgPool,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    which: ExportColumns,
) -> StoreResult<ExportStream> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT {} FROM activities WHERE ", columns(which)));
    build(&mut q, scope, audience, filter);
    let conn = pool.acquire().await?;
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::spawn(async move {
        if let Err(e) = read_postgres(conn, q, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(ExportStream { chunks: rx })
}

async fn read_postgres(
    mut conn: sqlx::pool::PoolConnection<Postgres>,
    mut q: QueryBuilder<Postgres>,
    tx: &Sender,
) -> StoreResult<()> {
    let outcome = stream_postgres(&mut conn, &mut q, tx).await;
    // A read left half-way would make the connection's next user wait for the rest of its
    // rows: the connection is closed rather than given back.
    if !matches!(outcome, Ok(true)) {
        conn.close_on_drop();
    }
    outcome.map(|_| ())
}

/// True when every row was read.
async fn stream_postgres(
    conn: &mut sqlx::PgConnection,
    q: &mut QueryBuilder<Postgres>,
    tx: &Sender,
) -> StoreResult<bool> {
    let mut found = q.build().fetch(conn);
    let mut out = Chunker::new();
    while let Some(row) = found.try_next().await? {
        out.chunk.push(decode(&row)?);
        if out.full() && tx.send(Ok(out.take())).await.is_err() {
            return Ok(false);
        }
    }
    if !out.chunk.is_empty() {
        let _ = tx.send(Ok(out.take())).await;
    }
    Ok(true)
}
