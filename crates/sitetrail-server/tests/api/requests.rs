//! Property tests over the API's requests: arbitrary JSON and mutations of valid bodies to
//! the publisher endpoints, arbitrary query strings to the list endpoints. Whatever arrives,
//! the server never answers 5xx, every 4xx is `{"error": {"code", "message"}}`, and a
//! refused request writes nothing. One server per property; a modest number of cases.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sitetrail_core::Audience;

use crate::*;

const CASES: u32 = 96;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    })
}

/// One server for all the cases of a property, on a runtime of its own.
struct Harness {
    app: Option<TestApp>,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = rt.block_on(async {
            let app = spawn_app().await;
            for (path, body) in [
                (
                    "/api/v1/accounts/prop-acct",
                    json!({"name": "Prop", "partner": "Agency"}),
                ),
                (
                    "/api/v1/sites/prop-site",
                    json!({"account_id": "prop-acct", "name": "Prop site",
                           "live": {"url": "https://prop.example"},
                           "staging": {"url": "https://staging.prop.example"}}),
                ),
            ] {
                assert_eq!(app.put_json(path, &body).await.status(), 200);
            }
            app
        });
        Harness { app: Some(app), rt }
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _guard = self.rt.enter();
        drop(self.app.take());
    }
}

/// How many activities there are, as the internal viewers of every account read them.
async fn count_all(app: &TestApp) -> usize {
    let mut n = 0;
    for account in ["acme", "globex", "prop-acct"] {
        let token = app.token(account, None, Audience::Internal);
        let mut path = "/api/v1/activities?limit=200".to_owned();
        loop {
            let page = app.get_json(&token, &path).await;
            n += page["items"].as_array().unwrap().len();
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/activities?limit=200&cursor={c}"),
                None => break,
            }
        }
    }
    n
}

/// What the dashboard shows of the registered account and site: what a refused `PUT` must
/// leave as it was.
async fn registration(app: &TestApp, token: &str) -> (u16, String) {
    let r = app
        .http
        .get(app.url("/sites/prop-site"))
        .header("cookie", format!("sitetrail_session={token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The status and body of an answer, checked: never 5xx; a 4xx is the error shape.
async fn checked(what: &str, r: reqwest::Response) -> Result<(u16, String), TestCaseError> {
    let status = r.status().as_u16();
    let body = r
        .text()
        .await
        .map_err(|e| TestCaseError::fail(format!("{what}: reading the body: {e}")))?;
    prop_assert!(status < 500, "{what}: {status} {body}");
    if status >= 400 {
        let e: Value = serde_json::from_str(&body)
            .map_err(|_| TestCaseError::fail(format!("{what}: {status} is not JSON: {body:?}")))?;
        let code = e["error"]["code"].as_str().unwrap_or_default();
        let message = e["error"]["message"].as_str().unwrap_or_default();
        prop_assert!(
            !code.is_empty() && !message.is_empty(),
            "{what}: {status} {body}"
        );
    }
    Ok((status, body))
}

fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "\\PC{0,40}",
        2 => "[A-Za-z0-9._-]{1,64}",
        1 => Just(String::new()),
        1 => Just("\u{0}".to_owned()),
        1 => Just("a\u{0}b".to_owned()),
        1 => Just("\u{202e}gnp.exe\u{200b}\u{feff}".to_owned()),
        1 => Just("Z\u{0351}\u{0315}a\u{0310}\u{0301}l\u{0300}g\u{0308}o".to_owned()),
        1 => Just("\u{1F980}".repeat(600)),
        1 => Just("x".repeat(2_001)),
        1 => Just("\u{e9}".repeat(1_001)),
        1 => Just("x".repeat(70_000)),
        1 => Just("../../etc/passwd".to_owned()),
        1 => Just("a".repeat(65)),
        1 => Just("\r\n\t".to_owned()),
        1 => Just("\\ud800".to_owned()),
        1 => Just("%00%ff".to_owned()),
        1 => Just("' OR 1=1 --".to_owned()),
        1 => Just("Support user".to_owned()),
    ]
}

fn odd_time() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            "0000-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999-23:59",
            "10000-01-01T00:00:00Z",
            "+002026-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-01-01T00:00:00+23:59",
            "2026-01-01T00:00:00.123456789Z",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-11-25T09:30:00Z",
        ])
        .prop_map(Value::from),
        Just(json!(1_764_000_000_000i64)),
        Just(json!(-1)),
        Just(json!(1e300)),
        odd_string().prop_map(Value::from),
    ]
}

