//! Advanced Tools → Activity Logs: the seven columns, filters kept in the URL, Newer/Older
//! paging by cursor, CSV and NDJSON export of exactly what is filtered, and live updates
//! (the script follows the site's event stream). Rows come from the API's `page_for`, so
//! every cell has been through the one redaction function.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sitetrail_core::{ActivityKind, ActivityView, ActorKind, RawQuery, Service, Status};

use crate::AppState;
use crate::api::page_for;
use crate::error::ApiError;
use crate::pages::shell::{Section, Shell, SitePage, site_path};
use crate::pages::time::{self, Bound, TimeCell};
use crate::pages::words;
use crate::pages::{PageError, Session};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/sites/{site}/advanced-tools/activity-logs",
        get(activity_logs),
    )
}

pub fn path(site: &str) -> String {
    format!("{}/activity-logs", site_path(site, Section::AdvancedTools))
}

/// One row of the log, as the viewer may see it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub created: TimeCell,
    pub user_label: String,
    /// An internal viewer sees that support acted on the client's behalf.
    pub support_marker: bool,
    pub service_label: &'static str,
    pub activity_label: &'static str,
    pub status: &'static str,
    /// The badge's look: the status, or `skipped` for a scheduled backup the system skipped.
    pub badge: &'static str,
    pub status_label: &'static str,
    pub status_icon: &'static str,
    /// What the error's disclosure says.
    pub error_summary: &'static str,
    pub description: String,
    pub error: Option<String>,
    pub completed: Option<TimeCell>,
    pub duration: Option<String>,
    /// A preview's report page (or the new preview a stopped push carries).
    pub report: Option<String>,
}

/// The badge's symbol, so that the status reads without colour. The script's `ICONS` match.
fn status_icon(status: Status) -> &'static str {
    match status {
        Status::InProgress => "\u{25d4}",
        Status::Completed => "\u{2713}",
        Status::Failed => "\u{2715}",
    }
}

impl Row {
    pub fn of(v: &ActivityView) -> Row {
        let skipped = words::skipped_by_schedule(v);
        Row {
            id: v.id.as_str().to_owned(),
            created: TimeCell::of(v.created_at),
            user_label: v.user.label.clone(),
            // The redaction function gives a support person's email to internal viewers
            // only; the marker follows what it gave.
            support_marker: v.user.kind == ActorKind::Support && v.user.email.is_some(),
            service_label: v.service_label,
            activity_label: v.activity_label,
            status: v.status.as_str(),
            badge: if skipped {
                "skipped"
            } else {
                v.status.as_str()
            },
            // Still a failure in the log (filters, exports); in the page, a calm note.
            status_label: if skipped {
                "Skipped, will retry"
            } else {
                v.status_label
            },
            status_icon: if skipped {
                "\u{21bb}"
            } else {
                status_icon(v.status)
            },
            error_summary: if skipped { "Why" } else { "Show error" },
            description: v.description.clone(),
            error: v
                .error
                .as_deref()
                .map(|e| words::error_for_people(e).into_owned()),
            completed: v.completed_at.map(TimeCell::of),
            duration: v.duration_ms.map(time::duration),
            report: (v.activity == ActivityKind::PreviewPush
                || (v.activity == ActivityKind::PushStagingToLive
                    && v.details.contains_key("preview")))
            .then(|| crate::pages::preview::path(v.site_id.as_str(), v.id.as_str())),
        }
    }
}

/// The page's query: the API's filters, plus `tz`, the viewer's offset from UTC in minutes
/// that the date inputs' days are counted in (UTC without it).
#[derive(Debug, Default, Deserialize)]
struct LogQuery {
    activity: Option<String>,
    status: Option<String>,
    service: Option<String>,
    user: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    tz: Option<String>,
}

fn given(v: &Option<String>) -> &str {
    v.as_deref().map(str::trim).unwrap_or("")
}

/// A choice of a `<select>`.
#[derive(Debug)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// The filter form as it was submitted.
#[derive(Debug)]
struct FilterForm {
    activities: Vec<Choice>,
    statuses: Vec<Choice>,
    services: Vec<Choice>,
    user: String,
    from_day: String,
    to_day: String,
    q: String,
    tz: String,
    limit: String,
    day_zone: String,
}

