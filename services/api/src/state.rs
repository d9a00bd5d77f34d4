//! What every handler shares, built from its parts (`config`, `auth`'s
//! token cache, `limit`'s limiters, `metrics`); none of them imports it.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::auth::TokenCache;
use crate::config::Config;
use crate::error::ApiError;
use crate::limit::{self, InFlight, Limiter, LookupLimiter};
use crate::metrics::Metrics;
use crate::pool::ApiPool;

/// Cloned for every middleware layer and handler of every request, so one
/// shared allocation: a clone is one atomic increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub pool: ApiPool,
    pub config: Arc<Config>,
    pub tokens: Arc<TokenCache>,
    pub limiter: Option<Limiter>,
    pub lookup_limiter: Option<LookupLimiter>,
    pub in_flight: Arc<InFlight>,
    pub filters: Arc<TtlCache>,
    pub stats: Arc<TtlCache>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(pool: ApiPool, config: Config) -> Self {
        Self(Arc::new(Shared {
            pool,
            limiter: config.api.rate_limit.requests().map(limit::limiter),
            lookup_limiter: config.api.rate_limit.lookups().map(limit::lookup_limiter),
            in_flight: Arc::default(),
            config: Arc::new(config),
            tokens: Arc::default(),
            filters: Arc::default(),
            stats: Arc::default(),
            metrics: Arc::default(),
        }))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// One rendered JSON body reused for a while. A refresh holds the lock, so
/// concurrent requests after expiry wait for one query instead of each
/// running it.
#[derive(Debug, Default)]
pub struct TtlCache(tokio::sync::Mutex<Option<(Instant, Bytes)>>);

impl TtlCache {
    pub async fn get_or_refresh<F, Fut>(&self, ttl: Duration, refresh: F) -> Result<Bytes, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, ApiError>>,
    {
        let mut slot = self.0.lock().await;
        if let Some((at, body)) = slot.as_ref() {
            if at.elapsed() < ttl {
                return Ok(body.clone());
            }
        }
        let body = refresh().await?;
        *slot = Some((Instant::now(), body.clone()));
        Ok(body)
    }
}
