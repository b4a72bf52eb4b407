//! sitetrail's staging engine.

pub mod config;
pub mod confined;
pub mod copy;
pub mod db;
pub mod engine;
pub mod lock;
pub mod mysql;
pub mod policy;
pub mod snapshot;
pub mod sqlite_db;
pub mod tree;
pub mod wordpress;
pub mod wpconfig;

pub use engine::{Engine, EngineError, Operation, Progress, PushScope, Started};
pub use policy::{DatabaseHosts, DatabasePolicy};
pub use snapshot::{BackupReason, Manifest};