/// The words the API knows, to put in the wrong places.
const WORDS: &[&str] = &[
    "live",
    "staging",
    "production",
    "user",
    "support",
    "system",
    "in_progress",
    "completed",
    "failed",
    "backups",
    "push_staging_to_live",
    "create_backup",
    "create_staging",
    "acme",
    "globex",
    "shop",
    "portal",
    "prop-acct",
    "prop-site",
    "https://shop.example",
    "sam@partner.example",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        odd_string().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Field names of every request body, and odd ones.
const FIELDS: &[&str] = &[
    "id",
    "account_id",
    "site_id",
    "environment",
    "service",
    "activity",
    "actor",
    "kind",
    "email",
    "name",
    "description",
    "status",
    "created_at",
    "completed_at",
    "error",
    "details",
    "activities",
    "partner",
    "partner_colour",
    "live",
    "staging",
    "url",
    "docroot",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => odd_string(),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => arb_json(),
        2 => odd_string().prop_map(Value::from),
        2 => prop::sample::select(WORDS).prop_map(Value::from),
        1 => odd_time(),
    ]
}

/// One change to a body at a dotted path: removed, replaced, or a new field.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(&'static str),
    Set(&'static str, Value),
    Add(String, Value),
}

fn mutations(paths: &'static [&'static str]) -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        1 => prop::sample::select(paths).prop_map(Mutation::Remove),
        4 => (prop::sample::select(paths), any_value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => (key(), any_value()).prop_map(|(k, v)| Mutation::Add(k, v)),
    ];
    prop::collection::vec(one, 0..4)
}

fn apply(body: &mut Value, m: &Mutation) {
    fn parent<'a>(body: &'a mut Value, path: &str) -> Option<(&'a mut Map<String, Value>, String)> {
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop()?.to_owned();
        let mut at = body;
        for p in parts {
            at = at.as_object_mut()?.entry(p).or_insert_with(|| json!({}));
        }
        Some((at.as_object_mut()?, last))
    }
    match m {
        Mutation::Remove(path) => {
            if let Some((obj, k)) = parent(body, path) {
                obj.remove(&k);
            }
        }
        Mutation::Set(path, v) => {
            if let Some((obj, k)) = parent(body, path) {
                obj.insert(k, v.clone());
            }
        }
        Mutation::Add(k, v) => {
            if let Some(obj) = body.as_object_mut() {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
}

const ACTIVITY_PATHS: &[&str] = &[
    "id",
    "account_id",
    "site_id",
    "environment",
    "service",
    "activity",
    "actor",
    "actor.kind",
    "actor.email",
    "actor.name",
    "description",
    "status",
    "created_at",
    "completed_at",
    "error",
    "details",
    "details.note",
];

fn valid_activity() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            ("acme", "shop"),
            ("acme", "blog"),
            ("globex", "portal"),
        ]),
        prop::sample::select(vec!["user", "support", "system"]),
        prop::sample::select(vec!["in_progress", "completed", "failed"]),
    )
        .prop_map(|((account, site), kind, status)| {
            let mut a = activity(account, site);
            a["actor"] = match kind {
                "system" => json!({"kind": "system"}),
                k => json!({"kind": k, "email": OWNER_EMAIL, "name": "Olivia"}),
            };
            a["status"] = json!(status);
            if status != "in_progress" {
                a["created_at"] = json!("2026-11-25T09:30:00Z");
                a["completed_at"] = json!("2026-11-25T09:31:00Z");
            }
            if status == "failed" {
                a["error"] = json!("Timed out");
            }
            a["details"] = json!({"note": "n", "n": 1});
            a
        })
}

