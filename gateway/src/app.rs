//! The gateway's shared state, free of any front end: the active configuration, the
//! stores, the authenticator, the limits, the audit log and where configuration
//! changes go. The HTTP layer ([`crate::http`]) and the command line hold one; the
//! domain never sees it whole (a lookup takes [`crate::lookup::Services`]).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::audit::{AuditLog, AuditReader};
use crate::auth::Authenticator;
use crate::clock::{Clock, SystemClock};
use crate::config::ActiveConfig;
use crate::limits::RateLimits;
use crate::live::Live;
use crate::mask::PseudonymKey;
use crate::store::{Storage, Stores};

/// What the limits' key secret is derived from (with the pseudonym key).
const LIMIT_KEYS_SECRET: &str = "county-gateway/limit-keys/v1";

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct App {
    /// The active configuration; swapped whole, read without locks.
    pub config: Arc<ArcSwap<ActiveConfig>>,
    /// Where the stores live (the registry is `live`'s, the audit log `audit`).
    pub storage: Storage,
    pub auth: Arc<Authenticator>,
    /// The key of subject pseudonyms and the `pseudonym` mask.
    pub pseudonym: Arc<PseudonymKey>,
    /// Where every answer is recorded before it is sent.
    pub audit: Arc<dyn AuditLog>,
    /// Where the privacy officer's API reads the log.
    pub audit_reader: Arc<dyn AuditReader>,
    /// The callers' rate limits, grant quotas and departments' capacities.
    pub limits: Arc<RateLimits>,
    /// The Redis the limits are kept on, when they are (its state for `/metrics`).
    pub redis_limits: Option<Arc<crate::limits::RedisLimits>>,
    /// Where the configuration comes from; changes go through it.
    pub live: Arc<Live>,
    /// Where "now" comes from (the machine's clock; tests move theirs forward).
    pub clock: Arc<dyn Clock>,
    /// How far each witness is behind (none when no witness is configured).
    pub witnesses: Arc<[Arc<crate::witness::sender::WitnessStatus>]>,
    /// Requests, department calls and policy decisions, counted for `/metrics`.
    pub traffic: crate::traffic::Traffic,
}

impl App {
    pub fn new(
        config: ActiveConfig,
        live: Arc<Live>,
        storage: Storage,
        stores: &Stores,
        auth: Arc<Authenticator>,
        pseudonym: Arc<PseudonymKey>,
        audit: Arc<dyn AuditLog>,
    ) -> App {
        // Limit keys are hashed under a secret derived from the pseudonym key: the
        // same across restarts (the daily counts are kept by key) and replicas.
        let key_secret = pseudonym.derive(LIMIT_KEYS_SECRET);
        let limits = Arc::new(
            RateLimits::new(
                &config.rate_limits,
                stores.limiter.clone(),
                stores.day_counts.clone(),
            )
            .with_key_secret(&key_secret),
        );
        App {
            config: Arc::new(ArcSwap::from_pointee(config)),
            storage,
            auth,
            pseudonym,
            audit,
            audit_reader: stores.audit_reader.clone(),
            limits,
            redis_limits: stores.redis.clone(),
            live,
            clock: Arc::new(SystemClock),
            witnesses: Arc::new([]),
            traffic: crate::traffic::Traffic::default(),
        }
    }

    /// The app with its "now" from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> App {
        self.clock = clock;
        self
    }

    /// The app with the witnesses' statuses shown in `/metrics`.
    pub fn with_witnesses(
        mut self,
        witnesses: Vec<Arc<crate::witness::sender::WitnessStatus>>,
    ) -> App {
        self.witnesses = witnesses.into();
        self
    }

    /// Checks `changes`, records `event`, commits them and puts the configuration
    /// they make in force (see [`Live::change`]).
    pub async fn change(
        &self,
        changes: Vec<crate::registry::Change>,
        event: crate::audit::AuditEvent,
    ) -> Result<crate::live::Changed, crate::live::ChangeError> {
        self.live
            .change(&self.config, &*self.audit, changes, event)
            .await
    }
}

impl App {
    /// What a lookup for the request `request_id` needs of the app.
    pub fn services<'a>(&'a self, request_id: &'a str) -> crate::lookup::Services<'a> {
        crate::lookup::Services {
            pseudonym: &self.pseudonym,
            limits: &self.limits,
            clock: &*self.clock,
            traffic: &self.traffic,
            request_id,
        }
    }
}
