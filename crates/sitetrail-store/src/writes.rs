//! The writes every backend's writer makes the same way, whatever the driver: accounts,
//! sites, keys, retention periods, signed checkpoints, and what a prune pass may remove. Each runs on the
//! writer's connection inside its group's transaction. (What a backend writes its own way,
//! activities and links in bulk, stays in its crate.)

use std::collections::HashMap;

use sitetrail_core::{
    Account, AccountId, Colour, InvalidField, Site, SiteId, StoredActivity, Timestamp,
};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, QueryBuilder, Type};

use crate::chain::{self, CheckpointBody, CheckpointKey};
use crate::keys::ApiKey;
use crate::rows::{ActivityRow, COLS};
use crate::writer::Done;
use crate::{PruneRequest, StoreError, StoreResult};

/// A statement with its values bound in order, each database writing its own placeholders.
fn statement<DB>(parts: &[&str], bind: impl FnOnce(&mut Binds<'_, DB>)) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
{
    let mut q = QueryBuilder::<DB>::new("");
    let mut binds = Binds {
        q: &mut q,
        parts,
        at: 0,
    };
    bind(&mut binds);
    binds.finish();
    q
}

/// Pushes the text between the values and the values themselves, in turn.
struct Binds<'q, DB: Database> {
    q: &'q mut QueryBuilder<DB>,
    parts: &'q [&'q str],
    at: usize,
}

impl<DB: Database> Binds<'_, DB>
where
    DB::Arguments: Default,
{
    fn value<T>(&mut self, v: T) -> &mut Self
    where
        T: 'static + Send + for<'t> Encode<'t, DB> + Type<DB>,
    {
        self.q.push(self.parts[self.at]);
        self.at += 1;
        self.q.push_bind(v);
        self
    }

    fn finish(&mut self) {
        for part in &self.parts[self.at..] {
            self.q.push(*part);
        }
    }
}

/// Creates or updates an account.
pub async fn upsert_account<DB>(
    conn: &mut DB::Connection,
    a: &Account,
    now: Timestamp,
) -> StoreResult<Done>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let settings = serde_json::json!({
        "partner_colour": a.partner_colour.as_ref().map(Colour::as_str),
    });
    let mut q = statement::<DB>(
        &[
            "INSERT INTO accounts (id, name, partner, settings, created_at, updated_at) VALUES (",
            ", ",
            ", ",
            ", ",
            ", ",
            ", ",
            ") ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             partner = excluded.partner, settings = excluded.settings, \
             updated_at = excluded.updated_at",
        ],
        |b| {
            b.value(a.id.as_str().to_owned())
                .value(a.name.clone())
                .value(a.partner.clone())
                .value(settings.to_string())
                .value(now.millis())
                .value(now.millis());
        },
    );
    q.build().execute(&mut *conn).await?;
    Ok(Done::Unit)
}

/// Creates or updates a site of a known account; a site never moves to another account.
pub async fn upsert_site<DB>(
    conn: &mut DB::Connection,
    owners: &mut HashMap<SiteId, AccountId>,
    s: &Site,
    now: Timestamp,
) -> StoreResult<Done>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    let account: Option<(String,)> =
        statement::<DB>(&["SELECT id FROM accounts WHERE id = "], |b| {
            b.value(s.account_id.as_str().to_owned());
        })
        .build_query_as()
        .fetch_optional(&mut *conn)
        .await?;
    if account.is_none() {
        return Err(InvalidField::new("account_id", "unknown account").into());
    }
    let owner: Option<(String,)> =
        statement::<DB>(&["SELECT account_id FROM sites WHERE id = "], |b| {
            b.value(s.id.as_str().to_owned());
        })
        .build_query_as()
        .fetch_optional(&mut *conn)
        .await?;
    if owner.is_some_and(|(o,)| o != s.account_id.as_str()) {
        return Err(StoreError::Conflict(format!(
            "site {} belongs to another account",
            s.id
        )));
    }
    let staging_url = s.staging.as_ref().map(|e| e.url.as_str().to_owned());
    let staging_docroot = s.staging.as_ref().and_then(|e| e.docroot.clone());
    let mut q = statement::<DB>(
        &[
            "INSERT INTO sites (id, account_id, name, live_url, live_docroot, staging_url, \
             staging_docroot, created_at, updated_at) VALUES (",
            ", ",
            ", ",
            ", ",
            ", ",
            ", ",
            ", ",
            ", ",
            ", ",
            ") ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             live_url = excluded.live_url, live_docroot = excluded.live_docroot, \
             staging_url = excluded.staging_url, staging_docroot = excluded.staging_docroot, \
             updated_at = excluded.updated_at",
        ],
        |b| {
            b.value(s.id.as_str().to_owned())
                .value(s.account_id.as_str().to_owned())
                .value(s.name.clone())
                .value(s.live.url.as_str().to_owned())
                .value(s.live.docroot.clone())
                .value(staging_url)
                .value(staging_docroot)
                .value(now.millis())
                .value(now.millis());
        },
    );
    q.build().execute(&mut *conn).await?;
    owners.insert(s.id.clone(), s.account_id.clone());
    Ok(Done::Unit)
}

