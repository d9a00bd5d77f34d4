//! A tiny origin HTTP server for tests and benchmarks: every path answers
//! 200 with the path as its body, after an optional latency, except
//! `/status/<code>` (that status) and `/captcha` (a bot-check page). It
//! counts the requests per path and catches two requests for the same path
//! in flight at once (a task held under two leases would do that).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
pub struct OriginLog {
    /// Requests per path.
    pub hits: HashMap<String, u64>,
    in_flight: HashMap<String, u64>,
    /// Paths that were requested again while a request for them was running.
    pub overlaps: Vec<String>,
}

pub struct Origin {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<OriginLog>>,
    latency: Arc<Mutex<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start(latency: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let log = Arc::new(Mutex::new(OriginLog::default()));
        let latency = Arc::new(Mutex::new(latency));
        let task = tokio::spawn({
            let (log, latency) = (log.clone(), latency.clone());
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let (log, latency) = (log.clone(), latency.clone());
                    tokio::spawn(async move {
                        let _ = serve(conn, &log, &latency).await;
                    });
                }
            }
        });
        Self {
            addr,
            log,
            latency,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.log
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.log.lock().unwrap().hits.values().sum()
    }

    pub fn overlaps(&self) -> Vec<String> {
        self.log.lock().unwrap().overlaps.clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    conn: TcpStream,
    log: &Mutex<OriginLog>,
    latency: &Mutex<Duration>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if line.to_ascii_lowercase().starts_with("connection:")
                && line.to_ascii_lowercase().contains("close")
            {
                close = true;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        {
            let mut log = log.lock().unwrap();
            *log.hits.entry(path.clone()).or_default() += 1;
            let running = log.in_flight.entry(path.clone()).or_default();
            *running += 1;
            if *running > 1 {
                log.overlaps.push(path.clone());
            }
        }
        let wait = *latency.lock().unwrap();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (status, body) = if let Some(code) = path.strip_prefix("/status/") {
            (code.parse::<u16>().unwrap_or(500), String::new())
        } else if path == "/captcha" {
            (
                200,
                "<html><body>Please solve the CAPTCHA to continue</body></html>".to_owned(),
            )
        } else {
            (200, format!("fetched {path}"))
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        {
            let mut log = log.lock().unwrap();
            if let Some(running) = log.in_flight.get_mut(&path) {
                *running -= 1;
            }
        }
        reader.get_mut().write_all(answer.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}
