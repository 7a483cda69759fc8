//! The access desks in a real Chromium: the whole "点菜 → 端菜 → 收回" loop. The lead
//! of 东岭镇 requests `name` and `birth_date` of 县公安局's `hukou` for 农民建房; the
//! 县公安局 admin approves it narrowed to `birth_date: date_year`; the clerk's next
//! lookup shows the birth year only; the admin revokes the grant; the clerk's next
//! lookup withholds both. With `CONSOLE_SCREENSHOTS=<dir>` it writes the README's
//! screenshots of the request form and the inbox there. Skipped, saying why, where
//! Chromium is not installed; required under `.ci/run`.

use chrono::Datelike;
use testkit::browser::{Browser, BrowserOptions};

use crate::browser::{readme_shot, resident, sign_in, sign_out};
use crate::helpers::TestGateway;

/// Chooses `value` in the select `css` (as a person picks an option) and checks the
/// option was there.
async fn choose(browser: &Browser, css: &str, value: &str) {
    browser.wait_for(css).await;
    let chosen = browser
        .execute(
            "const s = document.querySelector(arguments[0]);\
             s.value = arguments[1];\
             s.dispatchEvent(new Event('change', { bubbles: true }));\
             return s.value;",
            vec![serde_json::json!(css), serde_json::json!(value)],
        )
        .await;
    assert_eq!(chosen.as_str(), Some(value), "{css} offers {value}");
}

/// The clerk's single lookup of the resident for 农民建房, from the lookup page.
async fn clerk_lookup(browser: &Browser, gw: &TestGateway, case_id: &str) {
    sign_in(browser, gw, "clerk-dongling").await;
    browser.click("nav a[href='/console/lookup']").await;
    browser.wait_for_path("/console/lookup").await;
    choose(browser, "#target", "hukou/person_by_id").await;
    choose(browser, "#purpose", "rural_housing").await;
    browser.fill("#id_number", resident().id.as_str()).await;
    browser.fill("#case_id", case_id).await;
    browser.click("#lookup-submit").await;
    browser.wait_for("#answer").await;
}

#[tokio::test]
async fn a_lead_orders_the_department_serves_narrowed_and_takes_it_back() {
    let Some(browser) = BrowserOptions::new()
        .window(1280, 1400)
        .start("console_access_loop")
        .await
    else {
        return;
    };
    let gw = TestGateway::start().await;
    let person = resident();
    let year = person.birth_date.year().to_string();
    let full_date = person.birth_date.to_string();

    // 点菜: the lead picks the operation from the catalog, then the fields.
    sign_in(&browser, &gw, "lead-dongling").await;
    browser.click("nav a[href='/console/request']").await;
    browser.wait_for_path("/console/request").await;
    choose(&browser, "#op", "hukou.person_by_id").await;
    browser.click("#ask-show").await;
    browser
        .wait_for_url_containing("op=hukou.person_by_id")
        .await;
    browser.wait_for("#ask-form").await;
    browser.click("input[name='field.name']").await;
    browser.click("input[name='field.birth_date']").await;
    choose(&browser, "#purpose", "rural_housing").await;
    browser
        .fill("#justification", "农民建房审批需核对申请人姓名和出生日期。")
        .await;
    browser
        .execute(
            "document.querySelector('#ask-form h2').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("lead-request").await;
    if let Some(path) = readme_shot("lead-request.png") {
        browser.save_screenshot_to(&path).await;
    }
    browser.click("#ask-submit").await;
    browser.wait_for_path("/console/township").await;
    browser.wait_for_text("#township-requests", "待答复").await;
    sign_out(&browser).await;

    // 端菜: the department's admin lands on the inbox and approves less than asked.
    sign_in(&browser, &gw, "admin-psb").await;
    browser.wait_for_path("/console/inbox").await;
    browser.wait_for("#inbox").await;
    browser.screenshot("admin-inbox").await;
    if let Some(path) = readme_shot("admin-inbox.png") {
        browser.save_screenshot_to(&path).await;
    }
    let href = browser
        .attr("#inbox a", "href")
        .await
        .expect("a link to the request");
    let id = href.trim_start_matches("/console/inbox/").to_owned();
    browser.click("#inbox a").await;
    browser.wait_for("#approve-form").await;
    let asked = browser.text("#justification").await;
    assert!(asked.contains("农民建房审批"), "{asked}");
    browser.click("input[name='keep.name']").await;
    choose(&browser, "select[name='mask.birth_date']", "date_year").await;
    browser.click("#approve").await;
    browser.wait_for("#decision").await;
    let state = browser.text("#decision").await;
    assert!(state.contains("已缩小范围批准"), "{state}");
    sign_out(&browser).await;

    // The clerk's very next lookup shows the birth year only, and no name.
    clerk_lookup(&browser, &gw, "BROWSER-ACCESS-1").await;
    let answer = browser.text("#answer").await;
    assert!(answer.contains("birth_date"), "{answer}");
    assert!(answer.contains(&year), "the year is shown: {answer}");
    assert!(
        !answer.contains(&full_date),
        "never the whole date: {answer}"
    );
    assert!(!answer.contains(&person.name), "the name was not approved");
    let withheld = browser.text("#withheld").await;
    assert!(withheld.contains("name"), "{withheld}");
    browser.screenshot("clerk-year-only").await;
    sign_out(&browser).await;

    // 收回: the admin revokes the grant, with a reason and the confirmation.
    sign_in(&browser, &gw, "admin-psb").await;
    browser.click("nav a[href='/console/grants']").await;
    browser.wait_for_path("/console/grants").await;
    let form = format!("form.revoke[data-grant='{id}']");
    browser
        .fill(
            &format!("{form} textarea"),
            "农民建房审批改由自然资源部门核对。",
        )
        .await;
    browser
        .click(&format!("{form} input[name='confirm']"))
        .await;
    browser.click(&format!("{form} button")).await;
    browser.wait_for_text(".revoked", "自然资源部门").await;
    sign_out(&browser).await;

    // The clerk's next lookup withholds both.
    clerk_lookup(&browser, &gw, "BROWSER-ACCESS-2").await;
    let withheld = browser.text("#withheld").await;
    assert!(
        withheld.contains("name") && withheld.contains("birth_date"),
        "{withheld}"
    );
    let answer = browser.text("#answer").await;
    assert!(!answer.contains("birth_date"), "{answer}");
    browser.screenshot("clerk-withheld").await;
    browser.close().await;
}
