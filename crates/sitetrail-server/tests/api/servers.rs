//! Several servers on one database, as behind a load balancer.

use std::time::Duration;

use sitetrail_core::Audience;

use crate::{activity, spawn_two_apps};

#[tokio::test]
async fn a_viewer_on_one_server_sees_live_what_another_server_recorded() {
    let (a, b) = spawn_two_apps().await;
    // One signing key: a token minted by either server is good on both.
    let token = b.token("acme", Some("shop"), Audience::Client);
    let listening = {
        let token = token.clone();
        let a_base = a.base.clone();
        let http = a.http.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let r = http
                .get(format!("{a_base}/api/v1/sites/shop/activities/stream"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let mut body = r.bytes_stream();
            let mut text = String::new();
            while !text.contains("\n\n") || !text.contains("data:") {
                let chunk = body.next().await.expect("the stream stays open").unwrap();
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            text
        })
    };
    // The stream starts from the feed's head when server A answers it, and the request may
    // still be on its way: publish through the other server until the viewer has seen
    // something.
    let mut recorded = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !listening.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no live event reached server A within 15 s"
        );
        let made = b.record(&activity("acme", "shop")).await;
        recorded.push(made["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let events = listening.await.unwrap();
    assert!(events.contains("event: activity.created"), "{events}");
    assert!(
        recorded.iter().any(|id| events.contains(id.as_str())),
        "{events}"
    );
    // And a page read through A holds everything recorded through B.
    let page = a
        .get_json(&token, "/api/v1/sites/shop/activities?limit=200")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), recorded.len());
}

#[tokio::test]
async fn an_activity_started_on_one_server_ends_once_whichever_server_is_asked() {
    let (a, b) = spawn_two_apps().await;
    let made = a.record(&activity("acme", "shop")).await;
    let id = made["id"].as_str().unwrap();
    let (complete, fail) = (
        serde_json::json!({}),
        serde_json::json!({"error": "timed out"}),
    );
    let (ra, rb) = tokio::join!(a.end(id, "complete", &complete), b.end(id, "fail", &fail));
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 409],
        "one transition, the other is a conflict"
    );
}
