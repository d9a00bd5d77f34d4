//! `worker status [--json]`: tasks and proxies by status, the proxies that
//! rest (blocked by a site, or cooling down after their own faults, with
//! their faults in a row and the time left), workers with their heartbeat
//! age and the age of their last completed write, and throughput over the
//! last hour. A table for people, JSON for scripts. Proxies are shown with
//! their credentials masked.

use anyhow::Context;
use db::PgPool;
use domain::fleet::{redact_line, ProxyUrl, WorkerStatus};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub tasks: Vec<Count>,
    pub proxies: Vec<Count>,
    pub resting_proxies: Vec<RestingProxy>,
    pub workers: Vec<Worker>,
    pub last_hour: LastHour,
}

/// A proxy out of rotation for now.
#[derive(Debug, Clone, Serialize)]
pub struct RestingProxy {
    pub id: i64,
    /// Credentials masked.
    pub url: String,
    /// `blocked` (a site refused it) or `cooldown` (it failed itself).
    pub status: String,
    /// Faults in a row: each cooldown doubles, up to proxy_fault_cooldown_max.
    pub faults_in_a_row: i32,
    pub total_faults: i64,
    pub blocks: i64,
    pub seconds_left: f64,
    pub last_fault: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub slots: i32,
    pub heartbeat_age_seconds: f64,
    /// Since its completer last wrote outcomes, as of its last heartbeat.
    pub last_write_age_seconds: Option<f64>,
    /// How long its oldest finished task has waited for its write.
    pub unwritten_age_seconds: Option<f64>,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastHour {
    pub completed: i64,
    pub failed: i64,
    pub per_minute: f64,
}

fn counts(rows: Vec<(String, i64)>) -> Vec<Count> {
    rows.into_iter()
        .map(|(status, count)| Count { status, count })
        .collect()
}

pub async fn gather(pool: &PgPool) -> anyhow::Result<Status> {
    let tasks = db::tasks::count_by_status(pool)
        .await
        .context("count tasks")?;
    let proxies = db::proxies::count_by_status(pool)
        .await
        .context("count proxies")?;
    let workers = db::workers::list_recent(pool)
        .await
        .context("list workers")?;
    let (completed, failed) = db::tasks::finished_last_hour(pool)
        .await
        .context("throughput")?;
    let resting = db::proxies::resting(pool, 50)
        .await
        .context("list resting proxies")?;
    let tenths = |x: f64| (x * 10.0).round() / 10.0;
    Ok(Status {
        tasks: counts(tasks),
        proxies: counts(proxies),
        resting_proxies: resting
            .into_iter()
            .map(|p| RestingProxy {
                id: p.id,
                url: ProxyUrl::parse(&p.url)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| redact_line(&p.url)),
                status: p.status.to_string(),
                faults_in_a_row: p.faults,
                total_faults: p.total_faults,
                blocks: p.blocks,
                seconds_left: tenths(p.seconds_left),
                last_fault: p.last_fault,
            })
            .collect(),
        workers: workers
            .into_iter()
            .map(|w| Worker {
                id: w.id,
                name: w.name,
                status: w.status.to_string(),
                slots: w.slots,
                heartbeat_age_seconds: tenths(w.heartbeat_age),
                last_write_age_seconds: w.last_write_age.map(tenths),
                unwritten_age_seconds: w.unwritten_age.map(tenths),
                tasks_completed: w.tasks_completed,
                tasks_failed: w.tasks_failed,
            })
            .collect(),
        last_hour: LastHour {
            completed,
            failed,
            per_minute: ((completed + failed) as f64 / 60.0 * 10.0).round() / 10.0,
        },
    })
}

/// The table for people.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let line = |label: &str, counts: &[Count]| {
        let parts: Vec<String> = counts
            .iter()
            .map(|c| format!("{} {}", c.status, c.count))
            .collect();
        format!("{label:<9}{}\n", parts.join("  "))
    };
    out.push_str(&line("tasks", &status.tasks));
    out.push_str(&line("proxies", &status.proxies));
    out.push_str(&format!(
        "last hour: {} completed, {} failed ({} per minute)\n",
        status.last_hour.completed, status.last_hour.failed, status.last_hour.per_minute
    ));
    let alive = status
        .workers
        .iter()
        .filter(|w| w.status == WorkerStatus::Alive.as_str())
        .count();
    if !status.resting_proxies.is_empty() {
        out.push_str("resting proxies (faults in a row double the next cooldown):\n");
        for p in &status.resting_proxies {
            out.push_str(&format!(
                "  {:>6}  {:<40} {:<8} {:>7.0}s left  faults {} in a row ({} in all), blocks {}  {}\n",
                p.id,
                p.url,
                p.status,
                p.seconds_left,
                p.faults_in_a_row,
                p.total_faults,
                p.blocks,
                p.last_fault.as_deref().unwrap_or("")
            ));
        }
    }
    out.push_str(&format!("workers: {alive} alive\n"));
    out.push_str(&format!(
        "{:>6}  {:<24} {:<8} {:>5} {:>10} {:>11} {:>10} {:>7}\n",
        "id", "name", "status", "slots", "heartbeat", "last write", "completed", "failed"
    ));
    for w in &status.workers {
        let last_write = match (w.last_write_age_seconds, w.unwritten_age_seconds) {
            (_, Some(waiting)) if waiting >= 5.0 => format!("waits {waiting}s"),
            (Some(age), _) => format!("{age}s"),
            (None, _) => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:>6}  {:<24} {:<8} {:>5} {:>9}s {:>11} {:>10} {:>7}\n",
            w.id,
            w.name,
            w.status,
            w.slots,
            w.heartbeat_age_seconds,
            last_write,
            w.tasks_completed,
            w.tasks_failed
        ));
    }
    out
}

/// Prints the status as a table or JSON.
pub async fn print(pool: &PgPool, json: bool) -> anyhow::Result<()> {
    let status = gather(pool).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}