/// An activity body: a valid one with a few things changed, or any JSON at all.
fn activity_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (valid_activity(), mutations(ACTIVITY_PATHS)).prop_map(|(mut a, ms)| {
            ms.iter().for_each(|m| apply(&mut a, m));
            a
        }),
        1 => arb_json(),
    ]
}

/// A body as bytes: mostly JSON, sometimes not quite.
#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

fn raw_or(json: impl Strategy<Value = Value>) -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => json.prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Raw),
        1 => arb_json().prop_map(|v| {
            // Valid JSON cut short, or with trailing garbage.
            let mut t = v.to_string().into_bytes();
            if t.len() > 1 {
                t.truncate(t.len() / 2);
            } else {
                t.extend_from_slice(b"}{");
            }
            Body::Raw(t)
        }),
    ]
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Json(v) => serde_json::to_vec(v).unwrap(),
            Body::Raw(b) => b.clone(),
        }
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: &Body,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(body.bytes());
    if let Some(k) = key {
        req = req.header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(k.as_bytes()).unwrap(),
        );
    }
    req.send().await.unwrap()
}

/// A header value as a publisher could send one: printable ASCII, or bytes beyond it.
fn idempotency_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => "[A-Za-z0-9._-]{1,64}".prop_map(Some),
        1 => "[ -~]{0,80}".prop_map(|s| Some(s.trim().to_owned())),
        1 => "\\PC{1,8}".prop_map(|s| Some(s.chars().filter(|c| *c != '\u{7f}' && !c.is_control()).collect::<String>().trim().to_owned())),
    ]
}

/// Whether a header value can even be sent (reqwest refuses control characters).
fn sendable(k: &Option<String>) -> bool {
    k.as_ref()
        .is_none_or(|k| reqwest::header::HeaderValue::from_bytes(k.as_bytes()).is_ok())
}

#[test]
fn any_activity_body_is_recorded_or_refused_with_an_error_that_wrote_nothing() {
    let h = Harness::new();
    let count = std::cell::Cell::new(h.rt.block_on(count_all(h.app())));
    let strategy = (
        raw_or(activity_body()),
        idempotency_key(),
        prop_oneof![
            3 => Just(false),
            1 => Just(true),
        ],
    );
    runner()
        .run(&strategy, |(body, key, batch)| {
            prop_assume!(sendable(&key));
            h.rt.block_on(async {
                let app = h.app();
                let (path, body) = if batch {
                    let wrapped = match &body {
                        Body::Json(v) => {
                            Body::Json(json!({"activities": [v, activity("acme", "shop")]}))
                        }
                        raw => raw.clone(),
                    };
                    ("/api/v1/activities/batch", wrapped)
                } else {
                    ("/api/v1/activities", body)
                };
                let r = send(app, Method::POST, path, &body, key.as_deref()).await;
                let (status, text) = checked(path, r).await?;
                let now = count_all(app).await;
                if status >= 400 {
                    prop_assert_eq!(
                        now,
                        count.get(),
                        "{} refused with {} but wrote: {}",
                        path,
                        status,
                        text
                    );
                } else {
                    prop_assert!(now >= count.get());
                    count.set(now);
                }
                Ok(())
            })
        })
        .unwrap();
}

const ENDING_PATHS: &[&str] = &[
    "description",
    "error",
    "completed_at",
    "details",
    "details.x",
];

