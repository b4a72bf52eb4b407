//! `GET /api/v1/sites/{site}/activities/export?format=csv|ndjson`: the filtered log, streamed
//! from one long read of the store ([`sitetrail_store::Store::export`]), each activity through
//! the redaction function, rendered into a reused buffer and sent in chunks of about
//! [`CHUNK_BYTES`]. The store's reader waits while the client is slow: memory stays flat.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sitetrail_core::{ActivityFilter, ActivityView, Audience, RawQuery, Timestamp};
use sitetrail_store::{ExportColumns, Scope};

use crate::AppState;
use crate::api::site_scope;
use crate::auth::ViewerAuth;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiQuery;
use crate::lens::Lens;
use crate::limits::Slot;

/// The size of the body's chunks.
const CHUNK_BYTES: usize = 64 * 1024;
/// The seven columns of the log, then `Error` (appended later: the first seven keep their
/// order for whoever reads them by position).
pub const CSV_HEADER: [&str; 8] = [
    "Created",
    "User",
    "Service",
    "Activity",
    "Status",
    "Description",
    "Completed",
    "Error",
];

/// The byte order mark some spreadsheets need to read a CSV as UTF-8 (`bom=1`).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/sites/{site}/activities/export", get(export))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `ndjson`.
    pub format: Option<String>,
    /// `1`: the CSV starts with a UTF-8 byte order mark, for spreadsheets that need one to
    /// read accents right. `0` (default): no mark.
    pub bom: Option<String>,
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
    responses((status = 200, content_type = "text/csv", description = "CSV with the header Created,User,Service,Activity,Status,Description,Completed,Error (Error appended after the original seven columns); `bom=1` starts it with a UTF-8 byte order mark"),
        (status = 200, content_type = "application/x-ndjson", description = "One activity per line"),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody, description = "Too many exports open at once")),
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
    let bom = match (q.bom.as_deref(), format) {
        (None | Some("0"), _) => false,
        (Some("1"), Format::Csv) => true,
        (Some("1"), Format::Ndjson) => {
            return Err(ApiError::Invalid(
                "bom: only a CSV export can start with a byte order mark".into(),
            ));
        }
        _ => return Err(ApiError::Invalid("bom: expected 0 or 1".into())),
    };
    let filter = ActivityFilter::parse(&q.raw, viewer.audience)?;
    let slot = state.limits.export(&viewer)?;
    Ok(stream_export(
        state,
        slot,
        scope,
        viewer.audience,
        filter,
        format,
        bom,
    ))
}

