//! What every backend does the same way when it writes an activity.

use sha2::{Digest, Sha256};
use sitetrail_core::{
    ActivityId, ActivityKind, Actor, Audience, Ending, Environment, NewActivity, SiteId, Status,
    StoredActivity, Timestamp, view,
};

use crate::PruneRequest;
use crate::chain::{Hash, PRUNED_SHA256, prune_digest};

/// The texts `q` searches, one per audience, as the redaction function renders them.
pub(crate) struct SearchText {
    pub internal: String,
    /// `None` where the client sees the same as internal viewers.
    pub client: Option<String>,
}

impl SearchText {
    pub fn of(a: &StoredActivity) -> Self {
        let internal = view(a, Audience::Internal).search_text();
        let client = view(a, Audience::Client).search_text();
        SearchText {
            client: (client != internal).then_some(client),
            internal,
        }
    }
}

pub(crate) fn request_sha256(new: &NewActivity) -> Vec<u8> {
    Sha256::digest(new.canonical_request().as_bytes()).to_vec()
}

/// The activity a new request becomes, before the store gives it its `seq`.
pub(crate) fn new_stored(new: &NewActivity, now: Timestamp) -> StoredActivity {
    let created_at = new.created_at.unwrap_or(now);
    let completed_at = match new.status {
        Status::InProgress => None,
        _ => Some(new.completed_at.unwrap_or(now.max(created_at))),
    };
    StoredActivity {
        seq: 0,
        id: new.id.clone().unwrap_or_else(ActivityId::generate),
        account_id: new.account_id.clone(),
        site_id: new.site_id.clone(),
        environment: new.environment,
        service: new.activity.service(),
        activity: new.activity,
        status: new.status,
        actor: new.actor.clone(),
        description: new.description.clone(),
        error: new.error.clone(),
        details: new.details.clone(),
        created_at,
        completed_at,
    }
}

/// The activity after its one transition.
pub(crate) fn ended(a: &StoredActivity, ending: &Ending, now: Timestamp) -> StoredActivity {
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
pub(crate) fn prune_entry(
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
pub(crate) fn by_site(selected: Vec<StoredActivity>) -> Vec<(SiteId, Vec<StoredActivity>)> {
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
pub(crate) fn retention(days: Option<i64>) -> u32 {
    days.and_then(|d| u32::try_from(d).ok())
        .unwrap_or(crate::DEFAULT_RETENTION_DAYS)
}
