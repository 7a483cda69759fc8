//! Name resolution for connectors. An operator lists each department's upstreams by
//! name or address; a *name* must not lead anywhere the operator did not mean, so the
//! addresses a name resolves to are filtered: loopback, link-local (which holds cloud
//! metadata services, 169.254.169.254), unspecified, multicast and broadcast addresses,
//! and Alibaba Cloud's metadata address 100.100.100.200, are dropped — unless the name
//! is `localhost` itself, which an operator lists only on purpose. A name left with no
//! address fails like an unreachable system. Address literals in URLs are not resolved
//! and reach exactly what they say (the upstream allow-list has checked them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::dns::Name;

/// Whether a resolved address may be called for a name other than `localhost`.
pub fn callable(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4 == Ipv4Addr::new(100, 100, 100, 200))
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

/// Why a name could not be resolved to an address a connector may call.
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// The system resolver, with [`callable`] applied: the resolver of the HTTP
/// connector's client (a `tower` service from a host name to its addresses).
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamResolver;

impl tower_service::Service<Name> for UpstreamResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = BoxFuture<'static, Result<Self::Response, ResolveError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let local = host.eq_ignore_ascii_case("localhost");
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| local || callable(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err("the name resolves to no address a connector may call".into());
            }
            Ok(found.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_metadata_addresses_are_not_callable_through_a_name() {
        for ip in [
            "127.0.0.1",
            "127.0.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!callable(ip.parse().expect("an address")), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "192.168.1.10",
            "172.16.0.5",
            "203.0.113.7",
            "2001:db8::1",
        ] {
            assert!(callable(ip.parse().expect("an address")), "{ip}");
        }
    }
}
