//! The dashboard's Staging and Backups pages: their forms start operations as the signed-in
//! viewer (session cookie + CSRF token), push asks for an explicit confirmation, refusals
//! are pages that say why, and a site hosted elsewhere shows its actions disabled.

use std::path::Path;
use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sitetrail_core::{ActivityId, ActorKind, Audience, SiteId};
use sitetrail_server::pages::csrf;
use sitetrail_staging::wordpress::{self, WpSite, mysql};

use crate::*;

const STAGING: &str = "/sites/shop/staging";
const PUSH: &str = "/sites/shop/staging/push-to-live";
const BACKUPS: &str = "/sites/shop/backups";
const CONFIRMATION: &str = "I am ready to push my staging site to production";

/// Every form of the two pages, with the fields a person would send.
const FORMS: [(&str, &[(&str, &str)]); 5] = [
    ("/sites/shop/staging/create", &[]),
    (
        "/sites/shop/staging/reset-from-template",
        &[("template", "bakery")],
    ),
    (
        "/sites/shop/staging/reset-from-backup",
        &[("backup", "live-20261125T093000Z")],
    ),
    (PUSH, &[("scope", "site"), ("confirm", "yes")]),
    (BACKUPS, &[("environment", "live")]),
];

pub async fn open(app: &TestApp, token: &str, path: &str) -> Response {
    app.http
        .get(app.url(path))
        .header("cookie", format!("sitetrail_session={token}"))
        .send()
        .await
        .unwrap()
}

