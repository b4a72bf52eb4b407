//! Invariants 5 and 6 under `kill -9`: 64 publishers record activities with their own ids
//! while the server is killed at a random moment and started again on the same store. Every
//! activity answered 2xx is there afterwards, exactly once, as it was sent.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sitetrail_store_postgres::testkit::ScratchDatabase;

use crate::support::{Server, Storage, random_in, register_sites, write_figures};

const PUBLISHERS: usize = 64;
const BATCH_EVERY: u64 = 8;
const BATCH_SIZE: usize = 5;
/// A publisher gives up on an id (and the suite fails) when no server answers for this long.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow reliability suite: scripts/reliability.sh"]
async fn kill_9_during_ingest_loses_no_acknowledged_activity_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let figures = crash_rounds(&Storage::sqlite(dir.path()), 20).await;
    write_figures("crash-ingest", &figures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow reliability suite: scripts/reliability.sh"]
async fn kill_9_during_ingest_loses_no_acknowledged_activity_on_postgres() {
    let Some(database) = ScratchDatabase::for_tests("sitetrail_test").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage {
        data_dir: dir.path().to_owned(),
        database: Some(database.url().to_owned()),
    };
    let figures = crash_rounds(&storage, 3).await;
    write_figures("crash-ingest-postgres", &figures);
}

/// What the publishers share: where the server is now, and when to stop.
struct Publishers {
    http: reqwest::Client,
    key: String,
    base: RwLock<String>,
    stop: AtomicBool,
    acknowledged: AtomicU64,
}

/// What one publisher saw in a round.
#[derive(Default)]
struct Tally {
    acknowledged: Vec<String>,
    created: u64,
    replayed: u64,
    batches: u64,
    transport_errors: u64,
    server_errors: u64,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.acknowledged.extend(other.acknowledged);
        self.created += other.created;
        self.replayed += other.replayed;
        self.batches += other.batches;
        self.transport_errors += other.transport_errors;
        self.server_errors += other.server_errors;
        self.failures.extend(other.failures);
    }
}

fn description(id: &str) -> String {
    format!("Recorded by the crash suite as {id}")
}

/// The body of an activity, a function of its id and number alone: a retry sends it again
/// byte for byte.
fn activity_body(id: &str, n: u64) -> Value {
    let (service, activity) = match n % 3 {
        0 => ("staging", "push_staging_to_live"),
        1 => ("staging", "reset_staging_from_template"),
        _ => ("backups", "create_backup"),
    };
    let actor = if n.is_multiple_of(4) {
        json!({"kind": "system"})
    } else {
        json!({"kind": "user", "email": format!("publisher{}@acme.example", n % 7)})
    };
    let mut body = json!({
        "id": id, "account_id": "acme", "site_id": "shop", "environment": "staging",
        "service": service, "activity": activity, "actor": actor,
        "description": description(id), "details": {"n": n},
    });
    if n.is_multiple_of(5) {
        body["status"] = json!("completed");
        body["created_at"] = json!("2026-03-01T09:00:00.000Z");
        body["completed_at"] = json!("2026-03-01T09:00:04.250Z");
    }
    body
}

