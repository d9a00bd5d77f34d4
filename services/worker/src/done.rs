//! What a slot hands the completer: a finished claim, and the span that
//! follows its task from the slot's fetch to the completer's write.

use db::tasks::{ClaimedTask, Lease};
use tokio::sync::OwnedSemaphorePermit;

use crate::guard::ClaimGuard;
use crate::health::Waiting;
use crate::outcome::Outcome;

/// A finished slot: the claim, how the fetch ended, and the slot itself
/// (its permit), which frees when the outcome is written.
pub struct Done {
    pub worker_id: i64,
    pub task: ClaimedTask,
    pub proxy: Lease,
    pub outcome: Outcome,
    pub guard: ClaimGuard,
    pub permit: OwnedSemaphorePermit,
    /// Listed as waiting for its write until dropped.
    pub waiting: Waiting,
}

impl Done {
    /// The completer's span for this task: the slot's fields
    /// ([`slot_span`]), so a task reads as one story in the log.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "completion",
            task_id = self.task.id,
            lease = self.task.lease,
            proxy_id = self.proxy.id
        )
    }
}

/// The span of a slot fetching `task` through proxy `proxy_id`.
pub fn slot_span(task: &ClaimedTask, proxy_id: i64) -> tracing::Span {
    tracing::info_span!(
        "slot",
        task_id = task.id,
        lease = task.lease,
        proxy_id,
        kind = %task.kind
    )
}
