//! The api's request log: each response at DEBUG, inside the request's
//! span, which carries its request id.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use sqlx::PgPool;
use tower::ServiceExt;

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn each_response_is_logged_at_debug_with_its_request_id(pool: PgPool) {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let response = api::app(common::state(&pool))
        .oneshot(
            Request::get("/api/v1/health")
                .header("x-request-id", "trace-test-1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("finished processing request"))
        .unwrap_or_else(|| panic!("no response line in {text:?}"));
    assert!(line.contains("DEBUG"), "{line}");
    // The span's field, however the formatter quotes it.
    assert!(line.contains("request_id="), "{line}");
    assert!(line.contains("trace-test-1"), "{line}");
    assert!(line.contains("status=200"), "{line}");
}
