//! Rate limits and quotas: per publisher key, per viewer, and a cap on the activities one
//! site may receive per minute, so that one noisy publisher cannot drown the others. A
//! request over a limit is answered 429 with `Retry-After` and writes nothing.

use std::num::NonZeroU32;
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
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            publisher_per_second: 1000,
            viewer_per_second: 20,
            site_activities_per_minute: 6000,
        }
    }
}

impl RateLimits {
    /// No limits (tests and benchmarks that measure something else).
    pub const OFF: RateLimits = RateLimits {
        publisher_per_second: 0,
        viewer_per_second: 0,
        site_activities_per_minute: 0,
    };
}

type Keyed = DefaultKeyedRateLimiter<String>;

pub struct Limiter {
    publisher: Option<Keyed>,
    viewer: Option<Keyed>,
    site: Option<Keyed>,
    clock: DefaultClock,
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
        let who = viewer.actor.email.as_ref().map_or("", |e| e.expose());
        let key = format!("{}\n{}\n{who}", viewer.account, viewer.audience.as_str());
        l.check_key(&key)
            .map_err(|n| self.slow_down("viewer", n.wait_time_from(self.clock.now())))
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
    fn off_means_off() {
        let l = Limiter::new(RateLimits::OFF);
        for _ in 0..10_000 {
            l.publisher("k").unwrap();
        }
    }
}
