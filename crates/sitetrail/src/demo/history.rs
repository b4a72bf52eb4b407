//! The demo's months of past staging work, written so that every claim it makes holds on
//! the pages: staging is made before it is reset or pushed, a push without keeping staging
//! removes it and every site's history ends with staging removed (as the engine's record
//! says), templates are named only when that template exists, no backup is claimed (the real
//! ones are made through the engine), and a failed row says it failed. Some pushes follow a
//! preview of themselves (made while staging existed, changing nothing), and some completed
//! pushes before the last are undone within their window (an undo touches live only).

use sitetrail_core::{
    AccountId, ActivityKind, Actor, ActorKind, Environment, NewActivity, SiteId, Status, Timestamp,
};

use super::{ADMIN, DENTIST, OWNER, Person, SUPPORT};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A template the history may name: its id and its name.
pub struct Template<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// A small deterministic generator, so that every demo has the same history.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One past step of a site's staging.
enum Step {
    Create,
    ResetFromTemplate,
    Push {
        keep_staging: bool,
        files: bool,
    },
    /// A dry run of the push that follows it; with a conflict, that push lets staging win.
    Preview {
        files: bool,
        conflict: bool,
    },
    /// The push before it undone, within its window.
    Undo,
}

impl Step {
    fn kind(&self) -> ActivityKind {
        match self {
            Step::Create => ActivityKind::CreateStaging,
            Step::ResetFromTemplate => ActivityKind::ResetStagingFromTemplate,
            Step::Push { .. } => ActivityKind::PushStagingToLive,
            Step::Preview { .. } => ActivityKind::PreviewPush,
            Step::Undo => ActivityKind::UndoPush,
        }
    }

    fn environment(&self) -> Environment {
        match self {
            Step::Push { .. } | Step::Preview { .. } | Step::Undo => Environment::Live,
            _ => Environment::Staging,
        }
    }

    /// The description when it completed, when it failed, and the reason it failed.
    fn words(&self, template: Option<&Template>) -> (String, String, &'static str) {
        match self {
            Step::Create => (
                "Created environment for staging from live".into(),
                "Creating staging from live failed".into(),
                "Copying the database failed. Nothing on live changed. Try again; if it fails \
                 again, contact support.",
            ),
            Step::ResetFromTemplate => {
                let name = template.map_or("", |t| t.name);
                (
                    format!("Reset staging from the template \u{201c}{name}\u{201d}"),
                    format!("Resetting staging from the template \u{201c}{name}\u{201d} failed"),
                    "Copying the template's files failed. Staging was left as it was. Try \
                     again; if it fails again, contact support.",
                )
            }
            Step::Push { .. } => (
                "Successfully pushed staging to live".into(),
                "Pushing staging to live failed; live was not changed".into(),
                "Copying the database failed. Nothing on live changed. Try again; if it fails \
                 again, contact support.",
            ),
            Step::Preview { files, conflict } => (
                preview_words(&preview_report(*files, *conflict)),
                "Preview Push to Live failed".into(),
                "Copying the database failed. Nothing on live changed. Try again; if it fails \
                 again, contact support.",
            ),
            Step::Undo => (
                "Undid the last push: live is as it was before it".into(),
                "Undo Push to Live failed".into(),
                "Switching live back failed. Nothing on live changed. Try again; if it fails \
                 again, contact support.",
            ),
        }
    }

    fn details(&self, template: Option<&Template>) -> serde_json::Value {
        match self {
            Step::Create => serde_json::json!({"source": "live"}),
            Step::ResetFromTemplate => {
                serde_json::json!({"template": template.map(|t| t.id)})
            }
            Step::Push {
                keep_staging,
                files,
            } => serde_json::json!({
                "scope": if *files { "files" } else { "site" },
                "keep_staging": keep_staging,
            }),
            Step::Preview { files, conflict } => {
                serde_json::json!({
                    "scope": if *files { "files" } else { "site" },
                    "keep_staging": false,
                    "on_conflict": "stop",
                    "preview": serde_json::to_value(preview_report(*files, *conflict))
                        .expect("a report is JSON"),
                })
            }
            Step::Undo => serde_json::json!({}),
        }
    }
}

