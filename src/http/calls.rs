//! Calls: upload a recording or import a transcript, follow the analysis, read the
//! transcript, insights and tasks. A rep sees their own calls, a manager their region's.

use axum::Extension;
use axum::extract::State;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::rejection::StringRejection;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{AppState, Caller, ErrorBody, Json, Path};
use crate::asr;
use crate::calls::dates::Date;
use crate::calls::pipeline::ANALYZE_JOB;
use crate::calls::records::{self, Call, Insights, NewCall};
use crate::calls::relabel::{self, Relabelled};
use crate::calls::tasks::{self, Task};
use crate::calls::transcript::{CallTranscript, Participant};
use crate::error::{Error, Result};
use crate::store::blobs::Blob;
use crate::users::User;

/// The multipart form of `POST /calls`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The recording (wav, mp3, m4a/AAC, ogg/Vorbis, flac); the format is sniffed from the bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    title: Option<String>,
    /// YYYY-MM-DD, for relative deadlines.
    call_date: Option<String>,
    /// auto, en or zh.
    language: Option<String>,
    /// JSON `[{"name": ..., "side": "seller"|"customer"}]`; with `channels=split`, in channel order.
    participants: Option<String>,
    /// mix (default) or split (one party per stereo channel).
    channels: Option<String>,
}

/// A call, and whether it was already there (the same recording uploaded again).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub call: Call,
    pub duplicate: bool,
}

/// A task's new status.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TaskUpdate {
    /// `open` or `done`.
    #[schema(pattern = "^(open|done)$")]
    pub status: String,
}

/// The fields of `POST /calls` besides the file.
#[derive(Default)]
pub struct Form {
    title: Option<String>,
    call_date: Option<Date>,
    language: Option<String>,
    participants: Vec<Participant>,
    channels: Option<String>,
}

impl Form {
    async fn set(&mut self, name: &str, field: Field<'_>) -> Result<()> {
        let value = field
            .text()
            .await
            .map_err(|e| Error::InvalidInput(format!("form field {name}: {e}")))?;
        match name {
            "title" => self.title = Some(value),
            "call_date" => self.call_date = Some(Date::parse(&value)?),
            "language" => {
                let lang: asr::Language = value.parse()?;
                self.language = lang.code().map(str::to_string);
            }
            "participants" => {
                self.participants = serde_json::from_str(&value).map_err(|e| {
                    Error::InvalidInput(format!(
                        "participants: {e}; send [{{\"name\": \"...\", \"side\": \"seller\"|\"customer\"}}]"
                    ))
                })?
            }
            "channels" if matches!(value.as_str(), "mix" | "split") => self.channels = Some(value),
            "channels" => return Err(Error::InvalidInput(format!("channels {value:?}: use mix or split"))),
            other => return Err(Error::InvalidInput(format!("unknown form field {other:?}"))),
        }
        Ok(())
    }
}

/// Storing one file field: what [`read_upload`]'s `store` returns.
pub type StoreField<'a, B> = std::pin::Pin<Box<dyn Future<Output = Result<B>> + Send + 'a>>;

/// Reads an upload's multipart body: the form fields, and the `file` field handed to `store`
/// (the last one wins). A malformed body or a bad field is an `InvalidInput`.
pub async fn read_upload<B>(
    multipart: &mut Multipart,
    mut store: impl for<'a> FnMut(Field<'a>) -> StoreField<'a, B>,
) -> Result<(Form, Option<B>)> {
    let mut form = Form::default();
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| Error::InvalidInput(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if form.title.is_none() {
                form.title = field.file_name().map(str::to_string);
            }
            file = Some(store(field).await?);
        } else {
            form.set(&name, field).await?;
        }
    }
    Ok((form, file))
}

/// Streams one multipart field into the blob store.
async fn store_file(state: &AppState, mut field: Field<'_>) -> Result<Blob> {
    let (mut writer, reader) = tokio::io::duplex(256 * 1024);
    let put = state.blobs.put(
        reader,
        "application/octet-stream",
        state.config.server.max_upload_bytes,
    );
    let feed = async move {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| Error::InvalidInput(format!("the upload was interrupted: {e}")))?
        {
            if writer.write_all(&chunk).await.is_err() {
                break; // the store stopped reading (too large): its error is the answer
            }
        }
        Ok::<(), Error>(())
    };
    let (blob, fed) = tokio::join!(put, feed);
    let blob = blob?;
    fed?;
    Ok(blob)
}

/// Checks that the stored bytes are a recording dealdesk can decode; removes a new blob that
/// is not, so nothing half-valid stays behind.
async fn sniff(state: &AppState, blob: &Blob) -> Result<()> {
    let file = state.blobs.local_file(&blob.sha256).await?;
    let probe = {
        let path = file.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            asr::AudioReader::open(&path, asr::Channels::Mix).map(|_| ())
        })
        .await
        .map_err(|e| Error::Internal(format!("format check panicked: {e}")))?
    };
    drop(file);
    if let Err(e) = probe {
        if !blob.existed {
            state.blobs.remove(&blob.sha256).await?;
        }
        return Err(Error::InvalidInput(format!(
            "the upload is not a recording dealdesk can read ({e}); supported: {}",
            asr::SUPPORTED_FORMATS
        )));
    }
    Ok(())
}

