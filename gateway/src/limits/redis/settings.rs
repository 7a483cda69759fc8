//! `rate_limits.redis:` in `gateway.yaml`: where the shared Redis is, how long the
//! gateway waits for it, and what a replica does when it cannot reach it.
//!
//! ```yaml
//! rate_limits:
//!   backend: redis
//!   redis:
//!     url_env: GATEWAY_REDIS_URL   # or `url:` (no password in it, please) or `url_file:`
//!     timeout_ms: 100              # a request's limits, one round trip
//!     connect_timeout_ms: 1000
//!     fallback: local              # or `closed`
//!     replicas: 3                  # for `local`: each replica enforces limit ÷ 3
//!     key_prefix: gw
//!     probe_interval_ms: 1000      # how often a replica in fallback asks Redis again
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::secrets::ServerUrl;

/// What a replica does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Each replica enforces its share of every limit in its own memory: the rate (and
    /// burst, and daily quota) divided by `replicas`, at least 1. Never unlimited.
    #[default]
    Local,
    /// Every request the limits would count is refused (503 `rate-limit-unavailable`).
    Closed,
}

impl Fallback {
    /// `local` or `closed`, as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Local => "local",
            Fallback::Closed => "closed",
        }
    }
}

/// `rate_limits.redis:` (see the module docs). The address is a [`ServerUrl`] (`url`,
/// `url_env` or `url_file`, exactly one) and is never printed whole: `Debug` shows it
/// redacted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RedisSettings {
    /// Where the address comes from.
    #[serde(flatten)]
    pub server: ServerUrl,
    /// How long one request's limits (one round trip) may take before the replica
    /// falls back. Default 100 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long connecting may take. Default 1000 ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// What a replica does while Redis cannot be reached. Default `local`.
    #[serde(default)]
    pub fallback: Fallback,
    /// How many replicas share the limits: under the `local` fallback each enforces
    /// `limit ÷ replicas`. Default 1.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// What every key starts with, so that several gateways (or tests) can share one
    /// Redis. Default `gw`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How often a replica in fallback asks Redis whether it is back. Default 1000 ms.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Settings this version does not know (a typo), named by `problems`. (`flatten`
    /// cannot be combined with `deny_unknown_fields`.)
    #[serde(flatten)]
    unknown: BTreeMap<String, IgnoredAny>,
}

fn default_timeout_ms() -> u64 {
    100
}

fn default_connect_timeout_ms() -> u64 {
    1_000
}

fn default_replicas() -> u32 {
    1
}

fn default_key_prefix() -> String {
    "gw".to_owned()
}

fn default_probe_interval_ms() -> u64 {
    1_000
}

/// The longest key prefix accepted.
const MAX_PREFIX_CHARS: usize = 64;

impl RedisSettings {
    /// Settings for `server` with every default (tests, the command line).
    pub fn new(server: ServerUrl) -> RedisSettings {
        RedisSettings {
            server,
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            fallback: Fallback::default(),
            replicas: default_replicas(),
            key_prefix: default_key_prefix(),
            probe_interval_ms: default_probe_interval_ms(),
            unknown: BTreeMap::new(),
        }
    }

    /// Problems with the settings' form (not whether the server answers), as (path
    /// inside `redis`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(problem) = self.server.problem() {
            problems.push(("url".to_owned(), problem.to_owned()));
        }
        if let Some(url) = &self.server.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            problems.push((
                "url".to_owned(),
                "must start with `redis://` (or `rediss://` for TLS)".to_owned(),
            ));
        }
        if !(1..=10_000).contains(&self.timeout_ms) {
            problems.push((
                "timeout_ms".to_owned(),
                "must be 1 to 10000 ms (every request waits this long for Redis at most)"
                    .to_owned(),
            ));
        }
        if !(10..=60_000).contains(&self.connect_timeout_ms) {
            problems.push((
                "connect_timeout_ms".to_owned(),
                "must be 10 to 60000 ms".to_owned(),
            ));
        }
        if !(1..=1_000).contains(&self.replicas) {
            problems.push((
                "replicas".to_owned(),
                "must be 1 to 1000: how many replicas share the limits".to_owned(),
            ));
        }
        if self.key_prefix.is_empty()
            || self.key_prefix.chars().count() > MAX_PREFIX_CHARS
            || !self
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            problems.push((
                "key_prefix".to_owned(),
                format!(
                    "must be 1 to {MAX_PREFIX_CHARS} characters of A-Z, a-z, 0-9, `_`, `-`, `.` and `:`"
                ),
            ));
        }
        if !(10..=60_000).contains(&self.probe_interval_ms) {
            problems.push((
                "probe_interval_ms".to_owned(),
                "must be 10 to 60000 ms".to_owned(),
            ));
        }
        for name in self.unknown.keys() {
            problems.push((
                name.clone(),
                "is not a setting of `rate_limits.redis` (url, url_env, url_file, timeout_ms, \
                 connect_timeout_ms, fallback, replicas, key_prefix, probe_interval_ms)"
                    .to_owned(),
            ));
        }
        problems
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.clamp(1, 10_000))
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.clamp(10, 60_000))
    }

    pub(super) fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms.clamp(10, 60_000))
    }

    pub(super) fn replicas(&self) -> u32 {
        self.replicas.max(1)
    }
}
