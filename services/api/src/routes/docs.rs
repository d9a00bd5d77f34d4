//! `GET /openapi.json` and the interactive docs page `GET /docs` (Scalar; the
//! page loads its script from a CDN in the browser, nothing at build time).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_scalar::{Scalar, Servable};

use super::offers::ListPatterns;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "carfeed API",
        description = "Used-car offers from che168, normalised. Every data endpoint needs a token \
            (`Authorization: Bearer <token>` or `X-API-Key: <token>`). Errors share one JSON shape: \
            `{\"error\": {\"status\", \"code\", \"message\", \"parameter\"?}}`. Over the rate limit \
            the answer is 429 with `Retry-After`; every answer carries `x-ratelimit-limit` and \
            `x-ratelimit-remaining`."
    ),
    paths(
        super::offers::list,
        super::offers::one,
        super::filters::filters,
        super::stats::stats,
        super::health::health,
        super::health::ready,
        super::health::metrics,
    ),
    modifiers(&Security, &ListPatterns),
    tags(
        (name = "offers", description = "Active offers and the values to filter them by"),
        (name = "service", description = "Health, readiness, statistics and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

pub fn router() -> Router<AppState> {
    let spec = ApiDoc::openapi();
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { Json(spec) }
            }),
        )
        .merge(Scalar::with_url("/api/v1/docs", ApiDoc::openapi()))
}