/// Stores a new API key: its id, name and the hash of its secret.
pub async fn create_key<DB>(
    conn: &mut DB::Connection,
    key: &ApiKey,
    now: Timestamp,
) -> StoreResult<Done>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut q = statement::<DB>(
        &[
            "INSERT INTO api_keys (id, name, secret_sha256, created_at) VALUES (",
            ", ",
            ", ",
            ", ",
            ")",
        ],
        |b| {
            b.value(key.id.clone())
                .value(key.name.clone())
                .value(key.secret_sha256().to_vec())
                .value(now.millis());
        },
    );
    q.build().execute(&mut *conn).await?;
    Ok(Done::Unit)
}

/// Sets (or, with `None`, clears) an account's retention period.
pub async fn set_retention<DB>(
    conn: &mut DB::Connection,
    account: &AccountId,
    days: Option<u32>,
) -> StoreResult<Done>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    let updated: Option<(String,)> = statement::<DB>(
        &[
            "UPDATE accounts SET retention_days = CAST(",
            " AS INTEGER) WHERE id = ",
            " RETURNING id",
        ],
        |b| {
            b.value(days.map(i64::from))
                .value(account.as_str().to_owned());
        },
    )
    .build_query_as()
    .fetch_optional(&mut *conn)
    .await?;
    if updated.is_none() {
        return Err(StoreError::NotFound);
    }
    Ok(Done::Unit)
}

/// What one prune pass may remove: the account's ended activities created before the cut
/// (never the prunes' own entries), oldest first, at most the pass's limit.
pub async fn prunable<DB>(
    conn: &mut DB::Connection,
    request: &PruneRequest,
) -> StoreResult<Vec<StoredActivity>>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'r> ActivityRow: FromRow<'r, DB::Row>,
{
    let head = format!("SELECT {COLS} FROM activities WHERE account_id = ");
    let found: Vec<ActivityRow> = statement::<DB>(
        &[
            &head,
            " AND created_at < ",
            " AND status <> 'in_progress' AND activity <> 'prune_activity_log' \
             ORDER BY created_at, seq LIMIT ",
        ],
        |b| {
            b.value(request.account.as_str().to_owned())
                .value(request.before.millis())
                .value(i64::from(request.limit));
        },
    )
    .build_query_as()
    .fetch_all(&mut *conn)
    .await?;
    found.into_iter().map(ActivityRow::decode).collect()
}

/// Signs a checkpoint for every chain whose head is past its last checkpoint.
pub async fn sign_checkpoints<DB>(
    conn: &mut DB::Connection,
    key: &CheckpointKey,
) -> anyhow::Result<Vec<CheckpointBody>>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'r> (String, i64, Vec<u8>): FromRow<'r, DB::Row>,
{
    let moved: Vec<(String, i64, Vec<u8>)> =
        QueryBuilder::<DB>::new(chain::HEADS_PAST_THEIR_CHECKPOINT)
            .build_query_as()
            .fetch_all(&mut *conn)
            .await?;
    let made_at = Timestamp::now();
    let mut out = Vec::with_capacity(moved.len());
    for head in moved {
        let body = CheckpointBody::of_head(head, made_at)?;
        statement::<DB>(
            &[
                "INSERT INTO chain_checkpoints (account_id, link_no, link_sha256, made_at, \
                 public_key, signature) VALUES (",
                ", ",
                ", ",
                ", ",
                ", ",
                ", ",
                ")",
            ],
            |b| {
                b.value(body.account_id.as_str().to_owned())
                    .value(body.link_no)
                    .value(body.link_sha256.to_vec())
                    .value(made_at.millis())
                    .value(key.public_key().to_vec())
                    .value(key.sign(&body).to_vec());
            },
        )
        .build()
        .execute(&mut *conn)
        .await?;
        out.push(body);
    }
    Ok(out)
}
