//! Who is calling: the client IP (behind trusted proxies only from the
//! header nginx overwrites) and the token, if any, as an [`Identity`] (left
//! on every request by `middleware::identify` for the rate limiter and
//! `middleware::require_token`); token lookups are cached for `token_cache_ttl`, and
//! `last_used_at` is written by [`TokenCache::flush_last_used`] at most once a
//! minute per token, in one statement for all of them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use db::tokens::TokenGrant;
use settings::ApiSettings;
use tokio::sync::OnceCell;

use crate::error::ApiError;
use crate::pool::ApiPool;

/// How often `last_used_at` may be written for one token.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);
/// Cached lookups kept at most; past this the least useful are evicted.
const MAX_CACHED: usize = 100_000;

/// The rate-limit key: a valid token, else the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    Token(i64),
    Address(IpAddr),
}

/// What `identify` found out about a request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub caller: Caller,
    /// Why the request has no valid token (None when it has one).
    pub refusal: Option<&'static str>,
}

pub const NO_TOKEN: &str =
    "a token is required: send Authorization: Bearer <token> or X-API-Key: <token>";
pub const MALFORMED: &str = "the token is malformed: a token is 16 letters and digits";
pub const UNKNOWN: &str = "the token is not known";
pub const EXPIRED: &str = "the token has expired";
pub const REVOKED: &str = "the token has been revoked";

/// When a token's hash was looked up, and what was found.
type Lookup = (Instant, Option<TokenGrant>);

/// A lookup under way, whose answer every request waiting on it shares.
type SharedLookup = Arc<OnceCell<Option<TokenGrant>>>;

/// Token lookups by keyed hash (known and unknown tokens alike, in a
/// bounded cache that evicts), and which tokens were used lately.
#[derive(Debug)]
pub struct TokenCache {
    lookups: quick_cache::sync::Cache<[u8; 32], Lookup>,
    /// Per token: when its use was last queued for writing.
    touched: Mutex<HashMap<i64, Instant>>,
    /// Tokens used since the last flush, to write `last_used_at` for.
    pending: Mutex<HashSet<i64>>,
    /// Lookups under way: requests that miss the cache for one token at the
    /// same moment (a busy token whose entry just expired) share one.
    in_flight: Mutex<HashMap<[u8; 32], SharedLookup>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            lookups: quick_cache::sync::Cache::new(MAX_CACHED),
            touched: Mutex::default(),
            pending: Mutex::default(),
            in_flight: Mutex::default(),
        }
    }
}

impl TokenCache {
    /// The cached lookup of `hash`, if it is younger than `ttl`.
    pub(crate) fn cached(&self, hash: &[u8; 32], ttl: Duration) -> Option<Option<TokenGrant>> {
        self.lookups
            .get(hash)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, grant)| grant)
    }

    /// Looks `hash` up in the database and caches the answer.
    pub(crate) async fn fetch(
        &self,
        pool: &ApiPool,
        hash: [u8; 32],
    ) -> Result<Option<TokenGrant>, ApiError> {
        let grant = pool
            .run(async |conn| db::tokens::find_by_hash(conn, &hash).await)
            .await?;
        self.lookups.insert(hash, (Instant::now(), grant.clone()));
        Ok(grant)
    }

    /// Runs `lead` (limit, then look up) for `hash` unless a lookup of it is
    /// already under way, whose answer is then shared. A refused or failed
    /// lead leaves the next waiter to lead with its own.
    pub(crate) async fn lookup_once<F, Fut>(
        &self,
        hash: [u8; 32],
        lead: F,
    ) -> Result<Option<TokenGrant>, Response>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<TokenGrant>, Response>>,
    {
        let cell = lock(&self.in_flight).entry(hash).or_default().clone();
        let answer = cell.get_or_try_init(lead).await.cloned();
        let mut in_flight = lock(&self.in_flight);
        if in_flight.get(&hash).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            in_flight.remove(&hash);
        }
        answer
    }

    pub(crate) fn note_use(&self, id: i64) {
        let now = Instant::now();
        let mut touched = lock(&self.touched);
        let due = touched
            .get(&id)
            .is_none_or(|at| now.duration_since(*at) >= LAST_USED_INTERVAL);
        if due {
            touched.insert(id, now);
            lock(&self.pending).insert(id);
        }
    }

    /// Writes `last_used_at` for the tokens used since the last call.
    pub async fn flush_last_used(&self, pool: &ApiPool) -> Result<u64, db::DbError> {
        let ids: Vec<i64> = lock(&self.pending).drain().collect();
        if ids.is_empty() {
            return Ok(0);
        }
        pool.run(async |conn| db::tokens::touch(conn, &ids).await)
            .await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind: keep going.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Authorization: Bearer <token>`, else `X-API-Key: <token>`.
pub(crate) fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or("");
        return Some(match text.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            // Any other scheme is not a token of ours: refused as malformed.
            _ => String::new(),
        });
    }
    headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned())
}

/// The connection's peer, or the proxy header when the peer is a trusted proxy.
pub fn client_ip(request: &Request, api: &ApiSettings) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if !api.trusted_proxies.iter().any(|r| r.contains(peer)) {
        return peer;
    }
    request
        .headers()
        .get(&api.client_ip_header)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}
