//! Browser-rendered fetches and extraction (issue 15), against real
//! Chromium, the test forward proxy and a local site whose listings appear
//! only after its JavaScript runs (test_support::site). Tests that need the
//! browser skip, saying so, when Chromium is not installed
//! (scripts/install-chromium.sh installs it), and fail under CI, which
//! installs it.

mod support;

use std::time::Duration;

use domain::fleet::TaskKind;
use serde_json::{json, Value};
use sqlx::PgPool;
use test_support::proxy::TestProxy;
use test_support::site::Site;
use tokio_util::sync::CancellationToken;

use support::{count, fast, own_pool, spawn_worker, wait_until};

const LISTING_FIELDS: [&str; 5] = ["dealer_url", "mileage_km", "photos", "price", "title"];

/// Whether Chromium is installed; a missing one skips the test, or fails
/// it under CI (`test_support::tool`).
fn chromium_installed() -> bool {
    let found = test_support::tool::or_skip(
        "chromium",
        worker::browser::find_executable(""),
        "run scripts/install-chromium.sh; this test needs a real browser",
    );
    if let Some(path) = &found {
        eprintln!("using {}", path.display());
    }
    found.is_some()
}

/// Browser settings for a loaded 2-core machine: generous page timeout.
fn browser_settings(slots: &str) -> settings::Settings {
    fast(&[
        ("worker.browser.enabled", "true"),
        ("worker.slots", slots),
        ("worker.browser.page_timeout", "30s"),
        ("worker.request_timeout", "20s"),
        ("worker.heartbeat_interval", "1s"),
        ("worker.stale_after_beats", "10"),
    ])
}

struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(pool: &PgPool, settings: settings::Settings) -> Running {
    let stop = CancellationToken::new();
    let pool = own_pool(pool).await;
    let handle = spawn_worker(&settings, pool, &stop);
    Running { stop, handle }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

async fn upload(pool: &PgPool, kind: TaskKind, lines: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), lines).unwrap();
    let up = worker::upload::tasks_with(
        pool,
        file.path(),
        kind,
        &worker::page::TaskParams::default(),
        Some(&["listing".to_owned()]),
    )
    .await
    .unwrap();
    assert!(up.bad.is_empty(), "{:?}", up.bad);
}

