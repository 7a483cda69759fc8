//! The department admin's connector desk, the shared catalog, data use and the
//! operator's status page, without a browser: every page's status and language;
//! a department admin reaches only their own department's connectors (县人社局's
//! admin cannot see, test, purge or count 县公安局's); changes need a confirmation
//! and a reason, which the audit event keeps; CSRF is refused; an upload with
//! problems lists every one and saves nothing; a good one is a draft put in force
//! from the page; a test call shows the record to the department's own admin only.

use sim::{Department, SampleKind};

use crate::audit::events;
use crate::console::{Page, Visitor};
use gateway::auth::Role;
use serde_json::json;

use crate::helpers::{Edit as _, TOWNSHIP, TestGateway, county_file, lookup, post_json, sample};

/// The 公安局's own copy of its household connector as `hukou2`, pointed at the
/// simulated system.
fn hukou2(gw: &TestGateway) -> String {
    let base = gw.department(Department::Hukou).base_url();
    county_file("county/connectors/hukou.yaml")
        .edit("id: hukou\n", "id: hukou2\n")
        .edit(
            "base_url: http://127.0.0.1:18101",
            &format!("base_url: {base}"),
        )
}

fn file(name: &str, text: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::text(text.to_owned()).file_name(name.to_owned())
}

/// Uploads a definition (and schemas, by file name) from the upload page.
async fn upload(visitor: &mut Visitor, definition: &str, schemas: &[(&str, &str)]) -> Page {
    let page = visitor.get("/console/connectors/new").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", page.csrf())
        .part("definition", file("hukou2.yaml", definition));
    for (name, text) in schemas {
        form = form.part("schema", file(name, text));
    }
    visitor
        .post_multipart("/console/connectors/new", form)
        .await
}

fn hukou_schemas() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "person.schema.json",
            county_file("schemas/hukou/person.schema.json"),
        ),
        (
            "household.schema.json",
            county_file("schemas/hukou/household.schema.json"),
        ),
    ]
}

/// The newest admin event whose operation starts with `prefix`.
async fn newest(gw: &TestGateway, prefix: &str) -> serde_json::Value {
    events(gw)
        .await
        .into_iter()
        .rev()
        .find(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("an audit event {prefix}…"))
}

#[tokio::test]
async fn the_admin_desk_pages_answer_in_both_languages_to_the_people_they_are_for() {
    let gw = TestGateway::start().await;
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let list = admin.get("/console/connectors").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.lang(), "zh-CN");
    assert!(list.body.contains("我的连接器"));
    assert!(list.body.contains("id=\"row-hukou\""), "its own connector");
    assert!(
        !list.body.contains("id=\"row-shebao\""),
        "not 县人社局's connector"
    );
    admin.accept_language = Some("en");
    let page = admin.get("/console/connectors/hukou").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.lang(), "en");
    for words in [
        "Operations and fields",
        "Shared on conditions",
        "Shared without conditions",
        "Default mask",
        "managed by the county&#39;s configuration files",
    ] {
        assert!(page.body.contains(words), "{words}: {}", page.body);
    }
    for path in [
        "/console/usage",
        "/console/catalog",
        "/console/connectors/new",
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_eq!(page.lang(), "en", "{path}");
    }
    assert_eq!(
        admin.get("/console/status").await.status,
        403,
        "operators only"
    );

    let mut operator = Visitor::signed_in(&gw, "operator").await;
    let status = operator.get("/console/status").await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert!(status.body.contains("就绪"), "{}", status.body);
    assert!(status.body.contains("id=\"dept-county-psb\""));
    assert!(
        status.body.contains("可以连接"),
        "the simulated systems answer"
    );
    assert!(status.body.contains("href=\"/metrics\""));
    let all = operator.get("/console/connectors").await;
    assert!(all.body.contains("id=\"row-hukou\"") && all.body.contains("id=\"row-shebao\""));

    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    assert_eq!(clerk.get("/console/connectors").await.status, 403);
    assert_eq!(clerk.get("/console/connectors/hukou").await.status, 403);
    assert_eq!(clerk.get("/console/usage").await.status, 403);
    let catalog = clerk.get("/console/catalog").await;
    assert_eq!(catalog.status, 200, "everyone reads the catalog");
    assert!(catalog.body.contains("id=\"catalog-hukou\""));
    assert!(catalog.body.contains("不予共享") || catalog.body.contains("有条件共享"));
    let csrf = catalog.csrf();
    let found = clerk
        .post("/console/catalog", &[("csrf", &csrf), ("q", "参保")])
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found.body.contains("id=\"catalog-shebao\""),
        "{}",
        found.body
    );
    assert!(!found.body.contains("id=\"catalog-jisheng\""), "narrowed");
}

