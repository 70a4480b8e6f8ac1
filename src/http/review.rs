//! Review of AI recommendations, the audit trail and the circuit breakers.

use axum::Extension;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{AppState, Caller, ErrorBody, Json, Path, Query};
use crate::error::Result;
use crate::review::audit::{self, Event, Verification};
use crate::review::breaker::{self, Tripped};
use crate::review::metrics::{self, AiMetrics};
use crate::review::{self, Decision, Filter, Kind, Recommendation, Rules};
use crate::users::Role;

/// The review queue: what the caller may see, escalated first, then oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Queue {
    pub items: Vec<Recommendation>,
    /// Kinds the breaker switched to manual review.
    pub manual_kinds: Vec<Tripped>,
}

/// The caller's review queue (a rep: their own items; a manager: their region; an admin: all).
/// Triages first, so rules edited a moment ago already apply.
#[utoipa::path(get, path = "/reviews", tag = "review", security(("token" = [])),
    params(Filter),
    responses((status = 200, body = Queue), (status = 400, body = ErrorBody)))]
pub async fn queue(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Query(filter): Query<Filter>,
) -> Result<Json<Queue>> {
    review::triage(&state.db, &state.rules.current()).await?;
    Ok(Json(Queue {
        items: review::list(&state.db, &user, &filter).await?,
        manual_kinds: breaker::tripped(&state.db).await?,
    }))
}

/// One recommendation the caller may see.
#[utoipa::path(get, path = "/recommendations/{id}", tag = "review", security(("token" = [])),
    params(("id" = String, Path, description = "Recommendation id")),
    responses((status = 200, body = Recommendation), (status = 404, body = ErrorBody)))]
pub async fn recommendation(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Recommendation>> {
    Ok(Json(review::get(&state.db, &user, &id).await?))
}

/// Approve, override (with a replacement and a reason) or reject a proposal.
#[utoipa::path(post, path = "/recommendations/{id}/review", tag = "review", security(("token" = [])),
    params(("id" = String, Path, description = "Recommendation id")),
    request_body = Decision,
    responses((status = 200, body = Recommendation), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
    Json(decision): Json<Decision>,
) -> Result<Json<Recommendation>> {
    review::triage(&state.db, &state.rules.current()).await?;
    Ok(Json(
        review::decide(&state.db, &user, &id, &decision).await?,
    ))
}

/// Which audit events to list.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// `kind:id` (e.g. `deal:…`) or a recommendation id. Managers must give one in their region.
    pub subject: Option<String>,
    /// At most this many (default 200, at most 5000).
    pub limit: Option<i64>,
}

/// Audit events of a subject or recommendation (managers: within their region; admins: any,
/// or the latest events when no subject is given).
#[utoipa::path(get, path = "/audit", tag = "review", security(("token" = [])),
    params(AuditQuery),
    responses((status = 200, body = Vec<Event>), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such subject in the caller's region")))]
pub async fn audit_events(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<Event>>> {
    Ok(Json(
        review::audit_scoped(
            &state.db,
            &user,
            query.subject.as_deref(),
            query.limit.unwrap_or(200),
        )
        .await?,
    ))
}

/// Recomputes the audit hash chain and names the first broken event.
#[utoipa::path(get, path = "/audit/verify", tag = "review", security(("token" = [])),
    responses((status = 200, body = Verification), (status = 403, body = ErrorBody)))]
pub async fn verify_audit(State(state): State<AppState>) -> Result<Json<Verification>> {
    Ok(Json(audit::verify(&state.db).await?))
}

/// The review rules in force, and why an edit of the rules file was refused, if it was.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RulesInForce {
    #[schema(value_type = Object)]
    pub rules: Rules,
    pub error: Option<String>,
}

/// The review rules in force.
#[utoipa::path(get, path = "/review/rules", tag = "review", security(("token" = [])),
    responses((status = 200, body = RulesInForce)))]
pub async fn rules(State(state): State<AppState>) -> Json<RulesInForce> {
    Json(RulesInForce {
        rules: state.rules.current().as_ref().clone(),
        error: state.rules.error(),
    })
}

/// Re-enables a kind the breaker switched to manual.
#[utoipa::path(post, path = "/review/breakers/{kind}/reset", tag = "review", security(("token" = [])),
    params(("kind" = String, Path, description = "commitment | objection_answer | tender_draft | quote")),
    responses((status = 200, body = Vec<Tripped>), (status = 404, body = ErrorBody)))]
pub async fn reset_breaker(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(kind): Path<String>,
) -> Result<Json<Vec<Tripped>>> {
    breaker::reset(&state.db, Some(&user.id), Kind::parse(&kind)?).await?;
    Ok(Json(breaker::tripped(&state.db).await?))
}

/// The period and scope of `/metrics/ai`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct MetricsQuery {
    /// First day, YYYY-MM-DD (default: 30 days ago).
    pub from: Option<String>,
    /// Day after the last, YYYY-MM-DD (default: tomorrow).
    pub to: Option<String>,
    /// Admins may pick a region; managers always get their own.
    pub region: Option<String>,
}

/// Whether the AI helps: acceptance, override and review time per kind, and quote outcomes
/// when the recommendation was followed versus overridden.
#[utoipa::path(get, path = "/metrics/ai", tag = "review", security(("token" = [])),
    params(MetricsQuery),
    responses((status = 200, body = AiMetrics), (status = 400, body = ErrorBody)))]
pub async fn ai_metrics(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Query(query): Query<MetricsQuery>,
) -> Result<Json<AiMetrics>> {
    const DAY_MS: i64 = 86_400_000;
    let now = crate::store::now_ms();
    let from = match &query.from {
        Some(d) => metrics::date_ms(d, "from")?,
        None => now - 30 * DAY_MS,
    };
    let to = match &query.to {
        Some(d) => metrics::date_ms(d, "to")?,
        None => now + DAY_MS,
    };
    let region = match user.role {
        Role::Admin => query.region,
        _ => Some(user.region),
    };
    Ok(Json(
        metrics::ai_metrics(&state.db, region.as_deref(), from, to).await?,
    ))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "system", security(("token" = [])),
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text format)",
        content_type = "application/openmetrics-text", body = String)))]
pub async fn prometheus(
    State(state): State<AppState>,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String)> {
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::exposition(&state.db).await?,
    ))
}
