//! The bid team's pages: a tender form (pasted text, or a .txt, .md or .docx file), the
//! similar past bids (winning ones by default) with their highlighted matches, outcome badges
//! and why each ranked, the success factors of winners against losers, a bid's own page with
//! each section under an anchor (what a draft's `[id §section]` citation opens), and the
//! draft page: edit each section, export Markdown, submit for a manager's review
//! (`bids::edit`).

use askama::Template;
use std::collections::HashMap;

use axum::Extension;
use axum::extract::multipart::MultipartError;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::Part;
use super::{Page, render};
use crate::bids::draft::{self, Draft, DraftSection};
use crate::bids::edit::{self, Submission};
use crate::bids::factors::{self, Factors};
use crate::bids::search::Requirements;
use crate::bids::tender_file;
use crate::bids::{Filters, Hit, SearchRequest, StoredBid, Tender};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::jobs::Job;
use crate::review;

#[derive(Deserialize, Default)]
pub struct TenderForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    requirements: String,
    #[serde(default)]
    sector: String,
    #[serde(default)]
    region: String,
    /// `on` when the checkbox is ticked.
    #[serde(default)]
    include_lost: Option<String>,
}

impl TenderForm {
    pub fn tender(&self) -> Result<Tender> {
        let requirements: Vec<String> = self
            .requirements
            .lines()
            .map(|l| {
                l.trim()
                    .trim_start_matches(['-', '*', '•'])
                    .trim()
                    .to_string()
            })
            .filter(|l| !l.is_empty())
            .collect();
        if self.title.trim().is_empty() && requirements.is_empty() {
            return Err(Error::InvalidInput(
                "give the tender's title or at least one requirement".into(),
            ));
        }
        Ok(Tender {
            title: self.title.trim().to_string(),
            sector: self.sector.trim().to_string(),
            region: self.region.trim().to_string(),
            requirements: Requirements::List(requirements),
            ..Tender::default()
        })
    }
}

/// A snippet whose matches the search wrapped in `<b>…</b>`, as plain and marked parts (the
/// text itself is escaped by the template).
fn snippet_parts(snippet: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    for (i, piece) in snippet.split("<b>").enumerate() {
        let (marked, rest) = match piece.split_once("</b>") {
            Some((m, r)) if i > 0 => (m, r),
            _ => ("", piece),
        };
        if !marked.is_empty() {
            parts.push(Part::new(marked, "match"));
        }
        if !rest.is_empty() {
            parts.push(Part::new(rest, ""));
        }
    }
    parts
}

struct HitView {
    hit: Hit,
    outcome: String,
    /// (field label, snippet parts)
    snippets: Vec<(String, Vec<Part>)>,
}

#[derive(Template)]
#[template(path = "bids.html")]
struct BidsPage {
    p: Page,
    form: TenderForm,
    searched: bool,
    hits: Vec<HitView>,
    factors: Option<Factors>,
    /// Why the form was refused (a bad file, no requirements).
    error: Option<String>,
}

/// `GET /app/bids`: the tender form.
pub async fn form(Extension(p): Extension<Page>) -> Response {
    render(&BidsPage {
        p,
        form: TenderForm::default(),
        searched: false,
        hits: Vec::new(),
        factors: None,
        error: None,
    })
}

/// Largest new-tender form with its file: the file's own limit and room for the fields.
pub const UPLOAD_LIMIT: usize = tender_file::MAX_BYTES + 64 * 1024;

fn bad_upload(e: MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge(format!(
            "the tender file is too large; files may be at most {} KiB",
            tender_file::MAX_BYTES / 1024
        ))
    } else {
        Error::InvalidInput(format!(
            "the form did not arrive whole ({}); send it again",
            e.body_text()
        ))
    }
}

/// The new-tender form's fields; a chosen file's text (see [`tender_file`]) becomes the
/// requirements, its leading heading the title when none was typed.
pub async fn read_tender_form(mut multipart: Multipart) -> Result<TenderForm> {
    let mut form = TenderForm::default();
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(bad_upload)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "tender_file" {
            let file_name = field.file_name().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(bad_upload)?;
            if !file_name.is_empty() || !bytes.is_empty() {
                file = Some((file_name, bytes));
            }
            continue;
        }
        let value = field.text().await.map_err(bad_upload)?;
        match name.as_str() {
            "title" => form.title = value,
            "requirements" => form.requirements = value,
            "sector" => form.sector = value,
            "region" => form.region = value,
            "include_lost" => form.include_lost = Some(value),
            _ => {}
        }
    }
    if let Some((name, bytes)) = file {
        if !form.requirements.trim().is_empty() {
            return Err(Error::InvalidInput(
                "paste the requirements or choose a file, not both".into(),
            ));
        }
        let (title, requirements) = tender_file::split_title(&tender_file::text(&name, &bytes)?);
        if form.title.trim().is_empty() {
            form.title = title.unwrap_or_default();
        }
        form.requirements = requirements;
    }
    Ok(form)
}