/// Why there is no table.
#[derive(Debug)]
struct Empty {
    message: &'static str,
    hint: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "activity_logs.html")]
struct ActivityLogsPage {
    shell: Shell,
    form: FilterForm,
    rows: Vec<Row>,
    users: Vec<String>,
    caption: String,
    problem: Option<String>,
    empty: Option<Empty>,
    filtered: bool,
    clear_href: String,
    newest_href: String,
    advanced_tools_href: String,
    newer_href: Option<String>,
    older_href: Option<String>,
    export_csv: String,
    /// The CSV with a UTF-8 byte order mark, for spreadsheets that need one.
    export_csv_bom: String,
    export_ndjson: String,
    stream_url: String,
    first_page: bool,
    live: LiveFilter,
}

/// The filters as the API reads them, for the script to tell whether a new activity belongs
/// on this page.
#[derive(Debug)]
struct LiveFilter {
    activity: String,
    status: String,
    service: String,
    user: String,
    from: String,
    to: String,
    q: String,
}

/// A filter error as a person reads it: the field by its label, and the cursor as the page
/// link it came in.
fn in_words(message: &str) -> String {
    let Some((field, what)) = message.split_once(": ") else {
        return message.to_owned();
    };
    match (field, what) {
        ("to", "is before from") => "The To date is before the From date.".to_owned(),
        ("cursor", _) => {
            "This page link is out of date or incomplete; start again from the newest activities."
                .to_owned()
        }
        _ => {
            let label = match field {
                "activity" => "Activity",
                "status" => "Status",
                "service" => "Service",
                "user" => "User",
                "from" => "From",
                "to" => "To",
                "q" => "Search",
                "limit" => "Rows per page",
                other => other,
            };
            format!("{label}: {what}")
        }
    }
}

/// `?a=1&b=x+y` from the pairs whose value is not empty.
fn query_string(pairs: &[(&str, &str)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{}", encoded.join("&"))
    }
}

