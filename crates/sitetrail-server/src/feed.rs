//! The change feed: every committed write to an activity, in `change_no` order, whichever
//! process or server wrote it. Woken at once by this process's commits and, on PostgreSQL,
//! by every server's (LISTEN/NOTIFY, through [`sitetrail_store::Store::subscribe_commits`]);
//! it also polls, so a missed wake only delays a change, never loses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sitetrail_store::{Change, DynStore};
use tokio::sync::broadcast;

const POLL: Duration = Duration::from_millis(500);
const BATCH: u32 = 500;

#[derive(Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<Change>>,
    head: Arc<AtomicI64>,
}

impl ChangeFeed {
    pub async fn start(store: DynStore) -> anyhow::Result<Self> {
        let head = Arc::new(AtomicI64::new(store.last_change_no().await?));
        let (tx, _) = broadcast::channel(4096);
        let feed = ChangeFeed { tx, head };
        tokio::spawn(feed.clone().run(store));
        Ok(feed)
    }

    /// The last change delivered to subscribers, or passed over while there were none.
    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    async fn run(self, store: DynStore) {
        let mut commits = store.subscribe_commits();
        loop {
            tokio::select! {
                r = commits.recv() => {
                    if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
            }
            if self.tx.receiver_count() == 0 {
                // Nobody follows the feed: move its head without reading the changes back
                // (during ingest that read cost a tenth of the server's CPU). The last change
                // is read before nobody is seen to follow, so a stream that subscribes after
                // that look replays from the store at least up to it (`site_events` catches
                // up from the head it found): nothing is passed over for it.
                let last = store.last_change_no().await;
                if self.tx.receiver_count() == 0 {
                    match last {
                        Ok(last) => {
                            self.head.fetch_max(last, Ordering::AcqRel);
                        }
                        Err(e) => tracing::warn!(error = ?e, "reading the last change failed"),
                    }
                    continue;
                }
            }
            loop {
                let after = self.head();
                match store.changes_after(after, None, BATCH).await {
                    Ok(changes) => {
                        let n = changes.len();
                        for c in changes {
                            self.head.store(c.change_no, Ordering::Release);
                            let _ = self.tx.send(Arc::new(c));
                        }
                        if n < BATCH as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "reading the change feed failed; retrying");
                        break;
                    }
                }
            }
        }
    }
}
