//! Invariant 3, by exhaustion: a support person acts on a site in every way there is (as the
//! actor of recorded, ended, running and refused activities, named in their free text, and
//! starting staging operations themselves); then every byte a `client` viewer can receive
//! about it is collected (API reads with every filter, exports, live streams, dashboard
//! pages, sign-in, error answers, headers included) and scanned for any trace of them.
//! `redaction.rs` proves each output path once; this looks everywhere at once.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Response;
use serde_json::{Value, json};
use sitetrail_core::{ActivityId, ActorKind, Audience, SiteId};
use sitetrail_server::pages::csrf;
use sitetrail_staging::lock;

use crate::*;

const WREN_EMAIL: &str = "wren.oakhart@help.partner.example";
const WREN_NAME: &str = "Wren Oakhart";

/// What must never reach a client, in lower case: the email, its local part, the name and
/// each part of it.
const SECRETS: [&str; 5] = [
    "wren.oakhart@help.partner.example",
    "wren.oakhart",
    "wren oakhart",
    "wren",
    "oakhart",
];

fn wren_activity(account: &str, site: &str, kind: &str) -> Value {
    let service = if kind == "create_backup" {
        "backups"
    } else {
        "staging"
    };
    json!({
        "account_id": account,
        "site_id": site,
        "environment": "live",
        "service": service,
        "activity": kind,
        "actor": {"kind": "support", "email": WREN_EMAIL, "name": WREN_NAME},
        "description": format!(
            "{WREN_NAME} <{WREN_EMAIL}> did this for the client; ask WREN.OAKHART@HELP.PARTNER.EXAMPLE \
             or wren.oakhart%40help.partner.example, signed Wren, cc Oakhart ({{actor}})"
        ),
        "details": {
            "agent": WREN_EMAIL,
            "note": format!("{WREN_NAME} checked the cache"),
            "by": {"email": WREN_EMAIL, "names": ["Wren", "Oakhart", WREN_NAME.to_uppercase()]},
            WREN_EMAIL: "the email as a key",
            "link": format!("https://tickets.example/?assignee={}", WREN_EMAIL.replace('@', "%40")),
        },
    })
}

/// Everything a client received, answer by answer.
#[derive(Default)]
struct Received(Vec<(String, String)>);

