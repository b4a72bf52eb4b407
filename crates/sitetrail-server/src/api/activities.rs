//! Recording activities (publishers) and reading them (viewers).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sitetrail_core::{
    AccountId, ActivityFilter, ActivityId, ActivityKind, ActivityView, Actor, ActorKind, Audience,
    Cursor, Direction, Email, Ending, Environment, FilterError, NewActivity, Page, RawQuery,
    Service, Sight, SiteId, Status, StoredActivity, Timestamp, view,
};
use sitetrail_store::{Recorded, Scope};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{site_scope, viewer_scope};
use crate::auth::{Publisher, ViewerAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiBytes, ApiJson, ApiQuery, optional_json};
use crate::lens::Lens;

pub const MAX_BATCH: usize = 1_000;
const SINGLE_BODY_LIMIT: usize = 64 * 1024;
const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/activities",
            post(record)
                .layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT))
                .get(list_account),
        )
        .route(
            "/api/v1/activities/batch",
            post(record_batch).layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
        .route("/api/v1/activities/{id}", get(get_one))
        .route(
            "/api/v1/activities/{id}/complete",
            post(complete).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route(
            "/api/v1/activities/{id}/fail",
            post(fail).layer(DefaultBodyLimit::max(SINGLE_BODY_LIMIT)),
        )
        .route("/api/v1/sites/{site}/activities", get(list_site))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorIn {
    pub kind: ActorKind,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// An activity as a publisher sends it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityIn {
    /// The publisher's own id; generated when absent.
    #[schema(value_type = Option<String>)]
    pub id: Option<ActivityId>,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    #[schema(value_type = String)]
    pub site_id: SiteId,
    pub environment: Environment,
    pub service: Service,
    pub activity: ActivityKind,
    pub actor: ActorIn,
    pub description: String,
    /// Default `in_progress`.
    pub status: Option<Status>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<Map<String, Value>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    pub activities: Vec<ActivityIn>,
}

/// The answer to a batch: every activity as stored, or with `Prefer: return=minimal` only
/// a receipt for each, in the order sent.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchOut {
    Full { items: Vec<ActivityView> },
    Minimal { items: Vec<Receipt> },
}

/// What a publisher loading a log needs back from a batch: the id (generated where the
/// publisher named none) and whether this request recorded it (`false`: the same request
/// was recorded before).
#[derive(Serialize, ToSchema)]
pub struct Receipt {
    #[schema(value_type = String)]
    pub id: ActivityId,
    pub created: bool,
}

/// Whether the request asks for `return=minimal` (RFC 7240): preferences are separated by
/// commas, each may carry `;` parameters, names are case-insensitive, the value may be quoted,
/// and preferences a server does not know are ignored.
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            let token = pref.split(';').next()?.trim();
            let (name, value) = token.split_once('=')?;
            Some((
                name.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ))
        })
        .any(|(name, value)| {
            name.eq_ignore_ascii_case("return") && value.eq_ignore_ascii_case("minimal")
        })
}

/// How an activity ended.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndIn {
    pub description: Option<String>,
    /// Merged into the activity's details.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Map<String, Value>>,
    pub error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Timestamp>,
}

/// A page of the log, newest first.
#[derive(Serialize, ToSchema)]
pub struct ListResponse {
    pub items: Vec<ActivityView>,
    /// Older activities: pass as `cursor`.
    pub next_cursor: Option<String>,
    /// Newer activities: pass as `cursor`.
    pub prev_cursor: Option<String>,
}

impl ActivityIn {
    fn into_new(self, idempotency_key: Option<&str>) -> ApiResult<NewActivity> {
        let id = match (self.id, idempotency_key) {
            (Some(id), Some(key)) if id.as_str() != key => {
                return Err(ApiError::Invalid(
                    "id: differs from the Idempotency-Key header".into(),
                ));
            }
            (Some(id), _) => Some(id),
            (None, Some(key)) => Some(ActivityId::parse(key).map_err(|_| {
                ApiError::Invalid("Idempotency-Key: must be a valid activity id".into())
            })?),
            (None, None) => None,
        };
        let actor = Actor {
            kind: self.actor.kind,
            email: self.actor.email.as_deref().map(Email::parse).transpose()?,
            name: self.actor.name,
        };
        let new = NewActivity {
            id,
            account_id: self.account_id,
            site_id: self.site_id,
            environment: self.environment,
            activity: self.activity,
            actor,
            description: self.description,
            status: self.status.unwrap_or(Status::InProgress),
            created_at: self.created_at,
            completed_at: self.completed_at,
            error: self.error,
            details: self.details.unwrap_or_default(),
        };
        new.validate(self.service)?;
        if new.activity.is_recorded_by_sitetrail() {
            return Err(ApiError::Invalid(format!(
                "activity: {} is recorded by sitetrail itself",
                new.activity
            )));
        }
        Ok(new)
    }
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::Invalid("Idempotency-Key: must be ASCII".into()))
        })
        .transpose()
}

