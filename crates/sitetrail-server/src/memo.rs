//! A bounded memory of recent things by key, forgotten after a while: what the Access Log
//! uses to count a repeated look once, and what one-time form tokens use to recognise a form
//! sent twice.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

pub struct Memo<V> {
    ttl: Duration,
    cap: usize,
    at: HashMap<u64, (Instant, V)>,
}

impl<V> Memo<V> {
    /// Remembers up to `cap` keys for `ttl` each; past `cap`, the expired ones are forgotten
    /// (and, if that is not enough, all: a repeat then counts as new, never the reverse).
    pub fn new(ttl: Duration, cap: usize) -> Self {
        Memo {
            ttl,
            cap,
            at: HashMap::new(),
        }
    }

    /// What `key` holds, if it was noted less than the memo's lifetime ago.
    pub fn get(&self, key: u64, now: Instant) -> Option<&V> {
        self.at
            .get(&key)
            .filter(|(t, _)| now.duration_since(*t) < self.ttl)
            .map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: u64, value: V, now: Instant) {
        if self.at.len() >= self.cap && !self.at.contains_key(&key) {
            let ttl = self.ttl;
            self.at.retain(|_, (t, _)| now.duration_since(*t) < ttl);
            if self.at.len() >= self.cap {
                self.at.clear();
            }
        }
        self.at.insert(key, (now, value));
    }
}

/// A key made of the parts given, for a [`Memo`] (in memory only, never stored).
pub fn key(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_forgets_after_its_lifetime_and_stays_within_its_cap() {
        let start = Instant::now();
        let mut memo = Memo::new(Duration::from_secs(60), 2);
        memo.insert(key(&["a"]), 1, start);
        assert_eq!(
            memo.get(key(&["a"]), start + Duration::from_secs(59)),
            Some(&1)
        );
        assert_eq!(memo.get(key(&["a"]), start + Duration::from_secs(60)), None);
        assert_eq!(memo.get(key(&["b"]), start), None);
        memo.insert(key(&["b"]), 2, start);
        memo.insert(key(&["c"]), 3, start + Duration::from_secs(61));
        assert!(memo.at.len() <= 2);
        assert_eq!(
            memo.get(key(&["c"]), start + Duration::from_secs(61)),
            Some(&3)
        );
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
    }
}
