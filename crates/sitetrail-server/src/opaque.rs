//! Numbers a viewer is handed but must not read: live-stream event ids, the position a page
//! opens its stream at, list cursors and masked activity ids. Each is one AES block under a
//! key derived from the token signing key (servers sharing a database share it), holding the
//! number, what the token is for, and a check: a client learns nothing from it, neither the
//! global change numbers nor the insertion order that other tenants' writes move.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::{Aes128, Block};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sitetrail_core::{ActivityId, Cursor, Direction, IdMask, StoredActivity, Timestamp};

/// A block's last byte: which kind of number it holds. A block of one kind never opens as
/// another.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Event = b'e',
    CursorOlder = b'o',
    CursorNewer = b'n',
    Activity = b'i',
}

/// The byte before the kind: a constant, so that a random string rarely opens at all.
const CHECK: u8 = 0xA7;

#[derive(Clone)]
pub struct Opaque {
    cipher: Aes128,
}

impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opaque(<key>)")
    }
}

impl Opaque {
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"sitetrail opaque numbers v1\0");
        h.update(secret);
        let key = h.finalize();
        Opaque {
            cipher: Aes128::new_from_slice(&key[..16]).expect("16 bytes make an AES-128 key"),
        }
    }

    /// `first` (8 bytes), `second` (48 bits), CHECK, the kind.
    fn seal(&self, kind: Kind, first: i64, second: i64) -> String {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&first.to_be_bytes());
        block[8..14].copy_from_slice(&second.to_be_bytes()[2..]);
        block[14] = CHECK;
        block[15] = kind as u8;
        let mut b = Block::from(block);
        self.cipher.encrypt_block(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }

    fn open(&self, s: &str) -> Option<(Kind, i64, i64)> {
        if s.len() != 22 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let block: [u8; 16] = bytes.try_into().ok()?;
        let mut b = Block::from(block);
        self.cipher.decrypt_block(&mut b);
        if b[14] != CHECK {
            return None;
        }
        let kind = match b[15] {
            b'e' => Kind::Event,
            b'o' => Kind::CursorOlder,
            b'n' => Kind::CursorNewer,
            b'i' => Kind::Activity,
            _ => return None,
        };
        let first = i64::from_be_bytes(b[..8].try_into().ok()?);
        let mut second = [0u8; 8];
        second[2..].copy_from_slice(&b[8..14]);
        Some((kind, first, i64::from_be_bytes(second)))
    }

    /// A live-stream event id for a change number.
    pub fn event_id(&self, change_no: i64) -> String {
        self.seal(Kind::Event, change_no, 0)
    }

    pub fn open_event_id(&self, s: &str) -> Option<i64> {
        match self.open(s)? {
            (Kind::Event, n, 0) if n >= 0 => Some(n),
            _ => None,
        }
    }

    pub fn cursor(&self, c: &Cursor) -> String {
        let kind = match c.direction {
            Direction::Older => Kind::CursorOlder,
            Direction::Newer => Kind::CursorNewer,
        };
        self.seal(kind, c.seq, c.created_at.millis())
    }

    pub fn open_cursor(&self, s: &str) -> Option<Cursor> {
        let (kind, seq, ms) = self.open(s)?;
        let direction = match kind {
            Kind::CursorOlder => Direction::Older,
            Kind::CursorNewer => Direction::Newer,
            _ => return None,
        };
        Some(Cursor {
            created_at: Timestamp::from_millis(ms)?,
            seq: (seq >= 0).then_some(seq)?,
            direction,
        })
    }

    /// Where a masked activity id points: its creation time and insertion number.
    pub fn open_activity_id(&self, s: &str) -> Option<(Timestamp, i64)> {
        match self.open(s)? {
            (Kind::Activity, seq, ms) if seq >= 0 => Some((Timestamp::from_millis(ms)?, seq)),
            _ => None,
        }
    }
}

impl IdMask for Opaque {
    fn mask(&self, a: &StoredActivity) -> ActivityId {
        ActivityId::parse(&self.seal(Kind::Activity, a.seq, a.created_at.millis()))
            .expect("URL-safe base64 of one block is an activity id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_tell_nothing() {
        let o = Opaque::from_secret(&[7; 32]);
        let id = o.event_id(41);
        assert_eq!(o.open_event_id(&id), Some(41));
        assert_ne!(o.event_id(41), o.event_id(42));
        assert!(id.parse::<i64>().is_err() && !id.contains("41"));
        let c = Cursor {
            created_at: Timestamp::from_millis(1_764_000_000_123).unwrap(),
            seq: 9_000_000_001,
            direction: Direction::Newer,
        };
        assert_eq!(o.open_cursor(&o.cursor(&c)), Some(c));
        // One kind never opens as another, nor under another key.
        assert_eq!(o.open_cursor(&id), None);
        assert_eq!(o.open_event_id(&o.cursor(&c)), None);
        assert_eq!(Opaque::from_secret(&[8; 32]).open_event_id(&id), None);
        for bad in [
            "",
            "0",
            "yesterday",
            "AAAAAAAAAAAAAAAAAAAAAA",
            &"a".repeat(100),
        ] {
            assert_eq!(o.open_event_id(bad), None, "{bad}");
            assert_eq!(o.open_cursor(bad), None, "{bad}");
        }
    }
}
