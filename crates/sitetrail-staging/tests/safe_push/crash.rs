//! kill -9 during an undo and during a restore of live: after the restart's recovery live is
//! whole (its database and files both old or both new), serves, keeps the orders it took,
//! and the activity is ended as interrupted. The engine runs in a child process (this test
//! binary, `safe_push_crash::child`) that stops at a pause point and is killed there, as the
//! push's crash tests do.

use std::time::{Duration, Instant};

use sitetrail_core::{ActivityKind, BackupId, SiteId, Status};
use sitetrail_staging::wordpress::{self, Service, mysql};
use sitetrail_staging::{Engine, Operation, PushScope};

use super::safe_push_restore::back_up_live;
use super::safe_push_shop as shop;
use super::safe_push_support::{completed, push};
use super::{AUTOMATIC_BACKUP, CRASH_POINTS, Fixture, fixture, owner, site_log};

/// Run by the tests below in a child process, which they kill: starts
/// `SITETRAIL_SAFE_PUSH_CRASH_OPERATION` (`undo` or `restore:BACKUP`) on an engine that pauses
/// at `SITETRAIL_SAFE_PUSH_CRASH_PAUSE`, and stays alive, as a server would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the safe push crash tests"]
async fn child() {
    let Ok(dir) = std::env::var("SITETRAIL_SAFE_PUSH_CRASH_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let operation = std::env::var("SITETRAIL_SAFE_PUSH_CRASH_OPERATION").unwrap();
    let operation = match operation.strip_prefix("restore:") {
        Some(backup) => Operation::RestoreLive {
            backup: BackupId::parse(backup).unwrap(),
            scope: PushScope::Site,
        },
        None => Operation::UndoPush,
    };
    let store: sitetrail_store::DynStore = std::sync::Arc::new(
        sitetrail_store_sqlite::SqliteStore::open(&dir.join("log.db"))
            .await
            .unwrap(),
    );
    let mut engine = Engine::new(store, &dir.join("data"), Default::default());
    if let Ok(point) = std::env::var("SITETRAIL_SAFE_PUSH_CRASH_PAUSE")
        .unwrap_or_default()
        .parse()
    {
        engine = engine.pause_at(point);
    }
    let started = engine
        .start(&SiteId::parse("shop").unwrap(), operation, owner())
        .await
        .unwrap();
    let _ = started.finished.await;
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// Runs `operation` in `child` until it reaches `pause`, then kills it (SIGKILL). Returns
/// false when the operation ended without reaching that point (the engine has no such point
/// in this operation).
async fn kill_child_at(f: &Fixture, operation: &str, kind: ActivityKind, pause: &str) -> bool {
    let journal_dir = f.dir.path().join("data/operations");
    let known: Vec<_> = site_log(f).await.into_iter().map(|a| a.id).collect();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "safe_push_crash::child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SITETRAIL_SAFE_PUSH_CRASH_DIR", f.dir.path())
        .env("SITETRAIL_SAFE_PUSH_CRASH_OPERATION", operation)
        .env("SITETRAIL_SAFE_PUSH_CRASH_PAUSE", pause)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let reached = loop {
        let names: Vec<String> = std::fs::read_dir(&journal_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let log = site_log(f).await;
        let reached = if pause == AUTOMATIC_BACKUP {
            log.iter().any(|a| {
                a.activity == ActivityKind::CreateBackup
                    && a.status == Status::InProgress
                    && !known.contains(&a.id)
            })
        } else if pause.is_empty() {
            names.iter().any(|n| n.ends_with(".json"))
        } else {
            names.iter().any(|n| n.ends_with(".paused"))
        };
        if reached {
            break true;
        }
        let ended = log.iter().any(|a| {
            a.activity == kind && !known.contains(&a.id) && a.status != Status::InProgress
        });
        if ended {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "{operation} never reached {pause:?}"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    reached
}

/// Sets live's marker, in its database and in a file, to `value`.
fn mark_live(f: &Fixture, value: &str) {
    f.live
        .php(&format!("update_option('sitetrail_marker', '{value}');"))
        .unwrap();
    std::fs::write(f.live.docroot.join("marker.txt"), value).unwrap();
}

/// After the recovery: live is whole, serves, holds `orders` as they were, and no half-built
/// table is left (tables kept for an undo may remain).
async fn assert_live_whole_with(
    f: &Fixture,
    orders: &[u64],
    before: &[String],
    round: usize,
) -> String {
    let marker = super::assert_live_whole(f, round).await;
    assert_eq!(
        shop::orders(&f.live, orders),
        before,
        "round {round}: the orders live took are there"
    );
    let half_built = mysql(&format!(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}' AND table_name LIKE 'stn%'",
        f.live.db
    ))
    .unwrap();
    assert_eq!(
        half_built.trim(),
        "0",
        "round {round}: no half-built tables"
    );
    marker
}

fn crash_points() -> Vec<&'static str> {
    let mut points = vec![AUTOMATIC_BACKUP];
    points.extend(CRASH_POINTS);
    points
}

#[ignore = "a kill -9 round: run it with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_an_undo_leaves_live_whole_with_its_orders() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    shop::install(&f.live);
    completed(&f, Operation::CreateStaging).await;
    let staging = f.staging();
    staging
        .php("update_option('sitetrail_marker', 'new');")
        .unwrap();
    std::fs::write(staging.docroot.join("marker.txt"), "new").unwrap();
    mark_live(&f, "old");
    let mut orders = Vec::new();
    let mut seen = Vec::new();
    // An undo takes no backup (it destroys nothing), so it has no backup to be killed in.
    for (round, pause) in CRASH_POINTS.into_iter().enumerate() {
        if f.live.option("sitetrail_marker").unwrap() != "new"
            || f.engine.undo_window(&f.site).await.unwrap().is_none()
        {
            completed(&f, Operation::PushToLive(push(PushScope::Site))).await;
        }
        orders.extend(shop::place_orders(&f.live, 2, &format!("round-{round}")));
        let before = shop::orders(&f.live, &orders);
        let reached = kill_child_at(&f, "undo", ActivityKind::UndoPush, pause).await;
        let ended = f.engine.recover().await.unwrap();
        let marker = assert_live_whole_with(&f, &orders, &before, round).await;
        if reached {
            super::assert_interrupted_and_unlocked(&f, ActivityKind::UndoPush, &ended, round).await;
        }
        seen.push((pause, reached, marker));
    }
    eprintln!("undo crash rounds (point, reached, live after): {seen:?}");
    let reached: Vec<_> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
    assert!(
        reached.contains(&"") && reached.contains(&"switched"),
        "the undo was killed while journaled and after its switch: {seen:?}"
    );
    std::mem::forget(staging);
}

#[ignore = "a kill -9 round: run it with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_restore_leaves_live_whole_with_its_orders() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    shop::install(&f.live);
    mark_live(&f, "backup");
    let backup = back_up_live(&f).await;
    mark_live(&f, "current");
    let operation = format!("restore:{backup}");
    let mut orders = Vec::new();
    let mut seen = Vec::new();
    for (round, pause) in crash_points().into_iter().enumerate() {
        orders.extend(shop::place_orders(&f.live, 2, &format!("round-{round}")));
        let before = shop::orders(&f.live, &orders);
        let reached =
            kill_child_at(&f, &operation, ActivityKind::RestoreLiveFromBackup, pause).await;
        let ended = f.engine.recover().await.unwrap();
        let marker = assert_live_whole_with(&f, &orders, &before, round).await;
        if reached {
            super::assert_interrupted_and_unlocked(
                &f,
                ActivityKind::RestoreLiveFromBackup,
                &ended,
                round,
            )
            .await;
        }
        if marker == "backup" {
            mark_live(&f, "current");
        }
        seen.push((pause, reached, marker));
    }
    eprintln!("restore crash rounds (point, reached, live after): {seen:?}");
    let reached: Vec<_> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
    assert!(
        reached.contains(&"") && reached.contains(&"built") && reached.contains(&"switched"),
        "the restore was killed while journaled, built and switched: {seen:?}"
    );
}
