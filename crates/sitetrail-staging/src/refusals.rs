//! Why an operation did not start: another one holds the site. The reason names what runs
//! in words and says what happens next; the blocking activity's id is in
//! `details.blocked_by` (its time is the dashboard's to show, in the viewer's zone).

use serde_json::{Map, Value, json};
use sitetrail_core::{ActivityId, Actor, ActorKind};

use crate::operations::{Engine, Operation};
use crate::snapshot::BackupReason;

/// An operation that did not start because another holds the site.
pub(crate) struct Refusal {
    pub description: String,
    pub reason: String,
    pub details: Option<Map<String, Value>>,
}

impl Engine {
    /// Why an operation did not start while another holds the site: what is running, in
    /// words (its id in `details.blocked_by`, its time shown by the dashboard in the viewer's
    /// zone), and what happens next.
    pub(crate) async fn refusal(
        &self,
        op: &Operation,
        actor: &Actor,
        holder: Option<ActivityId>,
    ) -> Refusal {
        let running = match &holder {
            Some(id) => self.inner.store.activity(id).await.ok().flatten(),
            None => None,
        };
        let what = match &running {
            Some(a) => format!("{} is running on this site", a.activity.label()),
            None => "Another operation is running on this site".to_owned(),
        };
        let details = running.map(|a| {
            let mut d = Map::new();
            d.insert("blocked_by".into(), json!(a.id));
            d
        });
        let scheduled = actor.kind == ActorKind::System
            && matches!(
                op,
                Operation::Backup {
                    reason: BackupReason::Daily,
                    ..
                }
            );
        if scheduled {
            // The scheduler looks again every few minutes for sites without a day-old backup.
            Refusal {
                description: format!("Daily backup of {} skipped", op.target()),
                reason: format!(
                    "The scheduled daily backup was skipped because {}. It is taken \
                     automatically once that has finished; nothing needs to be done.",
                    lower_first_word(&what)
                ),
                details,
            }
        } else {
            Refusal {
                description: format!("{} did not start", op.kind().label()),
                reason: format!("{what}. Try again when it has finished."),
                details,
            }
        }
    }
}

/// `Another operation ...` → `another operation ...`; an activity's label keeps its capitals.
fn lower_first_word(s: &str) -> String {
    match s.strip_prefix("Another") {
        Some(rest) => format!("another{rest}"),
        None => s.to_owned(),
    }
}
