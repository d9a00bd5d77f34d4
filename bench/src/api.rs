//! The api under load (issues 3 and 14): the filtered keyset page of
//! `GET /offers` on 1,000,000 rows of processed_data, directly and through
//! nginx, against pgbench replaying the api's own statement (`pgbench.rs`).
//!
//! Every variant runs at once, each api in its own process (`server.rs`),
//! nginx in front of one more production api (limiter and auth on), all
//! started once and kept running. The variants a figure compares are
//! measured in alternation (A B C D, then D C B A, ...), each with the same
//! warm-up and measured runs, so drift of this shared machine lands on both
//! sides of a ratio instead of looking like a cost. The load generator
//! (`load.rs`) is in this process. Figures: peak req/s, p50/p99 at an open
//! loop of half the peak, page 1,000 against page 1, the guards
//! (statement_timeout, in-flight cap, limiter) on against off, and peak
//! resident memory. Every variant is sent a token issued like a user's. Beside the direct latency, a
//! canned answer (the same bytes from a bare axum server, no database) at
//! the same rate shows the floor the machine itself puts under any server's
//! latency. Each run also prints
//! the CPU used by the bench, the api, nginx and Postgres, and how late the
//! generator sent its requests, so a latency can be explained. For tuning
//! nginx, `CARFEED_BENCH_NGINX_CANDIDATE=dir1,dir2` adds edited copies of
//! nginx/ to the alternation, at the repo config's rate (log only); for
//! latency, `CARFEED_BENCH_API_RATES=500,1000` adds open loops of the api
//! direct at those rates (log only).

mod filters;
mod load;
mod nginx;
mod pgbench;
mod server;

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::harness::{BenchDatabase, Better, Figure, Measured, Plan, Report};
pub use filters::run as run_filters;
use load::{percentile, Load, CONNECTIONS};
use nginx::Nginx;
use pgbench::{Bind, Replay};
pub use server::child_main;
use server::{
    backends_of, cpu_seconds, with_children, Server, Variant, GUARDS_OFF, PRODUCTION, SECRET,
};

