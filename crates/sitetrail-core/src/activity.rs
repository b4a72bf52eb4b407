//! Activities: what was done to a site, by whom, and how it ended.

use serde::{Deserialize, Serialize};

use crate::{AccountId, ActivityId, Actor, SiteId, Timestamp};

macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal { $($variant:ident = $word:literal, $label:literal;)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The words people read in the dashboard and in exports.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            pub fn parse(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { what: $what, allowed: &[$($word,)+] }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                Self::parse(s)
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what}; expected one of: {}", allowed.join(", "))]
pub struct UnknownWord {
    pub what: &'static str,
    pub allowed: &'static [&'static str],
}

word_enum!(
    /// The Activity column.
    ActivityKind, "activity" {
        CreateStaging = "create_staging", "Create Staging Environment";
        ResetStagingFromTemplate = "reset_staging_from_template", "Reset Staging from Template";
        ResetStagingFromBackup = "reset_staging_from_backup", "Reset Staging from Backup";
        PushStagingToLive = "push_staging_to_live", "Push Staging to Live";
        PreviewPush = "preview_push", "Preview Push to Live";
        UndoPush = "undo_push", "Undo Push to Live";
        RestoreLiveFromBackup = "restore_live_from_backup", "Restore Live from Backup";
        CreateBackup = "create_backup", "Create Backup";
        PruneActivityLog = "prune_activity_log", "Prune Activity Log";
    }
);

word_enum!(
    /// The Service column.
    Service, "service" {
        Staging = "staging", "Staging";
        Backups = "backups", "Backups";
        ActivityLog = "activity_log", "Activity Log";
    }
);

word_enum!(
    /// The Status column. The only lifecycle is `in_progress → completed | failed`.
    Status, "status" {
        InProgress = "in_progress", "In progress";
        Completed = "completed", "Completed";
        Failed = "failed", "Failed";
    }
);

word_enum!(
    Environment, "environment" {
        Live = "live", "Live";
        Staging = "staging", "Staging";
    }
);

impl ActivityKind {
    /// The service an activity belongs to.
    pub fn service(self) -> Service {
        match self {
            ActivityKind::CreateBackup => Service::Backups,
            ActivityKind::PruneActivityLog => Service::ActivityLog,
            _ => Service::Staging,
        }
    }

    /// Activities only sitetrail itself records (the retention policy's prunes): publishers
    /// may not log them.
    pub fn is_recorded_by_sitetrail(self) -> bool {
        self == ActivityKind::PruneActivityLog
    }
}

impl Status {
    pub fn is_ended(self) -> bool {
        self != Status::InProgress
    }
}

