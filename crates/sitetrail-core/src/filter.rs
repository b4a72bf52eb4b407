//! Query filters and keyset cursors for reading the log.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::redact::{ActivityView, SUPPORT_USER, SYSTEM_USER, UserView};
use crate::{ActivityKind, ActorKind, Audience, Service, Status, StoredActivity, Timestamp};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
const MAX_Q_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("cursor: not a cursor this server gave out")]
    BadCursor,
}

fn invalid(field: &'static str, message: impl Into<String>) -> FilterError {
    FilterError::Invalid {
        field,
        message: message.into(),
    }
}

/// The query parameters as they arrive; [`ActivityFilter::parse`] and [`Page::parse`] turn
/// them into types.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RawQuery {
    /// An activity id such as `push_staging_to_live`.
    pub activity: Option<String>,
    /// `in_progress`, `completed` or `failed`.
    pub status: Option<String>,
    /// `staging` or `backups`.
    pub service: Option<String>,
    /// The User column as this viewer sees it (an email, `Support user` or `System`).
    pub user: Option<String>,
    /// RFC 3339; activities created at or after it.
    pub from: Option<String>,
    /// RFC 3339; activities created before it.
    pub to: Option<String>,
    /// Free text over what this viewer sees.
    pub q: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<String>,
    /// An opaque cursor from `next_cursor` or `prev_cursor`.
    pub cursor: Option<String>,
}

/// Whom the User filter matches, as the viewer sees the User column. Built so that it agrees
/// with [`crate::view`]: see the property test below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPredicate {
    /// Actors of these kinds whose email equals this one, ignoring ASCII case.
    Email {
        email_lower: String,
        kinds: &'static [ActorKind],
    },
    Kind(ActorKind),
}

impl UserPredicate {
    pub fn for_label(audience: Audience, label: &str) -> Self {
        let label = label.trim();
        if label.eq_ignore_ascii_case(SYSTEM_USER) {
            return UserPredicate::Kind(ActorKind::System);
        }
        match audience {
            Audience::Client if label.eq_ignore_ascii_case(SUPPORT_USER) => {
                UserPredicate::Kind(ActorKind::Support)
            }
            Audience::Client => UserPredicate::Email {
                email_lower: label.to_ascii_lowercase(),
                kinds: &[ActorKind::User],
            },
            Audience::Internal => UserPredicate::Email {
                email_lower: label.to_ascii_lowercase(),
                kinds: &[ActorKind::User, ActorKind::Support],
            },
        }
    }

    /// Whether the User column as a viewer is shown it passes: what a client's rows are
    /// checked against again, since its view hides more than the store's search text does.
    pub fn admits(&self, u: &UserView) -> bool {
        match self {
            UserPredicate::Kind(k) => u.kind == *k,
            UserPredicate::Email { email_lower, kinds } => {
                kinds.contains(&u.kind)
                    && u.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(email_lower))
            }
        }
    }

    pub fn matches(&self, a: &StoredActivity) -> bool {
        match self {
            UserPredicate::Kind(k) => a.actor.kind == *k,
            UserPredicate::Email { email_lower, kinds } => {
                kinds.contains(&a.actor.kind)
                    && a.actor
                        .email
                        .as_ref()
                        .is_some_and(|e| e.expose().eq_ignore_ascii_case(email_lower))
            }
        }
    }
}

