//! What every backend does the same way when it writes an activity.

use sha2::{Digest, Sha256};
use sitetrail_core::{
    ActivityId, ActivityKind, Actor, Audience, Ending, Environment, NewActivity, SiteId, Status,
    StoredActivity, Timestamp, hides_from_clients, search_text,
};

use crate::chain::{Hash, PRUNED_SHA256, prune_digest};
use crate::{PruneRequest, StoreResult};

/// The texts `q` searches, one per audience, as the redaction function renders them.
#[derive(Clone)]
pub struct SearchText {
    pub internal: String,
    /// `None` where the client sees the same as internal viewers.
    pub client: Option<String>,
}

impl SearchText {
    pub fn of(a: &StoredActivity) -> Self {
        let internal = search_text(a, Audience::Internal);
        // Most activities show clients what they show internal viewers: one rendering then.
        let client = hides_from_clients(a)
            .then(|| search_text(a, Audience::Client))
            .filter(|client| *client != internal);
        SearchText { client, internal }
    }
}

/// What a write renders from an activity besides its plain columns.
#[derive(Clone)]
pub struct Rendered {
    pub search: SearchText,
    pub details_json: String,
}

impl Rendered {
    pub fn of(a: &StoredActivity) -> Self {
        Rendered {
            search: SearchText::of(a),
            details_json: details_json(&a.details),
        }
    }
}

/// A new activity made ready for the writer by the task that received it: the checks, the
/// hashes and the rendering that need nothing from the database run on every core, so that
/// the one writer only plans, binds and commits (BENCHMARKS.md, ingest).
pub struct Prepared {
    /// As it will be stored, `seq` aside.
    pub activity: StoredActivity,
    /// The publisher named the id, so a second request with it is a replay or a conflict.
    pub named: bool,
    pub request_sha256: Vec<u8>,
    pub content_sha256: Hash,
    pub rendered: Rendered,
}

/// Checks a new activity and prepares it, with `now` as its arrival time.
pub fn prepare(new: NewActivity, now: Timestamp) -> StoreResult<Prepared> {
    // The details' JSON is written once: it is measured, stored and hashed.
    let details_json = details_json(&new.details);
    new.validate_with_details_len(new.activity.service(), details_json.len())?;
    let named = new.id.is_some();
    let request_sha256 = request_sha256(&new);
    let activity = new_stored(new, now);
    Ok(Prepared {
        named,
        request_sha256,
        content_sha256: crate::chain::content_sha256_rendered(&activity, &details_json),
        rendered: Rendered {
            search: SearchText::of(&activity),
            details_json,
        },
        activity,
    })
}

fn details_json(details: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::to_string(details).expect("a map of JSON values with string keys always serializes")
}

/// Prepares a whole batch, all or nothing.
pub fn prepare_all(batch: Vec<NewActivity>) -> StoreResult<Vec<Prepared>> {
    let now = Timestamp::now();
    // Sized up front: a collected `Result` gives no size hint, and the grown copies of the
    // prepared activities were a fortieth of a batch's handling.
    let mut prepared = Vec::with_capacity(batch.len());
    for new in batch {
        prepared.push(prepare(new, now)?);
    }
    Ok(prepared)
}

pub fn request_sha256(new: &NewActivity) -> Vec<u8> {
    // Written whole, then hashed in one call: the serializer's many short writes cost the
    // hasher more than the copy does.
    let mut canonical = Vec::with_capacity(512 + new.description.len());
    new.write_canonical_request(&mut canonical)
        .expect("writing into memory cannot fail");
    Sha256::digest(&canonical).to_vec()
}

/// The activity a new request becomes, before the store gives it its `seq`.
pub fn new_stored(new: NewActivity, now: Timestamp) -> StoredActivity {
    let created_at = new.created_at.unwrap_or(now);
    let completed_at = match new.status {
        Status::InProgress => None,
        _ => Some(new.completed_at.unwrap_or(now.max(created_at))),
    };
    StoredActivity {
        seq: 0,
        id: new.id.unwrap_or_else(ActivityId::generate),
        account_id: new.account_id,
        site_id: new.site_id,
        environment: new.environment,
        service: new.activity.service(),
        activity: new.activity,
        status: new.status,
        actor: new.actor,
        description: new.description,
        error: new.error,
        details: new.details,
        created_at,
        completed_at,
    }
}

