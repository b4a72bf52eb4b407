//! Viewers: who reads the log, and what they may see.

use serde::{Deserialize, Serialize};

use crate::{AccountId, Actor, SiteId};

/// `internal`: the partner's team and the platform's staff. `client`: the business and its
/// users, who never learn which support person helped them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Internal,
    Client,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Internal => "internal",
            Audience::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "internal" => Some(Audience::Internal),
            "client" => Some(Audience::Client),
            _ => None,
        }
    }
}

/// A signed-in reader: an audience and a scope (an account, optionally one site), and the
/// person, who becomes the actor of any operation they start.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    pub account: AccountId,
    pub site: Option<SiteId>,
    pub audience: Audience,
    pub actor: Actor,
}

impl Viewer {
    /// Whether this viewer's scope covers a site of an account.
    pub fn may_see(&self, account: &AccountId, site: &SiteId) -> bool {
        &self.account == account && self.site.as_ref().is_none_or(|s| s == site)
    }
}
