//! Tamper evidence, retention and the audit of who looked, on each backend. The tamper
//! tests write to the database directly, around the store, as an intruder would.

use super::*;
use crate::{
    Access, AccessAction, CheckpointKey, DEFAULT_RETENTION_DAYS, ProblemKind, PruneRequest,
};

fn key() -> (tempfile::TempDir, CheckpointKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = CheckpointKey::load_or_create(dir.path()).unwrap();
    (dir, key)
}

/// Five activities on acme's shop (three ended), one on globex; returns acme's ids.
async fn history(f: &Fixture) -> Vec<ActivityId> {
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut a = new("acme", "shop", ActorKind::Support);
        a.description = format!("Push {i}");
        a.details.insert("n".into(), i.into());
        let r = f.store.record(vec![a]).await.unwrap();
        ids.push(r[0].activity.id.clone());
    }
    for id in &ids[..3] {
        f.store.end(id, done(Status::Completed)).await.unwrap();
    }
    f.store
        .record(vec![new("globex", "portal", ActorKind::User)])
        .await
        .unwrap();
    ids
}

async fn verify_acme(f: &Fixture, key: &CheckpointKey) -> crate::AccountReport {
    let mut reports = f
        .store
        .verify(Some(&acc("acme")), &[key.public_key()])
        .await
        .unwrap();
    reports.remove(0)
}

pub async fn an_untouched_log_verifies_and_a_checkpoint_seals_it(f: Fixture) {
    let (_dir, key) = key();
    history(&f).await;
    let sealed = f.store.checkpoint(&key).await.unwrap();
    let mut accounts: Vec<_> = sealed.iter().map(|c| c.account_id.as_str()).collect();
    accounts.sort();
    assert_eq!(accounts, ["acme", "globex"]);
    assert_eq!(
        sealed
            .iter()
            .find(|c| c.account_id == "acme")
            .unwrap()
            .link_no,
        8
    );
    assert!(
        f.store.checkpoint(&key).await.unwrap().is_empty(),
        "nothing moved, nothing to seal"
    );
    let reports = f.store.verify(None, &[key.public_key()]).await.unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(r.is_intact(), "{r:?}");
    }
    let acme = reports.iter().find(|r| r.account_id == "acme").unwrap();
    assert_eq!((acme.links, acme.activities, acme.checkpoints), (8, 5, 1));
    // Writes after the checkpoint are chained too, and verify without a new one.
    f.store
        .record(vec![new("acme", "blog", ActorKind::User)])
        .await
        .unwrap();
    assert!(verify_acme(&f, &key).await.is_intact());
}

pub async fn an_edited_row_is_named_as_the_first_bad_entry(f: Fixture) {
    let (_dir, key) = key();
    let ids = history(&f).await;
    f.store.checkpoint(&key).await.unwrap();
    f.harness
        .raw(&format!(
            "UPDATE activities SET description = 'Nothing happened' WHERE id = '{}'",
            ids[3]
        ))
        .await;
    f.harness
        .raw(&format!(
            "UPDATE activities SET status = 'failed' WHERE id = '{}'",
            ids[1]
        ))
        .await;
    let r = verify_acme(&f, &key).await;
    let first = r.first_problem().expect("the edits are found");
    assert_eq!(first.kind, ProblemKind::Changed);
    // ids[1] was last written by its end (link 7), ids[3] by its recording (link 4).
    assert_eq!(first.activity_id.as_deref(), Some(ids[3].as_str()));
    assert_eq!(first.link_no, Some(4));
    assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    assert_eq!(r.problems[1].activity_id.as_deref(), Some(ids[1].as_str()));
}

pub async fn a_deleted_row_is_named_as_removed(f: Fixture) {
    let (_dir, key) = key();
    let ids = history(&f).await;
    f.harness
        .raw(&format!("DELETE FROM activities WHERE id = '{}'", ids[2]))
        .await;
    let r = verify_acme(&f, &key).await;
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    let p = &r.problems[0];
    assert_eq!(p.kind, ProblemKind::Removed);
    assert_eq!(p.activity_id.as_deref(), Some(ids[2].as_str()));
    assert!(p.detail.contains("removed"), "{}", p.detail);
}

