//! The console's access desks without a browser: every page's status and language,
//! the department scope (县人社局's admin neither sees nor changes a request or a
//! grant for 县公安局's `hukou`), the confirmation a revocation needs, CSRF, and
//! every change as an admin event in the audit log (its reason kept with the
//! request or grant, shown on the pages, and — as the API does — out of the log).

use serde_json::Value;

use crate::audit::events;
use crate::console::{Page, Visitor, inputs_and_labels};
use crate::helpers::TestGateway;

/// The admin events of the access workflow, oldest first.
async fn access_events(gw: &TestGateway) -> Vec<Value> {
    events(gw)
        .await
        .into_iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|op| op.starts_with("access.") || op.starts_with("grant."))
        })
        .collect()
}

/// (operation, user, status) of each access event.
fn summary(events: &[Value]) -> Vec<(String, String, u64)> {
    events
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or_default().to_owned(),
                e["caller"]["user"].as_str().unwrap_or_default().to_owned(),
                e["outcome"]["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The first value of `attr="…"` in a page after `after`.
fn attr_after(page: &Page, after: &str, attr: &str) -> Option<String> {
    let at = page.body.find(after)?;
    let rest = &page.body[at..];
    let key = format!("{attr}=\"");
    let start = rest.find(&key)? + key.len();
    let rest = &rest[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The lead of 东岭镇 asks 县公安局 for `name` and `birth_date` of `hukou`'s
/// `person_by_id` for rural housing, through the request page; returns the id.
async fn file_request(lead: &mut Visitor) -> String {
    let form = lead.get("/console/request?op=hukou.person_by_id").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let filed = lead
        .post(
            "/console/request",
            &[
                ("csrf", &form.csrf()),
                ("op", "hukou.person_by_id"),
                ("field.name", "on"),
                ("field.birth_date", "on"),
                ("purpose", "rural_housing"),
                ("role.clerk", "on"),
                ("valid_until", ""),
                ("justification", "农民建房审批需核对申请人姓名和出生日期。"),
            ],
        )
        .await;
    assert_eq!(filed.status, 303, "{}", filed.body);
    assert_eq!(filed.location(), Some("/console/township"));
    let township = lead.get("/console/township").await;
    let id = attr_after(&township, "id=\"township-requests\"", "data-request")
        .expect("the request is listed");
    assert!(id.starts_with("ar-"), "{id}");
    id
}

/// Approves `id` as 县公安局's admin, narrowed to `birth_date: date_year`.
async fn approve_narrowed(admin: &mut Visitor, id: &str) -> Page {
    let page = admin.get(&format!("/console/inbox/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    admin
        .post(
            &format!("/console/inbox/{id}/approve"),
            &[
                ("csrf", &page.csrf()),
                ("keep.birth_date", "on"),
                ("mask.birth_date", "date_year"),
                ("mask.name", "name"),
                ("valid_until", ""),
                ("per_day", "50"),
                ("per_minute", ""),
                ("per_user_per_day", ""),
                ("note", "只批出生年份。"),
            ],
        )
        .await
}

#[tokio::test]
async fn every_access_page_answers_in_chinese_and_in_english_for_its_own_people() {
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let id = file_request(&mut lead).await;
    let mut admin = Visitor::signed_in(&gw, "admin-psb").await;
    let home = admin.get("/console/").await;
    assert_eq!(
        home.location(),
        Some("/console/inbox"),
        "a department admin starts at the inbox"
    );

    let lead_pages = [
        ("/console/township", "本乡镇授权", "Township grants"),
        ("/console/request", "申请数据", "Request data"),
        (
            "/console/request?op=hukou.person_by_id",
            "有条件共享",
            "conditional (needs a grant)",
        ),
    ];
    let inbox_item = format!("/console/inbox/{id}");
    let admin_pages = [
        ("/console/inbox", "申请待办", "Requests inbox"),
        (inbox_item.as_str(), "农民建房", "Rural housing"),
        ("/console/grants", "本部门授权", "Department grants"),
        (
            "/console/grants?township=139901101&purpose=rural_housing",
            "本部门授权",
            "Department grants",
        ),
    ];
    for (visitor, pages) in [(&mut lead, &lead_pages[..]), (&mut admin, &admin_pages[..])] {
        for (path, zh, en) in pages {
            visitor.accept_language = None;
            let page = visitor.get(path).await;
            assert_eq!((page.status, page.lang()), (200, "zh-CN"), "{path}");
            assert!(page.body.contains(zh), "{path}: {zh}");
            let (inputs, labels) = inputs_and_labels(&page.body);
            for input in inputs {
                assert!(labels.contains(&input), "{path}: {input} has no label");
            }
            visitor.accept_language = Some("en");
            let page = visitor.get(path).await;
            assert_eq!((page.status, page.lang()), (200, "en"), "{path}");
            assert!(page.body.contains(en), "{path}: {en}");
        }
    }
    admin.accept_language = None;
    let inbox = admin.get("/console/inbox").await;
    assert!(inbox.body.contains(&id), "the request is in the inbox");
    assert!(
        inbox.body.contains("个工作日"),
        "its deadline in working days"
    );
    let item = admin.get(&inbox_item).await;
    for text in [
        "《中华人民共和国土地管理法》第六十二条",
        "农民建房审批需核对申请人姓名和出生日期。",
        "出生日期",
        "有条件共享",
    ] {
        assert!(item.body.contains(text), "the request shows {text}");
    }

    // Each desk is its own people's.
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    for path in [
        "/console/inbox",
        "/console/grants",
        "/console/township",
        "/console/request",
    ] {
        assert_eq!(clerk.get(path).await.status, 403, "{path}");
    }
    assert_eq!(lead.get("/console/inbox").await.status, 403);
    assert_eq!(admin.get("/console/township").await.status, 403);
    // The pages' filters are codes; anything else is refused.
    assert_eq!(admin.get("/console/grants?township=<b>").await.status, 400);
}

#[tokio::test]
async fn another_departments_admin_neither_sees_nor_changes_its_requests_or_grants() {
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let id = file_request(&mut lead).await;
    let mut hrss = Visitor::signed_in(&gw, "admin-hrss").await;
    let inbox = hrss.get("/console/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(!inbox.body.contains(&id), "not in 县人社局's inbox");
    let item = hrss.get(&format!("/console/inbox/{id}")).await;
    assert_eq!(item.status, 404, "another department's request is unknown");
    assert!(
        !item.body.contains("农民建房审批"),
        "nothing of it is shown"
    );
    let csrf = inbox.csrf();
    let approve = hrss
        .post(
            &format!("/console/inbox/{id}/approve"),
            &[("csrf", &csrf), ("keep.name", "on"), ("mask.name", "name")],
        )
        .await;
    assert_eq!(approve.status, 403, "{}", approve.body);
    let refuse = hrss
        .post(
            &format!("/console/inbox/{id}/refuse"),
            &[("csrf", &csrf), ("reason", "不是本部门的数据")],
        )
        .await;
    assert_eq!(refuse.status, 403);

    // 县公安局 approves; 县人社局 does not see the grant and cannot revoke it.
    let mut psb = Visitor::signed_in(&gw, "admin-psb").await;
    let approved = approve_narrowed(&mut psb, &id).await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let grants = hrss.get("/console/grants").await;
    assert!(!grants.body.contains(&id));
    assert!(
        !grants.body.contains("hukou."),
        "no hukou grant for 县人社局"
    );
    let revoke = hrss
        .post(
            &format!("/console/grants/{id}/revoke"),
            &[("csrf", &csrf), ("reason", "越权"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(revoke.status, 403);
    let ours = psb.get("/console/grants").await;
    assert!(ours.body.contains(&id), "县公安局 sees its grant");

    // The refusals are recorded against the user who tried, like the API's.
    let summary = summary(&access_events(&gw).await);
    let tried: Vec<&(String, String, u64)> = summary
        .iter()
        .filter(|(_, user, _)| user == "admin-hrss")
        .collect();
    assert_eq!(
        tried
            .iter()
            .map(|(op, _, status)| (op.as_str(), *status))
            .collect::<Vec<_>>(),
        [
            (format!("access.approve {id}").as_str(), 403),
            (format!("access.refuse {id}").as_str(), 403),
            (format!("grant.revoke {id}").as_str(), 403),
        ]
    );
}

#[tokio::test]
async fn an_approval_narrowed_and_a_revocation_with_its_confirmation_are_audited_and_shown() {
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let id = file_request(&mut lead).await;
    let mut psb = Visitor::signed_in(&gw, "admin-psb").await;

    // Nothing approved is refused and the page says what to fix.
    let item = psb.get(&format!("/console/inbox/{id}")).await;
    let none = psb
        .post(
            &format!("/console/inbox/{id}/approve"),
            &[("csrf", &item.csrf()), ("mask.name", "name")],
        )
        .await;
    assert_eq!(none.status, 400);
    assert!(none.body.contains("id=\"decide-errors\""), "{}", none.body);

    let approved = approve_narrowed(&mut psb, &id).await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(
        approved.location(),
        Some(format!("/console/inbox/{id}").as_str())
    );
    let item = psb.get(&format!("/console/inbox/{id}")).await;
    assert!(item.body.contains("已缩小范围批准"), "{}", item.body);
    let township = lead.get("/console/township").await;
    assert!(township.body.contains("已缩小范围批准"));
    assert!(
        township.body.contains("只批出生年份。"),
        "the department's answer"
    );
    assert!(township.body.contains("只显示年份"), "the mask approved");

    let grants = psb
        .get("/console/grants?township=139901101&purpose=rural_housing")
        .await;
    assert!(grants.body.contains(&id));
    assert!(grants.body.contains("每天 50 次"), "the quota");
    assert!(grants.body.contains("admin-psb"), "approved by whom");
    assert!(
        grants.body.contains("仅限本乡镇户籍居民"),
        "the condition it holds under, in words"
    );
    let elsewhere = psb.get("/console/grants?township=139901201&purpose=").await;
    assert!(!elsewhere.body.contains(&format!("data-grant=\"{id}\"")));

    // A revocation needs the confirmation and a reason.
    let csrf = grants.csrf();
    let revoke = format!("/console/grants/{id}/revoke");
    let unconfirmed = psb
        .post(
            &revoke,
            &[
                ("csrf", &csrf),
                ("reason", "农民建房审批改由自然资源部门核对。"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status, 400);
    assert!(unconfirmed.body.contains("收回授权前请勾选确认"));
    let unexplained = psb
        .post(
            &revoke,
            &[("csrf", &csrf), ("reason", " "), ("confirm", "yes")],
        )
        .await;
    assert_eq!(unexplained.status, 400);
    let still = lead.get("/console/township").await;
    assert!(!still.body.contains("已收回"), "nothing was revoked yet");
    let revoked = psb
        .post(
            &revoke,
            &[
                ("csrf", &csrf),
                ("reason", "农民建房审批改由自然资源部门核对。"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let township = lead.get("/console/township").await;
    assert!(township.body.contains("已收回"));
    assert!(
        township.body.contains("农民建房审批改由自然资源部门核对。"),
        "the reason reaches the township"
    );
    let grants = psb.get("/console/grants").await;
    assert!(grants.body.contains("农民建房审批改由自然资源部门核对。"));

    // Each change is an admin event, as the API's are; the free texts stay with the
    // request and the grant.
    let events = access_events(&gw).await;
    let ops: Vec<(String, String, u64)> = summary(&events);
    assert_eq!(
        ops,
        [
            (
                format!(
                    "access.request {id} hukou ops=person_by_id purposes=rural_housing fields=birth_date,name roles=clerk"
                ),
                "lead-dongling".to_owned(),
                200
            ),
            (format!("access.approve {id}"), "admin-psb".to_owned(), 400),
            (
                format!(
                    "access.approve {id} grant={id} fields=birth_date:date_year valid_until=none quota=-/min,50/day"
                ),
                "admin-psb".to_owned(),
                200
            ),
            (format!("grant.revoke {id}"), "admin-psb".to_owned(), 400),
            (format!("grant.revoke {id}"), "admin-psb".to_owned(), 400),
            (format!("grant.revoke {id}"), "admin-psb".to_owned(), 200),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["kind"] == "admin" && e["connector"] == "hukou")
    );
    // The township's own words stay out of the log; the department's reason for
    // taking access back is in the revocation's event.
    let log = serde_json::to_string(&events).expect("json");
    for text in ["核对申请人姓名", "只批出生年份"] {
        assert!(!log.contains(text), "free text in the log: {text}");
    }
    let revoked = events
        .iter()
        .find(|e| e["operation"] == format!("grant.revoke {id}") && e["outcome"]["status"] == 200)
        .expect("the revocation's event");
    assert_eq!(revoked["reason"], "农民建房审批改由自然资源部门核对。");
}

#[tokio::test]
async fn a_refusal_needs_a_reason_and_the_township_sees_it() {
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let id = file_request(&mut lead).await;
    let mut psb = Visitor::signed_in(&gw, "admin-psb").await;
    let item = psb.get(&format!("/console/inbox/{id}")).await;
    let refuse = format!("/console/inbox/{id}/refuse");
    let empty = psb
        .post(&refuse, &[("csrf", &item.csrf()), ("reason", "")])
        .await;
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("请说明理由"));
    let refused = psb
        .post(
            &refuse,
            &[
                ("csrf", &item.csrf()),
                ("reason", "农民建房只需核对户主，请改用整户查询。"),
            ],
        )
        .await;
    assert_eq!(refused.status, 303, "{}", refused.body);
    let township = lead.get("/console/township").await;
    assert!(township.body.contains("不予批准"));
    assert!(
        township
            .body
            .contains("农民建房只需核对户主，请改用整户查询。")
    );
    let again = psb
        .post(&refuse, &[("csrf", &item.csrf()), ("reason", "再次")])
        .await;
    assert_eq!(again.status, 409, "already decided");
    let ops: Vec<(String, u64)> = summary(&access_events(&gw).await)
        .into_iter()
        .filter(|(op, _, _)| op.starts_with("access.refuse"))
        .map(|(op, _, status)| (op, status))
        .collect();
    assert_eq!(
        ops,
        [
            (format!("access.refuse {id}"), 400),
            (format!("access.refuse {id}"), 200),
            (format!("access.refuse {id}"), 409),
        ]
    );

    // A pending request can be withdrawn by its township.
    let second = file_request(&mut lead).await;
    assert_ne!(second, id);
    let page = lead.get("/console/township").await;
    let withdrawn = lead
        .post(
            &format!("/console/request/{second}/withdraw"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(withdrawn.status, 303);
    assert!(lead.get("/console/township").await.body.contains("已撤回"));
}

#[tokio::test]
async fn never_shared_fields_cannot_be_picked_and_a_request_without_reason_is_explained() {
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let page = lead.get("/console/request?op=shebao.insured_by_id").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("bank_account"), "the field is shown");
    assert!(page.body.contains("不予共享"));
    assert!(
        !page.body.contains("name=\"field.bank_account\""),
        "but cannot be picked"
    );
    // Sent anyway, it is refused with the rest, and nothing is filed.
    let sent = lead
        .post(
            "/console/request",
            &[
                ("csrf", &page.csrf()),
                ("op", "shebao.insured_by_id"),
                ("field.bank_account", "on"),
                ("purpose", "subsistence_allowance"),
                ("role.clerk", "on"),
                ("justification", ""),
            ],
        )
        .await;
    assert_eq!(sent.status, 400);
    assert!(sent.body.contains("id=\"ask-errors\""));
    assert!(sent.body.contains("fields.bank_account"));
    assert!(sent.body.contains("请说明乡镇为什么需要这些字段"));
    let township = lead.get("/console/township").await;
    assert!(township.body.contains("id=\"township-no-requests\""));
    assert_eq!(
        summary(&access_events(&gw).await)
            .iter()
            .map(|(op, _, status)| (op.as_str(), *status))
            .collect::<Vec<_>>(),
        [("access.request", 400)]
    );
}

#[tokio::test]
async fn a_post_without_the_pages_token_changes_nothing() {
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let forged = lead
        .post(
            "/console/request",
            &[
                ("csrf", "forged"),
                ("op", "hukou.person_by_id"),
                ("field.name", "on"),
                ("purpose", "rural_housing"),
                ("justification", "x"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(access_events(&gw).await.is_empty(), "nothing was asked");
    let id = file_request(&mut lead).await;
    let mut psb = Visitor::signed_in(&gw, "admin-psb").await;
    for (path, form) in [
        (
            format!("/console/inbox/{id}/approve"),
            vec![("keep.name", "on")],
        ),
        (format!("/console/inbox/{id}/refuse"), vec![("reason", "x")]),
    ] {
        let mut with_wrong = form.clone();
        with_wrong.push(("csrf", "not-the-token"));
        assert_eq!(
            psb.post(&path, &form).await.status,
            400,
            "{path}: no token, not a form of the page"
        );
        assert_eq!(psb.post(&path, &with_wrong).await.status, 403, "{path}");
    }
    // From another site, even with the token.
    let page = psb.get(&format!("/console/inbox/{id}")).await;
    let url = format!("{}/console/inbox/{id}/refuse", psb.base);
    let request = psb
        .client
        .post(&url)
        .header("origin", "https://evil.example")
        .form(&[("csrf", page.csrf().as_str()), ("reason", "x")]);
    assert_eq!(psb.send(request, url).await.status, 403);
    let item = psb.get(&format!("/console/inbox/{id}")).await;
    assert!(
        item.body.contains("data-state=\"pending\""),
        "still pending"
    );
    assert_eq!(
        summary(&access_events(&gw).await).len(),
        1,
        "only the request itself is recorded"
    );
}

#[tokio::test]
async fn an_overdue_request_is_marked_in_words_as_well_as_by_its_class() {
    use gateway::registry::{Change, Registry as _, SqliteRegistry};
    let gw = TestGateway::start().await;
    let mut lead = Visitor::signed_in(&gw, "lead-dongling").await;
    let id = file_request(&mut lead).await;
    // The request as if it had been filed long ago: its deadline has passed.
    let registry =
        SqliteRegistry::open(&gw.data_dir.path().join("data")).expect("the registry opens");
    let mut request = registry
        .access_requests()
        .await
        .expect("requests")
        .into_iter()
        .find(|r| r.id == id)
        .expect("the request");
    request.created_at = "2026-01-05T02:00:00.000Z".to_owned();
    request.deadline = "2026-01-19".to_owned();
    let revision = registry.revision().await.expect("a revision");
    registry
        .commit(revision, vec![Change::DecideRequest(request)])
        .await
        .expect("back-dated");

    let mut psb = Visitor::signed_in(&gw, "admin-psb").await;
    let inbox = psb.get("/console/inbox").await;
    assert_eq!(inbox.status, 200);
    assert!(
        inbox.body.contains("class=\"request overdue\""),
        "{}",
        inbox.body
    );
    assert!(inbox.body.contains("已逾期"), "in words, not colour only");
    assert!(inbox.body.contains("2026-01-19"));
    assert!(inbox.body.contains("逾期 "), "by how many working days");
    let item = psb.get(&format!("/console/inbox/{id}")).await;
    assert!(item.body.contains("已逾期"));
    let township = lead.get("/console/township").await;
    assert!(township.body.contains("已逾期"), "the township sees it too");
    psb.accept_language = Some("en");
    let english = psb.get("/console/inbox").await;
    assert!(english.body.contains("Overdue"));
    assert!(english.body.contains("working day(s) overdue"));
}
