//! `sitetrail demo`: a demo partner with two client accounts, their sites and months of
//! history, served on the embedded default, with a login link per persona.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sitetrail_core::{
    Account, AccountId, ActivityKind, Actor, ActorKind, Audience, Colour, Email, Ending,
    Environment, EnvironmentSpec, NewActivity, Page, Site, SiteId, SiteUrl, Status, Timestamp,
    Viewer,
};
use sitetrail_server::{App, Config};
use sitetrail_staging::wordpress::{self, WpSite};
use sitetrail_store::{DynStore, Scope};

const PARTNER: &str = "Brightside Digital";
const DAY_MS: i64 = 24 * 3600 * 1000;

struct Person {
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

/// A small deterministic generator, so that every demo has the same history.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub async fn run(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    // WordPress's own paths (its docroots, the SQLite file) must not depend on where PHP runs.
    let data_dir = std::path::absolute(&data_dir).context("finding the data dir")?;
    let mut config = Config::new(listen, data_dir.clone(), None);
    // The demo serves plain http: on loopback its cookie goes without `Secure`, or no
    // browser would send it back; elsewhere it stays `Secure` (serve it behind HTTPS).
    config.insecure_cookies_on_loopback = listen.ip().is_loopback();
    let app = App::build(config).await?;
    let store = app.state.store.clone();
    let seeded = seed(&store).await?;
    // Real WordPress (on SQLite) behind acme-shop, when this machine has it: the staging
    // actions then work in the demo. The servers stop with the demo.
    let hosted = match host_wordpress(&store, &data_dir).await {
        Ok(servers) => Some(servers),
        Err(e) => {
            tracing::info!(reason = %format!("{e:#}"), "the demo runs without WordPress");
            None
        }
    };
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
        Some(h) => println!(
            "acme-shop is real WordPress on SQLite: live {} and staging {} (admin / {}).",
            h.live_url,
            h.staging_url,
            wordpress::ADMIN_PASSWORD
        ),
        None => println!(
            "The staging actions need WordPress on this machine: run scripts/demo.sh to install it."
        ),
    }
    start_running_push(store.clone()).await;
    println!("A push to live is running now on acme-shop; it ends in about 40 seconds.");
    let served = app.run_until_stopped().await;
    drop(hosted);
    served
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

