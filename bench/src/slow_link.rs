//! An emulated slow link: a TCP proxy on loopback that delays every chunk by
//! half the round-trip time in each direction (bandwidth is not limited:
//! chunks in flight are buffered, as a long fat pipe would carry them). It
//! also counts round trips: a reply from the server after the client spoke
//! is one client-visible wait.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub struct SlowLink {
    addr: SocketAddr,
    round_trips: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    /// Listens on a free loopback port and forwards to `upstream`, adding
    /// `rtt` to every round trip.
    pub async fn start(upstream: SocketAddr, rtt: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = round_trips.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, rtt / 2, counter);
                    }
                });
            }
        });
        Ok(Self {
            addr,
            round_trips,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Round trips seen since the last call.
    pub fn take_round_trips(&self) -> u64 {
        self.round_trips.swap(0, Ordering::Relaxed)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn relay(client: TcpStream, server: TcpStream, one_way: Duration, round_trips: Arc<AtomicU64>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Set when the client sent something the server has not answered yet.
    let client_spoke = Arc::new(AtomicBool::new(false));
    let spoke = client_spoke.clone();
    pump(client_read, server_write, one_way, move || {
        spoke.store(true, Ordering::Relaxed);
    });
    pump(server_read, client_write, one_way, move || {
        if client_spoke.swap(false, Ordering::Relaxed) {
            round_trips.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Copies `from` to `to`, each chunk `delay` after it was read; `on_chunk`
/// runs as each chunk arrives.
fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    on_chunk: impl Fn() + Send + 'static,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            on_chunk();
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
}
