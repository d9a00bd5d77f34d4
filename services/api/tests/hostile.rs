//! The api under hostile and heavy use (issue 14): bounded queries, pool
//! exhaustion and lost connections are 503 `unavailable`; a token's
//! requests in flight are capped; token lookups are limited per address
//! before the database; control characters are 400; every answer carries a
//! request id.

mod common;

use std::time::Duration;

use std::num::NonZeroU32;

use api::{AppState, Config};
use base64::Engine as _;
use common::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The api's state over its own bounded pool (as `api serve` builds it).
fn bounded_state(pool: &PgPool, config: Config, connections: u32) -> AppState {
    let small = PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with((*pool.connect_options()).clone());
    let bounded = api::pool::bounded(&small, config.api.statement_timeout);
    AppState::new(bounded, config)
}

/// A connection holding an exclusive lock on processed_data, so every
/// offers query waits, until it is dropped.
async fn lock_offers(pool: &PgPool) -> PgConnection {
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("LOCK TABLE processed_data IN ACCESS EXCLUSIVE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// `statement_timeout` as the api's connections see it.
async fn show_statement_timeout(state: &AppState) -> String {
    let show = async |conn: &mut PgConnection| {
        Ok(sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(conn)
            .await?)
    };
    state.pool.run(show).await.unwrap()
}

/// Waits until no other client runs a statement; panics after 20 s.
async fn all_idle(pool: &PgPool) {
    for _ in 0..400 {
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend'
               AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if active == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("statements still run after 20 s");
}

/// Waits until `n` backends wait for a lock; panics after 20 s.
async fn waiting_for_lock(pool: &PgPool, n: i64) {
    for _ in 0..400 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} requests never waited for the lock");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_query_past_the_statement_timeout_is_503_unavailable(pool: PgPool) {
    insert(&pool, &generate(20, 40_000_000, 1)).await;
    let token = token(&pool).await;
    let mut config = Config::for_tests();
    config.api.statement_timeout = Duration::from_millis(200);
    let state = bounded_state(&pool, config, 4);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    let lock = lock_offers(&pool).await;
    let answer = get(&state, "/api/v1/offers?model=X5", &token).await;
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error().0, "unavailable");
    drop(lock);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    state.pool.close().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn no_pooled_connection_in_time_is_503_unavailable(pool: PgPool) {
    let token = token(&pool).await;
    let state = bounded_state(&pool, Config::for_tests(), 1);
    // The token's lookup is cached by the first request.
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    let held = state.pool.acquire().await.unwrap();
    let answer = get(&state, "/api/v1/offers", &token).await;
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error().0, "unavailable");
    drop(held);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    state.pool.close().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_connection_lost_during_a_query_is_503_unavailable(pool: PgPool) {
    let token = token(&pool).await;
    let state = bounded_state(&pool, Config::for_tests(), 2);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    let lock = lock_offers(&pool).await;
    let request = tokio::spawn({
        let (state, token) = (state.clone(), token.clone());
        async move { get(&state, "/api/v1/offers", &token).await }
    });
    waiting_for_lock(&pool, 1).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let answer = request.await.unwrap();
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error().0, "unavailable");
    drop(lock);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    state.pool.close().await;
}

/// The api's pool pings only connections idle for api::pool::UNTESTED_IDLE
/// or longer (or whose last request was cancelled, below): one cut while
/// idle (a restart, a proxy's idle timeout) is still replaced before a
/// request uses it.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_connection_cut_while_idle_is_replaced_before_use(pool: PgPool) {
    let token = token(&pool).await;
    let name = "carfeed-api-idle-cut";
    let small = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone().application_name(name));
    let state = AppState::new(
        api::pool::bounded(&small, Duration::from_secs(30)),
        Config::for_tests(),
    );
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(name)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(cut, [true], "the api's one connection is cut");
    tokio::time::sleep(api::pool::UNTESTED_IDLE + Duration::from_millis(200)).await;
    let answer = get(&state, "/api/v1/offers", &token).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    state.pool.close().await;
}