const DEFAULT_ROWS: usize = 1_000_000;
const CHUNK_ROWS: usize = 100_000;
/// The filtered keyset page of issue 14: one mark, a model year floor,
/// newest first (the default sort), 20 offers.
const TYPICAL: &str = "/api/v1/offers?mark=Toyota&year_from=2015&limit=20";
/// The binds the api sends for TYPICAL, known by the SQL just before each
/// `$n`, with the types the api declares: the mark (in `lower()`), year_from
/// (bound as bigint) and limit + 1.
fn typical_bind(before: &str) -> Option<Bind> {
    let (value, sql_type) = if before.ends_with("lower(") {
        ("Toyota", "text")
    } else if before.ends_with("year >= ") {
        ("2015", "bigint")
    } else if before.ends_with("LIMIT ") {
        ("21", "bigint")
    } else {
        return None;
    };
    Some(Bind { value, sql_type })
}
/// The peak labels measured by pgbench, first in the alternation.
const PGBENCH_LABELS: usize = 2;
/// The api's session settings (api::pool::bounded), for pgbench: Postgres'
/// default plan cache.
const API_SESSION: &str = "-c statement_timeout=2000";
/// For reference: the statement planned on every run, as the api once
/// forced on all its connections (what planning costs).
const REPLANNED_SESSION: &str = "-c statement_timeout=2000 -c plan_cache_mode=force_custom_plan";
/// Directories (comma-separated) with candidate copies of nginx/, to
/// compare with the repo's.
const CANDIDATE_ENV: &str = "CARFEED_BENCH_NGINX_CANDIDATE";
/// Extra open-loop rates (req/s, comma-separated) for the api direct.
const RATES_ENV: &str = "CARFEED_BENCH_API_RATES";
/// One-second closed-loop slices per peak run.
const PEAK_SLICES: usize = 3;
/// The p99 goal at half the peak, in ms.
const P99_GOAL_MS: f64 = 5.0;

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let rows = rows.unwrap_or(DEFAULT_ROWS);
    fill(&db.pool, rows).await?;
    let token = api::tokens::issue(&db.pool, SECRET, 1, "bench", None).await?[0]
        .expose()
        .to_owned();
    let url = database_url(&db.pool).await?;

    // The production variant, one with the guards off, and another
    // production one for nginx: each process serves one variant's load only.
    let production = Variant::new("bench-api", PRODUCTION);
    let full = Server::start(&url, &production)?;
    let guards_off = Server::start(&url, &Variant::new("bench-api-guards-off", GUARDS_OFF))?;
    let proxied = Server::start(&url, &Variant::new("bench-api-nginx", PRODUCTION))?;
    let binary = Nginx::binary();
    let nginx = match &binary {
        Some(binary) => Some(Nginx::start(binary, &Nginx::source(), &proxied.address)?),
        None => {
            eprintln!("bench api: no nginx binary; the through-nginx figures are skipped");
            None
        }
    };
    // For tuning: candidate copies of nginx/ measured in alternation with
    // the repo's, reported in the log only.
    let mut candidates = Vec::new();
    if let (Some(binary), Ok(sources)) = (&binary, std::env::var(CANDIDATE_ENV)) {
        for source in sources.split(',') {
            let nginx = Nginx::start(binary, std::path::Path::new(source), &proxied.address)?;
            candidates.push((source.to_owned(), nginx));
        }
    }
    // Direct requests ask for no gzip, as nginx asks the api; nginx's
    // clients ask for gzip, as browsers do.
    let load = Load::new(token.clone(), false)?;
    let load_nginx = Load::new(token, true)?;
    // pgbench: the SQL the api sent for TYPICAL, with as many clients as
    // the api has connections.
    let pool_size = production.settings()?.database.max_connections.get();
    let replay = replay_typical(&db.pool, &url, &load, pool_size).await?;
    // One request each first: the token is then in every api's cache, as in
    // a steady state. (32 concurrent first requests would each look the
    // token up, and those past api.rate_limit.lookups_burst get a 429.)
    for server in [&full, &guards_off, &proxied] {
        load.get(&format!("{}{TYPICAL}", server.base())).await?;
    }
    eprintln!("bench api: pgbench replays {}", replay.sql);
    if !load::raise_priority() {
        eprintln!("bench api: could not raise the load generator's priority; see its send lag");
    }
    let mut cpu = Cpu {
        api: vec![full.pid(), guards_off.pid(), proxied.pid()],
        nginx: nginx
            .iter()
            .chain(candidates.iter().map(|(_, c)| c))
            .map(Nginx::pid)
            .collect(),
        database: sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&db.pool)
            .await?,
    };

    // Peaks. The production variant sits between the two it is compared
    // to; pgbench (the api's session settings, then every run re-planned)
    // next to the guards-off variant.
    let mut labels: Vec<String> = [
        "peak_pgbench_api_session",
        "peak_pgbench_force_custom_plan",
        "peak_guards_off",
        "peak_direct",
    ]
    .map(String::from)
    .into();
    let mut bases = vec![guards_off.base(), full.base()];
    if let Some(nginx) = &nginx {
        labels.push("peak_nginx".into());
        bases.push(nginx.base());
    }
    for (source, candidate) in &candidates {
        labels.push(format!("peak_nginx_candidate {source}"));
        bases.push(candidate.base());
    }
    let urls: Vec<String> = bases.iter().map(|b| format!("{b}{TYPICAL}")).collect();
    // Each run is PEAK_SLICES one-second slices, alternated like runs, so a
    // burst of noise from elsewhere on the machine hits every variant alike.
    let sliced = Plan {
        runs: plan.runs * PEAK_SLICES,
        warmup: plan.warmup * PEAK_SLICES,
    };
    let peaks = interleaved(&sliced, &labels, |i| {
        let load = if i >= PGBENCH_LABELS + 2 {
            &load_nginx
        } else {
            &load
        };
        let (cpu, replay) = (&cpu, &replay);
        let url = (i >= PGBENCH_LABELS).then(|| urls[i - PGBENCH_LABELS].clone());
        async move {
            let before = cpu.snapshot();
            let peak = match (i, url) {
                (0, _) => replay.run(1, API_SESSION)?,
                (1, _) => replay.run(1, REPLANNED_SESSION)?,
                (_, Some(url)) => load.peak(&url).await?,
                (_, None) => unreachable!("every label has a url or is pgbench"),
            };
            Ok((peak, cpu.since(&before)))
        }
    })
    .await?;
    let [pgbench_api, pgbench_replanned] = [0, 1].map(|i| Measured::from_runs(peaks[i].clone()));
    let pgbench_ratio = paired("api / pgbench", &peaks[3], &peaks[0]);
    let peaks = peaks[PGBENCH_LABELS..].to_vec();
    let [peak_guards_off, peak] = [0, 1].map(|i| Measured::from_runs(peaks[i].clone()));
    let guards_ratio = paired("guards on / off", &peaks[1], &peaks[0]);
    let peak_nginx = nginx
        .as_ref()
        .map(|_| Measured::from_runs(peaks[2].clone()));

    // The floor under the direct latency: the typical page's bytes from a
    // bare axum server with no api and no database, at the same rate, in
    // alternation with it. What this 2-core VM, its scheduler, HTTP and the
    // generator add to every request, whichever server answers.
    let page = load.get_json(&urls[1]).await?.to_string();
    let canned = Server::start(&url, &Variant::canned("bench-canned", page))?;
    let canned_url = format!("{}{TYPICAL}", canned.base());
    load.get(&canned_url).await?;
    // Its CPU shows as "api" in the canned runs' lines.
    cpu.api.push(canned.pid());
    // Latency at half of each path's own peak.
    let mut labels = vec!["half_peak_direct".to_owned(), "half_peak_canned".to_owned()];
    // (url, req/s, direct: without nginx and gzip)
    let mut targets = vec![
        (urls[1].clone(), peak.median / 2.0, true),
        (canned_url, peak.median / 2.0, true),
    ];
    if let Some(peak_nginx) = &peak_nginx {
        labels.push("half_peak_nginx".into());
        targets.push((urls[2].clone(), peak_nginx.median / 2.0, false));
        for (i, (source, _)) in candidates.iter().enumerate() {
            paired(&format!("nginx {source} / nginx"), &peaks[3 + i], &peaks[2]);
            // At the repo's rate, so the latencies are comparable.
            labels.push(format!("half_peak_nginx_candidate {source}"));
            targets.push((urls[3 + i].clone(), peak_nginx.median / 2.0, false));
        }
    }
    // For finding where the tail comes from: the api direct at fixed rates,
    // in the same alternation, reported in the log only.
    let first_fixed = labels.len();
    for rate in fixed_rates()? {
        labels.push(format!("direct_at {rate:.0} req/s"));
        targets.push((urls[1].clone(), rate, true));
    }
    let latencies = interleaved(&plan, &labels, |i| {
        let (cpu, (url, rate, direct)) = (&cpu, &targets[i]);
        let load = if *direct { &load } else { &load_nginx };
        async move {
            let before = cpu.snapshot();
            let run = load.open_loop(url, *rate).await?;
            let p50 = percentile(&run.latencies, 0.50);
            let p99 = percentile(&run.latencies, 0.99);
            let note = format!(
                "{}; at {rate:.0} req/s; send lag p50/p99/max {:.2}/{:.2}/{:.2} ms, \
                 of which the pacer's p99 {:.2} ms",
                cpu.since(&before),
                percentile(&run.lags, 0.50),
                percentile(&run.lags, 0.99),
                percentile(&run.lags, 1.0),
                percentile(&run.pacer_lags, 0.99),
            );
            Ok(((p50, p99), note))
        }
    })
    .await?;
    let split = |runs: &Vec<(f64, f64)>| {
        (
            Measured::from_runs(runs.iter().map(|r| r.0).collect()),
            Measured::from_runs(runs.iter().map(|r| r.1).collect()),
        )
    };
    for (label, runs) in labels.iter().zip(&latencies).skip(first_fixed) {
        let (p50, p99) = split(runs);
        eprintln!(
            "bench api: {label}: p50 {:.2} ms, p99 {:.2} ms (medians)",
            p50.median, p99.median
        );
    }
    let (p50, p99) = split(&latencies[0]);
    let (canned_p50, canned_p99) = split(&latencies[1]);
    cpu.api.retain(|pid| *pid != canned.pid());
    drop(canned);
    let nginx_latency = latencies.get(2).map(split);

    let (page1, deep, deep_page) = pages(&plan, &load, &full.base()).await?;
    // The larger of the two production processes' high-water marks.
    let rss = full.peak_rss_mib()?.max(proxied.peak_rss_mib()?);
    drop((nginx, candidates));
    drop((full, guards_off, proxied));

    let (p50_median, p99_median) = (p50.median, p99.median);
    let mut figures = vec![
        Figure::new(
            "peak direct",
            "req/s",
            peak.clone(),
            Some(("pgbench, same SQL (interleaved)", pgbench_api.median)),
            Better::Higher,
            None,
        ),
        // The goal is on the ratio of each pair of adjacent slices, as below.
        Figure::new(
            "peak, api / pgbench",
            "ratio",
            pgbench_ratio,
            Some(("same slice pair", 1.0)),
            Better::Higher,
            Some(0.8),
        ),
        Figure::new(
            "pgbench, force_custom_plan",
            "req/s",
            pgbench_replanned,
            Some(("api's session (plan cache)", pgbench_api.median)),
            Better::Higher,
            None,
        ),
        Figure::new(
            "p50 at half peak, direct",
            "ms",
            p50,
            Some(("p99 goal", P99_GOAL_MS)),
            Better::Lower,
            None,
        ),
        Figure::new(
            "p99 at half peak, direct",
            "ms",
            p99,
            Some(("p99 goal", P99_GOAL_MS)),
            Better::Lower,
            Some(1.0),
        ),
        Figure::new(
            "p50 at half peak, canned answer",
            "ms",
            canned_p50,
            Some(("api direct (interleaved)", p50_median)),
            Better::Lower,
            None,
        ),
        Figure::new(
            "p99 at half peak, canned answer",
            "ms",
            canned_p99,
            Some(("api direct (interleaved)", p99_median)),
            Better::Lower,
            None,
        ),
        Figure::new(
            format!("page {deep_page}, mean latency"),
            "ms",
            deep,
            Some(("page 1 (interleaved)", page1.median)),
            Better::Lower,
            Some(1.2),
        ),
        // The goals are on the ratio of each pair of adjacent slices (on
        // and off measured back to back), whose median shrugs off a burst of
        // noise that a ratio of two medians would not.
        Figure::new(
            "peak, guards on / off",
            "ratio",
            guards_ratio,
            Some(("same slice pair", 1.0)),
            Better::Higher,
            Some(0.95),
        ),
        Figure::new(
            "peak, guards off",
            "req/s",
            peak_guards_off,
            Some(("guards on", peak.median)),
            Better::Higher,
            None,
        ),
        Figure::new(
            "peak resident memory",
            "MiB",
            Measured::from_runs(vec![rss]),
            Some(("budget", 50.0)),
            Better::Lower,
            Some(1.0),
        ),
    ];
    if let (Some(peak_nginx), Some((n50, n99))) = (peak_nginx, nginx_latency) {
        figures.push(Figure::new(
            "peak through nginx",
            "req/s",
            peak_nginx,
            Some(("direct (interleaved)", peak.median)),
            Better::Higher,
            None,
        ));
        figures.push(Figure::new(
            "p50 at half peak, nginx",
            "ms",
            n50,
            Some(("p99 goal", P99_GOAL_MS)),
            Better::Lower,
            None,
        ));
        figures.push(Figure::new(
            "p99 at half peak, nginx",
            "ms",
            n99,
            Some(("p99 goal", P99_GOAL_MS)),
            Better::Lower,
            Some(1.0),
        ));
    }
    Ok(Report {
        bench: "api",
        context: format!(
            "{rows} rows in processed_data, GET {TYPICAL}, {CONNECTIONS} connections for the peak \
             ({PEAK_SLICES} x 1 s per run), \
             open loop at half the peak for latency (and a canned answer at the direct rate: \
             the machine's floor), each api variant in its own process \
             with the shipped settings (a pool of database.max_connections), pgbench replaying \
             the api's statement with as many clients, compared variants measured in alternation; \
             guards: statement_timeout, in-flight cap, limiter"
        ),
        figures,
    })
}