#[utoipa::path(post, path = "/api/v1/activities", tag = "publishers",
    request_body = ActivityIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Used as the id when the body has none")),
    responses((status = 201, body = ActivityView, description = "Recorded"),
        (status = 200, body = ActivityView, description = "The same request again"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)),
    security(("publisher_key" = [])))]
pub async fn record(
    State(state): State<AppState>,
    _publisher: Publisher,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ActivityIn>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let new = body.into_new(idempotency_key(&headers)?)?;
    state.limits.site_activities([(&new.site_id, 1)])?;
    let Recorded { activity, created } = state.store.record(vec![new]).await?.remove(0);
    if created {
        metrics::counter!("sitetrail_activities_recorded_total").increment(1);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&activity, &Sight::internal()))))
}

#[utoipa::path(post, path = "/api/v1/activities/batch", tag = "publishers",
    request_body = BatchIn,
    params(("Prefer" = Option<String>, Header,
        description = "`return=minimal`: answer with a receipt per activity (`id`, `created`) instead of the stored activities")),
    responses((status = 200, body = BatchOut,
            headers(("Preference-Applied" = String, description = "`return=minimal` when the receipts were sent"))),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody)),
    security(("publisher_key" = [])))]
pub async fn record_batch(
    State(state): State<AppState>,
    _publisher: Publisher,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BatchIn>,
) -> ApiResult<Response> {
    if body.activities.len() > MAX_BATCH {
        return Err(ApiError::TooLarge(format!(
            "a batch holds at most {MAX_BATCH} activities"
        )));
    }
    if body.activities.is_empty() {
        return Err(ApiError::Invalid("activities: the batch is empty".into()));
    }
    let batch = body
        .activities
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_new(None).map_err(|e| match e {
                ApiError::Invalid(m) => ApiError::Invalid(format!("activities[{i}]: {m}")),
                other => other,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    // Each site's count, in the order the batch first names it.
    let mut per_site: Vec<(&sitetrail_core::SiteId, u32)> = Vec::new();
    let mut slot: HashMap<&sitetrail_core::SiteId, usize> = HashMap::new();
    for new in &batch {
        let i = *slot.entry(&new.site_id).or_insert_with(|| {
            per_site.push((&new.site_id, 0));
            per_site.len() - 1
        });
        per_site[i].1 += 1;
    }
    state.limits.site_activities(per_site)?;
    let recorded = state.store.record(batch).await?;
    let created = recorded.iter().filter(|r| r.created).count();
    metrics::counter!("sitetrail_activities_recorded_total").increment(created as u64);
    if prefers_minimal(&headers) {
        let items = recorded
            .into_iter()
            .map(|r| Receipt {
                id: r.activity.id,
                created: r.created,
            })
            .collect();
        let applied = [("preference-applied", "return=minimal")];
        return Ok((applied, Json(BatchOut::Minimal { items })).into_response());
    }
    let items = recorded
        .iter()
        .map(|r| view(&r.activity, &Sight::internal()))
        .collect();
    Ok(Json(BatchOut::Full { items }).into_response())
}

async fn end(
    state: AppState,
    id: String,
    status: Status,
    body: Bytes,
) -> ApiResult<Json<ActivityView>> {
    let id = ActivityId::parse(&id).map_err(|_| ApiError::NotFound("no such activity"))?;
    let body: EndIn = optional_json(&body)?;
    let ending = Ending {
        details: body.details,
        status,
        description: body.description,
        error: body.error,
        completed_at: body.completed_at,
    };
    let ended = state.store.end(&id, ending).await?;
    Ok(Json(view(&ended, &Sight::internal())))
}

#[utoipa::path(post, path = "/api/v1/activities/{id}/complete", tag = "publishers",
    params(("id" = String, Path)), request_body(content = Option<EndIn>),
    responses((status = 200, body = ActivityView), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "Already ended"),
        (status = 422, body = crate::error::ErrorBody)),
    security(("publisher_key" = [])))]
