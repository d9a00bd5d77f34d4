//! The worker fleet: no-op coordination tasks/s (claim, fetch from a
//! zero-latency origin through a local proxy, save, complete) for 1, 2 and 4
//! in-process workers against a claim-one/complete-one autocommit loop in
//! the same run, with SQL transactions per task; and the 50 ms latency curve
//! (tasks/s as slots grow against a fixed number of proxies); and kill -9 to
//! full reclaim of real processes (`worker_reclaim`).

use std::time::{Duration, Instant};

use domain::fleet::TaskKind;
use sqlx::{Connection, PgPool};
use test_support::origin::Origin;
use test_support::proxy::TestProxy;
use tokio_util::sync::CancellationToken;

use crate::harness::{per_second, BenchDatabase, Better, Figure, Measured, Plan, Report};

const DEFAULT_TASKS: usize = 5_000;
/// The 50 ms curve's proxies, and the no-op figures' small pool: with 8,
/// at most 8 fetches are in flight however many workers run.
const PROXIES: usize = 8;
/// The no-op figures' fleet-sized pool (users upload hundreds): enough
/// that 4 workers x FLEET_SLOTS never wait for a proxy.
const FLEET_PROXIES: usize = 128;
/// Slots per worker in the no-op figures (config.yaml's default).
const NOOP_SLOTS: usize = 8;
/// Slots per worker for a worker with many proxies to keep busy: a worker
/// frees more slots at once, so each claim and each completion carries
/// more tasks.
const FLEET_SLOTS: usize = 32;
/// The no-op shapes: (proxies, slots per worker), each for 1, 2, 4 workers.
const NOOP_SHAPES: [(usize, usize); 3] = [
    (PROXIES, NOOP_SLOTS),
    (FLEET_PROXIES, NOOP_SLOTS),
    (FLEET_PROXIES, FLEET_SLOTS),
];

/// The bench's worker settings; `CARFEED__WORKER__*` variables of the
/// bench's environment (other than slots) are passed on, to try settings.
fn settings(slots: usize) -> settings::Settings {
    let tried = std::env::vars()
        .filter(|(k, _)| k.starts_with("CARFEED__WORKER__") && k != "CARFEED__WORKER__SLOTS");
    let mut pairs = vec![
        (
            "CONFIG_FILE".to_owned(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yaml").to_owned(),
        ),
        ("DATABASE_URL".to_owned(), "postgres://unused/db".to_owned()),
        ("CARFEED__WORKER__SLOTS".to_owned(), slots.to_string()),
        // The bench's origin and proxies listen on 127.0.0.1.
        (
            "CARFEED__WORKER__ALLOW_PRIVATE_TARGETS".to_owned(),
            "true".to_owned(),
        ),
        ("CARFEED__WORKER__IDLE_POLL".to_owned(), "20ms".to_owned()),
    ];
    pairs.extend(tried);
    settings::load_from(&settings::Env::from_pairs(pairs)).expect("bench settings")
}

/// Empty tables, and `proxies` the only proxies, all free.
async fn reset(pool: &PgPool, proxies: &[String]) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE tasks, results, workers, proxies")
        .execute(pool)
        .await?;
    db::proxies::insert(pool, proxies).await?;
    Ok(())
}

/// `commits` once the backends that just closed have reported theirs.
async fn settled_commits(pool: &PgPool) -> anyhow::Result<i64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    commits(pool).await
}

