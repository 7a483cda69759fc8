//! Just enough X.509 DER decoding for a certificate's subject (as an RFC 4514 string)
//! and validity: a private reader, not a general ASN.1 parser.

use rustls_pki_types::CertificateDer;

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

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its content and the whole encoding.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Splits the first element off `input`.
fn next<'a>(input: &mut &'a [u8]) -> Option<Tlv<'a>> {
    let data: &'a [u8] = input;
    let (&tag, rest) = data.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in the parts we read
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = data.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        whole: &data[..header + len],
    };
    *input = &rest[len..];
    Some(tlv)
}

fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<&'a [u8]> {
    let data: &'a [u8] = input;
    let mut cursor = data;
    let tlv = next(&mut cursor)?;
    if tlv.tag != tag {
        return None;
    }
    let content = tlv.content;
    *input = cursor;
    Some(content)
}

pub(super) fn parse(cert: &CertificateDer<'_>) -> Option<CertInfo> {
    let mut input: &[u8] = cert.as_ref();
    let mut certificate = expect(&mut input, SEQUENCE)?;
    let mut tbs = expect(&mut certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        expect(&mut tbs, VERSION)?;
    }
    expect(&mut tbs, INTEGER)?; // serial number
    expect(&mut tbs, SEQUENCE)?; // signature algorithm
    expect(&mut tbs, SEQUENCE)?; // issuer
    let mut validity = expect(&mut tbs, SEQUENCE)?;
    let not_before = time(&mut validity)?;
    let not_after = time(&mut validity)?;
    let subject = expect(&mut tbs, SEQUENCE)?;
    Some(CertInfo {
        subject: name(subject)?,
        not_before,
        not_after,
    })
}

fn time(input: &mut &[u8]) -> Option<i64> {
    let tlv = next(input)?;
    let text = std::str::from_utf8(tlv.content).ok()?;
    let text = text.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tlv.tag, text.len()) {
        (UTC_TIME, 12) => {
            let yy: i32 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let part = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(year, part(0)?, part(2)?)?;
    let at = date.and_hms_opt(part(4)?, part(6)?, part(8)?)?;
    Some(at.and_utc().timestamp())
}

pub(super) fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// An RFC 4514 string: RDNs last to first, joined by `,`; multi-valued RDNs by `+`.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let mut set = expect(&mut rdns, SET)?;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let mut attribute = expect(&mut set, SEQUENCE)?;
            let oid = expect(&mut attribute, OID)?;
            let value = next(&mut attribute)?;
            attributes.push(format!(
                "{}={}",
                attribute_type(oid),
                attribute_value(&value)
            ));
        }
        parts.push(attributes.join("+"));
    }
    parts.reverse();
    Some(parts.join(","))
}

fn attribute_type(oid: &[u8]) -> String {
    // 2.5.4.x is encoded as 55 04 x.
    let short = match oid {
        [0x55, 0x04, 3] => "CN",
        [0x55, 0x04, 5] => "serialNumber",
        [0x55, 0x04, 6] => "C",
        [0x55, 0x04, 7] => "L",
        [0x55, 0x04, 8] => "ST",
        [0x55, 0x04, 9] => "STREET",
        [0x55, 0x04, 10] => "O",
        [0x55, 0x04, 11] => "OU",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return dotted(oid),
    };
    short.to_owned()
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn attribute_value(value: &Tlv<'_>) -> String {
    let text = match value.tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => std::str::from_utf8(value.content).ok().map(str::to_owned),
        // TeletexString, read as Latin-1
        0x14 => Some(value.content.iter().map(|&b| char::from(b)).collect()),
        // BMPString (UTF-16BE)
        0x1e => {
            let pairs = value.content.chunks_exact(2);
            if pairs.remainder().is_empty() {
                let units: Vec<u16> = pairs.map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                String::from_utf16(&units).ok()
            } else {
                None
            }
        }
        _ => None,
    };
    match text {
        Some(text) => escape(&text),
        None => format!("#{}", hex::encode(value.whole)),
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
