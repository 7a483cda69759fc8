//! Data correction (数据纠错) in a real Chromium: the 东岭镇 clerk fills a 生育登记,
//! reports the applicant's name as wrong from the filled form, and the 县公安局 admin
//! finds it in the department's queue and confirms the correction; the ID number is
//! never in an address. Skipped, saying why, where Chromium is not installed;
//! required under `.ci/run`.

use testkit::browser::BrowserOptions;

use crate::browser::{fill_birth_registration, resident, sign_in, sign_out};
use crate::helpers::TestGateway;

#[tokio::test]
async fn a_clerk_reports_a_wrong_name_from_the_filled_form_and_the_department_accepts_it() {
    let Some(browser) = BrowserOptions::new()
        .window(1280, 1400)
        .start("console_corrections")
        .await
    else {
        return;
    };
    let gw = TestGateway::start().await;
    let person = resident();
    let id = person.id.as_str();

    sign_in(&browser, &gw, "clerk-dongling").await;
    fill_birth_registration(&browser, id, "JC-2026-0001").await;
    browser.wait_for("#filled").await;
    // Each of the applicant's department values has the action; derived values and
    // inputs do not.
    let actions = browser.find_all("button[data-report]").await;
    assert!(!actions.is_empty(), "the filled form offers 报告错误");
    browser.click("button[data-report='name']").await;
    browser.wait_for("#report-form").await;
    assert_eq!(browser.path().await, "/console/corrections/report");
    browser.fill("#stated_value", "邓俊豪").await;
    browser.fill("#note", "本人称姓名末字登记有误").await;
    browser
        .fill("#evidence", "出生医学证明复印件，窗口存档")
        .await;
    browser.click("#report-submit").await;
    browser.wait_for("#correction-state").await;
    assert_eq!(
        browser
            .attr("#correction-state", "data-state")
            .await
            .as_deref(),
        Some("open")
    );
    assert!(browser.path().await.starts_with("/console/corrections/"));
    assert!(
        !browser.url().await.contains(id),
        "no ID number in an address"
    );
    sign_out(&browser).await;

    // The department's admin answers from the queue.
    sign_in(&browser, &gw, "admin-psb").await;
    browser.goto(&gw.url("/console/corrections")).await;
    browser.wait_for("#corrections-open").await;
    browser.click("#corrections-open tr.correction a").await;
    browser.wait_for("#accept-form").await;
    assert_eq!(browser.text("#correction-stated").await, "邓俊豪");
    browser.fill("#accept-note", "已按出生医学证明更正。").await;
    browser.click("#accept").await;
    browser.wait_for("#correction-reason").await;
    assert_eq!(
        browser
            .attr("#correction-state", "data-state")
            .await
            .as_deref(),
        Some("accepted")
    );
    browser.screenshot("accepted").await;
}
