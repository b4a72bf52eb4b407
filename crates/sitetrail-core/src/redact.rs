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
mod tests {
    use super::*;
    use crate::{Actor, Email};
    use proptest::prelude::*;

    const EMAIL: &str = "sam.rivera@partner.example";
    const NAME: &str = "Sam Rivera";

    fn activity(kind: ActorKind, description: &str) -> StoredActivity {
        let actor = match kind {
            ActorKind::System => Actor::system(),
            _ => Actor::person(kind, Email::parse(EMAIL).unwrap(), Some(NAME.into())),
        };
        StoredActivity {
            seq: 1,
            id: ActivityId::parse("a1").unwrap(),
            account_id: AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: Environment::Live,
            service: Service::Staging,
            activity: ActivityKind::PushStagingToLive,
            status: Status::Failed,
            actor,
            description: description.into(),
            error: Some(format!("ask {EMAIL} about it")),
            details: serde_json::json!({
                "by": EMAIL,
                "notes": [format!("{NAME} pushed"), "ok"],
                EMAIL: {"nested": "SAM.RIVERA@PARTNER.EXAMPLE"},
            })
            .as_object()
            .unwrap()
            .clone(),
            created_at: Timestamp::from_millis(1_000).unwrap(),
            completed_at: Some(Timestamp::from_millis(3_500).unwrap()),
        }
    }

