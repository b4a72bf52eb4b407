//! Any bytes as a `wp-config.php`: reading it never panics; what is read has a valid table
//! prefix; reading the file from a docroot agrees with parsing its text, except that reading
//! may refuse a SQLite location outside the docroot, and then says so with a refusal.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sitetrail_staging::confined::Refusal;
use sitetrail_staging::wpconfig::{self, DbHost};

/// One docroot per fuzzing process, with the SQLite drop-in so that `DB_DIR`/`DB_FILE` are
/// read too.
fn docroot() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("sitetrail-fuzz-wpconfig-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("wp-content")).expect("a scratch docroot");
        std::fs::write(dir.join("wp-content/db.php"), "<?php\n").expect("the drop-in");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = wpconfig::parse(&text);
    if let Ok(c) = &parsed {
        assert!(
            !c.prefix.is_empty()
                && c.prefix.len() <= 32
                && c.prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "prefix {:?}",
            c.prefix
        );
        if let DbHost::Tcp { host, .. } = &c.host {
            assert!(!host.is_empty(), "an empty host");
        }
    }
    let _ = wpconfig::parse_db_host(&text);

    let dir = docroot();
    std::fs::write(dir.join("wp-config.php"), text.as_bytes()).expect("writing wp-config.php");
    match (wpconfig::read(dir), &parsed) {
        (Ok(read), Ok(parsed)) => {
            assert_eq!(
                (
                    &read.name,
                    &read.user,
                    &read.password,
                    &read.host,
                    &read.prefix
                ),
                (
                    &parsed.name,
                    &parsed.user,
                    &parsed.password,
                    &parsed.host,
                    &parsed.prefix
                ),
                "read and parse disagree"
            );
            assert!(read.sqlite_file.is_some(), "the drop-in was not seen");
        }
        (Err(e), Ok(_)) if e.downcast_ref::<Refusal>().is_some() => {}
        (Err(_), Err(_)) => {}
        (read, parsed) => panic!("read {:?} but parse {:?}", read.is_ok(), parsed.is_ok()),
    }
});
