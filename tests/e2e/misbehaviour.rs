//! Every way a department system can misbehave ends in a clear problem naming the
//! department as the one at fault, and never in data: nothing the department sent is
//! echoed, and undeclared fields never reach the caller.

use crate::helpers::Edit as _;
use sim::{Department, Faults, SampleKind};

use crate::helpers::{Reply, TestGateway, lookup, sample};

/// The county with short connector timeouts, so timeouts are quick to test.
/// The demo county with short connector timeouts and no record cache, so every
/// lookup reaches the misbehaving department.
async fn gateway() -> TestGateway {
    TestGateway::start_with(|path, text| {
        if path.starts_with("county/connectors/") {
            text.edit("total_ms: 3000", "total_ms: 400")
                .edit("connect_ms: 1000", "connect_ms: 400")
                .edit("ttl_s: 60", "ttl_s: 0")
                .edit("not_found_ttl_s: 10", "not_found_ttl_s: 0")
        } else {
            text.to_owned()
        }
    })
    .await
}

const LOOKUPS: [(Department, &str, &str); 3] = [
    (Department::Hukou, "hukou", "person_by_id"),
    (Department::Shebao, "shebao", "insured_by_id"),
    (Department::Jisheng, "jisheng", "fertility_by_id"),
];

/// Asserts a department failure: the kind, the connector named, nothing leaked.
fn assert_department_problem(reply: &Reply, status: u16, kind: &str, connector: &str, id: &str) {
    reply.assert_problem(status, kind);
    assert_eq!(reply.json["blame"], "department", "{}", reply.text);
    assert_eq!(reply.json["connector"], connector);
    assert!(reply.json.get("record").is_none());
    for leak in [id, "系统繁忙", "nbbz", "synthetic-secret", "内部备注"] {
        assert!(!reply.text.contains(leak), "{leak} leaked: {}", reply.text);
    }
}

async fn each_department(fault: Faults, status: u16, kind: &str) {
    let gw = gateway().await;
    let person = sample(SampleKind::MarriedParent);
    // The household register last: the others ask it where the person lives first.
    for (department, connector, operation) in LOOKUPS.into_iter().rev() {
        gw.set_faults(department, fault.clone());
        let reply = gw
            .query(&lookup(connector, operation, person.id.as_str()))
            .await;
        assert_department_problem(&reply, status, kind, connector, person.id.as_str());
        assert!(!reply.text.contains(person.name.as_str()));
        // Healthy again before the next department: while the household register
        // (户籍) fails, every lookup needing where the person lives fails with it.
        gw.set_faults(department, Faults::default());
    }
}

#[tokio::test]
async fn department_errors_are_502_upstream_error() {
    let faults = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    each_department(faults, 502, "upstream-error").await;
}

#[tokio::test]
async fn malformed_json_is_502_upstream_malformed() {
    let faults = Faults {
        malformed_json: true,
        ..Faults::default()
    };
    each_department(faults, 502, "upstream-malformed").await;
}

#[tokio::test]
async fn oversized_answers_are_502_upstream_oversize() {
    let faults = Faults {
        // Over the 256 KiB limit; small enough for a debug build's simulated
        // department to write well within the test's 400 ms time limit.
        oversized_bytes: 600 * 1024,
        ..Faults::default()
    };
    each_department(faults, 502, "upstream-oversize").await;
}

#[tokio::test]
async fn a_hanging_department_is_504_upstream_timeout() {
    let faults = Faults {
        hang: true,
        ..Faults::default()
    };
    each_department(faults, 504, "upstream-timeout").await;
}

#[tokio::test]
async fn slow_but_in_time_is_fine_and_too_slow_is_a_timeout() {
    let gw = gateway().await;
    let person = sample(SampleKind::MarriedParent);
    gw.set_faults(
        Department::Hukou,
        Faults {
            latency_ms: 50,
            ..Faults::default()
        },
    );
    let reply = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    gw.set_faults(
        Department::Hukou,
        Faults {
            latency_ms: 2_000,
            ..Faults::default()
        },
    );
    let reply = gw
        .query(&lookup("hukou", "person_by_id", person.id.as_str()))
        .await;
    assert_department_problem(&reply, 504, "upstream-timeout", "hukou", person.id.as_str());
}

#[tokio::test]
async fn schema_violations_fail_closed_naming_the_schema_path() {
    let gw = gateway().await;
    let person = sample(SampleKind::MarriedParent);
    let expected = [
        (
            "hukou",
            "/properties/township_code/pattern",
            "/township_code",
        ),
        (
            "shebao",
            "/properties/schemes/items/properties/contribution_months/minimum",
            "/schemes/0/contribution_months",
        ),
        (
            "jisheng",
            "/properties/children/items/properties/birth_order/minimum",
            "/children/0/birth_order",
        ),
    ];
    for ((department, connector, operation), (_, schema_path, instance_path)) in
        LOOKUPS.into_iter().zip(expected)
    {
        gw.set_faults(
            department,
            Faults {
                schema_violation: true,
                ..Faults::default()
            },
        );
        let reply = gw
            .query(&lookup(connector, operation, person.id.as_str()))
            .await;
        assert_department_problem(
            &reply,
            502,
            "upstream-schema-violation",
            connector,
            person.id.as_str(),
        );
        assert_eq!(reply.json["schema_path"], schema_path, "{}", reply.text);
        assert_eq!(reply.json["instance_path"], instance_path);
        // The offending value is not in the answer.
        assert!(!reply.text.contains("13990110"));
        gw.set_faults(department, Faults::default());
    }
}

#[tokio::test]
async fn undeclared_upstream_fields_never_reach_the_caller() {
    let gw = gateway().await;
    let person = sample(SampleKind::MarriedParent);
    for (department, connector, operation) in LOOKUPS {
        gw.set_faults(
            department,
            Faults {
                extra_fields: true,
                ..Faults::default()
            },
        );
        let reply = gw
            .query(&lookup(connector, operation, person.id.as_str()))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for leak in ["nbbz", "sjmm", "内部备注", "synthetic-secret"] {
            assert!(!reply.text.contains(leak), "{leak} reached the caller");
        }
    }
}

#[tokio::test]
async fn an_unreachable_department_is_502_upstream_unavailable() {
    let mut gw = gateway().await;
    let person = sample(SampleKind::MarriedParent);
    let index = gw
        .departments
        .iter()
        .position(|d| d.department == Department::Shebao)
        .expect("shebao");
    gw.departments.remove(index).shutdown().await;
    let reply = gw
        .query(&lookup("shebao", "insured_by_id", person.id.as_str()))
        .await;
    assert_department_problem(
        &reply,
        502,
        "upstream-unavailable",
        "shebao",
        person.id.as_str(),
    );
}

#[tokio::test]
async fn a_department_recovers_when_its_fault_is_cleared() {
    let gw = gateway().await;
    let person = sample(SampleKind::MarriedParent);
    gw.set_faults(
        Department::Jisheng,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let reply = gw
        .query(&lookup("jisheng", "fertility_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 502);
    gw.set_faults(Department::Jisheng, Faults::default());
    let reply = gw
        .query(&lookup("jisheng", "fertility_by_id", person.id.as_str()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}
