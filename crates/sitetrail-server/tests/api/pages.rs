//! The dashboard over HTTP: signing in and out, the pages' security headers, escaping,
//! white-label and redaction in the HTML a browser receives. The browser itself is driven
//! by the tests in `e2e/`.

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::json;
use sitetrail_core::{AccountId, Audience};
use sitetrail_server::auth::{ActorClaim, Claims};
use sitetrail_server::pages::{CONTENT_SECURITY_POLICY as POLICY, csrf};

use crate::*;

const LOG: &str = "/sites/shop/advanced-tools/activity-logs";

impl TestApp {
    /// A page as a signed-in browser gets it.
    async fn page(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .header("cookie", format!("sitetrail_session={token}"))
            .send()
            .await
            .unwrap()
    }

    async fn page_text(&self, token: &str, path: &str) -> String {
        let r = self.page(token, path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// The sign-in link's form, posted (`token` may carry `&site=`: the form's fields).
    async fn sign_in(&self, token: &str) -> Response {
        self.http
            .post(self.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .await
            .unwrap()
    }

    async fn sign_out(&self, session: Option<&str>, csrf: Option<&str>) -> Response {
        let mut req = self.http.post(self.url("/logout"));
        if let Some(s) = session {
            req = req.header("cookie", format!("sitetrail_session={s}"));
        }
        // CSRF tokens are URL-safe base64: the form body needs no encoding.
        let body = csrf.map(|c| format!("csrf={c}")).unwrap_or_default();
        req.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

fn cookie(r: &Response) -> String {
    r.headers()
        .get(SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn html(r: Response) -> String {
    let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    r.text().await.unwrap()
}

fn expired_token(app: &TestApp) -> String {
    app.tokens
        .sign(&Claims {
            account: AccountId::parse("acme").unwrap(),
            site: None,
            audience: Audience::Client,
            actor: ActorClaim {
                kind: sitetrail_core::ActorKind::User,
                email: OWNER_EMAIL.into(),
                name: None,
            },
            iat: 0,
            exp: 1_000,
        })
        .unwrap()
}

#[tokio::test]
async fn signing_in_sets_an_httponly_samesite_cookie_and_drops_the_token_from_the_address() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let r = app.sign_in(&token).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()[LOCATION].to_str().unwrap();
    // The account's first site by name.
    assert_eq!(location, "/sites/blog/advanced-tools/activity-logs");
    assert!(!location.contains("token"));
    let set = cookie(&r);
    assert!(
        set.starts_with(&format!("sitetrail_session={token};")),
        "{set}"
    );
    for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(part), "{set} lacks {part}");
    }
    assert!(set.contains("; Secure"), "{set}");
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (590..=600).contains(&max_age),
        "{max_age}: the token's lifetime"
    );
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn a_token_for_one_site_signs_in_to_that_site() {
    let app = spawn_app().await;
    let token = app.token("acme", Some("shop"), Audience::Client);
    let r = app.sign_in(&token).await;
    assert_eq!(r.headers()[LOCATION], LOG);
    let page = app.page_text(&token, LOG).await;
    assert!(
        !page.contains("Switch site"),
        "a one-site viewer sees no other site"
    );
}

#[tokio::test]
async fn a_sign_in_link_may_name_the_site_to_open_but_only_one_of_the_viewers() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let r = app.sign_in(&format!("{token}&site=shop")).await;
    assert_eq!(r.headers()[LOCATION], LOG);
    for other in ["portal", "nowhere", "../x"] {
        let r = app.sign_in(&format!("{token}&site={other}")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[LOCATION],
            "/sites/blog/advanced-tools/activity-logs"
        );
    }
}

#[tokio::test]
async fn an_expired_sign_in_link_gets_a_page_that_says_so() {
    let app = spawn_app().await;
    let r = app.sign_in(&expired_token(&app)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let body = html(r).await;
    assert!(body.contains("This sign-in link has expired"), "{body}");
    assert!(body.contains("Ask your hosting provider for a new sign-in link"));
}

#[tokio::test]
async fn an_invalid_or_missing_sign_in_token_gets_a_clear_page() {
    let app = spawn_app().await;
    for path in ["/login?token=not-a-token", "/login", "/login?token="] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body = html(r).await;
        assert!(
            body.contains("This sign-in link does not work"),
            "{path}: {body}"
        );
        assert!(!body.contains("\"error\""), "not JSON");
    }
}

#[tokio::test]
async fn pages_without_a_session_ask_to_open_the_sign_in_link() {
    let app = spawn_app().await;
    let r = app.http.get(app.url(LOG)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = html(r).await;
    assert!(body.contains("Open the sign-in link your hosting provider gave you"));
}

#[tokio::test]
async fn an_expired_session_ends_with_a_page_and_a_cleared_cookie() {
    let app = spawn_app().await;
    let r = app.page(&expired_token(&app), LOG).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie(&r).contains("Max-Age=0"));
    assert!(html(r).await.contains("Your session has expired"));
}

#[tokio::test]
async fn the_home_page_sends_a_signed_in_viewer_to_their_first_site() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let r = app.page(&token, "/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/sites/blog");
    let anonymous = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(anonymous.status(), 200);
    assert!(html(anonymous).await.contains("Open the sign-in link"));
}

#[tokio::test]
async fn another_accounts_site_and_an_unknown_site_are_both_not_found() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Internal);
    let mut bodies = Vec::new();
    for site in ["portal", "nowhere"] {
        for page in [
            "",
            "/staging",
            "/backups",
            "/advanced-tools",
            "/advanced-tools/activity-logs",
        ] {
            let r = app.page(&token, &format!("/sites/{site}{page}")).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{site}{page}");
            bodies.push(html(r).await);
        }
    }
    assert!(bodies[0].contains("Site not found"));
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "the same answer either way"
    );
}

