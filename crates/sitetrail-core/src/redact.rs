//! The one redaction function. Every output path (API, pages, exports, live streams) turns a
//! stored activity into what a viewer may see here, and only here.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::roster::{Roster, identity_needles, lower};
use crate::{
    AccountId, ActivityId, ActivityKind, ActorKind, Audience, Environment, Service, SiteId, Status,
    StoredActivity, Timestamp,
};

/// What a client is shown in place of a support person.
pub const SUPPORT_USER: &str = "Support user";
pub const SYSTEM_USER: &str = "System";
/// In descriptions, `{actor}` renders as the User column as the viewer sees it.
pub const ACTOR_PLACEHOLDER: &str = "{actor}";

/// The User column.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub kind: ActorKind,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An activity as one viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityView {
    pub id: ActivityId,
    pub account_id: AccountId,
    pub site_id: SiteId,
    pub environment: Environment,
    pub service: Service,
    pub service_label: &'static str,
    pub activity: ActivityKind,
    pub activity_label: &'static str,
    pub status: Status,
    pub status_label: &'static str,
    pub user: UserView,
    pub description: String,
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Map<String, Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub completed_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
}

/// How one viewer sees activities: their audience and, for clients, the partner's roster of
/// support identities and how an id that carries a hidden identity is shown instead.
#[derive(Clone, Copy)]
pub struct Sight<'a> {
    audience: Audience,
    roster: &'a Roster,
    ids: &'a dyn IdMask,
}

/// Shows a client an opaque id in place of an activity id that carries a support identity.
///
/// sitetrail does not refuse publisher ids that name a person: a roster learns identities
/// after the ids that name them were recorded, so refusing at ingest could never be total.
/// Instead a client is shown, for such an activity only, an id made by this mask (the server
/// encrypts the activity's position with its own key), and `GET /api/v1/activities/{id}`
/// takes that id back; the publisher's id answers a client 404 there. Internal viewers and
/// publishers always see the publisher's id.
pub trait IdMask: Sync {
    fn mask(&self, a: &StoredActivity) -> ActivityId;
}

/// Ids as they are: for internal viewers and the store's search text.
pub struct PlainIds;

impl IdMask for PlainIds {
    fn mask(&self, a: &StoredActivity) -> ActivityId {
        a.id.clone()
    }
}

static NO_ROSTER: LazyLock<Roster> = LazyLock::new(Roster::empty);

impl Sight<'static> {
    /// What internal viewers (and publishers) see: everything.
    pub fn internal() -> Self {
        Sight::plain(Audience::Internal)
    }

    /// An audience without a roster or masked ids: the view the store's search text renders.
    pub fn plain(audience: Audience) -> Self {
        Sight {
            audience,
            roster: &NO_ROSTER,
            ids: &PlainIds,
        }
    }
}

impl<'a> Sight<'a> {
    pub fn new(audience: Audience, roster: &'a Roster, ids: &'a dyn IdMask) -> Self {
        Sight {
            audience,
            roster,
            ids,
        }
    }

    pub fn audience(&self) -> Audience {
        self.audience
    }
}

/// What `sight` must hide in `a`: the partner's roster and the activity's own support actor,
/// for clients; nothing for internal viewers.
fn hidden_in<'s>(a: &StoredActivity, sight: &Sight<'s>) -> Hidden<'s> {
    if sight.audience != Audience::Client {
        return Hidden {
            roster: &NO_ROSTER,
            own: Vec::new(),
        };
    }
    let own = match (a.actor.kind, &a.actor.email) {
        (ActorKind::Support, Some(email)) => {
            identity_needles(email.expose(), a.actor.name.as_deref(), 2)
        }
        _ => Vec::new(),
    };
    Hidden {
        roster: sight.roster,
        own,
    }
}

/// The people one activity's view hides: a roster (of hundreds, maybe) and the activity's
/// own actor.
struct Hidden<'s> {
    roster: &'s Roster,
    own: Vec<(String, bool)>,
}

impl Hidden<'_> {
    fn is_empty(&self) -> bool {
        self.roster.needles.is_empty() && self.own.is_empty()
    }

    /// The needles that occur in `text` ignoring case, longest first: only these can match
    /// it.
    fn candidates(&self, text: &str) -> Vec<(&str, bool)> {
        let mut out: Vec<(&str, bool)> = self
            .roster
            .candidates(text)
            .into_iter()
            .map(|(n, w)| (n.as_str(), *w))
            .collect();
        if !self.own.is_empty() {
            let lowered = lower(text);
            let own = self
                .own
                .iter()
                .filter(|(n, _)| lowered.contains(&lower(n)))
                .map(|(n, w)| (n.as_str(), *w));
            out.extend(own);
        }
        out.sort_by_key(|(n, _)| std::cmp::Reverse(n.chars().count()));
        out
    }
}

