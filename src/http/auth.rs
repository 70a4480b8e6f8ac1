//! Who is calling: bearer-token authentication and the per-route role check.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Extensions, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::config::AccessConfig;
use crate::error::{Error, Result};
use crate::users::{Role, User, throttle};
use crate::web::session;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (health checks, the API document).
    Public,
    /// A valid token whose user has one of these roles.
    Roles(&'static [Role]),
}

/// Every signed-in role.
pub const ANY_ROLE: Access = Access::Roles(&Role::ALL);
/// Administrators only.
pub const ADMIN: Access = Access::Roles(&[Role::Admin]);
/// Managers and admins.
pub const MANAGERS: Access = Access::Roles(&[Role::Manager, Role::Admin]);
/// The bid team, managers and administrators (the bid library and tender drafts).
pub const BID_TEAM: Access = Access::Roles(&[Role::Bid, Role::Manager, Role::Admin]);
/// Call analysis: reps (their own calls), managers (their region's) and admins.
pub const CALLS: Access = Access::Roles(&[Role::Rep, Role::Manager, Role::Admin]);

impl Access {
    /// Whether a user with `role` may call.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// The authenticated caller, placed in the request's extensions for handlers.
#[derive(Clone, Debug)]
pub struct Caller(pub User);

/// Middleware: authenticates the bearer token and checks the route's [`Access`].
pub async fn require(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Result<Response> {
    if let Access::Roles(_) = access {
        let (headers, method) = (request.headers().clone(), request.method().clone());
        let user = match session_user(&state, &headers, &method).await? {
            Some(user) => user,
            None => {
                let token = bearer_token(&request)?;
                let access = &state.config.access;
                let client = client_address(access, &headers, request.extensions());
                let sign_in = crate::users::authenticate(&state.db, &token);
                throttle::attempt(&state.db, access, &client, sign_in).await?
            }
        };
        if !access.allows(user.role) {
            return Err(Error::Forbidden(format!(
                "the {} role may not call {} {}",
                user.role,
                request.method(),
                request.uri().path()
            )));
        }
        request.extensions_mut().insert(Caller(user));
    }
    Ok(next.run(request).await)
}

/// The web app's signed-in user, when the request has no bearer token but a session cookie.
/// Requests that change something must carry the session's CSRF token in `X-CSRF-Token`.
async fn session_user(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<User>> {
    if headers.contains_key(AUTHORIZATION) {
        return Ok(None);
    }
    let Some(id) = session::cookie(headers, session::SESSION_COOKIE) else {
        return Ok(None);
    };
    let session = session::find(&state.db, &id).await?.ok_or_else(|| {
        Error::Unauthenticated("your session has expired: sign in again at /app/sign-in".into())
    })?;
    let safe = matches!(*method, Method::GET | Method::HEAD);
    let given = headers
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !safe && !session::csrf_matches(&session.csrf, given) {
        return Err(Error::Forbidden(
            "missing or wrong X-CSRF-Token header: reload the page and try again".into(),
        ));
    }
    Ok(Some(session.user))
}

/// The token of `Authorization: Bearer <token>`. (Owned: a request body is not `Sync`, so
/// no borrow of the request may live across an await.)
fn bearer_token(request: &Request) -> Result<String> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            Error::Unauthenticated(
                "missing API token: send `Authorization: Bearer <token>` \
                 (create one with `dealdesk users add`)"
                    .into(),
            )
        })?
        .to_str()
        .map_err(|_| Error::Unauthenticated("the Authorization header is not text".into()))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| Error::Unauthenticated("use `Authorization: Bearer <token>`".into()))?;
    Ok(token.trim().to_string())
}

/// The client's address for counting failed sign-ins: the peer's IP, or the first
/// `X-Forwarded-For` entry when `access.trust_forwarded_for` says a proxy sets it.
pub fn client_address(config: &AccessConfig, headers: &HeaderMap, ext: &Extensions) -> String {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| config.trust_forwarded_for && !v.is_empty());
    match (forwarded, ext.get::<ConnectInfo<SocketAddr>>()) {
        (Some(address), _) => address.to_string(),
        (None, Some(ConnectInfo(peer))) => peer.ip().to_string(),
        (None, None) => "unknown".to_string(),
    }
}
