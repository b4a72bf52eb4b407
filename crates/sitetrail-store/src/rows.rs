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

pub const COLS: &str = "seq, id, account_id, site_id, environment, service, activity, \
    status, actor_kind, actor_email, actor_name, description, error, details, created_at, \
    completed_at, change_no";

pub const SITE_COLS: &str =
    "id, account_id, name, live_url, live_docroot, staging_url, staging_docroot";

pub const ACCESS_COLS: &str =
    "seq, account_id, site_id, audience, actor_kind, actor_email, actor_name, action, query, at";

/// A look at the log as its columns hold it.
#[derive(sqlx::FromRow)]
pub struct AccessRow {
    pub seq: i64,
    pub account_id: String,
    pub site_id: Option<String>,
    pub audience: String,
    pub actor_kind: String,
    pub actor_email: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub query: String,
    pub at: i64,
}

impl AccessRow {
    pub fn decode(self) -> StoreResult<crate::Access> {
        let corrupt = |what: &str| anyhow::anyhow!("corrupt {what} in the access log");
        Ok(crate::Access {
            seq: self.seq,
            account_id: AccountId::parse(&self.account_id).map_err(|_| corrupt("account"))?,
            site_id: self
                .site_id
                .as_deref()
                .map(SiteId::parse)
                .transpose()
                .map_err(|_| corrupt("site"))?,
            audience: Audience::parse(&self.audience).ok_or_else(|| corrupt("audience"))?,
            actor: Actor {
                kind: ActorKind::parse(&self.actor_kind).ok_or_else(|| corrupt("actor"))?,
                email: self
                    .actor_email
                    .as_deref()
                    .map(Email::parse)
                    .transpose()
                    .map_err(|_| corrupt("email"))?,
                name: self.actor_name,
            },
            action: crate::AccessAction::parse(&self.action).ok_or_else(|| corrupt("action"))?,
            query: self.query,
            at: Timestamp::from_millis(self.at).ok_or_else(|| corrupt("time"))?,
        })
    }
}

/// An activity a write group names, with the hash of the request that recorded it.
#[derive(sqlx::FromRow)]
pub struct Prefetched {
    #[sqlx(flatten)]
    pub row: ActivityRow,
    pub request_sha256: Vec<u8>,
}

/// An activity as its columns hold it.
#[derive(sqlx::FromRow)]
pub struct ActivityRow {
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
pub struct SiteRow {
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
pub fn list_query<DB>(
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
    let mut q = QueryBuilder::<DB>::new(head);
    q.push(COLS).push(" FROM activities WHERE ");
    push_page(&mut q, scope, audience, filter, page);
    q
}

/// A page's conditions, cursor, order and limit, after `... FROM activities WHERE `.
pub fn push_page(
    q: &mut impl SqlSink,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
    page: Page,
) {
    let direction = page.cursor.map_or(Direction::Older, |c| c.direction);
    push_conditions(q, scope, audience, filter);
    if let Some(c) = page.cursor {
        match c.direction {
            Direction::Older => q.sql(" AND (created_at, seq) < ("),
            Direction::Newer => q.sql(" AND (created_at, seq) > ("),
        };
        q.int(c.created_at.millis());
        q.sql(", ");
        q.int(c.seq);
        q.sql(")");
    }
    match direction {
        Direction::Older => q.sql(" ORDER BY created_at DESC, seq DESC LIMIT "),
        Direction::Newer => q.sql(" ORDER BY created_at ASC, seq ASC LIMIT "),
    };
    q.int(i64::from(page.limit) + 1);
}

/// Where the text and the binds of a query go: sqlx's query builder, or the statement the
/// SQLite export prepares itself ([`crate::export`]).
/// Every account the store knows of, in order: registered ones, those with a chain, and
/// those named by activities. The last are found by stepping through the account index
/// from one account to the next (a probe per account), where `SELECT DISTINCT` would read
/// every entry of it: 6.6 s at 10M activities on PostgreSQL, each time retention ran.
pub const ACCOUNT_IDS: &str = "WITH RECURSIVE logged(id) AS ( \
       SELECT (SELECT account_id FROM activities ORDER BY account_id LIMIT 1) \
       UNION ALL \
       SELECT (SELECT account_id FROM activities WHERE account_id > logged.id \
               ORDER BY account_id LIMIT 1) \
       FROM logged WHERE logged.id IS NOT NULL) \
     SELECT id FROM accounts UNION SELECT account_id FROM chain_heads \
     UNION SELECT id FROM logged WHERE id IS NOT NULL ORDER BY 1";

pub trait SqlSink {
    fn sql(&mut self, text: &str);
    fn text(&mut self, value: &str);
    fn int(&mut self, value: i64);
}

impl<DB> SqlSink for QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    fn sql(&mut self, text: &str) {
        self.push(text);
    }

    fn text(&mut self, value: &str) {
        self.push_bind(value);
    }

    fn int(&mut self, value: i64) {
        self.push_bind(value);
    }
}

/// The conditions on `activities` of every read of the log (pages and exports): the scope,
/// then the filters.
pub fn push_conditions(
    q: &mut impl SqlSink,
    scope: &Scope,
    audience: Audience,
    filter: &ActivityFilter,
) {
    match &scope.site {
        Some(site) => {
            // The site must be one of the viewer's account; then all its activities are (the
            // writer checks it), so the account needs no condition on `activities`, and the
            // site's index is the only one a planner can pick, whatever its statistics say.
            q.sql("site_id = ");
            q.text(site.as_str());
            q.sql(" AND EXISTS (SELECT 1 FROM sites WHERE sites.id = ");
            q.text(site.as_str());
            q.sql(" AND sites.account_id = ");
            q.text(scope.account.as_str());
            q.sql(")");
        }
        None => {
            q.sql("account_id = ");
            q.text(scope.account.as_str());
        }
    }
    push_filters(q, audience, filter);
}

fn push_filters(q: &mut impl SqlSink, audience: Audience, f: &ActivityFilter) {
    if let Some(k) = f.activity {
        q.sql(" AND activity = ");
        q.text(k.as_str());
    }
    if let Some(s) = f.status {
        q.sql(" AND status = ");
        q.text(s.as_str());
    }
    if let Some(s) = f.service {
        q.sql(" AND service = ");
        q.text(s.as_str());
    }
    match &f.user {
        None => {}
        Some(UserPredicate::Kind(k)) => {
            q.sql(" AND actor_kind = ");
            q.text(k.as_str());
        }
        Some(UserPredicate::Email { email_lower, kinds }) => {
            q.sql(" AND lower(actor_email) = ");
            q.text(email_lower);
            q.sql(" AND actor_kind IN (");
            for (i, k) in kinds.iter().enumerate() {
                if i > 0 {
                    q.sql(", ");
                }
                q.text(k.as_str());
            }
            q.sql(")");
        }
    }
    if let Some(t) = f.from {
        q.sql(" AND created_at >= ");
        q.int(t.millis());
    }
    if let Some(t) = f.to {
        q.sql(" AND created_at < ");
        q.int(t.millis());
    }
    // `q` and the search columns are both lower-cased by the same function, so a plain LIKE
    // (case-sensitive in PostgreSQL, ASCII-folding in SQLite) behaves the same on both.
    if let Some(text) = &f.q {
        match audience {
            Audience::Internal => q.sql(" AND search_internal LIKE "),
            Audience::Client => q.sql(" AND coalesce(search_client, search_internal) LIKE "),
        };
        q.text(&format!("%{}%", escape_like(text)));
        q.sql(" ESCAPE '\\'");
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
pub fn listing(mut items: Vec<StoredActivity>, page: Page) -> Listing {
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
