//! The tables live owns: the profile sitetrail ships and what a site adds to it.

use sitetrail_core::SiteId;

use crate::operations::{Engine, EngineError};
use crate::push::LiveOwned;

impl Engine {
    /// The site's profile of live-owned tables: the shipped one and the site's additions.
    pub async fn live_owned(&self, _site: &SiteId) -> anyhow::Result<LiveOwned> {
        // Interface only: the profile is built in this module.
        Ok(LiveOwned::default())
    }

    /// Replaces the site's additions to the profile (tables named without a prefix).
    /// Invalid names are refused with [`EngineError::Invalid`].
    pub async fn set_live_owned(
        &self,
        site: &SiteId,
        _extra: Vec<String>,
    ) -> Result<LiveOwned, EngineError> {
        Ok(self.live_owned(site).await?)
    }
}
