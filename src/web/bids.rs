//! The bid team's pages: a tender form, the similar past bids (winning ones by default) with
//! their highlighted matches, outcome badges and why each ranked, the success factors of
//! winners against losers, and a bid's own page with each section under an anchor (what a
//! draft's `[id §section]` citation opens).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::pages::Part;
use super::{Page, render};
use crate::bids::draft::{self, Draft};
use crate::bids::factors::{self, Factors};
use crate::bids::search::Requirements;
use crate::bids::{Filters, Hit, SearchRequest, StoredBid, Tender};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::jobs::Job;

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
    fn tender(&self) -> Result<Tender> {
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
}

/// `GET /app/bids`: the tender form.
pub async fn form(Extension(p): Extension<Page>) -> Response {
    render(&BidsPage {
        p,
        form: TenderForm::default(),
        searched: false,
        hits: Vec::new(),
        factors: None,
    })
}

/// `POST /app/bids`: the similar bids and success factors of a tender (the same functions as
/// `POST /bids/search` and `POST /bids/factors`).
pub async fn search(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Form(form): Form<TenderForm>,
) -> Result<Response> {
    let tender = form.tender()?;
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
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let job = draft::enqueue(&state.jobs, &user, form.tender()?).await?;
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

#[derive(Template)]
#[template(path = "draft.html")]
struct DraftPage {
    p: Page,
    job: Job,
    status_label: String,
    draft: Option<Draft>,
}

impl DraftPage {
    fn busy(&self) -> bool {
        matches!(self.job.state.as_str(), "queued" | "running")
    }

    fn link(&self, citation: &str) -> String {
        citation_link(citation)
    }
}

async fn draft_job(state: &AppState, p: &Page, id: &str) -> Result<Job> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let job = state.jobs.get_for(id, &user).await?;
    if job.kind != draft::DRAFT_JOB {
        return Err(Error::NotFound(format!("no draft {id}")));
    }
    Ok(job)
}

fn draft_of(job: &Job) -> Result<Option<Draft>> {
    job.result
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::Internal(format!("draft {} is not readable: {e}", job.id)))
}

/// `GET /app/drafts/{id}`: the draft's progress, then its sections with clickable citations.
pub async fn draft_page(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
) -> Result<Response> {
    let job = draft_job(&state, &p, &id).await?;
    let draft = draft_of(&job)?;
    Ok(render(&DraftPage {
        status_label: p.t.d("status", &job.state),
        p,
        job,
        draft,
    }))
}

/// `GET /app/drafts/{id}/draft.md`: the draft as Markdown.
pub async fn draft_markdown(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Path(id): Path<String>,
) -> Result<Response> {
    let job = draft_job(&state, &p, &id).await?;
    let draft = draft_of(&job)?
        .ok_or_else(|| Error::Conflict(format!("draft {id} is not finished yet")))?;
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