/// What a preview of the demo shop's push reports: a few posts and options changed, the
/// orders and comments live took kept, a theme's files changed.
fn preview_report(files: bool, conflict: bool) -> sitetrail_staging::PushReport {
    use sitetrail_staging::push::{Conflict, FileChange, FilesChange, TableChange};
    let table = |name: &str, (added, removed, changed, kept): (u64, u64, u64, u64)| TableChange {
        table: name.into(),
        added,
        removed,
        changed,
        kept_from_live: kept,
    };
    let tables = if files {
        Vec::new()
    } else {
        vec![
            table("wp_posts", (2, 0, 3, 6)),
            table("wp_postmeta", (9, 1, 4, 31)),
            table("wp_options", (0, 0, 2, 0)),
            table("wp_comments", (0, 0, 0, 4)),
            table("wp_woocommerce_order_items", (0, 0, 0, 9)),
        ]
    };
    let kept_from_live = tables.iter().map(|t| t.kept_from_live).sum();
    let list = vec![
        FileChange {
            path: "wp-content/themes/bakery/style.css".into(),
            change: "changed".into(),
            bytes: 18_412,
        },
        FileChange {
            path: "wp-content/themes/bakery/parts/header.html".into(),
            change: "changed".into(),
            bytes: 2_210,
        },
        FileChange {
            path: "wp-content/uploads/2026/11/croissants.webp".into(),
            change: "added".into(),
            bytes: 84_330,
        },
    ];
    sitetrail_staging::PushReport {
        tables,
        kept_from_live,
        conflicts: if conflict && !files {
            vec![Conflict {
                table: "wp_posts".into(),
                key: "ID=42".into(),
                staging: "changed".into(),
                live: "changed".into(),
            }]
        } else {
            Vec::new()
        },
        files: FilesChange {
            added: 1,
            changed: 2,
            removed: 0,
            bytes_added: 84_330,
            bytes_changed: 20_622,
            bytes_removed: 0,
            list,
        },
        url_rewrites: if files { 0 } else { 57 },
        skipped_cells: Vec::new(),
        live_fingerprint: "demo".into(),
    }
}

/// A completed preview's description, in the engine's words.
fn preview_words(report: &sitetrail_staging::PushReport) -> String {
    let sum = |f: fn(&sitetrail_staging::push::TableChange) -> u64| {
        report.tables.iter().map(f).sum::<u64>()
    };
    let f = &report.files;
    let mut s = format!(
        "Previewed a push to live: {} rows added, {} changed, {} removed; {} files added, {} \
         changed, {} removed; {} of live's new rows kept",
        sum(|t| t.added),
        sum(|t| t.changed),
        sum(|t| t.removed),
        f.added,
        f.changed,
        f.removed,
        report.kept_from_live
    );
    if !report.conflicts.is_empty() {
        s += &format!("; {} rows changed on both sides", report.conflicts.len());
    }
    s
}

/// Six months of staging work on each site, ending with staging removed by a push.
pub fn past(sites: &[(&str, &str)], template: Option<&Template>, now_ms: i64) -> Vec<NewActivity> {
    let mut dice = Dice(0x5eed_cafe_f00d);
    let mut extra = Dice(0x0dd_ba11_5eed);
    let mut batch = Vec::new();
    for &(site, account) in sites {
        let people: &[&Person] = if account == "acme-bakery" {
            &[&OWNER, &OWNER, &ADMIN, &SUPPORT]
        } else {
            &[&DENTIST, &ADMIN, &SUPPORT]
        };
        let mut staging_exists = false;
        for day in (1..=180).rev() {
            if day != 1 && !dice.chance(22) {
                continue;
            }
            let midnight = now_ms - day * DAY_MS - now_ms % DAY_MS;
            let at =
                midnight + (9 + dice.below(8) as i64) * 3600 * 1000 + dice.below(3_600_000) as i64;
            let step = if !staging_exists {
                Step::Create
            } else {
                match dice.below(4) {
                    0 if template.is_some() => Step::ResetFromTemplate,
                    0 | 1 => Step::Create,
                    _ => Step::Push {
                        keep_staging: dice.chance(30),
                        files: dice.chance(30),
                    },
                }
            };
            // The last day ends with staging removed, as the engine's record has it.
            let step = match step {
                _ if day == 1 && staging_exists => Step::Push {
                    keep_staging: false,
                    files: false,
                },
                _ if day == 1 => continue,
                step => step,
            };
            let ok = day == 1 || !dice.chance(9);
            if ok {
                staging_exists = match step {
                    Step::Push { keep_staging, .. } => keep_staging,
                    _ => true,
                };
            }
            let who = people[dice.below(people.len() as u64) as usize];
            // A push is previewed first, now and then, by the same person, while staging is
            // there; drawn from dice of their own, so the rest of the history stays the same.
            let previewed = match step {
                Step::Push { files, .. } if extra.chance(40) => {
                    let preview = Step::Preview {
                        files,
                        conflict: !files && extra.chance(30),
                    };
                    let (said, _, _) = preview.words(template);
                    batch.push(entry(
                        (site, account),
                        &preview,
                        who.actor(),
                        (at - 1_800_000, 20_000 + extra.below(60_000) as i64),
                        true,
                        said,
                        "",
                        preview.details(template),
                    ));
                    matches!(preview, Step::Preview { conflict: true, .. })
                }
                _ => false,
            };
            let (done, failed, error) = step.words(template);
            let said = if ok { done } else { failed };
            let description = if who.kind == ActorKind::Support {
                // Support notes name the agent: the redaction function must hide it.
                format!(
                    "{said} (on request, ticket #{} by {})",
                    4000 + dice.below(900),
                    who.name
                )
            } else {
                said
            };
            batch.push(entry(
                (site, account),
                &step,
                who.actor(),
                (at, 45_000 + dice.below(400_000) as i64),
                ok,
                description,
                error,
                {
                    let mut details = step.details(template);
                    if previewed {
                        details["on_conflict"] = "staging_wins".into();
                    }
                    details
                },
            ));
            // Some pushes before the last are undone within their window, an hour or two on.
            if ok && day != 1 && matches!(step, Step::Push { .. }) && extra.chance(15) {
                let (said, _, _) = Step::Undo.words(template);
                batch.push(entry(
                    (site, account),
                    &Step::Undo,
                    who.actor(),
                    (at + 3_600_000 + extra.below(3_600_000) as i64, 30_000),
                    true,
                    said,
                    "",
                    Step::Undo.details(template),
                ));
            }
        }
    }
    batch
}

