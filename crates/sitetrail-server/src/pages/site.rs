//! A site's Overview (its environments and latest activity), and the short table of recent
//! activity that the Overview, Staging and Backups pages share: rows through the API's
//! `page_for`, a running one shown as running, and live updates when the script runs.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use sitetrail_core::{RawQuery, Service, Status};

use crate::AppState;
use crate::api::page_for;
use crate::pages::activity_logs::{self, Row};
use crate::pages::shell::{Section, Shell, SitePage, site_path};
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new().route("/sites/{site}", get(overview))
}

/// How many of the site's running operations a page learns of (one at a time runs; more are
/// left over from a publisher's own records).
const RUNNING_SHOWN: usize = 5;

/// Which activities a recent table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecentOf {
    All,
    Staging,
    Backups,
}

/// A short table of recent activity with a link to the whole log.
#[derive(Debug)]
pub struct Recent {
    pub caption: &'static str,
    pub rows: Vec<Row>,
    pub more_href: String,
    pub more_label: &'static str,
    pub empty: &'static str,
    /// The site's live stream, and the filters the script applies to what it brings.
    pub stream_url: String,
    pub filter_service: &'static str,
    pub filter_activity: &'static str,
    pub has_older: bool,
    pub limit: usize,
    /// Whether an operation runs on the site (one of the rows, or one the engine runs now).
    pub running: bool,
    /// The site's running operations (ids as this viewer sees them, space-separated).
    pub running_ids: String,
    /// This page again, for browsers without the script.
    pub refresh_href: String,
}

impl Recent {
    pub async fn load(
        state: &AppState,
        session: &Session,
        page: &SitePage,
        of: RecentOf,
        limit: usize,
    ) -> Result<Recent, PageError> {
        let site = page.site.id.as_str();
        let (service, activity, caption, empty, section) = match of {
            RecentOf::All => (
                "",
                "",
                "Latest activity",
                "No activity on this site yet.",
                Section::Overview,
            ),
            RecentOf::Staging => (
                "staging",
                "",
                "Recent staging activity",
                "No staging activity yet.",
                Section::Staging,
            ),
            RecentOf::Backups => (
                "",
                "create_backup",
                "Recent backup activity",
                "No backup activity yet.",
                Section::Backups,
            ),
        };
        let query = RawQuery {
            service: (!service.is_empty()).then(|| service.to_owned()),
            activity: (!activity.is_empty()).then(|| activity.to_owned()),
            limit: Some(limit.to_string()),
            ..RawQuery::default()
        };
        // Read before the rows: what commits after it reaches the page by its stream.
        let head = state.tokens.opaque().event_id(state.feed.head());
        let listing = page_for(state, session.viewer.audience, &page.scope, &query).await?;
        let rows: Vec<Row> = listing.items.iter().map(Row::of).collect();
        // What runs on the site, whatever this table lists: every operation is logged
        // in progress until it ends.
        let running_query = RawQuery {
            status: Some("in_progress".to_owned()),
            limit: Some(RUNNING_SHOWN.to_string()),
            ..RawQuery::default()
        };
        let running_ids: Vec<String> =
            page_for(state, session.viewer.audience, &page.scope, &running_query)
                .await?
                .items
                .iter()
                .filter(|a| matches!(a.service, Service::Staging | Service::Backups))
                .map(|a| a.id.as_str().to_owned())
                .collect();
        let log = activity_logs::path(site);
        let more_href = match (service, activity) {
            ("", "") => log,
            ("", a) => format!("{log}?activity={a}"),
            (s, _) => format!("{log}?service={s}"),
        };
        Ok(Recent {
            caption,
            running: !running_ids.is_empty()
                || listing.items.iter().any(|a| a.status == Status::InProgress),
            running_ids: running_ids.join(" "),
            rows,
            more_href,
            more_label: "Open the Activity Logs",
            empty,
            stream_url: format!("/api/v1/sites/{site}/activities/stream?after={head}"),
            filter_service: service,
            filter_activity: activity,
            has_older: listing.next_cursor.is_some(),
            limit,
            refresh_href: site_path(site, section),
        })
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "site.html")]
struct OverviewPage {
    shell: Shell,
    recent: Recent,
    undo: Option<crate::pages::undo::UndoOffer>,
}

async fn overview(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> Result<OverviewPage, PageError> {
    let page = SitePage::load(&state, &session, &site, Section::Overview, "", "Overview").await?;
    let recent = Recent::load(&state, &session, &page, RecentOf::All, 5).await?;
    Ok(OverviewPage {
        recent,
        undo: crate::pages::undo::UndoOffer::of(&state, &page.site).await,
        shell: page.shell,
    })
}