pub async fn an_inserted_row_is_named_as_inserted(f: Fixture) {
    let (_dir, key) = key();
    let ids = history(&f).await;
    let forged = "01J00000000000000000000000";
    let copy = format!(
        "INSERT INTO activities (id, account_id, site_id, environment, service, activity, \
         status, actor_kind, actor_email, actor_name, description, error, details, created_at, \
         completed_at, change_no, request_sha256, search_internal, search_client) \
         SELECT '{forged}', account_id, site_id, environment, service, activity, status, \
         actor_kind, actor_email, actor_name, 'Restored the old site', error, details, \
         created_at, completed_at, change_no, request_sha256, search_internal, search_client \
         FROM activities WHERE id = '{}'",
        ids[0]
    );
    f.harness.raw(&copy).await;
    let r = verify_acme(&f, &key).await;
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].kind, ProblemKind::Inserted);
    assert_eq!(r.problems[0].activity_id.as_deref(), Some(forged));
    assert_eq!(r.problems[0].link_no, None);
}

pub async fn an_altered_link_breaks_the_chain_where_it_was_altered(f: Fixture) {
    let (_dir, key) = key();
    history(&f).await;
    // The intruder edits a row and the content hash of its link to match: the link's own
    // hash no longer follows.
    f.harness
        .raw(
            "UPDATE chain_links SET content_sha256 = link_sha256 \
         WHERE account_id = 'acme' AND link_no = 3",
        )
        .await;
    let r = verify_acme(&f, &key).await;
    let first = r.first_problem().unwrap();
    assert_eq!(first.kind, ProblemKind::ChainBroken);
    assert_eq!(first.link_no, Some(3));
}

pub async fn a_truncated_chain_is_caught_by_its_checkpoint(f: Fixture) {
    let (_dir, key) = key();
    let ids = history(&f).await;
    f.store.checkpoint(&key).await.unwrap();
    // Remove the last write (link 8, the end of ids[2]) with its link, and move the head
    // back: the chain alone is consistent again, but the checkpoint signed link 8. SQLite
    // keeps the head in a row to move; PostgreSQL's head is the newest link, moved already.
    let move_head = match f.harness.name() {
        "sqlite" => {
            "UPDATE chain_heads SET link_no = 7, link_sha256 = (SELECT link_sha256 FROM \
             chain_links WHERE account_id = 'acme' AND link_no = 7) WHERE account_id = 'acme'"
        }
        _ => "SELECT 1",
    };
    f.harness
        .raw(&format!(
            "UPDATE activities SET status = 'in_progress', completed_at = NULL WHERE id = '{}'; \
             DELETE FROM chain_links WHERE account_id = 'acme' AND link_no = 8; {move_head}",
            ids[2]
        ))
        .await;
    let r = verify_acme(&f, &key).await;
    let first = r.first_problem().expect("the checkpoint catches it");
    assert_eq!(first.kind, ProblemKind::ChainBroken, "{:?}", r.problems);
    assert_eq!(first.link_no, Some(8));
}

pub async fn a_checkpoint_by_another_key_is_refused(f: Fixture) {
    let (_dir, key) = key();
    let (_other_dir, other) = key_pair();
    history(&f).await;
    f.store.checkpoint(&other).await.unwrap();
    let r = verify_acme(&f, &key).await;
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].kind, ProblemKind::Checkpoint);
    assert!(r.problems[0].detail.contains("does not trust"));
}

fn key_pair() -> (tempfile::TempDir, CheckpointKey) {
    key()
}

fn days_ago(days: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() - days * 86_400_000).unwrap()
}

