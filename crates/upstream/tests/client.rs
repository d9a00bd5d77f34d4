//! The client against the simulator over real HTTP on port 0.

use std::time::{Duration, Instant};

use che168_sim::{Faults, RunningSim, SimConfig};
use domain::retry::RetryPolicy;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use upstream::{Client, ClientConfig, UpstreamError};

async fn sim(faults: Faults) -> RunningSim {
    che168_sim::spawn(SimConfig {
        listings: 100,
        days: 2,
        changes_per_day: 40,
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn client(sim: &RunningSim, key: &str, attempts: u32, interval: Duration) -> Client {
    let config = ClientConfig {
        base_url: sim.base_url(),
        api_key: SecretString::from(key),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        max_requests_per_second: 10_000.0,
        retry: RetryPolicy {
            max_attempts: attempts,
            interval,
            max_elapsed: Duration::from_secs(60),
        },
        max_body_bytes: 16 << 20,
    };
    Client::new(config, CancellationToken::new()).unwrap()
}

#[tokio::test]
async fn pages_changes_and_offers_parse_from_the_simulator() {
    let sim = sim(Faults::default()).await;
    let c = client(&sim, "sim-key", 1, Duration::from_millis(1));
    let page = c.offers_page(1).await.unwrap();
    assert_eq!((page.items.len(), page.next_page), (20, Some(2)));
    assert_eq!(c.offers_page(5).await.unwrap().next_page, None);
    let first = c.change_id(sim.catalogue().first_day()).await.unwrap();
    let changes = c.changes(first).await.unwrap();
    assert_eq!(changes.items.len(), 20);
    assert_eq!(changes.next_change_id, Some(first + 20));
    let inner_id = &page.items[0].inner_id;
    let offer = c.offer(inner_id).await.unwrap();
    assert!(offer.is_some_and(|o| o.contains_key("mark")));
    assert_eq!(c.offer("1").await.unwrap(), None, "404 means gone");
}

#[tokio::test]
async fn a_wrong_key_stops_at_once_without_retrying() {
    let sim = sim(Faults::default()).await;
    let c = client(&sim, "not-the-key", 20, Duration::from_millis(1));
    let err = c.offers_page(1).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(
        !err.to_string().contains("not-the-key"),
        "the key is never shown: {err}"
    );
    assert_eq!(sim.requests("offers"), 1);
}

#[tokio::test]
async fn server_errors_truncated_bodies_and_resets_are_retried_until_success() {
    let sim = sim(Faults {
        server_error_rate: 0.3,
        truncated_rate: 0.2,
        reset_rate: 0.2,
        ..Faults::default()
    })
    .await;
    let c = client(&sim, "sim-key", 40, Duration::from_millis(1));
    for page in 1..=5 {
        assert_eq!(c.offers_page(page).await.unwrap().items.len(), 20);
    }
    assert!(
        sim.requests("offers") > 5,
        "some attempts failed and were retried"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer_than_the_interval() {
    let sim = sim(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    })
    .await;
    let c = client(&sim, "sim-key", 2, Duration::from_millis(1));
    let started = Instant::now();
    let err = c.offers_page(1).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::GaveUp { attempts: 2, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(sim.requests("offers"), 2);
}

#[tokio::test]
async fn giving_up_respects_max_attempts_and_names_the_request_not_the_url() {
    let sim = sim(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let c = client(&sim, "sim-key", 3, Duration::from_millis(1));
    let err = c.offers_page(7).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("GET /offers?page=7: gave up after 3 attempt(s)"),
        "{text}"
    );
    assert!(
        !text.contains("sim-key") && !text.contains("127.0.0.1"),
        "{text}"
    );
    assert_eq!(sim.requests("offers"), 3);
}

#[tokio::test]
async fn shutdown_interrupts_a_wait_between_attempts() {
    let sim = sim(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let token = CancellationToken::new();
    let config = ClientConfig {
        base_url: sim.base_url(),
        api_key: SecretString::from("sim-key"),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        max_requests_per_second: 100.0,
        retry: RetryPolicy::default(),
        max_body_bytes: 16 << 20,
    };
    let c = Client::new(config, token.clone()).unwrap();
    let stopper = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    let err = c.offers_page(1).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Cancelled { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_body_longer_than_the_cap_is_a_bad_body_retried_like_one() {
    let sim = sim(Faults::default()).await;
    let config = ClientConfig {
        base_url: sim.base_url(),
        api_key: SecretString::from("sim-key"),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        max_requests_per_second: 10_000.0,
        retry: RetryPolicy {
            max_attempts: 3,
            interval: Duration::from_millis(1),
            max_elapsed: Duration::from_secs(60),
        },
        max_body_bytes: 1_000,
    };
    let c = Client::new(config, CancellationToken::new()).unwrap();
    let err = c.offers_page(1).await.unwrap_err();
    match err {
        UpstreamError::GaveUp { attempts, last, .. } => {
            assert_eq!(attempts, 3);
            assert!(last.contains("longer than 1000 bytes"), "{last}");
        }
        other => panic!("expected GaveUp, got {other}"),
    }
    assert_eq!(sim.requests("offers"), 3);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_waits_out_the_budget_instead_of_giving_up() {
    let sim = sim(Faults {
        rate_limit_rate: 1.0,
        retry_after_secs: 30,
        ..Faults::default()
    })
    .await;
    let config = ClientConfig {
        base_url: sim.base_url(),
        api_key: SecretString::from("sim-key"),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        max_requests_per_second: 10_000.0,
        retry: RetryPolicy {
            max_attempts: 5,
            interval: Duration::from_millis(1),
            max_elapsed: Duration::from_millis(600),
        },
        max_body_bytes: 16 << 20,
    };
    let c = Client::new(config, CancellationToken::new()).unwrap();
    let started = Instant::now();
    let err = c.offers_page(1).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::GaveUp { attempts: 2, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.requests("offers"), 2);
}

#[tokio::test]
async fn an_unexpected_4xx_is_final_and_stops_the_run() {
    let sim = sim(Faults::default()).await;
    let c = client(&sim, "sim-key", 5, Duration::from_millis(1));
    let err = c.offers_page(0).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert!(err.is_fatal());
    assert!(err.to_string().contains("GET /offers?page=0"), "{err}");
    assert_eq!(sim.requests("offers"), 1);
}
