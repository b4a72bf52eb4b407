//! Tamper evidence: each account's activities form a hash chain, sealed now and then by a
//! signed checkpoint (as a CloudTrail digest seals a log file).
//!
//! - Every write to an activity (its recording, its end) appends one **link** to its
//!   account's chain, in the same transaction: the link's hash covers the previous link's
//!   hash and the activity's canonical content as that write left it, completion included.
//! - A **checkpoint** signs (account, link number, link hash, time) with the server's Ed25519
//!   key. Whoever can write the database but not read that key cannot rewrite the chain
//!   behind a checkpoint without the signature failing.
//! - The retention policy removes activities but keeps their links; the prune activity it
//!   logs holds a digest of what it removed, and that activity is itself in the chain.
//!
//! [`crate::verify::Verifier`] walks one account's chain, checkpoints, activities and pruned ids, and names
//! every entry that was changed, removed or inserted.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use sitetrail_core::{StoredActivity, Timestamp};

pub type Hash = [u8; 32];

/// The hash before an account's first link.
pub const GENESIS: Hash = [0; 32];

/// Where hashed bytes go: the hasher itself, or a buffer hashed in one call (cheaper for
/// many short fields).
trait Sink {
    fn feed(&mut self, bytes: impl AsRef<[u8]>);
}

impl Sink for Sha256 {
    fn feed(&mut self, bytes: impl AsRef<[u8]>) {
        Digest::update(self, bytes);
    }
}

impl Sink for Vec<u8> {
    fn feed(&mut self, bytes: impl AsRef<[u8]>) {
        self.extend_from_slice(bytes.as_ref());
    }
}

fn put(h: &mut impl Sink, bytes: &[u8]) {
    h.feed((bytes.len() as u64).to_be_bytes());
    h.feed(bytes);
}

fn put_opt(h: &mut impl Sink, bytes: Option<&[u8]>) {
    match bytes {
        None => h.feed([0]),
        Some(b) => {
            h.feed([1]);
            put(h, b);
        }
    }
}

/// The hash of everything an activity says, in a fixed field order with length prefixes, the
/// details as JSON with sorted keys. The store's own bookkeeping (`seq`, change numbers,
/// search columns) is not content.
pub fn content_sha256(a: &StoredActivity) -> Hash {
    content_sha256_with(a, None)
}

/// [`content_sha256`] for a writer that has the details' compact JSON (`serde_json`'s) in
/// hand already: where maps keep their keys sorted, those are the canonical bytes.
pub fn content_sha256_rendered(a: &StoredActivity, details_json: &str) -> Hash {
    content_sha256_with(a, Some(details_json))
}

/// Whether `serde_json`'s maps keep their keys in sorted order (its default; not with its
/// `preserve_order` feature, which any crate in the build could turn on). Then their compact
/// JSON is the canonical form, at every level.
fn maps_sorted() -> bool {
    static SORTED: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), serde_json::Value::Null);
        m.insert("a".into(), serde_json::Value::Null);
        m.keys().next().map(String::as_str) == Some("a")
    });
    *SORTED
}

fn content_sha256_with(a: &StoredActivity, details_json: Option<&str>) -> Hash {
    let mut h: Vec<u8> = Vec::with_capacity(512 + a.description.len());
    put(&mut h, b"sitetrail-activity-v1");
    put(&mut h, a.id.as_str().as_bytes());
    put(&mut h, a.account_id.as_str().as_bytes());
    put(&mut h, a.site_id.as_str().as_bytes());
    put(&mut h, a.environment.as_str().as_bytes());
    put(&mut h, a.service.as_str().as_bytes());
    put(&mut h, a.activity.as_str().as_bytes());
    put(&mut h, a.status.as_str().as_bytes());
    put(&mut h, a.actor.kind.as_str().as_bytes());
    put_opt(
        &mut h,
        a.actor.email.as_ref().map(|e| e.expose().as_bytes()),
    );
    put_opt(&mut h, a.actor.name.as_deref().map(str::as_bytes));
    put(&mut h, a.description.as_bytes());
    put_opt(&mut h, a.error.as_deref().map(str::as_bytes));
    // The details' length goes before them: written as a placeholder, filled in after.
    let at = h.len();
    h.feed(0u64.to_be_bytes());
    match details_json {
        Some(json) if maps_sorted() => h.extend_from_slice(json.as_bytes()),
        _ => canonical_object(&a.details, &mut h),
    }
    let len = (h.len() - at - 8) as u64;
    h[at..at + 8].copy_from_slice(&len.to_be_bytes());
    h.feed(a.created_at.millis().to_be_bytes());
    put_opt(
        &mut h,
        a.completed_at
            .map(|t| t.millis().to_be_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    Sha256::digest(&h).into()
}

/// JSON with object keys sorted at every level, whatever order the map kept them in.
/// Written straight into `out`: these bytes are what stored content hashes were made from.
fn canonical_json(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(map) => canonical_object(map, out),
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing into memory"),
    }
}

fn canonical_object(map: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<u8>) {
    if maps_sorted() {
        serde_json::to_writer(&mut *out, map).expect("writing into memory");
    } else {
        canonical_object_by_sorting(map, out);
    }
}

/// [`canonical_object`] for maps that keep their keys in another order.
fn canonical_object_by_sorting(
    map: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<u8>,
) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k).expect("writing into memory");
        out.push(b':');
        canonical_json(&map[k], out);
    }
    out.push(b'}');
}

