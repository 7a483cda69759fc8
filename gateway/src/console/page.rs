//! What every console page shares: the [`Visit`] (language, session, request id,
//! peer) a handler starts from, the [`Chrome`] around each page (navigation for the
//! person's roles, the language switch, sign-out), rendering a template into a
//! response, error pages in the page's language, the CSRF check of every POST, and
//! the security headers of every answer.
//!
//! Error pages never echo what was sent: they say what kind of problem it was (in
//! words from the catalogue), the reason when there is one, and the request id.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::Console;
use super::i18n::{LANG_COOKIE, Tr, choose};
use super::session::{PRESESSION_COOKIE, SESSION_COOKIE, Session, random_token, same_secret};
use crate::auth::{Caller, Role};
use crate::http::{Peer, RequestId};

/// The Content-Security-Policy of every console answer: nothing inline, nothing
/// from elsewhere, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console answer; pages are `no-store` (the
/// static assets say otherwise themselves).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// One request to the console: who (if signed in), in which language, and the
/// request's id and peer.
#[derive(Debug, Clone)]
pub struct Visit {
    pub console: Console,
    pub t: Tr,
    pub jar: CookieJar,
    pub session: Option<Arc<Session>>,
    /// The cookie value of `session` (to end it).
    pub session_id: Option<String>,
    pub request_id: String,
    pub peer: Option<SocketAddr>,
    /// The path of this page, for the language switch to come back to.
    pub here: String,
    /// A pre-session token made for this visit (a browser without a session or one),
    /// set as a cookie with the page.
    fresh_presession: Option<String>,
    headers: HeaderMap,
}

impl FromRequestParts<Console> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let RequestId(request_id) = RequestId::from_request_parts(parts, console)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(Peer(peer)) = Peer::from_request_parts(parts, console).await;
        let jar = CookieJar::from_headers(&parts.headers);
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let t = Tr::new(choose(jar.get(LANG_COOKIE).map(Cookie::value), accept));
        let session_id = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
        let session = session_id
            .as_deref()
            .and_then(|id| console.sessions.get(id));
        let here = match parts.uri.path_and_query() {
            Some(pq) if parts.method == axum::http::Method::GET => pq.as_str().to_owned(),
            _ => parts.uri.path().to_owned(),
        };
        let fresh_presession =
            (session.is_none() && jar.get(PRESESSION_COOKIE).is_none()).then(random_token);
        Ok(Visit {
            console: console.clone(),
            t,
            jar,
            session,
            session_id,
            request_id,
            peer,
            here,
            fresh_presession,
            headers: parts.headers.clone(),
        })
    }
}

/// A form a page POSTs: it carries the page's CSRF token.
pub trait Posted {
    fn csrf(&self) -> &str;
}

/// Implements [`Posted`] for forms with a `csrf` field.
macro_rules! posted {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::console::page::Posted for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(crate) use posted;

/// A link of the navigation.
#[derive(Debug, Clone)]
pub struct Nav {
    pub href: &'static str,
    pub label: String,
    pub current: bool,
}

/// What surrounds every page: language, navigation, who is signed in, the CSRF
/// token its forms carry.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub t: Tr,
    pub user: Option<String>,
    pub roles: Vec<String>,
    pub township: Option<String>,
    pub csrf: String,
    pub nav: Vec<Nav>,
    pub here: String,
    pub request_id: String,
    pub demo: bool,
}

/// The pages each role works in, in the order the navigation shows them.
const PAGES: &[(&str, &str, &[Role])] = &[
    (
        "/console/desk",
        "nav-desk",
        &[Role::Clerk, Role::GridWorker, Role::TownshipLead],
    ),
    (
        "/console/lookup",
        "nav-lookup",
        &[Role::Clerk, Role::GridWorker, Role::TownshipLead],
    ),
    (
        "/console/verify",
        "nav-verify",
        &[Role::Clerk, Role::GridWorker, Role::TownshipLead],
    ),
    ("/console/inbox", "nav-inbox", &[Role::DeptAdmin]),
    ("/console/grants", "nav-grants", &[Role::DeptAdmin]),
    (
        "/console/corrections",
        "nav-corrections",
        &[
            Role::DeptAdmin,
            Role::Clerk,
            Role::GridWorker,
            Role::TownshipLead,
        ],
    ),
    ("/console/township", "nav-township", &[Role::TownshipLead]),
    ("/console/request", "nav-request", &[Role::TownshipLead]),
    ("/console/audit", "nav-audit", &[Role::PrivacyOfficer]),
    ("/console/report", "nav-report", &[Role::PrivacyOfficer]),
    (
        "/console/anomalies",
        "nav-anomalies",
        &[Role::PrivacyOfficer],
    ),
    (
        "/console/integrity",
        "nav-integrity",
        &[Role::PrivacyOfficer, Role::Operator],
    ),
    (
        "/console/connectors",
        "nav-connectors",
        &[Role::DeptAdmin, Role::Operator],
    ),
    ("/console/usage", "nav-usage", &[Role::DeptAdmin]),
    ("/console/status", "nav-status", &[Role::Operator]),
    ("/console/catalog", "nav-catalog", &Role::ALL),
];

