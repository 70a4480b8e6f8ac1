//! Commitments become tasks (open/done, due date, owner, a link to the quote), exported as
//! CSV, as iCalendar VTODOs, and pushed as JSON to a CRM webhook with retries and back-off.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Executor};

use super::extract::Commitment;
use super::transcript::Side;
use crate::error::{Error, Result};
use crate::store::{new_id, now_ms};

/// A follow-up task from a commitment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Task {
    pub id: String,
    pub call_id: String,
    /// The insight (commitment) it comes from: the link to its quote.
    pub insight_id: String,
    /// A participant, or a diarized speaker label ("Speaker 2") until the call is relabelled.
    pub owner: String,
    /// `seller`, `customer`, or `unknown` while the owner is an unmapped speaker label.
    pub side: String,
    pub action: String,
    /// `YYYY-MM-DD` or none.
    pub due_date: Option<String>,
    /// `open` or `done`.
    pub status: String,
    pub quote: String,
    pub start_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A side as stored in `tasks.side`: `seller`, `customer` or `unknown`.
pub fn side_name(side: Option<Side>) -> &'static str {
    match side {
        Some(Side::Seller) => "seller",
        Some(Side::Customer) => "customer",
        None => "unknown",
    }
}

impl Task {
    /// An open task for a commitment.
    pub fn from_commitment(call_id: &str, insight_id: &str, c: &Commitment) -> Task {
        let now = now_ms();
        Task {
            id: new_id(),
            call_id: call_id.to_string(),
            insight_id: insight_id.to_string(),
            owner: c.owner.clone(),
            side: side_name(c.side).into(),
            action: c.action.clone(),
            due_date: c.due_date.map(|d| d.to_string()),
            status: "open".into(),
            quote: c.quote.clone(),
            start_ms: Some(c.start_ms as i64),
            created_at: now,
            updated_at: now,
        }
    }

    /// Inserts the task (inside the caller's transaction).
    pub async fn insert<'c, E: Executor<'c, Database = Any>>(&self, executor: E) -> Result<()> {
        sqlx::query(
            "INSERT INTO tasks (id, call_id, insight_id, owner, side, action, due_date, status, quote, \
             start_ms, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&self.id)
        .bind(&self.call_id)
        .bind(&self.insight_id)
        .bind(&self.owner)
        .bind(&self.side)
        .bind(&self.action)
        .bind(self.due_date.as_deref())
        .bind(&self.status)
        .bind(&self.quote)
        .bind(self.start_ms)
        .bind(self.created_at)
        .bind(self.updated_at)
        .execute(executor)
        .await?;
        Ok(())
    }
}

/// Makes the task of a reviewed commitment say what the reviewer decided, inside the
/// decision's transaction: an override's action, owner and due date replace the model's; a
/// rejected commitment's task is removed (the recommendation and the audit trail keep it).
/// `proposed` is the model's commitment (it finds the task by its quote); `decided` is the
/// replacement, `None` for a rejection. Returns how many tasks changed.
pub async fn follow_decision(
    tx: &mut sqlx::Transaction<'_, Any>,
    call_id: &str,
    proposed: &serde_json::Value,
    decided: Option<&serde_json::Value>,
) -> Result<u64> {
    let Some(quote) = proposed.get("quote").and_then(serde_json::Value::as_str) else {
        return Ok(0);
    };
    let Some(decided) = decided else {
        let gone = sqlx::query("DELETE FROM tasks WHERE call_id = $1 AND quote = $2")
            .bind(call_id)
            .bind(quote)
            .execute(&mut **tx)
            .await?;
        return Ok(gone.rows_affected());
    };
    let text = |key: &str| {
        decided
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let due = match decided.get("due_date") {
        Some(serde_json::Value::String(d)) if !d.trim().is_empty() => {
            Some(super::dates::Date::parse(d)?.to_string())
        }
        _ => None,
    };
    let changed = sqlx::query(
        "UPDATE tasks SET action = COALESCE($1, action), owner = COALESCE($2, owner), \
         due_date = $3, updated_at = $4 WHERE call_id = $5 AND quote = $6",
    )
    .bind(text("action"))
    .bind(text("owner"))
    .bind(due)
    .bind(now_ms())
    .bind(call_id)
    .bind(quote)
    .execute(&mut **tx)
    .await?;
    Ok(changed.rows_affected())
}

/// The tasks of a call, by due date.
pub async fn list<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    call_id: &str,
) -> Result<Vec<Task>> {
    Ok(sqlx::query_as::<_, Task>(
        "SELECT * FROM tasks WHERE call_id = $1 ORDER BY COALESCE(due_date, '9999'), created_at",
    )
    .bind(call_id)
    .fetch_all(executor)
    .await?)
}

/// The open tasks on the calls `owner_id` uploaded, soonest due first (undated last).
pub async fn open_for_owner<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    owner_id: &str,
) -> Result<Vec<Task>> {
    Ok(sqlx::query_as::<_, Task>(
        "SELECT t.* FROM tasks t JOIN calls c ON c.id = t.call_id \
         WHERE c.owner_id = $1 AND t.status = 'open' \
         ORDER BY COALESCE(t.due_date, '9999'), t.created_at",
    )
    .bind(owner_id)
    .fetch_all(executor)
    .await?)
}

