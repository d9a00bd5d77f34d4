//! One fetch of one task through one proxy. A reqwest client is built once
//! per proxy (its credentials become basic auth, never part of a URL that
//! an error could quote) and reused, so connections to a proxy are kept
//! alive across tasks.
//!
//! Whose fault an answer is decides where it goes (outcome.rs): a refused
//! or timed-out connection to the proxy, a failed CONNECT or a 407 is the
//! proxy's; a block status or block page is the site refusing the proxy;
//! the rest is the task's. Before any of it the target is checked again
//! (its scheme, and where it resolves: see `target`).

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use db::tasks::ClaimedTask;
use domain::fleet::{ProxyUrl, TaskKind};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use settings::{Settings, WorkerSettings};

use crate::browser::Chromium;
use crate::extract::Profiles;
use crate::outcome::{classify_status, BlockMarkers, Outcome};
use crate::page::TaskParams;

/// Where `offer_refresh` tasks go: the upstream's base URL and key.
#[derive(Clone)]
pub struct Upstream {
    pub base_url: String,
    pub api_key: secrecy::SecretString,
}

/// `/offer` answers are parsed whole; this bounds what one may take.
const LISTING_CAP: usize = 8 * 1024 * 1024;

pub struct Fetcher {
    settings: WorkerSettings,
    upstream: Option<Upstream>,
    clients: Mutex<HashMap<String, reqwest::Client>>,
    /// `worker.extract`, compiled.
    profiles: Profiles,
    /// Set when `worker.browser.enabled`: this worker renders `render_url`.
    chromium: Option<Chromium>,
    markers: BlockMarkers,
    kinds: Vec<TaskKind>,
}