#[test]
fn any_ending_body_ends_the_activity_or_leaves_it_as_it_was() {
    let h = Harness::new();
    let ending = prop_oneof![
        3 => (
            prop::sample::select(vec![
                json!({}),
                json!({"description": "Done"}),
                json!({"error": "Timed out"}),
                json!({"completed_at": "2030-01-01T00:00:00Z", "details": {"a": 1}}),
            ]),
            mutations(ENDING_PATHS),
        )
            .prop_map(|(mut e, ms)| {
                ms.iter().for_each(|m| apply(&mut e, m));
                e
            }),
        1 => arb_json(),
    ];
    let strategy = (
        raw_or(ending),
        prop::sample::select(vec!["complete", "fail"]),
        prop_oneof![
            6 => Just(None),
            1 => odd_string().prop_map(Some),
        ],
    );
    runner()
        .run(&strategy, |(body, how, other_id)| {
            h.rt.block_on(async {
                let app = h.app();
                let started = app.record(&activity("acme", "shop")).await;
                let id = started["id"].as_str().unwrap().to_owned();
                let target = match &other_id {
                    Some(odd) => utf8_percent(odd),
                    None => id.clone(),
                };
                // Longer addresses are refused by the client before they are sent.
                prop_assume!(!target.is_empty() && target.len() < 60_000);
                let path = format!("/api/v1/activities/{target}/{how}");
                let r = send(app, Method::POST, &path, &body, None).await;
                let (status, text) = checked(&path, r).await?;
                let internal = app.token("acme", None, Audience::Internal);
                let now = app
                    .get_json(&internal, &format!("/api/v1/activities/{id}"))
                    .await;
                if status >= 400 || other_id.is_some() {
                    prop_assert_eq!(
                        &now,
                        &started,
                        "{} answered {} {} and changed the activity",
                        path,
                        status,
                        text
                    );
                } else {
                    prop_assert_ne!(&now["status"], "in_progress");
                }
                Ok(())
            })
        })
        .unwrap();
}

/// Percent-encodes everything but unreserved characters, so that any text is one segment.
fn utf8_percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

const ACCOUNT_PATHS: &[&str] = &["name", "partner", "partner_colour"];
const SITE_PATHS: &[&str] = &[
    "account_id",
    "name",
    "live",
    "live.url",
    "live.docroot",
    "staging",
    "staging.url",
    "staging.docroot",
];

#[test]
fn any_account_or_site_registration_is_kept_whole_or_refused_without_a_change() {
    let h = Harness::new();
    // One token (so one CSRF token on the page) for all the cases.
    let token = h.app().token("prop-acct", None, Audience::Internal);
    let shown = std::cell::RefCell::new(h.rt.block_on(registration(h.app(), &token)));
    let account = (
        prop::sample::select(vec![
            json!({"name": "Prop", "partner": "Agency"}),
            json!({"name": "Prop 2", "partner": "Other agency", "partner_colour": "#0a7cff"}),
        ]),
        mutations(ACCOUNT_PATHS),
    )
        .prop_map(|(mut a, ms)| {
            ms.iter().for_each(|m| apply(&mut a, m));
            ("accounts", a)
        });
    let docroot = prop_oneof![
        Just(json!("/srv/www/prop")),
        Just(json!("relative/docroot")),
        Just(json!("/srv/../etc")),
        Just(json!("/srv/a\u{0}b")),
        any_value(),
    ];
    let site = (
        prop::sample::select(vec![
            json!({"account_id": "prop-acct", "name": "Prop site",
                   "live": {"url": "https://prop.example"},
                   "staging": {"url": "https://staging.prop.example"}}),
            json!({"account_id": "prop-acct", "name": "Renamed",
                   "live": {"url": "https://prop.example:8443/blog"}}),
        ]),
        mutations(SITE_PATHS),
        prop::option::of(docroot),
    )
        .prop_map(|(mut s, ms, docroot)| {
            ms.iter().for_each(|m| apply(&mut s, m));
            if let Some(d) = docroot {
                apply(&mut s, &Mutation::Set("live.docroot", d));
            }
            // Moving the site to another existing account is a legitimate change this
            // property does not follow; any other account id is fair.
            if s["account_id"] == "acme" || s["account_id"] == "globex" {
                s["account_id"] = json!("prop-acct");
            }
            ("sites", s)
        });
    let strategy = (
        prop_oneof![
            account,
            site,
            arb_json().prop_map(|v| ("sites", v)),
            arb_json().prop_map(|v| ("accounts", v))
        ],
        prop_oneof![
            6 => Just(None),
            1 => odd_string().prop_map(Some),
        ],
    );
    runner()
        .run(&strategy, |((what, body), other_id)| {
            let id = match (&other_id, what) {
                (Some(odd), _) => utf8_percent(odd),
                (None, "accounts") => "prop-acct".to_owned(),
                (None, _) => "prop-site".to_owned(),
            };
            prop_assume!(!id.is_empty() && id.len() < 60_000);
            h.rt.block_on(async {
                let app = h.app();
                let path = format!("/api/v1/{what}/{id}");
                let r = send(app, Method::PUT, &path, &Body::Json(body), None).await;
                let (status, text) = checked(&path, r).await?;
                let now = registration(app, &token).await;
                if status >= 400 {
                    let before = shown.borrow();
                    let changed: Vec<(&str, &str)> = before
                        .1
                        .lines()
                        .zip(now.1.lines())
                        .filter(|(a, b)| a != b)
                        .collect();
                    prop_assert!(
                        now == *before,
                        "{} refused with {} {} but changed {:?}: {:?}",
                        path,
                        status,
                        text,
                        (before.0, now.0),
                        changed
                    );
                } else {
                    *shown.borrow_mut() = now;
                }
                Ok(())
            })
        })
        .unwrap();
}

