//! Canonical JSON: the exact bytes an event is hashed and stored as. The rules are
//! spelled out in the [module docs of `audit`](super) so that a second party can
//! re-implement them. [`to_canonical`] follows them over any `serde_json::Value`,
//! whatever its map order: it is the reference. An event's body is written straight
//! from the [`AuditEvent`] instead, without building a `Value` on every request: its
//! members are declared in sorted order and serde_json escapes strings exactly as the
//! rules say, which a test holds against the reference.

use std::fmt::Write;

use serde_json::Value;

use super::AuditError;
use super::event::AuditEvent;

/// The canonical body of an event.
pub fn event_body(event: &AuditEvent) -> Result<String, AuditError> {
    serde_json::to_string(event).map_err(|_| AuditError::Encode)
}

/// Writes a JSON value canonically: sorted keys at every depth, no whitespace.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut members: Vec<(&String, &Value)> = members.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