/// Refuses a body whose declared `Content-Length` is beyond the upload limit (plus room for
/// the form's text fields, at most `server.max_body_bytes`) before a byte of it is read: a
/// client claiming 2 GB gets its 413 at once instead of after streaming. A body that declares
/// less than it sends is still cut off by the blob store's own count.
fn refuse_declared_oversize(state: &AppState, headers: &header::HeaderMap) -> Result<()> {
    let limits = &state.config.server;
    let Some(declared) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return Ok(());
    };
    if declared
        > limits
            .max_upload_bytes
            .saturating_add(limits.max_body_bytes)
    {
        return Err(Error::TooLarge(format!(
            "the upload declares {declared} bytes; recordings may be at most {} bytes \
             (server.max_upload_bytes)",
            limits.max_upload_bytes
        )));
    }
    Ok(())
}

async fn queue(state: &AppState, user: &User, new: NewCall) -> Result<Call> {
    let call = records::create(&state.db, user, &new).await?;
    queue_existing(state, user, &call).await
}

async fn queue_existing(state: &AppState, user: &User, call: &Call) -> Result<Call> {
    let job = state
        .jobs
        .enqueue(
            ANALYZE_JOB,
            &serde_json::json!({"call_id": call.id}),
            Some(&user.id),
        )
        .await?;
    records::set_job(&state.db, &call.id, &job.id).await?;
    records::get(&state.db, &call.id).await
}

/// Uploads a recording (multipart, streamed to disk, format sniffed from the content) and
/// queues its analysis. The same recording uploaded again by the same user returns the
/// existing call with `duplicate: true`.
#[utoipa::path(post, path = "/calls", tag = "calls", security(("token" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, body = Accepted), (status = 200, body = Accepted, description = "already uploaded"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "the job queue is full: try again after Retry-After")))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    headers: header::HeaderMap,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Accepted>)> {
    refuse_declared_oversize(&state, &headers)?;
    let mut multipart = multipart.map_err(|e| {
        Error::InvalidInput(format!(
            "send the recording as multipart/form-data with a `file` field ({e})"
        ))
    })?;
    // Before reading the body: a full queue refuses the upload rather than storing it. The
    // place is held until the call's job is queued.
    let _place = state.jobs.admit().await?;
    let (form, blob) = read_upload(&mut multipart, |field| {
        let state = state.clone();
        Box::pin(async move { store_file(&state, field).await })
    })
    .await?;
    let blob =
        blob.ok_or_else(|| Error::InvalidInput("no `file` field: attach the recording".into()))?;
    if blob.size_bytes == 0 {
        return Err(Error::InvalidInput("the uploaded file is empty".into()));
    }
    sniff(&state, &blob).await?;
    if let Some(call) = records::find_upload(&state.db, &user, &blob.sha256).await? {
        return Ok((
            StatusCode::OK,
            Json(Accepted {
                call,
                duplicate: true,
            }),
        ));
    }
    let call = queue(
        &state,
        &user,
        NewCall {
            title: form.title.unwrap_or_else(|| "call".into()),
            call_date: form.call_date,
            language: form.language,
            participants: form.participants,
            blob_sha256: Some(blob.sha256),
            source: "upload",
            channels: form.channels.unwrap_or_else(|| "mix".into()),
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            call,
            duplicate: false,
        }),
    ))
}

/// Imports a transcript another tool made (the JSON format in the README) and queues the
/// extraction; no speech recognition runs.
#[utoipa::path(post, path = "/calls/import-transcript", tag = "calls", security(("token" = [])),
    request_body = CallTranscript,
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody)))]
pub async fn import_transcript(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    body: std::result::Result<String, StringRejection>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let t = CallTranscript::from_json(&body?)?;
    let call = records::import(&state.db, &user, &t).await?;
    let call = queue_existing(&state, &user, &call).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            call,
            duplicate: false,
        }),
    ))
}

/// The caller's calls (a manager: their region's), newest first.
#[utoipa::path(get, path = "/calls", tag = "calls", security(("token" = [])),
    responses((status = 200, body = Vec<Call>)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
) -> Result<Json<Vec<Call>>> {
    Ok(Json(records::list_scoped(&state.db, &user).await?))
}

/// A call with its analysis status and progress (0–100).
#[utoipa::path(get, path = "/calls/{id}", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = Call), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Call>> {
    Ok(Json(records::get_scoped(&state.db, &user, &id).await?))
}

/// The call's timestamped transcript.
#[utoipa::path(get, path = "/calls/{id}/transcript", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = CallTranscript), (status = 404, body = ErrorBody)))]
pub async fn transcript(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<CallTranscript>> {
    let call = records::get_scoped(&state.db, &user, &id).await?;
    let t = records::transcript(&state.db, &call)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "call {id} has no transcript yet (status {}); poll GET /calls/{id}",
                call.status
            ))
        })?;
    Ok(Json(t))
}

