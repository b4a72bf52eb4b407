//! The store's contract, run against each backend.

use std::sync::Arc;

use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, ActivityKind, Actor, ActorKind, Audience,
    Email, Ending, Environment, EnvironmentSpec, NewActivity, Page, RawQuery, Site, SiteId,
    SiteUrl, Status, Timestamp,
};
use sitetrail_store::sqlite::SqliteStore;
use sitetrail_store::{DynStore, Scope, Store, StoreError};

const SUPPORT: &str = "sam.rivera@partner.example";

struct Fixture {
    store: DynStore,
    sqlite: Arc<SqliteStore>,
    dir: tempfile::TempDir,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("log.db")).await.unwrap());
    let store: DynStore = sqlite.clone();
    seed(&store).await;
    Fixture { store, sqlite, dir }
}

fn acc(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}
fn site(s: &str) -> SiteId {
    SiteId::parse(s).unwrap()
}

async fn seed(store: &DynStore) {
    for (a, s) in [("acme", "shop"), ("acme", "blog"), ("globex", "portal")] {
        store
            .upsert_account(&Account {
                id: acc(a),
                name: a.into(),
                partner: "Agency".into(),
                partner_colour: None,
            })
            .await
            .unwrap();
        store
            .upsert_site(&Site {
                id: site(s),
                account_id: acc(a),
                name: s.into(),
                live: EnvironmentSpec {
                    url: SiteUrl::parse(&format!("https://{s}.example")).unwrap(),
                    docroot: None,
                },
                staging: None,
            })
            .await
            .unwrap();
    }
}

fn new(account: &str, s: &str, kind: ActorKind) -> NewActivity {
    NewActivity {
        id: None,
        account_id: acc(account),
        site_id: site(s),
        environment: Environment::Staging,
        activity: ActivityKind::PushStagingToLive,
        actor: match kind {
            ActorKind::System => Actor::system(),
            k => Actor::person(k, Email::parse(SUPPORT).unwrap(), Some("Sam Rivera".into())),
        },
        description: "Pushing staging to live".into(),
        status: Status::InProgress,
        created_at: None,
        completed_at: None,
        error: None,
        details: Default::default(),
    }
}

fn done(status: Status) -> Ending {
    Ending {
        status,
        description: None,
        error: None,
        completed_at: None,
    }
}

fn scope(a: &str, s: Option<&str>) -> Scope {
    Scope {
        account: acc(a),
        site: s.map(site),
    }
}

fn filter(audience: Audience, raw: RawQuery) -> ActivityFilter {
    ActivityFilter::parse(&raw, audience).unwrap()
}

