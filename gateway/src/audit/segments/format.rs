//! The bytes of a segment file (the format is specified in the [module docs of
//! `segments`](super)): the header, one framed record, and reading a file's frames
//! back — where the valid frames end, and why.

use std::path::{Path, PathBuf};

/// The directory of the segment files inside the data directory.
pub const DIR: &str = "chain";

/// The directory archived segment files are moved to, inside the data directory.
pub const ARCHIVE_DIR: &str = "archive/chain";

/// A segment file's name ends in this.
pub const EXTENSION: &str = "seg";

/// The first 8 bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"CGAUDSG1";

/// The header: magic, chain id (16 bytes), first seq (8 bytes, big-endian).
pub const HEADER_LEN: usize = 32;

/// A frame's own bytes before its payload: length and checksum.
pub const FRAME_HEAD: usize = 8;

/// An event record's payload before its body: kind, seq, previous hash.
pub const EVENT_HEAD: usize = 1 + 8 + 32;

/// The largest payload a frame may declare (an event body is bounded far below).
pub const MAX_PAYLOAD: usize = 16 << 20;

/// The record kinds.
pub const KIND_EVENT: u8 = 1;
pub const KIND_CHECKPOINT: u8 = 2;

/// A segment file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub chain_id: [u8; 16],
    pub first_seq: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..24].copy_from_slice(&self.chain_id);
        out[24..].copy_from_slice(&self.first_seq.to_be_bytes());
        out
    }

    /// The header at the start of `bytes`, if it is one.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Err("the file is shorter than a segment header".into());
        };
        if &head[..8] != MAGIC {
            return Err("the file is not an audit segment (wrong magic bytes)".into());
        }
        let mut chain_id = [0; 16];
        chain_id.copy_from_slice(&head[8..24]);
        Ok(Header {
            chain_id,
            first_seq: be_u64(&head[24..32]),
        })
    }
}

/// One record, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// An event: its seq, the hash of the event before it (as stored), its canonical
    /// body.
    Event {
        seq: u64,
        prev_hash: &'a [u8; 32],
        body: &'a [u8],
    },
    /// A checkpoint signing the event `seq`: its whole text.
    Checkpoint { seq: u64, text: &'a str },
}

impl Record<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            Record::Event { seq, .. } | Record::Checkpoint { seq, .. } => *seq,
        }
    }
}

/// Appends an event record's frame to `out`.
pub fn encode_event(out: &mut Vec<u8>, seq: u64, prev_hash: &[u8; 32], body: &[u8]) {
    frame(out, KIND_EVENT, seq, &[prev_hash, body]);
}

/// Appends a checkpoint record's frame to `out`.
pub fn encode_checkpoint(out: &mut Vec<u8>, seq: u64, text: &str) {
    frame(out, KIND_CHECKPOINT, seq, &[text.as_bytes()]);
}

fn frame(out: &mut Vec<u8>, kind: u8, seq: u64, parts: &[&[u8]]) {
    let len = 1 + 8 + parts.iter().map(|p| p.len()).sum::<usize>();
    let start = out.len();
    // A payload never reaches 4 GiB: events are bounded far below MAX_PAYLOAD.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    let payload = out.len();
    out.push(kind);
    out.extend_from_slice(&seq.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    let crc = crc32c::crc32c(&out[payload..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Why the frame at an offset is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    /// The frame's offset in the file.
    pub offset: usize,
    pub problem: &'static str,
}

/// The frames of one file's bytes after its header, in order; stops at the first
/// frame that is not valid (and yields why). Its `Debug` shows where it is, never
/// the bytes (they are events).
pub struct Frames<'a> {
    bytes: &'a [u8],
    pos: usize,
    stopped: bool,
}

impl std::fmt::Debug for Frames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("pos", &self.pos)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl<'a> Frames<'a> {
    /// The frames of `bytes` (a whole file) from `start`.
    pub fn new(bytes: &'a [u8], start: usize) -> Frames<'a> {
        Frames {
            bytes,
            pos: start,
            stopped: false,
        }
    }

    /// Where the next frame would start: after the last valid one, once the iterator
    /// ended.
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Record<'a>, BadFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped || self.pos >= self.bytes.len() {
            return None;
        }
        match read_frame(self.bytes, self.pos) {
            Ok((record, end)) => {
                self.pos = end;
                Some(Ok(record))
            }
            Err(problem) => {
                self.stopped = true;
                Some(Err(BadFrame {
                    offset: self.pos,
                    problem,
                }))
            }
        }
    }
}

/// The record at `pos` and where the next frame starts.
pub fn read_frame(bytes: &[u8], pos: usize) -> Result<(Record<'_>, usize), &'static str> {
    let rest = bytes.get(pos..).unwrap_or_default();
    if rest.len() < FRAME_HEAD {
        return Err("the file ends inside a frame's length and checksum");
    }
    let len = usize::try_from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]))
        .unwrap_or(usize::MAX);
    let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if !(1 + 8..=MAX_PAYLOAD).contains(&len) {
        return Err("a frame declares an impossible length");
    }
    let Some(payload) = rest.get(FRAME_HEAD..FRAME_HEAD + len) else {
        return Err("the file ends inside a frame");
    };
    if crc32c::crc32c(payload) != crc {
        return Err("a frame's checksum does not match its bytes");
    }
    let seq = be_u64(&payload[1..9]);
    let record = match payload[0] {
        KIND_EVENT => {
            let Some((prev_hash, body)) = payload[9..].split_first_chunk::<32>() else {
                return Err("an event record is too short for its previous hash");
            };
            Record::Event {
                seq,
                prev_hash,
                body,
            }
        }
        KIND_CHECKPOINT => match std::str::from_utf8(&payload[9..]) {
            Ok(text) => Record::Checkpoint { seq, text },
            Err(_) => return Err("a checkpoint record is not UTF-8 text"),
        },
        _ => return Err("a record of an unknown kind"),
    };
    Ok((record, pos + FRAME_HEAD + len))
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(out)
}

