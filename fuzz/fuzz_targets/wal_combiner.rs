//! Any sequence of writes and write-outs through the WAL-combining VFS's combiner leaves the
//! file exactly as the same writes made one by one would, and never takes more writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sitetrail_store::wal_vfs::{Step, check_against_plain_writes};

fuzz_target!(|data: &[u8]| {
    let Some((limit, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*limit)).max(1);
    let steps: Vec<Step> = rest
        .chunks_exact(5)
        .map(|c| {
            if c[0] == 0xff {
                Step::Flush
            } else {
                Step::Write {
                    offset: u16::from_le_bytes([c[0], c[1]]),
                    len: u16::from_le_bytes([c[2], c[3]]) % 8192,
                    byte: c[4],
                }
            }
        })
        .collect();
    check_against_plain_writes(limit, &steps);
});
