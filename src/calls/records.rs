//! Calls, transcripts, insights and tasks in the database, with the caller's scope applied:
//! a rep sees their own calls, a manager their region's, an admin all.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::dates::Date;
use super::extract::{Commitment, Extraction, Objection};
use super::tasks::Task;
use super::transcript::{CallTranscript, Participant, Segment};
use crate::error::{Error, Result};
use crate::review::{self, Kind, Proposal, Subject};
use crate::store::{Db, new_id, now_ms};
use crate::users::{Role, User};

/// A call as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Call {
    pub id: String,
    pub owner_id: String,
    pub region: String,
    pub title: String,
    pub call_date: Option<String>,
    pub language: Option<String>,
    pub participants: Vec<Participant>,
    pub blob_sha256: Option<String>,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub job_id: Option<String>,
    /// 0–100, from the analysis job.
    pub progress: i64,
    pub error: Option<String>,
    /// `upload` or `import`.
    pub source: String,
    pub channels: String,
    pub created_at: i64,
}

/// What a new call starts with.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub title: String,
    pub call_date: Option<Date>,
    pub language: Option<String>,
    pub participants: Vec<Participant>,
    pub blob_sha256: Option<String>,
    pub source: &'static str,
    pub channels: String,
}

const SELECT: &str = "SELECT c.*, COALESCE(j.progress, 0) AS job_progress FROM calls c \
                      LEFT JOIN jobs j ON j.id = c.job_id";

fn call_from_row(row: &AnyRow) -> Result<Call> {
    let participants: String = row.try_get("participants")?;
    let status: String = row.try_get("status")?;
    // The job's stored progress lags its heartbeat; a finished analysis is 100%.
    let progress = if status == "done" {
        100
    } else {
        row.try_get("job_progress")?
    };
    Ok(Call {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        region: row.try_get("region")?,
        title: row.try_get("title")?,
        call_date: row.try_get("call_date")?,
        language: row.try_get("language")?,
        participants: serde_json::from_str(&participants)
            .map_err(|e| Error::Internal(format!("stored participants: {e}")))?,
        blob_sha256: row.try_get("blob_sha256")?,
        status,
        job_id: row.try_get("job_id")?,
        progress,
        error: row.try_get("error")?,
        source: row.try_get("source")?,
        channels: row.try_get("channels")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Creates a call owned by `owner`, status `queued`.
pub async fn create(db: &Db, owner: &User, new: &NewCall) -> Result<Call> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO calls (id, owner_id, region, title, call_date, language, participants, \
         blob_sha256, status, created_at, source, channels) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11)",
    )
    .bind(&id)
    .bind(&owner.id)
    .bind(&owner.region)
    .bind(&new.title)
    .bind(new.call_date.map(|d| d.to_string()))
    .bind(new.language.as_deref())
    .bind(serde_json::to_string(&new.participants).expect("participants serialize"))
    .bind(new.blob_sha256.as_deref())
    .bind(now_ms())
    .bind(new.source)
    .bind(&new.channels)
    .execute(db.pool())
    .await?;
    get(db, &id).await
}

/// Creates a call owned by `owner` from an imported transcript (title, date, language and
/// participants taken from it) and stores the transcript; the analysis is not queued.
pub async fn import(db: &Db, owner: &User, t: &CallTranscript) -> Result<Call> {
    let call = create(
        db,
        owner,
        &NewCall {
            title: if t.title.is_empty() {
                "imported call".into()
            } else {
                t.title.clone()
            },
            call_date: t.call_date,
            language: Some(t.language.clone()),
            participants: t.participants.clone(),
            blob_sha256: None,
            source: "import",
            channels: "mix".into(),
        },
    )
    .await?;
    save_transcript(db, &call.id, t, "import").await?;
    Ok(call)
}

/// A call by id, whatever the scope (for jobs).
pub async fn get(db: &Db, id: &str) -> Result<Call> {
    let row = sqlx::query(&format!("{SELECT} WHERE c.id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| Error::NotFound(format!("no call {id}")))?;
    call_from_row(&row)
}

fn in_scope(user: &User, call: &Call) -> bool {
    match user.role {
        Role::Admin => true,
        Role::Manager => call.region == user.region,
        _ => call.owner_id == user.id,
    }
}

/// A call the user may see; others are "not found" (their existence is not revealed).
pub async fn get_scoped(db: &Db, user: &User, id: &str) -> Result<Call> {
    let call = get(db, id).await?;
    if in_scope(user, &call) {
        Ok(call)
    } else {
        Err(Error::NotFound(format!("no call {id}")))
    }
}

/// The calls the user may see, newest first.
pub async fn list_scoped(db: &Db, user: &User) -> Result<Vec<Call>> {
    let (filter, arg) = match user.role {
        Role::Admin => ("1 = 1 OR c.id = $1", ""),
        Role::Manager => ("c.region = $1", user.region.as_str()),
        _ => ("c.owner_id = $1", user.id.as_str()),
    };
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE {filter} ORDER BY c.created_at DESC"
    ))
    .bind(arg)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(call_from_row).collect()
}