/// Where a person lands after sign-in: a department admin at the requests inbox,
/// anyone else at the first page of their roles.
pub fn start_page(caller: &Caller) -> &'static str {
    if caller.has_role(Role::DeptAdmin) {
        return "/console/inbox";
    }
    PAGES
        .iter()
        .find(|(_, _, roles)| roles.iter().any(|r| caller.has_role(*r)))
        .map_or("/console/signin", |(href, _, _)| *href)
}

impl Visit {
    /// The signed-in person, if any.
    pub fn caller(&self) -> Option<&Arc<Caller>> {
        self.session.as_ref().map(|s| &s.caller)
    }

    /// The frame of a page at `current` (a navigation path).
    pub fn chrome(&self, current: &str) -> Chrome {
        let t = self.t;
        let (user, roles, township, nav) = match self.caller() {
            Some(caller) => (
                Some(caller.user.clone()),
                caller
                    .roles
                    .iter()
                    .map(|r| t.get(&format!("role-{}", r.as_str())))
                    .collect(),
                caller.township.clone(),
                PAGES
                    .iter()
                    .filter(|(_, _, roles)| roles.iter().any(|r| caller.has_role(*r)))
                    .map(|(href, key, _)| Nav {
                        href,
                        label: t.get(key),
                        current: *href == current,
                    })
                    .collect(),
            ),
            None => (None, Vec::new(), None, Vec::new()),
        };
        Chrome {
            t,
            user,
            roles,
            township,
            csrf: self.csrf(),
            nav,
            here: self.here.clone(),
            request_id: self.request_id.clone(),
            demo: self.console.demo.is_some(),
        }
    }

    /// The CSRF token this visit's forms carry: the session's, or before sign-in
    /// the pre-session cookie's (made for this visit and set with the page when the
    /// browser has none).
    pub fn csrf(&self) -> String {
        match (&self.session, self.jar.get(PRESESSION_COOKIE)) {
            (Some(session), _) => session.csrf.clone(),
            (None, Some(cookie)) => cookie.value().to_owned(),
            (None, None) => self.fresh_presession.clone().unwrap_or_default(),
        }
    }

    /// The token a POST is checked against: the session's, or the pre-session
    /// cookie the browser sent (never one made for this very request).
    fn expected_csrf(&self) -> String {
        match (&self.session, self.jar.get(PRESESSION_COOKIE)) {
            (Some(session), _) => session.csrf.clone(),
            (None, Some(cookie)) => cookie.value().to_owned(),
            (None, None) => String::new(),
        }
    }

