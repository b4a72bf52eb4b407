//! How far a running operation has come, in words for people, and the reason a failed one
//! gives: written for whoever reads the log (a client among them), naming no path, SQL or
//! server error, and saying what to do next. The detail goes to the server's log.

use serde::Serialize;
use sitetrail_core::{ActivityKind, Environment};

use crate::confined;

/// How far a running operation has come: the step it is at (a label for people), and how
/// many of that step's things are done of how many (`total` 0: the step counts nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

/// The steps of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    GettingReady,
    CheckingSnapshot,
    BackingUpDatabase(Environment),
    BackingUpFiles(Environment),
    CopyingDatabase,
    CopyingFiles,
    Switching(Environment),
    CleaningUp,
    RemovingStaging,
    /// A preview (and a push) compares the new live with live now.
    Comparing,
    /// The rows live gained since staging was made are carried into the new live.
    KeepingLiveRows,
    /// Live's pages are fetched after the switch.
    CheckingLive,
    /// An undo switches the live a push replaced back in.
    SwitchingBack,
}

impl Step {
    /// What people read while it runs.
    pub fn label(self) -> String {
        match self {
            Step::GettingReady => "Getting ready".into(),
            Step::CheckingSnapshot => "Checking the backup or template".into(),
            Step::BackingUpDatabase(env) => format!("Backing up {env}'s database"),
            Step::BackingUpFiles(env) => format!("Backing up {env}'s files"),
            Step::CopyingDatabase => "Copying the database".into(),
            Step::CopyingFiles => "Copying the files".into(),
            Step::Switching(env) => format!("Switching {env}"),
            Step::CleaningUp => "Cleaning up".into(),
            Step::RemovingStaging => "Removing staging".into(),
            Step::Comparing => "Comparing the new live with live".into(),
            Step::KeepingLiveRows => "Keeping live's new orders, comments and users".into(),
            Step::CheckingLive => "Checking that live answers".into(),
            Step::SwitchingBack => "Switching live back".into(),
        }
    }

    /// Its key in the activity's `details.phases_ms`.
    pub fn key(self) -> String {
        match self {
            Step::Switching(_) => "switching".into(),
            Step::Comparing => "comparing".into(),
            Step::KeepingLiveRows => "keeping live's rows".into(),
            Step::CheckingLive => "checking live".into(),
            Step::SwitchingBack => "switching back".into(),
            other => other.label().to_lowercase(),
        }
    }
}

/// A reason written for people, shown as it is.
#[derive(Debug)]
pub struct ForPeople(pub String);

impl std::fmt::Display for ForPeople {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForPeople {}

/// An error whose words are for people.
pub(crate) fn for_people(reason: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(ForPeople(reason.into()))
}

/// An operation that stopped on purpose, with its whole reason for people and what it found
/// (the activity's details keep it: a preview's report, conflicts, a failed health check).
#[derive(Debug)]
pub struct Stopped {
    pub reason: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Stopped {}

pub(crate) fn stopped(
    reason: impl Into<String>,
    details: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Error {
    anyhow::Error::new(Stopped {
        reason: reason.into(),
        details,
    })
}

/// What people are told to do when something failed that they cannot fix themselves.
pub const TRY_AGAIN: &str = "Try again; if it fails again, contact support.";

/// The words for people in an error's chain (a sentence, ending with a period), if it has any: a reason written for them, or a
/// refusal of a site's files (whose detail, with the paths, stays in the server's log).
pub(crate) fn people_words(e: &anyhow::Error) -> Option<String> {
    let words = e.chain().find_map(|c| {
        if let Some(p) = c.downcast_ref::<ForPeople>() {
            Some(p.0.clone())
        } else if let Some(r) = c.downcast_ref::<confined::Refusal>() {
            Some(r.to_string())
        } else if let Some(d) = c.downcast_ref::<crate::mysql::DatabaseError>() {
            Some(d.to_string())
        } else {
            c.downcast_ref::<crate::policy::Refusal>()
                .map(|r| format!("the site's {r}"))
        }
    })?;
    Some(format!("{}.", words.trim_end_matches('.')))
}

/// Why an operation failed, as the log keeps it: its own words for people when it has
/// them, otherwise what stopped, what that means for the site and what to do.
pub(crate) fn failure_reason(
    e: &anyhow::Error,
    kind: ActivityKind,
    target: Environment,
    step: &str,
    switched: bool,
) -> String {
    if let Some(s) = e.chain().find_map(|c| c.downcast_ref::<Stopped>()) {
        return s.reason.clone();
    }
    // The description already names the operation ("Push Staging to Live failed").
    let what = format!("Stopped while {}", lower_first(step));
    if let Some(words) = people_words(e) {
        return format!("{what}: {words}");
    }
    let meaning = match (kind, switched) {
        (ActivityKind::CreateBackup, _) => "No backup was made and the site was not changed.",
        (ActivityKind::PushStagingToLive, false) => "Live was not changed.",
        (ActivityKind::PushStagingToLive, true) => {
            "Live already has staging's changes; staging may not have been removed."
        }
        (ActivityKind::PreviewPush, _) => "Nothing was changed.",
        (ActivityKind::UndoPush | ActivityKind::RestoreLiveFromBackup, false) => {
            "Live was not changed."
        }
        (ActivityKind::UndoPush, true) => {
            "Live is back as it was before the push; cleaning up after it did not finish."
        }
        (ActivityKind::RestoreLiveFromBackup, true) => {
            "Live was restored from the backup; cleaning up after it did not finish."
        }
        (_, false) if target == Environment::Staging => {
            "Staging was not changed, and live is never touched by this."
        }
        (_, _) => "Staging was replaced; cleaning up after it did not finish.",
    };
    format!("{what}. {meaning} {TRY_AGAIN}")
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_step_and_what_to_do_but_no_server_detail() {
        let e = anyhow::anyhow!("ERROR 1698 (28000): Access denied for user ''@'localhost'")
            .context("connecting to /srv/www/acme/staging's database");
        let reason = failure_reason(
            &e,
            ActivityKind::PushStagingToLive,
            Environment::Live,
            "Copying the database",
            false,
        );
        assert_eq!(
            reason,
            "Stopped while copying the database. Live was not changed. \
             Try again; if it fails again, contact support."
        );
        let backup = failure_reason(
            &e,
            ActivityKind::CreateBackup,
            Environment::Live,
            "Backing up live's files",
            false,
        );
        assert!(backup.contains("No backup was made"), "{backup}");
        assert!(
            !backup.contains("1698") && !backup.contains('/'),
            "{backup}"
        );
    }

    #[test]
    fn words_for_people_are_kept_and_a_refusals_paths_are_not() {
        let e = confined::refusal(
            "wp-config.php is a link; replace it with a regular file",
            "/srv/www/acme/staging/wp-config.php -> /srv/www/victim/index.php",
        )
        .context("reading staging's configuration");
        let reason = failure_reason(
            &e,
            ActivityKind::CreateStaging,
            Environment::Staging,
            "Getting ready",
            false,
        );
        assert_eq!(
            reason,
            "Stopped while getting ready: wp-config.php is a link; replace it with a regular \
             file."
        );
        let e = for_people("The backup is damaged, so it was not used. Choose another backup.")
            .context("verifying /data/snapshots/x");
        assert_eq!(
            people_words(&e).unwrap(),
            "The backup is damaged, so it was not used. Choose another backup."
        );
        assert!(people_words(&anyhow::anyhow!("SQL error")).is_none());
    }
}
