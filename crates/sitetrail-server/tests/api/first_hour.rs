//! What a new viewer meets in the first hour (issue #20): a 404 in the dashboard's look, an
//! export that says why a row failed, an Access Log that is not noise.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use sitetrail_core::Audience;

use crate::*;

#[tokio::test]
async fn an_unknown_dashboard_address_gets_a_styled_page_that_leads_back() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key(CONTENT_SECURITY_POLICY));
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("Page not found"), "{body}");
    assert!(body.contains("/static/app.css"), "the dashboard's look");
    assert!(body.contains(r#"href="/""#), "a way back");
}

#[tokio::test]
async fn an_unknown_api_address_keeps_its_json_error() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let r = app.get(&token, "/api/v1/nothing-here").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