const QUERY_KEYS: &[&str] = &[
    "activity", "status", "service", "user", "from", "to", "q", "limit", "cursor", "format", "tz",
];

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => odd_string(),
        2 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => odd_time().prop_map(|v| v.as_str().map_or(v.to_string(), str::to_owned)),
        1 => prop::sample::select(vec!["0", "1", "200", "201", "-1", "1e3", "18446744073709551616", "csv", "ndjson", "xlsx", "Support user", "System"]).prop_map(str::to_owned),
        // Cursors: well-formed and not.
        1 => (any::<i64>(), any::<i64>(), prop::sample::select(vec!["o1", "n1", "x1", "o2"])).prop_map(|(t, s, d)| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{d}.{t}.{s}"))
        }),
        1 => "[A-Za-z0-9_-]{0,80}",
    ]
}

/// A query string: pairs (keys may repeat), each percent-encoded, or raw bytes as typed.
fn query_string() -> impl Strategy<Value = String> {
    let pair = (
        prop_oneof![4 => prop::sample::select(QUERY_KEYS).prop_map(str::to_owned), 1 => odd_string()],
        query_value(),
    );
    prop_oneof![
        6 => prop::collection::vec(pair, 0..6).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{}={}", utf8_percent(k), utf8_percent(v)))
                .collect::<Vec<_>>()
                .join("&")
        }),
        1 => prop::sample::select(vec![
            "%", "%zz", "q=%ff%fe", "q=%00", "user=%00", "status=in_progress&status=failed",
            "limit=1&limit=2", "&&&", "=", "q", "q=a=b", "cursor=%2e%2e%2f", "from=2026-01-01T00:00:00%2B01:00",
        ]).prop_map(str::to_owned),
        1 => "[ -~]{0,60}".prop_map(|s| s.replace(['#', ' '], "")),
    ]
}

