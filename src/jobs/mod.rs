//! Durable background jobs.
//!
//! A job is a row in the `jobs` table: `queued` → `running` → `done` | `failed`. Workers claim
//! a job — on PostgreSQL with `FOR UPDATE SKIP LOCKED`, on SQLite with a conditional `UPDATE` —
//! which also gives them a lease; while the job runs, a heartbeat renews the lease and stores progress. If the
//! process dies (even `kill -9`), the lease runs out and any worker — this process after a
//! restart, or another one — takes the job over. A job that keeps failing, or keeps killing its
//! worker, ends `failed` after `jobs.max_attempts` tries with its last error kept: nothing
//! accepted is dropped silently.
//!
//! Handlers are plain blocking functions ([`JobHandler`]) run on dedicated blocking threads, so
//! CPU-heavy work (transcription, inference) never stalls the async HTTP server.

mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::config::JobsConfig;
use crate::error::{Error, Result};
use crate::store::{Backend, Db, new_id, now_ms};

pub use worker::{WorkerPool, spawn_workers};

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// 0–100.
    pub progress: i64,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// The work behind one job kind. Runs on a blocking thread.
pub trait JobHandler: Send + Sync + 'static {
    /// Does the job; the returned JSON is stored as its result.
    fn run(&self, ctx: &JobContext) -> Result<serde_json::Value>;
}

impl<F> JobHandler for F
where
    F: Fn(&JobContext) -> Result<serde_json::Value> + Send + Sync + 'static,
{
    fn run(&self, ctx: &JobContext) -> Result<serde_json::Value> {
        self(ctx)
    }
}

/// What a running handler gets: its input, a way to report progress, and a stop signal.
pub struct JobContext {
    pub job_id: String,
    pub payload: serde_json::Value,
    /// 1 on the first try.
    pub attempt: i64,
    /// The async runtime, for database calls from the blocking thread (`runtime.block_on`).
    pub runtime: tokio::runtime::Handle,
    progress: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl JobContext {
    /// Reports progress as a fraction in `0.0..=1.0`; the heartbeat stores it.
    pub fn set_progress(&self, fraction: f32) {
        let pct = (fraction.clamp(0.0, 1.0) * 100.0).floor() as u32;
        self.progress.store(pct, Ordering::Relaxed);
    }

    /// True when the handler should stop early: the process is shutting down or the job's
    /// lease was lost. Long handlers check it between steps.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    /// Registers the handler of `kind`.
    pub fn register(&mut self, kind: &str, handler: impl JobHandler) {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
    }

    fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }
}

/// The job table.
#[derive(Clone, Debug)]
pub struct JobQueue {
    db: Db,
    lease: Duration,
    max_attempts: u32,
    max_queued: u64,
    /// Work this process admitted that is not a job yet (an upload being read): counted
    /// against `max_queued` with the queued jobs, so a burst of uploads that all arrive
    /// before the first is queued cannot all pass the check.
    admitted: Arc<AtomicU64>,
}

/// A place in the job queue held from [`JobQueue::admit`] until the job is enqueued (or the
/// request fails); dropping it gives the place back.
#[derive(Debug)]
pub struct Admission(Arc<AtomicU64>);

