//! Exports: everything a page of the log could show for one scope, audience and filter, in
//! the same order (newest first), read as one long statement in index order instead of page
//! after page. A reader (a task on a connection of its own on SQLite, on a connection of the
//! export pool on PostgreSQL) gathers rows as the database gives them into chunks and hands them over
//! through a bounded channel: when the consumer (an HTTP body) is slower, the reader waits, so
//! memory stays flat whatever the size. The consumer decodes each chunk on its own side, so
//! that the two share the work.
//!
//! Exports never use what pages read with (the read pool): at most [`EXPORT_READERS`] run at once per store, and the rest wait for one,
//! so that exports nobody reads cannot leave pages waiting.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use sitetrail_core::{
    AccountId, ActivityFilter, ActivityId, ActivityKind, Actor, ActorKind, Audience, Email,
    Environment, Service, SiteId, Status, StoredActivity, Timestamp,
};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::rows::{self, SqlSink};
use crate::{Scope, StoreError, StoreResult};

/// Exports a store reads at once; more wait for a reader. Each holds a connection while its
/// client reads.
pub const EXPORT_READERS: usize = 8;
/// How long an export waits for a reader before it fails.
pub const READER_WAIT: Duration = Duration::from_secs(30);
/// Activities per chunk, at most.
const CHUNK: usize = 512;
/// A chunk is handed over once its text holds this many bytes, however few its activities:
/// what a reader holds ahead of a client that stopped reading stays small.
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks read ahead of the consumer.
const AHEAD: usize = 4;

/// What an export reads of each activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportColumns {
    /// Every column (NDJSON).
    All,
    /// What the CSV shows: `details` is not read and comes back empty.
    Table,
}

/// The activities of an export, chunk after chunk. Dropping it stops the read.
pub struct ExportStream {
    chunks: mpsc::Receiver<StoreResult<RawRows>>,
    /// A chunk's buffers go back to the reader once decoded.
    spent: std::sync::mpsc::Sender<RawRows>,
}

