//! The HTTP client: one GET per call, paced, retried by the SPEC 3.3 policy.

use std::time::{Duration, Instant, SystemTime};

use chrono::NaiveDate;
use domain::retry::{parse_retry_after, RetryPolicy};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::{ParseError, UpstreamError};
use crate::model::{self, ChangesPage, OffersPage};

/// Everything the client needs; see `ClientConfig::from_settings`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Everything before the endpoint name, e.g.
    /// `https://autobase.auto-api.com/api/v2/che168`.
    pub base_url: String,
    pub api_key: SecretString,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_requests_per_second: f64,
    pub retry: RetryPolicy,
    /// Largest body read (after decompression); longer is a bad body.
    pub max_body_bytes: usize,
}

/// `{access_name}` as it stands in the path of a parsed `upstream.base_url`.
const ACCESS_NAME_IN_URL: &str = "%7Baccess_name%7D";

/// The key the simulator accepts by default, used only against loopback.
const SIMULATOR_KEY: &str = "sim-key";

impl ClientConfig {
    /// From `upstream.*` settings and the secrets. `{access_name}` in the base
    /// URL is replaced by `CHE168_ACCESS_NAME`. Without `CHE168_API_KEY` the
    /// simulator's default key is used when the base URL is a loopback
    /// address; anywhere else the key is required.
    pub fn from_settings(settings: &settings::Settings) -> Result<Self, UpstreamError> {
        let upstream = &settings.upstream;
        // A parsed URL keeps `{access_name}` percent-encoded.
        let mut base_url = upstream
            .base_url
            .as_str()
            .trim_end_matches('/')
            .replace(ACCESS_NAME_IN_URL, "{access_name}");
        if base_url.contains("{access_name}") {
            let name = settings
                .secrets
                .che168_access_name
                .as_deref()
                .ok_or_else(|| {
                    UpstreamError::Setup(
                    "upstream.base_url contains {access_name} but CHE168_ACCESS_NAME is not set"
                        .into(),
                )
                })?;
            base_url = base_url.replace("{access_name}", name);
        }
        let api_key = match &settings.secrets.che168_api_key {
            Some(key) => key.clone(),
            None if is_loopback(&base_url) => SecretString::from(SIMULATOR_KEY),
            None => {
                return Err(UpstreamError::Setup(
                    "CHE168_API_KEY is not set (required unless upstream.base_url is a loopback simulator)"
                        .into(),
                ))
            }
        };
        let retry = RetryPolicy {
            max_attempts: upstream.retry.max_attempts.get(),
            interval: upstream.retry.interval,
            max_elapsed: upstream.retry.max_elapsed,
        };
        Ok(Self {
            base_url,
            api_key,
            connect_timeout: upstream.connect_timeout,
            request_timeout: upstream.request_timeout,
            max_requests_per_second: upstream.max_requests_per_second,
            retry,
            max_body_bytes: upstream.max_body_mib.get().saturating_mul(1 << 20),
        })
    }
}

fn is_loopback(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A client of the upstream API. Cheap to share behind an `Arc`; requests
/// from one client are paced to `max_requests_per_second` in total.
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    retry: RetryPolicy,
    max_body_bytes: usize,
    min_gap: Duration,
    next_slot: Mutex<tokio::time::Instant>,
    shutdown: CancellationToken,
}