/// Posts until a server answers with something other than a 5xx; `None` when none did
/// within [`GIVE_UP_AFTER`].
async fn post_until_answered(
    publishers: &Publishers,
    path: &str,
    body: &Value,
    tally: &mut Tally,
) -> Option<(u16, Value)> {
    let started = Instant::now();
    loop {
        let base = publishers.base.read().unwrap().clone();
        let sent = publishers
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(&publishers.key)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_server_error() => tally.server_errors += 1,
            Ok(r) => {
                let status = r.status().as_u16();
                match r.json::<Value>().await {
                    Ok(v) => return Some((status, v)),
                    Err(_) => tally.transport_errors += 1,
                }
            }
            Err(_) => tally.transport_errors += 1,
        }
        if started.elapsed() > GIVE_UP_AFTER {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One publisher: records activities with its own ids until told to stop, never leaving an
/// id unanswered.
async fn publisher(publishers: Arc<Publishers>, round: usize, client: usize) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0u64;
    while !publishers.stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("r{round:02}-c{client:02}-{n:06}");
        if n.is_multiple_of(BATCH_EVERY) {
            let ids: Vec<String> = (0..BATCH_SIZE).map(|k| format!("{id}-b{k}")).collect();
            let body = json!({"activities": ids.iter().enumerate()
                .map(|(k, id)| activity_body(id, n + k as u64)).collect::<Vec<_>>()});
            let answer =
                post_until_answered(&publishers, "/api/v1/activities/batch", &body, &mut tally)
                    .await;
            let answered_ids = answer.as_ref().and_then(|(_, v)| {
                v["items"].as_array().map(|items| {
                    items
                        .iter()
                        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
                        .collect::<Vec<_>>()
                })
            });
            match answer {
                Some((200, _)) if answered_ids.as_ref() == Some(&ids) => {
                    tally.batches += 1;
                    tally.acknowledged.extend(ids);
                }
                other => tally.failures.push(format!("batch {id}: {other:?}")),
            }
        } else {
            let body = activity_body(&id, n);
            match post_until_answered(&publishers, "/api/v1/activities", &body, &mut tally).await {
                Some((status @ (200 | 201), v))
                    if v["id"] == id.as_str() && v["description"] == description(&id) =>
                {
                    if status == 201 {
                        tally.created += 1;
                    } else {
                        tally.replayed += 1;
                    }
                    tally.acknowledged.push(id);
                }
                other => tally.failures.push(format!("{id}: {other:?}")),
            }
        }
        publishers.acknowledged.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

async fn start(storage: &Storage) -> Server {
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || Server::start(&storage))
        .await
        .unwrap()
}

/// Every activity of the site, as the NDJSON export gives it: id → descriptions seen.
async fn exported(http: &reqwest::Client, base: &str, token: &str) -> HashMap<String, Vec<String>> {
    let r = http
        .get(format!(
            "{base}/api/v1/sites/shop/activities/export?format=ndjson"
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for line in r.text().await.unwrap().lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        seen.entry(a["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(a["description"].as_str().unwrap_or_default().to_owned());
    }
    seen
}

/// Every activity id of the site, walking the listing's pages by cursor.
async fn listed(http: &reqwest::Client, base: &str, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = reqwest::Url::parse_with_params(
            &format!("{base}/api/v1/sites/shop/activities"),
            [("limit", "200"), ("cursor", cursor.as_str())],
        )
        .unwrap();
        let r = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return ids,
        }
    }
}

/// Same id and body again: the same activity; same id, another body: 409.
async fn replays_are_recognised(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    singles: &[(String, u64)],
) {
    for (id, n) in singles {
        let body = activity_body(id, *n);
        let r = http
            .post(format!("{base}/api/v1/activities"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{id} again");
        assert_eq!(r.json::<Value>().await.unwrap()["id"], id.as_str());
        let mut other = body;
        other["description"] = json!("Another body under the same id");
        let r = http
            .post(format!("{base}/api/v1/activities"))
            .bearer_auth(key)
            .json(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{id} with another body");
    }
}

async fn crash_rounds(storage: &Storage, rounds: usize) -> Value {
    let backend = storage.backend();
    let key = storage.publisher_key("crash-suite");
    let token = storage.viewer_token("acme", Some("shop"), "internal");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut server = start(storage).await;
    register_sites(&http, &server.base, &key, &["shop"]).await;

    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut total = Tally::default();
    let mut per_round = Vec::new();
    for round in 0..rounds {
        let publishers = Arc::new(Publishers {
            http: http.clone(),
            key: key.clone(),
            base: RwLock::new(server.base.clone()),
            stop: AtomicBool::new(false),
            acknowledged: AtomicU64::new(0),
        });
        let clients: Vec<_> = (0..PUBLISHERS)
            .map(|c| tokio::spawn(publisher(publishers.clone(), round, c)))
            .collect();
        let kill_after = random_in(300..=1500);
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        let answered_before_kill = publishers.acknowledged.load(Ordering::Relaxed);
        let killed = Instant::now();
        tokio::task::spawn_blocking(move || server.kill())
            .await
            .unwrap();
        server = start(storage).await;
        let restart_ms = killed.elapsed().as_millis() as u64;
        *publishers.base.write().unwrap() = server.base.clone();
        tokio::time::sleep(Duration::from_millis(random_in(500..=1000))).await;
        publishers.stop.store(true, Ordering::Relaxed);

        let mut tally = Tally::default();
        for c in clients {
            tally.add(c.await.unwrap());
        }
        assert!(
            tally.failures.is_empty(),
            "round {round} ({backend}): {} ids were refused or never answered, e.g. {:?}",
            tally.failures.len(),
            &tally.failures[..tally.failures.len().min(5)]
        );
        for id in &tally.acknowledged {
            assert!(acknowledged.insert(id.clone()), "{id} acknowledged twice");
        }

        let stored = exported(&http, &server.base, &token).await;
        let twice: Vec<_> = stored.iter().filter(|(_, d)| d.len() > 1).collect();
        assert!(twice.is_empty(), "round {round}: stored twice: {twice:?}");
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round} ({backend}): {} acknowledged activities are lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        let altered: Vec<_> = stored
            .iter()
            .filter(|(id, d)| d[0] != description(id))
            .collect();
        assert!(altered.is_empty(), "round {round}: {altered:?}");
        // Every publisher finished its last id, so nothing is stored that was not answered.
        let unanswered: Vec<_> = stored
            .keys()
            .filter(|id| !acknowledged.contains(*id))
            .collect();
        assert!(
            unanswered.is_empty(),
            "round {round}: stored but never acknowledged: {unanswered:?}"
        );

        let singles: Vec<(String, u64)> = tally
            .acknowledged
            .iter()
            .filter(|id| !id.contains("-b"))
            .step_by((tally.acknowledged.len() / 10).max(1))
            .map(|id| {
                let n = id.rsplit('-').next().unwrap().parse().unwrap();
                (id.clone(), n)
            })
            .collect();
        replays_are_recognised(&http, &server.base, &key, &singles).await;

        eprintln!(
            "round {}/{rounds} ({backend}): killed after {kill_after} ms ({answered_before_kill} \
             answered by then), restarted in {restart_ms} ms; {} acknowledged, {} answered as \
             replays, {} retries after transport errors, {} after 5xx; {} stored",
            round + 1,
            tally.acknowledged.len(),
            tally.replayed,
            tally.transport_errors,
            tally.server_errors,
            stored.len(),
        );
        per_round.push(json!({
            "round": round + 1,
            "kill_after_ms": kill_after,
            "answered_before_kill": answered_before_kill,
            "restart_ms": restart_ms,
            "acknowledged": tally.acknowledged.len(),
            "created": tally.created,
            "replayed": tally.replayed,
            "batches": tally.batches,
            "transport_errors": tally.transport_errors,
            "server_errors": tally.server_errors,
            "stored": stored.len(),
        }));
        total.add(tally);
    }

    let ids = listed(&http, &server.base, &token).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "the listing shows an activity twice"
    );
    assert!(
        acknowledged.iter().all(|id| unique.contains(id)),
        "the listing's pages miss acknowledged activities"
    );

    // The hash chains survived every kill too: each link was written in its activity's
    // commit, so `sitetrail verify` finds nothing changed, removed or inserted.
    let mut verify = crate::support::sitetrail();
    verify
        .args(["verify", "--json", "--data-dir"])
        .arg(&storage.data_dir);
    match &storage.database {
        Some(url) => verify.args(["--database", url]),
        None => verify.env_remove("SITETRAIL_DATABASE"),
    };
    let out = verify.output().unwrap();
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "sitetrail verify after the crashes: {reports:#}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chained: u64 = reports
        .as_array()
        .map(|r| r.iter().filter_map(|a| a["links"].as_u64()).sum())
        .unwrap_or(0);

    let figures = json!({
        "backend": backend,
        "rounds": rounds,
        "chain_links_verified": chained,
        "crashes": rounds,
        "publishers": PUBLISHERS,
        "acknowledged": acknowledged.len(),
        "created": total.created,
        "replayed": total.replayed,
        "batches": total.batches,
        "transport_errors": total.transport_errors,
        "server_errors": total.server_errors,
        "stored": ids.len(),
        "lost": 0,
        "duplicated": 0,
        "per_round": per_round,
    });
    eprintln!(
        "crash during ingest ({backend}): {rounds} kill -9 and restarts, {} activities \
         acknowledged ({} of them as replays after a crash), {} stored, none lost, none twice; \
         {} retries after transport errors, {} after 5xx",
        acknowledged.len(),
        total.replayed,
        ids.len(),
        total.transport_errors,
        total.server_errors,
    );
    figures
}
