//! Browser workers (issue 15): rendered pages/s and the memory of one worker
//! at 1, 2 and 4 tabs (slots), against `fetch_url` on the same pages with
//! the same profile in the same run. The pages are the test site's listings
//! (test_support::site: the listing appears only after its script fetched
//! it), each through a local proxy, waiting for `.listing`, extracted with
//! the shipped `listing` profile. Rates are steady state: from the first
//! completed page to the last, so the browser's launch is not in them.
//! Memory is the peak PSS of this process and everything it started
//! (Chromium's processes), sampled every 100 ms: PSS counts pages shared
//! between Chromium's processes once.

use std::time::{Duration, Instant};

use anyhow::Context;
use domain::fleet::TaskKind;
use sqlx::PgPool;
use test_support::proxy::TestProxy;
use test_support::site::Site;
use tokio_util::sync::CancellationToken;

use crate::harness::{BenchDatabase, Better, Figure, Measured, Plan, Report};

const DEFAULT_PAGES: usize = 60;
const PROXIES: usize = 4;

fn settings(slots: usize, browser: bool) -> settings::Settings {
    let pairs = vec![
        (
            "CONFIG_FILE".to_owned(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yaml").to_owned(),
        ),
        ("DATABASE_URL".to_owned(), "postgres://unused/db".to_owned()),
        ("CARFEED__WORKER__SLOTS".to_owned(), slots.to_string()),
        (
            "CARFEED__WORKER__ALLOW_PRIVATE_TARGETS".to_owned(),
            "true".to_owned(),
        ),
        ("CARFEED__WORKER__IDLE_POLL".to_owned(), "20ms".to_owned()),
        (
            "CARFEED__WORKER__BROWSER__ENABLED".to_owned(),
            browser.to_string(),
        ),
    ];
    settings::load_from(&settings::Env::from_pairs(pairs)).expect("bench settings")
}

async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE tasks, results, workers")
        .execute(pool)
        .await?;
    sqlx::query("UPDATE proxies SET status = 'free', worker_id = NULL")
        .execute(pool)
        .await?;
    Ok(())
}

/// One run: `pages` tasks of `kind` through one in-process worker with
/// `slots` slots; (pages/s at steady state, peak PSS MiB).
async fn run_once(
    db: &BenchDatabase,
    site: &Site,
    kind: TaskKind,
    slots: usize,
    pages: usize,
) -> anyhow::Result<(f64, f64)> {
    let pool = &db.pool;
    reset(pool).await?;
    let targets: Vec<String> = (0..pages)
        .map(|i| site.url(&format!("/car/{}", i + 1)))
        .collect();
    let params = worker::page::TaskParams {
        wait_for: (kind == TaskKind::RenderUrl).then(|| ".listing".to_owned()),
        extract: Some("listing".to_owned()),
        screenshot: false,
    };
    let params = vec![params.to_json(); pages];
    db::tasks::insert_with_params(pool, kind, &targets, &params).await?;
    // As `worker tasks upload` does.
    db::tasks::refresh_planner_stats(pool).await?;

    let settings = settings(slots, kind == TaskKind::RenderUrl);
    let worker_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url())
        .await?;
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move {
            worker::run(bootstrap::Context::new(
                "worker",
                settings::Settings::clone(&settings),
                worker_pool,
                stop,
            ))
            .await
        }
    });
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let mut peak: f64 = 0.0;
            while !sampling.is_cancelled() {
                peak = peak.max(pss_mib_of_tree(std::process::id()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        }
    });
    let mut first: Option<Instant> = None;
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
            .fetch_one(pool)
            .await?;
        if done >= 1 && first.is_none() {
            first = Some(Instant::now());
        }
        if done == pages as i64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "{kind}: {done} of {pages} pages after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = first.context("no page completed")?.elapsed();
    sampling.cancel();
    let peak = sampler.await?;
    stop.cancel();
    running.await??;
    let with_data: i64 =
        sqlx::query_scalar("SELECT count(*) FROM results WHERE cardinality(missing_fields) = 0")
            .fetch_one(pool)
            .await?;
    if kind == TaskKind::RenderUrl {
        anyhow::ensure!(
            with_data == pages as i64,
            "only {with_data} of {pages} rendered pages had every field"
        );
    }
    Ok(((pages - 1) as f64 / elapsed.as_secs_f64(), peak))
}

/// The proportional set size of `root` and all its descendants, in MiB.
fn pss_mib_of_tree(root: u32) -> f64 {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0);
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    let kib: u64 = tree
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    kib as f64 / 1024.0
}

pub async fn run(db: &BenchDatabase, plan: Plan, pages: Option<usize>) -> anyhow::Result<Report> {
    let pages = pages.unwrap_or(DEFAULT_PAGES).max(2);
    let executable = worker::browser::find_executable("")
        .context("the browser bench needs Chromium (scripts/install-chromium.sh)")?;
    let site = Site::start().await;
    let mut proxies = Vec::new();
    for _ in 0..PROXIES {
        proxies.push(TestProxy::start(None).await);
    }
    let urls: Vec<String> = proxies.iter().map(|p| p.url(None)).collect();
    db::proxies::insert(&db.pool, &urls).await?;

    let mut figures = Vec::new();
    for tabs in [1, 2, 4] {
        let memory = std::sync::Mutex::new((Vec::new(), Vec::new()));
        let measured = plan
            .measure_alternating(
                &[
                    &format!("render_{tabs}_tabs"),
                    &format!("fetch_{tabs}_slots"),
                ],
                |variant| {
                    let (site, memory) = (&site, &memory);
                    async move {
                        let kind = if variant == 0 {
                            TaskKind::RenderUrl
                        } else {
                            TaskKind::FetchUrl
                        };
                        let (rate, peak) = run_once(db, site, kind, tabs, pages).await?;
                        let mut memory = memory.lock().unwrap();
                        if variant == 0 {
                            memory.0.push(peak);
                        } else {
                            memory.1.push(peak);
                        }
                        Ok(rate)
                    }
                },
            )
            .await?;
        let (render_mem, fetch_mem) = memory.into_inner().unwrap();
        let fetch_rate = measured[1].median;
        let fetch_pss = Measured::from_runs(fetch_mem);
        figures.push(Figure::new(
            format!("render_url, {tabs} tab(s)"),
            "pages/s",
            measured[0].clone(),
            Some(("fetch_url, same pages+slots", fetch_rate)),
            Better::Higher,
            None,
        ));
        figures.push(Figure::new(
            format!("  peak PSS, worker + Chromium ({tabs})"),
            "MiB",
            Measured::from_runs(render_mem),
            Some(("fetch_url worker, same run", fetch_pss.median)),
            Better::Higher,
            None,
        ));
    }
    Ok(Report {
        bench: "browser",
        context: format!(
            "{pages} JS-rendered listing pages per run, one in-process worker, {PROXIES} local proxies, {}; other helpers share the CPU",
            executable.display()
        ),
        figures,
    })
}
