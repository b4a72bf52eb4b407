//! The demo's history against its pages (#20 item 7): every backup, template and staging
//! the log claims is in the engine's listings, and no failed row reads as a success.

use sitetrail_core::{AccountId, ActivityKind, Audience, Page, SiteId, Status, StoredActivity};
use sitetrail_staging::wordpress::{self, Service};
use sitetrail_staging::{DatabasePolicy, Engine};
use sitetrail_store::{DynStore, Scope};

use crate::commands::{link_token, start_demo, wait_for_end};
use crate::support::{get_json, has_demo};

/// Every activity of an account, oldest first.
async fn history(store: &DynStore, account: &str) -> Vec<StoredActivity> {
    let scope = Scope {
        account: AccountId::parse(account).unwrap(),
        site: None,
    };
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = Page { limit: 200, cursor };
        let listing = store
            .list(&scope, Audience::Internal, &Default::default(), page)
            .await
            .unwrap();
        all.extend(listing.items);
        match listing.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    all.reverse();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_history_claims_only_what_its_pages_show() {
    if !has_demo() || !wordpress::services(&[Service::WordPress, Service::WordPressSqlite]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (demo, lines) = start_demo(dir.path());
    let base = lines[0].trim_start_matches("sitetrail demo on ").to_owned();
    let client = link_token(&lines, "client owner");
    let http = reqwest::Client::new();
    // The daily backup the demo starts ends before its claims are checked.
    let newest = get_json(
        &http,
        &format!("{base}/api/v1/sites/acme-shop/activities?limit=1"),
        &client,
    )
    .await;
    let daily = newest["items"][0]["id"].as_str().unwrap().to_owned();
    let ended = wait_for_end(&http, &base, &client, &daily).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    drop(demo);

    let data = dir.path();
    let store: DynStore = std::sync::Arc::new(
        sitetrail_store_sqlite::SqliteStore::open(&data.join("sitetrail.db"))
            .await
            .unwrap(),
    );
    let engine = Engine::new(store.clone(), data, DatabasePolicy::default());
    let templates: Vec<String> = engine
        .snapshots()
        .templates()
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert!(
        templates.iter().any(|t| t == "bakery-classic"),
        "the template the history names is in the picker: {templates:?}"
    );
    let mut checked = (0, 0, 0);
    for account in ["acme-bakery", "northwind-dental"] {
        let rows = history(&store, account).await;
        assert!(rows.len() > 20, "{account} has months of history");
        let mut sites: Vec<SiteId> = Vec::new();
        for r in &rows {
            if !sites.contains(&r.site_id) {
                sites.push(r.site_id.clone());
            }
        }
        for row in &rows {
            assert_ne!(row.status, Status::InProgress, "{}", row.description);
            if row.status == Status::Failed {
                assert!(
                    !row.description.starts_with("Successfully")
                        && !row.description.starts_with("Created")
                        && !row.description.starts_with("Reset staging")
                        && !row.description.starts_with("Daily backup of live"),
                    "a failed row reads as a success: {}",
                    row.description
                );
                continue;
            }
            let named = |key: &str| row.details.get(key).and_then(|v| v.as_str());
            match row.activity {
                ActivityKind::CreateBackup => {
                    let backups = engine.snapshots().backups(&row.site_id).unwrap();
                    let id = named("backup").expect("a completed backup names its backup");
                    assert!(
                        backups.iter().any(|b| b.id == id),
                        "{}: the backup {id} is on the Backups page",
                        row.site_id
                    );
                    checked.0 += 1;
                }
                ActivityKind::ResetStagingFromTemplate => {
                    let id = named("template").unwrap();
                    assert!(templates.iter().any(|t| t == id), "{id} is a template");
                    checked.1 += 1;
                }
                ActivityKind::ResetStagingFromBackup => {
                    let id = named("backup").unwrap();
                    let backups = engine.snapshots().backups(&row.site_id).unwrap();
                    assert!(backups.iter().any(|b| b.id == id), "{id} is a backup");
                }
                _ => {}
            }
        }
        // Staging is there exactly when the last completed step that made or removed it
        // made it.
        for site in sites {
            let last = rows.iter().rev().find(|r| {
                r.site_id == site
                    && r.status == Status::Completed
                    && matches!(
                        r.activity,
                        ActivityKind::CreateStaging
                            | ActivityKind::ResetStagingFromTemplate
                            | ActivityKind::ResetStagingFromBackup
                            | ActivityKind::PushStagingToLive
                    )
            });
            let claimed = match last {
                None => false,
                Some(r) if r.activity == ActivityKind::PushStagingToLive => {
                    r.details.get("keep_staging") == Some(&serde_json::json!(true))
                }
                Some(_) => true,
            };
            let state = engine.staging_state(&site).await.unwrap();
            assert_eq!(
                state.exists, claimed,
                "{site}: staging exists as the log says"
            );
            checked.2 += 1;
        }
    }
    assert!(checked.0 >= 1, "the daily backup was checked");
    assert!(checked.1 >= 1, "a template reset was checked");
    assert_eq!(checked.2, 3, "each site's staging was checked");
}