/// The hash of link `link_no` of `account`'s chain.
pub fn link_sha256(
    prev: &Hash,
    account: &str,
    link_no: i64,
    activity_id: &str,
    content: &Hash,
) -> Hash {
    let mut h = Sha256::new();
    put(&mut h, b"sitetrail-link-v1");
    h.update(prev);
    put(&mut h, account.as_bytes());
    h.update(link_no.to_be_bytes());
    put(&mut h, activity_id.as_bytes());
    h.update(content);
    h.finalize().into()
}

/// A hash as a column holds it.
pub fn decode_hash(bytes: &[u8]) -> anyhow::Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a chain hash of {} bytes, not 32", bytes.len()))
}

/// A chain head as its row holds it.
pub fn decode_head((link_no, hash): (i64, Vec<u8>)) -> anyhow::Result<(i64, Hash)> {
    Ok((link_no, decode_hash(&hash)?))
}

/// One link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub account_id: String,
    pub link_no: i64,
    pub activity_id: String,
    pub content_sha256: Hash,
    pub link_sha256: Hash,
}

/// The chains a write group moves: the heads it has read, and the links it appends, in order.
#[derive(Default)]
pub struct Chains {
    heads: HashMap<String, (i64, Hash)>,
    pub links: Vec<Link>,
}

impl Chains {
    /// The head as the database holds it (`None`: the account has no chain yet).
    pub fn load_head(&mut self, account: &str, head: Option<(i64, Hash)>) {
        self.heads
            .entry(account.to_owned())
            .or_insert(head.unwrap_or((0, GENESIS)));
    }

    /// Appends the link for a write that left `a` as it is. The head must have been loaded.
    pub fn append(&mut self, a: &StoredActivity) {
        self.append_hashed(a, content_sha256(a));
    }

    /// [`Chains::append`] with the content's hash already computed.
    pub fn append_hashed(&mut self, a: &StoredActivity, content: Hash) {
        let account = a.account_id.as_str();
        let (no, prev) = *self
            .heads
            .get(account)
            .expect("the writer loads an account's chain head before appending");
        let link_no = no + 1;
        let hash = link_sha256(&prev, account, link_no, a.id.as_str(), &content);
        self.heads.insert(account.to_owned(), (link_no, hash));
        self.links.push(Link {
            account_id: account.to_owned(),
            link_no,
            activity_id: a.id.as_str().to_owned(),
            content_sha256: content,
            link_sha256: hash,
        });
    }

    /// The heads the group moved, to write back.
    pub fn moved_heads(&self) -> Vec<(String, i64, Hash)> {
        let mut last: HashMap<&str, &Link> = HashMap::new();
        for l in &self.links {
            last.insert(&l.account_id, l);
        }
        last.into_values()
            .map(|l| (l.account_id.clone(), l.link_no, l.link_sha256))
            .collect()
    }
}

/// The server's checkpoint key: an Ed25519 key made on first start in the data dir.
#[derive(Clone)]
pub struct CheckpointKey(SigningKey);

impl CheckpointKey {
    pub const FILE: &'static str = "checkpoint.key";

    /// Reads `dir/checkpoint.key` if it exists.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        if !dir.join(Self::FILE).exists() {
            return Ok(None);
        }
        Self::load_or_create(dir).map(Some)
    }

    /// Reads `dir/checkpoint.key`, making it (mode 0600) when it does not exist.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(Self::FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!("{} is not a 32-byte Ed25519 seed", path.display())
                })?;
                Ok(CheckpointKey(SigningKey::from_bytes(&seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("{e}"))?;
                crate::private::create_dir(dir)?;
                crate::private::write_new(&path, &seed)?;
                Ok(CheckpointKey(SigningKey::from_bytes(&seed)))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    pub fn sign(&self, cp: &CheckpointBody) -> [u8; 64] {
        self.0.sign(&cp.message()).to_bytes()
    }
}

/// What a checkpoint states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    pub account_id: String,
    pub link_no: i64,
    pub link_sha256: Hash,
    pub made_at: Timestamp,
}

