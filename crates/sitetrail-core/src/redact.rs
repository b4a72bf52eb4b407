//! The one redaction function. Every output path (API, pages, exports, live streams) turns a
//! stored activity into what a viewer may see here, and only here.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

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

/// The identity a client must not learn: a support person's email and name.
struct Hidden<'a> {
    email: &'a str,
    name: Option<&'a str>,
}

/// Turns a stored activity into what a viewer of `audience` may see.
/// Who `audience` must not see in `a`, if anyone.
fn hidden_from(a: &StoredActivity, audience: Audience) -> Option<Hidden<'_>> {
    match (audience, a.actor.kind, &a.actor.email) {
        (Audience::Client, ActorKind::Support, Some(email)) => Some(Hidden {
            email: email.expose(),
            name: a.actor.name.as_deref(),
        }),
        _ => None,
    }
}

/// Whether clients see `a` otherwise than internal viewers do. Where it is false, the
/// client's view equals the internal one, so a caller that needs both may render one.
pub fn hides_from_clients(a: &StoredActivity) -> bool {
    hidden_from(a, Audience::Client).is_some()
}

pub fn view(a: &StoredActivity, audience: Audience) -> ActivityView {
    let hidden = hidden_from(a, audience);
    let user = user_view(a, hidden.is_some());
    let text = |s: &str| -> String {
        let rendered = s.replace(ACTOR_PLACEHOLDER, &user.label);
        match &hidden {
            Some(h) => scrub(&rendered, h).into_owned(),
            None => rendered,
        }
    };
    let details = match &hidden {
        Some(h) => scrub_map(&a.details, h),
        None => a.details.clone(),
    };
    ActivityView {
        id: a.id.clone(),
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
        (ActorKind::Support, true) => UserView {
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

/// `view(a, audience).search_text()`, without rendering the rest of the view: every write
/// renders it for both audiences, and the view's copy of the details was most of its cost.
pub fn search_text(a: &StoredActivity, audience: Audience) -> String {
    let hidden = hidden_from(a, audience);
    let (label, name) = match (a.actor.kind, &hidden) {
        (ActorKind::System, _) => (SYSTEM_USER, ""),
        (_, Some(_)) => (SUPPORT_USER, ""),
        _ => (
            a.actor.email.as_ref().map_or("", |e| e.expose()),
            a.actor.name.as_deref().unwrap_or(""),
        ),
    };
    let text = unscrubbed_search_text(a, label, name);
    let Some(h) = hidden else {
        return text;
    };
    // Scrubbing changes nothing where no trace of the identity appears: a match ignoring
    // case is a substring of the lower-cased text (exactly so for ASCII text, where
    // lower-casing a whole string and char by char agree).
    let traces = needles(&h)
        .into_iter()
        .any(|(needle, _)| text.contains(&needle.to_lowercase()));
    if text.is_ascii() && !traces {
        return text;
    }
    // Else redaction rewrites every string it appears in; the view is where that happens.
    view(a, audience).search_text()
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

/// Replaces every trace of a support person in free text: the email (also URL-encoded, and
/// its local part as a word), the full name and each part of the name as a word. Matching
/// ignores case.
fn scrub<'t>(text: &'t str, h: &Hidden) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for (needle, whole_word) in needles(h) {
        out = replace_ci(out, &needle, whole_word);
    }
    out
}

/// What [`scrub`] replaces, in its order, each with whether only a whole word matches.
fn needles<'h>(h: &Hidden<'h>) -> Vec<(Cow<'h, str>, bool)> {
    let mut out = vec![
        (Cow::Borrowed(h.email), false),
        (Cow::Owned(h.email.replace('@', "%40")), false),
    ];
    if let Some(name) = h.name {
        out.push((Cow::Borrowed(name.trim()), true));
        for part in name.split_whitespace().filter(|p| p.chars().count() >= 2) {
            out.push((Cow::Borrowed(part), true));
        }
    }
    if let Some((local, _)) = h.email.split_once('@')
        && local.chars().count() >= 2
    {
        out.push((Cow::Borrowed(local), true));
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
        let v = view(&a, Audience::Client);
        assert_eq!(v.user.label, "Support user");
        assert_eq!(v.user.email, None);
        assert_eq!(v.description, "Support user (Support user) pushed");
        assert!(!leaks(&v), "{}", serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn internal_viewer_sees_the_support_persons_email() {
        let a = activity(ActorKind::Support, "pushed by {actor}");
        let v = view(&a, Audience::Internal);
        assert_eq!(v.user.label, EMAIL);
        assert_eq!(v.user.email.as_deref(), Some(EMAIL));
        assert_eq!(v.description, format!("pushed by {EMAIL}"));
    }

    #[test]
    fn the_actor_placeholder_renders_as_the_viewers_user_column() {
        let a = activity(ActorKind::Support, "pushed by {actor}");
        assert_eq!(
            view(&a, Audience::Client).description,
            "pushed by Support user"
        );
    }

    #[test]
    fn a_users_own_email_is_shown_to_clients() {
        let a = activity(ActorKind::User, "done");
        let v = view(&a, Audience::Client);
        assert_eq!(v.user.label, EMAIL);
        assert_eq!(
            v.error.as_deref(),
            Some(format!("ask {EMAIL} about it").as_str())
        );
    }

    #[test]
    fn the_system_is_labelled_system() {
        let v = view(&activity(ActorKind::System, "nightly"), Audience::Client);
        assert_eq!(v.user.label, "System");
        assert_eq!(v.user.email, None);
    }

    #[test]
    fn labels_and_duration_are_filled_in() {
        let v = view(&activity(ActorKind::User, "x"), Audience::Internal);
        assert_eq!(v.activity_label, "Push Staging to Live");
        assert_eq!(v.service_label, "Staging");
        assert_eq!(v.status_label, "Failed");
        assert_eq!(v.duration_ms, Some(2_500));
    }

    #[test]
    fn scrubbing_respects_words_and_case() {
        let h = Hidden {
            email: "al@x.io",
            name: Some("Al Bo"),
        };
        assert_eq!(
            scrub("Albert and AL and al@X.IO", &h),
            "Albert and Support user and Support user"
        );
        assert_eq!(scrub("al%40x.io", &h), "Support user");
        assert_eq!(scrub("nothing here", &h), "nothing here");
    }

    #[test]
    fn case_insensitive_matching_handles_multibyte_text() {
        let h = Hidden {
            email: "zoe@x.io",
            name: Some("Zoë Ünal"),
        };
        assert_eq!(scrub("ZOË ÜNAL étudiée", &h), "Support user étudiée");
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

    proptest! {
        #[test]
        fn a_client_never_receives_a_support_email_or_name(
            d in text_strategy(), e in text_strategy(), k in text_strategy(), v in text_strategy()
        ) {
            let mut a = activity(ActorKind::Support, &d);
            a.error = Some(e);
            a.details = serde_json::json!({ k: v }).as_object().unwrap().clone();
            let shown = view(&a, Audience::Client);
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
            let client = view(&a, Audience::Client);
            let internal = view(&a, Audience::Internal);
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
            prop_assert_eq!(search_text(&a, audience), view(&a, audience).search_text());
        }

        #[test]
        fn text_without_the_identity_is_untouched(d in "[a-z0-9 .,é]{0,40}") {
            prop_assume!(!d.contains("sam") && !d.contains("rivera"));
            let a = activity(ActorKind::Support, &d);
            prop_assert_eq!(view(&a, Audience::Client).description, d);
        }
    }
}