/// The user's earlier call of the same recording, if any.
pub async fn find_upload(db: &Db, user: &User, sha256: &str) -> Result<Option<Call>> {
    let row = sqlx::query(&format!(
        "{SELECT} WHERE c.owner_id = $1 AND c.blob_sha256 = $2"
    ))
    .bind(&user.id)
    .bind(sha256)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(call_from_row).transpose()
}

pub async fn set_job(db: &Db, id: &str, job_id: &str) -> Result<()> {
    sqlx::query("UPDATE calls SET job_id = $1 WHERE id = $2")
        .bind(job_id)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn set_status(db: &Db, id: &str, status: &str, error: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE calls SET status = $1, error = $2 WHERE id = $3")
        .bind(status)
        .bind(error)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Stores (or replaces) a call's transcript.
pub async fn save_transcript(
    db: &Db,
    call_id: &str,
    t: &CallTranscript,
    model_id: &str,
) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM transcripts WHERE call_id = $1")
        .bind(call_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO transcripts (call_id, language, model_id, segments, created_at, speakers) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(call_id)
    .bind(&t.language)
    .bind(model_id)
    .bind(serde_json::to_string(&t.segments).expect("segments serialize"))
    .bind(now_ms())
    .bind(serde_json::to_string(&t.speakers).expect("speakers serialize"))
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE calls SET language = $1 WHERE id = $2")
        .bind(&t.language)
        .bind(call_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The call's transcript, if it has one yet.
pub async fn transcript(db: &Db, call: &Call) -> Result<Option<CallTranscript>> {
    let row =
        sqlx::query("SELECT language, segments, speakers FROM transcripts WHERE call_id = $1")
            .bind(&call.id)
            .fetch_optional(db.pool())
            .await?;
    let Some(row) = row else { return Ok(None) };
    let bad = |e: serde_json::Error| Error::Internal(format!("stored transcript: {e}"));
    let segments: String = row.try_get("segments")?;
    let segments: Vec<Segment> = serde_json::from_str(&segments).map_err(bad)?;
    let speakers: Option<String> = row.try_get("speakers")?;
    let speakers = match speakers {
        Some(s) => serde_json::from_str(&s).map_err(bad)?,
        None => Default::default(),
    };
    Ok(Some(CallTranscript {
        call_id: Some(call.id.clone()),
        language: row.try_get("language")?,
        call_date: call.call_date.as_deref().map(Date::parse).transpose()?,
        title: call.title.clone(),
        participants: call.participants.clone(),
        segments,
        speakers,
    }))
}

/// The stored insights of a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Insights {
    pub commitments: Vec<Commitment>,
    pub objections: Vec<Objection>,
    pub model_id: Option<String>,
    pub prompt_versions: Vec<String>,
}

/// Replaces a call's insights and tasks with `ex`, records a proposal per commitment and per
/// objection answer, and marks the call done — all in one transaction.
pub async fn save_analysis(
    db: &Db,
    call: &Call,
    ex: &Extraction,
    rules: &review::Rules,
) -> Result<Vec<Task>> {
    let now = now_ms();
    let (cp, op) = (&ex.prompt_versions[0], &ex.prompt_versions[1]);
    let mut tx = db.begin().await?;
    for table in ["tasks", "insights"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE call_id = $1"))
            .bind(&call.id)
            .execute(&mut *tx)
            .await?;
    }
    let mut tasks = Vec::new();
    for c in &ex.commitments {
        let body = serde_json::to_value(c).expect("commitment serializes");
        let spot = Spot::new("commitment", &c.quote, (c.start_ms, c.end_ms), cp);
        let insight_id = insert_insight(&mut tx, call, ex, &spot, &body, now).await?;
        let task = Task::from_commitment(&call.id, &insight_id, c);
        task.insert(&mut *tx).await?;
        tasks.push(task);
        review::propose(
            &mut tx,
            &proposal(call, ex, Kind::Commitment, &spot, body, c.confidence),
        )
        .await?;
    }
    for o in &ex.objections {
        let body = serde_json::to_value(o).expect("objection serializes");
        let spot = Spot::new("objection", &o.quote, (o.start_ms, o.end_ms), op);
        insert_insight(&mut tx, call, ex, &spot, &body, now).await?;
        review::propose(
            &mut tx,
            &proposal(call, ex, Kind::ObjectionAnswer, &spot, body, o.confidence),
        )
        .await?;
    }
    // The review breaker watches the pipeline's health: items kept against answers that failed
    // validation (model errors) or grounding. Extraction does not split these drops by kind,
    // so both kinds it produces are judged on the same record.
    let passed = ex.commitments.len() + ex.objections.len();
    let failed = (ex.dropped.ungrounded + ex.dropped.model_errors) as usize;
    for kind in [Kind::Commitment, Kind::ObjectionAnswer] {
        review::breaker::observe(&mut tx, rules, kind, passed, failed).await?;
    }
    sqlx::query("UPDATE calls SET status = 'done', error = NULL WHERE id = $1")
        .bind(&call.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(tasks)
}

/// Where an insight sits in the call, and which prompt produced it.
struct Spot<'a> {
    kind: &'static str,
    quote: &'a str,
    start_ms: u64,
    end_ms: u64,
    prompt: &'a str,
}

impl<'a> Spot<'a> {
    fn new(
        kind: &'static str,
        quote: &'a str,
        (start_ms, end_ms): (u64, u64),
        prompt: &'a str,
    ) -> Self {
        Spot {
            kind,
            quote,
            start_ms,
            end_ms,
            prompt,
        }
    }
}

async fn insert_insight(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    call: &Call,
    ex: &Extraction,
    spot: &Spot<'_>,
    body: &serde_json::Value,
    now: i64,
) -> Result<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO insights (id, call_id, kind, body, quote, start_ms, end_ms, created_at, model_id, prompt_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(&call.id)
    .bind(spot.kind)
    .bind(body.to_string())
    .bind(spot.quote)
    .bind(spot.start_ms as i64)
    .bind(spot.end_ms as i64)
    .bind(now)
    .bind(&ex.model_id)
    .bind(spot.prompt)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

fn proposal(
    call: &Call,
    ex: &Extraction,
    kind: Kind,
    spot: &Spot<'_>,
    output: serde_json::Value,
    confidence: f64,
) -> Proposal {
    Proposal {
        kind,
        subject: Subject::Call,
        subject_id: call.id.clone(),
        region: call.region.clone(),
        model_id: ex.model_id.clone(),
        model_version: ex.model_id.clone(),
        prompt_version: Some(spot.prompt.to_string()),
        input: serde_json::json!({"call_id": call.id, "quote": spot.quote}),
        output,
        explanation: Some(format!("grounded in the transcript: \"{}\"", spot.quote)),
        confidence: Some(confidence),
        owner_id: Some(call.owner_id.clone()),
        discount: None,
        deal_value: None,
    }
}

/// Whether a call recommendation's `output` is the commitment or objection spoken in segment
/// `turn` with this `quote` (what ties a stored insight to its recommendation).
pub fn is_output_of(output: &serde_json::Value, turn: u32, quote: &str) -> bool {
    output.get("turn").and_then(serde_json::Value::as_u64) == Some(u64::from(turn))
        && output.get("quote").and_then(serde_json::Value::as_str) == Some(quote)
}

/// The stored insights of a call.
pub async fn insights(db: &Db, call_id: &str) -> Result<Insights> {
    let rows = sqlx::query("SELECT kind, body, model_id, prompt_version FROM insights WHERE call_id = $1 ORDER BY start_ms, id")
        .bind(call_id)
        .fetch_all(db.pool())
        .await?;
    let mut out = Insights::default();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let body: String = row.try_get("body")?;
        let bad = |e: serde_json::Error| Error::Internal(format!("stored insight: {e}"));
        match kind.as_str() {
            "commitment" => out
                .commitments
                .push(serde_json::from_str(&body).map_err(bad)?),
            _ => out
                .objections
                .push(serde_json::from_str(&body).map_err(bad)?),
        }
        out.model_id = row.try_get("model_id")?;
        if let Some(v) = row.try_get::<Option<String>, _>("prompt_version")?
            && !out.prompt_versions.contains(&v)
        {
            out.prompt_versions.push(v);
        }
    }
    Ok(out)
}
