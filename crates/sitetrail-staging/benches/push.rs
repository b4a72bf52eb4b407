//! A push of a site with 5,000 posts (~20,000 rows), ~3,000 files and 2,000 orders (shaped as
//! WooCommerce stores them: half as posts with meta and items, half as HPOS rows), in one run:
//!
//! 1. safe push (issue #21): a full push (the baseline), a preview, a push after live took
//!    orders since staging was made (its live-owned rows carried over), an undo of that push
//!    after live took more orders, and a database-only push; each with its ratio to the full
//!    push;
//! 2. against the standard pipeline on the same site: `rsync -a --delete` of the files,
//!    `mariadb-dump | mariadb`, then a serialization-aware search-replace in PHP (skipped with
//!    `--safe-only`).
//!
//! Everything runs while a poller requests live's home page; failed requests are counted.
//!
//! cargo bench -p sitetrail-staging --bench push [-- ROUNDS] [--safe-only]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sitetrail_core::{
    Account, AccountId, Actor, EnvironmentSpec, Site, SiteId, SiteUrl, Status, StoredActivity,
};
use sitetrail_staging::wordpress::{self, WpSite, mysql};
use sitetrail_staging::{Engine, Operation, Push, PushScope};
use sitetrail_store::DynStore;
use sitetrail_store_sqlite::SqliteStore;

#[path = "../tests/safe_push/shop.rs"]
mod shop;

const POSTS: usize = 5_000;
const UPLOADS: usize = 420;
/// Orders live has when staging is made.
const ORDERS: usize = 2_000;
/// Orders live takes before the push with live-owned rows, and again before the undo.
const TAKEN: usize = 50;

fn sh(cmd: &str) {
    let status = Command::new("bash")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{cmd}");
}

