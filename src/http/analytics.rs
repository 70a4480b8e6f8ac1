//! Call analytics and search across calls. A rep sees their own calls, a manager their
//! region's, an admin all — the same scope as `GET /calls`.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};

use super::{AppState, Caller, ErrorBody, Json, Path};
use crate::calls::analytics::{self, CallAnalytics, Range, TeamAnalytics};
use crate::calls::search::{self, SearchRequest, SearchResponse};
use crate::calls::trackers::Trackers;
use crate::error::{Error, Result};

/// Talk ratio per participant and side, longest monologue, customer questions, speaker
/// switches per minute, silence share, and where each topic tracker fired.
#[utoipa::path(get, path = "/calls/{id}/analytics", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = CallAnalytics), (status = 404, body = ErrorBody)))]
pub async fn call(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<CallAnalytics>> {
    let trackers = Trackers::load(&state.config)?;
    Ok(Json(
        analytics::for_call(&state.db, &user, &trackers, &id).await?,
    ))
}

/// The same metrics over the calls of a rep (or of everyone the caller may see) in a date
/// range, with objection categories and commitments kept and overdue, and a summary per rep.
#[utoipa::path(get, path = "/analytics/calls", tag = "calls", security(("token" = [])),
    params(Range),
    responses((status = 200, body = TeamAnalytics), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such rep")))]
pub async fn range(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    range: std::result::Result<Query<Range>, QueryRejection>,
) -> Result<Json<TeamAnalytics>> {
    let Query(range) = range.map_err(|e| {
        Error::InvalidInput(format!(
            "{e}; use ?rep=NAME&from=YYYY-MM-DD&to=YYYY-MM-DD (all optional)"
        ))
    })?;
    let trackers = Trackers::load(&state.config)?;
    Ok(Json(
        analytics::for_range(&state.db, &user, &trackers, &range).await?,
    ))
}

/// Finds transcript segments in the caller's calls (English or Mandarin query), filtered by
/// rep, customer, dates, objection category or tracker; each hit links to its moment.
#[utoipa::path(post, path = "/calls/search", tag = "calls", security(("token" = [])),
    request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such rep")))]
pub async fn search(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Json(req): Json<SearchRequest>,
) -> Result<Json<SearchResponse>> {
    Ok(Json(
        search::search(&state.db, &state.config, &user, &req).await?,
    ))
}
