//! The console in a real Chromium (Debian's, through chromedriver): the README's
//! walk-through step by step — the 东岭镇 clerk fills and prints a 生育登记, the 西河乡
//! clerk sees the refusal explained, the privacy officer finds that fill, opens it and
//! prints the resident's report — in Chinese and again in English; a fill by keyboard
//! alone; the ID number's check digit checked as it is typed; a tablet's width.
//!
//! Each test keeps its screenshots (and PDFs) under its own temp dir. With
//! `CONSOLE_SCREENSHOTS=<dir>` the walk-through also writes the README's screenshots
//! there (`docs/console/` in the repository). Skipped, saying why, where Chromium is
//! not installed; required under `.ci/run`, which installs it.

use std::path::PathBuf;

use sim::SampleKind;
use testkit::browser::{Browser, BrowserOptions, Key};

use crate::helpers::{TOWNSHIP, TestGateway, population};

pub(crate) fn resident() -> &'static sim::Person {
    population()
        .sample_in(SampleKind::MarriedParent, TOWNSHIP)
        .expect("a married parent in the township")
}

/// Where the README's screenshots go, when asked for.
pub(crate) fn readme_shot(name: &str) -> Option<PathBuf> {
    std::env::var_os("CONSOLE_SCREENSHOTS").map(|dir| PathBuf::from(dir).join(name))
}

/// Signs in as a demo persona from the sign-in page.
pub(crate) async fn sign_in(browser: &Browser, gw: &TestGateway, persona: &str) {
    browser.goto(&gw.url("/console/")).await;
    browser.wait_for_path("/console/signin").await;
    browser.click(&format!("#persona-{persona}")).await;
    browser.wait_for("#signout").await;
}

pub(crate) async fn sign_out(browser: &Browser) {
    browser.click("#signout").await;
    browser.wait_for_path("/console/signin").await;
}

/// Fills the 生育登记 for `id_number` from the desk.
pub(crate) async fn fill_birth_registration(browser: &Browser, id_number: &str, case_id: &str) {
    browser.click("#fill-birth-registration").await;
    browser
        .wait_for_path("/console/forms/birth-registration")
        .await;
    browser.fill("#id_number", id_number).await;
    browser.fill("#case_id", case_id).await;
    browser.click("#fill-submit").await;
}

/// The page's `<html lang>`.
async fn lang(browser: &Browser) -> String {
    let value = browser
        .execute("return document.documentElement.lang;", vec![])
        .await;
    value.as_str().unwrap_or_default().to_owned()
}

