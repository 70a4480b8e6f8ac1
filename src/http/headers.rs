//! Security headers on every response of the router (API, pages, assets and errors alike):
//! a Content-Security-Policy that allows only the app's own scripts and styles (no inline
//! scripts, styles or handlers) and no framing, `nosniff`, no referrer, and — unless a route
//! chose its own caching (the hashed static assets, recordings) — `no-store`, so a shared
//! cache or the browser's back button never shows one user's page to another.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

/// The policy: everything from the app's own origin only (the charts are inline SVG markup,
/// which needs no source); no plugins, no `<base>`, forms post only to the app, and no page
/// may frame it.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; media-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every response carries, with their values.
pub const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (CONTENT_SECURITY_POLICY, CSP),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "no-referrer"),
    (X_FRAME_OPTIONS, "DENY"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// Middleware (`map_response`): adds [`SECURITY_HEADERS`], and `Cache-Control: no-store`
/// where the route set no caching of its own.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
