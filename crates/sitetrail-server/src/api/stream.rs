//! `GET /api/v1/sites/{site}/activities/stream`: server-sent events `activity.created` and
//! `activity.ended`, each carrying the activity as this viewer may see it, and
//! `activity.progress` `{id, phase, done, total}` while an operation of this site runs in
//! this process (at most [`PROGRESS_PER_SECOND`] per operation; no actor in it, no event id:
//! progress is not replayed on resume, the next one says where the operation is). The event id is
//! the change number sealed ([`crate::opaque`]): it tells no client how much other tenants
//! wrote. `Last-Event-ID` resumes after it, and so does `?after=` (what a page rendered at
//! that point opens the stream with); `0` replays from the start. The stream ends when the
//! token that opened it expires.

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
use sitetrail_core::{SiteId, Timestamp};
use sitetrail_store::{Change, ChangeKind};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::api::site_scope;
use crate::auth::{self, ViewerAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiQuery;
use crate::lens::Lens;
use crate::opaque::Opaque;

const BACKLOG_PAGE: u32 = 500;
/// The most progress events a stream sends per second about one operation.
pub const PROGRESS_PER_SECOND: u32 = 4;
/// How often a stream looks whether an operation started on its site.
const RUNNING_CHECK: Duration = Duration::from_millis(500);
/// How often a live stream reads its roster again.
const ROSTER_REFRESH: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/sites/{site}/activities/stream", get(stream))
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/activities/stream", tag = "viewers",
    params(("site" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
        ("after" = Option<String>, Query, description = "Resume after this event id (or `0`: from the start) when no Last-Event-ID is sent")),
    responses((status = 200, content_type = "text/event-stream",
            description = "Events activity.created and activity.ended (data: the activity), and activity.progress while an operation runs (data: `{id, phase, done, total}`, at most 4 a second per operation, no event id)"),
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
    let opaque = state.tokens.opaque();
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| resume_point(opaque, s))
                .ok_or_else(|| ApiError::Malformed("Last-Event-ID: not an event id".into()))?,
        ),
    };
    let after = match query.after.as_deref() {
        None => None,
        Some(s) => Some(
            resume_point(opaque, s)
                .ok_or_else(|| ApiError::Malformed("after: not an event id".into()))?,
        ),
    };
    // The token was verified by `ViewerAuth`; its expiry ends the stream.
    let expires = auth::presented_token(&headers)
        .and_then(auth::expiry)
        .ok_or(ApiError::Unauthorized("sign in with a viewer token"))?;
    // A browser reconnecting sends Last-Event-ID, which is newer than the page's `after`.
    // Without a resume point, the stream starts from the feed's head as this request is
    // answered, not when the body is first read: what commits in between is replayed.
    let last = last.or(after).unwrap_or_else(|| state.feed.head());
    let site = scope.site.expect("a site scope names its site");
    let slot = state.limits.stream(&viewer)?;
    let lens = Lens::of(&state, viewer.audience, &viewer.account).await?;
    // The stream holds its slot until the client goes.
    let events = site_events(state, site, lens, last, until(expires)).inspect(move |_| {
        let _ = &slot;
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// An event id, or `0` for the start of the log.
fn resume_point(opaque: &Opaque, s: &str) -> Option<i64> {
    match s.trim() {
        "0" => Some(0),
        s => opaque.open_event_id(s),
    }
}

/// The moment on the runtime's clock when a token expiring at `exp` (seconds since the epoch)
/// stops being valid.
fn until(exp: u64) -> tokio::time::Instant {
    let now_ms = Timestamp::now().millis();
    let left_ms = (exp as i64)
        .saturating_mul(1000)
        .saturating_sub(now_ms)
        .max(0);
    tokio::time::Instant::now() + Duration::from_millis(left_ms as u64)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    after: Option<String>,
}

/// An `activity.progress` event's data: how far a running operation has come.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProgressEvent {
    /// The activity, as this viewer sees its id.
    pub id: String,
    /// What it does now, in words ("copying the files").
    pub phase: String,
    pub done: u64,
    /// 0 when the total is not known (yet).
    pub total: u64,
}

/// The operation running on a stream's site that the stream follows.
struct Following {
    activity: sitetrail_core::ActivityId,
    /// The activity's id as this viewer sees it.
    id: String,
    progress: tokio::sync::watch::Receiver<sitetrail_staging::Progress>,
    /// When the next progress event may go.
    next: tokio::time::Instant,
}

/// The operation running on `site` in this process, with its id as `lens`'s viewer sees it.
pub async fn running_as_seen(
    state: &AppState,
    site: &SiteId,
    lens: &Lens,
) -> Option<(sitetrail_staging::Running, String)> {
    let running = state.engine.running(site)?;
    let stored = state.store.activity(&running.activity).await.ok()??;
    if &stored.site_id != site {
        return None;
    }
    let id = lens.view(&stored).id.as_str().to_owned();
    Some((running, id))
}

async fn follow(state: &AppState, site: &SiteId, lens: &Lens) -> Option<Following> {
    let (running, id) = running_as_seen(state, site, lens).await?;
    Some(Following {
        activity: running.activity,
        id,
        progress: running.progress,
        next: tokio::time::Instant::now(),
    })
}

fn progress_event(id: &str, p: &sitetrail_staging::Progress) -> Event {
    let data = ProgressEvent {
        id: id.to_owned(),
        phase: p.phase.clone(),
        done: p.done,
        total: p.total,
    };
    Event::default()
        .event("activity.progress")
        .data(serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()))
}

