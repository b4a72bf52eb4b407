//! A realistic activity log, generated deterministically: accounts own sites, a few sites
//! hold most of the history, timestamps span two years in arrival order, 2% of activities
//! are still in progress.

use serde_json::{Value, json};
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
            0..85 => {
                json!({"kind": "user", "email": format!("owner{person}@client{account}.example")})
            }
            85..95 => json!({"kind": "support", "email": format!("agent{person}@support.example"),
                             "name": format!("Agent {person}")}),
            _ => json!({"kind": "system"}),
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
    pub actor: Value,
    seed: u64,
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
    pub fn details(&self) -> Value {
        json!({
            "backup_id": format!("bk-{:016x}", self.seed),
            "source_url": format!("https://staging.site-{}.example", self.site),
            "target_url": format!("https://site-{}.example", self.site),
            "tables": 12 + self.seed % 40,
            "files": 1_000 + self.seed % 9_000,
            "bytes": 50_000_000 + self.seed % 900_000_000,
            "php": "8.2",
            "wordpress": "6.7.1",
        })
    }

    pub fn completed_ms(&self) -> Option<i64> {
        (self.status != "in_progress").then_some(self.created_ms + self.duration_ms)
    }

    /// The body `POST /api/v1/activities` takes.
    pub fn to_json(&self, shape: &Shape) -> Value {
        let ts = |ms: i64| Timestamp::from_millis(ms).map(|t| t.to_rfc3339());
        let mut v = json!({
            "account_id": shape.account_name(self.account),
            "site_id": shape.site_name(self.site),
            "environment": self.environment(),
            "service": self.service(),
            "activity": self.kind,
            "actor": self.actor,
            "description": self.description(),
            "status": self.status,
            "created_at": ts(self.created_ms),
            "details": self.details(),
        });
        if let Some(done) = self.completed_ms() {
            v["completed_at"] = json!(ts(done));
        }
        if let Some(e) = self.error() {
            v["error"] = json!(e);
        }
        v
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
}
