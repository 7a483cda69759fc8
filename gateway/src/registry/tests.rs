//! Tests of the registry on both backends — SQLite on real files in temporary
//! directories, PostgreSQL in a schema of each test's own on the test server:
//! connector versioning, enabling, optimistic concurrency (stale revisions), atomic
//! commits, grant revocation, access requests, purpose files, reviews and drafts,
//! watching for changes. Each backend-neutral test is written once over
//! `Arc<dyn Registry>` and run on both (`on_sqlite::…`, `on_postgres::…`). SQLite
//! alone: persistence across reopening, migrating an older file and refusing a newer
//! one. PostgreSQL alone: two replicas on one schema — one's commits reach the
//! other's watch (also after its listening connection is cut), and commits racing at
//! one revision serialize with exactly one winner.

use super::*;
use std::path::Path;

/// Runs each backend-neutral test on both registries: `on_sqlite::NAME` on a file in
/// a temporary directory, `on_postgres::NAME` in a migrated schema of its own (it says
/// it skipped when there is no server).
macro_rules! on_both {
    ($($test:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$test(std::sync::Arc::new(super::open(dir.path()))).await;
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let test = concat!("registry::", stringify!($test));
                    let Some(db) = crate::pg::testing::migrated(test).await else {
                        return;
                    };
                    super::$test(std::sync::Arc::new(super::PgRegistry::new(db.pg.clone()))).await;
                }
            )+
        }
    };
}

on_both!(
    an_empty_registry_is_at_revision_zero_with_an_empty_snapshot,
    every_commit_increments_the_revision,
    the_same_content_makes_no_new_version_and_new_content_does,
    disabling_and_enabling_show_in_the_snapshot,
    removing_a_connector_keeps_its_versions_and_putting_it_back_numbers_on,
    a_commit_against_a_stale_revision_conflicts_and_changes_nothing,
    a_commit_with_a_failing_change_changes_nothing,
    a_revoked_grant_leaves_the_snapshot_but_stays_listed,
    requests_round_trip_and_a_decision_replaces_the_request,
    purpose_files_are_put_shown_and_removed,
    a_proposal_serves_nothing_until_approved,
    an_approval_after_the_connector_changed_or_a_refusal_changes_nothing_in_force,
    a_draft_serves_nothing_until_activated_and_an_earlier_version_comes_back_in_one_change,
    watch_names_the_revision_then_each_new_one_and_ends_with_the_registry,
    corrections_are_answered_once_and_erasure_leaves_their_metadata,
);

fn open(dir: &Path) -> SqliteRegistry {
    SqliteRegistry::open(dir).unwrap()
}

fn version(id: &str, definition: &str) -> ConnectorVersion {
    ConnectorVersion {
        id: id.to_owned(),
        version: 0,
        department: "public-security".to_owned(),
        definition: definition.to_owned(),
        schemas: BTreeMap::from([(
            "hukou/person.schema.json".to_owned(),
            r#"{"type":"object"}"#.to_owned(),
        )]),
        origin: Origin::Api,
        created_at: "2025-03-01T08:00:00Z".to_owned(),
        created_by: "alice".to_owned(),
        review: None,
        activated_at: None,
    }
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.to_owned(),
        department: "public-security".to_owned(),
        connector: "hukou".to_owned(),
        township: "qingshui".to_owned(),
        policy: format!("grants:\n  - id: {id}\n"),
        request_id: Some("req-1".to_owned()),
        created_at: "2025-03-02T08:00:00Z".to_owned(),
        created_by: "bob".to_owned(),
        revoked: None,
    }
}

fn request(id: &str) -> AccessRequest {
    AccessRequest {
        id: id.to_owned(),
        township: "qingshui".to_owned(),
        requested_by: "lead".to_owned(),
        connector: "hukou".to_owned(),
        department: "public-security".to_owned(),
        operations: vec!["lookup".to_owned()],
        purposes: vec!["subsidy-check".to_owned()],
        fields: BTreeMap::from([("name".to_owned(), serde_json::json!("default"))]),
        roles: vec!["clerk".to_owned()],
        justification: "checking subsidy eligibility".to_owned(),
        valid_until: None,
        created_at: "2025-03-01T09:00:00Z".to_owned(),
        deadline: "2025-03-08".to_owned(),
        state: RequestState::Pending,
        decided_at: None,
        decided_by: None,
        decision_note: None,
        grant_id: None,
    }
}

fn correction(id: &str) -> Correction {
    Correction {
        id: id.to_owned(),
        connector: "hukou".to_owned(),
        department: "county-psb".to_owned(),
        operation: "person_by_id".to_owned(),
        field: "name".to_owned(),
        subject_pseudonym: "psn_0123".to_owned(),
        subject_masked: "139901********123X".to_owned(),
        case_id: "CASE-1".to_owned(),
        evidence: "户口簿复印件".to_owned(),
        township: "139901101".to_owned(),
        filed_by: "clerk".to_owned(),
        created_at: "2026-05-08T02:00:00.000Z".to_owned(),
        deadline: "2026-05-15".to_owned(),
        state: CorrectionState::Open,
        answered_at: None,
        answered_by: None,
        reason: None,
        erased_at: None,
        stated: Some(Stated {
            value: "邓俊豪".to_owned(),
            note: "末字有误".to_owned(),
        }),
    }
}

fn revocation() -> Revocation {
    Revocation {
        at: "2025-03-05T08:00:00Z".to_owned(),
        by: "carol".to_owned(),
        reason: "no longer needed".to_owned(),
    }
}

