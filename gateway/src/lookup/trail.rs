//! What a lookup leaves in the audit log. The trail fills in as the pipeline goes —
//! purpose, connector, the subject's pseudonym and masked form, the decision — and
//! becomes one [`AuditEvent`] once the answer is known, before it is sent.

use std::net::SocketAddr;

use chrono::{SecondsFormat, Utc};

use crate::audit::{
    AuditCaller, AuditEvent, AuditOutcome, EventKind, LinkedPerson, MaskedField, VerifiedField,
    WithheldField,
};
use crate::auth::Caller;
use crate::policy::Outcome;

/// The audit facts of one lookup, gathered along the pipeline.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    pub(crate) purpose: Option<String>,
    pub(crate) case_id: Option<String>,
    pub(crate) connector: Option<String>,
    pub(crate) operation: Option<String>,
    pub(crate) subject_pseudonym: Option<String>,
    pub(crate) subject_masked: Option<String>,
    pub(crate) policy_version: Option<String>,
    pub(crate) upstream_latency_ms: Option<u64>,
    pub(crate) cache_hit: bool,
    pub(crate) form: Option<String>,
    /// `inside`, `outside` or `linked` when a grant needed the jurisdiction check.
    pub(crate) jurisdiction: Option<&'static str>,
    /// Where the subject lives, when the authority said.
    pub(crate) subject_township: Option<String>,
    /// The other persons the released view disclosed.
    pub(crate) linked: Vec<LinkedPerson>,
    /// A verification's trail (an event of kind `verification`), with what each
    /// compared field came to once known.
    pub(crate) verification: bool,
    pub(crate) verified: Vec<VerifiedField>,
    returned: Vec<String>,
    masked: Vec<MaskedField>,
    withheld: Vec<WithheldField>,
    rules: Vec<String>,
    disclose_after: Option<String>,
}

impl Trail {
    /// The trail of a verification (an event of kind `verification`).
    pub(crate) fn verification() -> Trail {
        Trail {
            verification: true,
            ..Trail::default()
        }
    }

    /// Records what the decision released, masked and withheld.
    pub(crate) fn decided(&mut self, outcome: &Outcome) {
        for (field, returned) in &outcome.fields {
            self.returned.push(field.clone());
            if returned.mask != "keep" {
                self.masked.push(MaskedField {
                    field: field.clone(),
                    mask: returned.mask.to_owned(),
                });
            }
        }
        self.withheld(outcome);
    }

    /// Records what the decision withheld and the rules behind it, and nothing as
    /// released (a verification's decision: its values are compared, not sent).
    pub(crate) fn withheld(&mut self, outcome: &Outcome) {
        self.withheld = outcome
            .withheld
            .iter()
            .map(|w| WithheldField {
                field: w.field.clone(),
                reason: w.reason.as_str().to_owned(),
                rule: w.rule.clone(),
            })
            .collect();
        self.rules = outcome.rules.iter().cloned().collect();
        self.disclose_after = outcome.disclose_after.map(|d| d.to_string());
    }

    /// Records the rule that refused the lookup.
    pub(crate) fn refused_by(&mut self, rule: &str) {
        self.rules = vec![rule.to_owned()];
    }

    /// The event for this lookup, answered with `status` (and `problem`, a problem
    /// type slug, when it failed).
    pub(crate) fn event(
        self,
        request_id: &str,
        caller: &Caller,
        peer: Option<SocketAddr>,
        status: u16,
        problem: Option<&str>,
    ) -> AuditEvent {
        AuditEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            request_id: request_id.to_owned(),
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: if self.verification {
                EventKind::Verification
            } else {
                EventKind::Lookup
            },
            caller: AuditCaller::of(caller, peer),
            purpose: self.purpose,
            reason: None,
            case_id: self.case_id,
            connector: self.connector,
            operation: self.operation,
            subject_pseudonym: self.subject_pseudonym,
            subject_masked: self.subject_masked,
            subject_township: self.subject_township,
            jurisdiction: self.jurisdiction.map(str::to_owned),
            linked: self.linked,
            fields_returned: self.returned,
            fields_masked: self.masked,
            fields_withheld: self.withheld,
            fields_verified: self.verified,
            rules: self.rules,
            policy_version: self.policy_version,
            outcome: AuditOutcome {
                status,
                problem: problem.map(str::to_owned),
            },
            upstream_latency_ms: self.upstream_latency_ms,
            cache_hit: self.cache_hit,
            disclose_after: self.disclose_after,
            form: self.form,
        }
    }
}
