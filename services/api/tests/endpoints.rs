//! `/filters`, `/stats`, health, readiness, metrics, the OpenAPI document and
//! docs page, and what every answer shares (error shape, CORS, gzip).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use api::Config;
use common::*;
use serde_json::Value;
use sqlx::PgPool;

const IDS: u64 = 20_000_000;

/// value -> count over active offers, from the inserted rows.
fn counts(offers: &[Offer], field: impl Fn(&Offer) -> Option<String>) -> BTreeMap<String, i64> {
    let mut map = BTreeMap::new();
    for offer in offers.iter().filter(|o| o.is_active) {
        if let Some(value) = field(offer) {
            *map.entry(value).or_default() += 1;
        }
    }
    map
}

fn facet(body: &Value, key: &str) -> BTreeMap<String, i64> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing: {body}"))
        .iter()
        .map(|f| {
            (
                f["value"].as_str().unwrap().to_owned(),
                f["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn filters_list_every_value_with_its_count_of_active_offers(pool: PgPool) {
    let offers = generate(300, IDS, 11);
    insert(&pool, &offers).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let answer = get(&state, "/api/v1/filters", &token).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    let active: Vec<&Offer> = offers.iter().filter(|o| o.is_active).collect();
    assert_eq!(body["total"], active.len() as i64);
    assert_eq!(
        facet(&body, "body_type"),
        counts(&offers, |o| o.body_type.clone())
    );
    assert_eq!(
        facet(&body, "engine_type"),
        counts(&offers, |o| o.engine_type.clone())
    );
    assert_eq!(
        facet(&body, "transmission_type"),
        counts(&offers, |o| o.transmission_type.clone())
    );
    assert_eq!(
        facet(&body, "drive_type"),
        counts(&offers, |o| o.drive_type.clone())
    );
    assert_eq!(
        facet(&body, "seller_type"),
        counts(&offers, |o| o.seller_type.clone())
    );
    assert_eq!(facet(&body, "city"), counts(&offers, |o| o.city.clone()));
    // Most offers first.
    let bodies: Vec<i64> = body["body_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["count"].as_i64().unwrap())
        .collect();
    assert!(bodies.windows(2).all(|w| w[0] >= w[1]));
    // Marks A-Z with their models.
    assert_eq!(facet(&body, "mark"), counts(&offers, |o| o.mark.clone()));
    for mark in body["mark"].as_array().unwrap() {
        let name = mark["value"].as_str().unwrap();
        let expected = counts(&offers, |o| {
            (o.mark.as_deref() == Some(name))
                .then(|| o.model.clone())
                .flatten()
        });
        assert_eq!(facet(mark, "models"), expected, "models of {name}");
    }
    let range = |f: fn(&Offer) -> Option<i64>| {
        let values: Vec<i64> = active.iter().filter_map(|o| f(o)).collect();
        (values.iter().min().copied(), values.iter().max().copied())
    };
    let (ymin, ymax) = range(|o| o.year.map(i64::from));
    assert_eq!(
        (body["year"]["min"].as_i64(), body["year"]["max"].as_i64()),
        (ymin, ymax)
    );
    let (pmin, pmax) = range(|o| o.price);
    assert_eq!(
        (body["price"]["min"].as_i64(), body["price"]["max"].as_i64()),
        (pmin, pmax)
    );
    assert_eq!(
        body["km_age"]["max"].as_i64(),
        range(|o| o.km_age.map(i64::from)).1
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn filters_are_cached_for_their_ttl(pool: PgPool) {
    insert(&pool, &generate(20, IDS, 12)).await;
    let mut config = Config::for_tests();
    config.api.filters_cache_ttl = Duration::from_millis(300);
    let state = api_state(&pool, config);
    let token = token(&pool).await;
    let before = get(&state, "/api/v1/filters", &token).await.json()["total"].clone();
    insert(&pool, &generate(20, IDS + 100, 13)).await;
    let cached = get(&state, "/api/v1/filters", &token).await.json()["total"].clone();
    assert_eq!(before, cached);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let fresh = get(&state, "/api/v1/filters", &token).await.json()["total"].clone();
    assert_ne!(before, fresh);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn stats_count_the_pipeline_and_show_the_last_operation_of_each_kind(pool: PgPool) {
    // raw rows: 5 processed, 3 waiting, 2 failed.
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, source, is_processed, normalize_error)
         SELECT g::text, 'added', 'initial_load', g <= 5, CASE WHEN g > 8 THEN 'bad year' END
         FROM generate_series(1, 10) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let offers = generate(12, IDS, 14);
    insert(&pool, &offers).await;
    sqlx::query(
        "INSERT INTO operations_log (operation_type, started_at, duration, status, details) VALUES
         ('data_fetch', now() - interval '2 days', 10, 'ERROR', 'old'),
         ('data_fetch', now() - interval '1 day', 12.5, 'OK', 'pages=3 inserted=60'),
         ('normalization', now() - interval '1 hour', 3, 'OK', 'processed=60')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let state = state(&pool);
    let token = token(&pool).await;
    let body = get(&state, "/api/v1/stats", &token).await.json();
    let listings = &body["listings"];
    assert_eq!(listings["loaded"], 10);
    assert_eq!(listings["processed"], 5);
    assert_eq!(listings["waiting"], 3);
    assert_eq!(listings["failed"], 2);
    assert_eq!(listings["normalized"], 12);
    assert_eq!(
        listings["active"],
        offers.iter().filter(|o| o.is_active).count()
    );
    let ops = body["last_operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2);
    let fetch = ops
        .iter()
        .find(|o| o["operation_type"] == "data_fetch")
        .unwrap();
    assert_eq!(fetch["status"], "OK");
    assert_eq!(fetch["details"], "pages=3 inserted=60");
    assert_eq!(fetch["duration"], 12.5);
    // The fleet's tables (migration 0005) are all counted.
    let fleet = body["fleet"].as_object().unwrap();
    assert_eq!(fleet.len(), db::stats::FLEET_TABLES.len(), "{fleet:?}");
    assert_eq!(body["fleet"]["workers"], 0);
    sqlx::query(
        "INSERT INTO workers (name, slots, stale_after)
         SELECT 'host-' || n, 4, interval '90 seconds' FROM generate_series(1, 3) AS n",
    )
    .execute(&pool)
    .await
    .unwrap();
    let body = get(&state, "/api/v1/stats", &token).await.json();
    assert_eq!(body["fleet"]["workers"], 3);
    assert_eq!(
        body["initial_load"],
        serde_json::Value::Null,
        "never started"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn stats_name_the_pages_the_initial_load_is_missing(pool: PgPool) {
    sqlx::raw_sql(
        "INSERT INTO initial_load_state (id, next_page, feed_ended_at, failed_pages, refetch_rounds)
         VALUES (1, 31, now(), '{7,12}', 1);
         INSERT INTO rejected_items (endpoint, page, inner_id, reason, raw)
         VALUES ('/offers', 3, 'x', 'bad', '{}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let state = state(&pool);
    let token = token(&pool).await;
    let body = get(&state, "/api/v1/stats", &token).await.json();
    assert_eq!(
        body["initial_load"],
        serde_json::json!({"finished": false, "missing_pages": [7, 12], "rejected_items": 1})
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn health_and_ready_need_no_token_and_ready_reports_the_schema(pool: PgPool) {
    let state = state(&pool);
    let health = get_as(&state, "/api/v1/health", &[], peer()).await;
    assert_eq!(
        (health.status.as_u16(), health.json()["status"].clone()),
        (200, "ok".into())
    );
    let ready = get_as(&state, "/api/v1/ready", &[], peer()).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["schema_version"], db::schema::needed_version());
    // A closed pool (database gone) is not ready: 503, same error shape.
    state.pool.close().await;
    let ready = get_as(&state, "/api/v1/ready", &[], peer()).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.error().0, "unavailable");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn metrics_count_requests_by_route_pattern_in_prometheus_text(pool: PgPool) {
    insert(&pool, &generate(5, IDS, 15)).await;
    let state = state(&pool);
    let token = token(&pool).await;
    get(&state, "/api/v1/offers", &token).await;
    get(&state, &format!("/api/v1/offers/{}", IDS), &token).await;
    get(&state, "/api/v1/offers/unknown", &token).await;
    // Gone from the public listener: the operator listener serves them.
    let public = get_as(&state, "/api/v1/metrics", &[], peer()).await;
    assert_eq!(public.status, 404);
    let answer = admin_get(&state, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(answer
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(answer.body).unwrap();
    assert!(
        text.contains("carfeed_api_requests_total{route=\"/api/v1/offers\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "carfeed_api_requests_total{route=\"/api/v1/offers/{inner_id}\",status=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("carfeed_api_request_duration_seconds_count{route=\"/api/v1/offers\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("unknown"),
        "raw paths must not become series"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_openapi_document_describes_every_endpoint_and_the_docs_page_serves(pool: PgPool) {
    let state = state(&pool);
    let answer = get_as(&state, "/api/v1/openapi.json", &[], peer()).await;
    assert_eq!(answer.status, 200);
    let spec = answer.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/offers",
        "/api/v1/offers/{inner_id}",
        "/api/v1/filters",
        "/api/v1/stats",
        "/api/v1/health",
        "/api/v1/ready",
        "/status.json",
    ] {
        assert!(spec["paths"][path]["get"].is_object(), "{path} missing");
    }
    // Operation ids that generate idiomatic client names in any language.
    for (path, id) in [
        ("/api/v1/offers", "listOffers"),
        ("/api/v1/offers/{inner_id}", "getOffer"),
        ("/api/v1/filters", "getFilters"),
        ("/api/v1/stats", "getStats"),
        ("/api/v1/health", "getHealth"),
        ("/api/v1/ready", "getReadiness"),
        ("/status.json", "getStatus"),
    ] {
        assert_eq!(spec["paths"][path]["get"]["operationId"], id, "{path}");
    }
    let params: Vec<&str> = spec["paths"]["/api/v1/offers"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "mark",
        "model",
        "year_from",
        "price_to",
        "km_age_to",
        "city",
        "is_dealer",
        "sort",
        "order",
        "limit",
        "cursor",
    ] {
        assert!(params.contains(&name), "{name} not documented");
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    let docs = get_as(&state, "/api/v1/docs", &[], peer()).await;
    assert_eq!(docs.status, 200);
    assert!(
        String::from_utf8_lossy(&docs.body).contains("/api/v1/openapi.json")
            || String::from_utf8_lossy(&docs.body).contains("carfeed API")
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn unknown_routes_and_other_methods_get_the_json_error_shape(pool: PgPool) {
    let state = state(&pool);
    let token = token(&pool).await;
    let missing = get(&state, "/api/v2/nothing", &token).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error().0, "not_found");
    let app = api::app(state.clone());
    let request = axum::http::Request::post("/api/v1/offers")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    assert_eq!(response.status(), 405);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn cors_allows_the_configured_origin_and_large_answers_are_gzipped(pool: PgPool) {
    insert(&pool, &generate(60, IDS, 16)).await;
    let state = state(&pool);
    let token = token(&pool).await;
    let auth = format!("Bearer {token}");
    let answer = get_as(
        &state,
        "/api/v1/offers?limit=50",
        &[
            ("authorization", &auth),
            ("origin", "https://cars.example.com"),
            ("accept-encoding", "gzip"),
        ],
        peer(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://cars.example.com")
    );
    assert!(answer
        .header("access-control-expose-headers")
        .unwrap()
        .contains("x-ratelimit-remaining"));
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    let other = get_as(
        &state,
        "/api/v1/offers",
        &[("authorization", &auth), ("origin", "https://evil.example")],
        peer(),
    )
    .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // A preflight needs no token.
    let app = api::app(state.clone());
    let preflight = axum::http::Request::builder()
        .method("OPTIONS")
        .uri("/api/v1/offers")
        .header("origin", "https://cars.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, preflight).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://cars.example.com"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_server_answers_over_a_real_socket_and_stops_on_its_shutdown_signal(pool: PgPool) {
    insert(&pool, &generate(10, IDS, 17)).await;
    let token = token(&pool).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state(&pool), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("http://{address}/api/v1/offers?limit=3"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops within 10 s")
        .unwrap()
        .unwrap();
    // The last use was written on the way out.
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(used.is_some());
}
