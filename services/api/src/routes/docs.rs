//! `GET /openapi.json` and the interactive docs page `GET /docs` (Scalar).
//! The page's script is a pinned copy of Scalar's standalone bundle served
//! from the binary (`assets/`), so the page loads nothing from elsewhere and
//! works offline or behind a firewall.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        crate::admin::status_json,
    ),
    modifiers(&Security, &ListPatterns),
    tags(
        (name = "offers", description = "Active offers and the values to filter them by"),
        (name = "service", description = "Health, readiness and statistics"),
        (name = "operator", description = "The operator listener (`api.admin_bind`, on the host's loopback; not under the public base URL): `/status` (an HTML page), `/status.json`, `/metrics` (Prometheus)"),
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
        .route("/api/v1/docs", get(|| async { Html(DOCS_PAGE) }))
        .route("/api/v1/docs/scalar.js", get(scalar_js))
}

/// `@scalar/api-reference`'s standalone bundle, gzipped (see assets/README.md).
const SCALAR_JS_GZ: &[u8] =
    include_bytes!("../../assets/scalar-api-reference-1.76.4.standalone.js.gz");

/// The docs page: Scalar from this server, reading this server's document,
/// with its default fonts (fetched from Scalar's CDN) turned off.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>carfeed API</title>
</head>
<body>
<div id="app"></div>
<script src="/api/v1/docs/scalar.js"></script>
<script>
Scalar.createApiReference('#app', {
  url: '/api/v1/openapi.json',
  withDefaultFonts: false,
  hideClientButton: true,
  telemetry: false,
});
</script>
</body>
</html>
"#;

/// Served gzipped as stored (every browser accepts gzip); cached for a day,
/// the file name changes with the version.
async fn scalar_js() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        SCALAR_JS_GZ,
    )
        .into_response()
}
