//! `GET /api/v1/sites/{site}/activities/export?format=csv|ndjson`: the filtered log, streamed
//! page by page (constant memory), each activity through the redaction function.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sitetrail_core::{ActivityFilter, ActivityView, Audience, Cursor, Page, RawQuery, view};
use sitetrail_store::Scope;

use crate::AppState;
use crate::api::site_scope;
use crate::auth::ViewerAuth;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiQuery;

const EXPORT_PAGE: u32 = 1_000;
pub const CSV_HEADER: [&str; 7] = [
    "Created",
    "User",
    "Service",
    "Activity",
    "Status",
    "Description",
    "Completed",
];

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/sites/{site}/activities/export", get(export))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `ndjson`.
    pub format: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    pub raw: RawQuery,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

#[utoipa::path(get, path = "/api/v1/sites/{site}/activities/export", tag = "viewers",
    params(("site" = String, Path), ExportQuery, RawQuery),
    responses((status = 200, content_type = "text/csv", description = "CSV with the header Created,User,Service,Activity,Status,Description,Completed"),
        (status = 200, content_type = "application/x-ndjson", description = "One activity per line"),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)),
    security(("viewer_token" = [])))]
pub async fn export(
    State(state): State<AppState>,
    ViewerAuth(viewer): ViewerAuth,
    Path(site): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let scope = site_scope(&state, &viewer, &site).await?;
    let format = match q.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "ndjson" => Format::Ndjson,
        _ => return Err(ApiError::Invalid("format: expected csv or ndjson".into())),
    };
    let filter = ActivityFilter::parse(&q.raw, viewer.audience)?;
    Ok(stream_export(state, scope, viewer.audience, filter, format))
}

/// The export as a streamed response; also used by the dashboard's export link.
pub fn stream_export(
    state: AppState,
    scope: Scope,
    audience: Audience,
    filter: ActivityFilter,
    format: Format,
) -> Response {
    let site = scope
        .site
        .as_ref()
        .map_or("account", |s| s.as_str())
        .to_owned();
    let stream = async_stream::stream! {
        if format == Format::Csv {
            yield Ok::<Bytes, std::io::Error>(csv_rows(std::iter::once(CSV_HEADER.map(str::to_owned))));
        }
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = Page { limit: EXPORT_PAGE, cursor };
            let listing = match state.store.list(&scope, audience, &filter, page).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = ?e, "an export stopped early");
                    yield Err(std::io::Error::other("the export stopped early"));
                    break;
                }
            };
            let views = listing.items.iter().map(|a| view(a, audience));
            yield Ok(match format {
                Format::Csv => csv_rows(views.map(|v| csv_record(&v))),
                Format::Ndjson => ndjson_lines(views),
            });
            match listing.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    };
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let filename = format!("activity-logs-{site}.{ext}");
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The seven columns of a row, as the viewer sees them.
pub fn csv_record(v: &ActivityView) -> [String; 7] {
    [
        v.created_at.to_rfc3339(),
        v.user.label.clone(),
        v.service_label.to_owned(),
        v.activity_label.to_owned(),
        v.status_label.to_owned(),
        v.description.clone(),
        v.completed_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
    ]
}

/// A spreadsheet must not run a cell as a formula: cells that start like one are prefixed
/// with an apostrophe.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

fn csv_rows(rows: impl Iterator<Item = [String; 7]>) -> Bytes {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        let cells = row.iter().map(|c| neutralise(c).into_owned());
        if let Err(e) = w.write_record(cells) {
            tracing::error!(error = ?e, "writing a CSV row");
        }
    }
    Bytes::from(w.into_inner().unwrap_or_default())
}

fn ndjson_lines(views: impl Iterator<Item = ActivityView>) -> Bytes {
    let mut out = Vec::new();
    for v in views {
        if serde_json::to_writer(&mut out, &v).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("Successfully pushed"), "Successfully pushed");
    }
}