pub async fn complete(
    State(state): State<AppState>,
    _publisher: Publisher,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<ActivityView>> {
    end(state, id, Status::Completed, body).await
}

#[utoipa::path(post, path = "/api/v1/activities/{id}/fail", tag = "publishers",
    params(("id" = String, Path)), request_body(content = Option<EndIn>),
    responses((status = 200, body = ActivityView), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "Already ended"),
        (status = 422, body = crate::error::ErrorBody)),
    security(("publisher_key" = [])))]
pub async fn fail(
    State(state): State<AppState>,
    _publisher: Publisher,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<ActivityView>> {
    end(state, id, Status::Failed, body).await
}

/// Reads one page of a scope for a viewer: the one path every listing takes. Cursors are
/// sealed ([`crate::opaque`]): a client cannot read the insertion order from them.
pub async fn page_for(
    state: &AppState,
    audience: Audience,
    scope: &Scope,
    raw: &RawQuery,
) -> ApiResult<ListResponse> {
    let filter = ActivityFilter::parse(raw, audience)?;
    let mut page = Page::parse(&RawQuery {
        cursor: None,
        ..raw.clone()
    })?;
    page.cursor = match raw
        .cursor
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => None,
        Some(c) => Some(
            state
                .tokens
                .opaque()
                .open_cursor(c)
                .ok_or(FilterError::BadCursor)?,
        ),
    };
    let (items, next, prev) = if audience == Audience::Client && filter.reads_the_view() {
        let lens = Lens::of(state, audience, &scope.account).await?;
        client_search(state, &lens, scope, &filter, page).await?
    } else {
        // The roster and the page do not depend on each other: read at once.
        let list =
            async { Ok::<_, ApiError>(state.store.list(scope, audience, &filter, page).await?) };
        let (lens, listing) = tokio::try_join!(Lens::of(state, audience, &scope.account), list)?;
        let items = listing.items.iter().map(|a| lens.view(a)).collect();
        (items, listing.next, listing.prev)
    };
    let opaque = state.tokens.opaque();
    Ok(ListResponse {
        items,
        next_cursor: next.map(|c| opaque.cursor(&c)),
        prev_cursor: prev.map(|c| opaque.cursor(&c)),
    })
}

/// How many of the store's pages a client's search reads through for one page of matches.
const MAX_SEARCH_ROUNDS: usize = 10;