/// The activity after its one transition.
pub fn ended(a: &StoredActivity, ending: &Ending, now: Timestamp) -> StoredActivity {
    let mut out = a.clone();
    out.status = ending.status;
    out.completed_at = Some(ending.completed_at.unwrap_or(now.max(a.created_at)));
    if let Some(d) = &ending.description {
        out.description = d.clone();
    }
    out.error = ending.error.clone();
    if let Some(more) = &ending.details {
        for (k, v) in more {
            out.details.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The activity that logs one prune pass over one site, sealing what it removed.
pub fn prune_entry(
    request: &PruneRequest,
    site: &SiteId,
    removed: &mut [(String, Hash)],
) -> NewActivity {
    let n = removed.len();
    let day = request.before.to_rfc3339();
    let day = day.split('T').next().unwrap_or(&day).to_owned();
    let mut details = serde_json::Map::new();
    details.insert("removed".into(), n.into());
    details.insert("before".into(), request.before.to_rfc3339().into());
    details.insert("retention_days".into(), request.retention_days.into());
    details.insert(PRUNED_SHA256.into(), prune_digest(removed).into());
    NewActivity {
        id: None,
        account_id: request.account.clone(),
        site_id: site.clone(),
        environment: Environment::Live,
        activity: ActivityKind::PruneActivityLog,
        actor: Actor::system(),
        description: format!(
            "Removed {n} {} created before {day} (retention: {} days)",
            if n == 1 { "activity" } else { "activities" },
            request.retention_days
        ),
        status: Status::Completed,
        created_at: None,
        completed_at: None,
        error: None,
        details,
    }
}

/// Groups the activities a prune pass selected by site, keeping their order.
pub fn by_site(selected: Vec<StoredActivity>) -> Vec<(SiteId, Vec<StoredActivity>)> {
    let mut groups: Vec<(SiteId, Vec<StoredActivity>)> = Vec::new();
    for a in selected {
        match groups.iter_mut().find(|(s, _)| *s == a.site_id) {
            Some((_, v)) => v.push(a),
            None => groups.push((a.site_id.clone(), vec![a])),
        }
    }
    groups
}

/// An account's retention period as its column holds it (`NULL`: the default).
pub fn retention(days: Option<i64>) -> u32 {
    days.and_then(|d| u32::try_from(d).ok())
        .unwrap_or(crate::DEFAULT_RETENTION_DAYS)
}

#[cfg(test)]
mod tests {
    use sitetrail_core::{AccountId, ActivityKind, Actor, ActorKind, Email, SiteId};

    use super::*;

    /// A replay is told from a conflict by this hash, stored with every activity: it must
    /// come out the same for the same request, however it is computed.
    #[test]
    fn a_request_hashes_to_what_it_always_hashed_to() {
        let details = serde_json::json!({"z": [1, "two", null], "a": {"y": 1.5, "b": true}});
        let new = NewActivity {
            id: Some(ActivityId::parse("act_1").unwrap()),
            account_id: AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: Environment::Staging,
            activity: ActivityKind::ResetStagingFromBackup,
            actor: Actor::person(
                ActorKind::Support,
                Email::parse("sam@partner.example").unwrap(),
                Some("Sam \"S\" Rivera".into()),
            ),
            description: "Reset by {actor}\n".into(),
            status: Status::Failed,
            created_at: Some(Timestamp::from_millis(1_700_000_000_000).unwrap()),
            completed_at: Some(Timestamp::from_millis(1_700_000_004_000).unwrap()),
            error: Some("the backup is gone".into()),
            details: details.as_object().unwrap().clone(),
        };
        let mut streamed = Sha256::new();
        new.write_canonical_request(&mut streamed).unwrap();
        let hash = request_sha256(&new);
        assert_eq!(hash, streamed.finalize().to_vec());
        assert_eq!(
            crate::chain::hex(&hash),
            "358a28d376129be384cdf3f83053c9d2bd7a718770d0d652e3e445683c3a097a"
        );
    }
}
