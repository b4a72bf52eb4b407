//! Verification: the one read `verify` makes of an account, the same for every backend but
//! for where the head is kept (the checkpoints, the links in order, the head, the activities
//! and the pruned ids, in one read transaction), and the [`Verifier`] that walks them and
//! names the first entry that does not match ([`crate::chain`] makes the hashes).

use std::collections::HashMap;

use futures::TryStreamExt;
use serde::Serialize;
use sitetrail_core::{AccountId, ActivityKind, StoredActivity};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};

use crate::StoreResult;
use crate::chain::{
    self, Checkpoint, GENESIS, Hash, PRUNED_SHA256, content_sha256, link_sha256, prune_digest,
};
use crate::rows::{ActivityRow, COLS};

fn by_account<DB>(head: &str, account: &str, tail: &str) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    let mut q = QueryBuilder::<DB>::new(head);
    q.push(" WHERE account_id = ")
        .push_bind(account.to_owned())
        .push(tail);
    q
}

/// Where a backend keeps a chain's head, as `(select, tail)` around `WHERE account_id = ?`.
pub type HeadQuery = (&'static str, &'static str);

/// SQLite keeps each chain's head in a row of its own, moved with every group.
pub const HEAD_ROW: HeadQuery = ("SELECT link_no, link_sha256 FROM chain_heads", "");

/// PostgreSQL's head is the chain's newest link (migration `0004_heads_from_links.sql`).
pub const HEAD_LINK: HeadQuery = (
    "SELECT link_no, link_sha256 FROM chain_links",
    " ORDER BY link_no DESC LIMIT 1",
);

pub async fn account<DB>(
    conn: &mut DB::Connection,
    account: &AccountId,
    trusted: &[[u8; 32]],
    (head_sql, head_tail): HeadQuery,
) -> StoreResult<AccountReport>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'r> chain::CheckpointRow: FromRow<'r, DB::Row>,
    for<'r> (i64, String, Vec<u8>, Vec<u8>): FromRow<'r, DB::Row>,
    for<'r> (i64, Vec<u8>): FromRow<'r, DB::Row>,
    for<'r> (String, String): FromRow<'r, DB::Row>,
    for<'r> ActivityRow: FromRow<'r, DB::Row>,
{
    let a = account.as_str();
    let mut v = Verifier::new(account, trusted);
    let checkpoints: Vec<chain::CheckpointRow> = by_account::<DB>(
        "SELECT link_no, link_sha256, made_at, public_key, signature FROM chain_checkpoints",
        a,
        " ORDER BY link_no",
    )
    .build_query_as()
    .fetch_all(&mut *conn)
    .await?;
    for cp in checkpoints {
        v.checkpoint(chain::stored_checkpoint(a, cp)?);
    }
    {
        let mut q = by_account::<DB>(
            "SELECT link_no, activity_id, content_sha256, link_sha256 FROM chain_links",
            a,
            " ORDER BY link_no",
        );
        let mut links = q
            .build_query_as::<(i64, String, Vec<u8>, Vec<u8>)>()
            .fetch(&mut *conn);
        while let Some((no, id, content, hash)) = links.try_next().await? {
            v.link(
                no,
                &id,
                chain::decode_hash(&content)?,
                chain::decode_hash(&hash)?,
            );
        }
    }
    let head: Option<(i64, Vec<u8>)> = by_account::<DB>(head_sql, a, head_tail)
        .build_query_as()
        .fetch_optional(&mut *conn)
        .await?;
    v.head(head.map(chain::decode_head).transpose()?);
    {
        let mut q = by_account::<DB>(&format!("SELECT {COLS} FROM activities"), a, "");
        let mut rows = q.build_query_as::<ActivityRow>().fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let (id, seq) = (row.id.clone(), row.seq);
            match row.decode() {
                Ok(activity) => v.activity(&activity),
                Err(_) => v.unreadable(&id, seq),
            }
        }
    }
    {
        let mut q = by_account::<DB>("SELECT activity_id, prune_id FROM pruned_activities", a, "");
        let mut pruned = q.build_query_as::<(String, String)>().fetch(&mut *conn);
        while let Some((id, prune_id)) = pruned.try_next().await? {
            v.pruned(&id, &prune_id);
        }
    }
    Ok(v.finish())
}

