//! Group commit, the same for every backend: one writer, on a thread of its own, owns the
//! only writing connection, takes every request waiting in its queue (up to [`MAX_GROUP`]), applies them in
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
pub const MAX_GROUP: usize = 256;

pub enum Work {
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
    AddToRoster(Vec<crate::RosterEntry>),
}

pub enum Done {
    Recorded(Vec<Recorded>),
    /// A record request's answers while its group is written; [`crate::plan::Plan::answer`]
    /// turns them into `Recorded` before the group answers.
    Planned(Vec<crate::plan::Planned>),
    Ended(Box<StoredActivity>),
    Pruned(Pruned),
    Checkpointed(Vec<CheckpointBody>),
    Unit,
}

/// What one group produced: an answer per request, in order, and the last change number
/// the group committed (if it changed an activity).
pub type GroupOutcome = (Vec<StoreResult<Done>>, Option<i64>);

/// A backend's way of applying one group in one transaction.
pub trait GroupWriter: Send + 'static {
    /// Applies every request and commits once. A request that fails on its own (invalid,
    /// conflict, not found) leaves no trace and gets its error; `Err` means the transaction
    /// did not commit and nothing in the group was written.
    fn apply_group(
        &mut self,
        group: Vec<Work>,
    ) -> impl Future<Output = anyhow::Result<GroupOutcome>> + Send;

    /// Called after a failed group: roll back, reconnect if needed.
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
pub struct WriterHandle {
    tx: mpsc::Sender<Request>,
}

impl WriterHandle {
    /// Starts an async writer (PostgreSQL's) on a thread of its own, with a runtime of its
    /// own; it stops when the handle is dropped. On the server's runtime the writer would wait,
    /// after each reply from the database, for a worker busy parsing a request to pick it up
    /// again, and the database would sit idle inside the writer's transaction meanwhile. The
    /// writer's connections must be opened on this runtime, so it connects on its first group.
    pub fn spawn_on_own_runtime<W: GroupWriter>(
        writer: W,
        commits: broadcast::Sender<i64>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(4096);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("sitetrail-writer".into())
            .spawn(move || runtime.block_on(run(writer, rx, commits)))?;
        Ok(WriterHandle { tx })
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
        let (works, replies) = take_group(first, &mut rx);
        let applied = writer.apply_group(works).await;
        if !replies.answer(applied, &commits) {
            writer.recover().await;
        }
        writer.between_groups().await;
    }
}

/// `first` and every request already waiting behind it, up to [`MAX_GROUP`].
fn take_group(first: Request, rx: &mut mpsc::Receiver<Request>) -> (Vec<Work>, Replies) {
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
    // How many requests share a commit (`/metrics`, with the commit's duration below): the
    // figures that say whether group commit is keeping up.
    metrics::histogram!("sitetrail_write_group_requests").record(works.len() as f64);
    let replies = Replies {
        to: replies,
        started: std::time::Instant::now(),
    };
    (works, replies)
}

/// Where a group's answers go.
struct Replies {
    to: Vec<oneshot::Sender<StoreResult<Done>>>,
    started: std::time::Instant,
}

impl Replies {
    /// Answers every request of the group and announces its last change. `false`: the
    /// group failed, nothing in it was written, and every request is told so.
    fn answer(
        self,
        applied: anyhow::Result<GroupOutcome>,
        commits: &broadcast::Sender<i64>,
    ) -> bool {
        metrics::histogram!("sitetrail_write_group_seconds").record(self.started.elapsed());
        match applied {
            Ok((results, last_change)) => {
                for (reply, r) in self.to.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
                if let Some(change) = last_change {
                    let _ = commits.send(change);
                }
                true
            }
            Err(e) => {
                tracing::error!(error = ?e, "a group commit failed; nothing in it was written");
                for reply in self.to {
                    let _ = reply.send(Err(
                        anyhow::anyhow!("the write could not be committed").into()
                    ));
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::StoreError;

    /// Applies nothing: remembers each group's size and fails the groups it is told to.
    struct Recording {
        groups: Arc<Mutex<Vec<usize>>>,
        fail: Arc<Mutex<bool>>,
        recovered: Arc<Mutex<u32>>,
    }

    impl GroupWriter for Recording {
        async fn apply_group(&mut self, group: Vec<Work>) -> anyhow::Result<GroupOutcome> {
            self.groups.lock().unwrap().push(group.len());
            if *self.fail.lock().unwrap() {
                anyhow::bail!("the disk is full");
            }
            let n = group.len() as i64;
            Ok((group.into_iter().map(|_| Ok(Done::Unit)).collect(), Some(n)))
        }

        async fn recover(&mut self) {
            *self.recovered.lock().unwrap() += 1;
        }
    }

    /// An async writer that notes the thread each group runs on, after awaiting a timer (so
    /// that it needs a runtime with time enabled, as the database's connections do).
    struct Where(Arc<Mutex<Vec<Option<String>>>>);

    impl GroupWriter for Where {
        async fn apply_group(&mut self, group: Vec<Work>) -> anyhow::Result<GroupOutcome> {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let name = std::thread::current().name().map(str::to_owned);
            self.0.lock().unwrap().push(name);
            Ok((group.into_iter().map(|_| Ok(Done::Unit)).collect(), None))
        }

        async fn recover(&mut self) {}
    }

    #[tokio::test]
    async fn an_async_writer_runs_on_its_own_thread_not_on_the_servers_runtime() {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (commits, _) = broadcast::channel(16);
        let handle = WriterHandle::spawn_on_own_runtime(Where(threads.clone()), commits).unwrap();
        let answers = futures::future::join_all((0..20).map(|_| handle.write(retention()))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Done::Unit))));
        let threads = threads.lock().unwrap().clone();
        assert!(!threads.is_empty());
        assert!(
            threads
                .iter()
                .all(|t| t.as_deref() == Some("sitetrail-writer")),
            "{threads:?}"
        );
    }

    fn retention() -> Work {
        Work::SetRetention(AccountId::parse("acme").unwrap(), Some(30))
    }

    #[tokio::test]
    async fn the_writers_thread_answers_every_request_and_outlives_failures() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(Mutex::new(false));
        let recovered = Arc::new(Mutex::new(0));
        let (commits, mut committed) = broadcast::channel(16);
        let handle = WriterHandle::spawn_on_own_runtime(
            Recording {
                groups: groups.clone(),
                fail: fail.clone(),
                recovered: recovered.clone(),
            },
            commits,
        )
        .unwrap();

        let answers = futures::future::join_all((0..50).map(|_| handle.write(retention()))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(Done::Unit))));
        let sizes = groups.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= MAX_GROUP));
        assert!(committed.try_recv().is_ok(), "a commit is announced");

        *fail.lock().unwrap() = true;
        let failed = handle.write(retention()).await;
        assert!(matches!(failed, Err(StoreError::Internal(_))));

        // The thread goes on after a failed group, and stops with its handle. It recovers
        // after answering the failed group and before taking the next one.
        *fail.lock().unwrap() = false;
        assert!(matches!(handle.write(retention()).await, Ok(Done::Unit)));
        assert_eq!(*recovered.lock().unwrap(), 1);
        drop(handle);
    }
}