/// One segment file, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPath {
    /// The seq its name says its first record has.
    pub first_seq: u64,
    pub path: PathBuf,
}

/// The name of the segment whose first event is `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{EXTENSION}")
}

/// The segment files in `dir`, by first seq. Other files are not read; a name that
/// looks like a segment's but is not exactly one is an error (a renamed file).
pub fn list(dir: &Path) -> std::io::Result<Vec<SegmentPath>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else {
            continue;
        };
        let first_seq = stem
            .parse::<u64>()
            .ok()
            .filter(|seq| file_name(*seq) == name)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a file in the chain directory is named like a segment but is not one",
                )
            })?;
        found.push(SegmentPath {
            first_seq,
            path: entry.path(),
        });
    }
    found.sort_by_key(|segment| segment.first_seq);
    Ok(found)
}

/// Every segment of the chain in `data_dir`: the archived ones, then the live ones,
/// by first seq.
pub fn history(data_dir: &Path) -> std::io::Result<Vec<SegmentPath>> {
    let mut all = list(&data_dir.join(ARCHIVE_DIR))?;
    all.extend(list(&data_dir.join(DIR))?);
    all.sort_by_key(|segment| segment.first_seq);
    Ok(all)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_damage_is_named() {
        let mut bytes = Header {
            chain_id: [7; 16],
            first_seq: 1,
        }
        .encode()
        .to_vec();
        encode_event(&mut bytes, 1, &[0; 32], b"{\"a\":1}");
        encode_checkpoint(&mut bytes, 1, "text\n");
        assert_eq!(Header::decode(&bytes).unwrap().first_seq, 1);
        let records: Vec<_> = Frames::new(&bytes, HEADER_LEN)
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            records,
            vec![
                Record::Event {
                    seq: 1,
                    prev_hash: &[0; 32],
                    body: b"{\"a\":1}"
                },
                Record::Checkpoint {
                    seq: 1,
                    text: "text\n"
                }
            ]
        );
        // Any single flipped byte after the header stops the frames there or before.
        for at in HEADER_LEN..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let read: Vec<_> = Frames::new(&damaged, HEADER_LEN).collect();
            assert!(read.last().unwrap().is_err(), "byte {at}");
        }
        // A cut at every offset leaves the whole records before it.
        for cut in HEADER_LEN..bytes.len() {
            let mut frames = Frames::new(&bytes[..cut], HEADER_LEN);
            let good = frames.by_ref().take_while(Result::is_ok).count();
            assert!(good < 2, "cut at {cut}");
        }
    }

    #[test]
    fn only_exact_segment_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file_name(5)), b"").unwrap();
        std::fs::write(dir.path().join(file_name(1)), b"").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        let listed: Vec<u64> = list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_seq)
            .collect();
        assert_eq!(listed, vec![1, 5]);
        std::fs::write(dir.path().join("7.seg"), b"").unwrap();
        assert!(list(dir.path()).is_err());
    }
}
