//! A site's own pages: Overview (its environments and latest activity), Staging and Backups
//! (their environments and recent operations; the actions come with the staging engine).

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use sitetrail_core::RawQuery;

use crate::AppState;
use crate::api::page_for;
use crate::pages::activity_logs::{self, Row};
use crate::pages::shell::{Section, Shell, SitePage};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{site}", get(overview))
        .route("/sites/{site}/staging", get(staging))
        .route("/sites/{site}/backups", get(backups))
}

/// A short table of recent activity with a link to the whole log.
#[derive(Debug)]
pub struct Recent {
    pub caption: String,
    pub rows: Vec<Row>,
    pub more_href: String,
    pub more_label: &'static str,
    pub empty: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "site.html")]
struct SiteSectionPage {
    shell: Shell,
    heading: &'static str,
    intro: &'static str,
    recent: Recent,
}

async fn section(
    state: AppState,
    session: Session,
    site: String,
    section: Section,
) -> Result<SiteSectionPage, PageError> {
    let (heading, intro, filter, caption, empty) = match section {
        Section::Staging => (
            "Staging",
            "Staging is a private copy of your site to try changes on before they go live.",
            RawQuery {
                service: Some("staging".into()),
                ..RawQuery::default()
            },
            "Recent staging activity",
            "No staging activity yet.",
        ),
        Section::Backups => (
            "Backups",
            "Live is backed up every night, and before every operation that replaces it.",
            RawQuery {
                activity: Some("create_backup".into()),
                ..RawQuery::default()
            },
            "Recent backups",
            "No backups yet.",
        ),
        _ => (
            "Overview",
            "Your site's environments and what happened to them lately.",
            RawQuery::default(),
            "Latest activity",
            "No activity on this site yet.",
        ),
    };
    let page = SitePage::load(&state, &session, &site, section, "", heading).await?;
    let mut query = filter.clone();
    query.limit = Some("5".into());
    let listing = page_for(&state, session.viewer.audience, &page.scope, &query).await?;
    let log = activity_logs::path(page.site.id.as_str());
    let more_href = match (&filter.service, &filter.activity) {
        (Some(service), _) => format!("{log}?service={service}"),
        (_, Some(activity)) => format!("{log}?activity={activity}"),
        _ => log,
    };
    Ok(SiteSectionPage {
        heading,
        intro,
        recent: Recent {
            caption: caption.to_owned(),
            rows: listing.items.iter().map(Row::of).collect(),
            more_href,
            more_label: "Open the Activity Logs",
            empty,
        },
        shell: page.shell,
    })
}

async fn overview(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> Result<SiteSectionPage, PageError> {
    section(state, session, site, Section::Overview).await
}

async fn staging(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> Result<SiteSectionPage, PageError> {
    section(state, session, site, Section::Staging).await
}

async fn backups(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> Result<SiteSectionPage, PageError> {
    section(state, session, site, Section::Backups).await
}
