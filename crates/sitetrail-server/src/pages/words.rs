//! How the pages word what an activity says went wrong. The engine writes its reasons for
//! people; rows logged before it did (and anything else that reads like a server's own
//! message: a database error, a file, a path) are shown in words that name none of it, so a
//! client or partner never reads server detail. A scheduled backup skipped because another
//! operation held the site is the system's, retried by itself: shown calmly, not as an alarm.

use std::borrow::Cow;

use sitetrail_core::{ActivityKind, ActivityView, ActorKind, Status};

/// What a failure says when its own words were server detail.
pub const SERVER_DETAIL: &str = "The operation stopped because of a problem on the server. \
    Try again; if it fails again, contact your hosting provider.";

/// Signs that a text is a server's message rather than words for people.
const SERVER_SIGNS: [&str; 14] = [
    "ERROR 1",
    "ERROR 2",
    "Access denied for user",
    "SQLSTATE",
    "os error",
    "No such file or directory",
    "wp-config.php",
    "db.php",
    "connecting to staging's database",
    "reading staging's configuration",
    "panicked",
    "/var/",
    "/tmp/",
    "/home/",
];

/// An error as the pages show it.
pub fn error_for_people(error: &str) -> Cow<'_, str> {
    if SERVER_SIGNS.iter().any(|sign| error.contains(sign)) {
        Cow::Borrowed(SERVER_DETAIL)
    } else {
        Cow::Borrowed(error)
    }
}

/// A daily backup the system skipped because another operation held the site (the engine
/// names it in `details.blocked_by`); the scheduler takes it again by itself.
pub fn skipped_by_schedule(v: &ActivityView) -> bool {
    v.status == Status::Failed
        && v.user.kind == ActorKind::System
        && v.activity == ActivityKind::CreateBackup
        && v.details.contains_key("blocked_by")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_detail_is_replaced_and_words_for_people_are_kept() {
        for raw in [
            "connecting to staging's database: mysql: ERROR 1698 (28000): Access denied for user ''@'localhost'",
            "reading staging's configuration: no wp-config.php in staging",
            "copying /var/lib/sitetrail/snapshots/x: No such file or directory (os error 2)",
        ] {
            assert_eq!(error_for_people(raw), SERVER_DETAIL, "{raw}");
        }
        for people in [
            "There is no staging site yet. Create it first.",
            "The backup store did not answer within 10 minutes; the next backup runs tonight",
            "Push Staging to Live is running on this site. Try again when it has finished.",
        ] {
            assert_eq!(error_for_people(people), people);
        }
    }
}
