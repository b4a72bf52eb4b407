//! `sitetrail demo`: a demo partner with two client accounts, their sites and months of
//! history, served on the embedded default, with a login link per persona. Everything its
//! history claims is there: acme-shop is real WordPress, its template and backups are made
//! through the engine, and the past work of every site ends as the engine's record says.

mod history;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sitetrail_core::{
    Account, AccountId, Actor, ActorKind, Audience, Colour, Email, Environment, EnvironmentSpec,
    Page, Site, SiteId, SiteUrl, TemplateId, Timestamp, Viewer,
};
use sitetrail_server::{App, Config};
use sitetrail_staging::wordpress::{self, WpSite};
use sitetrail_staging::{BackupReason, Engine, Operation};
use sitetrail_store::{DynStore, Scope};

const PARTNER: &str = "Brightside Digital";

pub struct Person {
    email: &'static str,
    name: &'static str,
    kind: ActorKind,
}

const OWNER: Person = Person {
    email: "olivia@acmebakery.example",
    name: "Olivia Baker",
    kind: ActorKind::User,
};
const ADMIN: Person = Person {
    email: "priya@brightside.example",
    name: "Priya Patel",
    kind: ActorKind::User,
};
const SUPPORT: Person = Person {
    email: "sam.rivera@brightside.example",
    name: "Sam Rivera",
    kind: ActorKind::Support,
};
const DENTIST: Person = Person {
    email: "dr.chen@northwind.example",
    name: "Wei Chen",
    kind: ActorKind::User,
};

impl Person {
    fn actor(&self) -> Actor {
        Actor::person(
            self.kind,
            Email::parse(self.email).expect("demo emails are valid"),
            Some(self.name.to_owned()),
        )
    }
}

/// The template the demo's history names, made through the engine from a WordPress of its own.
const TEMPLATE: history::Template = history::Template {
    id: "bakery-classic",
    name: "Bakery Classic",
};

const SITES: [(&str, &str, &str, &str); 3] = [
    (
        "acme-shop",
        "acme-bakery",
        "Acme Bakery Shop",
        "https://shop.acmebakery.example",
    ),
    (
        "acme-blog",
        "acme-bakery",
        "Acme Bakery Journal",
        "https://journal.acmebakery.example",
    ),
    (
        "northwind-site",
        "northwind-dental",
        "Northwind Dental",
        "https://northwinddental.example",
    ),
];

