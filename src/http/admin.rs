//! Administration: users and tokens, storage integrity.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{AppState, Caller, ErrorBody, Json, Path};
use crate::error::Result;
use crate::jobs::Job;
use crate::users::{self, NewUser, Role, User};

/// A user to create.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUserRequest {
    /// 1 to 200 bytes of printable text, unique among the users.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 50
    )]
    pub name: String,
    pub role: Role,
    /// 1 to 100 bytes of printable text.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 25
    )]
    pub region: String,
}

/// Every user.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("token" = [])),
    responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
pub async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<User>>> {
    Ok(Json(users::list(&state.db).await?))
}

/// Creates a user; the response carries their API token, shown only this once.
#[utoipa::path(post, path = "/admin/users", tag = "admin", security(("token" = [])),
    request_body = NewUserRequest,
    responses((status = 201, body = NewUser), (status = 409, body = ErrorBody)))]
pub async fn add_user(
    State(state): State<AppState>,
    Json(req): Json<NewUserRequest>,
) -> Result<(StatusCode, Json<NewUser>)> {
    let new = users::add(&state.db, &req.name, req.role, &req.region).await?;
    Ok((StatusCode::CREATED, Json(new)))
}

/// Revokes a user and their tokens.
#[utoipa::path(post, path = "/admin/users/{name}/revoke", tag = "admin", security(("token" = [])),
    params(("name" = String, Path, description = "User name or id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn revoke_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<User>> {
    Ok(Json(users::revoke(&state.db, &name).await?))
}

/// Starts a job that re-hashes every stored upload and records corrupt or missing ones.
#[utoipa::path(post, path = "/admin/blobs/verify", tag = "admin", security(("token" = [])),
    responses((status = 202, body = Job), (status = 403, body = ErrorBody)))]
pub async fn verify_blobs(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = state
        .jobs
        .enqueue(
            crate::app::BLOB_VERIFY_JOB,
            &serde_json::json!({}),
            Some(&user.id),
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}
