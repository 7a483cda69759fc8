//! The HTTP kind's part of a connector definition: where the department's system is
//! (`base_url`), how the gateway authenticates it and itself (`tls`), how large an
//! answer may be, how the department wraps its answers (`envelope`), and per operation
//! the request it makes. This module owns those settings and the checks that need
//! nothing but the file itself.

use serde::{Deserialize, Serialize};

use crate::definition::{ClientTlsDef, DefinitionProblem, is_pointer};

/// The connection settings of an HTTP/JSON connector.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Base URL of the department system, e.g. `https://10.1.2.3:8443`.
    pub base_url: String,
    /// Responses larger than this are rejected without being parsed.
    pub max_response_bytes: u64,
    /// Client TLS settings for this department (its own CA, a client certificate);
    /// without them the public web roots are trusted and no certificate is presented.
    pub tls: Option<ClientTlsDef>,
    /// How the department wraps its answers.
    pub envelope: Envelope,
}

/// The default of `max_response_bytes`: 1 MiB.
pub(crate) fn default_max_response_bytes() -> u64 {
    1024 * 1024
}

/// Where a department puts its status code and its data, and which status values mean
/// success or "no such person".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// JSON Pointer to the status value, e.g. `/code`.
    pub status: String,
    /// Status values that mean success (compared as JSON values: `0` ≠ `"0"`).
    pub ok: Vec<serde_json::Value>,
    /// Status values that mean the subject is unknown to the department.
    #[serde(default)]
    pub not_found: Vec<serde_json::Value>,
    /// JSON Pointer to the record inside a successful answer, e.g. `/data`.
    pub data: String,
}

/// The HTTP request an operation makes. The subject always travels in the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    #[serde(default = "default_method")]
    pub method: String,
    /// Path appended to the base URL. It may not contain the subject.
    pub path: String,
    /// JSON body; every string equal to [`SUBJECT_PLACEHOLDER`] is replaced by the
    /// subject key.
    pub body: serde_json::Value,
}

/// The placeholder for the subject key in a request body template.
pub const SUBJECT_PLACEHOLDER: &str = "$subject";

fn default_method() -> String {
    "POST".to_owned()
}

/// The URL an operation calls: the base URL and the operation's path, parsed (so `.`
/// and `..` segments are resolved). This is the URL the department's upstream
/// allow-list is checked against, exactly as it will be called.
pub fn endpoint_url(base_url: &str, path: &str) -> Result<url::Url, String> {
    url::Url::parse(&format!("{}{}", base_url.trim_end_matches('/'), path))
        .map_err(|e| e.to_string())
}

impl HttpSettings {
    /// Every problem of the connection settings, with their paths in the file.
    pub(crate) fn problems(&self) -> Vec<DefinitionProblem> {
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| {
            problems.push(DefinitionProblem {
                path: path.to_owned(),
                message,
            })
        };
        match url::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
                    problem(
                        "base_url",
                        "may not carry a query or credentials; put credentials in the connector's auth settings".into(),
                    );
                }
            }
            _ => problem(
                "base_url",
                "must be an absolute http:// or https:// URL".into(),
            ),
        }
        if let Some(tls) = &self.tls {
            if url::Url::parse(&self.base_url).is_ok_and(|url| url.scheme() == "http") {
                problem("tls", "TLS settings need an https:// base_url".into());
            }
            for (path, file) in [
                ("tls.ca_bundle", &tls.ca_bundle),
                ("tls.client_cert", &tls.client_cert),
                ("tls.client_key", &tls.client_key),
            ] {
                if file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
                    problem(path, "must name a file".into());
                }
            }
            match (&tls.client_cert, &tls.client_key) {
                (Some(_), None) => problem(
                    "tls.client_key",
                    "is needed with tls.client_cert: the certificate's private key".into(),
                ),
                (None, Some(_)) => problem(
                    "tls.client_cert",
                    "is needed with tls.client_key: the certificate the key belongs to".into(),
                ),
                _ => {}
            }
        }
        if self.max_response_bytes < 1024 || self.max_response_bytes > 64 * 1024 * 1024 {
            problem(
                "max_response_bytes",
                "must be between 1024 and 67108864 (64 MiB)".into(),
            );
        }
        for (name, pointer) in [
            ("envelope.status", &self.envelope.status),
            ("envelope.data", &self.envelope.data),
        ] {
            if !is_pointer(pointer) {
                problem(name, "must be a JSON Pointer such as /code".into());
            }
        }
        if self.envelope.ok.is_empty() {
            problem("envelope.ok", "must list at least one success value".into());
        }
        problems
    }
}

impl RequestDef {
    /// Every problem of an operation's request; `at` is the operation's path in the
    /// file (`operations.NAME`).
    pub(crate) fn problems(&self, at: &str) -> Vec<DefinitionProblem> {
        let mut problems = Vec::new();
        let mut problem = |suffix: &str, message: String| {
            problems.push(DefinitionProblem {
                path: format!("{at}.request.{suffix}"),
                message,
            })
        };
        if !matches!(self.method.as_str(), "POST" | "PUT") {
            problem(
                "method",
                "must be POST or PUT: the subject travels in the body, never in a URL".into(),
            );
        }
        if !self.path.starts_with('/')
            || self.path.contains(SUBJECT_PLACEHOLDER)
            || self.path.contains('?')
        {
            problem(
                "path",
                "must start with '/' and carry neither a query nor the subject".into(),
            );
        }
        if !contains_placeholder(&self.body) {
            problem(
                "body",
                format!("must contain the subject placeholder \"{SUBJECT_PLACEHOLDER}\""),
            );
        }
        problems
    }
}

fn contains_placeholder(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s == SUBJECT_PLACEHOLDER,
        serde_json::Value::Array(a) => a.iter().any(contains_placeholder),
        serde_json::Value::Object(o) => o.values().any(contains_placeholder),
        _ => false,
    }
}