/// What one attempt ended with.
enum Attempt<T> {
    Done(T),
    Final(UpstreamError),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl Client {
    /// `shutdown` interrupts waits between attempts and requests in flight.
    pub fn new(config: ClientConfig, shutdown: CancellationToken) -> Result<Self, UpstreamError> {
        url::Url::parse(&config.base_url)
            .map_err(|e| UpstreamError::Setup(format!("upstream.base_url is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // The upstream resets idle keep-alive connections: don't keep them long.
            .pool_idle_timeout(Duration::from_secs(20))
            .user_agent(concat!("carfeed/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpstreamError::Setup(e.without_url().to_string()))?;
        let min_gap = if config.max_requests_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / config.max_requests_per_second)
        } else {
            Duration::ZERO
        };
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            api_key: config.api_key,
            retry: config.retry,
            max_body_bytes: config.max_body_bytes,
            min_gap,
            next_slot: Mutex::new(tokio::time::Instant::now()),
            shutdown,
        })
    }

    /// `/offers?page=N` (1-based).
    pub async fn offers_page(&self, page: u32) -> Result<OffersPage, UpstreamError> {
        self.get(
            "offers",
            &[("page", page.to_string())],
            model::parse_offers_page,
        )
        .await
    }

    /// `/change_id?date=YYYY-MM-DD`: the first change id of that date.
    pub async fn change_id(&self, date: NaiveDate) -> Result<i64, UpstreamError> {
        self.get(
            "change_id",
            &[("date", date.format("%Y-%m-%d").to_string())],
            model::parse_change_id,
        )
        .await
    }

    /// `/changes?change_id=X`.
    pub async fn changes(&self, change_id: i64) -> Result<ChangesPage, UpstreamError> {
        self.get(
            "changes",
            &[("change_id", change_id.to_string())],
            model::parse_changes_page,
        )
        .await
    }

    /// `/offer?inner_id=X`: the listing, `None` when the upstream says 404.
    pub async fn offer(&self, inner_id: &str) -> Result<Option<Map<String, Value>>, UpstreamError> {
        match self
            .get(
                "offer",
                &[("inner_id", inner_id.to_owned())],
                model::parse_offer,
            )
            .await
        {
            Err(UpstreamError::NotFound { .. }) => Ok(None),
            other => other,
        }
    }

    /// `/filters`: the vocabulary of enum values.
    pub async fn filters(&self) -> Result<Map<String, Value>, UpstreamError> {
        self.get("filters", &[], model::parse_filters).await
    }

    async fn get<T>(
        &self,
        endpoint: &'static str,
        params: &[(&str, String)],
        parse: fn(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, UpstreamError> {
        // What logs and errors call this request: never the URL (it holds the key).
        let request = describe(endpoint, params);
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            self.pace(&request).await?;
            let outcome = tokio::select! {
                () = self.shutdown.cancelled() => return Err(UpstreamError::Cancelled { request }),
                outcome = self.attempt(endpoint, params, &request, parse) => outcome,
            };
            let (reason, retry_after) = match outcome {
                Attempt::Done(value) => {
                    if attempts > 1 {
                        tracing::info!("{request} succeeded on attempt {attempts}");
                    }
                    return Ok(value);
                }
                Attempt::Final(err) => return Err(err),
                Attempt::Retry {
                    reason,
                    retry_after,
                } => (reason, retry_after),
            };
            let Some(delay) = self.next_delay(attempts, started.elapsed(), retry_after) else {
                tracing::error!("{request} failed on attempt {attempts}, giving up: {reason}");
                return Err(UpstreamError::GaveUp {
                    request,
                    attempts,
                    last: reason,
                });
            };
            tracing::warn!(
                "{request} failed on attempt {attempts} of {}: {reason}; retrying in {}",
                self.retry.max_attempts,
                humanize(delay)
            );
            tokio::select! {
                () = self.shutdown.cancelled() => return Err(UpstreamError::Cancelled { request }),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn attempt<T>(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
        request: &str,
        parse: fn(&[u8]) -> Result<T, ParseError>,
    ) -> Attempt<T> {
        let url = format!("{}/{endpoint}", self.base_url);
        let sent = self
            .http
            .get(url)
            .query(params)
            .query(&[("api_key", self.api_key.expose_secret())])
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                return Attempt::Retry {
                    reason: crate::describe::reqwest_error(err),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = match self.read_body(response).await {
            Ok(body) => body,
            Err(reason) => {
                return Attempt::Retry {
                    reason,
                    retry_after,
                }
            }
        };
        match status {
            s if s.is_success() => match parse(&body) {
                Ok(value) => Attempt::Done(value),
                Err(err) => Attempt::Retry {
                    reason: err.to_string(),
                    retry_after: None,
                },
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Final(UpstreamError::Unauthorized {
                    request: request.to_owned(),
                    status: status.as_u16(),
                    message: error_message(&body),
                })
            }
            StatusCode::NOT_FOUND if endpoint == "offer" => {
                Attempt::Final(UpstreamError::NotFound {
                    request: request.to_owned(),
                })
            }
            // A wrong host answers 404 with an HTML page: treat it like an outage.
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::NOT_FOUND
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                Attempt::Retry {
                    reason: format!("HTTP {}", s.as_u16()),
                    retry_after,
                }
            }
            s => Attempt::Final(UpstreamError::Rejected {
                request: request.to_owned(),
                status: s.as_u16(),
            }),
        }
    }

    /// The wait before the next attempt, `None` to give up. A `Retry-After`
    /// longer than what is left of the retry budget waits out the budget
    /// (one last attempt at its end) instead of giving up at once.
    fn next_delay(
        &self,
        attempts: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if let Some(delay) = self.retry.next_delay(attempts, elapsed, retry_after) {
            return Some(delay);
        }
        let left = self.retry.max_elapsed.saturating_sub(elapsed);
        (retry_after.is_some() && attempts < self.retry.max_attempts.max(1) && !left.is_zero())
            .then_some(left)
    }

    /// Reads the body as a stream, refusing one longer than `max_body_bytes`
    /// (as a retryable bad body) before it is all in memory.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, String> {
        let mut body = Vec::with_capacity(
            usize::try_from(response.content_length().unwrap_or(0))
                .unwrap_or(0)
                .min(self.max_body_bytes),
        );
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body_bytes {
                        return Err(format!(
                            "the body is longer than {} bytes (upstream.max_body_mib)",
                            self.max_body_bytes
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(err) => {
                    return Err(format!(
                        "reading the body failed: {}",
                        crate::describe::reqwest_error(err)
                    ))
                }
            }
        }
    }

    /// Waits for this client's next request slot.
    async fn pace(&self, request: &str) -> Result<(), UpstreamError> {
        if self.min_gap.is_zero() {
            return Ok(());
        }
        let slot = {
            let mut next = self.next_slot.lock().await;
            let now = tokio::time::Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.min_gap;
            slot
        };
        tokio::select! {
            () = self.shutdown.cancelled() => Err(UpstreamError::Cancelled { request: request.to_owned() }),
            () = tokio::time::sleep_until(slot) => Ok(()),
        }
    }
}

/// `GET /offers?page=3`: the request without the host or the key.
fn describe(endpoint: &str, params: &[(&str, String)]) -> String {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if query.is_empty() {
        format!("GET /{endpoint}")
    } else {
        format!("GET /{endpoint}?{}", query.join("&"))
    }
}

/// The `message` of a JSON error body, else a short safe excerpt.
fn error_message(body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        if let Some(Value::String(message)) = map.get("message") {
            return message.chars().take(200).collect();
        }
    }
    "no message".to_owned()
}

fn humanize(d: Duration) -> String {
    if d >= Duration::from_secs(60) {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
