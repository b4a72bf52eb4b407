//! Advanced Tools: a page of cards; "Activity Logs" opens the log.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;

use crate::AppState;
use crate::pages::shell::{Section, Shell, SitePage};
use crate::pages::{PageError, Session, access_log, activity_logs};

pub fn router() -> Router<AppState> {
    Router::new().route("/sites/{site}/advanced-tools", get(advanced_tools))
}

#[derive(Debug)]
pub struct Card {
    pub href: String,
    pub title: &'static str,
    pub text: &'static str,
    pub download: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "advanced_tools.html")]
struct AdvancedToolsPage {
    shell: Shell,
    cards: Vec<Card>,
}

async fn advanced_tools(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> Result<AdvancedToolsPage, PageError> {
    let page = SitePage::load(
        &state,
        &session,
        &site,
        Section::AdvancedTools,
        "",
        "Advanced Tools",
    )
    .await?;
    let id = page.site.id.as_str();
    let mut cards = vec![
        Card {
            href: activity_logs::path(id),
            title: "Activity Logs",
            text: "Every staging and backup operation on this site: who started it, \
                       when, and how it ended.",
            download: false,
        },
        Card {
            href: format!("/api/v1/sites/{id}/activities/export?format=csv"),
            title: "Download the log",
            text: "The whole activity log of this site as a CSV file, for a \
                       spreadsheet or your records.",
            download: true,
        },
    ];
    if session.viewer.audience == sitetrail_core::Audience::Internal {
        cards.push(Card {
            href: access_log::path(id),
            title: "Access Log",
            text: "Who read or exported this site's log, and when. Only your team sees it.",
            download: false,
        });
    }
    Ok(AdvancedToolsPage {
        cards,
        shell: page.shell,
    })
}
