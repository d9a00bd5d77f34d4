//! The same checks through Debian's nginx on loopback, running the repo's
//! nginx/ configuration with the upstream address and ports filled in.
//! Skipped, with a printed reason, only when no nginx binary exists outside
//! CI (CI installs it: `apt-get install -y nginx-light`). The copying and
//! running is test-support's `nginx` module, shared with the system test.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use api::config::RateLimit;
use api::{ApiConfig, AppState};
use common::*;
use sqlx::PgPool;
use test_support::nginx::{binary_or_skip, free_port, prepare, Nginx};

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

#[test]
fn nginx_accepts_both_configurations() {
    let Some(binary) = binary_or_skip() else {
        return;
    };
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
    let Some(binary) = binary_or_skip() else {
        return;
    };
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
    let Some(binary) = binary_or_skip() else {
        return;
    };
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