/// The text of the page's labels, headings, buttons and table headers that holds
/// Chinese characters (data — names, departments — is in cells and values, not here).
async fn chinese_labels(browser: &Browser) -> Vec<String> {
    let found = browser
        .execute(
            "const out = [];\
             for (const e of document.querySelectorAll('label, h1, h2, button, th[scope=col], dt, legend, nav a, .notice, p.help')) {\
               const t = e.innerText || '';\
               if (/[\\u4e00-\\u9fff]/.test(t) && !e.closest('[lang=zh-CN]')) out.push(t);\
             }\
             return out;",
            vec![],
        )
        .await;
    found
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_walk_through_in_chinese_clerk_fills_and_prints_officer_finds_and_reports() {
    // A tall window: the README's screenshots show a whole form section and the
    // search's results.
    let Some(browser) = BrowserOptions::new()
        .window(1280, 1500)
        .start("console_walk_through_zh")
        .await
    else {
        return;
    };
    let gw = TestGateway::start().await;
    let person = resident();
    let id = person.id.as_str();

    // The 东岭镇 clerk fills and prints a 生育登记.
    sign_in(&browser, &gw, "clerk-dongling").await;
    browser.wait_for_text("h1", "办事").await;
    assert_eq!(lang(&browser).await, "zh-CN");
    fill_birth_registration(&browser, id, "BROWSER-0001").await;
    browser.wait_for("#filled").await;
    let filled = browser.text("#filled").await;
    for section in ["申请人", "配偶", "现有子女", "本次登记"] {
        assert!(filled.contains(section), "the section {section} is shown");
    }
    assert!(filled.contains(&person.name));
    assert!(filled.contains("BROWSER-0001"));
    assert!(
        !browser.url().await.contains(id),
        "no ID number in the address"
    );
    browser.screenshot("filled").await;
    if let Some(path) = readme_shot("clerk-filled-form.png") {
        browser.save_screenshot_to(&path).await;
    }
    let pdf = browser.print_to_pdf("birth-registration").await;
    let bytes = std::fs::read(&pdf).expect("the printed form");
    assert!(bytes.starts_with(b"%PDF"), "the print is a PDF");
    sign_out(&browser).await;

    // The 西河乡 clerk is refused, and told why.
    sign_in(&browser, &gw, "clerk-xihe").await;
    fill_birth_registration(&browser, id, "BROWSER-0002").await;
    browser.wait_for_text("#error-detail", "辖区").await;
    assert!(!browser.source().await.contains(&person.name));
    browser.screenshot("refused").await;
    sign_out(&browser).await;

    // The privacy officer finds the fill, opens it and prints the resident's report.
    sign_in(&browser, &gw, "privacy-officer").await;
    browser.wait_for_text("h1", "审计查询").await;
    browser.fill("#f-user", "clerk-dongling").await;
    browser.click("#audit-search").await;
    // The page lists recent events before the search too: wait for the search's
    // own address, which is also what makes the filter bookmarkable.
    browser.wait_for_url_containing("user=clerk-dongling").await;
    browser.wait_for("#events").await;
    if let Some(path) = readme_shot("officer-audit-search.png") {
        browser.save_screenshot_to(&path).await;
    }
    browser.click("#events .event-link").await;
    browser.wait_for("#event-hash").await;
    let event = browser.text("#event").await;
    assert!(event.contains("BROWSER-0001"), "{event}");
    browser.click("nav a[href='/console/report']").await;
    browser.fill("#id_number", id).await;
    browser.click("#report-submit").await;
    browser.wait_for("#report").await;
    let report = browser.text("#report").await;
    assert!(report.contains("个人信息查询记录"));
    assert!(report.contains("BROWSER-0001") && report.contains("clerk-dongling"));
    assert!(
        !report.contains("BROWSER-0002"),
        "a refused lookup showed nothing"
    );
    let pdf = browser.print_to_pdf("citizen-report").await;
    assert!(
        std::fs::read(&pdf)
            .expect("the report")
            .starts_with(b"%PDF")
    );
    browser.screenshot("report").await;
    browser.close().await;
}

#[tokio::test]
async fn the_walk_through_in_english_leaves_no_chinese_only_label() {
    let Some(browser) = Browser::start("console_walk_through_en").await else {
        return;
    };
    let gw = TestGateway::start().await;
    let person = resident();
    let id = person.id.as_str();
    browser.goto(&gw.url("/console/signin")).await;
    browser.wait_for("#lang-switch").await;
    browser.click("#lang-switch").await;
    browser.wait_for_text("h1", "Sign in").await;
    assert_eq!(lang(&browser).await, "en");

    browser.click("#persona-clerk-dongling").await;
    browser.wait_for_text("h1", "Service desk").await;
    assert_eq!(
        chinese_labels(&browser).await,
        Vec::<String>::new(),
        "the desk"
    );
    fill_birth_registration(&browser, id, "BROWSER-0003").await;
    browser.wait_for("#filled").await;
    assert_eq!(lang(&browser).await, "en");
    let labels = chinese_labels(&browser).await;
    assert!(
        labels.is_empty(),
        "Chinese-only labels on the filled form: {labels:?}"
    );
    browser.screenshot("filled-en").await;
    sign_out(&browser).await;

    browser.click("#persona-privacy-officer").await;
    browser.wait_for_text("h1", "Audit search").await;
    assert!(
        chinese_labels(&browser).await.is_empty(),
        "the audit search"
    );
    browser.click("nav a[href='/console/report']").await;
    browser.fill("#id_number", id).await;
    browser.click("#report-submit").await;
    browser.wait_for("#report").await;
    let labels = chinese_labels(&browser).await;
    assert!(
        labels.is_empty(),
        "Chinese-only labels on the report: {labels:?}"
    );
    assert!(browser.text("#report").await.contains("BROWSER-0003"));
    browser.close().await;
}

/// Presses Tab (at most 40 times) until `target` has the focus.
async fn tab_to(browser: &Browser, target: &str, what: &str) {
    for _ in 0..40 {
        browser.press(Key::Tab).await;
        if browser.focused().await == target {
            return;
        }
    }
    panic!("{what}");
}

#[tokio::test]
async fn a_clerk_fills_a_form_with_the_keyboard_alone() {
    let Some(browser) = Browser::start("console_keyboard_only").await else {
        return;
    };
    let gw = TestGateway::start().await;
    let person = resident();
    browser.goto(&gw.url("/console/signin")).await;
    browser.wait_for("#persona-clerk-dongling").await;
    // From the top of the page, Tab until the clerk's persona has the focus.
    tab_to(
        &browser,
        "#persona-clerk-dongling",
        "the persona is reachable by Tab",
    )
    .await;
    browser.press(Key::Enter).await;
    browser.wait_for("#fill-birth-registration").await;
    tab_to(
        &browser,
        "#fill-birth-registration",
        "the form's link is reachable by Tab",
    )
    .await;
    browser.press(Key::Enter).await;
    browser.wait_for("#id_number").await;
    tab_to(
        &browser,
        "#id_number",
        "the ID number field is reachable by Tab",
    )
    .await;
    browser.type_keys(person.id.as_str()).await;
    browser.press(Key::Tab).await;
    assert_eq!(
        browser.focused().await,
        "#case_id",
        "the case number comes next"
    );
    browser.type_keys("KEYS-0001").await;
    browser.press(Key::Enter).await;
    browser.wait_for("#filled").await;
    assert!(browser.text("#filled").await.contains(&person.name));
    browser.screenshot("keyboard-filled").await;
    browser.close().await;
}

#[tokio::test]
async fn the_id_number_is_checked_as_it_is_typed_and_the_page_fits_a_tablet() {
    let Some(browser) = BrowserOptions::new()
        .tablet()
        .start("console_tablet_check_digit")
        .await
    else {
        return;
    };
    let gw = TestGateway::start().await;
    sign_in(&browser, &gw, "clerk-dongling").await;
    browser.click("#fill-birth-registration").await;
    browser.fill("#id_number", "139901197503272291").await;
    browser
        .wait_for_text("#id_number-check", "校验位不正确")
        .await;
    assert_eq!(
        browser.attr("#id_number", "aria-invalid").await.as_deref(),
        Some("true")
    );
    browser.fill("#id_number", resident().id.as_str()).await;
    browser.wait_for_absent("#id_number[aria-invalid]").await;
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await;
    assert_eq!(
        fits,
        serde_json::Value::Bool(true),
        "no sideways scrolling at 768 px"
    );
    browser.screenshot("tablet").await;
    browser.close().await;
}
