//! The web console: the gateway's pages for people, served by the gateway itself at
//! `/console/` (`/` redirects there). A second front end beside [`crate::http`]'s
//! JSON API, on the same domain calls: a page fills a form with [`crate::fill`],
//! looks up with [`crate::lookup`], reads the log with [`crate::privacy`] — the
//! same policy, masks, quotas and audit events as the API, never a second path.
//!
//! - [`i18n`]: the message catalogues (zh-CN first, en) and the page's language;
//! - [`session`]: server-side sessions, CSRF tokens;
//! - [`page`]: what every page shares (frame, visit, errors, security headers);
//! - pages: [`signin`] (sign-in, sign-out, language switch), [`desk`] (the clerk's
//!   and grid worker's forms and lookups), [`officer`] (the privacy officer's audit
//!   search, events, exports, citizen report, anomalies, log integrity), [`access`]
//!   (the department admin's requests inbox and grants, the township lead's grants,
//!   requests and request form — the access-request use cases of [`crate::access`]),
//!   [`corrections`] (the department admin's correction queue and the township's
//!   corrections — the use cases of [`crate::corrections`]),
//!   [`connectors`] (the department admin's connectors: list, page, test, disable,
//!   purge, versions, upload, edit) and [`usage`] (who used my data), [`catalog`]
//!   (the shared catalog, for everyone), [`status`] (the operator's status page);
//! - [`assets`]: the one stylesheet and the one small script, written here.
//!
//! Templates are compiled into the binary (askama, `gateway/templates/console/`).
//! Personal data never goes into a URL: ID numbers are POSTed; pages that show a
//! person answer a POST and are `no-store`.

pub mod access;
pub mod assets;
pub mod catalog;
pub mod connectors;
pub mod corrections;
pub mod desk;
pub mod i18n;
pub mod officer;
pub mod page;
pub mod session;
pub mod signin;
pub mod status;
pub mod usage;
pub mod verify;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::app::App;
use crate::auth::{Role, SigningKey};
pub use session::{Sessions, Timeouts};

/// How the console is set up besides the app: who may sign in, and how.
#[derive(Debug, Default)]
pub struct Options {
    /// The demo's one-click sign-in (served only by `gateway demo`).
    pub demo: Option<DemoSignIn>,
    /// Sign-in through an OpenID provider (`console.oidc`).
    pub oidc: Option<crate::oidc::OidcClient>,
    pub timeouts: Timeouts,
}

/// The demo's sign-in: personas, and the key that signs their tokens (verified by
/// the app's authenticator like any other token).
#[derive(Debug)]
pub struct DemoSignIn {
    pub key: SigningKey,
    pub issuer: String,
    pub audience: String,
    pub personas: Vec<DemoPersona>,
}

/// A demo persona as the sign-in page lists it.
#[derive(Debug, Clone)]
pub struct DemoPersona {
    pub name: String,
    pub about: String,
    pub role: Role,
    pub township: Option<String>,
    /// 12-digit village codes (a grid worker's villages).
    pub villages: Vec<String>,
    pub department: Option<String>,
}

/// The most sign-ins waiting for the OpenID provider at once.
const MAX_PENDING_SIGN_INS: u64 = 10_000;

/// The console's state: the app, the sessions and the ways to sign in.
#[derive(Debug, Clone)]
pub struct Console {
    pub(crate) app: App,
    pub(crate) sessions: Sessions,
    pub(crate) demo: Option<Arc<DemoSignIn>>,
    pub(crate) oidc: Option<crate::oidc::OidcClient>,
    /// Sign-ins sent to the OpenID provider, by their `state`, until the browser
    /// comes back (or they expire).
    pub(crate) pending: moka::sync::Cache<String, crate::oidc::PendingLogin>,
    /// Whether the gateway serves HTTPS (cookies are then `Secure`).
    pub(crate) secure: bool,
    /// The last verification of the audit log run from the console: when, whether
    /// it passed, and what it said.
    pub(crate) last_verified: Arc<arc_swap::ArcSwapOption<officer::Verified>>,
}

impl Console {
    pub fn new(app: App, options: Options, secure: bool) -> Console {
        let sessions = Sessions::new(options.timeouts, app.clock.clone());
        Console {
            app,
            sessions,
            demo: options.demo.map(Arc::new),
            oidc: options.oidc,
            pending: moka::sync::Cache::builder()
                .max_capacity(MAX_PENDING_SIGN_INS)
                .time_to_live(std::time::Duration::from_secs(
                    crate::oidc::PENDING_LOGIN_TTL_S.unsigned_abs(),
                ))
                .build(),
            secure,
            last_verified: Arc::default(),
        }
    }
}

/// The console's routes: `/` and `/console` redirect to `/console/`, the pages are
/// under `/console/`.
pub fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/signin", get(signin::page))
        .route("/signin/demo", post(signin::demo))
        .route("/oidc/start", post(signin::oidc_start))
        .route("/oidc/callback", get(signin::oidc_callback))
        .route("/signout", post(signin::signout))
        .route("/lang", post(signin::lang))
        .route("/desk", get(desk::desk))
        .route("/forms/{form}", get(desk::form_page).post(desk::fill))
        .route("/lookup", get(desk::lookup_page).post(desk::lookup))
        .route("/verify", get(verify::page).post(verify::verify))
        .route("/inbox", get(access::inbox))
        .route("/inbox/{id}", get(access::request))
        .route("/inbox/{id}/approve", post(access::approve))
        .route("/inbox/{id}/refuse", post(access::refuse))
        .route("/corrections", get(corrections::queue))
        .route("/corrections/report", post(corrections::report))
        .route("/corrections/{id}", get(corrections::show))
        .route("/corrections/{id}/accept", post(corrections::accept))
        .route("/corrections/{id}/reject", post(corrections::reject))
        .route("/grants", get(access::grants))
        .route("/grants/{id}/revoke", post(access::revoke))
        .route("/township", get(access::township))
        .route("/request", get(access::ask_form).post(access::ask))
        .route("/request/{id}/withdraw", post(access::withdraw))
        .route("/audit", get(officer::search).post(officer::search_citizen))
        .route("/audit/events/{seq}", get(officer::event))
        .route("/audit/export", post(officer::export))
        .route("/report", get(officer::report_page).post(officer::report))
        .route(
            "/anomalies",
            get(officer::anomalies_page).post(officer::anomalies),
        )
        .route("/integrity", get(officer::integrity).post(officer::verify))
        .route("/connectors", get(connectors::list))
        .route(
            "/connectors/new",
            get(connectors::upload_page).post(connectors::upload),
        )
        .route("/connectors/{id}", get(connectors::show))
        .route("/connectors/{id}/test", post(connectors::test))
        .route("/connectors/{id}/change", post(connectors::change))
        .route("/connectors/{id}/diff", post(connectors::diff))
        .route("/connectors/{id}/activate", post(connectors::activate))
        .route(
            "/connectors/{id}/edit",
            get(connectors::edit_form).post(connectors::edit),
        )
        .route("/usage", get(usage::show))
        .route("/catalog", get(catalog::show).post(catalog::search))
        .route("/status", get(status::show))
        .route("/static/{file}", get(assets::serve))
        .fallback(page::not_found)
        .with_state(console.clone());
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(signin::home).with_state(console))
        .nest("/console", pages)
        .layer(middleware::from_fn(page::security_headers))
}
