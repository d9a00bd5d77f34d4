//! One fetch of one task through one proxy. A reqwest client is built once
//! per proxy (its URL's credentials become basic auth) and reused, so
//! connections to a proxy are kept alive across tasks.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use settings::{Settings, WorkerSettings};

use crate::browser::Chromium;
use crate::extract::Profiles;
use crate::outcome::{classify_status, matches_block_pattern, Outcome};
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
}

/// What a worker without a browser claims.
const PLAIN_KINDS: [&str; 2] = ["offer_refresh", "fetch_url"];

impl Fetcher {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        // Without upstream credentials only fetch_url tasks can run; an
        // offer_refresh then fails with the reason.
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
        Ok(Self {
            settings: settings.worker.clone(),
            upstream,
            clients: Mutex::new(HashMap::new()),
            profiles,
            chromium,
        })
    }

    /// The task kinds this worker claims: `render_url` only with a browser.
    pub fn kinds(&self) -> &'static [&'static str] {
        if self.chromium.is_some() {
            &db::tasks::KINDS
        } else {
            &PLAIN_KINDS
        }
    }

    /// Runs one claimed task through `proxy_url`: rendered in the browser
    /// (`render_url`) or fetched, then extracted when it names a profile.
    pub async fn fetch(&self, task: &db::tasks::ClaimedTask, proxy_url: &str) -> Outcome {
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
        if task.kind == "render_url" {
            let Some(chromium) = &self.chromium else {
                return Outcome::Rejected {
                    error: "this worker has no browser (worker.browser.enabled)".into(),
                };
            };
            let render = crate::render::Render {
                chromium,
                settings: &self.settings.browser,
                block_patterns: &self.settings.block_patterns,
            };
            return render
                .render(&task.target, &params, profile, proxy_url)
                .await;
        }
        let mut outcome = self.fetch_one(&task.kind, &task.target, proxy_url).await;
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
            extras.extracted = Some(profile.extract(body, base.as_ref()));
        }
        outcome
    }

    fn client_for(&self, proxy_url: &str) -> anyhow::Result<reqwest::Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(proxy_url) {
            return Ok(client.clone());
        }
        let mut url = url::Url::parse(proxy_url).context("proxy URL")?;
        let user = percent_decode(url.username());
        let pass = url.password().map(percent_decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut proxy = reqwest::Proxy::all(url.as_str()).context("proxy URL")?;
        if !user.is_empty() {
            proxy = proxy.basic_auth(&user, pass.as_deref().unwrap_or(""));
        }
        let client = reqwest::Client::builder()
            .proxy(proxy)
            .connect_timeout(self.settings.connect_timeout)
            .timeout(self.settings.request_timeout)
            .user_agent(concat!("carfeed-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("build the HTTP client")?;
        clients.insert(proxy_url.to_owned(), client.clone());
        Ok(client)
    }

    /// Fetches `target` of a task of `kind` through `proxy_url`.
    pub async fn fetch_one(&self, kind: &str, target: &str, proxy_url: &str) -> Outcome {
        match self.try_fetch(kind, target, proxy_url).await {
            Ok(outcome) => outcome,
            Err(err) => Outcome::Transient {
                error: format!("{err:#}"),
            },
        }
    }

    async fn try_fetch(
        &self,
        kind: &str,
        target: &str,
        proxy_url: &str,
    ) -> anyhow::Result<Outcome> {
        let client = self.client_for(proxy_url)?;
        let request = match kind {
            "offer_refresh" => {
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
            _ => client.get(target),
        };
        let response = request.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        if let Some(outcome) = classify_status(status) {
            return Ok(outcome);
        }
        let headers = self.kept_headers(response.headers());
        let cap = if kind == "offer_refresh" {
            LISTING_CAP
        } else {
            self.settings.body_cap_bytes as usize
        };
        let (bytes, truncated) = read_capped(response, cap).await?;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if matches_block_pattern(&body, &self.settings.block_patterns) {
            return Ok(Outcome::Blocked {
                reason: format!("a captcha page (HTTP {status}) through the proxy"),
            });
        }
        let listing = if kind == "offer_refresh" {
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
            body: Some(body),
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
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "broken body"
    } else {
        "request failed"
    };
    anyhow::anyhow!("{kind}: {}", err.without_url())
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}