/// What is wrong with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The activity no longer matches what the chain recorded.
    Changed,
    /// The chain names an activity the log no longer holds (and retention did not remove).
    Removed,
    /// The log holds an activity the chain never recorded.
    Inserted,
    /// A link itself was altered, or links are missing or out of order.
    ChainBroken,
    /// A checkpoint is unsigned, forged, or disagrees with the chain.
    Checkpoint,
    /// What a prune removed does not match what it sealed.
    Prune,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The link where the chain shows it (`None` for an inserted activity: it has none).
    pub link_no: Option<i64>,
    pub activity_id: Option<String>,
    pub detail: String,
    /// For an inserted activity: its place in the log.
    #[serde(skip)]
    seq: i64,
}

/// The verdict on one account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountReport {
    pub account_id: String,
    pub links: i64,
    pub activities: u64,
    pub pruned: u64,
    pub checkpoints: u64,
    /// Every problem found, the first bad entry first.
    pub problems: Vec<Problem>,
}

impl AccountReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

/// Walks one account: feed it the checkpoints, then the links in order, then the
/// activities, then the pruned ids, then [`Verifier::finish`].
pub struct Verifier {
    account: String,
    trusted: Vec<[u8; 32]>,
    checkpoints: HashMap<i64, Checkpoint>,
    checkpoint_count: u64,
    expected_no: i64,
    prev: Hash,
    latest: HashMap<String, (i64, Hash)>,
    prunes: HashMap<String, (i64, Option<String>)>,
    pruned_groups: HashMap<String, Vec<(String, Hash)>>,
    activities: u64,
    pruned: u64,
    problems: Vec<Problem>,
}

impl Verifier {
    pub fn new(account: &AccountId, trusted: &[[u8; 32]]) -> Self {
        Verifier {
            account: account.as_str().to_owned(),
            trusted: trusted.to_vec(),
            checkpoints: HashMap::new(),
            checkpoint_count: 0,
            expected_no: 1,
            prev: GENESIS,
            latest: HashMap::new(),
            prunes: HashMap::new(),
            pruned_groups: HashMap::new(),
            activities: 0,
            pruned: 0,
            problems: Vec::new(),
        }
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        link_no: Option<i64>,
        id: Option<&str>,
        detail: String,
    ) {
        self.problems.push(Problem {
            kind,
            link_no,
            activity_id: id.map(str::to_owned),
            detail,
            seq: 0,
        });
    }

    pub fn checkpoint(&mut self, cp: Checkpoint) {
        self.checkpoint_count += 1;
        if let Err(why) = cp.signed_by(&self.trusted) {
            self.problem(
                ProblemKind::Checkpoint,
                Some(cp.body.link_no),
                None,
                format!(
                    "the checkpoint at link {} is not valid: {why}",
                    cp.body.link_no
                ),
            );
            return;
        }
        self.checkpoints.insert(cp.body.link_no, cp);
    }

    pub fn link(&mut self, link_no: i64, activity_id: &str, content: Hash, stored: Hash) {
        if link_no != self.expected_no {
            self.problem(
                ProblemKind::ChainBroken,
                Some(self.expected_no),
                None,
                if link_no > self.expected_no {
                    format!("links {} to {} are missing", self.expected_no, link_no - 1)
                } else {
                    format!("link {link_no} appears out of order")
                },
            );
        }
        let computed = link_sha256(&self.prev, &self.account, link_no, activity_id, &content);
        if computed != stored {
            self.problem(
                ProblemKind::ChainBroken,
                Some(link_no),
                Some(activity_id),
                format!("link {link_no} does not follow from the link before it: it was altered"),
            );
        }
        if let Some(cp) = self.checkpoints.get(&link_no)
            && cp.body.link_sha256 != stored
        {
            self.problem(
                ProblemKind::Checkpoint,
                Some(link_no),
                Some(activity_id),
                format!("link {link_no} differs from what the checkpoint signed"),
            );
        }
        self.prev = stored;
        self.expected_no = link_no + 1;
        self.latest
            .insert(activity_id.to_owned(), (link_no, content));
    }

    /// The head row as stored; checked against the last link after the walk.
    pub fn head(&mut self, head: Option<(i64, Hash)>) {
        let last = self.expected_no - 1;
        let (no, hash) = head.unwrap_or((0, GENESIS));
        if no != last || (no > 0 && hash != self.prev) {
            self.problem(
                ProblemKind::ChainBroken,
                Some(last.min(no) + 1),
                None,
                format!("the chain's head says link {no} but the links end at {last}: links were removed or added"),
            );
        }
    }

