//! The data directory's permissions: the audit log, the registry, the daily counts and the
//! keys hold personal data and secrets, so the directory is created `0700` and every
//! database file `0600` before SQLite first opens it (SQLite gives its `-wal` and
//! `-shm` files the database file's mode). [`check`] finds anything in the data
//! directory that other users could reach: `serve` and `demo` refuse to start on a
//! directory (the data directory or one inside it) that others may enter or list —
//! inside a private directory nothing is reachable, whatever the files' modes — and
//! warn about files that others could read were the directory opened.
//!
//! One gateway process serves a data directory: [`DataDirLock`] holds an exclusive
//! lock on `DATA_DIR/serve.lock` (which names the holder) for as long as it lives, so a
//! second `serve` or `demo` on the same directory refuses to start, naming the first.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) readable by the owner only. An existing
/// directory keeps its mode ([`check`] reports a loose one).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` empty with mode `0600` if it does not exist (for SQLite to open).
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
}

/// Makes `dir`'s entries durable (a file created or renamed in it survives a crash).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `path` readable by the owner only, replacing it whole or not at all: the
/// bytes go to a temporary file beside it, made durable, then renamed over it, and
/// the directory is synced. A crash leaves the old file or the new one, never an
/// empty or half-written one.
pub fn write_private_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    let fresh = std::path::PathBuf::from(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&fresh)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&fresh, path)?;
    sync_dir(dir)
}

/// Every path in `data_dir` (the directory itself and everything under it) that
/// users other than the owner can read, write or enter, with its mode. Empty when
/// the directory does not exist yet.
pub fn check(data_dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut loose = Vec::new();
    let mut pending = vec![data_dir.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.file_type().is_symlink() {
            continue;
        }
        if mode & 0o077 != 0 {
            loose.push((path.clone(), mode));
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    loose.sort();
    loose
}

/// The message for [`check`]'s findings on directories, or `None` when there are
/// none; loose files are logged as warnings.
pub fn refusal(data_dir: &Path) -> Option<String> {
    let (loose, files): (Vec<_>, Vec<_>) = check(data_dir)
        .into_iter()
        .partition(|(path, _)| path.is_dir());
    for (path, mode) in &files {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:03o}"),
            "a file in the data directory is readable by other users; chmod 600 it"
        );
    }
    if loose.is_empty() {
        return None;
    }
    let list: Vec<String> = loose
        .iter()
        .take(10)
        .map(|(path, mode)| format!("  {} (mode {mode:03o})", path.display()))
        .collect();
    Some(format!(
        "the data directory holds personal data and keys, but other users can reach {} \
         path(s) in it:\n{}\nrun: chmod -R go-rwx {}",
        loose.len(),
        list.join("\n"),
        data_dir.display()
    ))
}

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// The exclusive right to serve a data directory, held until dropped (or until the
/// process ends, however it ends: the operating system releases the lock).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock, writing `holder` (who and where, e.g. the process id and the
    /// listen address) into the lock file; if another process holds it, the error
    /// names that process as it described itself.
    pub fn take(data_dir: &Path, holder: &str) -> Result<DataDirLock, String> {
        use std::io::{Read, Seek, Write};
        create_dir(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut other = String::new();
                let _ = file.read_to_string(&mut other);
                let other = other.trim();
                let other = if other.is_empty() {
                    "another process".to_owned()
                } else {
                    other.chars().take(200).collect()
                };
                return Err(format!(
                    "{} is already served by another gateway ({other}); stop it first, or use another --data-dir",
                    data_dir.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("{}: cannot lock: {e}", path.display()));
            }
        }
        let write = |file: &mut std::fs::File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(holder.as_bytes())?;
            file.sync_all()
        };
        write(&mut file).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_directories_and_files_are_private_and_loose_ones_are_found() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        create_dir(&dir.join("archive")).unwrap();
        create_private_file(&dir.join("audit.db")).unwrap();
        assert_eq!(check(&dir), vec![]);
        assert!(refusal(&dir).is_none());
        for path in [&dir, &dir.join("archive")] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{path:?}");
        }
        let file = dir.join("audit.db");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // A loose file inside a private directory is found, but not refused.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(check(&dir), vec![(file.clone(), 0o644)]);
        assert!(refusal(&dir).is_none());
        // A directory others may enter is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let message = refusal(&dir).unwrap();
        assert!(message.contains("chmod -R go-rwx"), "{message}");
        assert!(message.contains("mode 755"), "{message}");
    }

    #[test]
    fn a_second_holder_is_refused_and_named_until_the_first_lets_go() {
        let root = tempfile::tempdir().unwrap();
        let first = DataDirLock::take(root.path(), "pid 101, listening on 127.0.0.1:8080").unwrap();
        let refused = DataDirLock::take(root.path(), "pid 102").unwrap_err();
        assert!(
            refused.contains("pid 101, listening on 127.0.0.1:8080"),
            "{refused}"
        );
        drop(first);
        DataDirLock::take(root.path(), "pid 102").unwrap();
    }
}
