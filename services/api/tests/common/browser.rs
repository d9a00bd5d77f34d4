//! Real headless Chromium for the api's page tests (the status page, the
//! docs page): open a URL, keep every request the page made, take a
//! screenshot. Skips, saying so, when Chromium is not installed, except
//! under CI, where a missing browser fails the test.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::network::EventRequestWillBeSent;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;

const EXECUTABLES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Chromium on PATH; None (after saying SKIPPED) when absent outside CI
/// (`test_support::tool`).
pub fn chromium() -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    let found = EXECUTABLES.iter().find_map(|name| {
        std::env::split_paths(&dirs)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    test_support::tool::or_skip("chromium", found, "run scripts/install-chromium.sh")
}

/// A loaded page, what it requested, and its browser.
pub struct Loaded {
    pub page: Page,
    /// Every URL the page requested (the document included).
    pub requests: Arc<Mutex<Vec<String>>>,
    browser: Browser,
    _profile: tempfile::TempDir,
}

impl Loaded {
    /// Opens `url` in a fresh headless Chromium and waits for the load and
    /// then `settle` for what scripts fetch afterwards.
    pub async fn open(executable: &PathBuf, url: &str, settle: Duration) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .user_data_dir(profile.path())
            .no_sandbox()
            .arg("--disable-gpu")
            .window_size(1280, 1400)
            .viewport(chromiumoxide::handler::viewport::Viewport {
                width: 1280,
                height: 1400,
                ..Default::default()
            })
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config).await.unwrap();
        tokio::spawn(async move { while let Some(Ok(())) = handler.next().await {} });
        let page = browser.new_page("about:blank").await.unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let mut events = page
            .event_listener::<EventRequestWillBeSent>()
            .await
            .unwrap();
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                seen.lock().unwrap().push(event.request.url.clone());
            }
        });
        page.goto(url).await.unwrap();
        page.wait_for_navigation().await.unwrap();
        tokio::time::sleep(settle).await;
        Self {
            page,
            requests,
            browser,
            _profile: profile,
        }
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.page
            .evaluate("document.body.innerText")
            .await
            .unwrap()
            .into_value()
            .unwrap()
    }

    /// Requests that left `origin` (`http://host:port`); data: and blob:
    /// URLs never leave the page.
    pub fn foreign_requests(&self, origin: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|u| {
                !(u.starts_with(&format!("{origin}/"))
                    || u.as_str() == origin
                    || u.starts_with("data:")
                    || u.starts_with("blob:"))
            })
            .cloned()
            .collect()
    }

    /// A full-page PNG into `path` (directories made).
    pub async fn screenshot(&self, path: &std::path::Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        self.page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
            .await
            .unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
    }
}

/// `target/artifacts/` of the workspace (CI keeps it).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("artifacts")
}
