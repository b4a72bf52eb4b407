//! The one read `verify` makes of an account, the same for every backend but for where the
//! head is kept: the checkpoints, the links in order, the head, the activities and the pruned
//! ids, fed to a [`Verifier`]. The caller runs it inside one read transaction.

use futures::TryStreamExt;
use sitetrail_core::AccountId;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};

use crate::StoreResult;
use crate::chain::{self, AccountReport, Verifier};
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
