//! The accept loop and the handle tests hold.
//!
//! Connections are served by hand (hyper's http1 builder, not `axum::serve`)
//! so that a request can drop its own TCP connection: the reset fault cancels
//! a per-connection token and the connection task drops the socket, which a
//! client sees as a connection error, not as a response.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::faults::{ConnectionKill, Counters};
use crate::server::{router, SimState};
use crate::{Catalogue, Faults, SimConfig, PATH_PREFIX};

/// How long in-flight requests may finish after shutdown is asked for.
const GRACE: Duration = Duration::from_secs(2);

/// A simulator serving on a local port. Dropping it stops the server too.
pub struct RunningSim {
    addr: SocketAddr,
    state: Arc<SimState>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Serves `config` on `127.0.0.1`, on a port the system picks.
pub async fn spawn(config: SimConfig) -> anyhow::Result<RunningSim> {
    spawn_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Serves `config` on `addr`.
pub async fn spawn_on(config: SimConfig, addr: SocketAddr) -> anyhow::Result<RunningSim> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to listen on {addr}"))?;
    let addr = listener
        .local_addr()
        .context("Failed to read the bound address")?;
    let state = Arc::new(SimState {
        catalogue: Arc::new(config.catalogue()),
        api_key: config.api_key,
        seed: config.seed,
        faults: RwLock::new(Arc::new(config.faults)),
        counters: Counters::default(),
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(accept_loop(listener, router(state.clone()), stop.clone()));
    Ok(RunningSim {
        addr,
        state,
        stop,
        task: Some(task),
    })
}

impl RunningSim {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/api/v2/che168`: what `CHE168_BASE_URL` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}{PATH_PREFIX}", self.addr)
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.state.catalogue
    }

    /// Requests received by an endpoint (`"offers"`, `"offer"`, `"change_id"`,
    /// `"changes"`, `"filters"`, `"other"` for unknown paths, `"total"`),
    /// failed ones included.
    pub fn requests(&self, endpoint: &str) -> u64 {
        self.state.counters.get(endpoint)
    }

    /// Requests received for `/offers?page=N`.
    pub fn page_requests(&self, page: u32) -> u64 {
        self.state.counters.page(page)
    }

    /// Requests received for `/changes?change_id=X`.
    pub fn change_requests(&self, change_id: u64) -> u64 {
        self.state.counters.change_id(change_id)
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        (*self.state.faults()).clone()
    }

    /// Replaces the faults for every later request.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(faults);
    }

    /// Stops accepting, lets in-flight requests finish (briefly), then returns.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::warn!(error = ?err, "The simulator's server task failed");
            }
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, app: axum::Router, stop: CancellationToken) {
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "Failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        tracker.spawn(serve_connection(
            stream,
            app.clone(),
            stop.clone(),
            hard_stop.clone(),
        ));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
        hard_stop.cancel();
        tracker.wait().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: axum::Router,
    stop: CancellationToken,
    hard_stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let kill = CancellationToken::new();
    let request_kill = kill.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut()
            .insert(ConnectionKill(request_kill.clone()));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "A client connection ended with an error");
                }
                break;
            }
            () = kill.cancelled() => break,
            () = hard_stop.cancelled() => break,
            () = stop.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
