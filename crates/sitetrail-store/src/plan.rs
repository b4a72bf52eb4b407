//! One write group, planned in memory before anything is written: every backend checks a
//! group's records and ends the same way (idempotent replays, conflicts, unknown and foreign
//! sites, the one transition), appends the chain links, and then writes what the plan holds
//! in a few statements.

use std::collections::HashMap;

use sitetrail_core::{AccountId, ActivityId, Ending, SiteId, StoredActivity, Timestamp};

use crate::chain::{self, Chains};
use crate::record::{self, Prepared, Rendered};
use crate::writer::{Done, Work};
use crate::{PruneRequest, Recorded, StoreError, StoreResult};

/// An activity as the group leaves it.
pub struct Touched {
    pub activity: StoredActivity,
    pub request_sha256: Vec<u8>,
    pub change_no: i64,
    /// Inserted by this group (else it existed before and may get its end).
    pub fresh: bool,
    /// What the writer renders from `activity`, when it was rendered before the group (and
    /// the group has not changed the activity since).
    pub rendered: Option<Rendered>,
    /// A fresh activity the group ended too, as it was recorded: what its record answers.
    recorded_as: Option<StoredActivity>,
}

/// One activity of a record request's answer while the group is planned and written.
pub enum Planned {
    /// Answered already: a replay of an activity recorded before.
    Answered(Box<Recorded>),
    /// Recorded by this group. The activity stays in the plan, which stores it, and moves
    /// into the answer when the group is written: the writer copies no activity for it.
    Fresh(ActivityId),
}

/// One group's writes, worked out in memory before they are sent.
pub struct Plan {
    pub counter: i64,
    start: i64,
    /// Every activity the group names, as the database holds it, and every one it makes.
    /// An id the group names that is missing here does not exist.
    pub touched: HashMap<ActivityId, Touched, foldhash::fast::RandomState>,
    pub owners: HashMap<SiteId, AccountId>,
    pub inserts: Vec<ActivityId>,
    pub ends: Vec<ActivityId>,
    /// The chains the group moves; their heads are read by `prefetch`.
    pub chains: Chains,
}

impl Plan {
    pub fn new(counter: i64, owners: HashMap<SiteId, AccountId>) -> Self {
        Plan {
            counter,
            start: counter,
            // A group touches thousands of activities, each looked up several times: a fast
            // hash (with a random seed) instead of SipHash; ids are bounded and few per group.
            touched: HashMap::default(),
            owners,
            inserts: Vec::new(),
            ends: Vec::new(),
            chains: Chains::default(),
        }
    }

