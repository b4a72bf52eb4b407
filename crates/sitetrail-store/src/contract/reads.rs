//! Reading the log back: keyset pages, the roster and a client's search, filters and
//! scopes, and pages read from an index without sorting.

use super::*;

pub async fn keyset_pages_return_each_activity_once_in_both_directions(f: Fixture) {
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

pub async fn a_support_actor_joins_the_roster_of_its_accounts_partner(f: Fixture) {
    let store = &f.store;
    store
        .upsert_account(&Account {
            id: acc("initech"),
            name: "Initech".into(),
            partner: "Other agency".into(),
            partner_colour: None,
        })
        .await
        .unwrap();
    assert!(store.roster(&acc("acme")).await.unwrap().is_empty());
    // A user is no support person.
    store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap();
    assert!(store.roster(&acc("acme")).await.unwrap().is_empty());

    store
        .record(vec![
            new("acme", "shop", ActorKind::Support),
            new("acme", "blog", ActorKind::Support),
        ])
        .await
        .unwrap();
    // Every account of the partner shares the roster; another partner's does not.
    for account in ["acme", "globex"] {
        let roster = store.roster(&acc(account)).await.unwrap();
        assert_eq!(roster.len(), 1, "{account}");
        assert!(roster.has_email(&SUPPORT.to_uppercase()), "{account}");
    }
    assert!(store.roster(&acc("initech")).await.unwrap().is_empty());
    assert!(store.roster(&acc("unregistered")).await.unwrap().is_empty());

    // Added directly (a support viewer starting an operation), again without harm, and for an
    // account that is registered nowhere.
    let jo = Email::parse("jo@help.example").unwrap();
    let entry = |a: &str| RosterEntry::new(&acc(a), &jo, Some("Jo Bloggs"));
    for _ in 0..2 {
        store
            .add_to_roster(vec![entry("initech"), entry("unregistered")])
            .await
            .unwrap();
    }
    let initech = store.roster(&acc("initech")).await.unwrap();
    assert_eq!(initech.len(), 1);
    assert!(initech.has_email("jo@help.example") && !initech.has_email(SUPPORT));
    assert!(
        store
            .roster(&acc("unregistered"))
            .await
            .unwrap()
            .has_email("jo@help.example")
    );
    assert!(
        !store
            .roster(&acc("acme"))
            .await
            .unwrap()
            .has_email("jo@help.example")
    );

    // Durable: another process sees it.
    let again = f.harness.open().await;
    assert!(
        again
            .roster(&acc("globex"))
            .await
            .unwrap()
            .has_email(SUPPORT)
    );

    // A roster read before is read again once it changed, whichever process changed it.
    let kim = Email::parse("kim@help.example").unwrap();
    again
        .add_to_roster(vec![RosterEntry::new(&acc("globex"), &kim, None)])
        .await
        .unwrap();
    assert!(
        store
            .roster(&acc("acme"))
            .await
            .unwrap()
            .has_email("kim@help.example")
    );
    // An account that moves to another partner has that partner's roster at once.
    assert!(
        !store
            .roster(&acc("initech"))
            .await
            .unwrap()
            .has_email(SUPPORT)
    );
    store
        .upsert_account(&Account {
            id: acc("initech"),
            name: "Initech".into(),
            partner: "Agency".into(),
            partner_colour: None,
        })
        .await
        .unwrap();
    let moved = store.roster(&acc("initech")).await.unwrap();
    assert!(moved.has_email(SUPPORT) && moved.has_email("kim@help.example"));
}

pub async fn a_client_cannot_find_a_support_person_by_search_or_user_filter(f: Fixture) {
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

pub async fn filters_narrow_and_scopes_isolate_accounts(f: Fixture) {
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

pub async fn the_first_page_comes_from_an_index_without_sorting(f: Fixture) {
    // Enough rows, spread over accounts and sites as in life (many more sites than accounts),
    // for a planner to weigh its options.
    let mut places = vec![("acme".to_owned(), "shop".to_owned())];
    for a in 0..10 {
        let account = format!("tenant-{a}");
        f.store
            .upsert_account(&Account {
                id: acc(&account),
                name: account.clone(),
                partner: "Agency".into(),
                partner_colour: None,
            })
            .await
            .unwrap();
        for s in 0..5 {
            let name = format!("site-{a}-{s}");
            f.store
                .upsert_site(&Site {
                    id: site(&name),
                    account_id: acc(&account),
                    name: name.clone(),
                    live: EnvironmentSpec {
                        url: SiteUrl::parse(&format!("https://{name}.example")).unwrap(),
                        docroot: None,
                    },
                    staging: None,
                })
                .await
                .unwrap();
            places.push((account.clone(), name));
        }
    }
    let base = Timestamp::now().millis() - 10_000_000;
    let batch: Vec<_> = (0..3000)
        .map(|i| {
            let (a, s) = &places[i % places.len()];
            let mut n = new(a, s, ActorKind::User);
            n.created_at = Timestamp::from_millis(base + i as i64 * 1000);
            n
        })
        .collect();
    f.store.record(batch).await.unwrap();
    f.harness.analyze().await;
    let deep = Page {
        limit: 50,
        cursor: Some(sitetrail_core::Cursor {
            created_at: Timestamp::from_millis(base + 1_500_000).unwrap(),
            seq: 1_000,
            direction: sitetrail_core::Direction::Older,
        }),
    };
    let newer = Page {
        limit: 50,
        cursor: Some(sitetrail_core::Cursor {
            direction: sitetrail_core::Direction::Newer,
            ..deep.cursor.unwrap()
        }),
    };
    let shop = scope("acme", Some("shop"));
    f.harness
        .assert_list_uses_an_index(&shop, Audience::Internal, deep)
        .await;
    f.harness
        .assert_list_uses_an_index(&shop, Audience::Internal, newer)
        .await;
    f.harness
        .assert_list_uses_an_index(&shop, Audience::Client, Page::default())
        .await;
    f.harness
        .assert_list_uses_an_index(
            &scope("tenant-3", None),
            Audience::Internal,
            Page::default(),
        )
        .await;
}
