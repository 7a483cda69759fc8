//! The check of a chain kept in segment files — what `gateway audit verify` runs,
//! and what the writer runs before it appends ([`walk`]).
//!
//! Per segment, in order: the header (magic, the chain's id, the first seq its name
//! says), then every frame's length and checksum; the events are hashed in parallel
//! (each record carries its previous hash, so `hash(seq)` needs no other record),
//! their times read for the cadence, and then, in sequence order: every seq is the
//! next one, every stored previous hash is the hash of the event before (across
//! segment boundaries too), every checkpoint follows its event, signs its hash with
//! the log's key, names the checkpoint before it (`prev`), and the checkpoints keep
//! the [cadence](super::super::cadence) (by count and by time, as
//! [`verify`](super::super::verify) holds the SQLite log to it). Checkpoints
//! witnesses hold must sign the hash the chain has at their seq; one beyond the
//! chain's end means it was cut.
//!
//! A frame that does not read (short, a wrong checksum) is a torn write only at the
//! end of the newest segment: a crash cut the batch being written, which was never
//! acknowledged. The walk ends before it and says where ([`Torn`]); anywhere else it
//! is a broken chain. What is not read here is whether each body is a whole audit
//! event: the body is what was hashed, and the index (built from the bodies) is
//! checked against the chain apart (`--index`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::super::cadence::{Cadence, missing_by_count, missing_by_time, time_ms};
use super::super::chain::{GENESIS, link_hash};
use super::super::checkpoint::{Checkpoint, Prev};
use super::super::verify::{
    Expectations, VerifyFailure, VerifyReport, WitnessedHead, broken, not_followed, witnessed_heads,
};
use super::format::{self, BadFrame, Frames, HEADER_LEN, Header, Record, SegmentPath};

/// Where the checkpoints' key comes from.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    /// Known already (pinned, or the writer's own).
    Known(Vec<u8>),
    /// The key file in the data directory, read when first needed.
    File(PathBuf),
}

/// A write a crash cut short, at the end of the newest segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Torn {
    pub(crate) path: PathBuf,
    /// Where the valid records end (the header's length or more; 0: not even the
    /// header is whole).
    pub(crate) valid_len: u64,
    /// The file's length.
    pub(crate) file_len: u64,
    pub(crate) problem: &'static str,
}

/// What a walk found.
#[derive(Debug, Clone)]
pub(crate) struct Walked {
    pub(crate) report: VerifyReport,
    /// The chain's id (from the segments' headers), when there is a segment.
    pub(crate) chain_id: Option<[u8; 16]>,
    pub(crate) head_seq: u64,
    pub(crate) head_hash: [u8; 32],
    /// The newest checkpoint, as the next one names it.
    pub(crate) newest: Prev,
    pub(crate) torn: Option<Torn>,
    /// The newest segment, and how long its valid part is.
    pub(crate) last_segment: Option<(SegmentPath, u64)>,
}

/// The walk's state across segments.
struct State {
    key: Key,
    loaded_key: Option<Vec<u8>>,
    cadence: Cadence,
    next: u64,
    prev: [u8; 32],
    chain_id: Option<[u8; 16]>,
    checkpoints: u64,
    previous: Prev,
    previous_cadence: Option<Cadence>,
    /// The first event after the newest checkpoint: seq and time (ms).
    gap_first: Option<(u64, i64)>,
    witnessed: std::iter::Peekable<std::vec::IntoIter<WitnessedHead>>,
    witnessed_matched: u64,
}

/// Walks the segments of the chain in `data_dir`, archived and live (see the module
/// docs).
pub(crate) fn walk(
    data_dir: &Path,
    key: Key,
    expect: &Expectations,
) -> Result<Walked, VerifyFailure> {
    let segments = format::history(data_dir)
        .map_err(|e| broken(None, format!("cannot list the audit segments: {e}")))?;
    walk_segments(segments, key, expect)
}

