//! `cargo run --release -p bench -- <name>`: runs one benchmark against a
//! throwaway Postgres (or `DATABASE_URL`), with warm-up and several measured
//! runs, and prints each figure beside a baseline measured in the same run.

mod ceilings;
mod harness;
mod listings;

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
    /// Measured runs per figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = harness::Plan {
        runs: cli.runs.max(1),
        warmup: cli.warmup,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let database = harness::BenchDatabase::provision().await?;
        let report = match cli.name {
            BenchName::Ceilings => ceilings::run(&database, plan, cli.rows).await,
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
