//! The authenticator's "now", in Unix seconds. Tests move it forward to expire
//! tokens without waiting; nothing else does.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Wall-clock time plus an offset that only tests change. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    offset_s: Arc<AtomicI64>,
}

impl Clock {
    pub(crate) fn now(&self) -> i64 {
        chrono::Utc::now()
            .timestamp()
            .saturating_add(self.offset_s.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward.
    #[cfg(test)]
    pub(crate) fn advance(&self, secs: i64) {
        self.offset_s.fetch_add(secs, Ordering::Relaxed);
    }
}
