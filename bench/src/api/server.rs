//! The api under test, each variant in its own process (this binary
//! re-executed with `CARFEED_BENCH_API_SERVER` set), so its resident memory
//! and CPU time are its own; and the CPU time of every process in the bench.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{bail, Context};

const SERVER_ENV: &str = "CARFEED_BENCH_API_SERVER";
pub const SECRET: &[u8] = b"bench-secret-key-of-at-least-32-characters";

/// In the re-executed child: serve the api and return its exit code.
pub fn child_main() -> Option<ExitCode> {
    crate::harness::child_process(SERVER_ENV, "api server", |spec| async move {
        serve_child(&spec).await
    })
}

/// `url|limiter on|auth on`; serves until stdin closes.
async fn serve_child(spec: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, limiter, auth] = parts[..] else {
        bail!("bad {SERVER_ENV}");
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await?;
    let mut config = api::ApiConfig::for_tests();
    config.secret_key = SECRET.to_vec();
    // On: every request goes through the limiter, with a quota the load
    // never reaches, so the figure is the limiter's cost, not its refusals.
    config.rate_limit = (limiter == "on").then_some(api::config::RateLimit {
        per_second: 10_000_000,
        burst: 10_000_000,
    });
    config.require_token = auth == "on";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await;
    };
    api::run(listener, api::AppState::new(pool, config), stdin_closed).await
}

/// The api in its own process, serving until dropped.
pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    pub fn start(url: &str, limiter: bool, auth: bool) -> anyhow::Result<Self> {
        let on = |b: bool| if b { "on" } else { "off" };
        let mut child = Command::new(std::env::current_exe()?)
            .arg("ceilings") // any name: the child never parses it
            .env(SERVER_ENV, format!("{url}|{}|{}", on(limiter), on(auth)))
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start the api child")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line
            .trim()
            .strip_prefix("listening ")
            .context("the api child did not start")?
            .to_owned();
        Ok(Self { child, address })
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM) so far, in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmHWM")?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // closing stdin shuts it down gracefully
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far; 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised name: state is the 3rd field overall,
    // utime and stime the 14th and 15th, in clock ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A process and its direct children (nginx's master and its workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    std::iter::once(pid)
        .chain(children.split_whitespace().filter_map(|c| c.parse().ok()))
        .collect()
}

/// The Postgres backends serving database `name` (their process title
/// names it).
pub fn backends_of(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(name))
                .unwrap_or(false)
        })
        .collect()
}
