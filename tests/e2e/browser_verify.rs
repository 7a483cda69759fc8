//! The console's verification page (核验) in a real Chromium: the 东岭镇 clerk states
//! what an applicant for the old-age allowance says and sees ✓ or ✗ per field, never
//! the value the household register holds; the page works from the keyboard's
//! labels. Skipped, saying why, where Chromium is not installed; required under
//! `.ci/run`.

use testkit::browser::BrowserOptions;

use crate::browser::{readme_shot, resident, sign_in};
use crate::helpers::{TestGateway, population};

/// The card for the household register's person lookup, for the old-age allowance.
const CARD: &str = "#verify-hukou-person_by_id-elderly_allowance";

#[tokio::test]
async fn a_clerk_verifies_a_citizens_statement_and_sees_only_match_or_mismatch() {
    let Some(browser) = BrowserOptions::new()
        .window(1280, 1400)
        .start("console_verify")
        .await
    else {
        return;
    };
    let gw = TestGateway::start().await;
    let person = resident();
    let household = population()
        .household(&person.household)
        .expect("the household");

    sign_in(&browser, &gw, "clerk-dongling").await;
    browser.click("a[href='/console/verify']").await;
    browser.wait_for_path("/console/verify").await;
    browser.wait_for(CARD).await;
    // Every input has its label.
    let unlabelled = browser
        .execute(
            &format!(
                "return [...document.querySelectorAll('{CARD} input:not([type=hidden])')]\
                 .filter(i => !document.querySelector(`label[for='${{i.id}}']`)).length;"
            ),
            vec![],
        )
        .await;
    assert_eq!(unlabelled, serde_json::json!(0));
    let key = CARD.trim_start_matches('#');
    browser
        .fill(&format!("#{key}-id_number"), person.id.as_str())
        .await;
    browser.fill(&format!("#{key}-case_id"), "GLJT-0001").await;
    browser
        .fill(&format!("#{key}-claim-name"), &person.name)
        .await;
    // A wrong birth date, set as the date picker would.
    let wrong = (person.birth_date + chrono::Duration::days(3)).to_string();
    browser
        .execute(
            &format!("document.querySelector('#{key}-claim-birth_date').value = arguments[0];"),
            vec![serde_json::json!(wrong)],
        )
        .await;
    browser
        .fill(&format!("#{key}-claim-address"), &household.village)
        .await;
    browser.click(&format!("{CARD} button[type=submit]")).await;
    browser.wait_for("#verified").await;
    let answer = browser.text("#verified").await;
    let row = |field: &str| {
        answer
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row("name").contains("一致") && !row("name").contains("不一致"),
        "{answer}"
    );
    assert!(row("birth_date").contains("不一致"), "{answer}");
    assert!(row("address").contains("一致"), "{answer}");
    // Nothing the department holds is on the page.
    let page = browser.source().await;
    assert!(
        !page.contains(&person.birth_date.to_string()),
        "the birth date held"
    );
    assert!(!page.contains(&household.address), "the address held");
    assert!(!browser.url().await.contains(person.id.as_str()));
    browser.screenshot("verified").await;
    if let Some(path) = readme_shot("clerk-verified.png") {
        browser.save_screenshot_to(&path).await;
    }
}
