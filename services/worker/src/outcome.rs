//! How one fetch ended, and the pure rules that decide it from an HTTP
//! answer (SPEC 6 and issue 11): 2xx is a result, 403/429 or a captcha page
//! blocks the proxy and retries the task elsewhere, 404 completes the task
//! as not found, 5xx and timeouts cost one attempt.

use serde_json::{Map, Value};

/// What a slot hands to the completer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx answer (`listing`: the parsed record of an `offer_refresh`).
    Fetched {
        status: u16,
        headers: Value,
        body: Option<String>,
        truncated: bool,
        listing: Option<Map<String, Value>>,
        /// A rendered page's final URL and screenshot, an extracted record.
        extras: crate::page::Extras,
    },
    /// 404: completed as not found (an `offer_refresh` marks the listing inactive).
    NotFound,
    /// The site refused the proxy: block it for the cooldown, retry the task.
    Blocked { reason: String },
    /// 5xx, a timeout, a broken connection: one more failed attempt.
    Transient { error: String },
    /// Any other answer (400, 401, 410, ...): the task fails at once.
    Rejected { error: String },
}

/// What the status code alone decides; `None` for 2xx (the body decides).
pub fn classify_status(status: u16) -> Option<Outcome> {
    match status {
        200..=299 => None,
        403 | 429 => Some(Outcome::Blocked {
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

/// A 2xx page that is really a bot check (a captcha or "verify you are
/// human" page): the proxy is burnt for this site.
pub fn looks_like_captcha(body: &str) -> bool {
    matches_block_pattern(body, &settings::default_block_patterns())
}

/// `looks_like_captcha` with the patterns of `worker.block_patterns`
/// (case-insensitive substrings of the page's first 64 KiB).
pub fn matches_block_pattern(body: &str, patterns: &[String]) -> bool {
    let head: String = body.chars().take(65_536).collect::<String>().to_lowercase();
    patterns
        .iter()
        .any(|needle| head.contains(&needle.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_outcomes_the_issue_names() {
        assert_eq!(classify_status(200), None);
        assert!(matches!(
            classify_status(403),
            Some(Outcome::Blocked { .. })
        ));
        assert!(matches!(
            classify_status(429),
            Some(Outcome::Blocked { .. })
        ));
        assert_eq!(classify_status(404), Some(Outcome::NotFound));
        assert!(matches!(
            classify_status(503),
            Some(Outcome::Transient { .. })
        ));
        assert!(matches!(
            classify_status(400),
            Some(Outcome::Rejected { .. })
        ));
    }

    #[test]
    fn a_captcha_page_is_recognised_and_a_listing_is_not() {
        assert!(looks_like_captcha(
            "<html><div class=\"g-reCAPTCHA\"></div></html>"
        ));
        assert!(!looks_like_captcha("{\"mark\": \"BMW\", \"price\": 1}"));
    }
}