/// Commits at the current revision.
async fn commit(registry: &dyn Registry, changes: Vec<Change>) -> Result<u64, RegistryError> {
    let revision = registry.revision().await.unwrap();
    registry.commit(revision, changes).await
}

async fn an_empty_registry_is_at_revision_zero_with_an_empty_snapshot(registry: Arc<dyn Registry>) {
    assert_eq!(registry.revision().await.unwrap(), 0);
    assert_eq!(registry.snapshot().await.unwrap(), Snapshot::default());
    assert!(
        registry
            .connector_versions("hukou")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(registry.grants().await.unwrap().is_empty());
    assert!(registry.access_requests().await.unwrap().is_empty());
}

async fn every_commit_increments_the_revision(registry: Arc<dyn Registry>) {
    assert_eq!(registry.commit(0, vec![]).await.unwrap(), 1);
    let file = PolicyFileRecord {
        path: "policies/hukou.yaml".to_owned(),
        text: "grants: []\n".to_owned(),
    };
    assert_eq!(
        registry
            .commit(1, vec![Change::PutPolicyFile(file.clone())])
            .await
            .unwrap(),
        2
    );
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(snapshot.revision, 2);
    assert_eq!(snapshot.policy_files.get(&file.path), Some(&file));
}

async fn the_same_content_makes_no_new_version_and_new_content_does(registry: Arc<dyn Registry>) {
    commit(
        &*registry,
        vec![Change::PutConnector(version("hukou", "a: 1"))],
    )
    .await
    .unwrap();
    // Same definition and schemas (other metadata aside): no new version.
    let mut again = version("hukou", "a: 1");
    again.version = 7;
    again.created_by = "someone-else".to_owned();
    commit(&*registry, vec![Change::PutConnector(again)])
        .await
        .unwrap();
    let versions = registry.connector_versions("hukou").await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, 1);
    assert_eq!(versions[0].created_by, "alice");

    // Different schemas alone make a new version.
    let mut schemas_changed = version("hukou", "a: 1");
    schemas_changed
        .schemas
        .insert("hukou/extra.schema.json".to_owned(), "{}".to_owned());
    commit(&*registry, vec![Change::PutConnector(schemas_changed)])
        .await
        .unwrap();
    commit(
        &*registry,
        vec![Change::PutConnector(version("hukou", "a: 2"))],
    )
    .await
    .unwrap();

    let versions = registry.connector_versions("hukou").await.unwrap();
    let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3], "oldest first");
    assert_eq!(versions[0].definition, "a: 1");
    assert_eq!(versions[2].definition, "a: 2");

    let snapshot = registry.snapshot().await.unwrap();
    let registered = &snapshot.connectors["hukou"];
    assert!(registered.enabled);
    assert_eq!(registered.current.version, 3);
    assert_eq!(registered.current.definition, "a: 2");
    assert_eq!(registered.current, versions[2]);
    assert!(
        registry
            .connector_versions("other")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn disabling_and_enabling_show_in_the_snapshot(registry: Arc<dyn Registry>) {
    commit(
        &*registry,
        vec![Change::PutConnector(version("hukou", "a: 1"))],
    )
    .await
    .unwrap();
    let disable = Change::SetConnectorEnabled {
        id: "hukou".to_owned(),
        enabled: false,
    };
    commit(&*registry, vec![disable]).await.unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert!(
        !snapshot.connectors["hukou"].enabled,
        "still listed, disabled"
    );

    let enable = Change::SetConnectorEnabled {
        id: "hukou".to_owned(),
        enabled: true,
    };
    commit(&*registry, vec![enable]).await.unwrap();
    assert!(registry.snapshot().await.unwrap().connectors["hukou"].enabled);

    // Putting the same content again enables a disabled connector, with no new version.
    commit(
        &*registry,
        vec![Change::SetConnectorEnabled {
            id: "hukou".to_owned(),
            enabled: false,
        }],
    )
    .await
    .unwrap();
    commit(
        &*registry,
        vec![Change::PutConnector(version("hukou", "a: 1"))],
    )
    .await
    .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert!(snapshot.connectors["hukou"].enabled);
    assert_eq!(snapshot.connectors["hukou"].current.version, 1);

    let unknown = commit(
        &*registry,
        vec![Change::SetConnectorEnabled {
            id: "nope".to_owned(),
            enabled: true,
        }],
    )
    .await;
    assert!(
        matches!(unknown, Err(RegistryError::Missing(_))),
        "{unknown:?}"
    );
}

async fn removing_a_connector_keeps_its_versions_and_putting_it_back_numbers_on(
    registry: Arc<dyn Registry>,
) {
    commit(
        &*registry,
        vec![Change::PutConnector(version("hukou", "a: 1"))],
    )
    .await
    .unwrap();
    commit(
        &*registry,
        vec![Change::RemoveConnector {
            id: "hukou".to_owned(),
        }],
    )
    .await
    .unwrap();
    assert!(registry.snapshot().await.unwrap().connectors.is_empty());
    assert_eq!(registry.connector_versions("hukou").await.unwrap().len(), 1);

    commit(
        &*registry,
        vec![Change::PutConnector(version("hukou", "a: 1"))],
    )
    .await
    .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(snapshot.connectors["hukou"].current.version, 2);
}

async fn a_commit_against_a_stale_revision_conflicts_and_changes_nothing(
    registry: Arc<dyn Registry>,
) {
    registry
        .commit(0, vec![Change::PutConnector(version("hukou", "a: 1"))])
        .await
        .unwrap();
    let before = registry.snapshot().await.unwrap();

    let stale = registry
        .commit(0, vec![Change::PutConnector(version("hukou", "a: 2"))])
        .await;
    assert!(
        matches!(
            stale,
            Err(RegistryError::Conflict {
                expected: 0,
                found: 1
            })
        ),
        "{stale:?}"
    );
    assert_eq!(registry.snapshot().await.unwrap(), before);
    assert_eq!(registry.connector_versions("hukou").await.unwrap().len(), 1);
}

async fn a_commit_with_a_failing_change_changes_nothing(registry: Arc<dyn Registry>) {
    commit(&*registry, vec![Change::AddGrant(grant("ar-1"))])
        .await
        .unwrap();
    let before = registry.snapshot().await.unwrap();

    let failed = commit(
        &*registry,
        vec![
            Change::PutConnector(version("hukou", "a: 1")),
            Change::PutPolicyFile(PolicyFileRecord {
                path: "policies/x.yaml".to_owned(),
                text: "grants: []\n".to_owned(),
            }),
            Change::RevokeGrant {
                id: "ar-1".to_owned(),
                revocation: revocation(),
            },
            Change::AddRequest(request("req-1")),
            Change::RevokeGrant {
                id: "unknown".to_owned(),
                revocation: revocation(),
            },
        ],
    )
    .await;
    assert!(
        matches!(failed, Err(RegistryError::Missing(_))),
        "{failed:?}"
    );

    assert_eq!(registry.snapshot().await.unwrap(), before);
    assert_eq!(registry.revision().await.unwrap(), before.revision);
    assert!(
        registry
            .connector_versions("hukou")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(registry.access_requests().await.unwrap().is_empty());
    assert_eq!(registry.grants().await.unwrap(), [grant("ar-1")]);

    // Other failing changes roll back the same way.
    for change in [
        Change::RemovePolicyFile {
            path: "policies/none.yaml".to_owned(),
        },
        Change::RemoveConnector {
            id: "none".to_owned(),
        },
        Change::DecideRequest(request("none")),
    ] {
        let failed = commit(
            &*registry,
            vec![Change::PutConnector(version("hukou", "a: 1")), change],
        )
        .await;
        assert!(
            matches!(failed, Err(RegistryError::Missing(_))),
            "{failed:?}"
        );
    }
    let duplicate = commit(&*registry, vec![Change::AddGrant(grant("ar-1"))]).await;
    assert!(
        matches!(duplicate, Err(RegistryError::Corrupt(_))),
        "{duplicate:?}"
    );
    assert_eq!(registry.snapshot().await.unwrap(), before);
}

async fn a_revoked_grant_leaves_the_snapshot_but_stays_listed(registry: Arc<dyn Registry>) {
    commit(
        &*registry,
        vec![
            Change::AddGrant(grant("ar-2")),
            Change::AddGrant(grant("ar-1")),
        ],
    )
    .await
    .unwrap();
    commit(&*registry, vec![Change::AddGrant(grant("ar-0"))])
        .await
        .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(snapshot.grants.len(), 3);
    assert_eq!(snapshot.grants["ar-1"], grant("ar-1"));

    commit(
        &*registry,
        vec![Change::RevokeGrant {
            id: "ar-1".to_owned(),
            revocation: revocation(),
        }],
    )
    .await
    .unwrap();

    let snapshot = registry.snapshot().await.unwrap();
    let in_force: Vec<&str> = snapshot.grants.keys().map(String::as_str).collect();
    assert_eq!(in_force, ["ar-0", "ar-2"]);

    let all = registry.grants().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["ar-2", "ar-1", "ar-0"], "oldest first");
    assert_eq!(all[1].revoked, Some(revocation()));
    assert_eq!(all[0].revoked, None);
}

async fn requests_round_trip_and_a_decision_replaces_the_request(registry: Arc<dyn Registry>) {
    commit(
        &*registry,
        vec![
            Change::AddRequest(request("req-b")),
            Change::AddRequest(request("req-a")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        registry.access_requests().await.unwrap(),
        [request("req-b"), request("req-a")],
        "oldest first"
    );

    let mut decided = request("req-b");
    decided.state = RequestState::Approved;
    decided.decided_at = Some("2025-03-03T10:00:00Z".to_owned());
    decided.decided_by = Some("dept-head".to_owned());
    decided.decision_note = Some("approved for one year".to_owned());
    decided.grant_id = Some("ar-9".to_owned());
    commit(
        &*registry,
        vec![
            Change::DecideRequest(decided.clone()),
            Change::AddGrant(grant("ar-9")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        registry.access_requests().await.unwrap(),
        [decided.clone(), request("req-a")],
        "replaced in place, order kept"
    );

    // A second decision (another replica that read the request before the first) and
    // a second revocation are refused inside the transaction.
    let twice = commit(&*registry, vec![Change::DecideRequest(decided)]).await;
    assert!(matches!(twice, Err(RegistryError::Decided(_))), "{twice:?}");
    let revoke = || Change::RevokeGrant {
        id: "ar-9".to_owned(),
        revocation: revocation(),
    };
    commit(&*registry, vec![revoke()]).await.unwrap();
    let again = commit(&*registry, vec![revoke()]).await;
    assert!(matches!(again, Err(RegistryError::Decided(_))), "{again:?}");

    let duplicate = commit(&*registry, vec![Change::AddRequest(request("req-a"))]).await;
    assert!(
        matches!(duplicate, Err(RegistryError::Corrupt(_))),
        "{duplicate:?}"
    );
}

async fn corrections_are_answered_once_and_erasure_leaves_their_metadata(
    registry: Arc<dyn Registry>,
) {
    assert!(registry.corrections().await.unwrap().is_empty());
    commit(
        &*registry,
        vec![
            Change::AddCorrection(correction("cr-1")),
            Change::AddCorrection(correction("cr-2")),
        ],
    )
    .await
    .unwrap();
    // Oldest first, the statement read back from its own columns.
    let stored = registry.corrections().await.unwrap();
    assert_eq!(stored, vec![correction("cr-1"), correction("cr-2")]);
    // The same id again is refused.
    let again = commit(&*registry, vec![Change::AddCorrection(correction("cr-1"))]).await;
    assert!(again.is_err());

    let accepted = Correction {
        state: CorrectionState::Accepted,
        answered_at: Some("2026-05-11T02:00:00.000Z".to_owned()),
        answered_by: Some("psb-admin".to_owned()),
        // An answer never changes what was stated.
        stated: None,
        ..correction("cr-1")
    };
    commit(&*registry, vec![Change::AnswerCorrection(accepted.clone())])
        .await
        .unwrap();
    let first = registry.corrections().await.unwrap().remove(0);
    assert_eq!(first.state, CorrectionState::Accepted);
    assert_eq!(first.stated, correction("cr-1").stated);
    // A second answer is refused and changes nothing.
    let rejected = Correction {
        state: CorrectionState::Rejected,
        ..accepted.clone()
    };
    let refused = commit(&*registry, vec![Change::AnswerCorrection(rejected)]).await;
    assert!(
        matches!(refused, Err(RegistryError::Decided(_))),
        "{refused:?}"
    );
    assert_eq!(
        registry.corrections().await.unwrap()[0].state,
        CorrectionState::Accepted
    );

    // Erasure: the statement is gone, the rest stays; a second erasure is refused.
    let erase = || Change::EraseCorrection {
        id: "cr-1".to_owned(),
        at: "2026-06-11T00:00:00.000Z".to_owned(),
    };
    commit(&*registry, vec![erase()]).await.unwrap();
    let erased = registry.corrections().await.unwrap().remove(0);
    assert_eq!(erased.stated, None);
    assert_eq!(
        erased.erased_at.as_deref(),
        Some("2026-06-11T00:00:00.000Z")
    );
    assert_eq!(
        Correction {
            stated: None,
            erased_at: None,
            ..erased
        },
        Correction {
            stated: None,
            ..accepted
        }
    );
    let twice = commit(&*registry, vec![erase()]).await;
    assert!(matches!(twice, Err(RegistryError::Decided(_))), "{twice:?}");
    // The other correction is untouched, and corrections change no configuration.
    assert_eq!(registry.corrections().await.unwrap()[1], correction("cr-2"));
    assert!(registry.snapshot().await.unwrap().grants.is_empty());
}

/// Erasure leaves nothing of the statement in the file: the freed space is
/// overwritten (`secure_delete`), not just unlinked from the row.
#[tokio::test]
async fn an_erased_statement_is_gone_from_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry: Arc<dyn Registry> = Arc::new(SqliteRegistry::open(dir.path()).unwrap());
    commit(&*registry, vec![Change::AddCorrection(correction("cr-1"))])
        .await
        .unwrap();
    let accepted = Correction {
        state: CorrectionState::Accepted,
        answered_at: Some("2026-05-11T02:00:00.000Z".to_owned()),
        answered_by: Some("psb-admin".to_owned()),
        stated: None,
        ..correction("cr-1")
    };
    commit(&*registry, vec![Change::AnswerCorrection(accepted)])
        .await
        .unwrap();
    commit(
        &*registry,
        vec![Change::EraseCorrection {
            id: "cr-1".to_owned(),
            at: "2026-06-11T00:00:00.000Z".to_owned(),
        }],
    )
    .await
    .unwrap();
    drop(registry);
    // Every page back in the main file, the write-ahead log emptied.
    let conn = rusqlite::Connection::open(dir.path().join(REGISTRY_FILE)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for stated in ["邓俊豪", "末字有误"] {
            let found = bytes.windows(stated.len()).any(|w| w == stated.as_bytes());
            assert!(!found, "`{stated}` is still in {}", path.display());
        }
    }
}

#[tokio::test]
async fn reopening_the_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let file = PolicyFileRecord {
        path: "policies/hukou.yaml".to_owned(),
        text: "grants: []\n".to_owned(),
    };
    let mut from_file = version("civil", "b: 1");
    from_file.origin = Origin::File {
        path: "connectors/civil.yaml".to_owned(),
    };
    let (snapshot, versions, grants, requests) = {
        let registry = open(dir.path());
        commit(
            &registry,
            vec![
                Change::PutConnector(version("hukou", "a: 1")),
                Change::PutConnector(from_file),
                Change::PutPolicyFile(file.clone()),
                Change::AddGrant(grant("ar-1")),
                Change::AddRequest(request("req-1")),
            ],
        )
        .await
        .unwrap();
        commit(
            &registry,
            vec![
                Change::PutConnector(version("hukou", "a: 2")),
                Change::SetConnectorEnabled {
                    id: "civil".to_owned(),
                    enabled: false,
                },
            ],
        )
        .await
        .unwrap();
        (
            registry.snapshot().await.unwrap(),
            registry.connector_versions("hukou").await.unwrap(),
            registry.grants().await.unwrap(),
            registry.access_requests().await.unwrap(),
        )
    };
    assert_eq!(snapshot.revision, 2);
    assert_eq!(snapshot.connectors.len(), 2);
    assert!(snapshot.connectors["civil"].current.origin.is_file());

    let reopened = open(dir.path());
    assert_eq!(reopened.revision().await.unwrap(), 2);
    assert_eq!(reopened.snapshot().await.unwrap(), snapshot);
    assert_eq!(
        reopened.connector_versions("hukou").await.unwrap(),
        versions
    );
    assert_eq!(reopened.grants().await.unwrap(), grants);
    assert_eq!(reopened.access_requests().await.unwrap(), requests);
    // And it goes on from where it was.
    assert_eq!(reopened.commit(2, vec![]).await.unwrap(), 3);
}

#[tokio::test]
async fn a_registry_from_a_newer_gateway_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let conn = rusqlite::Connection::open(registry.path()).unwrap();
    conn.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let refused = SqliteRegistry::open(dir.path());
    assert!(
        matches!(
            refused,
            Err(RegistryError::TooNew {
                found: 99,
                known: sqlite::SCHEMA_VERSION
            })
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_data_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    let registry = open(&nested);
    assert_eq!(registry.path(), nested.join(REGISTRY_FILE));
    assert!(registry.path().exists());
    assert_eq!(registry.revision().await.unwrap(), 0);
}

async fn purpose_files_are_put_shown_and_removed(registry: Arc<dyn Registry>) {
    let file = PolicyFileRecord {
        path: "purposes.yaml".to_owned(),
        text: "purposes: []\n".to_owned(),
    };
    commit(&*registry, vec![Change::PutPurposeFile(file.clone())])
        .await
        .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(
        snapshot.purpose_files,
        BTreeMap::from([("purposes.yaml".to_owned(), file.clone())])
    );
    assert!(snapshot.policy_files.is_empty());
    // `Snapshot::with` agrees with the commit.
    let empty = Snapshot::default();
    assert_eq!(
        empty
            .with(&[Change::PutPurposeFile(file.clone())])
            .unwrap()
            .purpose_files,
        snapshot.purpose_files
    );
    let remove = Change::RemovePurposeFile {
        path: "purposes.yaml".to_owned(),
    };
    commit(&*registry, vec![remove.clone()]).await.unwrap();
    assert!(registry.snapshot().await.unwrap().purpose_files.is_empty());
    // Removing it again names what is missing.
    let missing = commit(&*registry, vec![remove]).await;
    assert!(
        matches!(&missing, Err(RegistryError::Missing(what)) if what.contains("purposes.yaml")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_schema_version_1_registry_is_migrated_to_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    commit(
        &registry,
        vec![Change::PutPolicyFile(PolicyFileRecord {
            path: "policies/hukou.yaml".to_owned(),
            text: "grants: []\n".to_owned(),
        })],
    )
    .await
    .unwrap();
    commit(&registry, vec![Change::PutConnector(version("c", "v1"))])
        .await
        .unwrap();
    // Make it a version-1 file: no purpose_files table, no reviews, no drafts, no
    // corrections.
    let conn = rusqlite::Connection::open(registry.path()).unwrap();
    conn.execute_batch(
        "DROP TABLE purpose_files;
         DROP TABLE corrections;
         ALTER TABLE connector_versions DROP COLUMN review;
         ALTER TABLE connector_versions DROP COLUMN activated_at;
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let reopened = open(dir.path());
    let conn = rusqlite::Connection::open(reopened.path()).unwrap();
    let schema_version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(schema_version, "5");
    assert_eq!(sqlite::SCHEMA_VERSION, 5);
    drop(conn);
    // A version that served before drafts existed is not taken for a draft.
    let versions = reopened.connector_versions("c").await.unwrap();
    assert_eq!(
        versions[0].activated_at.as_deref(),
        Some("2025-03-01T08:00:00Z")
    );
    // What version 1 held is kept, and purpose files can be stored.
    commit(
        &reopened,
        vec![Change::PutPurposeFile(PolicyFileRecord {
            path: "purposes.yaml".to_owned(),
            text: "purposes: []\n".to_owned(),
        })],
    )
    .await
    .unwrap();
    let snapshot = reopened.snapshot().await.unwrap();
    assert_eq!(snapshot.revision, 3);
    assert!(snapshot.policy_files.contains_key("policies/hukou.yaml"));
    assert!(snapshot.purpose_files.contains_key("purposes.yaml"));
}

fn pending(base_version: Option<u32>) -> Option<Review> {
    Some(Review {
        state: ReviewState::Pending,
        base_version,
        loosenings: Vec::new(),
        decided_at: None,
        decided_by: None,
        note: None,
    })
}

fn decided(mut version: ConnectorVersion, number: u32, state: ReviewState) -> ConnectorVersion {
    version.version = number;
    if let Some(review) = version.review.as_mut() {
        review.state = state;
        review.decided_by = Some("governance".to_owned());
    }
    version
}

async fn a_proposal_serves_nothing_until_approved(registry: Arc<dyn Registry>) {
    let proposed = ConnectorVersion {
        review: pending(None),
        ..version("jisheng2", "id: jisheng2\n")
    };
    commit(&*registry, vec![Change::SaveDraft(proposed.clone())])
        .await
        .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert!(snapshot.connectors.is_empty(), "a proposal is not in force");
    let stored = registry.connector_versions("jisheng2").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].review.as_ref().unwrap().state,
        ReviewState::Pending
    );
    assert_eq!(registry.reviewed_versions().await.unwrap().len(), 1);

    let approved = decided(proposed, 1, ReviewState::Approved);
    commit(&*registry, vec![Change::DecideReview(approved.clone())])
        .await
        .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    let current = &snapshot.connectors["jisheng2"];
    assert_eq!(current.current.version, 1);
    assert!(current.enabled);
    // Decided once only.
    let again = commit(&*registry, vec![Change::DecideReview(approved)]).await;
    assert!(matches!(again, Err(RegistryError::Decided(_))), "{again:?}");
}

async fn an_approval_after_the_connector_changed_or_a_refusal_changes_nothing_in_force(
    registry: Arc<dyn Registry>,
) {
    commit(&*registry, vec![Change::PutConnector(version("c", "v1"))])
        .await
        .unwrap();
    let proposed = ConnectorVersion {
        review: pending(Some(1)),
        ..version("c", "v2 loosened")
    };
    commit(&*registry, vec![Change::SaveDraft(proposed.clone())])
        .await
        .unwrap();
    // A tightening goes in force meanwhile (version 3) and supersedes the proposal.
    commit(
        &*registry,
        vec![Change::PutConnector(version("c", "v3 tighter"))],
    )
    .await
    .unwrap();
    let versions = registry.connector_versions("c").await.unwrap();
    assert_eq!(
        versions[1].review.as_ref().unwrap().state,
        ReviewState::Superseded
    );
    let late = commit(
        &*registry,
        vec![Change::DecideReview(decided(
            proposed.clone(),
            2,
            ReviewState::Approved,
        ))],
    )
    .await;
    assert!(matches!(late, Err(RegistryError::Decided(_))), "{late:?}");
    assert_eq!(
        registry.snapshot().await.unwrap().connectors["c"]
            .current
            .version,
        3
    );

    // A refused proposal stays out of force.
    let proposed = ConnectorVersion {
        review: pending(Some(3)),
        ..version("c", "v4 loosened")
    };
    commit(&*registry, vec![Change::SaveDraft(proposed.clone())])
        .await
        .unwrap();
    commit(
        &*registry,
        vec![Change::DecideReview(decided(
            proposed,
            4,
            ReviewState::Refused,
        ))],
    )
    .await
    .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(snapshot.connectors["c"].current.version, 3);
    let versions = registry.connector_versions("c").await.unwrap();
    assert_eq!(
        versions[3].review.as_ref().unwrap().state,
        ReviewState::Refused
    );
}

async fn a_draft_serves_nothing_until_activated_and_an_earlier_version_comes_back_in_one_change(
    registry: Arc<dyn Registry>,
) {
    commit(&*registry, vec![Change::SaveDraft(version("c", "v1"))])
        .await
        .unwrap();
    assert!(
        registry.snapshot().await.unwrap().connectors.is_empty(),
        "a draft of a new connector is not in force"
    );
    let stored = registry.connector_versions("c").await.unwrap();
    assert_eq!(stored[0].version, 1);
    assert_eq!(stored[0].activated_at, None);

    let activated = |number: u32, definition: &str| ConnectorVersion {
        version: number,
        activated_at: Some(format!("2026-03-0{number}T08:00:00Z")),
        ..version("c", definition)
    };
    commit(
        &*registry,
        vec![Change::ActivateVersion(activated(1, "v1"))],
    )
    .await
    .unwrap();
    commit(&*registry, vec![Change::SaveDraft(version("c", "v2"))])
        .await
        .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(
        snapshot.connectors["c"].current.version, 1,
        "a draft of a serving connector leaves the version in force"
    );
    commit(
        &*registry,
        vec![Change::ActivateVersion(activated(2, "v2"))],
    )
    .await
    .unwrap();
    assert_eq!(
        registry.snapshot().await.unwrap().connectors["c"]
            .current
            .definition,
        "v2"
    );
    // Rollback: version 1 again, enabled even if the connector was disabled.
    commit(
        &*registry,
        vec![Change::SetConnectorEnabled {
            id: "c".into(),
            enabled: false,
        }],
    )
    .await
    .unwrap();
    commit(
        &*registry,
        vec![Change::ActivateVersion(activated(1, "v1"))],
    )
    .await
    .unwrap();
    let snapshot = registry.snapshot().await.unwrap();
    assert_eq!(snapshot.connectors["c"].current.version, 1);
    assert!(snapshot.connectors["c"].enabled);
    let stored = registry.connector_versions("c").await.unwrap();
    assert_eq!(stored.len(), 2, "activation makes no new version");
    assert!(stored.iter().all(|v| v.activated_at.is_some()));

    // A draft waiting for its classification review cannot be activated; nor can a
    // version with other content under the same number.
    let loosening = ConnectorVersion {
        review: pending(Some(1)),
        ..version("c", "v3 loosened")
    };
    commit(&*registry, vec![Change::SaveDraft(loosening)])
        .await
        .unwrap();
    let early = commit(
        &*registry,
        vec![Change::ActivateVersion(activated(3, "v3 loosened"))],
    )
    .await;
    assert!(matches!(early, Err(RegistryError::Decided(_))), "{early:?}");
    let forged = commit(
        &*registry,
        vec![Change::ActivateVersion(activated(2, "v9"))],
    )
    .await;
    assert!(forged.is_err(), "{forged:?}");
    assert_eq!(
        registry.snapshot().await.unwrap().connectors["c"]
            .current
            .version,
        1
    );
}

async fn watch_names_the_revision_then_each_new_one_and_ends_with_the_registry(
    registry: Arc<dyn Registry>,
) {
    use futures::StreamExt;
    let mut changes = registry.clone().watch(std::time::Duration::from_millis(5));
    assert_eq!(changes.next().await.unwrap().unwrap(), 0);
    registry.commit(0, vec![]).await.unwrap();
    assert_eq!(changes.next().await.unwrap().unwrap(), 1);
    registry.commit(1, vec![]).await.unwrap();
    registry.commit(2, vec![]).await.unwrap();
    // Each revision seen once, in order (a poll may fall between the two commits).
    let mut seen = changes.next().await.unwrap().unwrap();
    if seen == 2 {
        seen = changes.next().await.unwrap().unwrap();
    }
    assert_eq!(seen, 3);
    drop(registry);
    assert!(changes.next().await.is_none());
}

/// A generous bound on a wait that should end at once: a guard against a hang, never
/// an assertion about time.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(10);

/// Another replica's registry on `db`'s schema, with a pool of its own.
fn replica(db: &crate::pg::testing::TestDb) -> Arc<PgRegistry> {
    let pg = crate::pg::Pg::new(&db.settings, Path::new(".")).unwrap();
    Arc::new(PgRegistry::new(pg))
}

/// The next revision a watch forwarded, within the hang guard.
async fn next_seen(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<Result<u64, RegistryError>>,
) -> u64 {
    tokio::time::timeout(HANG_GUARD, seen.recv())
        .await
        .expect("the watch yields the revision")
        .expect("the watch goes on")
        .unwrap()
}

#[tokio::test]
async fn a_commit_on_one_replica_reaches_the_others_watch_also_after_its_connection_is_cut() {
    use futures::StreamExt;
    let Some(db) = crate::pg::testing::migrated("registry::replicas_watch").await else {
        return;
    };
    let one = Arc::new(PgRegistry::new(db.pg.clone()));
    let two = replica(&db);
    // Checks an hour apart: after the first, a new revision reaches this watch by
    // notification, or by the check it makes once it listens (again).
    let mut changes = two.clone().watch(std::time::Duration::from_secs(3600));
    let (forward, mut seen) = tokio::sync::mpsc::unbounded_channel();
    // Polled in a task of its own, as the gateway polls it, so it listens meanwhile.
    let forwarding = tokio::spawn(async move {
        while let Some(item) = changes.next().await {
            if forward.send(item).is_err() {
                break;
            }
        }
    });
    assert_eq!(next_seen(&mut seen).await, 0);
    let mut named = version("hukou", "名称: 户籍\n");
    named.origin = Origin::File {
        path: "connectors/户籍.yaml".to_owned(),
    };
    one.commit(0, vec![Change::PutConnector(named)])
        .await
        .unwrap();
    assert_eq!(next_seen(&mut seen).await, 1);
    // The watch listens now (revision 1 came by notification or by the check it made
    // once listening): this one can only come by notification.
    one.commit(1, vec![Change::AddGrant(grant("ar-1"))])
        .await
        .unwrap();
    assert_eq!(next_seen(&mut seen).await, 2);
    assert_eq!(two.snapshot().await.unwrap(), one.snapshot().await.unwrap());

    // Cut its listening connection: the commit made while it is down is found when it
    // listens again, and notifications come again after.
    let admin = db.pg.client().await.unwrap();
    let cut: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1",
            &[&format!("LISTEN {}", db.pg.channel("registry"))],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cut, 1, "one listening connection");
    let revoke = Change::RevokeGrant {
        id: "ar-1".to_owned(),
        revocation: revocation(),
    };
    one.commit(2, vec![revoke]).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, 3);
    one.commit(3, vec![]).await.unwrap();
    assert_eq!(next_seen(&mut seen).await, 4);
    assert!(two.snapshot().await.unwrap().grants.is_empty());
    forwarding.abort();
}

#[tokio::test]
async fn commits_racing_from_two_replicas_at_one_revision_serialize_and_exactly_one_wins() {
    let Some(db) = crate::pg::testing::migrated("registry::replicas_race").await else {
        return;
    };
    let one = Arc::new(PgRegistry::new(db.pg.clone()));
    let two = replica(&db);
    one.commit(0, vec![]).await.unwrap();
    // Hold the revision row, so that both commits are waiting for it at once.
    let (blocker, _) = db.pg.dedicated().await.unwrap();
    blocker
        .batch_execute("BEGIN; SELECT revision FROM registry_revision FOR UPDATE")
        .await
        .unwrap();
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let racing = |registry: Arc<PgRegistry>, definition: &'static str| {
        tokio::spawn(async move {
            registry
                .commit(1, vec![Change::PutConnector(version("c", definition))])
                .await
        })
    };
    let (a, b) = (
        racing(one.clone(), "from one"),
        racing(two.clone(), "from two"),
    );
    // Both wait: one for the blocker's transaction, the other for the row's lock.
    let admin = db.pg.client().await.unwrap();
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let waiting: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_locks
                      WHERE NOT granted
                        AND ((locktype = 'transactionid' AND transactionid =
                               (SELECT backend_xid FROM pg_stat_activity WHERE pid = $1))
                          OR (locktype = 'tuple'
                              AND relation = 'registry_revision'::regclass))",
                    &[&blocker_pid],
                )
                .await
                .unwrap()
                .get(0);
            if waiting == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both commits wait for the revision row");
    blocker.batch_execute("ROLLBACK").await.unwrap();

    let a = tokio::time::timeout(HANG_GUARD, a).await.unwrap().unwrap();
    let b = tokio::time::timeout(HANG_GUARD, b).await.unwrap().unwrap();
    let (winner, loser) = match (&a, &b) {
        (Ok(2), Err(_)) => ("from one", &b),
        (Err(_), Ok(2)) => ("from two", &a),
        _ => panic!("exactly one commit wins: {a:?} {b:?}"),
    };
    assert!(
        matches!(
            loser,
            Err(RegistryError::Conflict {
                expected: 1,
                found: 2
            })
        ),
        "{loser:?}"
    );
    let snapshot = two.snapshot().await.unwrap();
    assert_eq!(snapshot.revision, 2);
    assert_eq!(snapshot.connectors["c"].current.definition, winner);
    assert_eq!(one.connector_versions("c").await.unwrap().len(), 1);
}

#[tokio::test]
async fn driver_errors_are_backend_errors_that_quote_nothing_from_the_server() {
    // A schema never migrated: the registry's tables are not there.
    let Some(db) = crate::pg::testing::fresh("registry::pg_errors").await else {
        return;
    };
    let registry = PgRegistry::new(db.pg.clone());
    let error = registry.revision().await.unwrap_err();
    assert!(
        matches!(&error, RegistryError::Backend(text)
            if text == "PostgreSQL: SQLSTATE 42P01"),
        "{error}"
    );
}

#[tokio::test]
async fn a_watch_through_a_cut_connection_yields_errors_then_what_it_missed_and_listens_again() {
    use futures::StreamExt;
    let Some(db) = crate::pg::testing::migrated("registry::watch_cut").await else {
        return;
    };
    // Replica two reaches the server through a forwarder the test can cut.
    let url = db.settings.url.clone().unwrap();
    let config: tokio_postgres::Config = url.parse().unwrap();
    let (tokio_postgres::config::Host::Tcp(host), Some(port)) =
        (&config.get_hosts()[0], config.get_ports().first())
    else {
        panic!("the test server is reached over TCP");
    };
    let server = format!("{host}:{port}");
    let forwarder = testkit::services::Cuttable::start(&server).await;
    let mut settings = db.settings.clone();
    settings.url = Some(url.replacen(&server, &forwarder.addr().to_string(), 1));
    assert_ne!(settings.url.as_ref(), Some(&url));
    let one = Arc::new(PgRegistry::new(db.pg.clone()));
    let two = Arc::new(PgRegistry::new(
        crate::pg::Pg::new(&settings, Path::new(".")).unwrap(),
    ));

    let mut changes = two.clone().watch(std::time::Duration::from_millis(20));
    let (forward, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let forwarding = tokio::spawn(async move {
        while let Some(item) = changes.next().await {
            if forward.send(item).is_err() {
                break;
            }
        }
    });
    assert_eq!(next_seen(&mut seen).await, 0);
    forwarder.cut();
    // The periodic check fails while the server cannot be reached: an item, not the end.
    let failed = tokio::time::timeout(HANG_GUARD, seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(failed, Err(RegistryError::Backend(_))),
        "{failed:?}"
    );
    one.commit(0, vec![Change::AddGrant(grant("ar-1"))])
        .await
        .unwrap();
    forwarder.restore();
    // What was committed meanwhile (its notification lost), then what comes after.
    let mut next_ok = async || loop {
        let item = tokio::time::timeout(HANG_GUARD, seen.recv())
            .await
            .expect("the watch yields the revision")
            .expect("the watch goes on");
        if let Ok(revision) = item {
            return revision;
        }
    };
    assert_eq!(next_ok().await, 1);
    one.commit(1, vec![]).await.unwrap();
    assert_eq!(next_ok().await, 2);
    assert_eq!(two.snapshot().await.unwrap(), one.snapshot().await.unwrap());
    forwarding.abort();
}

#[tokio::test]
async fn a_sqlite_registry_copied_into_an_empty_postgres_one_reads_the_same_and_a_second_copy_is_refused()
 {
    let Some(db) = crate::pg::testing::migrated("registry::copy").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let from = open(dir.path());
    // Versions with a gap-free history, a draft, a removal, files, grants (one revoked)
    // and requests (one decided).
    commit(&from, vec![Change::PutConnector(version("hukou", "a: 1"))])
        .await
        .unwrap();
    commit(&from, vec![Change::PutConnector(version("hukou", "a: 2"))])
        .await
        .unwrap();
    commit(&from, vec![Change::SaveDraft(version("hukou", "a: 3"))])
        .await
        .unwrap();
    commit(&from, vec![Change::PutConnector(version("gone", "b: 1"))])
        .await
        .unwrap();
    commit(&from, vec![Change::RemoveConnector { id: "gone".into() }])
        .await
        .unwrap();
    commit(
        &from,
        vec![
            Change::PutPolicyFile(PolicyFileRecord {
                path: "policies/hukou.yaml".into(),
                text: "grants: []\n".into(),
            }),
            Change::PutPurposeFile(PolicyFileRecord {
                path: "purposes.yaml".into(),
                text: "purposes: []\n".into(),
            }),
            Change::AddGrant(grant("g-1")),
            Change::AddGrant(grant("g-2")),
            Change::AddRequest(request("r-1")),
            Change::AddRequest(request("r-2")),
            Change::AddCorrection(correction("cr-1")),
            Change::AddCorrection(correction("cr-2")),
        ],
    )
    .await
    .unwrap();
    commit(
        &from,
        vec![Change::EraseCorrection {
            id: "cr-2".into(),
            at: "2026-06-11T00:00:00.000Z".into(),
        }],
    )
    .await
    .unwrap();
    commit(
        &from,
        vec![Change::RevokeGrant {
            id: "g-1".into(),
            revocation: revocation(),
        }],
    )
    .await
    .unwrap();
    let copy = RegistryCopy::read(&from).await.unwrap();
    let to = replica(&db);
    to.import(&copy).await.unwrap();
    assert_eq!(RegistryCopy::read(&*to).await.unwrap(), copy);
    assert_eq!(to.snapshot().await.unwrap(), from.snapshot().await.unwrap());
    // The copy goes on where the file left off.
    let next = commit(&*to, vec![Change::PutConnector(version("hukou", "a: 4"))])
        .await
        .unwrap();
    assert_eq!(next, copy.revision + 1);
    assert_eq!(to.connector_versions("hukou").await.unwrap().len(), 4);
    let again = to.import(&copy).await.unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
}
