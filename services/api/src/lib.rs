//! The api service: serves `processed_data` to the frontend over an
//! authenticated, rate-limited HTTP API under `/api/v1` (SPEC 5).
//!
//! `app(state)` builds the whole router and is pure, so tests drive it with
//! `tower::ServiceExt::oneshot`; `serve` serves it on a listener until the
//! shutdown future resolves, and `run(ctx)` is `api serve`: the state of
//! [`state`], the first-start tokens, the listeners of the settings. It reads
//! `processed_data`, `raw_data`, `operations_log` and writes only
//! `api_tokens`. `main.rs` only hands the command line to `bootstrap`.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cursor;
pub mod error;
pub mod limit;
pub mod metrics;
pub mod middleware;
pub mod params;
pub mod pool;
pub mod routes;
pub mod state;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use db::PgPool;
use settings::Settings;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use config::Config;
pub use state::AppState;

use crate::error::ApiError;
use crate::routes::{docs, filters, health, offers, stats};

/// How often `last_used_at` of recently used tokens is written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    let data = Router::new()
        .merge(offers::router())
        .merge(filters::router())
        .merge(stats::router())
        .route_layer(from_fn_with_state(state.clone(), middleware::require_token));
    // Data and docs are rate limited (by token, else by address); health,
    // readiness and metrics are not, so probes never see a 429.
    let mut limited = data.merge(docs::router());
    if let Some(limiter) = &state.limiter {
        limited = limited.route_layer(limit::layer(limiter));
    }
    let limited = limited.route_layer(from_fn_with_state(state.clone(), middleware::identify));
    Router::new()
        .merge(limited)
        .merge(health::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /api/v1/docs".into()) })
        .layer(from_fn_with_state(state.clone(), middleware::track))
        .layer(RequestBodyLimitLayer::new(state.config.api.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.api.request_timeout,
        ))
        .layer(cors(&state.config.api.cors_origins))
        .layer(from_fn(error::uniform_errors))
        .layer(CompressionLayer::new().gzip(true))
        // Outermost: every request has an id (nginx's X-Request-Id, else a
        // new one), sent back, and a span carrying it around all its logs;
        // each response is logged at DEBUG (status, latency) in that span.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .with_state(state)
}

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(error::REQUEST_ID);

/// The span every log line of a request carries.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", request_id = id, path = request.uri().path())
}

fn cors(cors_origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION, HeaderName::from_static("x-api-key")])
        .expose_headers([
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-after"),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(3600))
}

/// The api as `api serve` runs it, over its own pool of `pool`'s server
/// (each connection with the statement timeout, see [`pool::bounded`]).
/// Refuses to start without a usable `SECRET_KEY` (a settings error: exit
/// code 2). The bench builds its api through this too.
pub fn state(settings: &Settings, pool: &PgPool) -> anyhow::Result<AppState> {
    let config = Config::from_settings(settings, config::secret_key(settings)?);
    let bounded = pool::bounded(pool, config.api.statement_timeout);
    Ok(AppState::new(bounded, config))
}

/// `api serve`: first-start tokens, then the API on `api.bind` (and the
/// operator listener on `api.admin_bind`) until shutdown.
pub async fn run(ctx: bootstrap::Context) -> anyhow::Result<()> {
    let bootstrap::Context {
        settings,
        pool,
        shutdown,
        ..
    } = ctx;
    let state = state(&settings, &pool)?;
    let initial = settings.api.initial_tokens;
    if let Some(path) = tokens::issue_initial(
        &pool,
        &state.config.secret_key,
        initial,
        &settings.api.token_file_dir,
    )
    .await
    .context("Failed to issue the first-start tokens")?
    {
        tracing::info!(
            "Issued {initial} API tokens; they are in {}",
            path.display()
        );
    }
    let listener = TcpListener::bind(settings.api.bind)
        .await
        .with_context(|| format!("Failed to listen on {}", settings.api.bind))?;
    let admin = match settings.api.admin_bind {
        None => None,
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .with_context(|| format!("Failed to listen on {bind} (api.admin_bind)"))?,
        ),
    };
    pool.close().await;
    serve_with_admin(listener, admin, state, shutdown.cancelled_owned()).await
}

/// Serves `app(state)` on `listener` until `shutdown`, then finishes the
/// requests in flight and writes the last `last_used_at` values.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_admin(listener, None, state, shutdown).await
}

/// [`serve`], plus the operator listener ([`admin::app`]) on `admin` when
/// given; it stops with the API.
pub async fn serve_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One poll installs the signal handlers of a signal future, so a
    // SIGTERM that follows the "listening" line is never missed.
    let mut shutdown = Box::pin(shutdown);
    if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
        return Ok(());
    }
    tracing::info!("API listening on {}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(housekeeping(state.clone(), stop.clone()));
    if let Some(admin) = admin {
        tracing::info!(
            "Operator listener (/status, /metrics) on {}",
            admin.local_addr()?
        );
        let router = admin::app(state.clone());
        let stopped = stop.clone();
        tracker.spawn(async move {
            let served = axum::serve(admin, router)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::error!("The operator listener failed: {err}");
            }
        });
    }
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    state.tokens.flush_last_used(&state.pool).await?;
    tracing::info!("API stopped");
    served
}

/// Writes `last_used_at` every few seconds, forgets idle rate-limit keys
/// and closes long-idle connections.
async fn housekeeping(state: AppState, stop: CancellationToken) {
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    let mut forget = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = flush.tick() => {
                if let Err(err) = state.tokens.flush_last_used(&state.pool).await {
                    tracing::warn!("Failed to write tokens' last_used_at: {err}");
                }
            }
            _ = forget.tick() => {
                if let Some(limiter) = &state.limiter {
                    limiter.limiter().retain_recent();
                }
                if let Some(limiter) = &state.lookup_limiter {
                    limiter.retain_recent();
                }
                state.pool.close_idle();
            }
        }
    }
}