impl ExportStream {
    /// The next chunk, `None` at the end; after an error, nothing more comes.
    pub async fn next_chunk(&mut self) -> Option<StoreResult<Vec<StoredActivity>>> {
        let chunk = match self.chunks.recv().await? {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let decoded: anyhow::Result<Vec<StoredActivity>> = match chunk.text() {
            Ok(text) => (0..chunk.len())
                .map(|at| {
                    decode(&RawRow {
                        rows: &chunk,
                        text,
                        at,
                    })
                })
                .collect(),
            Err(e) => Err(e),
        };
        let _ = self.spent.send(chunk);
        Some(decoded.map_err(StoreError::Internal))
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

type Sender = mpsc::Sender<StoreResult<RawRows>>;

/// The columns in the order [`decode`] reads them.
pub fn columns(which: ExportColumns) -> &'static str {
    match which {
        ExportColumns::All => {
            "seq, id, account_id, site_id, environment, service, activity, status, actor_kind, \
             actor_email, actor_name, description, error, details, created_at, completed_at"
        }
        ExportColumns::Table => {
            "seq, id, account_id, site_id, environment, service, activity, status, actor_kind, \
             actor_email, actor_name, description, error, CAST(NULL AS TEXT), \
             created_at, completed_at"
        }
    }
}

/// The export's statement: the conditions of a page, without cursor or limit.
pub fn build(q: &mut impl SqlSink, scope: &Scope, audience: Audience, filter: &ActivityFilter) {
    rows::push_conditions(q, scope, audience, filter);
    q.sql(" ORDER BY created_at DESC, seq DESC");
}

/// One row's columns, whichever database it comes from.
pub trait Columns {
    fn int(&self, i: usize) -> anyhow::Result<i64>;
    fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>>;
    fn text(&self, i: usize) -> anyhow::Result<&str>;
    fn opt_text(&self, i: usize) -> anyhow::Result<Option<&str>>;
}

/// An activity from the columns of [`columns`], with the checks of a page's decoding.
pub fn decode(r: &impl Columns) -> anyhow::Result<StoredActivity> {
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

// SQLite: a read-only connection of the export's own, stepping one statement (one snapshot:
// while a slow client holds it, checkpoints cannot reset the WAL). sqlx's worker hands rows
// over through a bounded channel, so a reader that waits holds the statement back too.

/// Rows of [`columns`] as a database gave them: the text of every value of a chunk in one
/// buffer, the chunk's cells beside it. The buffers go round between reader and consumer.
pub struct RawRows {
    bytes: Vec<u8>,
    /// [`COLUMNS`] per row.
    cells: Vec<Cell>,
}

const COLUMNS: usize = 16;
/// The integer columns of [`columns`]: `seq`, `created_at`, `completed_at`.
const INT_COLUMNS: [usize; 3] = [0, 14, 15];

enum Cell {
    Null,
    Int(i64),
    /// A range of `bytes`.
    Text(u32, u32),
}

impl RawRows {
    fn new() -> Self {
        RawRows {
            bytes: Vec::with_capacity(CHUNK * 256),
            cells: Vec::with_capacity(CHUNK * COLUMNS),
        }
    }

    /// The chunk's text, checked as UTF-8 in one pass rather than value by value.
    fn text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.bytes).context("the activity log holds text that is not UTF-8")
    }

    /// A spent chunk back from the consumer, emptied, or a new one.
    fn reused(spent: &std::sync::mpsc::Receiver<RawRows>) -> Self {
        match spent.try_recv() {
            Ok(mut rows) => {
                rows.bytes.clear();
                rows.cells.clear();
                rows
            }
            Err(_) => RawRows::new(),
        }
    }

    fn len(&self) -> usize {
        self.cells.len() / COLUMNS
    }

    fn is_full(&self) -> bool {
        self.len() >= CHUNK || self.bytes.len() >= CHUNK_BYTES
    }

    /// One row, its text values copied into the chunk's buffer.
    fn push<R: Row>(&mut self, row: &R) -> anyhow::Result<()>
    where
        for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
        for<'r> Option<&'r str>: Decode<'r, R::Database> + Type<R::Database>,
        usize: ColumnIndex<R>,
    {
        for i in 0..COLUMNS {
            self.cells.push(if INT_COLUMNS.contains(&i) {
                match row.try_get::<Option<i64>, _>(i)? {
                    None => Cell::Null,
                    Some(v) => Cell::Int(v),
                }
            } else {
                match row.try_get::<Option<&str>, _>(i)? {
                    None => Cell::Null,
                    Some(t) => {
                        let start = u32::try_from(self.bytes.len())?;
                        self.bytes.extend_from_slice(t.as_bytes());
                        Cell::Text(start, u32::try_from(self.bytes.len())?)
                    }
                }
            });
        }
        Ok(())
    }
}

pub struct RawRow<'r> {
    rows: &'r RawRows,
    /// `rows.bytes`, checked as UTF-8 once for the chunk.
    text: &'r str,
    at: usize,
}

impl RawRow<'_> {
    fn cell(&self, i: usize) -> &Cell {
        &self.rows.cells[self.at * COLUMNS + i]
    }

    fn bytes(&self, i: usize) -> anyhow::Result<Option<&str>> {
        match *self.cell(i) {
            Cell::Null => Ok(None),
            // A range of valid UTF-8 that starts and ends on character boundaries is
            // valid UTF-8 itself; `get` checks the boundaries.
            Cell::Text(start, end) => Ok(Some(
                self.text
                    .get(start as usize..end as usize)
                    .ok_or_else(|| anyhow::anyhow!("text column {i} splits a character"))?,
            )),
            Cell::Int(_) => anyhow::bail!("a number in text column {i} of the activity log"),
        }
    }
}

impl Columns for RawRow<'_> {
    fn int(&self, i: usize) -> anyhow::Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| anyhow::anyhow!("a null in column {i} of the activity log"))
    }

    fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        match *self.cell(i) {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(v)),
            Cell::Text(..) => anyhow::bail!("text in number column {i} of the activity log"),
        }
    }

    fn text(&self, i: usize) -> anyhow::Result<&str> {
        self.bytes(i)?
            .ok_or_else(|| anyhow::anyhow!("a null in column {i} of the activity log"))
    }

    fn opt_text(&self, i: usize) -> anyhow::Result<Option<&str>> {
        self.bytes(i)
    }
}

