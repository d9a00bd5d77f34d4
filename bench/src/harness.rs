//! Measuring, and printing figures beside their same-run baselines.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use pg_sandbox::{PgSandbox, Profile};
use serde::Serialize;
use sqlx::PgPool;

/// Warm-up and measured runs per figure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub runs: usize,
    pub warmup: usize,
}

impl Plan {
    /// Runs `once` warm-up + measured times; each call returns the figure of
    /// one run (e.g. rows/s). Reports the median of the measured runs.
    pub async fn measure<F, Fut>(&self, label: &str, mut once: F) -> anyhow::Result<Measured>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<f64>>,
    {
        for i in 0..self.warmup {
            let v = once()
                .await
                .with_context(|| format!("{label}: warm-up {}", i + 1))?;
            eprintln!("  {label}: warm-up {} -> {v:.1}", i + 1);
        }
        let mut values = Vec::with_capacity(self.runs);
        for i in 0..self.runs {
            let v = once()
                .await
                .with_context(|| format!("{label}: run {}", i + 1))?;
            eprintln!("  {label}: run {} -> {v:.1}", i + 1);
            values.push(v);
        }
        Ok(Measured::from_runs(values))
    }
}

impl Plan {
    /// `measure` for variants compared with each other: their runs
    /// alternate (a, b, a, b, ...), so a drift of the machine during the
    /// benchmark falls on every variant alike instead of on whichever ran
    /// last. `once(i)` runs variant `i` once; the result is one `Measured`
    /// per label, in order.
    pub async fn measure_alternating<F, Fut>(
        &self,
        labels: &[&str],
        mut once: F,
    ) -> anyhow::Result<Vec<Measured>>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<f64>>,
    {
        let mut values = vec![Vec::with_capacity(self.runs); labels.len()];
        for round in 0..self.warmup + self.runs {
            let (kind, n) = if round < self.warmup {
                ("warm-up", round + 1)
            } else {
                ("run", round - self.warmup + 1)
            };
            for (i, label) in labels.iter().enumerate() {
                let v = once(i)
                    .await
                    .with_context(|| format!("{label}: {kind} {n}"))?;
                eprintln!("  {label}: {kind} {n} -> {v:.1}");
                if round >= self.warmup {
                    values[i].push(v);
                }
            }
        }
        Ok(values.into_iter().map(Measured::from_runs).collect())
    }
}

/// The runs of one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: Vec<f64>,
}

impl Measured {
    pub fn from_runs(mut runs: Vec<f64>) -> Self {
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let min = sorted[0];
        let max = sorted[sorted.len() - 1];
        runs.shrink_to_fit();
        Self {
            median,
            min,
            max,
            runs,
        }
    }
}

/// Rows per second of `rows` done in `elapsed`.
/// In a process the bench re-executed to play one part (an api server, a
/// normaliser instance): `None` unless `env` is set; else runs `part` with
/// its value on a runtime of its own and gives the exit code.
pub fn child_process<F>(env: &str, part: &str, run: impl FnOnce(String) -> F) -> Option<ExitCode>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let spec = std::env::var(env).ok()?;
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    Some(match runtime.block_on(run(spec)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench {part}: {err:#}");
            ExitCode::FAILURE
        }
    })
}

pub fn per_second(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

/// Whether bigger or smaller is better, for the goal check.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    // For latency figures (p50/p99), where a smaller ratio is better.
    #[allow(dead_code)]
    Lower,
}

/// A figure with its same-run baseline and, when the issue names one, a goal
/// on the ratio figure / baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    pub value: Measured,
    pub baseline: Option<String>,
    pub baseline_value: Option<f64>,
    pub better: Better,
    pub goal_ratio: Option<f64>,
}

impl Figure {
    /// `value` in `unit`, against `baseline` (its name and median) when
    /// there is one. `goal`: the ratio figure / baseline must reach it (at
    /// least when higher is better, at most when lower).
    pub fn new(
        name: impl Into<String>,
        unit: &str,
        value: Measured,
        baseline: Option<(&str, f64)>,
        better: Better,
        goal: Option<f64>,
    ) -> Self {
        Self {
            name: name.into(),
            unit: unit.to_owned(),
            value,
            baseline: baseline.map(|(name, _)| name.to_owned()),
            baseline_value: baseline.map(|(_, value)| value),
            better,
            goal_ratio: goal,
        }
    }

