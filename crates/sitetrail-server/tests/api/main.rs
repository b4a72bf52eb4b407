//! sitetrail's server, tested from outside: a real server on port 0 with a fresh database
//! (SQLite, or PostgreSQL with `SITETRAIL_TEST_BACKEND=postgres`; see `helpers.rs`).

mod activities;
mod first_hour;
mod helpers;
mod hostile_identity;
mod hostile_sharing;
mod integrity;
mod leak;
mod pages;
mod redaction;
mod requests;
mod safe_push;
mod safe_push_pages;
mod safe_push_wordpress;
mod security;
mod servers;
mod staging;
mod staging_pages;
mod tenancy;

pub use helpers::*;
