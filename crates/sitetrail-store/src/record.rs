//! What every backend does the same way when it writes an activity.

use sha2::{Digest, Sha256};
use sitetrail_core::{
    ActivityId, Audience, Ending, NewActivity, Status, StoredActivity, Timestamp, view,
};

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
