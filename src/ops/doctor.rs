//! `dealdesk doctor`: checks the data after a crash, a `kill -9`, a full disk or a damaged file,
//! repairs what can be derived or resumed, and tells the operator what to do about the rest.
//!
//! Checks, in order: the database answers (and on SQLite passes `PRAGMA quick_check`); its
//! migrations match this binary's (pending ones are applied — a start killed mid-migration
//! rolled its transaction back); jobs whose worker stopped are put back in the queue; calls
//! recorded but never queued are queued, calls whose job ended without them are marked; every
//! upload is re-hashed against its name; unfinished upload files are removed; the search
//! indexes are checked (checksums of their files) and rebuilt or brought in line with the
//! database; the audit hash chain is recomputed. Nothing is deleted that a record refers to.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use super::tables;
use crate::bids::index::{clear_derived, damage, fast_revisions, index_err};
use crate::calls::pipeline::ANALYZE_JOB;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::JobQueue;
use crate::store::blobs::BlobStore;
use crate::store::{Backend, Db, now_ms};

/// An unfinished upload file older than this is abandoned even while a server runs.
const ABANDONED_UPLOAD: Duration = Duration::from_secs(3600);

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Repaired,
    Problem,
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// What the operator should do (for problems).
    pub action: Option<String>,
}

/// Everything `doctor` found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(
        &mut self,
        check: &'static str,
        status: Status,
        detail: String,
        action: Option<String>,
    ) {
        self.findings.push(Finding {
            check,
            status,
            detail,
            action,
        });
    }
    fn ok(&mut self, check: &'static str, detail: String) {
        self.push(check, Status::Ok, detail, None);
    }
    fn repaired(&mut self, check: &'static str, detail: String) {
        self.push(check, Status::Repaired, detail, None);
    }
    fn problem(&mut self, check: &'static str, detail: String, action: impl Into<String>) {
        self.push(check, Status::Problem, detail, Some(action.into()));
    }

    /// Findings with the given status.
    pub fn count(&self, status: Status) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }
}

/// Runs every check; with `repair` false nothing is changed (what would be repaired is
/// reported as a problem).
pub async fn run(config: &Config, repair: bool) -> Result<Report> {
    let mut report = Report::default();
    let db = match Db::connect_unmigrated(&config.database_url(), 2).await {
        Ok(db) => db,
        Err(e) => {
            report.problem(
                "database",
                e.to_string(),
                "check database.url (DEALDESK_DATABASE_URL) and that the database server runs",
            );
            return Ok(report);
        }
    };
    // No process uses this data directory, and no other machine writes into its blob store
    // (SQLite is one box; on PostgreSQL a configured `blobs_dir` may be a shared mount).
    let exclusive = (db.backend() == Backend::Sqlite
        || config.data.blobs_dir.as_os_str().is_empty())
        && !super::index_in_use(&config.data.dir.join("index").join("bids"));
    let d = Doctor {
        config,
        db,
        repair,
        exclusive,
    };
    let schema_known = d.database(&mut report).await;
    if !note_failure(&mut report, "database", schema_known).unwrap_or(false) {
        return Ok(report);
    }
    let r = d.jobs(&mut report).await;
    note_failure(&mut report, "jobs", r);
    let r = d.calls(&mut report).await;
    note_failure(&mut report, "calls", r);
    let r = d.uploads(&mut report).await;
    note_failure(&mut report, "uploads", r);
    let r = d.indexes(&mut report).await;
    note_failure(&mut report, "indexes", r);
    let r = d.audit(&mut report).await;
    note_failure(&mut report, "audit", r);
    Ok(report)
}

/// A check that could not finish (the database is locked, a disk is full...) is a problem
/// with its error as the detail; the other checks still run.
fn note_failure<T>(report: &mut Report, check: &'static str, result: Result<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            report.problem(
                check,
                format!("the check could not finish: {e}"),
                "fix the cause named here and run `dealdesk doctor` again",
            );
            None
        }
    }
}

