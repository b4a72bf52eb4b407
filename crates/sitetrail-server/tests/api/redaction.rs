//! Invariant 3: a client never receives a support person's email or name, on any output path.

use serde_json::json;
use sitetrail_core::Audience;

use crate::*;

fn assert_clean(what: &str, bytes: &str) {
    let lower = bytes.to_lowercase();
    for secret in [SUPPORT_EMAIL, "sam", "rivera", "partner.example"] {
        assert!(!lower.contains(secret), "{what} leaks {secret:?}: {bytes}");
    }
}

#[tokio::test]
async fn client_viewer_sees_support_user_on_every_output_path() {
    let app = spawn_app().await;
    let client = app.token("acme", None, Audience::Client);
    // The client is watching the live stream when support starts and ends the push: the
    // stream starts from the moment its answer's headers arrive.
    let r = app
        .http
        .get(app.url("/api/v1/sites/shop/activities/stream"))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The stream carries each activity's row as the feed reads it: the push is ended only
    // once its start reached the client, or a slow read would see only its end.
    let (started, seen_start) = tokio::sync::oneshot::channel();
    let watching = tokio::spawn(async move {
        use futures::StreamExt;
        let mut text = String::new();
        let mut body = r.bytes_stream();
        let mut started = Some(started);
        while text.matches("event:").count() < 2 {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("activity.created")
                && let Some(s) = started.take()
            {
                let _ = s.send(());
            }
        }
        text
    });
    let a = app.record(&support_activity("acme", "shop")).await;
    let id = a["id"].as_str().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), seen_start)
        .await
        .expect("the start reaches the stream")
        .unwrap();
    let r = app
        .end(
            id,
            "fail",
            &json!({"error": format!("{SUPPORT_NAME} ({SUPPORT_EMAIL}) saw a timeout")}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let mut outputs = Vec::new();
    let list = app
        .get(&client, "/api/v1/sites/shop/activities")
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("\"label\":\"Support user\""), "{list}");
    outputs.push(("site list", list));
    outputs.push((
        "account list",
        app.get(&client, "/api/v1/activities")
            .await
            .text()
            .await
            .unwrap(),
    ));
    outputs.push((
        "get",
        app.get(&client, &format!("/api/v1/activities/{id}"))
            .await
            .text()
            .await
            .unwrap(),
    ));
    let csv = app
        .get(&client, "/api/v1/sites/shop/activities/export?format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains("Support user"), "{csv}");
    outputs.push(("csv", csv));
    outputs.push((
        "ndjson",
        app.get(
            &client,
            "/api/v1/sites/shop/activities/export?format=ndjson",
        )
        .await
        .text()
        .await
        .unwrap(),
    ));
    let live = watching.await.unwrap();
    assert!(
        live.contains("activity.created") && live.contains("activity.ended"),
        "{live}"
    );
    assert!(live.contains("Support user"), "{live}");
    outputs.push(("live stream", live));
    outputs.push((
        "resumed stream",
        app.stream_events(&client, "shop", Some("0"), 1).await,
    ));
    // Error responses, including ones caused by a client probing for the support email.
    for path in [
        format!("/api/v1/sites/shop/activities?q={SUPPORT_EMAIL}&status=bogus"),
        format!("/api/v1/sites/shop/activities?user={SUPPORT_EMAIL}&from=yesterday"),
        "/api/v1/sites/shop/activities?cursor=garbage".to_owned(),
        "/api/v1/activities/does-not-exist".to_owned(),
    ] {
        let r = app.get(&client, &path).await;
        assert!(r.status().is_client_error(), "{path}");
        outputs.push(("error", r.text().await.unwrap()));
    }
    for (what, bytes) in &outputs {
        assert_clean(what, bytes);
    }
}

#[tokio::test]
async fn searching_for_a_support_email_as_a_client_finds_nothing() {
    let app = spawn_app().await;
    app.record(&support_activity("acme", "shop")).await;
    let client = app.token("acme", None, Audience::Client);
    for query in [
        format!("q={SUPPORT_EMAIL}"),
        "q=rivera".into(),
        "q=sam".into(),
        format!("user={SUPPORT_EMAIL}"),
    ] {
        let page = app
            .get_json(&client, &format!("/api/v1/sites/shop/activities?{query}"))
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 0, "{query}");
    }
    let page = app
        .get_json(&client, "/api/v1/sites/shop/activities?user=Support%20user")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn internal_viewers_see_the_support_persons_email() {
    let app = spawn_app().await;
    app.record(&support_activity("acme", "shop")).await;
    let internal = app.token("acme", None, Audience::Internal);
    let page = app
        .get_json(&internal, "/api/v1/sites/shop/activities")
        .await;
    let item = &page["items"][0];
    assert_eq!(item["user"]["label"], SUPPORT_EMAIL);
    assert_eq!(item["user"]["kind"], "support");
    assert!(
        item["description"]
            .as_str()
            .unwrap()
            .contains(SUPPORT_EMAIL)
    );
    let found = app
        .get_json(
            &internal,
            &format!("/api/v1/sites/shop/activities?q={SUPPORT_EMAIL}"),
        )
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let csv = app
        .get(&internal, "/api/v1/sites/shop/activities/export")
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains(SUPPORT_EMAIL));
}

#[tokio::test]
async fn a_large_client_export_names_no_support_person_in_any_row() {
    let app = spawn_app().await;
    crate::activities::record_many(&app, 3_000).await;
    let client = app.token("acme", None, Audience::Client);
    let csv = app
        .get(&client, "/api/v1/sites/shop/activities/export?format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert_clean("large csv", &csv);
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let users: Vec<String> = rows.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert_eq!(users.len(), 3_000);
    assert_eq!(users.iter().filter(|u| *u == "Support user").count(), 300);
    let ndjson = app
        .get(
            &client,
            "/api/v1/sites/shop/activities/export?format=ndjson",
        )
        .await
        .text()
        .await
        .unwrap();
    assert_clean("large ndjson", &ndjson);
    assert_eq!(ndjson.lines().count(), 3_000);
}
