//! The web console without a browser: every page's status, language, headers and
//! escaping; sign-in, sessions and CSRF; who may see which page; and that the
//! console's lookups are the API's (one audit event each, same policy). The browser
//! tests (`browser.rs`) drive the same pages in Chromium.

use std::collections::BTreeMap;
use std::time::Duration;

use sim::{Department, Faults, SampleKind};

use crate::audit::events;
use crate::helpers::{TOWNSHIP, TestGateway, population, post_json};

/// A person with a browser's cookies, talking to the console (no redirects
/// followed, so each `Location` is seen). Every URL and `Location` it meets is kept,
/// to check that no ID number is ever in one.
pub(crate) struct Visitor {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) cookies: BTreeMap<String, String>,
    pub(crate) accept_language: Option<&'static str>,
    pub(crate) urls: Vec<String>,
}

/// A page as received.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token the page's forms carry.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("the page has a form with a CSRF token");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("end of the value")].to_owned()
    }

    /// The `lang` of the page's `<html>`.
    pub(crate) fn lang(&self) -> &str {
        let at = self.body.find("<html lang=\"").expect("an html element");
        let rest = &self.body[at + "<html lang=\"".len()..];
        &rest[..rest.find('"').expect("end of lang")]
    }

    /// Every `href` and `action` in the page.
    pub(crate) fn links(&self) -> Vec<String> {
        let mut out = Vec::new();
        for attr in ["href=\"", "action=\""] {
            let mut rest = self.body.as_str();
            while let Some(at) = rest.find(attr) {
                rest = &rest[at + attr.len()..];
                if let Some(end) = rest.find('"') {
                    out.push(rest[..end].to_owned());
                }
            }
        }
        out
    }
}

impl Visitor {
    pub(crate) fn new(gw: &TestGateway) -> Visitor {
        connectors::install_crypto_provider();
        Visitor {
            base: gw.url(""),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookies: BTreeMap::new(),
            accept_language: None,
            urls: Vec::new(),
        }
    }

