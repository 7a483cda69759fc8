//! The gateway's "now" and "today in China", injected wherever a request's answer
//! depends on them (a record's age, the day a grant is valid on), so tests move time
//! forward instead of waiting. The audit log's own timestamps and the caches'
//! lifetimes stay on the machine's clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};

/// China Standard Time is UTC+8 all year (no daylight saving).
const CHINA_OFFSET_HOURS: i64 = 8;

/// The calendar day in China at `at`.
pub fn china_date(at: DateTime<Utc>) -> NaiveDate {
    (at + Duration::hours(CHINA_OFFSET_HOURS)).date_naive()
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Today in China.
    fn today(&self) -> NaiveDate {
        china_date(self.now())
    }

    /// Now as the API writes times: RFC 3339, milliseconds, `Z`.
    fn now_rfc3339(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The machine's clock plus an offset that moves only when told to: what tests
/// inject to let time pass without waiting (or to turn it back, as a machine's clock
/// set back does).
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_ms: AtomicI64,
}

impl ManualClock {
    /// Moves this clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Turns this clock back by `by`.
    pub fn rewind(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_sub(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_in_china_turns_at_midnight_china_time() {
        let before = DateTime::parse_from_rfc3339("2026-12-04T15:59:59Z").unwrap();
        let after = DateTime::parse_from_rfc3339("2026-12-04T16:00:00Z").unwrap();
        assert_eq!(china_date(before.to_utc()).to_string(), "2026-12-04");
        assert_eq!(china_date(after.to_utc()).to_string(), "2026-12-05");
    }

    #[test]
    fn a_manual_clock_moves_when_told() {
        let clock = ManualClock::default();
        let start = clock.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(clock.now() - start >= Duration::seconds(3600));
        let later = clock.now();
        clock.rewind(std::time::Duration::from_secs(7200));
        assert!(clock.now() < later - Duration::seconds(7000));
    }
}
