//! What the gateway reads from an X.509 certificate: its validity and its subject as
//! an RFC 4514 string. Decoding is x509-parser's; this module owns only what that
//! crate lacks, the RFC 4514 form of a name (RDNs last to first, short attribute
//! names, escaping, `#hex` for values that are not strings).

use rustls_pki_types::CertificateDer;
use x509_parser::asn1_rs::{Any, BmpString, Tag, ToDer};
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// What the gateway wants to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CertInfo {
    /// RFC 4514 string of the subject.
    pub(super) subject: String,
    /// Unix seconds.
    pub(super) not_before: i64,
    /// Unix seconds.
    pub(super) not_after: i64,
}

pub(super) fn parse(cert: &CertificateDer<'_>) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let validity = cert.validity();
    Some(CertInfo {
        subject: rfc4514(cert.subject())?,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

pub(super) fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// An RFC 4514 string: RDNs last to first, joined by `,`; multi-valued RDNs by `+`.
/// `None` if the name was read only in part: x509-parser stops at the first RDN it
/// cannot read and keeps those before it, so the encoding it kept falls short of the
/// length its own header declares.
fn rfc4514(name: &X509Name<'_>) -> Option<String> {
    if !Any::from_der(name.as_raw()).is_ok_and(|(rest, _)| rest.is_empty()) {
        return None;
    }
    let mut parts = Vec::new();
    for rdn in name.iter() {
        let attributes: Option<Vec<String>> = rdn.iter().map(attribute).collect();
        parts.push(attributes?.join("+"));
    }
    parts.reverse();
    Some(parts.join(","))
}

fn attribute(attribute: &AttributeTypeAndValue<'_>) -> Option<String> {
    Some(format!(
        "{}={}",
        attribute_type(attribute.attr_type()),
        attribute_value(attribute.attr_value())?
    ))
}

fn attribute_type(oid: &Oid<'_>) -> String {
    let dotted = oid.to_id_string();
    let short = match dotted.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return dotted,
    };
    short.to_owned()
}

/// The value as escaped text, or `#` and the hex of its DER encoding if it is not a
/// string; `None` if it cannot be encoded again.
fn attribute_value(value: &Any<'_>) -> Option<String> {
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(value.data).ok().map(str::to_owned)
        }
        // TeletexString, read as Latin-1
        Tag::TeletexString => Some(value.data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => BmpString::try_from(value).ok().map(|s| s.string()),
        _ => None,
    };
    match text {
        Some(text) => Some(escape(&text)),
        None => value
            .to_der_vec()
            .ok()
            .map(|der| format!("#{}", hex::encode(der))),
    }
}

/// RFC 4514 §2.4 escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 4514 form of a name given as its RDNs' encoding (the content of the
    /// name's SEQUENCE).
    fn name(rdns: &[u8]) -> Option<String> {
        let mut der = vec![0x30, u8::try_from(rdns.len()).unwrap()];
        der.extend_from_slice(rdns);
        let (_, name) = X509Name::from_der(&der).ok()?;
        rfc4514(&name)
    }

    /// The name of an attribute type given as its OID's encoding.
    fn dotted(oid: &[u8]) -> String {
        attribute_type(&Oid::new(oid.into()))
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(escape(" a,b+c "), "\\ a\\,b\\+c\\ ");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("乡镇"), "乡镇");
    }

    #[test]
    fn unknown_attribute_types_are_dotted() {
        // 1.2.840.113549.1.9.1 (emailAddress)
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
    }

    #[test]
    fn names_read_last_rdn_first_with_multi_valued_rdns_and_bmp_strings() {
        let name_der = [
            // SET { C = PrintableString "CN" }
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'C', b'N',
            // SET { CN = BMPString "ab", O = PrintableString "X" }
            0x31, 0x17, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00, b'a', 0x00,
            b'b', 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x13, 0x01, b'X',
        ];
        assert_eq!(name(&name_der).as_deref(), Some("CN=ab+O=X,C=CN"));
        // An INTEGER value is shown as #hex of its encoding.
        let odd = [
            0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x02, 0x01, 0x07,
        ];
        assert_eq!(name(&odd).as_deref(), Some("CN=#020107"));
        assert_eq!(name(&[0x31, 0x05, 0x30]), None);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(parse(&CertificateDer::from(vec![0x30, 0x05, 1, 2])), None);
        assert_eq!(parse(&CertificateDer::from(Vec::new())), None);
    }
}
