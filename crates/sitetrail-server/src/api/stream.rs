//! `GET /api/v1/sites/{site}/activities/stream`: server-sent events `activity.created` and
//! `activity.ended`, each carrying the activity as this viewer may see it. The event id is
//! the change number; `Last-Event-ID` resumes after it, and so does `?after=` (what a page
//! rendered at that change number opens the stream with).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use sitetrail_core::{Audience, SiteId, view};
use sitetrail_store::{Change, ChangeKind};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::api::site_scope;
use crate::auth::ViewerAuth;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiQuery;

const BACKLOG_PAGE: u32 = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/sites/{site}/activities/stream", get(stream))
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/activities/stream", tag = "viewers",
    params(("site" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
        ("after" = Option<i64>, Query, description = "Resume after this change number when no Last-Event-ID is sent")),
    responses((status = 200, content_type = "text/event-stream",
            description = "Events activity.created and activity.ended; data is the activity"),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "Too many live streams open at once")),
    security(("viewer_token" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(site): Path<String>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let scope = site_scope(&state, &viewer, &site).await?;
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::Malformed("Last-Event-ID: not an event id".into()))?,
        ),
    };
    if query.after.is_some_and(|n| n < 0) {
        return Err(ApiError::Malformed("after: not a change number".into()));
    }
    // A browser reconnecting sends Last-Event-ID, which is newer than the page's `after`.
    // Without a resume point, the stream starts from the feed's head as this request is
    // answered, not when the body is first read: what commits in between is replayed.
    let last = last.or(query.after).unwrap_or_else(|| state.feed.head());
    let site = scope.site.expect("a site scope names its site");
    let slot = state.limits.stream(&viewer)?;
    // The stream holds its slot until the client goes.
    let events = site_events(state, site, viewer.audience, last).inspect(move |_| {
        let _ = &slot;
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    after: Option<i64>,
}

fn event(change: &Change, audience: Audience) -> Event {
    let name = match change.kind {
        ChangeKind::Created => "activity.created",
        ChangeKind::Ended => "activity.ended",
    };
    let data =
        serde_json::to_string(&view(&change.activity, audience)).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(change.change_no.to_string())
        .event(name)
        .data(data)
}

/// Subscribes first, then replays from the store what came after the resume point, then
/// follows the feed, skipping what was already sent.
pub fn site_events(
    state: AppState,
    site: SiteId,
    audience: Audience,
    resume_after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        metrics::gauge!("sitetrail_live_streams_open").increment(1.0);
        let _open = OpenStream;
        let mut rx = state.feed.subscribe();
        let mut last = resume_after;
        // Always from the store first: the feed passes over changes while nobody follows it,
        // and one may commit between that and this subscription.
        let mut catch_up = true;
        loop {
            if catch_up {
                loop {
                    let missed = match state.store.changes_after(last, Some(&site), BACKLOG_PAGE).await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = ?e, "replaying missed changes failed");
                            Vec::new()
                        }
                    };
                    let n = missed.len();
                    for c in &missed {
                        last = c.change_no;
                        yield Ok(event(c, audience));
                    }
                    if n < BACKLOG_PAGE as usize {
                        break;
                    }
                }
                catch_up = false;
            }
            match rx.recv().await {
                Ok(c) => {
                    if c.change_no > last && c.activity.site_id == site {
                        last = c.change_no;
                        yield Ok(event(&c, audience));
                    }
                }
                Err(RecvError::Lagged(_)) => catch_up = true,
                Err(RecvError::Closed) => break,
            }
        }
    }
}

struct OpenStream;

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("sitetrail_live_streams_open").decrement(1.0);
    }
}
