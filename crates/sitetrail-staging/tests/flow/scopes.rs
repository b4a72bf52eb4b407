//! Push scopes on real WordPress: database only, chosen tables, chosen folders each change
//! exactly their part of live (checksums of everything else unchanged), and malformed or
//! unknown choices are refused before anything is logged.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::Digest;
use sitetrail_core::{Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service, WpSite, mysql};
use sitetrail_staging::{EngineError, Operation, Push, PushScope};

use super::{Fixture, fixture, fixture_sqlite, owner};

/// Every file of a tree (links by target), by path, as a content hash; the SQLite database
/// directory left out (it is the database, compared by its rows).
pub(crate) fn tree_sums(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_owned();
        if rel.starts_with("wp-content/database") {
            continue;
        }
        let t = entry.file_type();
        let sum = if t.is_symlink() {
            format!(
                "link:{}",
                std::fs::read_link(entry.path()).unwrap().display()
            )
        } else if t.is_file() {
            hex(&std::fs::read(entry.path()).unwrap())
        } else {
            continue;
        };
        out.insert(rel.to_string_lossy().into_owned(), sum);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// WordPress writes its own caches into its options whenever it loads (transients, the cron
/// schedule): those rows are not an operation's doing and are left out of `wp_options`'s sum.
const OWN_CACHES: &str = "option_name NOT LIKE '%transient%' AND option_name <> 'cron'";

/// `CHECKSUM TABLE` of each of live's own tables (its prefix), by table (`wp_options` without
/// WordPress's own caches).
pub(crate) fn table_sums(f: &Fixture) -> BTreeMap<String, String> {
    if f.live.db.is_empty() {
        return sqlite_sums(&f.live.docroot.join("wp-content/database/.ht.sqlite"));
    }
    let db = &f.live.db;
    let tables = mysql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' AND \
         table_name LIKE 'wp\\_%' ORDER BY table_name"
    ))
    .unwrap();
    let list: Vec<String> = tables.lines().map(|t| format!("`{db}`.`{t}`")).collect();
    let out = mysql(&format!("CHECKSUM TABLE {}", list.join(", "))).unwrap();
    let mut sums: BTreeMap<String, String> = parse_sums(&out)
        .into_iter()
        .map(|(t, s)| (t.rsplit('.').next().unwrap().to_owned(), s))
        .collect();
    let options = mysql(&format!(
        "SET SESSION group_concat_max_len = 1073741824; SELECT MD5(GROUP_CONCAT(CONCAT_WS(0x1f, \
         option_name, option_value, autoload) ORDER BY option_name SEPARATOR 0x1e)) FROM \
         `{db}`.wp_options WHERE {OWN_CACHES}"
    ))
    .unwrap();
    sums.insert("wp_options".into(), options.trim().to_owned());
    sums
}

/// Each `wp_` table of a SQLite database, by table, as a hash of its rows in key order.
fn sqlite_sums(file: &Path) -> BTreeMap<String, String> {
    let sqlite = |sql: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(file)
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let names = sqlite(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'wp\\_%' ESCAPE '\\' ORDER BY name",
    );
    String::from_utf8(names)
        .unwrap()
        .lines()
        .map(|t| {
            (
                t.to_owned(),
                hex(&sqlite(&format!("SELECT * FROM \"{t}\" ORDER BY rowid"))),
            )
        })
        .collect()
}

/// Visits live's home and login pages as the health check does: WordPress writes a few
/// caches into its options on its first visits, which are not a push's doing.
pub(crate) async fn visit(f: &Fixture) {
    for page in ["/", "/wp-login.php"] {
        super::get(&format!("{}{page}", f.live.url)).await;
    }
}

fn parse_sums(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(t, s)| (t.to_owned(), s.to_owned()))
        .collect()
}

/// The tables whose checksum differs between two readings.
pub(crate) fn changed_tables(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|t| before.get(*t) != after.get(*t))
        .cloned()
        .collect()
}

/// The files whose content differs between two readings.
pub(crate) fn changed_files(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    changed_tables(before, after)
}

