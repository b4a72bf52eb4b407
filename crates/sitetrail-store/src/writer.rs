//! Group commit, the same for every backend: one writer task owns the only writing
//! connection, takes every request waiting in its queue (up to [`MAX_GROUP`]), applies them in
//! one transaction and commits once, so that many publishers posting one activity each share
//! one fsync. Nobody is answered before the commit; a database failure fails the whole group.

use std::future::Future;

use sitetrail_core::{Account, AccountId, ActivityId, Ending, Site, StoredActivity};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::chain::{CheckpointBody, CheckpointKey};
use crate::keys::ApiKey;
use crate::record::Prepared;
use crate::{Access, PruneRequest, Pruned, Recorded, StoreResult};

/// The most requests one commit takes; the rest wait for the next one.
pub(crate) const MAX_GROUP: usize = 256;

pub(crate) enum Work {
    /// One request's new activities, checked and rendered by the task that received them.
    Record(Vec<Prepared>),
    End(ActivityId, Ending),
    UpsertAccount(Account),
    UpsertSite(Site),
    CreateKey(ApiKey),
    SetRetention(AccountId, Option<u32>),
    Prune(PruneRequest),
    /// Applied after the rest of its group, so that it seals the group's own links too.
    Checkpoint(CheckpointKey),
    RecordAccess(Vec<Access>),
}

pub(crate) enum Done {
    Recorded(Vec<Recorded>),
    Ended(Box<StoredActivity>),
    Pruned(Pruned),
    Checkpointed(Vec<CheckpointBody>),
    Unit,
}

/// What one group produced: an answer per request, in order, and the last change number
/// the group committed (if it changed an activity).
pub(crate) type GroupOutcome = (Vec<StoreResult<Done>>, Option<i64>);

/// A backend's way of applying one group in one transaction.
pub(crate) trait GroupWriter: Send + 'static {
    /// Applies every request and commits once. A request that fails on its own (invalid,
    /// conflict, not found) leaves no trace and gets its error; `Err` means the transaction
    /// did not commit and nothing in the group was written.
    fn apply_group(
        &mut self,
        group: Vec<Work>,
    ) -> impl Future<Output = anyhow::Result<GroupOutcome>> + Send;

    /// Called after a failed group: roll back, drop caches, reconnect if needed.
    fn recover(&mut self) -> impl Future<Output = ()> + Send;

    /// Called after every group has been answered, before the next one is taken: upkeep
    /// that needs the writing connection outside a transaction.
    fn between_groups(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

struct Request {
    work: Work,
    reply: oneshot::Sender<StoreResult<Done>>,
}

/// The stores' end of the queue.
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Request>,
}

impl WriterHandle {
    /// Starts the writer task; it stops when the handle is dropped.
    pub fn spawn<W: GroupWriter>(writer: W, commits: broadcast::Sender<i64>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(writer, rx, commits));
        WriterHandle { tx }
    }

    /// Queues one request and waits until its group has committed (or failed).
    pub async fn write(&self, work: Work) -> StoreResult<Done> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { work, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the store's writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the store's writer stopped before answering"))?
    }
}

async fn run<W: GroupWriter>(
    mut writer: W,
    mut rx: mpsc::Receiver<Request>,
    commits: broadcast::Sender<i64>,
) {
    while let Some(first) = rx.recv().await {
        let mut works = vec![first.work];
        let mut replies = vec![first.reply];
        while works.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => {
                    works.push(r.work);
                    replies.push(r.reply);
                }
                Err(_) => break,
            }
        }
        // How many requests share a commit and how long the commit takes: the two figures
        // that say whether group commit is keeping up (`/metrics`).
        metrics::histogram!("sitetrail_write_group_requests").record(works.len() as f64);
        let started = std::time::Instant::now();
        let applied = writer.apply_group(works).await;
        metrics::histogram!("sitetrail_write_group_seconds").record(started.elapsed());
        match applied {
            Ok((results, last_change)) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
                if let Some(change) = last_change {
                    let _ = commits.send(change);
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, "a group commit failed; nothing in it was written");
                writer.recover().await;
                for reply in replies {
                    let _ = reply.send(Err(
                        anyhow::anyhow!("the write could not be committed").into()
                    ));
                }
            }
        }
        writer.between_groups().await;
    }
}
