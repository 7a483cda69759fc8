//! The browser harness against a tiny page served here: Chromium starts, fills and
//! submits a form with the keyboard, speaks the language and has the size it was
//! given, and leaves screenshots and PDFs behind. Skipped (with a message) where
//! Chromium is not installed; required under `.ci/run`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on what it cannot set up"
)]

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Form;
use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_LANGUAGE, SET_COOKIE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde_json::json;
use testkit::browser::{Browser, Key};

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A page with a labelled input in a form that posts back here; the answer echoes
/// what was posted and the request's `Accept-Language`.
async fn serve() -> SocketAddr {
    async fn page(headers: HeaderMap) -> impl IntoResponse {
        let html = format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Smoke</title></head>
<body>
<p id="accept-language">{}</p>
<form method="post" action="/">
  <label for="x">Say something</label>
  <input id="x" name="x" autofocus>
  <button type="submit">Send</button>
</form>
</body></html>"#,
            escape(accept_language(&headers))
        );
        (
            [(SET_COOKIE, "smoke=1; Path=/; HttpOnly; SameSite=Strict")],
            Html(html),
        )
    }
    async fn echo(Form(form): Form<HashMap<String, String>>) -> Html<String> {
        let said = form.get("x").map(String::as_str).unwrap_or_default();
        Html(format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Echo</title></head>
<body><p id="echo">{}</p></body></html>"#,
            escape(said)
        ))
    }
    let app = Router::new().route("/", get(page).post(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn accept_language(headers: &HeaderMap) -> &str {
    headers
        .get(ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test]
async fn browser_fills_and_submits_a_form_with_the_keyboard() {
    let test = "browser_fills_and_submits_a_form_with_the_keyboard";
    let Some(browser) = Browser::options().lang("en").start(test).await else {
        return;
    };
    let addr = serve().await;
    browser.goto(&format!("http://{addr}/")).await;
    assert_eq!(browser.title().await, "Smoke");
    assert_eq!(
        browser
            .execute("return document.documentElement.lang", vec![])
            .await,
        json!("en")
    );
    assert!(
        browser.text("#accept-language").await.starts_with("en"),
        "an English browser asks for English"
    );

    browser.fill("#x", "hello, 你好 <b>").await;
    assert_eq!(browser.focused().await, "#x");
    browser.press(Key::Tab).await;
    assert_eq!(browser.focused().await, "button");
    browser.press(Key::Enter).await;
    assert_eq!(
        browser.wait_for_text("#echo", "hello").await,
        "hello, 你好 <b>"
    );
    assert_eq!(browser.path().await, "/");
    assert!(
        browser.find("#x").await.is_none(),
        "the echo page has no form"
    );

    let shot = browser.screenshot("echo").await;
    assert!(shot.starts_with(browser.artifacts()));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(PNG_SIGNATURE),
        "{} is a PNG",
        shot.display()
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let readme_shot = elsewhere.path().join("docs").join("echo.png");
    browser.save_screenshot_to(&readme_shot).await;
    assert!(
        std::fs::read(&readme_shot)
            .unwrap()
            .starts_with(PNG_SIGNATURE)
    );

    browser.close().await;
}

#[tokio::test]
async fn browser_speaks_the_language_and_has_the_size_it_was_given() {
    let test = "browser_speaks_the_language_and_has_the_size_it_was_given";
    let Some(browser) = Browser::options().lang("zh-CN").tablet().start(test).await else {
        return;
    };
    let addr = serve().await;
    browser.goto(&format!("http://{addr}/")).await;

    let accept_language = browser.text("#accept-language").await;
    assert!(
        accept_language.starts_with("zh-CN,zh"),
        "a Chinese browser asks for Chinese: {accept_language}"
    );
    assert_eq!(
        browser.execute("return navigator.language", vec![]).await,
        json!("zh-CN")
    );
    assert_eq!(
        browser.execute("return window.innerWidth", vec![]).await,
        json!(768)
    );

    let cookies = browser.cookies().await;
    let smoke = cookies
        .iter()
        .find(|c| c.name() == "smoke")
        .expect("the page's cookie");
    assert_eq!(smoke.value(), "1");
    assert_eq!(smoke.http_only(), Some(true));

    let pdf = browser.print_to_pdf("page").await;
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));

    let shot = browser.screenshot("tablet").await;
    assert!(std::fs::read(&shot).unwrap().starts_with(PNG_SIGNATURE));
    browser.close().await;
}
