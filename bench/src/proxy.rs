//! `gateway-bench proxy`: a bare reverse proxy, axum in front and an HTTP client behind,
//! and nothing between them — no token, policy, schema, mask, rate limit or audit.
//!
//! `bench/run` puts two of them in front of the department scenario 2 (nginx) proxies
//! to, and measures them with the same wrk settings: what the gateway's transport alone
//! costs on this machine, so that a run shows how much of the gap to nginx is the
//! transport and how much the pipeline. `--client` chooses what forwards:
//!
//! - `reqwest`: one pooled [`reqwest::Client`], built as the gateway's connectors build
//!   theirs (keep-alive pool, `TCP_NODELAY`, no redirects, connect and total timeouts);
//! - `hyper`: hyper-util's legacy client (HTTP/1 over [`HttpConnector`], pooled), the
//!   layer reqwest itself is built on, with the same pool and timeouts.
//!
//! Every request is forwarded as it came (method, path and query, its end-to-end
//! headers, its body, read whole first as nginx does by default) to `--upstream`, and
//! the department's answer goes back as it is, its body streamed. When the department
//! cannot be reached or does not answer in time the caller gets `502` with a fixed
//! message; nothing of the error is echoed. On stderr, one line once it listens; it
//! runs until it is stopped (`bench/run` polls it through to the department to know it
//! is ready, as it does nginx).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clap::{Args, ValueEnum};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// The HTTP client that forwards.
    #[arg(long, value_enum)]
    client: ClientKind,
    /// The address to listen on, e.g. `127.0.0.1:8081`.
    #[arg(long)]
    listen: SocketAddr,
    /// The department's base URL (`http://host:port`, no path): a request for `/p?q`
    /// goes to `UPSTREAM/p?q`.
    #[arg(long)]
    upstream: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    /// One pooled `reqwest::Client`, as the gateway's connectors use.
    Reqwest,
    /// hyper-util's legacy client, HTTP/1, pooled.
    Hyper,
}

impl ClientKind {
    fn name(self) -> &'static str {
        match self {
            ClientKind::Reqwest => "reqwest",
            ClientKind::Hyper => "hyper",
        }
    }
}

/// Idle connections kept per department, as the gateway's connectors keep them.
const POOL_IDLE_PER_HOST: usize = 256;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the department has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body forwarded (the bench's requests are well under 1 KiB).
const BODY_LIMIT: usize = 1 << 20;

/// What the caller gets when the department cannot be reached or does not answer.
const BAD_GATEWAY: &str = "bad gateway: the upstream did not answer\n";

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), and
/// `host`, which the client sets from the upstream's address.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[expect(
    clippy::large_enum_variant,
    reason = "one value for the life of the process, behind an Arc"
)]
enum Forwarder {
    Reqwest(reqwest::Client),
    Hyper(HyperClient<HttpConnector, Full<Bytes>>),
}

struct Proxy {
    /// `--upstream` without a trailing `/`.
    base: String,
    forwarder: Forwarder,
}

pub(crate) async fn proxy(args: ProxyArgs) -> Result<(), String> {
    let base = args.upstream.trim_end_matches('/').to_owned();
    let upstream: Uri = base
        .parse()
        .map_err(|e| format!("--upstream {}: {e}", args.upstream))?;
    if upstream.scheme_str() != Some("http")
        || upstream.authority().is_none()
        || !matches!(upstream.path(), "" | "/")
        || upstream.query().is_some()
    {
        return Err(format!(
            "--upstream {}: expected http://host:port, without a path",
            args.upstream
        ));
    }
    let forwarder = match args.client {
        ClientKind::Reqwest => Forwarder::Reqwest(
            reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(TIMEOUT)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("cannot build the reqwest client: {e}"))?,
        ),
        ClientKind::Hyper => {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
            Forwarder::Hyper(
                HyperClient::builder(TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                    .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
                    .build(connector),
            )
        }
    };
    let state = Arc::new(Proxy { base, forwarder });
    let app = Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "gateway-bench proxy ({}): listening on {}, forwarding to {}",
        args.client.name(),
        args.listen,
        args.upstream
    );
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}

/// Forwards one request and returns the department's answer, or 502.
async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            )
                .into_response();
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", proxy.base);
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);

    let answer = match &proxy.forwarder {
        Forwarder::Reqwest(client) => {
            match client
                .request(parts.method, url)
                .headers(headers)
                .body(body)
                .send()
                .await
            {
                Ok(answer) => {
                    let (parts, body) = axum::http::Response::from(answer).into_parts();
                    Response::from_parts(parts, Body::new(body))
                }
                Err(_) => return bad_gateway(),
            }
        }
        Forwarder::Hyper(client) => {
            let Ok(uri) = url.parse::<Uri>() else {
                return bad_gateway();
            };
            let mut outgoing = axum::http::Request::new(Full::new(body));
            *outgoing.method_mut() = parts.method;
            *outgoing.uri_mut() = uri;
            *outgoing.headers_mut() = headers;
            match tokio::time::timeout(TIMEOUT, client.request(outgoing)).await {
                Ok(Ok(answer)) => {
                    let (parts, body) = answer.into_parts();
                    Response::from_parts(parts, Body::new(body))
                }
                Ok(Err(_)) | Err(_) => return bad_gateway(),
            }
        }
    };
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body)
}

fn bad_gateway() -> Response {
    (StatusCode::BAD_GATEWAY, BAD_GATEWAY).into_response()
}

/// Removes the hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type"]);
    }
}
