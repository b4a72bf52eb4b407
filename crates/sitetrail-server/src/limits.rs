//! Rate limits and quotas: per publisher key, per viewer, and a cap on the activities one
//! site may receive per minute, so that one noisy publisher cannot drown the others; and
//! caps on the exports and live streams open at once, per viewer, per account and in all,
//! so that one tenant cannot hold what every other tenant needs. A request over a limit is
//! answered 429 with `Retry-After` and writes nothing.
//!
//! A viewer is a person in an account (the account and the actor's email of the token),
//! whatever token they present: tokens for other sites or audiences share one budget.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sitetrail_core::{SiteId, Viewer};

use crate::error::ApiError;

/// The limits a server applies; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per second per publisher key (bursts of twice as many).
    pub publisher_per_second: u32,
    /// Requests per second per viewer: one person in one account (bursts of five times).
    pub viewer_per_second: u32,
    /// Activities recorded per site per minute, whatever the publisher.
    pub site_activities_per_minute: u32,
    /// Exports one viewer may have open at once.
    pub exports_per_viewer: u32,
    /// Exports open at once on this server; one account holds at most half of them.
    pub exports_total: u32,
    /// Live streams one viewer may have open at once.
    pub streams_per_viewer: u32,
    /// Live streams open at once on this server; one account holds at most half of them.
    pub streams_total: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            publisher_per_second: 1000,
            viewer_per_second: 20,
            site_activities_per_minute: 6000,
            exports_per_viewer: 2,
            exports_total: 8,
            streams_per_viewer: 5,
            streams_total: 500,
        }
    }
}

impl RateLimits {
    /// No limits (tests and benchmarks that measure something else).
    pub const OFF: RateLimits = RateLimits {
        publisher_per_second: 0,
        viewer_per_second: 0,
        site_activities_per_minute: 0,
        exports_per_viewer: 0,
        exports_total: 0,
        streams_per_viewer: 0,
        streams_total: 0,
    };
}

type Keyed = DefaultKeyedRateLimiter<String>;

pub struct Limiter {
    publisher: Option<Keyed>,
    viewer: Option<Keyed>,
    site: Option<Keyed>,
    clock: DefaultClock,
    exports: Arc<Gate>,
    streams: Arc<Gate>,
}

fn keyed(quota: Option<Quota>) -> Option<Keyed> {
    quota.map(RateLimiter::keyed)
}

