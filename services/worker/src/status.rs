//! `worker status [--json]`: tasks and proxies by status, workers with their
//! heartbeat age, and throughput over the last hour. A table for people,
//! JSON for scripts.

use anyhow::Context;
use db::PgPool;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub tasks: Vec<Count>,
    pub proxies: Vec<Count>,
    pub workers: Vec<Worker>,
    pub last_hour: LastHour,
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
    Ok(Status {
        tasks: counts(tasks),
        proxies: counts(proxies),
        workers: workers
            .into_iter()
            .map(|w| Worker {
                id: w.id,
                name: w.name,
                status: w.status,
                slots: w.slots,
                heartbeat_age_seconds: (w.heartbeat_age * 10.0).round() / 10.0,
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
        .filter(|w| w.status == "alive")
        .count();
    out.push_str(&format!("workers: {alive} alive\n"));
    out.push_str(&format!(
        "{:>6}  {:<24} {:<8} {:>5} {:>10} {:>10} {:>7}\n",
        "id", "name", "status", "slots", "heartbeat", "completed", "failed"
    ));
    for w in &status.workers {
        out.push_str(&format!(
            "{:>6}  {:<24} {:<8} {:>5} {:>9}s {:>10} {:>7}\n",
            w.id,
            w.name,
            w.status,
            w.slots,
            w.heartbeat_age_seconds,
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
