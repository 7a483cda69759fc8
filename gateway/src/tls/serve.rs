//! The TLS accept loop behind [`serve_tls`]: one task per connection, each with a
//! time-limited TLS handshake and HTTP/1.1 or HTTP/2 by ALPN; on shutdown, no new
//! connections, a bounded grace period for in-flight requests, then the rest closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::{ClientCert, alpn_protocols};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish once shutdown begins.
const GRACE_PERIOD: Duration = Duration::from_secs(10);
/// How long an HTTP/1.1 client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` over TLS on `listener` until `shutdown` completes; then stops
/// accepting, lets in-flight requests finish for up to 10 s and closes what remains.
///
/// Each connection negotiates HTTP/2 or HTTP/1.1 by ALPN (`h2`, `http/1.1` are offered
/// if `config` names none). A handshake must finish within 10 s; a failed handshake
/// is logged at debug and never stops the server. Each request carries
/// `ConnectInfo<SocketAddr>` and, on mTLS connections, the [`ClientCert`].
pub async fn serve_tls(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = if config.alpn_protocols.is_empty() {
        let mut config = (*config).clone();
        config.alpn_protocols = alpn_protocols();
        Arc::new(config)
    } else {
        config
    };
    let acceptor = TlsAcceptor::from(config);
    let (closing_tx, closing_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(
                        acceptor.clone(),
                        tcp,
                        peer,
                        router.clone(),
                        closing_rx.clone(),
                    ));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "a connection failed before it was accepted");
                }
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting connections failed; retrying in 1 s");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    let open = connections.len();
    tracing::info!(
        connections = open,
        "shutting down: no new connections; finishing in-flight requests"
    );
    // Every connection sees the change and shuts down gracefully.
    let _ = closing_tx.send(());
    let drained = tokio::time::timeout(GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "grace period over; closing the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    mut closing: watch::Receiver<()>,
) {
    let _ = tcp.set_nodelay(true);
    let stream = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = closing.changed() => return,
    };
    let client_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(ClientCert::from_der);
    let service = router.map_request(move |mut request: http::Request<Incoming>| {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(peer));
        if let Some(cert) = &client_cert {
            extensions.insert(cert.clone());
        }
        request
    });

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = closing.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
