//! `cargo run --release -p bench -- <name>`: runs one benchmark against a
//! throwaway Postgres (or `DATABASE_URL`), with warm-up and several measured
//! runs, and prints each figure beside a baseline measured in the same run.

mod api;
mod ceilings;
mod harness;
mod listings;
mod loader;
mod normalizer;
mod worker;
mod worker_reclaim;

use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "carfeed's benchmarks (never part of the test command)"
)]
struct Cli {
    /// Which benchmark to run.
    name: BenchName,
    /// Measured runs per figure (the median is reported; default 3). The
    /// worker's kill -9 figure kills this many times (default 10, at most).
    #[arg(long)]
    runs: Option<usize>,
    /// Unmeasured warm-up runs before the measured ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Rows per run for bulk figures (default: each benchmark's own size).
    #[arg(long)]
    rows: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchName {
    /// Raw Postgres ceilings: binary COPY of listing-sized JSONB rows,
    /// 200-row UNNEST inserts, single-row autocommit inserts.
    Ceilings,
    /// The normaliser: rows/s with batch 200, one and two instances, against
    /// an in-database INSERT ... SELECT ceiling; p99 batch transaction.
    Normalizer,
    /// The loader: initial load listings/s, write path against binary COPY,
    /// 100 ms latency against a fetch-only loop, daily update of 15,000 changes.
    Loader,
    /// The api: GET /offers peak req/s and p50/p99 at half the peak, directly
    /// and through nginx; page 1,000 vs 1; limiter and auth on vs off; RSS.
    Api,
    /// The worker fleet: no-op coordination tasks/s for 1, 2, 4 workers
    /// against claim-one/complete-one autocommit; the 50 ms latency curve;
    /// kill -9 to full reclaim of real `worker run` processes.
    Worker,
    /// Only the worker's kill -9 to full reclaim figure (worst of 10 kills).
    WorkerReclaim,
}

fn main() -> ExitCode {
    if let Some(code) = api::child_main() {
        return code; // the api bench's server process
    }
    if let Some(code) = normalizer::child_main() {
        return code; // one instance of the normaliser bench
    }
    let cli = Cli::parse();
    let plan = harness::Plan {
        runs: cli.runs.unwrap_or(3).max(1),
        warmup: cli.warmup,
    };
    let kills = cli.runs.unwrap_or(10).clamp(1, 10);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let database = harness::BenchDatabase::provision().await?;
        let report = match cli.name {
            BenchName::Ceilings => ceilings::run(&database, plan, cli.rows).await,
            BenchName::Normalizer => normalizer::run(&database, plan, cli.rows).await,
            BenchName::Loader => loader::run(&database, plan, cli.rows).await,
            BenchName::Api => api::run(&database, plan, cli.rows).await,
            BenchName::Worker => worker::run(&database, plan, cli.rows, kills).await,
            BenchName::WorkerReclaim => worker::reclaim_only(&database, kills).await,
        };
        database.drop_database().await?;
        report
    });
    match result {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bench failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}
