//! kill -9 to full reclaim: real `worker run` processes (the release
//! binary) with heartbeat 5 s, stale after 15 s (3 beats) and a sweep every
//! 5 s. A survivor and a victim share tasks (origin at 300 ms) and proxies;
//! the victim is killed with SIGKILL while it holds tasks and proxies, and
//! the time until none of them is held by it any more (its tasks back to
//! pending or taken by the survivor, its proxies free) is one kill's figure.
//! The worst of the kills is reported; also when the survivor has finished
//! every task the victim held.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::fleet::{ProxyStatus, TaskKind, TaskStatus};
use sqlx::PgPool;
use test_support::origin::Origin;
use test_support::proxy::TestProxy;
use tokio::process::{Child, Command};

use crate::harness::{BenchDatabase, Better, Figure, Measured};

/// Issue 11's settings for this figure.
const RECLAIM_SETTINGS: &[(&str, &str)] = &[
    ("CARFEED__WORKER__HEARTBEAT_INTERVAL", "5s"),
    ("CARFEED__WORKER__STALE_AFTER_BEATS", "3"),
    ("CARFEED__WORKER__CLEANUP__INTERVAL", "5s"),
    ("CARFEED__WORKER__CLEANUP__IN_WORKER", "true"),
    ("CARFEED__WORKER__SLOTS", "4"),
    ("CARFEED__WORKER__ALLOW_PRIVATE_TARGETS", "true"),
    ("CARFEED__WORKER__IDLE_POLL", "100ms"),
    ("CARFEED__LOG__LEVEL", "warn"),
];
const GOAL_SECONDS: f64 = 30.0;

/// The release `worker` binary beside this bench binary, built if needed.
fn worker_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "worker",
            "--bin",
            "worker",
        ])
        .status()
        .context("run cargo build for the worker binary")?;
    if !built.success() {
        bail!("cargo build --release -p worker failed");
    }
    let path = std::env::current_exe()?.with_file_name("worker");
    if !path.is_file() {
        bail!("no worker binary at {}", path.display());
    }
    Ok(path)
}

struct Fleet {
    binary: PathBuf,
    url: String,
}

impl Fleet {
    /// Starts `worker run` and waits for its row; returns it with its id.
    async fn start(&self, pool: &PgPool) -> anyhow::Result<(Child, i64)> {
        let child = Command::new(&self.binary)
            .arg("run")
            .env("DATABASE_URL", &self.url)
            .env("HOSTNAME", "bench")
            .envs(RECLAIM_SETTINGS.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start worker run")?;
        let name = format!("bench-{}", child.id().context("worker pid")?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM workers WHERE name = $1 AND status = 'alive'")
                    .bind(&name)
                    .fetch_optional(pool)
                    .await?;
            if let Some(id) = id {
                return Ok((child, id));
            }
            if Instant::now() > deadline {
                bail!("worker {name} did not register within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn held(pool: &PgPool, table: &str, busy: &str, worker: i64) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM {table} WHERE status = '{busy}' AND worker_id = $1 ORDER BY id"
    ))
    .bind(worker)
    .fetch_all(pool)
    .await?)
}

/// One kill: (seconds to full reclaim, seconds until its tasks are finished).
async fn one_kill(pool: &PgPool, fleet: &Fleet) -> anyhow::Result<(f64, f64)> {
    let (mut victim, id) = fleet.start(pool).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (tasks, proxies) = loop {
        let (t, p) = (
            held(pool, "tasks", TaskStatus::Running.as_str(), id).await?,
            held(pool, "proxies", ProxyStatus::InUse.as_str(), id).await?,
        );
        if t.len() >= 2 && !p.is_empty() {
            break (t, p);
        }
        if Instant::now() > deadline {
            bail!("the victim never held tasks and proxies");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    victim.start_kill().context("kill -9 the victim")?;
    let killed = Instant::now();
    victim.wait().await?;
    let mut reclaimed = None;
    loop {
        let still: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM tasks WHERE id = ANY($1) AND status = 'running' AND worker_id = $3)
                  + (SELECT count(*) FROM proxies WHERE id = ANY($2) AND status = 'in_use' AND worker_id = $3)",
        )
        .bind(&tasks)
        .bind(&proxies)
        .bind(id)
        .fetch_one(pool)
        .await?;
        if still == 0 && reclaimed.is_none() {
            reclaimed = Some(killed.elapsed());
        }
        if let Some(back) = reclaimed {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status <> 'completed'",
            )
            .bind(&tasks)
            .fetch_one(pool)
            .await?;
            if open == 0 {
                return Ok((back.as_secs_f64(), killed.elapsed().as_secs_f64()));
            }
        }
        if killed.elapsed() > Duration::from_secs(180) {
            bail!("what the victim held was not reclaimed and finished within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kills` kills of a victim beside one survivor; the worst of each figure.
pub async fn figures(db: &BenchDatabase, kills: usize) -> anyhow::Result<Vec<Figure>> {
    let pool = &db.pool;
    sqlx::query("TRUNCATE tasks, results, workers")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM proxies").execute(pool).await?;
    let origin = Origin::start(Duration::from_millis(300)).await;
    let mut proxies = Vec::new();
    for _ in 0..8 {
        proxies.push(TestProxy::start(None).await);
    }
    let urls: Vec<String> = proxies.iter().map(|p| p.url(None)).collect();
    db::proxies::insert(pool, &urls).await?;
    let targets: Vec<String> = (0..20_000)
        .map(|i| origin.url(&format!("/k/{i}")))
        .collect();
    db::tasks::insert(pool, TaskKind::FetchUrl, &targets).await?;
    // As `worker tasks upload` does.
    db::tasks::refresh_planner_stats(pool).await?;

    let fleet = Fleet {
        binary: worker_binary()?,
        url: db.url(),
    };
    let (_survivor, _) = fleet.start(pool).await?;
    let (mut back, mut done) = (Vec::new(), Vec::new());
    for k in 1..=kills {
        let (b, d) = one_kill(pool, &fleet).await?;
        eprintln!("  kill {k}: reclaimed after {b:.1} s, finished elsewhere after {d:.1} s");
        back.push(b);
        done.push(d);
    }
    let worst = |runs: Vec<f64>| {
        let mut m = Measured::from_runs(runs);
        m.median = m.max; // the figure is the worst kill
        m
    };
    Ok(vec![
        Figure::new(
            format!("kill -9 to full reclaim, worst of {kills}"),
            "s",
            worst(back),
            Some(("goal", GOAL_SECONDS)),
            Better::Lower,
            Some(1.0),
        ),
        Figure::new(
            format!("  ... and finished elsewhere, worst of {kills}"),
            "s",
            worst(done),
            None,
            Better::Lower,
            None,
        ),
    ])
}
