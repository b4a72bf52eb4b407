//! A realistic activity log, generated deterministically: accounts own sites, a few sites
//! hold most of the history, timestamps span two years in arrival order, 2% of activities
//! are still in progress.

use serde::Serialize;
use sitetrail_core::Timestamp;

const TWO_YEARS_MS: i64 = 2 * 365 * 24 * 3600 * 1000;

/// The shape of the log for `activities` activities.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub activities: u64,
    pub accounts: u64,
    pub sites: u64,
    /// Timestamps run from here to two years later.
    pub start_ms: i64,
}

impl Shape {
    /// 10M activities: 1,000 accounts and 100,000 sites; smaller runs keep the ratios
    /// (100 activities per site on average, 100 sites per account), with floors.
    pub fn of(activities: u64) -> Self {
        let sites = (activities / 100).clamp(100, 100_000);
        let accounts = (sites / 100).clamp(10, 1_000);
        Shape {
            activities,
            accounts,
            sites,
            start_ms: Timestamp::now().millis() - TWO_YEARS_MS - 24 * 3600 * 1000,
        }
    }

    pub fn site_name(&self, site: u64) -> String {
        format!("site-{site}")
    }

    pub fn account_of(&self, site: u64) -> u64 {
        site % self.accounts
    }

    pub fn account_name(&self, account: u64) -> String {
        format!("account-{account}")
    }

    /// The biggest site (8% of the log: 800,000 activities at 10M).
    pub fn big_site(&self) -> u64 {
        0
    }

    pub fn big_site_activities(&self) -> u64 {
        self.activities * 8 / 100
    }

    /// Site `i`'s share: site 0 8%, sites 1..=19 1% each (100,000 each at 10M), the rest
    /// spread evenly over the other sites.
    fn site_for(&self, i: u64, r: u64) -> u64 {
        let slot = i % 100;
        match slot {
            0..8 => 0,
            8..27 => slot - 7,
            _ => 20 + r % (self.sites - 20).max(1),
        }
    }

    pub fn activity(&self, i: u64) -> Activity {
        let mut rng = SplitMix(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed);
        let step = TWO_YEARS_MS / self.activities.max(1) as i64;
        let created = self.start_ms + i as i64 * step + (rng.next() % step.max(1) as u64) as i64;
        let site = self.site_for(i, rng.next());
        let account = self.account_of(site);
        let kind = match rng.next() % 100 {
            0..30 => "push_staging_to_live",
            30..45 => "reset_staging_from_template",
            45..60 => "reset_staging_from_backup",
            60..70 => "create_staging",
            _ => "create_backup",
        };
        let status = match rng.next() % 100 {
            0..2 => "in_progress",
            2..7 => "failed",
            _ => "completed",
        };
        let person = rng.next() % 40;
        let actor = match rng.next() % 100 {
            0..85 => Actor {
                kind: "user",
                email: Some(format!("owner{person}@client{account}.example")),
                name: None,
            },
            85..95 => Actor {
                kind: "support",
                email: Some(format!("agent{person}@support.example")),
                name: Some(format!("Agent {person}")),
            },
            _ => Actor {
                kind: "system",
                email: None,
                name: None,
            },
        };
        Activity {
            site,
            account,
            created_ms: created,
            duration_ms: 5_000 + (rng.next() % 600_000) as i64,
            kind,
            status,
            actor,
            seed: rng.next(),
        }
    }
}

pub struct Activity {
    pub site: u64,
    pub account: u64,
    pub created_ms: i64,
    pub duration_ms: i64,
    pub kind: &'static str,
    pub status: &'static str,
    pub actor: Actor,
    seed: u64,
}

/// Who did it, as the API takes it.
#[derive(Serialize)]
pub struct Actor {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An activity's details, keys in sorted order (as a JSON object stored with sorted keys
/// reads).
#[derive(Serialize)]
pub struct Details {
    backup_id: String,
    bytes: u64,
    files: u64,
    php: &'static str,
    source_url: String,
    tables: u64,
    target_url: String,
    wordpress: &'static str,
}

/// The body `POST /api/v1/activities` takes, serialized straight from the generated
/// activity: the load generator shares the machine with the server it measures, so it
/// builds no JSON tree on the way.
#[derive(Serialize)]
pub struct Body<'a> {
    account_id: String,
    site_id: String,
    environment: &'static str,
    service: &'static str,
    activity: &'static str,
    actor: &'a Actor,
    description: String,
    status: &'static str,
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    details: Details,
}