/// The rates of `RATES_ENV`, none when it is unset.
fn fixed_rates() -> anyhow::Result<Vec<f64>> {
    let Ok(list) = std::env::var(RATES_ENV) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .with_context(|| format!("{RATES_ENV}: {r:?} is not a rate in req/s"))
        })
        .collect()
}

/// Runs every variant once per round, warm-up rounds first, reversing the
/// order every other round (A B C, C B A, ...), so the variants alternate
/// and each gets the same warm-up and measured runs. `once(i)` measures
/// variant `i` and returns its value and a note for the log. Returns the
/// measured values of each variant, round by round.
async fn interleaved<T, F, Fut>(
    plan: &Plan,
    labels: &[impl AsRef<str>],
    mut once: F,
) -> anyhow::Result<Vec<Vec<T>>>
where
    T: std::fmt::Debug,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<(T, String)>>,
{
    let mut runs: Vec<Vec<T>> = labels.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.warmup + plan.runs {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let warm_up = round < plan.warmup;
        let what = if warm_up {
            format!("warm-up {}", round + 1)
        } else {
            format!("run {}", round + 1 - plan.warmup)
        };
        for i in order {
            let (value, note) = once(i)
                .await
                .with_context(|| format!("{}: {what}", labels[i].as_ref()))?;
            eprintln!("  {}: {what} -> {value:.2?} ({note})", labels[i].as_ref());
            if !warm_up {
                runs[i].push(value);
            }
        }
    }
    Ok(runs)
}

