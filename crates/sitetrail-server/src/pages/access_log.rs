//! Advanced Tools → Access Log: who looked at this site's log, newest first. Internal
//! viewers only: to a client the page does not exist, and its card is not shown.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use sitetrail_core::{ActivityKind, Audience, Service, Status};

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
    /// The filters of the look, each as a person reads it ("Status: Failed").
    filters: Vec<String>,
}

/// A look's query as readable pills: one per filter, none when there were none.
fn pills(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(name, value)| {
            let word = |label: Option<&'static str>| label.map_or(value.to_string(), str::to_owned);
            let (label, shown) = match &*name {
                "activity" => (
                    "Activity",
                    word(ActivityKind::parse(&value).ok().map(|a| a.label())),
                ),
                "status" => (
                    "Status",
                    word(Status::parse(&value).ok().map(|s| s.label())),
                ),
                "service" => (
                    "Service",
                    word(Service::parse(&value).ok().map(|s| s.label())),
                ),
                "format" => ("Format", value.to_uppercase()),
                "user" => ("User", value.to_string()),
                "from" => ("From", value.to_string()),
                "to" => ("To", value.to_string()),
                "q" => ("Search", format!("\u{201c}{value}\u{201d}")),
                // Where the reader was, not what they read (older looks may carry them).
                "after" | "cursor" | "limit" | "tz" | "bom" => return None,
                _ => return Some(format!("{name}: {value}")),
            };
            Some(format!("{label}: {shown}"))
        })
        .collect()
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
            filters: pills(&l.query),
        })
        .collect();
    Ok(AccessLogPage {
        rows,
        older,
        shell: page.shell,
    })
}

#[cfg(test)]
mod tests {
    use super::pills;

    #[test]
    fn filters_read_as_pills_and_no_filter_is_no_pill() {
        assert_eq!(
            pills("status=failed&activity=push_staging_to_live&q=wp+config&cursor=x"),
            [
                "Status: Failed",
                "Activity: Push Staging to Live",
                "Search: \u{201c}wp config\u{201d}"
            ]
        );
        assert_eq!(
            pills("format=csv&service=backups"),
            ["Format: CSV", "Service: Backups"]
        );
        assert!(pills("").is_empty());
        assert!(pills("after=688").is_empty());
        assert!(pills("status=").is_empty());
        assert_eq!(pills("status=odd"), ["Status: odd"]);
    }
}
