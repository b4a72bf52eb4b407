//! The store's contract ([`sitetrail_store::contract`]) on PostgreSQL, a fresh database per
//! test on the server `SITETRAIL_TEST_POSTGRES` names (default the local one; unreachable, the
//! tests are skipped, or fail with `SITETRAIL_TEST_SERVICES=required`), and what only
//! PostgreSQL does: several servers on one database, NOTIFY, writers whose connections die.

use std::sync::Arc;

use async_trait::async_trait;
use sitetrail_core::{ActivityFilter, ActorKind, Audience, Page, Status, StoredActivity};
use sitetrail_store::contract::{Fixture, Harness, assert_acme_chain_intact, done, new};
use sitetrail_store::{DynStore, Scope};
use sitetrail_store_postgres::PgStore;
use sitetrail_store_postgres::testkit::ScratchDatabase;
use sqlx::Connection;

/// A fresh database, dropped when the test ends.
struct Postgres {
    db: Arc<ScratchDatabase>,
    store: Option<Arc<PgStore>>,
}

/// A fixture and its database (for tests that reach the server around the store).
async fn scratch() -> Option<(Fixture, Arc<ScratchDatabase>)> {
    let db = Arc::new(ScratchDatabase::for_tests("sitetrail_test").await?);
    let store = Arc::new(PgStore::open(db.url()).await.unwrap());
    let harness = Postgres {
        db: db.clone(),
        store: Some(store.clone()),
    };
    Some((Fixture::new(store, harness).await, db))
}

async fn fixture() -> Option<Fixture> {
    scratch().await.map(|(f, _)| f)
}

#[async_trait(?Send)]
impl Harness for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn open(&self) -> DynStore {
        Arc::new(PgStore::open(self.db.url()).await.unwrap())
    }

    fn forget_store(&mut self) {
        self.store = None;
    }

    async fn raw(&self, sql: &str) {
        let mut c = sqlx::PgConnection::connect(self.db.url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    }

    async fn assert_list_uses_an_index(&self, scope: &Scope, audience: Audience, page: Page) {
        let db = self.store.as_ref().expect("the fixture's store");
        let text = db
            .explain_list(scope, audience, &ActivityFilter::default(), page)
            .await
            .unwrap()
            .join(" | ");
        assert!(
            text.contains("Index Scan using activities_by_")
                || text.contains("Index Scan Backward using activities_by_"),
            "{text}"
        );
        assert!(!text.contains("Sort"), "{text}");
        assert!(!text.contains("Bitmap"), "{text}");
    }

    async fn analyze(&self) {
        if let Some(db) = &self.store {
            db.analyze().await.unwrap();
        }
    }
}

sitetrail_store::contract_tests!(fixture());

#[tokio::test]
async fn postgres_a_commit_on_one_server_wakes_the_others_at_once() {
    let Some(f) = fixture().await else {
        return;
    };
    let other = f.harness.open().await;
    let mut woken = other.subscribe_commits();
    // The listener connects in the background; give it a moment before the commit.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    f.store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), woken.recv())
        .await
        .expect("NOTIFY reaches the other server")
        .unwrap();
    assert_eq!(n, f.store.last_change_no().await.unwrap());
}

#[tokio::test]
async fn postgres_a_writer_whose_connection_dies_reconnects_and_loses_nothing_it_answered() {
    let Some((f, db)) = scratch().await else {
        return;
    };
    let first = f
        .store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    // The group that meets the dead connection fails whole; the next one reconnects.
    let mut answered = Vec::new();
    for _ in 0..3 {
        if let Ok(mut r) = f
            .store
            .record(vec![new("acme", "shop", ActorKind::User)])
            .await
        {
            answered.push(r.remove(0).activity.id);
        }
    }
    assert!(answered.len() >= 2, "{answered:?}");
    for id in answered.iter().chain([&first[0].activity.id]) {
        assert!(f.store.activity(id).await.unwrap().is_some(), "{id}");
    }
    let all = f.store.changes_after(0, None, 100).await.unwrap();
    assert_eq!(all.len(), answered.len() + 1, "a failed write left nothing");
}