    /// Whether a POST may change anything: it carries this visit's CSRF token, and
    /// nothing says it comes from another site — `Origin`, when the browser names
    /// one (under `Referrer-Policy: no-referrer` it sends `null`), is this host, and
    /// `Sec-Fetch-Site`, when sent, is `same-origin` (or `none`: typed by the person).
    pub fn check_post(&self, token: &str) -> Result<(), Box<Response>> {
        let expected = self.expected_csrf();
        let header = |name| {
            self.headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("(unreadable)"))
        };
        let host = header(header::HOST).unwrap_or_default();
        let origin_ok = match header(header::ORIGIN) {
            None | Some("null") => true,
            Some(origin) => origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|rest| !host.is_empty() && rest == host),
        };
        let site_ok = matches!(
            header(axum::http::HeaderName::from_static("sec-fetch-site")),
            None | Some("same-origin" | "none")
        );
        if origin_ok && site_ok && !expected.is_empty() && same_secret(&expected, token) {
            Ok(())
        } else {
            Err(Box::new(self.error(
                StatusCode::FORBIDDEN,
                "error-csrf",
                None,
            )))
        }
    }

    /// A POSTed form of a person holding one of `roles`: signed in, the form
    /// readable, its token this visit's; else the answer instead (sign-in, 403, 400).
    pub fn accept<T: Posted>(
        &self,
        roles: &[Role],
        form: Result<Form<T>, FormRejection>,
    ) -> Result<(Arc<Caller>, T), Box<Response>> {
        let caller = self.require(roles)?;
        let Ok(Form(form)) = form else {
            return Err(Box::new(self.error(
                StatusCode::BAD_REQUEST,
                "error-bad-form",
                None,
            )));
        };
        self.check_post(form.csrf())?;
        Ok((caller, form))
    }

    /// The signed-in person when they hold one of `roles`; else the answer: the
    /// sign-in page (no session, or it ended) or 403.
    pub fn require(&self, roles: &[Role]) -> Result<Arc<Caller>, Box<Response>> {
        let Some(caller) = self.caller() else {
            return Err(Box::new(self.to_sign_in()));
        };
        if roles.iter().any(|r| caller.has_role(*r)) {
            Ok(caller.clone())
        } else {
            Err(Box::new(self.error(
                StatusCode::FORBIDDEN,
                "error-forbidden",
                None,
            )))
        }
    }

    /// To the sign-in page, saying the session ended when there was one.
    pub fn to_sign_in(&self) -> Response {
        let target = if self.session_id.is_some() {
            "/console/signin?ended=1"
        } else {
            "/console/signin"
        };
        let jar = self
            .jar
            .clone()
            .remove(Cookie::build(SESSION_COOKIE).path("/console"));
        (jar, Redirect::to(target)).into_response()
    }

    /// A page: the template rendered, with the pre-session cookie set when the page
    /// needs one for its forms.
    pub fn respond(&self, template: &impl Template) -> Response {
        self.respond_with(StatusCode::OK, template)
    }

    pub fn respond_with(&self, status: StatusCode, template: &impl Template) -> Response {
        match template.render() {
            Ok(html) => {
                let mut response = match &self.fresh_presession {
                    Some(token) => {
                        let cookie = self.cookie(PRESESSION_COOKIE, token.clone(), None);
                        (status, self.jar.clone().add(cookie), Html(html)).into_response()
                    }
                    None => (status, Html(html)).into_response(),
                };
                if let Ok(lang) = HeaderValue::from_str(self.t.tag()) {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_LANGUAGE, lang);
                }
                response
            }
            Err(e) => {
                tracing::error!(request_id = %self.request_id, error = %e, "a console page did not render");
                (StatusCode::INTERNAL_SERVER_ERROR, "").into_response()
            }
        }
    }

    /// An error page: the message `key`, and a detail line when given (words from
    /// the catalogue, never anything the person sent).
    pub fn error(&self, status: StatusCode, key: &str, detail: Option<String>) -> Response {
        let page = ErrorPage {
            chrome: self.chrome(""),
            message: self.t.get(key),
            detail,
            status: status.as_u16(),
        };
        self.respond_with(status, &page)
    }

    /// The error page for a problem of kind `slug` (with its reason, if any).
    pub fn problem(&self, status: StatusCode, slug: &str, reason: Option<&str>) -> Response {
        let page = ErrorPage {
            chrome: self.chrome(""),
            message: self.t.problem(slug),
            detail: reason.and_then(|r| self.reason(r)),
            status: status.as_u16(),
        };
        self.respond_with(status, &page)
    }

    /// Words for a refusal's or a missing value's reason, if the catalogues have them.
    pub fn reason(&self, reason: &str) -> Option<String> {
        self.t
            .maybe(&format!("reason-{reason}"))
            .or_else(|| crate::labels::label("reasons", reason, self.t.lang).map(str::to_owned))
    }

    /// The person as the domain's use cases take them: this request's id and peer.
    pub fn who(&self, caller: Arc<Caller>) -> crate::action::Who {
        crate::action::Who {
            request_id: self.request_id.clone(),
            caller,
            peer: self.peer,
        }
    }

    /// A domain refusal as a page: its kind in words and the reason, if any.
    pub fn refused(&self, problem: &crate::problem::Problem) -> Response {
        let reason = problem
            .extensions
            .get("reason")
            .and_then(serde_json::Value::as_str);
        self.problem(problem.kind.status(), problem.kind.slug(), reason)
    }

    /// A console cookie: `HttpOnly`, `SameSite=Strict`, path `/console`, `Secure`
    /// under TLS.
    pub fn cookie(
        &self,
        name: &'static str,
        value: String,
        max_age: Option<std::time::Duration>,
    ) -> Cookie<'static> {
        let mut cookie = Cookie::build((name, value))
            .path("/console")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.console.secure)
            .build();
        if let Some(age) = max_age
            && let Ok(age) = i64::try_from(age.as_secs())
        {
            cookie.set_max_age(cookie::time::Duration::seconds(age));
        }
        cookie
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
    detail: Option<String>,
    status: u16,
}

/// The console's 404: a page, not JSON.
pub async fn not_found(visit: Visit) -> Response {
    visit.error(StatusCode::NOT_FOUND, "error-not-found", None)
}
