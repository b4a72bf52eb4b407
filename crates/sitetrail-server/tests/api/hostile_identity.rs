//! Issue 18's attacks on identity and session, one test each: a support identity carried by
//! an activity id or named in someone else's activity, a live stream that outlives its
//! token, a sign-in link that signs a victim in from another site, a cookie sent in clear,
//! and numbers that count other tenants' activity.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sitetrail_core::{AccountId, ActorKind, Audience, SiteId};
use sitetrail_server::auth::{ActorClaim, Claims};
use sitetrail_server::{App, Config};

use crate::*;

const LEAKY_ID: &str = "sam.rivera-push-7731";

/// What a client must never read of Sam, in lower case.
fn assert_no_sam(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for secret in ["sam.rivera", "rivera", "sam@", "partner.example", "sam "] {
        assert!(!lower.contains(secret), "{what} leaks {secret:?}: {text}");
    }
}

async fn text(r: Response) -> String {
    r.text().await.unwrap()
}

/// A site's stream as one client reads it until `n` events arrived.
async fn events(app: &TestApp, token: &str, site: &str, n: usize) -> String {
    app.stream_events(token, site, Some("0"), n).await
}

#[tokio::test]
async fn a_support_identity_in_a_publisher_chosen_id_never_reaches_a_client() {
    let app = spawn_app().await;
    let mut body = support_activity("acme", "shop");
    body["id"] = json!(LEAKY_ID);
    body["description"] = json!("Pushed for the client");
    body["details"] = json!({});
    let recorded = app.record(&body).await;
    assert_eq!(recorded["id"], LEAKY_ID, "the publisher keeps its own id");
    let client = app.token("acme", None, Audience::Client);

    let list = app.get_json(&client, "/api/v1/sites/shop/activities").await;
    let shown = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert_no_sam("the site's list", &list.to_string());
    assert_no_sam(
        "the account's list",
        &text(app.get(&client, "/api/v1/activities").await).await,
    );
    // The id a client is shown takes it back to the activity.
    let one = app
        .get_json(&client, &format!("/api/v1/activities/{shown}"))
        .await;
    assert_eq!(one["id"], shown.as_str());
    assert_eq!(one["user"]["label"], "Support user");
    assert_no_sam("get by the shown id", &one.to_string());
    // The real id is no oracle: the same 404 as an id that does not exist.
    let r = app
        .get(&client, &format!("/api/v1/activities/{LEAKY_ID}"))
        .await;
    assert_eq!(r.status(), 404);
    assert_no_sam("get by the real id", &text(r).await);
    // Search looks at what the client sees.
    for q in ["rivera", "sam.", "sam.rivera", "7731", "push-7731", "ivera"] {
        let found = app
            .get_json(&client, &format!("/api/v1/activities?q={q}"))
            .await;
        assert_eq!(found["items"], json!([]), "q={q}");
    }
    for format in ["csv", "ndjson"] {
        let r = app
            .get(
                &client,
                &format!("/api/v1/sites/shop/activities/export?format={format}"),
            )
            .await;
        assert_no_sam(format, &text(r).await);
    }
    assert_no_sam("the live stream", &events(&app, &client, "shop", 1).await);
    // The dashboard.
    let page = app
        .http
        .get(app.url("/sites/shop/advanced-tools/activity-logs"))
        .header("cookie", format!("sitetrail_session={client}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_no_sam("the dashboard", &text(page).await);

    // Internal viewers see the publisher's id.
    let internal = app.token("acme", None, Audience::Internal);
    let one = app
        .get_json(&internal, &format!("/api/v1/activities/{LEAKY_ID}"))
        .await;
    assert_eq!(one["id"], LEAKY_ID);
}

/// A user's activity in one account names Sam, who supports another account of the same
/// partner, before Sam ever acts: once Sam is on the partner's roster, clients of every one
/// of its accounts see `Support user` in place of him, whoever the actor.
#[tokio::test]
async fn a_support_identity_in_another_actors_activity_is_scrubbed_for_clients() {
    let app = spawn_app().await;
    let mut mention = activity("globex", "portal");
    mention["id"] = json!("rivera-checked-cache-1");
    mention["description"] = json!(format!(
        "Asked {SUPPORT_NAME} <{SUPPORT_EMAIL}> to look at the cache"
    ));
    mention["error"] = json!("Rivera said the cache was cold");
    mention["status"] = json!("failed");
    mention["completed_at"] = json!("2026-01-01T00:00:00Z");
    mention["created_at"] = json!("2025-12-31T23:00:00Z");
    mention["details"] = json!({"cc": SUPPORT_EMAIL, "by": [SUPPORT_NAME, "sam.rivera"]});
    app.record(&mention).await;
    let client = app.token("globex", None, Audience::Client);
    // The client's own view names no roster identity yet: the roster is empty.
    let before = app.get_json(&client, "/api/v1/activities").await;
    assert!(before.to_string().contains("rivera"), "{before}");

    // Sam acts for acme, an account of the same partner ("Agency"): Sam joins its roster.
    app.record(&support_activity("acme", "shop")).await;

    let list = app.get_json(&client, "/api/v1/activities").await;
    assert_no_sam("the list", &list.to_string());
    let item = &list["items"][0];
    assert_eq!(item["user"]["label"], OWNER_EMAIL, "the actor is the user");
    assert!(
        item["description"]
            .as_str()
            .unwrap()
            .contains("Support user"),
        "{item}"
    );
    let shown = item["id"].as_str().unwrap();
    let one = app
        .get_json(&client, &format!("/api/v1/activities/{shown}"))
        .await;
    assert_no_sam("get", &one.to_string());
    for q in ["rivera", "sam.", SUPPORT_EMAIL, "sam rivera", "river"] {
        let found = app
            .get_json(&client, &format!("/api/v1/activities?q={q}"))
            .await;
        assert_eq!(found["items"], json!([]), "q={q}");
    }
    // Searching for what the client does see still finds it.
    let found = app.get_json(&client, "/api/v1/activities?q=cache").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    let by_user = app
        .get_json(&client, &format!("/api/v1/activities?user={SUPPORT_EMAIL}"))
        .await;
    assert_eq!(by_user["items"], json!([]));
    for format in ["csv", "ndjson"] {
        let r = app
            .get(
                &client,
                &format!("/api/v1/sites/portal/activities/export?format={format}"),
            )
            .await;
        assert_no_sam(format, &text(r).await);
        let r = app
            .get(
                &client,
                &format!("/api/v1/sites/portal/activities/export?format={format}&q=rivera"),
            )
            .await;
        let body = text(r).await;
        assert_eq!(
            body.lines().count(),
            usize::from(format == "csv"),
            "{format}: {body}"
        );
    }
    assert_no_sam("the live stream", &events(&app, &client, "portal", 1).await);

    // Internal viewers still see who was named.
    let internal = app.token("globex", None, Audience::Internal);
    let list = app.get_json(&internal, "/api/v1/activities").await;
    assert!(list.to_string().contains(SUPPORT_EMAIL), "{list}");
}

/// A support person who starts an operation joins the roster too, even when the operation
/// is refused before it reaches the log.
#[tokio::test]
async fn a_support_viewer_who_starts_an_operation_joins_the_roster() {
    let app = spawn_app().await;
    let mut mention = activity("globex", "portal");
    mention["description"] = json!("Kit Marlowe <kit.marlowe@help.example> looked at it");
    app.record(&mention).await;
    let client = app.token("globex", None, Audience::Client);
    let before = app.get_json(&client, "/api/v1/activities").await;
    assert!(before.to_string().contains("Marlowe"), "{before}");

    let kit = app.token_for(
        "acme",
        Some("shop"),
        Audience::Internal,
        ActorKind::Support,
        "kit.marlowe@help.example",
    );
    let r = app
        .http
        .post(app.url("/api/v1/sites/shop/staging"))
        .bearer_auth(&kit)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    let after = app.get_json(&client, "/api/v1/activities").await;
    let text = after.to_string().to_lowercase();
    assert!(
        !text.contains("marlowe") && !text.contains("help.example"),
        "{after}"
    );
    assert!(text.contains("support user"), "{after}");
}

/// A token with `seconds` left to live.
fn short_token(app: &TestApp, seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    app.tokens
        .sign(&Claims {
            account: AccountId::parse("acme").unwrap(),
            site: Some(SiteId::parse("shop").unwrap()),
            audience: Audience::Client,
            actor: ActorClaim {
                kind: ActorKind::User,
                email: OWNER_EMAIL.into(),
                name: None,
            },
            iat: now,
            exp: now + seconds,
        })
        .unwrap()
}

/// Reads a stream until it ends (`true`) or 12 s pass (`false`), with what it carried.
async fn read_to_end(r: Response) -> (bool, String) {
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return (false, text),
            Ok(None) | Ok(Some(Err(_))) => return (true, text),
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
        }
    }
}