async fn all_completed(pool: &PgPool, n: i64, limit: Duration) {
    wait_until(limit, "every task completed", || async {
        count(
            pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == n
    })
    .await;
}

/// (target, data, missing_fields, final_url, status_code, body, has screenshot)
type Row = (
    String,
    Option<Value>,
    Option<Vec<String>>,
    Option<String>,
    i32,
    Option<String>,
    Option<Vec<u8>>,
);

async fn results(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT target, data, missing_fields, final_url, status_code, convert_from(body, 'UTF8') AS body, screenshot
           FROM results ORDER BY task_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn fetch_url_with_the_profile_sees_the_empty_shell_and_names_every_field(pool: PgPool) {
    let site = Site::start().await;
    let proxy = TestProxy::start(None).await;
    db::proxies::insert(&pool, &[proxy.url(None)])
        .await
        .unwrap();
    upload(
        &pool,
        TaskKind::FetchUrl,
        &format!(
            "{{\"url\": \"{}\", \"extract\": \"listing\"}}\n",
            site.url("/car/1")
        ),
    )
    .await;
    let worker = start(&pool, fast(&[])).await;
    all_completed(&pool, 1, Duration::from_secs(60)).await;
    worker.stop().await;

    let rows = results(&pool).await;
    let (_, data, missing, _, status, body, _) = &rows[0];
    assert_eq!(*status, 200);
    assert!(body.as_deref().unwrap().contains("Loading"), "the shell");
    assert_eq!(
        missing.as_deref().unwrap(),
        LISTING_FIELDS,
        "no listing before JavaScript runs"
    );
    let data = data.as_ref().unwrap();
    for field in LISTING_FIELDS {
        assert!(
            data[field].is_null() || data[field] == json!([]),
            "{field}: {}",
            data[field]
        );
    }
    assert!(proxy.forwarded() >= 1, "fetched through the proxy");
    assert_eq!(site.hits("/api/car/1"), 0, "no script ran");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn render_url_through_an_authenticated_proxy_extracts_every_listing_field_and_plain_workers_leave_it(
    pool: PgPool,
) {
    if !chromium_installed() {
        return;
    }
    let site = Site::start().await;
    let auth = Some(("bob", "s3cret"));
    let proxy = TestProxy::start(auth).await;
    db::proxies::insert(&pool, &[proxy.url(auth)])
        .await
        .unwrap();
    let ids = [1u32, 2, 3, 4];
    let mut lines = String::new();
    for id in ids {
        let screenshot = id == 1;
        let mut line = json!({"url": site.url(&format!("/car/{id}")), "extract": "listing",
                              "screenshot": screenshot});
        // The last one waits for the network to go idle instead.
        if id != 4 {
            line["wait_for"] = json!(".listing .price");
        }
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    upload(&pool, TaskKind::RenderUrl, &lines).await;

    // A worker without a browser never claims render_url tasks.
    let plain = start(&pool, fast(&[])).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasks WHERE status = 'pending'").await,
        ids.len() as i64
    );
    plain.stop().await;

    let worker = start(&pool, browser_settings("2")).await;
    all_completed(&pool, ids.len() as i64, Duration::from_secs(120)).await;
    worker.stop().await;

    let rows = results(&pool).await;
    assert_eq!(rows.len(), ids.len());
    for ((target, data, missing, final_url, status, body, screenshot), id) in rows.iter().zip(ids) {
        assert_eq!(*status, 200);
        assert_eq!(final_url.as_deref(), Some(target.as_str()));
        assert_eq!(
            data.as_ref().unwrap(),
            &site.expected_listing(id),
            "{target}"
        );
        assert!(missing.as_ref().unwrap().is_empty(), "{missing:?}");
        assert!(body.as_deref().unwrap().contains("class=\"listing\""));
        match screenshot {
            Some(png) => {
                assert_eq!(id, 1, "only the task that asked");
                assert!(png.starts_with(b"\x89PNG"), "a PNG");
            }
            None => assert_ne!(id, 1, "task 1 asked for a screenshot"),
        }
    }
    assert!(
        proxy
            .counters
            .auth_refused
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1,
        "the proxy challenged the browser"
    );
    assert!(
        proxy.forwarded() >= ids.len() as u64,
        "pages went through the proxy"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM proxies WHERE status = 'free'").await,
        1
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_captcha_page_blocks_the_proxy_and_the_task_completes_through_a_second_proxy(
    pool: PgPool,
) {
    if !chromium_installed() {
        return;
    }
    let site = Site::start().await;
    let first = TestProxy::start(None).await;
    let second = TestProxy::start(None).await;
    // Inserted in this order: the first claim takes the first proxy.
    db::proxies::insert(&pool, &[first.url(None)])
        .await
        .unwrap();
    db::proxies::insert(&pool, &[second.url(None)])
        .await
        .unwrap();
    site.captcha_once("/car/5");
    upload(
        &pool,
        TaskKind::RenderUrl,
        &format!(
            "{{\"url\": \"{}\", \"wait_for\": \".listing\", \"extract\": \"listing\"}}\n",
            site.url("/car/5")
        ),
    )
    .await;
    let worker = start(&pool, browser_settings("1")).await;
    all_completed(&pool, 1, Duration::from_secs(120)).await;
    worker.stop().await;

    assert_eq!(site.hits("/car/5"), 2, "the captcha, then the listing");
    let blocked: Vec<(String, i64)> =
        sqlx::query_as("SELECT url, blocks FROM proxies WHERE status = 'blocked'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(blocked, vec![(first.url(None), 1)]);
    assert!(first.forwarded() >= 1 && second.forwarded() >= 1);
    assert_eq!(
        count(&pool, "SELECT sum(proxies_blocked)::bigint FROM workers").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT attempts::bigint FROM tasks").await,
        0,
        "a block costs no attempt"
    );
    let rows = results(&pool).await;
    assert_eq!(rows[0].1.as_ref().unwrap(), &site.expected_listing(5));
}

/// Chromium processes this test process started (chromiumoxide spawns the
/// browser as our child; its own children die with it).
fn our_chromium_pids() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if ppid == me && (comm.contains("chrom")) {
            pids.push(pid);
        }
    }
    pids
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_browser_killed_mid_task_is_restarted_and_the_task_retried(pool: PgPool) {
    if !chromium_installed() {
        return;
    }
    let site = Site::start().await;
    let _proxies = support::proxies(&pool, 1).await;
    // The listing API hangs: the task waits in the browser for its selector.
    site.set_api_latency(Duration::from_secs(600));
    upload(
        &pool,
        TaskKind::RenderUrl,
        &format!(
            "{{\"url\": \"{}\", \"wait_for\": \".listing\", \"extract\": \"listing\"}}\n",
            site.url("/car/8")
        ),
    )
    .await;
    let worker = start(&pool, browser_settings("1")).await;
    wait_until(
        Duration::from_secs(60),
        "the page waiting on its API",
        || async { site.hits("/api/car/8") >= 1 },
    )
    .await;
    let browsers = our_chromium_pids();
    assert_eq!(browsers.len(), 1, "one browser per worker: {browsers:?}");
    site.set_api_latency(Duration::ZERO);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(browsers[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    all_completed(&pool, 1, Duration::from_secs(120)).await;
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM tasks")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1, "the crash cost one attempt ({error:?})");
    assert_eq!(
        results(&pool).await[0].1.as_ref().unwrap(),
        &site.expected_listing(8)
    );

    // The worker goes on with its new browser.
    upload(
        &pool,
        TaskKind::RenderUrl,
        &format!(
            "{{\"url\": \"{}\", \"wait_for\": \".listing\", \"extract\": \"listing\"}}\n",
            site.url("/car/9")
        ),
    )
    .await;
    all_completed(&pool, 2, Duration::from_secs(120)).await;
    let now = our_chromium_pids();
    assert_eq!(now.len(), 1, "one browser again: {now:?}");
    assert_ne!(now, browsers, "a new browser");
    worker.stop().await;
    assert_eq!(
        results(&pool).await[1].1.as_ref().unwrap(),
        &site.expected_listing(9)
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_worker");

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_cli_uploads_tasks_with_a_profile_and_the_csv_gives_its_fields_columns(pool: PgPool) {
    use test_support::cli::{lines, run};
    let url = test_support::database_url(&pool.connect_options());
    let env = [("DATABASE_URL", url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls.txt");
    std::fs::write(
        &file,
        "http://a.test/car/1\n{\"url\": \"http://a.test/car/2\", \"wait_for\": \".listing\", \"screenshot\": true}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let upload = |extra: &[&str]| {
        let mut args = vec!["tasks", "upload", "--kind", TaskKind::RenderUrl.as_str()];
        args.extend_from_slice(extra);
        args.push(path);
        run(BIN, &args, &env)
    };
    let refused = upload(&["--extract", "nope"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(lines(&refused).join("\n").contains("worker.extract.nope"));
    let out = upload(&["--extract", "listing"]);
    assert!(out.status.success(), "{out:?}");
    let params: Vec<Value> = sqlx::query_scalar("SELECT params FROM tasks ORDER BY target")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        params,
        vec![
            json!({"extract": "listing"}),
            json!({"extract": "listing", "wait_for": ".listing", "screenshot": true})
        ]
    );

    // Two extracted results of the one profile, stored as the completer does.
    let w = db::workers::register(&pool, "t", 1, Duration::from_secs(60))
        .await
        .unwrap();
    db::proxies::insert(&pool, &["http://p:1".into(), "http://p:2".into()])
        .await
        .unwrap();
    let claimed: Vec<db::tasks::ClaimedTask> =
        db::claims::claim_pairs(&pool, w, 2, domain::fleet::TaskKind::ALL)
            .await
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
    let mut tx = pool.begin().await.unwrap();
    for (task, title) in claimed.iter().zip(["BMW, \"320i\"", "Audi A4"]) {
        let result = db::results::NewResult {
            task_id: task.id,
            lease: task.lease,
            worker_id: w,
            status_code: 200,
            headers: json!({}),
            body: Some("<html></html>".into()),
            body_truncated: false,
        };
        db::results::save_result(&mut tx, &[result]).await.unwrap();
        let page = db::results::PageData {
            task_id: task.id,
            lease: task.lease,
            final_url: Some(task.target.clone()),
            profile: Some("listing".into()),
            data: Some(json!({"title": title, "price": 125800, "photos": ["http://a.test/1.jpg"]})),
            missing_fields: Some(vec![]),
            screenshot: None,
        };
        db::results::save_page_data(&mut tx, &[page]).await.unwrap();
    }
    tx.commit().await.unwrap();

    let out = run(BIN, &["results", "export", "--format", "csv"], &env);
    assert!(out.status.success(), "{out:?}");
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[header.len() - 3..],
        ["photos", "price", "title"],
        "{header:?}"
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][column("title")], "BMW, \"320i\"");
    assert_eq!(&rows[0][column("price")], "125800");
    assert_eq!(&rows[0][column("photos")], "[\"http://a.test/1.jpg\"]");
    assert_eq!(&rows[1][column("final_url")], "http://a.test/car/2");
    assert_eq!(&rows[1][column("profile")], "listing");
}