impl Activity {
    pub fn service(&self) -> &'static str {
        if self.kind == "create_backup" {
            "backups"
        } else {
            "staging"
        }
    }

    pub fn environment(&self) -> &'static str {
        match self.kind {
            "push_staging_to_live" => "live",
            "create_backup" if self.seed.is_multiple_of(2) => "live",
            _ => "staging",
        }
    }

    pub fn description(&self) -> String {
        let done = self.status != "in_progress";
        match (self.kind, done) {
            ("push_staging_to_live", true) => "Successfully pushed staging to live".into(),
            ("push_staging_to_live", false) => "Pushing staging to live".into(),
            ("reset_staging_from_template", _) => {
                format!("Reset staging from the template Starter {}", self.seed % 12)
            }
            ("reset_staging_from_backup", _) => {
                "Created environment for staging from backup".into()
            }
            ("create_staging", _) => "Created the staging environment from live".into(),
            _ => format!("Manual backup of {}", self.environment()),
        }
    }

    pub fn error(&self) -> Option<String> {
        (self.status == "failed").then(|| {
            "The database server went away while the tables were copied; live was left as it was"
                .to_owned()
        })
    }

    /// About 235 bytes of JSON, as measured logs carry.
    pub fn details(&self) -> Details {
        Details {
            backup_id: format!("bk-{:016x}", self.seed),
            source_url: format!("https://staging.site-{}.example", self.site),
            target_url: format!("https://site-{}.example", self.site),
            tables: 12 + self.seed % 40,
            files: 1_000 + self.seed % 9_000,
            bytes: 50_000_000 + self.seed % 900_000_000,
            php: "8.2",
            wordpress: "6.7.1",
        }
    }

    pub fn completed_ms(&self) -> Option<i64> {
        (self.status != "in_progress").then_some(self.created_ms + self.duration_ms)
    }

    /// The body `POST /api/v1/activities` takes.
    pub fn body(&self, shape: &Shape) -> Body<'_> {
        let ts = |ms: i64| Timestamp::from_millis(ms).map(|t| t.to_rfc3339());
        Body {
            account_id: shape.account_name(self.account),
            site_id: shape.site_name(self.site),
            environment: self.environment(),
            service: self.service(),
            activity: self.kind,
            actor: &self.actor,
            description: self.description(),
            status: self.status,
            created_at: ts(self.created_ms),
            completed_at: self.completed_ms().and_then(ts),
            error: self.error(),
            details: self.details(),
        }
    }
}

/// splitmix64: small, fast, good enough to spread a log.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_big_site_holds_its_share_and_times_ascend() {
        let shape = Shape::of(10_000);
        let mut big = 0;
        let mut last = 0;
        for i in 0..10_000 {
            let a = shape.activity(i);
            big += u64::from(a.site == 0);
            assert!(a.created_ms >= last);
            last = a.created_ms;
            assert!(a.site < shape.sites);
        }
        assert_eq!(big, shape.big_site_activities());
    }

    #[test]
    fn a_body_says_what_its_activity_says() {
        let shape = Shape::of(10_000);
        let (mut ended, mut running, mut failed) = (0, 0, 0);
        for i in 0..2_000 {
            let a = shape.activity(i);
            let body: serde_json::Value =
                serde_json::from_slice(&serde_json::to_vec(&a.body(&shape)).unwrap()).unwrap();
            assert_eq!(body["site_id"], shape.site_name(a.site));
            assert_eq!(body["account_id"], shape.account_name(a.account));
            assert_eq!(body["activity"], a.kind);
            assert_eq!(body["status"], a.status);
            assert_eq!(body["actor"]["kind"], a.actor.kind);
            assert_eq!(
                body["actor"].get("email").and_then(|e| e.as_str()),
                a.actor.email.as_deref()
            );
            let created = Timestamp::parse_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
            assert_eq!(created.millis(), a.created_ms);
            match a.status {
                "in_progress" => {
                    running += 1;
                    assert!(body.get("completed_at").is_none());
                }
                _ => {
                    ended += 1;
                    let done = body["completed_at"].as_str().unwrap();
                    assert_eq!(
                        Timestamp::parse_rfc3339(done).unwrap().millis(),
                        a.created_ms + a.duration_ms
                    );
                }
            }
            if a.status == "failed" {
                failed += 1;
                assert!(body["error"].as_str().unwrap().contains("went away"));
            } else {
                assert!(body.get("error").is_none());
            }
            let keys: Vec<&String> = body["details"].as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 8);
            assert_eq!(body["details"]["php"], "8.2");
        }
        assert!(ended > 0 && running > 0 && failed > 0);
    }
}
