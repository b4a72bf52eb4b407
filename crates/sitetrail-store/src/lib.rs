//! sitetrail's persistence. One trait, [`Store`]; one implementation per database. The store
//! keeps the real actor and enforces the append-only lifecycle; it never decides what a
//! viewer sees (that is [`sitetrail_core::view`]).

mod keys;
pub mod postgres;
mod record;
mod rows;
pub mod sqlite;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Audience, Cursor, Ending, InvalidField,
    NewActivity, Page, Site, SiteId, StoredActivity,
};
use tokio::sync::broadcast;

pub use keys::{ApiKey, KeyCheck};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Internal(e.into())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a reader may reach: one account, optionally narrowed to one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account: AccountId,
    pub site: Option<SiteId>,
}

/// The outcome of recording an activity: `created` is false for a replay.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub activity: StoredActivity,
    pub created: bool,
}

/// One page of the log, newest first, with cursors to the pages around it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub items: Vec<StoredActivity>,
    /// Older activities follow.
    pub next: Option<Cursor>,
    /// Newer activities precede (only when this page was reached through a cursor).
    pub prev: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Ended,
}

/// A write to an activity, in the order of `change_no`: what the live stream carries.
#[derive(Debug, Clone)]
pub struct Change {
    pub change_no: i64,
    pub kind: ChangeKind,
    pub activity: StoredActivity,
}

impl ChangeKind {
    pub fn of(a: &StoredActivity) -> Self {
        if a.status.is_ended() {
            ChangeKind::Ended
        } else {
            ChangeKind::Created
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn upsert_account(&self, account: &Account) -> StoreResult<()>;
    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>>;
    /// A site never moves to another account: trying is a conflict.
    async fn upsert_site(&self, site: &Site) -> StoreResult<()>;
    async fn site(&self, id: &SiteId) -> StoreResult<Option<Site>>;
    async fn sites_of(&self, account: &AccountId) -> StoreResult<Vec<Site>>;
    /// Every site whose live environment has a docroot here: the staging engine's sites.
    async fn hosted_sites(&self) -> StoreResult<Vec<Site>>;

    /// Records activities all or nothing; each is committed before this returns.
    async fn record(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<Recorded>>;
    /// The one transition `in_progress → completed | failed`; a second one is a conflict.
    async fn end(&self, id: &ActivityId, ending: Ending) -> StoreResult<StoredActivity>;
    async fn activity(&self, id: &ActivityId) -> StoreResult<Option<StoredActivity>>;
    async fn list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Listing>;
    /// Changes after `change_no` in order, at most `limit`, optionally for one site.
    async fn changes_after(
        &self,
        change_no: i64,
        site: Option<&SiteId>,
        limit: u32,
    ) -> StoreResult<Vec<Change>>;
    /// The newest change number committed so far.
    async fn last_change_no(&self) -> StoreResult<i64>;
    /// Wakes whenever a change is committed: at once for this process's commits and, on
    /// PostgreSQL, for every server's (LISTEN/NOTIFY). Readers still poll
    /// [`Store::changes_after`] now and then: a wake can be missed (SQLite written by another
    /// process, a lost listener connection), a change cannot.
    fn subscribe_commits(&self) -> broadcast::Receiver<i64>;

    async fn create_api_key(&self, name: &str) -> StoreResult<ApiKey>;
    async fn check_api_key(&self, presented: &str) -> StoreResult<KeyCheck>;
}

pub type DynStore = Arc<dyn Store>;