/// Whether the actor of `a` is hidden from `sight`: a support person, or anyone whose email
/// is on the roster, for clients.
fn actor_hidden(a: &StoredActivity, sight: &Sight) -> bool {
    sight.audience == Audience::Client
        && match (a.actor.kind, &a.actor.email) {
            (ActorKind::Support, Some(_)) => true,
            (ActorKind::User, Some(email)) => sight.roster.has_email(email.expose()),
            _ => false,
        }
}

/// Whether clients see `a` otherwise than internal viewers do (without a roster). Where it
/// is false, the client's view equals the internal one, so a caller that needs both may
/// render one.
pub fn hides_from_clients(a: &StoredActivity) -> bool {
    actor_hidden(a, &Sight::plain(Audience::Client))
}

/// Turns a stored activity into what a viewer may see: the one redaction function.
pub fn view(a: &StoredActivity, sight: &Sight) -> ActivityView {
    let hidden = hidden_in(a, sight);
    let user = user_view(a, actor_hidden(a, sight));
    let text = |s: &str| -> String {
        let rendered = s.replace(ACTOR_PLACEHOLDER, &user.label);
        scrub(&rendered, &hidden).into_owned()
    };
    let details = if hidden.is_empty() {
        a.details.clone()
    } else {
        scrub_map(&a.details, &hidden)
    };
    let id = if matches!(scrub(a.id.as_str(), &hidden), Cow::Owned(_)) {
        sight.ids.mask(a)
    } else {
        a.id.clone()
    };
    ActivityView {
        id,
        account_id: a.account_id.clone(),
        site_id: a.site_id.clone(),
        environment: a.environment,
        service: a.service,
        service_label: a.service.label(),
        activity: a.activity,
        activity_label: a.activity.label(),
        status: a.status,
        status_label: a.status.label(),
        description: text(&a.description),
        error: a.error.as_deref().map(text),
        details,
        created_at: a.created_at,
        completed_at: a.completed_at,
        duration_ms: a.duration_ms(),
        user,
    }
}

impl ActivityView {
    /// The text free-text search (`q`) looks through: everything this viewer is shown, in
    /// lower case.
    pub fn search_text(&self) -> String {
        write_search_text(
            [
                self.user.label.as_str(),
                self.user.name.as_deref().unwrap_or(""),
                self.activity_label,
                self.service_label,
                self.status_label,
                self.environment.as_str(),
                self.id.as_str(),
                &self.description,
                self.error.as_deref().unwrap_or(""),
            ],
            &self.details,
        )
    }
}

/// The User column of `a`, with the actor's identity left out where it is `hidden`.
fn user_view(a: &StoredActivity, hidden: bool) -> UserView {
    match (a.actor.kind, hidden) {
        (ActorKind::System, _) => UserView {
            kind: ActorKind::System,
            label: SYSTEM_USER.to_owned(),
            email: None,
            name: None,
        },
        (_, true) => UserView {
            kind: ActorKind::Support,
            label: SUPPORT_USER.to_owned(),
            email: None,
            name: None,
        },
        (kind, _) => {
            let email = a.actor.email.as_ref().map(|e| e.expose().to_owned());
            UserView {
                kind,
                label: email.clone().unwrap_or_default(),
                email,
                name: a.actor.name.clone(),
            }
        }
    }
}

/// `view(a, &Sight::plain(audience)).search_text()`, without rendering the rest of the view:
/// every write renders it for both audiences, and the view's copy of the details was most of
/// its cost. What the store keeps to search in; a client's matches are checked again against
/// its own view ([`crate::ActivityFilter::admits`]).
pub fn search_text(a: &StoredActivity, audience: Audience) -> String {
    let sight = Sight::plain(audience);
    let hidden = hidden_in(a, &sight);
    let (label, name) = match (a.actor.kind, actor_hidden(a, &sight)) {
        (ActorKind::System, _) => (SYSTEM_USER, ""),
        (_, true) => (SUPPORT_USER, ""),
        _ => (
            a.actor.email.as_ref().map_or("", |e| e.expose()),
            a.actor.name.as_deref().unwrap_or(""),
        ),
    };
    let text = unscrubbed_search_text(a, label, name);
    if hidden.is_empty() {
        return text;
    }
    // Scrubbing changes nothing where no trace of the identity appears: a match ignoring
    // case is a substring of the lower-cased text (exactly so for ASCII text, where
    // lower-casing a whole string and char by char agree).
    let traces = !hidden.candidates(&text).is_empty();
    if text.is_ascii() && !traces {
        return text;
    }
    // Else redaction rewrites every string it appears in; the view is where that happens.
    view(a, &sight).search_text()
}