    fn needles(email: &str, name: Option<&str>, min: usize) -> Hidden<'static> {
        Hidden {
            roster: &NO_ROSTER,
            own: identity_needles(email, name, min),
        }
    }

    fn leaks(view: &ActivityView) -> bool {
        let all = serde_json::to_string(view).unwrap().to_lowercase();
        all.contains("sam") || all.contains("rivera") || all.contains("partner.example")
    }

    #[test]
    fn client_viewer_sees_support_user_instead_of_email() {
        let a = activity(
            ActorKind::Support,
            "Sam Rivera (sam.rivera@partner.example) pushed",
        );
        let v = view(&a, &Sight::plain(Audience::Client));
        assert_eq!(v.user.label, "Support user");
        assert_eq!(v.user.email, None);
        assert_eq!(v.description, "Support user (Support user) pushed");
        assert!(!leaks(&v), "{}", serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn internal_viewer_sees_the_support_persons_email() {
        let a = activity(ActorKind::Support, "pushed by {actor}");
        let v = view(&a, &Sight::plain(Audience::Internal));
        assert_eq!(v.user.label, EMAIL);
        assert_eq!(v.user.email.as_deref(), Some(EMAIL));
        assert_eq!(v.description, format!("pushed by {EMAIL}"));
    }

    #[test]
    fn the_actor_placeholder_renders_as_the_viewers_user_column() {
        let a = activity(ActorKind::Support, "pushed by {actor}");
        assert_eq!(
            view(&a, &Sight::plain(Audience::Client)).description,
            "pushed by Support user"
        );
    }

    #[test]
    fn a_users_own_email_is_shown_to_clients() {
        let a = activity(ActorKind::User, "done");
        let v = view(&a, &Sight::plain(Audience::Client));
        assert_eq!(v.user.label, EMAIL);
        assert_eq!(
            v.error.as_deref(),
            Some(format!("ask {EMAIL} about it").as_str())
        );
    }

    #[test]
    fn the_system_is_labelled_system() {
        let v = view(
            &activity(ActorKind::System, "nightly"),
            &Sight::plain(Audience::Client),
        );
        assert_eq!(v.user.label, "System");
        assert_eq!(v.user.email, None);
    }

    #[test]
    fn labels_and_duration_are_filled_in() {
        let v = view(
            &activity(ActorKind::User, "x"),
            &Sight::plain(Audience::Internal),
        );
        assert_eq!(v.activity_label, "Push Staging to Live");
        assert_eq!(v.service_label, "Staging");
        assert_eq!(v.status_label, "Failed");
        assert_eq!(v.duration_ms, Some(2_500));
    }

    #[test]
    fn scrubbing_respects_words_and_case() {
        let h = needles("al@x.io", Some("Al Bo"), 2);
        assert_eq!(
            scrub("Albert and AL and al@X.IO", &h),
            "Albert and Support user and Support user"
        );
        assert_eq!(scrub("al%40x.io", &h), "Support user");
        assert_eq!(scrub("nothing here", &h), "nothing here");
    }

    #[test]
    fn case_insensitive_matching_handles_multibyte_text() {
        let h = needles("zoe@x.io", Some("Zoë Ünal"), 2);
        assert_eq!(scrub("ZOË ÜNAL étudiée", &h), "Support user étudiée");
    }

    /// Masks an id as a server would, without a key.
    struct Masked;

    impl IdMask for Masked {
        fn mask(&self, a: &StoredActivity) -> ActivityId {
            ActivityId::parse(&format!("masked-{}", a.seq)).unwrap()
        }
    }

    fn sam() -> Roster {
        let email = Email::parse(EMAIL).unwrap();
        Roster::new([(&email, Some(NAME))])
    }

    #[test]
    fn a_roster_identity_is_hidden_from_clients_whoever_the_actor() {
        let mut a = activity(
            ActorKind::User,
            "Asked Sam Rivera (SAM.RIVERA@partner.example) and rivera; samuel stays",
        );
        a.actor = Actor::person(
            ActorKind::User,
            Email::parse("jo@acme.example").unwrap(),
            None,
        );
        let roster = sam();
        let client = view(&a, &Sight::new(Audience::Client, &roster, &Masked));
        assert_eq!(
            client.description,
            "Asked Support user (Support user) and Support user; samuel stays"
        );
        assert_eq!(
            client.user.label, "jo@acme.example",
            "the actor is not hidden"
        );
        assert_eq!(client.error.as_deref(), Some("ask Support user about it"));
        let text = serde_json::to_string(&client).unwrap().to_lowercase();
        assert!(
            !text.contains("rivera") && !text.contains("partner.example"),
            "{text}"
        );
        // Internal viewers see it all; so does a client of a partner Sam does not support.
        let internal = view(&a, &Sight::new(Audience::Internal, &roster, &Masked));
        assert!(internal.description.contains("Sam Rivera"));
        let elsewhere = view(&a, &Sight::new(Audience::Client, &Roster::empty(), &Masked));
        assert!(elsewhere.description.contains("Sam Rivera"));
    }

    #[test]
    fn roster_parts_are_whole_words_of_three_letters_or_more() {
        let email = Email::parse("al.bo-stone@help.example").unwrap();
        let roster = Roster::new([(&email, Some("Al Bo Stone"))]);
        let mut a = activity(
            ActorKind::System,
            "Al and Bo met Stone, al.bo-stone and Stoneware",
        );
        a.error = None;
        a.details = Map::new();
        let v = view(&a, &Sight::new(Audience::Client, &roster, &Masked));
        assert_eq!(
            v.description,
            "Al and Bo met Support user, Support user and Stoneware"
        );
    }

    #[test]
    fn a_roster_email_is_hidden_in_the_user_column_too() {
        let a = activity(ActorKind::User, "x");
        let v = view(&a, &Sight::new(Audience::Client, &sam(), &Masked));
        assert_eq!(v.user.label, "Support user");
        assert_eq!(v.user.kind, ActorKind::Support);
        assert_eq!(v.user.email, None);
    }

    #[test]
    fn an_id_that_names_a_hidden_person_is_masked_for_clients_only() {
        let mut a = activity(ActorKind::User, "x");
        a.actor = Actor::system();
        a.id = ActivityId::parse("sam.rivera-push-7731").unwrap();
        let roster = sam();
        let client = view(&a, &Sight::new(Audience::Client, &roster, &Masked));
        assert_eq!(client.id.as_str(), "masked-1");
        assert!(!client.search_text().contains("rivera"));
        let internal = view(&a, &Sight::new(Audience::Internal, &roster, &Masked));
        assert_eq!(internal.id.as_str(), "sam.rivera-push-7731");
        // The activity's own support actor hides it without a roster.
        let mut own = activity(ActorKind::Support, "x");
        own.id = a.id.clone();
        let v = view(
            &own,
            &Sight::new(Audience::Client, &Roster::empty(), &Masked),
        );
        assert_eq!(v.id.as_str(), "masked-1");
        // Other ids are shown as they are.
        own.id = ActivityId::parse("push-7731").unwrap();
        let v = view(&own, &Sight::new(Audience::Client, &roster, &Masked));
        assert_eq!(v.id.as_str(), "push-7731");
    }

    #[test]
    fn a_roster_never_shows_in_debug() {
        let shown = format!("{:?}", sam());
        assert!(!shown.to_lowercase().contains("sam"), "{shown}");
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(EMAIL.to_owned()),
            Just(EMAIL.to_uppercase()),
            Just(NAME.to_owned()),
            Just("sam".to_owned()),
            Just("Rivera".to_owned()),
            Just("sam.rivera%40partner.example".to_owned()),
            "[a-zA-Z0-9 .,@é]{0,12}",
        ];
        prop::collection::vec(piece, 0..8).prop_map(|p| p.join(" "))
    }

    /// A roster of `n` people whose names share parts, as a big partner's do.
    fn big_roster(n: usize) -> (Roster, Vec<(Email, String)>) {
        let first = ["Sam", "Zoë", "Ana", "Lee", "Kim", "Joe", "Max", "Ünal"];
        let people: Vec<(Email, String)> = (0..n)
            .map(|i| {
                let f = first[i % first.len()];
                let last = format!("Rivera{i}");
                let email = format!(
                    "{}.{}@partner.example",
                    f.to_lowercase(),
                    last.to_lowercase()
                );
                (Email::parse(&email).unwrap(), format!("{f} {last}"))
            })
            .collect();
        let roster = Roster::new(people.iter().map(|(e, n)| (e, Some(n.as_str()))));
        (roster, people)
    }

    #[test]
    fn a_big_roster_hides_what_trying_every_needle_in_turn_hides() {
        let (roster, people) = big_roster(500);
        let all: Vec<(&str, bool)> = roster
            .needles
            .iter()
            .map(|(n, w)| (n.as_str(), *w))
            .collect();
        let hidden = Hidden {
            roster: &roster,
            own: Vec::new(),
        };
        let texts = [
            format!("pushed by {} ({})", people[7].1, people[7].0.expose()),
            format!(
                "{} and {} met",
                people[499].1.to_uppercase(),
                people[3].0.expose()
            ),
            "ZOË ÜNAL approved; Samuel wrote to sam and SAM.RIVERA42@PARTNER.EXAMPLE".to_owned(),
            "kimrivera1 is not a word match, Kim Rivera1 is".to_owned(),
            "nothing of theirs here".to_owned(),
            String::new(),
        ];
        for text in &texts {
            assert_eq!(scrub(text, &hidden), replace_all(text, &all), "{text}");
        }
        assert_eq!(
            scrub(&texts[0], &hidden),
            "pushed by Support user (Support user)"
        );
        assert_eq!(scrub(&texts[4], &hidden), Cow::Borrowed(texts[4].as_str()));
    }

    proptest! {
        #[test]
        fn a_big_roster_hides_in_any_text_what_every_needle_in_turn_hides(
            picks in proptest::collection::vec((0usize..60, 0usize..4, any::<bool>()), 0..6),
            filler in "[a-zA-Z .@%Ü]{0,12}",
        ) {
            let (roster, people) = big_roster(60);
            let mut text = filler.clone();
            for (who, part, upper) in picks {
                let (email, name) = &people[who];
                let piece = match part {
                    0 => email.expose().to_owned(),
                    1 => name.clone(),
                    2 => name.split(' ').next().unwrap().to_owned(),
                    _ => email.expose().replace('@', "%40"),
                };
                text.push_str(if upper { &filler } else { " " });
                text.push_str(&if upper { piece.to_uppercase() } else { piece });
            }
            let all: Vec<(&str, bool)> =
                roster.needles.iter().map(|(n, w)| (n.as_str(), *w)).collect();
            let hidden = Hidden { roster: &roster, own: Vec::new() };
            prop_assert_eq!(scrub(&text, &hidden), replace_all(&text, &all));
        }

        #[test]
        fn a_client_never_receives_a_support_email_or_name(
            d in text_strategy(), e in text_strategy(), k in text_strategy(), v in text_strategy()
        ) {
            let mut a = activity(ActorKind::Support, &d);
            a.error = Some(e);
            a.details = serde_json::json!({ k: v }).as_object().unwrap().clone();
            let shown = view(&a, &Sight::plain(Audience::Client));
            let text = serde_json::to_string(&shown).unwrap().to_lowercase();
            prop_assert!(!text.contains(&EMAIL.to_lowercase()), "{}", text);
            prop_assert!(!text.contains("rivera"), "{}", text);
            prop_assert!(!shown.search_text().contains("rivera"));
        }

        #[test]
        fn where_nothing_is_hidden_from_clients_they_see_what_internal_viewers_see(
            kind in prop_oneof![Just(ActorKind::Support), Just(ActorKind::User), Just(ActorKind::System)],
            with_email in any::<bool>(),
            d in text_strategy(), e in text_strategy(), k in text_strategy(), v in text_strategy()
        ) {
            let mut a = activity(kind, &d);
            if !with_email {
                a.actor.email = None;
            }
            a.error = Some(e);
            a.details = serde_json::json!({ k: v }).as_object().unwrap().clone();
            let client = view(&a, &Sight::plain(Audience::Client));
            let internal = view(&a, &Sight::plain(Audience::Internal));
            if hides_from_clients(&a) {
                prop_assert_ne!(client, internal);
            } else {
                prop_assert_eq!(client, internal);
            }
        }

        #[test]
        fn search_text_is_the_views_search_text(
            kind in prop_oneof![Just(ActorKind::Support), Just(ActorKind::User), Just(ActorKind::System)],
            with_email in any::<bool>(),
            with_name in any::<bool>(),
            client in any::<bool>(),
            d in text_strategy(), e in proptest::option::of(text_strategy()),
            k in text_strategy(), v in text_strategy(), n in any::<i64>()
        ) {
            let mut a = activity(kind, &format!("{d} {ACTOR_PLACEHOLDER} did it"));
            if !with_email {
                a.actor.email = None;
            }
            if !with_name {
                a.actor.name = None;
            }
            a.error = e.map(|e| format!("{ACTOR_PLACEHOLDER}: {e}"));
            a.details = serde_json::json!({ k: v, "n": n, "list": [v, n, null, true] })
                .as_object()
                .unwrap()
                .clone();
            let audience = if client { Audience::Client } else { Audience::Internal };
            prop_assert_eq!(search_text(&a, audience), view(&a, &Sight::plain(audience)).search_text());
        }

        #[test]
        fn text_without_the_identity_is_untouched(d in "[a-z0-9 .,é]{0,40}") {
            prop_assume!(!d.contains("sam") && !d.contains("rivera"));
            let a = activity(ActorKind::Support, &d);
            prop_assert_eq!(view(&a, &Sight::plain(Audience::Client)).description, d);
        }
    }
}