/// An activity as the store keeps it: the real actor, the text as the publisher gave it.
/// Readers never see this; they see [`crate::view`] of it.
#[derive(Clone, PartialEq)]
pub struct StoredActivity {
    /// The store's insertion order; also the cursor's tie-breaker.
    pub seq: i64,
    pub id: ActivityId,
    pub account_id: AccountId,
    pub site_id: SiteId,
    pub environment: Environment,
    pub service: Service,
    pub activity: ActivityKind,
    pub status: Status,
    pub actor: Actor,
    pub description: String,
    pub error: Option<String>,
    pub details: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredActivity {
    // Descriptions may hold a support person's email: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredActivity")
            .field("seq", &self.seq)
            .field("id", &self.id)
            .field("site_id", &self.site_id)
            .field("activity", &self.activity)
            .field("status", &self.status)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// A validated request to record an activity.
#[derive(Clone, PartialEq)]
pub struct NewActivity {
    pub id: Option<ActivityId>,
    pub account_id: AccountId,
    pub site_id: SiteId,
    pub environment: Environment,
    pub activity: ActivityKind,
    pub actor: Actor,
    pub description: String,
    pub status: Status,
    pub created_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub error: Option<String>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A validated request to end an activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub status: Status,
    pub description: Option<String>,
    pub error: Option<String>,
    pub completed_at: Option<Timestamp>,
    /// Merged into the activity's details (what only the end knows: sizes, timings).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

pub const MAX_DESCRIPTION_BYTES: usize = 2_000;
pub const MAX_ERROR_BYTES: usize = 4_000;
pub const MAX_DETAILS_BYTES: usize = 16_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), InvalidField> {
    if text.len() > max {
        return Err(InvalidField::new(
            field,
            format!("at most {max} bytes are kept"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(InvalidField::new(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(())
}

impl NewActivity {
    /// Checks what types alone cannot: lengths, the service of the kind, the lifecycle and
    /// the order of times. `service` is what the publisher named.
    pub fn validate(&self, service: Service) -> Result<(), InvalidField> {
        self.validate_with_details_len(service, json_len(&self.details))
    }

    /// [`NewActivity::validate`] for a caller that has written the details' JSON already and
    /// passes its length: the details are not serialized again to be measured.
    pub fn validate_with_details_len(
        &self,
        service: Service,
        details_len: usize,
    ) -> Result<(), InvalidField> {
        if service != self.activity.service() {
            return Err(InvalidField::new(
                "service",
                format!(
                    "{} belongs to the service {}",
                    self.activity,
                    self.activity.service()
                ),
            ));
        }
        check_text("description", &self.description, MAX_DESCRIPTION_BYTES)?;
        if let Some(error) = &self.error {
            check_text("error", error, MAX_ERROR_BYTES)?;
            if self.status != Status::Failed {
                return Err(InvalidField::new(
                    "error",
                    "only a failed activity has an error",
                ));
            }
        }
        if details_len > MAX_DETAILS_BYTES {
            return Err(InvalidField::new(
                "details",
                format!("at most {MAX_DETAILS_BYTES} bytes of JSON are kept"),
            ));
        }
        self.actor.validate()?;
        match (self.status, self.completed_at) {
            (Status::InProgress, Some(_)) => {
                return Err(InvalidField::new(
                    "completed_at",
                    "an activity in progress has no completion time",
                ));
            }
            (_, Some(done)) => {
                if let Some(created) = self.created_at
                    && done < created
                {
                    return Err(InvalidField::new("completed_at", "is before created_at"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A canonical text of the request as given, for recognising a replay of it.
    pub fn canonical_request(&self) -> String {
        let mut out = Vec::new();
        self.write_canonical_request(&mut out)
            .expect("writing into memory cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Writes [`NewActivity::canonical_request`] without building it first (the store
    /// hashes it as it is written): compact JSON, every object's keys in sorted order.
    pub fn write_canonical_request<W: std::io::Write>(&self, out: W) -> serde_json::Result<()> {
        // Fields in sorted order, as a JSON object with sorted keys: the bytes are the ones
        // stored request hashes were made from, so they must never change.
        #[derive(Serialize)]
        struct Canonical<'a> {
            account_id: &'a AccountId,
            activity: ActivityKind,
            actor: CanonicalActor<'a>,
            completed_at: Option<Timestamp>,
            created_at: Option<Timestamp>,
            description: &'a str,
            details: &'a serde_json::Map<String, serde_json::Value>,
            environment: Environment,
            error: Option<&'a str>,
            id: Option<&'a str>,
            site_id: &'a SiteId,
            status: Status,
        }
        #[derive(Serialize)]
        struct CanonicalActor<'a> {
            email: Option<&'a str>,
            kind: crate::ActorKind,
            name: Option<&'a str>,
        }
        serde_json::to_writer(
            out,
            &Canonical {
                account_id: &self.account_id,
                activity: self.activity,
                actor: CanonicalActor {
                    email: self.actor.email.as_ref().map(|e| e.expose()),
                    kind: self.actor.kind,
                    name: self.actor.name.as_deref(),
                },
                completed_at: self.completed_at,
                created_at: self.created_at,
                description: &self.description,
                details: &self.details,
                environment: self.environment,
                error: self.error.as_deref(),
                id: self.id.as_ref().map(ActivityId::as_str),
                site_id: &self.site_id,
                status: self.status,
            },
        )
    }
}

impl Ending {
    pub fn validate(&self, created_at: Timestamp) -> Result<(), InvalidField> {
        if let Some(d) = &self.description {
            check_text("description", d, MAX_DESCRIPTION_BYTES)?;
        }
        if let Some(e) = &self.error {
            check_text("error", e, MAX_ERROR_BYTES)?;
            if self.status != Status::Failed {
                return Err(InvalidField::new(
                    "error",
                    "only a failed activity has an error",
                ));
            }
        }
        if let Some(done) = self.completed_at
            && done < created_at
        {
            return Err(InvalidField::new("completed_at", "is before created_at"));
        }
        if let Some(d) = &self.details
            && json_len(d) > MAX_DETAILS_BYTES
        {
            return Err(InvalidField::new(
                "details",
                format!("at most {MAX_DETAILS_BYTES} bytes of JSON are kept"),
            ));
        }
        Ok(())
    }
}

impl StoredActivity {
    pub fn duration_ms(&self) -> Option<i64> {
        self.completed_at
            .map(|done| done.millis() - self.created_at.millis())
    }
}

/// Makes an operation's `details` fit in `max` bytes of JSON, so that its ending is always
/// kept: the longest list (what the details name one by one for people: files, conflicts,
/// cells) is halved, longest first, and a `{key}_total` beside it says how many there were;
/// when no list is left to cut, the largest value goes and `details_trimmed` says so.
/// Returns whether anything was cut.
pub fn fit_details(details: &mut serde_json::Map<String, serde_json::Value>, max: usize) -> bool {
    let mut cut = false;
    while json_len(details) > max {
        cut = true;
        if let Some(path) = longest_list(details) {
            halve_list(details, &path);
            continue;
        }
        let largest = details
            .iter()
            .filter(|(k, _)| k.as_str() != "details_trimmed")
            .max_by_key(|(_, v)| json_len(v))
            .map(|(k, _)| k.clone());
        match largest {
            Some(k) => {
                details.remove(&k);
                details.insert("details_trimmed".into(), true.into());
            }
            None => break,
        }
    }
    cut
}

/// The keys leading to the longest non-empty list reached through objects.
fn longest_list(details: &serde_json::Map<String, serde_json::Value>) -> Option<Vec<String>> {
    fn walk(
        map: &serde_json::Map<String, serde_json::Value>,
        path: &mut Vec<String>,
        best: &mut Option<(usize, Vec<String>)>,
    ) {
        for (k, v) in map {
            path.push(k.clone());
            match v {
                serde_json::Value::Array(a) if !a.is_empty() => {
                    let len = json_len(v);
                    if best.as_ref().is_none_or(|(b, _)| len > *b) {
                        *best = Some((len, path.clone()));
                    }
                }
                serde_json::Value::Object(m) => walk(m, path, best),
                _ => {}
            }
            path.pop();
        }
    }
    let mut best = None;
    walk(details, &mut Vec::new(), &mut best);
    best.map(|(_, path)| path)
}

fn halve_list(details: &mut serde_json::Map<String, serde_json::Value>, path: &[String]) {
    let (last, parents) = path.split_last().expect("a path names a key");
    let mut map = details;
    for k in parents {
        match map.get_mut(k) {
            Some(serde_json::Value::Object(m)) => map = m,
            _ => return,
        }
    }
    let total_key = format!("{last}_total");
    if let Some(serde_json::Value::Array(list)) = map.get_mut(last) {
        let total = list.len();
        list.truncate(total / 2);
        if !map.contains_key(&total_key) {
            map.insert(total_key, total.into());
        }
    }
}

/// Bytes of `v` as compact JSON, counted as it is written: nothing is kept.
fn json_len<T: Serialize + ?Sized>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, v).map_or(0, |()| count.0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{ActorKind, Email};

    /// The canonical text as the first versions built it (a `json!` value, printed): stored
    /// request hashes were made from these bytes.
    fn canonical_as_first_built(new: &NewActivity) -> String {
        serde_json::json!({
            "id": new.id.as_ref().map(ActivityId::as_str),
            "account_id": new.account_id,
            "site_id": new.site_id,
            "environment": new.environment,
            "activity": new.activity,
            "actor": {
                "kind": new.actor.kind,
                "email": new.actor.email.as_ref().map(|e| e.expose()),
                "name": new.actor.name,
            },
            "description": new.description,
            "status": new.status,
            "created_at": new.created_at,
            "completed_at": new.completed_at,
            "error": new.error,
            "details": new.details,
        })
        .to_string()
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            "[a-zA-Z0-9 \"\\\\é\u{1}-\u{1f}]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-zZ_0-9]{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A generated request, shown by its canonical text when a case fails.
    struct Case(NewActivity);

    impl std::fmt::Debug for Case {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&canonical_as_first_built(&self.0))
        }
    }

    prop_compose! {
        fn new_activity()(
            id in proptest::option::of("[a-z0-9-]{1,20}"),
            support in any::<bool>(),
            name in proptest::option::of("[A-Za-z é]{0,12}"),
            description in "[A-Za-z0-9 \"é@]{0,30}",
            created in proptest::option::of(0i64..4_000_000_000_000),
            completed in proptest::option::of(0i64..4_000_000_000_000),
            error in proptest::option::of("[a-z ]{0,10}"),
            status in 0usize..3,
            details in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..5),
        ) -> Case {
            let statuses = [Status::InProgress, Status::Completed, Status::Failed];
            Case(NewActivity {
                id: id.map(|i| ActivityId::parse(&i).unwrap()),
                account_id: AccountId::parse("acme").unwrap(),
                site_id: SiteId::parse("shop").unwrap(),
                environment: Environment::Staging,
                activity: ActivityKind::ResetStagingFromBackup,
                actor: Actor {
                    kind: if support { ActorKind::Support } else { ActorKind::User },
                    email: Some(Email::parse("sam.rivera@partner.example").unwrap()),
                    name,
                },
                description,
                status: statuses[status],
                created_at: created.map(|t| Timestamp::from_millis(t).unwrap()),
                completed_at: completed.map(|t| Timestamp::from_millis(t).unwrap()),
                error,
                details: details.into_iter().collect(),
            })
        }
    }

    proptest! {
        #[test]
        fn the_canonical_request_keeps_the_bytes_stored_hashes_were_made_from(
            case in new_activity()
        ) {
            prop_assert_eq!(case.0.canonical_request(), canonical_as_first_built(&case.0));
        }

        #[test]
        fn json_len_counts_the_bytes_of_the_json_text(case in new_activity()) {
            let text = serde_json::to_string(&case.0.details).unwrap();
            prop_assert_eq!(json_len(&case.0.details), text.len());
        }
    }

    #[test]
    fn details_are_refused_one_byte_past_the_limit() {
        let mut new = new_activity_with_details("");
        let overhead = json_len(&new.details);
        new = new_activity_with_details(&"x".repeat(MAX_DETAILS_BYTES - overhead));
        assert_eq!(json_len(&new.details), MAX_DETAILS_BYTES);
        assert!(new.validate(new.activity.service()).is_ok());
        new = new_activity_with_details(&"x".repeat(MAX_DETAILS_BYTES - overhead + 1));
        let refused = new.validate(new.activity.service()).unwrap_err();
        assert!(refused.to_string().contains("details"), "{refused}");
    }

    fn new_activity_with_details(note: &str) -> NewActivity {
        NewActivity {
            id: None,
            account_id: AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: Environment::Staging,
            activity: ActivityKind::ResetStagingFromBackup,
            actor: Actor::system(),
            description: "Reset".into(),
            status: Status::Completed,
            created_at: None,
            completed_at: None,
            error: None,
            details: [("note".to_owned(), serde_json::Value::from(note))]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn kinds_have_the_products_labels() {
        assert_eq!(
            ActivityKind::PushStagingToLive.label(),
            "Push Staging to Live"
        );
        assert_eq!(
            ActivityKind::ResetStagingFromTemplate.label(),
            "Reset Staging from Template"
        );
        assert_eq!(Service::Staging.label(), "Staging");
    }

    #[test]
    fn words_round_trip_and_unknown_words_list_the_choices() {
        for k in ActivityKind::ALL {
            assert_eq!(ActivityKind::parse(k.as_str()), Ok(*k));
        }
        let err = Status::parse("done").unwrap_err().to_string();
        assert!(err.contains("in_progress, completed, failed"), "{err}");
    }

    #[test]
    fn backups_belong_to_the_backups_service() {
        assert_eq!(ActivityKind::CreateBackup.service(), Service::Backups);
        assert_eq!(ActivityKind::PushStagingToLive.service(), Service::Staging);
    }

    #[test]
    fn details_too_long_for_the_log_keep_their_figures_and_name_how_many_were_cut() {
        let files: Vec<serde_json::Value> = (0..3_000)
            .map(|i| serde_json::json!({"path": format!("wp-content/uploads/img-{i}.jpg"), "change": "added", "bytes": 8192}))
            .collect();
        let conflicts: Vec<serde_json::Value> = (0..400)
            .map(|i| serde_json::json!({"table": "wp_comments", "key": format!("comment_ID={i}"), "staging": "changed", "live": "changed"}))
            .collect();
        let mut details = serde_json::json!({
            "scope": "site",
            "preview": {
                "files": {"added": 3_000, "bytes_added": 24_576_000, "list": files},
                "conflicts": conflicts,
                "live_fingerprint": "abc123",
            },
        })
        .as_object()
        .cloned()
        .unwrap();
        let small = details.clone();
        assert!(fit_details(&mut details, MAX_DETAILS_BYTES));
        assert!(json_len(&details) <= MAX_DETAILS_BYTES);
        let preview = &details["preview"];
        assert_eq!(preview["files"]["list_total"], 3_000);
        assert_eq!(preview["conflicts_total"], 400);
        assert_eq!(preview["files"]["added"], 3_000, "the figures stay");
        assert_eq!(preview["live_fingerprint"], "abc123");
        assert_eq!(details["scope"], "site");
        assert!(!preview["files"]["list"].as_array().unwrap().is_empty());
        assert_eq!(
            preview["files"]["list"][0], small["preview"]["files"]["list"][0],
            "the first ones are kept, in order"
        );

        // What fits is left alone.
        let mut fits = serde_json::json!({"rows": 3}).as_object().cloned().unwrap();
        assert!(!fit_details(&mut fits, MAX_DETAILS_BYTES));
        assert_eq!(fits["rows"], 3);

        // No list to cut: the largest value goes, and the details say so.
        let mut one = serde_json::json!({"note": "x".repeat(MAX_DETAILS_BYTES), "rows": 3})
            .as_object()
            .cloned()
            .unwrap();
        assert!(fit_details(&mut one, MAX_DETAILS_BYTES));
        assert_eq!(
            (one["rows"].clone(), one["details_trimmed"].clone()),
            (3.into(), true.into())
        );
        assert!(one.get("note").is_none());
    }
}