impl Received {
    async fn add(&mut self, what: impl Into<String>, r: Response) -> (u16, String) {
        let status = r.status().as_u16();
        let mut text = format!("HTTP {status}\n");
        for (name, value) in r.headers() {
            text.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let body = r.text().await.unwrap_or_default();
        text.push('\n');
        text.push_str(&body);
        self.0.push((what.into(), text));
        (status, body)
    }

    fn push(&mut self, what: impl Into<String>, text: String) {
        self.0.push((what.into(), text));
    }

    fn total_bytes(&self) -> usize {
        self.0.iter().map(|(_, t)| t.len()).sum()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// HTML character references and JSON `\u` escapes, decoded.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['&', '\\']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (decoded, used) = if let Some(hex) = tail.strip_prefix("\\u") {
            match hex.get(..4).and_then(|h| u32::from_str_radix(h, 16).ok()) {
                Some(n) => (char::from_u32(n).map(String::from), 6),
                None => (None, 1),
            }
        } else if let Some(end) = tail.find(';').filter(|e| *e <= 10) {
            let entity = &tail[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "commat" => Some('@'),
                "period" => Some('.'),
                e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            (c.map(String::from), end + 1)
        } else {
            (None, 1)
        };
        match decoded {
            Some(d) => {
                out.push_str(&d);
                rest = &tail[used..];
            }
            None => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a request itself sent that names Wren (its path segments and query values): a
/// page may show a person's own filter back to them, which is no leak. Such echoes are taken
/// out, exactly as sent (case and all), in the forms a page or link writes them.
fn echoes(what: &str) -> Vec<String> {
    let path = what.split(" (").next().unwrap_or(what);
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let mut sent: Vec<String> = route.split('/').map(percent_decode).collect();
    sent.extend(
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(_, v)| percent_decode(v)),
    );
    let mut out = Vec::new();
    for v in sent {
        if leaks(&v).is_empty() {
            continue;
        }
        let encode = |space: &str| {
            v.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                        (b as char).to_string()
                    }
                    b' ' => space.to_owned(),
                    b => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        out.extend([encode("+"), encode("%20"), v.clone()]);
    }
    // Longest first, so that a value is not half taken out by a shorter one.
    out.sort_by_key(|e| std::cmp::Reverse(e.len()));
    out
}

/// The forms a secret could hide in: as sent, URL-decoded, entity- and escape-decoded, and
/// both, all in lower case.
fn readings(text: &str) -> Vec<String> {
    let url = percent_decode(text);
    vec![
        text.to_lowercase(),
        url.to_lowercase(),
        unescape(text).to_lowercase(),
        unescape(&url).to_lowercase(),
        percent_decode(&unescape(text)).to_lowercase(),
    ]
}

fn leaks(text: &str) -> Vec<&'static str> {
    let all = readings(text);
    SECRETS
        .iter()
        .copied()
        .filter(|s| all.iter().any(|r| r.contains(s)))
        .collect()
}

#[test]
fn the_scanner_finds_every_disguise() {
    for disguised in [
        "Wren Oakhart",
        "WREN.OAKHART@HELP.PARTNER.EXAMPLE",
        "wren.oakhart%40help.partner.example",
        "wren%2Eoakhart",
        "Wren+Oakhart",
        "&#87;ren",
        "&#x57;REN",
        "\\u0057ren",
        "%26%2387%3Bren",
    ] {
        assert!(!leaks(disguised).is_empty(), "{disguised}");
    }
    assert!(leaks("Support user did this for the client").is_empty());
}

/// Reads a site's live stream for `for_ms`, returning everything that arrived.
fn watch(
    app: &TestApp,
    auth: (&str, &str),
    site: &str,
    last_event_id: Option<&str>,
    for_ms: u64,
) -> tokio::task::JoinHandle<String> {
    let mut req = app
        .http
        .get(app.url(&format!("/api/v1/sites/{site}/activities/stream")))
        .header(auth.0, auth.1);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    tokio::spawn(async move {
        let r = req.send().await.unwrap();
        let mut text = format!("HTTP {}\n", r.status());
        for (name, value) in r.headers() {
            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        let mut body = r.bytes_stream();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(for_ms);
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
}

async fn wait_for_end(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..300 {
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

/// All activities of a scope as the given viewer sees them, page by page.
async fn all_items(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}limit=200");
    loop {
        let page = app.get_json(token, &url).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}limit=200&cursor={c}"),
            None => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_client_can_receive_holds_a_trace_of_the_support_person() {
    let app = spawn_app().await;
    let docroots = tempfile::tempdir().unwrap();
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "shop",
                    "live": {"url": "https://shop.example", "docroot": docroots.path().join("live")},
                    "staging": {"url": "https://staging.shop.example", "docroot": docroots.path().join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let client = app.token("acme", None, Audience::Client);
    let client_shop = app.token("acme", Some("shop"), Audience::Client);
    let internal = app.token("acme", None, Audience::Internal);
    let wren = app.token_for(
        "acme",
        None,
        Audience::Internal,
        ActorKind::Support,
        WREN_EMAIL,
    );
    let client_cookie = format!("sitetrail_session={client}");

    // The client is watching the live stream before anything happens, by token and by
    // cookie; a third watcher resumes from the start.
    let watchers = vec![
        (
            "stream",
            watch(
                &app,
                ("authorization", &format!("Bearer {client}")),
                "shop",
                None,
                6_000,
            ),
        ),
        (
            "stream on the cookie",
            watch(&app, ("cookie", &client_cookie), "shop", None, 6_000),
        ),
        (
            "site-scoped stream",
            watch(
                &app,
                ("authorization", &format!("Bearer {client_shop}")),
                "shop",
                None,
                6_000,
            ),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Wren acts: recorded by the platform (one of each kind, ended every way, one batch),
    // with the client's own activities among them.
    let mut wren_ids = Vec::new();
    for kind in [
        "push_staging_to_live",
        "reset_staging_from_template",
        "reset_staging_from_backup",
        "create_staging",
        "create_backup",
    ] {
        let a = app.record(&wren_activity("acme", "shop", kind)).await;
        wren_ids.push(a["id"].as_str().unwrap().to_owned());
    }
    app.record(&activity("acme", "shop")).await;
    let ending = json!({
        "description": format!("Ended by {WREN_NAME} ({WREN_EMAIL})"),
        "error": format!("{WREN_NAME} saw a timeout; mail {WREN_EMAIL}"),
        "details": {"ended_by": WREN_EMAIL, "who": WREN_NAME},
    });
    assert_eq!(app.end(&wren_ids[0], "fail", &ending).await.status(), 200);
    let mut completed = ending.clone();
    completed.as_object_mut().unwrap().remove("error");
    assert_eq!(
        app.end(&wren_ids[1], "complete", &completed).await.status(),
        200
    );
    let batch = json!({"activities": [
        wren_activity("acme", "shop", "create_backup"),
        wren_activity("acme", "blog", "push_staging_to_live"),
    ]});
    let r = app.post_json("/api/v1/activities/batch", &batch).await;
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    for a in r["items"].as_array().unwrap() {
        wren_ids.push(a["id"].as_str().unwrap().to_owned());
    }
    // Wren starts staging operations from the dashboard's API (they fail at once: no
    // WordPress in these docroots).
    for (path, body) in [
        ("/api/v1/sites/shop/staging", None),
        (
            "/api/v1/sites/shop/backups",
            Some(json!({"environment": "live"})),
        ),
    ] {
        let mut req = app.http.post(app.url(path)).bearer_auth(&wren);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 202, "{path}");
        let a: Value = r.json().await.unwrap();
        let id = a["id"].as_str().unwrap().to_owned();
        wait_for_end(&app, &wren, &id).await;
        wren_ids.push(id);
    }
    // While Wren's push runs (it holds the site), the client and Wren are both refused; the
    // refusals are logged.
    let running = wren_ids[2].clone();
    // The push's end is in the log a moment before it lets go of the site.
    let held = lock::try_lock_within(
        &app.data_dir,
        &SiteId::parse("shop").unwrap(),
        &ActivityId::parse(&running).unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
    .ok()
    .unwrap();
    let r = app
        .http
        .post(app.url("/api/v1/sites/shop/staging"))
        .bearer_auth(&wren)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "Wren is refused too");
    let mut got = Received::default();
    let client_refused = app
        .http
        .post(app.url("/api/v1/sites/shop/backups"))
        .bearer_auth(&client)
        .json(&json!({"environment": "live"}))
        .send()
        .await
        .unwrap();
    let (status, _) = got.add("refused operation", client_refused).await;
    assert_eq!(status, 409);
    let page = app
        .http
        .get(app.url("/sites/shop/backups"))
        .header("cookie", &client_cookie)
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains(&csrf::token_for(&client)));
    let form = app
        .http
        .post(app.url("/sites/shop/backups"))
        .header("cookie", &client_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={}&environment=live",
            csrf::token_for(&client)
        ))
        .send()
        .await
        .unwrap();
    let (status, _) = got.add("refused form", form).await;
    assert!(status == 409 || status == 303, "{status}");
    drop(held);

    // Wren in an id the publisher chose, and in a user's activity: Wren is on the partner's
    // roster, so whoever the actor, a client sees neither.
    let mut named = wren_activity("acme", "shop", "push_staging_to_live");
    named["id"] = json!("wren.oakhart-push-7731");
    app.record(&named).await;
    let mut mention = wren_activity("acme", "shop", "create_backup");
    mention["actor"] = json!({"kind": "user", "email": OWNER_EMAIL});
    mention["id"] = json!("asked-oakhart-1");
    app.record(&mention).await;

    // The proof that there is something to hide: the internal view shows Wren everywhere.
    let seen = all_items(&app, &internal, "/api/v1/activities").await;
    let wren_rows: Vec<&Value> = seen
        .iter()
        .filter(|a| a["user"]["label"] == WREN_EMAIL)
        .collect();
    assert!(wren_rows.len() > wren_ids.len(), "{seen:?}");
    let internal_text = serde_json::to_string(&seen).unwrap().to_lowercase();
    for s in SECRETS {
        assert!(internal_text.contains(s), "the internal view lacks {s:?}");
    }
    let found = app
        .get_json(&internal, &format!("/api/v1/activities?q={WREN_EMAIL}"))
        .await;
    assert!(!found["items"].as_array().unwrap().is_empty());
    let all_ids: Vec<String> = seen
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();

    // Every read the client can make.
    let filters = [
        "".to_owned(),
        "status=failed".into(),
        "status=completed".into(),
        "status=in_progress".into(),
        "service=staging".into(),
        "service=backups".into(),
        "activity=push_staging_to_live".into(),
        "activity=create_backup".into(),
        "activity=create_staging".into(),
        "user=Support%20user".into(),
        format!("user={WREN_EMAIL}"),
        "user=WREN.OAKHART%40HELP.PARTNER.EXAMPLE".into(),
        format!("q={WREN_EMAIL}"),
        "q=wren".into(),
        "q=Oakhart".into(),
        "q=Wren%20Oakhart".into(),
        "q=help.partner".into(),
        "q=support".into(),
        "q=timeout".into(),
        "q=7731".into(),
        "q=-push-".into(),
        "q=akhar".into(),
        "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z".into(),
        "limit=1".into(),
    ];
    for token in [&client, &client_shop] {
        for f in &filters {
            for base in [
                "/api/v1/activities",
                "/api/v1/sites/shop/activities",
                "/api/v1/sites/shop/activities/export?format=csv",
                "/api/v1/sites/shop/activities/export?format=ndjson",
            ] {
                let path = if f.is_empty() {
                    base.to_owned()
                } else if base.contains('?') {
                    format!("{base}&{f}")
                } else {
                    format!("{base}?{f}")
                };
                let r = app.get(token, &path).await;
                got.add(path, r).await;
            }
        }
        // Page by page, both ways.
        let mut next = Some("/api/v1/sites/shop/activities?limit=2".to_owned());
        let mut last_page = Value::Null;
        while let Some(path) = next.take() {
            let r = app.get(token, &path).await;
            let (_, body) = got.add(&path, r).await;
            last_page = serde_json::from_str(&body).unwrap();
            next = last_page["next_cursor"]
                .as_str()
                .map(|c| format!("/api/v1/sites/shop/activities?limit=2&cursor={c}"));
        }
        if let Some(c) = last_page["prev_cursor"].as_str() {
            let path = format!("/api/v1/sites/shop/activities?limit=2&cursor={c}");
            let r = app.get(token, &path).await;
            got.add(path, r).await;
        }
        for id in &all_ids {
            let path = format!("/api/v1/activities/{id}");
            let r = app.get(token, &path).await;
            got.add(path, r).await;
        }
        for path in ["/api/v1/templates", "/api/v1/sites/shop/backups"] {
            let r = app.get(token, path).await;
            got.add(path, r).await;
        }
    }
    // What the client's searches found: Wren's email finds nothing; "Support user" finds
    // Wren's rows.
    let none = app
        .get_json(
            &client,
            &format!("/api/v1/sites/shop/activities?q={WREN_EMAIL}"),
        )
        .await;
    assert_eq!(none["items"], json!([]));
    let none = app
        .get_json(
            &client,
            &format!("/api/v1/sites/shop/activities?user={WREN_EMAIL}"),
        )
        .await;
    assert_eq!(none["items"], json!([]));
    let support = all_items(
        &app,
        &client,
        "/api/v1/sites/shop/activities?user=Support%20user",
    )
    .await;
    assert!(support.len() >= wren_ids.len() - 1, "{support:?}");

    // New activities while the client watches, then streams that resume.
    let live = app
        .record(&wren_activity("acme", "shop", "push_staging_to_live"))
        .await;
    let live = live["id"].as_str().unwrap();
    assert_eq!(app.end(live, "fail", &ending).await.status(), 200);
    let resumed = vec![
        (
            "resumed stream",
            watch(
                &app,
                ("authorization", &format!("Bearer {client}")),
                "shop",
                Some("0"),
                2_500,
            ),
        ),
        (
            "resumed stream on the cookie",
            watch(
                &app,
                ("cookie", &client_cookie),
                "shop",
                Some(&app.tokens.opaque().event_id(3)),
                2_500,
            ),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = app
        .record(&wren_activity("acme", "shop", "create_staging"))
        .await;
    assert_eq!(
        app.end(late["id"].as_str().unwrap(), "complete", &completed)
            .await
            .status(),
        200
    );
    for (what, w) in watchers.into_iter().chain(resumed) {
        let text = w.await.unwrap();
        assert!(text.contains("Support user"), "{what}: {text}");
        assert!(text.contains("activity.ended"), "{what}: {text}");
        got.push(what, text);
    }

    // The dashboard, signed in with the client's link.
    let r = app
        .http
        .get(app.url(&format!("/login?token={client}")))
        .send()
        .await
        .unwrap();
    got.add("sign-in", r).await;
    let r = app
        .http
        .get(app.url(&format!("/login?token={client}&site=shop")))
        .send()
        .await
        .unwrap();
    got.add("sign-in to shop", r).await;
    let log = "/sites/shop/advanced-tools/activity-logs";
    let mut pages: Vec<String> = vec![
        "/".into(),
        "/sites/shop".into(),
        "/sites/shop/advanced-tools".into(),
        "/sites/shop/staging".into(),
        "/sites/shop/staging/push-to-live".into(),
        "/sites/shop/backups".into(),
        "/sites/blog/advanced-tools/activity-logs".into(),
    ];
    for f in &filters {
        pages.push(if f.is_empty() {
            log.to_owned()
        } else {
            format!("{log}?{f}")
        });
    }
    for id in &wren_ids {
        pages.push(format!("/sites/shop/staging?started={id}"));
        pages.push(format!("/sites/shop/backups?started={id}"));
    }
    // Older pages of the log, as its links go.
    let mut next = Some(format!("{log}?limit=2"));
    let mut seen_pages = 0;
    while let Some(path) = next.take() {
        let r = app
            .http
            .get(app.url(&path))
            .header("cookie", &client_cookie)
            .send()
            .await
            .unwrap();
        let (_, body) = got.add(&path, r).await;
        seen_pages += 1;
        next = body
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(|h| h.replace("&amp;", "&"))
            .find(|h| h.contains("cursor=") && seen_pages < 20 && !pages.contains(h));
        if let Some(h) = &next {
            pages.push(h.clone());
        }
    }
    for path in &pages {
        let r = app
            .http
            .get(app.url(path))
            .header("cookie", &client_cookie)
            .send()
            .await
            .unwrap();
        let (status, _) = got.add(path, r).await;
        assert!(status < 500, "{path}: {status}");
    }

    // Error answers, including ones a client gets by probing with Wren's identity and ids.
    let probe = &wren_ids[0];
    let mut errors: Vec<String> = vec![
        format!("/api/v1/sites/{probe}/activities"),
        format!("/api/v1/sites/shop/activities/{probe}"),
        format!("/api/v1/activities/{probe}/complete"),
        format!("/api/v1/activities/{probe}x"),
        format!("/api/v1/sites/{WREN_EMAIL}/activities"),
        format!("/api/v1/activities/{WREN_EMAIL}"),
        format!("/api/v1/sites/shop/activities?q={WREN_EMAIL}&limit=0"),
        format!("/api/v1/sites/shop/activities?user={WREN_EMAIL}&from=yesterday"),
        format!("/api/v1/sites/shop/activities?status={WREN_EMAIL}"),
        format!("/api/v1/sites/shop/activities?activity={WREN_EMAIL}"),
        format!("/api/v1/sites/shop/activities?q={WREN_EMAIL}&cursor=garbage"),
        format!("/api/v1/sites/shop/activities?q={}", "wren".repeat(60)),
        format!("/api/v1/sites/shop/activities/export?format={WREN_EMAIL}"),
        "/api/v1/sites/blog/activities?status=bogus".into(),
        format!("/sites/{probe}"),
        format!("{log}?user={WREN_EMAIL}&from=yesterday"),
        format!("{log}?status={WREN_EMAIL}"),
        format!("{log}?cursor={WREN_EMAIL}"),
    ];
    for id in &wren_ids {
        errors.push(format!("/api/v1/sites/portal/activities?q={id}"));
    }
    let globex_client = app.token("globex", None, Audience::Client);
    for path in &errors {
        let r = app.get(&client, path).await;
        got.add(path, r).await;
        let r = app
            .http
            .get(app.url(path))
            .header("cookie", &client_cookie)
            .send()
            .await
            .unwrap();
        got.add(format!("{path} (cookie)"), r).await;
    }
    for id in &wren_ids {
        let path = format!("/api/v1/activities/{id}");
        let r = app.get(&globex_client, &path).await;
        let (status, _) = got.add(format!("{path} (another account)"), r).await;
        assert_eq!(status, 404);
    }
    // A stream that resumes from a bad id, and one of another site.
    let r = app
        .http
        .get(app.url("/api/v1/sites/shop/activities/stream"))
        .bearer_auth(&client)
        .header("last-event-id", WREN_EMAIL)
        .send()
        .await
        .unwrap();
    got.add("stream with a bad Last-Event-ID", r).await;

    // The scan. The client's own token and CSRF token are random bytes that could spell a
    // name part by chance; they are not Wren's and are taken out first.
    let own = [
        client.clone(),
        client_shop.clone(),
        csrf::token_for(&client),
        csrf::token_for(&client_shop),
    ];
    assert!(got.0.len() > 300, "{} answers", got.0.len());
    assert!(got.total_bytes() > 200_000, "{} bytes", got.total_bytes());
    let mut found = Vec::new();
    for (what, text) in &got.0 {
        let mut text = text.clone();
        for t in own.iter().chain(&echoes(what)) {
            text = text.replace(t.as_str(), "");
        }
        let hits = leaks(&text);
        if !hits.is_empty() {
            found.push(format!(
                "{what}: {hits:?}\n{}",
                &text[..text.len().min(3_000)]
            ));
        }
    }
    assert!(
        found.is_empty(),
        "a client received Wren:\n{}",
        found.join("\n\n")
    );
}
