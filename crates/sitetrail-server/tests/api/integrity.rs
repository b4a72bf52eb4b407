//! Rate limits and quotas, the audit of who looked, retention settings, and what only
//! sitetrail may log, through the HTTP API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sitetrail_core::{ActorKind, Audience};
use sitetrail_server::RateLimits;

use crate::helpers::*;

async fn count(app: &TestApp, site: &str) -> usize {
    let token = app.token("acme", None, Audience::Internal);
    let page = app
        .get_json(
            &token,
            &format!("/api/v1/sites/{site}/activities?limit=200"),
        )
        .await;
    page["items"].as_array().unwrap().len()
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("a 429 says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_publisher_over_its_rate_is_told_to_slow_down_and_nothing_is_written() {
    let app = spawn_app_with(RateLimits {
        publisher_per_second: 5,
        ..RateLimits::OFF
    })
    .await;
    // The seed spent part of the burst (ten requests); wait for the bucket to refill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..30 {
        let r = app
            .post_json("/api/v1/activities", &activity("acme", "shop"))
            .await;
        match r.status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(r);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let r = refused.expect("a burst of 30 requests at 5/s meets the limit");
    assert!((1..=2).contains(&retry_after(&r)), "{r:?}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "slow_down");
    assert_eq!(
        count(&app, "shop").await,
        accepted,
        "the refused one wrote nothing"
    );
    assert!(accepted <= 11, "the burst is twice the rate: {accepted}");
}

#[tokio::test]
async fn a_viewer_over_its_rate_is_told_to_slow_down_and_another_viewer_is_not() {
    let app = spawn_app_with(RateLimits {
        viewer_per_second: 2,
        ..RateLimits::OFF
    })
    .await;
    let owner = app.token("acme", None, Audience::Client);
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(app.get(&owner, "/api/v1/activities").await.status());
    }
    assert_eq!(statuses[0], StatusCode::OK);
    let limited = statuses
        .iter()
        .position(|s| *s == StatusCode::TOO_MANY_REQUESTS)
        .expect("fifteen reads at 2/s meet the limit");
    assert!(
        limited >= 10,
        "the burst is five times the rate: {statuses:?}"
    );
    let r = app.get(&owner, "/api/v1/activities").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 1);
    let partner = app.token_for(
        "acme",
        None,
        Audience::Internal,
        ActorKind::User,
        "pat@agency.example",
    );
    assert_eq!(app.get(&partner, "/api/v1/activities").await.status(), 200);
}

#[tokio::test]
async fn one_noisy_site_meets_its_cap_and_the_others_do_not() {
    let app = spawn_app_with(RateLimits {
        site_activities_per_minute: 50,
        ..RateLimits::OFF
    })
    .await;
    let batch = |site: &str, n: usize| json!({"activities": vec![activity("acme", site); n]});
    let r = app
        .post_json("/api/v1/activities/batch", &batch("shop", 40))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_json("/api/v1/activities/batch", &batch("shop", 20))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 1);
    let r = app
        .post_json("/api/v1/activities", &activity("acme", "blog"))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "another site is not drowned"
    );
    let r = app
        .post_json("/api/v1/activities/batch", &batch("blog", 60))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a batch beyond the cap"
    );
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("split it")
    );
    assert_eq!(count(&app, "shop").await, 40);
    assert_eq!(count(&app, "blog").await, 1);
}