/// Creates the demo's accounts and sites; writes the history once per data dir. Returns
/// whether it wrote the history.
pub async fn seed(store: &DynStore) -> anyhow::Result<bool> {
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
    let sites = [
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
    for (id, account, name, url) in sites {
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
    let now = Timestamp::now().millis();
    let mut dice = Dice(0x5eed_cafe_f00d);
    let mut batch = Vec::new();
    for (site, account, _, _) in sites {
        let people: &[&Person] = if account == "acme-bakery" {
            &[&OWNER, &OWNER, &ADMIN, &SUPPORT]
        } else {
            &[&DENTIST, &ADMIN, &SUPPORT]
        };
        for day in (1..=180).rev() {
            let midnight = now - day * DAY_MS - now % DAY_MS;
            // The nightly backup of live.
            let at = midnight + 2 * 3600 * 1000 + dice.below(600_000) as i64;
            let ok = !dice.chance(3);
            batch.push(entry(
                site,
                account,
                ActivityKind::CreateBackup,
                Environment::Live,
                Actor::system(),
                at,
                20_000 + dice.below(70_000) as i64,
                ok,
                if ok {
                    "Daily backup of live"
                } else {
                    "Daily backup of live failed"
                },
                "The backup store did not answer within 10 minutes; the next backup runs tonight",
                serde_json::json!({"kind": "daily", "size_mb": 180 + dice.below(40)}),
            ));
            if !dice.chance(22) {
                continue;
            }
            let who = people[dice.below(people.len() as u64) as usize];
            let at =
                midnight + (9 + dice.below(9) as i64) * 3600 * 1000 + dice.below(3_600_000) as i64;
            let ok = !dice.chance(9);
            let (kind, env, desc, error, details) = match dice.below(5) {
                0 => (
                    ActivityKind::CreateStaging,
                    Environment::Staging,
                    "Created environment for staging from live",
                    "Copying the database failed: the staging database is full",
                    serde_json::json!({"source": "live"}),
                ),
                1 => (
                    ActivityKind::ResetStagingFromTemplate,
                    Environment::Staging,
                    "Reset staging from the template \u{201c}Bakery Classic\u{201d}",
                    "The template's checksums did not match; staging was left as it was",
                    serde_json::json!({"template": "bakery-classic"}),
                ),
                2 => (
                    ActivityKind::ResetStagingFromBackup,
                    Environment::Staging,
                    "Created environment for staging from backup",
                    "The backup could not be read; staging was left as it was",
                    serde_json::json!({"backup": format!("live-daily-{day}")}),
                ),
                3 => (
                    ActivityKind::CreateBackup,
                    Environment::Staging,
                    "Manual backup of staging",
                    "Another backup of this site is running; try again when it ends",
                    serde_json::json!({"kind": "manual"}),
                ),
                _ => (
                    ActivityKind::PushStagingToLive,
                    Environment::Live,
                    "Successfully pushed staging to live",
                    "The database server went away while the tables were copied; live was left as it was",
                    serde_json::json!({"scope": if dice.chance(70) { "site" } else { "files" }, "keep_staging": dice.chance(30)}),
                ),
            };
            let desc = if who.kind == ActorKind::Support {
                // Support notes name the agent: the redaction function must hide it.
                format!(
                    "{desc} (on request, ticket #{} by {})",
                    4000 + dice.below(900),
                    who.name
                )
            } else {
                desc.to_owned()
            };
            batch.push(entry(
                site,
                account,
                kind,
                env,
                who.actor(),
                at,
                45_000 + dice.below(400_000) as i64,
                ok,
                &desc,
                error,
                details,
            ));
        }
    }
    store.record(batch).await?;
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn entry(
    site: &str,
    account: &str,
    activity: ActivityKind,
    environment: Environment,
    actor: Actor,
    at_ms: i64,
    took_ms: i64,
    ok: bool,
    description: &str,
    error: &str,
    details: serde_json::Value,
) -> NewActivity {
    let created = Timestamp::from_millis(at_ms).expect("demo times are recent");
    NewActivity {
        id: None,
        account_id: AccountId::parse(account).expect("demo ids are valid"),
        site_id: SiteId::parse(site).expect("demo ids are valid"),
        environment,
        activity,
        actor,
        description: description.to_owned(),
        status: if ok {
            Status::Completed
        } else {
            Status::Failed
        },
        created_at: Some(created),
        completed_at: Timestamp::from_millis(at_ms + took_ms),
        error: (!ok).then(|| error.to_owned()),
        details: details.as_object().cloned().unwrap_or_default(),
    }
}

/// A push that is running when the demo starts and ends a little later.
async fn start_running_push(store: DynStore) {
    let push = NewActivity {
        id: None,
        account_id: AccountId::parse("acme-bakery").expect("valid"),
        site_id: SiteId::parse("acme-shop").expect("valid"),
        environment: Environment::Live,
        activity: ActivityKind::PushStagingToLive,
        actor: OWNER.actor(),
        description: "Pushing staging to live".into(),
        status: Status::InProgress,
        created_at: None,
        completed_at: None,
        error: None,
        details: serde_json::json!({"scope": "site", "keep_staging": false})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let recorded = match store.record(vec![push]).await {
        Ok(mut r) => r.remove(0).activity,
        Err(e) => {
            tracing::error!(error = ?e, "the demo's running push could not start");
            return;
        }
    };
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(40)).await;
        let ending = Ending {
            details: None,
            status: Status::Completed,
            description: Some("Successfully pushed staging to live".into()),
            error: None,
            completed_at: None,
        };
        if let Err(e) = store.end(&recorded.id, ending).await {
            tracing::error!(error = ?e, "the demo's running push could not end");
        }
    });
}