    pub fn ratio(&self) -> Option<f64> {
        self.baseline_value.map(|b| self.value.median / b)
    }

    pub fn goal_met(&self) -> Option<bool> {
        let ratio = self.ratio()?;
        let goal = self.goal_ratio?;
        Some(match self.better {
            Better::Higher => ratio >= goal,
            Better::Lower => ratio <= goal,
        })
    }
}

/// Everything one benchmark printed.
pub struct Report {
    pub bench: &'static str,
    pub context: String,
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn print(&self) {
        println!();
        println!("bench {} — {}", self.bench, self.context);
        println!(
            "{:<34} {:>10} {:<8} {:<30} {:>14} {:>8} {:>10}",
            "figure", "median", "unit", "baseline (same run)", "baseline", "ratio", "goal"
        );
        for f in &self.figures {
            let ratio = f.ratio().map_or("-".into(), |r| format!("{r:.3}x"));
            let goal = match (f.goal_ratio, f.goal_met(), f.better) {
                (Some(g), Some(met), Better::Higher) => format!(">={g}x {}", mark(met)),
                (Some(g), Some(met), Better::Lower) => format!("<={g}x {}", mark(met)),
                _ => "-".into(),
            };
            println!(
                "{:<34} {:>10} {:<8} {:<30} {:>14} {:>8} {:>10}",
                f.name,
                thousands(f.value.median),
                f.unit,
                f.baseline.as_deref().unwrap_or("-"),
                f.baseline_value.map_or("-".into(), thousands),
                ratio,
                goal
            );
        }
        println!();
        for f in &self.figures {
            let line = serde_json::json!({
                "bench": self.bench,
                "figure": f.name,
                "unit": f.unit,
                "value": f.value.median,
                "min": f.value.min,
                "max": f.value.max,
                "runs": f.value.runs,
                "baseline": f.baseline,
                "baseline_value": f.baseline_value,
                "ratio": f.ratio(),
                "goal_ratio": f.goal_ratio,
                "goal_met": f.goal_met(),
            });
            println!("{line}");
        }
    }
}

fn mark(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn thousands(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    } else {
        format!("{v:.2}")
    }
}

/// A fresh database for one benchmark, on a throwaway durable server unless
/// `DATABASE_URL` names one. Migrated with carfeed's schema.
pub struct BenchDatabase {
    _sandbox: Option<PgSandbox>,
    server_url: String,
    name: String,
    pub pool: PgPool,
}

impl BenchDatabase {
    pub async fn provision() -> anyhow::Result<Self> {
        let (sandbox, server_url) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (None, url),
            _ => {
                let sandbox =
                    tokio::task::spawn_blocking(|| PgSandbox::start(Profile::Durable)).await??;
                let url = sandbox.url().to_owned();
                eprintln!("bench: throwaway PostgreSQL at {url}");
                (Some(sandbox), url)
            }
        };
        let name = format!("carfeed_bench_{}", std::process::id());
        let pool = create_migrated(&server_url, &name).await?;
        Ok(Self {
            _sandbox: sandbox,
            server_url,
            name,
            pool,
        })
    }

    /// A second fresh, migrated database on the same server (sync's
    /// production side). Drop it before this one: it does not own the server.
    pub async fn sibling(&self, suffix: &str) -> anyhow::Result<Self> {
        let name = format!("{}_{suffix}", self.name);
        let pool = create_migrated(&self.server_url, &name).await?;
        Ok(Self {
            _sandbox: None,
            server_url: self.server_url.clone(),
            name,
            pool,
        })
    }

    /// The URL of the bench's database, for processes the bench starts.
    pub fn url(&self) -> String {
        match self.server_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{}", self.name),
            None => self.server_url.clone(),
        }
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let admin = PgPool::connect(&self.server_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await?;
        Ok(())
    }
}

/// Creates database `name` (dropping a leftover of that name) on the server
/// of `server_url`, and applies carfeed's schema.
async fn create_migrated(server_url: &str, name: &str) -> anyhow::Result<PgPool> {
    let admin = PgPool::connect(server_url)
        .await
        .context("connect to the bench server")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let url = match server_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => anyhow::bail!("DATABASE_URL has no database name"),
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await?;
    db::migrate(&pool).await?;
    Ok(pool)
}