    /// What the group names that is not in memory: the ids it records or ends, and the
    /// sites it records on whose owner is not cached.
    pub fn wanted<'g>(&self, group: &'g [Work]) -> (Vec<&'g str>, Vec<&'g str>) {
        let mut ids: Vec<&str> = Vec::new();
        let mut sites: Vec<&str> = Vec::new();
        for work in group {
            match work {
                Work::Record(batch) => {
                    for p in batch {
                        if p.named {
                            ids.push(p.activity.id.as_str());
                        }
                        if !self.owners.contains_key(&p.activity.site_id) {
                            sites.push(p.activity.site_id.as_str());
                        }
                    }
                }
                Work::End(id, _) => ids.push(id.as_str()),
                _ => {}
            }
        }
        sites.sort_unstable();
        sites.dedup();
        (ids, sites)
    }

    /// An activity the group names, as the database holds it.
    pub fn found(&mut self, activity: StoredActivity, request_sha256: Vec<u8>, change_no: i64) {
        self.touched.insert(
            activity.id.clone(),
            Touched {
                activity,
                request_sha256,
                change_no,
                fresh: false,
                rendered: None,
                recorded_as: None,
            },
        );
    }

    /// The accounts whose chain heads the group may move (read after [`Plan::found`]).
    pub fn accounts<'g>(&'g self, group: &'g [Work]) -> Vec<&'g str> {
        // Thousands of activities name a few accounts: set them apart first, sort the few.
        let mut accounts: std::collections::HashSet<&str, foldhash::fast::RandomState> =
            Default::default();
        for work in group {
            match work {
                Work::Record(batch) => {
                    accounts.extend(batch.iter().map(|p| p.activity.account_id.as_str()));
                }
                Work::End(id, _) => {
                    if let Some(t) = self.touched.get(id) {
                        accounts.insert(t.activity.account_id.as_str());
                    }
                }
                Work::Prune(p) => {
                    accounts.insert(p.account.as_str());
                }
                _ => {}
            }
        }
        let mut accounts: Vec<&str> = accounts.into_iter().collect();
        accounts.sort_unstable();
        accounts
    }

    pub fn next_change(&mut self) -> i64 {
        self.counter += 1;
        self.counter
    }

    /// One record request, all or nothing, with the same checks in the same order on every
    /// backend. The activities were checked, hashed and rendered by [`record::prepare`].
    pub fn record(&mut self, batch: Vec<Prepared>) -> StoreResult<Done> {
        self.touched.reserve(batch.len());
        let mut staged: Vec<(Touched, chain::Hash)> = Vec::new();
        let mut out = Vec::with_capacity(batch.len());
        for p in batch {
            let new = &p.activity;
            if p.named {
                let before = staged
                    .iter()
                    .rev()
                    .map(|(t, _)| t)
                    .find(|t| t.activity.id == new.id)
                    .or_else(|| self.touched.get(&new.id));
                if let Some(t) = before {
                    if t.request_sha256 == p.request_sha256 {
                        out.push(Planned::Answered(Box::new(Recorded {
                            activity: t.activity.clone(),
                            created: false,
                        })));
                        continue;
                    }
                    return Err(StoreError::Conflict(format!(
                        "activity {} was already recorded with another body",
                        new.id
                    )));
                }
            }
            match self.owners.get(&new.site_id) {
                None => {
                    return Err(sitetrail_core::InvalidField::new(
                        "site_id",
                        "unknown site; register it with PUT /api/v1/sites/{site}",
                    )
                    .into());
                }
                Some(o) if *o != new.account_id => {
                    return Err(sitetrail_core::InvalidField::new(
                        "site_id",
                        "the site belongs to another account",
                    )
                    .into());
                }
                Some(_) => {}
            }
            out.push(Planned::Fresh(new.id.clone()));
            staged.push((
                Touched {
                    activity: p.activity,
                    request_sha256: p.request_sha256,
                    change_no: 0,
                    fresh: true,
                    rendered: Some(p.rendered),
                    recorded_as: None,
                },
                p.content_sha256,
            ));
        }
        for (mut t, content) in staged {
            t.change_no = self.next_change();
            self.chains.append_hashed(&t.activity, content);
            self.inserts.push(t.activity.id.clone());
            self.touched.insert(t.activity.id.clone(), t);
        }
        Ok(Done::Planned(out))
    }

    /// Turns the group's record answers into `Recorded`, once its rows are written and have
    /// their `seq` ([`Plan::assign_seqs`]): each fresh activity moves out of the plan into
    /// its answer. Only a prune's own entries, which no record request answers, stay.
    pub fn answer(&mut self, results: &mut [StoreResult<Done>]) {
        for r in results.iter_mut() {
            let Ok(Done::Planned(planned)) = r else {
                continue;
            };
            let recorded = std::mem::take(planned)
                .into_iter()
                .map(|p| match p {
                    Planned::Answered(recorded) => *recorded,
                    Planned::Fresh(id) => {
                        let t = self
                            .touched
                            .remove(&id)
                            .expect("a fresh activity stays in the plan until it is answered");
                        let seq = t.activity.seq;
                        let mut activity = t.recorded_as.unwrap_or(t.activity);
                        activity.seq = seq;
                        Recorded {
                            activity,
                            created: true,
                        }
                    }
                })
                .collect();
            *r = Ok(Done::Recorded(recorded));
        }
    }

    /// What the writer stores for a planned activity besides its plain columns: rendered
    /// before the group where it could be, else now.
    pub fn take_rendered(&mut self, id: &ActivityId) -> Rendered {
        let t = self.touched.get_mut(id).expect("a planned activity");
        t.rendered
            .take()
            .unwrap_or_else(|| Rendered::of(&t.activity))
    }

    /// The one transition, checked against the activity as this group sees it.
    pub fn end(&mut self, id: &ActivityId, ending: &Ending, now: Timestamp) -> StoreResult<Done> {
        let current = &self.touched.get(id).ok_or(StoreError::NotFound)?.activity;
        if current.status.is_ended() {
            return Err(StoreError::Conflict(format!(
                "activity {id} has already ended as {}",
                current.status
            )));
        }
        ending.validate(current.created_at)?;
        let next = record::ended(current, ending, now);
        let change = self.next_change();
        self.chains.append(&next);
        let t = self.touched.get_mut(id).expect("looked up above");
        let before = std::mem::replace(&mut t.activity, next.clone());
        if t.fresh && t.recorded_as.is_none() {
            t.recorded_as = Some(before);
        }
        t.change_no = change;
        t.rendered = None;
        if !t.fresh && !self.ends.contains(id) {
            self.ends.push(id.clone());
        }
        Ok(Done::Ended(Box::new(next)))
    }

    /// Plans the entries that log one prune pass: per site, in the order of `selected`, the
    /// prune activity (through [`Plan::record`], so into the chain) and what it removes.
    pub fn prune(
        &mut self,
        request: &PruneRequest,
        selected: Vec<StoredActivity>,
        now: Timestamp,
    ) -> StoreResult<Vec<(StoredActivity, Vec<StoredActivity>)>> {
        let mut out = Vec::new();
        for (site, removed) in record::by_site(selected) {
            let mut sealed: Vec<(String, chain::Hash)> = removed
                .iter()
                .map(|a| (a.id.as_str().to_owned(), chain::content_sha256(a)))
                .collect();
            let entry = record::prune_entry(request, &site, &mut sealed);
            self.owners
                .entry(site)
                .or_insert_with(|| request.account.clone());
            let entry = record::prepare(entry, now)?;
            let id = entry.activity.id.clone();
            self.record(vec![entry])?;
            out.push((self.touched[&id].activity.clone(), removed));
        }
        Ok(out)
    }

    /// The last change number the group hands out, if it changed an activity.
    pub fn last_change(&self) -> Option<i64> {
        (self.counter != self.start).then_some(self.counter)
    }

    /// Gives the new rows their `seq`, in the plan and in the answers.
    pub fn assign_seqs(&mut self, seqs: Vec<(ActivityId, i64)>, results: &mut [StoreResult<Done>]) {
        for (id, seq) in seqs {
            if let Some(t) = self.touched.get_mut(&id) {
                t.activity.seq = seq;
            }
        }
        let seq_of = |a: &StoredActivity| self.touched.get(&a.id).map(|t| t.activity.seq);
        for r in results.iter_mut() {
            match r {
                Ok(Done::Planned(v)) => {
                    for p in v.iter_mut() {
                        if let Planned::Answered(rec) = p
                            && rec.activity.seq == 0
                        {
                            rec.activity.seq = seq_of(&rec.activity).unwrap_or(0);
                        }
                    }
                }
                Ok(Done::Ended(a)) if a.seq == 0 => a.seq = seq_of(a).unwrap_or(0),
                Ok(Done::Pruned(p)) => {
                    for a in p.logged.iter_mut().filter(|a| a.seq == 0) {
                        a.seq = seq_of(a).unwrap_or(0);
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sitetrail_core::{
        AccountId, ActivityId, ActivityKind, Actor, Ending, Environment, NewActivity, SiteId,
        Status, Timestamp,
    };

    use super::*;

    fn new_push(id: &str) -> NewActivity {
        NewActivity {
            id: Some(ActivityId::parse(id).unwrap()),
            account_id: AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: Environment::Live,
            activity: ActivityKind::PushStagingToLive,
            actor: Actor::system(),
            description: "Pushing staging to live".into(),
            status: Status::InProgress,
            created_at: None,
            completed_at: None,
            error: None,
            details: serde_json::Map::new(),
        }
    }

    fn plan() -> Plan {
        let owners = HashMap::from([(
            SiteId::parse("shop").unwrap(),
            AccountId::parse("acme").unwrap(),
        )]);
        let mut plan = Plan::new(0, owners);
        plan.chains.load_head("acme", None);
        plan
    }

    #[test]
    fn an_activity_recorded_and_ended_in_one_group_is_stored_as_ended() {
        let mut plan = plan();
        let now = Timestamp::now();
        let prepared = record::prepare(new_push("push-1"), now).unwrap();
        let prepared_content = prepared.content_sha256;
        plan.record(vec![prepared]).unwrap();
        let id = ActivityId::parse("push-1").unwrap();
        let ending = Ending {
            status: Status::Failed,
            description: Some("Push failed: the disk is full".into()),
            error: Some("ENOSPC".into()),
            completed_at: None,
            details: None,
        };
        plan.end(&id, &ending, now).unwrap();
        // The rendering prepared before the group was of the activity in progress; the
        // writer must store the ended one.
        let stored = plan.take_rendered(&id);
        let ended = &plan.touched[&id].activity;
        assert_eq!(stored.search.internal, Rendered::of(ended).search.internal);
        assert!(stored.search.internal.contains("disk is full"));
        assert_eq!(plan.chains.links.len(), 2);
        assert_eq!(
            plan.chains.links[0].content_sha256, prepared_content,
            "the prepared hash is the hash of what is recorded"
        );
        assert_eq!(
            plan.chains.links[1].content_sha256,
            chain::content_sha256(ended)
        );
    }

    /// The answers of a group that records three activities, replays one of them and ends
    /// another, once the writer gave the rows their `seq`.
    #[test]
    fn answers_say_what_each_request_did_when_the_group_is_written() {
        let mut plan = plan();
        let now = Timestamp::now();
        let batch = ["push-1", "push-2"]
            .map(|id| record::prepare(new_push(id), now).unwrap())
            .into();
        let mut results = vec![plan.record(batch)];
        results.push(plan.record(vec![record::prepare(new_push("push-1"), now).unwrap()]));
        let ending = Ending {
            status: Status::Completed,
            description: Some("Pushed staging to live".into()),
            error: None,
            completed_at: None,
            details: None,
        };
        results.push(plan.end(&ActivityId::parse("push-2").unwrap(), &ending, now));
        results.push(plan.record(vec![record::prepare(new_push("push-3"), now).unwrap()]));
        let seqs = plan
            .inserts
            .iter()
            .zip(10..)
            .map(|(id, seq)| (id.clone(), seq))
            .collect();
        plan.assign_seqs(seqs, &mut results);
        plan.answer(&mut results);

        let recorded = |r: &StoreResult<Done>| match r {
            Ok(Done::Recorded(v)) => v
                .iter()
                .map(|r| {
                    (
                        r.activity.id.to_string(),
                        r.activity.seq,
                        r.created,
                        r.activity.status,
                    )
                })
                .collect::<Vec<_>>(),
            _ => panic!("a record answers with Recorded"),
        };
        assert_eq!(
            recorded(&results[0]),
            [
                ("push-1".to_owned(), 10, true, Status::InProgress),
                // Ended later in the group: its record still answers what was recorded.
                ("push-2".to_owned(), 11, true, Status::InProgress),
            ]
        );
        assert_eq!(
            recorded(&results[1]),
            [("push-1".to_owned(), 10, false, Status::InProgress)]
        );
        match &results[2] {
            Ok(Done::Ended(a)) => assert_eq!((a.seq, a.status), (11, Status::Completed)),
            _ => panic!("an end answers with Ended"),
        }
        assert_eq!(
            recorded(&results[3]),
            [("push-3".to_owned(), 12, true, Status::InProgress)]
        );
        assert!(
            plan.touched.values().all(|t| !t.fresh),
            "every fresh activity moved into its answer"
        );
    }

    #[test]
    fn the_request_hash_is_the_hash_of_the_canonical_request() {
        use sha2::{Digest, Sha256};
        let new = new_push("push-3");
        assert_eq!(
            record::request_sha256(&new),
            Sha256::digest(new.canonical_request().as_bytes()).to_vec()
        );
    }

    #[test]
    fn a_prepared_record_keeps_its_rendering_until_the_writer_takes_it() {
        let mut plan = plan();
        let prepared = record::prepare(new_push("push-2"), Timestamp::now()).unwrap();
        let rendered = prepared.rendered.clone();
        plan.record(vec![prepared]).unwrap();
        let id = ActivityId::parse("push-2").unwrap();
        let taken = plan.take_rendered(&id);
        assert_eq!(taken.details_json, rendered.details_json);
        assert_eq!(taken.search.internal, rendered.search.internal);
        assert!(plan.touched[&id].rendered.is_none());
    }
}
