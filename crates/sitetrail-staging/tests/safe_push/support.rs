//! What the safe push tests share: fingerprints of live (its tables' checksums, its tree),
//! the report an activity carries, operations run with a poller on live.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sitetrail_core::{Status, StoredActivity};
use sitetrail_staging::wordpress::mysql;
use sitetrail_staging::{OnConflict, Operation, Push, PushReport, PushScope};

use super::Fixture;

/// `CHECKSUM TABLE` of every table of a site's MariaDB database, by table name. Left out:
/// sitetrail's own tables aside (`stn…` built, `sto…` kept for an undo), and in `options`
/// the rows WordPress itself rewrites when it serves a page (transients, its cron schedule),
/// since the health check after a switch serves pages.
pub fn table_checksums(db: &str) -> BTreeMap<String, String> {
    super::checksums(db)
        .lines()
        .map(|l| {
            let (t, c) = l.split_once('\t').unwrap();
            (t.rsplit('.').next().unwrap().to_owned(), c.to_owned())
        })
        .filter(|(t, _)| !t.starts_with("stn") && !t.starts_with("sto"))
        .map(|(t, c)| {
            if t.ends_with("_options") {
                let rows = mysql(&format!(
                    "SET SESSION group_concat_max_len = 100000000; SELECT MD5(GROUP_CONCAT(option_name, '=', MD5(option_value) ORDER BY option_name)) \
                     FROM `{db}`.`{t}` WHERE option_name NOT LIKE '%transient%' AND option_name <> 'cron'"
                ))
                .unwrap();
                (t, rows.trim().to_owned())
            } else {
                (t, c)
            }
        })
        .collect()
}

/// Every file and link under a docroot (the docroot itself may be a link), by relative path:
/// the hash of its bytes, or where a link points. WordPress's SQLite database
/// (`wp-content/database/`) is left out: it is compared as a database.
pub fn tree(docroot: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(docroot).follow_root_links(true) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(docroot)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("wp-content/database/") {
            continue;
        }
        if e.file_type().is_symlink() {
            let to = std::fs::read_link(e.path()).unwrap();
            out.insert(rel, format!("link:{}", to.display()));
        } else if e.file_type().is_file() {
            let bytes = std::fs::read(e.path()).unwrap();
            out.insert(rel, hex::encode(Sha256::digest(&bytes)));
        }
    }
    out
}

/// The entries of `a` and `b` that differ (added, changed or removed), by path.
pub fn differing(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// The report a preview or a push wrote into its details.
pub fn report(a: &StoredActivity) -> PushReport {
    let v = a
        .details
        .get("preview")
        .unwrap_or_else(|| panic!("{:?} has details.preview: {:?}", a.activity, a.details));
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("details.preview reads: {e}: {v}"))
}

pub fn push(scope: PushScope) -> Push {
    Push {
        scope,
        keep_staging: true,
        ..Push::default()
    }
}

pub fn push_choosing(on_conflict: OnConflict) -> Push {
    Push {
        on_conflict,
        ..push(PushScope::Site)
    }
}

pub async fn completed(f: &Fixture, op: Operation) -> StoredActivity {
    let a = f.run(op).await;
    assert_eq!(
        a.status,
        Status::Completed,
        "{:?}: {:?} {:?}",
        a.activity,
        a.error,
        a.details
    );
    a
}

/// Runs `op` while a poller requests live's home page from before it starts until after it
/// ends; asserts that no request failed.
pub async fn run_polled(f: &Fixture, op: Operation) -> StoredActivity {
    let stop = Arc::new(AtomicBool::new(false));
    let (poller, failed, total) = super::poll(f.live.url.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kind = op.kind();
    let a = f.run(op).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();
    let (failed, total) = (
        failed.load(Ordering::Relaxed),
        total.load(Ordering::Relaxed),
    );
    eprintln!("{kind:?}: {failed} of {total} requests to live failed");
    assert!(total > 3, "the poller ran during {kind:?}");
    assert_eq!(
        failed, 0,
        "no request to live fails during {kind:?} (of {total})"
    );
    a
}

/// A page's text on live, over HTTP.
pub async fn page_text(url: &str, page: u64) -> String {
    let (status, body) = super::get(&format!("{url}/?page_id={page}")).await;
    assert_eq!(status, 200, "page {page} at {url}");
    body
}

/// The words a person reads contain no path, SQL or server error.
pub fn for_people(text: &str) {
    for bad in [
        "/tmp", "/work", "SQL", "errno", "mysql", "mariadb", "ERROR ", "\\",
    ] {
        assert!(!text.contains(bad), "{bad:?} in words for people: {text}");
    }
}
