//! The civil-affairs department (县民政局) end to end, on its front database: a clerk's
//! 低保 form reads 户籍 and 社保 over HTTP and 民政 from the front database at once,
//! the values are the department's own, and the privacy officer finds each 民政
//! lookup in the audit log — with the demo's SQLite file, and with the same export
//! written into real MariaDB and PostgreSQL servers (`gateway simulate --front-db`'s
//! writer).

use std::collections::BTreeMap;

use gateway::auth::Role;
use gateway::demo;
use serde_json::{Value, json};

use crate::helpers::{Edit, Reply, TestGateway, client, county_file, population, post_json};

const TOWNSHIP: &str = sim::minzheng::SAMPLE_TOWNSHIP;

/// Each current member of the sampled 低保 household, with the status code the
/// department's export holds for them.
fn dibao_members() -> BTreeMap<String, String> {
    let population = population();
    let household = sim::minzheng::dibao_household(population).expect("a 低保 household");
    let tables = sim::minzheng::tables(population);
    let dibao = tables
        .iter()
        .find(|t| t.name == "mz_dibao")
        .expect("the 低保 table");
    let status = dibao
        .columns
        .iter()
        .position(|(name, _)| *name == "dbzt")
        .expect("dbzt");
    dibao
        .rows
        .iter()
        .filter(|row| {
            row.first()
                .and_then(|id| id.as_deref())
                .is_some_and(|id| household.members.iter().any(|m| m.as_str() == id))
        })
        .map(|row| {
            (
                row[0].clone().unwrap_or_default(),
                row[status].clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Fills the 低保 form for the sampled household and checks what came back from each
/// department; then the privacy officer's view of the 民政 lookups.
async fn fill_and_audit(gw: &TestGateway) {
    let members = dibao_members();
    assert!(members.len() >= 2, "{members:?}");
    let first = members.keys().next().expect("a member").clone();
    let token = gw.token(Role::Clerk, Some(TOWNSHIP));
    let reply = post_json(
        &gw.url("/v1/forms/subsistence-allowance/fill"),
        &token,
        &json!({"subject": {"id_number": first}, "case_id": "DB-2026-0042"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["complete"], true, "{}", reply.text);
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for lookup in reply.json["lookups"].as_array().expect("lookups") {
        *calls
            .entry(lookup["connector"].as_str().expect("connector").to_owned())
            .or_default() += 1;
    }
    assert_eq!(calls.get("hukou"), Some(&1), "{calls:?}");
    assert!(
        calls.get("shebao").is_some_and(|n| *n >= members.len()),
        "{calls:?}"
    );
    assert!(
        calls.get("minzheng").is_some_and(|n| *n >= members.len()),
        "{calls:?}"
    );
    // Each current member's row shows the status the department's export holds for
    // them, with 民政 named as its source; no 民政 lookup failed.
    assert!(!reply.text.contains("front-database"), "{}", reply.text);
    let section = reply.json["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == "members")
        .expect("the members section");
    let mut shown: Vec<String> = Vec::new();
    for row in section["rows"].as_array().expect("rows") {
        let fields = row["fields"].as_array().expect("fields");
        let field = |id: &str| fields.iter().find(|f| f["id"] == id).expect("a field");
        let status = field("dibao_status");
        if let Some(value) = status["value"].as_str() {
            assert_eq!(status["source"]["connector"], "minzheng", "{status}");
            assert_eq!(
                status["source"]["department"]["id"], "county-mca",
                "{status}"
            );
            assert!(
                field("dibao_monthly_amount")["value"]
                    .as_f64()
                    .is_some_and(|a| a > 0.0)
            );
            shown.push(value.to_owned());
        }
    }
    let mut expected: Vec<String> = members
        .values()
        .map(|code| {
            match code.as_str() {
                "1" => "receiving",
                "2" => "suspended",
                _ => "stopped",
            }
            .to_owned()
        })
        .collect();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected, "{}", reply.text);

    // The privacy officer finds each 民政 lookup, by connector.
    let officer = gw.token(Role::PrivacyOfficer, None);
    let found = post_json(
        &gw.url("/v1/audit/search"),
        &officer,
        &json!({"filter": {"connector": "minzheng"}, "limit": 100}),
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.text);
    let events = found.json["events"].as_array().expect("events");
    assert!(events.len() >= members.len(), "{}", found.text);
    for event in events {
        assert_eq!(event["connector"], "minzheng", "{event}");
        assert_eq!(event["purpose"], "subsistence_allowance", "{event}");
    }
    // And the citizen's report lists the 民政 access among the others.
    let report = post_json(
        &gw.url("/v1/audit/report"),
        &officer,
        &json!({"id_number": first}),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text);
    let connectors: Vec<&Value> = report.json["accesses"]
        .as_array()
        .expect("accesses")
        .iter()
        .map(|a| &a["connector"])
        .collect();
    assert!(connectors.contains(&&json!("minzheng")), "{}", report.text);
}

#[tokio::test]
async fn a_dibao_fill_reads_hukou_shebao_and_the_civil_affairs_front_database() {
    let gw = TestGateway::start().await;
    fill_and_audit(&gw).await;
}

/// Runs one administrative statement on the server at `admin_url`.
async fn admin(driver: &str, admin_url: &str, statement: &str) {
    if driver == "mysql" {
        use mysql_async::prelude::Queryable;
        let mut admin = mysql_async::Conn::from_url(admin_url)
            .await
            .expect("MariaDB");
        admin.query_drop(statement).await.expect(statement);
    } else {
        let (admin, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL");
        tokio::spawn(connection);
        admin.batch_execute(statement).await.expect(statement);
    }
}

/// The same form against the same export written into a server: a fresh database of
/// the test's own, which `minzheng_front` then names instead of the demo's file.
async fn on_server(driver: &str, admin_url: &str) {
    let database = testkit::services::schema_name();
    admin(driver, admin_url, &format!("CREATE DATABASE {database}")).await;
    let url = admin_url.replace("/test", &format!("/{database}"));
    let rows = sim::front_servers::write_server(population(), &url)
        .await
        .expect("the export is written");
    assert!(rows > 0);
    let declared = "minzheng_front: { driver: sqlite, path: ../data/front/minzheng.db, pool: 4 }";
    let on_server = format!("minzheng_front: {{ driver: {driver}, url: \"{url}\", pool: 4 }}");
    let gw = TestGateway::start_with(|path, text| {
        if path == gateway::county::COUNTY_CONFIG {
            assert!(
                text.contains(declared),
                "the county declares its front database"
            );
            text.replace(declared, &on_server)
        } else {
            text.to_owned()
        }
    })
    .await;
    fill_and_audit(&gw).await;
    drop(gw);
    // The gateway's pool may still hold a PostgreSQL connection for a moment.
    let force = if driver == "mysql" {
        ""
    } else {
        " WITH (FORCE)"
    };
    admin(
        driver,
        admin_url,
        &format!("DROP DATABASE {database}{force}"),
    )
    .await;
}

#[tokio::test]
async fn the_same_fill_reads_the_export_from_mariadb() {
    if let Some(url) = testkit::services::mariadb("front_database::mariadb").await {
        on_server("mysql", &url).await;
    }
}

#[tokio::test]
async fn the_same_fill_reads_the_export_from_postgresql() {
    if let Some(url) = testkit::services::postgres("front_database::postgresql").await {
        on_server("postgres", &url).await;
    }
}

/// A department admin's token for `department`.
fn admin_of(gw: &TestGateway, department: &'static str) -> String {
    let persona = demo::Persona {
        name: "front-db-tester",
        about: "a test caller",
        role: Role::DeptAdmin,
        township: None,
        villages: &[],
        department: Some(department),
    };
    demo::persona_token(&gw.issuer, &persona).expect("a token")
}

/// The civil-affairs connector copied as `id`, owned by `department`, reading
/// `database`, with its schemas.
fn copy_of_minzheng(id: &str, department: &str, database: &str) -> Value {
    let definition = county_file("county/connectors/minzheng.yaml")
        .edit("id: minzheng\n", &format!("id: {id}\n"))
        .edit(
            "department: { id: county-mca }",
            &format!("department: {{ id: {department} }}"),
        )
        .edit("database: minzheng_front", &format!("database: {database}"));
    let mut schemas = serde_json::Map::new();
    for name in ["dibao", "dibao-history", "marriage", "disability"] {
        let path = format!("minzheng/{name}.schema.json");
        let text = county_file(&format!("schemas/{path}"));
        schemas.insert(path, serde_json::from_str(text).expect("a schema"));
    }
    json!({"definition": definition, "schemas": schemas})
}

async fn put(gw: &TestGateway, token: &str, id: &str, body: &Value) -> Reply {
    let request = client()
        .put(gw.url(&format!("/v1/admin/connectors/{id}")))
        .bearer_auth(token)
        .json(body);
    Reply::read(request.send().await.expect("an answer")).await
}

/// A department with only a staging database registers its connector through the API,
/// as any department does; but no department's connector may name a front database
/// the operator did not declare for it — not even another department's.
#[tokio::test]
async fn a_department_registers_a_front_database_connector_and_cannot_read_anothers() {
    let gw = TestGateway::start().await;
    let mca = admin_of(&gw, "county-mca");
    let proposed = put(
        &gw,
        &mca,
        "minzheng2",
        &copy_of_minzheng("minzheng2", "county-mca", "minzheng_front"),
    )
    .await;
    assert!([201, 202].contains(&proposed.status), "{}", proposed.text);
    assert_eq!(proposed.json["version"], 1, "{}", proposed.text);
    if proposed.json["state"] == "awaiting_review" {
        // The county's data-governance office approves its classification.
        let persona = demo::Persona {
            name: "governance-tester",
            about: "a test reviewer",
            role: Role::Governance,
            township: None,
            villages: &[],
            department: None,
        };
        let governance = demo::persona_token(&gw.issuer, &persona).expect("a token");
        let approved = post_json(
            &gw.url("/v1/admin/connectors/minzheng2/versions/1/approve"),
            &governance,
            &json!({"note": "the same classification as minzheng"}),
        )
        .await;
        assert_eq!(approved.status, 200, "{}", approved.text);
    }
    // It serves: a clerk's lookup reads the front database (open fields need no grant).
    let member = dibao_members().into_keys().next().expect("a member");
    let answer = gw
        .query(&crate::helpers::lookup("minzheng2", "dibao_by_id", &member))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["data"]["id_number"].is_string(),
        "{}",
        answer.text
    );
    assert!(
        answer.json["data"].get("name").is_none(),
        "conditional fields need a grant"
    );

    // A database its department never declared.
    let refused = put(
        &gw,
        &mca,
        "minzheng3",
        &copy_of_minzheng("minzheng3", "county-mca", "renshe_front"),
    )
    .await;
    refused.assert_problem(422, "invalid-config");
    assert!(
        refused.json["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["path"] == "database"),
        "{}",
        refused.text
    );
    // The health commission's admin names 民政's database for a connector of its own.
    let hc = admin_of(&gw, "county-hc");
    let refused = put(
        &gw,
        &hc,
        "hc_reads_mca",
        &copy_of_minzheng("hc_reads_mca", "county-hc", "minzheng_front"),
    )
    .await;
    refused.assert_problem(422, "invalid-config");
    assert!(
        refused
            .text
            .contains("is not a front database of department `county-hc`"),
        "{}",
        refused.text
    );
}

/// What a clerk sees when the department's export breaks: a problem naming the
/// department and the kind of fault, never the file, the database's words or the
/// person; and the lookups work again once the department delivers a good export.
#[tokio::test]
async fn a_broken_export_is_named_by_department_and_fault_and_a_new_one_is_read() {
    let gw = TestGateway::start().await;
    let member = dibao_members().into_keys().next().expect("a member");
    let file = gw.data_dir.path().join("data/front/minzheng.db");
    let ask = || crate::helpers::lookup("minzheng", "marriage_by_id", &member);
    let served = |reply: &Reply| [200, 404].contains(&reply.status);
    let first = gw.query(&ask()).await;
    assert!(served(&first), "{}", first.text);
    let broken = |reply: &Reply, fault: &str| {
        reply.assert_problem(502, "front-database");
        assert_eq!(reply.json["fault"], fault, "{}", reply.text);
        assert_eq!(
            reply.json["department"]["id"], "county-mca",
            "{}",
            reply.text
        );
        assert_eq!(
            reply.json["department"]["name"], "县民政局",
            "{}",
            reply.text
        );
        assert_eq!(reply.json["connector"], "minzheng", "{}", reply.text);
        for secret in [
            member.as_str(),
            "minzheng.db",
            "mz_hydj",
            "v_marriage",
            "sqlite",
        ] {
            assert!(!reply.text.contains(secret), "{secret} in {}", reply.text);
        }
    };
    // The file is gone (the department is between exports).
    std::fs::remove_file(&file).expect("removed");
    // The department purges the gateway's copy, so that no cached answer stands in.
    let purge = post_json(
        &gw.url("/v1/admin/connectors/minzheng/cache/purge"),
        &admin_of(&gw, "county-mca"),
        &json!({}),
    )
    .await;
    assert_eq!(purge.status, 200, "{}", purge.text);
    broken(&gw.query(&ask()).await, "unreachable");
    // A new file without the view the connector reads: the export is not as declared.
    rusqlite::Connection::open(&file)
        .and_then(|db| db.execute_batch("CREATE TABLE mz_hydj (sfzh TEXT)"))
        .expect("a broken export");
    broken(&gw.query(&ask()).await, "schema_drift");
    // The department writes its export again, renamed over the broken one: read.
    sim::minzheng::write_sqlite(population(), &file).expect("the export again");
    let again = gw.query(&ask()).await;
    assert!(served(&again), "{}", again.text);
    assert_eq!(again.status, first.status, "{}", again.text);
}
