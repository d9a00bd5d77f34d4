//! A small HTTP forward proxy for tests: `CONNECT host:port` tunnels and
//! plain `GET http://host/...` requests, optional basic auth, counters, and
//! a switch that makes it answer 403 to everything (a proxy the site has
//! banned). Each plain request is forwarded with `Connection: close`, so
//! every request is one connection and the counters count requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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

impl TestProxy {
    /// Starts on 127.0.0.1, port 0. `auth`: required (user, password).
    pub async fn start(auth: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let counters = Arc::new(ProxyCounters::default());
        let refuse_all = Arc::new(AtomicBool::new(false));
        let expected = auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let task = tokio::spawn({
            let counters = counters.clone();
            let refuse_all = refuse_all.clone();
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let (counters, refuse_all, expected) =
                        (counters.clone(), refuse_all.clone(), expected.clone());
                    tokio::spawn(async move {
                        let _ = serve(conn, &counters, &refuse_all, expected.as_deref()).await;
                    });
                }
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

async fn serve(
    conn: TcpStream,
    counters: &ProxyCounters,
    refuse_all: &AtomicBool,
    expected_auth: Option<&str>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        headers.push(line);
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if let Some(expected) = expected_auth {
        let given = headers.iter().find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_owned())
        });
        if given.as_deref() != Some(expected) {
            counters.auth_refused.fetch_add(1, Ordering::SeqCst);
            let conn = reader.get_mut();
            conn.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
            return Ok(());
        }
    }
    if refuse_all.load(Ordering::SeqCst) {
        counters.refused.fetch_add(1, Ordering::SeqCst);
        let conn = reader.get_mut();
        conn.write_all(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\nbanned",
        )
        .await?;
        return Ok(());
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        let mut upstream = TcpStream::connect(target).await?;
        counters.tunnels.fetch_add(1, Ordering::SeqCst);
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        let mut client = reader.into_inner();
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    // Plain: absolute-form target -> origin-form, hop-by-hop headers dropped.
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut upstream = TcpStream::connect(host).await?;
    counters.forwarded.fetch_add(1, Ordering::SeqCst);
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    let mut content_length = 0usize;
    for h in &headers {
        let name = h
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "content-length" {
            content_length = h
                .split_once(':')
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
        }
        if !matches!(
            name.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
        ) {
            head.push_str(h);
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).await?;
    if content_length > 0 {
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).await?;
        upstream.write_all(&body).await?;
    }
    let mut client = reader.into_inner();
    // The origin closes after its answer; so does the client side then.
    tokio::io::copy(&mut upstream, &mut client).await?;
    client.shutdown().await?;
    Ok(())
}
