//! Safe push's API: the push's scopes with their lists, previews and the preview a push
//! confirms, undo, restore and the live-owned profile. A refused request logs nothing; each
//! route answers 404 for another account's site; a client never sees a support person in
//! what these operations log.

use serde_json::{Value, json};
use sitetrail_core::{ActorKind, Audience};

use crate::*;

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .put(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn logged(app: &TestApp, token: &str) -> usize {
    app.get_json(token, "/api/v1/activities").await["items"]
        .as_array()
        .unwrap()
        .len()
}

/// A preview of `site` as the engine logs one, recorded through the publisher API.
async fn recorded_preview(app: &TestApp, account: &str, site: &str, status: &str) -> String {
    let mut a = activity(account, site);
    a["activity"] = json!("preview_push");
    a["description"] = json!("Previewing a push of staging to live (database and files)");
    a["details"] = json!({"scope": "site", "preview": report()});
    let id = app.record(&a).await["id"].as_str().unwrap().to_owned();
    if status != "in_progress" {
        let how = if status == "completed" {
            "complete"
        } else {
            "fail"
        };
        let r = app.end(&id, how, &json!({})).await;
        assert_eq!(r.status(), 200);
    }
    id
}

pub fn report() -> Value {
    json!({
        "tables": [{"table": "wp_posts", "added": 2, "removed": 0, "changed": 3, "kept_from_live": 4}],
        "kept_from_live": 4,
        "conflicts": [{"table": "wp_postmeta", "key": "meta_id=77", "staging": "changed", "live": "changed"}],
        "files": {"added": 1, "changed": 1, "removed": 0, "bytes_added": 2048, "bytes_changed": 10,
                  "bytes_removed": 0, "list": [{"path": "wp-content/themes/shop/style.css", "change": "added", "bytes": 2048}]},
        "url_rewrites": 12,
        "live_fingerprint": "abc"
    })
}

#[tokio::test]
async fn a_scope_without_its_list_a_list_without_its_scope_and_bad_names_are_422_and_log_nothing() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Internal);
    let path = "/api/v1/sites/shop/staging/push-to-live";
    let refused = [
        json!({"scope": "tables"}),
        json!({"scope": "tables", "tables": []}),
        json!({"scope": "folders"}),
        json!({"scope": "site", "tables": ["posts"]}),
        json!({"scope": "database", "folders": ["wp-content/themes"]}),
        json!({"scope": "tables", "tables": ["posts`; DROP TABLE x"]}),
        json!({"scope": "tables", "tables": ["wp-posts"]}),
        json!({"scope": "folders", "folders": ["../live"]}),
        json!({"scope": "folders", "folders": ["/etc"]}),
        json!({"scope": "folders", "folders": ["wp-config.php"]}),
        json!({"scope": "site", "on_conflict": "whoever"}),
        json!({"scope": "site", "preview": "../x"}),
        json!({"scope": "site", "preview": "nope"}),
        json!({"scope": "site", "keep_staging": false, "everything": true}),
    ];
    for body in refused {
        let (status, answer) = post(&app, &token, path, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("docroot"),
            "refused before the engine: {message}"
        );
    }
    assert_eq!(logged(&app, &token).await, 0, "a 4xx logs nothing");
}

#[tokio::test]
async fn a_push_confirms_only_a_completed_preview_of_the_same_site() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Internal);
    let path = "/api/v1/sites/shop/staging/push-to-live";
    let of_blog = recorded_preview(&app, "acme", "blog", "completed").await;
    let of_portal = recorded_preview(&app, "globex", "portal", "completed").await;
    let running = recorded_preview(&app, "acme", "shop", "in_progress").await;
    let failed = recorded_preview(&app, "acme", "shop", "failed").await;
    let done = recorded_preview(&app, "acme", "shop", "completed").await;
    let before = logged(&app, &token).await;
    for (id, says) in [
        (&of_blog, "no such preview"),
        (&of_portal, "no such preview"),
        (&running, "still running"),
        (&failed, "preview the push again"),
    ] {
        let (status, answer) =
            post(&app, &token, path, json!({"scope": "site", "preview": id})).await;
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
    // A preview does not confirm a preview.
    let body = json!({"scope": "site", "preview": done, "dry_run": true});
    assert_eq!(post(&app, &token, path, body).await.0, 422);
    // This one passes the server's checks; the engine refuses it (no docroot for shop).
    let (status, answer) = post(
        &app,
        &token,
        path,
        json!({"scope": "site", "preview": done}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("docroot")
    );
    assert_eq!(logged(&app, &token).await, before, "a 4xx logs nothing");
}

#[tokio::test]
async fn every_safe_push_route_answers_404_for_another_accounts_site() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Internal);
    let portal = "/api/v1/sites/portal";
    let (s, _) = post(
        &app,
        &token,
        &format!("{portal}/staging/push-to-live"),
        json!({"scope": "tables", "tables": ["posts"], "dry_run": true}),
    )
    .await;
    assert_eq!(s, 404, "preview");
    // Another account's site answers 404 even to a request that would be invalid.
    let (s, _) = post(
        &app,
        &token,
        &format!("{portal}/staging/push-to-live"),
        json!({"scope": "tables"}),
    )
    .await;
    assert_eq!(s, 404, "push with a bad body");
    let (s, _) = post(&app, &token, &format!("{portal}/live/undo-push"), json!({})).await;
    assert_eq!(s, 404, "undo");
    assert_eq!(
        app.get(&token, &format!("{portal}/live/undo-push"))
            .await
            .status(),
        404,
        "undo window"
    );
    let (s, _) = post(
        &app,
        &token,
        &format!("{portal}/live/restore"),
        json!({"backup": "b1", "scope": "site"}),
    )
    .await;
    assert_eq!(s, 404, "restore");
    assert_eq!(
        app.get(&token, &format!("{portal}/live-owned"))
            .await
            .status(),
        404,
        "profile"
    );
    let (s, _) = put(
        &app,
        &token,
        &format!("{portal}/live-owned"),
        json!({"extra": ["x"]}),
    )
    .await;
    assert_eq!(s, 404, "profile change");
    // A token for one site reaches no other site of its own account either.
    let shop_only = app.token("acme", Some("shop"), Audience::Client);
    assert_eq!(
        app.get(&shop_only, "/api/v1/sites/blog/live-owned")
            .await
            .status(),
        404
    );
    let (s, _) = post(
        &app,
        &shop_only,
        "/api/v1/sites/blog/live/undo-push",
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(logged(&app, &token).await, 0);
}