pub async fn run(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    // WordPress's own paths (its docroots, the SQLite file) must not depend on where PHP runs.
    let data_dir = std::path::absolute(&data_dir).context("finding the data dir")?;
    let mut config = Config::new(listen, data_dir.clone(), None);
    // The demo serves plain http: on loopback its cookie goes without `Secure`, or no
    // browser would send it back; elsewhere it stays `Secure` (serve it behind HTTPS).
    config.insecure_cookies_on_loopback = listen.ip().is_loopback();
    let app = App::build(config).await?;
    let store = app.state.store.clone();
    let engine = app.state.engine.clone();
    register(&store).await?;
    // Real WordPress (on SQLite) behind acme-shop, when this machine has it: the staging
    // actions then work in the demo, and its template is real. The servers stop with the demo.
    let hosted = match host_wordpress(&store, &data_dir).await {
        Ok(servers) => Some(servers),
        Err(e) => {
            tracing::info!(reason = %format!("{e:#}"), "the demo runs without WordPress");
            None
        }
    };
    let template = match &hosted {
        Some(_) => match bakery_classic(&engine, &data_dir).await {
            Ok(()) => Some(&TEMPLATE),
            Err(e) => {
                tracing::warn!(reason = %format!("{e:#}"), "the demo's template could not be made");
                None
            }
        },
        None => None,
    };
    let seeded = seed(&store, template).await?;
    let base = format!("http://{}", app.address());
    let key = store.create_api_key("demo publisher").await?;
    let tokens = app.state.tokens.clone();
    let link = |account: &str, audience: Audience, p: &Person| -> anyhow::Result<String> {
        let viewer = Viewer {
            account: AccountId::parse(account)?,
            site: None,
            audience,
            actor: p.actor(),
        };
        Ok(format!(
            "{base}/login?token={}&site=acme-shop",
            tokens.mint(&viewer, 12 * 3600)?
        ))
    };
    println!("sitetrail demo on {base}");
    if seeded {
        println!("Seeded the demo partner {PARTNER:?}: 2 accounts, 3 sites, months of activity.");
    }
    println!();
    println!("Sign in as (links are valid for 12 hours; each asks before it signs you in):");
    println!("  client owner (Acme Bakery, sees \"Support user\"):");
    println!("    {}", link("acme-bakery", Audience::Client, &OWNER)?);
    println!("  partner admin (internal, sees support emails):");
    println!("    {}", link("acme-bakery", Audience::Internal, &ADMIN)?);
    println!("  support agent (internal):");
    println!("    {}", link("acme-bakery", Audience::Internal, &SUPPORT)?);
    println!();
    println!("Publisher API key for the curl examples in README.md:");
    println!("  {}", key.token());
    println!();
    match &hosted {
        Some(h) => {
            println!(
                "acme-shop is real WordPress on SQLite: live {} and staging {} (admin / {}).",
                h.live_url,
                h.staging_url,
                wordpress::ADMIN_PASSWORD
            );
            // The first start backs live up as the nightly schedule would: a real backup, on
            // the Backups page, running while the links are printed.
            if seeded {
                let daily = Operation::Backup {
                    environment: Environment::Live,
                    reason: BackupReason::Daily,
                };
                let shop = SiteId::parse("acme-shop")?;
                match engine.start(&shop, daily, Actor::system()).await {
                    Ok(_) => println!("The daily backup of acme-shop's live is running now."),
                    Err(e) => tracing::warn!(error = %e, "the demo's daily backup did not start"),
                }
            }
        }
        None => println!(
            "The staging actions need WordPress on this machine: run scripts/demo.sh to install it."
        ),
    }
    println!("Stop the demo with Ctrl-C.");
    let served = app.run_until_stopped().await;
    drop(hosted);
    served
}

/// Imports the template "Bakery Classic" (once per data dir) from a WordPress made for it.
async fn bakery_classic(engine: &Engine, data_dir: &Path) -> anyhow::Result<()> {
    let id = TemplateId::parse(TEMPLATE.id)?;
    let templates = engine.snapshots().templates()?;
    if templates.iter().any(|t| t.id == TEMPLATE.id) {
        return Ok(());
    }
    let root = data_dir.join("wordpress");
    let docroot = root.join(TEMPLATE.id);
    let _ = std::fs::remove_dir_all(&docroot);
    let source = WpSite::install_sqlite(
        &root,
        TEMPLATE.id,
        wordpress::free_port(4),
        "wp_",
        TEMPLATE.name,
    )?;
    source.php(
        "wp_insert_post(['post_title' => 'Our breads', 'post_status' => 'publish', 'post_type' => 'page', 'post_content' => 'Sourdough, rye and seeded loaves, baked every morning.']);
         wp_insert_post(['post_title' => 'Visit us', 'post_status' => 'publish', 'post_type' => 'page', 'post_content' => 'Open Tuesday to Sunday, 7 to 3.']);",
    )?;
    let url = SiteUrl::parse(&source.url)?;
    engine
        .import_named_template(TEMPLATE.name, Some(&id), &source.docroot, &url, &|_| {})
        .await?;
    drop(source);
    let _ = std::fs::remove_dir_all(&docroot);
    Ok(())
}

/// The demo's WordPress: live and staging of acme-shop, served while the demo runs.
pub struct Hosted {
    pub live_url: String,
    pub staging_url: String,
    _live: WpSite,
    _staging: WpSite,
}

