//! Shared by the api's integration tests: offers the tests insert and a
//! reference model of what the api must answer for them, tokens, and ways to
//! call the app (in-process with `oneshot`, or over a real socket).
#![allow(dead_code)]

pub mod browser;

use std::net::SocketAddr;

use api::{AppState, Config};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;

/// One offer as the tests insert it into processed_data.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub inner_id: String,
    pub mark: Option<String>,
    pub model: Option<String>,
    pub year: Option<i32>,
    pub price: Option<i64>,
    pub km_age: Option<i32>,
    pub city: Option<String>,
    pub body_type: Option<String>,
    pub engine_type: Option<String>,
    pub transmission_type: Option<String>,
    pub drive_type: Option<String>,
    pub seller_type: Option<String>,
    pub is_dealer: Option<bool>,
    pub listed_at: Option<DateTime<Utc>>,
    pub is_active: bool,
}

impl Offer {
    pub fn record(&self) -> Value {
        json!({
            "inner_id": self.inner_id, "mark": self.mark, "model": self.model,
            "year": self.year, "price": self.price, "km_age": self.km_age,
            "city": self.city, "body_type": self.body_type, "engine_type": self.engine_type,
            "transmission_type": self.transmission_type, "drive_type": self.drive_type,
            "seller_type": self.seller_type, "is_dealer": self.is_dealer,
            "listed_at": self.listed_at, "description": "车况精品 \"quoted\" \\ text",
            "images": ["https://example.com/a.jpg"],
        })
    }
}

/// A small deterministic generator (no dependency, same rows every run).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
    /// None about one time in `one_in`.
    pub fn maybe<T>(&mut self, one_in: u64, value: T) -> Option<T> {
        (!self.next().is_multiple_of(one_in)).then_some(value)
    }
}

pub const MARKS: [(&str, [&str; 3]); 5] = [
    ("BMW", ["X5", "3 Series", "5 Series"]),
    ("Audi", ["A4L", "A6L", "Q5L"]),
    ("Toyota", ["Camry", "Corolla", "RAV4"]),
    ("Volkswagen", ["Passat", "Golf", "Tiguan"]),
    ("比亚迪", ["汉", "秦PLUS", "宋"]),
];

/// `count` offers with ids starting at `first_id`: ties on every sort
/// column, NULLs in each, about one in seven inactive.
pub fn generate(count: usize, first_id: u64, seed: u64) -> Vec<Offer> {
    let mut rng = Lcg::new(seed);
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..count)
        .map(|i| {
            let (mark, models) = MARKS[(rng.next() as usize) % MARKS.len()];
            let model = models[(rng.next() as usize) % models.len()];
            let dealer = rng.next() & 1 == 0;
            let year = 2012 + (rng.next() % 13) as i32;
            let price = 30_000 + (rng.next() % 40) as i64 * 5_000;
            let km_age = (rng.next() % 30) as i32 * 10_000;
            let city = rng.pick(&["北京", "上海", "广州", "Shenzhen"]).to_owned();
            let body = rng.pick(&["Sedan", "SUV", "Hatchback", "MPV"]).to_owned();
            let engine = rng
                .pick(&["Gasoline", "Electric", "Hybrid", "Diesel"])
                .to_owned();
            let gearbox = rng.pick(&["Automatic", "Manual", "CVT"]).to_owned();
            let drive = rng.pick(&["FWD", "RWD", "AWD"]).to_owned();
            let seller = if dealer { "dealer" } else { "private" }.to_owned();
            let listed = base + Duration::minutes((rng.next() % 500) as i64 * 7);
            Offer {
                inner_id: (first_id + i as u64).to_string(),
                mark: rng.maybe(40, mark.to_owned()),
                model: rng.maybe(40, model.to_owned()),
                year: rng.maybe(12, year),
                price: rng.maybe(10, price),
                km_age: rng.maybe(10, km_age),
                city: rng.maybe(20, city),
                body_type: rng.maybe(20, body),
                engine_type: rng.maybe(20, engine),
                transmission_type: rng.maybe(20, gearbox),
                drive_type: rng.maybe(20, drive),
                seller_type: rng.maybe(20, seller),
                is_dealer: rng.maybe(20, dealer),
                listed_at: rng.maybe(10, listed),
                is_active: !rng.next().is_multiple_of(7),
            }
        })
        .collect()
}