/// Waits for the followed operation's next progress, no sooner than its rate allows; `None`
/// when the operation has ended. Never resolves when nothing is followed.
async fn next_progress(following: &mut Option<Following>) -> Option<Event> {
    let Some(f) = following.as_mut() else {
        return std::future::pending().await;
    };
    f.progress.changed().await.ok()?;
    tokio::time::sleep_until(f.next).await;
    f.next = tokio::time::Instant::now() + Duration::from_secs(1) / PROGRESS_PER_SECOND;
    let p = f.progress.borrow_and_update().clone();
    Some(progress_event(&f.id, &p))
}

fn event(change: &Change, lens: &Lens, opaque: &Opaque) -> Event {
    let name = match change.kind {
        ChangeKind::Created => "activity.created",
        ChangeKind::Ended => "activity.ended",
    };
    let data = serde_json::to_string(&lens.view(&change.activity)).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(opaque.event_id(change.change_no))
        .event(name)
        .data(data)
}

/// Subscribes first, then replays from the store what came after the resume point, then
/// follows the feed, skipping what was already sent; ends at `until` (the token's expiry).
pub fn site_events(
    state: AppState,
    site: SiteId,
    mut lens: Lens,
    resume_after: i64,
    until: tokio::time::Instant,
) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        metrics::gauge!("sitetrail_live_streams_open").increment(1.0);
        let _open = OpenStream;
        let opaque = state.tokens.opaque().clone();
        let mut rx = state.feed.subscribe();
        let mut last = resume_after;
        let mut refresh = tokio::time::interval_at(
            tokio::time::Instant::now() + ROSTER_REFRESH,
            ROSTER_REFRESH,
        );
        let mut look_for_running = tokio::time::interval(RUNNING_CHECK);
        look_for_running.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut following: Option<Following> = None;
        // Always from the store first: the feed passes over changes while nobody follows it,
        // and one may commit between that and this subscription.
        let mut catch_up = true;
        loop {
            if catch_up {
                loop {
                    if tokio::time::Instant::now() >= until {
                        return;
                    }
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
                        lens.learn(&c.activity);
                        yield Ok(event(c, &lens, &opaque));
                    }
                    if n < BACKLOG_PAGE as usize {
                        break;
                    }
                }
                catch_up = false;
            }
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = tokio::time::sleep_until(until) => return,
                _ = refresh.tick() => {
                    if let Err(e) = lens.refresh(&state).await {
                        tracing::warn!(error = ?e, "reading a roster again failed");
                    }
                    continue;
                }
                _ = look_for_running.tick() => {
                    if following.is_none() {
                        following = follow(&state, &site, &lens).await;
                        if let Some(f) = &mut following {
                            // Where it is now, at once.
                            f.progress.mark_changed();
                        }
                    }
                    continue;
                }
                progress = next_progress(&mut following) => {
                    match progress {
                        Some(e) => yield Ok(e),
                        None => following = None,
                    }
                    continue;
                }
            };
            match received {
                Ok(c) => {
                    if c.kind == ChangeKind::Ended
                        && following.as_ref().is_some_and(|f| f.activity == c.activity.id)
                    {
                        following = None;
                    }
                    if c.change_no > last && c.activity.site_id == site {
                        last = c.change_no;
                        lens.learn(&c.activity);
                        yield Ok(event(&c, &lens, &opaque));
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

#[cfg(test)]
mod tests {
    use super::*;
    use sitetrail_staging::Progress;
    use tokio::sync::watch;

    fn following(rx: watch::Receiver<Progress>) -> Option<Following> {
        Some(Following {
            activity: sitetrail_core::ActivityId::parse("act-1").unwrap(),
            id: "act-1".into(),
            progress: rx,
            next: tokio::time::Instant::now(),
        })
    }

    fn progress(done: u64) -> Progress {
        Progress {
            phase: "copying the files".into(),
            done,
            total: 2465,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_goes_out_at_most_four_times_a_second_with_the_latest_count() {
        let (tx, rx) = watch::channel(progress(0));
        let mut f = following(rx);
        let started = tokio::time::Instant::now();
        tx.send(progress(1)).unwrap();
        assert!(next_progress(&mut f).await.is_some());
        // Many updates at once: the next event waits its turn and carries the last one.
        for done in 2..=500 {
            tx.send(progress(done)).unwrap();
        }
        let updates = tokio::spawn(async move {
            for done in 501..=540 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                tx.send(progress(done)).unwrap();
            }
            tx
        });
        let mut sent = Vec::new();
        for _ in 0..2 {
            let event = next_progress(&mut f).await;
            assert!(event.is_some(), "still running");
            sent.push(tokio::time::Instant::now() - started);
            let p = f.as_ref().unwrap().progress.borrow().clone();
            assert!(p.done >= 500, "{p:?}");
        }
        let gap = Duration::from_secs(1) / PROGRESS_PER_SECOND;
        assert!(sent[0] >= gap, "{sent:?}");
        assert!(sent[1] - sent[0] >= gap, "{sent:?}");
        // The operation ends: its sender goes, and so does the following.
        drop(updates.await.unwrap());
        while next_progress(&mut f).await.is_some() {}
    }

    #[test]
    fn a_progress_event_names_the_activity_and_no_one() {
        let data = serde_json::to_value(ProgressEvent {
            id: "act-1".into(),
            phase: "copying the files".into(),
            done: 12,
            total: 40,
        })
        .unwrap();
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["done", "id", "phase", "total"]);
    }
}