/// Installs WordPress on SQLite for acme-shop in the data dir (once), registers its
/// docroots and serves live and staging with `php -S`.
async fn host_wordpress(store: &DynStore, data_dir: &Path) -> anyhow::Result<Hosted> {
    wordpress::available()?;
    wordpress::sqlite_plugin()?;
    let root = data_dir.join("wordpress").join("acme-shop");
    let site_id = SiteId::parse("acme-shop")?;
    let registered = store
        .site(&site_id)
        .await?
        .context("the demo site exists")?;
    let live_docroot = root.join("live");
    let staging_docroot = root.join("staging");
    let (live_url, staging_url) = match (&registered.live.docroot, &registered.staging) {
        // Installed by an earlier run: same URLs, same files.
        (Some(_), Some(staging)) if live_docroot.join("wp-config.php").is_file() => {
            (registered.live.url.to_string(), staging.url.to_string())
        }
        _ => {
            std::fs::create_dir_all(&root)?;
            let _ = std::fs::remove_dir_all(&live_docroot);
            let port = wordpress::free_port(4);
            let live = WpSite::install_sqlite(&root, "live", port, "wp_", "Acme Bakery Shop")?;
            live.php(
                "wp_insert_post(['post_title' => 'Sourdough is back', 'post_status' => 'publish', 'post_content' => 'Fresh every morning from 7.']);
                 wp_insert_post(['post_title' => 'Christmas orders open', 'post_status' => 'publish']);",
            )?;
            let urls = (
                live.url.clone(),
                format!("http://127.0.0.1:{}", wordpress::free_port(5)),
            );
            drop(live);
            urls
        }
    };
    let spec = |url: &str, docroot: &Path| -> anyhow::Result<EnvironmentSpec> {
        Ok(EnvironmentSpec {
            url: SiteUrl::parse(url)?,
            docroot: Some(docroot.to_string_lossy().into_owned()),
        })
    };
    store
        .upsert_site(&Site {
            live: spec(&live_url, &live_docroot)?,
            staging: Some(spec(&staging_url, &staging_docroot)?),
            ..registered
        })
        .await?;
    std::fs::create_dir_all(&staging_docroot)?;
    let port = |url: &str| -> anyhow::Result<u16> {
        Ok(url.rsplit(':').next().context("a port")?.parse()?)
    };
    let mut live = WpSite::attach(live_docroot, &live_url, port(&live_url)?, "", "wp_");
    live.serve()?;
    let mut staging = WpSite::attach(
        staging_docroot,
        &staging_url,
        port(&staging_url)?,
        "",
        "stg_",
    );
    staging.serve()?;
    Ok(Hosted {
        live_url,
        staging_url,
        _live: live,
        _staging: staging,
    })
}

/// Creates (or updates) the demo's partner, accounts and sites.
async fn register(store: &DynStore) -> anyhow::Result<()> {
    let colour = Colour::parse("#0f766e")?;
    for (id, name) in [
        ("acme-bakery", "Acme Bakery"),
        ("northwind-dental", "Northwind Dental"),
    ] {
        store
            .upsert_account(&Account {
                id: AccountId::parse(id)?,
                name: name.into(),
                partner: PARTNER.into(),
                partner_colour: Some(colour.clone()),
            })
            .await?;
    }
    for (id, account, name, url) in SITES {
        if store.site(&SiteId::parse(id)?).await?.is_some() {
            // Registered by an earlier run (acme-shop then points at its WordPress).
            continue;
        }
        let staging_url = url.replacen("https://", "https://staging-", 1);
        store
            .upsert_site(&Site {
                id: SiteId::parse(id)?,
                account_id: AccountId::parse(account)?,
                name: name.into(),
                live: EnvironmentSpec {
                    url: SiteUrl::parse(url)?,
                    docroot: None,
                },
                staging: Some(EnvironmentSpec {
                    url: SiteUrl::parse(&staging_url)?,
                    docroot: None,
                }),
            })
            .await?;
    }
    Ok(())
}

/// Writes the past history once per data dir; returns whether it wrote it. It names the
/// template only when there is one.
pub async fn seed(
    store: &DynStore,
    template: Option<&history::Template<'_>>,
) -> anyhow::Result<bool> {
    let scope = Scope {
        account: AccountId::parse("acme-bakery")?,
        site: None,
    };
    let existing = store
        .list(
            &scope,
            Audience::Internal,
            &Default::default(),
            Page {
                limit: 1,
                cursor: None,
            },
        )
        .await?;
    if !existing.items.is_empty() {
        return Ok(false);
    }
    let sites: Vec<_> = SITES.iter().map(|s| (s.0, s.1)).collect();
    store
        .record(history::past(&sites, template, Timestamp::now().millis()))
        .await?;
    Ok(true)
}
