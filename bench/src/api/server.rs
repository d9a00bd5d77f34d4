//! The api under test, each variant in its own process (this binary
//! re-executed with `CARFEED_BENCH_API_SERVER` set), so its resident memory
//! and CPU time are its own; and the CPU time of every process in the bench.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::Context;

const SERVER_ENV: &str = "CARFEED_BENCH_API_SERVER";
pub const SECRET: &[u8] = b"bench-secret-key-of-at-least-32-characters";

/// In the re-executed child: serve the api and return its exit code.
pub fn child_main() -> Option<ExitCode> {
    crate::harness::child_process(SERVER_ENV, "api server", |spec| async move {
        serve_child(&spec).await
    })
}

/// Settings overrides (`CARFEED__API__...` as in production's environment)
/// the production variant runs with: the limiter on, with per-token quotas
/// the load never reaches, so a figure is the limiter's cost, not its
/// refusals; the same for the in-flight cap. The statement timeout stays
/// as shipped.
///
/// The token's cached lookup is kept an hour: with the shipped 30 s, each
/// expiry sends all 32 requests in flight to the database at once, and
/// those past `api.rate_limit.lookups_burst` (20) from this one address get
/// a 429 (a gap of the api the bench found: concurrent lookups of one
/// token are not coalesced).
pub const PRODUCTION: &[(&str, &str)] = &[
    ("CARFEED__API__RATE_LIMIT__PER_SECOND", "1000000"),
    ("CARFEED__API__RATE_LIMIT__BURST", "1000000"),
    ("CARFEED__API__TOKEN_CACHE_TTL", "1h"),
    // The cap checked on every request, as shipped, but never reached: the
    // open loop at half the peak has more than 32 in flight in a stall.
    ("CARFEED__API__MAX_IN_FLIGHT_PER_TOKEN", "1000000"),
];

/// The guards of issue 14 off: no limiter (nor the per-address limit on
/// token lookups), no statement_timeout, no in-flight cap.
pub const GUARDS_OFF: &[(&str, &str)] = &[
    ("CARFEED__API__RATE_LIMIT__ENABLED", "false"),
    ("CARFEED__API__STATEMENT_TIMEOUT", "0s"),
    ("CARFEED__API__MAX_IN_FLIGHT_PER_TOKEN", "0"),
];

/// How one api child is set up.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The connections' application_name (how the bench finds its backends).
    pub name: String,
    /// Settings overrides, as environment variables.
    pub overrides: Vec<(String, String)>,
    /// The pool's size; None: `database.max_connections`, as `api serve`.
    pub pool: Option<u32>,
    /// Not the api: a bare axum server answering every request with these
    /// bytes (JSON), no database. The latency floor of this machine, its
    /// HTTP stack and the load generator.
    pub canned: Option<String>,
}

impl Variant {
    pub fn new(name: &str, overrides: &[(&str, &str)]) -> Self {
        Self {
            name: name.to_owned(),
            overrides: overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            pool: None,
            canned: None,
        }
    }

    /// A server that answers every request with `body` (see `canned`).
    pub fn canned(name: &str, body: String) -> Self {
        Self {
            canned: Some(body),
            ..Self::new(name, &[])
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.overrides.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn pool(mut self, size: u32) -> Self {
        self.pool = Some(size);
        self
    }

    /// The settings this variant's api reads: the shipped config.yaml with
    /// the overrides, as `api serve` would load them from its environment.
    pub fn settings(&self) -> anyhow::Result<settings::Settings> {
        let pairs = self
            .overrides
            .iter()
            .cloned()
            .chain([("SECRET_KEY".to_owned(), secret_text().to_owned())]);
        settings::load_from(&settings::Env::from_pairs(pairs)).context("api bench settings")
    }
}

fn secret_text() -> &'static str {
    std::str::from_utf8(SECRET).expect("the bench secret is text")
}

/// The child's spec: the database URL and the variant, as JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Spec {
    url: String,
    name: String,
    overrides: Vec<(String, String)>,
    pool: Option<u32>,
    canned: Option<String>,
}

/// Serves the api as `api serve` would (its settings, its pool with the
/// statement timeout) until stdin closes.
async fn serve_child(spec: &str) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_str(spec).context("bad spec")?;
    if let Some(body) = spec.canned {
        return serve_canned(body).await;
    }
    let variant = Variant {
        name: spec.name,
        overrides: spec.overrides,
        pool: spec.pool,
        canned: None,
    };
    let settings = variant.settings()?;
    let options = db::PoolOptions {
        max_connections: variant
            .pool
            .unwrap_or(settings.database.max_connections.get()),
        acquire_timeout: settings.database.acquire_timeout,
        application_name: variant.name.clone(),
    };
    let pool = db::connect(&spec.url, &options).await?;
    // The api `api serve` builds, from these settings (SECRET_KEY included).
    let state = api::state(&settings, &pool)?;
    pool.close().await;
    let listener = listen().await?;
    api::serve(listener, state, stdin_closed()).await
}

/// Answers every request with `body`, on the api's HTTP stack (axum on the
/// same runtime), until stdin closes.
async fn serve_canned(body: String) -> anyhow::Result<()> {
    let body = axum::body::Bytes::from(body);
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    });
    let listener = listen().await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(stdin_closed())
        .await?;
    Ok(())
}

/// A loopback listener, announced on stdout for `Server::start`.
async fn listen() -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    Ok(listener)
}

/// Resolves when the bench closes the child's stdin (its way to stop it).
async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// The api in its own process, serving until dropped.
pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    pub fn start(url: &str, variant: &Variant) -> anyhow::Result<Self> {
        variant.settings()?; // a bad override fails here, with its key
        let spec = serde_json::to_string(&Spec {
            url: url.to_owned(),
            name: variant.name.clone(),
            overrides: variant.overrides.clone(),
            pool: variant.pool,
            canned: variant.canned.clone(),
        })?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("ceilings") // any name: the child never parses it
            .env(SERVER_ENV, spec)
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
