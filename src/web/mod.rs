//! The web app: server-rendered pages for reps, bid teams and managers, mounted on the API's
//! router. Templates are askama files in `templates/`, every UI string comes from
//! `i18n/<lang>.toml`, and the CSS and JavaScript in `static/` are built into the binary.
//!
//! Like `http`, this is a presentation layer: handlers are thin and call the same domain
//! functions as the JSON API, and the pages' scripts call the JSON API itself (with the
//! session cookie and the CSRF header, see `http::auth`). Every page is one entry in
//! [`routes`] with the roles that may open it; [`guard`] signs the browser in from its session
//! cookie, sends strangers to the sign-in page, shows the 403 page to other roles, checks the
//! CSRF token of every form, and turns error answers into an HTML page in the user's language.

mod assets;
pub mod bids;
mod call;
mod dashboard;
mod i18n;
mod pages;
mod quote;
pub mod session;
mod svg;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

pub use i18n::{Lang, Tr};

use crate::http::{ANY_ROLE, Access, AppState, BID_TEAM, CALLS, MANAGERS, RouteSpec};
use crate::users::{Role, User};

/// What every page template gets: the strings, the signed-in user, the CSRF token of its
/// forms and the current path (for the language switch).
#[derive(Clone, Debug)]
pub struct Page {
    pub t: Tr,
    pub lang: Lang,
    pub user: Option<User>,
    pub csrf: String,
    pub path: String,
}

impl Page {
    /// Whether the signed-in user may open pages with `access` (drives the navigation).
    pub fn can(&self, access: &Access) -> bool {
        self.user.as_ref().is_some_and(|u| access.allows(u.role))
    }

    pub fn may_call(&self) -> bool {
        self.can(&CALLS)
    }

    pub fn may_bid(&self) -> bool {
        self.can(&BID_TEAM)
    }

    pub fn may_review(&self) -> bool {
        self.can(&MANAGERS)
    }

    pub fn is_rep(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role == Role::Rep)
    }

    pub fn is_zh(&self) -> bool {
        self.lang == Lang::Zh
    }

    /// The user's role name in the UI language.
    pub fn role_name(&self) -> &'static str {
        match self.user.as_ref().map(|u| u.role) {
            Some(Role::Rep) => self.t.s("role.rep"),
            Some(Role::Bid) => self.t.s("role.bid"),
            Some(Role::Manager) => self.t.s("role.manager"),
            Some(Role::Admin) => self.t.s("role.admin"),
            None => "",
        }
    }

    pub fn user_name(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.name.as_str())
    }

    pub fn css(&self) -> &'static str {
        assets::url("app.css")
    }

    pub fn js(&self) -> &'static str {
        assets::url("app.js")
    }
}

/// Every page with its handler and who may open it.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Method as M;
    let spec = |method: Method, path: &'static str, access: Access| RouteSpec {
        method,
        path,
        access,
    };
    vec![
        (
            spec(M::GET, "/app/sign-in", Access::Public),
            get(pages::sign_in_form),
        ),
        (
            spec(M::POST, "/app/sign-in", Access::Public),
            post(pages::sign_in),
        ),
        (
            spec(M::POST, "/app/sign-out", Access::Public),
            post(pages::sign_out),
        ),
        (
            spec(M::POST, "/app/lang", Access::Public),
            post(pages::set_lang),
        ),
        (spec(M::GET, "/app", ANY_ROLE), get(pages::home)),
        (spec(M::GET, "/app/calls", CALLS), get(pages::calls)),
        (spec(M::GET, "/app/calls/{id}", CALLS), get(pages::call)),
        (spec(M::GET, "/app/quote", CALLS), get(quote::form)),
        (spec(M::POST, "/app/quote", CALLS), post(quote::recommend)),
        (spec(M::GET, "/app/bids", BID_TEAM), get(bids::form)),
        (
            spec(M::POST, "/app/bids", BID_TEAM),
            post(bids::search).layer(DefaultBodyLimit::max(bids::UPLOAD_LIMIT)),
        ),
        (spec(M::GET, "/app/bids/{id}", BID_TEAM), get(bids::bid)),
        (
            spec(M::POST, "/app/drafts", BID_TEAM),
            post(bids::start_draft),
        ),
        (
            spec(M::GET, "/app/drafts/{id}", BID_TEAM),
            get(bids::draft_page),
        ),
        (
            spec(M::GET, "/app/drafts/{id}/draft.md", BID_TEAM),
            get(bids::draft_markdown),
        ),
        (
            spec(M::POST, "/app/drafts/{id}/edit", BID_TEAM),
            post(bids::save_draft),
        ),
        (
            spec(M::POST, "/app/drafts/{id}/submit", BID_TEAM),
            post(bids::submit_draft),
        ),
        (spec(M::GET, "/app/reviews", MANAGERS), get(pages::reviews)),
        (
            spec(M::POST, "/app/reviews/{id}", MANAGERS),
            post(pages::decide),
        ),
        (spec(M::GET, "/app/audit", MANAGERS), get(pages::audit)),
        (
            spec(M::GET, "/app/dashboard", MANAGERS),
            get(dashboard::page),
        ),
    ]
}

