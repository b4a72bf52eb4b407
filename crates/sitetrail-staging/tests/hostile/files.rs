//! Hostile tenants, files: a site's owner controls every byte of its docroot and aims it at
//! another tenant's files (links, races while sitetrail reads).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every regular file under `root` (links not followed) that holds `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    if !root.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            std::fs::read(e.path())
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
        .map(|e| e.path().to_owned())
        .collect()
}

/// A racer swaps every file of a tree for a link to a secret outside it and back, as fast as
/// it can, while `read` runs 20 times; `leaked` says whether a result holds the secret.
fn race(read: impl Fn(&Path, usize), leaked: impl Fn(&Path, usize) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token-signing.key");
    std::fs::write(&secret, b"SECRET-SIGNING-KEY-0123456789").unwrap();
    let uploads = dir.path().join("site/wp-content/uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    const FILES: usize = 16;
    for i in 0..FILES {
        std::fs::write(uploads.join(format!("photo-{i}.jpg")), format!("photo {i}")).unwrap();
    }
    for i in 0..FILES {
        std::os::unix::fs::symlink(&secret, uploads.join(format!(".link-{i}"))).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, uploads) = (stop.clone(), uploads.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..FILES {
                    // One step each way: the photo and the link trade names.
                    let name = uploads.join(format!("photo-{i}.jpg"));
                    let link = uploads.join(format!(".link-{i}"));
                    if sitetrail_staging::tree::exchange(&name, &link).is_ok() {
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let mut leaks = Vec::new();
    for round in 0..20 {
        read(dir.path(), round);
        if leaked(dir.path(), round) {
            leaks.push(round);
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(racer.join().unwrap() > 0, "the racer ran");
    assert_eq!(leaks, Vec::<usize>::new(), "rounds that leaked the secret");
}

#[test]
fn copying_a_tree_while_files_are_swapped_for_links_never_copies_what_they_point_at() {
    race(
        |root, round| {
            let dst = root.join(format!("copy-{round}"));
            // A copy may fail when a name vanishes mid-swap; it must never leak.
            let _ = sitetrail_staging::tree::copy_tree(&root.join("site"), &dst, &|_| {});
        },
        |root, round| {
            !files_holding(&root.join(format!("copy-{round}")), b"SECRET-SIGNING-KEY").is_empty()
        },
    );
}

#[test]
fn packing_a_tree_while_files_are_swapped_for_links_never_packs_what_they_point_at() {
    race(
        |root, round| {
            let out = root.join(format!("pack-{round}.tar"));
            let _ = sitetrail_staging::tree::pack(&root.join("site"), &out);
        },
        |root, round| {
            let out = root.join(format!("pack-{round}.tar"));
            out.exists()
                && std::fs::read(&out)
                    .unwrap()
                    .windows(b"SECRET-SIGNING-KEY".len())
                    .any(|w| w == b"SECRET-SIGNING-KEY")
        },
    );
}
