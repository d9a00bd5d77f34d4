//! `GET /offers` (filtered, sorted, keyset-paged list of active offers) and
//! `GET /offers/{inner_id}` (one whole offer).
//!
//! Bodies are spliced from each row's stored `record` JSON text; nothing is
//! parsed or re-serialised on the way.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use db::offers::{Direction, OfferFilter, PageRequest, SortKey};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::cursor;
use crate::error::{ApiError, ErrorBody};
use crate::params::Params;
use crate::state::AppState;
use settings::ApiSettings;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/offers", get(list))
        .route("/api/v1/offers/{inner_id}", get(one))
}

const KNOWN: &[&str] = &[
    "mark",
    "model",
    "year_from",
    "year_to",
    "price_from",
    "price_to",
    "km_age_to",
    "city",
    "body_type",
    "engine_type",
    "transmission_type",
    "drive_type",
    "seller_type",
    "is_dealer",
    "sort",
    "order",
    "limit",
    "cursor",
];

// Patterns (literals: utoipa takes no constants): no control character
// (`char::is_control`: C0, DEL, C1), which `Params` refuses; a multi-value
// filter as `Params::list` reads it: comma-separated pieces, at most 20 that
// are not only spaces (pieces of spaces are dropped).

/// `sort` of `GET /offers`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SortParam {
    ListedAt,
    Price,
    Year,
    KmAge,
}

/// `order` of `GET /offers`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OrderParam {
    Desc,
    Asc,
}

/// Query parameters of `GET /offers` (for the OpenAPI document; parsing is
/// strict and done by hand so that every error names its parameter).
#[allow(dead_code)]
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OffersQuery {
    /// Make, case-insensitive (`BMW`, `bmw`); several comma-separated match
    /// any of them (`BMW,Audi`, at most 20).
    #[param(max_length = 200, example = "BMW,Audi")]
    mark: Option<String>,
    /// Model, case-insensitive; several comma-separated match any.
    #[param(max_length = 200, example = "X5")]
    model: Option<String>,
    /// Model year from (inclusive).
    #[param(minimum = 1900, maximum = 2100, example = 2015)]
    year_from: Option<i32>,
    /// Model year to (inclusive).
    #[param(minimum = 1900, maximum = 2100, example = 2020)]
    year_to: Option<i32>,
    /// Price from, CNY (inclusive).
    #[param(
        minimum = 0,
        maximum = 9_223_372_036_854_775_807_i64,
        example = 100_000
    )]
    price_from: Option<i64>,
    /// Price to, CNY (inclusive).
    #[param(
        minimum = 0,
        maximum = 9_223_372_036_854_775_807_i64,
        example = 300_000
    )]
    price_to: Option<i64>,
    /// Mileage up to, km (inclusive).
    #[param(minimum = 0, maximum = 2_147_483_647, example = 80_000)]
    km_age_to: Option<i32>,
    /// City, case-insensitive (values from `/filters`); several comma-separated match any.
    #[param(max_length = 200, example = "Beijing")]
    city: Option<String>,
    /// Body type, exact (values from `/filters`); several comma-separated match any.
    #[param(max_length = 200, example = "SUV")]
    body_type: Option<String>,
    /// Fuel / engine type, exact (values from `/filters`); several comma-separated match any.
    #[param(max_length = 200, example = "petrol")]
    engine_type: Option<String>,
    /// Transmission, exact (values from `/filters`); several comma-separated match any.
    #[param(max_length = 200, example = "automatic")]
    transmission_type: Option<String>,
    /// Drive, exact (values from `/filters`); several comma-separated match any.
    #[param(max_length = 200, example = "4wd")]
    drive_type: Option<String>,
    /// Seller type, exact (values from `/filters`); several comma-separated match any.
    #[param(max_length = 200, example = "dealer")]
    seller_type: Option<String>,
    /// Only dealers (`true`) or only private sellers (`false`).
    #[param(example = true)]
    is_dealer: Option<bool>,
    /// Sort by `listed_at` (default), `price`, `year` or `km_age`; ties by `inner_id`.
    /// Offers without a value for the sort column come last.
    #[param(inline, value_type = Option<SortParam>, example = "price")]
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(inline, value_type = Option<OrderParam>, example = "asc")]
    order: Option<String>,
    /// Offers per page: 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100, example = 20)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page, unchanged, with the same other
    /// parameters; anything else is a 400. Opaque (base64url).
    #[param(max_length = 200, pattern = r"^[A-Za-z0-9_-]*$")]
    cursor: Option<String>,
}