/// The chains whose head is past their last checkpoint, as `(account_id, link_no,
/// link_sha256)` in account order: the same SQL on both backends.
pub const HEADS_PAST_THEIR_CHECKPOINT: &str = "SELECT h.account_id, h.link_no, h.link_sha256 FROM chain_heads h \
     WHERE h.link_no > COALESCE((SELECT MAX(c.link_no) FROM chain_checkpoints c \
     WHERE c.account_id = h.account_id), 0) ORDER BY h.account_id";

impl CheckpointBody {
    /// The checkpoint of a head as [`HEADS_PAST_THEIR_CHECKPOINT`] reads it.
    pub fn of_head(
        (account_id, link_no, hash): (String, i64, Vec<u8>),
        made_at: Timestamp,
    ) -> anyhow::Result<Self> {
        let (link_no, link_sha256) = decode_head((link_no, hash))?;
        Ok(CheckpointBody {
            account_id,
            link_no,
            link_sha256,
            made_at,
        })
    }

    fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(b"sitetrail-checkpoint-v1\n");
        m.extend_from_slice(self.account_id.as_bytes());
        m.push(b'\n');
        m.extend_from_slice(&self.link_no.to_be_bytes());
        m.extend_from_slice(&self.link_sha256);
        m.extend_from_slice(&self.made_at.millis().to_be_bytes());
        m
    }
}

/// A stored checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub body: CheckpointBody,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Checkpoint {
    pub fn signed_by(&self, trusted: &[[u8; 32]]) -> Result<(), &'static str> {
        let key: [u8; 32] = self
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| "its public key is malformed")?;
        if !trusted.contains(&key) {
            return Err("it is signed by a key this server does not trust");
        }
        let signature: [u8; 64] = self
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| "its signature is malformed")?;
        VerifyingKey::from_bytes(&key)
            .map_err(|_| "its public key is malformed")?
            .verify_strict(&self.body.message(), &Signature::from_bytes(&signature))
            .map_err(|_| "its signature does not match what it states")
    }
}

/// A checkpoint's row: (link_no, link_sha256, made_at, public_key, signature).
pub type CheckpointRow = (i64, Vec<u8>, i64, Vec<u8>, Vec<u8>);

/// A checkpoint as its row holds it.
pub fn stored_checkpoint(
    account: &str,
    (link_no, hash, made_at, public_key, signature): CheckpointRow,
) -> anyhow::Result<Checkpoint> {
    Ok(Checkpoint {
        body: CheckpointBody {
            account_id: account.to_owned(),
            link_no,
            link_sha256: decode_hash(&hash)?,
            made_at: Timestamp::from_millis(made_at)
                .ok_or_else(|| anyhow::anyhow!("a checkpoint made at {made_at} ms"))?,
        },
        public_key,
        signature,
    })
}

/// What a prune activity's details hold about what it removed.
pub const PRUNED_SHA256: &str = "pruned_sha256";