/// The routes outside [`guard`]: the root's redirect to the app and the static assets
/// (public, cached for good, so they set no cookie).
fn plain_routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    let spec = |path: &'static str| RouteSpec {
        method: Method::GET,
        path,
        access: Access::Public,
    };
    vec![
        (spec("/"), get(|| async { Redirect::to("/app") })),
        (spec("/static/{name}"), get(assets::serve)),
    ]
}

/// Every route of the web app without handlers — the pages and the plain routes — for the
/// access-matrix test.
pub fn route_table() -> Vec<RouteSpec> {
    plain_routes()
        .into_iter()
        .chain(routes())
        .map(|(spec, _)| spec)
        .collect()
}

/// The pages and their static assets, each page behind [`guard`].
pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for (spec, handler) in plain_routes() {
        router = router.route(spec.path, handler);
    }
    for (spec, handler) in routes() {
        router = router.route(
            spec.path,
            handler.route_layer(from_fn_with_state((state.clone(), spec.access), guard)),
        );
    }
    router
}

/// Renders a template, or the plain error text if it fails (it cannot with valid templates).
pub fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("page rendering failed: {e}"),
        )
            .into_response(),
    }
}

/// Forms' bodies are small; a larger one is refused before the CSRF check reads it.
const FORM_LIMIT: usize = 256 * 1024;

/// Middleware of every page: session → [`Page`], sign-in redirect, 403 page, CSRF check of
/// forms, HTML error pages.
pub async fn guard(
    State((state, access)): State<(AppState, Access)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let lang = Lang::of_request(&parts.headers);
    let t = Tr(lang);
    let session = match session::cookie(&parts.headers, session::SESSION_COOKIE) {
        Some(id) => match session::find(&state.db, &id).await {
            Ok(found) => found,
            Err(e) => {
                return pages::error_page(t, None, StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            }
        },
        None => None,
    };
    // Before sign-in the pre-session cookie carries the forms' CSRF token (double submit).
    let mut new_pre = None;
    let csrf = match &session {
        Some(s) => s.csrf.clone(),
        None => session::cookie(&parts.headers, session::PRE_COOKIE)
            .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| new_pre.insert(session::random_token()).clone()),
    };
    let page = Page {
        t,
        lang,
        user: session.map(|s| s.user),
        csrf,
        path: parts.uri.path().to_string(),
    };
    if let Access::Roles(_) = access {
        match &page.user {
            None => {
                let next = parts.uri.path_and_query().map_or("/app", |p| p.as_str());
                return Redirect::to(&format!("/app/sign-in?next={}", pages::encode(next)))
                    .into_response();
            }
            Some(user) if !access.allows(user.role) => {
                return pages::error_page(t, Some(&page), StatusCode::FORBIDDEN, "");
            }
            Some(_) => {}
        }
    }
    let body = if parts.method == Method::GET || parts.method == Method::HEAD {
        body
    } else {
        let multipart = parts
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"multipart/form-data"));
        let limit = if multipart {
            bids::UPLOAD_LIMIT
        } else {
            FORM_LIMIT
        };
        let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
            return pages::error_page(t, Some(&page), StatusCode::PAYLOAD_TOO_LARGE, "");
        };
        let given = session::csrf_field(&bytes).unwrap_or("");
        if new_pre.is_some() || !session::csrf_matches(&page.csrf, given) {
            return pages::error_page_saying(
                t,
                Some(&page),
                StatusCode::FORBIDDEN,
                Some("error.csrf"),
                "",
            );
        }
        Body::from(bytes)
    };
    parts.extensions.insert(page.clone());
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        response = html_error(t, &page, response).await;
    }
    if let Some(pre) = new_pre {
        let cookie = session::set_cookie(
            session::PRE_COOKIE,
            &pre,
            86_400,
            state.config.web.secure_cookies,
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// A JSON error answer from a handler (`{code, message}`) as the HTML error page.
async fn html_error(t: Tr, page: &Page, response: Response) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json || response.headers().contains_key(LOCATION) {
        return response;
    }
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), FORM_LIMIT)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<crate::http::ErrorBody>(&bytes)
        .map(|b| b.message)
        .unwrap_or_default();
    pages::error_page(t, Some(page), status, &message)
}
