//! The `audit:` section of `gateway.yaml`: the checkpoint cadence the writer keeps
//! and `verify` holds the log to, the pinned public key of the checkpoint key, and
//! the witnesses checkpoints are sent to.
//!
//! ```yaml
//! audit:
//!   checkpoint_every_events: 1000   # default
//!   checkpoint_every_s: 10          # default
//!   checkpoint_public_key: "base64 of the 32-byte Ed25519 public key"   # `gateway audit public-key`
//!   witnesses:
//!     - name: city-data-bureau
//!       url: https://witness.city.example:8443
//!       tls: { ca_bundle: certs/witness-ca.pem, client_cert: certs/gateway-client.pem, client_key: certs/gateway-client.key }
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use connectors::definition::ClientTlsDef;
use serde::Deserialize;

use super::cadence::{Cadence, DEFAULT_EVERY, DEFAULT_EVERY_EVENTS};
use super::checkpoint::parse_public_key;
use super::sqlite::AuditOptions;
use super::verify::Expectations;

/// The largest `checkpoint_every_events` accepted.
const MAX_EVERY_EVENTS: u64 = 1_000_000;
/// The longest `checkpoint_every_s` accepted (an hour).
const MAX_EVERY_S: u64 = 3600;

/// The `audit:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// A checkpoint every this many events (1 to 1,000,000).
    pub checkpoint_every_events: u64,
    /// A checkpoint at most this many seconds after the first unsigned event (1 to
    /// 3600).
    pub checkpoint_every_s: u64,
    /// The checkpoint key's public half, pinned: standard base64 of 32 bytes, as
    /// `gateway audit public-key` prints it. Without it, the key found in the data
    /// directory is trusted, which proves nothing to someone who holds that directory.
    pub checkpoint_public_key: Option<String>,
    /// Where checkpoints are sent as they are made.
    pub witnesses: Vec<WitnessTarget>,
    /// Which embedded store a new data directory's log is made in (with
    /// `store.kind: sqlite`); a data directory that has a log keeps its store.
    pub embedded: EmbeddedAudit,
}

/// The embedded audit log's two stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddedAudit {
    /// The chain in append-only segment files, `audit.db` its index
    /// ([`SegmentAudit`](super::SegmentAudit)).
    #[default]
    Segments,
    /// The chain in `audit.db` itself ([`SqliteAudit`](super::SqliteAudit)).
    Sqlite,
}

impl Default for AuditSettings {
    fn default() -> AuditSettings {
        AuditSettings {
            checkpoint_every_events: DEFAULT_EVERY_EVENTS,
            checkpoint_every_s: DEFAULT_EVERY.as_secs(),
            checkpoint_public_key: None,
            witnesses: Vec::new(),
            embedded: EmbeddedAudit::default(),
        }
    }
}

/// One witness: another county's gateway, the city data bureau.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessTarget {
    /// A short name for logs and metrics (`a-z`, `0-9`, `-`, `_`).
    pub name: String,
    /// The witness's base URL (`https://host:port`).
    pub url: String,
    /// The witness's CA and the gateway's client certificate (mTLS), relative to
    /// the gateway file.
    pub tls: ClientTlsDef,
}

