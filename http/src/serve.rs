//! The accept loop. `axum::serve` sets no timer, so hyper's header read timeout never fires
//! there: a client that sends its request head slowly (slowloris) or connects and says nothing
//! keeps a connection open forever. Here each connection is served by hyper's HTTP/1 server
//! with a timer, a head-read deadline that also covers idle keep-alive connections, a bounded
//! read buffer, and a cap on connections served at once.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// A request head (request line and headers) must arrive within this time after the
/// connection opens or the previous response ends; otherwise the connection is closed.
/// Installers send theirs at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are accepted and closed straight away (the cap frees up
/// as slow ones are cut off), so a flood cannot exhaust the process's file descriptors.
pub const MAX_CONNECTIONS: usize = 64;
/// Read buffer per connection, which bounds a request head (hyper answers 431 beyond it).
const MAX_BUF: usize = 64 << 10;
/// After a stop request, how long in-flight responses may take.
const DRAIN: Duration = Duration::from_secs(5);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    mut stop: oneshot::Receiver<()>,
    addr: SocketAddr,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        while conns.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(target: "osimager_http", "HTTP server on {addr}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if conns.len() >= MAX_CONNECTIONS {
            tracing::warn!(
                target: "osimager_http",
                "HTTP server on {addr}: {MAX_CONNECTIONS} connections open; closing a new one"
            );
            drop(stream);
            continue;
        }
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut closing = closing_rx.clone();
        conns.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(target: "osimager_http", "connection: {e}");
                    }
                    return;
                }
                _ = closing.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        // A client holding its connection open: stop waiting for it.
        conns.abort_all();
    }
}
