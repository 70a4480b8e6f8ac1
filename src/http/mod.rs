//! The HTTP API (axum). The only module that knows about HTTP: handlers are thin, parse the
//! request, call a domain module and shape the response. Every route is declared once in
//! [`routes`] with the roles allowed to call it; the router, the role check and the
//! access-matrix test are all generated from that table.

mod admin;
mod analytics;
mod auth;
mod bids;
pub mod calls;
mod error;
mod headers;
mod openapi;
mod quotes;
mod review;
mod system;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post, put};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use auth::{ADMIN, ANY_ROLE, Access, BID_TEAM, CALLS, Caller, MANAGERS, client_address};
pub use error::{ErrorBody, Json, Path, Query, status_of};
pub use headers::{CSP, SECURITY_HEADERS};

use crate::config::Config;
use crate::engines::Engines;
use crate::error::{Error, Result};
use crate::jobs::JobQueue;
use crate::models::Manifest;
use crate::review::RulesSource;
use crate::store::Db;
use crate::store::blobs::BlobStore;
use openapi::ErrorResponses;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub jobs: JobQueue,
    pub blobs: BlobStore,
    pub manifest: Arc<Manifest>,
    /// The models, loaded on first use and shared by handlers and jobs.
    pub engines: Engines,
    /// The review rules in force (re-read when their file changes).
    pub rules: RulesSource,
    /// The bid library (database rows and their search index).
    pub bids: crate::bids::Library,
}

/// One route: method, path (axum syntax) and who may call it.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// Every route of the API with its handler. The single source of truth for routing and access.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Method as M;
    let spec = |method: Method, path: &'static str, access: Access| RouteSpec {
        method,
        path,
        access,
    };
    vec![
        (
            spec(M::GET, "/healthz", Access::Public),
            get(system::healthz),
        ),
        (spec(M::GET, "/readyz", Access::Public), get(system::readyz)),
        (
            spec(M::GET, "/openapi.json", Access::Public),
            get(system::openapi),
        ),
        (spec(M::GET, "/me", ANY_ROLE), get(system::me)),
        (spec(M::GET, "/jobs/{id}", ANY_ROLE), get(system::job)),
        (spec(M::GET, "/admin/users", ADMIN), get(admin::list_users)),
        (spec(M::POST, "/admin/users", ADMIN), post(admin::add_user)),
        (
            spec(M::POST, "/admin/users/{name}/revoke", ADMIN),
            post(admin::revoke_user),
        ),
        (
            spec(M::POST, "/admin/blobs/verify", ADMIN),
            post(admin::verify_blobs),
        ),
        (spec(M::GET, "/reviews", ANY_ROLE), get(review::queue)),
        (
            spec(M::GET, "/recommendations/{id}", ANY_ROLE),
            get(review::recommendation),
        ),
        (
            spec(M::POST, "/recommendations/{id}/review", ANY_ROLE),
            post(review::decide),
        ),
        (spec(M::GET, "/audit", MANAGERS), get(review::audit_events)),
        (
            spec(M::GET, "/audit/verify", ADMIN),
            get(review::verify_audit),
        ),
        (spec(M::GET, "/review/rules", MANAGERS), get(review::rules)),
        (
            spec(M::POST, "/review/breakers/{kind}/reset", ADMIN),
            post(review::reset_breaker),
        ),
        (
            spec(M::GET, "/metrics/ai", MANAGERS),
            get(review::ai_metrics),
        ),
        (spec(M::GET, "/metrics", ADMIN), get(review::prometheus)),
        (
            spec(M::POST, "/deals", quotes::SELLERS),
            post(quotes::add_deal),
        ),
        (
            spec(M::POST, "/deals/{id}/outcome", quotes::SELLERS),
            post(quotes::deal_outcome),
        ),
        (
            spec(M::POST, "/quotes/recommend", quotes::SELLERS),
            post(quotes::recommend),
        ),
        (spec(M::POST, "/quotes/fit", MANAGERS), post(quotes::fit)),
        (
            spec(M::GET, "/quotes/fairness", MANAGERS),
            get(quotes::fairness),
        ),
        (spec(M::POST, "/bids", BID_TEAM), post(bids::put_bid)),
        (spec(M::GET, "/bids/{id}", BID_TEAM), get(bids::get_bid)),
        (spec(M::POST, "/bids/search", BID_TEAM), post(bids::search)),
        (spec(M::POST, "/bids/draft", BID_TEAM), post(bids::draft)),
        (
            spec(M::POST, "/bids/factors", BID_TEAM),
            post(bids::factors),
        ),
        (
            spec(M::POST, "/bids/{id}/outcome", BID_TEAM),
            post(bids::set_outcome),
        ),
        (
            // The recording is streamed to the blob store, which enforces
            // server.max_upload_bytes instead of the JSON body limit.
            spec(M::POST, "/calls", CALLS),
            post(calls::upload).layer(DefaultBodyLimit::disable()),
        ),
        (spec(M::GET, "/calls", CALLS), get(calls::list)),
        (
            spec(M::POST, "/calls/import-transcript", CALLS),
            post(calls::import_transcript),
        ),
        (spec(M::GET, "/calls/{id}", CALLS), get(calls::get)),
        (
            spec(M::GET, "/calls/{id}/transcript", CALLS),
            get(calls::transcript),
        ),
        (
            spec(M::GET, "/calls/{id}/insights", CALLS),
            get(calls::insights),
        ),
        (
            spec(M::GET, "/calls/{id}/tasks", CALLS),
            get(calls::list_tasks),
        ),
        (
            spec(M::GET, "/calls/{id}/tasks.csv", CALLS),
            get(calls::tasks_csv),
        ),
        (
            spec(M::GET, "/calls/{id}/tasks.ics", CALLS),
            get(calls::tasks_ics),
        ),
        (
            spec(M::POST, "/calls/{id}/tasks/{task}", CALLS),
            post(calls::update_task),
        ),
        (
            spec(M::GET, "/calls/{id}/analytics", CALLS),
            get(analytics::call),
        ),
        (
            spec(M::GET, "/analytics/calls", CALLS),
            get(analytics::range),
        ),
        (
            spec(M::POST, "/calls/search", CALLS),
            post(analytics::search),
        ),
        (
            spec(M::GET, "/calls/{id}/recording", CALLS),
            get(calls::recording),
        ),
        (
            spec(M::PUT, "/calls/{id}/speakers", CALLS),
            put(calls::relabel_speakers),
        ),
    ]
}