/// Logs the round-by-round ratios of two interleaved variants.
/// The round-by-round ratios of two interleaved variants (logged).
fn paired(name: &str, on: &[f64], off: &[f64]) -> Measured {
    let ratios: Vec<f64> = on.iter().zip(off).map(|(a, b)| a / b).collect();
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    let measured = Measured::from_runs(ratios);
    eprintln!(
        "  {name}, round by round: {} (median {:.3})",
        shown.join(" "),
        measured.median
    );
    measured
}

/// Mean latency (ms) of page 1 and of page 1,000 of the typical list (or
/// its last page, when a small `--rows` has fewer), measured in alternation.
async fn pages(
    plan: &Plan,
    load: &Load,
    base: &str,
) -> anyhow::Result<(Measured, Measured, usize)> {
    let mut cursor = String::new();
    let mut page = 1;
    while page < 1000 {
        let body = load.get_json(&format!("{base}{TYPICAL}{cursor}")).await?;
        let Some(next) = body["next_cursor"].as_str() else {
            break;
        };
        cursor = format!("&cursor={next}");
        page += 1;
    }
    if page < 1000 {
        eprintln!("bench api: the typical list has only {page} pages; page {page} stands in for page 1,000");
    }
    let urls = [
        format!("{base}{TYPICAL}"),
        format!("{base}{TYPICAL}{cursor}"),
    ];
    let runs = interleaved(plan, &["page_1_mean_ms", "page_deep_mean_ms"], |i| {
        let (load, url) = (load.clone(), urls[i].clone());
        async move {
            let n = 300;
            let mean = load
                .clone()
                .on_generator(async move {
                    let start = Instant::now();
                    for _ in 0..n {
                        load.get(&url).await?;
                    }
                    Ok(start.elapsed().as_secs_f64() * 1000.0 / f64::from(n))
                })
                .await?;
            Ok((mean, format!("{n} requests one after another")))
        }
    })
    .await?;
    let [first, deep] = [0, 1].map(|i| Measured::from_runs(runs[i].clone()));
    Ok((first, deep, page))
}