    pub fn activity(&mut self, a: &StoredActivity) {
        self.activities += 1;
        let id = a.id.as_str();
        match self.latest.remove(id) {
            None => self.problems.push(Problem {
                kind: ProblemKind::Inserted,
                link_no: None,
                activity_id: Some(id.to_owned()),
                detail: format!(
                    "activity {id} is not in the chain: it was inserted around the store"
                ),
                seq: a.seq,
            }),
            Some((no, content)) => {
                if content != content_sha256(a) {
                    self.problem(
                        ProblemKind::Changed,
                        Some(no),
                        Some(id),
                        format!("activity {id} was changed after link {no} recorded it"),
                    );
                }
                if a.activity == ActivityKind::PruneActivityLog {
                    let sealed = a
                        .details
                        .get(PRUNED_SHA256)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    self.prunes.insert(id.to_owned(), (no, sealed));
                }
            }
        }
    }

    /// A row that no longer decodes as an activity: changed if the chain knows its id,
    /// inserted if not.
    pub fn unreadable(&mut self, activity_id: &str, seq: i64) {
        self.activities += 1;
        match self.latest.remove(activity_id) {
            Some((no, _)) => self.problem(
                ProblemKind::Changed,
                Some(no),
                Some(activity_id),
                format!("activity {activity_id} was changed after link {no} recorded it (it no longer reads as an activity)"),
            ),
            None => self.problems.push(Problem {
                kind: ProblemKind::Inserted,
                link_no: None,
                activity_id: Some(activity_id.to_owned()),
                detail: format!("activity {activity_id} is not in the chain: it was inserted around the store"),
                seq,
            }),
        }
    }

    pub fn pruned(&mut self, activity_id: &str, prune_id: &str) {
        self.pruned += 1;
        match self.latest.remove(activity_id) {
            Some((_, content)) => self
                .pruned_groups
                .entry(prune_id.to_owned())
                .or_default()
                .push((activity_id.to_owned(), content)),
            None => self.problem(
                ProblemKind::Prune,
                None,
                Some(activity_id),
                format!("{activity_id} is listed as pruned but the chain never recorded it (or it still exists)"),
            ),
        }
    }

    pub fn finish(mut self) -> AccountReport {
        let last = self.expected_no - 1;
        let beyond: Vec<i64> = self
            .checkpoints
            .keys()
            .copied()
            .filter(|&no| no > last)
            .collect();
        for no in beyond {
            self.problem(
                ProblemKind::ChainBroken,
                Some(last + 1),
                None,
                format!("a checkpoint covers link {no} but the chain ends at link {last}: links were removed"),
            );
        }
        let groups = std::mem::take(&mut self.pruned_groups);
        for (prune_id, mut removed) in groups {
            match self.prunes.remove(&prune_id) {
                Some((no, sealed)) => {
                    if sealed.as_deref() != Some(prune_digest(&mut removed).as_str()) {
                        self.problem(
                            ProblemKind::Prune,
                            Some(no),
                            Some(&prune_id),
                            format!("the activities listed as removed by {prune_id} are not the ones it sealed"),
                        );
                    }
                }
                None => self.problem(
                    ProblemKind::Prune,
                    None,
                    Some(&prune_id),
                    format!("activities are listed as removed by {prune_id}, which is not a prune in this log"),
                ),
            }
        }
        // A prune that sealed removals but has none listed: they were put back or unlisted.
        let unlisted: Vec<(String, i64)> = self
            .prunes
            .iter()
            .filter(|(_, (_, sealed))| sealed.is_some())
            .map(|(id, (no, _))| (id.clone(), *no))
            .collect();
        for (id, no) in unlisted {
            self.problem(
                ProblemKind::Prune,
                Some(no),
                Some(&id),
                format!("{id} sealed removed activities, but none are listed as removed by it"),
            );
        }
        let removed: Vec<(String, i64)> =
            self.latest.drain().map(|(id, (no, _))| (id, no)).collect();
        for (id, no) in removed {
            self.problem(
                ProblemKind::Removed,
                Some(no),
                Some(&id),
                format!("activity {id} (link {no}) was removed from the log"),
            );
        }
        // The first bad entry first: by link, then the inserted ones in log order.
        self.problems
            .sort_by_key(|p| (p.link_no.is_none(), p.link_no.unwrap_or(0), p.seq));
        AccountReport {
            account_id: self.account,
            links: last,
            activities: self.activities,
            pruned: self.pruned,
            checkpoints: self.checkpoint_count,
            problems: self.problems,
        }
    }
}