/// `application/x-www-form-urlencoded`, as a browser encodes a GET form.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn activity_logs(
    State(state): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let page = SitePage::load(
        &state,
        &session,
        &site,
        Section::AdvancedTools,
        "/activity-logs",
        "Activity Logs",
    )
    .await?;
    let site_id = page.site.id.as_str().to_owned();
    let base = path(&site_id);
    let (q, mut problem) = match query {
        Ok(Query(q)) => (q, None),
        Err(e) => (
            LogQuery::default(),
            Some((StatusCode::BAD_REQUEST, e.body_text())),
        ),
    };
    let offset = time::offset(q.tz.as_deref());
    let api_from = time::api_bound(given(&q.from), Bound::From, offset);
    let api_to = time::api_bound(given(&q.to), Bound::To, offset);
    let api = RawQuery {
        activity: q.activity.clone(),
        status: q.status.clone(),
        service: q.service.clone(),
        user: q.user.clone(),
        from: Some(api_from.clone()),
        to: Some(api_to.clone()),
        q: q.q.clone(),
        limit: q.limit.clone(),
        cursor: q.cursor.clone(),
    };
    // Read before the rows: what commits after it reaches the page by its stream.
    let head = state.tokens.opaque().event_id(state.feed.head());
    let listing = if problem.is_some() {
        None
    } else {
        match page_for(&state, session.viewer.audience, &page.scope, &api).await {
            Ok(l) => Some(l),
            Err(e @ (ApiError::Invalid(_) | ApiError::Malformed(_))) => {
                problem = Some((e.status(), in_words(&e.public_message())));
                None
            }
            Err(e) => return Err(e.into()),
        }
    };

    let filters = [
        ("activity", given(&q.activity)),
        ("status", given(&q.status)),
        ("service", given(&q.service)),
        ("user", given(&q.user)),
        ("from", given(&q.from)),
        ("to", given(&q.to)),
        ("q", given(&q.q)),
    ];
    let filtered = filters.iter().any(|(_, v)| !v.is_empty());
    let mut own = filters.to_vec();
    own.extend([("limit", given(&q.limit)), ("tz", given(&q.tz))]);
    let at_cursor = |cursor: &str| {
        let mut pairs = own.clone();
        pairs.push(("cursor", cursor));
        format!("{base}{}", query_string(&pairs))
    };
    let export = |format: &str| {
        format!(
            "/api/v1/sites/{site_id}/activities/export{}",
            query_string(&[
                ("format", format),
                ("activity", given(&q.activity)),
                ("status", given(&q.status)),
                ("service", given(&q.service)),
                ("user", given(&q.user)),
                ("from", &api_from),
                ("to", &api_to),
                ("q", given(&q.q)),
            ])
        )
    };

    let (rows, newer_href, older_href, first_page) = match &listing {
        Some(l) => (
            l.items.iter().map(Row::of).collect::<Vec<_>>(),
            l.prev_cursor.as_deref().map(at_cursor),
            l.next_cursor.as_deref().map(at_cursor),
            l.prev_cursor.is_none(),
        ),
        None => (Vec::new(), None, None, false),
    };
    let mut users: Vec<String> = rows.iter().map(|r| r.user_label.clone()).collect();
    users.sort();
    users.dedup();
    let empty = (listing.is_some() && rows.is_empty()).then(|| {
        if filtered || q.cursor.is_some() {
            Empty {
                message: "No activities match these filters.",
                hint: "Widen the date range, choose another activity, status or user, or clear the filters.",
            }
        } else {
            Empty {
                message: "No activity on this site yet.",
                hint: "Staging and backup operations appear here as soon as they start; this page updates by itself.",
            }
        }
    });
    let caption = format!(
        "Activity on {}, newest first{}",
        page.site.name,
        if first_page { "" } else { " (older page)" }
    );
    let form = FilterForm {
        activities: ActivityKind::ALL
            .iter()
            .map(|k| Choice {
                value: k.as_str(),
                label: k.label(),
                selected: given(&q.activity) == k.as_str(),
            })
            .collect(),
        statuses: Status::ALL
            .iter()
            .map(|s| Choice {
                value: s.as_str(),
                label: s.label(),
                selected: given(&q.status) == s.as_str(),
            })
            .collect(),
        services: Service::ALL
            .iter()
            .map(|s| Choice {
                value: s.as_str(),
                label: s.label(),
                selected: given(&q.service) == s.as_str(),
            })
            .collect(),
        user: given(&q.user).to_owned(),
        from_day: time::input_day(given(&q.from), Bound::From, offset),
        to_day: time::input_day(given(&q.to), Bound::To, offset),
        q: given(&q.q).to_owned(),
        tz: given(&q.tz).to_owned(),
        limit: given(&q.limit).to_owned(),
        day_zone: time::offset_label(offset),
    };
    let status = problem.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let body = ActivityLogsPage {
        shell: page.shell,
        form,
        rows,
        users,
        caption,
        problem: problem.map(|(_, m)| m),
        empty,
        filtered,
        clear_href: base.clone(),
        newest_href: format!("{base}{}", query_string(&own)),
        advanced_tools_href: site_path(&site_id, Section::AdvancedTools),
        newer_href,
        older_href,
        export_csv: export("csv"),
        export_csv_bom: format!("{}&bom=1", export("csv")),
        export_ndjson: export("ndjson"),
        stream_url: format!("/api/v1/sites/{site_id}/activities/stream?after={head}"),
        first_page,
        live: LiveFilter {
            activity: given(&api.activity).to_owned(),
            status: given(&api.status).to_owned(),
            service: given(&api.service).to_owned(),
            user: given(&api.user).to_owned(),
            from: given(&api.from).to_owned(),
            to: given(&api.to).to_owned(),
            q: given(&api.q).to_owned(),
        },
    };
    Ok((status, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_errors_name_the_field_by_its_label() {
        assert_eq!(
            in_words("to: is before from"),
            "The To date is before the From date."
        );
        assert!(
            in_words("cursor: not a cursor this server gave out").starts_with("This page link")
        );
        assert_eq!(
            in_words("q: at most 200 characters"),
            "Search: at most 200 characters"
        );
    }

    #[test]
    fn query_strings_leave_out_empty_filters_and_encode_the_rest() {
        assert_eq!(query_string(&[("q", ""), ("user", "")]), "");
        assert_eq!(
            query_string(&[("user", "Support user"), ("q", "a&b=ü"), ("status", "")]),
            "?user=Support+user&q=a%26b%3D%C3%BC"
        );
    }
}