/// `POST /app/bids` (a multipart form, for the file): the similar bids and success factors of
/// a tender (the same functions as `POST /bids/search` and `POST /bids/factors`). A refused
/// form comes back with its message.
pub async fn search(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    multipart: Multipart,
) -> Result<Response> {
    let refused = |p: Page, form: TenderForm, e: Error| {
        let status = match e {
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        let page = BidsPage {
            p,
            form,
            searched: false,
            hits: Vec::new(),
            factors: None,
            error: Some(e.to_string()),
        };
        Ok((status, render(&page)).into_response())
    };
    let form = match read_tender_form(multipart).await {
        Ok(form) => form,
        Err(e) => return refused(p, TenderForm::default(), e),
    };
    let tender = match form.tender() {
        Ok(tender) => tender,
        Err(e) => return refused(p, form, e),
    };
    let request = SearchRequest {
        tender: tender.clone(),
        filters: Filters {
            include_lost: form.include_lost.is_some(),
            ..Filters::default()
        },
        limit: 10,
    };
    let hits = state
        .bids
        .search(&request)?
        .hits
        .into_iter()
        .map(|hit| HitView {
            outcome: p.t.d("outcome", hit.outcome.as_str()),
            snippets: hit
                .highlights
                .iter()
                .map(|(field, text)| (p.t.d("section", field), snippet_parts(text)))
                .collect(),
            hit,
        })
        .collect();
    let factors = factors::factors(&state.bids, &tender)?;
    Ok(render(&BidsPage {
        p,
        form,
        searched: true,
        hits,
        factors: Some(factors),
        error: None,
    }))
}

#[derive(Template)]
#[template(path = "bid.html")]
struct BidPage {
    p: Page,
    stored: StoredBid,
    outcome: String,
    /// (anchor, label, text) of each non-empty section.
    sections: Vec<(&'static str, String, String)>,
}

/// `GET /app/bids/{id}`: one bid, each section under `#<section name>`.
pub async fn bid(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
) -> Result<Response> {
    let stored = state.bids.get(&id).await?;
    let sections = stored
        .bid
        .sections
        .iter()
        .into_iter()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(name, text)| (name, p.t.d("section", name), text.to_string()))
        .collect();
    Ok(render(&BidPage {
        outcome: p.t.d("outcome", stored.bid.outcome.as_str()),
        p,
        stored,
        sections,
    }))
}

/// `POST /app/drafts`: queues a cited response draft for the tender (the same job as
/// `POST /bids/draft`) and opens its page.
pub async fn start_draft(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Form(form): Form<TenderForm>,
) -> Result<Response> {
    let job = draft::enqueue(&state.jobs, user_of(&p)?, form.tender()?).await?;
    Ok(Redirect::to(&format!("/app/drafts/{}", job.id)).into_response())
}

/// A citation `[bid §section]` as the link to that section of the bid's page.
fn citation_link(citation: &str) -> String {
    let inner = citation
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    match inner.split_once(" §") {
        Some((bid, section)) => format!("/app/bids/{}#{}", bid.trim(), section.trim()),
        None => format!("/app/bids/{}", inner.trim()),
    }
}

/// Where a draft stands in review, for its badge.
fn review_state(rec_state: Option<&str>, submission: Option<&Submission>) -> &'static str {
    match (rec_state, submission) {
        (Some("approved"), _) => "approved",
        (Some("overridden"), _) => "overridden",
        (Some("rejected"), _) => "rejected",
        (_, Some(_)) => "submitted",
        _ => "unsubmitted",
    }
}

#[derive(Deserialize, Default)]
pub struct DraftQuery {
    /// `1` after a save or a submission: the page says so.
    #[serde(default)]
    saved: Option<String>,
    #[serde(default)]
    submitted: Option<String>,
}

#[derive(Template)]
#[template(path = "draft.html")]
struct DraftPage {
    p: Page,
    job: Job,
    status_label: String,
    /// The latest revision, else the AI's draft.
    draft: Option<Draft>,
    /// (index, section, its text for editing)
    sections: Vec<(usize, DraftSection, String)>,
    /// unsubmitted | submitted | approved | overridden | rejected
    state: &'static str,
    editable: bool,
    edited_at: String,
    query: DraftQuery,
}

impl DraftPage {
    fn busy(&self) -> bool {
        matches!(self.job.state.as_str(), "queued" | "running")
    }

    fn link(&self, citation: &str) -> String {
        citation_link(citation)
    }

    fn state_label(&self) -> &'static str {
        self.p.t.s(match self.state {
            "submitted" => "wbids.state_submitted",
            "approved" => "wbids.state_approved",
            "overridden" => "wbids.state_overridden",
            "rejected" => "wbids.state_rejected",
            _ => "wbids.state_unsubmitted",
        })
    }

    /// Rows of a section's edit box: its lines, within reason.
    fn rows(&self, text: &str) -> usize {
        (text.lines().count() + 1).clamp(3, 14)
    }
}

async fn draft_job(state: &AppState, p: &Page, id: &str) -> Result<Job> {
    let job = state.jobs.get_for(id, user_of(p)?).await?;
    if job.kind != draft::DRAFT_JOB {
        return Err(Error::NotFound(format!("no draft {id}")));
    }
    Ok(job)
}

