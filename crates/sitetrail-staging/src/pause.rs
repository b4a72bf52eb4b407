//! Pause points: where crash tests stop an operation to kill it there. They exist only with
//! the `testkit` feature; without it, reaching one does nothing and the binary holds no trace
//! of them.

#[cfg(feature = "testkit")]
use std::time::Duration;

use sitetrail_core::ActivityId;

use crate::Engine;

/// A point in an operation where a crash test may stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// Everything is built aside; nothing is switched.
    Built,
    /// The tables are switched, the files not yet.
    BetweenSwitches,
    /// Both switches are done; the cleanup has not run.
    Switched,
    /// A push merged live's rows into the built copy (an undo: into the kept copy) and has
    /// not switched. Here the operation goes on once the test removes the `.paused` file
    /// (ten minutes at most), so that a test can write to live between the merge and the
    /// switch.
    Merged,
}

#[cfg(feature = "testkit")]
impl std::str::FromStr for PausePoint {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "built" => Ok(PausePoint::Built),
            "between_switches" => Ok(PausePoint::BetweenSwitches),
            "switched" => Ok(PausePoint::Switched),
            "merged" => Ok(PausePoint::Merged),
            other => anyhow::bail!("no pause point named {other:?}"),
        }
    }
}

impl Engine {
    /// An engine that stops every operation at `point` for ten minutes, after writing a
    /// `.paused` file beside the operation's journal: a crash test waits for that file, then
    /// kills the process.
    #[cfg(feature = "testkit")]
    pub fn pause_at(mut self, point: PausePoint) -> Self {
        std::sync::Arc::get_mut(&mut self.inner)
            .expect("a pause point is set before the engine is shared")
            .pause_at = Some(point);
        self
    }

    pub(crate) async fn pause_point(&self, activity: &ActivityId, point: PausePoint) {
        #[cfg(feature = "testkit")]
        if self.inner.pause_at == Some(point) {
            let marker = self.pause_marker(activity);
            let written = marker.clone();
            let _ =
                crate::blocking(move || sitetrail_store::private::write(&written, b"paused")).await;
            if point != PausePoint::Merged {
                tokio::time::sleep(Duration::from_secs(600)).await;
                return;
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
            while marker.exists() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        #[cfg(not(feature = "testkit"))]
        let _ = (activity, point);
    }

    /// Removes what a pause left beside a journal (recovery after the kill).
    pub(crate) async fn clear_pause(&self, activity: &ActivityId) {
        #[cfg(feature = "testkit")]
        {
            let marker = self.pause_marker(activity);
            let _ = crate::blocking(move || Ok(std::fs::remove_file(marker)?)).await;
        }
        #[cfg(not(feature = "testkit"))]
        let _ = activity;
    }

    #[cfg(feature = "testkit")]
    fn pause_marker(&self, activity: &ActivityId) -> std::path::PathBuf {
        self.journal_path(activity).with_extension("paused")
    }
}