#[tokio::test]
async fn signing_out_needs_the_csrf_token_of_the_session() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    for presented in [
        None,
        Some(""),
        Some("forged"),
        Some(&csrf::token_for("another")),
    ] {
        let r = app
            .sign_out(Some(&token), presented.map(|s| s as &str))
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{presented:?}");
        assert!(r.headers().get(SET_COOKIE).is_none());
        assert!(html(r).await.contains("This form has expired"));
    }
    // The form on the page carries the right one.
    let page = app.page_text(&token, LOG).await;
    let field = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-out form has a CSRF field");
    assert_eq!(field, csrf::token_for(&token));
    let r = app.sign_out(Some(&token), Some(field)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/signed-out");
    assert!(cookie(&r).contains("sitetrail_session=;"));
    assert!(cookie(&r).contains("Max-Age=0"));
    let done = app.http.get(app.url("/signed-out")).send().await.unwrap();
    assert!(html(done).await.contains("You have signed out"));
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy_and_no_inline_script_or_style() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    for path in [
        LOG,
        "/sites/shop",
        "/sites/shop/staging",
        "/sites/shop/staging/push-to-live",
        "/sites/shop/backups",
        "/sites/shop/advanced-tools",
        "/login?token=x",
    ] {
        let r = app.page(&token, path).await;
        assert_eq!(r.headers()[CONTENT_SECURITY_POLICY], POLICY, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let body = r.text().await.unwrap();
        assert!(!body.contains("<script>"), "{path}: inline script");
        assert!(!body.contains("style="), "{path}: inline style");
        assert!(!body.contains("<style"), "{path}: inline style");
    }
    assert!(POLICY.contains("script-src 'self';"));
    assert!(!POLICY.contains("unsafe"));
    let js = app
        .http
        .get(app.url("/static/activity-logs.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(!js.text().await.unwrap().contains("innerHTML"));
}

#[tokio::test]
async fn what_a_publisher_sent_is_html_escaped() {
    let app = spawn_app().await;
    let mut a = activity("acme", "shop");
    a["description"] = json!("<img src=x onerror=alert(1)>");
    let id = app.record(&a).await["id"].as_str().unwrap().to_owned();
    let r = app
        .end(&id, "fail", &json!({"error": "<script>alert(2)</script>"}))
        .await;
    assert_eq!(r.status(), 200);
    let page = app
        .page_text(&app.token("acme", None, Audience::Client), LOG)
        .await;
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("<script>alert"));
    let text = unescape(&page);
    assert!(text.contains("<span class=\"description\"><img src=x onerror=alert(1)></span>"));
    assert!(text.contains("<p><script>alert(2)</script></p>"));
}

#[tokio::test]
async fn the_client_page_shows_support_user_and_holds_no_support_email() {
    let app = spawn_app().await;
    let id = app.record(&support_activity("acme", "shop")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.end(
        &id,
        "fail",
        &json!({"error": format!("{SUPPORT_NAME} <{SUPPORT_EMAIL}> saw a timeout")}),
    )
    .await;
    let client = app
        .page_text(&app.token("acme", None, Audience::Client), LOG)
        .await;
    assert!(client.contains("<span class=\"user\">Support user</span>"));
    let lower = client.to_lowercase();
    // Not "sam" alone: three letters turn up by chance in the page's random CSRF token.
    for secret in [
        SUPPORT_EMAIL,
        "sam rivera",
        "sam.rivera",
        "rivera",
        "partner.example",
    ] {
        assert!(!lower.contains(secret), "the client page leaks {secret:?}");
    }
    assert!(
        !client.contains("class=\"marker\""),
        "no marker for clients"
    );

    let internal = app
        .page_text(&app.token("acme", None, Audience::Internal), LOG)
        .await;
    assert!(internal.contains(&format!("<span class=\"user\">{SUPPORT_EMAIL}</span>")));
    assert!(
        internal.contains("class=\"marker\""),
        "support acted for the client"
    );
    assert!(internal.contains("Internal view"));
}

#[tokio::test]
async fn client_pages_carry_the_partners_name_and_colour_and_never_ours() {
    let app = spawn_app().await;
    let r = app
        .put_json(
            "/api/v1/accounts/acme",
            &json!({"name": "Acme", "partner": "Brightside Digital", "partner_colour": "#0F766E"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = app.token("acme", None, Audience::Client);
    for path in [
        LOG,
        "/sites/shop",
        "/sites/shop/staging",
        "/sites/shop/backups",
        "/sites/shop/staging/push-to-live",
        "/sites/shop/advanced-tools",
    ] {
        let page = app.page_text(&token, path).await;
        assert!(page.contains("Brightside Digital"), "{path}");
        assert!(
            !page.to_lowercase().contains("sitetrail"),
            "{path} names us"
        );
    }
    let theme = app.page(&token, "/theme.css").await.text().await.unwrap();
    assert!(theme.contains("--brand: #0f766e;"), "{theme}");
    let anonymous = app.http.get(app.url("/theme.css")).send().await.unwrap();
    assert!(!anonymous.text().await.unwrap().contains("#0f766e"));
}

#[tokio::test]
async fn the_log_has_the_seven_columns_and_human_labels() {
    let app = spawn_app().await;
    let mut a = activity("acme", "shop");
    a["activity"] = json!("reset_staging_from_template");
    a["environment"] = json!("staging");
    a["created_at"] = json!("2026-11-25T09:30:00Z");
    a["status"] = json!("completed");
    a["completed_at"] = json!("2026-11-25T09:32:05Z");
    app.record(&a).await;
    let page = app
        .page_text(&app.token("acme", None, Audience::Client), LOG)
        .await;
    let headers: Vec<&str> = page
        .split("<th scope=\"col\">")
        .skip(1)
        .map(|h| h.split('<').next().unwrap())
        .collect();
    assert_eq!(
        headers,
        [
            "Created",
            "User",
            "Service",
            "Activity",
            "Status",
            "Description",
            "Completed"
        ]
    );
    assert!(page.contains("<caption id=\"log-caption\">Activity on shop, newest first</caption>"));
    assert!(page.contains("Reset Staging from Template"));
    assert!(page.contains(
        "<time datetime=\"2026-11-25T09:30:00.000Z\" title=\"2026-11-25 09:30:00 UTC\">"
    ));
    assert!(page.contains("took 2 min 5 s"));
    assert!(page.contains("<span class=\"badge-label\">Completed</span>"));
}

#[tokio::test]
async fn filters_stay_in_the_url_and_reach_the_export_links() {
    let app = spawn_app().await;
    for (activity, fail) in [
        ("push_staging_to_live", true),
        ("push_staging_to_live", false),
        ("create_backup", true),
    ] {
        let mut a = activity_json(activity);
        a["status"] = json!(if fail { "failed" } else { "completed" });
        app.record(&a).await;
    }
    let token = app.token("acme", None, Audience::Client);
    let page = app
        .page_text(
            &token,
            &format!("{LOG}?activity=push_staging_to_live&status=failed&user=&q="),
        )
        .await;
    assert_eq!(page.matches("<tr id=\"activity-").count(), 1);
    assert!(page.contains("<option value=\"push_staging_to_live\" selected>"));
    assert!(page.contains("<option value=\"failed\" selected>"));
    assert!(unescape(&page).contains(
        "href=\"/api/v1/sites/shop/activities/export?format=csv&activity=push_staging_to_live&status=failed\""
    ));
    assert!(page.contains("Clear filters"));
}

#[tokio::test]
async fn date_inputs_become_whole_days_in_the_export_link() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let page = app
        .page_text(
            &token,
            &format!("{LOG}?from=2026-11-01&to=2026-11-02&tz=60"),
        )
        .await;
    assert!(page.contains("value=\"2026-11-01\""));
    assert!(page.contains("value=\"2026-11-02\""));
    assert!(
        unescape(&page)
            .contains("from=2026-10-31T23%3A00%3A00.000Z&to=2026-11-02T23%3A00%3A00.000Z")
    );
    assert!(page.contains("Dates are whole days, in UTC+01:00."));
}

#[tokio::test]
async fn impossible_filters_get_a_page_that_says_what_to_do() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    for (query, status) in [
        (
            "from=2026-11-05&to=2026-11-01",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("cursor=garbage", StatusCode::BAD_REQUEST),
        ("status=sleeping", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = app.page(&token, &format!("{LOG}?{query}")).await;
        assert_eq!(r.status(), status, "{query}");
        let body = html(r).await;
        assert!(body.contains("The filters could not be applied"), "{query}");
        assert!(!body.contains("Export CSV"), "{query}: nothing to export");
        assert!(body.contains("clear them"), "{query}");
    }
}

#[tokio::test]
async fn an_empty_log_says_what_happens_next() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let page = app.page_text(&token, LOG).await;
    assert!(page.contains("No activity on this site yet."));
    let filtered = app.page_text(&token, &format!("{LOG}?status=failed")).await;
    assert!(filtered.contains("No activities match these filters."));
}

#[tokio::test]
async fn newer_and_older_links_page_by_cursor_and_keep_the_filters() {
    let app = spawn_app().await;
    for _ in 0..5 {
        app.record(&activity_json("push_staging_to_live")).await;
    }
    let token = app.token("acme", None, Audience::Client);
    let first = app
        .page_text(
            &token,
            &format!("{LOG}?activity=push_staging_to_live&limit=2"),
        )
        .await;
    assert_eq!(first.matches("<tr id=\"activity-").count(), 2);
    assert!(first.contains("aria-disabled=\"true\">&larr; Newer"));
    let older = unescape(
        first
            .split("rel=\"next\"")
            .next()
            .and_then(|s| s.rsplit("href=\"").next())
            .and_then(|s| s.split('"').next())
            .unwrap(),
    );
    assert!(older.contains("activity=push_staging_to_live"), "{older}");
    assert!(older.contains("limit=2"));
    assert!(older.contains("cursor="));
    let second = app.page_text(&token, &older).await;
    assert_eq!(second.matches("<tr id=\"activity-").count(), 2);
    assert!(second.contains("rel=\"prev\""));
}

/// The text of HTML, as a browser reads it.
fn unescape(html: &str) -> String {
    [
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |s, (entity, c)| s.replace(entity, c))
}

fn activity_json(kind: &str) -> serde_json::Value {
    let mut a = activity("acme", "shop");
    a["activity"] = json!(kind);
    if kind == "create_backup" {
        a["service"] = json!("backups");
    }
    a
}
