//! Quote recommender: deals and outcomes, model fitting, recommendations, fairness.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;

use super::{Access, AppState, Caller, ErrorBody, Json, Path};
use crate::error::Result;
use crate::quotes::deals::{NewDeal, OutcomeUpdate};
use crate::quotes::fairness::FairnessReport;
use crate::quotes::recommend::{DealInput, Recommendation};
use crate::quotes::service::{self, Actor};
use crate::quotes::store::{Deal, ModelInfo};
use crate::users::{Role, User};

/// Reps and managers record deals and ask for quotes (admins too).
pub const SELLERS: Access = Access::Roles(&[Role::Rep, Role::Manager, Role::Admin]);

fn actor(user: &User) -> Actor<'_> {
    Actor::of(user)
}

/// Records a deal: open, or closed with its outcome (a closed one may trigger a refit).
#[utoipa::path(post, path = "/deals", tag = "quotes", security(("token" = [])),
    request_body = NewDeal,
    responses((status = 201, body = Deal), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_deal(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Json(deal): Json<NewDeal>,
) -> Result<(StatusCode, Json<Deal>)> {
    let deal = service::record_deal(&state.db, &state.config, actor(&user), deal).await?;
    Ok((StatusCode::CREATED, Json(deal)))
}

/// Records the outcome of an open deal (won or lost, with the final price).
#[utoipa::path(post, path = "/deals/{id}/outcome", tag = "quotes", security(("token" = [])),
    params(("id" = String, Path, description = "Deal id")),
    request_body = OutcomeUpdate,
    responses((status = 200, body = Deal), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deal_outcome(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
    Json(update): Json<OutcomeUpdate>,
) -> Result<Json<Deal>> {
    Ok(Json(
        service::record_outcome(&state.db, &state.config, actor(&user), &id, update).await?,
    ))
}

/// Fits a new model version on every closed deal.
#[utoipa::path(post, path = "/quotes/fit", tag = "quotes", security(("token" = [])),
    responses((status = 201, body = ModelInfo), (status = 400, body = ErrorBody)))]
pub async fn fit(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
) -> Result<(StatusCode, Json<ModelInfo>)> {
    let info = service::fit(&state.db, &state.config, actor(&user)).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The win-probability curve, the recommended discount within guardrails, its interval,
/// explanation and similar past deals. Above the approval threshold it is recorded for review.
#[utoipa::path(post, path = "/quotes/recommend", tag = "quotes", security(("token" = [])),
    request_body = DealInput,
    responses((status = 200, body = Recommendation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn recommend(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Json(deal): Json<DealInput>,
) -> Result<Json<Recommendation>> {
    Ok(Json(
        service::recommend(&state.db, &state.config, actor(&user), deal).await?,
    ))
}

/// Gaps in recommended discount and win probability across regions and segments for matched
/// deals, flagged against the rules' bounds.
#[utoipa::path(get, path = "/quotes/fairness", tag = "quotes", security(("token" = [])),
    responses((status = 200, body = FairnessReport), (status = 404, body = ErrorBody)))]
pub async fn fairness(State(state): State<AppState>) -> Result<Json<FairnessReport>> {
    Ok(Json(service::fairness(&state.db, &state.config).await?))
}