/// A page of a client's search (`q`, `user`). The store matches its own search text, which
/// knows neither the partner's roster nor masked ids; each row is checked again against what
/// the client is shown, and the store read on until the page is full. A cursor is given only
/// when a further shown row exists, so the cursors tell nothing of rows the client may not
/// find. A search whose rows the store keeps matching and the client may not see ends after
/// [`MAX_SEARCH_ROUNDS`] of the store's pages, as if nothing followed.
async fn client_search(
    state: &AppState,
    lens: &Lens,
    scope: &Scope,
    filter: &ActivityFilter,
    page: Page,
) -> ApiResult<(Vec<ActivityView>, Option<Cursor>, Option<Cursor>)> {
    let direction = page.cursor.map_or(Direction::Older, |c| c.direction);
    let wanted = page.limit as usize + 1;
    // Shown rows, nearest to the cursor first.
    let mut found: Vec<(StoredActivity, ActivityView)> = Vec::new();
    let mut at = page.cursor;
    for _ in 0..MAX_SEARCH_ROUNDS {
        let read = Page {
            limit: page.limit.max(50),
            cursor: at,
        };
        let listing = state
            .store
            .list(scope, lens.audience(), filter, read)
            .await?;
        let mut items = listing.items;
        if direction == Direction::Newer {
            items.reverse();
        }
        for a in items {
            let v = lens.view(&a);
            if filter.admits(&v) {
                found.push((a, v));
            }
        }
        at = match direction {
            Direction::Older => listing.next,
            Direction::Newer => listing.prev,
        };
        if found.len() >= wanted || at.is_none() {
            break;
        }
    }
    let more = found.len() > page.limit as usize;
    found.truncate(page.limit as usize);
    if direction == Direction::Newer {
        found.reverse();
    }
    let first = found.first().map(|(a, _)| a);
    let last = found.last().map(|(a, _)| a);
    let (next, prev) = match direction {
        Direction::Older => (
            last.filter(|_| more)
                .map(|a| Cursor::after(a, Direction::Older)),
            first
                .filter(|_| page.cursor.is_some())
                .map(|a| Cursor::after(a, Direction::Newer)),
        ),
        Direction::Newer => (
            last.map(|a| Cursor::after(a, Direction::Older)),
            first
                .filter(|_| more)
                .map(|a| Cursor::after(a, Direction::Newer)),
        ),
    };
    Ok((found.into_iter().map(|(_, v)| v).collect(), next, prev))
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/activities", tag = "viewers",
    params(("site" = String, Path), RawQuery),
    responses((status = 200, body = ListResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn list_site(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(site): Path<String>,
    ApiQuery(raw): ApiQuery<RawQuery>,
) -> ApiResult<Json<ListResponse>> {
    // The page's own query reads only a site of the viewer's account, so the page is read
    // at once; only an empty one asks whether the site is there at all, to answer 404 for a
    // site that is unknown or not the viewer's, as everywhere.
    let claimed = SiteId::parse(&site)
        .ok()
        .filter(|s| viewer.may_see(&viewer.account, s))
        .ok_or(ApiError::NotFound("no such site"))?;
    let scope = Scope {
        account: viewer.account.clone(),
        site: Some(claimed),
    };
    let page = page_for(&state, viewer.audience, &scope, &raw).await?;
    if page.items.is_empty() {
        site_scope(&state, &viewer, &site).await?;
    }
    Ok(Json(page))
}

#[utoipa::path(get, path = "/api/v1/activities", tag = "viewers",
    params(RawQuery),
    responses((status = 200, body = ListResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn list_account(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    ApiQuery(raw): ApiQuery<RawQuery>,
) -> ApiResult<Json<ListResponse>> {
    let scope = viewer_scope(&viewer);
    Ok(Json(page_for(&state, viewer.audience, &scope, &raw).await?))
}

#[utoipa::path(get, path = "/api/v1/activities/{id}", tag = "viewers",
    params(("id" = String, Path)),
    responses((status = 200, body = ActivityView), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<ActivityView>> {
    let not_found = || ApiError::NotFound("no such activity");
    let lens = Lens::of(&state, viewer.audience, &viewer.account).await?;
    if viewer.audience == Audience::Client
        && let Some((created_at, seq)) = state.tokens.opaque().open_activity_id(&id)
        && let Some(a) = masked(&state, &viewer, created_at, seq).await?
    {
        return Ok(Json(lens.view(&a)));
    }
    let id = ActivityId::parse(&id).map_err(|_| not_found())?;
    let a = state.store.activity(&id).await?.ok_or_else(not_found)?;
    if !viewer.may_see(&a.account_id, &a.site_id) {
        return Err(not_found());
    }
    let shown = lens.view(&a);
    // An id the viewer is shown masked is not one they can ask for.
    if shown.id != a.id {
        return Err(not_found());
    }
    Ok(Json(shown))
}

/// The activity a masked id points at, among those the viewer may see: read from the
/// viewer's scope at the activity's creation time, the millisecond it names.
async fn masked(
    state: &AppState,
    viewer: &sitetrail_core::Viewer,
    created_at: Timestamp,
    seq: i64,
) -> ApiResult<Option<StoredActivity>> {
    let Some(to) = Timestamp::from_millis(created_at.millis() + 1) else {
        return Ok(None);
    };
    let filter = ActivityFilter {
        from: Some(created_at),
        to: Some(to),
        ..ActivityFilter::default()
    };
    let scope = viewer_scope(viewer);
    let mut page = Page {
        limit: sitetrail_core::filter::MAX_LIMIT,
        cursor: None,
    };
    loop {
        let listing = state
            .store
            .list(&scope, Audience::Internal, &filter, page)
            .await?;
        if let Some(a) = listing.items.into_iter().find(|a| a.seq == seq) {
            return Ok(Some(a));
        }
        match listing.next {
            Some(c) => page.cursor = Some(c),
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn prefer(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("prefer", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn return_minimal_is_read_as_rfc_7240_writes_it() {
        for asked in [
            &["return=minimal"][..],
            &["Return=Minimal"],
            &["return=\"minimal\""],
            &["respond-async, return=minimal"],
            &["return=minimal; foo=bar"],
            &[" wait=10 ,return = minimal "],
            &["respond-async", "return=minimal"],
        ] {
            assert!(prefers_minimal(&prefer(asked)), "{asked:?}");
        }
        for not_asked in [
            &[][..],
            &["return=representation"],
            &["respond-async"],
            &["minimal"],
            &["return-minimal"],
            &["handling=return=minimal"],
            &["return=minimalist"],
        ] {
            assert!(!prefers_minimal(&prefer(not_asked)), "{not_asked:?}");
        }
    }
}