/// The CPU time of every process taking part, per run.
struct Cpu {
    api: Vec<u32>,
    nginx: Vec<u32>,
    database: String,
}

struct CpuSnapshot {
    at: Instant,
    seconds: HashMap<u32, f64>,
}

impl Cpu {
    fn groups(&self) -> Vec<(&'static str, Vec<u32>)> {
        vec![
            ("bench", vec![std::process::id()]),
            ("api", self.api.clone()),
            (
                "nginx",
                self.nginx
                    .iter()
                    .flat_map(|pid| with_children(*pid))
                    .collect(),
            ),
            ("postgres", backends_of(&self.database)),
        ]
    }

    fn snapshot(&self) -> CpuSnapshot {
        let seconds = self
            .groups()
            .into_iter()
            .flat_map(|(_, pids)| pids)
            .map(|pid| (pid, cpu_seconds(pid)))
            .collect();
        CpuSnapshot {
            at: Instant::now(),
            seconds,
        }
    }

    /// "cpu: bench 30%, api 90%, ..." since `before`, in % of one core.
    fn since(&self, before: &CpuSnapshot) -> String {
        let wall = before.at.elapsed().as_secs_f64();
        let shares: Vec<String> = self
            .groups()
            .into_iter()
            .map(|(name, pids)| {
                let used: f64 = pids
                    .iter()
                    .map(|pid| cpu_seconds(*pid) - before.seconds.get(pid).copied().unwrap_or(0.0))
                    .sum();
                format!("{name} {:.0}%", used / wall * 100.0)
            })
            .collect();
        format!("cpu: {}", shares.join(", "))
    }
}

