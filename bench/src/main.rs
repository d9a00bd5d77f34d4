//! `cargo run --release -p bench -- <name>`: runs one benchmark against a
//! throwaway Postgres (or `DATABASE_URL`), with warm-up and several measured
//! runs, and prints each figure beside a baseline measured in the same run.

mod api;
mod browser;
mod ceilings;
mod harness;
mod listings;
mod loader;
mod normalizer;
mod slow_link;
mod status;
mod sync;
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
    /// How much of sync's change tracking on processed_data (migration
    /// 0006) stays for the benchmark, to measure what it costs the writers.
    #[arg(long, value_enum, default_value_t = SyncTracking::On)]
    sync_tracking: SyncTracking,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SyncTracking {
    /// As migrated: sync_xid column (default on INSERT), its index, the UPDATE trigger.
    On,
    /// The UPDATE trigger dropped.
    NoTrigger,
    /// Trigger, index and column dropped.
    Off,
}

impl SyncTracking {
    /// What to drop, and how the report says so.
    fn statement(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::On => None,
            Self::NoTrigger => Some((
                "DROP TRIGGER sync_track ON processed_data",
                "sync trigger on processed_data dropped",
            )),
            Self::Off => Some((
                "DROP TRIGGER sync_track ON processed_data; ALTER TABLE processed_data DROP COLUMN sync_xid",
                "sync tracking (trigger, sync_xid and its index) dropped from processed_data",
            )),
        }
    }
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
    /// The api: the filtered keyset page's peak req/s against pgbench
    /// running the same SQL, p50/p99 at half the peak, directly and through
    /// nginx; page 1,000 vs 1; guards (statement_timeout, in-flight cap,
    /// limiter) and auth on vs off; RSS.
    Api,
    /// The api's p50 per documented GET /offers filter (common and rarest
    /// values, sorts, multi-value) and of /filters, at 1,000,000 rows made
    /// from the simulator's listings; goal 5 ms each (a few minutes).
    ApiFilters,
    /// The worker fleet: no-op coordination tasks/s for 1, 2, 4 workers
    /// against claim-one/complete-one autocommit; the 50 ms latency curve;
    /// kill -9 to full reclaim of real `worker run` processes.
    Worker,
    /// Browser workers: render_url pages/s and peak memory at 1, 2, 4 tabs
    /// against fetch_url on the same pages in the same run.
    Browser,
    /// Sync: full push of 250,000 processed_data rows against a raw binary
    /// COPY pipe; incremental push of 15,000 changes; verify; full push over
    /// a 50 ms link against row-by-row upserts.
    Sync,
    /// The operator's status page: one uncached computation at 1,000,000
    /// listings, offers and tasks, against /stats' full counts.
    Status,
    /// Only the worker's kill -9 to full reclaim figure (worst of 10 kills).
    WorkerReclaim,
    /// Only the worker's no-op coordination figures (1, 2, 4 workers against
    /// claim-one/complete-one autocommit, with transactions per task).
    WorkerNoop,
}

fn main() -> ExitCode {
    if let Some(code) = api::child_main() {
        return code; // the api bench's server process
    }
    if let Some(code) = normalizer::child_main() {
        return code; // one instance of the normaliser bench
    }
    let cli = Cli::parse();
    // The services' own log lines, when asked for (RUST_LOG=worker::render=debug):
    // where a figure's time goes.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let plan = harness::Plan {
        runs: cli.runs.unwrap_or(3).max(1),
        warmup: cli.warmup,
    };
    let kills = cli.runs.unwrap_or(10).clamp(1, 10);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let database = harness::BenchDatabase::provision().await?;
        let tracking = cli.sync_tracking.statement();
        if let Some((statement, _)) = tracking {
            sqlx::raw_sql(statement).execute(&database.pool).await?;
        }
        let report = match cli.name {
            BenchName::Ceilings => ceilings::run(&database, plan, cli.rows).await,
            BenchName::Normalizer => normalizer::run(&database, plan, cli.rows).await,
            BenchName::Loader => loader::run(&database, plan, cli.rows).await,
            BenchName::Api => api::run(&database, plan, cli.rows).await,
            BenchName::ApiFilters => api::run_filters(&database, plan, cli.rows).await,
            BenchName::Worker => worker::run(&database, plan, cli.rows, kills).await,
            BenchName::WorkerReclaim => worker::reclaim_only(&database, kills).await,
            BenchName::WorkerNoop => worker::noop_only(&database, plan, cli.rows).await,
            BenchName::Browser => browser::run(&database, plan, cli.rows).await,
            BenchName::Sync => sync::run(&database, plan, cli.rows).await,
            BenchName::Status => status::run(&database, plan, cli.rows).await,
        };
        let report = report.map(|mut r| {
            if let Some((_, note)) = tracking {
                r.context.push_str("; ");
                r.context.push_str(note);
            }
            r
        });
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
