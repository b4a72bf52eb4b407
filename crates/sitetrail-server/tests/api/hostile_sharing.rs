//! One tenant must never slow down another. A client that opens exports and never reads
//! them, holds live streams, leaves connections silent or idle, or reloads pages in a loop
//! is refused or cut off, while another tenant's pages and API keep answering. Liveness is
//! checked with a generous bound; speed is never asserted.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sitetrail_core::{ActorKind, Audience};
use sitetrail_server::{Config, RateLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::*;

/// How long a victim may wait for an answer before the test calls it starved.
const GENEROUS: Duration = Duration::from_secs(10);
const EXPORT: &str = "/api/v1/sites/shop/activities/export?format=csv";

/// Concurrency limits on, rates off (the tests of rates set their own).
fn sharing_limits() -> RateLimits {
    RateLimits {
        publisher_per_second: 0,
        viewer_per_second: 0,
        site_activities_per_minute: 0,
        ..RateLimits::default()
    }
}

/// `shop`'s log made big enough (about 15 MB of CSV) that an export nobody reads fills every
/// buffer between the store and the client and then waits.
async fn grow_shops_log(app: &TestApp) {
    let long = "x".repeat(1_900);
    for _ in 0..8 {
        let batch: Vec<Value> = (0..1000)
            .map(|_| {
                let mut a = activity("acme", "shop");
                a["description"] = json!(long);
                a
            })
            .collect();
        let r = app
            .post_json("/api/v1/activities/batch", &json!({ "activities": batch }))
            .await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

fn client_of(app: &TestApp, account: &str, email: &str) -> String {
    app.token_for(account, None, Audience::Client, ActorKind::User, email)
}

fn address(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection whose receive buffer is so small that the server soon cannot write more.
async fn tight_connection(app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(address(app)).await.unwrap()
}

/// Reads an answer's head (status line and headers), byte by byte so that nothing of its
/// body is taken.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(GENEROUS, conn.read(&mut byte))
            .await
            .expect("an answer within the generous bound")
            .unwrap();
        assert_eq!(n, 1, "the connection closed before its answer: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Asks for `path` and reads only the answer's head: the body is left unread.
async fn ask_and_stall(app: &TestApp, token: &str, path: &str) -> (u16, TcpStream) {
    let mut conn = tight_connection(app).await;
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: sitetrail\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut conn).await;
    (status_of(&head), conn)
}

/// A refusal as the contract writes it: 429, `Retry-After`, and the error body.
async fn assert_slow_down(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "slow_down", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.is_empty() && !message.contains('/'),
        "{what}: {message}"
    );
}

/// A page as a signed-in browser asks for it.
async fn page(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header("cookie", format!("sitetrail_session={token}"))
        .send()
        .await
        .unwrap()
}

/// Another tenant's dashboard page and API page answer within the bound, and so does its
/// export if `export`.
async fn assert_victim_is_served(app: &TestApp, export: bool) {
    let victim = client_of(app, "globex", "gina@globex.example");
    let looked = tokio::time::timeout(GENEROUS, async {
        let p = page(app, &victim, "/sites/portal/advanced-tools/activity-logs").await;
        assert_eq!(p.status(), 200, "the victim's page");
        let a = app.get(&victim, "/api/v1/sites/portal/activities").await;
        assert_eq!(a.status(), 200, "the victim's API");
        if !export {
            return;
        }
        let e = app
            .get(&victim, "/api/v1/sites/portal/activities/export?format=csv")
            .await;
        assert_eq!(e.status(), 200, "the victim's export");
        assert!(e.text().await.unwrap().starts_with("Created,User"));
    })
    .await;
    assert!(
        looked.is_ok(),
        "another tenant got no answer within {GENEROUS:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_and_streams_past_a_viewers_share_are_refused_and_other_tenants_still_answer() {
    let app = spawn_app_configured(|c: &mut Config| c.limits = sharing_limits()).await;
    grow_shops_log(&app).await;
    let first = client_of(&app, "acme", "mallory@acme.example");
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, conn) = ask_and_stall(&app, &first, EXPORT).await;
        assert_eq!(status, 200, "an export within the viewer's share");
        held.push(conn);
    }
    assert_slow_down(app.get(&first, EXPORT).await, "a third export").await;
    // A token of the same person for one site is the same viewer.
    let same_person = app.token_for(
        "acme",
        Some("shop"),
        Audience::Client,
        ActorKind::User,
        "mallory@acme.example",
    );
    assert_slow_down(app.get(&same_person, EXPORT).await, "another token").await;
    // Another person of the same account has a share of its own, up to the account's half.
    let second = client_of(&app, "acme", "mallet@acme.example");
    for _ in 0..2 {
        let (status, conn) = ask_and_stall(&app, &second, EXPORT).await;
        assert_eq!(status, 200, "the second person's export");
        held.push(conn);
    }
    let third = client_of(&app, "acme", "mal@acme.example");
    assert_slow_down(app.get(&third, EXPORT).await, "past the account's half").await;

    let stream = "/api/v1/sites/shop/activities/stream";
    let mut streams = Vec::new();
    for _ in 0..5 {
        let r = app.get(&first, stream).await;
        assert_eq!(r.status(), 200, "a live stream within the viewer's share");
        streams.push(r);
    }
    assert_slow_down(app.get(&first, stream).await, "a sixth live stream").await;

    assert_victim_is_served(&app, true).await;
    drop(held);
    drop(streams);
}

/// The blocking pool is shrunk so that what exhausted it in production (530 exports against
/// tokio's 512 threads) happens with a handful; on PostgreSQL exports held the pages' pool.
#[test]
fn pages_never_wait_behind_exports_nobody_reads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // No HTTP limits: the store's own export readers must keep pages free.
        let app = spawn_app_configured(|_| {}).await;
        grow_shops_log(&app).await;
        let attacker = client_of(&app, "acme", "mallory@acme.example");
        let mut held = Vec::new();
        for _ in 0..12 {
            let (status, conn) = ask_and_stall(&app, &attacker, EXPORT).await;
            assert_eq!(status, 200);
            held.push(conn);
        }
        // (Its export waits for a reader: without the server's limits, the attacker holds
        // them all.)
        assert_victim_is_served(&app, false).await;
        drop(held);
    });
}
