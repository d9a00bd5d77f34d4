//! How one fetch ended, and the pure rules that decide it from an HTTP
//! answer (SPEC 6, issues 11 and 24): 2xx is a result; a block status (403,
//! 429) or a block page blocks the proxy and sends the task to another; a
//! fault of the proxy itself (407, its own 502/503) cools the proxy down and
//! sends the task on; 404 completes the task as not found; other 5xx and
//! timeouts cost one attempt; any other answer fails the task.

use serde_json::{Map, Value};

/// What a slot hands to the completer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx answer (`listing`: the parsed record of an `offer_refresh`).
    Fetched {
        status: u16,
        headers: Value,
        /// The body's bytes as they came (an image keeps its NULs).
        body: Option<Vec<u8>>,
        truncated: bool,
        listing: Option<Map<String, Value>>,
        /// A rendered page's final URL and screenshot, an extracted record.
        extras: crate::page::Extras,
    },
    /// 404: completed as not found (an `offer_refresh` marks the listing inactive).
    NotFound,
    /// The site refused the proxy: block it for the cooldown, send the task
    /// to another proxy (no attempt; `max_blocks_per_task` ends it).
    Blocked { reason: String },
    /// The proxy failed itself: cool it down, send the task to another
    /// proxy (no attempt; `max_proxy_rotations` ends it).
    ProxyFault { reason: String },
    /// 5xx, a timeout, a broken connection: one more failed attempt.
    Transient { error: String },
    /// Any other answer (400, 401, 410, ...) or a task that cannot run: the
    /// task fails at once.
    Rejected { error: String },
}

/// What the status code alone decides; `None` for 2xx (the body decides).
/// `proxy_signed`: the answer carries a proxy's own error header
/// (`Proxy-Status`, `X-Squid-Error`), so a 502/503/504 is the proxy's.
pub fn classify_status(status: u16, block_statuses: &[u16], proxy_signed: bool) -> Option<Outcome> {
    match status {
        200..=299 => None,
        407 => Some(Outcome::ProxyFault {
            reason: "the proxy wants credentials (HTTP 407)".into(),
        }),
        502..=504 if proxy_signed => Some(Outcome::ProxyFault {
            reason: format!("the proxy's own HTTP {status}"),
        }),
        s if block_statuses.contains(&s) => Some(Outcome::Blocked {
            reason: format!("HTTP {status} through the proxy"),
        }),
        404 => Some(Outcome::NotFound),
        408 | 500..=599 => Some(Outcome::Transient {
            error: format!("HTTP {status}"),
        }),
        other => Some(Outcome::Rejected {
            error: format!("HTTP {other}"),
        }),
    }
}

/// Where a block page says it is one: its `<title>`, or its whole text when
/// it is short. A page that only mentions a captcha further down (a
/// listing's "protected by reCAPTCHA" footer) is long and its title is its
/// own, so it is no block page.
#[derive(Debug, Clone)]
pub struct BlockMarkers {
    /// Lower-case needles.
    patterns: Vec<String>,
    short_page: usize,
}

impl BlockMarkers {
    pub fn new(patterns: &[String], short_page_bytes: usize) -> Self {
        Self {
            patterns: patterns.iter().map(|p| p.to_lowercase()).collect(),
            short_page: short_page_bytes,
        }
    }

    /// The pattern `page` matches, if any.
    pub fn find(&self, page: &[u8]) -> Option<&str> {
        let head = String::from_utf8_lossy(&page[..page.len().min(65_536)]);
        let title = title_of(&head).map(str::to_lowercase);
        let text = (page.len() <= self.short_page).then(|| head.to_lowercase());
        self.patterns
            .iter()
            .find(|needle| {
                title
                    .as_deref()
                    .is_some_and(|t| t.contains(needle.as_str()))
                    || text.as_deref().is_some_and(|t| t.contains(needle.as_str()))
            })
            .map(String::as_str)
    }
}

/// The text of the first `<title>` element (case-insensitive tag).
fn title_of(html: &str) -> Option<&str> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    html.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCKS: [u16; 2] = [403, 429];

    #[test]
    fn statuses_map_to_the_outcomes_the_issues_name() {
        assert_eq!(classify_status(200, &BLOCKS, false), None);
        for blocked in [403, 429] {
            assert!(matches!(
                classify_status(blocked, &BLOCKS, false),
                Some(Outcome::Blocked { .. })
            ));
        }
        assert_eq!(
            classify_status(404, &BLOCKS, false),
            Some(Outcome::NotFound)
        );
        assert!(matches!(
            classify_status(503, &BLOCKS, false),
            Some(Outcome::Transient { .. })
        ));
        assert!(matches!(
            classify_status(503, &BLOCKS, true),
            Some(Outcome::ProxyFault { .. })
        ));
        assert!(matches!(
            classify_status(407, &BLOCKS, false),
            Some(Outcome::ProxyFault { .. })
        ));
        assert!(matches!(
            classify_status(400, &BLOCKS, false),
            Some(Outcome::Rejected { .. })
        ));
        assert!(matches!(
            classify_status(403, &[429], false),
            Some(Outcome::Rejected { .. })
        ));
    }

    #[test]
    fn a_block_page_is_recognised_by_its_title_or_short_text_and_a_footer_mention_is_not() {
        let markers = BlockMarkers::new(&settings::default_block_patterns(), 4096);
        assert!(markers
            .find(b"<html><div class=\"g-reCAPTCHA\"></div></html>")
            .is_some());
        assert!(markers
            .find(b"<html><body>Please solve the CAPTCHA to continue</body></html>")
            .is_some());
        let cloudflare = format!(
            "<html><head><title>Just a moment...</title></head><body>{}</body></html>",
            "x".repeat(20_000)
        );
        assert_eq!(markers.find(cloudflare.as_bytes()), Some("just a moment"));
        let listing = format!(
            "<html><head><title>BMW 320i, 2019 - Dealer</title></head><body>{}<footer>This site is protected by reCAPTCHA and the Google Privacy Policy applies.</footer></body></html>",
            "<p>A fine car, one owner.</p>".repeat(300)
        );
        assert_eq!(markers.find(listing.as_bytes()), None);
        assert_eq!(markers.find(b"{\"mark\": \"BMW\", \"price\": 1}"), None);
        assert_eq!(markers.find(&[0x89, b'P', b'N', b'G', 0, 0, 0]), None);
    }
}
