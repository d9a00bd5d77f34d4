//! HTTP errors in words, for logs and stored errors: what went wrong, then
//! the error and its causes on one line, never the URL (it may hold a key
//! or a proxy's credentials). The upstream client and the worker's fetches
//! both describe reqwest's errors so.

use std::error::Error;

/// A reqwest error in words, without its URL: `timed out (error sending
/// request: …)`.
pub fn reqwest_error(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "broken body"
    } else {
        "request failed"
    };
    format!("{kind} ({})", chain(&err.without_url()))
}

/// An error and its sources on one line, joined by `: `.
pub fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
