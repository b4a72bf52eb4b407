//! How one viewer sees activities, built once per request (or per live stream): the
//! audience and, for a client, its partner's roster of support identities and the mask of
//! ids that name one. Every output path renders through [`Lens::view`], which is
//! [`sitetrail_core::view`].

use std::sync::Arc;

use sitetrail_core::{AccountId, ActivityView, Audience, Roster, Sight, StoredActivity, view};

use crate::AppState;
use crate::error::ApiResult;
use crate::opaque::Opaque;

pub struct Lens {
    audience: Audience,
    account: AccountId,
    roster: Arc<Roster>,
    ids: Opaque,
}

impl Lens {
    /// The lens of a viewer of `audience` in `account`: a client's reads the roster of the
    /// account's partner.
    pub async fn of(state: &AppState, audience: Audience, account: &AccountId) -> ApiResult<Lens> {
        let roster = match audience {
            Audience::Client => state.store.roster(account).await?,
            Audience::Internal => Arc::new(Roster::empty()),
        };
        Ok(Lens {
            audience,
            account: account.clone(),
            roster,
            ids: state.tokens.opaque().clone(),
        })
    }

    pub fn audience(&self) -> Audience {
        self.audience
    }

    pub fn view(&self, a: &StoredActivity) -> ActivityView {
        view(a, &Sight::new(self.audience, &self.roster, &self.ids))
    }

    /// Reads the roster again: what a long-lived reader (a live stream) does now and then.
    pub async fn refresh(&mut self, state: &AppState) -> ApiResult<()> {
        if self.audience == Audience::Client {
            self.roster = state.store.roster(&self.account).await?;
        }
        Ok(())
    }

    /// Adds an activity's own support actor to the roster this lens holds, as the store did
    /// when it recorded it.
    pub fn learn(&mut self, a: &StoredActivity) {
        if let (sitetrail_core::ActorKind::Support, Some(email)) = (a.actor.kind, &a.actor.email)
            && self.audience == Audience::Client
            && !self.roster.holds(email, a.actor.name.as_deref())
        {
            Arc::make_mut(&mut self.roster).add(email, a.actor.name.as_deref());
        }
    }
}
