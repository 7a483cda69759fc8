//! The checkpoint cadence: how often the writer signs the head of the chain, and the
//! rule that [`verify`](super::verify()) and the start-up check hold every log to, so
//! that removing checkpoints (to rewrite what they signed) leaves a gap that is named.
//!
//! The writer signs a checkpoint **every `every_events` events** (the event at
//! `C + every_events`, `C` the previous checkpoint's seq, is always signed in the same
//! transaction that commits it) and **at most `every` after the first event it has
//! not signed yet** (its timer; a batch that commits after the deadline signs in its
//! own transaction). So, from the first event on:
//!
//! - *count*: after a checkpoint at seq `C`, the event at `C + every_events` carries
//!   a checkpoint;
//! - *time*: between two checkpoints, no event is later than the first event after
//!   the earlier one by more than `every` + [`GRACE`] (event times are inside the
//!   hash-chained bodies, so they cannot be moved without breaking the chain).
//!
//! The unsigned tail after the newest checkpoint — which a crash legitimately leaves
//! — obeys the same two rules: fewer than `every_events` events, spanning at most
//! `every` + [`GRACE`]. That is also the bound on what can be cut off or appended
//! unseen after a crash: at most `every_events − 1` events written within `every`
//! (+ one commit) before it; under load the count trigger signs more often, so the
//! tail never holds more than `every_events − 1` events however busy the gateway is.
//!
//! Which cadence applies: a v2 checkpoint signs the cadence its writer ran with
//! (`cadence:` line), so a gap is held to the loosest of the configured cadence and
//! the cadences signed by the checkpoints on either side of it. Changing the
//! configuration later therefore never makes older history fail, and a cadence
//! nobody signed can only loosen the rule for v1 checkpoints and the tail (which
//! the operator's configuration governs).

use std::fmt;
use std::time::Duration;

/// Slack on the time rule: an event's time is taken by the request before it waits
/// in the writer's queue, and the writer's timer fires between batches.
pub const GRACE: Duration = Duration::from_secs(30);

/// How often the writer signs the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// A checkpoint every this many events (0: no count trigger).
    pub every_events: u64,
    /// A checkpoint at most this long after the first unsigned event.
    pub every: Duration,
}

/// The default number of events between checkpoints.
pub const DEFAULT_EVERY_EVENTS: u64 = 1000;

/// The default longest time an event stays unsigned.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(10);

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence {
            every_events: DEFAULT_EVERY_EVENTS,
            every: DEFAULT_EVERY,
        }
    }
}

impl Cadence {
    /// The looser of two cadences, rule by rule (no count trigger is the loosest).
    pub fn looser(self, other: Cadence) -> Cadence {
        let every_events = if self.every_events == 0 || other.every_events == 0 {
            0
        } else {
            self.every_events.max(other.every_events)
        };
        Cadence {
            every_events,
            every: self.every.max(other.every),
        }
    }

    /// The looser of this cadence and any that are given.
    pub fn loosened_by<'a>(self, others: impl IntoIterator<Item = Option<&'a Cadence>>) -> Cadence {
        others
            .into_iter()
            .flatten()
            .fold(self, |cadence, other| cadence.looser(*other))
    }

    /// Whether the event at `seq` must carry a checkpoint, the previous one being at
    /// `after`.
    pub fn due_by_count(&self, after: u64, seq: u64) -> bool {
        self.every_events > 0 && seq.saturating_sub(after) >= self.every_events
    }

    /// The latest time (ms since the epoch) an event may have in the gap whose first
    /// event is at `first_ms`.
    pub fn latest_ms(&self, first_ms: i64) -> i64 {
        let allowed = self.every.saturating_add(GRACE).as_millis();
        first_ms.saturating_add(i64::try_from(allowed).unwrap_or(i64::MAX))
    }

    /// The `cadence:` line's value: `1000 events, 10000 ms`.
    pub(crate) fn text(&self) -> String {
        format!(
            "{} events, {} ms",
            self.every_events,
            self.every.as_millis()
        )
    }

    /// Reads [`Cadence::text`].
    pub(crate) fn parse(text: &str) -> Option<Cadence> {
        let (events, ms) = text.split_once(" events, ")?;
        let ms = ms.strip_suffix(" ms")?;
        let number = |digits: &str| -> Option<u64> {
            let plain = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            plain.then(|| digits.parse().ok()).flatten()
        };
        Some(Cadence {
            every_events: number(events)?,
            every: Duration::from_millis(number(ms)?),
        })
    }
}

impl fmt::Display for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.every_events > 0 {
            write!(f, "every {} events and ", self.every_events)?;
        }
        write!(f, "at least every {} ms", self.every.as_millis())
    }
}

/// An event's recorded time (RFC 3339) in ms since the epoch.
pub fn time_ms(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The problem when the event at `seq` should carry a checkpoint by count.
pub(crate) fn missing_by_count(after: u64, seq: u64, cadence: &Cadence) -> String {
    let since = if after == 0 {
        "the first event".to_owned()
    } else {
        format!("the checkpoint at seq {after}")
    };
    format!(
        "no checkpoint at seq {seq}: {} events since {since}, but the writer signs every {} \
         events (checkpoints were removed)",
        seq - after,
        cadence.every_events
    )
}

/// The problem when the event at `seq` is too long after the gap's first event.
pub(crate) fn missing_by_time(first: u64, seq: u64, apart_ms: i64, cadence: &Cadence) -> String {
    format!(
        "no checkpoint between seq {first} and seq {seq}, which are {} s apart, but the writer \
         signs at least every {} s (checkpoints were removed)",
        apart_ms / 1000,
        cadence.every.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cadence_line_round_trips_and_is_strict() {
        let cadence = Cadence {
            every_events: 1000,
            every: Duration::from_millis(10_000),
        };
        assert_eq!(cadence.text(), "1000 events, 10000 ms");
        assert_eq!(Cadence::parse(&cadence.text()), Some(cadence));
        assert_eq!(
            Cadence::parse("0 events, 0 ms"),
            Some(Cadence {
                every_events: 0,
                every: Duration::ZERO
            })
        );
        for bad in [
            "1000 events,10000 ms",
            "01000 events, 10000 ms",
            "1000 events, 10000ms",
            "-1 events, 5 ms",
            "1000 events, 10 s",
            "",
        ] {
            assert_eq!(Cadence::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn looser_takes_the_larger_bound_of_each_rule() {
        let a = Cadence {
            every_events: 10,
            every: Duration::from_secs(60),
        };
        let b = Cadence {
            every_events: 1000,
            every: Duration::from_secs(5),
        };
        assert_eq!(
            a.looser(b),
            Cadence {
                every_events: 1000,
                every: Duration::from_secs(60)
            }
        );
        let none = Cadence {
            every_events: 0,
            every: Duration::ZERO,
        };
        assert_eq!(
            a.looser(none).every_events,
            0,
            "no count trigger is loosest"
        );
        assert_eq!(a.loosened_by([None, Some(&b)]), a.looser(b));
    }

    #[test]
    fn the_rules_in_numbers() {
        let cadence = Cadence {
            every_events: 5,
            every: Duration::from_secs(10),
        };
        assert!(!cadence.due_by_count(10, 14));
        assert!(cadence.due_by_count(10, 15));
        assert_eq!(cadence.latest_ms(1_000), 1_000 + 40_000);
        assert!(
            !Cadence {
                every_events: 0,
                ..cadence
            }
            .due_by_count(0, u64::MAX)
        );
        assert_eq!(time_ms("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(time_ms("yesterday"), None);
    }
}
