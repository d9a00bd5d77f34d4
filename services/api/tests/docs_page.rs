//! The interactive docs page in real Chromium: it renders the api's own
//! OpenAPI document with the Scalar bundle served by the api itself, and no
//! request leaves the origin (issue 26: the page works offline).

mod common;

use std::time::Duration;

use sqlx::PgPool;

use common::browser::{artifacts_dir, chromium, Loaded};
use common::*;

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn docs_page_renders_the_document_from_this_origin_only(pool: PgPool) {
    let Some(chromium) = chromium() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state(&pool), async {
        let _ = stopped.await;
    }));

    let loaded = Loaded::open(
        &chromium,
        &format!("{origin}/api/v1/docs"),
        Duration::from_secs(4),
    )
    .await;
    // Scalar rendered the document: its title and the operations' paths.
    let mut text = String::new();
    for _ in 0..60 {
        text = loaded.text().await;
        if text.contains("/api/v1/offers/{inner_id}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    loaded.screenshot(&artifacts_dir().join("docs.png")).await;
    assert!(text.contains("carfeed API"), "not rendered:\n{text}");
    assert!(
        text.contains("/api/v1/offers/{inner_id}"),
        "not rendered:\n{text}"
    );
    let requests = loaded.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|u| u.ends_with("/api/v1/docs/scalar.js")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|u| u.ends_with("/api/v1/openapi.json")),
        "{requests:?}"
    );
    let foreign = loaded.foreign_requests(&origin);
    assert!(foreign.is_empty(), "requests left the origin: {foreign:?}");
    loaded.close().await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
