//! A claim (one task and the proxy it goes through) that hands itself back
//! when dropped unresolved: on an error path, a cancelled slot or a panic,
//! the task returns to pending and the proxy to free, through the
//! completer's next write. Resolving it (`disarm`) is the completer's job
//! once it has written the claim's outcome.

use db::tasks::Lease;
use tokio::sync::mpsc::UnboundedSender;

/// A claim nobody resolved: the completer hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orphan {
    pub task: Lease,
    pub proxy: Lease,
}

pub struct ClaimGuard {
    orphan: Option<Orphan>,
    to_completer: UnboundedSender<Orphan>,
}

impl ClaimGuard {
    pub fn new(task: Lease, proxy: Lease, to_completer: UnboundedSender<Orphan>) -> Self {
        Self {
            orphan: Some(Orphan { task, proxy }),
            to_completer,
        }
    }

    /// The claim's outcome is written: nothing to hand back.
    pub fn disarm(mut self) {
        self.orphan = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some(orphan) = self.orphan.take() {
            // Fails only when the completer is gone (the process is ending):
            // then shutdown's hand-back, or cleanup, returns the claim.
            let _ = self.to_completer.send(orphan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: i64) -> Lease {
        Lease { id, lease: 1 }
    }

    #[test]
    fn a_guard_dropped_by_a_panicking_slot_reports_its_claim() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let guard = ClaimGuard::new(lease(1), lease(2), tx.clone());
        let panicked = std::thread::spawn(move || {
            let _held = guard;
            panic!("slot failed");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(
            rx.try_recv().unwrap(),
            Orphan {
                task: lease(1),
                proxy: lease(2)
            }
        );
        ClaimGuard::new(lease(3), lease(4), tx).disarm();
        assert!(rx.try_recv().is_err(), "a disarmed guard reports nothing");
    }
}
