//! sitetrail's server, tested from outside: a real server on port 0 with a fresh SQLite file.

mod activities;
mod helpers;
mod pages;
mod redaction;
mod tenancy;

pub use helpers::*;
