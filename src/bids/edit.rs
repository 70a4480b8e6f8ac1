//! A bid writer's edits of a tender draft before review, and its submission for review.
//!
//! Why revisions and not the review's override: an override is the reviewer's decision (for
//! tender drafts, a manager's, by `rules.toml`) and closes the recommendation. The writer's
//! edits come before review, so they are revisions of the proposal: each save is a row in
//! `draft_edits` (who, when, the whole edited draft), audited as `draft.edited`; the AI's own
//! draft stays in the job's result and in the `recommendation.proposed` audit event. Submitting
//! puts the latest revision into the recommendation's output — what the manager approves,
//! overrides or rejects in the queue — records who submitted it when, and is audited as
//! `draft.submitted`. A submitted or decided draft is no longer editable.
//!
//! Each section is edited as text: `- ` lines are bullets, other lines paragraph sentences,
//! each with its `[bid-id §section]` citations. Citations are checked again: one that is not
//! among the AI draft's sources, and a statement citing nothing, are flagged on the section.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::Row;

use super::draft::{Bullet, Draft, DraftSection, Sentence};
use crate::error::{Error, Result};
use crate::review::audit::{self, NewEvent};
use crate::review::{self, Recommendation};
use crate::store::{Db, new_id, now_ms};
use crate::users::User;

/// Longest edited text of one section, in characters.
pub const MAX_SECTION_CHARS: usize = 20_000;

/// A section as the text a person edits: bullets as `- ` lines, then a blank line and the
/// paragraph's sentences, one per line; each with its citation.
pub fn section_text(section: &DraftSection) -> String {
    let mut lines: Vec<String> = section
        .bullets
        .iter()
        .map(|b| {
            format!("- {} {}", b.text, b.citation)
                .trim_end()
                .to_string()
        })
        .collect();
    if !section.paragraph.is_empty() {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.extend(
            section
                .paragraph
                .iter()
                .map(|s| format!("{} {}", s.text, s.citation).trim_end().to_string()),
        );
    }
    lines.join("\n")
}

/// The citations the AI draft drew its evidence from: what an edited text may cite.
pub fn sources(ai_draft: &Draft) -> BTreeSet<String> {
    ai_draft
        .sections
        .iter()
        .flat_map(|s| s.bullets.iter().map(|b| b.citation.clone()))
        .collect()
}

/// A line's text without its `[… §…]` citations, and the citations in order.
fn split_citations(line: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut citations = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 1..close];
        text.push_str(&rest[..open]);
        if inner.contains('§') {
            let (bid, section) = inner.split_once('§').unwrap_or((inner, ""));
            citations.push(format!("[{} §{}]", bid.trim(), section.trim()));
        } else {
            text.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    (
        text.split_whitespace().collect::<Vec<_>>().join(" "),
        citations,
    )
}

/// The bid id and section of a `[bid-id §section]` citation.
fn cited(citation: &str) -> (String, String) {
    let inner = citation.trim_start_matches('[').trim_end_matches(']');
    let (bid, section) = inner.split_once(" §").unwrap_or((inner, ""));
    (bid.to_string(), section.to_string())
}

/// `section` with its bullets and paragraph replaced by the edited `text`, its citations
/// checked against `sources`.
fn revise_section(
    section: &DraftSection,
    text: &str,
    sources: &BTreeSet<String>,
) -> Result<DraftSection> {
    if text.chars().count() > MAX_SECTION_CHARS {
        return Err(Error::InvalidInput(format!(
            "the section {:?} is longer than {MAX_SECTION_CHARS} characters; shorten it",
            section.requirement
        )));
    }
    let mut out = DraftSection {
        bullets: Vec::new(),
        paragraph: Vec::new(),
        dropped: Vec::new(),
        unsourced: Vec::new(),
        uncited: Vec::new(),
        ..section.clone()
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (bullet, line) = match line.strip_prefix(['-', '*', '•']) {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let (statement, citations) = split_citations(line);
        if statement.is_empty() {
            continue;
        }
        for c in &citations {
            if !sources.contains(c) && !out.unsourced.contains(c) {
                out.unsourced.push(c.clone());
            }
        }
        if citations.is_empty() {
            out.uncited.push(statement.clone());
        }
        // A statement with several citations keeps the first as its own; all are checked.
        let citation = citations.into_iter().next().unwrap_or_default();
        if bullet {
            let (bid_id, section) = cited(&citation);
            out.bullets.push(Bullet {
                text: statement,
                citation,
                bid_id,
                section,
            });
        } else {
            out.paragraph.push(Sentence {
                text: statement,
                citation,
            });
        }
    }
    Ok(out)
}

/// The AI draft with each section replaced by its edited text (one per section, in order),
/// marked as edited by `editor` at `at`.
pub fn revise(ai_draft: &Draft, texts: &[String], editor: &str, at: i64) -> Result<Draft> {
    if texts.len() != ai_draft.sections.len() {
        return Err(Error::InvalidInput(format!(
            "the draft has {} sections but {} were sent; reload the page and edit again",
            ai_draft.sections.len(),
            texts.len()
        )));
    }
    let sources = sources(ai_draft);
    let sections = ai_draft
        .sections
        .iter()
        .zip(texts)
        .map(|(s, text)| revise_section(s, text, &sources))
        .collect::<Result<Vec<_>>>()?;
    Ok(Draft {
        sections,
        edited_by: Some(editor.to_string()),
        edited_at: Some(at),
        ..ai_draft.clone()
    })
}

/// Who submitted a draft for review, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub submitted_by: String,
    pub submitted_at: i64,
}

