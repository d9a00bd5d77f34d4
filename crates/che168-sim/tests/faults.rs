//! Each fault does what it says, seen by a real reqwest client.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use che168_sim::{Faults, SimConfig};
use support::{get, small_config, start, KEY};

fn with_faults(faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        ..small_config()
    }
}

#[tokio::test]
async fn truncated_rate_one_gives_a_200_whose_body_does_not_parse() {
    let sim = start(with_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    for path in ["/offers?page=2", "/change_id?date=2026-08-18", "/filters"] {
        let answer = get(&sim, path).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(!answer.body.is_empty());
        assert!(
            serde_json::from_slice::<serde_json::Value>(&answer.body).is_err(),
            "{path} is cut"
        );
    }
}

#[tokio::test]
async fn reset_rate_one_gives_the_client_a_connection_error() {
    let sim = start(with_faults(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let url = format!("{}/offers?page=1&api_key={KEY}", sim.base_url());
    for _ in 0..3 {
        let err = reqwest::get(&url).await.expect_err("no response arrives");
        assert!(err.status().is_none());
        assert!(
            err.is_request() || err.is_connect() || err.is_body(),
            "a transport error: {err:?}"
        );
    }
    assert_eq!(sim.requests("offers"), 3);
    sim.set_faults(Faults::default());
    assert_eq!(
        get(&sim, "/offers?page=1").await.status,
        200,
        "the server is fine afterwards"
    );
}

#[tokio::test]
async fn timeout_rate_one_hangs_longer_than_the_client_waits() {
    let sim = start(with_faults(Faults {
        timeout_rate: 1.0,
        timeout: Duration::from_secs(30),
        ..Faults::default()
    }))
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/filters?api_key={KEY}", sim.base_url()))
        .send()
        .await
        .expect_err("the client gives up");
    assert!(err.is_timeout(), "{err:?}");
    let started = Instant::now();
    sim.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown does not wait for the hang"
    );
}

#[tokio::test]
async fn server_error_rate_one_answers_502_or_503() {
    let sim = start(with_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    }))
    .await;
    let mut statuses = HashSet::new();
    for page in 1..=20 {
        statuses.insert(get(&sim, &format!("/offers?page={page}")).await.status);
    }
    assert_eq!(statuses, HashSet::from([502, 503]));
}

#[tokio::test]
async fn rate_limit_rate_one_answers_429_with_retry_after() {
    let sim = start(with_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 7,
        ..Faults::default()
    }))
    .await;
    let answer = get(&sim, "/changes?change_id=1").await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "7");
    assert!(answer.json()["message"].is_string());
}

#[tokio::test]
async fn a_share_of_errors_fails_about_that_share_of_requests() {
    let sim = start(with_faults(Faults {
        server_error_rate: 0.3,
        ..Faults::default()
    }))
    .await;
    let mut failed = 0;
    for _ in 0..200 {
        if get(&sim, "/filters").await.status != 200 {
            failed += 1;
        }
    }
    assert!(
        (30..=90).contains(&failed),
        "{failed} of 200 failed at a 30% share"
    );
}

#[tokio::test]
async fn fail_pages_fails_exactly_those_pages_every_time() {
    let faults = Faults {
        fail_pages: HashSet::from([3]),
        ..Faults::default()
    };
    let sim = start(with_faults(faults)).await;
    for _ in 0..3 {
        assert_eq!(get(&sim, "/offers?page=3").await.status, 503);
    }
    assert_eq!(get(&sim, "/offers?page=2").await.status, 200);
    assert_eq!(get(&sim, "/offers?page=4").await.status, 200);
    assert_eq!(sim.page_requests(3), 3);
    assert_eq!(sim.page_requests(2), 1);
    assert_eq!(sim.page_requests(5), 0);
}

#[tokio::test]
async fn fail_change_ids_fails_exactly_those_changes_pages() {
    let config = small_config();
    let first = config.catalogue().first_change_id();
    let sim = start(with_faults(Faults {
        fail_change_ids: HashSet::from([first + 20]),
        ..Faults::default()
    }))
    .await;
    assert_eq!(
        get(&sim, &format!("/changes?change_id={first}"))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&sim, &format!("/changes?change_id={}", first + 20))
            .await
            .status,
        503
    );
    assert_eq!(sim.change_requests(first + 20), 1);
}

#[tokio::test]
async fn next_page_zero_ends_the_offers_with_zero() {
    let sim = start(with_faults(Faults {
        next_page_zero: true,
        ..Faults::default()
    }))
    .await;
    let last = get(&sim, "/offers?page=52").await.json();
    assert_eq!(last["meta"]["next_page"], 0);
    assert_eq!(
        get(&sim, "/offers?page=51").await.json()["meta"]["next_page"],
        52
    );
}

#[tokio::test]
async fn empty_tip_makes_changes_always_answer_the_tip() {
    let sim = start(with_faults(Faults {
        empty_tip: true,
        ..Faults::default()
    }))
    .await;
    let first = sim.catalogue().first_change_id();
    let body = get(&sim, &format!("/changes?change_id={first}"))
        .await
        .json();
    assert_eq!(body["result"], serde_json::json!([]));
    assert!(body["meta"]["next_change_id"].is_null());
    assert_eq!(body["meta"]["cur_change_id"], first);
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let sim = start(with_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    }))
    .await;
    let started = Instant::now();
    assert_eq!(get(&sim, "/filters").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn faults_can_be_changed_while_running_and_requests_are_counted() {
    let sim = start(small_config()).await;
    assert_eq!(get(&sim, "/filters").await.status, 200);
    sim.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    assert!(get(&sim, "/filters").await.status >= 502);
    sim.set_faults(Faults::default());
    assert_eq!(get(&sim, "/filters").await.status, 200);
    assert_eq!(sim.requests("filters"), 3);
    assert_eq!(sim.requests("/filters"), 3);
    assert_eq!(sim.requests("offers"), 0);
    assert_eq!(sim.requests("total"), 3);
}
