//! A test PKI: a [`Ca`] that signs [`Leaf`] certificates for servers and clients, and
//! [`rustls_client_config`], a client that trusts such a CA and may present a leaf of
//! its own (mTLS). Everything uses the aws-lc-rs crypto provider.
//!
//! ```
//! use testkit::pki::{Ca, Usage, rustls_client_config};
//!
//! let server_ca = Ca::new("County Server CA");
//! let clients_ca = Ca::new("Townships CA");
//! let server = server_ca.leaf(&["localhost"], "gateway.test", Usage::Server);
//! let app = clients_ca.leaf(&[], "township-app", Usage::Client);
//! let config = rustls_client_config(&server_ca, Some(&app), &["h2", "http/1.1"]);
//! # let _ = (server, config);
//! ```

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use rcgen::DnType;

/// What a leaf certificate is for: its extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication (mTLS).
    Client,
}

/// A self-signed CA with a fresh key, able to sign leaf certificates.
#[derive(Debug)]
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    /// A new CA whose subject is `CN=<common_name>`.
    pub fn new(common_name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate as PEM, e.g. to write as a trust bundle.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate as DER, e.g. for a [`RootCertStore`].
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap()
    }

    /// A leaf for `names` (DNS names or IP addresses) with subject `CN=<common_name>`,
    /// valid from now for rcgen's default period.
    pub fn leaf(&self, names: &[&str], common_name: &str, usage: Usage) -> Leaf {
        self.leaf_builder(names, usage)
            .subject(&[(DnType::CommonName, common_name)])
            .sign()
    }

    /// A leaf to be customised (subject entries, validity dates) before [`LeafBuilder::sign`].
    pub fn leaf_builder(&self, names: &[&str], usage: Usage) -> LeafBuilder<'_> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        LeafBuilder { ca: self, params }
    }
}

/// A leaf certificate being prepared; [`LeafBuilder::sign`] has the CA sign it.
#[derive(Debug)]
pub struct LeafBuilder<'ca> {
    ca: &'ca Ca,
    params: CertificateParams,
}

impl LeafBuilder<'_> {
    /// The subject, entries in the order given (RFC 4514 strings list them last first).
    pub fn subject(mut self, entries: &[(DnType, &str)]) -> Self {
        self.params.distinguished_name = DistinguishedName::new();
        for (ty, value) in entries {
            self.params.distinguished_name.push(ty.clone(), *value);
        }
        self
    }

    /// Valid from midnight UTC of the first date to midnight UTC of the second,
    /// each given as (year, month, day).
    pub fn valid_between(mut self, from: (i32, u8, u8), until: (i32, u8, u8)) -> Self {
        self.params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        self.params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        self
    }

    /// The certificate, signed by the CA, with its fresh key.
    pub fn sign(self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = self.params.signed_by(&key, &self.ca.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A signed leaf certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8).
    pub key_pem: String,
}

impl Leaf {
    /// The certificate chain as DER (just the leaf).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    /// The private key as DER.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

/// A rustls client (aws-lc-rs) that trusts only `ca`, presents `identity` if given,
/// and offers `alpn` (none if empty).
pub fn rustls_client_config(ca: &Ca, identity: Option<&Leaf>, alpn: &[&str]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain(), leaf.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_config_trusts_the_ca_and_presents_the_identity() {
        let ca = Ca::new("Test CA");
        let leaf = ca.leaf(&[], "app", Usage::Client);
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(leaf.chain().len(), 1);
        let config = rustls_client_config(&ca, Some(&leaf), &["h2"]);
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
        let config = rustls_client_config(&ca, None, &[]);
        assert!(!config.client_auth_cert_resolver.has_certs());
    }
}
