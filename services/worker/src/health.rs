//! Write health: is the completer keeping up? Every finished slot is listed
//! here from the moment its fetch ends until its outcome is written (or
//! handed back), and the completer notes each write. The heartbeat reports
//! both ages to the worker's row (`worker status`), and `worker run` keeps
//! them in `worker.health_file` for `worker check` (the compose
//! healthcheck), which fails once a finished slot has waited longer than
//! `worker.max_write_wait`: a completer that cannot write is then visible
//! even while the heartbeat goes on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use db::workers::WriteAges;
use serde::{Deserialize, Serialize};

#[derive(Default)]
pub struct WriteHealth {
    next: AtomicU64,
    /// Finished slots waiting for their write: entry -> when it finished.
    waiting: Mutex<HashMap<u64, Instant>>,
    last_write: Mutex<Option<Instant>>,
}

/// A finished slot's place in the list; leaves it when dropped (written,
/// handed back or cancelled).
pub struct Waiting {
    id: u64,
    health: Arc<WriteHealth>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.health
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl WriteHealth {
    /// A slot finished its fetch: it waits for its write from now.
    pub fn finished(self: &Arc<Self>) -> Waiting {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Instant::now());
        Waiting {
            id,
            health: self.clone(),
        }
    }

    /// The completer wrote a batch.
    pub fn wrote(&self) {
        *self.last_write.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    pub fn ages(&self) -> WriteAges {
        let oldest = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .min()
            .copied();
        let last = *self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        WriteAges {
            last_write: last.map(|t| t.elapsed().as_secs_f64()),
            oldest_unwritten: oldest.map(|t| t.elapsed().as_secs_f64()),
        }
    }
}

/// What `worker run` leaves for `worker check`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub pid: u32,
    /// Unix seconds when this report was written.
    pub written_at: f64,
    pub last_write_age: Option<f64>,
    pub oldest_unwritten_age: Option<f64>,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Writes the report atomically (a temporary file renamed over it).
pub fn publish(path: &Path, ages: WriteAges) -> anyhow::Result<()> {
    let report = Report {
        pid: std::process::id(),
        written_at: now_unix(),
        last_write_age: ages.last_write,
        oldest_unwritten_age: ages.oldest_unwritten,
    };
    let temporary = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    std::fs::write(&temporary, serde_json::to_vec(&report)?)
        .with_context(|| format!("write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replace {}", path.display()))?;
    Ok(())
}

/// Keeps the report fresh every second until `stop`, then removes it (a
/// stopped worker is no stuck one).
pub async fn publish_until(
    path: PathBuf,
    health: Arc<WriteHealth>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut warned = false;
    loop {
        match publish(&path, health.ages()) {
            Ok(()) => warned = false,
            Err(err) if !warned => {
                tracing::warn!("Failed to write the health file (worker check cannot see this worker's writes): {err:#}");
                warned = true;
            }
            Err(_) => {}
        }
        if !crate::cleanup::pause(Duration::from_secs(1), &stop).await {
            break;
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// `worker check`'s part: fails when the report says a finished slot has
/// waited longer than `bound`, or the report itself is older than `bound`
/// (the process is wedged). No report: no `worker run` here (a cleanup
/// container), nothing to say.
pub fn check(path: &Path, bound: Duration) -> anyhow::Result<()> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("read {}", path.display())),
    };
    let report: Report =
        serde_json::from_slice(&text).with_context(|| format!("read {}", path.display()))?;
    let bound = bound.as_secs_f64();
    let stale = now_unix() - report.written_at;
    if stale > bound {
        anyhow::bail!(
            "worker {}: its health report is {stale:.0}s old (bound {bound:.0}s): the process is stuck",
            report.pid
        );
    }
    if let Some(waited) = report.oldest_unwritten_age.filter(|w| *w > bound) {
        anyhow::bail!(
            "worker {}: a finished task has waited {waited:.0}s for its write (bound {bound:.0}s; last write {}): the completer cannot write",
            report.pid,
            report
                .last_write_age
                .map_or("never".into(), |a| format!("{a:.0}s ago"))
        );
    }
    Ok(())
}