/// Walks `segments` (by first seq) as one chain.
pub(crate) fn walk_segments(
    segments: Vec<SegmentPath>,
    key: Key,
    expect: &Expectations,
) -> Result<Walked, VerifyFailure> {
    let mut state = State {
        loaded_key: match &key {
            Key::Known(raw) => Some(raw.clone()),
            Key::File(_) => None,
        },
        key,
        cadence: expect.cadence,
        next: 1,
        prev: GENESIS,
        chain_id: None,
        checkpoints: 0,
        previous: Prev::NONE,
        previous_cadence: None,
        gap_first: None,
        witnessed: Vec::new().into_iter().peekable(),
        witnessed_matched: 0,
    };
    if !expect.witnessed.is_empty() {
        let heads = witnessed_heads(&expect.witnessed, || state.key())?;
        state.witnessed = heads.into_iter().peekable();
    }
    let mut torn = None;
    let mut last_segment = None;
    // One buffer for every segment: a fresh 64 MiB for each cost as much in page
    // faults as reading it.
    let mut bytes = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        bytes.clear();
        std::fs::File::open(&segment.path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(|e| {
                broken(
                    Some(state.next),
                    format!("the segment {} cannot be read: {e}", name(segment)),
                )
            })?;
        let valid_len = state.segment(segment, &bytes, newest, &mut torn)?;
        last_segment = Some((segment.clone(), valid_len));
    }
    if let Some(cut) = state.witnessed.next() {
        return Err(broken(
            Some(state.next),
            format!(
                "{} holds a checkpoint at seq {}, but the log ends at seq {}: events after \
                 it were cut off",
                cut.witness,
                cut.seq,
                state.next - 1
            ),
        ));
    }
    let last_seq = state.next - 1;
    Ok(Walked {
        report: VerifyReport {
            events: last_seq,
            checkpoints: state.checkpoints,
            last_seq,
            last_hash: hex::encode(state.prev),
            key: state
                .loaded_key
                .as_deref()
                .map(super::super::checkpoint::encode_public_key),
            key_pinned: expect.pinned_key.is_some(),
            unsigned_tail: last_seq - state.previous.seq,
            witnessed: state.witnessed_matched,
            chains: Vec::new(),
            county_checkpoints: 0,
            unacknowledged_bytes: torn.as_ref().map_or(0, |t: &Torn| t.file_len - t.valid_len),
        },
        chain_id: state.chain_id,
        head_seq: last_seq,
        head_hash: state.prev,
        newest: state.previous,
        torn,
        last_segment,
    })
}

fn name(segment: &SegmentPath) -> String {
    segment
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One event's hash and time, computed off the walk's thread.
struct Hashed {
    hash: [u8; 32],
    time_ms: Option<i64>,
}

/// The one field of a body the walk reads.
#[derive(Deserialize)]
struct TimeOnly<'a> {
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
}

/// An event body's time (ms). A canonical body ends with its top-level `time` and
/// then `upstream_latency_ms` (a number or null): the time is read from there
/// without parsing the rest (a raw `"` cannot occur inside a JSON string, so the last
/// `"time":"` is a key, and the top-level one, since keys are sorted); any other body
/// is parsed.
pub(super) fn body_time_ms(body: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"time\":\"";
    let canonical_end = || -> Option<i64> {
        let at = body.windows(KEY.len()).rposition(|w| w == KEY)?;
        let start = at + KEY.len();
        let end = start + body.get(start..)?.iter().position(|b| *b == b'"')?;
        let latency = body
            .get(end + 1..)?
            .strip_prefix(b",\"upstream_latency_ms\":")?
            .strip_suffix(b"}")?;
        let plain =
            latency == b"null" || (!latency.is_empty() && latency.iter().all(u8::is_ascii_digit));
        if !plain {
            return None;
        }
        time_ms(std::str::from_utf8(body.get(start..end)?).ok()?)
    };
    canonical_end().or_else(|| {
        serde_json::from_slice::<TimeOnly<'_>>(body)
            .ok()
            .and_then(|t| time_ms(&t.time))
    })
}

/// Hashes the events of `records` (and reads their times) on every CPU.
fn hash_all(records: &[Record<'_>]) -> Vec<Hashed> {
    let events: Vec<(u64, &[u8; 32], &[u8])> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event {
                seq,
                prev_hash,
                body,
            } => Some((*seq, *prev_hash, *body)),
            Record::Checkpoint { .. } => None,
        })
        .collect();
    let one = |(seq, prev, body): &(u64, &[u8; 32], &[u8])| Hashed {
        hash: link_hash(*seq, prev, body),
        time_ms: body_time_ms(body),
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || events.len() < 1024 {
        return events.iter().map(one).collect();
    }
    let chunk = events.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = events
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut all = Vec::with_capacity(events.len());
        for part in parts {
            // A hashing thread cannot panic on well-formed slices; treat it as empty.
            all.extend(part.join().unwrap_or_default());
        }
        all
    })
}

