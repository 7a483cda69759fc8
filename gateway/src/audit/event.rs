//! The audit event the gateway fills for every lookup and administrative act, and
//! what the log answers about an appended event. An event carries pseudonyms and
//! masked forms only; its contents are still never logged.

use serde::{Deserialize, Serialize};

/// One audit event. The gateway fills it; the log numbers, chains and stores it.
///
/// The members of this struct and of every struct in it are declared in the byte order
/// of their names, so that serializing it writes the canonical body directly (sorted
/// keys, see [`super::canonical`]); a test holds that to the reference writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub cache_hit: bool,
    pub caller: AuditCaller,
    pub case_id: Option<String>,
    pub connector: Option<String>,
    /// Hidden from the citizen's access report until this day (ISO date), when a
    /// grant that released data asks for delayed disclosure (an enforcement case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_after: Option<String>,
    /// UUIDv7 string made by the caller.
    pub event_id: String,
    pub fields_masked: Vec<MaskedField>,
    pub fields_returned: Vec<String>,
    /// A verification's (核验) fields and what each came to — never the values stated
    /// or held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields_verified: Vec<VerifiedField>,
    pub fields_withheld: Vec<WithheldField>,
    /// The form this lookup filled a part of (`POST /v1/forms/{form}/fill`); the
    /// lookups of one fill share its request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// The jurisdiction check behind a lookup whose grants hold only for residents of
    /// the caller's township: `inside` or `outside` (the authority was asked; an
    /// unknown person is outside), or `linked` (a person reached through a form's
    /// subject who was inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    pub kind: EventKind,
    /// Every other person whose data the released view holds (a spouse, children,
    /// household members), each with the fields released about them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<LinkedPerson>,
    pub operation: Option<String>,
    pub outcome: AuditOutcome,
    pub policy_version: Option<String>,
    pub purpose: Option<String>,
    /// Why a person made an admin change (disable, purge, revoke, refuse), in their
    /// words: checked free text ([`crate::text::free_text`]), at most
    /// [`MAX_REASON_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub request_id: String,
    pub rules: Vec<String>,
    pub subject_masked: Option<String>,
    /// Keyed HMAC of the subject's ID, never the bare ID.
    pub subject_pseudonym: Option<String>,
    /// The township the subject lives in, when the gateway learnt it (from the
    /// county's authority for residence): for the privacy officer, never the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_township: Option<String>,
    /// RFC 3339 UTC with milliseconds, made by the caller.
    pub time: String,
    pub upstream_latency_ms: Option<u64>,
}

/// The longest reason an admin event keeps, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// What kind of act an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Lookup,
    Admin,
    /// A verification (核验): stated values compared with a department's record,
    /// nothing of the record released.
    Verification,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditCaller {
    pub app: Option<String>,
    pub department: Option<String>,
    pub roles: Vec<String>,
    pub source_ip: Option<String>,
    pub township: Option<String>,
    pub user: String,
    /// The villages the caller serves (a grid worker's), when the token named any;
    /// left out when empty, so events of callers without villages keep their bodies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub villages: Vec<String>,
}

/// A person other than the subject whose data a lookup released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkedPerson {
    /// The released fields about them (`spouse.name`, `children[].birth_date`).
    pub fields: Vec<String>,
    /// Keyed HMAC of their ID number.
    pub pseudonym: String,
}

/// A field that left the gateway masked, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaskedField {
    pub field: String,
    pub mask: String,
}

/// A field a verification compared, and what it came to: `match`, `mismatch` or
/// `cannot_verify` (with `reason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifiedField {
    pub field: String,
    /// Why it could not be verified (`cannot_verify` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub result: String,
}

/// A field that was withheld, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WithheldField {
    pub field: String,
    pub reason: String,
    pub rule: Option<String>,
}

/// How the request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditOutcome {
    /// The problem type, when the answer was an error.
    pub problem: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
}

/// What the log says about an appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The log's chain id: which log the event is in (see [`super::sqlite::read_chain_id`]).
    pub chain_id: String,
    pub seq: u64,
    /// `hash(seq)`, lowercase hex.
    pub hash: String,
}

/// The event's values that the store keeps in indexed columns for searching, next to
/// the canonical body they are taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Columns {
    pub(crate) event_id: String,
    pub(crate) time: String,
    pub(crate) request_id: String,
    pub(crate) user: String,
    pub(crate) township: Option<String>,
    pub(crate) connector: Option<String>,
    pub(crate) purpose: Option<String>,
    pub(crate) subject_pseudonym: Option<String>,
    pub(crate) status: u16,
    /// The pseudonyms of the linked persons, indexed so that each finds the event.
    pub(crate) linked: Vec<String>,
}

impl Columns {
    pub(crate) fn of(event: &AuditEvent) -> Columns {
        Columns {
            event_id: event.event_id.clone(),
            time: event.time.clone(),
            request_id: event.request_id.clone(),
            user: event.caller.user.clone(),
            township: event.caller.township.clone(),
            connector: event.connector.clone(),
            purpose: event.purpose.clone(),
            subject_pseudonym: event.subject_pseudonym.clone(),
            status: event.outcome.status,
            linked: event.linked.iter().map(|l| l.pseudonym.clone()).collect(),
        }
    }
}

impl AuditCaller {
    /// An authenticated caller, from the address `peer`.
    pub fn of(caller: &crate::auth::Caller, peer: Option<std::net::SocketAddr>) -> AuditCaller {
        AuditCaller {
            user: caller.user.clone(),
            roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            township: caller.township.clone(),
            villages: caller.villages.iter().cloned().collect(),
            department: caller.department.clone(),
            app: caller.app.clone(),
            source_ip: peer.map(|p| p.ip().to_string()),
        }
    }

    /// The gateway itself, for events no person caused (its configuration loaded).
    pub fn gateway() -> AuditCaller {
        AuditCaller {
            user: "gateway".to_owned(),
            roles: Vec::new(),
            township: None,
            villages: Vec::new(),
            department: None,
            app: None,
            source_ip: None,
        }
    }
}

impl AuditEvent {
    /// An admin event — the configuration loaded, the audit log read — by `caller`,
    /// with outcome 200; callers fill in what else applies.
    pub fn admin(request_id: &str, caller: AuditCaller, operation: &str) -> AuditEvent {
        AuditEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            request_id: request_id.to_owned(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind: EventKind::Admin,
            caller,
            purpose: None,
            reason: None,
            case_id: None,
            connector: None,
            operation: Some(operation.to_owned()),
            subject_pseudonym: None,
            subject_masked: None,
            subject_township: None,
            jurisdiction: None,
            linked: Vec::new(),
            fields_returned: Vec::new(),
            fields_masked: Vec::new(),
            fields_withheld: Vec::new(),
            fields_verified: Vec::new(),
            rules: Vec::new(),
            policy_version: None,
            outcome: AuditOutcome {
                status: 200,
                problem: None,
            },
            upstream_latency_ms: None,
            cache_hit: false,
            disclose_after: None,
            form: None,
        }
    }
}
