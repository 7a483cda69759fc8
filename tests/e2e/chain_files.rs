//! The audit segments of a data directory as an attacker with write access sees
//! them: every record read out, edited (bodies, links, checkpoints), and written
//! back framed anew with valid checksums — only the gateway's published format and
//! hash function are used, as anyone could.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use gateway::audit::chain::link_hash;
use gateway::audit::checkpoint::Checkpoint;
use gateway::audit::segments::format::{self, Frames, HEADER_LEN, Header, Record};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One record, owned.
#[derive(Debug, Clone)]
pub(crate) enum Rec {
    Event {
        seq: u64,
        prev: [u8; 32],
        body: String,
    },
    Checkpoint {
        seq: u64,
        text: String,
    },
}

/// Every live record of a data directory's chain, in order (up to a torn end).
pub(crate) struct ChainFiles {
    chain_dir: PathBuf,
    chain_id: [u8; 16],
    pub(crate) records: Vec<Rec>,
}

impl ChainFiles {
    pub(crate) fn read(data: &Path) -> ChainFiles {
        let chain_dir = data.join(format::DIR);
        let mut records = Vec::new();
        let mut chain_id = None;
        for segment in format::list(&chain_dir).expect("the segments") {
            let bytes = std::fs::read(&segment.path).expect("a segment");
            chain_id = Some(Header::decode(&bytes).expect("a header").chain_id);
            // A torn end (a killed process's unacknowledged write) ends the records.
            for frame in Frames::new(&bytes, HEADER_LEN).map_while(Result::ok) {
                records.push(match frame {
                    Record::Event {
                        seq,
                        prev_hash,
                        body,
                    } => Rec::Event {
                        seq,
                        prev: *prev_hash,
                        body: String::from_utf8(body.to_vec()).expect("UTF-8"),
                    },
                    Record::Checkpoint { seq, text } => Rec::Checkpoint {
                        seq,
                        text: text.to_owned(),
                    },
                });
            }
        }
        ChainFiles {
            chain_dir,
            chain_id: chain_id.expect("at least one segment"),
            records,
        }
    }

    /// Replaces the live segments with one file holding the records as they are now.
    pub(crate) fn write(&self) {
        for segment in format::list(&self.chain_dir).expect("the segments") {
            std::fs::remove_file(segment.path).expect("remove a segment");
        }
        let first = self
            .records
            .iter()
            .find_map(|r| match r {
                Rec::Event { seq, .. } => Some(*seq),
                Rec::Checkpoint { .. } => None,
            })
            .unwrap_or(1);
        let mut out = Header {
            chain_id: self.chain_id,
            first_seq: first,
        }
        .encode()
        .to_vec();
        for record in &self.records {
            match record {
                Rec::Event { seq, prev, body } => {
                    format::encode_event(&mut out, *seq, prev, body.as_bytes())
                }
                Rec::Checkpoint { seq, text } => format::encode_checkpoint(&mut out, *seq, text),
            }
        }
        std::fs::write(self.chain_dir.join(format::file_name(first)), out).expect("write");
    }

    pub(crate) fn checkpoint_seqs(&self) -> Vec<u64> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Rec::Checkpoint { seq, .. } => Some(*seq),
                Rec::Event { .. } => None,
            })
            .collect()
    }

    /// The seq of the first lookup event (one naming a connector).
    pub(crate) fn first_lookup(&self) -> u64 {
        self.records
            .iter()
            .find_map(|r| match r {
                Rec::Event { seq, body, .. } => {
                    let event: Value = serde_json::from_str(body).expect("JSON");
                    event["connector"].is_string().then_some(*seq)
                }
                Rec::Checkpoint { .. } => None,
            })
            .expect("a lookup was recorded")
    }

    /// Edits the body of event `seq` with `edit` (on its JSON), written canonically.
    pub(crate) fn edit(&mut self, seq: u64, edit: impl FnOnce(&mut Value)) {
        for record in &mut self.records {
            if let Rec::Event { seq: at, body, .. } = record
                && *at == seq
            {
                let mut event: Value = serde_json::from_str(body).expect("JSON");
                edit(&mut event);
                *body = gateway::audit::canonical::to_canonical(&event);
                return;
            }
        }
        panic!("no event {seq}");
    }

    /// Recomputes every event's previous hash from the bodies (the gateway's public
    /// hash function), as a forger does after an edit.
    pub(crate) fn rechain(&mut self) {
        let mut prev = [0; 32];
        for record in &mut self.records {
            if let Rec::Event {
                seq,
                prev: stored,
                body,
            } = record
            {
                *stored = prev;
                prev = link_hash(*seq, stored, body.as_bytes());
            }
        }
    }

    /// The attacker's edit of event `seq` (its case id), and the chain recomputed.
    pub(crate) fn edit_and_rechain(&mut self, seq: u64) {
        self.edit(seq, |event| {
            assert_eq!(event["kind"], "lookup", "{event}");
            event["case_id"] = Value::from("NOTHING-TO-SEE");
        });
        self.rechain();
    }

    /// Drops every record after event `keep` and its checkpoint.
    pub(crate) fn cut_after(&mut self, keep: u64) {
        self.records.retain(|r| match r {
            Rec::Event { seq, .. } | Rec::Checkpoint { seq, .. } => *seq <= keep,
        });
    }

    /// Signs every checkpoint again with `pkcs8` (an Ed25519 key), following the
    /// documented v2 format: the chain's hash at its seq, the old time and cadence,
    /// each naming the one before.
    pub(crate) fn resign(&mut self, pkcs8: &[u8]) {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8).expect("an Ed25519 key");
        let public = BASE64.encode(key.public_key().as_ref());
        let mut prev = (0u64, "0".repeat(64));
        let mut hash = [0; 32];
        for record in &mut self.records {
            match record {
                Rec::Event { seq, prev: p, body } => {
                    hash = link_hash(*seq, p, body.as_bytes());
                }
                Rec::Checkpoint { seq, text } => {
                    let old = Checkpoint::parse(text).expect("v2");
                    let cadence = old.cadence.expect("v2 has a cadence");
                    let signed = format!(
                        "county-gateway audit checkpoint v2\nseq: {seq}\nhash: {}\ntime: {}\n\
                         prev: {} {}\ncadence: {} events, {} ms\nkey: {public}\n",
                        hex::encode(hash),
                        old.time,
                        prev.0,
                        prev.1,
                        cadence.every_events,
                        cadence.every.as_millis()
                    );
                    let signature = BASE64.encode(key.sign(signed.as_bytes()).as_ref());
                    *text = format!("{signed}signature: {signature}\n");
                    prev = (*seq, hex::encode(Sha256::digest(text.as_bytes())));
                }
            }
        }
    }
}
