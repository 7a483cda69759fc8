//! Signing in and out, and the language switch.
//!
//! A session starts only from a token the app's authenticator verified — the same
//! issuers, keys and claim rules as an API call — so the console never sees more
//! than the same person's API calls would. The demo signs a token for the persona
//! chosen (one click; the page says it is a demo); a real deployment signs in through
//! its OpenID provider.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::Query;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::i18n::LANG_COOKIE;
use super::page::{Chrome, Visit, start_page};
use super::session::SESSION_COOKIE;
use super::{DemoPersona, DemoSignIn};
use crate::auth::{MintClaims, mint};

/// `/console/`: the person's start page, or the sign-in page.
pub(crate) async fn home(visit: Visit) -> Response {
    match visit.caller() {
        Some(caller) => Redirect::to(start_page(caller)).into_response(),
        None => visit.to_sign_in(),
    }
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    chrome: Chrome,
    ended: bool,
    /// Whether single sign-on (OpenID Connect) is configured.
    oidc: bool,
    personas: Vec<PersonaCard>,
}

struct PersonaCard {
    name: String,
    about: String,
    role: String,
    township: Option<String>,
    /// The villages, joined for display ("" when none).
    villages: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInQuery {
    ended: Option<String>,
}

/// The sign-in page: the demo's personas when this is the demo.
pub(crate) async fn page(
    visit: Visit,
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let personas = visit
        .console
        .demo
        .iter()
        .flat_map(|demo| demo.personas.iter())
        .map(|p| PersonaCard {
            name: p.name.clone(),
            about: p.about.clone(),
            role: visit.t.get(&format!("role-{}", p.role.as_str())),
            township: p.township.clone(),
            villages: p.villages.join(", "),
        })
        .collect();
    let ended = query.is_ok_and(|Query(q)| q.ended.is_some());
    let page = SignInPage {
        chrome: visit.chrome("/console/signin"),
        ended,
        oidc: visit.console.oidc.is_some(),
        personas,
    };
    visit.respond(&page)
}

#[derive(Debug, Deserialize)]
pub(crate) struct DemoForm {
    persona: String,
    csrf: String,
}

/// The demo's one-click sign-in.
pub(crate) async fn demo(visit: Visit, form: Result<Form<DemoForm>, FormRejection>) -> Response {
    let Some(demo) = visit.console.demo.clone() else {
        return visit.error(StatusCode::NOT_FOUND, "error-not-found", None);
    };
    let Ok(Form(form)) = form else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    if let Err(refused) = visit.check_post(&form.csrf) {
        return *refused;
    }
    let Some(persona) = demo.personas.iter().find(|p| p.name == form.persona) else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    let token = match persona_token(&demo, persona) {
        Ok(token) => token,
        Err(e) => {
            tracing::error!(request_id = %visit.request_id, error = %e, "a demo token could not be signed");
            return visit.error(StatusCode::INTERNAL_SERVER_ERROR, "signin-failed", None);
        }
    };
    // Verified like any bearer token: the session is what the API would see.
    match visit.console.app.auth.verify(&token).await {
        Ok(caller) => start(&visit, caller),
        Err(e) => {
            tracing::warn!(request_id = %visit.request_id, reason = e.reason(), "a demo sign-in was refused");
            visit.error(StatusCode::UNAUTHORIZED, "signin-failed", None)
        }
    }
}

fn persona_token(
    demo: &DemoSignIn,
    persona: &DemoPersona,
) -> Result<String, crate::auth::MintError> {
    mint(
        &demo.key,
        &MintClaims {
            iss: demo.issuer.clone(),
            aud: demo.audience.clone(),
            sub: persona.name.clone(),
            roles: vec![persona.role],
            township: persona.township.clone(),
            villages: persona.villages.clone(),
            department: persona.department.clone(),
            app: Some("console".to_owned()),
            ttl_s: visit_ttl(),
            not_before_s: None,
        },
    )
}

/// A demo token lives as long as the longest session.
fn visit_ttl() -> u64 {
    super::Timeouts::default().absolute.as_secs()
}

/// Sign-in through the OpenID provider: the browser goes to the provider with a
/// fresh `state`, `nonce` and PKCE challenge; the sign-in waits here by its state.
pub(crate) async fn oidc_start(
    visit: Visit,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let Some(client) = visit.console.oidc.clone() else {
        return visit.error(StatusCode::NOT_FOUND, "error-not-found", None);
    };
    let Ok(Form(form)) = form else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    if let Err(refused) = visit.check_post(&form.csrf) {
        return *refused;
    }
    let (url, pending) = client.begin();
    visit
        .console
        .pending
        .insert(pending.state().to_owned(), pending);
    Redirect::to(url.as_str()).into_response()
}

/// The provider sends the browser back with a one-time code and the state: the
/// waiting sign-in is taken (once), the code redeemed, the ID token verified by the
/// app's authenticator, and a session starts. The code is never logged.
pub(crate) async fn oidc_callback(visit: Visit, uri: axum::http::Uri) -> Response {
    let Some(client) = visit.console.oidc.clone() else {
        return visit.error(StatusCode::NOT_FOUND, "error-not-found", None);
    };
    let outcome = match crate::oidc::Callback::from_query(uri.query().unwrap_or_default()) {
        Err(e) => Err(e),
        Ok(callback) => match visit.console.pending.remove(callback.state()) {
            None => Err(crate::oidc::OidcError::WrongState),
            Some(pending) => client.finish(pending, &callback).await,
        },
    };
    match outcome {
        Ok(caller) => start(&visit, caller),
        Err(e) => {
            tracing::warn!(request_id = %visit.request_id, reason = e.reason(), "an OpenID Connect sign-in failed");
            visit.error(StatusCode::UNAUTHORIZED, "signin-failed", None)
        }
    }
}

/// Starts a session for a verified caller and goes to their start page.
pub fn start(visit: &Visit, caller: Arc<crate::auth::Caller>) -> Response {
    tracing::info!(request_id = %visit.request_id, user = %caller.user, "console sign-in");
    let target = start_page(&caller);
    let id = visit.console.sessions.start(caller);
    let cookie = visit.cookie(
        SESSION_COOKIE,
        id,
        Some(visit.console.sessions.cookie_max_age()),
    );
    // A new session after sign-in (no fixation); the old one, if any, ends.
    if let Some(old) = &visit.session_id {
        visit.console.sessions.end(old);
    }
    (visit.jar.clone().add(cookie), Redirect::to(target)).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

/// Sign-out: the session ends here and in the browser.
pub(crate) async fn signout(visit: Visit, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    let Ok(Form(form)) = form else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    if visit.session.is_some()
        && let Err(refused) = visit.check_post(&form.csrf)
    {
        return *refused;
    }
    if let Some(id) = &visit.session_id {
        visit.console.sessions.end(id);
    }
    let jar = visit
        .jar
        .clone()
        .remove(axum_extra::extract::cookie::Cookie::build(SESSION_COOKIE).path("/console"));
    (jar, Redirect::to("/console/signin")).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct LangForm {
    lang: String,
    back: String,
    csrf: String,
}

/// The language switch: remembered in a cookie, then back to the page it was on
/// (a console path only: never a redirect elsewhere).
pub(crate) async fn lang(visit: Visit, form: Result<Form<LangForm>, FormRejection>) -> Response {
    let Ok(Form(form)) = form else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    if let Err(refused) = visit.check_post(&form.csrf) {
        return *refused;
    }
    let Some(lang) = crate::labels::Lang::parse(&form.lang) else {
        return visit.error(StatusCode::BAD_REQUEST, "error-bad-form", None);
    };
    let back = if safe_back(&form.back) {
        form.back
    } else {
        "/console/".to_owned()
    };
    let cookie = visit.cookie(
        LANG_COOKIE,
        lang.tag().to_owned(),
        Some(std::time::Duration::from_secs(365 * 86_400)),
    );
    (visit.jar.clone().add(cookie), Redirect::to(&back)).into_response()
}

/// A path on the console to come back to: `/console…`, no scheme or host, no
/// `//`, no backslash, only URL-safe characters.
fn safe_back(back: &str) -> bool {
    back.starts_with("/console")
        && back.len() <= 512
        && !back.contains("//")
        && back
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::safe_back;

    #[test]
    fn the_language_switch_returns_only_to_console_paths() {
        assert!(safe_back("/console/desk"));
        assert!(safe_back("/console/audit?user=clerk-dongling&outcome=ok"));
        assert!(!safe_back("https://evil.example/console"));
        assert!(!safe_back("//evil.example/console"));
        assert!(!safe_back("/console//evil.example"));
        assert!(!safe_back("/console\\@evil"));
        assert!(!safe_back("/v1/query"));
    }
}