/// `rows` offers in chunks of 100,000, one INSERT ... SELECT each: ten marks
/// of three models, prices, years, mileages, cities and listing times spread
/// out, one in eleven inactive, records of about 700 bytes.
pub(crate) async fn fill(pool: &PgPool, rows: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut from = 0;
    while from < rows {
        let to = (from + CHUNK_ROWS).min(rows);
        sqlx::query(include_str!("api_fill.sql"))
            .bind(from as i64)
            .bind(to as i64 - 1)
            .execute(pool)
            .await
            .with_context(|| format!("fill rows {from}..{to}"))?;
        from = to;
    }
    sqlx::query("ANALYZE processed_data").execute(pool).await?;
    eprintln!(
        "bench api: {rows} rows in processed_data in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// pgbench's replay of the statement the api sends for TYPICAL, read back
/// from Postgres: a probe api with one connection answers TYPICAL (twice:
/// the first also looks the token up), and that connection's last
/// statement is the page's.
async fn replay_typical(
    pool: &PgPool,
    url: &str,
    load: &Load,
    clients: u32,
) -> anyhow::Result<Replay> {
    let probe = Variant::new("bench-api-probe", PRODUCTION).pool(1);
    let server = Server::start(url, &probe)?;
    for _ in 0..2 {
        let page = load
            .get_json(&format!("{}{TYPICAL}", server.base()))
            .await?;
        let items = page["items"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(items == 20, "TYPICAL answered {items} offers");
    }
    let sql = pgbench::last_statement(pool, &probe.name).await?;
    drop(server);
    Replay::new(pool, &sql, typical_bind, 21, url, clients).await
}

/// The URL of the bench database, for the api child.
async fn database_url(pool: &PgPool) -> anyhow::Result<String> {
    let options = pool.connect_options();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await?;
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if let Some((server, _)) = url.rsplit_once('/') {
            return Ok(format!("{server}/{name}"));
        }
    }
    Ok(format!(
        "postgres://{}@{}:{}/{name}",
        options.get_username(),
        options.get_host(),
        options.get_port()
    ))
}