#[tokio::test]
async fn a_live_stream_ends_when_its_token_expires() {
    let app = spawn_app().await;
    let token = short_token(&app, 2);
    let path = app.url("/api/v1/sites/shop/activities/stream");
    let by_bearer = app
        .http
        .get(&path)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let by_cookie = app
        .http
        .get(&path)
        .header("cookie", format!("sitetrail_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), 200);
    assert_eq!(by_cookie.status(), 200);
    let watchers = [by_bearer, by_cookie].map(|r| tokio::spawn(read_to_end(r)));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let late = app.record(&activity("acme", "shop")).await;
    for w in watchers {
        let (ended, text) = w.await.unwrap();
        assert!(ended, "the stream outlived its token: {text}");
        assert!(
            !text.contains(late["id"].as_str().unwrap()),
            "delivered after the token expired: {text}"
        );
    }
}

/// The confirmation page's form, as a browser on this server would post it.
async fn post_login(app: &TestApp, token: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app
        .http
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_sign_in_link_asks_first_and_a_cross_site_post_signs_no_one_in() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let r = app
        .http
        .get(app.url(&format!("/login?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a link only shows the question");
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "a GET signs no one in"
    );
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let page = text(r).await;
    assert!(
        page.contains(&format!("Sign in to Agency as {OWNER_EMAIL}?")),
        "{page}"
    );
    assert!(page.contains("method=\"post\""), "{page}");

    let host = app.base.trim_start_matches("http://").to_owned();
    for headers in [
        &[("origin", "https://attacker.example")][..],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "null")],
        &[
            ("origin", &format!("http://{host}.attacker.example")),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        let r = post_login(&app, &token, headers).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(r.headers().get(SET_COOKIE).is_none(), "{headers:?}");
    }

    // What Chromium sends from the confirmation page, whose referrer policy is no-referrer:
    // its origin as `null`, with Sec-Fetch-Site saying where the form was.
    let r = post_login(
        &app,
        &token,
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let origin = app.base.clone();
    let r = post_login(
        &app,
        &token,
        &[("origin", &origin), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        "/sites/blog/advanced-tools/activity-logs"
    );
    let set = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with(&format!("sitetrail_session={token};")),
        "{set}"
    );
}

#[tokio::test]
async fn the_session_cookie_is_secure_without_a_proxy_saying_https() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let r = post_login(&app, &token, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set.contains("; Secure"), "{set}");
}

/// Plain http only on loopback, and only when the operator says so.
#[tokio::test]
async fn a_cookie_without_secure_needs_the_loopback_flag_and_a_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("0.0.0.0:0".parse().unwrap(), dir.path().to_owned(), None);
    config.insecure_cookies_on_loopback = true;
    let Err(e) = App::build(config.clone()).await else {
        panic!("a clear cookie on a public address was allowed")
    };
    assert!(format!("{e:#}").contains("loopback"), "{e:#}");

    config.listen = "127.0.0.1:0".parse().unwrap();
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.address());
    let token = app
        .state
        .tokens
        .mint(
            &sitetrail_core::Viewer {
                account: AccountId::parse("acme").unwrap(),
                site: None,
                audience: Audience::Client,
                actor: sitetrail_core::Actor::person(
                    ActorKind::User,
                    sitetrail_core::Email::parse(OWNER_EMAIL).unwrap(),
                    None,
                ),
            },
            60,
        )
        .unwrap();
    let server = tokio::spawn(app.run_until_stopped());
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    server.abort();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("sitetrail_session=") && !set.contains("Secure"),
        "{set}"
    );
}