#[tokio::test]
async fn an_activity_ends_once_and_a_second_end_is_a_conflict() {
    let f = sqlite().await;
    let a = f
        .store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap();
    let id = a[0].activity.id.clone();
    let ended = f.store.end(&id, done(Status::Failed)).await.unwrap();
    assert_eq!(ended.status, Status::Failed);
    assert!(ended.completed_at.unwrap() >= ended.created_at);
    let again = f.store.end(&id, done(Status::Completed)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let stored = f.store.activity(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Failed);
    let missing = f
        .store
        .end(&ActivityId::parse("nope").unwrap(), done(Status::Completed))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn a_replay_returns_the_same_activity_and_another_body_conflicts() {
    let f = sqlite().await;
    let mut a = new("acme", "shop", ActorKind::User);
    a.id = Some(ActivityId::parse("pub-1").unwrap());
    let first = f.store.record(vec![a.clone()]).await.unwrap().remove(0);
    let replay = f.store.record(vec![a.clone()]).await.unwrap().remove(0);
    assert!(first.created && !replay.created);
    assert_eq!(first.activity, replay.activity);
    a.description = "something else".into();
    assert!(matches!(
        f.store.record(vec![a]).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let f = sqlite().await;
    let good = new("acme", "shop", ActorKind::User);
    let wrong_account = new("globex", "shop", ActorKind::User);
    let r = f
        .store
        .record(vec![good.clone(), good, wrong_account])
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let page = f
        .store
        .list(
            &scope("acme", None),
            Audience::Internal,
            &Default::default(),
            Page::default(),
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

#[tokio::test]
async fn unknown_sites_and_foreign_sites_are_refused() {
    let f = sqlite().await;
    let r = f
        .store
        .record(vec![new("acme", "ghost", ActorKind::User)])
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))));
    let moved = Site {
        id: site("portal"),
        account_id: acc("acme"),
        name: "stolen".into(),
        live: EnvironmentSpec {
            url: SiteUrl::parse("https://x.example").unwrap(),
            docroot: None,
        },
        staging: None,
    };
    assert!(matches!(
        f.store.upsert_site(&moved).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn concurrent_writers_share_commits_and_all_are_recorded() {
    let f = sqlite().await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut a = new(
                "acme",
                if i % 2 == 0 { "shop" } else { "blog" },
                ActorKind::User,
            );
            a.id = Some(ActivityId::parse(&format!("c-{i}")).unwrap());
            store.record(vec![a]).await.unwrap().remove(0).activity.id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    for id in &ids {
        assert!(f.store.activity(id).await.unwrap().is_some(), "{id}");
    }
}

#[tokio::test]
async fn keyset_pages_return_each_activity_once_in_both_directions() {
    let f = sqlite().await;
    let base = Timestamp::now().millis() - 1_000_000;
    let batch: Vec<_> = (0..250)
        .map(|i| {
            let mut a = new("acme", "shop", ActorKind::User);
            // Pairs share a timestamp, so the tie-breaker matters.
            a.created_at = Timestamp::from_millis(base + (i / 2) * 1000);
            a
        })
        .collect();
    f.store.record(batch).await.unwrap();
    let s = scope("acme", Some("shop"));
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut page = Page {
        limit: 40,
        cursor: None,
    };
    loop {
        let l = f
            .store
            .list(&s, Audience::Internal, &Default::default(), page)
            .await
            .unwrap();
        seen.extend(l.items.iter().map(|a| (a.created_at, a.seq)));
        pages.push((l.items.iter().map(|a| a.seq).collect::<Vec<_>>(), l.prev));
        match l.next {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    // Newer from the third page gives back the second.
    let prev = pages[2].1.expect("a page reached by cursor links back");
    let back = f
        .store
        .list(
            &s,
            Audience::Internal,
            &Default::default(),
            Page {
                limit: 40,
                cursor: Some(prev),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        back.items.iter().map(|a| a.seq).collect::<Vec<_>>(),
        pages[1].0
    );
}

#[tokio::test]
async fn a_client_cannot_find_a_support_person_by_search_or_user_filter() {
    let f = sqlite().await;
    let mut a = new("acme", "shop", ActorKind::Support);
    a.description = format!("Pushed by {SUPPORT}");
    f.store.record(vec![a]).await.unwrap();
    let s = scope("acme", Some("shop"));
    let count = |audience, raw| {
        let store = f.store.clone();
        let s = s.clone();
        async move {
            store
                .list(&s, audience, &filter(audience, raw), Page::default())
                .await
                .unwrap()
                .items
                .len()
        }
    };
    let q = |q: &str| RawQuery {
        q: Some(q.into()),
        ..Default::default()
    };
    let user = |u: &str| RawQuery {
        user: Some(u.into()),
        ..Default::default()
    };
    assert_eq!(count(Audience::Client, q(SUPPORT)).await, 0);
    assert_eq!(count(Audience::Client, q("rivera")).await, 0);
    assert_eq!(count(Audience::Client, user(SUPPORT)).await, 0);
    assert_eq!(
        count(Audience::Client, q("pushed by support user")).await,
        1
    );
    assert_eq!(count(Audience::Client, user("Support user")).await, 1);
    assert_eq!(count(Audience::Internal, q(SUPPORT)).await, 1);
    assert_eq!(count(Audience::Internal, user(SUPPORT)).await, 1);
}

#[tokio::test]
async fn filters_narrow_and_scopes_isolate_accounts() {
    let f = sqlite().await;
    let mut failed = new("acme", "shop", ActorKind::System);
    failed.status = Status::Failed;
    failed.error = Some("database server went away".into());
    let mut other = new("acme", "blog", ActorKind::User);
    other.activity = ActivityKind::CreateStaging;
    f.store
        .record(vec![
            failed,
            other,
            new("globex", "portal", ActorKind::User),
        ])
        .await
        .unwrap();
    let list = |sc: Scope, raw: RawQuery| {
        let store = f.store.clone();
        async move {
            store
                .list(
                    &sc,
                    Audience::Internal,
                    &filter(Audience::Internal, raw),
                    Page::default(),
                )
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(
        list(scope("acme", None), RawQuery::default()).await.len(),
        2
    );
    assert_eq!(
        list(scope("globex", None), RawQuery::default()).await.len(),
        1
    );
    // A site of another account is empty, not an error, at this level.
    assert_eq!(
        list(scope("acme", Some("portal")), RawQuery::default())
            .await
            .len(),
        0
    );
    let failed = list(
        scope("acme", None),
        RawQuery {
            status: Some("failed".into()),
            q: Some("WENT AWAY".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].site_id, site("shop"));
    let like_chars = list(
        scope("acme", None),
        RawQuery {
            q: Some("%".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(like_chars.is_empty(), "LIKE wildcards in q are literal");
}

#[tokio::test]
async fn the_first_page_comes_from_an_index_without_sorting() {
    let f = sqlite().await;
    let deep = Page {
        limit: 50,
        cursor: Some(sitetrail_core::Cursor {
            created_at: Timestamp::now(),
            seq: 1_000,
            direction: sitetrail_core::Direction::Older,
        }),
    };
    let plans = [
        f.sqlite
            .explain_list(
                &scope("acme", Some("shop")),
                Audience::Internal,
                &Default::default(),
                deep,
            )
            .await
            .unwrap(),
        f.sqlite
            .explain_list(
                &scope("acme", Some("shop")),
                Audience::Client,
                &Default::default(),
                Page::default(),
            )
            .await
            .unwrap(),
        f.sqlite
            .explain_list(
                &scope("acme", None),
                Audience::Internal,
                &Default::default(),
                Page::default(),
            )
            .await
            .unwrap(),
    ];
    for plan in plans {
        let text = plan.join(" | ");
        assert!(text.contains("USING INDEX activities_by_"), "{text}");
        assert!(!text.contains("TEMP B-TREE"), "{text}");
    }
}

#[tokio::test]
async fn changes_come_in_order_and_everything_survives_a_reopen() {
    let f = sqlite().await;
    let r = f
        .store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap();
    let id = r[0].activity.id.clone();
    f.store.end(&id, done(Status::Completed)).await.unwrap();
    f.store
        .record(vec![new("acme", "blog", ActorKind::User)])
        .await
        .unwrap();
    let changes = f
        .store
        .changes_after(0, Some(&site("shop")), 100)
        .await
        .unwrap();
    assert_eq!(
        changes.len(),
        1,
        "the end moved the activity's change number"
    );
    assert_eq!(changes[0].kind, sitetrail_store::ChangeKind::Ended);
    let all = f.store.changes_after(0, None, 100).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].change_no < w[1].change_no));

    let path = f.dir.path().join("log.db");
    drop(f.store);
    drop(f.sqlite);
    let reopened = SqliteStore::open(&path).await.unwrap();
    let a = reopened.activity(&id).await.unwrap().unwrap();
    assert_eq!(a.status, Status::Completed);
}

#[tokio::test]
async fn api_keys_are_checked_against_their_hash() {
    let f = sqlite().await;
    let key = f.store.create_api_key("billing").await.unwrap();
    let token = key.token();
    assert!(matches!(
        f.store.check_api_key(&token).await.unwrap(),
        sitetrail_store::KeyCheck::Valid { .. }
    ));
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(
        f.store.check_api_key(&forged).await.unwrap(),
        sitetrail_store::KeyCheck::Invalid
    );
    assert_eq!(
        f.store.check_api_key("stk_nope").await.unwrap(),
        sitetrail_store::KeyCheck::Invalid
    );
}
