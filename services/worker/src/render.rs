//! One `render_url` task (issue 15): the page loaded in a fresh tab through
//! the task's proxy, then a wait for the task's CSS selector (`wait_for`) or
//! for the network to go idle, within `worker.browser.page_timeout`. The
//! outcome follows the rules of `fetch_url` (outcome.rs): the document's
//! status decides first, then a bot-check page blocks the proxy; the result
//! keeps the final URL, the rendered HTML (capped), the extracted record and,
//! when asked, a PNG screenshot.

use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, EventLifecycleEvent, NavigateParams,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use serde::Deserialize;
use settings::BrowserSettings;
use tokio::time::{timeout_at, Instant};

use crate::browser::{Chromium, Tab};
use crate::extract::Profile;
use domain::fleet::ProxyUrl;

use crate::outcome::{classify_status, BlockMarkers, Outcome};
use crate::page::{Extras, TaskParams};

/// The longest one in-page wait for `wait_for`'s selector lasts.
const LOOK: Duration = Duration::from_secs(2);

pub struct Render<'a> {
    pub chromium: &'a Chromium,
    pub settings: &'a BrowserSettings,
    pub markers: &'a BlockMarkers,
    pub block_statuses: &'a [u16],
}

impl Render<'_> {
    pub async fn render(
        &self,
        target: &str,
        params: &TaskParams,
        profile: Option<&Profile>,
        proxy: &ProxyUrl,
    ) -> Outcome {
        let started = Instant::now();
        let deadline = started + self.settings.page_timeout;
        let tab = match self.chromium.tab(proxy).await {
            Ok(tab) => tab,
            Err(err) => {
                return Outcome::Transient {
                    error: format!("browser: {err:#}"),
                }
            }
        };
        let opened = Instant::now();
        let outcome = self
            .in_tab(&tab, deadline, target, params, profile)
            .await
            .unwrap_or_else(|err| Outcome::Transient {
                error: format!("browser: {err:#}"),
            });
        let rendered = Instant::now();
        tab.close().await;
        // Where a page's time goes, for tuning (RUST_LOG=worker::render=debug).
        tracing::debug!(
            "{target}: {} ms in all; opening its context and tab {} ms, loading and waiting {} ms, closing {} ms",
            started.elapsed().as_millis(),
            opened.duration_since(started).as_millis(),
            rendered.duration_since(opened).as_millis(),
            rendered.elapsed().as_millis(),
        );
        outcome
    }

    async fn in_tab(
        &self,
        tab: &Tab,
        deadline: Instant,
        target: &str,
        params: &TaskParams,
        profile: Option<&Profile>,
    ) -> anyhow::Result<Outcome> {
        let page = tab.page();
        // Subscribed before navigating, so the idle event cannot be missed.
        let mut lifecycle = page.event_listener::<EventLifecycleEvent>().await?;
        let timeout = self.settings.page_timeout;
        let Ok(navigated) = timeout_at(deadline, page.execute(NavigateParams::new(target))).await
        else {
            return Ok(timed_out(timeout, "loading the page"));
        };
        let navigated = navigated?.result;
        if let Some(error) = navigated.error_text {
            // Chromium's own words for a proxy that failed itself.
            if error.contains("ERR_PROXY") || error.contains("ERR_TUNNEL_CONNECTION_FAILED") {
                return Ok(Outcome::ProxyFault {
                    reason: format!("navigation failed through the proxy: {error}"),
                });
            }
            return Ok(Outcome::Transient {
                error: format!("navigation failed: {error}"),
            });
        }
        let document: Document = page.evaluate_expression(DOCUMENT_JS).await?.into_value()?;
        if let Some(outcome) = classify_status(document.status, self.block_statuses, false) {
            return Ok(outcome);
        }
        if let Some(marker) = self.markers.find(page.content().await?.as_bytes()) {
            return Ok(blocked(marker, document.status));
        }

        let waited = match &params.wait_for {
            Some(selector) => wait_for_selector(page, selector, deadline).await?,
            None => {
                let loader = navigated.loader_id;
                let idle = async {
                    while let Some(event) = lifecycle.next().await {
                        if event.name == "networkIdle"
                            && loader.as_ref().is_none_or(|l| *l == event.loader_id)
                        {
                            return;
                        }
                    }
                };
                timeout_at(deadline, idle).await.is_ok()
            }
        };
        let html = page.content().await?;
        if let Some(marker) = self.markers.find(html.as_bytes()) {
            return Ok(blocked(marker, document.status));
        }
        if !waited {
            let what = match &params.wait_for {
                Some(selector) => format!("selector {selector:?}"),
                None => "network idle".to_owned(),
            };
            return Ok(timed_out(timeout, &format!("waiting for {what}")));
        }

        let final_url: String = page
            .evaluate_expression("location.href")
            .await?
            .into_value()?;
        let screenshot = if params.screenshot {
            Some(
                page.screenshot(
                    ScreenshotParams::builder()
                        .format(CaptureScreenshotFormat::Png)
                        .full_page(true)
                        .build(),
                )
                .await?,
            )
        } else {
            None
        };
        let base = url::Url::parse(&final_url).ok();
        let extracted = profile.map(|p| p.extract(&html, base.as_ref()));
        let (body, truncated) = cap(html, self.settings.html_cap_bytes);
        Ok(Outcome::Fetched {
            // Chromium reports 0 for a page it did not get over HTTP.
            status: if document.status == 0 {
                200
            } else {
                document.status
            },
            headers: serde_json::json!({}),
            body: Some(body.into_bytes()),
            truncated,
            listing: None,
            extras: Extras {
                final_url: Some(final_url),
                screenshot,
                extracted,
            },
        })
    }
}

