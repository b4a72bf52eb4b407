//! Backups and templates as pages show them: when, of what, why, and how big. The engine's
//! snapshot listing reads manifests from disk, so it runs off the async runtime.

use sitetrail_core::SiteId;
use sitetrail_staging::{BackupReason, Engine, Manifest};

use crate::error::ApiError;
use crate::pages::PageError;
use crate::pages::time::TimeCell;

/// One backup or template.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub created: TimeCell,
    pub environment: &'static str,
    pub reason: &'static str,
    /// `1,234 files, 45.6 MB`
    pub files: String,
    /// `12 tables, 3,456 rows`
    pub database: String,
    /// What a `<select>` shows for it: for a backup, its time then `choice_rest`.
    pub choice: String,
    /// A backup's choice after its time (` · Live · Daily · 45.6 MB`): the script writes the
    /// time in the viewer's zone before it, as tables show times.
    pub choice_rest: String,
}

impl Snapshot {
    fn of(m: &Manifest) -> Snapshot {
        let created = TimeCell::of(m.created_at);
        let environment = m.environment.map_or("", |e| e.label());
        let reason = reason_label(m.reason);
        let files = format!(
            "{} {}, {}",
            count(m.files.files),
            plural(m.files.files, "file", "files"),
            size(m.files.bytes)
        );
        let database = format!(
            "{} {}, {} {}",
            count(m.database.tables),
            plural(m.database.tables, "table", "tables"),
            count(m.database.rows),
            plural(m.database.rows, "row", "rows")
        );
        let is_template = m.reason == BackupReason::Template;
        // A template is chosen by its name; never by the address of the site it was made from.
        let choice_rest = if is_template {
            String::new()
        } else {
            format!(" · {environment} · {reason} · {}", size(m.files.bytes))
        };
        let choice = if is_template {
            m.display_name().to_owned()
        } else {
            format!("{}{choice_rest}", created.text)
        };
        Snapshot {
            id: m.id.clone(),
            choice_rest,
            created,
            environment,
            reason,
            files,
            database,
            choice,
        }
    }
}

fn reason_label(r: BackupReason) -> &'static str {
    match r {
        BackupReason::Manual => "Manual",
        BackupReason::Daily => "Daily",
        BackupReason::Automatic => "Automatic, before an operation",
        BackupReason::Template => "Template",
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `1234567` → `1,234,567`
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in decimal units, one decimal from kB up: `512 B`, `45.6 MB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

async fn listing(
    engine: &Engine,
    list: impl FnOnce(&Engine) -> anyhow::Result<Vec<Manifest>> + Send + 'static,
) -> Result<Vec<Snapshot>, PageError> {
    let engine = engine.clone();
    let manifests = tokio::task::spawn_blocking(move || list(&engine))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)?;
    Ok(manifests.iter().map(Snapshot::of).collect())
}

/// A site's backups, newest first.
pub async fn backups(engine: &Engine, site: &SiteId) -> Result<Vec<Snapshot>, PageError> {
    let site = site.clone();
    listing(engine, move |e| e.snapshots().backups(&site)).await
}

/// The templates a staging can be reset from.
pub async fn templates(engine: &Engine) -> Result<Vec<Snapshot>, PageError> {
    listing(engine, |e| e.snapshots().templates()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_000), "1.0 kB");
        assert_eq!(size(45_600_000), "45.6 MB");
        assert_eq!(size(999_960), "1.0 MB");
        assert_eq!(size(3_200_000_000), "3.2 GB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
