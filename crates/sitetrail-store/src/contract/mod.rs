//! The store's contract: what every backend must do, as tests a backend crate runs against
//! its own store (`crate::contract_tests!`). Compiled only with the `contract`
//! feature, which the backends' dev-dependencies turn on: never in the server.
//!
//! A backend gives a [`Fixture`]: a fresh, seeded store and a [`Harness`] for what only the
//! backend can do (open the same data again, write around the store as an intruder would,
//! show its plan for a page).

mod cases;
mod export;
mod integrity;
mod reads;

use async_trait::async_trait;
use sitetrail_core::{
    Account, AccountId, ActivityFilter, ActivityId, ActivityKind, Actor, ActorKind, Audience,
    Email, Ending, Environment, EnvironmentSpec, NewActivity, Page, RawQuery, Site, SiteId,
    SiteUrl, Status, Timestamp,
};

pub use cases::*;
pub use export::*;
pub use integrity::*;
pub use reads::*;

use crate::{DynStore, RosterEntry, Scope, StoreError};

pub const SUPPORT: &str = "sam.rivera@partner.example";

/// What only the backend under test can do.
/// (Not `Send`: a contract test runs on its own test runtime, and opening a store is not a
/// future every backend can prove `Send`.)
#[async_trait(?Send)]
pub trait Harness: 'static {
    /// The backend's name, for the few checks that differ by where a backend keeps things.
    fn name(&self) -> &'static str;
    /// A store on the same data, as another process or server would open it.
    async fn open(&self) -> DynStore;
    /// Lets go of the fixture's store (before a reopen after the fixture's store is dropped).
    fn forget_store(&mut self);
    /// Runs SQL straight on the database, around the store.
    async fn raw(&self, sql: &str);
    /// Checks that the plan of a page is an index range read without a sort.
    async fn assert_list_uses_an_index(&self, scope: &Scope, audience: Audience, page: Page);
    /// Refreshes the planner's statistics after a bulk load, where the backend needs it.
    async fn analyze(&self) {}
}

/// A fresh store, seeded with three sites of two accounts, and its harness.
pub struct Fixture {
    pub store: DynStore,
    pub harness: Box<dyn Harness>,
}

impl Fixture {
    pub async fn new(store: DynStore, harness: impl Harness) -> Fixture {
        seed(&store).await;
        Fixture {
            store,
            harness: Box::new(harness),
        }
    }
}

/// Every contract test, as `#[tokio::test]`s in the calling test crate. `$fixture` is an
/// expression of type `impl Future<Output = Option<Fixture>>` (`None`: the backend's server
/// is not here and the test is skipped, as the backend's fixture says on stderr).
#[macro_export]
macro_rules! contract_tests {
    ($fixture:expr) => {
        $crate::contract_tests!(@each $fixture; an_activity_ends_once_and_a_second_end_is_a_conflict,
            a_replay_returns_the_same_activity_and_another_body_conflicts,
            every_character_comes_back_as_it_was_written,
            account_ids_name_every_account_once_in_order,
            a_batch_is_all_or_nothing,
            a_large_batch_is_written_whole_and_in_order,
            hosted_sites_are_the_ones_with_a_live_docroot,
            unknown_sites_and_foreign_sites_are_refused,
            concurrent_writers_share_commits_and_all_are_recorded,
            keyset_pages_return_each_activity_once_in_both_directions,
            a_support_actor_joins_the_roster_of_its_accounts_partner,
            a_client_cannot_find_a_support_person_by_search_or_user_filter,
            filters_narrow_and_scopes_isolate_accounts,
            the_first_page_comes_from_an_index_without_sorting,
            changes_come_in_order_and_everything_survives_a_reopen,
            api_keys_are_checked_against_their_hash,
            requests_sharing_a_commit_succeed_or_fail_on_their_own,
            two_writers_on_one_database_never_let_a_reader_skip_a_change,
            an_export_returns_exactly_what_the_pages_return,
            a_csv_export_reads_everything_but_the_details,
            an_export_dropped_half_way_stops_and_the_store_reads_on,
            exports_nobody_reads_hold_no_more_than_the_export_readers_and_pages_go_on,
            an_untouched_log_verifies_and_a_checkpoint_seals_it,
            an_edited_row_is_named_as_the_first_bad_entry,
            a_deleted_row_is_named_as_removed,
            an_inserted_row_is_named_as_inserted,
            an_altered_link_breaks_the_chain_where_it_was_altered,
            a_truncated_chain_is_caught_by_its_checkpoint,
            a_checkpoint_by_another_key_is_refused,
            retention_removes_only_old_ended_activities_and_the_log_still_verifies,
            a_prune_whose_removals_are_tampered_with_is_named,
            retention_periods_default_and_are_kept_per_account,
            looks_at_the_log_are_recorded_newest_first,
            failed_requests_sharing_a_commit_leave_the_chains_whole);
    };
    (@each $fixture:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some(f) = $fixture.await {
                    $crate::contract::$name(f).await
                }
            }
        )*
    };
}

pub fn acc(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}
pub fn site(s: &str) -> SiteId {
    SiteId::parse(s).unwrap()
}

pub async fn seed(store: &DynStore) {
    for (a, s) in [("acme", "shop"), ("acme", "blog"), ("globex", "portal")] {
        store
            .upsert_account(&Account {
                id: acc(a),
                name: a.into(),
                partner: "Agency".into(),
                partner_colour: None,
            })
            .await
            .unwrap();
        store
            .upsert_site(&Site {
                id: site(s),
                account_id: acc(a),
                name: s.into(),
                live: EnvironmentSpec {
                    url: SiteUrl::parse(&format!("https://{s}.example")).unwrap(),
                    docroot: None,
                },
                staging: None,
            })
            .await
            .unwrap();
    }
}

pub fn new(account: &str, s: &str, kind: ActorKind) -> NewActivity {
    NewActivity {
        id: None,
        account_id: acc(account),
        site_id: site(s),
        environment: Environment::Staging,
        activity: ActivityKind::PushStagingToLive,
        actor: match kind {
            ActorKind::System => Actor::system(),
            k => Actor::person(k, Email::parse(SUPPORT).unwrap(), Some("Sam Rivera".into())),
        },
        description: "Pushing staging to live".into(),
        status: Status::InProgress,
        created_at: None,
        completed_at: None,
        error: None,
        details: Default::default(),
    }
}

/// Verifies acme's chain without checkpoint keys; returns its number of links.
pub async fn assert_acme_chain_intact(store: &DynStore) -> i64 {
    let report = store
        .verify(Some(&acc("acme")), &[])
        .await
        .unwrap()
        .remove(0);
    assert!(report.is_intact(), "{:?}", report.first_problem());
    report.links
}

pub fn done(status: Status) -> Ending {
    Ending {
        details: None,
        status,
        description: None,
        error: None,
        completed_at: None,
    }
}

pub fn scope(a: &str, s: Option<&str>) -> Scope {
    Scope {
        account: acc(a),
        site: s.map(site),
    }
}

pub fn filter(audience: Audience, raw: RawQuery) -> ActivityFilter {
    ActivityFilter::parse(&raw, audience).unwrap()
}