async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// Tasks/s for `workers` x `slots` over `tasks` tasks through `proxies`;
/// also transactions/task.
async fn fleet(
    db: &BenchDatabase,
    origin: &Origin,
    proxies: &[String],
    workers: usize,
    slots: usize,
    tasks: usize,
) -> anyhow::Result<(f64, f64)> {
    let pool = &db.pool;
    reset(pool, proxies).await?;
    let targets: Vec<String> = (0..tasks).map(|i| origin.url(&format!("/b/{i}"))).collect();
    db::tasks::insert(pool, TaskKind::FetchUrl, &targets).await?;
    // As `worker tasks upload` does.
    db::tasks::refresh_planner_stats(pool).await?;
    let before = commits(pool).await?;
    let stop = CancellationToken::new();
    let start = Instant::now();
    let mut running = Vec::new();
    for _ in 0..workers {
        let settings = settings(slots);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&db.url())
            .await?;
        let stop = stop.clone();
        running.push(tokio::spawn(async move {
            worker::run(bootstrap::Context::new(
                "worker",
                settings::Settings::clone(&settings),
                pool,
                stop,
            ))
            .await
        }));
    }
    // Polled on a connection of its own, closed before the count: a backend
    // reports its transactions to pg_stat_database by the time it exits.
    // The workers' completed counters move in the transactions that
    // complete tasks, and reading a few rows costs the measured fleet no
    // CPU to speak of (counting `tasks` every 5 ms did).
    let mut poller = sqlx::postgres::PgConnection::connect(&db.url()).await?;
    let mut polls = 0i64;
    loop {
        polls += 1;
        let done: i64 =
            sqlx::query_scalar("SELECT COALESCE(sum(tasks_completed), 0)::bigint FROM workers")
                .fetch_one(&mut poller)
                .await?;
        if done == tasks as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    poller.close().await?;
    stop.cancel();
    for run in running {
        run.await??;
    }
    let after = settled_commits(pool).await?;
    Ok((
        per_second(tasks, elapsed),
        (after - before - polls) as f64 / tasks as f64,
    ))
}

/// The baseline: one connection, autocommit, claim one (task, proxy) pair
/// (`claims::claim_pairs`, the worker's claim), fetch it through the
/// proxy, then save its result, complete it and free the proxy
/// (`claims::finish_claims`): two transactions per task. Tasks/s and
/// transactions/task.
async fn one_by_one(
    db: &BenchDatabase,
    origin: &Origin,
    proxy_url: &str,
    tasks: usize,
) -> anyhow::Result<(f64, f64)> {
    let pool = &db.pool;
    reset(pool, &[proxy_url.to_owned()]).await?;
    let targets: Vec<String> = (0..tasks).map(|i| origin.url(&format!("/b/{i}"))).collect();
    db::tasks::insert(pool, TaskKind::FetchUrl, &targets).await?;
    // As `worker tasks upload` does.
    db::tasks::refresh_planner_stats(pool).await?;
    let worker_id = db::workers::register(pool, "baseline", 1, Duration::from_secs(90)).await?;
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy_url)?)
        .build()?;
    let before = commits(pool).await?;
    let mut conn = sqlx::postgres::PgConnection::connect(&db.url()).await?;
    let start = Instant::now();
    loop {
        let Some((task, proxy)) = db::claims::claim_pairs(
            &mut conn,
            worker_id,
            1,
            &[domain::fleet::TaskKind::FetchUrl],
        )
        .await?
        .pop() else {
            break;
        };
        let body = client.get(&task.target).send().await?.text().await?;
        let proxy = db::tasks::Lease {
            id: proxy.id,
            lease: proxy.lease,
            worker_id,
        };
        let result = db::results::NewResult {
            task_id: task.id,
            lease: task.lease,
            worker_id,
            status_code: 200,
            headers: serde_json::json!({}),
            body: Some(body.into_bytes()),
            body_truncated: false,
        };
        db::claims::finish_claims(&mut conn, &[result], &[], &[proxy]).await?;
    }
    let rate = per_second(tasks, start.elapsed());
    conn.close().await?;
    let after = settled_commits(pool).await?;
    Ok((rate, (after - before) as f64 / tasks as f64))
}

/// Only the kill -9 figure.
pub async fn reclaim_only(db: &BenchDatabase, kills: usize) -> anyhow::Result<Report> {
    Ok(Report {
        bench: "worker",
        context: format!(
            "{kills} kill(s) of a real `worker run` beside a survivor; heartbeat 5 s, stale after 15 s, sweep every 5 s"
        ),
        figures: crate::worker_reclaim::figures(db, kills).await?,
    })
}

/// The fleet's local origin and proxies (each run registers the ones it
/// uses).
async fn rig() -> anyhow::Result<(Origin, Vec<TestProxy>, Vec<String>)> {
    let origin = Origin::start(Duration::ZERO).await;
    let mut proxies = Vec::new();
    for _ in 0..FLEET_PROXIES {
        proxies.push(TestProxy::start(None).await);
    }
    let urls: Vec<String> = proxies.iter().map(|p| p.url(None)).collect();
    Ok((origin, proxies, urls))
}

