//! sitetrail's staging engine.

mod backups;
mod base;
mod build;
mod catch_up;
pub mod config;
pub mod confined;
pub mod copy;
pub mod db;
mod diff;
pub mod health;
mod ids;
mod journal;
mod live_owned;
pub mod lock;
mod merge;
mod merge_apply;
pub mod mysql;
mod operations;
mod owned_rows;
mod pause;
pub mod policy;
mod progress;
pub mod push;
mod push_flow;
mod recover;
mod refusals;
mod restore;
pub mod schema;
pub mod snapshot;
pub mod sqlite_db;
mod staging_env;
mod state;
mod switch;
pub mod tree;
mod undo;
mod undo_carry;
/// A WooCommerce-shaped shop on a real WordPress (the `testkit` feature).
#[cfg(feature = "testkit")]
pub mod woo;
/// Real WordPress sites for tests, benchmarks and the demo (the `testkit` feature).
#[cfg(feature = "testkit")]
pub mod wordpress;
pub mod wpconfig;

pub use operations::{Engine, EngineError, NO_STAGING, Operation, Started, what};
#[cfg(feature = "testkit")]
pub use pause::PausePoint;
pub use policy::{DatabaseHosts, DatabasePolicy};
pub use progress::{ForPeople, Progress};
pub use push::{LiveOwned, OnConflict, OwnedTable, Push, PushReport, PushScope, UndoWindow};
pub use snapshot::{BackupReason, Manifest};
#[cfg(feature = "testkit")]
pub use state::record_made_for_tests;
pub use state::{Running, StagingOrigin, StagingSource, StagingState};

/// Runs blocking file work on tokio's blocking pool, never on the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await?
}