/// What to read: every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityFilter {
    pub activity: Option<ActivityKind>,
    pub status: Option<Status>,
    pub service: Option<Service>,
    pub user: Option<UserPredicate>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Lower case; matched against [`crate::ActivityView::search_text`].
    pub q: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ActivityFilter {
    pub fn parse(raw: &RawQuery, audience: Audience) -> Result<Self, FilterError> {
        let word = |field: &'static str, msg: crate::activity::UnknownWord| {
            invalid(field, msg.to_string())
        };
        let time = |field: &'static str, v: Option<&str>| {
            v.map(|s| Timestamp::parse_rfc3339(s).map_err(|e| invalid(field, e.to_string())))
                .transpose()
        };
        // A text filter is matched as text: control characters (a NUL above all, which
        // PostgreSQL cannot take) match nothing and are refused.
        for (field, v) in [("user", &raw.user), ("q", &raw.q)] {
            if v.as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
            {
                return Err(invalid(field, "control characters are not allowed"));
            }
        }
        let f = ActivityFilter {
            activity: non_empty(&raw.activity)
                .map(ActivityKind::parse)
                .transpose()
                .map_err(|e| word("activity", e))?,
            status: non_empty(&raw.status)
                .map(Status::parse)
                .transpose()
                .map_err(|e| word("status", e))?,
            service: non_empty(&raw.service)
                .map(Service::parse)
                .transpose()
                .map_err(|e| word("service", e))?,
            user: non_empty(&raw.user).map(|u| UserPredicate::for_label(audience, u)),
            from: time("from", non_empty(&raw.from))?,
            to: time("to", non_empty(&raw.to))?,
            q: match non_empty(&raw.q) {
                Some(q) if q.chars().count() > MAX_Q_CHARS => {
                    return Err(invalid("q", format!("at most {MAX_Q_CHARS} characters")));
                }
                Some(q) => Some(q.to_lowercase()),
                None => None,
            },
        };
        if let (Some(from), Some(to)) = (f.from, f.to)
            && to < from
        {
            return Err(invalid("to", "is before from"));
        }
        Ok(f)
    }

    /// Whether the filter looks at what the viewer is shown (`q`, `user`): then a client's
    /// rows are checked again against its view with [`ActivityFilter::admits`].
    pub fn reads_the_view(&self) -> bool {
        self.q.is_some() || self.user.is_some()
    }

    /// Whether an activity, as this viewer is shown it, passes `q` and `user`. The store
    /// matches its own search text, rendered without the partner's roster or masked ids;
    /// this is the last word on what a client's search finds, so a client can never find an
    /// activity by a name or an id it is not shown.
    pub fn admits(&self, v: &ActivityView) -> bool {
        self.q
            .as_deref()
            .is_none_or(|q| v.search_text().contains(q))
            && self.user.as_ref().is_none_or(|u| u.admits(&v.user))
    }

    /// Whether a stored activity passes every filter but `q` (which needs the view).
    pub fn matches_stored(&self, a: &StoredActivity) -> bool {
        self.activity.is_none_or(|k| a.activity == k)
            && self.status.is_none_or(|s| a.status == s)
            && self.service.is_none_or(|s| a.service == s)
            && self.user.as_ref().is_none_or(|u| u.matches(a))
            && self.from.is_none_or(|t| a.created_at >= t)
            && self.to.is_none_or(|t| a.created_at < t)
    }
}

/// Which way a cursor reads: towards older activities (the next page) or newer ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Older,
    Newer,
}

/// A position in the newest-first order `(created_at, seq)`. Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub seq: i64,
    pub direction: Direction,
}

impl Cursor {
    pub fn after(a: &StoredActivity, direction: Direction) -> Self {
        Cursor {
            created_at: a.created_at,
            seq: a.seq,
            direction,
        }
    }

    pub fn encode(&self) -> String {
        let d = match self.direction {
            Direction::Older => 'o',
            Direction::Newer => 'n',
        };
        URL_SAFE_NO_PAD.encode(format!("{d}1.{}.{}", self.created_at.millis(), self.seq))
    }

    pub fn decode(s: &str) -> Result<Self, FilterError> {
        if s.len() > 64 {
            return Err(FilterError::BadCursor);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| FilterError::BadCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| FilterError::BadCursor)?;
        let (head, rest) = text.split_at_checked(2).ok_or(FilterError::BadCursor)?;
        let direction = match head {
            "o1" => Direction::Older,
            "n1" => Direction::Newer,
            _ => return Err(FilterError::BadCursor),
        };
        let mut parts = rest
            .strip_prefix('.')
            .ok_or(FilterError::BadCursor)?
            .split('.');
        let (Some(ms), Some(seq), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(FilterError::BadCursor);
        };
        let created_at = ms
            .parse::<i64>()
            .ok()
            .and_then(Timestamp::from_millis)
            .ok_or(FilterError::BadCursor)?;
        let seq = seq
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or(FilterError::BadCursor)?;
        Ok(Cursor {
            created_at,
            seq,
            direction,
        })
    }
}

