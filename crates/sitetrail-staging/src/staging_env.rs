//! Staging's environment: its docroot as registered, and its `wp-config.php` written when
//! staging is made (live's settings, a database of its own, its own prefix and salts).

use std::path::Path;

use anyhow::Context;
use sitetrail_core::{Environment, Site};

use crate::blocking;
use crate::confined;
use crate::operations::{Engine, Env, read_config};
use crate::progress;
use crate::wpconfig::{self, WpConfig};

impl Engine {
    /// Staging as registered. When the engine's record says staging does not exist, what its
    /// docroot holds is not staging (a leftover, or the site's own files): it goes aside
    /// whole, links and all (never followed), and a new `wp-config.php` (with a new database)
    /// is written in an empty docroot. Existing staging's `wp-config.php` is written afresh
    /// only when it has none.
    pub(crate) async fn staging_env(&self, site: &Site, live: &Env) -> anyhow::Result<Env> {
        let (url, docroot) = Self::env(site, Environment::Staging)?;
        let config = if !self.staging_state(&site.id).await?.exists {
            let d = docroot.clone();
            blocking(move || crate::switch::remove_docroot(&d)).await?;
            self.provision_staging(live, &docroot).await?
        } else {
            match read_config(&docroot).await {
                Ok(c) => c,
                Err(e) if e.chain().any(|c| c.is::<confined::Refusal>()) => {
                    return Err(e.context("reading staging's configuration"));
                }
                Err(_) => self.provision_staging(live, &docroot).await?,
            }
        };
        Ok(Env {
            which: Environment::Staging,
            url,
            docroot,
            config,
        })
    }

    /// Writes staging's `wp-config.php`: live's settings, a new database on live's server,
    /// a prefix of its own and fresh salts.
    async fn provision_staging(&self, live: &Env, docroot: &Path) -> anyhow::Result<WpConfig> {
        let live_docroot = live.docroot.clone();
        let live_text = blocking(move || {
            confined::Root::open(&live_docroot)
                .and_then(|r| r.read(Path::new("wp-config.php")))
                .map_err(|e| {
                    confined::refusal(
                        "live's wp-config.php could not be read as a regular file in its docroot",
                        format!("{}/wp-config.php: {e}", live_docroot.display()),
                    )
                })
        })
        .await?;
        let live_text = String::from_utf8(live_text).context("live's wp-config.php is not text")?;
        let name = crate::policy::staging_name(&live.config.name)
            .map_err(|refusal| progress::for_people(format!("live's {refusal}")))?;
        let prefix = if live.config.prefix == "stg_" {
            "stg2_"
        } else {
            "stg_"
        };
        let sqlite = live.config.sqlite_file.is_some();
        let text = crate::config::derive(&live_text, &name, prefix, sqlite);
        let mut config = wpconfig::parse(&text)?;
        if sqlite {
            // Its own database file, in its own docroot, where the integration looks.
            config.sqlite_file = Some(docroot.join("wp-content/database/.ht.sqlite"));
        } else {
            crate::mysql::ensure_database(&config, &self.inner.databases).await?;
        }
        let docroot = docroot.to_owned();
        blocking(move || {
            std::fs::create_dir_all(&docroot)
                .with_context(|| format!("creating {}", docroot.display()))?;
            crate::switch::write_config(&docroot, text.as_bytes(), "staging")
        })
        .await?;
        Ok(config)
    }
}