impl State {
    fn key(&mut self) -> Result<Vec<u8>, String> {
        if let Some(key) = &self.loaded_key {
            return Ok(key.clone());
        }
        let Key::File(path) = &self.key else {
            return Err("no key".into());
        };
        let key = super::super::checkpoint::public_key(path)
            .map_err(|e| format!("cannot check the checkpoint: {e}"))?;
        self.loaded_key = Some(key.clone());
        Ok(key)
    }

    /// Walks one segment's bytes; returns the length of its valid part.
    fn segment(
        &mut self,
        segment: &SegmentPath,
        bytes: &[u8],
        newest: bool,
        torn: &mut Option<Torn>,
    ) -> Result<u64, VerifyFailure> {
        let name = name(segment);
        let here =
            |seq: u64, problem: String| broken(Some(seq), format!("{problem} (segment {name})"));
        let header = match Header::decode(bytes) {
            Ok(header) => header,
            Err(_) if newest && bytes.len() < HEADER_LEN => {
                *torn = Some(Torn {
                    path: segment.path.clone(),
                    valid_len: 0,
                    file_len: bytes.len() as u64,
                    problem: "the file ends inside its header",
                });
                return Ok(0);
            }
            Err(problem) => return Err(here(self.next, problem)),
        };
        if header.first_seq != segment.first_seq {
            return Err(here(
                segment.first_seq,
                format!(
                    "the segment's header says it starts at seq {}",
                    header.first_seq
                ),
            ));
        }
        match self.chain_id {
            Some(id) if id != header.chain_id => {
                return Err(here(
                    segment.first_seq,
                    "the segment belongs to another chain".into(),
                ));
            }
            _ => self.chain_id = Some(header.chain_id),
        }
        if segment.first_seq > self.next {
            return Err(broken(
                Some(self.next),
                format!(
                    "events {}-{} are missing: no segment holds them",
                    self.next,
                    segment.first_seq - 1
                ),
            ));
        }
        if segment.first_seq < self.next {
            return Err(here(
                segment.first_seq,
                format!(
                    "the segment overlaps the one before it, which ends at seq {}",
                    self.next - 1
                ),
            ));
        }
        let mut frames = Frames::new(bytes, HEADER_LEN);
        let mut records = Vec::new();
        let mut bad: Option<BadFrame> = None;
        for frame in frames.by_ref() {
            match frame {
                Ok(record) => records.push(record),
                Err(b) => bad = Some(b),
            }
        }
        let valid_len = match &bad {
            None => frames.offset(),
            Some(b) => b.offset,
        };
        if let Some(b) = bad {
            if !newest {
                return Err(here(
                    self.next + records.iter().filter(|r| is_event(r)).count() as u64,
                    format!("the segment is damaged at byte {}: {}", b.offset, b.problem),
                ));
            }
            *torn = Some(Torn {
                path: segment.path.clone(),
                valid_len: b.offset as u64,
                file_len: bytes.len() as u64,
                problem: b.problem,
            });
        }
        let hashed = hash_all(&records);
        // The cadence a gap's closing checkpoint signs, for each record: the next
        // checkpoint at or after it.
        let mut closing: Vec<Option<Cadence>> = vec![None; records.len()];
        let mut next_cadence = None;
        for (i, record) in records.iter().enumerate().rev() {
            if let Record::Checkpoint { text, .. } = record {
                next_cadence = Checkpoint::parse(text).ok().and_then(|c| c.cadence);
            }
            closing[i] = next_cadence;
        }
        let mut hashes = hashed.iter();
        for (i, record) in records.iter().enumerate() {
            match *record {
                Record::Event { seq, prev_hash, .. } => {
                    let Some(computed) = hashes.next() else { break };
                    let signed_here = matches!(
                        records.get(i + 1),
                        Some(Record::Checkpoint { seq: at, .. }) if *at == seq
                    );
                    self.event(seq, prev_hash, computed, signed_here, closing[i])
                        .map_err(|f| here(f.seq.unwrap_or(seq), f.problem))?;
                }
                Record::Checkpoint { seq, text } => {
                    self.checkpoint(seq, text)
                        .map_err(|f| here(f.seq.unwrap_or(seq), f.problem))?;
                }
            }
        }
        Ok(valid_len as u64)
    }

