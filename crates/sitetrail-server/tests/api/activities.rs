//! Recording, ending and reading activities: invariants 1, 5, 6 and 8, paging and bad input.

use serde_json::{Value, json};
use sitetrail_core::Audience;

use crate::*;

async fn count(app: &TestApp) -> usize {
    let token = app.token("acme", None, Audience::Internal);
    let r = app
        .get(&token, "/api/v1/sites/shop/activities/export?format=ndjson")
        .await;
    r.text().await.unwrap().lines().count()
}

#[tokio::test]
async fn an_activity_ends_once_with_its_completion_time_and_duration() {
    let app = spawn_app().await;
    let mut body = activity("acme", "shop");
    body["created_at"] = json!("2026-11-25T10:00:00.000+01:00");
    let a = app.record(&body).await;
    assert_eq!(a["status"], "in_progress");
    assert_eq!(a["created_at"], "2026-11-25T09:00:00.000Z");
    assert_eq!(a["completed_at"], Value::Null);
    let id = a["id"].as_str().unwrap();
    let r = app
        .end(
            id,
            "fail",
            &json!({"error": "database went away", "completed_at": "2026-11-25T09:00:42.5Z", "details": {"retries": 3}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let failed: Value = r.json().await.unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["completed_at"], "2026-11-25T09:00:42.500Z");
    assert_eq!(failed["duration_ms"], 42_500);
    assert_eq!(failed["error"], "database went away");
    assert_eq!(
        failed["details"]["retries"], 3,
        "the end's details are merged in"
    );
    let again = app.end(id, "complete", &json!({})).await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");
    let token = app.token("acme", None, Audience::Internal);
    let stored = app
        .get_json(&token, &format!("/api/v1/activities/{id}"))
        .await;
    assert_eq!(stored["status"], "failed", "the second end changed nothing");
}

#[tokio::test]
async fn ending_with_an_empty_body_works_and_bad_endings_change_nothing() {
    let app = spawn_app().await;
    let a = app.record(&activity("acme", "shop")).await;
    let id = a["id"].as_str().unwrap();
    for bad in [
        json!({"error": "not for a completed one"}),
        json!({"completed_at": "2001-01-01T00:00:00Z"}),
        json!({"unknown": 1}),
    ] {
        assert_eq!(app.end(id, "complete", &bad).await.status(), 422, "{bad}");
    }
    let r = app
        .post_raw(&format!("/api/v1/activities/{id}/complete"), "")
        .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(
        app.end("missing", "complete", &json!({})).await.status(),
        404
    );
}

#[tokio::test]
async fn a_replay_returns_the_same_activity_and_another_body_is_a_conflict() {
    let app = spawn_app().await;
    let mut body = activity("acme", "shop");
    body["id"] = json!("deploy-7731");
    let first = app.record(&body).await;
    let r = app.post_json("/api/v1/activities", &body).await;
    assert_eq!(r.status(), 200);
    let replay: Value = r.json().await.unwrap();
    assert_eq!(replay, first);
    body["description"] = json!("something else");
    let r = app.post_json("/api/v1/activities", &body).await;
    assert_eq!(r.status(), 409);
    // The Idempotency-Key header names the id when the body has none.
    let plain = activity("acme", "shop");
    let send = || {
        app.http
            .post(app.url("/api/v1/activities"))
            .bearer_auth(&app.key)
            .header("idempotency-key", "retry-42")
            .json(&plain)
            .send()
    };
    let a = send().await.unwrap();
    assert_eq!(a.status(), 201);
    let b = send().await.unwrap();
    assert_eq!(b.status(), 200);
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["id"], "retry-42");
    assert_eq!(a, b);
    assert_eq!(count(&app).await, 2);
}

#[tokio::test]
async fn keyset_pages_over_10_000_activities_return_each_once_while_more_arrive() {
    let app = spawn_app().await;
    let base = 1_764_000_000_000i64;
    for chunk in 0..10 {
        let batch: Vec<Value> = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let mut a = activity("acme", "shop");
                a["id"] = json!(format!("old-{n}"));
                // Every three share a millisecond: the tie-breaker is exercised.
                let t = sitetrail_core::Timestamp::from_millis(base + (n / 3) * 1000).unwrap();
                a["created_at"] = json!(t.to_rfc3339());
                a["status"] = json!("completed");
                a
            })
            .collect();
        let r = app
            .post_json("/api/v1/activities/batch", &json!({"activities": batch}))
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let token = app.token("acme", Some("shop"), Audience::Client);
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/sites/shop/activities?limit=200".to_owned(),
            Some(c) => format!("/api/v1/sites/shop/activities?limit=200&cursor={c}"),
        };
        let page = app.get_json(&token, &path).await;
        for a in page["items"].as_array().unwrap() {
            seen.push((
                a["created_at"].as_str().unwrap().to_owned(),
                a["id"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        // New activities arrive while the reader pages back.
        if pages % 10 == 0 {
            app.record(&activity("acme", "shop")).await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let old: Vec<_> = seen
        .iter()
        .filter(|(_, id)| id.starts_with("old-"))
        .collect();
    assert_eq!(old.len(), 10_000, "each old activity exactly once");
    let mut ids: Vec<_> = old.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "no repeats");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
}

#[tokio::test]
async fn newer_then_older_returns_to_the_same_page() {
    let app = spawn_app().await;
    let batch: Vec<Value> = (0..120).map(|_| activity("acme", "shop")).collect();
    app.post_json("/api/v1/activities/batch", &json!({"activities": batch}))
        .await;
    let token = app.token("acme", None, Audience::Client);
    let first = app
        .get_json(&token, "/api/v1/sites/shop/activities?limit=50")
        .await;
    assert_eq!(first["prev_cursor"], Value::Null);
    let next = first["next_cursor"].as_str().unwrap();
    let second = app
        .get_json(
            &token,
            &format!("/api/v1/sites/shop/activities?limit=50&cursor={next}"),
        )
        .await;
    let prev = second["prev_cursor"].as_str().unwrap();
    let back = app
        .get_json(
            &token,
            &format!("/api/v1/sites/shop/activities?limit=50&cursor={prev}"),
        )
        .await;
    assert_eq!(back["items"], first["items"]);
    assert_eq!(back["prev_cursor"], Value::Null, "back at the newest page");
}

#[tokio::test]
async fn filters_narrow_the_list_and_the_export() {
    let app = spawn_app().await;
    let mut failed = activity("acme", "shop");
    failed["status"] = json!("failed");
    failed["error"] = json!("=HYPERLINK(\"http://evil.example\")");
    failed["description"] = json!("=1+1 looked like a formula");
    app.record(&failed).await;
    let mut backup = activity("acme", "shop");
    backup["service"] = json!("backups");
    backup["activity"] = json!("create_backup");
    backup["created_at"] = json!("2025-01-01T00:00:00Z");
    app.record(&backup).await;
    app.record(&activity("acme", "shop")).await;
    let token = app.token("acme", None, Audience::Client);
    let n = |q: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            app.get_json(&token, &format!("/api/v1/sites/shop/activities?{q}"))
                .await["items"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(n("activity=push_staging_to_live&status=failed").await, 1);
    assert_eq!(n("service=backups").await, 1);
    assert_eq!(n("from=2026-01-01T00:00:00Z").await, 2);
    assert_eq!(n("to=2026-01-01T00:00:00Z").await, 1);
    assert_eq!(n("q=FORMULA").await, 1);
    assert_eq!(n("user=olivia@acme.example").await, 3);
    let csv = app
        .get(
            &token,
            "/api/v1/sites/shop/activities/export?format=csv&status=failed",
        )
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("Created,User,Service,Activity,Status,Description,Completed,Error")
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains(",Push Staging to Live,Failed,'=1+1 looked like a formula,"),
        "{row}"
    );
    assert_eq!(lines.next(), None);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let app = spawn_app().await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut a = activity("acme", "shop");
        f(&mut a);
        a
    };
    let cases: Vec<(&str, u16, reqwest::Response)> = vec![
        ("malformed JSON", 400, app.post_raw("/api/v1/activities", "{\"account_id\": ").await),
        ("unknown kind", 422, app.post_json("/api/v1/activities", &with(&|a| a["activity"] = json!("delete_site"))).await),
        ("unknown status", 422, app.post_json("/api/v1/activities", &with(&|a| a["status"] = json!("done"))).await),
        ("bad id characters", 422, app.post_json("/api/v1/activities", &with(&|a| a["id"] = json!("../etc/passwd"))).await),
        ("bad site id", 422, app.post_json("/api/v1/activities", &with(&|a| a["site_id"] = json!("a b"))).await),
        ("unknown site", 422, app.post_json("/api/v1/activities", &with(&|a| a["site_id"] = json!("ghost"))).await),
        ("foreign site", 422, app.post_json("/api/v1/activities", &with(&|a| a["site_id"] = json!("portal"))).await),
        ("service mismatch", 422, app.post_json("/api/v1/activities", &with(&|a| a["service"] = json!("backups"))).await),
        ("bad date", 422, app.post_json("/api/v1/activities", &with(&|a| a["created_at"] = json!("yesterday"))).await),
        ("support without email", 422, app.post_json("/api/v1/activities", &with(&|a| a["actor"] = json!({"kind": "support"}))).await),
        ("unknown field", 422, app.post_json("/api/v1/activities", &with(&|a| a["colour"] = json!("red"))).await),
        ("oversize body", 413, app.post_json("/api/v1/activities", &with(&|a| a["description"] = json!("x".repeat(100_000)))).await),
        ("oversize description", 422, app.post_json("/api/v1/activities", &with(&|a| a["description"] = json!("x".repeat(3_000)))).await),
        ("batch of 1,001", 413, app.post_json("/api/v1/activities/batch", &json!({"activities": vec![activity("acme", "shop"); 1001]})).await),
        ("batch with one bad", 422, app.post_json("/api/v1/activities/batch", &json!({"activities": [activity("acme", "shop"), with(&|a| a["status"] = json!("nope"))]})).await),
        ("no content type", 415, app.http.post(app.url("/api/v1/activities")).bearer_auth(&app.key).body(activity("acme", "shop").to_string()).send().await.unwrap()),
    ];
    for (what, status, r) in cases {
        assert_eq!(r.status().as_u16(), status, "{what}");
        let body: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {body}"));
        assert!(
            !message.is_empty() && body["error"]["code"].is_string(),
            "{what}: {body}"
        );
    }
    assert_eq!(count(&app).await, 0, "nothing was written");

    let token = app.token("acme", None, Audience::Client);
    for (query, status) in [
        ("cursor=not-a-cursor", 400),
        ("from=2026-13-01", 422),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", 422),
        ("limit=0", 422),
        ("limit=201", 422),
        ("status=done", 422),
        ("activity=drop_tables", 422),
    ] {
        let r = app
            .get(&token, &format!("/api/v1/sites/shop/activities?{query}"))
            .await;
        assert_eq!(r.status().as_u16(), status, "{query}");
    }
    let r = app
        .get(&token, "/api/v1/sites/shop/activities/export?format=xlsx")
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn everything_answered_2xx_survives_a_restart() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let mut a = activity("acme", "shop");
        a["id"] = json!(format!("durable-{i}"));
        ids.push(app.record(&a).await["id"].as_str().unwrap().to_owned());
    }
    app.end("durable-0", "complete", &json!({})).await;
    let again = app.restart().await;
    let token = again.token("acme", None, Audience::Internal);
    for id in &ids {
        let a = again
            .get_json(&token, &format!("/api/v1/activities/{id}"))
            .await;
        assert_eq!(&a["id"], id);
    }
    let first = again.get_json(&token, "/api/v1/activities/durable-0").await;
    assert_eq!(first["status"], "completed");
}

#[tokio::test]
async fn the_live_stream_resumes_after_last_event_id() {
    let app = spawn_app().await;
    let token = app.token("acme", Some("shop"), Audience::Internal);
    let a = app.record(&activity("acme", "shop")).await;
    let b = app.record(&activity("acme", "shop")).await;
    app.record(&activity("acme", "blog")).await;
    let all = app.stream_events(&token, "shop", Some("0"), 2).await;
    assert!(
        all.contains(a["id"].as_str().unwrap()) && all.contains(b["id"].as_str().unwrap()),
        "{all}"
    );
    let first_id = first_event_id(&all);
    app.end(a["id"].as_str().unwrap(), "complete", &json!({}))
        .await;
    let rest = app.stream_events(&token, "shop", Some(&first_id), 2).await;
    assert!(rest.contains("activity.ended"), "{rest}");
    assert!(!rest.contains("blog"), "only this site's activities");
    let r = app
        .http
        .get(app.url("/api/v1/sites/shop/activities/stream"))
        .bearer_auth(&token)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The id of the first event of a stream's text.
fn first_event_id(events: &str) -> String {
    events
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .expect("an event with an id")
        .trim()
        .to_owned()
}

/// A page opens its stream with the change number it was rendered at, so what commits
/// between the render and the stream's opening still reaches it.
#[tokio::test]
async fn the_live_stream_resumes_after_a_change_number_in_its_url() {
    let app = spawn_app().await;
    let token = app.token("acme", Some("shop"), Audience::Internal);
    let a = app.record(&activity("acme", "shop")).await;
    let first = app.stream_events(&token, "shop", Some("0"), 1).await;
    let rendered_at = first_event_id(&first);
    let b = app.record(&activity("acme", "shop")).await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let url = format!("/api/v1/sites/shop/activities/stream?after={rendered_at}");
    let rest = app.stream_events_at(&token, &url, None, 1).await;
    assert!(rest.contains(b) && !rest.contains(a), "{rest}");
    // A reconnecting browser sends Last-Event-ID, newer than the page's number: it wins.
    let again = app
        .stream_events_at(
            &token,
            "/api/v1/sites/shop/activities/stream?after=0",
            Some(&rendered_at),
            1,
        )
        .await;
    assert!(again.contains(b) && !again.contains(a), "{again}");
    for bad in ["-1", "yesterday"] {
        let r = app
            .get(
                &token,
                &format!("/api/v1/sites/shop/activities/stream?after={bad}"),
            )
            .await;
        assert_eq!(r.status(), 400, "after={bad}");
    }
}

#[tokio::test]
async fn health_metrics_and_openapi_answer() {
    let app = spawn_app().await;
    let h: Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    app.record(&activity("acme", "shop")).await;
    let m = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("sitetrail_http_requests_total"), "{m}");
    // The recording above went through one group commit.
    for figure in [
        "sitetrail_write_group_requests_count",
        "sitetrail_write_group_seconds_count",
    ] {
        let count = m
            .lines()
            .find_map(|l| l.strip_prefix(figure)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{figure} missing: {m}"));
        assert!(count >= 1.0, "{figure} {count}");
    }
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
        "/api/v1/activities",
        "/api/v1/sites/{site}/activities",
        "/api/v1/sites/{site}/activities/export",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}

/// `n` activities on acme's shop through the batch endpoint: every tenth by support, times
/// that repeat, descriptions that need quoting in a CSV.
pub(crate) async fn record_many(app: &TestApp, n: usize) {
    let start = sitetrail_core::Timestamp::parse_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .millis();
    let all: Vec<Value> = (0..n)
        .map(|i| {
            let mut a = if i % 10 == 0 {
                support_activity("acme", "shop")
            } else {
                activity("acme", "shop")
            };
            let created = start + (i as i64 / 2) * 1_000;
            let at = |ms: i64| {
                sitetrail_core::Timestamp::from_millis(ms)
                    .unwrap()
                    .to_rfc3339()
            };
            a["created_at"] = json!(at(created));
            if i % 3 != 0 {
                a["status"] = json!("completed");
                a["completed_at"] = json!(at(created + 4_321));
            }
            if i % 10 != 0 {
                a["description"] = json!(format!("Push {i}, \"quoted\", with a\nsecond line"));
            }
            a
        })
        .collect();
    for batch in all.chunks(1_000) {
        let r = app
            .post_json("/api/v1/activities/batch", &json!({"activities": batch}))
            .await;
        assert!(r.status().is_success(), "{}", r.status());
    }
}

#[tokio::test]
async fn a_large_export_arrives_complete_in_the_order_of_the_pages() {
    let app = spawn_app().await;
    record_many(&app, 5_000).await;
    let token = app.token("acme", None, Audience::Internal);
    let mut items = Vec::new();
    let mut path = "/api/v1/sites/shop/activities?limit=200".to_owned();
    loop {
        let page = app.get_json(&token, &path).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/sites/shop/activities?limit=200&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(items.len(), 5_000);

    let r = app
        .get(&token, "/api/v1/sites/shop/activities/export?format=ndjson")
        .await;
    assert_eq!(r.status(), 200);
    let exported: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 5_000);
    assert!(
        exported == items,
        "NDJSON holds the pages' activities, in order"
    );

    let r = app
        .get(&token, "/api/v1/sites/shop/activities/export?format=csv")
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        csv.headers().unwrap(),
        vec![
            "Created",
            "User",
            "Service",
            "Activity",
            "Status",
            "Description",
            "Completed",
            "Error"
        ]
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5_000);
    for (row, item) in rows.iter().zip(&items) {
        let expected = [
            item["created_at"].as_str().unwrap(),
            item["user"]["label"].as_str().unwrap(),
            "Staging",
            "Push Staging to Live",
            item["status"]
                .as_str()
                .map(|s| {
                    if s == "completed" {
                        "Completed"
                    } else {
                        "In progress"
                    }
                })
                .unwrap(),
            item["description"].as_str().unwrap(),
            item["completed_at"].as_str().unwrap_or(""),
            item["error"].as_str().unwrap_or(""),
        ];
        assert_eq!(row.iter().collect::<Vec<_>>(), expected);
    }
}

#[tokio::test]
async fn a_batch_that_prefers_return_minimal_gets_a_receipt_per_activity_in_order() {
    let app = spawn_app().await;
    let mut named = activity("acme", "shop");
    named["id"] = json!("load-1");
    let batch =
        json!({"activities": [named, activity("acme", "shop"), support_activity("acme", "blog")]});
    let send = |body: Value| {
        app.http
            .post(app.url("/api/v1/activities/batch"))
            .bearer_auth(&app.key)
            .header("prefer", "respond-async, return=minimal")
            .json(&body)
            .send()
    };
    let r = send(batch.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["preference-applied"], "return=minimal");
    let first: Value = r.json().await.unwrap();
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0], json!({"id": "load-1", "created": true}));
    for receipt in items {
        assert_eq!(receipt.as_object().unwrap().len(), 2, "{receipt}");
        assert_eq!(receipt["created"], true);
    }
    // Each receipt names what was stored, in the order sent.
    let token = app.token("acme", None, Audience::Internal);
    for (receipt, sent) in items.iter().zip(batch["activities"].as_array().unwrap()) {
        let id = receipt["id"].as_str().unwrap();
        let stored = app
            .get_json(&token, &format!("/api/v1/activities/{id}"))
            .await;
        assert_eq!(stored["site_id"], sent["site_id"]);
        assert_eq!(stored["description"], sent["description"]);
    }

    // The same request again: the named activity is a replay, the others are new.
    let again: Value = send(batch).await.unwrap().json().await.unwrap();
    assert_eq!(again["items"][0], json!({"id": "load-1", "created": false}));
    assert_eq!(again["items"][1]["created"], true);
    assert_ne!(again["items"][1]["id"], items[1]["id"]);

    // Without the preference the answer is every activity as stored.
    let full = app
        .post_json(
            "/api/v1/activities/batch",
            &json!({"activities": [activity("acme", "shop")]}),
        )
        .await;
    assert!(full.headers().get("preference-applied").is_none());
    let full: Value = full.json().await.unwrap();
    assert_eq!(full["items"][0]["activity_label"], "Push Staging to Live");
}
