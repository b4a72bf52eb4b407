//! Health, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use sitetrail_core::{ActivityKind, Environment, Service, Status};
use sitetrail_staging::{OnConflict, PushScope};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Object, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::error::ApiResult;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/openapi.json", get(openapi_json))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sitetrail", description = "The staging engine and Activity Logs of a white-label managed WordPress hosting product."),
    paths(
        super::accounts::upsert,
        super::sites::upsert,
        super::activities::record,
        super::activities::record_batch,
        super::activities::complete,
        super::activities::fail,
        super::activities::list_site,
        super::activities::list_account,
        super::activities::get_one,
        super::export::export,
        super::stream::stream,
        super::access::access_log,
        super::staging::create_staging,
        super::staging::reset_from_template,
        super::staging::reset_from_backup,
        super::staging::push_to_live,
        super::safe_push::undo_window,
        super::safe_push::undo_push,
        super::safe_push::restore_live,
        super::safe_push::live_owned,
        super::safe_push::set_live_owned,
        super::staging::create_backup,
        super::staging::templates,
        super::staging::backups,
        healthz,
    ),
    components(schemas(super::stream::ProgressEvent)),
    modifiers(&Security, &Constraints),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "publisher_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "viewer_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// What the request types check as they parse that their schemas alone do not say: the
/// ids' characters, the words each field takes, lengths and forbidden characters. A client
/// (or a schema-driven test tool) can then tell a valid request from the document alone.
struct Constraints;

const ID: &str = "^[A-Za-z0-9._-]{1,64}$";
const PUSH_SCOPES: &[PushScope] = &[
    PushScope::Site,
    PushScope::Database,
    PushScope::Files,
    PushScope::Tables,
    PushScope::Folders,
];
const RESTORE_SCOPES: &[PushScope] = &[PushScope::Site, PushScope::Database, PushScope::Files];
const ON_CONFLICT: &[OnConflict] = &[
    OnConflict::Stop,
    OnConflict::StagingWins,
    OnConflict::LiveWins,
];
/// 1 to 200 characters, not all blank, no control characters.
const NAME: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Free text: no control characters but newlines and tabs.
const TEXT: &str = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$";
const EMAIL: &str =
    "^[^\\s<>\"@\\u0000-\\u001f\\u007f-\\u009f]+@[^\\s<>\"@\\u0000-\\u001f\\u007f-\\u009f]+$";
/// `http(s)://`, a host (and port), a path; no query, fragment, credentials or spaces.
const URL: &str =
    "^https?://[A-Za-z0-9.\\[\\]:-]+(/[^?#@ \\\\\"<>\\u0000-\\u001f\\u007f-\\u009f]*)?$";
/// An absolute path without a `..` segment (each segment: empty, `.`, or not `..`).
const DOCROOT: &str =
    "^(/([^/.\\u0000][^/\\u0000]*|\\.([^/.\\u0000][^/\\u0000]*)?|\\.\\.[^/\\u0000]+)?)+$";

/// A change to one schema.
type Rule = Box<dyn Fn(&mut Object)>;

fn words<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<Value> {
    all.iter().map(|w| Value::from(name(*w))).collect()
}

fn constrain(schema: &mut RefOr<Schema>, f: &dyn Fn(&mut Object)) {
    if let RefOr::T(Schema::Object(o)) = schema {
        f(o);
    }
}

fn pattern(p: &'static str) -> impl Fn(&mut Object) {
    move |o| o.pattern = Some(p.into())
}

fn one_of(values: Vec<Value>) -> impl Fn(&mut Object) {
    move |o| o.enum_values = Some(values.clone())
}

