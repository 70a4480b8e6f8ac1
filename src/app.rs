//! Wiring: builds the shared state from the configuration, registers the job handlers, and runs
//! the API server and the workers until a shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::engines::Engines;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::jobs::{JobContext, JobQueue, Registry, spawn_workers};
use crate::models::Manifest;
use crate::review;
use crate::store::Db;
use crate::store::blobs::BlobStore;

/// How often each process applies other processes' bid writes to its own index.
const FOLLOW_PERIOD: Duration = Duration::from_millis(250);

/// Job kind: re-hash every stored upload (`POST /admin/blobs/verify`).
pub const BLOB_VERIFY_JOB: &str = "blob.verify";

/// Opens the database (migrating it) and builds the state every handler and job shares.
pub async fn build_state(config: Config) -> Result<AppState> {
    let db = Db::open(&config).await?;
    let manifest = Arc::new(Manifest::load(&config)?);
    let rules = review::rules_source(&config)?;
    let bids = crate::bids::Library::open(&config, db.clone()).await?;
    let config = Arc::new(config);
    Ok(AppState {
        bids,
        jobs: JobQueue::new(db.clone(), &config.jobs),
        blobs: BlobStore::from_config(&config, db.clone()),
        engines: Engines::new(config.clone(), manifest.clone()),
        rules,
        db,
        manifest,
        config,
    })
}

/// The handler of every job kind.
pub fn job_registry(state: &AppState) -> Registry {
    let mut registry = Registry::default();
    let blobs = state.blobs.clone();
    registry.register(BLOB_VERIFY_JOB, move |ctx: &JobContext| {
        let report = blobs.verify_all(&ctx.runtime, &|p| ctx.set_progress(p))?;
        Ok(serde_json::to_value(report).expect("report serializes"))
    });
    let (bids, engines, config, manifest) = (
        state.bids.clone(),
        state.engines.clone(),
        state.config.clone(),
        state.manifest.clone(),
    );
    registry.register(crate::bids::draft::DRAFT_JOB, move |ctx: &JobContext| {
        let job: crate::bids::draft::DraftJob = serde_json::from_value(ctx.payload.clone())
            .map_err(|e| Error::InvalidInput(format!("bad draft job payload: {e}")))?;
        let draft =
            crate::bids::draft::draft(&bids, &engines, &config, &manifest, &job, &ctx.runtime)?;
        Ok(serde_json::to_value(draft).expect("a draft serializes"))
    });
    let analyzer = crate::calls::pipeline::Analyzer {
        db: state.db.clone(),
        blobs: state.blobs.clone(),
        engines: state.engines.clone(),
        config: state.config.clone(),
    };
    registry.register(
        crate::calls::pipeline::ANALYZE_JOB,
        move |ctx: &JobContext| analyzer.run(ctx),
    );
    registry
}

/// Runs the API and `jobs.workers` workers until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config) -> Result<()> {
    let listen = config.server.listen.clone();
    let state = build_state(config).await?;
    let listener = TcpListener::bind(&listen).await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot listen on {listen}: {e}; set server.listen or DEALDESK_SERVER_LISTEN"
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let stop_rx = stop_on_signal();
    let workers = start_workers(&state, stop_rx.clone());
    tokio::spawn(review::run_governance(
        state.db.clone(),
        state.rules.clone(),
        state.config.clone(),
        stop_rx.clone(),
    ));
    tracing::info!(%addr, workers = state.config.jobs.workers, "dealdesk is serving");
    // Scripts and tests read this line to learn the URL (the port may be chosen by the OS).
    println!("dealdesk listening on http://{addr}");
    let served = crate::http::serve(listener, state, stop_rx).await;
    workers.join().await;
    served
}

/// Runs `jobs.workers` workers and nothing else until SIGINT/SIGTERM: a worker process beside
/// API processes on a shared database (`dealdesk worker`). Each running job finishes or is
/// released for another worker before it exits.
pub async fn work(config: Config) -> Result<()> {
    let state = build_state(config).await?;
    if state.config.jobs.workers == 0 {
        return Err(Error::Config(
            "jobs.workers is 0, so `dealdesk worker` would do nothing; set it (or --workers) to 1 or more".into(),
        ));
    }
    let workers = start_workers(&state, stop_on_signal());
    tracing::info!(
        workers = state.config.jobs.workers,
        "dealdesk worker is running"
    );
    // Scripts and tests read this line to know the worker is up.
    println!(
        "dealdesk worker running {} workers",
        state.config.jobs.workers
    );
    workers.join().await;
    Ok(())
}

/// The job workers of this process, with every job kind's handler, and the follower that keeps
/// its bid index current (drafting jobs search it too).
fn start_workers(state: &AppState, stop: watch::Receiver<bool>) -> crate::jobs::WorkerPool {
    tokio::spawn(
        state
            .bids
            .clone()
            .follow_changes(FOLLOW_PERIOD, stop.clone()),
    );
    let jobs = &state.config.jobs;
    spawn_workers(
        state.jobs.clone(),
        job_registry(state),
        jobs.workers,
        Duration::from_millis(jobs.poll_ms),
        stop,
    )
}

/// A channel that turns true on SIGINT/SIGTERM.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    stop_rx
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
