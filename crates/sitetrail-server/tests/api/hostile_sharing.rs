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
    assert_eq!(
        recorded_exports(&app, "acme").await,
        4,
        "a refused export is not recorded as a look"
    );
    drop(held);
    drop(streams);
}

/// The exports of an account's log its access log records, once the looks are written.
async fn recorded_exports(app: &TestApp, account: &str) -> usize {
    let partner = app.token_for(
        account,
        None,
        Audience::Internal,
        ActorKind::User,
        "pat@agency.example",
    );
    let count = || async {
        let log = app.get_json(&partner, "/api/v1/access-log?limit=200").await;
        let looks = log["items"].as_array().unwrap().clone();
        looks.iter().filter(|l| l["action"] == "export").count()
    };
    // Looks are written in batches a few milliseconds apart.
    let deadline = tokio::time::Instant::now() + GENEROUS;
    while count().await == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    count().await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_an_export_is_cut_off_and_its_share_comes_back() {
    let app = spawn_app_configured(|c: &mut Config| {
        c.limits = sharing_limits();
        c.serving.write_timeout = Duration::from_secs(1);
    })
    .await;
    grow_shops_log(&app).await;
    let reader = client_of(&app, "acme", "mallory@acme.example");
    let (status, mut stalled) = ask_and_stall(&app, &reader, EXPORT).await;
    assert_eq!(status, 200);
    let (status, _other) = ask_and_stall(&app, &reader, EXPORT).await;
    assert_eq!(status, 200);
    assert_slow_down(app.get(&reader, EXPORT).await, "a third export").await;

    // Once the stalled writes time out, the viewer may export again.
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        let r = app.get(&reader, EXPORT).await;
        if r.status() == 200 {
            let body = r.bytes().await.unwrap();
            assert!(
                body.len() > 15_000_000,
                "the whole export: {} bytes",
                body.len()
            );
            break;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled exports still hold the viewer's share"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stalled client finds its answer cut short: no final chunk.
    let mut rest = Vec::new();
    tokio::time::timeout(GENEROUS, stalled.read_to_end(&mut rest))
        .await
        .expect("the server closed the stalled connection")
        .ok();
    assert!(
        !rest.ends_with(b"0\r\n\r\n"),
        "the stalled export was finished"
    );
}

/// Reads until the server closes the connection; false if it is still open after the bound.
async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(GENEROUS, conn.read_to_end(&mut sink))
        .await
        .is_ok()
}

#[tokio::test]
async fn connections_that_send_no_whole_head_are_closed_after_the_header_timeout() {
    let app = spawn_app_configured(|c: &mut Config| {
        c.serving.header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut silent = TcpStream::connect(address(&app)).await.unwrap();
    let mut trickling = TcpStream::connect(address(&app)).await.unwrap();
    trickling
        .write_all(b"GET /sites HTTP/1.1\r\nHost: sitetrail\r\n")
        .await
        .unwrap();
    let (mut read_half, mut write_half) = trickling.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write_half
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    assert!(closed_by_server(&mut silent).await, "a silent connection");
    let mut sink = Vec::new();
    let trickled = tokio::time::timeout(GENEROUS, read_half.read_to_end(&mut sink)).await;
    assert!(trickled.is_ok(), "a head that never ends");
    trickle.abort();
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_is_closed() {
    let app = spawn_app_configured(|c: &mut Config| {
        c.serving.header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut conn = TcpStream::connect(address(&app)).await.unwrap();
    conn.write_all(b"GET /no-such-page HTTP/1.1\r\nHost: sitetrail\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut conn).await;
    assert_eq!(status_of(&head), 404);
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    assert!(
        closed_by_server(&mut conn).await,
        "an idle kept-alive connection"
    );
}

#[tokio::test]
async fn a_request_body_that_stops_coming_is_given_up_after_the_body_timeout() {
    let app = spawn_app_configured(|c: &mut Config| {
        c.serving.body_timeout = Duration::from_secs(1);
    })
    .await;
    let mut conn = TcpStream::connect(address(&app)).await.unwrap();
    let head = format!(
        "POST /api/v1/activities HTTP/1.1\r\nHost: sitetrail\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"account_id\"",
        app.key
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    assert!(
        closed_by_server(&mut conn).await,
        "a body that stops coming"
    );
    let owner = app.token("acme", None, Audience::Internal);
    let log = app.get_json(&owner, "/api/v1/sites/shop/activities").await;
    assert_eq!(log["items"], json!([]), "nothing was recorded");
}

async fn ask(conn: &mut TcpStream, path: &str) {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: sitetrail\r\n\r\n").as_bytes())
        .await
        .unwrap();
}

#[tokio::test]
async fn connections_past_the_cap_wait_and_do_not_starve_an_open_one() {
    let app = spawn_app_configured(|c: &mut Config| {
        c.serving.max_connections = 3;
        c.serving.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut open = TcpStream::connect(address(&app)).await.unwrap();
    ask(&mut open, "/no-such-page").await;
    let head = read_head(&mut open).await;
    assert_eq!(status_of(&head), 404);
    // The page that says so, read to its end.
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut sink = vec![0u8; length];
    open.read_exact(&mut sink).await.unwrap();

    let idle: Vec<TcpStream> =
        futures::future::join_all((0..2).map(|_| TcpStream::connect(address(&app))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = TcpStream::connect(address(&app)).await.unwrap();
    ask(&mut late, "/no-such-page").await;
    let mut byte = [0u8; 1];
    let answered = tokio::time::timeout(Duration::from_millis(500), late.read(&mut byte)).await;
    assert!(
        answered.is_err(),
        "a connection past the cap was served at once"
    );

    ask(&mut open, "/no-such-page").await;
    assert_eq!(
        status_of(&read_head(&mut open).await),
        404,
        "the open connection is still served"
    );
    drop(idle);
    assert_eq!(
        status_of(&read_head(&mut late).await),
        404,
        "a waiting connection is served once others close"
    );
}

#[tokio::test]
async fn dashboard_pages_are_refused_past_the_viewers_rate() {
    let app = spawn_app_configured(|c: &mut Config| {
        c.limits = RateLimits {
            viewer_per_second: 1,
            ..RateLimits::OFF
        };
    })
    .await;
    let reloading = client_of(&app, "acme", "mallory@acme.example");
    let log = "/sites/shop/advanced-tools/activity-logs";
    let mut refused = None;
    for _ in 0..20 {
        let r = page(&app, &reloading, log).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let r = refused.expect("twenty page loads at once are past a viewer's rate");
    assert!(r.headers().contains_key("retry-after"));
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("Too many requests"), "{text}");
    // Pages and the API share one budget per viewer.
    assert_slow_down(
        app.get(&reloading, "/api/v1/sites/shop/activities").await,
        "the API after the pages",
    )
    .await;
    let other = client_of(&app, "globex", "gina@globex.example");
    assert_eq!(
        page(&app, &other, "/sites/portal/advanced-tools/activity-logs")
            .await
            .status(),
        200
    );
}
