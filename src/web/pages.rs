//! The page handlers: each reads what it shows through the same domain functions as the JSON
//! API and renders one template. Errors are returned as [`Error`]s; [`super::guard`] turns
//! them into the HTML error page.

use std::collections::HashMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::call::{EditField, Review, SpeakerRow, Stats, speaker_rows};
use super::session::{self, LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE};
use super::{Lang, Page, Tr, render};
use crate::calls::analytics;
use crate::calls::extract::Category;
use crate::calls::records::{self, Call};
use crate::calls::tasks::{self, Task};
use crate::calls::trackers::Trackers;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::review::audit::Event;
use crate::review::{self, Decision, Filter, Kind, Recommendation};
use crate::users::{Role, throttle};

/// `ms` since the epoch as `YYYY-MM-DD HH:MM` (UTC).
pub(super) fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A position in a recording as `m:ss`.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Percent-encodes a path for a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after a form: a path inside the app, never another site.
fn local(path: &str) -> &str {
    if path.starts_with("/app") && !path.contains("//") && !path.contains('\\') {
        path
    } else {
        "/app"
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    p: Page,
    status: u16,
    title: &'static str,
    summary: &'static str,
    detail: String,
}

/// The error page for `status`: what happened in the user's language and, when the domain
/// said more, its exact message beneath (domain messages are English, the API's contract).
pub fn error_page(t: Tr, page: Option<&Page>, status: StatusCode, detail: &str) -> Response {
    error_page_saying(t, page, status, None, detail)
}

/// The error page with a specific `summary` string key instead of the status's default one.
pub fn error_page_saying(
    t: Tr,
    page: Option<&Page>,
    status: StatusCode,
    summary: Option<&'static str>,
    detail: &str,
) -> Response {
    let p = page.cloned().unwrap_or(Page {
        t,
        lang: t.0,
        user: None,
        csrf: String::new(),
        path: String::new(),
    });
    let (title, default) = match status.as_u16() {
        401 => ("error.unauthenticated_title", "error.unauthenticated"),
        403 => ("error.forbidden_title", "error.forbidden"),
        404 => ("error.not_found_title", "error.not_found"),
        409 => ("error.conflict_title", "error.conflict"),
        413 => ("error.too_large_title", "error.too_large"),
        400 | 422 => ("error.invalid_title", "error.invalid"),
        503 => ("error.unavailable_title", "error.unavailable"),
        _ => ("error.failed_title", "error.failed"),
    };
    let page = ErrorPage {
        title: t.s(title),
        p,
        status: status.as_u16(),
        summary: t.s(summary.unwrap_or(default)),
        detail: detail.to_string(),
    };
    (status, render(&page)).into_response()
}

fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for cookie in cookies {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

// ---------------------------------------------------------------------------------------
// Sign-in, sign-out, language

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignIn {
    p: Page,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /app/sign-in`.
pub async fn sign_in_form(Extension(p): Extension<Page>, Query(q): Query<NextQuery>) -> Response {
    if p.user.is_some() {
        return Redirect::to("/app").into_response();
    }
    let next = local(q.next.as_deref().unwrap_or("/app")).to_string();
    render(&SignIn {
        p,
        next,
        error: None,
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    next: Option<String>,
}

/// `POST /app/sign-in`: an API token → a session cookie. Failed sign-ins count against the
/// client's address; a locked-out address gets the form again with 429 and `Retry-After`.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<SignInForm>,
) -> Result<Response> {
    let next = local(form.next.as_deref().unwrap_or("/app")).to_string();
    let hours = state.config.web.session_hours;
    let access = &state.config.access;
    let client = crate::http::client_address(access, &headers, &extensions);
    let start = session::start(&state.db, &form.token, hours);
    let (id, _) = match throttle::attempt(&state.db, access, &client, start).await {
        Ok(started) => started,
        Err(Error::Unauthenticated(_)) => {
            let error = Some(p.t.s("sign_in.bad_token").to_string());
            let page = render(&SignIn { p, next, error });
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
        Err(Error::RateLimited {
            retry_after_secs, ..
        }) => {
            let minutes = retry_after_secs.div_ceil(60).to_string();
            let error = Some(p.t.s("sign_in.locked").replace("{minutes}", &minutes));
            let page = render(&SignIn { p, next, error });
            let retry = [(RETRY_AFTER, retry_after_secs.to_string())];
            return Ok((StatusCode::TOO_MANY_REQUESTS, retry, page).into_response());
        }
        Err(e) => return Err(e),
    };
    let secure = state.config.web.secure_cookies;
    Ok(with_cookies(
        Redirect::to(&next).into_response(),
        &[
            session::set_cookie(SESSION_COOKIE, &id, hours * 3600, secure),
            session::set_cookie(PRE_COOKIE, "", 0, secure),
        ],
    ))
}

/// `POST /app/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    if let Some(id) = session::cookie(&headers, SESSION_COOKIE) {
        session::end(&state.db, &id).await?;
    }
    Ok(with_cookies(
        Redirect::to("/app/sign-in").into_response(),
        &[session::set_cookie(
            SESSION_COOKIE,
            "",
            0,
            state.config.web.secure_cookies,
        )],
    ))
}

#[derive(Deserialize)]
pub struct LangForm {
    lang: String,
    back: Option<String>,
}

/// `POST /app/lang`: remembers the UI language in a cookie for a year.
pub async fn set_lang(
    State(state): State<AppState>,
    Form(form): Form<LangForm>,
) -> Result<Response> {
    let lang = Lang::parse(&form.lang)
        .ok_or_else(|| Error::InvalidInput(format!("unknown language {:?}", form.lang)))?;
    let code = if lang == Lang::Zh { "zh" } else { "en" };
    Ok(with_cookies(
        Redirect::to(local(form.back.as_deref().unwrap_or("/app"))).into_response(),
        &[session::set_cookie(
            LANG_COOKIE,
            code,
            365 * 86_400,
            state.config.web.secure_cookies,
        )],
    ))
}

// ---------------------------------------------------------------------------------------
// Home and calls

/// A call in a list.
struct CallRow {
    id: String,
    title: String,
    status: String,
    status_label: String,
    progress: i64,
    created: String,
    error: String,
}

impl CallRow {
    fn new(t: Tr, call: &Call) -> CallRow {
        CallRow {
            id: call.id.clone(),
            title: call.title.clone(),
            status: call.status.clone(),
            status_label: t.d("status", &call.status),
            progress: call.progress,
            created: when(call.created_at),
            error: call.error.clone().unwrap_or_default(),
        }
    }

    fn busy(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
    }
}

async fn call_rows(state: &AppState, p: &Page) -> Result<Vec<CallRow>> {
    let Some(user) = &p.user else {
        return Ok(Vec::new());
    };
    Ok(records::list_scoped(&state.db, user)
        .await?
        .iter()
        .map(|c| CallRow::new(p.t, c))
        .collect())
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    p: Page,
    calls: Vec<CallRow>,
    tasks: Vec<Task>,
    pending: usize,
}

/// `GET /app`: the home page of the user's role.
pub async fn home(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let mut calls = if p.may_call() {
        call_rows(&state, &p).await?
    } else {
        Vec::new()
    };
    calls.truncate(5);
    let tasks = if user.role == Role::Rep {
        tasks::open_for_owner(state.db.pool(), &user.id).await?
    } else {
        Vec::new()
    };
    let pending = if p.may_review() {
        review::triage(&state.db, &state.rules.current()).await?;
        let filter = Filter {
            state: Some("proposed".into()),
            ..Filter::default()
        };
        review::list(&state.db, &user, &filter).await?.len()
    } else {
        0
    };
    Ok(render(&Home {
        p,
        calls,
        tasks,
        pending,
    }))
}

#[derive(Template)]
#[template(path = "calls.html")]
struct Calls {
    p: Page,
    calls: Vec<CallRow>,
}

/// `GET /app/calls`: the user's calls and the upload box.
pub async fn calls(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
) -> Result<Response> {
    let calls = call_rows(&state, &p).await?;
    Ok(render(&Calls { p, calls }))
}

/// A piece of text: plain (`mark` empty), or highlighted with the class `mark` (a commitment
/// or objection quote, a search match).
pub struct Part {
    pub text: String,
    pub mark: &'static str,
}

impl Part {
    pub fn new(text: &str, mark: &'static str) -> Part {
        Part {
            text: text.to_string(),
            mark,
        }
    }
}

/// A transcript line.
struct Line {
    id: u32,
    start_ms: u64,
    end_ms: u64,
    at: String,
    speaker: String,
    parts: Vec<Part>,
}

/// Splits `text` into plain pieces and the `quotes` found in it (first match each, no overlap).
fn highlight(text: &str, quotes: &[(&str, &'static str)]) -> Vec<Part> {
    let mut found: Vec<(usize, usize, &'static str)> = quotes
        .iter()
        .filter(|(q, _)| !q.is_empty())
        .filter_map(|(q, mark)| text.find(q).map(|i| (i, i + q.len(), *mark)))
        .collect();
    found.sort();
    let mut parts = Vec::new();
    let mut at = 0;
    for (start, end, mark) in found {
        if start < at {
            continue;
        }
        if start > at {
            parts.push(Part::new(&text[at..start], ""));
        }
        parts.push(Part::new(&text[start..end], mark));
        at = end;
    }
    if at < text.len() || parts.is_empty() {
        parts.push(Part::new(&text[at..], ""));
    }
    parts
}

struct CommitmentView {
    owner: String,
    action: String,
    due: String,
    quote: String,
    start_ms: u64,
    at: String,
    needs_relabel: bool,
    edit: Vec<EditField>,
    review: Review,
}

struct ObjectionView {
    category: String,
    raised_by: String,
    quote: String,
    resolved: bool,
    answer: String,
    start_ms: u64,
    at: String,
    needs_relabel: bool,
    edit: Vec<EditField>,
    review: Review,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    p: Page,
    call: CallRow,
    language: String,
    has_audio: bool,
    lines: Vec<Line>,
    commitments: Vec<CommitmentView>,
    objections: Vec<ObjectionView>,
    tasks: Vec<Task>,
    speakers: Vec<SpeakerRow>,
    participants: Vec<String>,
    stats: Option<Stats>,
}

/// `GET /app/calls/{id}`: player, transcript, insights with their review state and tasks (or
/// the live progress), speaker labels and analytics.
pub async fn call(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let call = records::get_scoped(&state.db, &user, &id).await?;
    let transcript = records::transcript(&state.db, &call).await?;
    let insights = records::insights(&state.db, &call.id).await?;
    let tasks = tasks::list(state.db.pool(), &call.id).await?;
    review::triage(&state.db, &state.rules.current()).await?;
    let recs = review::queue::for_subject(&state.db, &user, "call", &call.id).await?;
    let stats = match &transcript {
        Some(t) => Some(Stats::new(
            p.t,
            &analytics::analyze(t, &Trackers::load(&state.config)?),
        )),
        None => None,
    };
    let (speakers, participants): (Vec<SpeakerRow>, Vec<String>) = transcript
        .as_ref()
        .map(|t| {
            let names = t.participants.iter().map(|p| p.name.clone()).collect();
            (speaker_rows(t), names)
        })
        .unwrap_or_default();
    let lines = transcript
        .map(|t| {
            t.segments
                .iter()
                .map(|seg| {
                    let quotes: Vec<(&str, &'static str)> = insights
                        .commitments
                        .iter()
                        .filter(|c| c.turn == seg.id)
                        .map(|c| (c.quote.as_str(), "commitment"))
                        .chain(
                            insights
                                .objections
                                .iter()
                                .filter(|o| o.turn == seg.id)
                                .map(|o| (o.quote.as_str(), "objection")),
                        )
                        .collect();
                    Line {
                        id: seg.id,
                        start_ms: seg.start_ms,
                        end_ms: seg.end_ms,
                        at: clock(seg.start_ms),
                        speaker: seg.speaker.clone().unwrap_or_default(),
                        parts: highlight(&seg.text, &quotes),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let t = p.t;
    let categories: Vec<(String, String)> = Category::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), t.d("category", c.as_str())))
        .collect();
    let commitments = insights
        .commitments
        .iter()
        .map(|c| {
            let review = Review::find(p.t, &user, &recs, Kind::Commitment, c.turn, &c.quote);
            let due = c
                .due_date
                .map(|d| d.to_string())
                .or_else(|| c.due_text.clone())
                .unwrap_or_default();
            let owner = review.value("owner", &c.owner);
            let due = review.value("due_date", &due);
            let action = review.value("action", &c.action);
            let names = participants
                .iter()
                .map(|n| (n.clone(), n.clone()))
                .collect();
            let edit = vec![
                EditField::new("action", t.s("tasks.action"), "text", &action),
                EditField::select("owner", t.s("call.owner"), &owner, names),
                EditField::new("due_date", t.s("call.due"), "date", &due),
            ];
            CommitmentView {
                owner,
                action,
                due,
                quote: c.quote.clone(),
                start_ms: c.start_ms,
                at: clock(c.start_ms),
                needs_relabel: c.needs_relabel,
                edit,
                review,
            }
        })
        .collect();
    let objections = insights
        .objections
        .iter()
        .map(|o| {
            let review = Review::find(p.t, &user, &recs, Kind::ObjectionAnswer, o.turn, &o.quote);
            let category = review.value("category", o.category.as_str());
            let answer = review.value("answer", &o.answer);
            let edit = vec![
                EditField::select(
                    "category",
                    t.s("call_review.category"),
                    &category,
                    categories.clone(),
                ),
                EditField::new("answer", t.s("call.playbook"), "textarea", &answer),
            ];
            ObjectionView {
                category: t.d("category", &category),
                raised_by: o.raised_by.clone(),
                quote: o.quote.clone(),
                resolved: o.resolved,
                answer,
                start_ms: o.start_ms,
                at: clock(o.start_ms),
                needs_relabel: o.needs_relabel,
                edit,
                review,
            }
        })
        .collect();
    Ok(render(&CallPage {
        call: CallRow::new(p.t, &call),
        language: call.language.clone().unwrap_or_default(),
        has_audio: call.blob_sha256.is_some(),
        p,
        lines,
        commitments,
        objections,
        tasks,
        speakers,
        participants,
        stats,
    }))
}

// ---------------------------------------------------------------------------------------
// Review

/// A recommendation in the queue.
struct Item {
    id: String,
    kind_label: String,
    subject: String,
    /// The app page of the subject, when there is one.
    subject_link: String,
    region: String,
    owner: String,
    created: String,
    state: String,
    state_label: String,
    escalated: bool,
    summary: String,
    /// The output as pretty JSON: the starting point of an override.
    output: String,
    explanation: String,
    confidence: String,
}

impl Item {
    fn new(t: Tr, r: &Recommendation, names: &HashMap<String, String>) -> Item {
        let subject = format!("{}:{}", r.subject_kind, r.subject_id);
        Item {
            id: r.id.clone(),
            kind_label: t.d("kind", r.kind.as_str()),
            subject_link: if r.subject_kind == "call" {
                format!("/app/calls/{}", r.subject_id)
            } else {
                String::new()
            },
            subject,
            region: r.region.clone(),
            owner: r
                .owner_id
                .as_ref()
                .and_then(|o| names.get(o).cloned())
                .unwrap_or_default(),
            created: when(r.created_at),
            state: r.state.clone(),
            state_label: t.d("state", &r.state),
            escalated: r.escalated_at.is_some(),
            summary: summary(&r.output),
            output: serde_json::to_string_pretty(&r.output).unwrap_or_default(),
            explanation: r.explanation.clone().unwrap_or_default(),
            confidence: r.confidence.map(|c| format!("{c:.2}")).unwrap_or_default(),
        }
    }
}

/// One line that says what an output is: its text fields, joined.
fn summary(output: &serde_json::Value) -> String {
    let fields = ["owner", "action", "due_date", "category", "quote", "title"];
    let text: Vec<String> = fields
        .iter()
        .filter_map(|f| output.get(*f))
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if text.is_empty() {
        let mut compact = output.to_string();
        if compact.len() > 200 {
            let cut = (0..=200)
                .rev()
                .find(|i| compact.is_char_boundary(*i))
                .unwrap_or(0);
            compact.truncate(cut);
            compact.push('…');
        }
        compact
    } else {
        text.join(" · ")
    }
}

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    kind: Option<String>,
    owner: Option<String>,
    region: Option<String>,
    state: Option<String>,
    decided: Option<String>,
}

/// An option of a filter.
struct Choice {
    value: &'static str,
    label: String,
    selected: bool,
}

fn choices(t: Tr, section: &str, values: &[&'static str], current: &str) -> Vec<Choice> {
    values
        .iter()
        .map(|v| Choice {
            value: v,
            label: t.d(section, v),
            selected: *v == current,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct Reviews {
    p: Page,
    items: Vec<Item>,
    kinds: Vec<Choice>,
    /// The reps whose items the user may filter by: (id, name, selected).
    owners: Vec<(String, String, bool)>,
    region: String,
    states: Vec<Choice>,
    decided: String,
}

/// `GET /app/reviews`: the review queue, escalated first, then oldest first.
pub async fn reviews(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Query(q): Query<QueueQuery>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let kind = nonempty(&q.kind).map(|k| Kind::parse(&k)).transpose()?;
    let state_filter = q.state.clone().unwrap_or_else(|| "proposed".into());
    let filter = Filter {
        state: Some(state_filter.clone()).filter(|s| s != "all"),
        kind,
        region: nonempty(&q.region),
        owner: nonempty(&q.owner),
        ..Filter::default()
    };
    review::triage(&state.db, &state.rules.current()).await?;
    let people = crate::users::list(&state.db).await?;
    let names = people
        .iter()
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    let owners = people
        .into_iter()
        .filter(|u| u.role == Role::Rep && (user.role == Role::Admin || u.region == user.region))
        .map(|u| {
            let selected = filter.owner.as_deref() == Some(u.id.as_str());
            (u.id, u.name, selected)
        })
        .collect();
    let items = review::list(&state.db, &user, &filter)
        .await?
        .iter()
        .map(|r| Item::new(p.t, r, &names))
        .collect();
    let t = p.t;
    Ok(render(&Reviews {
        items,
        kinds: choices(
            t,
            "kind",
            &Kind::ALL.map(Kind::as_str),
            kind.map_or("", Kind::as_str),
        ),
        owners,
        region: nonempty(&q.region).unwrap_or_default(),
        states: choices(
            t,
            "state",
            &["proposed", "approved", "overridden", "rejected", "all"],
            &state_filter,
        ),
        decided: q.decided.unwrap_or_default(),
        p,
    }))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    replacement: String,
    #[serde(default)]
    back: String,
}

/// `POST /app/reviews/{id}`: approve, override or reject, then back to the queue.
pub async fn decide(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let decision = match form.action.as_str() {
        "approve" => Decision::Approve { note: None },
        "reject" => Decision::Reject {
            reason: form.reason,
        },
        "override" => Decision::Override {
            // A replacement that is not JSON is taken as text.
            replacement: serde_json::from_str(&form.replacement)
                .unwrap_or(serde_json::Value::String(form.replacement)),
            reason: form.reason,
        },
        other => {
            return Err(Error::InvalidInput(format!(
                "unknown action {other:?}; use approve, override or reject"
            )));
        }
    };
    review::triage(&state.db, &state.rules.current()).await?;
    review::decide(&state.db, &user, &id, &decision).await?;
    let back = local(&form.back);
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}decided={}", encode(&id))).into_response())
}

/// User ids to names, to show people rather than ids.
async fn user_names(state: &AppState) -> Result<HashMap<String, String>> {
    Ok(crate::users::list(&state.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}

#[derive(Deserialize)]
pub struct AuditQuery {
    subject: Option<String>,
}

struct EventRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    reason: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct Audit {
    p: Page,
    subject: String,
    events: Vec<EventRow>,
}

/// `GET /app/audit?subject=`: the audit trail of a subject or recommendation.
pub async fn audit(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let subject = q.subject.unwrap_or_default().trim().to_string();
    let events: Vec<Event> = if subject.is_empty() {
        Vec::new()
    } else {
        review::audit_scoped(&state.db, &user, Some(&subject), 500).await?
    };
    let names = user_names(&state).await?;
    let events = events
        .into_iter()
        .map(|e| EventRow {
            seq: e.seq,
            at: when(e.at),
            actor: e
                .actor_id
                .as_ref()
                .map(|a| names.get(a).cloned().unwrap_or_else(|| a.clone()))
                .unwrap_or_else(|| p.t.s("audit.system").to_string()),
            action: e.action,
            reason: e
                .details
                .as_ref()
                .and_then(|d| d.get("reason"))
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_string(),
            after: e
                .after
                .map(|a| summary(a.get("output").unwrap_or(&a)))
                .unwrap_or_default(),
        })
        .collect();
    Ok(render(&Audit { p, subject, events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_pages_say_what_happened_in_the_page_language_and_keep_the_detail() {
        let zh = Tr(Lang::Zh);
        let response = error_page(
            zh,
            None,
            StatusCode::BAD_REQUEST,
            "unsupported audio format: expected wav, mp3, m4a, ogg or flac",
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains(zh.s("error.invalid_title")), "{html}");
        assert!(html.contains(zh.s("error.invalid")), "{html}");
        assert!(html.contains("unsupported audio format"), "{html}");
        assert!(html.contains(zh.s("error.detail")), "{html}");

        let csrf = error_page_saying(zh, None, StatusCode::FORBIDDEN, Some("error.csrf"), "");
        let body = axum::body::to_bytes(csrf.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains(zh.s("error.csrf")), "{html}");
        assert!(!html.contains(zh.s("error.detail")), "{html}");
    }

    #[test]
    fn quotes_are_highlighted_where_they_occur() {
        let parts = highlight(
            "Sure. I'll send the contract by Friday. Too pricey though.",
            &[
                ("Too pricey", "objection"),
                ("I'll send the contract by Friday.", "commitment"),
            ],
        );
        let shown: Vec<(&str, &str)> = parts.iter().map(|p| (p.text.as_str(), p.mark)).collect();
        assert_eq!(
            shown,
            [
                ("Sure. ", ""),
                ("I'll send the contract by Friday.", "commitment"),
                (" ", ""),
                ("Too pricey", "objection"),
                (" though.", "")
            ]
        );
        let plain = highlight("nothing here", &[("absent", "commitment")]);
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].mark, "");
    }

    #[test]
    fn redirects_stay_inside_the_app() {
        assert_eq!(local("/app/calls"), "/app/calls");
        assert_eq!(local("https://evil.example/app"), "/app");
        assert_eq!(local("//evil.example"), "/app");
        assert_eq!(local("/app//evil"), "/app");
        assert_eq!(encode("/app/x?a=b"), "/app/x%3Fa%3Db");
        assert_eq!(clock(75_000), "1:15");
    }
}
