//! Secrets the gateway keeps in its data directory or takes from the environment: the
//! pseudonym key, the demo's token-issuer key pair, and the addresses of shared servers
//! (PostgreSQL, Redis), which may carry a password ([`ServerUrl`]). Files are created
//! with mode 0600 and never printed; an existing file is reused, so pseudonyms stay
//! stable across restarts. A server address is shown only as [`redact_url`] gives it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::mask::PseudonymKey;

/// The pseudonym key file's name in the data directory.
pub const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a new secret file readable by the owner only; refuses to overwrite.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    if let Some(dir) = path.parent() {
        crate::datadir::create_dir(dir).map_err(io(dir))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    if let Some(dir) = path.parent() {
        crate::datadir::sync_dir(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// The pseudonym key: from the environment variable if the config names one (every
/// replica must share it), else from the data directory, created on first start.
pub fn pseudonym_key(env: Option<&str>, data_dir: &Path) -> Result<PseudonymKey, SecretError> {
    let secret = match env {
        Some(var) => std::env::var(var)
            .map_err(|_| SecretError::MissingEnv(var.to_owned()))?
            .into_bytes(),
        None => {
            let path = data_dir.join(PSEUDONYM_KEY_FILE);
            if !path.exists() {
                let fresh: [u8; 32] = rand::random();
                write_private(&path, hex::encode(fresh).as_bytes())?;
            }
            std::fs::read(&path).map_err(io(&path))?
        }
    };
    PseudonymKey::new(&secret).map_err(|e| SecretError::Invalid(e.to_string()))
}

/// Where a shared server's address comes from, in `gateway.yaml`: written in the file
/// (`url`, fine when it holds no password), or read at start from an environment
/// variable (`url_env`) or a file (`url_file`, relative to `gateway.yaml` unless
/// absolute; one line). Exactly one of the three. The address is never printed whole:
/// `Debug` and every message show it through [`redact_url`].
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ServerUrl {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
}

impl std::fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerUrl")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .finish()
    }
}

impl ServerUrl {
    /// An address written in place (tests, the command line).
    pub fn literal(url: impl Into<String>) -> ServerUrl {
        ServerUrl {
            url: Some(url.into()),
            ..ServerUrl::default()
        }
    }

    /// What is wrong with the setting's form (not whether the server answers).
    pub fn problem(&self) -> Option<&'static str> {
        let given = [
            self.url.is_some(),
            self.url_env.is_some(),
            self.url_file.is_some(),
        ]
        .into_iter()
        .filter(|given| *given)
        .count();
        match given {
            0 => Some("give the server's address: one of `url`, `url_env` or `url_file`"),
            1 => None,
            _ => Some("give only one of `url`, `url_env` and `url_file`"),
        }
    }

    /// Makes a relative `url_file` relative to `base` (the folder of `gateway.yaml`).
    pub fn relative_to(mut self, base: &Path) -> ServerUrl {
        if let Some(file) = self.url_file.take() {
            self.url_file = Some(base.join(file));
        }
        self
    }

    /// The address itself. Errors name the variable or file, never its contents.
    pub fn resolve(&self) -> Result<String, SecretError> {
        if let Some(problem) = self.problem() {
            return Err(SecretError::Invalid(problem.to_owned()));
        }
        let url = if let Some(url) = &self.url {
            url.clone()
        } else if let Some(var) = &self.url_env {
            std::env::var(var).map_err(|_| SecretError::MissingEnv(var.clone()))?
        } else if let Some(path) = &self.url_file {
            std::fs::read_to_string(path).map_err(io(path))?
        } else {
            String::new()
        };
        let url = url.trim().to_owned();
        if url.is_empty() {
            return Err(SecretError::Invalid(
                "the server's address is empty".to_owned(),
            ));
        }
        Ok(url)
    }

    /// The address for messages: [`redact_url`] of the address in place, else where it
    /// is read from.
    pub fn describe(&self) -> String {
        match (&self.url, &self.url_env, &self.url_file) {
            (Some(url), _, _) => redact_url(url),
            (None, Some(var), _) => format!("the address in ${var}"),
            (None, None, Some(path)) => format!("the address in {}", path.display()),
            (None, None, None) => "no address".to_owned(),
        }
    }
}

/// A server address fit to print: scheme, user, host, port and path, with the
/// password replaced by `***` and the query (which may carry one too) left out.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an address that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_address_is_never_shown_with_its_password() {
        let url = "postgres://gw:s3cret@db.example:5432/gateway?password=s3cret&sslmode=require";
        let shown = redact_url(url);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("gw:***@db.example:5432/gateway"), "{shown}");
        let setting = ServerUrl::literal(url);
        assert!(!format!("{setting:?}").contains("s3cret"));
        assert!(!setting.describe().contains("s3cret"));
        assert_eq!(setting.resolve().unwrap(), url);
        assert_eq!(
            redact_url("not a url s3cret"),
            "(an address that does not parse)"
        );
    }

    #[test]
    fn a_server_address_comes_from_exactly_one_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg.url"), "postgres://a:b@h/d\n").unwrap();
        let from_file = ServerUrl {
            url_file: Some("pg.url".into()),
            ..ServerUrl::default()
        }
        .relative_to(dir.path());
        assert_eq!(from_file.resolve().unwrap(), "postgres://a:b@h/d");
        let both = ServerUrl {
            url: Some("redis://h".into()),
            url_env: Some("X".into()),
            ..ServerUrl::default()
        };
        assert!(both.resolve().is_err());
        assert!(ServerUrl::default().resolve().is_err());
        let missing = ServerUrl {
            url_env: Some("GATEWAY_TEST_NO_SUCH_URL".into()),
            ..ServerUrl::default()
        };
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("GATEWAY_TEST_NO_SUCH_URL")
        );
    }

    #[test]
    fn the_data_dir_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = pseudonym_key(None, dir.path()).unwrap();
        let second = pseudonym_key(None, dir.path()).unwrap();
        assert_eq!(first.pseudonym("x"), second.pseudonym("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(PSEUDONYM_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is private");
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            pseudonym_key(None, other.path()).unwrap().pseudonym("x"),
            first.pseudonym("x")
        );
    }

    #[test]
    fn a_missing_env_var_is_an_error_naming_it() {
        let err = pseudonym_key(Some("GATEWAY_TEST_NO_SUCH_VAR"), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("GATEWAY_TEST_NO_SUCH_VAR"));
    }
}