/// The main document's HTTP status, as the page itself saw it.
const DOCUMENT_JS: &str =
    "({status: performance.getEntriesByType('navigation')[0]?.responseStatus ?? 0})";

#[derive(Deserialize)]
struct Document {
    status: u16,
}

/// Waits for `selector` until `deadline`; false when it never matched. The
/// page itself watches for it (a MutationObserver), so the task goes on as
/// soon as the element exists instead of at the next poll; each look lasts
/// at most `LOOK`, then the next one starts in whatever document the page
/// has by then (a script may have navigated). An error (the browser died)
/// ends the task at once.
async fn wait_for_selector(page: &Page, selector: &str, deadline: Instant) -> anyhow::Result<bool> {
    let selector = serde_json::Value::from(selector);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let look = left.min(LOOK).as_millis();
        let script = format!(
            "new Promise((resolve) => {{
                if (document.querySelector({selector}) !== null) return resolve(true);
                const observer = new MutationObserver(() => {{
                    if (document.querySelector({selector}) !== null) {{
                        observer.disconnect();
                        resolve(true);
                    }}
                }});
                observer.observe(document, {{childList: true, subtree: true, attributes: true}});
                setTimeout(() => {{ observer.disconnect(); resolve(false); }}, {look});
            }})"
        );
        let found: bool = page.evaluate_expression(script).await?.into_value()?;
        if found {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

fn blocked(marker: &str, status: u16) -> Outcome {
    Outcome::Blocked {
        reason: format!("a block page ({marker:?}, HTTP {status}, rendered) through the proxy"),
    }
}

fn timed_out(timeout: Duration, doing: &str) -> Outcome {
    Outcome::Transient {
        error: format!(
            "timed out after {} {doing}",
            humantime::format_duration(timeout)
        ),
    }
}

/// The first `cap` bytes of `html` (cut on a character boundary); `true`
/// when something was cut.
fn cap(mut html: String, cap: usize) -> (String, bool) {
    if html.len() <= cap {
        return (html, false);
    }
    let mut end = cap;
    while !html.is_char_boundary(end) {
        end -= 1;
    }
    html.truncate(end);
    (html, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_capped_on_a_character_boundary() {
        assert_eq!(cap("abc".into(), 3), ("abc".into(), false));
        assert_eq!(cap("aé".into(), 2), ("a".into(), true));
        assert_eq!(cap("aéb".into(), 3), ("aé".into(), true));
    }
}
