//! Loading a configuration as `serve` does, for the commands that must say what
//! `serve` would do (`check`, `policy explain`): the files with the registry of the
//! data directory laid over them, and then everything else the files name — issuer
//! keys, TLS certificates and keys, witness clients, the pseudonym key's variable —
//! with every problem reported at once, by its path in `gateway.yaml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::{self, ActiveConfig, ConfigProblem, LoadOptions, Source};

/// What `serve` loads from the files the configuration names.
pub(super) struct Loaded {
    pub(super) auth: Authenticator,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) witness_clients: Vec<crate::witness::client::WitnessClient>,
}

/// Why a configuration cannot be loaded: its problems, or another error (said as is).
pub(super) enum LoadError {
    Problems(Vec<ConfigProblem>),
    Other(String),
}

/// The `telemetry:` section of the configuration file at `path`, alone; the default
/// (off, unless the environment says otherwise) when the file cannot be read or the
/// section is wrong — the command's own load of the file then says why.
pub(super) fn telemetry(path: &Path) -> crate::telemetry::TelemetrySettings {
    #[derive(serde::Deserialize)]
    struct Section {
        #[serde(default)]
        telemetry: crate::telemetry::TelemetrySettings,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_yaml_ng::from_str::<Section>(&text).ok())
        .map(|section| section.telemetry)
        .filter(|settings| settings.problems().is_empty())
        .unwrap_or_default()
}

/// The configuration at `path` read from `source`, with the registry in `data_dir`
/// (or the file's `data_dir`) laid over it when one exists there. A data directory
/// without a registry is not created: the files alone are what `serve` would start
/// with.
pub(super) async fn with_registry(
    source: &dyn Source,
    path: &Path,
    data_dir: Option<PathBuf>,
) -> Result<ActiveConfig, LoadError> {
    let plain = LoadOptions {
        data_dir: data_dir.clone(),
        ..LoadOptions::default()
    };
    let cfg = config::load(source, path, &plain).map_err(LoadError::Problems)?;
    let storage = crate::store::Storage::configured(&cfg.store, &cfg.data_dir, &cfg.base_dir)
        .map_err(|e| LoadError::Other(format!("the store: {e}")))?;
    match storage.backend() {
        crate::store::Backend::Sqlite { data_dir } => {
            if !data_dir.join(crate::registry::REGISTRY_FILE).is_file() {
                return Ok(cfg);
            }
        }
        crate::store::Backend::Postgres { pg, .. } => {
            // Connects and says where the schema stands, changing nothing.
            let status = crate::pg::migrations::status(pg)
                .await
                .map_err(|e| LoadError::Other(format!("the store: {e}")))?;
            if status.found > status.known {
                return Err(LoadError::Other(format!(
                    "the store: {}",
                    crate::pg::PgError::TooNew {
                        schema: pg.schema().to_owned(),
                        found: status.found,
                        known: status.known,
                    }
                )));
            }
            if status.found < status.known {
                eprintln!(
                    "note: the PostgreSQL schema `{}` is at version {} of {}; `gateway migrate` (or the first replica to start) brings it up to date",
                    pg.schema(),
                    status.found,
                    status.known
                );
                if status.found == 0 {
                    return Ok(cfg);
                }
            }
        }
    }
    let registry = storage
        .registry()
        .map_err(|e| LoadError::Other(e.to_string()))?;
    let snapshot = registry
        .snapshot()
        .await
        .map_err(|e| LoadError::Other(format!("the registry: {e}")))?;
    let options = LoadOptions {
        data_dir: Some(cfg.data_dir.clone()),
        registry: snapshot,
        ..LoadOptions::default()
    };
    config::load(source, path, &options).map_err(LoadError::Problems)
}

/// Everything besides the configuration that `serve` loads before it answers, each
/// problem named by its path in `file` (the gateway configuration).
pub(super) async fn files(cfg: &ActiveConfig, file: &Path) -> Result<Loaded, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut found = |found: Vec<(String, String)>| {
        problems.extend(found.into_iter().map(|(path, message)| ConfigProblem {
            file: file.to_owned(),
            path,
            message,
        }));
    };
    let auth = match Authenticator::new(&cfg.auth, &cfg.base_dir).await {
        Ok(auth) => Some(auth),
        Err(p) => {
            found(p);
            None
        }
    };
    let tls = match &cfg.tls {
        None => Some(None),
        Some(tls) => match tls.load(&cfg.base_dir) {
            Ok(loaded) => Some(Some(loaded)),
            Err(p) => {
                found(p);
                None
            }
        },
    };
    let witness_clients = match crate::witness::clients(&cfg.audit, &cfg.base_dir) {
        Ok(clients) => Some(clients),
        Err(p) => {
            found(p);
            None
        }
    };
    if let Some(var) = &cfg.pseudonym_key_env
        && std::env::var_os(var).is_none()
    {
        found(vec![(
            "pseudonym_key_env".to_owned(),
            format!("the environment variable {var} is not set"),
        )]);
    }
    match (auth, tls, witness_clients) {
        (Some(auth), Some(tls), Some(witness_clients)) if problems.is_empty() => Ok(Loaded {
            auth,
            tls,
            witness_clients,
        }),
        _ => Err(problems),
    }
}