impl Admission {
    fn new(admitted: &Arc<AtomicU64>) -> Admission {
        admitted.fetch_add(1, Ordering::SeqCst);
        Admission(admitted.clone())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a run ended.
enum Outcome {
    Done(serde_json::Value),
    Failed(String),
    /// Stopped by shutdown before finishing: back to the queue, the try not counted.
    Released,
}

const CLAIMABLE: &str =
    "((state = 'queued' AND run_after <= $1) OR (state = 'running' AND lease_until < $1))";

impl JobQueue {
    /// The queue over `db` with the configured lease and retry limit.
    pub fn new(db: Db, config: &JobsConfig) -> JobQueue {
        JobQueue {
            db,
            lease: Duration::from_secs(config.lease_secs),
            max_attempts: config.max_attempts,
            max_queued: config.max_queued,
            admitted: Arc::default(),
        }
    }

    /// Admits one more piece of work, or refuses it while `jobs.max_queued` jobs already wait
    /// for a worker (with the work this process admitted and has not queued yet): the client
    /// is told when to come back (`Error::RateLimited`, HTTP 429 with `Retry-After`) instead
    /// of having work accepted that cannot be done soon. The wait is the time per finished
    /// job over the last ten minutes (a minute when nothing finished), between 5 and 600
    /// seconds. Hold the [`Admission`] until the job is enqueued.
    pub async fn admit(&self) -> Result<Admission> {
        // Counted before the queue is read: of two requests that race, the later sees both.
        let admission = Admission::new(&self.admitted);
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
            .fetch_one(self.db.pool())
            .await?;
        let admitted = self.admitted.load(Ordering::SeqCst);
        if waiting as u64 + admitted <= self.max_queued {
            return Ok(admission);
        }
        drop(admission);
        const WINDOW_SECS: i64 = 600;
        let finished: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('done', 'failed') AND finished_at >= $1",
        )
        .bind(now_ms() - WINDOW_SECS * 1000)
        .fetch_one(self.db.pool())
        .await?;
        let retry_after_secs = if finished > 0 {
            (WINDOW_SECS / finished).clamp(5, 600) as u64
        } else {
            60
        };
        Err(Error::RateLimited {
            message: format!(
                "{waiting} jobs are already waiting for a worker and {} more are being \
                 received (jobs.max_queued = {}): try again in about {retry_after_secs} s",
                admitted.saturating_sub(1),
                self.max_queued
            ),
            retry_after_secs,
        })
    }

    /// Accepts a job. Once this returns, the job is durable and will run.
    pub async fn enqueue(
        &self,
        kind: &str,
        payload: &serde_json::Value,
        created_by: Option<&str>,
    ) -> Result<Job> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, state, max_attempts, run_after, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, 'queued', $4, $5, $6, $5, $5)",
        )
        .bind(&id)
        .bind(kind)
        .bind(payload.to_string())
        .bind(self.max_attempts as i64)
        .bind(now)
        .bind(created_by)
        .execute(self.db.pool())
        .await?;
        // The job as inserted (a worker may claim it before a re-read could happen).
        Ok(Job {
            id,
            kind: kind.to_string(),
            payload: payload.clone(),
            state: "queued".into(),
            attempts: 0,
            max_attempts: self.max_attempts as i64,
            progress: 0,
            result: None,
            error: None,
            created_by: created_by.map(str::to_string),
            created_at: now,
            updated_at: now,
            finished_at: None,
        })
    }

    /// The job if `user` may see it: their own, a manager's region's (started by a user of
    /// their region), or any for admins; others are "not found" (their existence is not
    /// revealed), like calls.
    pub async fn get_for(&self, id: &str, user: &crate::users::User) -> Result<Job> {
        use crate::users::Role;
        let job = self.get(id).await?;
        let visible = match user.role {
            Role::Admin => true,
            _ if job.created_by.as_deref() == Some(user.id.as_str()) => true,
            Role::Manager => {
                let region: Option<String> =
                    sqlx::query_scalar("SELECT region FROM users WHERE id = $1")
                        .bind(job.created_by.as_deref())
                        .fetch_optional(self.db.pool())
                        .await?;
                region.as_deref() == Some(user.region.as_str())
            }
            Role::Rep | Role::Bid => false,
        };
        if visible {
            Ok(job)
        } else {
            Err(Error::NotFound(format!("no job {id}")))
        }
    }

    /// The job with this id.
    pub async fn get(&self, id: &str) -> Result<Job> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no job {id}")))?;
        job_from_row(&row)
    }

    /// Claims the oldest runnable job for `worker`, if any.
    async fn claim(&self, worker: &str) -> Result<Option<Job>> {
        let now = now_ms();
        // A job whose worker died on every try (it crashes the process, say) stops here.
        sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = $1, updated_at = $1, \
             error = COALESCE(error, 'the worker running it stopped (crash or kill) on every try') \
             WHERE state = 'running' AND lease_until < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .execute(self.db.pool())
        .await?;
        let lease_until = now + self.lease.as_millis() as i64;
        let claimed = match self.db.backend() {
            Backend::Postgres => self.claim_skip_locked(worker, now, lease_until).await?,
            Backend::Sqlite => self.claim_conditional(worker, now, lease_until).await?,
        };
        match claimed {
            Some(id) => self.get(&id).await.map(Some),
            None => Ok(None),
        }
    }

    /// PostgreSQL: one statement; `SKIP LOCKED` lets many workers claim different jobs at once
    /// instead of queueing on the same row lock.
    async fn claim_skip_locked(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(&format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, \
             worker = $3, updated_at = $1 WHERE id = (SELECT id FROM jobs WHERE {CLAIMABLE} \
             ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        ))
        .bind(now)
        .bind(lease_until)
        .bind(worker)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// SQLite (one writer at a time): pick the oldest candidate, then claim it with an UPDATE
    /// that repeats the condition, so only one worker's UPDATE can match.
    async fn claim_conditional(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<String>> {
        loop {
            let candidate: Option<String> = sqlx::query_scalar(&format!(
                "SELECT id FROM jobs WHERE {CLAIMABLE} ORDER BY created_at, id LIMIT 1"
            ))
            .bind(now)
            .fetch_optional(self.db.pool())
            .await?;
            let Some(id) = candidate else { return Ok(None) };
            let claimed = sqlx::query(&format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, \
                 worker = $3, updated_at = $1 WHERE id = $4 AND {CLAIMABLE}"
            ))
            .bind(now)
            .bind(lease_until)
            .bind(worker)
            .bind(&id)
            .execute(self.db.pool())
            .await?
            .rows_affected();
            if claimed == 1 {
                return Ok(Some(id));
            }
        }
    }

    /// Renews the lease and stores progress; false when the job is no longer this worker's.
    async fn heartbeat(&self, id: &str, worker: &str, progress: u32) -> Result<bool> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = $1, progress = $2, updated_at = $3 \
             WHERE id = $4 AND worker = $5 AND state = 'running'",
        )
        .bind(now + self.lease.as_millis() as i64)
        .bind(progress as i64)
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records how a run ended (only if the job is still this worker's).
    async fn finish(&self, job: &Job, worker: &str, outcome: Outcome) -> Result<()> {
        let now = now_ms();
        let query = match outcome {
            Outcome::Done(result) => sqlx::query(
                "UPDATE jobs SET state = 'done', progress = 100, result = $1, error = NULL, \
                 lease_until = NULL, finished_at = $2, updated_at = $2 \
                 WHERE id = $3 AND worker = $4 AND state = 'running'",
            )
            .bind(result.to_string())
            .bind(now),
            Outcome::Failed(error) if job.attempts >= job.max_attempts => sqlx::query(
                "UPDATE jobs SET state = 'failed', error = $1, lease_until = NULL, \
                 finished_at = $2, updated_at = $2 \
                 WHERE id = $3 AND worker = $4 AND state = 'running'",
            )
            .bind(error)
            .bind(now),
            Outcome::Failed(error) => {
                // Exponential back-off: 2 s, 4 s, 8 s ... capped at 5 minutes.
                let delay = 1000i64 << job.attempts.clamp(1, 8);
                sqlx::query(
                    "UPDATE jobs SET state = 'queued', error = $1, lease_until = NULL, \
                     run_after = $2, updated_at = $2 \
                     WHERE id = $3 AND worker = $4 AND state = 'running'",
                )
                .bind(error)
                .bind(now + delay.min(300_000))
            }
            Outcome::Released => sqlx::query(
                "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_until = NULL, \
                 run_after = $1, updated_at = $1 WHERE id = $2 AND worker = $3 AND state = 'running'",
            )
            .bind(now),
        };
        query
            .bind(&job.id)
            .bind(worker)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<Job> {
    let json = |col: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(col)?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| Error::Internal(format!("jobs.{col} is not JSON: {e}")))
        })
        .transpose()
    };
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: json("payload")?.unwrap_or(serde_json::Value::Null),
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        progress: row.try_get("progress")?,
        result: json("result")?,
        error: row.try_get("error")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