#[tokio::test]
async fn another_departments_admin_can_neither_see_nor_change_nor_count_a_connector() {
    let gw = TestGateway::start().await;
    let mut hrss = Visitor::signed_in(&gw, "admin-hrss").await;
    let list = hrss.get("/console/connectors").await;
    assert!(list.body.contains("id=\"row-shebao\""));
    assert!(!list.body.contains("id=\"row-hukou\""));
    assert_eq!(hrss.get("/console/connectors/hukou").await.status, 403);
    assert_eq!(hrss.get("/console/usage?connector=hukou").await.status, 403);
    let csrf = list.csrf();
    let before = events(&gw).await.len();
    let purge = hrss
        .post(
            "/console/connectors/hukou/change",
            &[
                ("csrf", &csrf),
                ("action", "purge"),
                ("reason", "试试"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(purge.status, 403, "{}", purge.body);
    let person = sample(SampleKind::MarriedParent);
    let test = hrss
        .post(
            "/console/connectors/hukou/test",
            &[
                ("csrf", &csrf),
                ("operation", "person_by_id"),
                ("subject", person.id.as_str()),
            ],
        )
        .await;
    assert_eq!(test.status, 403, "{}", test.body);
    assert!(!test.body.contains(&person.name));
    let refused: Vec<_> = events(&gw)
        .await
        .into_iter()
        .skip(before)
        .filter(|e| e["outcome"]["status"] == 403)
        .collect();
    assert_eq!(refused.len(), 2, "both refusals are in the audit log");
}

#[tokio::test]
async fn a_purge_needs_a_confirmation_and_a_reason_which_the_audit_event_keeps() {
    let gw = TestGateway::start().await;
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let page = admin.get("/console/connectors/hukou").await;
    let csrf = page.csrf();
    let unconfirmed = admin
        .post(
            "/console/connectors/hukou/change",
            &[
                ("csrf", &csrf),
                ("action", "purge"),
                ("reason", "部门更正了记录"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status, 400);
    assert!(unconfirmed.body.contains("请勾选确认并填写原因"));
    let forged = admin
        .post(
            "/console/connectors/hukou/change",
            &[
                ("csrf", "not-the-token"),
                ("action", "purge"),
                ("reason", "部门更正了记录"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "CSRF refused");
    let id_in_reason = admin
        .post(
            "/console/connectors/hukou/change",
            &[
                ("csrf", &csrf),
                ("action", "purge"),
                ("reason", "更正 13990119750327229X 的记录"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(id_in_reason.status, 400, "{}", id_in_reason.body);
    assert!(!id_in_reason.body.contains("13990119750327229X"));
    let done = admin
        .post(
            "/console/connectors/hukou/change",
            &[
                ("csrf", &csrf),
                ("action", "purge"),
                ("reason", "部门更正了记录"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("已清除缓存"), "{}", done.body);
    let event = newest(&gw, "connector.cache.purge").await;
    assert_eq!(event["outcome"]["status"], 200);
    assert_eq!(event["reason"], "部门更正了记录");
    assert_eq!(event["caller"]["user"], "admin-psb");
    assert_eq!(event["connector"], "hukou");
    assert!(
        !events(&gw)
            .await
            .iter()
            .any(|e| e.to_string().contains("13990119750327229X")),
        "a refused reason is not kept"
    );
}

#[tokio::test]
async fn an_upload_with_problems_lists_every_one_and_saves_nothing_and_a_good_one_goes_into_force_from_the_page()
 {
    let gw = TestGateway::start().await;
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    // Two mistakes: a department system the county does not know, and no schemas.
    let bad = hukou2(&gw).edit(
        &format!("base_url: {}", gw.department(Department::Hukou).base_url()),
        "base_url: http://10.9.9.9:8080",
    );
    let refused = upload(&mut admin, &bad, &[]).await;
    assert!(refused.status >= 400, "{}", refused.body);
    assert!(refused.body.contains("没有保存"), "{}", refused.body);
    let problems = refused.body.matches("<li><code>").count();
    assert!(problems >= 2, "every problem is listed: {}", refused.body);
    assert!(refused.body.contains("base_url"), "{}", refused.body);
    assert!(refused.body.contains("schema"), "{}", refused.body);
    assert_eq!(
        admin.get("/console/connectors/hukou2").await.status,
        404,
        "nothing was saved"
    );

    let saved = upload(&mut admin, &hukou2(&gw), &hukou_schemas()).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location(), Some("/console/connectors/hukou2"));
    let page = admin.get("/console/connectors/hukou2").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"version-1\""));
    // A new connector shares fields the county never classified: the data-governance
    // office's review puts it in force, not its department.
    assert!(page.body.contains("待数据治理部门审核"), "{}", page.body);
    assert!(!page.body.contains("id=\"activate-1\""));
    let approved = post_json(
        &gw.url("/v1/admin/connectors/hukou2/versions/1/approve"),
        &gw.token(Role::Governance, None),
        &json!({}),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let page = admin.get("/console/connectors/hukou2").await;
    assert!(page.body.contains("id=\"state\" class=\"state-enabled\""));
    let csrf = page.csrf();

    // Now a registered connector: the page disables it, with a reason.
    let disabled = admin
        .post(
            "/console/connectors/hukou2/change",
            &[
                ("csrf", &csrf),
                ("action", "disable"),
                ("reason", "部门系统升级，暂停共享"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(disabled.body.contains("class=\"state-disabled\""));
    let event = newest(&gw, "connector.disable hukou2").await;
    assert_eq!(event["reason"], "部门系统升级，暂停共享");
    assert_eq!(event["outcome"]["status"], 200);

    // A second version, and what changed between the two.
    let v2 = hukou2(&gw).edit("path: /rkxx/api/v1/person,", "path: /rkxx/api/v1/persons,");
    let second = upload(&mut admin, &v2, &hukou_schemas()).await;
    assert_eq!(second.status, 303, "{}", second.body);
    let diff = admin
        .post(
            "/console/connectors/hukou2/diff",
            &[("csrf", &csrf), ("from", "1"), ("to", "2")],
        )
        .await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    assert!(
        diff.body.contains("查询操作有变化：person_by_id"),
        "{}",
        diff.body
    );
}

/// Tests `hukou.person_by_id` from its page with a sample subject.
async fn test_call(visitor: &mut Visitor, csrf: &str, id_number: &str) -> Page {
    visitor
        .post(
            "/console/connectors/hukou/test",
            &[
                ("csrf", csrf),
                ("operation", "person_by_id"),
                ("subject", id_number),
            ],
        )
        .await
}

#[tokio::test]
async fn a_test_call_shows_the_record_to_the_departments_own_admin_only_and_stores_none_of_it() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let csrf = admin.get("/console/connectors/hukou").await.csrf();
    let shown = test_call(&mut admin, &csrf, person.id.as_str()).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("应答符合映射和模式"), "{}", shown.body);
    assert!(shown.body.contains("id=\"test-record\""));
    assert!(
        shown.body.contains(&person.name),
        "the record, to its own admin"
    );
    assert!(shown.body.contains("有条件共享"), "with its classification");
    assert_eq!(shown.header("cache-control"), "no-store");
    admin.assert_never_in_a_url(person.id.as_str());

    let mut operator = Visitor::signed_in(&gw, "operator").await;
    let csrf = operator.get("/console/connectors/hukou").await.csrf();
    let hidden = test_call(&mut operator, &csrf, person.id.as_str()).await;
    assert_eq!(hidden.status, 200, "{}", hidden.body);
    assert!(hidden.body.contains("id=\"test-record-hidden\""));
    assert!(!hidden.body.contains(&person.name), "not to the operator");

    let tests: Vec<_> = events(&gw)
        .await
        .into_iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("connector.test hukou.person_by_id"))
        })
        .collect();
    assert_eq!(tests.len(), 2);
    for event in &tests {
        let text = event.to_string();
        assert!(!text.contains(&person.name), "no record in the audit log");
        assert!(!text.contains(person.id.as_str()), "only the pseudonym");
        assert!(event["subject_pseudonym"].is_string());
    }
    // The list shows the last test.
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let list = admin.get("/console/connectors").await;
    assert!(list.body.contains("应答符合映射和模式 · "), "{}", list.body);
}

#[tokio::test]
async fn data_use_counts_lookups_per_township_purpose_and_operation_without_personal_data() {
    let gw = TestGateway::start().await;
    let person = sample(SampleKind::MarriedParent);
    let body = lookup("hukou", "person_by_id", person.id.as_str());
    assert_eq!(gw.query(&body).await.status, 200);
    assert_eq!(gw.query(&body).await.status, 200);
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let page = admin.get("/console/usage?connector=hukou").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let row = page
        .body
        .split("<tr>")
        .find(|r| r.contains(TOWNSHIP) && r.contains("person_by_id"))
        .unwrap_or_else(|| panic!("a row for the township: {}", page.body));
    assert!(row.contains("<td>2</td>"), "two answered lookups: {row}");
    assert!(!page.body.contains(&person.name));
    assert!(!page.body.contains(person.id.as_str()));
    let bad = admin
        .get("/console/usage?connector=hukou&from=2026-13-01")
        .await;
    assert_eq!(bad.status, 400);
    let odd = admin
        .get("/console/usage?connector=hukou&id_number=1")
        .await;
    assert_eq!(odd.status, 400, "only the listed parameters");
}
