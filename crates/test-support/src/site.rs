//! A small listings site for the browser tests and bench (issue 15): each
//! `/car/<id>` page is an empty shell whose script fetches `/api/car/<id>`
//! and only then writes the listing into the page, so a plain GET sees no
//! listing and a browser does. A path can be made to answer a captcha page
//! once (`captcha_once`), and the API can be slowed (`set_api_latency`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

#[derive(Default)]
struct SiteState {
    hits: Mutex<HashMap<String, u64>>,
    captcha_once: Mutex<HashSet<String>>,
    api_latency: Mutex<Duration>,
}

/// A running site; it stops when dropped.
pub struct Site {
    pub addr: SocketAddr,
    state: Arc<SiteState>,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind site");
        let addr = listener.local_addr().expect("site addr");
        let state = Arc::new(SiteState::default());
        let app = Router::new()
            .route("/car/{id}", get(car_page))
            .route("/api/car/{id}", get(car_api))
            .fallback(not_found)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests for `path` so far.
    pub fn hits(&self, path: &str) -> u64 {
        let hits = self.state.hits.lock().unwrap();
        hits.get(path).copied().unwrap_or(0)
    }

    /// The next request for `path` gets a captcha page (200) instead.
    pub fn captcha_once(&self, path: &str) {
        self.state
            .captcha_once
            .lock()
            .unwrap()
            .insert(path.to_owned());
    }

    /// The listing API answers after `latency` from now on.
    pub fn set_api_latency(&self, latency: Duration) {
        *self.state.api_latency.lock().unwrap() = latency;
    }

    /// The listing `/car/<id>` shows once its script ran, as the shipped
    /// `listing` extraction profile reads it (URLs absolute on this site).
    pub fn expected_listing(&self, id: u32) -> Value {
        let car = car(id);
        json!({
            "title": car["title"],
            "price": car["price"],
            "mileage_km": car["mileage_km"],
            "dealer_url": self.url(&format!("/dealer/{}", car["dealer"].as_str().unwrap_or_default())),
            "photos": car["photos"].as_array().unwrap().iter()
                .map(|p| Value::from(self.url(p.as_str().unwrap_or_default())))
                .collect::<Vec<_>>(),
        })
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn car(id: u32) -> Value {
    json!({
        "title": format!("BMW 320i #{id}"),
        "price": 100_000 + u64::from(id) * 1_250,
        "mileage_km": 1_000 * u64::from(id) + 7,
        "dealer": format!("d{}", id % 5),
        "photos": (1..=3).map(|n| format!("/img/{id}-{n}.jpg")).collect::<Vec<_>>(),
    })
}

fn count(state: &SiteState, path: &str) {
    *state
        .hits
        .lock()
        .unwrap()
        .entry(path.to_owned())
        .or_default() += 1;
}

/// The page: fixtures/listing-site/car.html, shared with the compose smoke
/// test; its script takes the id from the path.
const SHELL: &str = include_str!("../../../fixtures/listing-site/car.html");

const CAPTCHA: &str = "<!doctype html><html><head><title>Just a moment</title></head>\
<body><h1>Verify you are human</h1><div class=\"g-recaptcha\"></div></body></html>";

async fn car_page(State(state): State<Arc<SiteState>>, Path(id): Path<u32>) -> Html<String> {
    let path = format!("/car/{id}");
    count(&state, &path);
    if state.captcha_once.lock().unwrap().remove(&path) {
        return Html(CAPTCHA.to_owned());
    }
    Html(SHELL.to_owned())
}

async fn car_api(State(state): State<Arc<SiteState>>, Path(id): Path<u32>) -> Response {
    count(&state, &format!("/api/car/{id}"));
    let latency = *state.api_latency.lock().unwrap();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        car(id).to_string(),
    )
        .into_response()
}

async fn not_found(State(state): State<Arc<SiteState>>, uri: Uri) -> StatusCode {
    count(&state, uri.path());
    StatusCode::NOT_FOUND
}