#[tokio::test]
async fn undo_without_a_push_is_409_and_restore_needs_a_backup_of_the_site() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    assert_eq!(
        app.get(&token, "/api/v1/sites/shop/live/undo-push")
            .await
            .status(),
        404
    );
    let (s, answer) = post(&app, &token, "/api/v1/sites/shop/live/undo-push", json!({})).await;
    assert_eq!(s, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no push to undo")
    );
    let restore = "/api/v1/sites/shop/live/restore";
    let (s, _) = post(
        &app,
        &token,
        restore,
        json!({"backup": "nightly-1", "scope": "site"}),
    )
    .await;
    assert_eq!(s, 404, "no such backup");
    for scope in ["tables", "folders", "everything"] {
        let (s, _) = post(
            &app,
            &token,
            restore,
            json!({"backup": "nightly-1", "scope": scope}),
        )
        .await;
        assert_eq!(s, 422, "{scope}");
    }
    let (s, _) = post(
        &app,
        &token,
        restore,
        json!({"backup": "../../etc", "scope": "site"}),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(logged(&app, &token).await, 0, "a 4xx logs nothing");
}

#[tokio::test]
async fn the_live_owned_profile_is_read_and_its_additions_replaced_by_either_audience() {
    let app = spawn_app().await;
    for audience in [Audience::Client, Audience::Internal] {
        let token = app.token("acme", Some("shop"), audience);
        let profile = app.get_json(&token, "/api/v1/sites/shop/live-owned").await;
        assert!(
            profile["shipped"].is_array() && profile["extra"].is_array(),
            "{profile}"
        );
        let path = "/api/v1/sites/shop/live-owned";
        for bad in [
            json!({"extra": ["wp-x"]}),
            json!({"extra": ["a b"]}),
            json!({"extra": "x"}),
            json!({}),
        ] {
            let (s, _) = put(&app, &token, path, bad.clone()).await;
            assert_eq!(s, 422, "{bad}");
        }
        let (s, answer) = put(
            &app,
            &token,
            path,
            json!({"extra": ["gf_entry", "gf_entry_meta"]}),
        )
        .await;
        assert_eq!(s, 200, "{answer}");
        assert!(answer["shipped"].is_array());
    }
}

#[tokio::test]
async fn a_client_never_sees_a_support_person_in_a_preview_undo_or_restore_activity() {
    let app = spawn_app().await;
    let client = app.token("acme", None, Audience::Client);
    let internal = app.token("acme", None, Audience::Internal);
    for kind in ["preview_push", "undo_push", "restore_live_from_backup"] {
        let mut a = support_activity("acme", "shop");
        a["activity"] = json!(kind);
        let mut report = report();
        report["conflicts"][0]["key"] = json!(format!("meta_id=77 by {SUPPORT_EMAIL}"));
        a["details"]["preview"] = report;
        let id = app.record(&a).await["id"].as_str().unwrap().to_owned();
        let seen = app
            .get_json(&client, &format!("/api/v1/activities/{id}"))
            .await;
        let text = seen.to_string();
        assert!(
            !text.contains(SUPPORT_EMAIL) && !text.contains(SUPPORT_NAME),
            "{text}"
        );
        assert_eq!(seen["user"]["label"], "Support user");
        assert!(
            seen["activity_label"].as_str().unwrap().contains("Live"),
            "{seen}"
        );
        let inside = app
            .get_json(&internal, &format!("/api/v1/activities/{id}"))
            .await;
        assert_eq!(inside["user"]["email"], SUPPORT_EMAIL);
    }
    let support = app.token_for(
        "acme",
        None,
        Audience::Internal,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    let (s, _) = post(
        &app,
        &support,
        "/api/v1/sites/portal/live/undo-push",
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn the_openapi_document_names_every_safe_push_route_and_field() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/sites/{site}/live/undo-push",
        "/api/v1/sites/{site}/live/restore",
        "/api/v1/sites/{site}/live-owned",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let push = &doc["components"]["schemas"]["PushIn"]["properties"];
    for field in [
        "scope",
        "tables",
        "folders",
        "keep_staging",
        "on_conflict",
        "preview",
        "dry_run",
    ] {
        assert!(push[field].is_object(), "{field}");
    }
    let scopes = push["scope"]["enum"].as_array().unwrap();
    assert_eq!(scopes.len(), 5, "{scopes:?}");
}
