//! Reading files that configuration names: TLS material, schemas, connector
//! definitions, keys. A name in a configuration is input like any other — a department
//! admin's connector definition can name `/dev/zero`, a FIFO or `/etc/shadow` — so
//! every such file is read here, and only:
//!
//! - if it is a **regular file** (not a device, FIFO, socket or directory), checked on
//!   the opened handle; it is opened non-blocking, so a FIFO cannot hang the open;
//! - up to a **size cap**: a larger file is refused without being read in full;
//! - when the caller confines it, from inside **allowed folders** ([`FileRoots`]): the
//!   path must lie inside one of them both as written (`..` resolved) and once every
//!   symbolic link is followed. A path outside is refused as "not allowed" before the
//!   file system is asked anything about it, so the answer never tells whether such a
//!   path exists.
//!
//! This module owns those rules, not what the bytes mean.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The largest configuration file (YAML, JSON Schema, PEM) read by default.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why a named file was not read. The messages never quote the file's content; only
/// [`FileError::Io`] carries the operating system's reason, for files inside the
/// allowed folders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Outside every allowed folder.
    #[error(
        "not allowed: files are read only from the configuration's folder or its certificates folder"
    )]
    NotAllowed,
    /// A device, FIFO, socket or directory.
    #[error("is not a regular file")]
    NotRegular,
    /// Larger than the cap.
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The file could not be opened or read.
    #[error("cannot be read: {0}")]
    Io(String),
}

/// The folders confined reads may reach. [`FileRoots::anywhere`] confines nothing (the
/// operator's own files named in `gateway.yaml`); the other rules still hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRoots {
    /// `None`: not confined. Each root as written (absolute, `..` resolved) and as the
    /// file system resolves it (symbolic links followed), when it exists.
    roots: Option<Vec<(PathBuf, Option<PathBuf>)>>,
}

impl FileRoots {
    /// Reads may reach any path (still regular files only, still capped).
    pub fn anywhere() -> FileRoots {
        FileRoots { roots: None }
    }

    /// Reads are confined to these folders (relative ones resolve against the
    /// working directory).
    pub fn within<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> FileRoots {
        let roots = dirs
            .into_iter()
            .map(|dir| {
                let lexical = lexical_absolute(dir.as_ref());
                let canonical = std::fs::canonicalize(&lexical).ok();
                (lexical, canonical)
            })
            .collect();
        FileRoots { roots: Some(roots) }
    }

    /// Whether reads are confined to folders.
    pub fn is_confined(&self) -> bool {
        self.roots.is_some()
    }

    /// Reads a whole file as bytes, by the rules in the module docs.
    pub fn read(&self, path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
        let path = self.allowed(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| FileError::Io(io_reason(&e)))?;
        let meta = file.metadata().map_err(|e| FileError::Io(io_reason(&e)))?;
        if !meta.is_file() {
            return Err(FileError::NotRegular);
        }
        if meta.len() > limit {
            return Err(FileError::TooLarge { limit });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&mut file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| FileError::Io(io_reason(&e)))?;
        if bytes.len() as u64 > limit {
            return Err(FileError::TooLarge { limit });
        }
        Ok(bytes)
    }

    /// Reads a whole file as UTF-8 text, by the rules in the module docs.
    pub fn read_to_string(&self, path: &Path, limit: u64) -> Result<String, FileError> {
        String::from_utf8(self.read(path, limit)?)
            .map_err(|_| FileError::Io("the file is not UTF-8 text".to_owned()))
    }

    /// The path to open: refused when it lies outside every root, as written or once
    /// its links are followed.
    fn allowed(&self, path: &Path) -> Result<PathBuf, FileError> {
        let Some(roots) = &self.roots else {
            return Ok(path.to_owned());
        };
        let lexical = lexical_absolute(path);
        if !roots.iter().any(|(root, _)| lexical.starts_with(root)) {
            return Err(FileError::NotAllowed);
        }
        let canonical =
            std::fs::canonicalize(&lexical).map_err(|e| FileError::Io(io_reason(&e)))?;
        let inside = roots
            .iter()
            .filter_map(|(_, canonical_root)| canonical_root.as_ref())
            .any(|root| canonical.starts_with(root));
        if inside {
            Ok(canonical)
        } else {
            Err(FileError::NotAllowed)
        }
    }
}

/// The operating system's reason, without the path (the caller names the file).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.kind().to_string(),
    }
}

/// `path` made absolute against the working directory, with `.` and `..` resolved
/// without touching the file system (`..` above the root stays at the root).
pub fn lexical_absolute(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), "pem").unwrap();
        std::fs::write(dir.path().join("outside.pem"), "secret").unwrap();
        dir
    }

    #[test]
    fn a_regular_file_inside_a_root_is_read() {
        let dir = folder();
        let roots = FileRoots::within([dir.path().join("certs")]);
        let text = roots
            .read_to_string(&dir.path().join("certs/ca.pem"), 100)
            .unwrap();
        assert_eq!(text, "pem");
    }

    #[test]
    fn a_path_outside_the_roots_is_not_allowed_whether_or_not_it_exists() {
        let dir = folder();
        let roots = FileRoots::within([dir.path().join("certs")]);
        for path in [
            dir.path().join("outside.pem"),
            dir.path().join("certs/../outside.pem"),
            dir.path().join("missing.pem"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/no/such/file"),
        ] {
            assert_eq!(
                roots.read(&path, 100),
                Err(FileError::NotAllowed),
                "{path:?}"
            );
        }
    }

    #[test]
    fn a_link_inside_a_root_to_a_file_outside_is_not_allowed() {
        let dir = folder();
        std::os::unix::fs::symlink(
            dir.path().join("outside.pem"),
            dir.path().join("certs/link.pem"),
        )
        .unwrap();
        let roots = FileRoots::within([dir.path().join("certs")]);
        assert_eq!(
            roots.read(&dir.path().join("certs/link.pem"), 100),
            Err(FileError::NotAllowed)
        );
    }

    #[test]
    fn devices_are_refused_without_reading() {
        // /dev/zero would never end; it is refused on sight.
        let err = FileRoots::anywhere()
            .read(Path::new("/dev/zero"), MAX_FILE_BYTES)
            .unwrap_err();
        assert_eq!(err, FileError::NotRegular);
        let err = FileRoots::anywhere()
            .read(Path::new("/tmp"), MAX_FILE_BYTES)
            .unwrap_err();
        assert_eq!(err, FileError::NotRegular);
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Without the non-blocking open this call would wait for a writer forever.
        assert_eq!(
            FileRoots::within([dir.path()]).read(&fifo, 100),
            Err(FileError::NotRegular)
        );
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = folder();
        let roots = FileRoots::within([dir.path()]);
        assert_eq!(
            roots.read(&dir.path().join("outside.pem"), 3),
            Err(FileError::TooLarge { limit: 3 })
        );
    }

    #[test]
    fn missing_files_inside_a_root_say_so_without_the_path() {
        let dir = folder();
        let err = FileRoots::within([dir.path()])
            .read(&dir.path().join("certs/none.pem"), 100)
            .unwrap_err();
        assert_eq!(err, FileError::Io("no such file".to_owned()));
    }
}
