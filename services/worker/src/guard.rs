//! A claim (one task and the proxy it goes through) that hands itself back
//! when dropped unresolved: on an error path, a cancelled slot or a panic,
//! the task returns to pending and the proxy to free, through the
//! completer's next write. Resolving it (`disarm`) is the completer's job
//! once it has written the claim's outcome.
//!
//! Every live guard is listed in `Held`: what the database shows running
//! under this worker but no guard lists is a claim nobody here holds (its
//! commit reply was lost), and the claimer hands it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use db::tasks::Lease;
use tokio::sync::mpsc::UnboundedSender;

/// The task and proxy ids this process's slots hold right now, counted: a
/// proxy (or a retried task) can be claimed again by a new slot before the
/// old slot's guard has ended, and ending that guard must not unlist it.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<Counts>>);

#[derive(Default)]
struct Counts {
    tasks: HashMap<i64, usize>,
    proxies: HashMap<i64, usize>,
}

fn add(counts: &mut HashMap<i64, usize>, id: i64) {
    *counts.entry(id).or_default() += 1;
}

fn take(counts: &mut HashMap<i64, usize>, id: i64) {
    if let Some(n) = counts.get_mut(&id) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&id);
        }
    }
}

impl Held {
    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// (task ids, proxy ids).
    pub fn ids(&self) -> (Vec<i64>, Vec<i64>) {
        self.with(|c| {
            (
                c.tasks.keys().copied().collect(),
                c.proxies.keys().copied().collect(),
            )
        })
    }
}

/// A claim nobody resolved: the completer hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orphan {
    pub task: Lease,
    pub proxy: Lease,
}

pub struct ClaimGuard {
    orphan: Option<Orphan>,
    ids: (i64, i64),
    to_completer: UnboundedSender<Orphan>,
    held: Held,
}

impl ClaimGuard {
    pub fn new(
        task: Lease,
        proxy: Lease,
        to_completer: UnboundedSender<Orphan>,
        held: Held,
    ) -> Self {
        held.with(|c| {
            add(&mut c.tasks, task.id);
            add(&mut c.proxies, proxy.id);
        });
        Self {
            orphan: Some(Orphan { task, proxy }),
            ids: (task.id, proxy.id),
            to_completer,
            held,
        }
    }

    /// The claim's outcome is written: nothing to hand back.
    pub fn disarm(mut self) {
        self.orphan = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let (task, proxy) = self.ids;
        self.held.with(|c| {
            take(&mut c.tasks, task);
            take(&mut c.proxies, proxy);
        });
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
        Lease {
            id,
            lease: 1,
            worker_id: 1,
        }
    }

    #[test]
    fn a_guard_dropped_by_a_panicking_slot_reports_its_claim() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let held = Held::default();
        let guard = ClaimGuard::new(lease(1), lease(2), tx.clone(), held.clone());
        assert_eq!(held.ids(), (vec![1], vec![2]));
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
        ClaimGuard::new(lease(3), lease(4), tx.clone(), held.clone()).disarm();
        assert!(rx.try_recv().is_err(), "a disarmed guard reports nothing");
        assert_eq!(held.ids(), (vec![], vec![]), "an ended guard holds nothing");
        // The proxy claimed again by a new slot before the old guard ended.
        let old = ClaimGuard::new(lease(5), lease(6), tx.clone(), held.clone());
        let new = ClaimGuard::new(lease(7), lease(6), tx, held.clone());
        old.disarm();
        assert_eq!(held.ids(), (vec![7], vec![6]), "still held by the new slot");
        new.disarm();
        assert_eq!(held.ids(), (vec![], vec![]));
    }
}
