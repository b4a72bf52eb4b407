//! Any text as a cursor or as a list query string: decoding never panics; what decodes
//! encodes back to the same position; every position the server gives out decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetrail_core::{ActivityFilter, Audience, Cursor, Direction, Page, RawQuery, Timestamp};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Cursor::decode(text) {
            assert!(c.seq >= 0, "a negative seq decoded");
            let again = c.encode();
            assert!(again.len() <= 64, "an encoded cursor is too long to decode");
            assert_eq!(Cursor::decode(&again), Ok(c), "decode(encode(c)) != c");
        }
        // The same text as the query string of a list request.
        if let Ok(raw) = serde_urlencoded::from_str::<RawQuery>(text) {
            for audience in [Audience::Client, Audience::Internal] {
                if let Ok(f) = ActivityFilter::parse(&raw, audience)
                    && let (Some(from), Some(to)) = (f.from, f.to)
                {
                    assert!(from <= to, "a filter with to before from parsed");
                }
            }
            if let Ok(page) = Page::parse(&raw) {
                assert!((1..=200).contains(&page.limit), "limit {}", page.limit);
            }
        }
    }
    // Any position: its cursor decodes to it.
    if let Some(bytes) = data.get(..17) {
        let ms = i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let seq = i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) & i64::MAX;
        if let Some(created_at) = Timestamp::from_millis(ms.rem_euclid(253_402_300_800_000)) {
            let direction = if bytes[16] & 1 == 0 {
                Direction::Older
            } else {
                Direction::Newer
            };
            let c = Cursor {
                created_at,
                seq,
                direction,
            };
            assert_eq!(Cursor::decode(&c.encode()), Ok(c), "{c:?}");
        }
    }
});