/// One page of offers.
#[derive(Serialize, ToSchema)]
pub struct OffersPage {
    /// Whole normalised offers, as `GET /offers/{inner_id}` returns them.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// List active offers.
#[utoipa::path(
    get,
    path = "/api/v1/offers",
    tag = "offers",
    operation_id = "listOffers",
    params(OffersQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "One page of active offers", body = OffersPage),
        (status = 400, description = "A parameter is invalid; `parameter` names it", body = ErrorBody),
        (status = 401, description = "Missing, malformed, unknown, expired or revoked token", body = ErrorBody),
        (status = 429, description = "Over the rate limit, or the token has too many requests in flight; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database did not answer in time; try again", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let request = page_request(query.as_deref(), &state.config.api)?;
    let page = state
        .pool
        .run(async |conn| db::offers::page(conn, &request).await)
        .await?;
    let next = page
        .next
        .map(|position| cursor::encode(request.sort, request.direction, &position));
    let size: usize = page.records.iter().map(|r| r.len() + 1).sum();
    let mut body = String::with_capacity(size + 64);
    body.push_str("{\"items\":[");
    for (i, record) in page.records.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(record);
    }
    body.push_str("],\"next_cursor\":");
    match next {
        // Base64url: no character needs escaping.
        Some(cursor) => {
            body.push('"');
            body.push_str(&cursor);
            body.push('"');
        }
        None => body.push_str("null"),
    }
    body.push('}');
    Ok(json(body))
}

/// What a query string of `GET /offers` asks the database for.
pub fn page_request(query: Option<&str>, api: &ApiSettings) -> Result<PageRequest, ApiError> {
    let p = Params::parse(query, KNOWN)?;
    let filter = OfferFilter {
        mark: p.list("mark")?,
        model: p.list("model")?,
        year_from: p.number("year_from", 1900, 2100)?,
        year_to: p.number("year_to", 1900, 2100)?,
        price_from: p.number("price_from", 0, i64::MAX)?,
        price_to: p.number("price_to", 0, i64::MAX)?,
        km_age_to: p.number("km_age_to", 0, i32::MAX)?,
        city: p.list("city")?,
        body_type: p.list("body_type")?,
        engine_type: p.list("engine_type")?,
        transmission_type: p.list("transmission_type")?,
        drive_type: p.list("drive_type")?,
        seller_type: p.list("seller_type")?,
        is_dealer: p.boolean("is_dealer")?,
    };
    let sorts: Vec<(&str, SortKey)> = SortKey::ALL.iter().map(|k| (k.column(), *k)).collect();
    let sort = p.choice("sort", &sorts)?.unwrap_or(SortKey::ListedAt);
    let direction = p
        .choice(
            "order",
            &[("asc", Direction::Asc), ("desc", Direction::Desc)],
        )?
        .unwrap_or(Direction::Desc);
    let limit = p
        .number("limit", 1, api.max_page_size)?
        .unwrap_or(api.default_page_size);
    let after = match p.text("cursor")? {
        Some(text) => Some(
            cursor::decode(&text, sort, direction)
                .map_err(|e| ApiError::parameter("cursor", e.to_string()))?,
        ),
        None => None,
    };
    Ok(PageRequest {
        filter,
        sort,
        direction,
        after,
        limit,
    })
}