fn name(max: usize) -> impl Fn(&mut Object) {
    move |o| {
        o.min_length = Some(1);
        o.max_length = Some(max);
        o.pattern = Some(NAME.into());
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

impl Modify for Constraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let query = |name: &str| -> Option<Rule> {
            Some(match name {
                "activity" => Box::new(one_of(words(ActivityKind::ALL, ActivityKind::as_str))),
                "status" => Box::new(one_of(words(Status::ALL, Status::as_str))),
                "service" => Box::new(one_of(words(Service::ALL, Service::as_str))),
                "format" => Box::new(one_of(vec!["csv".into(), "ndjson".into()])),
                "from" | "to" => Box::new(|o: &mut Object| {
                    o.format = Some(SchemaFormat::KnownFormat(KnownFormat::DateTime));
                }),
                "limit" => Box::new(|o: &mut Object| {
                    o.schema_type = SchemaType::Type(Type::Integer);
                    o.minimum = Some(1.into());
                    o.maximum = Some(200.into());
                }),
                "q" => Box::new(|o: &mut Object| {
                    o.max_length = Some(200);
                    o.pattern = Some(TEXT.into());
                }),
                "user" => Box::new(pattern(TEXT)),
                _ => return None,
            })
        };
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                for p in op.parameters.iter_mut().flatten() {
                    let RefOr::T(p) = p else {
                        continue;
                    };
                    let Some(schema) = p.schema.as_mut() else {
                        continue;
                    };
                    match (&p.parameter_in, p.name.as_str()) {
                        (ParameterIn::Path, "account" | "site" | "id") => {
                            constrain(schema, &pattern(ID))
                        }
                        (ParameterIn::Query, n) => {
                            if let Some(f) = query(n) {
                                constrain(schema, &*f);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let properties: [(&str, &str, Rule); 24] = [
            ("ActivityIn", "id", Box::new(pattern(ID))),
            ("ActivityIn", "account_id", Box::new(pattern(ID))),
            ("ActivityIn", "site_id", Box::new(pattern(ID))),
            ("ActivityIn", "description", Box::new(pattern(TEXT))),
            ("ActivityIn", "error", Box::new(pattern(TEXT))),
            ("EndIn", "description", Box::new(pattern(TEXT))),
            ("EndIn", "error", Box::new(pattern(TEXT))),
            (
                "ActorIn",
                "email",
                Box::new(|o: &mut Object| {
                    o.max_length = Some(254);
                    o.pattern = Some(EMAIL.into());
                }),
            ),
            ("ActorIn", "name", Box::new(name(200))),
            ("AccountIn", "name", Box::new(name(200))),
            ("AccountIn", "partner", Box::new(name(200))),
            (
                "AccountIn",
                "partner_colour",
                Box::new(pattern("^#[0-9A-Fa-f]{6}$")),
            ),
            ("SiteIn", "account_id", Box::new(pattern(ID))),
            ("SiteIn", "name", Box::new(name(200))),
            ("EnvironmentSpec", "docroot", Box::new(pattern(DOCROOT))),
            ("TemplateIn", "template", Box::new(pattern(ID))),
            ("BackupRefIn", "backup", Box::new(pattern(ID))),
            (
                "BackupIn",
                "environment",
                Box::new(one_of(words(Environment::ALL, Environment::as_str))),
            ),
            (
                "PushIn",
                "scope",
                Box::new(one_of(words(PUSH_SCOPES, PushScope::as_str))),
            ),
            (
                "PushIn",
                "on_conflict",
                Box::new(one_of(words(ON_CONFLICT, OnConflict::as_str))),
            ),
            ("PushIn", "preview", Box::new(pattern(ID))),
            ("RestoreIn", "backup", Box::new(pattern(ID))),
            (
                "RestoreIn",
                "scope",
                Box::new(one_of(words(RESTORE_SCOPES, PushScope::as_str))),
            ),
            (
                "SiteUrl",
                "",
                Box::new(|o: &mut Object| {
                    o.max_length = Some(2000);
                    o.pattern = Some(URL.into());
                }),
            ),
        ];
        for (schema, property, f) in &properties {
            let Some(s) = components.schemas.get_mut(*schema) else {
                continue;
            };
            if property.is_empty() {
                constrain(s, &**f);
            } else if let RefOr::T(Schema::Object(o)) = s
                && let Some(p) = o.properties.get_mut(*property)
            {
                constrain(p, &**f);
            }
        }
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Whether the server is healthy, and nothing else: anyone may ask, so it names no number
/// that moves with any tenant's activity.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 500, body = crate::error::ErrorBody)))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    // The store answers a read, or the server is not healthy.
    state.store.last_change_no().await?;
    Ok(Json(Health { status: "ok" }))
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::observe::prometheus().render(),
    )
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi())
}
