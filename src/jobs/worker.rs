//! The worker pool: async tasks that claim jobs and run their handlers on blocking threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Job, JobContext, JobQueue, Outcome, Registry};

/// Running workers; [`WorkerPool::join`] waits for them after shutdown was signalled.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Waits for every worker to stop.
    pub async fn join(self) {
        for h in self.handles {
            let _ = h.await;
        }
    }
}

/// Starts `count` workers that poll every `poll` until `shutdown` turns true.
pub fn spawn_workers(
    queue: JobQueue,
    registry: Registry,
    count: usize,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
) -> WorkerPool {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let handles = (0..count)
        .map(|i| {
            let worker = format!(
                "{host}:{}:{i}:{}",
                std::process::id(),
                crate::store::new_id()
            );
            let (queue, registry, shutdown) = (queue.clone(), registry.clone(), shutdown.clone());
            tokio::spawn(work_loop(queue, registry, worker, poll, shutdown))
        })
        .collect();
    WorkerPool { handles }
}

async fn work_loop(
    queue: JobQueue,
    registry: Registry,
    worker: String,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match queue.claim(&worker).await {
            Ok(Some(job)) => run_one(&queue, &registry, &worker, job, &mut shutdown).await,
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker, error = %e, "cannot claim a job; retrying");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

async fn run_one(
    queue: &JobQueue,
    registry: &Registry,
    worker: &str,
    job: Job,
    shutdown: &mut watch::Receiver<bool>,
) {
    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, attempt = job.attempts);
    let _enter = span.enter();
    let Some(handler) = registry.get(&job.kind) else {
        let error = format!(
            "no handler for job kind {:?} in this version of dealdesk",
            job.kind
        );
        let _ = queue
            .finish(
                &Job {
                    attempts: job.max_attempts,
                    ..job.clone()
                },
                worker,
                Outcome::Failed(error),
            )
            .await;
        return;
    };
    tracing::info!("job started");
    let progress = Arc::new(AtomicU32::new(job.progress as u32));
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = JobContext {
        job_id: job.id.clone(),
        payload: job.payload.clone(),
        attempt: job.attempts,
        runtime: tokio::runtime::Handle::current(),
        progress: progress.clone(),
        stop: stop.clone(),
    };
    let mut task = tokio::task::spawn_blocking(move || handler.run(&ctx));
    let beat = (queue.lease / 3).max(Duration::from_millis(200));
    let mut shutting_down = false;
    let result = loop {
        tokio::select! {
            result = &mut task => break result,
            _ = tokio::time::sleep(beat) => {
                match queue.heartbeat(&job.id, worker, progress.load(Ordering::Relaxed)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("lost the job's lease; stopping it");
                        stop.store(true, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    let outcome = match result {
        Ok(Ok(value)) => Outcome::Done(value),
        Ok(Err(_)) | Err(_) if shutting_down => Outcome::Released,
        Ok(Err(e)) => Outcome::Failed(e.to_string()),
        Err(join) => Outcome::Failed(format!("the job's handler panicked: {join}")),
    };
    match &outcome {
        Outcome::Done(_) => tracing::info!("job done"),
        Outcome::Failed(e) => tracing::warn!(error = %e, "job failed"),
        Outcome::Released => tracing::info!("job released for a later run (shutdown)"),
    }
    if let Err(e) = queue.finish(&job, worker, outcome).await {
        tracing::error!(error = %e, "cannot record the job's outcome; its lease will expire and it will run again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JobsConfig;
    use crate::error::Error;

    async fn queue(lease_secs: u64, max_attempts: u32) -> (tempfile::TempDir, JobQueue) {
        let (dir, db) = crate::store::temp_db().await;
        let config = JobsConfig {
            lease_secs,
            max_attempts,
            ..JobsConfig::default()
        };
        (dir, JobQueue::new(db, &config))
    }

    async fn wait_for(queue: &JobQueue, id: &str, state: &str) -> Job {
        for _ in 0..600 {
            let job = queue.get(id).await.unwrap();
            if job.state == state {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "job {id} never reached {state}: {:?}",
            queue.get(id).await.unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_work_with_the_recent_pace_as_retry_after() {
        let (_dir, db) = crate::store::temp_db().await;
        let config = JobsConfig {
            max_queued: 2,
            ..JobsConfig::default()
        };
        let queue = JobQueue::new(db, &config);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let _place = queue.admit().await.unwrap();
            ids.push(enqueue_sum(&queue).await);
        }
        // Nothing finished lately: a minute.
        assert_eq!(refusal_wait(&queue).await, 60);
        // Once the waiting jobs are done there is room again; four done in the last ten
        // minutes make the wait 150 s when the queue is full again.
        for _ in 0..2 {
            ids.push(enqueue_sum(&queue).await);
        }
        let mut registry = Registry::default();
        registry.register("sum", |_: &JobContext| Ok(serde_json::json!({})));
        let (tx, rx) = watch::channel(false);
        let pool = spawn_workers(queue.clone(), registry, 1, Duration::from_millis(10), rx);
        for id in &ids {
            wait_for(&queue, id, "done").await;
        }
        tx.send(true).unwrap();
        pool.join().await;
        // Work admitted and not queued yet (uploads being received) takes its place at once,
        // so a burst cannot all pass before the first is queued; a place given back is free.
        let first = queue.admit().await.unwrap();
        let second = queue.admit().await.unwrap();
        assert!(matches!(
            queue.admit().await,
            Err(Error::RateLimited { .. })
        ));
        drop((first, second));
        for _ in 0..2 {
            enqueue_sum(&queue).await;
        }
        assert_eq!(refusal_wait(&queue).await, 150);
    }

    /// Enqueues a `sum` job past any limit (`enqueue` does not check the room); its id.
    async fn enqueue_sum(queue: &JobQueue) -> String {
        queue
            .enqueue("sum", &serde_json::json!({}), None)
            .await
            .unwrap()
            .id
    }

    /// The `Retry-After` of a full queue's refusal.
    async fn refusal_wait(queue: &JobQueue) -> u64 {
        match queue.admit().await {
            Err(Error::RateLimited {
                retry_after_secs, ..
            }) => retry_after_secs,
            other => panic!("a full queue must refuse: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_to_done_with_their_result_and_progress() {
        let (_dir, queue) = queue(5, 3).await;
        let mut registry = Registry::default();
        registry.register("sum", |ctx: &JobContext| {
            ctx.set_progress(0.5);
            let xs: Vec<i64> = serde_json::from_value(ctx.payload["xs"].clone()).unwrap();
            Ok(serde_json::json!({ "sum": xs.iter().sum::<i64>() }))
        });
        let (tx, rx) = watch::channel(false);
        let pool = spawn_workers(queue.clone(), registry, 2, Duration::from_millis(10), rx);
        let job = queue
            .enqueue("sum", &serde_json::json!({"xs": [1, 2, 3]}), None)
            .await
            .unwrap();
        assert_eq!(job.state, "queued");
        let done = wait_for(&queue, &job.id, "done").await;
        assert_eq!(done.result, Some(serde_json::json!({"sum": 6})));
        assert_eq!((done.progress, done.attempts), (100, 1));
        tx.send(true).unwrap();
        pool.join().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_jobs_retry_then_fail_keeping_the_error() {
        let (_dir, queue) = queue(5, 2).await;
        let mut registry = Registry::default();
        registry.register("boom", |ctx: &JobContext| {
            Err(Error::InvalidInput(format!(
                "bad input on try {}",
                ctx.attempt
            )))
        });
        registry.register(
            "panic",
            |_: &JobContext| -> crate::Result<serde_json::Value> { panic!("handler bug") },
        );
        let (tx, rx) = watch::channel(false);
        let pool = spawn_workers(queue.clone(), registry, 1, Duration::from_millis(10), rx);
        let boom = queue
            .enqueue("boom", &serde_json::json!({}), None)
            .await
            .unwrap();
        let unknown = queue
            .enqueue("nope", &serde_json::json!({}), None)
            .await
            .unwrap();
        let panics = queue
            .enqueue("panic", &serde_json::json!({}), None)
            .await
            .unwrap();
        // The second try waits out a 2 s back-off.
        let failed = wait_for(&queue, &boom.id, "failed").await;
        assert_eq!(failed.attempts, 2);
        assert_eq!(failed.error.as_deref(), Some("bad input on try 2"));
        let failed = wait_for(&queue, &unknown.id, "failed").await;
        assert!(failed.error.unwrap().contains("no handler"));
        let failed = wait_for(&queue, &panics.id, "failed").await;
        assert!(failed.error.unwrap().contains("panicked"));
        tx.send(true).unwrap();
        pool.join().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_job_is_taken_over_after_its_lease() {
        let (_dir, queue) = queue(1, 3).await;
        let job = queue
            .enqueue("echo", &serde_json::json!({"v": 1}), None)
            .await
            .unwrap();
        // A worker claims it and then vanishes without a heartbeat.
        let claimed = queue.claim("ghost").await.unwrap().unwrap();
        assert_eq!(claimed.id, job.id);
        assert!(
            queue.claim("other").await.unwrap().is_none(),
            "leased jobs are not claimable"
        );
        let mut registry = Registry::default();
        registry.register("echo", |ctx: &JobContext| Ok(ctx.payload.clone()));
        let (tx, rx) = watch::channel(false);
        let pool = spawn_workers(queue.clone(), registry, 1, Duration::from_millis(50), rx);
        let done = wait_for(&queue, &job.id, "done").await;
        assert_eq!(done.attempts, 2);
        assert!(
            !queue.heartbeat(&job.id, "ghost", 10).await.unwrap(),
            "the ghost lost it"
        );
        tx.send(true).unwrap();
        pool.join().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_releases_a_running_job_without_counting_the_try() {
        let (_dir, queue) = queue(5, 1).await;
        let mut registry = Registry::default();
        registry.register("slow", |ctx: &JobContext| {
            while !ctx.should_stop() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Error::Unavailable("stopped".into()))
        });
        let (tx, rx) = watch::channel(false);
        let pool = spawn_workers(queue.clone(), registry, 1, Duration::from_millis(10), rx);
        let job = queue
            .enqueue("slow", &serde_json::json!({}), None)
            .await
            .unwrap();
        wait_for(&queue, &job.id, "running").await;
        tx.send(true).unwrap();
        pool.join().await;
        let job = queue.get(&job.id).await.unwrap();
        assert_eq!((job.state.as_str(), job.attempts), ("queued", 0));
    }
}
