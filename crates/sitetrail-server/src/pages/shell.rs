//! The frame around every site page: the partner's name and colour (white-label: never
//! ours), the site with its live and staging URLs, the signed-in person, the sign-out form
//! and the navigation.

use sitetrail_core::{Audience, Site};
use sitetrail_staging::StagingState;
use sitetrail_store::Scope;

use crate::AppState;
use crate::api::site_scope;
use crate::pages::{PageError, Session};

/// The sections of a site, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Staging,
    Backups,
    AdvancedTools,
}

impl Section {
    const ALL: [Section; 4] = [
        Section::Overview,
        Section::Staging,
        Section::Backups,
        Section::AdvancedTools,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Staging => "Staging",
            Section::Backups => "Backups",
            Section::AdvancedTools => "Advanced Tools",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Overview => "",
            Section::Staging => "/staging",
            Section::Backups => "/backups",
            Section::AdvancedTools => "/advanced-tools",
        }
    }
}

pub fn site_path(site: &str, section: Section) -> String {
    format!("/sites/{site}{}", section.path())
}

#[derive(Debug, Clone)]
pub struct NavItem {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Debug, Clone)]
pub struct SiteLink {
    pub href: String,
    pub name: String,
    pub current: bool,
}

/// What the frame shows. Every field is plain text; the templates escape it.
#[derive(Debug, Clone)]
pub struct Shell {
    pub title: String,
    pub partner: String,
    pub site_name: String,
    pub live_url: String,
    pub staging_url: Option<String>,
    /// The URLs without their scheme, as the header shows them.
    pub live_host: String,
    pub staging_host: String,
    pub person: String,
    pub person_email: String,
    /// Set for the partner's team and platform staff, who see more than clients.
    pub internal: bool,
    pub nav: Vec<NavItem>,
    /// The account's sites, when the viewer may open more than one.
    pub sites: Vec<SiteLink>,
    pub csrf: String,
    /// The Staging page.
    pub staging_href: String,
    /// Staging is hosted here and the engine says it does not exist (yet, or any more):
    /// its URL leads nowhere, and Create is what to offer.
    pub staging_missing: bool,
    /// The one-time token of this page's action forms ([`crate::pages::once`]).
    pub once: String,
}

fn without_scheme(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_owned()
}

/// A site page's frame (`subpage` is the path below the section, kept when switching
/// sites), with the scope its data is read in: 404 unless the site is the
/// viewer's.
pub struct SitePage {
    pub shell: Shell,
    pub scope: Scope,
    pub site: Site,
    /// What the engine recorded about staging, when staging is hosted here.
    pub staging: Option<StagingState>,
}

impl SitePage {
    pub async fn load(
        state: &AppState,
        session: &Session,
        site: &str,
        section: Section,
        subpage: &str,
        heading: &str,
    ) -> Result<SitePage, PageError> {
        let viewer = &session.viewer;
        let scope = site_scope(state, viewer, site).await?;
        let site_id = scope.site.as_ref().expect("a site scope names its site");
        let site = state
            .store
            .site(site_id)
            .await
            .map_err(crate::error::ApiError::from)?
            .ok_or_else(PageError::site_not_found)?;
        let account = state
            .store
            .account(&site.account_id)
            .await
            .map_err(crate::error::ApiError::from)?
            .ok_or_else(PageError::site_not_found)?;
        let sites = if viewer.site.is_none() {
            state
                .store
                .sites_of(&account.id)
                .await
                .map_err(crate::error::ApiError::from)?
                .into_iter()
                .map(|s| SiteLink {
                    href: format!("{}{subpage}", site_path(s.id.as_str(), section)),
                    current: s.id == site.id,
                    name: s.name,
                })
                .collect()
        } else {
            Vec::new()
        };
        let email = viewer
            .actor
            .email
            .as_ref()
            .map(|e| e.expose().to_owned())
            .unwrap_or_default();
        let staging = staging_state(state, &site).await;
        let staging_missing = staging.as_ref().is_some_and(|s| !s.exists);
        let shell = Shell {
            title: format!("{heading} · {} · {}", site.name, account.partner),
            partner: account.partner.clone(),
            site_name: site.name.clone(),
            live_url: site.live.url.as_str().to_owned(),
            live_host: without_scheme(site.live.url.as_str()),
            staging_host: site
                .staging
                .as_ref()
                .map(|s| without_scheme(s.url.as_str()))
                .unwrap_or_default(),
            // A staging that does not exist has no address to open.
            staging_url: site
                .staging
                .as_ref()
                .filter(|_| !staging_missing)
                .map(|s| s.url.as_str().to_owned()),
            staging_href: site_path(site.id.as_str(), Section::Staging),
            staging_missing,
            person: viewer.actor.name.clone().unwrap_or_else(|| email.clone()),
            person_email: email,
            internal: viewer.audience == Audience::Internal,
            nav: Section::ALL
                .iter()
                .map(|s| NavItem {
                    href: site_path(site.id.as_str(), *s),
                    label: s.label(),
                    current: *s == section,
                })
                .collect(),
            sites,
            csrf: session.csrf_token(),
            once: crate::pages::once::token(),
        };
        Ok(SitePage {
            shell,
            scope,
            site,
            staging,
        })
    }
}

/// The engine's record of the site's staging, when the engine runs it (its docroots are
/// hosted here); a record that cannot be read is logged and treated as unknown.
async fn staging_state(state: &AppState, site: &Site) -> Option<StagingState> {
    if crate::pages::operations::Hosting::of(site)
        .staging_unavailable()
        .is_some()
    {
        return None;
    }
    match state.engine.staging_state(&site.id).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = ?e, site = %site.id, "could not read staging's record");
            None
        }
    }
}