/// Inserts offers in one statement.
pub async fn insert(pool: &PgPool, offers: &[Offer]) {
    let col = |f: fn(&Offer) -> Option<String>| offers.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO processed_data (inner_id, raw_id, mark, model, year, price, km_age, city,
             body_type, engine_type, transmission_type, drive_type, seller_type, is_dealer,
             listed_at, is_active, record)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::bigint[],
             $7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
             $14::bool[], $15::timestamptz[], $16::bool[], $17::jsonb[])",
    )
    .bind(offers.iter().map(|o| o.inner_id.clone()).collect::<Vec<_>>())
    .bind(offers.iter().map(|o| o.inner_id.parse::<i64>().unwrap()).collect::<Vec<_>>())
    .bind(col(|o| o.mark.clone()))
    .bind(col(|o| o.model.clone()))
    .bind(offers.iter().map(|o| o.year).collect::<Vec<_>>())
    .bind(offers.iter().map(|o| o.price).collect::<Vec<_>>())
    .bind(offers.iter().map(|o| o.km_age).collect::<Vec<_>>())
    .bind(col(|o| o.city.clone()))
    .bind(col(|o| o.body_type.clone()))
    .bind(col(|o| o.engine_type.clone()))
    .bind(col(|o| o.transmission_type.clone()))
    .bind(col(|o| o.drive_type.clone()))
    .bind(col(|o| o.seller_type.clone()))
    .bind(offers.iter().map(|o| o.is_dealer).collect::<Vec<_>>())
    .bind(offers.iter().map(|o| o.listed_at).collect::<Vec<_>>())
    .bind(offers.iter().map(|o| o.is_active).collect::<Vec<_>>())
    .bind(offers.iter().map(Offer::record).collect::<Vec<_>>())
    .execute(pool)
    .await
    .unwrap();
}

/// The sort value of an offer as a comparable number (None = NULL).
pub fn sort_value(offer: &Offer, sort: &str) -> Option<i64> {
    match sort {
        "price" => offer.price,
        "year" => offer.year.map(i64::from),
        "km_age" => offer.km_age.map(i64::from),
        "listed_at" => offer.listed_at.map(|t| t.timestamp_micros()),
        other => panic!("unknown sort {other}"),
    }
}

/// The reference order: non-NULL values first in the requested direction,
/// ties and NULLs by inner_id in the same direction (ids compare as text).
pub fn reference_order(offers: &[&Offer], sort: &str, desc: bool) -> Vec<String> {
    let mut sorted: Vec<&Offer> = offers.to_vec();
    sorted.sort_by(|a, b| {
        let (va, vb) = (sort_value(a, sort), sort_value(b, sort));
        let nulls = va.is_none().cmp(&vb.is_none());
        let mut rest = va.cmp(&vb).then_with(|| a.inner_id.cmp(&b.inner_id));
        if desc {
            rest = rest.reverse();
        }
        nulls.then(rest)
    });
    sorted.into_iter().map(|o| o.inner_id.clone()).collect()
}

pub const SECRET: &[u8] = b"test-secret-key-of-at-least-32-chars!";

/// Issues one token with the test secret.
pub async fn token(pool: &PgPool) -> String {
    api::tokens::issue(pool, SECRET, 1, "test", None)
        .await
        .unwrap()
        .remove(0)
        .expose()
        .to_owned()
}

pub fn state(pool: &PgPool) -> AppState {
    api_state(pool, Config::for_tests())
}

/// The api's state over its own pool of the test database, as `api serve`
/// builds it.
pub fn api_state(pool: &PgPool, config: Config) -> AppState {
    AppState::new(
        api::pool::bounded(pool, config.api.statement_timeout),
        config,
    )
}

/// A parsed answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error's code and parameter, checking the shared error shape.
    pub fn error(&self) -> (String, Option<String>) {
        let body = self.json();
        let error = &body["error"];
        assert_eq!(error["status"], self.status.as_u16(), "{body}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        (
            error["code"].as_str().unwrap().to_owned(),
            error["parameter"].as_str().map(str::to_owned),
        )
    }

    pub fn ids(&self) -> Vec<String> {
        self.json()["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items: {}", self.json()))
            .iter()
            .map(|i| i["inner_id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// GET `uri` through `app(state)` in process, as `peer`, with `headers`.
pub async fn get_as(
    state: &AppState,
    uri: &str,
    headers: &[(&str, &str)],
    peer: SocketAddr,
) -> Answer {
    let app = api::app(state.clone());
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// GET on the operator listener's router (`api::admin::app`).
pub async fn admin_get(state: &AppState, uri: &str) -> Answer {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = api::admin::app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn peer() -> SocketAddr {
    "192.0.2.10:40000".parse().unwrap()
}

/// GET with a bearer token.
pub async fn get(state: &AppState, uri: &str, token: &str) -> Answer {
    get_as(
        state,
        uri,
        &[("authorization", &format!("Bearer {token}"))],
        peer(),
    )
    .await
}