#[allow(clippy::too_many_arguments)]
fn entry(
    (site, account): (&str, &str),
    step: &Step,
    actor: Actor,
    (at_ms, took_ms): (i64, i64),
    ok: bool,
    description: String,
    error: &str,
    details: serde_json::Value,
) -> NewActivity {
    let created = Timestamp::from_millis(at_ms).expect("demo times are recent");
    NewActivity {
        id: None,
        account_id: AccountId::parse(account).expect("demo ids are valid"),
        site_id: SiteId::parse(site).expect("demo ids are valid"),
        environment: step.environment(),
        activity: step.kind(),
        actor,
        description,
        status: if ok {
            Status::Completed
        } else {
            Status::Failed
        },
        created_at: Some(created),
        completed_at: Timestamp::from_millis(at_ms + took_ms),
        error: (!ok).then(|| error.to_owned()),
        details: details.as_object().cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITES: [(&str, &str); 2] = [("acme-shop", "acme-bakery"), ("clinic", "northwind")];

    #[test]
    fn each_site_ends_with_staging_removed_and_never_resets_or_pushes_what_is_not_there() {
        let rows = past(&SITES, None, 1_800_000_000_000);
        for (site, _) in SITES {
            let mut exists = false;
            let mine: Vec<_> = rows.iter().filter(|r| r.site_id.as_str() == site).collect();
            assert!(mine.len() > 10, "{site} has a history");
            let mut seen = (0, 0);
            let mut previous: Option<&NewActivity> = None;
            for r in mine {
                let ok = r.status == Status::Completed;
                match r.activity {
                    ActivityKind::CreateStaging => exists |= ok,
                    ActivityKind::PushStagingToLive => {
                        assert!(exists, "{site}: a push without staging");
                        if ok && r.details["keep_staging"] == false {
                            exists = false;
                        }
                    }
                    ActivityKind::PreviewPush => {
                        assert!(exists, "{site}: a preview without staging");
                        let report: sitetrail_staging::PushReport =
                            serde_json::from_value(r.details["preview"].clone())
                                .expect("a preview holds its report");
                        assert_eq!(
                            report.kept_from_live,
                            report.tables.iter().map(|t| t.kept_from_live).sum::<u64>()
                        );
                        seen.0 += 1;
                    }
                    ActivityKind::UndoPush => {
                        let push = previous.expect("an undo follows a push");
                        assert_eq!(push.activity, ActivityKind::PushStagingToLive);
                        assert_eq!(
                            push.status,
                            Status::Completed,
                            "{site}: undid a failed push"
                        );
                        let gap =
                            r.created_at.unwrap().millis() - push.completed_at.unwrap().millis();
                        assert!(gap > 0 && gap < DAY_MS, "{site}: within the window");
                        seen.1 += 1;
                    }
                    other => panic!("{other:?} claims what does not exist"),
                }
                previous = Some(r);
                if !ok {
                    assert!(r.description.contains("failed"), "{}", r.description);
                    assert!(!r.description.starts_with("Successfully"));
                }
            }
            assert!(!exists, "{site}: staging is removed at the end");
            assert!(
                seen.0 > 0 && seen.1 > 0,
                "{site} shows previews and undos: {seen:?}"
            );
        }
    }

    #[test]
    fn a_template_is_named_only_when_there_is_one() {
        let template = Template {
            id: "bakery-classic",
            name: "Bakery Classic",
        };
        let rows = past(&SITES, Some(&template), 1_800_000_000_000);
        let resets: Vec<_> = rows
            .iter()
            .filter(|r| r.activity == ActivityKind::ResetStagingFromTemplate)
            .collect();
        assert!(!resets.is_empty());
        for r in resets {
            assert_eq!(r.details["template"], "bakery-classic");
            assert!(r.description.contains("\u{201c}Bakery Classic\u{201d}"));
        }
    }
}
