//! The fleet against what real sites and real proxy lists send (issue 24):
//! a binary body, a listing with a reCAPTCHA footer, a site that always
//! answers 403, a proxy that wants credentials and a dead one; a write
//! Postgres refuses; a completer that cannot write; uploads with bad lines.
//! Real Postgres, real proxies, a real origin, the real binary; no proxy
//! password in anything the binaries print.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use domain::fleet::{ProxyStatus, TaskKind};
use nix::sys::signal::Signal;
use sqlx::PgPool;
use test_support::cli::{lines, run, Running};
use test_support::proxy::TestProxy;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use support::{count, env_name, fast, spawn_worker, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_worker");
/// The good proxy's password: it must appear in no output.
const SECRET: &str = "pw-never-logged-7f3a";

/// A PNG's signature and IHDR chunk: NUL bytes and bytes that are not UTF-8.
fn png() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    bytes.extend_from_slice(&[0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 1, 0, 0, 0, 1]);
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0, 0xff]);
    bytes
}

/// A dealer's listing page: long, its own title, "reCAPTCHA" in the footer.
fn footer_page() -> String {
    format!(
        "<html><head><title>BMW 320i 2019 - Dealer</title></head><body>{}<footer>This site is protected by reCAPTCHA and the Google Privacy Policy and Terms of Service apply.</footer></body></html>",
        "<p>One owner, full service history, winter tyres included.</p>".repeat(100)
    )
}

