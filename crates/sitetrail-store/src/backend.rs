//! What every backend shares, written once whatever the driver: the reads (through sqlx's
//! query builder, which writes each database's placeholders), the writes (through the one
//! writer, [`crate::writer`]) and the caches. A backend crate supplies its pool and writer,
//! where it keeps a chain's head, its verify snapshot and its export; [`crate::Store`] is
//! then implemented for it here, once.

use std::sync::Arc;

use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, Audience, Colour, Ending, NewActivity, Page,
    Roster, Site, SiteId, StoredActivity,
};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, QueryBuilder, Type};
use tokio::sync::broadcast;

use crate::AccountReport;
use crate::chain::{CheckpointBody, CheckpointKey};
use crate::keys::{self, ApiKey, KeyCache, KeyCheck, StoredKey};
use crate::record;
use crate::roster::{self, RosterEntry, RosterVersion};
use crate::rows::{self, AccessRow, ActivityRow, COLS, SITE_COLS, SiteRow};
use crate::verify::HeadQuery;
use crate::writer::{Done, Work, WriterHandle};
use crate::{
    Access, Change, ChangeKind, ExportColumns, ExportStream, Listing, PruneRequest, Pruned,
    Recorded, Scope, Store, StoreResult,
};

/// A backend: its driver, its shared parts and what only it knows.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    type Db: Database;
    /// Where this backend keeps a chain's head, for `verify`.
    const HEAD: HeadQuery;

    fn shared(&self) -> &Shared<Self::Db>;

    /// The one read transaction `verify` runs in: every account as of one moment.
    async fn snapshot(&self) -> StoreResult<sqlx::Transaction<'static, Self::Db>>;

    /// [`Store::export`], on connections of the export's own.
    async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        columns: ExportColumns,
    ) -> StoreResult<ExportStream>;
}

/// A backend's read pool, writer and caches.
pub struct Shared<DB: Database> {
    read: Pool<DB>,
    writer: WriterHandle,
    commits: broadcast::Sender<i64>,
    keys: KeyCache,
    roster_written: roster::Written,
    rosters: roster::RosterCache,
}

impl<DB: Database> Shared<DB> {
    pub fn new(read: Pool<DB>, writer: WriterHandle, commits: broadcast::Sender<i64>) -> Self {
        Shared {
            read,
            writer,
            commits,
            keys: KeyCache::default(),
            roster_written: roster::Written::default(),
            rosters: roster::RosterCache::default(),
        }
    }

    /// The read pool (for a backend's own reads: plans in tests, its export).
    pub fn read(&self) -> &Pool<DB> {
        &self.read
    }
}

/// `SELECT head` + `WHERE column = value` + `tail`, the value bound.
fn by<DB>(head: &str, column: &str, value: &str, tail: &str) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new(head);
    q.push(" WHERE ")
        .push(column)
        .push(" = ")
        .push_bind(value.to_owned())
        .push(tail);
    q
}

/// The answer a kind of work always gets, or a bug in the writer.
macro_rules! answer {
    ($done:expr, $variant:ident) => {
        match $done {
            Done::$variant(v) => Ok(v),
            _ => unreachable!(concat!("the writer answers with ", stringify!($variant))),
        }
    };
}

