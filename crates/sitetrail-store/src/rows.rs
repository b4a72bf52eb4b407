//! What both backends read the same way: the columns of an activity and of a site, their
//! decoding, the list query (built with binds, so each database gets its own placeholders)
//! and the assembly of a page with its cursors.

use std::str::FromStr;

use sitetrail_core::{
    AccountId, ActivityFilter, ActivityId, ActivityKind, Actor, ActorKind, Audience, Cursor,
    Direction, Email, EnvironmentSpec, Page, Service, Site, SiteId, SiteUrl, Status,
    StoredActivity, Timestamp, UserPredicate,
};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{Listing, Scope, StoreError, StoreResult};

pub(crate) const COLS: &str = "seq, id, account_id, site_id, environment, service, activity, \
    status, actor_kind, actor_email, actor_name, description, error, details, created_at, \
    completed_at, change_no";

pub(crate) const SITE_COLS: &str =
    "id, account_id, name, live_url, live_docroot, staging_url, staging_docroot";

/// An activity as its columns hold it.
#[derive(sqlx::FromRow)]
pub(crate) struct ActivityRow {
    pub seq: i64,
    pub id: String,
    pub account_id: String,
    pub site_id: String,
    pub environment: String,
    pub service: String,
    pub activity: String,
    pub status: String,
    pub actor_kind: String,
    pub actor_email: Option<String>,
    pub actor_name: Option<String>,
    pub description: String,
    pub error: Option<String>,
    pub details: String,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub change_no: i64,
}

impl ActivityRow {
    pub fn decode(self) -> StoreResult<StoredActivity> {
        fn parse<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> anyhow::Result<T> {
            r.map_err(|e| anyhow::anyhow!("corrupt {what} in the activity log: {e}"))
        }
        let inner = || -> anyhow::Result<StoredActivity> {
            let details: serde_json::Value = serde_json::from_str(&self.details)?;
            Ok(StoredActivity {
                seq: self.seq,
                id: parse(ActivityId::parse(&self.id), "id")?,
                account_id: parse(AccountId::parse(&self.account_id), "account")?,
                site_id: parse(SiteId::parse(&self.site_id), "site")?,
                environment: parse(
                    sitetrail_core::Environment::parse(&self.environment),
                    "environment",
                )?,
                service: parse(Service::parse(&self.service), "service")?,
                activity: parse(ActivityKind::parse(&self.activity), "activity")?,
                status: parse(Status::parse(&self.status), "status")?,
                actor: Actor {
                    kind: ActorKind::parse(&self.actor_kind)
                        .ok_or_else(|| anyhow::anyhow!("corrupt actor kind in the activity log"))?,
                    email: self
                        .actor_email
                        .as_deref()
                        .map(|e| parse(Email::parse(e), "actor email"))
                        .transpose()?,
                    name: self.actor_name,
                },
                description: self.description,
                error: self.error,
                details: match details {
                    serde_json::Value::Object(m) => m,
                    _ => anyhow::bail!("corrupt details in the activity log"),
                },
                created_at: Timestamp::from_millis(self.created_at)
                    .ok_or_else(|| anyhow::anyhow!("corrupt created_at in the activity log"))?,
                completed_at: self
                    .completed_at
                    .map(|c| {
                        Timestamp::from_millis(c).ok_or_else(|| {
                            anyhow::anyhow!("corrupt completed_at in the activity log")
                        })
                    })
                    .transpose()?,
            })
        };
        inner().map_err(StoreError::Internal)
    }
}

/// A site as its columns hold it.
#[derive(sqlx::FromRow)]
pub(crate) struct SiteRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub live_url: String,
    pub live_docroot: Option<String>,
    pub staging_url: Option<String>,
    pub staging_docroot: Option<String>,
}

impl SiteRow {
    pub fn decode(self) -> StoreResult<Site> {
        let env = |url: &str, docroot: Option<String>| -> anyhow::Result<EnvironmentSpec> {
            Ok(EnvironmentSpec {
                url: SiteUrl::parse(url).map_err(|e| anyhow::anyhow!("corrupt site URL: {e}"))?,
                docroot,
            })
        };
        let inner = || -> anyhow::Result<Site> {
            Ok(Site {
                id: SiteId::from_str(&self.id)?,
                account_id: AccountId::from_str(&self.account_id)?,
                name: self.name,
                live: env(&self.live_url, self.live_docroot)?,
                staging: self
                    .staging_url
                    .as_deref()
                    .map(|u| env(u, self.staging_docroot))
                    .transpose()?,
            })
        };
        inner().map_err(StoreError::Internal)
    }
}

