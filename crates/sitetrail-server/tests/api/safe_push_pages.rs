//! Safe push in the dashboard: the push form previews first (with its scopes and their
//! lists), the preview's report page and its confirmation, undo, restore of live, and the
//! Activity Logs' link to a preview's report. Every form carries the CSRF token; a refused
//! form logs nothing; another account's preview is not found; a client sees no support
//! person in a report.

use reqwest::header::LOCATION;
use serde_json::json;
use sitetrail_core::Audience;

use crate::safe_push::report;
use crate::staging_pages::{activities, csrf_in, host_shop_at, open, open_text, submit, with_csrf};
use crate::*;

const PUSH: &str = "/sites/shop/staging/push-to-live";

/// A preview recorded as the engine logs one, by support, completed.
async fn support_preview(app: &TestApp, account: &str, site: &str) -> String {
    let mut a = support_activity(account, site);
    a["activity"] = json!("preview_push");
    a["description"] = json!(format!("Previewed by {SUPPORT_NAME} <{SUPPORT_EMAIL}>"));
    let mut r = report();
    r["conflicts"][0]["key"] = json!(format!("meta_id=77 {SUPPORT_EMAIL}"));
    a["details"] = json!({"pushed": {"scope": "tables", "tables": ["posts", "postmeta"], "folders": []}, "preview": r});
    let id = app.record(&a).await["id"].as_str().unwrap().to_owned();
    assert_eq!(app.end(&id, "complete", &json!({})).await.status(), 200);
    id
}

#[tokio::test]
async fn the_report_page_shows_tables_conflicts_files_and_rewrites_and_asks_to_confirm_that_preview()
 {
    let app = spawn_app().await;
    let id = support_preview(&app, "acme", "shop").await;
    let path = format!("/sites/shop/staging/previews/{id}");
    let client = app.token("acme", None, Audience::Client);
    let page = open_text(&app, &client, &path).await;
    for shown in [
        "<code>wp_posts</code>",
        "<code>wp_postmeta</code>",
        "wp-content/themes/shop/style.css",
        "2.0 kB",
        "the tables posts, postmeta",
        "Staging wins",
        "Live wins",
        "Push these changes",
        &format!("action=\"{path}/push\""),
        "name=\"on_conflict\" value=\"staging_wins\" required",
    ] {
        assert!(page.contains(shown), "{shown}\n{page}");
    }
    assert!(
        !page.contains(SUPPORT_EMAIL),
        "a client sees no support email in a report"
    );
    assert!(page.contains("name=\"csrf\""));
    // The log's row links to it.
    let log = open_text(&app, &client, "/sites/shop/advanced-tools/activity-logs").await;
    assert!(
        log.contains(&format!("href=\"{path}\">See the report</a>")),
        "{log}"
    );
    // Another account's viewer, another site's path, and a push without a report: not found.
    let globex = app.token("globex", None, Audience::Internal);
    assert_eq!(open(&app, &globex, &path).await.status(), 404);
    assert_eq!(
        open(&app, &client, &format!("/sites/blog/staging/previews/{id}"))
            .await
            .status(),
        404
    );
    let plain = app.record(&activity("acme", "shop")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        open(
            &app,
            &client,
            &format!("/sites/shop/staging/previews/{plain}")
        )
        .await
        .status(),
        404
    );
}

#[tokio::test]
async fn confirming_a_preview_needs_the_tick_and_the_csrf_token_and_logs_nothing_without_them() {
    let app = spawn_app().await;
    let id = support_preview(&app, "acme", "shop").await;
    let path = format!("/sites/shop/staging/previews/{id}");
    let token = app.token("acme", None, Audience::Internal);
    let page = open_text(&app, &token, &path).await;
    let csrf = csrf_in(&page);
    let before = activities(&app, "shop").await.len();
    let r = submit(
        &app,
        Some(&token),
        &format!("{path}/push"),
        &[("on_conflict", "live_wins")],
    )
    .await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let fields = with_csrf(&csrf, &[("on_conflict", "live_wins")]);
    let r = submit(&app, Some(&token), &format!("{path}/push"), &fields).await;
    assert_eq!(r.status(), 422, "no confirmation");
    assert!(r.text().await.unwrap().contains("id=\"confirm-error\""));
    // Confirmed: the server's checks pass, and the engine refuses (shop is not hosted here).
    let fields = with_csrf(&csrf, &[("on_conflict", "live_wins"), ("confirm", "yes")]);
    let r = submit(&app, Some(&token), &format!("{path}/push"), &fields).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not hosted here"));
    assert_eq!(activities(&app, "shop").await.len(), before);
}