struct Doctor<'a> {
    config: &'a Config,
    db: Db,
    repair: bool,
    /// No dealdesk process works on this data directory or writes into its blob store, so
    /// unfinished and unreferenced upload files can be removed.
    exclusive: bool,
}

impl Doctor<'_> {
    /// The database's integrity, lock and migrations; false when the other checks cannot run
    /// (the database is locked, or its schema is not this binary's and would be misread).
    async fn database(&self, report: &mut Report) -> Result<bool> {
        let mut conn = self.db.pool().acquire().await?;
        if self.db.backend() == Backend::Sqlite {
            let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
                .fetch_all(&mut *conn)
                .await?;
            if rows != ["ok"] {
                report.problem(
                    "database",
                    format!("SQLite integrity check failed: {}", rows.join("; ")),
                    "stop dealdesk and restore the last backup (`dealdesk restore DIR --force`)",
                );
                return Ok(false);
            }
            // Another process holding the write lock makes every write wait out the busy
            // timeout and fail (503): probe for it without waiting that long.
            sqlx::query("PRAGMA busy_timeout = 1000")
                .execute(&mut *conn)
                .await?;
            let probe = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await;
            if probe.is_ok() {
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            }
            sqlx::query("PRAGMA busy_timeout = 10000")
                .execute(&mut *conn)
                .await?;
            if let Err(e) = probe {
                if !crate::store::is_busy(&e) {
                    return Err(e.into());
                }
                report.problem(
                    "database",
                    "another process holds a write lock on the SQLite database: every write \
                     waits 10 s and is then refused with 503 (nothing is written)"
                        .into(),
                    "find the process with `fuser` on the database file and end its transaction \
                     (or stop it); dealdesk needs no repair, run `dealdesk doctor` again",
                );
                return Ok(false);
            }
            report.ok(
                "database",
                "SQLite integrity check passed, not locked".into(),
            );
        } else {
            // A session holding a table lock that blocks writes (a forgotten `LOCK TABLE`, a
            // stuck migration) makes every write wait out the lock timeout and fail (503).
            let holders: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT DISTINCT l.pid::bigint, c.relname::text, l.mode FROM pg_locks l \
                 JOIN pg_class c ON c.oid = l.relation \
                 WHERE l.granted AND l.pid <> pg_backend_pid() \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', \
                                'AccessExclusiveLock') \
                 ORDER BY 1, 2",
            )
            .fetch_all(&mut *conn)
            .await?;
            if !holders.is_empty() {
                let list: Vec<String> = holders
                    .iter()
                    .map(|(pid, table, mode)| format!("session {pid} holds {mode} on {table}"))
                    .collect();
                report.problem(
                    "database",
                    format!(
                        "another session holds a write lock on PostgreSQL tables ({}): every \
                         write to them waits 10 s and is then refused with 503 (nothing is \
                         written)",
                        list.join("; ")
                    ),
                    "end that session's transaction (or `SELECT pg_terminate_backend(PID)`); \
                     dealdesk needs no repair, run `dealdesk doctor` again",
                );
                return Ok(false);
            }
            report.ok("database", "PostgreSQL answers, no table locked".into());
        }
        let applied = tables::applied_migrations(&mut conn, self.db.backend()).await?;
        drop(conn);
        let known = tables::known_migrations();
        let known_versions: HashSet<i64> = known.iter().map(|m| m.version).collect();
        let newer: Vec<String> = applied
            .iter()
            .filter(|m| !known_versions.contains(&m.version))
            .map(|m| m.version.to_string())
            .collect();
        if !newer.is_empty() {
            report.problem(
                "migrations",
                format!(
                    "the database has migrations this dealdesk does not know: {}",
                    newer.join(", ")
                ),
                "a newer dealdesk migrated it: run that version (never an older one) on it",
            );
            return Ok(false);
        }
        for m in &applied {
            let ours = known
                .iter()
                .find(|k| k.version == m.version)
                .expect("known above");
            if !m.success {
                report.problem(
                    "migrations",
                    format!("migration {} failed half-way", m.version),
                    "restore the last backup (`dealdesk restore DIR --force`) and report the failure",
                );
                return Ok(false);
            }
            if m.checksum != ours.checksum {
                report.problem(
                    "migrations",
                    format!("migration {} was changed after it was applied", m.version),
                    "run the dealdesk build that applied it; migrations must never be edited",
                );
                return Ok(false);
            }
        }
        let pending: Vec<String> = known
            .iter()
            .filter(|k| !applied.iter().any(|m| m.version == k.version))
            .map(|m| m.version.to_string())
            .collect();
        if pending.is_empty() {
            report.ok(
                "migrations",
                format!("{} applied, none pending", applied.len()),
            );
        } else if self.repair {
            self.db.migrate().await?;
            report.repaired(
                "migrations",
                format!(
                    "applied {} pending migrations ({}); {} were applied before (a start stopped \
                     before migrating, or killed during a migration, which rolled back)",
                    pending.len(),
                    pending.join(", "),
                    applied.len()
                ),
            );
        } else {
            report.problem(
                "migrations",
                format!("{} pending: {}", pending.len(), pending.join(", ")),
                "run `dealdesk doctor` (or start the server) to apply them",
            );
        }
        Ok(true)
    }

    /// Jobs whose worker stopped (its lease ran out) go back to the queue.
    async fn jobs(&self, report: &mut Report) -> Result<()> {
        let now = now_ms();
        let stale = sqlx::query(
            "SELECT id, kind, attempts, max_attempts FROM jobs \
             WHERE state = 'running' AND lease_until < $1 ORDER BY created_at",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let mut requeued = Vec::new();
        let mut failed = Vec::new();
        for row in &stale {
            let id: String = row.try_get("id")?;
            let what = format!("{} {id}", row.try_get::<String, _>("kind")?);
            let spent =
                row.try_get::<i64, _>("attempts")? >= row.try_get::<i64, _>("max_attempts")?;
            if self.repair {
                let sql = if spent {
                    "UPDATE jobs SET state = 'failed', lease_until = NULL, finished_at = $1, \
                     updated_at = $1, error = COALESCE(error, 'the worker running it stopped \
                     (crash or kill) on every try') WHERE id = $2 AND state = 'running' \
                     AND lease_until < $1"
                } else {
                    "UPDATE jobs SET state = 'queued', lease_until = NULL, worker = NULL, \
                     run_after = $1, updated_at = $1 WHERE id = $2 AND state = 'running' \
                     AND lease_until < $1"
                };
                sqlx::query(sql)
                    .bind(now)
                    .bind(&id)
                    .execute(self.db.pool())
                    .await?;
            }
            if spent {
                failed.push(what)
            } else {
                requeued.push(what)
            }
        }
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(self.db.pool())
                .await?;
        let summary = match counts.is_empty() {
            true => "no jobs".to_string(),
            false => counts
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        if stale.is_empty() {
            report.ok("jobs", format!("no job lost its worker ({summary})"));
            return Ok(());
        }
        let detail = format!(
            "{} job(s) whose worker stopped before finishing (kill, crash or power loss): \
             requeued {}{}; now {summary}",
            stale.len(),
            if requeued.is_empty() {
                "none".into()
            } else {
                requeued.join(", ")
            },
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed after their last try: {}", failed.join(", "))
            }
        );
        if self.repair {
            report.repaired("jobs", detail);
        } else {
            report.problem("jobs", detail, "run `dealdesk doctor` to requeue them");
        }
        Ok(())
    }

    /// Calls recorded but never queued are queued; calls whose job ended without them are
    /// marked failed; a finished call must have its transcript.
    async fn calls(&self, report: &mut Report) -> Result<()> {
        let mut notes = Vec::new();
        let unqueued: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.id, c.owner_id FROM calls c LEFT JOIN jobs j ON j.id = c.job_id \
             WHERE c.status IN ('queued', 'running') AND j.id IS NULL ORDER BY c.id",
        )
        .fetch_all(self.db.pool())
        .await?;
        if !unqueued.is_empty() && self.repair {
            let queue = JobQueue::new(self.db.clone(), &self.config.jobs);
            for (id, owner) in &unqueued {
                let job = queue
                    .enqueue(
                        ANALYZE_JOB,
                        &serde_json::json!({"call_id": id}),
                        Some(owner),
                    )
                    .await?;
                crate::calls::records::set_job(&self.db, id, &job.id).await?;
            }
        }
        if !unqueued.is_empty() {
            notes.push(format!(
                "{} call(s) recorded but not queued (stopped between the two writes): {}",
                unqueued.len(),
                ids(unqueued.iter().map(|(id, _)| id))
            ));
        }
        let orphaned: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT c.id, j.error FROM calls c JOIN jobs j ON j.id = c.job_id \
             WHERE c.status IN ('queued', 'running') AND j.state = 'failed' ORDER BY c.id",
        )
        .fetch_all(self.db.pool())
        .await?;
        if self.repair {
            for (id, error) in &orphaned {
                let error = error.as_deref().unwrap_or("its analysis job failed");
                crate::calls::records::set_status(&self.db, id, "failed", Some(error)).await?;
            }
        }
        if !orphaned.is_empty() {
            notes.push(format!(
                "{} call(s) still shown as in progress whose job failed: {}",
                orphaned.len(),
                ids(orphaned.iter().map(|(id, _)| id))
            ));
        }
        let hollow: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM calls c WHERE status = 'done' \
             AND NOT EXISTS (SELECT 1 FROM transcripts t WHERE t.call_id = c.id) ORDER BY id",
        )
        .fetch_all(self.db.pool())
        .await?;
        if !hollow.is_empty() {
            report.problem(
                "calls",
                format!(
                    "finished calls without a transcript: {}",
                    ids(hollow.iter())
                ),
                "restore the last backup, or upload those recordings again",
            );
        }
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
            .fetch_one(self.db.pool())
            .await?;
        match (notes.is_empty(), self.repair) {
            (true, _) => report.ok("calls", format!("{total} calls, each queued or finished")),
            (false, true) => report.repaired(
                "calls",
                format!("{} (queued / marked failed)", notes.join("; ")),
            ),
            (false, false) => {
                report.problem("calls", notes.join("; "), "run `dealdesk doctor` to repair")
            }
        }
        Ok(())
    }

    /// Every upload re-hashed; unfinished and unreferenced files removed when safe.
    async fn uploads(&self, report: &mut Report) -> Result<()> {
        let root = self.config.blobs_dir();
        let store = BlobStore::from_config(self.config, self.db.clone());
        let stranded = self.blobs_in_the_other_store(&store, report).await?;
        let rt = tokio::runtime::Handle::current();
        let verified = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.verify_all(&rt, &|_| {}))
                .await
                .map_err(|e| Error::Internal(format!("blob verification panicked: {e}")))??
        };
        // Blobs still in the other store were reported above, with their own repair.
        let missing: Vec<String> = verified
            .missing
            .iter()
            .filter(|sha| !stranded.contains(*sha))
            .cloned()
            .collect();
        for (what, list) in [("missing", &missing), ("damaged", &verified.corrupt)] {
            if list.is_empty() {
                continue;
            }
            let mut calls = Vec::new();
            for sha in list {
                let titles: Vec<(String, String)> =
                    sqlx::query_as("SELECT id, title FROM calls WHERE blob_sha256 = $1")
                        .bind(sha)
                        .fetch_all(self.db.pool())
                        .await?;
                calls.extend(titles.into_iter().map(|(id, t)| format!("{id} ({t})")));
            }
            report.problem(
                "uploads",
                format!(
                    "{} {what} upload file(s): {}; used by calls: {}",
                    list.len(),
                    ids(list.iter()),
                    if calls.is_empty() {
                        "none".into()
                    } else {
                        calls.join(", ")
                    }
                ),
                format!(
                    "copy each file from a backup (`blobs/<first two>/<sha256>` of a \
                     `dealdesk backup`) into {}, or ask the owners to upload again",
                    root.display()
                ),
            );
        }
        if missing.is_empty()
            && verified.corrupt.is_empty()
            && (stranded.is_empty() || verified.ok > 0)
        {
            report.ok(
                "uploads",
                format!("{} upload(s) match their sha256", verified.ok),
            );
        }

        // Files in the spool (an upload or a temporary copy cut off by a crash) and files no
        // row names.
        let known: HashSet<String> = sqlx::query_scalar("SELECT sha256 FROM blobs")
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .collect();
        let spool = store.spool_dir();
        let unfinished = super::backup::files_under(&spool)?;
        let mut unreferenced = Vec::new();
        for file in super::backup::files_under(&root)? {
            let named = file
                .file_name()
                .is_some_and(|n| known.contains(n.to_string_lossy().as_ref()));
            if !named && !file.starts_with(&spool) {
                unreferenced.push(file);
            }
        }
        let abandoned = |f: &Path| {
            self.exclusive
                || std::fs::metadata(f)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > ABANDONED_UPLOAD)
        };
        let removable: Vec<_> = unfinished
            .iter()
            .filter(|f| abandoned(f))
            .chain(unreferenced.iter().filter(|_| self.exclusive))
            .collect();
        if removable.is_empty() {
            if !unfinished.is_empty() {
                report.ok(
                    "uploads",
                    format!("{} upload(s) being received now", unfinished.len()),
                );
            }
            return Ok(());
        }
        let detail = format!(
            "{} unfinished upload file(s) (a client or the server stopped mid-upload) and {} \
             file(s) no record refers to",
            unfinished.len(),
            unreferenced.len()
        );
        if self.repair {
            for f in &removable {
                std::fs::remove_file(f)
                    .map_err(|e| Error::io("cannot remove an unfinished upload", f, e))?;
            }
            report.repaired("uploads", format!("{detail}: removed {}", removable.len()));
        } else {
            report.problem("uploads", detail, "run `dealdesk doctor` to remove them");
        }
        Ok(())
    }

    /// Blobs written before `[data] blobs` changed are still in the other store, where the
    /// configured one cannot find them: moved (each checked against its hash first) or
    /// reported. Returns the ones left where they are.
    async fn blobs_in_the_other_store(
        &self,
        store: &BlobStore,
        report: &mut Report,
    ) -> Result<HashSet<String>> {
        let other = BlobStore::other_from_config(self.config, self.db.clone());
        let all: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM blobs ORDER BY sha256")
            .fetch_all(self.db.pool())
            .await?;
        let mut stranded = HashSet::new();
        for sha in all {
            if !store.holds(&sha).await? && other.holds(&sha).await? {
                stranded.insert(sha);
            }
        }
        if stranded.is_empty() {
            return Ok(stranded);
        }
        let detail = format!(
            "{} upload(s) are in {}, not in {}, which [data] blobs names",
            stranded.len(),
            other.describe(),
            store.describe()
        );
        if !self.repair {
            report.problem("uploads", detail, "run `dealdesk doctor` to move them");
            return Ok(stranded);
        }
        let mut sorted: Vec<String> = stranded.iter().cloned().collect();
        sorted.sort();
        for sha in sorted {
            store.move_from(&other, &sha).await?;
            stranded.remove(&sha);
        }
        report.repaired("uploads", format!("{detail}: moved them"));
        Ok(stranded)
    }

    /// The search indexes: damaged ones are rebuilt, stale ones brought in line.
    async fn indexes(&self, report: &mut Report) -> Result<()> {
        let root = self.config.data.dir.join("index");
        for (name, dir) in [
            ("bid index", root.join("bids")),
            ("call index", root.join("calls")),
        ] {
            let damaged = damage(&dir);
            if let Some(why) = &damaged {
                if !self.repair {
                    report.problem(
                        "indexes",
                        format!("the {name} is damaged: {why}"),
                        "run `dealdesk doctor` to rebuild it from the database",
                    );
                    continue;
                }
                clear_derived(&dir, name)?;
            }
            if super::index_in_use(&dir) {
                report.ok(
                    "indexes",
                    format!("the {name} is in use by a running dealdesk, which keeps it current"),
                );
                continue;
            }
            let (stale, total) = if dir == root.join("bids") {
                let want = crate::bids::db::revisions(&self.db).await?;
                let have = indexed_revisions(&dir, name)?;
                let stale = want
                    .iter()
                    .filter(|(id, rev)| have.get(*id) != Some(rev))
                    .count()
                    + have.keys().filter(|id| !want.contains_key(*id)).count();
                if self.repair {
                    crate::bids::Library::open_at(&dir, self.db.clone(), None).await?;
                }
                (stale, want.len())
            } else if self.repair {
                let index = crate::calls::search::CallIndex::open(&dir)?;
                let trackers = crate::calls::trackers::Trackers::load(self.config)?;
                let r = index.reconcile(&self.db, &trackers).await?;
                (r.reindexed + r.removed, index.num_docs() as usize)
            } else {
                (0, 0)
            };
            match (damaged, stale, self.repair) {
                (Some(why), _, _) => report.repaired(
                    "indexes",
                    format!("the {name} was damaged ({why}); rebuilt from the database"),
                ),
                (None, 0, _) => report.ok(
                    "indexes",
                    format!("the {name} matches the database ({total} entries)"),
                ),
                (None, n, true) => report.repaired(
                    "indexes",
                    format!(
                        "re-indexed {n} entries the {name} lacked (a write stopped between the \
                         database and the index, or a restore)"
                    ),
                ),
                (None, n, false) => report.problem(
                    "indexes",
                    format!("the {name} lacks {n} change(s) of the database"),
                    "run `dealdesk doctor` (or start the server) to re-index them",
                ),
            }
        }
        Ok(())
    }

    /// The audit hash chain.
    async fn audit(&self, report: &mut Report) -> Result<()> {
        let v = crate::review::audit::verify(&self.db).await?;
        match v.first_broken {
            None => report.ok("audit", format!("{} events, hash chain intact", v.events)),
            Some(b) => report.problem(
                "audit",
                format!("audit event {} ({}) is broken: {}", b.seq, b.id, b.reason),
                "restore the last backup (`dealdesk restore DIR --force`) and find out who wrote \
                 to the database directly",
            ),
        }
        Ok(())
    }
}

/// The revision of each document in the index in `dir`, read without taking its writer.
fn indexed_revisions(dir: &Path, name: &str) -> Result<std::collections::HashMap<String, i64>> {
    if !dir.join("meta.json").exists() {
        return Ok(Default::default());
    }
    let index = tantivy::Index::open_in_dir(dir).map_err(index_err(name, "open"))?;
    let reader = index
        .reader_builder()
        .reload_policy(tantivy::ReloadPolicy::Manual)
        .try_into()
        .map_err(index_err(name, "reader"))?;
    fast_revisions(&reader.searcher(), name)
}

/// The first few ids of a list, for a message.
fn ids<'a>(list: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&String> = list.collect();
    let mut shown: Vec<&str> = all.iter().take(5).map(|s| s.as_str()).collect();
    let more = all.len().saturating_sub(shown.len());
    let tail = format!("and {more} more");
    if more > 0 {
        shown.push(&tail);
    }
    shown.join(", ")
}
