//! sitetrail's staging engine.

pub mod copy;
pub mod lock;
pub mod mysql;
pub mod snapshot;
pub mod tree;
pub mod wpconfig;