pub(crate) async fn completed(f: &Fixture, op: Operation) -> StoredActivity {
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

/// Staging as the engine made it, kept: a `WpSite` drops its database when dropped, and
/// staging's is the fixture's to drop.
pub(crate) fn staging(f: &Fixture) -> std::mem::ManuallyDrop<WpSite> {
    std::mem::ManuallyDrop::new(f.staging())
}

pub(crate) fn post_titles(site: &WpSite) -> String {
    site.php(
        "foreach (get_posts(['numberposts' => -1, 'post_type' => 'any', 'post_status' => 'any']) \
         as $p) { echo $p->post_title, \"\\n\"; }",
    )
    .unwrap()
}

fn push(scope: PushScope, tables: &[&str], folders: &[&str]) -> Operation {
    Operation::PushToLive(Push {
        scope,
        tables: tables.iter().map(|s| s.to_string()).collect(),
        folders: folders.iter().map(|s| s.to_string()).collect(),
        keep_staging: true,
        ..Push::default()
    })
}

/// Staging changes a page, an option, a plugin's folder and a file beside it.
fn change_staging(f: &Fixture) {
    let staging = staging(f);
    staging
        .php(
            "wp_insert_post(['post_title' => 'Made on staging', 'post_status' => 'publish']); \
             update_option('blogdescription', 'Tagline made on staging');",
        )
        .unwrap();
    let plugin = staging.docroot.join("wp-content/plugins/flowtest");
    std::fs::create_dir_all(plugin.join("inc")).unwrap();
    std::fs::write(plugin.join("flowtest.php"), "<?php // staging's plugin\n").unwrap();
    std::fs::write(plugin.join("inc/more.php"), "<?php // more\n").unwrap();
    std::fs::write(staging.docroot.join("wp-content/beside.txt"), "staging").unwrap();
    std::fs::write(f.live.docroot.join("wp-content/beside.txt"), "live").unwrap();
}

async fn scopes_change_exactly_their_part(f: Fixture) {
    completed(&f, Operation::CreateStaging).await;
    change_staging(&f);
    let staging_dir = f.dir.path().join("staging");

    // Tables: only posts changes; every other table and every file is as it was.
    visit(&f).await;
    let (tables, files) = (table_sums(&f), tree_sums(&f.live.docroot));
    let a = completed(&f, push(PushScope::Tables, &["posts"], &[])).await;
    assert_eq!(
        a.details["pushed"],
        serde_json::json!({"scope": "tables", "tables": ["posts"], "folders": []})
    );
    assert_eq!(changed_tables(&tables, &table_sums(&f)), vec!["wp_posts"]);
    assert!(changed_files(&files, &tree_sums(&f.live.docroot)).is_empty());
    assert!(post_titles(&f.live).contains("Made on staging"));
    assert_ne!(
        f.live.option("blogdescription").unwrap(),
        "Tagline made on staging"
    );

    // Folders: only the plugin's folder comes; the database and the file beside it stay.
    let (tables, files) = (table_sums(&f), tree_sums(&f.live.docroot));
    let a = completed(
        &f,
        push(PushScope::Folders, &[], &["wp-content/plugins/flowtest"]),
    )
    .await;
    assert_eq!(
        a.details["pushed"]["folders"][0],
        "wp-content/plugins/flowtest"
    );
    assert_eq!(
        changed_tables(&tables, &table_sums(&f)),
        Vec::<String>::new()
    );
    let now = tree_sums(&f.live.docroot);
    assert_eq!(
        changed_files(&files, &now),
        vec![
            "wp-content/plugins/flowtest/flowtest.php",
            "wp-content/plugins/flowtest/inc/more.php"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(f.live.docroot.join("wp-content/beside.txt")).unwrap(),
        "live"
    );
    assert_eq!(
        now["wp-content/plugins/flowtest/flowtest.php"],
        tree_sums(&staging_dir)["wp-content/plugins/flowtest/flowtest.php"]
    );

    // Database: the tables change, no file does.
    let files = tree_sums(&f.live.docroot);
    completed(&f, push(PushScope::Database, &[], &[])).await;
    assert!(changed_files(&files, &tree_sums(&f.live.docroot)).is_empty());
    assert_eq!(
        f.live.option("blogdescription").unwrap(),
        "Tagline made on staging"
    );
    assert_eq!(f.live.option("siteurl").unwrap(), f.live.url);
    let (status, home) = super::get(&f.live.url).await;
    assert_eq!(status, 200);
    assert!(home.contains("Made on staging"));
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_folders_and_database_scopes_each_change_exactly_their_part() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    scopes_change_exactly_their_part(fixture().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_tables_folders_and_database_scopes_each_change_exactly_their_part() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    scopes_change_exactly_their_part(fixture_sqlite().await).await;
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_tables_and_folders_out_of_the_site_are_refused_before_anything_starts() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    completed(&f, Operation::CreateStaging).await;
    let logged = super::site_log(&f).await.len();
    let refused = |op| async { f.engine.start(&f.site, op, owner()).await.err() };
    for (op, words) in [
        (
            push(PushScope::Tables, &["nope"], &[]),
            "Staging has no table named nope",
        ),
        (
            push(PushScope::Tables, &["posts; DROP"], &[]),
            "is not a table name",
        ),
        (
            push(PushScope::Folders, &[], &["../live"]),
            "is not a folder that can be pushed",
        ),
        (
            push(PushScope::Folders, &[], &["wp-config.php"]),
            "is not a folder",
        ),
        (
            push(PushScope::Folders, &[], &["wp-content/nothing-here"]),
            "Staging has no folder",
        ),
        (
            Operation::RestoreLive {
                backup: sitetrail_core::BackupId::parse("b1").unwrap(),
                scope: PushScope::Tables,
            },
            "restored whole",
        ),
    ] {
        match refused(op).await {
            Some(EngineError::Invalid(m)) => assert!(m.contains(words), "{m}"),
            other => panic!("{words}: {other:?}"),
        }
    }
    assert_eq!(
        super::site_log(&f).await.len(),
        logged,
        "nothing was logged"
    );
}
