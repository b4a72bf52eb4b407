//! Publisher API keys: `stk_<id>_<secret>`. Shown once; the store keeps the SHA-256 of the
//! secret and compares in constant time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A newly made key. Its `Debug` hides the secret.
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub secret: String,
}

impl ApiKey {
    pub fn generate(name: &str) -> anyhow::Result<Self> {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(ApiKey {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            name: name.to_owned(),
            secret: URL_SAFE_NO_PAD.encode(secret),
        })
    }

    /// The whole key, as the publisher sends it.
    pub fn token(&self) -> String {
        format!("stk_{}_{}", self.id, self.secret)
    }

    pub fn secret_sha256(&self) -> Vec<u8> {
        Sha256::digest(self.secret.as_bytes()).to_vec()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Valid { id: String, name: String },
    Invalid,
}

/// Splits a presented key into its id and secret.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("stk_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == 12
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && !secret.is_empty()
        && secret.len() <= 64;
    ok.then_some((id, secret))
}

pub fn secret_matches(secret: &str, stored_sha256: &[u8]) -> bool {
    let presented = Sha256::digest(secret.as_bytes());
    presented[..].ct_eq(stored_sha256).into()
}

/// The answer for a presented secret, given the key stored under its id (if any).
pub fn check(id: &str, secret: &str, stored: Option<&StoredKey>) -> KeyCheck {
    match stored {
        Some(k) if secret_matches(secret, &k.secret_sha256) => KeyCheck::Valid {
            id: id.to_owned(),
            name: k.name.clone(),
        },
        _ => KeyCheck::Invalid,
    }
}

/// A key as the store keeps it.
#[derive(Clone)]
pub struct StoredKey {
    pub name: String,
    pub secret_sha256: Vec<u8>,
}

/// Keys found recently, so that a publisher's every request does not cost a query. Only
/// keys that exist are kept (a flood of made-up ids still reaches the database), each for
/// [`KeyCache::TTL`], which bounds how long a key removed from the database would still work.
#[derive(Default)]
pub struct KeyCache {
    found: Mutex<HashMap<String, (StoredKey, Instant)>>,
}

impl KeyCache {
    const TTL: Duration = Duration::from_secs(60);
    const MAX: usize = 10_000;

    pub fn get(&self, id: &str) -> Option<StoredKey> {
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found
            .get(id)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(k, _)| k.clone())
    }

    pub fn put(&self, id: &str, key: StoredKey) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if found.len() >= Self::MAX {
            found.clear();
        }
        found.insert(id.to_owned(), (key, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_splits_and_matches_its_hash() {
        let key = ApiKey::generate("billing").unwrap();
        let token = key.token();
        let (id, secret) = split(&token).unwrap();
        assert_eq!(id, key.id);
        assert!(secret_matches(secret, &key.secret_sha256()));
        assert!(!secret_matches("guess", &key.secret_sha256()));
        assert!(!format!("{key:?}").contains(&key.secret));
    }

    #[test]
    fn a_cached_key_still_needs_its_secret() {
        let key = ApiKey::generate("billing").unwrap();
        let cache = KeyCache::default();
        assert!(cache.get(&key.id).is_none());
        cache.put(
            &key.id,
            StoredKey {
                name: key.name.clone(),
                secret_sha256: key.secret_sha256(),
            },
        );
        let stored = cache.get(&key.id);
        assert!(matches!(
            check(&key.id, &key.secret, stored.as_ref()),
            KeyCheck::Valid { .. }
        ));
        assert_eq!(check(&key.id, "guess", stored.as_ref()), KeyCheck::Invalid);
        assert_eq!(check(&key.id, &key.secret, None), KeyCheck::Invalid);
    }

    #[test]
    fn malformed_keys_do_not_split() {
        for bad in ["", "stk_", "stk_abc_def", "Bearer x", "stk_zzzzzzzzzzzz_x"] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }
}