#[tokio::test]
async fn postgres_an_unreachable_server_is_a_clear_error() {
    let Err(e) =
        ScratchDatabase::create("postgres://postgres:hunter2@127.0.0.1:9/postgres", "x").await
    else {
        panic!("nothing listens on port 9")
    };
    let text = format!("{e:#}");
    assert!(text.contains("not reachable"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let Err(e) = PgStore::open("postgres://postgres:hunter2@127.0.0.1:9/x").await else {
        panic!("nothing listens on port 9")
    };
    assert!(!format!("{e:#}").contains("hunter2"));
}

/// Publishers recording batches without ids on `stores` at once (each `rounds` batches of
/// `size` per task, ending the first activity of every fourth), while a reader follows
/// `changes_after` from the number it started at: the reader must never go back, and must end
/// with every activity as the log holds it. Returns every answered activity.
async fn record_everywhere_while_a_reader_follows(
    stores: &[DynStore],
    tasks: usize,
    rounds: usize,
    size: usize,
) -> Vec<StoredActivity> {
    let start = stores[0].last_change_no().await.unwrap();
    let ended_per_task = rounds.div_ceil(4);
    let total = (stores.len() * tasks * (rounds * size + ended_per_task)) as i64;
    let writers: Vec<_> = stores
        .iter()
        .flat_map(|store| {
            (0..tasks).map(move |t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut answered = Vec::new();
                    for i in 0..rounds {
                        let batch = (0..size)
                            .map(|_| new("acme", ["shop", "blog"][(t + i) % 2], ActorKind::User))
                            .collect();
                        let recorded = store.record(batch).await.unwrap();
                        assert!(recorded.iter().all(|r| r.created));
                        if i % 4 == 0 {
                            let id = &recorded[0].activity.id;
                            store.end(id, done(Status::Completed)).await.unwrap();
                        }
                        answered.extend(recorded.into_iter().map(|r| r.activity));
                    }
                    answered
                })
            })
        })
        .collect();
    let reader = {
        let store = stores[0].clone();
        tokio::spawn(async move {
            let mut head = start;
            let mut seen = std::collections::HashMap::new();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
            while head < start + total {
                assert!(tokio::time::Instant::now() < deadline, "stuck at {head}");
                for c in store.changes_after(head, None, 50).await.unwrap() {
                    // An activity ended since keeps only its last number: numbers may be
                    // passed over, never go back.
                    assert!(c.change_no > head, "{} after {head}", c.change_no);
                    head = c.change_no;
                    seen.insert(c.activity.id.clone(), c.change_no);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut answered = Vec::new();
    for w in writers {
        answered.extend(w.await.unwrap());
    }
    let seen = reader.await.unwrap();
    // What the reader saw last of each activity is what the log holds now: no change
    // committed behind it.
    let now = stores[0].changes_after(start, None, 100_000).await.unwrap();
    assert_eq!(now.len(), answered.len());
    assert_eq!(seen.len(), now.len(), "the reader saw every activity");
    for c in now {
        assert_eq!(seen[&c.activity.id], c.change_no, "{}", c.activity.id);
    }
    answered
}

/// What each activity's answer said is what the log holds, each once, with its own `seq`.
async fn assert_answers_are_stored(store: &DynStore, answered: &[StoredActivity]) {
    let ids: std::collections::HashSet<_> = answered.iter().map(|a| &a.id).collect();
    let seqs: std::collections::HashSet<_> = answered.iter().map(|a| a.seq).collect();
    assert_eq!(ids.len(), answered.len(), "ids are unique");
    assert_eq!(seqs.len(), answered.len(), "seqs are unique");
    for a in answered {
        let stored = store
            .activity(&a.id)
            .await
            .unwrap()
            .expect("answered, so stored");
        assert_eq!(stored.seq, a.seq, "{}", a.id);
        assert_eq!(stored.created_at, a.created_at, "{}", a.id);
    }
}

#[tokio::test]
async fn postgres_publishers_queued_behind_each_commit_lose_nothing_and_readers_skip_nothing() {
    let Some(f) = fixture().await else {
        return;
    };
    // Sixteen publishers keep requests queued behind every commit, so groups hold many.
    let answered =
        record_everywhere_while_a_reader_follows(std::slice::from_ref(&f.store), 16, 20, 5).await;
    assert_eq!(answered.len(), 16 * 20 * 5);
    assert_answers_are_stored(&f.store, &answered).await;
    let links = assert_acme_chain_intact(&f.store).await;
    assert!(links >= 16 * (20 * 5 + 5), "{links} links");
}

#[tokio::test]
async fn postgres_two_servers_writing_at_once_see_each_others_writes() {
    let Some(f) = fixture().await else {
        return;
    };
    let other = f.harness.open().await;
    let stores: Vec<DynStore> = vec![f.store.clone(), other];
    // Two servers take the counter in turns: each group must build on the chain head and
    // the change number the other server's last commit left.
    let answered = record_everywhere_while_a_reader_follows(&stores, 8, 8, 3).await;
    assert_eq!(answered.len(), 2 * 8 * 8 * 3);
    assert_answers_are_stored(&f.store, &answered).await;
    let links = assert_acme_chain_intact(&f.store).await;
    assert!(links as usize >= answered.len(), "{links} links");
}

#[tokio::test]
async fn postgres_writer_connections_killed_under_load_lose_nothing_answered() {
    let Some((f, db)) = scratch().await else {
        return;
    };
    let start = f.store.last_change_no().await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Publishers keep groups queued, so a kill finds the writer inside a group.
    let publishers: Vec<_> = (0..16)
        .map(|t| {
            let store = f.store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut answered, mut failed) = (Vec::new(), 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let batch = (0..4)
                        .map(|_| new("acme", ["shop", "blog"][t % 2], ActorKind::User))
                        .collect();
                    match store.record(batch).await {
                        Ok(recorded) => answered.extend(recorded.into_iter().map(|r| r.activity)),
                        Err(_) => failed += 1,
                    }
                }
                (answered, failed)
            })
        })
        .collect();
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND state <> 'idle'",
        )
        .execute(&mut admin)
        .await
        .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut answered, mut failed) = (Vec::new(), 0);
    for p in publishers {
        let (a, n) = p.await.unwrap();
        answered.extend(a);
        failed += n;
    }
    assert!(failed > 0, "no group met a killed connection");
    assert_answers_are_stored(&f.store, &answered).await;
    // The change numbers committed form one run without gaps or repeats, and the chain holds.
    let changes = f.store.changes_after(start, None, 100_000).await.unwrap();
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(
            c.change_no,
            start + 1 + i as i64,
            "change numbers have no gaps"
        );
    }
    assert!(changes.len() >= answered.len());
    assert_acme_chain_intact(&f.store).await;
}