/// The digest a prune seals: every removed id with its last content hash, sorted by id.
pub fn prune_digest(removed: &mut [(String, Hash)]) -> String {
    removed.sort();
    let mut h = Sha256::new();
    put(&mut h, b"sitetrail-prune-v1");
    for (id, content) in removed.iter() {
        put(&mut h, id.as_bytes());
        h.update(content);
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn canonical(v: &serde_json::Value) -> String {
        let mut out = Vec::new();
        canonical_json(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[{"z":1,"y":2}],"c":"x"}}"#).unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#
        );
        let odd: serde_json::Value =
            serde_json::from_str(r#"{"\u00e9\n\"":-1.5e300,"":[null,true,"\u0001"]}"#).unwrap();
        assert_eq!(
            canonical(&odd),
            r#"{"":[null,true,"\u0001"],"é\n\"":-1.5e+300}"#
        );
    }

    /// The first way canonical JSON was written, one string per key and scalar: every stored
    /// content hash was made from its bytes, so the written one must never differ from it.
    fn canonical_as_first_written(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical_as_first_written(&map[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical_as_first_written(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_json_writes_the_bytes_it_always_wrote(v in json_value()) {
            let mut first = String::new();
            canonical_as_first_written(&v, &mut first);
            prop_assert_eq!(canonical(&v), first.clone());
            // The path for maps kept in another order writes the same bytes.
            if let serde_json::Value::Object(map) = &v {
                let mut sorted = Vec::new();
                canonical_object_by_sorting(map, &mut sorted);
                prop_assert_eq!(String::from_utf8(sorted).unwrap(), first);
            }
        }

        /// The writer hashes the details' JSON it stores; the hash is the one verification
        /// computes from the stored activity.
        #[test]
        fn the_content_hash_of_the_stored_json_is_the_canonical_one(v in json_value()) {
            let mut a = sample_activity();
            if let serde_json::Value::Object(map) = v {
                a.details = map;
            }
            let json = serde_json::to_string(&a.details).unwrap();
            prop_assert_eq!(content_sha256_rendered(&a, &json), content_sha256(&a));
        }
    }

    /// `serde_json`'s maps keep their keys sorted in this build, so a group's details are
    /// serialized once (a dependency turning on `preserve_order` would cost ingest a copy
    /// per activity, not correctness).
    #[test]
    fn json_maps_keep_their_keys_sorted() {
        assert!(maps_sorted());
    }

    fn sample_activity() -> StoredActivity {
        use sitetrail_core::{
            AccountId, ActivityId, ActivityKind, Actor, Environment, Service, SiteId, Status,
        };
        StoredActivity {
            seq: 1,
            id: ActivityId::parse("act_1").unwrap(),
            account_id: AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: Environment::Live,
            service: Service::Staging,
            activity: ActivityKind::PushStagingToLive,
            status: Status::InProgress,
            actor: Actor::system(),
            description: "Pushing".into(),
            error: None,
            details: serde_json::Map::new(),
            created_at: Timestamp::from_millis(1_700_000_000_000).unwrap(),
            completed_at: None,
        }
    }

    /// Every stored link was made from these hashes: a change to how they are computed must
    /// not change a single one.
    #[test]
    fn content_and_link_hashes_are_the_ones_always_made() {
        use sitetrail_core::{
            AccountId, ActivityId, ActivityKind, Actor, ActorKind, Email, Environment, Service,
            SiteId, Status,
        };
        let details = serde_json::json!({"z": [1, "two", null], "a": {"y": 1.5, "b": true}});
        let mut a = StoredActivity {
            seq: 7,
            id: ActivityId::parse("act_1").unwrap(),
            account_id: AccountId::parse("acme").unwrap(),
            site_id: SiteId::parse("shop").unwrap(),
            environment: Environment::Staging,
            service: Service::Staging,
            activity: ActivityKind::PushStagingToLive,
            status: Status::Completed,
            actor: Actor::person(
                ActorKind::Support,
                Email::parse("sam@partner.example").unwrap(),
                Some("Sam".into()),
            ),
            description: "Pushed by {actor}".into(),
            error: None,
            details: details.as_object().unwrap().clone(),
            created_at: Timestamp::from_millis(1_700_000_000_000).unwrap(),
            completed_at: Some(Timestamp::from_millis(1_700_000_004_000).unwrap()),
        };
        let content = content_sha256(&a);
        assert_eq!(
            hex(&content),
            "979ba1a544d66b28a853943f9a0cf764f962e7b8e3b11acd69f4312636b4a023"
        );
        let link = link_sha256(&[3; 32], "acme", 42, "act_1", &content);
        assert_eq!(
            hex(&link),
            "e02546bbc7dc25c06c56993b6154531a6a3ffeec56dcd0df3e4adec7a979f068"
        );
        a.actor = Actor::system();
        a.error = Some("failed".into());
        a.completed_at = None;
        assert_eq!(
            hex(&content_sha256(&a)),
            "4ad06a3bbc9d17e9819ed65d8267ed06e3b8c124369aedafdfa0f1f1e672b0c3"
        );
    }

    #[test]
    fn a_prune_digest_does_not_depend_on_order() {
        let mut one = vec![("b".to_owned(), [1; 32]), ("a".to_owned(), [2; 32])];
        let mut two = vec![("a".to_owned(), [2; 32]), ("b".to_owned(), [1; 32])];
        assert_eq!(prune_digest(&mut one), prune_digest(&mut two));
        let mut three = vec![("a".to_owned(), [2; 32])];
        assert_ne!(prune_digest(&mut one), prune_digest(&mut three));
    }

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_its_statement() {
        let dir = tempfile::tempdir().unwrap();
        let key = CheckpointKey::load_or_create(dir.path()).unwrap();
        let again = CheckpointKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public_key(), again.public_key(), "the key is kept");
        let body = CheckpointBody {
            account_id: "acme".into(),
            link_no: 7,
            link_sha256: [9; 32],
            made_at: Timestamp::from_millis(1_700_000_000_000).unwrap(),
        };
        let cp = Checkpoint {
            signature: key.sign(&body).to_vec(),
            public_key: key.public_key().to_vec(),
            body: body.clone(),
        };
        assert!(cp.signed_by(&[key.public_key()]).is_ok());
        assert!(cp.signed_by(&[[3; 32]]).is_err(), "an untrusted key");
        let mut moved = cp.clone();
        moved.body.link_no = 8;
        assert!(moved.signed_by(&[key.public_key()]).is_err());
        let other = CheckpointKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let forged = Checkpoint {
            signature: other.sign(&body).to_vec(),
            public_key: key.public_key().to_vec(),
            body,
        };
        assert!(forged.signed_by(&[key.public_key()]).is_err());
    }
}
