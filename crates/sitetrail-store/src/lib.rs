//! sitetrail's persistence. One trait, [`Store`]; one implementation per database. The store
//! keeps the real actor and enforces the append-only lifecycle; it never decides what a
//! viewer sees (that is [`sitetrail_core::view`]).

pub mod backend;
pub mod chain;
#[cfg(feature = "contract")]
pub mod contract;
pub mod export;
pub mod keys;
pub mod plan;
pub mod private;
pub mod record;
pub mod roster;
pub mod rows;
pub mod verify;
pub mod writer;
pub mod writes;

use std::sync::Arc;

use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Actor, Audience, Cursor, Ending, InvalidField,
    NewActivity, Page, Roster, Site, SiteId, StoredActivity, Timestamp,
};
use tokio::sync::broadcast;

pub use chain::{CheckpointBody, CheckpointKey};
pub use export::{EXPORT_READERS, ExportColumns, ExportStream};
pub use keys::{ApiKey, KeyCheck};
pub use roster::{MAX_ROSTER, RosterEntry};
pub use verify::{AccountReport, Problem, ProblemKind};

/// How long an account's activities are kept when it has no retention period of its own.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;
/// The longest retention period an account may have (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// One pass of the retention policy over an account: remove at most `limit` ended
/// activities created before `before`, oldest first.
#[derive(Debug, Clone)]
pub struct PruneRequest {
    pub account: AccountId,
    pub before: Timestamp,
    pub limit: u32,
    /// The period that set `before`, for the prune's description.
    pub retention_days: u32,
}

/// What one prune pass removed: per site, the activity that logged it and how many it
/// removed.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub removed: u64,
    pub logged: Vec<StoredActivity>,
}

/// What a viewer did with the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessAction {
    /// Read a page of the log (API or dashboard).
    List,
    /// Read one activity.
    Get,
    /// Exported the log.
    Export,
    /// Opened the live stream.
    Stream,
}

impl AccessAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessAction::List => "list",
            AccessAction::Get => "get",
            AccessAction::Export => "export",
            AccessAction::Stream => "stream",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "list" => AccessAction::List,
            "get" => AccessAction::Get,
            "export" => AccessAction::Export,
            "stream" => AccessAction::Stream,
            _ => return None,
        })
    }
}

/// One look at the log: the internal-only audit of who looked.
#[derive(Debug, Clone)]
pub struct Access {
    /// Assigned by the store.
    pub seq: i64,
    pub account_id: AccountId,
    pub site_id: Option<SiteId>,
    pub audience: Audience,
    pub actor: Actor,
    pub action: AccessAction,
    /// The filters, as a query string.
    pub query: String,
    pub at: Timestamp,
}

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

    /// Records activities all or nothing; each is committed before this returns. A support
    /// actor is put on the roster of its account's partner before its activity is written.
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

    /// Puts support identities on the rosters of their accounts' partners (a no-op for one
    /// already there).
    async fn add_to_roster(&self, people: Vec<RosterEntry>) -> StoreResult<()>;
    /// The roster of the partner of `account`: every support identity recorded for any of
    /// the partner's accounts (and for `account` itself, registered or not), at most
    /// [`MAX_ROSTER`] of them.
    async fn roster(&self, account: &AccountId) -> StoreResult<Arc<Roster>>;

    async fn create_api_key(&self, name: &str) -> StoreResult<ApiKey>;
    async fn check_api_key(&self, presented: &str) -> StoreResult<KeyCheck>;

    /// Every account id the store knows of (registered or named by activities and chains).
    async fn account_ids(&self) -> StoreResult<Vec<AccountId>>;
    /// Sets an account's retention period (`None`: the default). Unknown account: not found.
    async fn set_retention_days(&self, account: &AccountId, days: Option<u32>) -> StoreResult<()>;
    /// The account's retention period, the default when it has none of its own.
    async fn retention_days(&self, account: &AccountId) -> StoreResult<u32>;
    /// One bounded pass of the retention policy, in one transaction: never touches an
    /// `in_progress` activity nor the prunes' own entries; logs one `prune_activity_log`
    /// activity per site it removed from, sealing what it removed.
    async fn prune(&self, request: PruneRequest) -> StoreResult<Pruned>;
    /// Signs a checkpoint for every account whose chain moved since its last one.
    async fn checkpoint(&self, key: &CheckpointKey) -> StoreResult<Vec<CheckpointBody>>;
    /// Checks the chains, checkpoints and activities of one account or all of them, in one
    /// consistent read.
    async fn verify(
        &self,
        account: Option<&AccountId>,
        trusted: &[[u8; 32]],
    ) -> StoreResult<Vec<AccountReport>>;
    /// Records looks at the log (the audit of who looked).
    async fn record_access(&self, batch: Vec<Access>) -> StoreResult<()>;
    /// Looks at an account's log (optionally one site's), newest first, before `before`.
    async fn accesses(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Access>>;

    /// Everything [`Store::list`] would page through for this scope, audience and filter, in
    /// the same order (newest first), as one long read in index order handed over in chunks.
    /// The reader waits for the consumer, so memory stays flat whatever the size.
    async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        columns: ExportColumns,
    ) -> StoreResult<ExportStream>;
}

pub type DynStore = Arc<dyn Store>;