    /// Signs in as a demo persona through the sign-in page.
    pub(crate) async fn signed_in(gw: &TestGateway, persona: &str) -> Visitor {
        let mut visitor = Visitor::new(gw);
        let page = visitor.get("/console/signin").await;
        assert_eq!(page.status, 200);
        let csrf = page.csrf();
        let done = visitor
            .post(
                "/console/signin/demo",
                &[("persona", persona), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert!(visitor.cookies.contains_key("gw_session"));
        visitor
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn send(&mut self, request: reqwest::RequestBuilder, url: String) -> Page {
        self.urls.push(url);
        let mut request = request.header("cookie", self.cookie_header());
        if let Some(lang) = self.accept_language {
            request = request.header("accept-language", lang);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie") {
            let text = set.to_str().expect("a cookie");
            let pair = text.split(';').next().expect("name=value");
            let (name, value) = pair.split_once('=').expect("name=value");
            if text.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        if let Some(location) = headers.get("location").and_then(|v| v.to_str().ok()) {
            self.urls.push(location.to_owned());
        }
        let body = response.text().await.expect("a body");
        let page = Page {
            status,
            headers,
            body,
        };
        self.urls.extend(page.links());
        page
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let url = format!("{}{path}", self.base);
        let request = self.client.get(&url);
        self.send(request, url).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let url = format!("{}{path}", self.base);
        let request = self.client.post(&url).form(form);
        self.send(request, url).await
    }

    /// POSTs a multipart form (an upload), as a browser would.
    pub(crate) async fn post_multipart(
        &mut self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> Page {
        let url = format!("{}{path}", self.base);
        let request = self.client.post(&url).multipart(form);
        self.send(request, url).await
    }

    /// Fills a form on its page, as a person would: the page's token, the fields.
    pub(crate) async fn fill(&mut self, form: &str, id_number: &str, case_id: &str) -> Page {
        let page = self.get(&format!("/console/forms/{form}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        self.post(
            &format!("/console/forms/{form}"),
            &[
                ("id_number", id_number),
                ("case_id", case_id),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    /// Asserts that no URL or `Location` seen carried this ID number.
    pub(crate) fn assert_never_in_a_url(&self, id_number: &str) {
        for url in &self.urls {
            assert!(!url.contains(id_number), "an ID number in a URL: {url}");
            assert!(
                !url.contains(&id_number[..14]),
                "part of an ID number in a URL: {url}"
            );
        }
    }
}

pub(crate) fn resident() -> &'static sim::Person {
    population()
        .sample_in(SampleKind::MarriedParent, TOWNSHIP)
        .expect("a married parent in the township")
}

#[tokio::test]
async fn the_console_answers_in_chinese_first_then_english_by_switch_or_header() {
    let gw = TestGateway::start().await;
    let mut visitor = Visitor::new(&gw);
    let root = visitor.get("/").await;
    assert_eq!((root.status, root.location()), (303, Some("/console/")));
    let home = visitor.get("/console/").await;
    assert_eq!(home.location(), Some("/console/signin"));
    let page = visitor.get("/console/signin").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.lang(), "zh-CN");
    assert!(page.body.contains("演示登录"), "the demo sign-in is marked");
    assert!(page.body.contains("persona-clerk-dongling"));

    // The switch is a POSTed form; it remembers the language in a cookie.
    let csrf = page.csrf();
    let switched = visitor
        .post(
            "/console/lang",
            &[("lang", "en"), ("back", "/console/signin"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(switched.location(), Some("/console/signin"));
    let english = visitor.get("/console/signin").await;
    assert_eq!(english.lang(), "en");
    assert!(english.body.contains("Demo sign-in"));
    // A switch never sends the browser elsewhere.
    let away = visitor
        .post(
            "/console/lang",
            &[
                ("lang", "zh-CN"),
                ("back", "//evil.example/"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(away.location(), Some("/console/"));

    let mut browser = Visitor::new(&gw);
    browser.accept_language = Some("en-GB,en;q=0.9,zh;q=0.5");
    assert_eq!(browser.get("/console/signin").await.lang(), "en");

    // Any page, even an error page, switches for a visitor who has not signed in.
    let mut stranger = Visitor::new(&gw);
    let missing = stranger.get("/console/nowhere").await;
    assert_eq!((missing.status, missing.lang()), (404, "zh-CN"));
    let switched = stranger
        .post(
            "/console/lang",
            &[
                ("lang", "en"),
                ("back", "/console/nowhere"),
                ("csrf", &missing.csrf()),
            ],
        )
        .await;
    assert_eq!(switched.status, 303);
    assert_eq!(stranger.get("/console/nowhere").await.lang(), "en");
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers() {
    let gw = TestGateway::start().await;
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    for path in [
        "/console/signin",
        "/console/desk",
        "/console/lookup",
        "/console/nowhere",
    ] {
        let page = clerk.get(path).await;
        let csp = page.header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(page.header("cache-control"), "no-store", "{path}");
        assert_eq!(page.header("x-frame-options"), "DENY", "{path}");
        assert!(!page.body.contains("<script>"), "{path}: no inline script");
        assert!(!page.body.contains("style="), "{path}: no inline style");
    }
    let missing = clerk.get("/console/nowhere").await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").starts_with("text/html"));
    let css = clerk.get("/console/static/console.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));
    // The session cookie is HttpOnly and SameSite=Strict.
    let mut fresh = Visitor::new(&gw);
    let page = fresh.get("/console/signin").await;
    let csrf = page.csrf();
    let signed = fresh
        .post(
            "/console/signin/demo",
            &[("persona", "clerk-dongling"), ("csrf", &csrf)],
        )
        .await;
    let cookie = signed.header("set-cookie");
    assert!(cookie.starts_with("gw_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_clerk_fills_a_form_in_the_console_as_through_the_api_and_no_id_number_reaches_a_url() {
    let gw = TestGateway::start().await;
    let person = resident();
    let id = person.id.as_str();
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let desk = clerk.get("/console/desk").await;
    assert_eq!(desk.status, 200);
    assert!(desk.body.contains("生育登记"), "the desk lists the forms");
    let before = events(&gw).await.len();
    let filled = clerk.fill("birth-registration", id, "CONSOLE-0001").await;
    assert_eq!(filled.status, 200, "{}", filled.body);
    assert_eq!(filled.header("cache-control"), "no-store");
    assert!(
        filled.body.contains(&person.name),
        "the name is on the form"
    );
    assert!(filled.body.contains("CONSOLE-0001"));
    assert!(
        filled.body.contains("县公安局"),
        "each value names its source"
    );
    assert!(filled.body.contains("已核验"), "verified values are marked");
    assert!(filled.body.contains("已脱敏"), "masked values are marked");
    assert!(
        filled.body.contains("请当场填写"),
        "inputs are left for the desk"
    );
    assert!(
        !filled.body.contains(">male<") && !filled.body.contains(">female<"),
        "codes are words"
    );
    let console_events = events(&gw).await.len() - before;

    // The same fill through the API leaves as many events.
    let token = gw.token(gateway::auth::Role::Clerk, Some(TOWNSHIP));
    let before = events(&gw).await.len();
    let api = post_json(
        &gw.url("/v1/forms/birth-registration/fill"),
        &token,
        &serde_json::json!({"subject": {"id_number": id}, "case_id": "API-0001"}),
    )
    .await;
    assert_eq!(api.status, 200);
    assert_eq!(events(&gw).await.len() - before, console_events);
    let recorded = events(&gw).await;
    let console_event = recorded
        .iter()
        .find(|e| e["case_id"] == "CONSOLE-0001")
        .expect("the console's fill is in the log");
    assert_eq!(console_event["form"], "birth-registration");
    assert_eq!(console_event["caller"]["user"], "clerk-dongling");
    assert_eq!(console_event["caller"]["app"], "console");
    clerk.assert_never_in_a_url(id);
}

#[tokio::test]
async fn an_incomplete_form_names_the_departments_that_failed_and_can_be_retried() {
    let gw = TestGateway::start().await;
    gw.set_faults(
        Department::Shebao,
        Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
    );
    let person = resident();
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let page = clerk
        .fill("birth-registration", person.id.as_str(), "CONSOLE-0007")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"incomplete\""), "{}", page.body);
    assert!(page.body.contains("县人力资源和社会保障局"));
    assert!(page.body.contains("id=\"retry\""));
    // The department is back: the retry (a POST of the same case) completes it.
    gw.set_faults(Department::Shebao, Faults::default());
    let retry_csrf = page.csrf();
    let again = clerk
        .post(
            "/console/forms/birth-registration",
            &[
                ("id_number", person.id.as_str()),
                ("case_id", "CONSOLE-0007"),
                ("csrf", &retry_csrf),
            ],
        )
        .await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("id=\"complete\""));
    clerk.assert_never_in_a_url(person.id.as_str());
}

#[tokio::test]
async fn a_clerk_of_another_township_sees_the_refusal_explained() {
    let gw = TestGateway::start().await;
    let person = resident();
    let mut clerk = Visitor::signed_in(&gw, "clerk-xihe").await;
    let before = events(&gw).await.len();
    let refused = clerk
        .fill("birth-registration", person.id.as_str(), "CONSOLE-0002")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("此人不在您的辖区"),
        "{}",
        refused.body
    );
    assert!(
        !refused.body.contains(&person.name),
        "nothing of the person is shown"
    );
    assert!(
        !refused.body.contains(person.id.as_str()),
        "the ID number is not echoed"
    );
    assert!(events(&gw).await.len() > before, "the refusal is recorded");
}

#[tokio::test]
async fn a_wrong_id_number_is_explained_without_being_echoed_and_nothing_is_asked() {
    let gw = TestGateway::start().await;
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let received = gw.department(Department::Hukou).faults.received();
    let wrong = "139901197503272291"; // the check digit is wrong
    let page = clerk
        .fill("birth-registration", wrong, "CONSOLE-0003")
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("校验位不正确"), "{}", page.body);
    assert!(!page.body.contains(wrong));
    assert_eq!(gw.department(Department::Hukou).faults.received(), received);
}

#[tokio::test]
async fn a_departments_markup_is_shown_as_text() {
    let gw = TestGateway::start().await;
    gw.set_faults(
        Department::Hukou,
        Faults {
            markup_in_names: true,
            ..Faults::default()
        },
    );
    let person = resident();
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let filled = clerk
        .fill("birth-registration", person.id.as_str(), "CONSOLE-0004")
        .await;
    assert_eq!(filled.status, 200, "{}", filled.body);
    assert!(!filled.body.contains("<script>alert"), "markup is escaped");
    assert!(
        filled
            .body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "and shown as text: {}",
        filled
            .body
            .find("alert")
            .map(|at| &filled.body[at.saturating_sub(40)..at + 40])
            .unwrap_or("no name at all")
    );
}

#[tokio::test]
async fn a_post_without_the_pages_token_or_from_another_site_changes_nothing() {
    let gw = TestGateway::start().await;
    let person = resident();
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let before = events(&gw).await.len();
    let received = gw.department(Department::Hukou).faults.received();
    let form = "/console/forms/birth-registration";
    let none = clerk
        .post(
            form,
            &[("id_number", person.id.as_str()), ("case_id", "X-1")],
        )
        .await;
    assert_eq!(none.status, 400, "a form without its token is refused");
    let forged = clerk
        .post(
            form,
            &[
                ("id_number", person.id.as_str()),
                ("case_id", "X-2"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("页面已过期或来源不明"));
    // The right token from another site's page.
    let csrf = clerk.get(form).await.csrf();
    let url = format!("{}{form}", clerk.base);
    let request = clerk
        .client
        .post(&url)
        .header("origin", "https://evil.example")
        .form(&[
            ("id_number", person.id.as_str()),
            ("case_id", "X-3"),
            ("csrf", &csrf),
        ]);
    let foreign = clerk.send(request, url.clone()).await;
    assert_eq!(foreign.status, 403);
    // A browser that names no origin (`null`) but says the request is cross-site.
    let request = clerk
        .client
        .post(&url)
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("id_number", person.id.as_str()),
            ("case_id", "X-4"),
            ("csrf", &csrf),
        ]);
    assert_eq!(clerk.send(request, url).await.status, 403);
    assert_eq!(
        events(&gw).await.len(),
        before,
        "nothing was looked up or recorded"
    );
    assert_eq!(gw.department(Department::Hukou).faults.received(), received);
    // Sign-in itself needs the sign-in page's token.
    let mut stranger = Visitor::new(&gw);
    let refused = stranger
        .post(
            "/console/signin/demo",
            &[("persona", "privacy-officer"), ("csrf", "x")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(!stranger.cookies.contains_key("gw_session"));
}

#[tokio::test]
async fn each_desk_is_for_its_own_people() {
    let gw = TestGateway::start().await;
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    for path in [
        "/console/audit",
        "/console/report",
        "/console/anomalies",
        "/console/integrity",
    ] {
        assert_eq!(clerk.get(path).await.status, 403, "a clerk on {path}");
    }
    let mut officer = Visitor::signed_in(&gw, "privacy-officer").await;
    for path in [
        "/console/desk",
        "/console/lookup",
        "/console/forms/birth-registration",
    ] {
        assert_eq!(officer.get(path).await.status, 403, "an officer on {path}");
    }
    let mut nobody = Visitor::new(&gw);
    for path in ["/console/desk", "/console/audit", "/console/integrity"] {
        let page = nobody.get(path).await;
        assert_eq!(
            (page.status, page.location()),
            (303, Some("/console/signin")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_session_ends_when_idle_and_on_sign_out() {
    let gw = TestGateway::start().await;
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    assert_eq!(clerk.get("/console/desk").await.status, 200);
    gw.clock.advance(Duration::from_secs(31 * 60));
    let ended = clerk.get("/console/desk").await;
    assert_eq!(ended.location(), Some("/console/signin?ended=1"));
    let page = clerk.get("/console/signin?ended=1").await;
    assert!(page.body.contains("登录已过期"));

    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let desk = clerk.get("/console/desk").await;
    let out = clerk
        .post("/console/signout", &[("csrf", &desk.csrf())])
        .await;
    assert_eq!(out.location(), Some("/console/signin"));
    assert!(!clerk.cookies.contains_key("gw_session"));
    // The old cookie does not come back to life.
    assert_eq!(clerk.get("/console/desk").await.status, 303);
}

#[tokio::test]
async fn a_single_lookup_in_the_console_is_one_audited_lookup() {
    let gw = TestGateway::start().await;
    let person = resident();
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let page = clerk.get("/console/lookup").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("hukou/person_by_id"));
    let before = events(&gw).await.len();
    let answer = clerk
        .post(
            "/console/lookup",
            &[
                ("target", "hukou/person_by_id"),
                ("purpose", "birth_registration"),
                ("id_number", person.id.as_str()),
                ("case_id", "CONSOLE-0005"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains(&person.name));
    let recorded = events(&gw).await;
    assert_eq!(recorded.len() - before, 1, "one lookup, one event");
    let event = recorded.last().expect("the event");
    assert_eq!(event["connector"], "hukou");
    assert_eq!(event["case_id"], "CONSOLE-0005");
    assert_eq!(event["outcome"]["status"], 200);
    clerk.assert_never_in_a_url(person.id.as_str());
}

#[tokio::test]
async fn the_privacy_officer_finds_a_fill_opens_it_exports_and_reports() {
    let gw = TestGateway::start().await;
    let person = resident();
    let id = person.id.as_str();
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    assert_eq!(
        clerk
            .fill("birth-registration", id, "CONSOLE-0006")
            .await
            .status,
        200
    );

    let mut officer = Visitor::signed_in(&gw, "privacy-officer").await;
    // Filters other than the citizen are in the URL, so a view can be bookmarked.
    let found = officer
        .get("/console/audit?user=clerk-dongling&township=&connector=hukou&purpose=&outcome=ok&status=&from=&until=")
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found.body.contains("生育登记"),
        "purposes are named in words"
    );
    let seq = {
        let at = found
            .body
            .find("/console/audit/events/")
            .expect("an event link");
        let rest = &found.body[at + "/console/audit/events/".len()..];
        rest[..rest.find('"').expect("end")].to_owned()
    };
    let event = officer.get(&format!("/console/audit/events/{seq}")).await;
    assert_eq!(event.status, 200);
    assert!(event.body.contains("CONSOLE-0006"));
    assert!(event.body.contains("id=\"event-hash\""));

    // The citizen filter is POSTed.
    let csrf = found.csrf();
    let by_citizen = officer
        .post(
            "/console/audit",
            &[
                ("id_number", id),
                ("user", ""),
                ("outcome", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(by_citizen.status, 200);
    assert!(by_citizen.body.contains("clerk-dongling"));

    let csv = officer
        .post(
            "/console/audit/export",
            &[
                ("format", "csv"),
                ("user", "clerk-dongling"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(csv.body.contains("CONSOLE-0006"));
    assert!(!csv.body.contains("CONSOLE-NEVER"));

    let report = officer
        .post("/console/report", &[("id_number", id), ("csrf", &csrf)])
        .await;
    assert_eq!(report.status, 200);
    assert_eq!(report.lang(), "zh-CN");
    assert!(report.body.contains("个人信息查询记录"));
    assert!(report.body.contains("CONSOLE-0006"));
    assert!(report.body.contains("clerk-dongling"));
    assert!(
        !report.body.contains(id),
        "the report shows the ID number masked"
    );

    let verified = officer.post("/console/integrity", &[("csrf", &csrf)]).await;
    assert_eq!(verified.status, 200);
    assert!(verified.body.contains("校验通过"), "{}", verified.body);
    officer.assert_never_in_a_url(id);

    // Every read of the log was itself recorded.
    let operations: Vec<String> = events(&gw)
        .await
        .iter()
        .filter(|e| e["caller"]["user"] == "privacy-officer")
        .filter_map(|e| e["operation"].as_str().map(str::to_owned))
        .collect();
    for op in [
        "audit.search",
        "audit.event",
        "audit.export",
        "audit.report",
        "audit.verify",
    ] {
        assert!(operations.iter().any(|o| o == op), "{op} in {operations:?}");
    }
}

/// The `id`s of a page's visible inputs and selects, and the `for`s of its labels.
pub(crate) fn inputs_and_labels(body: &str) -> (Vec<String>, Vec<String>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let at = tag.find(&key)?;
        let rest = &tag[at + key.len()..];
        Some(rest[..rest.find('"')?].to_owned())
    };
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    for (i, _) in body.match_indices('<') {
        let tag = &body[i..i + body[i..].find('>').unwrap_or(0)];
        if tag.starts_with("<input") || tag.starts_with("<select") {
            if attr(tag, "type").as_deref() == Some("hidden") {
                continue;
            }
            inputs.push(attr(tag, "id").unwrap_or_else(|| format!("(no id) {tag}")));
        } else if tag.starts_with("<label")
            && let Some(target) = attr(tag, "for")
        {
            labels.push(target);
        }
    }
    (inputs, labels)
}

#[tokio::test]
async fn every_input_on_every_page_has_a_label() {
    let gw = TestGateway::start().await;
    let mut clerk = Visitor::signed_in(&gw, "clerk-dongling").await;
    let mut officer = Visitor::signed_in(&gw, "privacy-officer").await;
    let mut pages = Vec::new();
    for path in [
        "/console/desk",
        "/console/forms/birth-registration",
        "/console/lookup",
    ] {
        pages.push((path, clerk.get(path).await));
    }
    for path in [
        "/console/audit",
        "/console/report",
        "/console/anomalies",
        "/console/integrity",
    ] {
        pages.push((path, officer.get(path).await));
    }
    pages.push((
        "/console/signin",
        Visitor::new(&gw).get("/console/signin").await,
    ));
    for (path, page) in pages {
        assert_eq!(page.status, 200, "{path}");
        let (inputs, labels) = inputs_and_labels(&page.body);
        for input in inputs {
            assert!(
                labels.contains(&input),
                "{path}: the input {input} has no label"
            );
        }
        assert!(
            page.body.contains("<main id=\"main\""),
            "{path}: a main landmark"
        );
        assert!(page.body.contains("class=\"skip\""), "{path}: a skip link");
    }
}
