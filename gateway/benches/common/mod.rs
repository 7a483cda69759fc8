//! Fixtures shared by the benches: the demo county loaded in memory with the
//! simulated departments running, a trusted issuer, a clerk of 东岭镇, one canonical
//! hukou record fetched through the real connector, policy sets padded with
//! unrelated grants, and realistic audit events.

// Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use connectors::FetchContext;
use connectors::definition::LeafField;
use gateway::audit::{
    AuditCaller, AuditEvent, AuditOutcome, EventKind, MaskedField, WithheldField,
};
use gateway::auth::{Authenticator, Caller, SigningKey};
use gateway::config::{self, ActiveConfig, EmbeddedSource, LoadOptions};
use gateway::county::{COUNTY_CONFIG, COUNTY_FILES};
use gateway::demo::{self, PERSONAS};
use gateway::mask::PseudonymKey;
use gateway::policy::{FieldNode, Grant, PolicySet};
use serde_json::Value;
use sim::{Population, SampleKind, SimServer};

/// The township of the clerk every bench acts as.
pub(crate) const TOWNSHIP: &str = "139901101";
/// The lookup every policy bench decides: a clerk registering a birth.
pub(crate) const CONNECTOR: &str = "hukou";
pub(crate) const OPERATION: &str = "person_by_id";
pub(crate) const PURPOSE: &str = "birth_registration";

/// The demo county, running.
pub(crate) struct County {
    pub(crate) cfg: ActiveConfig,
    pub(crate) issuer: SigningKey,
    pub(crate) authenticator: Authenticator,
    /// A token of the demo clerk of 东岭镇 (`clerk-dongling`).
    pub(crate) token: String,
    /// The caller that token proves.
    pub(crate) caller: Arc<Caller>,
    /// A canonical `hukou.person_by_id` record of a married parent registered in
    /// [`TOWNSHIP`], as the connector maps it from the department's answer.
    pub(crate) record: Value,
    pub(crate) pseudonym: PseudonymKey,
    /// Keeps the departments serving while the county lives.
    pub(crate) departments: Vec<SimServer>,
    /// Holds the issuer's public key.
    pub(crate) dir: tempfile::TempDir,
}

impl County {
    /// Starts the departments, loads the county, trusts a fresh issuer and fetches
    /// the sample record. Must run inside a Tokio runtime.
    pub(crate) async fn start() -> County {
        connectors::install_crypto_provider();
        let population = Arc::new(Population::generate(demo::SEED, 2_000));
        let departments = sim::spawn_all(population.clone(), [127, 0, 0, 1].into())
            .await
            .expect("the departments start");
        let dir = tempfile::tempdir().expect("a temp dir");
        let (issuer, _, public_pem) = SigningKey::generate_es256(demo::ISSUER).expect("a key");
        let public = dir.path().join("issuer.pub.pem");
        std::fs::write(&public, public_pem).expect("the public key is written");
        let options = LoadOptions {
            base_urls: departments
                .iter()
                .map(|d| (d.department.id().to_owned(), d.base_url()))
                .collect(),
            auth: Some(demo::auth_config(&public).expect("the auth section")),
            ..LoadOptions::default()
        };
        let cfg = config::load(
            &EmbeddedSource::new(COUNTY_FILES.iter().copied()),
            Path::new(COUNTY_CONFIG),
            &options,
        )
        .expect("the demo county loads");
        let authenticator = Authenticator::new(&cfg.auth, dir.path())
            .await
            .expect("the issuer loads");
        let token = demo::persona_token(&issuer, &PERSONAS[0]).expect("a token");
        let caller = authenticator
            .verify(&token)
            .await
            .expect("the clerk's token verifies");
        assert_eq!(caller.township.as_deref(), Some(TOWNSHIP));
        let person = population
            .sample_in(SampleKind::MarriedParent, TOWNSHIP)
            .expect("the township has a married parent");
        let fetched = cfg.connectors[CONNECTOR]
            .connector
            .fetch(OPERATION, person.id.as_str(), &FetchContext::default())
            .await
            .expect("the department answers");
        let record = fetched.record;
        cfg.connectors[CONNECTOR].operations[OPERATION]
            .schema
            .check(&record)
            .expect("the sample record is valid");
        County {
            cfg,
            issuer,
            authenticator,
            token,
            caller,
            record,
            pseudonym: PseudonymKey::new(&[42u8; 32]).expect("a pseudonym key"),
            departments,
            dir,
        }
    }