/// The call's commitments and objections (with playbook answers), each with its quote.
#[utoipa::path(get, path = "/calls/{id}/insights", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = Insights), (status = 404, body = ErrorBody)))]
pub async fn insights(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Insights>> {
    let call = records::get_scoped(&state.db, &user, &id).await?;
    Ok(Json(records::insights(&state.db, &call.id).await?))
}

async fn call_tasks(state: &AppState, user: &User, id: &str) -> Result<Vec<Task>> {
    let call = records::get_scoped(&state.db, user, id).await?;
    tasks::list(state.db.pool(), &call.id).await
}

/// The call's tasks (one per commitment).
#[utoipa::path(get, path = "/calls/{id}/tasks", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = Vec<Task>), (status = 404, body = ErrorBody)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Task>>> {
    Ok(Json(call_tasks(&state, &user, &id).await?))
}

/// The call's tasks as CSV.
#[utoipa::path(get, path = "/calls/{id}/tasks.csv", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn tasks_csv(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let body = tasks::to_csv(&call_tasks(&state, &user, &id).await?);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body))
}

/// The call's tasks as an iCalendar file of VTODOs (with due dates).
#[utoipa::path(get, path = "/calls/{id}/tasks.ics", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, content_type = "text/calendar", body = String), (status = 404, body = ErrorBody)))]
pub async fn tasks_ics(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let body = tasks::to_ics(&call_tasks(&state, &user, &id).await?);
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    ))
}

/// Marks a task open or done.
#[utoipa::path(post, path = "/calls/{id}/tasks/{task}", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id"), ("task" = String, Path, description = "Task id")),
    request_body = TaskUpdate,
    responses((status = 200, body = Vec<Task>), (status = 404, body = ErrorBody)))]
pub async fn update_task(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path((id, task)): Path<(String, String)>,
    Json(update): Json<TaskUpdate>,
) -> Result<Json<Vec<Task>>> {
    let call = records::get_scoped(&state.db, &user, &id).await?;
    tasks::set_status(state.db.pool(), &call.id, &task, &update.status).await?;
    Ok(Json(tasks::list(state.db.pool(), &call.id).await?))
}

/// The MIME type of a recording, from its first bytes (browsers need it to play the file).
fn audio_type(head: &[u8]) -> &'static str {
    match head {
        [b'R', b'I', b'F', b'F', ..] => "audio/wav",
        [b'f', b'L', b'a', b'C', ..] => "audio/flac",
        [b'O', b'g', b'g', b'S', ..] => "audio/ogg",
        [b'I', b'D', b'3', ..] | [0xFF, 0xE0..=0xFF, ..] => "audio/mpeg",
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => "audio/mp4",
        _ => "application/octet-stream",
    }
}

/// The call's recording, with HTTP range requests (so a player can seek).
#[utoipa::path(get, path = "/calls/{id}/recording", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, content_type = "audio/*", body = Vec<u8>), (status = 206, description = "a byte range"),
        (status = 404, body = ErrorBody)))]
pub async fn recording(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<axum::response::Response> {
    let call = records::get_scoped(&state.db, &user, &id).await?;
    let sha = call.blob_sha256.ok_or_else(|| {
        Error::NotFound(format!(
            "call {id} has no recording (its transcript was imported)"
        ))
    })?;
    let recording = state.blobs.local_file(&sha).await?;
    let path = recording.path();
    let mut head = [0u8; 12];
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io("opening the recording", path, e))?;
    let n = tokio::io::AsyncReadExt::read(&mut file, &mut head)
        .await
        .map_err(|e| Error::io("reading the recording", path, e))?;
    let mut response = tower_http::services::ServeFile::new(path)
        .try_call(request)
        .await
        .map_err(|e| Error::io("serving the recording", path, e))?
        .map(axum::body::Body::new);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(audio_type(&head[..n])),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}

/// Maps the call's diarized speaker labels to participants (`null` unmaps a label); the
/// transcript, commitments, objections and tasks are re-attributed and the change is audited.
#[utoipa::path(put, path = "/calls/{id}/speakers", tag = "calls", security(("token" = [])),
    params(("id" = String, Path, description = "Call id")),
    request_body(content = Object, description = "Speaker labels and the participant each now is",
        example = json!({"Speaker 1": "Daniel Okafor", "Speaker 2": null})),
    responses((status = 200, body = Relabelled), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn relabel_speakers(
    State(state): State<AppState>,
    Extension(Caller(user)): Extension<Caller>,
    Path(id): Path<String>,
    Json(changes): Json<std::collections::BTreeMap<String, Option<String>>>,
) -> Result<Json<Relabelled>> {
    Ok(Json(
        relabel::relabel(&state.db, &user, &id, &changes).await?,
    ))
}
