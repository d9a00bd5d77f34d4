//! The HTTP face: routes under `/api/v2/che168`, one handler per endpoint,
//! and nginx's HTML 404 for anything else (as the real wrong host answers).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use crate::catalogue::{Catalogue, Envelope, PAGE_SIZE};
use crate::faults::{self, Counters};
use crate::rng::hash;
use crate::{vocab, Faults, PATH_PREFIX};

const SHAPE_STREAM: u64 = 30;

/// Everything the handlers share.
pub(crate) struct SimState {
    pub catalogue: Arc<Catalogue>,
    pub api_key: String,
    pub seed: u64,
    pub faults: RwLock<Arc<Faults>>,
    pub counters: Counters,
}

impl SimState {
    pub fn faults(&self) -> Arc<Faults> {
        self.faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

type Params = Query<HashMap<String, String>>;

pub(crate) fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .route("/offers", get(offers))
        .route("/offer", get(offer))
        .route("/change_id", get(change_id))
        .route("/changes", get(changes))
        .route("/filters", get(filters))
        .route_layer(middleware::from_fn_with_state(state.clone(), faults::guard));
    Router::new()
        .nest(PATH_PREFIX, api)
        .fallback(not_found_page)
        .with_state(state)
}

pub(crate) fn json_body(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    json_body(status, json!({ "message": text }).to_string().into_bytes())
}

async fn not_found_page(State(state): State<Arc<SimState>>) -> Response {
    state.counters.hit("other");
    const PAGE: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html")],
        Body::from(PAGE),
    )
        .into_response()
}

async fn offers(State(state): State<Arc<SimState>>, Query(params): Params) -> Response {
    let page = match params.get("page").map(|p| p.parse::<u32>()) {
        None => 1,
        Some(Ok(page)) if page >= 1 => page,
        Some(_) => return message(StatusCode::BAD_REQUEST, "page must be a positive integer"),
    };
    let faults = state.faults();
    let mut body = state
        .catalogue
        .offers_page_bytes(page, faults.next_page_zero);
    let not_after = faults.next_page_not_after.contains(&page);
    if not_after || faults.next_page_missing.contains(&page) {
        let mut value: serde_json::Value =
            serde_json::from_slice(&body).expect("a page always parses");
        if let Some(meta) = value.get_mut("meta").and_then(|m| m.as_object_mut()) {
            if not_after {
                meta.insert("next_page".into(), json!(page));
            } else {
                meta.remove("next_page");
            }
        }
        body = value.to_string().into_bytes();
    }
    json_body(StatusCode::OK, poisoned(&state, &faults, body))
}

#[derive(Serialize)]
struct Wrapped<T> {
    result: T,
}

#[derive(Serialize)]
struct WrappedList<'a> {
    result: [Envelope<'a>; 1],
    meta: serde_json::Value,
}

/// One listing, in one of the three shapes seen, chosen per inner_id.
async fn offer(State(state): State<Arc<SimState>>, Query(params): Params) -> Response {
    let Some(inner_id) = params.get("inner_id") else {
        return message(StatusCode::BAD_REQUEST, "inner_id is required");
    };
    let Some((index, data)) = state.catalogue.current(inner_id) else {
        return message(StatusCode::NOT_FOUND, "Offer not found");
    };
    let body = match hash(state.seed, SHAPE_STREAM, index) % 3 {
        0 => serde_json::to_vec(&data),
        1 => serde_json::to_vec(&Wrapped { result: &data }),
        _ => {
            let placement = state.catalogue.placement(index);
            let envelope = Envelope {
                id: state.catalogue.item_id(index),
                inner_id,
                change_type: "added",
                created_at: crate::catalogue::created_at(placement.created, true),
                data: &data,
            };
            let meta = json!({ "page": 1, "next_page": null, "limit": PAGE_SIZE });
            serde_json::to_vec(&WrappedList {
                result: [envelope],
                meta,
            })
        }
    };
    json_body(StatusCode::OK, body.expect("a listing always serialises"))
}

async fn change_id(State(state): State<Arc<SimState>>, Query(params): Params) -> Response {
    let date = params
        .get("date")
        .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d"));
    let Some(Ok(date)) = date else {
        return message(StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD");
    };
    match state.catalogue.change_id_of(date) {
        Some(id) => json_body(
            StatusCode::OK,
            json!({ "change_id": id }).to_string().into_bytes(),
        ),
        None => message(StatusCode::NOT_FOUND, "No changes for this date"),
    }
}

#[derive(Serialize)]
struct ChangesBody<'a> {
    result: &'a [crate::ChangeEvent],
    meta: ChangesMeta,
}

#[derive(Serialize)]
struct ChangesMeta {
    cur_change_id: u64,
    next_change_id: Option<u64>,
    limit: usize,
}

async fn changes(State(state): State<Arc<SimState>>, Query(params): Params) -> Response {
    let Some(Ok(cur)) = params.get("change_id").map(|c| c.parse::<u64>()) else {
        return message(StatusCode::BAD_REQUEST, "change_id must be a number");
    };
    let page = if state.faults().empty_tip {
        crate::ChangesPage {
            events: Vec::new(),
            next_change_id: None,
        }
    } else {
        state.catalogue.changes_from(cur, PAGE_SIZE)
    };
    let body = ChangesBody {
        result: &page.events,
        meta: ChangesMeta {
            cur_change_id: cur,
            next_change_id: page.next_change_id,
            limit: PAGE_SIZE,
        },
    };
    let body = serde_json::to_vec(&body).expect("events always serialise");
    json_body(StatusCode::OK, poisoned(&state, &state.faults(), body))
}

/// The body with the poison fault applied (unchanged when it is off).
fn poisoned(state: &SimState, faults: &crate::Faults, body: Vec<u8>) -> Vec<u8> {
    if faults.poison_rate <= 0.0 {
        return body;
    }
    crate::poison::poison_body(state.seed, &body, faults.poison_rate, &faults.poison_kinds)
}

/// The vocabulary, in the shape of fixtures/upstream/filters.json.
async fn filters() -> Response {
    let mut marks = serde_json::Map::new();
    for model in vocab::MODELS {
        let entry = marks
            .entry(model.mark)
            .or_insert_with(|| json!({ "model": [] }));
        if let Some(list) = entry["model"].as_array_mut() {
            list.push(json!(model.model));
        }
    }
    let body = json!({
        "mark": marks,
        "transmission_type": ["Manual", "Automatic"],
        "color": ["White", "Black", "Silver", "Dark Gray", "Blue", "Red", "Brown", "Orange", "Yellow", "Green", "Purple", "Champagne", "Other"],
        "body_type": ["Crossover/SUV", "Sedan", "Hatchback", "Minivan", "Pickup", "Coupe/Roadster", "Microvan", "Light Truck", "Van", "Mini"],
        "engine_type": ["Gasoline", "Diesel", "Electric", "Hybrid", "Plug-in Hybrid", "Range Extender", "Hydrogen Fuel Cell", "Gasoline + 48V Mild Hybrid", "Gasoline + 24V Mild Hybrid", "Gasoline + CNG", "CNG"],
        "drive_type": ["FWD", "RWD", "AWD", "RWD (dual-motor)", "AWD (dual-motor)", "AWD (tri-motor)", "AWD (quad-motor)"],
    });
    json_body(StatusCode::OK, body.to_string().into_bytes())
}