fn per_second(n: u32, burst: u32) -> Option<Quota> {
    let n = NonZeroU32::new(n)?;
    let burst = NonZeroU32::new(n.get().saturating_mul(burst)).unwrap_or(n);
    Some(Quota::per_second(n).allow_burst(burst))
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Self {
        Limiter {
            publisher: keyed(per_second(limits.publisher_per_second, 2)),
            viewer: keyed(per_second(limits.viewer_per_second, 5)),
            site: keyed(NonZeroU32::new(limits.site_activities_per_minute).map(Quota::per_minute)),
            clock: DefaultClock::default(),
            exports: Gate::new("exports", limits.exports_per_viewer, limits.exports_total),
            streams: Gate::new(
                "live streams",
                limits.streams_per_viewer,
                limits.streams_total,
            ),
        }
    }

    fn slow_down(&self, what: &str, wait: Duration) -> ApiError {
        metrics::counter!("sitetrail_rate_limited_total", "limit" => what.to_owned()).increment(1);
        ApiError::RateLimited {
            message: format!("too many requests for this {what}; retry later"),
            retry_after: wait,
        }
    }

    pub fn publisher(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(l) = &self.publisher else {
            return Ok(());
        };
        l.check_key(&key_id.to_owned())
            .map_err(|n| self.slow_down("API key", n.wait_time_from(self.clock.now())))
    }

    pub fn viewer(&self, viewer: &Viewer) -> Result<(), ApiError> {
        let Some(l) = &self.viewer else {
            return Ok(());
        };
        l.check_key(&viewer_key(viewer))
            .map_err(|n| self.slow_down("viewer", n.wait_time_from(self.clock.now())))
    }

    /// A place for one more export of this viewer's, held until the [`Slot`] is dropped.
    pub fn export(&self, viewer: &Viewer) -> Result<Slot, ApiError> {
        self.exports.enter(viewer)
    }

    /// A place for one more live stream of this viewer's, held until the [`Slot`] is dropped.
    pub fn stream(&self, viewer: &Viewer) -> Result<Slot, ApiError> {
        self.streams.enter(viewer)
    }

    /// Takes `n` activities from each site's minute; refuses the request if any site has
    /// not enough left (its earlier sites' budget stays spent: a refused request still
    /// cost the publisher its share).
    pub fn site_activities<'a>(
        &self,
        sites: impl IntoIterator<Item = (&'a SiteId, u32)>,
    ) -> Result<(), ApiError> {
        let Some(l) = &self.site else {
            return Ok(());
        };
        for (site, n) in sites {
            let Some(n) = NonZeroU32::new(n) else {
                continue;
            };
            match l.check_key_n(&site.as_str().to_owned(), n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    return Err(self.slow_down("site", not_until.wait_time_from(self.clock.now())));
                }
                Err(_) => {
                    return Err(ApiError::RateLimited {
                        message: format!(
                            "site {site} takes fewer activities per minute than this batch holds; split it"
                        ),
                        retry_after: Duration::from_secs(60),
                    });
                }
            }
        }
        Ok(())
    }

    /// Forgets keys that have been idle long enough to be full again (memory stays flat).
    pub fn forget_idle(&self) {
        for l in [&self.publisher, &self.viewer, &self.site]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// One person in one account, whatever their token's site or audience.
fn viewer_key(viewer: &Viewer) -> String {
    let who = viewer.actor.email.as_ref().map_or("", |e| e.expose());
    format!("{}\n{who}", viewer.account)
}

/// How long a refused export or stream is asked to wait: one of the open ones may end by then.
const RETRY_SLOT: Duration = Duration::from_secs(5);

/// What is open at once of one kind: per viewer, per account, in all. An account holds at
/// most half of the whole, so that others always find room.
struct Gate {
    what: &'static str,
    per_viewer: Option<usize>,
    per_account: Option<usize>,
    total: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    viewers: HashMap<String, usize>,
    accounts: HashMap<String, usize>,
    total: usize,
}

/// One open export or stream; dropping it makes room.
pub struct Slot {
    gate: Arc<Gate>,
    viewer: String,
    account: String,
}

impl Gate {
    fn new(what: &'static str, per_viewer: u32, total: u32) -> Arc<Self> {
        let cap = |n: u32| (n > 0).then_some(n as usize);
        Arc::new(Gate {
            what,
            per_viewer: cap(per_viewer),
            per_account: cap(total).map(|t| t.div_ceil(2)),
            total: cap(total),
            open: Mutex::new(Open::default()),
        })
    }

    fn enter(self: &Arc<Self>, viewer: &Viewer) -> Result<Slot, ApiError> {
        let key = viewer_key(viewer);
        let account = viewer.account.as_str().to_owned();
        let mut open = self
            .open
            .lock()
            .expect("never poisoned: nothing panics holding it");
        let of = |m: &HashMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
        let full = |cap: Option<usize>, n: usize| cap.is_some_and(|c| n >= c);
        let refusal = if full(self.per_viewer, of(&open.viewers, &key)) {
            Some((
                "viewer",
                format!(
                    "you already have as many {} open as you may; finish or close one, then retry",
                    self.what
                ),
            ))
        } else if full(self.per_account, of(&open.accounts, &account)) {
            Some((
                "account",
                format!(
                    "your account already has as many {} open as it may; finish or close one, \
                     then retry",
                    self.what
                ),
            ))
        } else if full(self.total, open.total) {
            Some((
                "server",
                format!(
                    "the server is busy with other {}; retry in a moment",
                    self.what
                ),
            ))
        } else {
            None
        };
        if let Some((whose, message)) = refusal {
            metrics::counter!("sitetrail_rate_limited_total", "limit" => format!("{} per {whose}", self.what))
                .increment(1);
            return Err(ApiError::RateLimited {
                message,
                retry_after: RETRY_SLOT,
            });
        }
        *open.viewers.entry(key.clone()).or_default() += 1;
        *open.accounts.entry(account.clone()).or_default() += 1;
        open.total += 1;
        Ok(Slot {
            gate: self.clone(),
            viewer: key,
            account,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self
            .gate
            .open
            .lock()
            .expect("never poisoned: nothing panics holding it");
        let open = &mut *guard;
        for (map, key) in [
            (&mut open.viewers, &self.viewer),
            (&mut open.accounts, &self.account),
        ] {
            if let Some(n) = map.get_mut(key.as_str()) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key.as_str());
                }
            }
        }
        open.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetrail_core::{AccountId, Actor, Audience};

    fn viewer(email: &str) -> Viewer {
        Viewer {
            account: AccountId::parse("acme").unwrap(),
            site: None,
            audience: Audience::Client,
            actor: Actor::person(
                sitetrail_core::ActorKind::User,
                sitetrail_core::Email::parse(email).unwrap(),
                None,
            ),
        }
    }

    #[test]
    fn a_viewer_over_its_burst_waits_and_others_do_not() {
        let l = Limiter::new(RateLimits {
            viewer_per_second: 1,
            ..RateLimits::OFF
        });
        let a = viewer("a@acme.example");
        for _ in 0..5 {
            l.viewer(&a).unwrap();
        }
        let Err(ApiError::RateLimited { retry_after, .. }) = l.viewer(&a) else {
            panic!("the sixth request in a second is over the burst")
        };
        assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
        l.viewer(&viewer("b@acme.example")).unwrap();
    }

    #[test]
    fn a_site_cap_counts_activities_not_requests() {
        let l = Limiter::new(RateLimits {
            site_activities_per_minute: 10,
            ..RateLimits::OFF
        });
        let shop = SiteId::parse("shop").unwrap();
        let blog = SiteId::parse("blog").unwrap();
        l.site_activities([(&shop, 8)]).unwrap();
        assert!(l.site_activities([(&shop, 3)]).is_err());
        l.site_activities([(&blog, 10)]).unwrap();
        assert!(
            l.site_activities([(&blog, 11)]).is_err(),
            "a batch larger than the cap"
        );
    }

    #[test]
    fn open_exports_are_capped_per_viewer_per_account_and_in_all() {
        let l = Limiter::new(RateLimits {
            exports_per_viewer: 2,
            exports_total: 6,
            ..RateLimits::OFF
        });
        let a = viewer("a@acme.example");
        let mut site_token = viewer("a@acme.example");
        site_token.site = Some(SiteId::parse("shop").unwrap());
        let first = [l.export(&a).unwrap(), l.export(&a).unwrap()];
        assert!(l.export(&a).is_err());
        assert!(
            l.export(&site_token).is_err(),
            "another token, the same person"
        );
        let b = viewer("b@acme.example");
        let _second = l.export(&b).unwrap();
        assert!(
            l.export(&b).is_err(),
            "an account holds at most half of the whole"
        );
        let mut other = viewer("c@globex.example");
        other.account = sitetrail_core::AccountId::parse("globex").unwrap();
        let _third = [l.export(&other).unwrap(), l.export(&other).unwrap()];
        drop(first);
        l.export(&a).unwrap();
        l.export(&b).unwrap();
    }

    #[test]
    fn off_means_off() {
        let l = Limiter::new(RateLimits::OFF);
        for _ in 0..10_000 {
            l.publisher("k").unwrap();
        }
    }
}
