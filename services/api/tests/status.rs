//! The operator listener (issue 26): `/status` in real Chromium,
//! `/status.json` against the OpenAPI schema, `/metrics` through a
//! Prometheus text parser, on a database filled by the loader and the
//! normaliser from the simulator, with a dead worker, a blocked proxy and
//! rejected items.

mod common;

use std::time::Duration;

use che168_sim::{Faults, PoisonKind, SimConfig};
use chrono::Utc;
use domain::fleet::{ProxyStatus, TaskStatus, WorkerStatus};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use common::browser::{artifacts_dir, chromium, Loaded};
use common::*;

/// Loads a small catalogue (some listings poisoned, so the loader rejects
/// them), one daily update, and normalises everything; then a fleet with
/// one dead worker, one blocked proxy of two, tasks pending, and a backup
/// whose restore drill failed. Returns how many items were rejected.
async fn fill(pool: &PgPool) -> i64 {
    let sim = che168_sim::spawn(SimConfig {
        listings: 200,
        first_day: Utc::now().date_naive() - chrono::Duration::days(1),
        days: 2,
        changes_per_day: 40,
        faults: Faults {
            poison_rate: 0.05,
            poison_kinds: vec![PoisonKind::NulEscape],
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let settings = settings::load_from(&settings::Env::from_pairs([
        ("CHE168_BASE_URL", sim.base_url()),
        ("CHE168_API_KEY", "sim-key".to_owned()),
        ("CARFEED__UPSTREAM__RETRY__INTERVAL", "2ms".to_owned()),
        (
            "CARFEED__UPSTREAM__MAX_REQUESTS_PER_SECOND",
            "100000".to_owned(),
        ),
    ]))
    .unwrap();
    let stop = CancellationToken::new();
    loader::run_initial(&settings, pool.clone(), stop.clone(), Default::default())
        .await
        .unwrap();
    // Yesterday, complete (the daily update starts on the load's own day).
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let daily = loader::DailyOptions {
        date: Some(yesterday),
        ..Default::default()
    };
    loader::run_daily(&settings, pool.clone(), stop.clone(), daily)
        .await
        .unwrap();
    let options = normalizer::Options::from_settings(&settings.normalizer);
    normalizer::run_once(pool, &options, &stop).await.unwrap();

    sqlx::raw_sql(
        "INSERT INTO workers (name, status, slots, stale_after, last_heartbeat, ended_at)
         VALUES ('host-1', 'dead', 8, '90 seconds', now() - interval '10 minutes', now() - interval '5 minutes');
         INSERT INTO proxies (url, status, blocked_until) VALUES
             ('http://10.0.0.1:3128', 'blocked', now() + interval '10 minutes'),
             ('http://10.0.0.2:3128', 'free', NULL);
         INSERT INTO tasks (kind, target, status, finished_at) VALUES
             ('fetch_url', 'https://example.com/1', 'pending', NULL),
             ('fetch_url', 'https://example.com/2', 'pending', NULL),
             ('fetch_url', 'https://example.com/3', 'completed', now() - interval '5 minutes'),
             ('fetch_url', 'https://example.com/4', 'failed', now() - interval '2 hours');
         INSERT INTO operations_log (operation_type, started_at, duration, status, details) VALUES
             ('backup', now() - interval '3 hours', 4.2, 'OK',
              'file=carfeed-20261207T114715Z.dump size_bytes=43264 tables=13'),
             ('restore_drill', now() - interval '2 hours', 9.5, 'ERROR',
              'file=carfeed-20261207T114715Z.dump: row counts differ in processed_data');",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query_scalar("SELECT count(*) FROM rejected_items")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn state_of(status: &Value, section: &str) -> String {
    status[section]["state"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn status_json_shows_the_pipeline_and_fits_its_openapi_schema(pool: PgPool) {
    let rejected = fill(&pool).await;
    assert!(rejected > 0, "the poisoned listings are rejected");
    let state = state(&pool);
    token(&pool).await;

    let answer = admin_get(&state, "/status.json").await;
    assert_eq!(answer.status, 200);
    let status = answer.json();

    // The schema in the OpenAPI document, with its references.
    let spec = get_as(&state, "/api/v1/openapi.json", &[], peer())
        .await
        .json();
    let op = &spec["paths"]["/status.json"]["get"];
    assert_eq!(op["operationId"], "getStatus");
    let mut schema = op["responses"]["200"]["content"]["application/json"]["schema"].clone();
    schema["components"] = spec["components"].clone();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&status)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{status:#}");
    // The schema would catch a wrong shape.
    let mut broken = status.clone();
    broken["fleet"]["workers_dead"] = Value::from("one");
    assert!(!validator.is_valid(&broken));

    let (raw, processed): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE is_processed) FROM raw_data")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(raw > 0);
    assert_eq!(processed, raw, "the normaliser drained the queue");

    assert_eq!(state_of(&status, "initial_load"), "ok");
    assert_eq!(status["initial_load"]["finished"], true);
    assert_eq!(status["initial_load"]["pages_done"], 10);
    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    assert_eq!(
        status["daily"]["last_successful_date"],
        yesterday.to_string()
    );
    assert_eq!(status["daily"]["days_behind"], 1);
    assert_eq!(state_of(&status, "daily"), "ok");
    assert_eq!(status["normalizer"]["waiting"], 0);
    assert_eq!(state_of(&status, "normalizer"), "ok");
    assert!(
        status["normalizer"]["processed_last_hour"]
            .as_i64()
            .unwrap()
            >= raw
    );

    assert_eq!(status["rejected"]["total"], rejected);
    assert_eq!(state_of(&status, "rejected"), "warn");
    assert!(!status["rejected"]["newest"].as_array().unwrap().is_empty());

    let fleet = &status["fleet"];
    assert_eq!(
        (
            fleet["workers_alive"].as_i64(),
            fleet["workers_dead"].as_i64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(fleet["proxies"][ProxyStatus::Blocked.as_str()], 1);
    assert_eq!(fleet["proxies"][ProxyStatus::Free.as_str()], 1);
    assert_eq!(fleet["tasks"][TaskStatus::Pending.as_str()], 2);
    assert_eq!(fleet["completed_last_hour"], 1);
    assert_eq!(fleet["failed_last_hour"], 0);
    assert_eq!(
        state_of(&status, "fleet"),
        "fail",
        "tasks pending, no worker alive"
    );
    let reasons = fleet["reasons"].to_string();
    assert!(reasons.contains("1 worker(s) died"), "{reasons}");
    assert!(reasons.contains("1 of 2 proxies are blocked"), "{reasons}");

    assert_eq!(state_of(&status, "sync"), "ok", "never pushed: sync unused");
    assert_eq!(status["sync"]["target_reachable"], Value::Null);
    assert_eq!(status["api"]["active_tokens"], 1);
    assert_eq!(state_of(&status, "api"), "ok");

    assert_eq!(status["backup"]["size_bytes"], 43264);
    assert_eq!(status["backup"]["restore_drill_status"], "ERROR");
    assert_eq!(state_of(&status, "backup"), "fail");
    assert_eq!(status["state"], "fail");
    let ops = status["operations"].as_array().unwrap();
    assert!(ops.len() >= 5 && ops.len() <= 20, "{}", ops.len());
    assert_eq!(ops[0]["operation_type"], "normalization", "newest first");
    let started: Vec<&str> = ops
        .iter()
        .map(|o| o["started_at"].as_str().unwrap())
        .collect();
    assert!(started.windows(2).all(|w| w[0] >= w[1]), "{started:?}");
    assert!(ops.iter().any(|o| o["operation_type"] == "restore_drill"));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn metrics_parse_as_prometheus_text_with_the_pipeline_gauges(pool: PgPool) {
    let rejected = fill(&pool).await;
    let state = state(&pool);
    let token = token(&pool).await;
    get(&state, "/api/v1/offers", &token).await;

    let answer = admin_get(&state, "/metrics").await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} missing:\n{text}"));
        match sample.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(
        value("carfeed_status_state", Some(("section", "fleet"))),
        2.0
    );
    assert_eq!(
        value("carfeed_status_state", Some(("section", "rejected"))),
        1.0
    );
    assert_eq!(value("carfeed_status_state", Some(("section", "api"))), 0.0);
    assert_eq!(
        value(
            "carfeed_workers",
            Some(("status", WorkerStatus::Dead.as_str()))
        ),
        1.0
    );
    assert_eq!(
        value(
            "carfeed_proxies",
            Some(("status", ProxyStatus::Blocked.as_str()))
        ),
        1.0
    );
    assert_eq!(
        value(
            "carfeed_tasks",
            Some(("status", TaskStatus::Pending.as_str()))
        ),
        2.0
    );
    assert_eq!(value("carfeed_rejected_items", None), rejected as f64);
    assert_eq!(value("carfeed_normalizer_waiting_rows", None), 0.0);
    assert_eq!(value("carfeed_backup_size_bytes", None), 43264.0);
    assert_eq!(value("carfeed_restore_drill_ok", None), 0.0);
    assert_eq!(
        value(
            "carfeed_api_requests_total",
            Some(("route", "/api/v1/offers"))
        ),
        1.0
    );
    // Every family follows the conventions.
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("carfeed_"), "{}", sample.metric);
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_status_page_in_chromium_shows_the_states_and_loads_nothing_from_elsewhere(
    pool: PgPool,
) {
    let Some(chromium) = chromium() else { return };
    let rejected = fill(&pool).await;
    let state = state(&pool);
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", admin.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(admin, api::admin::app(state)).await });

    let loaded = Loaded::open(
        &chromium,
        &format!("{origin}/status"),
        Duration::from_millis(500),
    )
    .await;
    let text = loaded.text().await;
    let shot = artifacts_dir().join("status.png");
    loaded.screenshot(&shot).await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot"
    );

    // Each section shows its state as a word (and a colour, by its class).
    let states: Vec<(String, String)> = serde_json::from_value(
        loaded
            .page
            .evaluate(
                "[...document.querySelectorAll('section')].map(s => \
                 [s.id, s.querySelector('.state').innerText.toLowerCase() + '/' + \
                  getComputedStyle(s.querySelector('.state')).backgroundColor])",
            )
            .await
            .unwrap()
            .into_value::<Value>()
            .unwrap(),
    )
    .unwrap();
    let find = |id: &str| states.iter().find(|(s, _)| s == id).unwrap().1.clone();
    assert_eq!(find("fleet"), "fail/rgb(198, 40, 40)");
    assert_eq!(find("backup"), "fail/rgb(198, 40, 40)");
    assert_eq!(find("rejected"), "warn/rgb(168, 111, 0)");
    assert_eq!(find("normalizer"), "ok/rgb(46, 133, 64)");
    assert_eq!(states.len(), 8, "{states:?}");

    for expected in [
        "workers dead\t1",
        "proxies blocked\t1",
        "tasks pending\t2",
        &format!("in rejected_items\t{rejected}"),
        "pages done\t10",
        "1 worker(s) died",
        "43,264 bytes",
        "restore_drill",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not on the page:\n{text}"
        );
    }
    let foreign = loaded.foreign_requests(&origin);
    assert!(foreign.is_empty(), "requests left the origin: {foreign:?}");
    assert!(
        !loaded.requests.lock().unwrap().is_empty(),
        "the network log saw the page"
    );
    loaded.close().await;
    server.abort();
}
