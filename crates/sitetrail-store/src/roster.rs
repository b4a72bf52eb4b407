//! Each partner's roster of support identities (see [`sitetrail_core::Roster`]): what both
//! backends share. Recording an activity whose actor is support puts that person on the
//! roster first, so no reader sees the activity before the roster names its actor.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sitetrail_core::{AccountId, ActorKind, Email, NewActivity, Roster, Timestamp};

/// The most identities a roster is read with: a partner's support team is small, and every
/// client read checks its text against each of them. Read without an order (a sort on the
/// read connections, where sorting is disabled, would cost PostgreSQL a JIT compilation per
/// read); past it the roster is cut, with a warning.
pub const MAX_ROSTER: i64 = 500;

/// One support person, as recorded for one account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RosterEntry {
    pub account: AccountId,
    /// Lower case: matching ignores case.
    pub email: String,
    /// Empty when the actor had no name.
    pub name: String,
    pub added_at: Timestamp,
}

impl std::fmt::Debug for RosterEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosterEntry")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl RosterEntry {
    pub fn new(account: &AccountId, email: &Email, name: Option<&str>) -> Self {
        RosterEntry {
            account: account.clone(),
            email: email.expose().to_lowercase(),
            name: name.map(str::trim).unwrap_or("").to_owned(),
            added_at: Timestamp::now(),
        }
    }

    fn key(&self) -> (String, String, String) {
        (
            self.account.as_str().to_owned(),
            self.email.clone(),
            self.name.clone(),
        )
    }
}

/// The support actors of a batch, one entry each.
pub fn support_actors(batch: &[NewActivity]) -> Vec<RosterEntry> {
    let mut out: Vec<RosterEntry> = Vec::new();
    for a in batch {
        if let (ActorKind::Support, Some(email)) = (a.actor.kind, &a.actor.email) {
            let e = RosterEntry::new(&a.account_id, email, a.actor.name.as_deref());
            if !out.iter().any(|o| o.key() == e.key()) {
                out.push(e);
            }
        }
    }
    out
}

/// The entries this process already wrote, so that a support person's every activity does
/// not write them again. Bounded: forgotten all at once when full (writing an entry twice is
/// harmless).
#[derive(Default)]
pub struct Written(Mutex<HashSet<(String, String, String)>>);

const MAX_WRITTEN: usize = 10_000;

impl Written {
    /// The entries not yet written by this process.
    pub fn unwritten(&self, entries: Vec<RosterEntry>) -> Vec<RosterEntry> {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .into_iter()
            .filter(|e| !seen.contains(&e.key()))
            .collect()
    }

    pub fn remember(&self, entries: &[RosterEntry]) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() + entries.len() > MAX_WRITTEN {
            seen.clear();
        }
        seen.extend(entries.iter().map(RosterEntry::key));
    }
}

/// A roster from its rows: `(email, name)`.
pub fn from_rows(mut rows: Vec<(String, String)>) -> Roster {
    if rows.len() as i64 > MAX_ROSTER {
        tracing::warn!(
            limit = MAX_ROSTER,
            "a partner's roster of support identities is larger than the limit; it is cut"
        );
        rows.truncate(MAX_ROSTER as usize);
    }
    let people: Vec<(Email, String)> = rows
        .into_iter()
        .filter_map(|(email, name)| match Email::parse(&email) {
            Ok(e) => Some((e, name)),
            Err(_) => {
                tracing::warn!("a roster row holds no email; skipped");
                None
            }
        })
        .collect();
    Roster::new(
        people
            .iter()
            .map(|(e, n)| (e, Some(n.as_str()).filter(|n| !n.is_empty()))),
    )
}

/// What a roster was read at: its partner, how many rows it had and the newest one's time.
/// Rows are only ever added, so a roster that gained someone has another version; an
/// account that moved to another partner has another partner.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RosterVersion {
    pub partner: Option<String>,
    pub rows: i64,
    pub newest: i64,
}

/// The rosters read lately, per account, each with its version: a client's every page reads
/// only the version (one count over an index) and builds the roster, and the automaton that
/// finds its people in text, only when it changed. An entry is trusted for at most
/// [`ROSTER_KEPT`] whatever its version says.
#[derive(Default)]
pub struct RosterCache(Mutex<HashMap<AccountId, Cached>>);

struct Cached {
    version: RosterVersion,
    read_at: Instant,
    roster: Arc<Roster>,
}

/// How long a cached roster is used before it is read again in full.
const ROSTER_KEPT: Duration = Duration::from_secs(60);
/// The most accounts whose rosters are kept; past it the cache starts afresh.
const ROSTERS_KEPT: usize = 4096;

impl RosterCache {
    pub fn get(&self, account: &AccountId, version: &RosterVersion) -> Option<Arc<Roster>> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(account)
            .filter(|c| &c.version == version && c.read_at.elapsed() < ROSTER_KEPT)
            .map(|c| c.roster.clone())
    }

    pub fn put(&self, account: &AccountId, version: RosterVersion, roster: Arc<Roster>) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= ROSTERS_KEPT {
            cache.clear();
        }
        let read_at = Instant::now();
        cache.insert(
            account.clone(),
            Cached {
                version,
                read_at,
                roster,
            },
        );
    }
}
