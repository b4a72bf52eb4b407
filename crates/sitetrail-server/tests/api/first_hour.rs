//! What a new viewer meets in the first hour (issue #20): a 404 in the dashboard's look, an
//! export that says why a row failed, an Access Log that is not noise.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::json;
use sitetrail_core::{Audience, SiteId};

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

/// The CSV as a viewer downloads it.
async fn csv_export(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get(
        token,
        &format!("/api/v1/sites/shop/activities/export?format=csv{query}"),
    )
    .await
}

#[tokio::test]
async fn the_csv_appends_an_error_column_seen_through_the_viewers_lens() {
    let app = spawn_app().await;
    app.seed().await;
    let a = app.record(&support_activity("acme", "shop")).await;
    let error = format!("{SUPPORT_NAME} <{SUPPORT_EMAIL}> saw the database time out");
    let r = app
        .end(
            a["id"].as_str().unwrap(),
            "fail",
            &json!({ "error": error }),
        )
        .await;
    assert_eq!(r.status(), 200);

    let mut rows = Vec::new();
    for audience in [Audience::Internal, Audience::Client] {
        let token = app.token("acme", None, audience);
        let r = csv_export(&app, &token, "").await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            !text.starts_with('\u{feff}'),
            "no byte order mark unless asked"
        );
        let mut csv = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            csv.headers().unwrap(),
            vec![
                "Created",
                "User",
                "Service",
                "Activity",
                "Status",
                "Description",
                "Completed",
                "Error"
            ],
            "the seven columns keep their order; Error comes last"
        );
        let row = csv.records().next().unwrap().unwrap();
        assert_eq!(&row[4], "Failed");
        rows.push((row[1].to_owned(), row[7].to_owned()));
    }
    let (internal_user, internal_error) = &rows[0];
    assert_eq!(internal_user, SUPPORT_EMAIL);
    assert_eq!(internal_error, &error);
    let (client_user, client_error) = &rows[1];
    assert_eq!(client_user, "Support user");
    assert!(
        client_error.ends_with("saw the database time out"),
        "{client_error}"
    );
    assert!(
        !client_error.contains(SUPPORT_EMAIL) && !client_error.contains(SUPPORT_NAME),
        "a client's export never names the support person: {client_error}"
    );
}

#[tokio::test]
async fn a_csv_for_spreadsheets_starts_with_a_byte_order_mark_when_asked() {
    let app = spawn_app().await;
    app.seed().await;
    let mut a = activity("acme", "shop");
    a["description"] = json!("Pâtisserie pushed to live");
    app.record(&a).await;
    let token = app.token("acme", None, Audience::Client);
    let bytes = csv_export(&app, &token, "&bom=1")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBFCreated,User,"), "{bytes:?}");
    assert!(
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .contains("Pâtisserie")
    );
    let plain = csv_export(&app, &token, "&bom=0")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(plain.starts_with(b"Created,User,"));

    for bad in ["&bom=yes", "&bom=2"] {
        let r = csv_export(&app, &token, bad).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let r = app
        .get(
            &token,
            "/api/v1/sites/shop/activities/export?format=ndjson&bom=1",
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A snapshot's manifest, as the engine writes it, in the app's data dir.
fn snapshot(app: &TestApp, dir: &[&str], id: &str, reason: &str, at: &str, name: Option<&str>) {
    let mut path = app.data_dir.join("snapshots");
    for part in dir {
        path.push(part);
    }
    path.push(id);
    std::fs::create_dir_all(&path).unwrap();
    let mut manifest = json!({
        "version": 1, "kind": if reason == "template" { "template" } else { "backup" },
        "id": id, "site_id": if reason == "template" { None } else { Some("shop") },
        "environment": if reason == "template" { None } else { Some("live") },
        "reason": reason, "source_url": "https://bakery-source.example",
        "table_prefix": "wp_", "created_at": at,
        "files_sha256": "", "files_tar_bytes": 0, "files": {"files": 12, "bytes": 45_600_000},
        "database_sha256": "", "database_bytes": 0,
        "database": {"tables": 12, "rows": 3456, "rewritten_cells": 0},
    });
    if let Some(n) = name {
        manifest["name"] = json!(n);
    }
    let m: sitetrail_staging::Manifest = serde_json::from_value(manifest).unwrap();
    std::fs::write(path.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
}

#[tokio::test]
async fn backups_show_their_ids_and_templates_their_names_never_a_source_url() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "shop",
                    "live": {"url": "https://shop.example", "docroot": root.path().join("live")},
                    "staging": {"url": "https://staging.shop.example", "docroot": root.path().join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .put_json(
            "/api/v1/accounts/acme",
            &json!({"name": "acme", "partner": "Agency"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let id = "live-20261125T093000Z";
    snapshot(
        &app,
        &["backups", "shop"],
        id,
        "daily",
        "2026-11-25T09:30:00.000Z",
        None,
    );
    snapshot(
        &app,
        &["templates"],
        "bakery-classic",
        "template",
        "2026-11-20T08:00:00.000Z",
        Some("Bakery Classic"),
    );
    // Staging exists, as the engine records it: the resets are offered.
    sitetrail_staging::record_made_for_tests(&app.data_dir, &SiteId::parse("shop").unwrap())
        .unwrap();
    let token = app.token("acme", None, Audience::Client);
    let get = |path: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            let r = app
                .http
                .get(app.url(path))
                .header("cookie", format!("sitetrail_session={token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    let backups = get("/sites/shop/backups").await;
    assert!(
        backups.contains(&format!("<code class=\"backup-id\">{id}</code>")),
        "{backups}"
    );
    assert!(backups.contains("<th scope=\"col\">Backup</th>"));
    let staging = get("/sites/shop/staging").await;
    assert!(
        staging.contains(">Bakery Classic</option>"),
        "the template by its name: {staging}"
    );
    assert!(!staging.contains("bakery-source.example"), "no source URL");
    // The backup's choice starts with its time, which the script writes in the viewer's zone.
    assert!(staging.contains(
        "data-datetime=\"2026-11-25T09:30:00.000Z\" data-rest=\" · Live · Daily · 45.6 MB\""
    ));
}
