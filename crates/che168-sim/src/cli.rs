//! `che168-sim`'s command line (binary only).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use che168_sim::{Faults, SimConfig};

#[derive(Parser)]
#[command(
    name = "che168-sim",
    version,
    about = "A deterministic simulator of the CHE168 upstream API (offers, changes, faults) for tests and development"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the simulated API until SIGTERM or SIGINT; point CHE168_BASE_URL at
    /// http://<bind>/api/v2/che168.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub bind: SocketAddr,
    /// Seed of the catalogue, the change stream and the fault dice.
    #[arg(long, default_value_t = 168)]
    pub seed: u64,
    /// Listings in the base catalogue (/offers pages 20 at a time).
    #[arg(long, default_value_t = 250_000)]
    pub listings: usize,
    /// The api_key every request must carry.
    #[arg(long, default_value = "sim-key")]
    pub api_key: String,
    /// Simulated days of changes, the last one being today (UTC).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Change events per simulated day.
    #[arg(long, default_value_t = 15_000)]
    pub changes_per_day: usize,
    /// Delay added to every answer, e.g. 100ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Share of requests answered 502/503 (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// Retry-After of the 429 answers, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Share of HTTP 200 answers whose JSON body is cut short.
    #[arg(long, default_value_t = 0.0)]
    pub truncated_rate: f64,
    /// Share of requests whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Share of requests that hang for --timeout before answering.
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// How long a hanging request hangs, e.g. 5m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// /changes always answers the tip (an empty result, next_change_id null).
    #[arg(long)]
    pub empty_tip: bool,
    /// The last /offers page says next_page: 0 instead of null.
    #[arg(long)]
    pub next_page_zero: bool,
    /// Share of listings sent with a value the loader must reject (a \u0000
    /// escape, a 70-character inner_id, a 5000 BC created_at, 1e400, 200
    /// levels of nesting), the same listings every time.
    #[arg(long, default_value_t = 0.0)]
    pub poison_rate: f64,
}

impl ServeArgs {
    pub fn config(&self) -> SimConfig {
        let defaults = SimConfig::default();
        let today = chrono::Utc::now().date_naive();
        SimConfig {
            seed: self.seed,
            listings: self.listings,
            api_key: self.api_key.clone(),
            first_day: today - chrono::Duration::days(i64::from(self.days.max(1)) - 1),
            days: self.days,
            changes_per_day: self.changes_per_day,
            faults: Faults {
                latency: self.latency,
                server_error_rate: self.error_rate,
                rate_limit_rate: self.rate_limit_rate,
                retry_after_secs: self.retry_after,
                timeout_rate: self.timeout_rate,
                timeout: self.timeout,
                truncated_rate: self.truncated_rate,
                reset_rate: self.reset_rate,
                empty_tip: self.empty_tip,
                next_page_zero: self.next_page_zero,
                poison_rate: self.poison_rate,
                ..defaults.faults
            },
        }
    }
}