/// Requests live's home page until stopped; returns (requests, failures).
fn poller(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (total, failed) = (AtomicU64::new(0), AtomicU64::new(0));
        while !stop.load(Ordering::Relaxed) {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "20",
                    &url,
                ])
                .output()
                .unwrap();
            total.fetch_add(1, Ordering::Relaxed);
            if String::from_utf8_lossy(&out.stdout) != "200" {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (total.into_inner(), failed.into_inner())
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let safe_only = std::env::args().any(|a| a == "--safe-only");
    wordpress::available().expect("WordPress, PHP and MariaDB are installed");
    let dir = tempfile::tempdir().unwrap();
    let mut live = WpSite::install(
        dir.path(),
        "live",
        wordpress::free_port(4),
        "wp_",
        "Bench Live",
    )
    .unwrap();
    live.serve().unwrap();
    let staging_port = wordpress::free_port(5);
    let staging_url = format!("http://127.0.0.1:{staging_port}");
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("log.db")).await.unwrap());
    let site = SiteId::parse("bench").unwrap();
    store
        .upsert_account(&Account {
            id: AccountId::parse("acme").unwrap(),
            name: "Acme".into(),
            partner: "Agency".into(),
            partner_colour: None,
        })
        .await
        .unwrap();
    let staging_root = dir.path().join("staging");
    store
        .upsert_site(&Site {
            id: site.clone(),
            account_id: AccountId::parse("acme").unwrap(),
            name: "Bench".into(),
            live: EnvironmentSpec {
                url: SiteUrl::parse(&live.url).unwrap(),
                docroot: Some(live.docroot.to_string_lossy().into_owned()),
            },
            staging: Some(EnvironmentSpec {
                url: SiteUrl::parse(&staging_url).unwrap(),
                docroot: Some(staging_root.to_string_lossy().into_owned()),
            }),
        })
        .await
        .unwrap();
    let engine = Engine::new(
        store.clone(),
        &dir.path().join("data"),
        sitetrail_staging::DatabasePolicy::default(),
    );
    let run = |op: Operation| {
        let engine = engine.clone();
        let site = site.clone();
        async move {
            let started = engine.start(&site, op, Actor::system()).await.unwrap();
            started.finished.await.unwrap()
        }
    };
    shop::install(&live);
    eprintln!("placing {ORDERS} orders in live ...");
    shop::place_orders(&live, ORDERS, "bench");
    assert_eq!(
        run(Operation::CreateStaging).await.status,
        Status::Completed
    );
    let config = sitetrail_staging::wpconfig::read(&staging_root).unwrap();
    let staging = WpSite::attach(
        staging_root.clone(),
        &staging_url,
        staging_port,
        &config.name,
        &config.prefix,
    );

    eprintln!("generating {POSTS} posts and {UPLOADS} uploads in staging ...");
    staging
        .php(&format!(
            r#"wp_defer_term_counting(true); wp_suspend_cache_addition(true);
            for ($i = 0; $i < {POSTS}; $i++) {{
                $id = wp_insert_post(['post_title' => "Post $i", 'post_status' => 'publish',
                    'post_content' => "<p>Body $i with a <a href=\"{u}/post-$i\">link</a> and an image {u}/wp-content/uploads/2026/11/img-$i.jpg</p>"]);
                add_post_meta($id, 'sitetrail_meta', ['source' => '{u}', 'n' => $i]);
            }}
            update_option('sitetrail_widget', ['title' => 'Links', 'url' => '{u}/shop', 'nested' => serialize(['{u}/x'])]);"#,
            u = staging_url
        ))
        .unwrap();
    let uploads = staging_root.join("wp-content/uploads/2026/11");
    std::fs::create_dir_all(&uploads).unwrap();
    for i in 0..UPLOADS {
        std::fs::write(
            uploads.join(format!("img-{i}.jpg")),
            vec![(i % 251) as u8; 8_192],
        )
        .unwrap();
    }
    let rows = mysql(&format!(
        "SELECT SUM(table_rows) FROM information_schema.tables WHERE table_schema = '{}'",
        config.name
    ))
    .unwrap();
    let files = walkdir::WalkDir::new(&staging_root)
        .into_iter()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_type().is_file()))
        .count();
    eprintln!("staging: ~{} rows, {files} files", rows.trim());

    safe_push_rounds(&run, &live, rounds).await;
    if safe_only {
        let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", config.name));
        return;
    }

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut our_failures = 0;
    let mut their_failures = 0;
    let mut our_requests = 0;
    let mut their_requests = 0;
    let search_replace = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/search-replace.php");
    for round in 1..=rounds {
        // sitetrail: backup of live, build aside, one switch.
        let stop = Arc::new(AtomicBool::new(false));
        let poll = poller(live.url.clone(), stop.clone());
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let pushed = run(Operation::PushToLive(sitetrail_staging::Push {
            scope: PushScope::Site,
            keep_staging: true,
            ..Default::default()
        }))
        .await;
        let took = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let (requests, failed) = poll.join().unwrap();
        assert_eq!(pushed.status, Status::Completed, "{:?}", pushed.error);
        ours.push(took);
        our_failures += failed;
        our_requests += requests;

        // The standard pipeline, on the same site.
        let stop = Arc::new(AtomicBool::new(false));
        let poll = poller(live.url.clone(), stop.clone());
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        sh(&format!(
            "rsync -a --delete --exclude /wp-config.php {}/ {}/",
            staging_root.display(),
            live.docroot.display()
        ));
        sh(&format!(
            "mariadb-dump -uroot -h127.0.0.1 -P3306 --single-transaction {} | sed 's/`{sp}/`wp_/g' | mariadb -uroot -h127.0.0.1 -P3306 {}",
            config.name,
            live.db,
            sp = config.prefix
        ));
        sh(&format!(
            "mariadb -uroot -h127.0.0.1 -P3306 {db} -e \"UPDATE wp_usermeta SET meta_key = CONCAT('wp_', SUBSTRING(meta_key, {n})) WHERE meta_key LIKE '{sp}%'; UPDATE wp_options SET option_name = 'wp_user_roles' WHERE option_name = '{sp}user_roles'\"",
            db = live.db,
            n = config.prefix.len() + 1,
            sp = config.prefix.replace('_', "\\\\_")
        ));
        sh(&format!(
            "php {search_replace} 127.0.0.1 3306 root '' {} {} {}",
            live.db, staging_url, live.url
        ));
        let took = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let (requests, failed) = poll.join().unwrap();
        theirs.push(took);
        their_failures += failed;
        their_requests += requests;
        eprintln!(
            "round {round}: sitetrail {:.2} s, pipeline {:.2} s",
            ours[round - 1],
            theirs[round - 1]
        );
        // Leave no tables of the pipeline's prefix behind in live's database.
        let stray = mysql(&format!(
            "SELECT GROUP_CONCAT(CONCAT('`', table_name, '`')) FROM information_schema.tables WHERE table_schema = '{}' AND table_name NOT LIKE 'wp\\_%'",
            live.db
        ))
        .unwrap();
        if stray.trim() != "NULL" && !stray.trim().is_empty() {
            mysql(&format!(
                "DROP TABLE `{}`.{}",
                live.db,
                stray.trim().replace(',', &format!(", `{}`.", live.db))
            ))
            .unwrap();
        }
    }
    let (o, p) = (median(ours), median(theirs));
    println!();
    println!(
        "push of a site with {POSTS} posts (~{} rows) and {files} files, {rounds} rounds, medians",
        rows.trim()
    );
    println!("| | time (s) | failed requests to live during it |");
    println!("|---|---|---|");
    println!(
        "| sitetrail push (backup of live included) | {o:.2} | {our_failures} of {our_requests} |"
    );
    println!(
        "| rsync + mariadb-dump \\| mariadb + PHP search-replace | {p:.2} | {their_failures} of {their_requests} |"
    );
    println!("| ratio sitetrail / pipeline | {:.2} | |", o / p);
    let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", config.name));
}