/// The latest saved revision of the draft of job `job_id`, if it was edited.
pub async fn latest(db: &Db, job_id: &str) -> Result<Option<Draft>> {
    let output: Option<String> = sqlx::query_scalar(
        "SELECT output FROM draft_edits WHERE job_id = $1 ORDER BY created_at DESC, id DESC \
         LIMIT 1",
    )
    .bind(job_id)
    .fetch_optional(db.pool())
    .await?;
    output
        .map(|o| {
            serde_json::from_str(&o)
                .map_err(|e| Error::Internal(format!("edited draft {job_id} is not readable: {e}")))
        })
        .transpose()
}

/// Whether (and by whom) the draft of job `job_id` was submitted for review.
pub async fn submission(db: &Db, job_id: &str) -> Result<Option<Submission>> {
    let row =
        sqlx::query("SELECT submitted_by, submitted_at FROM draft_submissions WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(db.pool())
            .await?;
    row.map(|r| {
        Ok(Submission {
            submitted_by: r.try_get("submitted_by")?,
            submitted_at: r.try_get("submitted_at")?,
        })
    })
    .transpose()
}

/// The draft's recommendation, if `user` may still change it: its author, undecided and not
/// yet submitted.
async fn editable(db: &Db, user: &User, job_id: &str, ai_draft: &Draft) -> Result<Recommendation> {
    let id = ai_draft.recommendation_id.as_deref().ok_or_else(|| {
        Error::Conflict(format!(
            "draft {job_id} was not stored for review; draft it again"
        ))
    })?;
    let rec = review::get(db, user, id).await?;
    if rec.owner_id.as_deref() != Some(user.id.as_str()) {
        return Err(Error::Forbidden(format!(
            "only the author of draft {job_id} edits and submits it; managers decide it in the \
             review queue"
        )));
    }
    if rec.state != "proposed" {
        return Err(Error::Conflict(format!(
            "draft {job_id} was already {} by a manager; it can no longer be edited",
            rec.state
        )));
    }
    if submission(db, job_id).await?.is_some() {
        return Err(Error::Conflict(format!(
            "draft {job_id} was submitted for review; it can no longer be edited"
        )));
    }
    Ok(rec)
}

/// Saves `user`'s edit of the draft of job `job_id` (the AI's draft is `ai_draft`) as a new
/// revision, audited with the revision before it, and returns the revision.
pub async fn save(
    db: &Db,
    user: &User,
    job_id: &str,
    ai_draft: &Draft,
    texts: &[String],
) -> Result<Draft> {
    let rec = editable(db, user, job_id, ai_draft).await?;
    let now = now_ms();
    let revised = revise(ai_draft, texts, &user.name, now)?;
    let before = latest(db, job_id)
        .await?
        .unwrap_or_else(|| ai_draft.clone());
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO draft_edits (id, job_id, recommendation_id, editor_id, output, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(job_id)
    .bind(&rec.id)
    .bind(&user.id)
    .bind(serde_json::to_string(&revised).expect("a draft serializes"))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let flagged: usize = revised
        .sections
        .iter()
        .map(|s| s.unsourced.len() + s.uncited.len())
        .sum();
    audit::append(
        &mut tx,
        NewEvent {
            actor_id: Some(&user.id),
            action: "draft.edited",
            subject: format!("{}:{}", rec.subject_kind, rec.subject_id),
            recommendation_id: Some(&rec.id),
            before: Some(json!(before)),
            after: Some(json!(revised)),
            details: Some(json!({"job_id": job_id, "flagged_statements": flagged})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(revised)
}

/// Submits the draft of job `job_id` for manager review: its latest revision (or the AI's
/// draft, if unedited) becomes the recommendation's output, in one transaction with the
/// submission and its audit event.
pub async fn submit(db: &Db, user: &User, job_id: &str, ai_draft: &Draft) -> Result<Submission> {
    let rec = editable(db, user, job_id, ai_draft).await?;
    let current = latest(db, job_id).await?;
    let edited = current.is_some();
    let now = now_ms();
    let mut tx = db.begin().await?;
    if let Some(revised) = &current {
        let updated = sqlx::query(
            "UPDATE recommendations SET output = $1, updated_at = $2 \
             WHERE id = $3 AND state = 'proposed'",
        )
        .bind(serde_json::to_string(revised).expect("a draft serializes"))
        .bind(now)
        .bind(&rec.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(Error::Conflict(format!(
                "draft {job_id} was decided meanwhile; reload the page"
            )));
        }
    }
    let inserted = sqlx::query(
        "INSERT INTO draft_submissions (job_id, recommendation_id, submitted_by, submitted_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(job_id)
    .bind(&rec.id)
    .bind(&user.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "draft {job_id} was already submitted for review"
        )));
    }
    audit::append(
        &mut tx,
        NewEvent {
            actor_id: Some(&user.id),
            action: "draft.submitted",
            subject: format!("{}:{}", rec.subject_kind, rec.subject_id),
            recommendation_id: Some(&rec.id),
            before: Some(json!({"output": rec.output})),
            after: Some(json!({"output": current.unwrap_or_else(|| ai_draft.clone())})),
            details: Some(json!({"job_id": job_id, "edited": edited})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Submission {
        submitted_by: user.id.clone(),
        submitted_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bids::Lang;
    use crate::review::tests_support::{World, proposal, propose_one};
    use crate::review::{Decision, Kind, Rules, decide, triage};

    fn ai_draft() -> Draft {
        let bullet = |text: &str, bid: &str, section: &str| Bullet {
            text: text.into(),
            citation: format!("[{bid} §{section}]"),
            bid_id: bid.into(),
            section: section.into(),
        };
        let section = |requirement: &str, bullets: Vec<Bullet>| DraftSection {
            requirement: requirement.into(),
            maps_to: "technical_approach".into(),
            paragraph: vec![Sentence {
                text: bullets[0].text.clone(),
                citation: bullets[0].citation.clone(),
            }],
            bullets,
            dropped: Vec::new(),
            unsourced: Vec::new(),
            uncited: Vec::new(),
        };
        Draft {
            ai_generated: true,
            notice: "AI-generated draft".into(),
            title: "ICU monitoring".into(),
            language: Lang::En,
            precedents: vec!["SB-101".into(), "SB-102".into()],
            sections: vec![
                section(
                    "Bedside monitors",
                    vec![bullet(
                        "Monitors at every bed.",
                        "SB-101",
                        "technical_approach",
                    )],
                ),
                section(
                    "Training",
                    vec![bullet("Two days of training.", "SB-102", "implementation")],
                ),
            ],
            prompt_version: "bids-draft-v1@x".into(),
            model: "qwen".into(),
            recommendation_id: None,
            edited_by: None,
            edited_at: None,
        }
    }

    #[test]
    fn a_section_round_trips_through_its_text() {
        let draft = ai_draft();
        let text = section_text(&draft.sections[0]);
        assert_eq!(
            text,
            "- Monitors at every bed. [SB-101 §technical_approach]\n\nMonitors at every bed. \
             [SB-101 §technical_approach]"
        );
        let texts: Vec<String> = draft.sections.iter().map(section_text).collect();
        let same = revise(&draft, &texts, "Bo", 1).unwrap();
        assert_eq!(same.sections, draft.sections);
        assert_eq!(
            (same.edited_by.as_deref(), same.edited_at),
            (Some("Bo"), Some(1))
        );
    }

    #[test]
    fn edited_citations_are_checked_against_the_drafts_sources() {
        let draft = ai_draft();
        let texts = vec![
            "- Monitors at every bed, wall-mounted. [SB-101 §technical_approach]\n\
             * We add a spare monitor [SB-999 §pricing] [SB-102 §implementation]\n\
             Our own sentence without a source.\n\
             [SB-101 §technical_approach]\n"
                .to_string(),
            "Training on site [SB-102 §implementation] (see [note])".to_string(),
        ];
        let revised = revise(&draft, &texts, "Bo", 5).unwrap();
        let s = &revised.sections[0];
        assert_eq!(s.bullets.len(), 2);
        assert_eq!(s.bullets[0].text, "Monitors at every bed, wall-mounted.");
        assert_eq!(
            (s.bullets[1].bid_id.as_str(), s.bullets[1].section.as_str()),
            ("SB-999", "pricing")
        );
        assert_eq!(s.unsourced, ["[SB-999 §pricing]"]);
        assert_eq!(s.uncited, ["Our own sentence without a source."]);
        assert_eq!(s.paragraph.len(), 1, "a bare citation line is no statement");
        let t = &revised.sections[1];
        assert_eq!(t.paragraph[0].text, "Training on site (see [note])");
        assert!(t.unsourced.is_empty() && t.uncited.is_empty());
        let md = crate::bids::draft::markdown(&revised);
        assert!(md.contains("Edited by Bo at 1970-01-01 00:00 UTC"), "{md}");
        assert!(
            md.contains("[SB-999 §pricing] is not among this draft's sources"),
            "{md}"
        );
        assert!(md.contains("wall-mounted"), "{md}");
        assert!(revise(&draft, &texts[..1], "Bo", 5).is_err());
        let long = vec!["x".repeat(MAX_SECTION_CHARS + 1), String::new()];
        assert!(revise(&draft, &long, "Bo", 5).is_err());
    }

    #[tokio::test]
    async fn edits_are_saved_and_audited_until_the_draft_is_submitted_for_review() {
        let w = World::new().await;
        let mut draft = ai_draft();
        let id = propose_one(
            &w.db,
            &crate::review::Proposal {
                output: json!(draft),
                ..proposal(Kind::TenderDraft, &w.rep)
            },
        )
        .await;
        draft.recommendation_id = Some(id.clone());
        assert!(latest(&w.db, "job-1").await.unwrap().is_none());
        let texts = vec![
            "- Edited bullet [SB-101 §technical_approach]".into(),
            String::new(),
        ];
        let saved = save(&w.db, &w.rep, "job-1", &draft, &texts).await.unwrap();
        let again = vec![
            "- Edited twice [SB-101 §technical_approach]".into(),
            String::new(),
        ];
        save(&w.db, &w.rep, "job-1", &draft, &again).await.unwrap();
        let current = latest(&w.db, "job-1").await.unwrap().unwrap();
        assert_eq!(current.sections[0].bullets[0].text, "Edited twice");
        assert_ne!(current.sections, saved.sections);
        // Another rep cannot see it; a manager decides it in the queue instead of editing it.
        assert!(
            save(&w.db, &w.other_rep, "job-1", &draft, &texts)
                .await
                .is_err()
        );
        assert!(matches!(
            submit(&w.db, &w.manager, "job-1", &draft).await,
            Err(Error::Forbidden(_))
        ));

        let sub = submit(&w.db, &w.rep, "job-1", &draft).await.unwrap();
        assert_eq!(submission(&w.db, "job-1").await.unwrap(), Some(sub));
        let rec = review::get(&w.db, &w.manager, &id).await.unwrap();
        assert_eq!(
            rec.output["sections"][0]["bullets"][0]["text"],
            "Edited twice"
        );
        assert_eq!(rec.output["edited_by"], "rep");
        assert!(matches!(
            save(&w.db, &w.rep, "job-1", &draft, &texts).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            submit(&w.db, &w.rep, "job-1", &draft).await,
            Err(Error::Conflict(_))
        ));
        let actions: Vec<String> = audit::list(&w.db, Some(&id), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(actions.contains(&"draft.edited".to_string()), "{actions:?}");
        assert!(
            actions.contains(&"draft.submitted".to_string()),
            "{actions:?}"
        );
        // The manager decides on the submitted revision.
        triage(&w.db, &Rules::builtin()).await.unwrap();
        let approved = decide(&w.db, &w.manager, &id, &Decision::Approve { note: None })
            .await
            .unwrap();
        assert_eq!(
            approved.final_output.unwrap()["sections"][0]["bullets"][0]["text"],
            "Edited twice"
        );
    }
}