#[async_trait]
impl<B> Store for B
where
    B: Backend,
    <B::Db as Database>::Arguments: Default + IntoArguments<B::Db>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'t> &'t str: Encode<'t, B::Db> + Type<B::Db>,
    for<'t> String: Encode<'t, B::Db> + Type<B::Db>,
    for<'t> i64: Encode<'t, B::Db> + Type<B::Db>,
    for<'r> ActivityRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> SiteRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> AccessRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> RosterVersion: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> crate::chain::CheckpointRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (Option<i64>,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String, String): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String, Vec<u8>): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String, String, String): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (i64, Vec<u8>): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (i64, String, Vec<u8>, Vec<u8>): FromRow<'r, <B::Db as Database>::Row>,
{
    async fn upsert_account(&self, account: &Account) -> StoreResult<()> {
        let s = self.shared();
        s.writer.write(Work::UpsertAccount(account.clone())).await?;
        Ok(())
    }

    async fn account(&self, id: &AccountId) -> StoreResult<Option<Account>> {
        let s = self.shared();
        let mut q = by::<B::Db>(
            "SELECT name, partner, settings FROM accounts",
            "id",
            id.as_str(),
            "",
        );
        let row: Option<(String, String, String)> =
            q.build_query_as().fetch_optional(&s.read).await?;
        row.map(|(name, partner, settings)| -> StoreResult<Account> {
            let settings: serde_json::Value =
                serde_json::from_str(&settings).map_err(anyhow::Error::from)?;
            Ok(Account {
                id: id.clone(),
                name,
                partner,
                partner_colour: settings
                    .get("partner_colour")
                    .and_then(|c| c.as_str())
                    .and_then(|c| Colour::parse(c).ok()),
            })
        })
        .transpose()
    }

    async fn upsert_site(&self, site: &Site) -> StoreResult<()> {
        let s = self.shared();
        s.writer.write(Work::UpsertSite(site.clone())).await?;
        Ok(())
    }

    async fn site(&self, id: &SiteId) -> StoreResult<Option<Site>> {
        let s = self.shared();
        let mut q = by::<B::Db>(
            &format!("SELECT {SITE_COLS} FROM sites"),
            "id",
            id.as_str(),
            "",
        );
        let row: Option<SiteRow> = q.build_query_as().fetch_optional(&s.read).await?;
        row.map(SiteRow::decode).transpose()
    }

    async fn sites_of(&self, account: &AccountId) -> StoreResult<Vec<Site>> {
        let s = self.shared();
        let mut q = by::<B::Db>(
            &format!("SELECT {SITE_COLS} FROM sites"),
            "account_id",
            account.as_str(),
            " ORDER BY name, id",
        );
        let found: Vec<SiteRow> = q.build_query_as().fetch_all(&s.read).await?;
        found.into_iter().map(SiteRow::decode).collect()
    }

    async fn hosted_sites(&self) -> StoreResult<Vec<Site>> {
        let s = self.shared();
        let mut q = QueryBuilder::<B::Db>::new(format!(
            "SELECT {SITE_COLS} FROM sites WHERE live_docroot IS NOT NULL ORDER BY id"
        ));
        let found: Vec<SiteRow> = q.build_query_as().fetch_all(&s.read).await?;
        found.into_iter().map(SiteRow::decode).collect()
    }

    async fn record(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<Recorded>> {
        let s = self.shared();
        let support = s.roster_written.unwritten(roster::support_actors(&batch));
        if !support.is_empty() {
            self.add_to_roster(support).await?;
        }
        let done = s
            .writer
            .write(Work::Record(record::prepare_all(batch)?))
            .await?;
        answer!(done, Recorded)
    }

    async fn end(&self, id: &ActivityId, ending: Ending) -> StoreResult<StoredActivity> {
        let done = self
            .shared()
            .writer
            .write(Work::End(id.clone(), ending))
            .await?;
        answer!(done, Ended).map(|a| *a)
    }

    async fn activity(&self, id: &ActivityId) -> StoreResult<Option<StoredActivity>> {
        let s = self.shared();
        let mut q = by::<B::Db>(
            &format!("SELECT {COLS} FROM activities"),
            "id",
            id.as_str(),
            "",
        );
        let row: Option<ActivityRow> = q.build_query_as().fetch_optional(&s.read).await?;
        row.map(ActivityRow::decode).transpose()
    }

    async fn list(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        page: Page,
    ) -> StoreResult<Listing> {
        let s = self.shared();
        let mut q = rows::list_query::<B::Db>("SELECT ", scope, audience, filter, page);
        let found: Vec<ActivityRow> = q.build_query_as().fetch_all(&s.read).await?;
        let items = found
            .into_iter()
            .map(ActivityRow::decode)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(rows::listing(items, page))
    }

    async fn changes_after(
        &self,
        change_no: i64,
        site: Option<&SiteId>,
        limit: u32,
    ) -> StoreResult<Vec<Change>> {
        let s = self.shared();
        let mut q =
            QueryBuilder::<B::Db>::new(format!("SELECT {COLS} FROM activities WHERE change_no > "));
        q.push_bind(change_no);
        if let Some(site) = site {
            q.push(" AND site_id = ")
                .push_bind(site.as_str().to_owned());
        }
        q.push(" ORDER BY change_no LIMIT ")
            .push_bind(i64::from(limit));
        let found: Vec<ActivityRow> = q.build_query_as().fetch_all(&s.read).await?;
        found
            .into_iter()
            .map(|r| {
                let change_no = r.change_no;
                let activity = r.decode()?;
                Ok(Change {
                    change_no,
                    kind: ChangeKind::of(&activity),
                    activity,
                })
            })
            .collect()
    }

    async fn last_change_no(&self) -> StoreResult<i64> {
        let s = self.shared();
        let mut q = by::<B::Db>("SELECT value FROM counters", "name", "change", "");
        let (n,): (i64,) = q.build_query_as().fetch_one(&s.read).await?;
        Ok(n)
    }

    fn subscribe_commits(&self) -> broadcast::Receiver<i64> {
        self.shared().commits.subscribe()
    }

    async fn add_to_roster(&self, people: Vec<RosterEntry>) -> StoreResult<()> {
        if people.is_empty() {
            return Ok(());
        }
        let s = self.shared();
        s.writer.write(Work::AddToRoster(people.clone())).await?;
        s.roster_written.remember(&people);
        Ok(())
    }

    async fn roster(&self, account: &AccountId) -> StoreResult<Arc<Roster>> {
        let s = self.shared();
        // The roster's rows: the account's own and those of every account of its partner.
        let of_partner = |q: &mut QueryBuilder<B::Db>| {
            let a = account.as_str().to_owned();
            q.push(" FROM support_roster WHERE account_id IN (SELECT CAST(")
                .push_bind(a.clone())
                .push(" AS TEXT) UNION SELECT id FROM accounts WHERE partner = ")
                .push("(SELECT partner FROM accounts WHERE id = ")
                .push_bind(a)
                .push("))");
        };
        let mut q = QueryBuilder::<B::Db>::new("SELECT (SELECT partner FROM accounts WHERE id = ");
        q.push_bind(account.as_str().to_owned()).push(
            ") AS partner, count(*) AS rows, CAST(coalesce(max(added_at), 0) AS BIGINT) AS newest",
        );
        of_partner(&mut q);
        let version: RosterVersion = q.build_query_as().fetch_one(&s.read).await?;
        if let Some(roster) = s.rosters.get(account, &version) {
            return Ok(roster);
        }
        let mut q = QueryBuilder::<B::Db>::new("SELECT email, name");
        of_partner(&mut q);
        q.push(" LIMIT ").push_bind(roster::MAX_ROSTER + 1);
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&s.read).await?;
        let roster = Arc::new(roster::from_rows(rows));
        s.rosters.put(account, version, roster.clone());
        Ok(roster)
    }

    async fn create_api_key(&self, name: &str) -> StoreResult<ApiKey> {
        sitetrail_core::site::check_name("name", name)?;
        let key = ApiKey::generate(name)?;
        let shown = ApiKey {
            id: key.id.clone(),
            name: key.name.clone(),
            secret: key.secret.clone(),
        };
        self.shared().writer.write(Work::CreateKey(key)).await?;
        Ok(shown)
    }

    async fn check_api_key(&self, presented: &str) -> StoreResult<KeyCheck> {
        let s = self.shared();
        let Some((id, secret)) = keys::split(presented) else {
            return Ok(KeyCheck::Invalid);
        };
        let stored = match s.keys.get(id) {
            Some(k) => Some(k),
            None => {
                let mut q = by::<B::Db>("SELECT name, secret_sha256 FROM api_keys", "id", id, "");
                let row: Option<(String, Vec<u8>)> =
                    q.build_query_as().fetch_optional(&s.read).await?;
                let stored = row.map(|(name, secret_sha256)| StoredKey {
                    name,
                    secret_sha256,
                });
                if let Some(k) = &stored {
                    s.keys.put(id, k.clone());
                }
                stored
            }
        };
        Ok(keys::check(id, secret, stored.as_ref()))
    }

    async fn account_ids(&self) -> StoreResult<Vec<AccountId>> {
        let s = self.shared();
        let mut q = QueryBuilder::<B::Db>::new(rows::ACCOUNT_IDS);
        let ids: Vec<(String,)> = q.build_query_as().fetch_all(&s.read).await?;
        ids.iter()
            .map(|(i,)| AccountId::parse(i).map_err(|e| anyhow::anyhow!("{e}").into()))
            .collect()
    }

    async fn set_retention_days(&self, account: &AccountId, days: Option<u32>) -> StoreResult<()> {
        let s = self.shared();
        s.writer
            .write(Work::SetRetention(account.clone(), days))
            .await?;
        Ok(())
    }

    async fn retention_days(&self, account: &AccountId) -> StoreResult<u32> {
        let s = self.shared();
        let mut q = by::<B::Db>(
            "SELECT CAST(retention_days AS BIGINT) FROM accounts",
            "id",
            account.as_str(),
            "",
        );
        let days: Option<(Option<i64>,)> = q.build_query_as().fetch_optional(&s.read).await?;
        Ok(record::retention(days.and_then(|(d,)| d)))
    }

    async fn prune(&self, request: PruneRequest) -> StoreResult<Pruned> {
        let done = self.shared().writer.write(Work::Prune(request)).await?;
        answer!(done, Pruned)
    }

    async fn checkpoint(&self, key: &CheckpointKey) -> StoreResult<Vec<CheckpointBody>> {
        let done = self
            .shared()
            .writer
            .write(Work::Checkpoint(key.clone()))
            .await?;
        answer!(done, Checkpointed)
    }

    async fn verify(
        &self,
        account: Option<&AccountId>,
        trusted: &[[u8; 32]],
    ) -> StoreResult<Vec<AccountReport>> {
        let accounts = match account {
            Some(a) => vec![a.clone()],
            None => self.account_ids().await?,
        };
        let mut tx = self.snapshot().await?;
        let mut reports = Vec::with_capacity(accounts.len());
        for account in accounts {
            reports
                .push(crate::verify::account::<B::Db>(&mut tx, &account, trusted, B::HEAD).await?);
        }
        tx.rollback().await?;
        Ok(reports)
    }

    async fn record_access(&self, batch: Vec<Access>) -> StoreResult<()> {
        self.shared()
            .writer
            .write(Work::RecordAccess(batch))
            .await?;
        Ok(())
    }

    async fn accesses(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Access>> {
        let s = self.shared();
        let mut q = by::<B::Db>(
            &format!("SELECT {} FROM access_log", rows::ACCESS_COLS),
            "account_id",
            account.as_str(),
            "",
        );
        if let Some(site) = site {
            q.push(" AND site_id = ")
                .push_bind(site.as_str().to_owned());
        }
        if let Some(before) = before {
            q.push(" AND seq < ").push_bind(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        let found: Vec<AccessRow> = q.build_query_as().fetch_all(&s.read).await?;
        found.into_iter().map(AccessRow::decode).collect()
    }

    async fn export(
        &self,
        scope: &Scope,
        audience: Audience,
        filter: &ActivityFilter,
        columns: ExportColumns,
    ) -> StoreResult<ExportStream> {
        Backend::export(self, scope, audience, filter, columns).await
    }
}