/// How much to read and from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl Page {
    pub fn parse(raw: &RawQuery) -> Result<Self, FilterError> {
        let limit = match non_empty(&raw.limit) {
            None => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid("limit", format!("must be 1 to {MAX_LIMIT}")))?,
        };
        let cursor = non_empty(&raw.cursor).map(Cursor::decode).transpose()?;
        Ok(Page { limit, cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, ActivityId, Actor, Email, Environment, SiteId, view};
    use proptest::prelude::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            created_at: Timestamp::from_millis(1_764_000_000_000).unwrap(),
            seq: 42,
            direction: Direction::Newer,
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "x",
            "bzE",
            "%%%",
            &URL_SAFE_NO_PAD.encode("o1.-5.3"),
            &"a".repeat(100),
        ] {
            assert_eq!(Cursor::decode(bad), Err(FilterError::BadCursor), "{bad}");
        }
        for (user, q) in [(Some("a\0b"), None), (None, Some("x\ny"))] {
            let raw = RawQuery {
                user: user.map(str::to_owned),
                q: q.map(str::to_owned),
                ..RawQuery::default()
            };
            assert!(ActivityFilter::parse(&raw, Audience::Client).is_err());
        }
    }

    #[test]
    fn filters_parse_and_refuse_bad_values() {
        let raw = RawQuery {
            activity: Some("push_staging_to_live".into()),
            status: Some("failed".into()),
            q: Some("Timeout".into()),
            ..Default::default()
        };
        let f = ActivityFilter::parse(&raw, Audience::Client).unwrap();
        assert_eq!(f.activity, Some(ActivityKind::PushStagingToLive));
        assert_eq!(f.q.as_deref(), Some("timeout"));
        let bad = |raw: RawQuery| ActivityFilter::parse(&raw, Audience::Client).is_err();
        assert!(bad(RawQuery {
            activity: Some("delete_everything".into()),
            ..Default::default()
        }));
        assert!(bad(RawQuery {
            from: Some("last week".into()),
            ..Default::default()
        }));
        assert!(bad(RawQuery {
            from: Some("2026-02-01T00:00:00Z".into()),
            to: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn limits_are_bounded() {
        let page = |l: &str| {
            Page::parse(&RawQuery {
                limit: Some(l.into()),
                ..Default::default()
            })
        };
        assert_eq!(page("200").unwrap().limit, 200);
        for bad in ["0", "201", "-1", "ten"] {
            assert!(page(bad).is_err(), "{bad}");
        }
    }

    fn stored(kind: ActorKind, email: &str) -> StoredActivity {
        StoredActivity {
            seq: 1,
            id: ActivityId::parse("a").unwrap(),
            account_id: AccountId::parse("acc").unwrap(),
            site_id: SiteId::parse("s").unwrap(),
            environment: Environment::Staging,
            service: Service::Staging,
            activity: ActivityKind::CreateStaging,
            status: Status::Completed,
            actor: match kind {
                ActorKind::System => Actor::system(),
                k => Actor::person(k, Email::parse(email).unwrap(), None),
            },
            description: String::new(),
            error: None,
            details: Default::default(),
            created_at: Timestamp::from_millis(0).unwrap(),
            completed_at: None,
        }
    }

    #[test]
    fn a_client_filtering_by_a_support_email_finds_nothing() {
        let a = stored(ActorKind::Support, "sam@partner.example");
        assert!(!UserPredicate::for_label(Audience::Client, "sam@partner.example").matches(&a));
        assert!(UserPredicate::for_label(Audience::Client, "Support user").matches(&a));
        assert!(UserPredicate::for_label(Audience::Internal, "SAM@partner.example").matches(&a));
    }

    proptest! {
        /// The User filter matches exactly the rows whose User column, as the viewer sees it,
        /// equals the filter value.
        #[test]
        fn user_filter_agrees_with_the_redaction_function(
            kind in prop_oneof![Just(ActorKind::User), Just(ActorKind::Support), Just(ActorKind::System)],
            email in prop_oneof![Just("sam@p.example"), Just("Ann@c.example")],
            label in prop_oneof![Just("sam@p.example"), Just("ann@C.example"), Just("Support user"), Just("system"), Just("SUPPORT USER")],
            client in any::<bool>(),
        ) {
            let audience = if client { Audience::Client } else { Audience::Internal };
            let a = stored(kind, email);
            let shown = view(&a, &crate::Sight::plain(audience)).user.label;
            prop_assert_eq!(
                UserPredicate::for_label(audience, label).matches(&a),
                shown.eq_ignore_ascii_case(label)
            );
        }
    }
}