    /// The leaves of the benched operation.
    pub(crate) fn leaves(&self) -> &[LeafField] {
        &self.cfg.connectors[CONNECTOR].operations[OPERATION].leaves
    }

    /// The field tree of the benched operation.
    pub(crate) fn tree(&self) -> &std::collections::BTreeMap<String, FieldNode> {
        &self.cfg.connectors[CONNECTOR].operations[OPERATION].fields
    }

    /// The demo policies padded to `total` grants with grants that can never match
    /// the benched lookup: for other townships of the same connector, operation and
    /// purpose (the same index bucket), for other purposes, and for other connectors.
    pub(crate) fn padded_policies(&self, total: usize) -> PolicySet {
        let demo = &self.cfg.policies;
        let mut grants: Vec<Grant> = demo.grants().to_vec();
        let template = grants
            .iter()
            .find(|g| g.connector == CONNECTOR && g.purposes.iter().any(|p| p == PURPOSE))
            .cloned()
            .expect("the demo grants a clerk registering a birth");
        let mut i = 0usize;
        while grants.len() < total {
            let mut g = template.clone();
            g.id = format!("pad-{i}");
            match i % 3 {
                0 => {
                    // Another township, same bucket.
                    g.consumers.counties.clear();
                    g.consumers.townships = [format!("{:09}", 200_000_000 + i)].into();
                }
                1 => g.purposes = vec![format!("pad-purpose-{}", i % 97)],
                _ => g.connector = format!("pad-connector-{}", i % 31),
            }
            grants.push(g);
            i += 1;
        }
        PolicySet::new(grants, demo.denies().to_vec(), demo.version.clone())
    }

    /// A lookup event as the pipeline records it for the benched lookup.
    pub(crate) fn lookup_event(&self) -> AuditEvent {
        lookup_event(&self.caller)
    }
}

/// Today, fixed so that the demo grants are valid.
pub(crate) fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date")
}

/// A lookup event like the ones `/v1/query` records: a fresh event id each time.
pub(crate) fn lookup_event(caller: &Caller) -> AuditEvent {
    let returned = [
        "id_number",
        "name",
        "gender",
        "ethnicity",
        "birth_date",
        "household_number",
        "relation_to_head",
        "hukou_type",
        "township_code",
        "village_code",
        "address",
        "status",
    ];
    AuditEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: EventKind::Lookup,
        caller: AuditCaller::of(caller, Some(([127, 0, 0, 1], 40_000).into())),
        purpose: Some(PURPOSE.to_owned()),
        reason: None,
        case_id: Some("SYDJ139901-2026-000123".to_owned()),
        connector: Some(CONNECTOR.to_owned()),
        operation: Some(OPERATION.to_owned()),
        subject_pseudonym: Some("psn_0123456789abcdef0123456789abcdef".to_owned()),
        subject_masked: Some("139901********1234".to_owned()),
        subject_township: None,
        jurisdiction: None,
        linked: Vec::new(),
        fields_returned: returned.iter().map(|f| (*f).to_owned()).collect(),
        fields_masked: vec![MaskedField {
            field: "address".to_owned(),
            mask: "address_to".to_owned(),
        }],
        fields_verified: Vec::new(),
        fields_withheld: vec![WithheldField {
            field: "status_changed_on".to_owned(),
            reason: "not_granted".to_owned(),
            rule: None,
        }],
        rules: vec!["hukou-birth-registration".to_owned(), "open".to_owned()],
        policy_version: Some("sha256:0123456789abcdef".to_owned()),
        outcome: AuditOutcome {
            status: 200,
            problem: None,
        },
        upstream_latency_ms: Some(3),
        cache_hit: false,
        disclose_after: None,
        form: None,
    }
}
