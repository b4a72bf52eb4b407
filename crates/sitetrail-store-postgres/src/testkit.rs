//! What tests and the bench need and the server never does: scratch PostgreSQL databases.
//! Compiled only with the `testkit` feature, which the crates' dev-dependencies (and the
//! bench) turn on.
//!
//! A test that needs PostgreSQL asks for it with [`ScratchDatabase::for_tests`]. When the
//! server is not there, the test is skipped with one line on stderr, unless
//! `SITETRAIL_TEST_SERVICES=required` (as `scripts/test.sh` sets it) makes that a failure.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::redact_url;

/// The server tests use: `SITETRAIL_TEST_POSTGRES`, else the local one.
pub const DEFAULT_TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own on a PostgreSQL server, made for one test or benchmark run and
/// dropped (with whatever is still connected to it) when this is dropped.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on the server `admin_url` names (any database there the
    /// user may connect to; the new one takes its place in the URL).
    pub async fn create(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let admin = connect(admin_url).await?;
        Self::create_with(admin, admin_url, prefix).await
    }

    /// A scratch database for a test, on the server `SITETRAIL_TEST_POSTGRES` names (the
    /// local one by default). `None` when that server is not reachable: the test is skipped,
    /// and says so on stderr. With `SITETRAIL_TEST_SERVICES=required`, an unreachable server
    /// is a failure with the same sentence.
    pub async fn for_tests(prefix: &str) -> Option<Self> {
        let admin_url = std::env::var("SITETRAIL_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_POSTGRES.to_owned());
        match connect(&admin_url).await {
            Ok(admin) => Some(
                Self::create_with(admin, &admin_url, prefix)
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}")),
            ),
            Err(e) => {
                let needs = format!(
                    "needs PostgreSQL at {} (bash scripts/test.sh starts it)",
                    address(&admin_url)
                );
                if services_required() {
                    panic!("{needs}: {e:#}");
                }
                eprintln!("skipped: {needs}");
                None
            }
        }
    }

    async fn create_with(
        mut admin: PgConnection,
        admin_url: &str,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let shown = redact_url(admin_url);
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{prefix}_{suffix}");
        anyhow::ensure!(
            is_plain_name(&name),
            "a scratch database name is lower-case letters, digits and _"
        );
        // An identifier cannot be bound; the name is checked above: letters, digits and _.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating the database {name} on {shown}"))?;
        let _ = admin.close().await;
        let url = with_database(admin_url, &name);
        Ok(ScratchDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: do the work on a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                // Checked to be a plain name when it was made.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                let _ = admin.close().await;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            tracing::warn!(error = ?e, database = %self.name, "dropping a scratch database");
        }
    }
}

/// `SITETRAIL_TEST_SERVICES=required`: a test whose service is missing fails.
pub fn services_required() -> bool {
    std::env::var("SITETRAIL_TEST_SERVICES").is_ok_and(|v| v == "required")
}

async fn connect(admin_url: &str) -> anyhow::Result<PgConnection> {
    let shown = redact_url(admin_url);
    PgConnection::connect(admin_url).await.with_context(|| {
        format!("PostgreSQL is not reachable at {shown}: start it, or name another server")
    })
}

/// `host:port` of a database URL, for a line that says what a test needs.
fn address(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!("{}:{}", o.get_host(), o.get_port()),
        Err(_) => redact_url(url),
    }
}

fn is_plain_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let base = match head[after_scheme..].find('/') {
        Some(i) => &head[..after_scheme + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_url_names_the_new_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u@h?sslmode=disable", "t_1"),
            "postgres://u@h/t_1?sslmode=disable"
        );
    }

    #[test]
    fn a_skip_line_names_the_server_without_its_password() {
        assert_eq!(
            address("postgres://postgres:hunter2@127.0.0.1:1/postgres"),
            "127.0.0.1:1"
        );
        assert_eq!(address(DEFAULT_TEST_POSTGRES), "127.0.0.1:5432");
    }
}
