//! The bid library: import, read, record outcomes, search for similar winning bids, drafts.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{AppState, Caller, ErrorBody, Json, Path};
use crate::bids::Tender;
use crate::bids::factors::Factors;
use crate::bids::{Bid, Outcome, SearchRequest, SearchResponse, StoredBid};
use crate::error::Result;
use crate::jobs::Job;

/// Adds or updates a bid (the import format of `corpus/bids/*.json`).
#[utoipa::path(post, path = "/bids", tag = "bids", security(("token" = [])),
    request_body = Bid,
    responses((status = 200, body = StoredBid), (status = 400, body = ErrorBody)))]
pub async fn put_bid(
    State(state): State<AppState>,
    Json(bid): Json<Bid>,
) -> Result<Json<StoredBid>> {
    Ok(Json(state.bids.put(&bid).await?))
}

/// One bid as stored.
#[utoipa::path(get, path = "/bids/{id}", tag = "bids", security(("token" = [])),
    params(("id" = String, Path, description = "Bid id")),
    responses((status = 200, body = StoredBid), (status = 404, body = ErrorBody)))]
pub async fn get_bid(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredBid>> {
    Ok(Json(state.bids.get(&id).await?))
}

/// An outcome to record.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    pub outcome: Outcome,
    /// The buyer's evaluation feedback, if known.
    pub feedback: Option<String>,
}

/// Records a bid's outcome (and the buyer's feedback); logged with the caller.
#[utoipa::path(post, path = "/bids/{id}/outcome", tag = "bids", security(("token" = [])),
    params(("id" = String, Path, description = "Bid id")),
    request_body = OutcomeRequest,
    responses((status = 200, body = StoredBid), (status = 404, body = ErrorBody)))]
pub async fn set_outcome(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
    Json(req): Json<OutcomeRequest>,
) -> Result<Json<StoredBid>> {
    Ok(Json(
        state
            .bids
            .set_outcome(&id, req.outcome, req.feedback.as_deref(), Some(&user.id))
            .await?,
    ))
}

/// Ranked similar past bids for a tender (won only unless the filters say otherwise), with
/// matched terms, highlighted snippets and matched fields per hit.
#[utoipa::path(post, path = "/bids/search", tag = "bids", security(("token" = [])),
    request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody)))]
pub async fn search(
    State(state): State<AppState>,
    Json(req): Json<SearchRequest>,
) -> Result<Json<SearchResponse>> {
    // Embedding the tender runs the encoder: off the async workers.
    let bids = state.bids.clone();
    let response = tokio::task::spawn_blocking(move || bids.search(&req))
        .await
        .map_err(|e| crate::error::Error::Internal(format!("bid search panicked: {e}")))??;
    Ok(Json(response))
}

/// Starts a response draft for a tender: an outline per requirement with cited bullets from
/// similar winning bids and LLM paragraphs checked against their citations. The job's result
/// is the draft, also stored as a proposed recommendation for review.
#[utoipa::path(post, path = "/bids/draft", tag = "bids", security(("token" = [])),
    request_body = Tender,
    responses((status = 202, body = Job), (status = 400, body = ErrorBody)))]
pub async fn draft(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Json(tender): Json<Tender>,
) -> Result<(StatusCode, Json<Job>)> {
    let job = crate::bids::draft::enqueue(&state.jobs, &user, tender).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Success factors for a tender: what the most similar winning bids had in common, contrasted
/// with the similar lost bids (terms, certifications, pricing, sections, buyer feedback).
#[utoipa::path(post, path = "/bids/factors", tag = "bids", security(("token" = [])),
    request_body = Tender,
    responses((status = 200, body = Factors), (status = 400, body = ErrorBody)))]
pub async fn factors(
    State(state): State<AppState>,
    Json(tender): Json<Tender>,
) -> Result<Json<Factors>> {
    Ok(Json(crate::bids::factors::factors(&state.bids, &tender)?))
}
