//! `sitetrail verify` and `sitetrail prune` as an operator runs them, on a log written by a
//! real server that was then killed, and tampered with straight in its SQLite file.

use std::process::Output;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::*;

fn run(storage: &Storage, args: &[&str]) -> Output {
    let mut cmd = sitetrail();
    cmd.args(args).arg("--data-dir").arg(&storage.data_dir);
    cmd.env_remove("SITETRAIL_DATABASE");
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn tamper(storage: &Storage, sql: &str) {
    let url = format!(
        "sqlite://{}",
        storage.data_dir.join("sitetrail.db").display()
    );
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap();
}

/// Ten activities on acme's shop, the first five ended, then kill -9: returns their ids.
async fn history(storage: &Storage, old: bool) -> Vec<String> {
    let key = storage.publisher_key("verify");
    let server = Server::start(storage);
    let http = reqwest::Client::new();
    register_sites(&http, &server.base, &key, &["shop"]).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut body = json!({"account_id": "acme", "site_id": "shop", "environment": "live",
            "service": "staging", "activity": "push_staging_to_live",
            "actor": {"kind": "user", "email": "owner@acme.example"},
            "description": format!("Push {i}")});
        if old && i < 3 {
            body["created_at"] = json!("2024-01-02T03:04:05Z");
            body["status"] = json!("completed");
        }
        let r = http
            .post(format!("{}/api/v1/activities", server.base))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let a: Value = r.json().await.unwrap();
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[3..5] {
        let r = http
            .post(format!("{}/api/v1/activities/{id}/complete", server.base))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    server.kill();
    ids
}

#[tokio::test]
async fn verify_passes_an_untouched_log_and_names_the_first_changed_removed_or_inserted_entry() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::sqlite(dir.path());
    let ids = history(&storage, false).await;

    let ok = run(&storage, &["verify"]);
    assert!(
        ok.status.success(),
        "{}{}",
        stdout(&ok),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout(&ok).contains("acme: intact (12 links, 10 activities"),
        "{}",
        stdout(&ok)
    );

    // Changed: one description, straight in the database.
    tamper(
        &storage,
        &format!(
            "UPDATE activities SET description = 'Nothing to see' WHERE id = '{}'",
            ids[6]
        ),
    )
    .await;
    let bad = run(&storage, &["verify", "--account", "acme"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = stdout(&bad);
    assert!(text.contains("acme: FAILED"), "{text}");
    assert!(
        text.contains(&format!(
            "first bad entry: link 7, {}: activity {} was changed",
            ids[6], ids[6]
        )),
        "{text}"
    );

    // Put it back: intact again. Then remove an earlier one and insert a forged one.
    tamper(
        &storage,
        &format!(
            "UPDATE activities SET description = 'Push 6' WHERE id = '{}'; \
             DELETE FROM activities WHERE id = '{}'; \
             INSERT INTO activities (id, account_id, site_id, environment, service, activity, \
             status, actor_kind, actor_email, actor_name, description, error, details, created_at, \
             completed_at, change_no, request_sha256, search_internal, search_client) \
             SELECT '01J00000000000000000000000', account_id, site_id, environment, service, \
             activity, status, actor_kind, actor_email, actor_name, description, error, details, \
             created_at, completed_at, change_no, request_sha256, search_internal, search_client \
             FROM activities WHERE id = '{}'",
            ids[6], ids[2], ids[8]
        ),
    )
    .await;
    let bad = run(&storage, &["verify", "--json"]);
    assert_eq!(bad.status.code(), Some(1));
    let reports: Value = serde_json::from_slice(&bad.stdout).unwrap();
    let problems = reports[0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0]["kind"], "removed");
    assert_eq!(problems[0]["activity_id"], ids[2].as_str());
    assert_eq!(problems[0]["link_no"], 3);
    assert_eq!(problems[1]["kind"], "inserted");
    assert_eq!(problems[1]["activity_id"], "01J00000000000000000000000");
}

#[tokio::test]
async fn prune_applies_the_retention_period_and_the_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::sqlite(dir.path());
    let ids = history(&storage, true).await;
    let pruned = run(&storage, &["prune"]);
    assert!(
        pruned.status.success(),
        "{}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    assert!(
        stdout(&pruned).starts_with("removed 3 activities from 1 accounts in 1 passes"),
        "{}",
        stdout(&pruned)
    );
    let ok = run(&storage, &["verify", "--json"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let reports: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(reports[0]["pruned"], 3);
    assert_eq!(
        reports[0]["activities"], 8,
        "seven kept and the prune's own entry"
    );
    assert!(
        reports[0]["checkpoints"].as_u64().unwrap() >= 1,
        "the prune was sealed"
    );
    // What retention removed is gone from the log, and the prune is in it.
    let server = Server::start(&storage);
    let token = storage.viewer_token("acme", None, "client");
    let page = get_json(
        &reqwest::Client::new(),
        &format!("{}/api/v1/sites/shop/activities?limit=50", server.base),
        &token,
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|a| !ids[..3].contains(&a["id"].as_str().unwrap().to_owned()))
    );
    let prune = items
        .iter()
        .find(|a| a["activity"] == "prune_activity_log")
        .expect("the prune is logged");
    assert_eq!(prune["activity_label"], "Prune Activity Log");
    assert_eq!(prune["user"]["label"], "System");
    assert_eq!(prune["status"], "completed");
}