/// One active offer, whole.
#[utoipa::path(
    get,
    path = "/api/v1/offers/{inner_id}",
    tag = "offers",
    operation_id = "getOffer",
    params(("inner_id" = String, Path, description = "The listing's id on che168",
        min_length = 1, max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$", example = "57419083")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The whole normalised offer", body = Object),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 400, description = "inner_id contains a control character", body = ErrorBody),
        (status = 404, description = "Unknown or inactive offer", body = ErrorBody),
        (status = 429, description = "Over the rate limit; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database did not answer in time; try again", body = ErrorBody),
    )
)]
pub async fn one(
    State(state): State<AppState>,
    Path(inner_id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no active offer with inner_id {inner_id:?}"));
    if inner_id.chars().any(char::is_control) {
        return Err(ApiError::parameter(
            "inner_id",
            "inner_id contains a control character",
        ));
    }
    if inner_id.is_empty() || inner_id.len() > 64 {
        return Err(not_found());
    }
    let record = state
        .pool
        .run(async |conn| db::offers::record(conn, &inner_id).await)
        .await?;
    match record {
        Some(record) => Ok(json(record)),
        None => Err(not_found()),
    }
}

pub fn json(body: impl Into<axum::body::Body>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// The OpenAPI pattern of a comma-separated list parameter: 1 to 20 values,
/// each with a non-blank character and no control characters, blanks around
/// commas and empty items allowed (what the hand-written parser accepts).
/// utoipa's `#[param(pattern)]` takes only a literal, so [`ListPatterns`]
/// puts it on every parameter of [`LIST_PARAMS`] once the document is built.
const LIST_PATTERN: &str = r"^(?: *,)*(?:[^,\u0000-\u001F\u007F-\u009F]*[^ ,\u0000-\u001F\u007F-\u009F][^,\u0000-\u001F\u007F-\u009F]*(?:, *)*(?:,[^,\u0000-\u001F\u007F-\u009F]*[^ ,\u0000-\u001F\u007F-\u009F][^,\u0000-\u001F\u007F-\u009F]*(?:, *)*){0,19}| *)$";

/// The list parameters of `GET /offers` (see [`LIST_PATTERN`]).
const LIST_PARAMS: [&str; 8] = [
    "mark",
    "model",
    "city",
    "body_type",
    "engine_type",
    "transmission_type",
    "drive_type",
    "seller_type",
];

/// Puts [`LIST_PATTERN`] on the list parameters of `GET /offers`.
pub struct ListPatterns;

impl utoipa::Modify for ListPatterns {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/api/v1/offers")
            .and_then(|item| item.get.as_mut())
        else {
            return;
        };
        for parameter in operation.parameters.iter_mut().flatten() {
            if LIST_PARAMS.contains(&parameter.name.as_str()) {
                if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
                    object.pattern = Some(LIST_PATTERN.to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod list_pattern_tests {
    use utoipa::OpenApi;

    use super::{LIST_PARAMS, LIST_PATTERN};

    #[test]
    fn every_list_parameter_carries_the_pattern_in_the_document() {
        let doc = serde_json::to_value(crate::routes::docs::ApiDoc::openapi()).unwrap();
        let params = doc["paths"]["/api/v1/offers"]["get"]["parameters"]
            .as_array()
            .unwrap();
        for name in LIST_PARAMS {
            let param = params
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("no parameter {name}"));
            assert_eq!(param["schema"]["pattern"], LIST_PATTERN, "{name}");
            assert_eq!(param["schema"]["maxLength"], 200, "{name}");
        }
    }
}

#[cfg(test)]
mod schema_name_tests {
    use std::collections::BTreeMap;

    use utoipa::OpenApi;

    /// Two Rust types with one schema name: the document keeps one of them,
    /// and the other endpoint's answers fail their own schema (it happened:
    /// `/stats` and `/status.json` both had an `InitialLoad`).
    #[test]
    fn every_schema_name_in_the_document_belongs_to_one_type() {
        let doc = crate::routes::docs::ApiDoc::openapi();
        let json = serde_json::to_value(&doc).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        let stats_initial = &schemas["InitialLoad"]["properties"];
        assert!(
            stats_initial.get("missing_pages").is_some(),
            "InitialLoad is /stats' type: {stats_initial}"
        );
        let stats_ops = &schemas["Operation"]["properties"];
        assert!(stats_ops.get("operation_type").is_some(), "{stats_ops}");
        let mut seen = BTreeMap::new();
        for name in schemas.keys() {
            *seen.entry(name.to_lowercase()).or_insert(0) += 1;
        }
        assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    }
}