/// Only the no-op coordination figures.
pub async fn noop_only(
    db: &BenchDatabase,
    plan: Plan,
    rows: Option<usize>,
) -> anyhow::Result<Report> {
    let tasks = rows.unwrap_or(DEFAULT_TASKS);
    let (origin, _proxies, urls) = rig().await?;
    Ok(Report {
        bench: "worker",
        context: format!(
            "{tasks} no-op tasks, in-process workers, {PROXIES} or {FLEET_PROXIES} local proxies"
        ),
        figures: noop_figures(db, plan, &origin, &urls, tasks).await?,
    })
}

/// No-op coordination: 1, 2 and 4 workers x 8 slots through 8 proxies and
/// through a fleet-sized pool, and x FLEET_SLOTS through that pool, against
/// the claim-one/complete-one baseline (one connection, one proxy), with
/// SQL transactions per task.
async fn noop_figures(
    db: &BenchDatabase,
    plan: Plan,
    origin: &Origin,
    urls: &[String],
    tasks: usize,
) -> anyhow::Result<Vec<Figure>> {
    let baseline_tx = std::sync::Mutex::new(Vec::new());
    let baseline = plan
        .measure("claim_one_complete_one", || async {
            let (rate, tx) = one_by_one(db, origin, &urls[0], tasks).await?;
            baseline_tx.lock().unwrap().push(tx);
            Ok(rate)
        })
        .await?;
    let baseline_tx = Measured::from_runs(baseline_tx.into_inner().unwrap());
    let mut figures = vec![
        Figure::new(
            "baseline: claim one, complete one",
            "tasks/s",
            baseline.clone(),
            None,
            Better::Higher,
            None,
        ),
        Figure::new(
            "  baseline SQL transactions per task",
            "tx/task",
            baseline_tx.clone(),
            None,
            Better::Higher,
            None,
        ),
    ];
    for (proxies, slots) in NOOP_SHAPES {
        for workers in [1, 2, 4] {
            let per_task = std::sync::Mutex::new(Vec::new());
            let measured = plan
                .measure(
                    &format!("noop_{workers}_workers_{slots}_slots_{proxies}_proxies"),
                    || async {
                        let (rate, tx) =
                            fleet(db, origin, &urls[..proxies], workers, slots, tasks).await?;
                        per_task.lock().unwrap().push(tx);
                        Ok(rate)
                    },
                )
                .await?;
            let per_task = per_task.into_inner().unwrap();
            figures.push(Figure::new(
                format!("no-op, {workers} worker(s) x {slots} slots, {proxies} proxies"),
                "tasks/s",
                measured,
                Some(("claim one, complete one", baseline.median)),
                Better::Higher,
                Some(10.0),
            ));
            figures.push(Figure::new(
                format!("  SQL transactions per task ({workers}w x {slots}, {proxies}p)"),
                "tx/task",
                Measured::from_runs(per_task),
                Some(("claim one, complete one", baseline_tx.median)),
                Better::Higher,
                None,
            ));
        }
    }
    Ok(figures)
}

pub async fn run(
    db: &BenchDatabase,
    plan: Plan,
    rows: Option<usize>,
    kills: usize,
) -> anyhow::Result<Report> {
    let tasks = rows.unwrap_or(DEFAULT_TASKS);
    let (origin, _proxies, urls) = rig().await?;
    let mut figures = noop_figures(db, plan, &origin, &urls, tasks).await?;
    origin.set_latency(Duration::from_millis(50));
    let small = (tasks / 10).max(200);
    for slots in [1, 2, 4, 8, 16, 32] {
        let measured = plan
            .measure(&format!("latency50_{slots}_slots"), || async {
                Ok(fleet(db, &origin, &urls[..PROXIES], 1, slots, small)
                    .await?
                    .0)
            })
            .await?;
        figures.push(Figure::new(
            format!("50 ms upstream, {slots} slot(s), {PROXIES} proxies"),
            "tasks/s",
            measured,
            Some((
                "ideal: min(slots, proxies) x 20/s",
                (slots.min(PROXIES) * 20) as f64,
            )),
            Better::Higher,
            None,
        ));
    }
    figures.extend(crate::worker_reclaim::figures(db, kills).await?);
    Ok(Report {
        bench: "worker",
        context: format!(
            "{tasks} no-op tasks, in-process workers, local proxies; {kills} kill(s) of a real worker"
        ),
        figures,
    })
}