pub async fn open_text(app: &TestApp, token: &str, path: &str) -> String {
    let r = open(app, token, path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form as a browser sends it: the session cookie, then the fields.
pub async fn submit(
    app: &TestApp,
    session: Option<&str>,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect();
    let mut req = app
        .http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"));
    if let Some(s) = session {
        req = req.header("cookie", format!("sitetrail_session={s}"));
    }
    req.send().await.unwrap()
}

/// The CSRF token the page's forms carry.
pub fn csrf_in(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page has a form with a CSRF field")
        .to_owned()
}

pub fn with_csrf<'a>(token: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("csrf", token)];
    all.extend_from_slice(fields);
    all
}

pub async fn activities(app: &TestApp, site: &str) -> Vec<Value> {
    let account = if site == "portal" { "globex" } else { "acme" };
    let token = app.token(account, None, Audience::Internal);
    let page = app
        .get_json(&token, &format!("/api/v1/sites/{site}/activities"))
        .await;
    page["items"].as_array().unwrap().clone()
}

/// Registers docroots for shop (that hold no WordPress), with staging as the engine records
/// it once made: forms pass the page's and the engine's checks, and an operation that starts
/// fails at once, touching nothing.
pub async fn host_shop_at(app: &TestApp, root: &Path) {
    sitetrail_staging::record_made_for_tests(&app.data_dir, &SiteId::parse("shop").unwrap())
        .unwrap();
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "shop",
                    "live": {"url": "https://shop.example", "docroot": root.join("live")},
                    "staging": {"url": "https://staging.shop.example/wp", "docroot": root.join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

fn location(r: &Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

async fn wait_for_end(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..900 {
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

#[tokio::test]
async fn every_form_refuses_a_missing_or_foreign_csrf_token_and_starts_nothing() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let foreign = csrf::token_for("another session");
    for (path, fields) in FORMS {
        for presented in [None, Some(""), Some("forged"), Some(foreign.as_str())] {
            let mut all = fields.to_vec();
            if let Some(p) = presented {
                all.push(("csrf", p));
            }
            let r = submit(&app, Some(&token), path, &all).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} {presented:?}");
            assert!(
                r.text().await.unwrap().contains("This form has expired"),
                "{path}"
            );
        }
        // Without a session, the CSRF token of one does not help either.
        let r = submit(
            &app,
            None,
            path,
            &with_csrf(&csrf::token_for(&token), fields),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(activities(&app, "shop").await.is_empty(), "nothing logged");
    assert!(!app.data_dir.join("locks").join("shop.lock").exists());
}

#[tokio::test]
async fn pushing_without_the_confirmation_is_refused_and_logs_nothing() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let csrf = csrf_in(&open_text(&app, &token, PUSH).await);

    let r = submit(
        &app,
        Some(&token),
        PUSH,
        &with_csrf(&csrf, &[("scope", "site"), ("keep_staging", "yes")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.unwrap();
    assert!(page.contains("Nothing was pushed"), "{page}");
    assert!(page.contains(&format!("Tick \u{201c}{CONFIRMATION}\u{201d} to push.")));
    assert!(
        page.contains("value=\"site\" required aria-describedby=\"scope-site-says\" checked"),
        "the choices are kept"
    );
    assert!(page.contains(
        "name=\"keep_staging\" value=\"yes\" aria-describedby=\"keep-staging-says\" checked"
    ));
    assert!(
        !page.contains("name=\"confirm\" value=\"yes\" required checked"),
        "the confirmation is never ticked for the person"
    );

    for fields in [
        &[("scope", "site"), ("confirm", "")][..],
        &[("confirm", "yes")][..],
        &[("scope", "everything"), ("confirm", "yes")][..],
    ] {
        let r = submit(&app, Some(&token), PUSH, &with_csrf(&csrf, fields)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
    }
    assert!(activities(&app, "shop").await.is_empty(), "nothing logged");
}

#[tokio::test]
async fn a_confirmed_push_starts_as_the_signed_in_person_and_comes_back_to_the_staging_page() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let support = app.token_for(
        "acme",
        None,
        Audience::Internal,
        ActorKind::Support,
        SUPPORT_EMAIL,
    );
    // No WordPress here to create staging with: the engine is told it was made.
    sitetrail_staging::record_made_for_tests(&app.data_dir, &SiteId::parse("shop").unwrap())
        .unwrap();
    let csrf = csrf_in(&open_text(&app, &support, PUSH).await);
    let r = submit(
        &app,
        Some(&support),
        PUSH,
        &with_csrf(&csrf, &[("scope", "files"), ("confirm", "yes")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    let id = to
        .strip_prefix("/sites/shop/staging?started=")
        .unwrap_or_else(|| panic!("{to}"))
        .to_owned();
    let internal = app.token("acme", None, Audience::Internal);
    let ended = wait_for_end(&app, &internal, &id).await;
    assert_eq!(ended["activity"], "push_staging_to_live");
    assert_eq!(ended["details"]["scope"], "files");
    assert_eq!(ended["details"]["keep_staging"], false);
    assert_eq!(ended["user"]["label"], SUPPORT_EMAIL, "support started it");
    assert_eq!(
        ended["status"], "failed",
        "there is no WordPress in these docroots: {ended}"
    );

    // The page the redirect leads to says how it went; a client sees "Support user".
    let client = app.token("acme", None, Audience::Client);
    let page = open_text(&app, &client, &to).await;
    assert!(page.contains("Push Staging to Live failed"), "{page}");
    assert!(page.contains(&format!("id=\"activity-{id}\"")));
    assert!(page.contains("<span class=\"user\">Support user</span>"));
    assert!(!page.to_lowercase().contains("sam.rivera"));
    // Another account's activity id in the address says nothing.
    let other = open_text(&app, &client, "/sites/shop/staging?started=nope").await;
    assert!(!other.contains("class=\"flash"));
}

#[tokio::test]
async fn every_form_on_another_accounts_site_is_not_found_and_logs_nothing() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    let r = app
        .put_json(
            "/api/v1/sites/portal",
            &json!({"account_id": "globex", "name": "portal",
                    "live": {"url": "https://portal.example", "docroot": root.path().join("live")},
                    "staging": {"url": "https://staging.portal.example", "docroot": root.path().join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = app.token("acme", None, Audience::Internal);
    let csrf = csrf::token_for(&token);
    for (path, fields) in FORMS {
        let theirs = path.replace("/sites/shop/", "/sites/portal/");
        let r = submit(&app, Some(&token), &theirs, &with_csrf(&csrf, fields)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{theirs}");
        assert!(r.text().await.unwrap().contains("Site not found"));
        let r = open(&app, &token, &theirs).await;
        assert!(
            matches!(
                r.status(),
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{theirs}"
        );
    }
    assert!(activities(&app, "portal").await.is_empty());
}

#[tokio::test]
async fn the_push_confirmation_names_live_and_says_orders_and_sign_ups_made_on_live_are_kept() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let staging = open_text(&app, &token, STAGING).await;
    assert!(
        staging.contains(&format!("href=\"{PUSH}\"")),
        "a way to the push"
    );

    let page = open_text(&app, &token, PUSH).await;
    assert!(page.contains(
        "This overwrites your live site, <strong class=\"url\" id=\"live-url\">https://shop.example</strong>"
    ));
    assert!(page.contains("The whole site (database and file system)"));
    assert!(page.contains("The file system only"));
    assert!(page.contains(
        "Overwrites live's <strong>database and files</strong> at https://shop.example, except"
    ));
    assert!(
        page.contains("Orders, comments and sign-ups made on live since staging was made are kept")
    );
    for scope in ["database", "tables", "folders"] {
        assert!(page.contains(&format!(
            "id=\"scope-{scope}\" name=\"scope\" value=\"{scope}\""
        )));
    }
    // Previewing needs no confirmation: its button skips the browser's checks.
    assert!(
        page.contains(
            "name=\"action\" value=\"preview\" formnovalidate>Preview the changes</button>"
        )
    );
    assert!(page.contains("Overwrites live's <strong>files</strong> at https://shop.example"));
    assert!(page.contains("a backup of live is taken"));
    assert!(page.contains("Keep the staging site after pushing"));
    assert!(
        page.contains("staging's files <strong>and its database</strong> are removed"),
        "the wording says the database goes too"
    );
    assert!(
        page.contains(
            "name=\"keep_staging\" value=\"yes\" aria-describedby=\"keep-staging-says\">"
        ),
        "preserving staging is off by default"
    );
    assert!(page.contains("name=\"confirm\" value=\"yes\" required>"));
    assert!(page.contains(&format!("<label for=\"confirm\">{CONFIRMATION}</label>")));
    assert_eq!(
        page.matches(" checked").count(),
        0,
        "nothing is chosen for the person"
    );
    assert!(!page.contains("disabled"));
}

#[tokio::test]
async fn a_site_hosted_elsewhere_shows_its_actions_disabled_and_says_why() {
    let app = spawn_app().await;
    let token = app.token("acme", None, Audience::Client);
    let staging = open_text(&app, &token, STAGING).await;
    assert!(staging.contains("These actions are not available here"));
    assert!(
        staging.contains("This site&#39;s environments are not hosted here"),
        "{staging}"
    );
    assert_eq!(
        staging
            .matches("<fieldset class=\"plain\" disabled>")
            .count(),
        1,
        "create staging (no templates or backups: no other forms)"
    );
    assert!(
        staging.contains(
            "<span class=\"button disabled\" aria-disabled=\"true\">Push staging to live"
        )
    );
    assert!(!staging.contains(&format!("href=\"{PUSH}\"")));
    let push = open_text(&app, &token, PUSH).await;
    assert!(push.contains("<fieldset class=\"plain\" disabled>"));
    let backups = open_text(&app, &token, BACKUPS).await;
    assert!(
        backups.contains("<button type=\"submit\" class=\"button\" disabled>Back up live</button>")
    );
    assert!(
        backups
            .contains("<button type=\"submit\" class=\"button\" disabled>Back up staging</button>")
    );

    // A form sent anyway (an old page, a site that moved) gets the same words, and nothing
    // is logged.
    let csrf = csrf_in(&staging);
    for (path, fields) in FORMS {
        let r = submit(&app, Some(&token), path, &with_csrf(&csrf, fields)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("environments are not hosted here, so nothing was started."),
            "{path}: {body}"
        );
        assert!(body.contains("did not start"), "{path}");
    }
    assert!(activities(&app, "shop").await.is_empty());
}

#[tokio::test]
async fn an_operation_refused_because_another_one_runs_is_logged_and_the_page_says_why() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    // Another operation (another process) holds the site.
    let held = sitetrail_staging::lock::try_lock(
        &app.data_dir,
        &SiteId::parse("shop").unwrap(),
        &ActivityId::parse("someone-else").unwrap(),
    )
    .unwrap()
    .expect("the lock is free");
    let csrf = csrf_in(&open_text(&app, &token, BACKUPS).await);
    let r = submit(
        &app,
        Some(&token),
        BACKUPS,
        &with_csrf(&csrf, &[("environment", "live")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = r.text().await.unwrap();
    assert!(page.contains("Create Backup did not start"), "{page}");
    assert!(page.contains("Another operation is running on this site"));
    assert!(page.contains("role=\"alert\""));
    drop(held);
    let log = activities(&app, "shop").await;
    assert_eq!(log.len(), 1, "the refusal is logged");
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["user"]["label"], OWNER_EMAIL);
}

/// The one-time token the page's action forms carry.
fn once_in(page: &str) -> String {
    page.split("name=\"once\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's action forms carry a one-time token")
        .to_owned()
}

#[tokio::test]
async fn a_form_sent_twice_starts_one_operation_and_both_answers_show_it() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let token = app.token("acme", None, Audience::Client);
    let page = open_text(&app, &token, BACKUPS).await;
    let (csrf, once) = (csrf_in(&page), once_in(&page));
    let fields = [
        ("csrf", csrf.as_str()),
        ("once", once.as_str()),
        ("environment", "live"),
    ];
    // A double click: both sent before either is answered.
    let (first, second) = tokio::join!(
        submit(&app, Some(&token), BACKUPS, &fields),
        submit(&app, Some(&token), BACKUPS, &fields)
    );
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&first),
        location(&second),
        "the repeat shows the first"
    );
    // And once more after the first has ended.
    let log = activities(&app, "shop").await;
    assert_eq!(log.len(), 1, "one activity: {log:?}");
    wait_for_end(&app, &token, log[0]["id"].as_str().unwrap()).await;
    let third = submit(&app, Some(&token), BACKUPS, &fields).await;
    assert_eq!(location(&third), location(&first));
    assert_eq!(activities(&app, "shop").await.len(), 1);

    // The next page's form is a new one.
    let page = open_text(&app, &token, BACKUPS).await;
    let fresh = once_in(&page);
    assert_ne!(fresh, once);
    let fields = [
        ("csrf", csrf.as_str()),
        ("once", fresh.as_str()),
        ("environment", "live"),
    ];
    let r = submit(&app, Some(&token), BACKUPS, &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_ne!(location(&r), location(&first));
    assert_eq!(activities(&app, "shop").await.len(), 2);
}

#[tokio::test]
async fn templates_and_backups_to_reset_from_say_how_to_get_them_when_there_are_none() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    host_shop_at(&app, root.path()).await;
    let client = open_text(&app, &app.token("acme", None, Audience::Client), STAGING).await;
    assert!(client.contains("No templates are available yet."));
    assert!(client.contains("Your hosting provider adds site templates"));
    assert!(client.contains("This site has no backups yet."));
    assert!(client.contains("href=\"/sites/shop/backups\">Backups page</a>"));
    assert!(client.contains("discarded; a backup of it is taken first"));
    let internal = open_text(&app, &app.token("acme", None, Audience::Internal), STAGING).await;
    assert!(
        internal
            .contains("<code>sitetrail templates import --name N --docroot DIR --url URL</code>")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staging_created_and_live_backed_up_from_the_dashboard_complete_in_the_log() {
    if !wordpress::services(&[wordpress::Service::MariaDb, wordpress::Service::WordPress]) {
        return;
    }
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut live = WpSite::install(
        dir.path(),
        "live",
        wordpress::free_port(4),
        "wp_",
        "Acme Shop",
    )
    .unwrap();
    live.serve().unwrap();
    let staging_url = format!("http://127.0.0.1:{}", wordpress::free_port(5));
    let r = app
        .put_json(
            "/api/v1/sites/shop",
            &json!({"account_id": "acme", "name": "Shop",
                    "live": {"url": live.url, "docroot": live.docroot},
                    "staging": {"url": staging_url, "docroot": dir.path().join("staging")}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let _cleanup = DropStagingDatabase(dir.path().join("staging"));
    let token = app.token("acme", None, Audience::Client);

    // Create staging through the Staging page's form.
    let page = open_text(&app, &token, STAGING).await;
    assert!(!page.contains("not hosted here"));
    assert!(page.contains("action=\"/sites/shop/staging/create\""));
    let r = submit(
        &app,
        Some(&token),
        "/sites/shop/staging/create",
        &[("csrf", &csrf_in(&page))],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    let id = to
        .strip_prefix("/sites/shop/staging?started=")
        .unwrap()
        .to_owned();
    let shown = open_text(&app, &token, &to).await;
    let row = shown
        .split(&format!("<tr id=\"activity-{id}\""))
        .nth(1)
        .expect("the new activity is listed");
    assert!(row.contains("Create Staging Environment"));
    if row.contains("data-status=\"in_progress\"") {
        assert!(shown.contains("Create Staging Environment started"));
        assert!(row.contains("<span class=\"badge-label\">In progress</span>"));
        assert!(
            shown.contains("id=\"running-hint\" class=\"running-hint\">"),
            "running shows as running"
        );
    }
    let ended = wait_for_end(&app, &token, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["user"]["label"], OWNER_EMAIL);
    let shown = open_text(&app, &token, &to).await;
    assert!(shown.contains("Create Staging Environment completed"));
    assert!(shown.contains("Created environment for staging from live"));
    assert!(shown.contains("id=\"running-hint\" class=\"running-hint\" hidden>"));

    // Back up live through the Backups page's form; the backup is then listed, and offered
    // to reset staging from.
    let page = open_text(&app, &token, BACKUPS).await;
    let r = submit(
        &app,
        Some(&token),
        BACKUPS,
        &[("csrf", &csrf_in(&page)), ("environment", "live")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    let id = to
        .strip_prefix("/sites/shop/backups?started=")
        .unwrap()
        .to_owned();
    let ended = wait_for_end(&app, &token, &id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let backup = ended["details"]["backup"].as_str().unwrap().to_owned();
    let page = open_text(&app, &token, &to).await;
    let row = page
        .split(&format!("<tr id=\"backup-{backup}\">"))
        .nth(1)
        .expect("the backup is listed");
    let row = row.split("</tr>").next().unwrap();
    assert!(
        row.contains("<td data-label=\"Environment\">Live</td>"),
        "{row}"
    );
    assert!(row.contains("<td data-label=\"Kind\">Manual</td>"));
    assert!(row.contains(" tables, "));
    assert!(page.contains("Create Backup completed"));
    let staging = open_text(&app, &token, STAGING).await;
    assert!(staging.contains(&format!("<option value=\"{backup}\" data-datetime=")));

    live.stop();
}

/// Drops the database the engine made for staging, however the test ends.
struct DropStagingDatabase(std::path::PathBuf);

impl Drop for DropStagingDatabase {
    fn drop(&mut self) {
        if let Ok(config) = sitetrail_staging::wpconfig::read(&self.0) {
            let _ = mysql(&format!("DROP DATABASE IF EXISTS `{}`", config.name));
        }
    }
}
