//! Safe push through the API on real WordPress (on SQLite): a support person previews a push,
//! the push confirms that preview, the push is undone, and live is restored from a backup,
//! database only. Each is an activity of its own, and a client sees none of them as the
//! support person's.

use std::time::Duration;

use serde_json::{Value, json};
use sitetrail_core::{ActorKind, Audience};
use sitetrail_staging::wordpress::{self, WpSite};

use crate::*;

async fn wait_for_end(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..1200 {
        let a = app
            .get_json(token, &format!("/api/v1/activities/{id}"))
            .await;
        if a["status"] != "in_progress" {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} did not end");
}

async fn start(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{path}: {answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let ended = wait_for_end(app, token, &id).await;
    assert_eq!(ended["status"], "completed", "{path}: {ended}");
    ended
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_is_confirmed_by_its_push_which_is_undone_and_live_is_restored_from_a_backup() {
    if !wordpress::services(&[wordpress::Service::WordPressSqlite]) {
        return;
    }
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut live =
        WpSite::install_sqlite(dir.path(), "live", wordpress::free_port(4), "wp_", "Outlet")
            .unwrap();
    live.serve().unwrap();
    let staging_url = format!("http://127.0.0.1:{}/shop", wordpress::free_port(5));
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "Shop",
                    "live": {"url": live.url, "docroot": live.docroot},
                    "staging": {"url": staging_url, "docroot": dir.path().join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let support = app.token_for(
        "acme",
        None,
        Audience::Internal,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    let client = app.token("acme", None, Audience::Client);
    start(&app, &support, "/api/v1/sites/shop/staging", json!({})).await;

    let push = "/api/v1/sites/shop/staging/push-to-live";
    let preview = start(
        &app,
        &support,
        push,
        json!({"scope": "site", "keep_staging": true, "dry_run": true}),
    )
    .await;
    assert_eq!(preview["activity"], "preview_push");
    assert!(
        preview["details"]["preview"]["tables"].is_array(),
        "{preview}"
    );
    let seen = app
        .get_json(
            &client,
            &format!("/api/v1/activities/{}", preview["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(seen["user"]["label"], "Support user");
    assert!(!seen.to_string().contains(SUPPORT_EMAIL));

    let body = json!({"scope": "site", "keep_staging": true, "preview": preview["id"]});
    let pushed = start(&app, &support, push, body).await;
    let window = app
        .get_json(&client, "/api/v1/sites/shop/live/undo-push")
        .await;
    assert_eq!(window["push"], pushed["id"], "{window}");

    let undone = start(
        &app,
        &support,
        "/api/v1/sites/shop/live/undo-push",
        json!({}),
    )
    .await;
    assert_eq!(undone["activity"], "undo_push");
    // The pushed live is kept in turn: undoing again would put the push back.
    let window = app
        .get_json(&client, "/api/v1/sites/shop/live/undo-push")
        .await;
    assert_eq!(
        (&window["push"], &window["puts_push_back"]),
        (&undone["id"], &json!(true)),
        "{window}"
    );

    let backups = app.get_json(&client, "/api/v1/sites/shop/backups").await;
    let backup = backups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["environment"] == "live")
        .expect("the push backed live up first")["id"]
        .clone();
    let body = json!({"backup": backup, "scope": "database"});
    let restored = start(&app, &client, "/api/v1/sites/shop/live/restore", body).await;
    assert_eq!(restored["activity"], "restore_live_from_backup");
    let home = reqwest::get(&live.url).await.unwrap();
    assert_eq!(home.status(), 200, "live serves after the restore");
    // A restore replaces live: nothing is left to undo.
    assert_eq!(
        app.get(&client, "/api/v1/sites/shop/live/undo-push")
            .await
            .status(),
        404
    );
}
