//! One headless Chromium per worker process, shared by its slots (issue 15).
//! Each `render_url` task gets a browser context of its own, created with the
//! task's proxy (so tabs of one browser go out through different proxies and
//! share no cookies), holding one tab; the context is disposed on every path
//! (`Tab::close`, or `Drop` when the slot is cancelled or fails). The browser
//! is replaced after `restart_after_pages` pages and when it has crashed;
//! tabs still open on an old browser keep it alive until they finish.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use chromiumoxide::auth::Credentials;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::{Browser, BrowserConfig, Page};
use domain::fleet::ProxyUrl;
use futures::StreamExt;
use settings::BrowserSettings;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// Chromium's names on Debian and elsewhere, looked up on PATH in order.
const EXECUTABLES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// `worker.browser.executable`, or the first Chromium on PATH.
pub fn find_executable(configured: &str) -> Option<PathBuf> {
    if !configured.is_empty() {
        let path = PathBuf::from(configured);
        return path.is_file().then_some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    EXECUTABLES.iter().find_map(|name| {
        std::env::split_paths(&dirs)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The worker's browser: launched on first use, replaced when worn or dead.
pub struct Chromium {
    settings: BrowserSettings,
    executable: PathBuf,
    current: Mutex<Option<Arc<Instance>>>,
    launches: AtomicU64,
}

/// One running Chromium process and the task driving its DevTools socket.
struct Instance {
    browser: Browser,
    /// Ends when the DevTools connection does (the browser exited or crashed).
    connection: JoinHandle<()>,
    pages: AtomicU32,
    generation: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // `Browser` kills its process on drop; the connection task ends with it.
        self.connection.abort();
    }
}

impl Chromium {
    pub fn new(settings: BrowserSettings) -> anyhow::Result<Self> {
        let executable = find_executable(&settings.executable).with_context(|| {
            if settings.executable.is_empty() {
                format!(
                    "worker.browser.enabled is true but no Chromium was found on PATH (looked for {})",
                    EXECUTABLES.join(", ")
                )
            } else {
                format!(
                    "worker.browser.executable {:?} does not exist",
                    settings.executable
                )
            }
        })?;
        Ok(Self {
            settings,
            executable,
            current: Mutex::new(None),
            launches: AtomicU64::new(0),
        })
    }

    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// How many browsers this worker has launched (restarts included).
    pub fn launches(&self) -> u64 {
        self.launches.load(Ordering::Relaxed)
    }

    /// The browser for the next page: the current one unless it has served
    /// its pages or died, else a new one.
    async fn instance(&self) -> anyhow::Result<Arc<Instance>> {
        let mut current = self.current.lock().await;
        if let Some(live) = current.as_ref() {
            let worn = live.pages.load(Ordering::Relaxed) >= self.settings.restart_after_pages;
            let dead = live.connection.is_finished();
            if !worn && !dead {
                return Ok(live.clone());
            }
            if dead {
                tracing::warn!("Chromium {} died; starting a new one", live.generation);
            } else {
                tracing::info!(
                    "Chromium {} served {} pages; starting a new one",
                    live.generation,
                    self.settings.restart_after_pages
                );
            }
            *current = None;
        }
        let live = Arc::new(self.launch().await?);
        *current = Some(live.clone());
        Ok(live)
    }

    async fn launch(&self) -> anyhow::Result<Instance> {
        let generation = self.launches.fetch_add(1, Ordering::Relaxed) + 1;
        // A profile of its own: Chromium locks its user data directory.
        let profile = tempfile::Builder::new()
            .prefix("carfeed-chromium-")
            .tempdir()
            .context("create Chromium's profile directory")?;
        let s = &self.settings;
        let config = BrowserConfig::builder()
            .chrome_executable(&self.executable)
            .user_data_dir(profile.path())
            // Containers run as root, where Chromium's sandbox cannot start
            // (docs/worker.md says what isolates it instead).
            .no_sandbox()
            .arg("--disable-gpu")
            // WebRTC may send UDP only through the proxy (which carries
            // none): a page cannot reach out from the worker's own address.
            .arg("--force-webrtc-ip-handling-policy=disable_non_proxied_udp")
            .window_size(s.window_width, s.window_height)
            .viewport(Viewport {
                width: s.window_width,
                height: s.window_height,
                ..Viewport::default()
            })
            .launch_timeout(s.launch_timeout)
            .request_timeout(s.page_timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("Chromium configuration: {e}"))?;
        let (browser, mut handler) = Browser::launch(config)
            .await
            .with_context(|| format!("launch {}", self.executable.display()))?;
        let connection = tokio::spawn(async move {
            // Drives the DevTools socket; a connection error means the
            // browser is gone.
            while let Some(Ok(())) = handler.next().await {}
        });
        tracing::info!(
            "Chromium {generation} started ({})",
            self.executable.display()
        );
        Ok(Instance {
            browser,
            connection,
            pages: AtomicU32::new(0),
            generation,
            _profile: profile,
        })
    }

    /// A fresh tab whose traffic goes through `proxy`; its credentials
    /// answer the proxy's auth challenge through the protocol
    /// (Fetch.authRequired), never on a command line.
    pub async fn tab(&self, proxy: &ProxyUrl) -> anyhow::Result<Tab> {
        let instance = self.instance().await?;
        instance.pages.fetch_add(1, Ordering::Relaxed);
        let context = instance
            .browser
            .create_browser_context(CreateBrowserContextParams {
                proxy_server: Some(proxy.address()),
                // Chromium never proxies loopback by default; the proxy decides.
                proxy_bypass_list: Some("<-loopback>".into()),
                ..Default::default()
            })
            .await
            .context("create a browser context")?;
        let mut tab = Tab {
            instance,
            context: Some(context.clone()),
            page: None,
        };
        let page = tab
            .instance
            .browser
            .new_page(
                CreateTargetParams::builder()
                    .url("about:blank")
                    .browser_context_id(context)
                    .build()
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
            .await
            .context("open a tab")?;
        if let Some((username, password)) = proxy.credentials() {
            let credentials = Credentials {
                username: username.to_owned(),
                password: password.to_owned(),
            };
            page.authenticate(credentials)
                .await
                .context("set the proxy's credentials")?;
        }
        tab.page = Some(page);
        Ok(tab)
    }
}

/// One task's tab in its own browser context.
pub struct Tab {
    instance: Arc<Instance>,
    context: Option<BrowserContextId>,
    page: Option<Page>,
}

impl Tab {
    pub fn page(&self) -> &Page {
        self.page.as_ref().expect("a tab has its page until closed")
    }

    /// Disposes the context (and its tab) and waits for it.
    pub async fn close(mut self) {
        self.page = None;
        if let Some(context) = self.context.take() {
            let _ = self.instance.browser.dispose_browser_context(context).await;
        }
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        // A cancelled or failed slot: dispose in the background.
        if let Some(context) = self.context.take() {
            let instance = self.instance.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = instance.browser.dispose_browser_context(context).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chromiumoxide::cdp::browser_protocol::target::GetTargetsParams;

    async fn open_pages(chromium: &Chromium) -> usize {
        let live = chromium.current.lock().await.clone().unwrap();
        let targets = live
            .browser
            .execute(GetTargetsParams::default())
            .await
            .unwrap();
        targets
            .result
            .target_infos
            .iter()
            .filter(|t| t.r#type == "page")
            .count()
    }

    #[tokio::test]
    async fn tabs_are_closed_on_every_path_and_the_browser_replaced_after_its_pages() {
        let found = find_executable("");
        if test_support::tool::or_skip("chromium", found, "run scripts/install-chromium.sh")
            .is_none()
        {
            return;
        }
        let chromium = Chromium::new(BrowserSettings {
            restart_after_pages: 2,
            ..BrowserSettings::default()
        })
        .unwrap();
        let proxy = ProxyUrl::parse("http://u:p@127.0.0.1:9").unwrap();
        let first = chromium.tab(&proxy).await.unwrap();
        let before = open_pages(&chromium).await - 1;
        first.close().await;
        assert_eq!(open_pages(&chromium).await, before, "closed");
        let dropped = chromium.tab(&proxy).await.unwrap();
        assert_eq!(open_pages(&chromium).await, before + 1);
        drop(dropped);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while open_pages(&chromium).await != before {
            assert!(
                std::time::Instant::now() < deadline,
                "a dropped tab is closed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(chromium.launches(), 1);
        chromium.tab(&proxy).await.unwrap().close().await;
        assert_eq!(chromium.launches(), 2, "a fresh browser after 2 pages");
    }
}