impl Fetcher {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        // Without upstream credentials this worker claims no offer_refresh
        // task (another worker with a key will).
        let upstream = upstream::ClientConfig::from_settings(settings)
            .ok()
            .map(|c| Upstream {
                base_url: c.base_url,
                api_key: c.api_key,
            });
        let profiles = Profiles::compile(&settings.worker.extract)?;
        let chromium = if settings.worker.browser.enabled {
            let chromium = Chromium::new(settings.worker.browser.clone())?;
            tracing::info!(
                "render_url enabled: {} (one tab per slot)",
                chromium.executable().display()
            );
            Some(chromium)
        } else {
            None
        };
        let mut kinds = vec![TaskKind::FetchUrl];
        if upstream.is_some() {
            kinds.push(TaskKind::OfferRefresh);
        } else {
            tracing::info!(
                "No upstream key (CHE168_API_KEY): this worker claims no offer_refresh task"
            );
        }
        if chromium.is_some() {
            kinds.push(TaskKind::RenderUrl);
        }
        let w = &settings.worker;
        Ok(Self {
            settings: w.clone(),
            upstream,
            clients: Mutex::new(HashMap::new()),
            profiles,
            chromium,
            markers: BlockMarkers::new(&w.block_patterns, w.block_page_max_bytes),
            kinds,
        })
    }

    /// The task kinds this worker claims: `render_url` only with a browser,
    /// `offer_refresh` only with an upstream key.
    pub fn kinds(&self) -> &[TaskKind] {
        &self.kinds
    }

    /// Runs one claimed task through `proxy_url` (as stored): rendered in
    /// the browser (`render_url`) or fetched, then extracted when it names
    /// a profile.
    pub async fn fetch(&self, task: &ClaimedTask, proxy_url: &str) -> Outcome {
        let proxy = match ProxyUrl::parse(proxy_url) {
            Ok(proxy) => proxy,
            Err(err) => {
                return Outcome::ProxyFault {
                    reason: format!("unusable proxy URL ({})", err.why),
                }
            }
        };
        if task.kind.takes_url() {
            if let Err(error) =
                crate::target::check(&task.target, self.settings.allow_private_targets).await
            {
                return Outcome::Rejected { error };
            }
        }
        let params = match TaskParams::from_json(&task.params) {
            Ok(params) => params,
            Err(err) => {
                return Outcome::Rejected {
                    error: format!("{err:#}"),
                }
            }
        };
        let profile = match params.extract.as_deref() {
            None => None,
            Some(name) => match self.profiles.get(name) {
                Some(profile) => Some(profile),
                None => {
                    return Outcome::Rejected {
                        error: format!("no extraction profile worker.extract.{name}"),
                    }
                }
            },
        };
        if task.kind == TaskKind::RenderUrl {
            let Some(chromium) = &self.chromium else {
                return Outcome::Rejected {
                    error: "this worker has no browser (worker.browser.enabled)".into(),
                };
            };
            let render = crate::render::Render {
                chromium,
                settings: &self.settings.browser,
                markers: &self.markers,
                block_statuses: &self.settings.block_statuses,
            };
            return render.render(&task.target, &params, profile, &proxy).await;
        }
        let mut outcome = self.fetch_one(task.kind, &task.target, &proxy).await;
        if let (
            Some(profile),
            Outcome::Fetched {
                body: Some(body),
                extras,
                ..
            },
        ) = (profile, &mut outcome)
        {
            let base = url::Url::parse(&task.target).ok();
            extras.extracted = Some(profile.extract(&String::from_utf8_lossy(body), base.as_ref()));
        }
        outcome
    }

    fn client_for(&self, proxy: &ProxyUrl) -> anyhow::Result<reqwest::Client> {
        let key = proxy.stored();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut via =
            reqwest::Proxy::all(proxy.address()).with_context(|| format!("proxy {proxy}"))?;
        if let Some((user, pass)) = proxy.credentials() {
            via = via.basic_auth(user, pass);
        }
        let client = reqwest::Client::builder()
            .proxy(via)
            .connect_timeout(self.settings.connect_timeout)
            .timeout(self.settings.request_timeout)
            .user_agent(concat!("carfeed-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("build the HTTP client")?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Fetches `target` of a task of `kind` through `proxy`.
    pub async fn fetch_one(&self, kind: TaskKind, target: &str, proxy: &ProxyUrl) -> Outcome {
        match self.try_fetch(kind, target, proxy).await {
            Ok(outcome) => outcome,
            Err(Failed::Proxy(reason)) => Outcome::ProxyFault {
                reason: format!("{reason} (proxy {proxy})"),
            },
            Err(Failed::Task(err)) => Outcome::Transient {
                error: format!("{err:#}"),
            },
        }
    }

    async fn try_fetch(
        &self,
        kind: TaskKind,
        target: &str,
        proxy: &ProxyUrl,
    ) -> Result<Outcome, Failed> {
        let client = self.client_for(proxy).map_err(Failed::Task)?;
        let request = match kind {
            TaskKind::OfferRefresh => {
                let Some(up) = &self.upstream else {
                    return Ok(Outcome::Rejected {
                        error: "no upstream key configured (CHE168_API_KEY)".into(),
                    });
                };
                client.get(format!("{}/offer", up.base_url)).query(&[
                    ("inner_id", target),
                    ("api_key", up.api_key.expose_secret()),
                ])
            }
            TaskKind::FetchUrl | TaskKind::RenderUrl => client.get(target),
        };
        let response = request.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let proxy_signed = ["proxy-status", "x-squid-error"]
            .iter()
            .any(|h| response.headers().contains_key(*h));
        if let Some(outcome) = classify_status(status, &self.settings.block_statuses, proxy_signed)
        {
            return Ok(outcome);
        }
        let headers = self.kept_headers(response.headers());
        let cap = if kind == TaskKind::OfferRefresh {
            LISTING_CAP
        } else {
            self.settings.body_cap_bytes
        };
        let (bytes, truncated) = read_capped(response, cap).await.map_err(Failed::Task)?;
        if let Some(marker) = self.markers.find(&bytes) {
            return Ok(Outcome::Blocked {
                reason: format!("a block page ({marker:?}, HTTP {status}) through the proxy"),
            });
        }
        let listing = if kind == TaskKind::OfferRefresh {
            match upstream::model::parse_offer(&bytes) {
                Ok(Some(map)) => Some(map),
                Ok(None) => return Ok(Outcome::NotFound),
                Err(err) => {
                    return Ok(Outcome::Transient {
                        error: format!("unreadable /offer answer: {err}"),
                    })
                }
            }
        } else {
            None
        };
        Ok(Outcome::Fetched {
            status,
            headers,
            body: Some(bytes),
            truncated,
            listing,
            extras: Default::default(),
        })
    }

    fn kept_headers(&self, headers: &reqwest::header::HeaderMap) -> Value {
        let mut kept = Map::new();
        for name in &self.settings.keep_headers {
            if let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
                kept.insert(name.to_ascii_lowercase(), Value::String(v.to_owned()));
            }
        }
        Value::Object(kept)
    }
}

/// Whose a failed request is.
enum Failed {
    /// The proxy's: the connection to it was refused or timed out, or it
    /// would not open the tunnel (CONNECT answered 407, 502, ...).
    Proxy(String),
    /// The task's: the answer broke off, the whole request timed out.
    Task(anyhow::Error),
}

/// A reqwest error in words, without its URL (which may hold a key), and
/// whose it is. Every connection reqwest opens goes to the proxy, so a
/// connect error is the proxy's.
fn classify(err: reqwest::Error) -> Failed {
    if err.is_connect() {
        let what = if err.is_timeout() {
            "timed out connecting to the proxy"
        } else {
            "could not connect through the proxy"
        };
        return Failed::Proxy(format!(
            "{what}: {}",
            upstream::describe::chain(&err.without_url())
        ));
    }
    Failed::Task(describe(err))
}

/// Reads at most `cap` bytes of the body; `true` when more was cut off.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// A reqwest error in words, without its URL (which may hold a key).
fn describe(err: reqwest::Error) -> anyhow::Error {
    anyhow::anyhow!(upstream::describe::reqwest_error(err))
}
