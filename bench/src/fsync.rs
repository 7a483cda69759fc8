//! `gateway-bench fsync`: how long making a small write durable takes where the audit
//! log lives; every audited request waits for at least one such sync.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::load::{micros, percentile};

#[derive(Debug, Args)]
pub(crate) struct FsyncArgs {
    /// A directory on the file system to measure (a scratch file is made and removed).
    #[arg(long)]
    dir: PathBuf,
    /// Syncs measured.
    #[arg(long, default_value_t = 500)]
    count: usize,
}

/// What `bench fsync` prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FsyncResult {
    count: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Overwrites 4 KiB blocks of a preallocated file in turn, each followed by fsync — as
/// SQLite's WAL with `synchronous=FULL` does on every commit.
pub(crate) async fn fsync(args: FsyncArgs) -> Result<(), String> {
    let path = args
        .dir
        .join(format!(".bench-fsync-{}", std::process::id()));
    let measured = tokio::task::spawn_blocking(move || {
        let outcome = measure_fsync(&path, args.count);
        let _ = std::fs::remove_file(&path);
        outcome
    })
    .await
    .map_err(|e| e.to_string())??;
    let json = serde_json::to_string(&measured).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

fn measure_fsync(path: &Path, count: usize) -> Result<FsyncResult, String> {
    use std::io::{Seek, SeekFrom, Write};
    const BLOCK: usize = 4096;
    const BLOCKS: usize = 256;
    let error = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::create(path).map_err(error)?;
    let block = [0x5a_u8; BLOCK];
    for _ in 0..BLOCKS {
        file.write_all(&block).map_err(error)?;
    }
    file.sync_all().map_err(error)?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let offset = u64::try_from((i % BLOCKS) * BLOCK).unwrap_or(0);
        file.seek(SeekFrom::Start(offset)).map_err(error)?;
        file.write_all(&block).map_err(error)?;
        let started = Instant::now();
        file.sync_all().map_err(error)?;
        samples.push(micros(started.elapsed()));
    }
    samples.sort_unstable();
    Ok(FsyncResult {
        count,
        p50_us: percentile(&samples, 500),
        p99_us: percentile(&samples, 990),
        max_us: samples.last().copied().unwrap_or(0),
    })
}