/// The export as a streamed response, holding its `slot` until the body ends or is dropped.
pub fn stream_export(
    state: AppState,
    slot: Slot,
    scope: Scope,
    audience: Audience,
    filter: ActivityFilter,
    format: Format,
    bom: bool,
) -> Response {
    let site = scope
        .site
        .as_ref()
        .map_or("account", |s| s.as_str())
        .to_owned();
    let columns = match format {
        Format::Csv => ExportColumns::Table,
        Format::Ndjson => ExportColumns::All,
    };
    let stream = async_stream::stream! {
        let _slot = slot;
        let stopped = || std::io::Error::other("the export stopped early");
        let mut out = Rendered::new(format, bom);
        let lens = match Lens::of(&state, audience, &scope.account).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = ?e, "an export could not start");
                yield Err(stopped());
                return;
            }
        };
        // A client's search is checked again against what it is shown (see `page_for`).
        let recheck = audience == Audience::Client && filter.reads_the_view();
        let mut activities = match state.store.export(&scope, audience, &filter, columns).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = ?e, "an export could not start");
                yield Err(stopped());
                return;
            }
        };
        while let Some(chunk) = activities.next_chunk().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = ?e, "an export stopped early");
                    yield Err(stopped());
                    return;
                }
            };
            for a in &chunk {
                let v = lens.view(a);
                if recheck && !filter.admits(&v) {
                    continue;
                }
                out.push(&v);
                if let Some(bytes) = out.take(CHUNK_BYTES) {
                    yield Ok::<Bytes, std::io::Error>(bytes);
                }
            }
        }
        if let Some(bytes) = out.take(0) {
            yield Ok(bytes);
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

/// A spreadsheet must not run a cell as a formula: cells that start like one are prefixed
/// with an apostrophe.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The body as it is rendered, row after row, into one buffer that is handed over whenever it
/// holds a chunk.
enum Rendered {
    Csv(Box<csv::Writer<Vec<u8>>>),
    Ndjson(Vec<u8>),
}

impl Rendered {
    fn new(format: Format, bom: bool) -> Self {
        match format {
            Format::Csv => {
                let mut start = buffer();
                if bom {
                    start.extend_from_slice(UTF8_BOM);
                }
                let mut w = csv::Writer::from_writer(start);
                if let Err(e) = w.write_record(CSV_HEADER) {
                    tracing::error!(error = ?e, "writing the CSV header");
                }
                Rendered::Csv(Box::new(w))
            }
            Format::Ndjson => Rendered::Ndjson(buffer()),
        }
    }

    /// One activity as the viewer sees it: a CSV row of the eight columns, or a JSON line.
    fn push(&mut self, v: &ActivityView) {
        match self {
            Rendered::Csv(w) => {
                if let Err(e) = csv_row(w, v) {
                    tracing::error!(error = ?e, "writing a CSV row");
                }
            }
            Rendered::Ndjson(out) => {
                if serde_json::to_writer(&mut *out, v).is_ok() {
                    out.push(b'\n');
                }
            }
        }
    }

    /// What is rendered so far, once it holds at least `at_least` bytes (and something).
    fn take(&mut self, at_least: usize) -> Option<Bytes> {
        let out = match self {
            Rendered::Csv(w) => {
                // The writer keeps a small buffer of its own before its Vec.
                if w.get_ref().len() < at_least {
                    return None;
                }
                let full = std::mem::replace(w, Box::new(csv::Writer::from_writer(buffer())));
                match full.into_inner() {
                    Ok(out) => out,
                    Err(e) => {
                        tracing::error!(error = ?e.error(), "flushing CSV rows");
                        return None;
                    }
                }
            }
            Rendered::Ndjson(out) => {
                if out.len() < at_least {
                    return None;
                }
                std::mem::replace(out, buffer())
            }
        };
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

fn buffer() -> Vec<u8> {
    Vec::with_capacity(CHUNK_BYTES + 16 * 1024)
}

/// The eight columns of a row, as the viewer sees them, each through [`neutralise`].
fn csv_row(w: &mut csv::Writer<Vec<u8>>, v: &ActivityView) -> csv::Result<()> {
    let (mut created_buf, mut completed_buf) = ([0; RFC3339_LEN], [0; RFC3339_LEN]);
    let completed = match v.completed_at {
        Some(t) => rfc3339(t, &mut completed_buf),
        None => "",
    };
    let cells = [
        rfc3339(v.created_at, &mut created_buf),
        v.user.label.as_str(),
        v.service_label,
        v.activity_label,
        v.status_label,
        v.description.as_str(),
        completed,
        // As the pages word it: server detail of old rows never leaves in an export either.
        &v.error
            .as_deref()
            .map(crate::pages::words::error_for_people)
            .unwrap_or_default(),
    ];
    for cell in cells {
        w.write_field(neutralise(cell).as_bytes())?;
    }
    w.write_record(None::<&[u8]>)
}

const RFC3339_LEN: usize = "2026-11-25T09:30:00.123Z".len();

/// [`Timestamp::to_rfc3339`] into a buffer on the stack: two of these per row, no allocation.
fn rfc3339(t: Timestamp, buf: &mut [u8; RFC3339_LEN]) -> &str {
    let d = t.to_offset_date_time();
    let parts = [
        (0, 4, d.year() as u32),
        (5, 2, d.month() as u32),
        (8, 2, u32::from(d.day())),
        (11, 2, u32::from(d.hour())),
        (14, 2, u32::from(d.minute())),
        (17, 2, u32::from(d.second())),
        (20, 3, u32::from(d.millisecond())),
    ];
    *buf = *b"0000-00-00T00:00:00.000Z";
    for (at, width, mut value) in parts {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).expect("ASCII digits")
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

    #[test]
    fn times_are_written_as_the_api_writes_them() {
        let mut buf = [0; RFC3339_LEN];
        let max = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999Z").unwrap();
        let mut ms = 0i64;
        while ms <= max.millis() {
            let t = Timestamp::from_millis(ms).unwrap();
            assert_eq!(rfc3339(t, &mut buf), t.to_rfc3339());
            ms += 7_777_777_777 + ms / 3;
        }
        assert_eq!(rfc3339(max, &mut buf), "9999-12-31T23:59:59.999Z");
    }
}