impl AuditSettings {
    /// Every problem, as (path inside the section, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(1..=MAX_EVERY_EVENTS).contains(&self.checkpoint_every_events) {
            problems.push((
                "checkpoint_every_events".into(),
                format!("must be between 1 and {MAX_EVERY_EVENTS}"),
            ));
        }
        if !(1..=MAX_EVERY_S).contains(&self.checkpoint_every_s) {
            problems.push((
                "checkpoint_every_s".into(),
                format!("must be between 1 and {MAX_EVERY_S} seconds"),
            ));
        }
        if let Some(key) = &self.checkpoint_public_key
            && let Err(problem) = parse_public_key(key)
        {
            problems.push((
                "checkpoint_public_key".into(),
                format!(
                    "{problem}; pin what `gateway audit public-key --data-dir DATA_DIR` prints"
                ),
            ));
        }
        let mut names = BTreeSet::new();
        for (i, witness) in self.witnesses.iter().enumerate() {
            let at = |field: &str| format!("witnesses[{i}].{field}");
            let name_ok = !witness.name.is_empty()
                && witness.name.len() <= 64
                && witness.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                problems.push((
                    at("name"),
                    "must be 1 to 64 of a-z, 0-9, `-` and `_`".into(),
                ));
            } else if !names.insert(witness.name.as_str()) {
                problems.push((at("name"), "a second witness with this name".into()));
            }
            if let Err(problem) = witness_url(&witness.url) {
                problems.push((at("url"), problem));
            }
            if witness.tls.client_cert.is_none() || witness.tls.client_key.is_none() {
                problems.push((
                    at("tls"),
                    "needs client_cert and client_key: witnesses accept only clients with a \
                     certificate they know"
                        .into(),
                ));
            }
        }
        problems
    }

    /// The cadence the writer keeps.
    pub fn cadence(&self) -> Cadence {
        Cadence {
            every_events: self.checkpoint_every_events,
            every: Duration::from_secs(self.checkpoint_every_s),
        }
    }

    /// The pinned key, raw (`None` when none is pinned or it does not read, which
    /// [`AuditSettings::validate`] reports).
    pub fn pinned_key(&self) -> Option<Vec<u8>> {
        self.checkpoint_public_key
            .as_deref()
            .and_then(|key| parse_public_key(key).ok())
    }

    /// The writer's options.
    pub fn options(&self) -> AuditOptions {
        let cadence = self.cadence();
        AuditOptions {
            checkpoint_every_events: cadence.every_events,
            checkpoint_every: cadence.every,
            pinned_key: self.pinned_key(),
            embedded: self.embedded,
            ..AuditOptions::default()
        }
    }

    /// What `verify` holds the log to (witnesses are added by the caller).
    pub fn expectations(&self) -> Expectations {
        Expectations {
            cadence: self.cadence(),
            pinned_key: self.pinned_key(),
            witnessed: Vec::new(),
        }
    }
}

/// A witness's base URL: `https`, a host, no credentials, query or fragment.
pub fn witness_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL".to_owned())?;
    if parsed.scheme() != "https" {
        return Err("must be an https:// URL (witnesses are reached over mTLS)".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not carry a query or a fragment".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(name: &str, url: &str, identity: bool) -> WitnessTarget {
        WitnessTarget {
            name: name.into(),
            url: url.into(),
            tls: ClientTlsDef {
                ca_bundle: Some("ca.pem".into()),
                client_cert: identity.then(|| "client.pem".into()),
                client_key: identity.then(|| "client.key".into()),
            },
        }
    }

    #[test]
    fn the_defaults_and_every_problem_at_once() {
        let settings: AuditSettings = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(settings, AuditSettings::default());
        assert!(settings.validate().is_empty());
        assert_eq!(settings.cadence(), Cadence::default());
        assert_eq!(settings.options().pinned_key, None);
        assert_eq!(settings.options().embedded, EmbeddedAudit::Segments);
        let sqlite: AuditSettings = serde_yaml_ng::from_str("embedded: sqlite").unwrap();
        assert_eq!(sqlite.options().embedded, EmbeddedAudit::Sqlite);

        let bad = AuditSettings {
            checkpoint_every_events: 0,
            checkpoint_every_s: 7200,
            checkpoint_public_key: Some("AAAA".into()),
            witnesses: vec![
                witness("city", "http://witness.example", true),
                witness("city", "https://user:pw@witness.example", false),
                witness("Bad Name", "https://witness.example/?x=1", true),
            ],
            embedded: EmbeddedAudit::Sqlite,
        };
        let at: Vec<String> = bad.validate().into_iter().map(|(at, _)| at).collect();
        assert_eq!(
            at,
            [
                "checkpoint_every_events",
                "checkpoint_every_s",
                "checkpoint_public_key",
                "witnesses[0].url",
                "witnesses[1].name",
                "witnesses[1].url",
                "witnesses[1].tls",
                "witnesses[2].name",
                "witnesses[2].url",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed = serde_yaml_ng::from_str::<AuditSettings>("checkpoint_every: 5");
        assert!(parsed.is_err());
    }
}