    fn event(
        &mut self,
        seq: u64,
        prev_hash: &[u8; 32],
        computed: &Hashed,
        signed_here: bool,
        closing: Option<Cadence>,
    ) -> Result<(), VerifyFailure> {
        if seq != self.next {
            return Err(broken(
                Some(self.next),
                if seq > self.next {
                    format!(
                        "event {} is missing (the next stored event is {seq})",
                        self.next
                    )
                } else {
                    format!("an event has the out-of-order number {seq}")
                },
            ));
        }
        if prev_hash != &self.prev {
            // Event `seq - 1` was altered, or this event's link to it: named at the
            // first of the two.
            return Err(broken(
                Some((seq - 1).max(1)),
                format!(
                    "the hash of event {} is not the previous hash event {seq} stores: one of \
                     the two was altered",
                    seq - 1
                ),
            ));
        }
        let cadence = self
            .cadence
            .loosened_by([self.previous_cadence.as_ref(), closing.as_ref()]);
        let after = self.previous.seq;
        if cadence.due_by_count(after, seq) && !signed_here {
            return Err(broken(Some(seq), missing_by_count(after, seq, &cadence)));
        }
        let time = computed
            .time_ms
            .ok_or_else(|| broken(Some(seq), "the event's body has no RFC 3339 time"))?;
        let (first, first_ms) = *self.gap_first.get_or_insert((seq, time));
        if time > cadence.latest_ms(first_ms) {
            return Err(broken(
                Some(seq),
                missing_by_time(first, seq, time - first_ms, &cadence),
            ));
        }
        while let Some(held) = self.witnessed.next_if(|held| held.seq <= seq) {
            if held.seq < seq || held.hash != hex::encode(computed.hash) {
                return Err(broken(
                    Some(held.seq),
                    format!(
                        "{} holds a checkpoint at seq {} whose hash is not the log's: the log \
                         was rewritten after the witness received it",
                        held.witness, held.seq
                    ),
                ));
            }
            self.witnessed_matched += 1;
        }
        self.prev = computed.hash;
        self.next = seq + 1;
        Ok(())
    }

    fn checkpoint(&mut self, seq: u64, text: &str) -> Result<(), VerifyFailure> {
        let here = |problem: String| broken(Some(seq), problem);
        if seq + 1 != self.next {
            return Err(here(format!(
                "the checkpoint at seq {seq} does not follow its event"
            )));
        }
        let checkpoint =
            Checkpoint::parse(text).map_err(|p| here(format!("the checkpoint: {p}")))?;
        if checkpoint.seq != seq {
            return Err(here(format!(
                "the checkpoint stored at seq {seq} says seq {}",
                checkpoint.seq
            )));
        }
        if checkpoint.hash != hex::encode(self.prev) {
            return Err(here(
                "the checkpoint's hash is not the hash of its event".into(),
            ));
        }
        let key = self.key().map_err(&here)?;
        checkpoint
            .check_signature(text, &key)
            .map_err(|p| here(format!("the checkpoint: {p}")))?;
        if seq <= self.previous.seq {
            return Err(here(format!(
                "a second checkpoint at seq {seq}, after the one at seq {}",
                self.previous.seq
            )));
        }
        if let Some(named) = checkpoint.prev
            && named != self.previous
        {
            return Err(not_followed(named.seq, seq));
        }
        self.checkpoints += 1;
        self.previous = Prev::of(seq, text);
        self.previous_cadence = checkpoint.cadence;
        self.gap_first = None;
        Ok(())
    }
}

fn is_event(record: &Record<'_>) -> bool {
    matches!(record, Record::Event { .. })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_read_from_the_end_of_a_canonical_body_and_any_other_is_parsed() {
        let event = super::super::super::tests::event(1);
        let body = super::super::super::canonical::event_body(&event).unwrap();
        let want = time_ms(&event.time);
        assert!(want.is_some());
        assert_eq!(body_time_ms(body.as_bytes()), want);
        // Not in canonical order: parsed, same answer.
        let loose = format!("{{\"time\":\"{}\",\"x\":1}}", event.time);
        assert_eq!(body_time_ms(loose.as_bytes()), want);
        // A nested "time" earlier in the body does not fool it.
        let nested = body.replacen(
            "\"caller\":{",
            "\"caller\":{\"time\":\"1999-01-01T00:00:00Z\",",
            1,
        );
        assert_eq!(body_time_ms(nested.as_bytes()), want);
        assert_eq!(body_time_ms(b"not json"), None);
    }
}