#[tokio::test]
async fn the_push_form_previews_the_chosen_scope_and_refuses_bad_lists_without_logging() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let page = open_text(&app, &token, PUSH).await;
    assert!(page.contains("What stays live's"));
    let csrf = csrf_in(&page);
    for (fields, says) in [
        (
            vec![("scope", "tables"), ("action", "preview")],
            "Name at least one table",
        ),
        (
            vec![
                ("scope", "folders"),
                ("folders", "../live"),
                ("action", "preview"),
            ],
            "is not a folder of the site",
        ),
        (
            vec![
                ("scope", "tables"),
                ("tables", "wp posts"),
                ("action", "preview"),
            ],
            "is not a table name",
        ),
        (vec![("action", "preview")], "Choose what to push"),
        (vec![("scope", "database"), ("action", "push")], "to push."),
    ] {
        let r = submit(&app, Some(&token), PUSH, &with_csrf(&csrf, &fields)).await;
        assert_eq!(r.status(), 422, "{fields:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{says}\n{body}");
    }
    assert!(
        activities(&app, "shop").await.is_empty(),
        "a refused form logs nothing"
    );
    // The lists of the scopes not chosen are left behind (the engine checks a chosen table
    // against staging's, which these docroots do not have).
    let fields = [
        ("scope", "database"),
        ("tables", "posts\r\n postmeta \r\n"),
        ("folders", "leftover"),
        ("action", "preview"),
    ];
    let r = submit(&app, Some(&token), PUSH, &with_csrf(&csrf, &fields)).await;
    assert_eq!(r.status(), 303);
    let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(to.starts_with("/sites/shop/staging/previews/"), "{to}");
    let logged = activities(&app, "shop").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["activity"], "preview_push");
    assert_eq!(logged[0]["user"]["email"], OWNER_EMAIL);
    let details = logged[0]["details"].to_string();
    assert_eq!(logged[0]["details"]["scope"], "database", "{details}");
    assert!(
        !details.contains("postmeta") && !details.contains("leftover"),
        "{details}"
    );
    assert_eq!(open(&app, &token, &to).await.status(), 200);
    // A preview still running: its page reloads by itself, without JavaScript, until the
    // report is there.
    let mut a = activity("acme", "shop");
    a["activity"] = json!("preview_push");
    let running = app.record(&a).await["id"].as_str().unwrap().to_owned();
    let page = open_text(
        &app,
        &token,
        &format!("/sites/shop/staging/previews/{running}"),
    )
    .await;
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"4\">"),
        "{page}"
    );
    assert!(page.contains("The preview is running"));
    assert!(!page.contains("Push these changes"));
}

#[tokio::test]
async fn undo_and_restore_forms_confirm_first_and_say_why_when_refused() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let staging = open_text(&app, &token, "/sites/shop/staging").await;
    assert!(!staging.contains("Undo push"), "no push to undo, no button");
    let csrf = csrf_in(&staging);
    let undo = "/sites/shop/staging/undo-push";
    let r = submit(&app, Some(&token), undo, &with_csrf(&csrf, &[])).await;
    assert_eq!(r.status(), 422);
    let r = submit(
        &app,
        Some(&token),
        undo,
        &with_csrf(&csrf, &[("confirm", "yes")]),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("There is no push to undo"));
    // Restore: a backup that is not this site's is not found; nothing is logged.
    let restore = "/sites/shop/backups/live-20261125T093000Z/restore-live";
    assert_eq!(open(&app, &token, restore).await.status(), 404);
    let fields = with_csrf(&csrf, &[("scope", "site"), ("confirm", "yes")]);
    let r = submit(&app, Some(&token), restore, &fields).await;
    assert_eq!(r.status(), 404);
    let r = submit(
        &app,
        Some(&token),
        "/sites/portal/staging/undo-push",
        &with_csrf(&csrf, &[("confirm", "yes")]),
    )
    .await;
    assert_eq!(r.status(), 404, "another account's site");
    assert!(activities(&app, "shop").await.is_empty());
}

#[tokio::test]
async fn the_sites_own_live_owned_tables_are_saved_from_the_push_form() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let page = open_text(&app, &token, PUSH).await;
    let csrf = csrf_in(&page);
    let save = "/sites/shop/staging/live-owned";
    let r = submit(&app, Some(&token), save, &[("extra", "gf_entry")]).await;
    assert_eq!(r.status(), 403, "no CSRF token");
    let r = submit(
        &app,
        Some(&token),
        save,
        &with_csrf(&csrf, &[("extra", "bad name")]),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = submit(
        &app,
        Some(&token),
        save,
        &with_csrf(&csrf, &[("extra", "gf_entry\ngf_entry_meta")]),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[LOCATION],
        "/sites/shop/staging/push-to-live#live-owned"
    );
}

#[tokio::test]
async fn a_push_stopped_because_live_changed_shows_the_new_preview_and_asks_to_preview_again() {
    let app = spawn_app().await;
    let mut a = activity("acme", "shop");
    a["details"] = json!({"scope": "site", "preview": report()});
    let id = app.record(&a).await["id"].as_str().unwrap().to_owned();
    let error = "Live changed since the preview, so nothing was pushed. Review the new preview and confirm it.";
    assert_eq!(
        app.end(&id, "fail", &json!({"error": error}))
            .await
            .status(),
        200
    );
    let token = app.token("acme", None, Audience::Client);
    let staging = open_text(&app, &token, &format!("/sites/shop/staging?started={id}")).await;
    let path = format!("/sites/shop/staging/previews/{id}");
    assert!(
        staging.contains(&format!(
            "href=\"{path}\">See what the push would do now</a>"
        )),
        "{staging}"
    );
    let page = open_text(&app, &token, &path).await;
    assert!(page.contains("Nothing was pushed"));
    assert!(page.contains("Live changed since the preview"));
    assert!(page.contains("<code>wp_posts</code>"), "the new report");
    assert!(page.contains("Preview again"));
    assert!(
        !page.contains("Push these changes"),
        "a stopped push is not confirmed as such"
    );
    // Confirming it as if it were a preview is refused, and logs nothing.
    let csrf = csrf_in(&page);
    let before = activities(&app, "shop").await.len();
    let fields = with_csrf(&csrf, &[("confirm", "yes")]);
    let r = submit(&app, Some(&token), &format!("{path}/push"), &fields).await;
    assert_eq!(r.status(), 422);
    assert_eq!(activities(&app, "shop").await.len(), before);
}