#[test]
fn any_query_string_lists_or_is_refused_with_an_error() {
    let h = Harness::new();
    h.rt.block_on(async {
        let app = h.app();
        let mut batch = Vec::new();
        for i in 0..30 {
            let mut a = if i % 3 == 0 {
                support_activity("acme", "shop")
            } else {
                activity("acme", "shop")
            };
            a["created_at"] = json!(format!("2026-11-{:02}T09:30:00Z", 1 + i % 28));
            batch.push(a);
        }
        let r = app
            .post_json("/api/v1/activities/batch", &json!({"activities": batch}))
            .await;
        assert_eq!(r.status(), 200);
    });
    let tokens = [
        h.app().token("acme", None, Audience::Client),
        h.app().token("acme", None, Audience::Internal),
        h.app().token("acme", Some("shop"), Audience::Client),
    ];
    let strategy = (
        query_string(),
        prop::sample::select(vec![
            "/api/v1/activities",
            "/api/v1/sites/shop/activities",
            "/api/v1/sites/shop/activities/export",
            "/sites/shop/advanced-tools/activity-logs",
        ]),
        0..tokens.len(),
    );
    runner()
        .run(&strategy, |(query, path, who)| {
            prop_assume!(query.len() < 60_000);
            h.rt.block_on(async {
                let app = h.app();
                let url = format!("{path}?{query}");
                let token = &tokens[who];
                if path.starts_with("/sites/") {
                    // A page: HTML either way, never a 5xx.
                    let r = app
                        .http
                        .get(app.url(&url))
                        .header("cookie", format!("sitetrail_session={token}"))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    prop_assert!(status.as_u16() < 500, "{} {} {}", url, status, body);
                    return Ok(());
                }
                let r = app.get(token, &url).await;
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                let (status, body) = checked(&url, r).await?;
                if status == 200 && ct.starts_with("application/json") {
                    let page: Value = serde_json::from_str(&body)
                        .map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
                    prop_assert!(page["items"].is_array(), "{}: {}", url, body);
                    prop_assert!(page["items"].as_array().unwrap().len() <= 200);
                } else if status == 200 {
                    prop_assert!(
                        ct.starts_with("text/csv") || ct.starts_with("application/x-ndjson"),
                        "{}: {}",
                        url,
                        ct
                    );
                } else {
                    prop_assert!((400..500).contains(&status), "{}: {}", url, status);
                }
                Ok(())
            })
        })
        .unwrap();
}

/// What the properties found on PostgreSQL, whose text cannot hold a NUL: a NUL in an
/// activity's details or in a filter was a 500 there (and accepted on SQLite).
#[tokio::test]
async fn a_nul_character_is_refused_in_every_body_and_filter() {
    let app = spawn_app().await;
    let mut a = activity("acme", "shop");
    a["details"] = json!({"note": "a\u{0}b"});
    let r = app.post_json("/api/v1/activities", &a).await;
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    a["details"] = json!({"a\u{0}": 1});
    assert_eq!(app.post_json("/api/v1/activities", &a).await.status(), 422);
    let batch = json!({"activities": [a]});
    assert_eq!(
        app.post_json("/api/v1/activities/batch", &batch)
            .await
            .status(),
        422
    );
    let id = app.record(&activity("acme", "shop")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for how in ["complete", "fail"] {
        let r = app
            .end(&id, how, &json!({"details": {"id": "\u{0}"}}))
            .await;
        assert_eq!(r.status(), 422, "{how}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains("NUL"));
    }
    // A backslash followed by u0000 is text like any other.
    let mut fine = activity("acme", "shop");
    fine["details"] = json!({"path": "C:\\u0000"});
    app.record(&fine).await;
    assert_eq!(count_all(&app).await, 2, "the refusals wrote nothing");

    let client = app.token("acme", None, Audience::Client);
    for path in [
        "/api/v1/activities?user=%00",
        "/api/v1/activities?q=%00",
        "/api/v1/sites/shop/activities?q=a%00b",
        "/api/v1/sites/shop/activities/export?user=%00",
    ] {
        let r = app.get(&client, path).await;
        assert_eq!(r.status(), 422, "{path}");
    }
}

#[tokio::test]
async fn the_log_page_refuses_a_nul_filter() {
    let app = spawn_app().await;
    let client = app.token("acme", None, Audience::Client);
    for path in [
        "/sites/shop/advanced-tools/activity-logs?user=%00",
        "/sites/shop/advanced-tools/activity-logs?q=%00",
    ] {
        let r = app
            .http
            .get(app.url(path))
            .header("cookie", format!("sitetrail_session={client}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
}
