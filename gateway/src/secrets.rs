//! Secrets the gateway keeps in its data directory or takes from the environment: the
//! pseudonym key and the demo's token-issuer key pair. Files are created with mode
//! 0600 and never printed; an existing file is reused, so pseudonyms stay stable
//! across restarts.

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
    file.sync_all().map_err(io(path))
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

#[cfg(test)]
mod tests {
    use super::*;

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
