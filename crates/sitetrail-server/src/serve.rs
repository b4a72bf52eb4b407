//! How connections are served: at most [`Serving::max_connections`] at once, each through
//! hyper's HTTP/1 with a bound on how long a request's head and its body may take and on how
//! long a write may make no progress, so that silent, idle or stalled clients cannot hold the
//! server's sockets. Past the cap, new connections are not accepted: they wait in the listen queue
//! until one closes, and the process never holds more sockets than the cap.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tower::Layer;
use tower_http::timeout::RequestBodyDeadlineLayer;

/// The bounds every connection is served within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// Connections open at once; past it, new ones wait in the listen queue until one closes.
    pub max_connections: usize,
    /// How long a request's head may take to arrive, on a new connection and on a kept-alive
    /// one waiting for its next request (the idle timeout).
    pub header_timeout: Duration,
    /// How long a request's whole body may take to arrive once its head has.
    pub body_timeout: Duration,
    /// How long a write may make no progress (a client that stopped reading) before the
    /// connection is closed.
    pub write_timeout: Duration,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            max_connections: 1000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// After the stop signal, how long open requests may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` completes, then lets open requests finish for
/// up to [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    serving: Serving,
    stop: impl Future<Output = ()>,
) {
    let free = Arc::new(Semaphore::new(serving.max_connections.max(1)));
    let open = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(serving.header_timeout);
    // A body that stops coming fails the request that waits for it (and its connection).
    let service = RequestBodyDeadlineLayer::new(serving.body_timeout).layer(router);
    tokio::pin!(stop);
    loop {
        let room = tokio::select! {
            room = free.clone().acquire_owned() => room.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!(error = %e, "TCP_NODELAY could not be set");
        }
        // A write that makes no progress (a client that stopped reading) for the write
        // timeout fails, and the connection with it.
        let mut tcp = TimeoutStream::new(tcp);
        tcp.set_write_timeout(Some(serving.write_timeout));
        let io = TokioIo::new(Box::pin(tcp));
        let conn = http.serve_connection(io, TowerToHyperService::new(service.clone()));
        let conn = open.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
            drop(room);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, open.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still busy {} s after the stop signal were dropped",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// A failed accept: one connection's trouble is skipped; anything else (out of file
/// descriptors) is logged and waited out a moment rather than retried in a busy loop.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
