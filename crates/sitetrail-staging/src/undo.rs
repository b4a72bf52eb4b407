//! Undoing a push: the replaced live is kept for a window and switched back in.

use sitetrail_core::SiteId;

use crate::operations::Engine;
use crate::push::UndoWindow;

impl Engine {
    /// The push the site's live can go back on, if its window is open.
    pub async fn undo_window(&self, _site: &SiteId) -> anyhow::Result<Option<UndoWindow>> {
        // Interface only: the window is kept in this module.
        Ok(None)
    }

    /// Drops the replaced lives whose window has closed; returns how many went. The
    /// scheduler calls it.
    pub async fn expire_undo(&self) -> anyhow::Result<usize> {
        Ok(0)
    }
}