/// Runs `op` while a poller requests live's home page; returns its activity, its time in
/// seconds and the poller's (requests, failures).
async fn timed<F, Fut>(run: &F, live: &WpSite, op: Operation) -> (StoredActivity, f64, (u64, u64))
where
    F: Fn(Operation) -> Fut,
    Fut: std::future::Future<Output = StoredActivity>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let poll = poller(live.url.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let kind = op.kind();
    let done = run(op).await;
    let took = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let polled = poll.join().unwrap();
    eprintln!(
        "{kind:?}: {took:.2} s, phases (ms) {}",
        done.details.get("phases_ms").cloned().unwrap_or_default()
    );
    assert_eq!(
        done.status,
        Status::Completed,
        "{kind:?}: {:?} {:?}",
        done.error,
        done.details
    );
    (done, took, polled)
}

/// The safe push figures: per round a full push, a preview, a push after live took orders,
/// an undo after live took more, a database-only push. Prints medians and ratios to the full
/// push.
async fn safe_push_rounds<F, Fut>(run: &F, live: &WpSite, rounds: usize)
where
    F: Fn(Operation) -> Fut,
    Fut: std::future::Future<Output = StoredActivity>,
{
    let site_push = || {
        Operation::PushToLive(Push {
            keep_staging: true,
            ..Push::site()
        })
    };
    let names = [
        "full push (baseline)",
        "preview",
        "push with live-owned rows (live took orders since staging was made)",
        "undo (after live took more orders)",
        "database-only push",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut polls = vec![(0u64, 0u64); names.len()];
    let mut kept = Vec::new();
    for round in 1..=rounds {
        let mut record = |i: usize, took: f64, (requests, failed): (u64, u64)| {
            times[i].push(took);
            polls[i].0 += requests;
            polls[i].1 += failed;
        };
        let (_, t, p) = timed(run, live, site_push()).await;
        record(0, t, p);
        let (_, t, p) = timed(run, live, Operation::PreviewPush(Push::site())).await;
        record(1, t, p);
        shop::place_orders(live, TAKEN, &format!("round-{round}-push"));
        let (pushed, t, p) = timed(run, live, site_push()).await;
        record(2, t, p);
        kept.push(
            pushed
                .details
                .get("preview")
                .and_then(|r| r.get("kept_from_live"))
                .and_then(|k| k.as_u64())
                .unwrap_or(0),
        );
        shop::place_orders(live, TAKEN, &format!("round-{round}-undo"));
        let (_, t, p) = timed(run, live, Operation::UndoPush).await;
        record(3, t, p);
        let (_, t, p) = timed(
            run,
            live,
            Operation::PushToLive(Push {
                keep_staging: true,
                ..Push::scoped(PushScope::Database)
            }),
        )
        .await;
        record(4, t, p);
        eprintln!(
            "round {round}: {}",
            times
                .iter()
                .map(|t| format!("{:.2}", t[round - 1]))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    println!();
    println!(
        "safe push on the bench site plus {ORDERS} orders, {rounds} rounds, medians \
         (live took {TAKEN} orders before the push with live-owned rows and {TAKEN} more before the undo; \
         rows kept from live per push: {kept:?})"
    );
    println!("| | time (s) | ratio to the full push | failed requests to live during it |");
    println!("|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        println!(
            "| {name} | {:.2} | {:.2} | {} of {} |",
            medians[i],
            medians[i] / medians[0],
            polls[i].1,
            polls[i].0
        );
    }
}
