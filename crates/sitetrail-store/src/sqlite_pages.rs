//! SQLite's pages of the log, read with rusqlite on tokio's blocking pool, as the export
//! reads (`crate::export`). sqlx's SQLite driver copies every value of every row into an
//! allocation of its own and hands each row to the async side through a channel: serving
//! the first page of a big site in a loop, that was a third of its worker thread's time
//! (BENCHMARKS.md, "Not met yet"). Here a page is one blocking call that steps a cached
//! statement and decodes its rows in place.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use sitetrail_core::{ActivityFilter, Audience, Page, StoredActivity};

use crate::export::{Columns, SqliteQuery, columns, decode};
use crate::rows;
use crate::{ExportColumns, Scope, StoreResult};

/// Read connections kept between pages; more are opened while many pages are read at once.
const IDLE: usize = 4;

/// The page cache of each connection, in KiB: a page's index entries and rows stay cached
/// until a commit changes the database.
const CACHE_KIB: i64 = 65_536;

pub(crate) struct PageReaders {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl PageReaders {
    pub fn new(path: &Path) -> Self {
        PageReaders {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// One page of the log: `limit + 1` activities, in the page's order.
    pub async fn page(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Vec<StoredActivity>> {
        let mut q = SqliteQuery {
            sql: format!(
                "SELECT {} FROM activities WHERE ",
                columns(ExportColumns::All)
            ),
            binds: Vec::new(),
        };
        rows::push_page(&mut q, scope, audience, filter, page);
        let idle = self
            .idle
            .lock()
            .expect("never poisoned: no code panics holding it")
            .pop();
        let path = self.path.clone();
        let (conn, found) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let conn = match idle {
                Some(c) => c,
                None => open(&path)?,
            };
            let found = read(&conn, &q);
            Ok((conn, found))
        })
        .await
        .context("a page's reading thread failed")??;
        let mut idle = self
            .idle
            .lock()
            .expect("never poisoned: no code panics holding it");
        if idle.len() < IDLE {
            idle.push(conn);
        }
        Ok(found?)
    }
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = open_read_only(path, CACHE_KIB, "to read pages")?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// A read-only connection to the log with a page cache of `cache_kib`, for `what` (named in
/// the error when it cannot be opened). It waits up to 10 s for a lock.
pub(crate) fn open_read_only(
    path: &Path,
    cache_kib: i64,
    what: &str,
) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} {what}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    Ok(conn)
}

fn read(conn: &Connection, q: &SqliteQuery) -> anyhow::Result<Vec<StoredActivity>> {
    let mut stmt = conn.prepare_cached(&q.sql).context("preparing a page")?;
    let mut found = stmt.query(rusqlite::params_from_iter(&q.binds))?;
    let mut page = Vec::new();
    while let Some(row) = found.next()? {
        page.push(decode(row)?);
    }
    Ok(page)
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> anyhow::Result<i64> {
        Ok(self.get(i)?)
    }

    fn opt_int(&self, i: usize) -> anyhow::Result<Option<i64>> {
        Ok(self.get(i)?)
    }

    fn text(&self, i: usize) -> anyhow::Result<&str> {
        Ok(self.get_ref(i)?.as_str()?)
    }

    fn opt_text(&self, i: usize) -> anyhow::Result<Option<&str>> {
        Ok(self.get_ref(i)?.as_str_or_null()?)
    }
}
