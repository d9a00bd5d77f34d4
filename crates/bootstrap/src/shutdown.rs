//! SIGTERM (docker stop) and SIGINT (Ctrl-C) as a future or a token.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A future that resolves on the first SIGTERM or SIGINT. The handlers are
/// installed when this is called, not when the future is first polled, so a
/// signal that arrives while the service is still starting is not lost (and
/// does not kill the process with the default action). Call it first thing.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let (mut terminate, mut interrupt) = match (terminate, interrupt) {
            (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
            // No signal handling (never seen on Linux): run until killed.
            _ => return std::future::pending().await,
        };
        tokio::select! {
            _ = terminate.recv() => tracing::info!("Received SIGTERM, shutting down"),
            _ = interrupt.recv() => tracing::info!("Received SIGINT, shutting down"),
        }
    }
}

/// A token cancelled on the first SIGTERM or SIGINT, for loops that `select!`.
/// Like `shutdown_signal`, the handlers are in place when this returns.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    let signal = shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        trigger.cancel();
    });
    token
}