pub async fn retention_removes_only_old_ended_activities_and_the_log_still_verifies(f: Fixture) {
    let (_dir, key) = key();
    let mut old = Vec::new();
    for (i, s) in ["shop", "shop", "blog", "shop"].iter().enumerate() {
        let mut a = new("acme", s, ActorKind::User);
        a.created_at = Some(days_ago(500 + i as i64));
        old.push(a);
    }
    // Old and still running: never pruned.
    let mut running = new("acme", "shop", ActorKind::User);
    running.created_at = Some(days_ago(600));
    let mut recent = new("acme", "shop", ActorKind::User);
    recent.created_at = Some(days_ago(10));
    let recorded = f.store.record(old).await.unwrap();
    for r in &recorded {
        f.store
            .end(&r.activity.id, done(Status::Completed))
            .await
            .unwrap();
    }
    let running = f.store.record(vec![running]).await.unwrap()[0]
        .activity
        .id
        .clone();
    f.store.record(vec![recent]).await.unwrap();
    f.store.checkpoint(&key).await.unwrap();

    let request = |limit| PruneRequest {
        account: acc("acme"),
        before: days_ago(400),
        limit,
        retention_days: 400,
    };
    // Bounded: the first pass takes three, the second the last one, the third none.
    let first = f.store.prune(request(3)).await.unwrap();
    assert_eq!(first.removed, 3);
    let second = f.store.prune(request(3)).await.unwrap();
    assert_eq!(second.removed, 1);
    assert_eq!(f.store.prune(request(3)).await.unwrap().removed, 0);
    for r in &recorded {
        assert!(f.store.activity(&r.activity.id).await.unwrap().is_none());
    }
    assert!(f.store.activity(&running).await.unwrap().is_some());
    // Each pass logged one entry per site it removed from, as the system.
    let logged: Vec<_> = first.logged.iter().chain(&second.logged).collect();
    assert_eq!(logged.len(), 3, "shop and blog, then shop");
    for a in &logged {
        assert_eq!(a.activity, ActivityKind::PruneActivityLog);
        assert_eq!(a.status, Status::Completed);
        assert_eq!(a.actor.kind, ActorKind::System);
        assert!(
            a.description.contains("(retention: 400 days)"),
            "{}",
            a.description
        );
    }
    assert!(logged.iter().all(|a| a.seq > 0));
    let shop = logged.iter().find(|a| a.site_id == site("shop")).unwrap();
    assert_eq!(shop.description.split(' ').nth(1), Some("2"));
    // The prunes are in the chain; a checkpoint seals them; the log verifies.
    f.store.checkpoint(&key).await.unwrap();
    let r = verify_acme(&f, &key).await;
    assert!(r.is_intact(), "{:?}", r.problems);
    assert_eq!(r.pruned, 4);
}

pub async fn a_prune_whose_removals_are_tampered_with_is_named(f: Fixture) {
    let (_dir, key) = key();
    let mut old = Vec::new();
    for _ in 0..3 {
        let mut a = new("acme", "shop", ActorKind::User);
        a.created_at = Some(days_ago(500));
        a.status = Status::Completed;
        old.push(a);
    }
    let recorded = f.store.record(old).await.unwrap();
    let pruned = f
        .store
        .prune(PruneRequest {
            account: acc("acme"),
            before: days_ago(400),
            limit: 100,
            retention_days: 400,
        })
        .await
        .unwrap();
    let prune_id = pruned.logged[0].id.clone();
    // An intruder deletes a live activity and passes it off as pruned.
    let victim = f
        .store
        .record(vec![new("acme", "shop", ActorKind::User)])
        .await
        .unwrap()[0]
        .activity
        .id
        .clone();
    f.harness
        .raw(&format!(
            "DELETE FROM activities WHERE id = '{victim}'; \
             INSERT INTO pruned_activities (account_id, activity_id, prune_id) \
             VALUES ('acme', '{victim}', '{prune_id}')"
        ))
        .await;
    let r = verify_acme(&f, &key).await;
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].kind, ProblemKind::Prune);
    assert_eq!(
        r.problems[0].activity_id.as_deref(),
        Some(prune_id.as_str())
    );
    // And one that brings a pruned activity's listing back out is named too.
    f.harness
        .raw(&format!(
            "DELETE FROM pruned_activities WHERE activity_id IN ('{victim}', '{}')",
            recorded[0].activity.id
        ))
        .await;
    let r = verify_acme(&f, &key).await;
    assert!(
        r.problems.iter().any(|p| p.kind == ProblemKind::Removed
            && p.activity_id.as_deref() == Some(recorded[0].activity.id.as_str())),
        "{:?}",
        r.problems
    );
}

