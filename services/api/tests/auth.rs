//! Tokens (SPEC 5.2) and rate limiting (SPEC 5.3).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use std::num::NonZeroU32;

use api::{AppState, Config};
use common::*;
use sqlx::PgPool;

const DATA_ENDPOINTS: [&str; 4] = [
    "/api/v1/offers",
    "/api/v1/offers/10000000",
    "/api/v1/filters",
    "/api/v1/stats",
];

fn limited(pool: &PgPool, per_second: u32, burst: u32, trusted: &[&str]) -> AppState {
    let mut config = Config::for_tests();
    config.api.rate_limit.per_second = NonZeroU32::new(per_second).unwrap();
    config.api.rate_limit.burst = NonZeroU32::new(burst).unwrap();
    config.api.trusted_proxies = trusted
        .iter()
        .map(|t| settings::IpRange::parse(t).unwrap())
        .collect();
    api_state(pool, config)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn missing_malformed_unknown_expired_and_revoked_tokens_are_all_401(pool: PgPool) {
    insert(&pool, &generate(3, 10_000_000, 1)).await;
    let state = state(&pool);
    let expired = api::tokens::issue(&pool, SECRET, 1, "old", Some(Duration::from_secs(1)))
        .await
        .unwrap()
        .remove(0);
    let revoked = token(&pool).await;
    api::tokens::revoke(&pool, &revoked[..6]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = "a1B2c3D4e5F6g7H8";
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        ("empty bearer", vec![("authorization", "Bearer ".into())]),
        (
            "other scheme",
            vec![("authorization", format!("Basic {unknown}"))],
        ),
        ("too short", vec![("authorization", "Bearer abc".into())]),
        (
            "bad characters",
            vec![("x-api-key", "a1B2c3D4e5F6g7H!".into())],
        ),
        (
            "unknown",
            vec![("authorization", format!("Bearer {unknown}"))],
        ),
        ("unknown key", vec![("x-api-key", unknown.into())]),
        (
            "expired",
            vec![("authorization", format!("Bearer {}", expired.expose()))],
        ),
        ("revoked", vec![("x-api-key", revoked.clone())]),
    ];
    for endpoint in DATA_ENDPOINTS {
        for (what, headers) in &cases {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let answer = get_as(&state, endpoint, &headers, peer()).await;
            assert_eq!(answer.status, 401, "{what} on {endpoint}");
            assert_eq!(answer.error().0, "unauthorized", "{what}");
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_valid_token_works_as_bearer_or_x_api_key(pool: PgPool) {
    let state = state(&pool);
    let token = token(&pool).await;
    for headers in [
        vec![("authorization", format!("Bearer {token}"))],
        vec![("authorization", format!("bearer {token}"))],
        vec![("x-api-key", token.clone())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for endpoint in ["/api/v1/offers", "/api/v1/filters", "/api/v1/stats"] {
            let answer = get_as(&state, endpoint, &headers, peer()).await;
            assert_eq!(answer.status, 200, "{endpoint} {headers:?}");
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_token_revoked_while_cached_is_refused_once_the_cache_expires(pool: PgPool) {
    let mut config = Config::for_tests();
    config.api.token_cache_ttl = Duration::from_millis(200);
    let state = api_state(&pool, config);
    let token = token(&pool).await;
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    api::tokens::revoke(&pool, &token[..6]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 401);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn over_the_limit_is_a_429_with_retry_after_and_rate_limit_headers(pool: PgPool) {
    let state = limited(&pool, 1, 3, &[]);
    let token = token(&pool).await;
    for i in 0..3 {
        let answer = get(&state, "/api/v1/offers", &token).await;
        assert_eq!(answer.status, 200, "request {i}");
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            answer.header("x-ratelimit-remaining"),
            Some(&*(2 - i).to_string())
        );
    }
    let answer = get(&state, "/api/v1/offers", &token).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.error().0, "rate_limited");
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
    assert!(answer.header("x-ratelimit-after").is_some());
    // Another token has its own quota.
    let other = common::token(&pool).await;
    assert_eq!(get(&state, "/api/v1/offers", &other).await.status, 200);
    // Health and readiness are never limited.
    let health = get_as(&state, "/api/v1/health", &[], peer()).await;
    assert_eq!(health.status, 200);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn requests_without_a_valid_token_are_limited_by_client_address(pool: PgPool) {
    let state = limited(&pool, 1, 2, &[]);
    let one: SocketAddr = "198.51.100.1:5000".parse().unwrap();
    let two: SocketAddr = "198.51.100.2:5000".parse().unwrap();
    for _ in 0..2 {
        assert_eq!(get_as(&state, "/api/v1/offers", &[], one).await.status, 401);
    }
    assert_eq!(get_as(&state, "/api/v1/offers", &[], one).await.status, 429);
    // Bad tokens share the address's bucket.
    let bad = [("x-api-key", "a1B2c3D4e5F6g7H8")];
    assert_eq!(
        get_as(&state, "/api/v1/offers", &bad, one).await.status,
        429
    );
    assert_eq!(get_as(&state, "/api/v1/offers", &[], two).await.status, 401);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_forged_x_forwarded_for_does_not_change_the_bucket(pool: PgPool) {
    // Directly: no proxy is trusted, so no header is believed.
    let state = limited(&pool, 1, 2, &[]);
    let client: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    for i in 0..6 {
        let forged = format!("203.0.113.{i}");
        let headers = [
            ("x-forwarded-for", forged.as_str()),
            ("x-real-ip", forged.as_str()),
        ];
        let status = get_as(&state, "/api/v1/offers", &headers, client)
            .await
            .status;
        assert_eq!(status, if i < 2 { 401 } else { 429 }, "request {i}");
    }
    // Behind a trusted proxy: X-Real-IP (which nginx overwrites) is the
    // client; X-Forwarded-For is never read.
    let state = limited(&pool, 1, 2, &["127.0.0.1"]);
    let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    for i in 0..6 {
        let forged = format!("203.0.113.{i}");
        let headers = [
            ("x-forwarded-for", forged.as_str()),
            ("x-real-ip", "198.51.100.9"),
        ];
        let status = get_as(&state, "/api/v1/offers", &headers, proxy)
            .await
            .status;
        assert_eq!(status, if i < 2 { 401 } else { 429 }, "request {i}");
    }
    let other = [("x-real-ip", "198.51.100.10")];
    assert_eq!(
        get_as(&state, "/api/v1/offers", &other, proxy).await.status,
        401
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn last_used_at_is_written_at_most_once_a_minute_per_token(pool: PgPool) {
    let state = state(&pool);
    let token = token(&pool).await;
    let last_used = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_used_at FROM api_tokens",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    assert_eq!(last_used().await, None, "written on the request path");
    assert_eq!(state.tokens.flush_last_used(&state.pool).await.unwrap(), 1);
    let first = last_used().await.expect("written by the flush");
    for _ in 0..5 {
        get(&state, "/api/v1/offers", &token).await;
    }
    assert_eq!(state.tokens.flush_last_used(&state.pool).await.unwrap(), 0);
    assert_eq!(last_used().await, Some(first));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_first_start_issues_working_tokens_once_into_a_private_file(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = api::tokens::issue_initial(&pool, SECRET, 20, dir.path())
        .await
        .unwrap()
        .expect("a file on an empty table");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let tokens: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(tokens.len(), 20);
    let state = state(&pool);
    for token in &tokens {
        assert!(domain::token::Token::parse(token).is_ok());
        assert_eq!(get(&state, "/api/v1/stats", token).await.status, 200);
    }
    // Nothing in the database is a token in clear.
    let prefixes: Vec<String> = sqlx::query_scalar("SELECT token_prefix FROM api_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(prefixes.iter().all(|p| p.len() == 6));
    // A second start issues nothing.
    assert_eq!(
        api::tokens::issue_initial(&pool, SECRET, 20, dir.path())
            .await
            .unwrap(),
        None
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn revoking_needs_an_unambiguous_prefix_of_at_least_four_characters(pool: PgPool) {
    let tokens = api::tokens::issue(&pool, SECRET, 3, "three", None)
        .await
        .unwrap();
    assert!(api::tokens::revoke(&pool, "ab").await.is_err());
    assert!(api::tokens::revoke(&pool, "zzzzzz").await.is_err());
    let row = api::tokens::revoke(&pool, tokens[0].prefix())
        .await
        .unwrap();
    assert_eq!(row.token_prefix, tokens[0].prefix());
    assert!(
        api::tokens::revoke(&pool, tokens[0].prefix())
            .await
            .is_err(),
        "already revoked"
    );
    let list =
        api::tokens::render_list(&db::tokens::list(&pool).await.unwrap(), chrono::Utc::now());
    assert_eq!(list.lines().filter(|l| l.contains("revoked")).count(), 1);
    assert_eq!(list.lines().filter(|l| l.contains("active")).count(), 2);
    for token in &tokens {
        assert!(!list.contains(token.expose()));
    }
}
