//! The api bench's load generator, in the bench process: a closed loop for
//! the peak and an open loop for latency.
//!
//! The open loop is paced by its own real-time OS thread (`std::thread::
//! sleep`, about 0.1 ms late at worst) instead of tokio's timer, whose 1 ms
//! ticks would send requests late and in clumps; each latency is still
//! counted from the request's intended send time, so a stalled server cannot
//! hide its queue. The requests run on the generator's own runtime, which
//! takes a newly due request before finishing older ones, and its threads
//! have a raised priority (see `raise_priority`). How late the generator
//! itself was ("lag") is measured too, to show it adds nothing of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::runtime::{Handle, Runtime};

/// Raises the priority of every thread of this process so far (and so of
/// the threads they start later) to nice -15: the generator then reads each
/// answer and sends each request when it is due, instead of queueing behind
/// the servers and whatever else runs on this small shared machine; a real
/// client is on another machine. Its CPU time does not change. Call it after
/// starting the servers, which must keep the normal priority. Returns
/// whether it worked (it needs root or CAP_SYS_NICE).
pub fn raise_priority() -> bool {
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    std::process::Command::new("renice")
        .args(["-n", "-15", "-p"])
        .args(&threads)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Connections of the closed loop.
pub const CONNECTIONS: usize = 32;
/// One closed-loop slice; a peak run is `PEAK_SLICES` of them (api.rs).
const PEAK_SECONDS: f64 = 1.0;
const OPEN_LOOP_SECONDS: f64 = 4.0;

#[derive(Clone)]
pub struct Load {
    client: reqwest::Client,
    token: String,
    runtime: Arc<Generator>,
}

/// The generator's runtime, shut down without blocking when dropped.
struct Generator(Option<Runtime>);

impl Drop for Generator {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// One open-loop run, all in ms and sorted.
pub struct OpenLoop {
    /// From each request's intended send time to its whole answer.
    pub latencies: Vec<f64>,
    /// From each request's intended send time to its task starting: the
    /// generator's own lateness, already inside `latencies`.
    pub lags: Vec<f64>,
    /// The part of `lags` before the pacer thread woke up.
    pub pacer_lags: Vec<f64>,
}

impl Load {
    /// A generator sending `token`; `gzip`: asking for compressed answers,
    /// as browsers ask nginx. Without: as nginx asks the api (it sends
    /// `Accept-Encoding: ""` and compresses itself), so the api never gzips.
    pub fn new(token: String, gzip: bool) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .gzip(gzip)
            // Keep every connection a burst opened, so a run never pays for
            // connecting (nor does the server for accepting) once warm.
            .pool_max_idle_per_host(CONNECTIONS * 4)
            .tcp_nodelay(true)
            .build()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-load")
            // A request the pacer hands over starts at the next poll, not
            // after up to 60 polls of answers in flight.
            .global_queue_interval(1)
            .enable_all()
            .build()?;
        Ok(Self {
            client,
            token,
            runtime: Arc::new(Generator(Some(runtime))),
        })
    }

    fn handle(&self) -> &Handle {
        self.runtime
            .0
            .as_ref()
            .expect("the runtime lives as long as the Load")
            .handle()
    }

    /// Runs `work` on the generator's runtime.
    pub async fn on_generator<T: Send + 'static>(
        &self,
        work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.handle().spawn(work).await?
    }

    /// A GET read to its end (decompressed), which must answer 2xx; the
    /// answer is not parsed, to keep the generator's CPU small.
    pub async fn get(&self, url: &str) -> anyhow::Result<()> {
        self.send(url).await?.bytes().await?;
        Ok(())
    }

    /// A GET's JSON answer, for walking pages.
    pub async fn get_json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(
            &self.send(url).await?.bytes().await?,
        )?)
    }

    async fn send(&self, url: &str) -> anyhow::Result<reqwest::Response> {
        let answer = self.client.get(url).bearer_auth(&self.token).send().await?;
        if !answer.status().is_success() {
            bail!("{} answered {}", url, answer.status());
        }
        Ok(answer)
    }

    /// Closed loop: CONNECTIONS clients back to back for PEAK_SECONDS; req/s.
    pub async fn peak(&self, url: &str) -> anyhow::Result<f64> {
        let (load, url) = (self.clone(), url.to_owned());
        self.on_generator(async move { load.peak_here(&url).await })
            .await
    }

    async fn peak_here(&self, url: &str) -> anyhow::Result<f64> {
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(PEAK_SECONDS);
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let load = self.clone();
            let url = url.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    load.get(&url).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await??;
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    }

    /// Open loop at `rate` req/s for OPEN_LOOP_SECONDS.
    pub async fn open_loop(&self, url: &str, rate: f64) -> anyhow::Result<OpenLoop> {
        let count = (rate * OPEN_LOOP_SECONDS) as usize;
        let runtime = self.handle().clone();
        let load = self.clone();
        let url = url.to_owned();
        // The pacer only sleeps and spawns; the requests run on the runtime.
        let tasks = self
            .handle()
            .spawn_blocking(move || {
                realtime_pacer();
                let start = Instant::now() + Duration::from_millis(5);
                let mut tasks = Vec::with_capacity(count);
                for i in 0..count {
                    let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
                    let now = Instant::now();
                    if scheduled > now {
                        std::thread::sleep(scheduled - now);
                    }
                    let pacer_lag = ms(scheduled.elapsed());
                    let load = load.clone();
                    let url = url.clone();
                    tasks.push(runtime.spawn(async move {
                        let lag = ms(scheduled.elapsed());
                        load.get(&url).await?;
                        anyhow::Ok([ms(scheduled.elapsed()), lag, pacer_lag])
                    }));
                }
                tasks
            })
            .await?;
        let mut columns = [(); 3].map(|()| Vec::with_capacity(count));
        for task in tasks {
            for (column, value) in columns.iter_mut().zip(task.await??) {
                column.push(value);
            }
        }
        let [mut latencies, mut lags, mut pacer_lags] = columns;
        for column in [&mut latencies, &mut lags, &mut pacer_lags] {
            column.sort_by(f64::total_cmp);
        }
        Ok(OpenLoop {
            latencies,
            lags,
            pacer_lags,
        })
    }
}

/// Makes this (pacer) thread real-time (SCHED_FIFO 1), so it wakes when a
/// request is due even with every core busy; it only sleeps and spawns, so
/// it takes no CPU from anyone. Without the right (root or CAP_SYS_NICE) the
/// pacer keeps its priority, and its lateness shows in the logged lag.
fn realtime_pacer() {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()) else {
        return;
    };
    let _ = std::process::Command::new("chrt")
        .args(["--fifo", "--pid", "1", tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile (0..=1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
