//! Console sessions: server-side, in memory, reached by an opaque random id in an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS). A session holds the
//! signed-in person as a [`Caller`] — made from a token the gateway verified, exactly
//! as for an API call — and a CSRF token that every form of the session carries.
//!
//! A session ends when it has been idle for [`Timeouts::idle`], when it is older
//! than [`Timeouts::absolute`], when the token it came from expires, or on sign-out.
//! Times come from the app's clock, so tests move it instead of waiting. Before
//! sign-in, a random pre-session token in its own cookie protects the sign-in form
//! (double submit).
//!
//! Session ids and CSRF tokens are never logged; the store keeps only a digest of
//! each id, so a memory dump of the map does not give a usable cookie.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::clock::Clock;

/// The session cookie.
pub const SESSION_COOKIE: &str = "gw_session";
/// The pre-session (sign-in form) CSRF cookie.
pub const PRESESSION_COOKIE: &str = "gw_presession";

/// The most sessions held at once (the oldest idle ones go first).
const MAX_SESSIONS: u64 = 100_000;

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after sign-in, whatever happens.
    pub absolute: Duration,
}

impl Default for Timeouts {
    /// 30 minutes idle (a service window's pause), 8 hours in all (a working day).
    fn default() -> Timeouts {
        Timeouts {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(8 * 3600),
        }
    }
}

/// A signed-in person.
#[derive(Debug)]
pub struct Session {
    pub caller: Arc<Caller>,
    /// The token forms of this session carry.
    pub csrf: String,
    pub started: DateTime<Utc>,
    /// When the session was last used, in Unix milliseconds.
    last_seen: AtomicI64,
}

/// The sessions of one gateway process.
#[derive(Debug, Clone)]
pub struct Sessions {
    map: moka::sync::Cache<[u8; 32], Arc<Session>>,
    timeouts: Timeouts,
    clock: Arc<dyn Clock>,
}

/// A fresh random token: 32 bytes, base64url.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Compares two secrets without stopping at the first difference.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (digest(a), digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Sessions {
    pub fn new(timeouts: Timeouts, clock: Arc<dyn Clock>) -> Sessions {
        Sessions {
            map: moka::sync::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                // A memory bound only: expiry is decided by the app's clock below.
                .time_to_idle(timeouts.idle)
                .build(),
            timeouts,
            clock,
        }
    }

    /// Starts a session for `caller`; returns the cookie value.
    pub fn start(&self, caller: Arc<Caller>) -> String {
        let id = random_token();
        let now = self.clock.now();
        let session = Session {
            caller,
            csrf: random_token(),
            started: now,
            last_seen: AtomicI64::new(now.timestamp_millis()),
        };
        self.map.insert(digest(&id), Arc::new(session));
        id
    }

    /// The live session with this cookie value (and marks it seen); `None` when
    /// there is none or it has ended (then it is removed).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let key = digest(id);
        let session = self.map.get(&key)?;
        let now = self.clock.now();
        let idle_ms = i64::try_from(self.timeouts.idle.as_millis()).unwrap_or(i64::MAX);
        let absolute =
            chrono::Duration::from_std(self.timeouts.absolute).unwrap_or(chrono::Duration::MAX);
        let last_seen = session.last_seen.load(Ordering::Relaxed);
        let ended = now.timestamp_millis().saturating_sub(last_seen) > idle_ms
            || now - session.started > absolute
            || now.timestamp() >= session.caller.expires_at;
        if ended {
            self.map.invalidate(&key);
            return None;
        }
        session
            .last_seen
            .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
        Some(session)
    }

    /// Ends the session with this cookie value, if any.
    pub fn end(&self, id: &str) {
        self.map.invalidate(&digest(id));
    }

    /// How long the session cookie should live in the browser.
    pub fn cookie_max_age(&self) -> Duration {
        self.timeouts.absolute
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::auth::Role;
    use crate::clock::ManualClock;

    fn caller(expires_at: i64) -> Arc<Caller> {
        Arc::new(Caller {
            user: "clerk-dongling".into(),
            issuer: "test".into(),
            roles: BTreeSet::from([Role::Clerk]),
            township: Some("139901101".into()),
            county: Some("139901".into()),
            villages: BTreeSet::new(),
            department: None,
            app: None,
            expires_at,
        })
    }

    fn sessions() -> (Sessions, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        (Sessions::new(Timeouts::default(), clock.clone()), clock)
    }

    #[test]
    fn a_session_ends_after_its_idle_time() {
        let (sessions, clock) = sessions();
        let far = clock.now().timestamp() + 86_400;
        let id = sessions.start(caller(far));
        clock.advance(Duration::from_secs(29 * 60));
        assert!(sessions.get(&id).is_some(), "29 minutes idle is not 30");
        clock.advance(Duration::from_secs(31 * 60));
        assert!(sessions.get(&id).is_none(), "31 minutes idle ends it");
        assert!(sessions.get(&id).is_none(), "and it stays ended");
    }

    #[test]
    fn a_session_ends_at_its_absolute_limit_however_busy() {
        let (sessions, clock) = sessions();
        let far = clock.now().timestamp() + 86_400;
        let id = sessions.start(caller(far));
        for _ in 0..16 {
            clock.advance(Duration::from_secs(29 * 60));
            assert!(sessions.get(&id).is_some());
        }
        clock.advance(Duration::from_secs(29 * 60));
        assert!(sessions.get(&id).is_none(), "8 hours in all");
    }

    #[test]
    fn a_session_ends_with_its_token_and_on_sign_out() {
        let (sessions, clock) = sessions();
        let soon = clock.now().timestamp() + 60;
        let id = sessions.start(caller(soon));
        assert!(sessions.get(&id).is_some());
        clock.advance(Duration::from_secs(61));
        assert!(sessions.get(&id).is_none(), "the token expired");

        let far = clock.now().timestamp() + 86_400;
        let id = sessions.start(caller(far));
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
        assert!(sessions.get("not-a-session").is_none());
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, ""));
    }
}