/// The route table without handlers, for documentation and tests.
pub fn route_table() -> Vec<RouteSpec> {
    routes().into_iter().map(|(spec, _)| spec).collect()
}

/// The application's router with every layer applied.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (spec, handler) in routes() {
        let guarded = handler.route_layer(from_fn_with_state(
            (state.clone(), spec.access),
            auth::require,
        ));
        router = router.route(spec.path, guarded);
    }
    // The web app's pages share this router (and its layers).
    router = router.merge(crate::web::router(&state));
    router
        .fallback(|| async { Error::NotFound("no such route; see /openapi.json".into()) })
        .method_not_allowed_fallback(|| async {
            Error::MethodNotAllowed(
                "this route does not take that method; see /openapi.json".into(),
            )
        })
        .layer(DefaultBodyLimit::max(
            state.config.server.max_body_bytes as usize,
        ))
        .layer(axum::middleware::map_response(headers::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "dealdesk", description = "Self-hosted AI sales assistant API. Authenticate with `Authorization: Bearer <token>`."),
    paths(
        system::healthz,
        system::readyz,
        system::openapi,
        system::me,
        system::job,
        admin::list_users,
        admin::add_user,
        admin::revoke_user,
        admin::verify_blobs,
        review::queue,
        review::recommendation,
        review::decide,
        review::audit_events,
        review::verify_audit,
        review::rules,
        review::reset_breaker,
        review::ai_metrics,
        review::prometheus,
        quotes::add_deal,
        quotes::deal_outcome,
        quotes::recommend,
        quotes::fit,
        quotes::fairness,
        bids::put_bid,
        bids::get_bid,
        bids::set_outcome,
        bids::search,
        bids::draft,
        bids::factors,
        calls::upload,
        calls::list,
        calls::import_transcript,
        calls::get,
        calls::transcript,
        calls::insights,
        calls::list_tasks,
        calls::tasks_csv,
        calls::tasks_ics,
        calls::update_task,
        analytics::call,
        analytics::range,
        analytics::search,
        calls::recording,
        calls::relabel_speakers
    ),
    modifiers(&BearerAuth, &ErrorResponses)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Serves the API on `listener` until `shutdown` turns true, then lets in-flight requests
/// finish for up to `server.shutdown_grace_secs`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
    let stopping = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(stopping(shutdown.clone()))
        .into_future();
    tokio::select! {
        result = server => result.map_err(|e| Error::Internal(format!("HTTP server failed: {e}"))),
        _ = async { stopping(shutdown).await; tokio::time::sleep(grace).await } => {
            tracing::warn!("requests still running after the shutdown grace period were cut");
            Ok(())
        }
    }
}
