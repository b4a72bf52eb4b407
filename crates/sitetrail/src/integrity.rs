//! `sitetrail verify` and `sitetrail prune`: the log's integrity from the command line.

use sitetrail_core::{AccountId, Timestamp};
use sitetrail_server::Config;
use sitetrail_server::schedule::{PRUNE_BATCH, apply_retention};
use sitetrail_store::{AccountReport, CheckpointKey, chain};

use crate::exit;

fn parse_public_key(hex: &str) -> anyhow::Result<[u8; 32]> {
    let hex = hex.trim();
    anyhow::ensure!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "--public-key takes 64 hex digits (an Ed25519 public key)"
    );
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}

/// Verifies one account or all and prints the verdicts; fails (exit 1) unless every account
/// is intact, and finds nothing (exit 3) when there is no such account or none at all.
pub async fn verify(
    config: &Config,
    account: Option<&str>,
    public_keys: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let account = account
        .map(|a| exit::parse("--account", a, AccountId::parse))
        .transpose()?;
    let mut trusted = public_keys
        .iter()
        .map(|k| parse_public_key(k).map_err(|e| exit::usage(e.to_string())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(own) = CheckpointKey::load(&config.data_dir)? {
        trusted.push(own.public_key());
    }
    let store = sitetrail_server::open_store(config).await?;
    match &account {
        Some(id) if store.account(id).await?.is_none() => {
            return Err(exit::not_found(format!(
                "there is no account {id} in this log; `sitetrail verify` without --account \
                 checks every account there is"
            )));
        }
        None if store.account_ids().await?.is_empty() => {
            return Err(exit::not_found(
                "this log has no accounts yet, so there is nothing to verify; check that \
                 --data-dir (or --database) is the one `sitetrail serve` uses",
            ));
        }
        _ => {}
    }
    let reports = store.verify(account.as_ref(), &trusted).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            println!("{}", verdict(r));
        }
        if trusted.is_empty() {
            println!(
                "note: no checkpoint key in {} and no --public-key: checkpoints cannot be trusted",
                config.data_dir.display()
            );
        }
    }
    let failed = reports.iter().filter(|r| !r.is_intact()).count();
    if failed > 0 {
        return Err(exit::fail(
            exit::Exit::Failed,
            format!(
                "{failed} of {} accounts failed verification: see the first bad entry above",
                reports.len()
            ),
        ));
    }
    Ok(())
}

fn verdict(r: &AccountReport) -> String {
    let counts = format!(
        "{} links, {} activities, {} pruned, {} checkpoints",
        r.links, r.activities, r.pruned, r.checkpoints
    );
    match r.first_problem() {
        None => format!("{}: intact ({counts})", r.account_id),
        Some(p) => {
            let at = p
                .link_no
                .map_or_else(|| "no link".to_owned(), |n| format!("link {n}"));
            let mut line = format!(
                "{}: FAILED ({counts})\n  first bad entry: {at}, {}: {}",
                r.account_id,
                p.activity_id.as_deref().unwrap_or("-"),
                p.detail
            );
            for more in r.problems.iter().skip(1).take(9) {
                line.push_str(&format!("\n  also: {}", more.detail));
            }
            if r.problems.len() > 10 {
                line.push_str(&format!("\n  and {} more", r.problems.len() - 10));
            }
            line
        }
    }
}

/// Applies every account's retention period now.
pub async fn prune(config: &Config) -> anyhow::Result<()> {
    let store = sitetrail_server::open_store(config).await?;
    let key = CheckpointKey::load_or_create(&config.data_dir)?;
    let run = apply_retention(&store, &key, Timestamp::now(), PRUNE_BATCH).await?;
    println!(
        "removed {} activities from {} accounts in {} passes; checkpoints signed by key {}",
        run.removed,
        run.accounts,
        run.passes,
        chain::hex(&key.public_key())
    );
    Ok(())
}