/// The api's pool does not ping every connection given back (sqlx's does):
/// a request cancelled mid-statement (a client gone; the request timeout
/// is the same) leaves its connection unchecked, so it is checked before
/// reuse. Still busy, it is replaced instead of holding up the next
/// request; answered since, it serves the next request its own rows.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_request_cancelled_mid_query_leaves_a_connection_that_serves_the_next_correctly(
    pool: PgPool,
) {
    insert(&pool, &generate(20, 43_000_000, 4)).await;
    let token = token(&pool).await;
    // One connection, and no statement timeout: the cancelled statement
    // outlives its request.
    let one = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with((*pool.connect_options()).clone());
    let state = AppState::new(
        api::pool::bounded(&one, Duration::ZERO),
        Config::for_tests(),
    );
    let page = "/api/v1/offers?limit=5&sort=price";
    let expected = get(&state, page, &token).await;
    assert_eq!(expected.status, 200);
    let cancel_waiting_request = async || {
        let request = tokio::spawn({
            let (state, token) = (state.clone(), token.clone());
            async move { get(&state, "/api/v1/offers?model=X5", &token).await }
        });
        waiting_for_lock(&pool, 1).await;
        request.abort();
        assert!(request.await.is_err_and(|e| e.is_cancelled()));
    };
    let backend = async || {
        let pid = async |conn: &mut PgConnection| {
            Ok(sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                .fetch_one(conn)
                .await?)
        };
        state.pool.run(pid).await.unwrap()
    };

    // Cancelled while its statement waits for a lock, which it still does.
    let lock = lock_offers(&pool).await;
    cancel_waiting_request().await;
    let ready = get_as(&state, "/api/v1/ready", &[], peer()).await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    drop(lock);
    all_idle(&pool).await;

    // Cancelled while waiting, then answered: the rows nobody read must
    // not reach the next request.
    let before = backend().await;
    let lock = lock_offers(&pool).await;
    cancel_waiting_request().await;
    drop(lock);
    all_idle(&pool).await;
    let answer = get(&state, page, &token).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["items"], expected.json()["items"]);
    assert_eq!(backend().await, before, "the same connection served it");
    state.pool.close().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_token_over_its_requests_in_flight_gets_429(pool: PgPool) {
    let token = token(&pool).await;
    let other = common::token(&pool).await;
    let mut config = Config::for_tests();
    config.api.max_in_flight_per_token = NonZeroU32::new(2);
    let state = bounded_state(&pool, config, 6);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    assert_eq!(get(&state, "/api/v1/offers", &other).await.status, 200);
    let lock = lock_offers(&pool).await;
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let (state, token) = (state.clone(), token.clone());
            tokio::spawn(async move { get(&state, "/api/v1/offers", &token).await })
        })
        .collect();
    waiting_for_lock(&pool, 2).await;
    let third = get(&state, "/api/v1/offers", &token).await;
    assert_eq!(
        third.status,
        429,
        "{}",
        String::from_utf8_lossy(&third.body)
    );
    assert_eq!(third.error().0, "rate_limited");
    assert_eq!(third.header("retry-after"), Some("1"));
    // Another token is not affected (it waits for the lock like the others).
    let another = tokio::spawn({
        let (state, other) = (state.clone(), other.clone());
        async move { get(&state, "/api/v1/offers", &other).await }
    });
    waiting_for_lock(&pool, 3).await;
    drop(lock);
    for request in stuck {
        assert_eq!(request.await.unwrap().status, 200);
    }
    assert_eq!(another.await.unwrap().status, 200);
    // Their slots are free again.
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    state.pool.close().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn random_tokens_from_one_address_are_refused_before_the_lookup(pool: PgPool) {
    let token = token(&pool).await;
    let mut config = Config::for_tests();
    config.api.rate_limit.lookups_per_second = NonZeroU32::new(1).unwrap();
    config.api.rate_limit.lookups_burst = NonZeroU32::new(3).unwrap();
    let state = api_state(&pool, config);
    // The valid token's lookup is the first of the address's three.
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    let random = |i: usize| format!("Zz{i:014}");
    for i in 0..2 {
        assert_eq!(get(&state, "/api/v1/offers", &random(i)).await.status, 401);
    }
    let refused = get(&state, "/api/v1/offers", &random(99)).await;
    assert_eq!(
        refused.status,
        429,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert_eq!(refused.error().0, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    // Cached answers need no lookup: the known token, and an unknown one
    // already looked up, are answered as before.
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    assert_eq!(get(&state, "/api/v1/offers", &random(0)).await.status, 401);
    // Another address has its own budget.
    let elsewhere = get_as(
        &state,
        "/api/v1/offers",
        &[("authorization", &format!("Bearer {}", random(7)))],
        "198.51.100.7:1234".parse().unwrap(),
    )
    .await;
    assert_eq!(elsewhere.status, 401);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn control_characters_in_a_parameter_path_or_cursor_are_400(pool: PgPool) {
    insert(&pool, &generate(10, 41_000_000, 2)).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let cursor =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("v1.listed_at.desc.-.1\u{0}");
    let cases = [
        ("/api/v1/offers?mark=BM%00W".to_owned(), "mark"),
        ("/api/v1/offers?city=a%01b".to_owned(), "city"),
        ("/api/v1/offers?model=%1B%5B31m".to_owned(), "model"),
        ("/api/v1/offers?body_type=%7F".to_owned(), "body_type"),
        ("/api/v1/offers/41000001%00".to_owned(), "inner_id"),
        ("/api/v1/offers/%0A".to_owned(), "inner_id"),
        (format!("/api/v1/offers?cursor={cursor}"), "cursor"),
    ];
    for (uri, parameter) in cases {
        let answer = get(&state, &uri, &token).await;
        assert_eq!(
            answer.status,
            400,
            "{uri}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            answer.error(),
            ("invalid_parameter".to_owned(), Some(parameter.to_owned())),
            "{uri}"
        );
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_answer_carries_a_request_id_and_errors_repeat_it(pool: PgPool) {
    let state = state(&pool);
    let token = token(&pool).await;
    // nginx's id is kept.
    let answer = get_as(
        &state,
        "/api/v1/offers?year_from=1",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-request-id", "0123456789abcdef0123456789abcdef"),
        ],
        peer(),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.header("x-request-id"),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        answer.json()["error"]["request_id"],
        "0123456789abcdef0123456789abcdef"
    );
    // Without one the api makes one, for successes and errors alike.
    let ok = get(&state, "/api/v1/offers", &token).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-request-id").map(str::len), Some(36));
    for (uri, status) in [
        ("/api/v1/offers", 401),
        ("/api/v1/nowhere", 404),
        ("/api/v1/offers?limit=0", 401),
    ] {
        let answer = get_as(&state, uri, &[], peer()).await;
        assert_eq!(answer.status, status, "{uri}");
        let id = answer.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 36, "{uri}");
        assert_eq!(answer.json()["error"]["request_id"], id.as_str(), "{uri}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn filters_may_take_longer_than_the_statement_timeout(pool: PgPool) {
    insert(&pool, &generate(20, 42_000_000, 3)).await;
    let token = token(&pool).await;
    let mut config = Config::for_tests();
    config.api.statement_timeout = Duration::from_millis(100);
    let state = bounded_state(&pool, config, 4);
    assert_eq!(get(&state, "/api/v1/offers", &token).await.status, 200);
    let lock = lock_offers(&pool).await;
    let request = tokio::spawn({
        let (state, token) = (state.clone(), token.clone());
        async move { get(&state, "/api/v1/filters", &token).await }
    });
    waiting_for_lock(&pool, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(lock);
    let answer = request.await.unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["total"].as_i64().unwrap() > 0);
    state.pool.close().await;
}

/// `api.statement_timeout: 0s` and `api.max_in_flight_per_token: 0` turn
/// the timeout and the cap off (as the bench's guards-off variant does),
/// and `api.rate_limit.enabled: false` both limiters: real settings keys.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn zero_turns_the_statement_timeout_and_the_in_flight_cap_off(pool: PgPool) {
    let settings = settings::load_from(&settings::Env::from_pairs([
        ("CARFEED__API__STATEMENT_TIMEOUT", "0s"),
        ("CARFEED__API__MAX_IN_FLIGHT_PER_TOKEN", "0"),
        ("CARFEED__API__RATE_LIMIT__ENABLED", "false"),
    ]))
    .unwrap();
    let config = Config::from_settings(&settings, b"k".repeat(32));
    assert_eq!(config.api.statement_timeout, Duration::ZERO);
    assert_eq!(config.api.max_in_flight_per_token, None);
    assert_eq!(config.api.rate_limit.requests(), None);
    assert_eq!(config.api.rate_limit.lookups(), None);
    let state = bounded_state(&pool, config, 1);
    let timeout = show_statement_timeout(&state).await;
    assert_eq!(timeout, "0");
    // Shipped: 2 s and 32.
    let shipped = settings::load_from(&settings::Env::from_pairs::<&str, &str>([])).unwrap();
    let config = Config::from_settings(&shipped, b"k".repeat(32));
    assert_eq!(config.api.max_in_flight_per_token, NonZeroU32::new(32));
    let state = bounded_state(&pool, config, 1);
    let timeout = show_statement_timeout(&state).await;
    assert_eq!(timeout, "2s");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn requests_in_flight_under_one_uncached_token_share_one_lookup(pool: PgPool) {
    // A frontend sends many visitors' requests under one token; when its
    // cached lookup expires (or the cache is cold), they must not each
    // spend one of the address's lookups and be refused.
    let token = token(&pool).await;
    let mut config = Config::for_tests();
    config.api.rate_limit.lookups_per_second = NonZeroU32::new(1).unwrap();
    config.api.rate_limit.lookups_burst = NonZeroU32::new(2).unwrap();
    let state = api_state(&pool, config);
    let answers =
        futures::future::join_all((0..12).map(|_| get(&state, "/api/v1/offers", &token))).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
