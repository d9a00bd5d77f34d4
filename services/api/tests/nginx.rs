//! The same checks through Debian's nginx on loopback, running the repo's
//! nginx/ configuration with the upstream address and ports filled in.
//! Skipped, with a printed reason, only when no nginx binary exists (CI
//! installs it: `apt-get install -y nginx-light`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::config::RateLimit;
use api::{ApiConfig, AppState};
use common::*;
use sqlx::PgPool;

const FILES: [&str; 5] = [
    "nginx.conf",
    "nginx.prod.conf",
    "carfeed-http.conf",
    "carfeed-proxy.conf",
    "api-locations.conf",
];

fn nginx_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repo's nginx/ copied into `dir` with test addresses; every
/// substitution must apply, so a drifting config fails here.
fn prepare(dir: &Path, api: SocketAddr, http: u16, https: u16) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nginx");
    let replacements = [
        ("server api:8080;", format!("server {api};")),
        (
            "pid /run/nginx.pid;",
            format!("pid {}/nginx.pid;", dir.display()),
        ),
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{https} ssl http2;"),
        ),
        (
            "/etc/letsencrypt/live/api.example.com/",
            format!("{}/certs/", dir.display()),
        ),
        ("/var/www/certbot", format!("{}/certbot", dir.display())),
        (
            "access_log /dev/stdout combined;",
            format!("access_log {}/access.log combined;", dir.display()),
        ),
    ];
    let mut applied = vec![false; replacements.len()];
    for file in FILES {
        let mut text = std::fs::read_to_string(source.join(file)).unwrap();
        for (i, (from, to)) in replacements.iter().enumerate() {
            if text.contains(from) {
                text = text.replace(from, to);
                applied[i] = true;
            }
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
    for ((from, _), done) in replacements.iter().zip(applied) {
        assert!(done, "nginx/ no longer contains {from:?}: update this test");
    }
    // A self-signed certificate where Let's Encrypt's would be.
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=api.example.com",
        ])
        .arg("-keyout")
        .arg(dir.join("certs/privkey.pem"))
        .arg("-out")
        .arg(dir.join("certs/fullchain.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
}

/// nginx in the foreground; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, api: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        prepare(dir.path(), api, port, free_port());
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to our own master (by its pid): it stops its workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The api on a real socket, trusting X-Real-IP from loopback (nginx).
async fn serve(
    pool: &PgPool,
    rate_limit: Option<RateLimit>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = ApiConfig::for_tests();
    config.trusted_proxies = vec![settings::IpRange::parse("127.0.0.1").unwrap()];
    config.rate_limit = rate_limit;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::run(
        listener,
        AppState::new(pool.clone(), config),
        async {
            let _ = stopped.await;
        },
    ));
    (address, stop)
}

fn skip() -> Option<PathBuf> {
    let binary = nginx_binary();
    if binary.is_none() {
        eprintln!("SKIPPED: no nginx binary on PATH or at /usr/sbin/nginx (apt-get install -y nginx-light)");
    }
    binary
}

#[test]
fn nginx_accepts_both_configurations() {
    let Some(binary) = skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    prepare(
        dir.path(),
        "127.0.0.1:8080".parse().unwrap(),
        free_port(),
        free_port(),
    );
    for conf in ["nginx.conf", "nginx.prod.conf"] {
        let output = Command::new(&binary)
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join(conf))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{conf}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn through_nginx_the_api_answers_as_directly_and_metrics_stay_internal(pool: PgPool) {
    let Some(binary) = skip() else { return };
    let offers = generate(120, 40_000_000, 31);
    insert(&pool, &offers).await;
    let token = token(&pool).await;
    let (api, _stop) = serve(&pool, None).await;
    let nginx = Nginx::start(&binary, api);
    let client = reqwest::Client::builder().no_gzip().build().unwrap();

    let health = client.get(nginx.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    // Every page of a filtered list, as the reference says.
    let active: Vec<&Offer> = offers
        .iter()
        .filter(|o| o.is_active && o.price.is_some_and(|p| p <= 150_000))
        .collect();
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let answer = client
            .get(nginx.url(&format!(
                "/api/v1/offers?price_to=150000&sort=price&order=desc&limit=11{cursor}"
            )))
            .bearer_auth(&token)
            .header("x-request-id", "forged-id")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let request_id = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            request_id.len() == 32 && request_id != "forged-id",
            "{request_id}"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        ids.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["inner_id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(ids, reference_order(&active, "price", true));

    // JSON is gzipped by nginx.
    let big = client
        .get(nginx.url("/api/v1/offers?limit=100"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(big.headers()["content-encoding"], "gzip");

    // Errors keep the shared shape.
    let refused = client
        .get(nginx.url("/api/v1/offers"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let bad = client
        .get(nginx.url("/api/v1/offers?year_from=x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<serde_json::Value>().await.unwrap()["error"]["parameter"],
        "year_from"
    );

    // Metrics answer directly, never through nginx.
    let direct = client
        .get(format!("http://{api}/api/v1/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    for path in [
        "/api/v1/metrics",
        "/api/v1/metrics/",
        "/api/v1//metrics",
        "/api/v1/%6detrics",
        "/api/v1/./metrics",
    ] {
        let hidden = client.get(nginx.url(path)).send().await.unwrap();
        assert_eq!(hidden.status(), 404, "{path}");
        let body: serde_json::Value = hidden.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn through_nginx_a_forged_x_forwarded_for_does_not_change_the_bucket(pool: PgPool) {
    let Some(binary) = skip() else { return };
    let token = token(&pool).await;
    let (api, _stop) = serve(
        &pool,
        Some(RateLimit {
            per_second: 1,
            burst: 3,
        }),
    )
    .await;
    let nginx = Nginx::start(&binary, api);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let forged = format!("203.0.113.{i}");
        let answer = client
            .get(nginx.url("/api/v1/offers"))
            .header("x-forwarded-for", &forged)
            .header("x-real-ip", &forged)
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
        if answer.status() == 429 {
            assert!(answer.headers().contains_key("retry-after"));
            assert_eq!(answer.headers()["x-ratelimit-limit"], "3");
            assert_eq!(answer.headers()["x-ratelimit-remaining"], "0");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // A token has its own bucket, whatever the address.
    let answer = client
        .get(nginx.url("/api/v1/offers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-ratelimit-remaining"], "2");
}
