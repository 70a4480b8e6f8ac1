//! Who is calling: bearer-token authentication and the per-route role check.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::error::{Error, Result};
use crate::users::{Role, User};

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
        let token = bearer_token(&request)?;
        let user = crate::users::authenticate(&state.db, &token).await?;
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
