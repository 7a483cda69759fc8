//! "No audit, no data" under a crash: the real `gateway demo` process, serving
//! concurrent lookups, is killed with SIGKILL. Every lookup answered 200 before the kill
//! has its event in the audit log, `gateway audit verify` reports the log intact, and
//! the demo restarted on the same data directory serves again, its new events
//! continuing the chain where the killed process left it.
//!
//! How many lookups complete before the kill varies from run to run; what is asserted
//! does not: it holds for whichever lookups were answered.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use sim::SampleKind;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::binary::{Running, url_in};
use crate::helpers::{client, lookup, sample};

const BINARY: &str = env!("CARGO_BIN_EXE_gateway");

/// Concurrent client tasks, each looping lookups.
const CLIENTS: usize = 8;
/// The load is bounded: at most this many requests in all …
const MAX_REQUESTS: usize = 400;
/// … and for at most this long.
const LOAD_FOR: Duration = Duration::from_secs(2);
/// The kill comes once this many lookups have been answered (or when the load ends,
/// should it end first), while the other clients' requests are in flight.
const KILL_AFTER: usize = 40;

/// The demo on `data_dir`: the process, its lookup URL and a 东岭镇 clerk's token.
async fn start_demo(data_dir: &Path) -> (Running, String, String) {
    let mut demo = Running::demo(data_dir);
    // The banner is printed once the port is bound and the tokens are written.
    let gateway = url_in(&demo.line(|l| l.trim_start().starts_with("gateway")).await);
    let token = std::fs::read_to_string(data_dir.join("tokens/clerk-dongling.jwt"))
        .expect("the demo wrote the clerk's token");
    (demo, format!("{gateway}/v1/query"), token.trim().to_owned())
}

/// One lookup; the request id of a 200 answer read whole, `None` for anything else.
async fn answered(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<Option<String>, reqwest::Error> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    if response.status() != 200 {
        return Ok(None);
    }
    let reply: Value = response.json().await?;
    let id = reply["request_id"].as_str().expect("a request id");
    Ok(Some(id.to_owned()))
}

/// `gateway audit verify`: the number of events it reports intact.
async fn verify_intact(data_dir: &Path) -> u64 {
    let out = Command::new(BINARY)
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .await
        .expect("verify runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    text.split("intact: ")
        .nth(1)
        .and_then(|rest| rest.split(" events").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an event count in {text}"))
}

/// Every event's `(seq, request_id, status, prev_hash, hash)`, in order.
fn events(data_dir: &Path) -> Vec<(u64, String, i64, String, String)> {
    // The segments, the record itself (the index may not have the newest events of
    // a killed process yet).
    crate::chain_files::ChainFiles::read(data_dir)
        .records
        .iter()
        .filter_map(|record| match record {
            crate::chain_files::Rec::Event { seq, prev, body } => {
                let event: Value = serde_json::from_str(body).expect("JSON");
                Some((
                    *seq,
                    event["request_id"]
                        .as_str()
                        .expect("a request id")
                        .to_owned(),
                    event["outcome"]["status"].as_i64().expect("a status"),
                    hex::encode(prev),
                    hex::encode(gateway::audit::chain::link_hash(
                        *seq,
                        prev,
                        body.as_bytes(),
                    )),
                ))
            }
            crate::chain_files::Rec::Checkpoint { .. } => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateway_lost_no_answered_lookup_and_its_log_verifies() {
    // The tests' population is the demo's (seed 2026, 2000 residents).
    let subject = tokio::task::spawn_blocking(|| sample(SampleKind::MarriedParent).id.as_str())
        .await
        .expect("the population");
    let body = lookup("hukou", "person_by_id", subject);
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let (demo, url, token) = start_demo(&data_dir).await;
    let client = client();

    // Serving: the first lookup is answered.
    let first = answered(&client, &url, &token, &body)
        .await
        .expect("served");
    let mut ok: Vec<String> = vec![first.expect("the first lookup is answered 200")];

    let sent = Arc::new(AtomicUsize::new(1));
    let (answers, mut received) = mpsc::unbounded_channel();
    let until = Instant::now() + LOAD_FOR;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
        let (sent, answers) = (sent.clone(), answers.clone());
        clients.push(tokio::spawn(async move {
            while Instant::now() < until && sent.fetch_add(1, Ordering::SeqCst) < MAX_REQUESTS {
                match answered(&client, &url, &token, &body).await {
                    Ok(Some(id)) => {
                        let _ = answers.send(id);
                    }
                    Ok(None) => {}
                    // The process is gone (or went mid-answer): this client is done.
                    Err(_) => break,
                }
            }
        }));
    }
    drop(answers);
    while ok.len() < KILL_AFTER {
        match received.recv().await {
            Some(id) => ok.push(id),
            None => break,
        }
    }
    demo.stop().await; // SIGKILL, with the clients' requests in flight
    for task in clients {
        task.await.expect("a client task");
    }
    while let Some(id) = received.recv().await {
        ok.push(id);
    }

    // Every answered lookup was recorded before its answer left, so it survived.
    let intact = verify_intact(&data_dir).await;
    let before = events(&data_dir);
    assert_eq!(intact, before.len() as u64);
    let recorded: HashMap<&str, i64> = before
        .iter()
        .map(|(_, request_id, status, _, _)| (request_id.as_str(), *status))
        .collect();
    for id in &ok {
        assert_eq!(
            recorded.get(id.as_str()),
            Some(&200),
            "request {id} was answered 200 but its event is not in the log \
             ({} answered, {} recorded)",
            ok.len(),
            before.len()
        );
    }
    let (last_seq, _, _, _, last_hash) = before.last().expect("events").clone();

    // Restarted on the same data directory, it serves again and the chain goes on.
    let (demo, url, token) = start_demo(&data_dir).await;
    let again = answered(&client, &url, &token, &body)
        .await
        .expect("served after the restart")
        .expect("a lookup after the restart is answered 200");
    demo.terminate().await;
    let intact = verify_intact(&data_dir).await;
    let after = events(&data_dir);
    assert_eq!(intact, after.len() as u64);
    assert_eq!(
        after[..before.len()],
        before[..],
        "the old events are unchanged"
    );
    let (seq, _, _, prev_hash, _) = &after[before.len()];
    assert_eq!(*seq, last_seq + 1);
    assert_eq!(
        *prev_hash, last_hash,
        "the new event chains on the killed log's head"
    );
    assert!(
        after[before.len()..]
            .iter()
            .any(|(_, request_id, status, _, _)| *request_id == again && *status == 200),
        "the lookup after the restart is recorded"
    );
}