async fn looks(app: &TestApp, query: &str) -> Vec<Value> {
    let partner = app.token("acme", None, Audience::Internal);
    // Looks are written in the background: wait for them.
    for _ in 0..50 {
        let page = app
            .get_json(&partner, &format!("/api/v1/access-log{query}"))
            .await;
        let items = page["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn reading_and_exporting_the_log_is_recorded_for_internal_eyes_only() {
    let app = spawn_app().await;
    app.record(&support_activity("acme", "shop")).await;
    let support = app.token_for(
        "acme",
        Some("shop"),
        Audience::Internal,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    let client = app.token("acme", Some("shop"), Audience::Client);
    app.get_json(&support, "/api/v1/sites/shop/activities?status=in_progress")
        .await;
    let r = app
        .get(&client, "/api/v1/sites/shop/activities/export?format=csv")
        .await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    // A read that fails is not a look.
    assert_eq!(
        app.get(&client, "/api/v1/sites/portal/activities")
            .await
            .status(),
        404
    );
    let mut items = looks(&app, "?site=shop").await;
    for _ in 0..50 {
        if items.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        items = looks(&app, "?site=shop").await;
    }
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["action"], "export");
    assert_eq!(items[0]["audience"], "client");
    assert_eq!(items[0]["viewer_email"], OWNER_EMAIL);
    assert_eq!(items[0]["query"], "format=csv");
    assert_eq!(items[1]["action"], "list");
    assert_eq!(items[1]["viewer_kind"], "support");
    assert_eq!(items[1]["viewer_email"], SUPPORT_EMAIL);
    assert_eq!(items[1]["query"], "status=in_progress");
    // Clients never see the access log, nor its entries in the activity log.
    let r = app.get(&client, "/api/v1/access-log").await;
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(!text.contains(SUPPORT_EMAIL), "{text}");
    let page = app.get_json(&client, "/api/v1/activities").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    // Another account's partner sees none of it.
    let globex = app.token("globex", None, Audience::Internal);
    let theirs = app.get_json(&globex, "/api/v1/access-log").await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    // A site-scoped internal viewer cannot widen to another site.
    let r = app.get(&support, "/api/v1/access-log?site=blog").await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_account_keeps_its_retention_period_and_refuses_one_out_of_range() {
    let app = spawn_app().await;
    for days in [0, 3651] {
        let r = app
            .put_json(
                "/api/v1/accounts/acme",
                &json!({"name": "acme", "partner": "Agency", "retention_days": days}),
            )
            .await;
        assert_eq!(r.status(), 422, "{days}");
    }
    let r = app
        .put_json(
            "/api/v1/accounts/acme",
            &json!({"name": "acme", "partner": "Agency", "retention_days": 30}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["retention_days"], 30);
    let r = app
        .put_json(
            "/api/v1/accounts/globex",
            &json!({"name": "globex", "partner": "Agency"}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["retention_days"], 400);
}

#[tokio::test]
async fn publishers_cannot_log_what_only_sitetrail_logs() {
    let app = spawn_app().await;
    let mut a = activity("acme", "shop");
    a["service"] = json!("activity_log");
    a["activity"] = json!("prune_activity_log");
    let r = app.post_json("/api/v1/activities", &a).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recorded by sitetrail itself")
    );
    assert_eq!(count(&app, "shop").await, 0);
}

async fn page(app: &TestApp, token: &str, path: &str) -> (StatusCode, String) {
    let r = app
        .http
        .get(app.url(path))
        .header("cookie", format!("sitetrail_session={token}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_access_log_page_shows_who_looked_to_the_team_and_does_not_exist_for_clients() {
    let app = spawn_app().await;
    let client = app.token("acme", Some("shop"), Audience::Client);
    let (status, _) = page(&app, &client, "/sites/shop/advanced-tools/activity-logs").await;
    assert_eq!(status, 200);
    let partner = app.token_for(
        "acme",
        None,
        Audience::Internal,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    assert_eq!(looks(&app, "?site=shop").await.len(), 1);
    let (status, text) = page(&app, &partner, "/sites/shop/advanced-tools").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("/sites/shop/advanced-tools/access-log"),
        "the card is shown"
    );
    let (status, text) = page(&app, &partner, "/sites/shop/advanced-tools/access-log").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(OWNER_EMAIL) && text.contains("Read the log"),
        "{text}"
    );
    assert!(text.contains(">Client<"), "{text}");
    // The client sees neither the card nor the page, and reading the page is no look.
    let (_, text) = page(&app, &client, "/sites/shop/advanced-tools").await;
    assert!(!text.contains("access-log"), "{text}");
    let (status, text) = page(&app, &client, "/sites/shop/advanced-tools/access-log").await;
    assert_eq!(status, 404);
    assert!(!text.contains(OWNER_EMAIL) || !text.contains("Read the log"));
    assert!(!text.contains(SUPPORT_EMAIL));
}

#[tokio::test]
async fn unknown_api_paths_and_methods_answer_in_the_error_json() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Internal);
    let r = app.get(&token, "/api/v1/nothing-here").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let r = app
        .http
        .delete(app.url("/api/v1/activities"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert_eq!(app.get(&token, "/no-such-page").await.status(), 404);
}
