//! The department admin's connector desk in a real Chromium: the 县公安局 admin
//! opens a connector (its fields with their sharing types; the README's screenshot),
//! uploads a definition with mistakes and sees every problem the check finds, with
//! nothing saved. Skipped, saying why, where Chromium is not installed; required
//! under `.ci/run`.

use testkit::browser::Browser;

use crate::browser::{readme_shot, sign_in};
use crate::helpers::{TestGateway, county_file};

#[tokio::test]
async fn an_admin_reads_a_connector_and_a_bad_upload_shows_every_problem_and_saves_nothing() {
    let Some(browser) = Browser::start("console_admin_connectors").await else {
        return;
    };
    let gw = TestGateway::start().await;
    sign_in(&browser, &gw, "admin-psb").await;
    browser.goto(&gw.url("/console/connectors")).await;
    browser.wait_for("#row-hukou").await;
    browser.click("#row-hukou a").await;
    browser.wait_for_path("/console/connectors/hukou").await;
    let fields = browser.text("#op-person_by_id").await;
    assert!(fields.contains("有条件共享"), "{fields}");
    assert!(fields.contains("姓名"), "{fields}");
    browser.screenshot("connector").await;
    if let Some(path) = readme_shot("admin-connector.png") {
        browser.save_screenshot_to(&path).await;
    }

    // A definition whose department system the county does not know, and whose
    // schemas were not sent: two problems at least, both listed.
    let text = county_file("county/connectors/hukou.yaml")
        .replace("id: hukou\n", "id: hukou3\n")
        .replace("http://127.0.0.1:18101", "http://10.9.9.9:8080");
    let file = browser.artifacts().join("hukou3.yaml");
    std::fs::write(&file, text).expect("write the upload");
    browser.goto(&gw.url("/console/connectors/new")).await;
    let input = browser.wait_for("#definition").await;
    input
        .send_keys(&file.to_string_lossy())
        .await
        .expect("choose the file");
    browser.click("#upload-submit").await;
    let error = browser.wait_for_text("#upload-error", "没有保存").await;
    let problems = browser.find_all("#problems li").await;
    assert!(problems.len() >= 2, "every problem is listed: {error}");
    assert!(error.contains("base_url"), "{error}");
    browser.screenshot("bad-upload").await;
    if let Some(path) = readme_shot("admin-bad-upload.png") {
        browser.save_screenshot_to(&path).await;
    }
    browser.goto(&gw.url("/console/connectors")).await;
    browser.wait_for("#connectors").await;
    assert!(
        browser.find("#row-hukou3").await.is_none(),
        "nothing was saved"
    );
    browser.close().await;
}
