//! The staging API: operations start at once (202), run in the background and are logged;
//! who started them is their actor, redacted for clients like any other.

use std::time::Duration;

use serde_json::{Value, json};
use sitetrail_core::{ActorKind, Audience};
use sitetrail_staging::wordpress::{self, WpSite, mysql};

use crate::*;

#[tokio::test]
async fn staging_calls_need_a_bearer_token_a_site_of_ones_own_and_registered_docroots() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Internal);
    // The dashboard's cookie alone does not start an operation (no CSRF token on the API).
    let r = app
        .http
        .post(app.url("/api/v1/sites/shop/staging"))
        .header("cookie", format!("sitetrail_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let post = |path: &str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    assert_eq!(
        post("/api/v1/sites/portal/staging", json!({}))
            .await
            .unwrap()
            .status(),
        404,
        "another account's site"
    );
    let r = post("/api/v1/sites/shop/staging", json!({})).await.unwrap();
    assert_eq!(r.status(), 422, "no docroot is registered for shop");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("docroot")
    );
    assert_eq!(
        post(
            "/api/v1/sites/shop/staging/push-to-live",
            json!({"scope": "everything"})
        )
        .await
        .unwrap()
        .status(),
        422
    );
    assert_eq!(
        post(
            "/api/v1/sites/shop/staging/reset-from-template",
            json!({"template": "../../etc"})
        )
        .await
        .unwrap()
        .status(),
        422
    );
    assert_eq!(
        post(
            "/api/v1/sites/shop/backups",
            json!({"environment": "production"})
        )
        .await
        .unwrap()
        .status(),
        422
    );
    let page = app.get_json(&token, "/api/v1/sites/shop/activities").await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "refused requests are not operations"
    );
    assert_eq!(
        app.get_json(&token, "/api/v1/templates").await["items"],
        json!([])
    );
    assert_eq!(
        app.get_json(&token, "/api/v1/sites/shop/backups").await["items"],
        json!([])
    );
    assert_eq!(
        app.get(&token, "/api/v1/sites/portal/backups")
            .await
            .status(),
        404
    );
}

async fn wait_for_end(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..600 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_support_person_creates_staging_and_backs_up_live_through_the_api() {
    if !wordpress::services(&[wordpress::Service::MariaDb, wordpress::Service::WordPress]) {
        return;
    }
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut live = WpSite::install(
        dir.path(),
        "live",
        wordpress::free_port(4),
        "wp_",
        "Acme Shop",
    )
    .unwrap();
    live.serve().unwrap();
    let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
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
    let r = app
        .http
        .post(app.url("/api/v1/sites/shop/staging"))
        .bearer_auth(&support)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["status"], "in_progress");
    assert_eq!(started["activity_label"], "Create Staging Environment");
    let id = started["id"].as_str().unwrap().to_owned();
    // A second operation while the first runs is refused, and the refusal is logged.
    let second = app
        .http
        .post(app.url("/api/v1/sites/shop/backups"))
        .bearer_auth(&support)
        .json(&json!({"environment": "live"}))
        .send()
        .await
        .unwrap();
    let second_status = second.status();
    let ended = wait_for_end(&app, &support, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(
        ended["description"],
        "Created environment for staging from live"
    );
    assert!(ended["details"]["database"]["rows"].as_u64().unwrap() > 0);

    let client = app.token("acme", None, Audience::Client);
    let seen = app
        .get_json(&client, &format!("/api/v1/activities/{id}"))
        .await;
    assert_eq!(
        seen["user"]["label"], "Support user",
        "the support person is hidden from the client"
    );
    let internal = app.token("acme", None, Audience::Internal);
    let seen = app
        .get_json(&internal, &format!("/api/v1/activities/{id}"))
        .await;
    assert_eq!(seen["user"]["label"], SUPPORT_EMAIL);

    if second_status == 409 {
        let refused = app
            .get_json(&internal, "/api/v1/sites/shop/activities?status=failed")
            .await;
        assert!(
            refused["items"][0]["error"]
                .as_str()
                .unwrap()
                .contains("Create Staging Environment is running on this site"),
            "{refused}"
        );
    }
    let r = app
        .http
        .post(app.url("/api/v1/sites/shop/backups"))
        .bearer_auth(&support)
        .json(&json!({"environment": "live"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let backup: Value = r.json().await.unwrap();
    let backup = wait_for_end(&app, &support, backup["id"].as_str().unwrap()).await;
    assert_eq!(backup["status"], "completed", "{backup}");
    let list = app.get_json(&client, "/api/v1/sites/shop/backups").await;
    let items = list["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|b| b["reason"] == "manual" && b["environment"] == "live"),
        "{list}"
    );
    let config = sitetrail_staging::wpconfig::read(&dir.path().join("staging")).unwrap();
    mysql(&format!("DROP DATABASE IF EXISTS `{}`", config.name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_is_backed_up_daily_and_old_daily_backups_are_pruned() {
    if !wordpress::services(&[wordpress::Service::WordPressSqlite]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let live = WpSite::install_sqlite(dir.path(), "live", wordpress::free_port(4), "wp_", "Daily")
        .unwrap();
    let app = spawn_app().await;
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "Shop", "live": {"url": live.url, "docroot": live.docroot}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // The store the app runs on, as a second process would open it.
    let store = sitetrail_server::open_store(&sitetrail_server::Config::new(
        "127.0.0.1:0".parse().unwrap(),
        app.data_dir.clone(),
        app.database.as_ref().map(|d| d.url().to_owned()),
    ))
    .await
    .unwrap();
    let engine = sitetrail_staging::Engine::new(store.clone(), &app.data_dir, Default::default());
    let now = sitetrail_core::Timestamp::now();
    let day = 24 * 3600 * 1000;
    let later =
        |days: i64| sitetrail_core::Timestamp::from_millis(now.millis() + days * day).unwrap();
    let site = sitetrail_core::SiteId::parse("shop").unwrap();
    let dailies = || {
        engine
            .snapshots()
            .backups(&site)
            .unwrap()
            .into_iter()
            .filter(|m| m.reason == sitetrail_staging::BackupReason::Daily)
            .collect::<Vec<_>>()
    };
    sitetrail_server::schedule::run_due(&store, &engine, now, 1)
        .await
        .unwrap();
    let first = dailies();
    assert_eq!(first.len(), 1, "the first check backs live up");
    sitetrail_server::schedule::run_due(&store, &engine, later(0), 1)
        .await
        .unwrap();
    assert_eq!(dailies().len(), 1, "not again the same day");
    // A day later (the backup's own time is what counts), another, and the older one goes.
    let manifest = engine
        .snapshots()
        .backup_dir(
            &site,
            &sitetrail_core::BackupId::parse(&first[0].id).unwrap(),
        )
        .join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["created_at"] =
        json!(sitetrail_core::Timestamp::from_millis(now.millis() - 2 * day).unwrap());
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    sitetrail_server::schedule::run_due(&store, &engine, later(0), 1)
        .await
        .unwrap();
    let after = dailies();
    assert_eq!(after.len(), 1, "seven kept in production, one here");
    assert_ne!(after[0].id, first[0].id);
    let token = app.token("acme", None, Audience::Internal);
    let log = app
        .get_json(
            &token,
            "/api/v1/sites/shop/activities?activity=create_backup",
        )
        .await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|a| a["user"]["label"] == "System" && a["description"] == "Daily backup of live"),
        "{log}"
    );
}
