//! Staging as the Staging page states it, from the engine's record: not created (or removed
//! by a push), or made when and from what (live, a template by its name, a backup by its
//! time), when it was last pushed, and its size.

use sitetrail_staging::{StagingSource, StagingState};

use crate::pages::snapshots::{Snapshot, size};
use crate::pages::time::TimeCell;

/// What the page says about staging now.
#[derive(Debug, Clone)]
pub struct StagingFacts {
    pub exists: bool,
    /// When it was made.
    pub created: Option<TimeCell>,
    /// "live", "the template “Bakery Classic”", "a backup of live" (then `from_time`).
    pub from: String,
    /// The backup's time, when it was made from one.
    pub from_time: Option<TimeCell>,
    pub last_pushed: Option<TimeCell>,
    /// `45.6 MB`, files and database.
    pub size: Option<String>,
}

impl StagingFacts {
    /// The facts of the engine's record; `backups` name a backup's time and environment.
    pub fn of(state: &StagingState, backups: &[Snapshot]) -> StagingFacts {
        let (from, from_time) = match state.created.as_ref().map(|c| &c.from) {
            None => (String::new(), None),
            Some(StagingSource::Live) => ("live".to_owned(), None),
            Some(StagingSource::Template { name, .. }) => {
                (format!("the template \u{201c}{name}\u{201d}"), None)
            }
            Some(StagingSource::Backup { id }) => match backups.iter().find(|b| &b.id == id) {
                Some(b) if !b.environment.is_empty() => (
                    format!("a backup of {}", b.environment.to_lowercase()),
                    Some(b.created.clone()),
                ),
                Some(b) => ("a backup".to_owned(), Some(b.created.clone())),
                // The backup is gone (retention): its id is all there is.
                None => (format!("the backup {id}"), None),
            },
        };
        StagingFacts {
            exists: state.exists,
            created: state
                .created
                .as_ref()
                .filter(|_| state.exists)
                .map(|c| TimeCell::of(c.at)),
            from,
            from_time,
            last_pushed: state.last_pushed.map(TimeCell::of),
            size: state.size_bytes.filter(|_| state.exists).map(size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetrail_core::Timestamp;
    use sitetrail_staging::StagingOrigin;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn made_from(from: StagingSource) -> StagingState {
        StagingState {
            exists: true,
            created: Some(StagingOrigin {
                at: at("2026-12-02T10:15:00Z"),
                from,
            }),
            last_pushed: None,
            size_bytes: Some(45_600_000),
        }
    }

    #[test]
    fn staging_made_from_live_a_template_or_a_backup_says_which() {
        let live = StagingFacts::of(&made_from(StagingSource::Live), &[]);
        assert!(live.exists);
        assert_eq!(live.from, "live");
        assert_eq!(live.created.unwrap().text, "2026-12-02 10:15 UTC");
        assert_eq!(live.size.as_deref(), Some("45.6 MB"));
        let template = StagingSource::Template {
            id: "bakery-classic".into(),
            name: "Bakery Classic".into(),
        };
        let t = StagingFacts::of(&made_from(template), &[]);
        assert_eq!(t.from, "the template \u{201c}Bakery Classic\u{201d}");
        let gone = StagingSource::Backup {
            id: "live-20261201T000000Z".into(),
        };
        let b = StagingFacts::of(&made_from(gone), &[]);
        assert_eq!(b.from, "the backup live-20261201T000000Z");
        assert!(b.from_time.is_none());
    }

    #[test]
    fn staging_removed_by_a_push_says_when_it_was_pushed_and_nothing_else() {
        let pushed = StagingState {
            exists: false,
            last_pushed: Some(at("2026-12-03T08:00:00Z")),
            ..made_from(StagingSource::Live)
        };
        let f = StagingFacts::of(&pushed, &[]);
        assert!(!f.exists);
        assert!(f.created.is_none() && f.size.is_none());
        assert_eq!(f.last_pushed.unwrap().text, "2026-12-03 08:00 UTC");
        let never = StagingFacts::of(&StagingState::default(), &[]);
        assert!(!never.exists && never.last_pushed.is_none());
    }
}
