//! A failing machine under a running gateway (issue 23): the data directory's volume
//! fills up, becomes read-only, loses a file; the clock jumps back. Each fault gives a
//! clear error or a correct continuation, never a silent loss: lookups the audit log
//! cannot record answer 503 `audit-unavailable` with no data, every lookup answered
//! 200 is in the log, `gateway audit verify` reports the chain intact, and service
//! returns by itself once the fault is gone.
//!
//! The volumes are small tmpfs mounts the tests make themselves (root only; skipped,
//! or failed under `GATEWAY_TESTS_REQUIRED`, where mounting is not possible), each
//! under its own temporary directory and unmounted when the test ends, however it
//! ends.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use gateway::clock::Clock as _;
use serde_json::{Value, json};
use sim::SampleKind;
use tokio::process::Command;

use crate::binary::{Running, url_in};
use crate::chain_files::{ChainFiles, Rec};
use crate::helpers::{TestGateway, client, lookup, sample};

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

/// How many times a test asks before it gives up waiting for a state to come (each
/// attempt a round trip plus a short pause: well over a minute in all).
const ATTEMPTS: usize = 600;
/// The pause between two attempts.
const PAUSE: Duration = Duration::from_millis(100);

/// A size-limited tmpfs mounted under a temporary directory, unmounted on drop.
struct Tmpfs {
    mount: PathBuf,
    _root: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`), or says why the test skips.
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let root = tempfile::tempdir().expect("temp dir");
        let mount = root.path().join("volume");
        std::fs::create_dir(&mount).expect("mount point");
        let out = StdCommand::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&mount)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { mount, _root: root }),
            Ok(out) => {
                testkit::skip(
                    test,
                    &format!(
                        "cannot mount a tmpfs (root needed): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                    true,
                );
                None
            }
            Err(e) => {
                testkit::skip(test, &format!("cannot run mount: {e}"), true);
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// `mount -o remount,OPTS` (`ro`, `rw`).
    fn remount(&self, opts: &str) {
        let status = StdCommand::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.mount)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {opts}");
    }

    /// Writes a filler file until the volume takes no byte more; its path.
    fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).expect("the filler file");
        let chunk = vec![0x5a_u8; 1 << 16];
        let mut size = chunk.len();
        while size > 0 {
            match file.write(&chunk[..size]) {
                Ok(0) => size /= 2,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => size /= 2, // ENOSPC
                Err(e) => panic!("filling the volume: {e}"),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount_lazily(&self.mount);
    }
}

/// Unmounts `mount` lazily, whatever happens: a process still holding a file there
/// lets go when it ends.
fn unmount_lazily(mount: &Path) {
    let _ = StdCommand::new("umount").arg("-l").arg(mount).status();
}

/// An ext4 file system in an image file, loop-mounted with `errors=remount-ro` under
/// a temporary directory, unmounted on drop: a volume the kernel turns read-only by
/// itself when the file system meets an error, as a failing disk does.
struct Ext4 {
    image: PathBuf,
    mount: PathBuf,
    _root: tempfile::TempDir,
}

impl Ext4 {
    /// Makes and mounts a file system of `mib` MiB, or says why the test skips.
    fn mount(test: &str, mib: u64) -> Option<Ext4> {
        let root = tempfile::tempdir().expect("temp dir");
        let image = root.path().join("volume.img");
        let mount = root.path().join("volume");
        std::fs::create_dir(&mount).expect("mount point");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .expect("the image file");
        let made = StdCommand::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .output();
        match made {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                testkit::skip(test, &format!("mkfs.ext4 failed: {why}"), true);
                return None;
            }
            Err(e) => {
                testkit::skip(
                    test,
                    &format!("cannot run mkfs.ext4 (e2fsprogs): {e}"),
                    true,
                );
                return None;
            }
        }
        let volume = Ext4 {
            image,
            mount,
            _root: root,
        };
        match volume.attach() {
            Ok(()) => Some(volume),
            Err(why) => {
                testkit::skip(
                    test,
                    &format!("cannot loop-mount ext4 (root needed): {why}"),
                    true,
                );
                None
            }
        }
    }

    fn attach(&self) -> Result<(), String> {
        let out = StdCommand::new("mount")
            .args(["-t", "ext4", "-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(&self.mount)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// The kernel meets a file system error (ext4's `trigger_fs_error`) and, as
    /// mounted, makes the volume read-only under whoever has files open on it.
    fn fail(&self) {
        let out = StdCommand::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&self.mount)
            .output()
            .expect("findmnt runs");
        let source = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let device = Path::new(&source)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("the loop device of {}: {source:?}", self.mount.display()))
            .to_owned();
        std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "1\n")
            .expect("ext4 takes an error");
        let probe = std::fs::File::create(self.mount.join("probe"));
        assert!(probe.is_err(), "the volume is read-only after its error");
    }

    /// What an operator does after the fault: unmount, check and repair the file
    /// system, mount it again.
    fn repair(&self) {
        let status = StdCommand::new("umount")
            .arg(&self.mount)
            .status()
            .expect("umount runs");
        assert!(status.success(), "umount after the fault");
        let fsck = StdCommand::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .output()
            .expect("e2fsck runs");
        // 0: clean; 1: errors corrected.
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        self.attach().expect("mounted again");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        unmount_lazily(&self.mount);
    }
}

/// The demo on `data_dir`: the process, its address and the tokens directory.
struct Demo {
    process: Running,
    base: String,
    tokens: PathBuf,
}

impl Demo {
    async fn start(data_dir: &Path) -> Demo {
        let mut process = Running::demo(data_dir);
        let base = url_in(
            &process
                .line(|l| l.trim_start().starts_with("gateway"))
                .await,
        );
        Demo {
            process,
            base,
            tokens: data_dir.join("tokens"),
        }
    }

    fn token(&self, persona: &str) -> String {
        std::fs::read_to_string(self.tokens.join(format!("{persona}.jwt")))
            .expect("the demo wrote the token")
            .trim()
            .to_owned()
    }

    async fn post(&self, persona: &str, path: &str, body: &Value) -> Answer {
        let response = client()
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token(persona))
            .json(body)
            .send()
            .await
            .expect("an answer");
        Answer::read(response).await
    }

    async fn get(&self, persona: Option<&str>, path: &str) -> Answer {
        let mut request = client().get(format!("{}{path}", self.base));
        if let Some(persona) = persona {
            request = request.bearer_auth(self.token(persona));
        }
        Answer::read(request.send().await.expect("an answer")).await
    }

    /// The clerk's lookup of `subject`.
    async fn lookup(&self, subject: &str) -> Answer {
        self.post(
            "clerk-dongling",
            "/v1/query",
            &lookup("hukou", "person_by_id", subject),
        )
        .await
    }

    /// `count` lookups of `subject`, each of which must be answered 200: their
    /// request ids, to be found in the log afterwards.
    async fn lookups_served(&self, subject: &str, count: usize) -> Vec<String> {
        let mut served = Vec::with_capacity(count);
        for _ in 0..count {
            let answer = self.lookup(subject).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            served.push(answer.request_id());
        }
        served
    }

    /// Asks until a lookup is answered 200 (bounded): the answer.
    async fn lookup_until_served(&self, subject: &str) -> Answer {
        for _ in 0..ATTEMPTS {
            let answer = self.lookup(subject).await;
            if answer.status == 200 {
                return answer;
            }
            assert_eq!(answer.status, 503, "{}", answer.text);
            tokio::time::sleep(PAUSE).await;
        }
        panic!("no lookup was served again within {ATTEMPTS} attempts");
    }

    /// `/readyz` until it answers `status` (bounded): its answer.
    async fn ready_until(&self, status: u16) -> Answer {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let answer = self.get(None, "/readyz").await;
            if answer.status == status {
                return answer;
            }
            last = Some(answer);
            tokio::time::sleep(PAUSE).await;
        }
        panic!("/readyz never answered {status}: {last:?}");
    }

    /// The `gateway_audit_queue_depth` sample of `/metrics` (operator's token).
    async fn queue_depth(&self) -> Option<f64> {
        let metrics = self.get(Some("operator"), "/metrics").await;
        assert_eq!(metrics.status, 200, "{}", metrics.text);
        metrics
            .text
            .lines()
            .find(|l| l.starts_with("gateway_audit_queue_depth"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    text: String,
    json: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, text, json }
    }

    fn request_id(&self) -> String {
        self.json["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a request id in {}", self.text))
            .to_owned()
    }

    /// A 503 `audit-unavailable` that carries nothing of `subject`.
    fn assert_audit_unavailable(&self, subject: &sim::Person) {
        assert_eq!(self.status, 503, "{}", self.text);
        assert_eq!(
            self.json["type"], "/problems/audit-unavailable",
            "{}",
            self.text
        );
        assert!(self.json.get("data").is_none(), "{}", self.text);
        assert!(!self.text.contains(subject.id.as_str()), "{}", self.text);
        assert!(!self.text.contains(subject.name.as_str()), "{}", self.text);
    }
}

/// The tests' sample subject (the demo's population is the tests').
async fn subject() -> &'static sim::Person {
    tokio::task::spawn_blocking(|| sample(SampleKind::MarriedParent))
        .await
        .expect("the population")
}

/// `gateway audit verify [extra] --data-dir DIR`: its exit status and stdout.
async fn verify(data_dir: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(BINARY)
        .args(["audit", "verify"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .await
        .expect("verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The events in the segment files: `(seq, request_id, status)`, in chain order.
fn events(data_dir: &Path) -> Vec<(u64, String, i64)> {
    ChainFiles::read(data_dir)
        .records
        .iter()
        .filter_map(|record| match record {
            Rec::Event { seq, body, .. } => {
                let event: Value = serde_json::from_str(body).expect("JSON");
                Some((
                    *seq,
                    event["request_id"].as_str().unwrap_or_default().to_owned(),
                    event["outcome"]["status"].as_i64().unwrap_or_default(),
                ))
            }
            Rec::Checkpoint { .. } => None,
        })
        .collect()
}

/// After the gateway stopped: the log verifies, its index says what the segments
/// say, the events follow each other without a gap, and every lookup in `answered`
/// is in it, answered 200. The events.
async fn assert_nothing_lost(data_dir: &Path, answered: &[String]) -> Vec<(u64, String, i64)> {
    let (intact, report) = verify(data_dir, &["--index"]).await;
    assert!(intact, "{report}");
    let events = events(data_dir);
    assert!(
        report.contains(&format!("intact: {} events", events.len())),
        "{report}"
    );
    for (i, (seq, _, _)) in events.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "the events follow each other");
    }
    for id in answered {
        assert!(
            events.iter().any(|(_, r, s)| r == id && *s == 200),
            "request {id} was answered 200 but is not in the log as such"
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_volume_refuses_lookups_loses_nothing_and_serves_again_once_freed() {
    let Some(volume) = Tmpfs::mount("faults::full_audit_volume", "96m") else {
        return;
    };
    let data_dir = volume.path().join("data");
    let subject = subject().await;
    let demo = Demo::start(&data_dir).await;
    let mut answered = demo.lookups_served(subject.id.as_str(), 3).await;
    demo.ready_until(200).await;

    // The volume fills up. What fits in the pages the segment already holds may
    // still be recorded (and answered); then lookups are refused, without data.
    let filler = volume.fill();
    let mut refused = None;
    for _ in 0..ATTEMPTS {
        let answer = demo.lookup(subject.id.as_str()).await;
        if answer.status == 200 {
            answered.push(answer.request_id());
        } else {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a lookup is refused once the volume is full");
    refused.assert_audit_unavailable(subject);
    demo.lookup(subject.id.as_str())
        .await
        .assert_audit_unavailable(subject);
    let not_ready = demo.ready_until(503).await;
    eprintln!("/readyz with the volume full: {}", not_ready.text);
    assert!(not_ready.text.contains("audit"), "{}", not_ready.text);
    let depth = demo.queue_depth().await;
    eprintln!("gateway_audit_queue_depth with the volume full: {depth:?}");
    assert!(
        depth.is_some_and(|d| d < 1.0),
        "no event waits in the queue"
    );

    // Space comes back: service returns without a restart.
    std::fs::remove_file(&filler).expect("the filler goes");
    let again = demo.lookup_until_served(subject.id.as_str()).await;
    answered.push(again.request_id());
    demo.ready_until(200).await;
    demo.process.terminate().await;

    let events = assert_nothing_lost(&data_dir, &answered).await;
    let last = events.last().expect("events");
    assert!(
        events.iter().any(|(_, r, _)| *r == again.request_id()),
        "the lookup after the fault continues the chain (last seq {})",
        last.0
    );
}

/// The 农民建房 lookup of the walkthrough: no grant gives the clerk the name.
fn housing_lookup(subject: &str) -> Value {
    json!({
        "connector": "hukou",
        "operation": "person_by_id",
        "subject": {"id_number": subject},
        "purpose": "rural_housing",
        "case_id": "FAULT-0001",
    })
}

/// Whether the answer withholds `field`.
fn withholds(answer: &Answer, field: &str) -> bool {
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["withheld"]
        .as_array()
        .is_some_and(|w| w.iter().any(|f| f["field"] == field))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_change_on_a_full_volume_is_refused_and_the_configuration_stays() {
    let Some(volume) = Tmpfs::mount("faults::full_registry_volume", "96m") else {
        return;
    };
    let data_dir = volume.path().join("data");
    let subject = subject().await;
    let demo = Demo::start(&data_dir).await;
    let housing = housing_lookup(subject.id.as_str());
    let before = demo.post("clerk-dongling", "/v1/query", &housing).await;
    assert!(withholds(&before, "name"), "{}", before.text);
    let mut answered = vec![before.request_id()];
    let asked = demo
        .post(
            "lead-dongling",
            "/v1/access-requests",
            &json!({
                "connector": "hukou", "operations": ["person_by_id"],
                "purposes": ["rural_housing"], "fields": {"name": "default"},
                "roles": ["clerk"], "justification": "农民建房申请需核对申请人姓名",
            }),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let id = asked.json["id"].as_str().expect("a request id").to_owned();

    // The volume fills up, until even a lookup cannot be recorded.
    let filler = volume.fill();
    for _ in 0..ATTEMPTS {
        let answer = demo.lookup(subject.id.as_str()).await;
        if answer.status != 200 {
            answer.assert_audit_unavailable(subject);
            break;
        }
        answered.push(answer.request_id());
    }
    // The department's approval — a change of the configuration in force — is
    // refused, clearly.
    let approve = format!("/v1/access-requests/{id}/approve");
    let refused = demo
        .post("admin-psb", &approve, &json!({"fields": {"name": "keep"}}))
        .await;
    eprintln!("an approval with the volume full: {}", refused.text);
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused.json["type"], "/problems/audit-unavailable",
        "{}",
        refused.text
    );

    // Space comes back: the refused change was not half made.
    std::fs::remove_file(&filler).expect("the filler goes");
    demo.lookup_until_served(subject.id.as_str()).await;
    let after = demo.post("clerk-dongling", "/v1/query", &housing).await;
    assert!(withholds(&after, "name"), "{}", after.text);
    answered.push(after.request_id());
    let request = demo
        .get(Some("lead-dongling"), &format!("/v1/access-requests/{id}"))
        .await;
    assert_eq!(request.status, 200, "{}", request.text);
    assert_eq!(request.json["state"], "pending", "{}", request.text);
    let grants = demo.get(Some("admin-psb"), "/v1/grants").await;
    assert_eq!(grants.status, 200, "{}", grants.text);
    assert!(!grants.text.contains(&id), "{}", grants.text);

    // Made again, the change is made, and served.
    let approved = demo
        .post("admin-psb", &approve, &json!({"fields": {"name": "keep"}}))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let granted = demo.post("clerk-dongling", "/v1/query", &housing).await;
    assert!(!withholds(&granted, "name"), "{}", granted.text);
    answered.push(granted.request_id());
    demo.process.terminate().await;
    assert_nothing_lost(&data_dir, &answered).await;
}

/// `gateway demo` on `data_dir` that is expected to refuse to start: its stderr.
async fn demo_refused(data_dir: &Path) -> String {
    let run = Command::new(BINARY)
        .args(["demo", "--listen", "127.0.0.1:0", "--residents", "2000"])
        .arg("--data-dir")
        .arg(data_dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("it refuses instead of serving")
        .expect("it runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

// A file system cannot be remounted read-only while a gateway holds its files open
// for writing (the kernel answers EBUSY), so the read-only data directory a gateway
// meets is one it starts on: it refuses, saying why, and serves once it is writable
// again, its log going on where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_directory_is_refused_at_start_and_served_once_writable() {
    let Some(volume) = Tmpfs::mount("faults::read_only", "96m") else {
        return;
    };
    let data_dir = volume.path().join("data");
    let subject = subject().await;
    let demo = Demo::start(&data_dir).await;
    let mut answered = demo.lookups_served(subject.id.as_str(), 2).await;
    let busy = StdCommand::new("mount")
        .args(["-o", "remount,ro"])
        .arg(volume.path())
        .output()
        .expect("mount runs");
    assert!(
        !busy.status.success(),
        "the kernel refuses to make the volume read-only under the gateway"
    );
    demo.process.terminate().await;

    volume.remount("ro");
    let stderr = demo_refused(&data_dir).await;
    eprintln!("started read-only: {stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    volume.remount("rw");
    assert_nothing_lost(&data_dir, &answered).await;

    let demo = Demo::start(&data_dir).await;
    answered.push(
        demo.lookup_until_served(subject.id.as_str())
            .await
            .request_id(),
    );
    demo.process.terminate().await;
    let events = assert_nothing_lost(&data_dir, &answered).await;
    assert!(
        events.len() > answered.len(),
        "the log went on where it was"
    );
}

/// The newest segment file in `data_dir`.
fn newest_segment(data_dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data_dir.join("chain"))
        .expect("the chain directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_removed_under_the_gateway_is_put_back_and_one_replaced_stops_the_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let subject = subject().await;
    let demo = Demo::start(&data_dir).await;
    let mut answered = demo.lookups_served(subject.id.as_str(), 3).await;

    // Removed: the next write puts it back from the open file; nothing is lost.
    let segment = newest_segment(&data_dir);
    std::fs::remove_file(&segment).expect("the segment goes");
    answered.extend(demo.lookups_served(subject.id.as_str(), 3).await);
    assert!(segment.exists(), "the segment is back");

    // Replaced by another file (a copy): what the gateway would append to is no
    // longer what the next start reads, so lookups are refused.
    let copy = segment.with_extension("copy");
    std::fs::copy(&segment, &copy).expect("a copy");
    std::fs::rename(&copy, &segment).expect("the copy replaces the segment");
    demo.lookup(subject.id.as_str())
        .await
        .assert_audit_unavailable(subject);
    demo.ready_until(503).await;
    let stderr = demo.process.terminate().await;
    assert!(
        stderr.contains("removed under the running gateway"),
        "{stderr}"
    );
    assert!(stderr.contains("was replaced by another file"), "{stderr}");
    assert_nothing_lost(&data_dir, &answered).await;
}

#[tokio::test]
async fn the_clock_set_back_an_hour_keeps_serving_and_the_log_keeps_the_machines_time() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    let mut answered = Vec::new();
    for _ in 0..2 {
        let answer = gw.query(&body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answered.push(answer.json["request_id"].clone());
    }

    gw.clock.rewind(Duration::from_secs(3600));
    for _ in 0..3 {
        let answer = gw.query(&body).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        // The record fetched "in the future" is not of a negative age, and the
        // cache still serves it.
        assert_eq!(answer.json["age_s"], 0, "{}", answer.text);
        assert_eq!(answer.json["cache_hit"], true, "{}", answer.text);
        answered.push(answer.json["request_id"].clone());
    }
    let form = crate::helpers::post_json(
        &gw.url("/v1/forms/birth-registration/fill"),
        &gw.token(gateway::auth::Role::Clerk, Some(crate::helpers::TOWNSHIP)),
        &json!({"subject": {"id_number": person.id.as_str()}, "case_id": "TEST-0002"}),
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text);

    // Every lookup is recorded, in order, and the log verifies. Its times are the
    // machine's (clock.rs), not the clock set back: what it says about time is
    // what the machine said when it recorded.
    let events = crate::audit::events(&gw).await;
    for id in &answered {
        assert!(
            events
                .iter()
                .any(|e| e["request_id"] == *id && e["outcome"]["status"] == 200),
            "{id} is recorded"
        );
    }
    let rewound = gw.clock.now();
    for event in &events {
        let time = event["time"].as_str().expect("a time");
        let time = chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
        assert!(
            time.to_utc() > rewound + chrono::Duration::minutes(30),
            "{time} is the machine's time, not the clock set back ({rewound})"
        );
    }
    let report =
        gateway::audit::verify(&gw.data_dir.path().join("data")).expect("the log verifies");
    eprintln!("after the clock went back: {report:?}");
}

// The registry removed under the running gateway: a change would go to a file the
// next start no longer reads, so it is refused, and said so; lookups (which change
// nothing there) go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_removed_under_the_gateway_refuses_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let subject = subject().await;
    let demo = Demo::start(&data_dir).await;
    std::fs::remove_file(data_dir.join("registry.db")).expect("the registry goes");
    let asked = demo
        .post(
            "lead-dongling",
            "/v1/access-requests",
            &json!({
                "connector": "hukou", "operations": ["person_by_id"],
                "purposes": ["rural_housing"], "fields": {"name": "default"},
                "roles": ["clerk"], "justification": "农民建房申请需核对申请人姓名",
            }),
        )
        .await;
    eprintln!(
        "a change with the registry removed: {} {}",
        asked.status, asked.text
    );
    assert_eq!(asked.status, 503, "{}", asked.text);
    assert_eq!(
        asked.json["type"], "/problems/registry-unavailable",
        "{}",
        asked.text
    );
    let answer = demo.lookup(subject.id.as_str()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let stderr = demo.process.terminate().await;
    assert!(
        stderr.contains("was removed or replaced under the running gateway"),
        "{stderr}"
    );
    // The log says the request was refused (after the change's own event, which
    // was recorded before the registry refused it).
    let refused = events(&data_dir)
        .into_iter()
        .filter(|(_, request, _)| *request == asked.request_id())
        .map(|(_, _, status)| status)
        .collect::<Vec<_>>();
    assert_eq!(refused.last(), Some(&503), "{refused:?}");
}

/// The volume turns read-only under the running gateway, as ext4 does after an I/O
/// error (`errors=remount-ro`): lookups are refused without data, `/readyz` says the
/// audit log is down, and after the operator's repair (stop, fsck, mount) the log
/// holds every lookup answered 200, verifies, and goes on; its index is whole again
/// after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_turned_read_only_under_the_gateway_refuses_lookups_and_loses_nothing() {
    let Some(volume) = Ext4::mount("faults::volume_turned_read_only", 128) else {
        return;
    };
    let data_dir = volume.path().join("data");
    let subject = subject().await;
    let demo = Demo::start(&data_dir).await;
    let mut answered = demo.lookups_served(subject.id.as_str(), 3).await;
    demo.ready_until(200).await;

    volume.fail();
    demo.lookup(subject.id.as_str())
        .await
        .assert_audit_unavailable(subject);
    demo.lookup(subject.id.as_str())
        .await
        .assert_audit_unavailable(subject);
    let not_ready = demo.ready_until(503).await;
    assert!(not_ready.text.contains("audit"), "{}", not_ready.text);
    demo.process.terminate().await;

    volume.repair();
    // The segments hold every answered lookup; the search index (written back lazily,
    // rebuilt from the segments) may lag until the next start catches it up.
    let (intact, report) = verify(&data_dir, &[]).await;
    assert!(intact, "{report}");
    let held = events(&data_dir);
    for id in &answered {
        assert!(
            held.iter().any(|(_, r, s)| r == id && *s == 200),
            "request {id} was answered 200 but is not in the segments"
        );
    }
    let demo = Demo::start(&data_dir).await;
    let again = demo.lookup_until_served(subject.id.as_str()).await;
    answered.push(again.request_id());
    demo.process.terminate().await;
    let events = assert_nothing_lost(&data_dir, &answered).await;
    assert!(
        events
            .iter()
            .any(|(_, r, s)| *r == again.request_id() && *s == 200),
        "the log goes on after the repair"
    );
}