/// The search text of `a` shown with the User column `label` (and `name`), scrubbed of
/// nothing.
fn unscrubbed_search_text(a: &StoredActivity, label: &str, name: &str) -> String {
    let text = |s: &str| s.replace(ACTOR_PLACEHOLDER, label);
    let description = text(&a.description);
    let error = a.error.as_deref().map(text);
    write_search_text(
        [
            label,
            name,
            a.activity.label(),
            a.service.label(),
            a.status.label(),
            a.environment.as_str(),
            a.id.as_str(),
            &description,
            error.as_deref().unwrap_or(""),
        ],
        &a.details,
    )
}

fn write_search_text(parts: [&str; 9], details: &Map<String, Value>) -> String {
    let mut out = String::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        out.push_str(part);
        out.push('\n');
    }
    collect_strings(details, &mut out);
    out.to_lowercase()
}

fn collect_strings(map: &Map<String, Value>, out: &mut String) {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Number(n) => {
                out.push_str(&n.to_string());
                out.push('\n');
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(m) => collect_strings(m, out),
            Value::Bool(_) | Value::Null => {}
        }
    }
    for (k, v) in map {
        out.push_str(k);
        out.push('\n');
        walk(v, out);
    }
}

fn scrub_map(map: &Map<String, Value>, h: &Hidden) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (scrub(k, h).into_owned(), scrub_value(v, h)))
        .collect()
}

fn scrub_value(v: &Value, h: &Hidden) -> Value {
    match v {
        Value::String(s) => Value::String(scrub(s, h).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(|i| scrub_value(i, h)).collect()),
        Value::Object(m) => Value::Object(scrub_map(m, h)),
        other => other.clone(),
    }
}

/// Replaces every trace of hidden people in free text with [`SUPPORT_USER`]. Matching
/// ignores case; only the needles found in the lower-cased text are tried.
fn scrub<'t>(text: &'t str, h: &Hidden) -> Cow<'t, str> {
    if h.is_empty() || text.is_empty() {
        return Cow::Borrowed(text);
    }
    replace_all(text, &h.candidates(text))
}

/// Replaces each needle in its order (longest first).
fn replace_all<'t>(text: &'t str, needles: &[(&str, bool)]) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for (needle, whole_word) in needles {
        out = replace_ci(out, needle, *whole_word);
    }
    out
}

fn replace_ci<'t>(text: Cow<'t, str>, needle: &str, whole_word: bool) -> Cow<'t, str> {
    if needle.is_empty() {
        return text;
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    let mut changed = false;
    // A match can start only where the text's char lowercases to the needle's first: for an
    // ASCII byte, one comparison tells without starting to match.
    let first = needle.chars().flat_map(char::to_lowercase).next();
    while i < text.len() {
        let b = text.as_bytes()[i];
        let may_start = !b.is_ascii() || Some(char::from(b.to_ascii_lowercase())) == first;
        if may_start && let Some(end) = match_ci_at(&text, i, needle) {
            let word_ok = !whole_word
                || (!text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
                    && !text[end..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric));
            if word_ok && end > i {
                out.push_str(&text[copied..i]);
                out.push_str(SUPPORT_USER);
                copied = end;
                i = end;
                changed = true;
                continue;
            }
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    if !changed {
        return text;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// If `needle` matches `text` at byte `start`, ignoring case, the byte where the match ends.
fn match_ci_at(text: &str, start: usize, needle: &str) -> Option<usize> {
    let mut hay = text[start..].char_indices();
    let mut want = needle.chars().flat_map(char::to_lowercase);
    let mut end = start;
    loop {
        let Some(mut next) = want.next() else {
            return Some(end);
        };
        let (idx, ch) = hay.next()?;
        end = start + idx + ch.len_utf8();
        for (i, got) in ch.to_lowercase().enumerate() {
            if i > 0 {
                match want.next() {
                    Some(c) => next = c,
                    // The needle ended inside one of this char's lowercase forms.
                    None => return None,
                }
            }
            if next != got {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests;
