//! One operation per site at a time, across processes: an exclusive `flock` on a file per
//! site in the data dir. The file names the activity that holds it, so a refusal can say
//! what is running and recovery can find what a crash interrupted. The kernel releases the
//! lock when its holder dies.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use sitetrail_core::{ActivityId, SiteId};

pub struct SiteLock {
    file: File,
    path: PathBuf,
}

pub fn lock_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("locks")
}

fn open(data_dir: &Path, site: &SiteId) -> anyhow::Result<(File, PathBuf)> {
    let dir = lock_dir(data_dir);
    sitetrail_store::private::create_dir(&dir)?;
    let path = dir.join(format!("{site}.lock"));
    let file = sitetrail_store::private::open(
        &path,
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )?;
    Ok((file, path))
}

/// Takes a site's lock for an activity, or says which activity holds it.
pub fn try_lock(
    data_dir: &Path,
    site: &SiteId,
    holder: &ActivityId,
) -> anyhow::Result<Result<SiteLock, Option<ActivityId>>> {
    let (mut file, path) = open(data_dir, site)?;
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Ok(Err(ActivityId::parse(text.trim()).ok()));
    }
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(holder.as_str().as_bytes())?;
    file.sync_all()?;
    Ok(Ok(SiteLock { file, path }))
}

/// Takes a site's lock, trying again for up to `wait` while another holds it. For a holder
/// known to have ended: its activity's end is recorded before its lock is let go, so the
/// lock may still be held for the moment between the two.
pub async fn try_lock_within(
    data_dir: &Path,
    site: &SiteId,
    holder: &ActivityId,
    wait: Duration,
) -> anyhow::Result<Result<SiteLock, Option<ActivityId>>> {
    let deadline = Instant::now() + wait;
    loop {
        let (d, s, h) = (data_dir.to_owned(), site.clone(), holder.clone());
        match crate::blocking(move || try_lock(&d, &s, &h)).await? {
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done => return Ok(done),
        }
    }
}

/// A lock left by a process that died: the activity it names, if the lock is free now.
pub fn abandoned(
    data_dir: &Path,
    site: &SiteId,
) -> anyhow::Result<Option<(SiteLock, Option<ActivityId>)>> {
    let (mut file, path) = open(data_dir, site)?;
    if rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(None);
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(Some((
        SiteLock { file, path },
        ActivityId::parse(text.trim()).ok(),
    )))
}

impl SiteLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SiteLock {
    fn drop(&mut self) {
        // Clear the holder before unlocking, so that a free lock names nobody.
        let _ = self.file.set_len(0);
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let site = SiteId::parse("shop").unwrap();
        let a = ActivityId::parse("a1").unwrap();
        let b = ActivityId::parse("b2").unwrap();
        let held = try_lock(dir.path(), &site, &a).unwrap().ok().unwrap();
        assert_eq!(
            try_lock(dir.path(), &site, &b).unwrap().err(),
            Some(Some(a.clone()))
        );
        assert!(
            abandoned(dir.path(), &site).unwrap().is_none(),
            "held, not abandoned"
        );
        drop(held);
        let (_again, holder) = abandoned(dir.path(), &site).unwrap().unwrap();
        assert_eq!(holder, None, "a released lock names nobody");
    }

    #[tokio::test]
    async fn a_lock_let_go_within_the_wait_is_taken_and_one_held_longer_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let site = SiteId::parse("shop").unwrap();
        let a = ActivityId::parse("a1").unwrap();
        let b = ActivityId::parse("b2").unwrap();
        let held = try_lock(dir.path(), &site, &a).unwrap().ok().unwrap();
        let wait = Duration::from_millis(100);
        assert_eq!(
            try_lock_within(dir.path(), &site, &b, wait)
                .await
                .unwrap()
                .err(),
            Some(Some(a.clone())),
            "held through the whole wait"
        );
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        });
        let taken = try_lock_within(dir.path(), &site, &b, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(taken.is_ok(), "let go after 50 ms, taken within the wait");
        release.await.unwrap();
    }
}