/// Marks a task open or done.
pub async fn set_status<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    call_id: &str,
    id: &str,
    status: &str,
) -> Result<()> {
    if !matches!(status, "open" | "done") {
        return Err(Error::InvalidInput(format!(
            "task status {status:?}: use open or done"
        )));
    }
    let n =
        sqlx::query("UPDATE tasks SET status = $1, updated_at = $2 WHERE id = $3 AND call_id = $4")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .bind(call_id)
            .execute(executor)
            .await?
            .rows_affected();
    if n == 0 {
        return Err(Error::NotFound(format!("no task {id} in this call")));
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with a header row (RFC 4180 quoting).
pub fn to_csv(tasks: &[Task]) -> String {
    let mut out = String::from("id,call_id,owner,side,action,due_date,status,quote\r\n");
    for t in tasks {
        let fields = [
            &t.id,
            &t.call_id,
            &t.owner,
            &t.side,
            &t.action,
            t.due_date.as_deref().unwrap_or(""),
            &t.status,
            &t.quote,
        ];
        out.push_str(
            &fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Folds a content line at 75 octets (RFC 5545 §3.1), never inside a character.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in line.chars() {
        if len + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(c);
        len += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// An iCalendar with one VTODO per task (DUE as a date when the task has one).
pub fn to_ics(tasks: &[Task]) -> String {
    let mut out =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dealdesk//calls//EN\r\n");
    for t in tasks {
        out.push_str("BEGIN:VTODO\r\n");
        out.push_str(&fold(&format!("UID:{}@dealdesk", t.id)));
        out.push_str(&fold(&format!("DTSTAMP:{}", ics_stamp(t.created_at))));
        out.push_str(&fold(&format!(
            "SUMMARY:{}",
            ics_text(&format!("{}: {}", t.owner, t.action))
        )));
        out.push_str(&fold(&format!(
            "DESCRIPTION:{}",
            ics_text(&format!("\"{}\" (call {})", t.quote, t.call_id))
        )));
        if let Some(due) = &t.due_date {
            out.push_str(&fold(&format!("DUE;VALUE=DATE:{}", due.replace('-', ""))));
        }
        out.push_str(if t.status == "done" {
            "STATUS:COMPLETED\r\n"
        } else {
            "STATUS:NEEDS-ACTION\r\n"
        });
        out.push_str("END:VTODO\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// `YYYYMMDDTHHMMSSZ` from unix milliseconds.
fn ics_stamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Where and how to deliver the webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `http://` or `https://` URL of the CRM endpoint.
    pub url: String,
    pub attempts: u32,
    pub backoff: Duration,
    pub timeout: Duration,
}

/// Posts `body` as JSON, retrying failures (connection errors, 5xx, 429) with exponential
/// back-off; returns the attempts used. A 4xx other than 429 is not retried.
pub fn deliver(hook: &Webhook, body: &serde_json::Value) -> Result<u32> {
    let payload = body.to_string();
    let mut wait = hook.backoff;
    let mut last = String::new();
    for attempt in 1..=hook.attempts.max(1) {
        match post_json(hook, &payload) {
            Ok(status) if (200..300).contains(&status) => return Ok(attempt),
            Ok(status) if status != 429 && (400..500).contains(&status) => {
                return Err(Error::InvalidInput(format!(
                    "the CRM webhook {} refused the tasks with HTTP {status}; check calls.webhook_url",
                    hook.url
                )));
            }
            Ok(status) => last = format!("HTTP {status}"),
            Err(e) => last = e.to_string(),
        }
        if attempt < hook.attempts {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    Err(Error::Unavailable(format!(
        "the CRM webhook {} failed {} times (last: {last}); it is retried with the job",
        hook.url, hook.attempts
    )))
}

/// One POST with reqwest (HTTP or HTTPS); returns the status code.
fn post_json(hook: &Webhook, payload: &str) -> Result<u16> {
    if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
        return Err(Error::Config(format!(
            "calls.webhook_url {:?} must start with http:// or https://",
            hook.url
        )));
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(hook.timeout)
        .user_agent("dealdesk")
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
    let response = client
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string())
        .send()
        .map_err(|e| Error::Unavailable(format!("cannot reach {}: {e}", hook.url)))?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests;