/// `head` + the columns + the scope, the filters and the cursor, newest first (or oldest
/// first towards newer pages), one row more than the page to know whether another follows.
pub(crate) fn list_query<DB>(
    head: &'static str,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    page: Page,
) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let direction = page.cursor.map_or(Direction::Older, |c| c.direction);
    let mut q = QueryBuilder::<DB>::new(head);
    q.push(COLS).push(" FROM activities WHERE ");
    match &scope.site {
        Some(site) => {
            // The site must be one of the viewer's account; then all its activities are (the
            // writer checks it), so the account needs no condition on `activities`, and the
            // site's index is the only one a planner can pick, whatever its statistics say.
            q.push("site_id = ").push_bind(site.as_str());
            q.push(" AND EXISTS (SELECT 1 FROM sites WHERE sites.id = ")
                .push_bind(site.as_str())
                .push(" AND sites.account_id = ")
                .push_bind(scope.account.as_str())
                .push(")");
        }
        None => {
            q.push("account_id = ").push_bind(scope.account.as_str());
        }
    }
    push_filters(&mut q, audience, filter);
    if let Some(c) = page.cursor {
        match c.direction {
            Direction::Older => q.push(" AND (created_at, seq) < ("),
            Direction::Newer => q.push(" AND (created_at, seq) > ("),
        };
        q.push_bind(c.created_at.millis())
            .push(", ")
            .push_bind(c.seq)
            .push(")");
    }
    match direction {
        Direction::Older => q.push(" ORDER BY created_at DESC, seq DESC LIMIT "),
        Direction::Newer => q.push(" ORDER BY created_at ASC, seq ASC LIMIT "),
    };
    q.push_bind(i64::from(page.limit) + 1);
    q
}

fn push_filters<DB>(q: &mut QueryBuilder<DB>, audience: Audience, f: &ActivityFilter)
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    if let Some(k) = f.activity {
        q.push(" AND activity = ").push_bind(k.as_str());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(s) = f.service {
        q.push(" AND service = ").push_bind(s.as_str());
    }
    match &f.user {
        None => {}
        Some(UserPredicate::Kind(k)) => {
            q.push(" AND actor_kind = ").push_bind(k.as_str());
        }
        Some(UserPredicate::Email { email_lower, kinds }) => {
            q.push(" AND lower(actor_email) = ")
                .push_bind(email_lower.clone());
            q.push(" AND actor_kind IN (");
            let mut sep = q.separated(", ");
            for k in kinds.iter() {
                sep.push_bind(k.as_str());
            }
            q.push(")");
        }
    }
    if let Some(t) = f.from {
        q.push(" AND created_at >= ").push_bind(t.millis());
    }
    if let Some(t) = f.to {
        q.push(" AND created_at < ").push_bind(t.millis());
    }
    // `q` and the search columns are both lower-cased by the same function, so a plain LIKE
    // (case-sensitive in PostgreSQL, ASCII-folding in SQLite) behaves the same on both.
    if let Some(text) = &f.q {
        let pattern = format!("%{}%", escape_like(text));
        match audience {
            Audience::Internal => q.push(" AND search_internal LIKE "),
            Audience::Client => q.push(" AND coalesce(search_client, search_internal) LIKE "),
        };
        q.push_bind(pattern).push(" ESCAPE '\\'");
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page from the rows of [`list_query`]: trims the extra row and sets the cursors.
pub(crate) fn listing(mut items: Vec<StoredActivity>, page: Page) -> Listing {
    let direction = page.cursor.map_or(Direction::Older, |c| c.direction);
    let more = items.len() > page.limit as usize;
    items.truncate(page.limit as usize);
    match direction {
        Direction::Older => Listing {
            next: more
                .then(|| items.last().map(|a| Cursor::after(a, Direction::Older)))
                .flatten(),
            prev: page
                .cursor
                .and(items.first().map(|a| Cursor::after(a, Direction::Newer))),
            items,
        },
        Direction::Newer => {
            items.reverse();
            Listing {
                prev: more
                    .then(|| items.first().map(|a| Cursor::after(a, Direction::Newer)))
                    .flatten(),
                next: items.last().map(|a| Cursor::after(a, Direction::Older)),
                items,
            }
        }
    }
}
