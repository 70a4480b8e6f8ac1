//! Health, readiness, the API document, and the caller's own view (`/me`, `/jobs`).

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::OpenApi;

use super::{ApiDoc, AppState, Caller, ErrorBody, Json, Path};
use crate::error::Result;
use crate::jobs::Job;
use crate::models::ModelStatus;
use crate::review::breaker::{self, Tripped};
use crate::users::User;

/// Liveness.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Readiness of each dependency.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub models: Vec<ModelStatus>,
    /// "ok", or why the last edit of the review rules file was refused (the previous rules
    /// stay in force, so this does not make the service unready).
    pub review_rules: String,
    /// Recommendation kinds the circuit breaker switched to manual review.
    pub manual_kinds: Vec<Tripped>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The database answers and every default model is present and loadable.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = match state.db.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let (config, manifest) = (state.config.clone(), state.manifest.clone());
    let models = tokio::task::spawn_blocking(move || crate::models::readiness(&config, &manifest))
        .await
        .unwrap_or_default();
    let ready = database == "ok" && !models.is_empty() && models.iter().all(|m| m.ok);
    let review_rules = state.rules.error().unwrap_or_else(|| "ok".into());
    let manual_kinds = breaker::tripped(&state.db).await.unwrap_or_default();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            database,
            models,
            review_rules,
            manual_kinds,
        }),
    )
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The signed-in user.
#[utoipa::path(get, path = "/me", tag = "system", security(("token" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub async fn me(Extension(Caller(user)): Extension<Caller>) -> Json<User> {
    Json(user)
}

/// A background job's state and progress. Visible to whoever started it, to the managers of
/// their region, and to admins.
#[utoipa::path(get, path = "/jobs/{id}", tag = "system", security(("token" = [])),
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn job(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Job>> {
    Ok(Json(state.jobs.get_for(&id, &user).await?))
}
