//! The same checks through Debian's nginx on loopback, running the repo's
//! nginx/ configuration with the upstream address and ports filled in.
//! Skipped, with a printed reason, only when no nginx binary exists outside
//! CI (CI installs it: `apt-get install -y nginx-light`). The copying and
//! running is test-support's `nginx` module, shared with the system test.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use api::Config;
use common::*;
use settings::RateLimit;
use sqlx::PgPool;
use test_support::nginx::{binary_or_skip, free_port, prepare, Nginx};

/// The api on a real socket, trusting X-Real-IP from loopback (nginx).
async fn serve(
    pool: &PgPool,
    rate_limit: Option<RateLimit>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = Config::for_tests();
    config.api.trusted_proxies = vec![settings::IpRange::parse("127.0.0.1").unwrap()];
    match rate_limit {
        Some(limit) => {
            config.api.rate_limit.per_second = limit.per_second;
            config.api.rate_limit.burst = limit.burst;
        }
        None => config.api.rate_limit.enabled = false,
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, api_state(pool, config), async {
        let _ = stopped.await;
    }));
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
    // HSTS only over TLS; the other security headers everywhere.
    assert!(!health.headers().contains_key("strict-transport-security"));
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
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

    // Metrics live on the operator listener only (api.admin_bind, never
    // behind nginx): the public listener has none, directly or through nginx.
    let direct = client
        .get(format!("http://{api}/api/v1/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 404);
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
            per_second: std::num::NonZeroU32::new(1).unwrap(),
            burst: std::num::NonZeroU32::new(3).unwrap(),
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

/// nginx's own answers keep the security headers: a location with an
/// add_header of its own (Retry-After) would drop the server's.
fn assert_security_headers(headers: &reqwest::header::HeaderMap, what: &str) {
    let hsts = headers
        .get("strict-transport-security")
        .unwrap_or_else(|| panic!("{what}: no HSTS in {headers:?}"));
    assert!(
        hsts.to_str().unwrap().contains("max-age=31536000"),
        "{what}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    let ids: Vec<_> = headers.get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{what}: {ids:?}");
    assert_eq!(ids[0].len(), 32, "{what}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn over_tls_nginx_s_own_429_and_503_keep_hsts_and_the_security_headers(pool: PgPool) {
    let Some(binary) = binary_or_skip() else {
        return;
    };
    let (api, stop) = serve(&pool, None).await;
    let nginx = Nginx::start_tls(&binary, api);
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();

    let health = client.get(nginx.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_security_headers(health.headers(), "200");
    let refused = client
        .get(nginx.url("/api/v1/offers"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_security_headers(refused.headers(), "401 from the api");

    // Far more than the per-address burst (100) at once: nginx's own 429.
    let answers =
        futures::future::join_all((0..400).map(|_| client.get(nginx.url("/health")).send())).await;
    let limited = answers
        .into_iter()
        .map(Result::unwrap)
        .find(|a| a.status() == 429)
        .expect("nginx never answered 429");
    assert_security_headers(limited.headers(), "429");
    assert_eq!(limited.headers()["retry-after"], "1");
    let request_id = limited.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["request_id"], request_id.as_str());

    // The api gone: nginx's own 503 (after the limit has refilled).
    drop(stop);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let down = client.get(nginx.url("/health")).send().await.unwrap();
    assert_eq!(down.status(), 503);
    assert_security_headers(down.headers(), "503");
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}
