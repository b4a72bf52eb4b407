//! The log's contract: append-only endings, idempotent ingest, all-or-nothing batches, group
//! commit, keyset pages, redaction in search, scopes, the live feed and API keys.

use super::*;

pub async fn an_activity_ends_once_and_a_second_end_is_a_conflict(f: Fixture) {
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

pub async fn a_replay_returns_the_same_activity_and_another_body_conflicts(f: Fixture) {
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

/// Text reaches PostgreSQL through `COPY` (binary: each field's length, then its bytes) and
/// leaves it for an export through `COPY`'s text format, where tabs, newlines, backslashes
/// and `\N` mean something: none of them may change or cut what is stored.
pub async fn every_character_comes_back_as_it_was_written(f: Fixture) {
    let tricky = "tab\there, new\nline, back\\slash, \\N, \\.\n\\.\n, \\x00ff, 'single' \"double\" é 日本 🚀";
    let mut a = new("acme", "shop", ActorKind::Support);
    a.id = Some(ActivityId::parse("copy-1").unwrap());
    a.actor = Actor::person(
        ActorKind::Support,
        Email::parse(SUPPORT).unwrap(),
        Some("Sam \\N \"Back\\slash\" Rivera".into()),
    );
    a.description = tricky.into();
    a.error = Some(format!("failed:\n{tricky}"));
    a.status = Status::Failed;
    a.completed_at = Some(Timestamp::from_millis(1_764_000_000_000).unwrap());
    a.created_at = Some(Timestamp::from_millis(1_763_999_000_000).unwrap());
    a.details = serde_json::json!({"path": "C:\\wp\\uploads\tx", "lines": [tricky, "\\N"], "nested": {"k\tey": "v\r\nalue"}})
        .as_object()
        .unwrap()
        .clone();
    let mut plain = new("acme", "shop", ActorKind::System);
    plain.description = String::new();
    let recorded = f.store.record(vec![a.clone(), plain]).await.unwrap();
    let stored = f
        .store
        .activity(&ActivityId::parse("copy-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, recorded[0].activity);
    assert_eq!(stored.description, tricky);
    assert_eq!(stored.error.as_deref(), a.error.as_deref());
    assert_eq!(stored.actor, a.actor);
    assert_eq!(stored.details, a.details);
    let empty = f
        .store
        .activity(&recorded[1].activity.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(empty.description, "");
    assert_eq!(empty.actor.email, None);
    // The search text went through the same path: a client finds the description's words.
    let found = f
        .store
        .list(
            &scope("acme", Some("shop")),
            Audience::Client,
            &filter(
                Audience::Client,
                RawQuery {
                    q: Some("back\\slash".into()),
                    ..Default::default()
                },
            ),
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id.as_str(), "copy-1");
    // An export (on PostgreSQL a COPY whose conditions are written in as literals) finds it
    // by any of its characters, returns it as stored, and finds nothing for a search that
    // tries to leave its literal.
    for (q, hits) in [
        ("back\\slash", 1),
        ("'single' \"double\"", 1),
        ("é 日本 🚀", 1),
        ("\\x00ff", 1),
        ("x' OR '1'='1", 0),
        ("\\' OR 1=1 --", 0),
        ("\\", 1),
        ("'", 1),
    ] {
        let sc = scope("acme", Some("shop"));
        let filter = filter(
            Audience::Client,
            RawQuery {
                q: Some(q.into()),
                ..Default::default()
            },
        );
        let page = f
            .store
            .list(&sc, Audience::Client, &filter, Page::default())
            .await
            .unwrap();
        let exported = f
            .store
            .export(&sc, Audience::Client, &filter, crate::ExportColumns::All)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(page.items.len(), hits, "{q:?}");
        assert_eq!(exported, page.items, "{q:?}");
        if hits == 1 {
            assert_eq!(exported[0], stored, "{q:?}");
        }
    }
    // A replay of the same request matches the stored request hash.
    let replay = f.store.record(vec![a]).await.unwrap().remove(0);
    assert!(!replay.created);
}

pub async fn account_ids_name_every_account_once_in_order(f: Fixture) {
    let ids = |v: Vec<AccountId>| v.iter().map(|a| a.as_str().to_owned()).collect::<Vec<_>>();
    let registered = ids(f.store.account_ids().await.unwrap());
    assert!(registered.contains(&"acme".to_owned()), "{registered:?}");
    let mut batch = Vec::new();
    for i in 0..120 {
        let (account, site) = if i % 3 == 0 {
            ("globex", "portal")
        } else {
            ("acme", "shop")
        };
        batch.push(new(account, site, ActorKind::User));
    }
    f.store.record(batch).await.unwrap();
    let got = ids(f.store.account_ids().await.unwrap());
    let mut expected = got.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(got, expected, "sorted, each once");
    for a in ["acme", "globex"] {
        assert!(got.contains(&a.to_owned()), "{got:?}");
    }
    assert_eq!(got, registered, "the accounts were all registered before");
}

pub async fn a_batch_is_all_or_nothing(f: Fixture) {
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

pub async fn a_large_batch_is_written_whole_and_in_order(f: Fixture) {
    // Large enough that PostgreSQL's writer sends its COPY in several pieces, and takes
    // a range of seq numbers at once.
    let batch: Vec<NewActivity> = (0..1500)
        .map(|i| {
            let mut a = new("acme", "shop", ActorKind::User);
            a.description = format!(
                "Push {i}\twith a tab, a \\ and a\nnew line {}",
                "x".repeat(200)
            );
            a
        })
        .collect();
    let first = f.store.record(batch.clone()).await.unwrap();
    let second = f.store.record(batch[..3].to_vec()).await.unwrap();
    let seqs: Vec<i64> = first
        .iter()
        .chain(&second)
        .map(|r| r.activity.seq)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq follows the batch's order"
    );
    let stored = f.store.changes_after(0, None, 2000).await.unwrap();
    assert_eq!(stored.len(), 1503);
    for (c, (r, sent)) in stored.iter().zip(first.iter().zip(&batch)) {
        assert_eq!(c.activity.id, r.activity.id);
        assert_eq!(c.activity.seq, r.activity.seq);
        assert_eq!(c.activity.description, sent.description);
    }
    assert_acme_chain_intact(&f.store).await;
}

pub async fn hosted_sites_are_the_ones_with_a_live_docroot(f: Fixture) {
    assert!(f.store.hosted_sites().await.unwrap().is_empty());
    let hosted = Site {
        id: site("blog"),
        account_id: acc("acme"),
        name: "blog".into(),
        live: EnvironmentSpec {
            url: SiteUrl::parse("https://blog.example").unwrap(),
            docroot: Some("/srv/www/blog".into()),
        },
        staging: None,
    };
    f.store.upsert_site(&hosted).await.unwrap();
    let sites = f.store.hosted_sites().await.unwrap();
    assert_eq!(sites, vec![hosted]);
}

pub async fn unknown_sites_and_foreign_sites_are_refused(f: Fixture) {
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

pub async fn concurrent_writers_share_commits_and_all_are_recorded(f: Fixture) {
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

pub async fn changes_come_in_order_and_everything_survives_a_reopen(f: Fixture) {
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
    assert_eq!(changes[0].kind, crate::ChangeKind::Ended);
    let all = f.store.changes_after(0, None, 100).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].change_no < w[1].change_no));

    let Fixture { store, mut harness } = f;
    drop(store);
    harness.forget_store();
    let reopened = harness.open().await;
    let a = reopened.activity(&id).await.unwrap().unwrap();
    assert_eq!(a.status, Status::Completed);
}

pub async fn api_keys_are_checked_against_their_hash(f: Fixture) {
    let key = f.store.create_api_key("billing").await.unwrap();
    let token = key.token();
    assert!(matches!(
        f.store.check_api_key(&token).await.unwrap(),
        crate::KeyCheck::Valid { .. }
    ));
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(
        f.store.check_api_key(&forged).await.unwrap(),
        crate::KeyCheck::Invalid
    );
    assert_eq!(
        f.store.check_api_key("stk_nope").await.unwrap(),
        crate::KeyCheck::Invalid
    );
}

pub async fn requests_sharing_a_commit_succeed_or_fail_on_their_own(f: Fixture) {
    // Many requests at once share commits: each one's outcome must not depend on which others
    // it was grouped with. Every id is recorded twice with the same body (one creates, one
    // replays), once with another body (a conflict), ended twice (one ends, one conflicts),
    // and one request per id names an unknown site.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let id = ActivityId::parse(&format!("g-{i}")).unwrap();
        let mut a = new("acme", "shop", ActorKind::User);
        a.id = Some(id.clone());
        let mut other = a.clone();
        other.description = "another body".into();
        let mut ghost = new("acme", "ghost", ActorKind::User);
        ghost.id = Some(ActivityId::parse(&format!("ghost-{i}")).unwrap());
        for n in [a.clone(), a, other, ghost] {
            let store = f.store.clone();
            tasks.push(tokio::spawn(async move { store.record(vec![n]).await }));
        }
    }
    let mut created = 0;
    let mut replayed = 0;
    let mut conflicts = 0;
    let mut invalid = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) if r[0].created => created += 1,
            Ok(_) => replayed += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(StoreError::Invalid(_)) => invalid += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((created, replayed + conflicts, invalid), (40, 80, 40));
    // Whichever body came first won; the other got a conflict or a replay accordingly.
    assert!(conflicts >= 40, "{conflicts}");

    let mut ends = Vec::new();
    for i in 0..40 {
        for status in [Status::Completed, Status::Failed] {
            let store = f.store.clone();
            let id = ActivityId::parse(&format!("g-{i}")).unwrap();
            ends.push(tokio::spawn(
                async move { store.end(&id, done(status)).await },
            ));
        }
    }
    let mut ended = 0;
    for t in ends {
        match t.await.unwrap() {
            Ok(a) => {
                assert!(a.seq > 0, "an answer carries the stored activity");
                ended += 1;
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ended, 40, "each activity ends exactly once");
    let all = f.store.changes_after(0, None, 1000).await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|c| c.activity.status.is_ended()));
    let numbers: Vec<i64> = all.iter().map(|c| c.change_no).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        f.store.last_change_no().await.unwrap(),
        80,
        "40 records and 40 ends"
    );
}

pub async fn two_writers_on_one_database_never_let_a_reader_skip_a_change(f: Fixture) {
    // Two stores on one database stand for two processes (SQLite) or two servers
    // (PostgreSQL). A reader that follows `changes_after` from its last number must see
    // every change exactly once: change numbers may not commit out of order.
    let other = f.harness.open().await;
    let writers: Vec<_> = [f.store.clone(), other.clone()]
        .into_iter()
        .enumerate()
        .flat_map(|(w, store)| {
            (0..8).map(move |t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        let mut a = new("acme", "shop", ActorKind::User);
                        a.id = Some(ActivityId::parse(&format!("w{w}-{t}-{i}")).unwrap());
                        let id = store.record(vec![a]).await.unwrap().remove(0).activity.id;
                        if i % 5 == 0 {
                            store.end(&id, done(Status::Completed)).await.unwrap();
                        }
                    }
                })
            })
        })
        .collect();
    let total_changes = 2 * 8 * (25 + 5);
    let reader = {
        let store = f.store.clone();
        tokio::spawn(async move {
            let mut head = 0;
            let mut seen = std::collections::HashMap::new();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while head < total_changes {
                assert!(tokio::time::Instant::now() < deadline, "stuck at {head}");
                for c in store.changes_after(head, None, 7).await.unwrap() {
                    assert!(c.change_no > head);
                    head = c.change_no;
                    seen.insert(c.activity.id.clone(), c.change_no);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), 2 * 8 * 25, "every activity reached the reader");
    // What the reader saw last for each activity is what the log holds now.
    let now = f.store.changes_after(0, None, 1000).await.unwrap();
    assert_eq!(now.len(), seen.len());
    for c in now {
        assert_eq!(seen[&c.activity.id], c.change_no, "{}", c.activity.id);
    }
    assert_eq!(other.last_change_no().await.unwrap(), total_changes);
    // Both writers appended to acme's one chain, each after the other's commits: each must
    // have built on the head the other left (a writer that trusted what it last wrote
    // itself would fork the chain).
    let links = assert_acme_chain_intact(&f.store).await;
    assert!(links >= total_changes, "{links} links");
}

// PostgreSQL only: what several servers sharing one database rely on.