pub async fn retention_periods_default_and_are_kept_per_account(f: Fixture) {
    assert_eq!(
        f.store.retention_days(&acc("acme")).await.unwrap(),
        DEFAULT_RETENTION_DAYS
    );
    f.store
        .set_retention_days(&acc("acme"), Some(30))
        .await
        .unwrap();
    assert_eq!(f.store.retention_days(&acc("acme")).await.unwrap(), 30);
    assert_eq!(f.store.retention_days(&acc("globex")).await.unwrap(), 400);
    // Updating the account keeps its retention period.
    f.store
        .upsert_account(&Account {
            id: acc("acme"),
            name: "Acme Bakery".into(),
            partner: "Agency".into(),
            partner_colour: None,
        })
        .await
        .unwrap();
    assert_eq!(f.store.retention_days(&acc("acme")).await.unwrap(), 30);
    f.store
        .set_retention_days(&acc("acme"), None)
        .await
        .unwrap();
    assert_eq!(f.store.retention_days(&acc("acme")).await.unwrap(), 400);
    assert!(matches!(
        f.store.set_retention_days(&acc("nobody"), Some(5)).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn looks_at_the_log_are_recorded_newest_first(f: Fixture) {
    let look = |site: Option<&str>, action, query: &str| Access {
        seq: 0,
        account_id: acc("acme"),
        site_id: site.map(super::site),
        audience: Audience::Client,
        actor: Actor::person(
            ActorKind::User,
            Email::parse("owner@acme.example").unwrap(),
            None,
        ),
        action,
        query: query.into(),
        at: Timestamp::now(),
    };
    f.store
        .record_access(vec![
            look(Some("shop"), AccessAction::List, "status=failed"),
            look(None, AccessAction::List, ""),
            look(Some("shop"), AccessAction::Export, "format=csv"),
        ])
        .await
        .unwrap();
    let all = f
        .store
        .accesses(&acc("acme"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].action, AccessAction::Export);
    assert_eq!(all[2].query, "status=failed");
    let shop = f
        .store
        .accesses(&acc("acme"), Some(&site("shop")), None, 10)
        .await
        .unwrap();
    assert_eq!(shop.len(), 2);
    let older = f
        .store
        .accesses(&acc("acme"), None, Some(all[0].seq), 1)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].seq, all[1].seq);
    assert!(
        f.store
            .accesses(&acc("globex"), None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn failed_requests_sharing_a_commit_leave_the_chains_whole(f: Fixture) {
    let (_dir, key) = key();
    // Many requests at once share commits; every third is a batch whose second activity
    // names an unknown site, so it fails after its first one was written in its savepoint.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let account = if i % 2 == 0 { "acme" } else { "globex" };
            let home = if i % 2 == 0 { "shop" } else { "portal" };
            let mut batch = vec![new(account, home, ActorKind::User)];
            if i % 3 == 0 {
                batch.push(new(account, "nowhere", ActorKind::User));
            }
            let recorded = store.record(batch).await;
            if let Ok(r) = &recorded
                && i % 5 == 0
            {
                store
                    .end(&r[0].activity.id, done(Status::Failed))
                    .await
                    .unwrap();
            }
            recorded.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 40);
    for r in f.store.verify(None, &[key.public_key()]).await.unwrap() {
        assert!(r.is_intact(), "{r:?}");
    }
}
