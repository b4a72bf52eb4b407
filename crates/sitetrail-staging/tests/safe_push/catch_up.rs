//! A busy shop between a push's merge and its switch: the push reads live's rows, then
//! measures its report and checks its confirmation for seconds while live keeps taking
//! orders and comments. What live took in that window is live's after the push, whole; the
//! same holds between an undo's carry and its switch.

use std::time::{Duration, Instant};

use sitetrail_core::{Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{Engine, Operation, PausePoint, PushScope};

use super::safe_push_shop as shop;
use super::safe_push_support::{completed, for_people, push};
use super::{Fixture, fixture, fixture_sqlite, owner};

/// The marker a push paused at [`PausePoint::Merged`] writes beside its journal.
async fn paused_marker(data: &std::path::Path) -> std::path::PathBuf {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = std::fs::read_dir(data.join("operations"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "paused"));
        if let Some(marker) = found {
            return marker;
        }
        assert!(
            Instant::now() < deadline,
            "the push never reached its merge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`run_paused_after_the_merge`], checked completed with what it caught up after its switch
/// said.
async fn paused_after_the_merge(
    f: &Fixture,
    op: Operation,
    during: impl FnOnce(),
) -> StoredActivity {
    let ended = run_paused_after_the_merge(f, op, during).await;
    assert!(
        ended.details["caught_up_after_switch"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "it says what it caught up: {:?}",
        ended.details
    );
    assert!(
        ended.details.get("caught_up_after_switch_failed").is_none(),
        "{:?}",
        ended.details
    );
    ended
}

/// Runs `op` on an engine that stops it after its merge (an undo: its carry) until `during`
/// has written to live; returns the activity once it ended, checked completed.
async fn run_paused_after_the_merge(
    f: &Fixture,
    op: Operation,
    during: impl FnOnce(),
) -> StoredActivity {
    let data = f.dir.path().join("data");
    let engine =
        Engine::new(f.store.clone(), &data, Default::default()).pause_at(PausePoint::Merged);
    let started = engine.start(&f.site, op, owner()).await.unwrap();
    let marker = paused_marker(&data).await;
    during();
    std::fs::remove_file(&marker).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(240), started.finished)
        .await
        .expect("the operation ends")
        .unwrap();
    assert_eq!(
        ended.status,
        Status::Completed,
        "{:?} {:?}",
        ended.error,
        ended.details
    );
    ended
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_live_takes_between_the_merge_and_the_switch_are_kept() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    shop::install(&f.live);
    let before = shop::place_orders(&f.live, 2, "before-staging");
    completed(&f, Operation::CreateStaging).await;
    let after = shop::place_orders(&f.live, 2, "after-staging");
    let earlier: Vec<u64> = before.iter().chain(&after).copied().collect();
    let earlier_orders = shop::orders(&f.live, &earlier);

    // The merge has read live; the switch has not come. Live takes an HPOS order, an order
    // as a post, and a comment.
    let mut window = None;
    paused_after_the_merge(&f, Operation::PushToLive(push(PushScope::Site)), || {
        let during = shop::place_orders(&f.live, 2, "during-push");
        let comment = shop::add_comment(&f.live, "Ordered while the push was switching");
        let taken = shop::orders(&f.live, &during);
        assert!(taken[0].starts_with("shop_order_placehold|"), "{taken:?}");
        assert!(taken[0].contains("hpos:wc-processing"), "{taken:?}");
        assert!(
            taken[1].starts_with("shop_order|wc-processing"),
            "{taken:?}"
        );
        assert!(
            taken.iter().all(|o| o.contains("item:Croissant")),
            "{taken:?}"
        );
        window = Some((during, taken, comment, shop::comment(&f.live, comment)));
    })
    .await;
    let (during, taken, comment, comment_taken) = window.unwrap();
    // Inside WordPress: the orders of the window, with their meta, items and HPOS rows.
    assert_eq!(
        shop::orders(&f.live, &during),
        taken,
        "the orders live took between the merge and the switch are live's"
    );
    assert_eq!(shop::comment(&f.live, comment), comment_taken);
    assert_eq!(shop::orders(&f.live, &earlier), earlier_orders);
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_live_takes_between_an_undos_carry_and_its_switch_are_kept() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let f = fixture().await;
    shop::install(&f.live);
    shop::place_orders(&f.live, 2, "before-staging");
    completed(&f, Operation::CreateStaging).await;
    completed(&f, Operation::PushToLive(push(PushScope::Site))).await;
    let after_push = shop::place_orders(&f.live, 2, "after-push");
    let after_push_orders = shop::orders(&f.live, &after_push);

    let mut window = None;
    paused_after_the_merge(&f, Operation::UndoPush, || {
        let during = shop::place_orders(&f.live, 2, "during-undo");
        let comment = shop::add_comment(&f.live, "Ordered while the undo was switching");
        let taken = shop::orders(&f.live, &during);
        window = Some((during, taken, comment, shop::comment(&f.live, comment)));
    })
    .await;
    let (during, taken, comment, comment_taken) = window.unwrap();
    assert_eq!(
        shop::orders(&f.live, &during),
        taken,
        "the orders live took between the undo's carry and its switch are live's"
    );
    assert_eq!(shop::comment(&f.live, comment), comment_taken);
    assert_eq!(shop::orders(&f.live, &after_push), after_push_orders);
}

/// On SQLite live's file is not written through its docroot, so what live took in the window
/// is not carried: the push says so for people, and an undo brings it back.
#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_orders_live_takes_between_the_merge_and_the_switch_are_named_not_dropped() {
    if !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let f = fixture_sqlite().await;
    shop::install(&f.live);
    completed(&f, Operation::CreateStaging).await;
    let mut window = None;
    let pushed =
        run_paused_after_the_merge(&f, Operation::PushToLive(push(PushScope::Site)), || {
            let during = shop::place_orders(&f.live, 2, "during-push");
            window = Some((during.clone(), shop::orders(&f.live, &during)));
        })
        .await;
    let (during, taken) = window.unwrap();
    let note = pushed.details["caught_up_after_switch_failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", pushed.details));
    let counted: u64 = note
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the note counts the rows: {note}"));
    assert!(counted >= 2, "{note}");
    assert!(
        note.contains("rows live took during the switch were not carried"),
        "{note}"
    );
    assert!(pushed.description.contains(note), "{}", pushed.description);
    for_people(&pushed.description);
    completed(&f, Operation::UndoPush).await;
    assert_eq!(
        shop::orders(&f.live, &during),
        taken,
        "undoing the push gives live the orders back"
    );
}
