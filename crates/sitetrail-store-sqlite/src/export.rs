//! SQLite's exports: each on a read-only connection of its own, opened for it, at most
//! [`EXPORT_READERS`] at once; the read itself is the store's ([`sitetrail_store::export`]).

use std::sync::Arc;

use anyhow::Context;
use sitetrail_core::{ActivityFilter, Audience};
use sitetrail_store::export::{self, EXPORT_READERS, ExportColumns, ExportStream};
use sitetrail_store::{Scope, StoreResult};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Sqlite};
use tokio::sync::Semaphore;

/// The export connection's page cache, KiB: the read is one pass, so a big cache would only
/// add to the server's memory.
const CACHE_KIB: i64 = 4096;

pub(crate) struct SqliteReaders {
    options: SqliteConnectOptions,
    free: Arc<Semaphore>,
}

impl SqliteReaders {
    /// `options`: read-only ones.
    pub fn new(options: SqliteConnectOptions) -> Self {
        SqliteReaders {
            options: options.pragma("cache_size", format!("-{CACHE_KIB}")),
            free: Arc::new(Semaphore::new(EXPORT_READERS)),
        }
    }

    pub async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        which: ExportColumns,
    ) -> StoreResult<ExportStream> {
        let mut q = export::query::<Sqlite>(scope, audience, filter, which);
        let reader = export::wait_for_reader(&self.free).await?;
        let mut conn = self
            .options
            .connect()
            .await
            .context("opening the SQLite database for an export")?;
        Ok(export::spawn(move |mut chunks| async move {
            let _reader = reader;
            chunks.read(&mut conn, &mut q).await.map(|_| ())
        }))
    }
}
