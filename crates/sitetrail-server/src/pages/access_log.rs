//! Advanced Tools → Access Log: who looked at this site's log, newest first. Internal
//! viewers only: to a client the page does not exist, and its card is not shown.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use sitetrail_core::Audience;

use crate::AppState;
use crate::pages::shell::{Section, Shell, SitePage};
use crate::pages::time::TimeCell;
use crate::pages::{PageError, Session};

const PAGE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/sites/{site}/advanced-tools/access-log", get(access_log))
}

pub fn path(site: &str) -> String {
    format!("/sites/{site}/advanced-tools/access-log")
}

#[derive(Deserialize)]
struct AccessQuery {
    before: Option<i64>,
}

struct LookRow {
    at: TimeCell,
    who: String,
    audience: &'static str,
    what: &'static str,
    filters: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "access_log.html")]
struct AccessLogPage {
    shell: Shell,
    rows: Vec<LookRow>,
    older: Option<String>,
}

async fn access_log(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    Query(q): Query<AccessQuery>,
) -> Result<AccessLogPage, PageError> {
    if session.viewer.audience != Audience::Internal {
        return Err(PageError::site_not_found());
    }
    let page = SitePage::load(
        &state,
        &session,
        &site,
        Section::AdvancedTools,
        "/access-log",
        "Access Log",
    )
    .await?;
    let looks = state
        .store
        .accesses(&page.scope.account, Some(&page.site.id), q.before, PAGE)
        .await
        .map_err(crate::error::ApiError::from)?;
    let older = (looks.len() == PAGE as usize)
        .then(|| {
            looks
                .last()
                .map(|l| format!("{}?before={}", path(page.site.id.as_str()), l.seq))
        })
        .flatten();
    let rows = looks
        .into_iter()
        .map(|l| LookRow {
            at: TimeCell::of(l.at),
            who: match (&l.actor.email, &l.actor.name) {
                (Some(e), Some(n)) => format!("{n} <{}>", e.expose()),
                (Some(e), None) => e.expose().to_owned(),
                _ => "System".to_owned(),
            },
            audience: match l.audience {
                Audience::Internal => "Internal",
                Audience::Client => "Client",
            },
            what: match l.action {
                sitetrail_store::AccessAction::List => "Read the log",
                sitetrail_store::AccessAction::Get => "Read one activity",
                sitetrail_store::AccessAction::Export => "Exported the log",
                sitetrail_store::AccessAction::Stream => "Watched live updates",
            },
            filters: l.query,
        })
        .collect();
    Ok(AccessLogPage {
        rows,
        older,
        shell: page.shell,
    })
}
