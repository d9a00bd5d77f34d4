//! A TCP relay between workers and Postgres that can lose one reply: once
//! armed, the next claim that returns pairs runs and commits on the server
//! (its reply is held back up to ReadyForQuery, which Postgres sends after
//! the commit), and the connection is cut before the reply gets back.
//!
//! A claim's reply is recognised by its rows: `db::claims::claim_pairs`
//! returns 9 columns, no other statement of the worker does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Columns of a `claim_pairs` row.
const CLAIM_COLUMNS: u16 = 9;

pub struct CuttingRelay {
    port: u16,
    armed: Arc<AtomicBool>,
    pub cuts: Arc<AtomicU64>,
}

impl CuttingRelay {
    /// Relays to the server `options` name.
    pub async fn start(options: &PgConnectOptions) -> Self {
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay addr").port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        tokio::spawn({
            let (armed, cuts) = (armed.clone(), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (upstream, armed, cuts) = (upstream.clone(), armed.clone(), cuts.clone());
                    tokio::spawn(async move {
                        let _ = relay(client, &upstream, armed, cuts).await;
                    });
                }
            }
        });
        Self { port, armed, cuts }
    }

    /// `options` pointed at the relay.
    pub fn options(&self, options: &PgConnectOptions) -> PgConnectOptions {
        options.clone().host("127.0.0.1").port(self.port)
    }

    /// The next claim that returns pairs commits, and its reply is lost.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

async fn relay(
    client: TcpStream,
    upstream: &str,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut from_client, to_client) = client.into_split();
    let (from_server, mut to_server) = server.into_split();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from_client.read(&mut buf).await?;
            if n == 0 {
                return std::io::Result::Ok(());
            }
            to_server.write_all(&buf[..n]).await?;
        }
    });
    // Returns when either side ends, or after the cut: dropping the halves
    // and aborting the other direction closes both connections.
    let _ = downstream(from_server, to_client, &armed, &cuts).await;
    up.abort();
    Ok(())
}

/// Relays the server's messages, whole; while armed, each reply is held
/// until its ReadyForQuery and dropped (the cut) if it carried claim rows.
async fn downstream(
    mut from_server: OwnedReadHalf,
    mut to_client: OwnedWriteHalf,
    armed: &AtomicBool,
    cuts: &AtomicU64,
) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut held: Vec<u8> = Vec::new();
    let mut claim_rows = false;
    let mut buf = vec![0u8; 64 * 1024];
    // The answer to sqlx's SSLRequest is one untyped byte ('N' here).
    let mut first = true;
    loop {
        let n = from_server.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        if first {
            first = false;
            if pending[0] == b'N' || pending[0] == b'S' {
                to_client.write_all(&pending[..1]).await?;
                pending.drain(..1);
            }
        }
        // Whole messages: type byte, then a length that counts itself.
        while pending.len() >= 5 {
            let len = u32::from_be_bytes(pending[1..5].try_into().unwrap()) as usize;
            if pending.len() < 1 + len {
                break;
            }
            let message: Vec<u8> = pending.drain(..1 + len).collect();
            if !armed.load(Ordering::SeqCst) && held.is_empty() {
                to_client.write_all(&message).await?;
                continue;
            }
            if message[0] == b'D' && u16::from_be_bytes([message[5], message[6]]) == CLAIM_COLUMNS {
                claim_rows = true;
            }
            held.extend_from_slice(&message);
            if message[0] == b'Z' {
                if claim_rows && armed.swap(false, Ordering::SeqCst) {
                    // Committed (ReadyForQuery follows the commit); the
                    // client never hears of it.
                    cuts.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                to_client.write_all(&held).await?;
                held.clear();
                claim_rows = false;
            }
        }
    }
}