/// Waits for one of the export readers, at most [`READER_WAIT`].
pub async fn wait_for_reader(free: &Arc<Semaphore>) -> StoreResult<OwnedSemaphorePermit> {
    match tokio::time::timeout(READER_WAIT, free.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(StoreError::Internal(anyhow::anyhow!(
            "the export readers were closed"
        ))),
        Err(_) => Err(StoreError::Internal(anyhow::anyhow!(
            "every export reader stayed busy for {READER_WAIT:?}"
        ))),
    }
}

/// The export's statement for a backend: the columns, then the conditions of a page in
/// the order of a page, without cursor or limit.
pub fn query<DB>(
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    which: ExportColumns,
) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut q =
        QueryBuilder::<DB>::new(format!("SELECT {} FROM activities WHERE ", columns(which)));
    build(&mut q, scope, audience, filter);
    q
}

/// Where a reader hands its chunks over, and gets the spent ones back.
pub struct Chunks {
    tx: Sender,
    // (A future that holds a std receiver must not share it: only `&mut` reaches it.)
    reuse: std::sync::mpsc::Receiver<RawRows>,
}

impl Chunks {
    /// Reads every row of `q` on `conn` into chunks and hands each over as it fills: true
    /// when every row was read, false when the consumer went away first.
    pub async fn read<DB>(
        &mut self,
        conn: &mut DB::Connection,
        q: &mut QueryBuilder<DB>,
    ) -> StoreResult<bool>
    where
        DB: Database + sqlx::database::HasStatementCache,
        DB::Arguments: IntoArguments<DB>,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
        for<'r> Option<&'r str>: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        // Each export's statement is its own: not kept prepared on the connection.
        let mut found = q.build().persistent(false).fetch(&mut *conn);
        let mut out = RawRows::new();
        while let Some(row) = found.try_next().await? {
            out.push(&row).map_err(StoreError::Internal)?;
            if out.is_full() {
                let full = std::mem::replace(&mut out, RawRows::reused(&self.reuse));
                if self.tx.send(Ok(full)).await.is_err() {
                    return Ok(false);
                }
            }
        }
        if out.len() > 0 {
            let _ = self.tx.send(Ok(out)).await;
        }
        Ok(true)
    }
}

/// Runs a backend's reader on a task of its own; what it reads comes out of the stream,
/// and so does its error.
pub fn spawn<F, Fut>(read: F) -> ExportStream
where
    F: FnOnce(Chunks) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = StoreResult<()>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(AHEAD);
    let (spent, reuse) = std::sync::mpsc::channel();
    tokio::spawn(async move {
        let errors = tx.clone();
        if let Err(e) = read(Chunks { tx, reuse }).await {
            let _ = errors.send(Err(e)).await;
        }
    });
    ExportStream { chunks: rx, spent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_splits_a_character_is_an_error_not_a_panic() {
        let mut rows = RawRows::new();
        let text = |rows: &mut RawRows, t: &str| {
            let start = rows.bytes.len() as u32;
            rows.bytes.extend_from_slice(t.as_bytes());
            Cell::Text(start, rows.bytes.len() as u32)
        };
        let cells = [
            Cell::Int(7),
            text(&mut rows, "a-1"),
            text(&mut rows, "acme"),
            text(&mut rows, "shop"),
            text(&mut rows, "live"),
            text(&mut rows, "staging"),
            text(&mut rows, "push_staging_to_live"),
            text(&mut rows, "completed"),
            text(&mut rows, "system"),
            Cell::Null,
            Cell::Null,
            text(&mut rows, "日本"),
            Cell::Null,
            Cell::Null,
            Cell::Int(1_764_000_000_000),
            Cell::Null,
        ];
        rows.cells.extend(cells);
        let row = |rows: &RawRows| {
            decode(&RawRow {
                rows,
                text: rows.text().unwrap(),
                at: 0,
            })
        };
        assert_eq!(row(&rows).unwrap().description, "日本");
        // Move the description's range inside its first character.
        if let Cell::Text(start, end) = rows.cells[11] {
            rows.cells[11] = Cell::Text(start + 1, end);
        }
        assert!(row(&rows).is_err());
    }
}
