//! A small HTTP forward proxy for tests and benchmarks: `CONNECT host:port`
//! tunnels and plain `GET http://host/...` requests, optional basic auth,
//! counters, and a switch that makes it answer 403 to everything (a proxy
//! the site has banned). Connections are kept alive on both sides, as real
//! forward proxies do (squid, tinyproxy): a fetch through it costs no new
//! TCP connection once the client and the proxy have one. The counters
//! count requests, not connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, HOST};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// Plain requests forwarded.
    pub forwarded: AtomicU64,
    /// CONNECT tunnels opened.
    pub tunnels: AtomicU64,
    /// Requests refused for missing or wrong credentials (407).
    pub auth_refused: AtomicU64,
    /// Requests answered 403 while `refuse_all` was set.
    pub refused: AtomicU64,
}

/// A running proxy; it stops when dropped.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub counters: Arc<ProxyCounters>,
    refuse_all: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// What every connection of one proxy shares.
struct Shared {
    counters: Arc<ProxyCounters>,
    refuse_all: Arc<AtomicBool>,
    /// `Proxy-Authorization` a request must carry, if any.
    expected_auth: Option<String>,
    /// Keeps connections to origins alive between requests.
    origins: Client<HttpConnector, Incoming>,
}

type Body = BoxBody<Bytes, hyper::Error>;

impl TestProxy {
    /// Starts on 127.0.0.1, port 0. `auth`: required (user, password).
    pub async fn start(auth: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let counters = Arc::new(ProxyCounters::default());
        let refuse_all = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            counters: counters.clone(),
            refuse_all: refuse_all.clone(),
            expected_auth: auth.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            origins: Client::builder(TokioExecutor::new()).build_http(),
        });
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .preserve_header_case(true)
                        .serve_connection(TokioIo::new(conn), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            counters,
            refuse_all,
            task,
        }
    }

    /// `http://[user:pass@]127.0.0.1:port`
    pub fn url(&self, auth: Option<(&str, &str)>) -> String {
        match auth {
            Some((u, p)) => format!("http://{u}:{p}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// From now on answer every request 403 (or stop doing so).
    pub fn refuse_all(&self, on: bool) {
        self.refuse_all.store(on, Ordering::SeqCst);
    }

    pub fn forwarded(&self) -> u64 {
        self.counters.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

async fn handle(shared: &Shared, mut req: Request<Incoming>) -> Response<Body> {
    let counters = &shared.counters;
    if let Some(expected) = &shared.expected_auth {
        let given = req.headers().get("proxy-authorization");
        if given.map(HeaderValue::as_bytes) != Some(expected.as_bytes()) {
            counters.auth_refused.fetch_add(1, Ordering::SeqCst);
            let mut response = answer(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "");
            response.headers_mut().insert(
                "proxy-authenticate",
                HeaderValue::from_static("Basic realm=\"test\""),
            );
            return response;
        }
    }
    if shared.refuse_all.load(Ordering::SeqCst) {
        counters.refused.fetch_add(1, Ordering::SeqCst);
        return answer(StatusCode::FORBIDDEN, "banned");
    }
    if req.method() == Method::CONNECT {
        let Some(target) = req.uri().authority().map(|a| a.to_string()) else {
            return answer(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            return answer(StatusCode::BAD_GATEWAY, "");
        };
        counters.tunnels.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Ok(client) = hyper::upgrade::on(req).await {
                let mut client = TokioIo::new(client);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        return Response::new(Empty::new().map_err(|e| match e {}).boxed());
    }
    // Plain: the absolute-form target goes to its origin over a kept-alive
    // connection; hop-by-hop headers stay here.
    if req.uri().authority().is_none() {
        return answer(
            StatusCode::BAD_REQUEST,
            "a proxy request needs an absolute URL",
        );
    }
    let headers = req.headers_mut();
    for hop in [
        "proxy-authorization",
        "proxy-connection",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(hop);
    }
    if !headers.contains_key(HOST) {
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(HOST, host);
        }
    }
    match shared.origins.request(req).await {
        Ok(response) => {
            counters.forwarded.fetch_add(1, Ordering::SeqCst);
            let (mut parts, body) = response.into_parts();
            for hop in ["connection", "keep-alive", "proxy-authenticate"] {
                parts.headers.remove(hop);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(_) => answer(StatusCode::BAD_GATEWAY, ""),
    }
}