/// The last id of a stream's events.
fn event_ids(events: &str) -> Vec<String> {
    events
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn numbers_a_client_sees_count_nothing_of_other_tenants() {
    let app = spawn_app().await;
    // Health says only whether the server is healthy.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let health: Value = r.json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    let client = app.token("acme", Some("shop"), Audience::Client);
    let a = app.record(&activity("acme", "shop")).await;
    for _ in 0..3 {
        app.record(&activity("globex", "portal")).await;
    }
    let b = app.record(&activity("acme", "shop")).await;
    let seen = events(&app, &client, "shop", 2).await;
    let ids = event_ids(&seen);
    assert_eq!(ids.len(), 2, "{seen}");
    for id in &ids {
        assert!(id.parse::<i64>().is_err(), "an event id is a number: {id}");
    }
    // The ids still resume.
    let rest = app.stream_events(&client, "shop", Some(&ids[0]), 1).await;
    assert!(rest.contains(b["id"].as_str().unwrap()), "{rest}");
    assert!(!rest.contains(a["id"].as_str().unwrap()), "{rest}");

    // The dashboard opens its stream at a point that is no number either.
    let page = app
        .http
        .get(app.url("/sites/shop"))
        .header("cookie", format!("sitetrail_session={client}"))
        .send()
        .await
        .unwrap();
    let page = text(page).await;
    let after = page
        .split("stream?after=")
        .nth(1)
        .expect("the page names its stream")
        .split(['"', '&'])
        .next()
        .unwrap()
        .to_owned();
    assert!(after.parse::<i64>().is_err(), "after={after}");
    let c = app.record(&activity("acme", "shop")).await;
    let rest = app
        .stream_events_at(
            &client,
            &format!("/api/v1/sites/shop/activities/stream?after={after}"),
            None,
            1,
        )
        .await;
    assert!(rest.contains(c["id"].as_str().unwrap()), "{rest}");
    assert!(!rest.contains(b["id"].as_str().unwrap()), "{rest}");
    for bad in ["7", "-1", "yesterday"] {
        let r = app
            .get(
                &client,
                &format!("/api/v1/sites/shop/activities/stream?after={bad}"),
            )
            .await;
        assert_eq!(r.status(), 400, "after={bad}");
    }

    // A cursor carries no insertion number: its bytes hold no digits of one.
    let page = app
        .get_json(&client, "/api/v1/sites/shop/activities?limit=1")
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .unwrap_or_default();
    // The old form was `o1.<created ms>.<seq>` in base64: text of digits and dots.
    assert!(
        !raw.is_empty() && !raw.iter().all(|b| b.is_ascii_digit() || b".on".contains(b)),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let next = app
        .get_json(
            &client,
            &format!("/api/v1/sites/shop/activities?limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(next["items"][0]["id"], b["id"], "the cursor still pages");
}
