//! Cancelling a build: a token the caller keeps (signal handler, API, test) and the engine
//! watches, with the reason it was cancelled for the build's account.

use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Cheap to clone; clones cancel the same build.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask the build to stop (`reason`, e.g. "SIGINT" or "cancelled by alice", is reported).
    /// The first reason wins.
    pub fn cancel(&self, reason: impl Into<String>) {
        let _ = self.reason.set(reason.into());
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the build is asked to stop.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Why (once cancelled).
    pub fn reason(&self) -> String {
        self.reason
            .get()
            .cloned()
            .unwrap_or_else(|| "a cancel request".into())
    }
}
