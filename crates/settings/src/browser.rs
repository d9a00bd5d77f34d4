//! The worker's browser (`worker.browser`: `render_url` tasks through
//! headless Chromium), its bot-check patterns and the extraction profiles
//! (`worker.extract`), issue 15. Kept apart from `worker.rs` so the fleet's
//! own settings stay one concern.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::sections::in_range;
use crate::typed;
use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserSettings {
    /// This worker renders `render_url` tasks; a worker without the browser
    /// never claims them.
    pub enabled: bool,
    /// Chromium's path; empty: the first of chromium, chromium-browser,
    /// google-chrome found on PATH.
    pub executable: String,
    /// A fresh browser after this many pages (renderer memory grows).
    pub restart_after_pages: u32,
    #[serde(with = "humantime_serde")]
    pub launch_timeout: Duration,
    /// Navigation plus waiting, per task; past it the task costs one attempt.
    #[serde(with = "humantime_serde")]
    pub page_timeout: Duration,
    /// Rendered HTML is kept up to this many bytes.
    #[serde(deserialize_with = "typed::int::<_, _, 0, 67_108_864>")]
    pub html_cap_bytes: usize,
    /// Browser window (and screenshot) size.
    pub window_width: u32,
    pub window_height: u32,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            executable: String::new(),
            restart_after_pages: 500,
            launch_timeout: Duration::from_secs(20),
            page_timeout: Duration::from_secs(30),
            html_cap_bytes: 2 * 1024 * 1024,
            window_width: 1280,
            window_height: 900,
        }
    }
}

/// Case-insensitive substrings that make a page a block page (a captcha,
/// "verify you are human", Cloudflare's "Just a moment..."), looked for in
/// its title and in short pages only: the proxy is blocked for its cooldown.
pub fn default_block_patterns() -> Vec<String> {
    [
        "captcha",
        "verify you are human",
        "are you a robot",
        "access denied",
        "attention required",
        "just a moment",
    ]
    .map(String::from)
    .to_vec()
}

/// `worker.extract.<profile>.<field>`: `SELECTOR[@ATTR][[]][ | TYPE]`.
pub type ExtractProfiles = BTreeMap<String, BTreeMap<String, String>>;

impl BrowserSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        in_range(
            "worker.browser.restart_after_pages",
            self.restart_after_pages.into(),
            1,
            1_000_000,
        )?;
        for (key, value) in [
            ("worker.browser.launch_timeout", self.launch_timeout),
            ("worker.browser.page_timeout", self.page_timeout),
        ] {
            if value.is_zero() {
                return Err(SettingsError::new(format!("{key} must be longer than 0s")));
            }
        }
        in_range(
            "worker.browser.window_width",
            self.window_width.into(),
            100,
            8000,
        )?;
        in_range(
            "worker.browser.window_height",
            self.window_height.into(),
            100,
            8000,
        )
    }
}
