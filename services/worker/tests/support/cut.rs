//! A TCP relay between workers and Postgres that can lose one reply: once
//! armed, it forwards the next client message carrying COMMIT to the server
//! (which commits) and cuts the connection before the answer gets back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
                        let _ = relay(client, &upstream, &armed, &cuts).await;
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

    /// The next COMMIT commits, and its reply is lost.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

async fn relay(
    client: TcpStream,
    upstream: &str,
    armed: &AtomicBool,
    cuts: &AtomicU64,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let down = tokio::spawn({
        let cut = cut.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = from_server.read(&mut buf).await?;
                // Set before the COMMIT went up: its answer is never relayed.
                if n == 0 || cut.load(Ordering::SeqCst) {
                    return std::io::Result::Ok(());
                }
                to_client.write_all(&buf[..n]).await?;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from_client.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let commit = chunk.windows(6).any(|w| w == b"COMMIT");
        if commit && armed.swap(false, Ordering::SeqCst) {
            cut.store(true, Ordering::SeqCst);
            // Counted now: the downstream half ends as soon as the reply
            // arrives, so the client may see the break (and recover) long
            // before this relay wakes from the sleep below.
            cuts.fetch_add(1, Ordering::SeqCst);
            to_server.write_all(chunk).await?;
            // Let the server commit before it sees the connection end.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            down.abort();
            return Ok(());
        }
        to_server.write_all(chunk).await?;
    }
    down.abort();
    Ok(())
}
