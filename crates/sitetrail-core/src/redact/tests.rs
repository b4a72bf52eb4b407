//! The redaction function's tests: every path a support identity could take to a client.

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
