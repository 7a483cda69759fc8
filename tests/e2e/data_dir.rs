//! The data directory holds personal data and keys (issue 8, finding 5; issue 9,
//! finding 5): the real binary creates it private (0700) with its databases and
//! tokens 0600, refuses to start on a directory others may enter, and refuses a second
//! gateway on the same directory, naming the first.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::binary::Running;

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `gateway demo` on `data_dir` that is expected to refuse to start: its exit code and
/// stderr.
async fn demo_refused(data_dir: &Path) -> (i32, String) {
    let run = Command::new(BINARY)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--residents",
            "2000",
            "--data-dir",
        ])
        .arg(data_dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("it refuses instead of serving")
        .expect("it runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_data_directory_is_private_and_served_by_one_gateway() {
    let root = tempfile::tempdir().expect("temp dir");
    let data_dir = root.path().join("demo-data");
    let mut demo = Running::demo(&data_dir);
    demo.line(|l| l.trim_start().starts_with("gateway")).await;

    assert_eq!(mode(&data_dir), 0o700);
    for file in [
        "audit.db",
        "registry.db",
        "quota.db",
        "audit.db-wal",
        "registry.db-wal",
    ] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data_dir.join("tokens")), 0o700);
    assert_eq!(mode(&data_dir.join("tokens/clerk-dongling.jwt")), 0o600);

    // A second gateway on the same directory is refused, naming the first.
    let (code, stderr) = demo_refused(&data_dir).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("is already served by another gateway"),
        "{stderr}"
    );
    assert!(stderr.contains("gateway demo pid"), "{stderr}");
    demo.terminate().await;

    // A directory others may enter is refused, with the fix.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (code, stderr) = demo_refused(&data_dir).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("chmod -R go-rwx"), "{stderr}");
}