/// The origin: `/png`, `/footer`, `/always403`, `/slow` (a plain page
/// after 2 s), and any other path a plain page. Counts requests per path.
struct Site {
    addr: std::net::SocketAddr,
    hits: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn({
            let hits = hits.clone();
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let hits = hits.clone();
                    tokio::spawn(async move {
                        let _ = serve(conn, &hits).await;
                    });
                }
            }
        });
        Self { addr, hits, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> u64 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(conn: TcpStream, hits: &Mutex<HashMap<String, u64>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).await? == 0 {
            return Ok(());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        if path == "/slow" {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let (status, kind, body): (u16, &str, Vec<u8>) = match path.as_str() {
            "/png" => (200, "image/png", png()),
            "/footer" => (200, "text/html", footer_page().into_bytes()),
            "/always403" => (403, "text/html", b"<html>Forbidden</html>".to_vec()),
            other => (
                200,
                "text/plain",
                format!("plain page {other}").into_bytes(),
            ),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let conn = reader.get_mut();
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(&body).await?;
    }
}

/// The worker binary's environment: the fast settings plus `extra`.
fn binary_env(url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("DATABASE_URL".to_owned(), url.to_owned())];
    for (k, v) in support::FAST.iter().chain(extra) {
        env.push((env_name(k), (*v).to_owned()));
    }
    env
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Runs a tool of the binary; returns its exit code and its lines.
fn tool(env: &[(String, String)], args: &[&str]) -> (Option<i32>, Vec<String>, Vec<u8>) {
    let out = run(BIN, args, &pairs(env));
    (out.status.code(), lines(&out), out.stdout)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_png_a_footer_page_a_site_that_always_refuses_and_bad_proxies_cost_only_themselves(
    pool: PgPool,
) {
    let site = Site::start().await;
    let good_auth = TestProxy::start(Some(("bob", SECRET))).await;
    let good_open = TestProxy::start(None).await;
    let wants_auth = TestProxy::start(Some(("alice", "other"))).await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = test_support::database_url(&pool.connect_options());
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("health");
    let env = binary_env(
        &url,
        &[
            ("worker.slots", "8"),
            ("worker.max_blocks_per_task", "2"),
            ("worker.proxy_cooldown", "300ms"),
            ("worker.health_file", health.to_str().unwrap()),
        ],
    );
    let mut printed: Vec<String> = Vec::new();

    let proxies = dir.path().join("proxies.txt");
    std::fs::write(
        &proxies,
        format!(
            "127.0.0.1:{}:bob:{SECRET}\n127.0.0.1:{}\n127.0.0.1:{}\n127.0.0.1:{dead}\n127.0.0.1:1:bob:{SECRET}:oops\n",
            good_auth.addr.port(),
            good_open.addr.port(),
            wants_auth.addr.port(),
        ),
    )
    .unwrap();
    let (code, out, _) = tool(&env, &["proxies", "upload", proxies.to_str().unwrap()]);
    assert_eq!(
        code,
        Some(1),
        "the bad line makes the upload exit 1: {out:?}"
    );
    assert!(out.iter().any(|l| l.contains("line 5")), "{out:?}");
    printed.extend(out);

    let mut targets: Vec<String> = (0..100).map(|i| site.url(&format!("/page/{i}"))).collect();
    targets.extend(["/png", "/footer", "/always403"].map(|p| site.url(p)));
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, targets.join("\n")).unwrap();
    let (code, out, _) = tool(&env, &["tasks", "upload", tasks.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out:?}");
    printed.extend(out);

    let mut worker = Running::start(BIN, &["run"], &pairs(&env));
    worker.wait_for_line("worker ready", Duration::from_secs(20));
    wait_until(Duration::from_secs(60), "every task settled", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')",
        )
        .await
            == 103
    })
    .await;
    let (code, status, _) = tool(&env, &["status"]);
    assert_eq!(code, Some(0), "{status:?}");
    assert!(
        status
            .iter()
            .any(|l| l.contains(ProxyStatus::Cooldown.as_str())),
        "status lists the proxies cooling down: {status:?}"
    );
    printed.extend(status);
    let stopping = Instant::now();
    worker.signal(Signal::SIGTERM);
    let exit = worker.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{exit:?}: {:?}", worker.output());
    assert!(
        stopping.elapsed() < Duration::from_secs(2 + 5),
        "stopped within the grace period and a few seconds"
    );
    assert!(!health.exists(), "a stopped worker leaves no health report");
    printed.extend(worker.output());

    // Every plain page, the PNG and the footer page completed; only the
    // site that always refuses failed, after max_blocks_per_task proxies,
    // without an attempt charged.
    let failed: Vec<(String, i32, String, i32)> = sqlx::query_as(
        "SELECT target, attempts, last_error, cardinality(blocked_by) FROM tasks WHERE status = 'failed'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(failed.len(), 1, "no good task failed: {failed:?}");
    let (target, attempts, error, blocked_by) = &failed[0];
    assert_eq!(target, &site.url("/always403"));
    assert_eq!((*attempts, *blocked_by), (0, 2));
    assert!(
        error.starts_with("blocked by 2 proxies") && error.contains("403"),
        "{error}"
    );
    assert!(site.hits("/always403") >= 2);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'"
        )
        .await,
        102
    );
    for path in ["/png", "/footer"] {
        assert_eq!(
            count(
                &pool,
                &format!(
                    "SELECT count(*) FROM tasks WHERE target = '{}' AND status = 'completed' AND outcome = 'ok'",
                    site.url(path)
                )
            )
            .await,
            1,
            "{path} completed"
        );
    }

    // The bad proxies were taken out of rotation after a handful of uses,
    // in cooldown with their fault; the tasks they held went elsewhere.
    let bad: Vec<(String, i64, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT url, uses, status, faults, last_fault FROM proxies
          WHERE url LIKE $1 OR url LIKE $2 ORDER BY id",
    )
    .bind(format!("%:{}", wants_auth.addr.port()))
    .bind(format!("%:{dead}"))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(bad.len(), 2);
    for (url, uses, status, faults, last_fault) in &bad {
        assert!(*uses <= 3, "{url} used {uses} times");
        assert_eq!(status, ProxyStatus::Cooldown.as_str(), "{url}");
        assert!(*faults >= 1, "{url}");
        assert!(last_fault.is_some(), "{url}");
    }
    assert!(bad[0].4.as_deref().unwrap().contains("407"), "{bad:?}");
    let good_uses: i64 = count(
        &pool,
        &format!(
            "SELECT sum(uses)::bigint FROM proxies WHERE url LIKE '%:{}' OR url LIKE '%:{}'",
            good_auth.addr.port(),
            good_open.addr.port()
        ),
    )
    .await;
    assert!(
        good_uses >= 102,
        "the good proxies did the work: {good_uses}"
    );
    assert!(
        good_auth.forwarded() > 0,
        "the proxy with credentials was used with them"
    );

    // The PNG's bytes come back from the export.
    let (code, out, stdout) = tool(&env, &["results", "export", "--format", "json"]);
    assert_eq!(code, Some(0), "{out:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(rows.len(), 102);
    let png_row = rows
        .iter()
        .find(|r| r["target"] == site.url("/png"))
        .unwrap();
    assert_eq!(png_row["body_encoding"], "base64");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png_row["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, png(), "the PNG round-trips");
    let page = rows
        .iter()
        .find(|r| r["target"] == site.url("/page/7"))
        .unwrap();
    assert_eq!(
        (page["body"].as_str(), page["body_encoding"].as_str()),
        (Some("plain page /page/7"), Some("utf-8"))
    );
    let (code, csv_lines, _) = tool(&env, &["results", "export", "--format", "csv"]);
    assert_eq!(code, Some(0));
    printed.extend(csv_lines);

    let leaked: Vec<&String> = printed.iter().filter(|l| l.contains(SECRET)).collect();
    assert!(
        leaked.is_empty(),
        "the proxy password was printed: {leaked:?}"
    );
    assert!(printed.len() > 10, "the output was captured");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_completion_postgres_refuses_fails_only_its_task_and_the_rest_of_the_batch_lands(
    pool: PgPool,
) {
    let site = Site::start().await;
    let _proxies = support::proxies(&pool, 2).await;
    // Postgres, not the worker, refuses this one result (class 23).
    sqlx::query(
        "ALTER TABLE results ADD CONSTRAINT no_refused_pages CHECK (target NOT LIKE '%/refused%')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut targets: Vec<String> = (0..30).map(|i| site.url(&format!("/page/{i}"))).collect();
    targets.push(site.url("/refused"));
    db::tasks::insert(&pool, TaskKind::FetchUrl, &targets)
        .await
        .unwrap();
    let settings = fast(&[("worker.slots", "16")]);
    let stop = CancellationToken::new();
    let run = spawn_worker(&settings, pool.clone(), &stop);
    wait_until(Duration::from_secs(30), "every task settled", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')",
        )
        .await
            == 31
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    let failed: Vec<(String, String)> =
        sqlx::query_as("SELECT target, last_error FROM tasks WHERE status = 'failed'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, site.url("/refused"));
    assert!(
        failed[0].1.contains("no_refused_pages"),
        "the reason is Postgres': {}",
        failed[0].1
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM results").await, 30);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM proxies WHERE status <> 'free'").await,
        0,
        "every proxy freed"
    );
}

/// A TCP relay to Postgres that can be cut: every connection through it is
/// dropped and new ones are refused from then on. It runs on a thread and
/// runtime of its own, so that the test's blocking waits on the worker's
/// output do not stall it.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    fn start(upstream: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (thread_cut, thread_conns) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                while let Ok((mut client, _)) = listener.accept().await {
                    if thread_cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is closed
                    }
                    let upstream = upstream.clone();
                    thread_conns.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
                }
            });
        });
        Self { port, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_completer_that_cannot_write_fails_the_check_and_sigterm_still_stops_the_worker(
    pool: PgPool,
) {
    let site = Site::start().await;
    let _proxies = support::proxies(&pool, 2).await;
    db::tasks::insert(&pool, TaskKind::FetchUrl, &[site.url("/page/1")])
        .await
        .unwrap();
    let options = pool.connect_options();
    let relay = Relay::start(format!("{}:{}", options.get_host(), options.get_port()));
    let direct = test_support::database_url(&options);
    let relayed = direct.replacen(
        &format!("{}:{}", options.get_host(), options.get_port()),
        &format!("127.0.0.1:{}", relay.port),
        1,
    );
    assert_ne!(relayed, direct, "the worker goes through the relay");
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("health");
    let extra = [
        ("worker.health_file", health.to_str().unwrap()),
        ("worker.max_write_wait", "2s"),
        ("database.acquire_timeout", "1s"),
    ];
    let env = binary_env(&relayed, &extra);
    let check_env = binary_env(&direct, &extra);
    let mut worker = Running::start(BIN, &["run"], &pairs(&env));
    worker.wait_for_line("worker ready", Duration::from_secs(20));
    wait_until(Duration::from_secs(20), "the first task done", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == 1
    })
    .await;
    let (code, out, _) = tool(&check_env, &["check"]);
    assert_eq!(code, Some(0), "healthy while it writes: {out:?}");

    // A task is in flight when the database goes away for the worker (not
    // for the check): it finishes, and its write cannot be made.
    db::tasks::insert(&pool, TaskKind::FetchUrl, &[site.url("/slow")])
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "the slow task claimed", || async {
        site.hits("/slow") == 1
    })
    .await;
    relay.cut();
    let started = Instant::now();
    let mut failed_check = None;
    while started.elapsed() < Duration::from_secs(15) {
        let (code, out, _) = tool(&check_env, &["check"]);
        if code != Some(0) {
            failed_check = Some(out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed_check = failed_check.expect("worker check failed within its bound");
    // The slow fetch ends 2 s after its claim at the latest, then the
    // bound (2 s) passes; the check runs every 200 ms.
    assert!(
        started.elapsed() < Duration::from_secs(2 + 2 + 4),
        "worker check failed {:?} after the cut",
        started.elapsed()
    );
    assert!(
        failed_check
            .iter()
            .any(|l| l.contains("has waited") && l.contains("for its write")),
        "the check names the waiting write: {failed_check:?}"
    );
    let stopping = Instant::now();
    worker.signal(Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(2 + 10));
    assert!(
        stopping.elapsed() < Duration::from_secs(2 + 8),
        "SIGTERM stopped it within grace + a few seconds: {:?}",
        stopping.elapsed()
    );
}

/// Peak resident memory of a running process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn an_upload_names_each_bad_line_stores_the_rest_and_streams_a_million_lines(pool: PgPool) {
    let url = test_support::database_url(&pool.connect_options());
    let env = binary_env(&url, &[]);
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(
        &tasks,
        [
            "http://a.test/1",
            r#"{"url": "http://a.test/2\u0000", "wait_for": ".x"}"#,
            "http://a.test/3\0",
            r#"{"url": "http://a.test/4", "wait_for": "div[[["}"#,
            "file:///etc/passwd",
            "gopher://a.test/6",
            r#"{"url": "http://a.test/7", "wait_for": ".listing > .price"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let (code, out, _) = tool(
        &env,
        &[
            "tasks",
            "upload",
            "--kind",
            TaskKind::RenderUrl.as_str(),
            tasks.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{out:?}");
    for (line, why) in [
        (2, "NUL"),
        (3, "NUL"),
        (4, "not a CSS selector"),
        (5, "\"file\""),
        (6, "\"gopher\""),
    ] {
        assert!(
            out.iter()
                .any(|l| l.contains(&format!("line {line}:")) && l.contains(why)),
            "line {line} named ({why}): {out:?}"
        );
    }
    let stored: Vec<String> = sqlx::query_scalar("SELECT target FROM tasks ORDER BY target")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, vec!["http://a.test/1", "http://a.test/7"]);

    // A million lines: memory stays flat.
    let big = dir.path().join("million.txt");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for i in 0..1_000_000 {
            writeln!(
                file,
                "http://shop-{}.example.com/cars/{i}?page={}",
                i % 97,
                i % 13
            )
            .unwrap();
        }
    }
    let size = std::fs::metadata(&big).unwrap().len();
    let mut upload = Running::start(
        BIN,
        &["tasks", "upload", big.to_str().unwrap()],
        &pairs(&env),
    );
    let pid = upload.pid();
    let mut peak = 0;
    let exit = loop {
        if let Some(kb) = peak_rss_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = upload.try_exit() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{:?}", upload.output());
    assert_eq!(count(&pool, "SELECT count(*) FROM tasks").await, 1_000_002);
    eprintln!(
        "upload of 1,000,000 lines ({} MB): peak RSS {} MB",
        size / 1_000_000,
        peak / 1024
    );
    assert!(peak > 0, "memory was measured");
    assert!(
        peak < 100 * 1024,
        "peak RSS {} MB for a {} MB file",
        peak / 1024,
        size / 1_000_000
    );
}
