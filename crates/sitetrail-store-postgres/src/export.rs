//! PostgreSQL's exports: one SELECT with its values bound, on a connection of the export
//! pool, whose rows the server streams as it reads them; the socket's backpressure holds it
//! while the reader waits. A single statement sees one snapshot. The read itself is the
//! store's ([`sitetrail_store::export`]).

use sitetrail_core::{ActivityFilter, Audience};
use sitetrail_store::export::{self, ExportColumns, ExportStream};
use sitetrail_store::{Scope, StoreResult};
use sqlx::{PgPool, Postgres};

pub(crate) async fn export(
    pool: &PgPool,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    which: ExportColumns,
) -> StoreResult<ExportStream> {
    let mut q = export::query::<Postgres>(scope, audience, filter, which);
    let mut conn = pool.acquire().await?;
    Ok(export::spawn(move |mut chunks| async move {
        let outcome = chunks.read(&mut *conn, &mut q).await;
        // A read left half-way would make the connection's next user wait for the rest of
        // its rows: the connection is closed rather than given back.
        if !matches!(outcome, Ok(true)) {
            conn.close_on_drop();
        }
        outcome.map(|_| ())
    }))
}