fn user_of(p: &Page) -> Result<&crate::users::User> {
    p.user
        .as_ref()
        .ok_or_else(|| Error::Unauthenticated(String::new()))
}

fn draft_of(job: &Job) -> Result<Option<Draft>> {
    job.result
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::Internal(format!("draft {} is not readable: {e}", job.id)))
}

/// The finished AI draft of job `id`.
async fn finished_draft(state: &AppState, p: &Page, id: &str) -> Result<Draft> {
    draft_of(&draft_job(state, p, id).await?)?
        .ok_or_else(|| Error::Conflict(format!("draft {id} is not finished yet")))
}

/// `GET /app/drafts/{id}`: the draft's progress, then its sections with clickable citations,
/// each editable until it is submitted, and its review state.
pub async fn draft_page(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
    Query(query): Query<DraftQuery>,
) -> Result<Response> {
    let job = draft_job(&state, &p, &id).await?;
    let ai_draft = draft_of(&job)?;
    let user = user_of(&p)?;
    let mut rec_state = None;
    let mut author = false;
    let mut submission = None;
    let mut draft = None;
    if let Some(ai) = ai_draft {
        if let Some(rec) = &ai.recommendation_id {
            let rec = review::get(&state.db, user, rec).await?;
            author = rec.owner_id.as_deref() == Some(user.id.as_str());
            rec_state = Some(rec.state);
        }
        submission = edit::submission(&state.db, &id).await?;
        draft = Some(edit::latest(&state.db, &id).await?.unwrap_or(ai));
    }
    let review_state = review_state(rec_state.as_deref(), submission.as_ref());
    let sections = draft
        .iter()
        .flat_map(|d| d.sections.iter().cloned().enumerate())
        .map(|(i, s)| {
            let text = edit::section_text(&s);
            (i, s, text)
        })
        .collect();
    Ok(render(&DraftPage {
        status_label: p.t.d("status", &job.state),
        edited_at: draft
            .as_ref()
            .and_then(|d| d.edited_at)
            .map(super::pages::when)
            .unwrap_or_default(),
        editable: review_state == "unsubmitted" && author,
        state: review_state,
        p,
        job,
        draft,
        sections,
        query,
    }))
}

/// `POST /app/drafts/{id}/edit`: saves the edited sections (`s0`, `s1`, … in order) as a new
/// revision of the draft.
pub async fn save_draft(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<Response> {
    let ai = finished_draft(&state, &p, &id).await?;
    let texts: Vec<String> = (0..ai.sections.len())
        .map(|i| fields.get(&format!("s{i}")).cloned().unwrap_or_default())
        .collect();
    edit::save(&state.db, user_of(&p)?, &id, &ai, &texts).await?;
    Ok(Redirect::to(&format!("/app/drafts/{id}?saved=1#draft")).into_response())
}

/// `POST /app/drafts/{id}/submit`: submits the draft (its latest revision) for a manager's
/// review.
pub async fn submit_draft(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
) -> Result<Response> {
    let ai = finished_draft(&state, &p, &id).await?;
    edit::submit(&state.db, user_of(&p)?, &id, &ai).await?;
    Ok(Redirect::to(&format!("/app/drafts/{id}?submitted=1")).into_response())
}

/// `GET /app/drafts/{id}/draft.md`: the draft (its latest revision) as Markdown.
pub async fn draft_markdown(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
) -> Result<Response> {
    let ai = finished_draft(&state, &p, &id).await?;
    let draft = edit::latest(&state.db, &id).await?.unwrap_or(ai);
    Ok((
        [
            (CONTENT_TYPE, "text/markdown; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"draft.md\""),
        ],
        draft::markdown(&draft),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_split_into_plain_and_matched_parts() {
        let parts = snippet_parts("Bedside <b>monitors</b> for the <b>ICU</b>.");
        let shown: Vec<(&str, &str)> = parts.iter().map(|p| (p.text.as_str(), p.mark)).collect();
        assert_eq!(
            shown,
            [
                ("Bedside ", ""),
                ("monitors", "match"),
                (" for the ", ""),
                ("ICU", "match"),
                (".", "")
            ]
        );
    }

    #[test]
    fn citations_link_to_the_cited_section() {
        assert_eq!(
            citation_link("[SB-101 §technical_approach]"),
            "/app/bids/SB-101#technical_approach"
        );
        assert_eq!(citation_link("[SB-7]"), "/app/bids/SB-7");
    }

    #[test]
    fn a_tender_needs_a_title_or_requirements() {
        let form = TenderForm {
            requirements: "- Bedside monitors\n\n* Central station\n".into(),
            ..TenderForm::default()
        };
        let t = form.tender().unwrap();
        match t.requirements {
            Requirements::List(r) => assert_eq!(r, ["Bedside monitors", "Central station"]),
            Requirements::Text(_) => panic!("a list is expected"),
        }
        assert!(TenderForm::default().tender().is_err());
    }
}
