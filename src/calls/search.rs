//! Search across calls: a tantivy index of transcript segments in `<data>/index/calls`,
//! derived from the database (the source of truth). One document per segment, its text in an
//! English (stemmed) or Mandarin (jieba) field by the call's language — the bid library's
//! analyzers, registered by [`crate::bids::index::open_derived`] — plus the call-level topic
//! trackers for filtering.
//!
//! Freshness: each call's documents carry the revision of its transcript (the time it was
//! stored). Before every search, and when the index is opened, calls whose revision differs
//! are re-indexed; when the trackers file changes, every call is. The `call.analyze` job
//! re-indexes its call when the analysis is saved ([`refresh`]), and a change to a transcript
//! in place (speaker relabelling) calls [`reindex_call`].
//!
//! Scope: results come only from calls the caller may see (a rep their own, a manager their
//! region's, an admin all), resolved in the database like `GET /calls`, then narrowed by the
//! filters (rep, customer, dates, objection category, tracker).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, IndexRecordOption, STORED, STRING, Schema, Value};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::analytics::{self, visible_rep};
use super::extract::Category;
use super::records::{self, Call};
use super::trackers::{self, Trackers};
use super::transcript::{CallTranscript, Side, same_name};
use crate::bids::analyzers::{self, EN, ZH};
use crate::bids::index::{analyzed_text, derived_writer, fast_revisions, index_err, open_derived};
use crate::bids::search::snippet;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::users::User;

const NAME: &str = "call index";
/// Writer memory budget (tantivy needs at least 15 MB).
const WRITER_HEAP: usize = 32 * 1024 * 1024;
/// The file in the index folder holding the fingerprint of the trackers it was built with.
const TRACKERS_FILE: &str = "trackers.sha256";
/// Calls loaded and written per commit during a rebuild.
const BATCH: usize = 200;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    rev: Field,
    segment: Field,
    start_ms: Field,
    end_ms: Field,
    speaker: Field,
    lang: Field,
    text: Field,
    /// English `[0]` and Mandarin `[1]` analyzed text.
    analyzed: [Field; 2],
    trackers: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        // `id` is the call id (the key the shared revision reader expects).
        id: b.add_text_field("id", STRING | STORED | FAST),
        rev: b.add_i64_field("rev", FAST),
        segment: b.add_u64_field("segment", STORED),
        start_ms: b.add_u64_field("start_ms", STORED),
        end_ms: b.add_u64_field("end_ms", STORED),
        speaker: b.add_text_field("speaker", STORED),
        lang: b.add_text_field("lang", STRING | STORED),
        text: b.add_text_field("text", STORED),
        analyzed: [
            b.add_text_field("text_en", analyzed_text(EN)),
            b.add_text_field("text_zh", analyzed_text(ZH)),
        ],
        trackers: b.add_text_field("trackers", STRING),
    };
    (b.build(), fields)
}

fn slot(language: &str) -> usize {
    usize::from(language == "zh")
}

/// The call index of one data directory.
pub struct CallIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    /// `None` while another process holds the writer (the server, or a CLI command): searches
    /// then see that process's commits, and the writer is taken over once it is free.
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    /// The revision of every indexed call.
    revs: Mutex<HashMap<String, i64>>,
    /// Serializes reconciliation.
    sync: tokio::sync::Mutex<()>,
}

/// What bringing the index in line with the database did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Repair {
    pub reindexed: usize,
    pub removed: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CallIndex {
    /// Opens (or creates) the index in `dir`. If another process holds its writer, the index
    /// is searched read-only until the writer is free.
    pub fn open(dir: &Path) -> Result<CallIndex> {
        let (schema, fields) = schema();
        let index = open_derived(dir, schema, NAME)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err(NAME, "reader"))?;
        let revs = Mutex::new(fast_revisions(&reader.searcher(), NAME)?);
        let open = CallIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            writer: Mutex::new(None),
            fields,
            revs,
            sync: tokio::sync::Mutex::new(()),
        };
        open.writable()?;
        Ok(open)
    }

    /// Whether this process holds the writer, taking it when it is free; `false` while
    /// another process holds it (its commits are then loaded for searching).
    fn writable(&self) -> Result<bool> {
        let mut writer = lock(&self.writer);
        if writer.is_none() {
            match derived_writer(&self.index, &self.dir, NAME, WRITER_HEAP) {
                Ok(w) => {
                    // What the previous holder committed is the starting point.
                    self.reader.reload().map_err(index_err(NAME, "reload"))?;
                    *lock(&self.revs) = fast_revisions(&self.reader.searcher(), NAME)?;
                    *writer = Some(w);
                }
                Err(Error::Conflict(m)) => {
                    tracing::debug!("{m}; searching its last commit read-only");
                    self.reader.reload().map_err(index_err(NAME, "reload"))?;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn stored_fingerprint(&self) -> String {
        std::fs::read_to_string(self.dir.join(TRACKERS_FILE)).unwrap_or_default()
    }

    /// Re-indexes calls whose transcript changed since they were indexed (all of them when
    /// the trackers changed) and removes calls that have no transcript any more.
    pub async fn reconcile(&self, db: &Db, trackers: &Trackers) -> Result<Repair> {
        let _one = self.sync.lock().await;
        if !self.writable()? {
            return Ok(Repair::default());
        }
        let want = revisions(db).await?;
        let all = self.stored_fingerprint() != trackers.fingerprint();
        let (mut stale, gone) = {
            let have = lock(&self.revs);
            let stale: Vec<String> = want
                .iter()
                .filter(|(id, rev)| all || have.get(*id) != Some(rev))
                .map(|(id, _)| id.clone())
                .collect();
            let gone: Vec<String> = have
                .keys()
                .filter(|id| !want.contains_key(*id))
                .cloned()
                .collect();
            (stale, gone)
        };
        if stale.is_empty() && gone.is_empty() && !all {
            return Ok(Repair::default());
        }
        stale.sort();
        let repair = Repair {
            reindexed: stale.len(),
            removed: gone.len(),
        };
        if all {
            self.with_writer(|w| {
                w.delete_all_documents()
                    .map_err(index_err(NAME, "clear"))
                    .map(|_| ())
            })?;
            lock(&self.revs).clear();
        }
        for id in &gone {
            self.with_writer(|w| {
                w.delete_term(Term::from_field_text(self.fields.id, id));
                Ok(())
            })?;
            lock(&self.revs).remove(id);
        }
        for batch in stale.chunks(BATCH) {
            let mut loaded = Vec::with_capacity(batch.len());
            for id in batch {
                if let Some(found) = load(db, id).await? {
                    loaded.push(found);
                }
            }
            self.write(&loaded, trackers)?;
        }
        if stale.is_empty() {
            self.commit()?;
        }
        std::fs::write(self.dir.join(TRACKERS_FILE), trackers.fingerprint())
            .map_err(|e| Error::io("cannot write the call index's trackers file", &self.dir, e))?;
        Ok(repair)
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut IndexWriter) -> Result<T>) -> Result<T> {
        if !self.writable()? {
            return Err(Error::Conflict(format!(
                "the {NAME} in {} is in use by another dealdesk process (the server); it \
                 re-indexes changed calls itself",
                self.dir.display()
            )));
        }
        let mut writer = lock(&self.writer);
        f(writer.as_mut().expect("writable() took the writer"))
    }

    fn commit(&self) -> Result<()> {
        self.with_writer(|w| w.commit().map_err(index_err(NAME, "commit")).map(|_| ()))?;
        self.reader.reload().map_err(index_err(NAME, "reload"))
    }

    /// Replaces the documents of each call with its segments, and commits.
    fn write(&self, calls: &[(CallTranscript, i64)], trackers: &Trackers) -> Result<()> {
        let f = self.fields;
        self.with_writer(|w| {
            for (t, rev) in calls {
                let id = t.call_id.as_deref().unwrap_or_default();
                w.delete_term(Term::from_field_text(f.id, id));
                let fired: Vec<(u32, Vec<&str>)> = t
                    .segments
                    .iter()
                    .map(|s| {
                        let names = trackers.fire_on(&s.text, &t.language);
                        (s.id, names.into_iter().map(|(n, _)| n).collect())
                    })
                    .collect();
                let mut call_trackers: Vec<&str> =
                    fired.iter().flat_map(|(_, n)| n.iter().copied()).collect();
                call_trackers.sort_unstable();
                call_trackers.dedup();
                for seg in &t.segments {
                    let mut doc = TantivyDocument::default();
                    doc.add_text(f.id, id);
                    doc.add_i64(f.rev, *rev);
                    doc.add_u64(f.segment, u64::from(seg.id));
                    doc.add_u64(f.start_ms, seg.start_ms);
                    doc.add_u64(f.end_ms, seg.end_ms);
                    if let Some(s) = &seg.speaker {
                        doc.add_text(f.speaker, s);
                    }
                    doc.add_text(f.lang, &t.language);
                    doc.add_text(f.text, &seg.text);
                    doc.add_text(f.analyzed[slot(&t.language)], &seg.text);
                    for name in &call_trackers {
                        doc.add_text(f.trackers, name);
                    }
                    w.add_document(doc)
                        .map_err(index_err(NAME, "add a document"))?;
                }
            }
            Ok(())
        })?;
        self.commit()?;
        let mut revs = lock(&self.revs);
        for (t, rev) in calls {
            revs.insert(t.call_id.clone().unwrap_or_default(), *rev);
        }
        Ok(())
    }

    /// Re-indexes one call from the database now (whatever its revision); a call without a
    /// transcript is removed from the index.
    pub async fn reindex(&self, db: &Db, trackers: &Trackers, call_id: &str) -> Result<()> {
        let _one = self.sync.lock().await;
        match load(db, call_id).await? {
            Some(found) => self.write(&[found], trackers),
            None => {
                self.with_writer(|w| {
                    w.delete_term(Term::from_field_text(self.fields.id, call_id));
                    Ok(())
                })?;
                lock(&self.revs).remove(call_id);
                self.commit()
            }
        }
    }

    /// Indexed segments.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// The revision (transcript stored at, ms) of every call with a transcript.
async fn revisions(db: &Db) -> Result<HashMap<String, i64>> {
    let rows = sqlx::query("SELECT call_id, created_at FROM transcripts")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("call_id")?, r.try_get("created_at")?)))
        .collect()
}

/// A call's transcript and its revision, if it has one.
async fn load(db: &Db, call_id: &str) -> Result<Option<(CallTranscript, i64)>> {
    let rev: Option<i64> = sqlx::query("SELECT created_at FROM transcripts WHERE call_id = $1")
        .bind(call_id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.try_get("created_at"))
        .transpose()?;
    let Some(rev) = rev else { return Ok(None) };
    let call = records::get(db, call_id).await?;
    Ok(records::transcript(db, &call).await?.map(|t| (t, rev)))
}

/// The index of the configured data directory, opened once per process and repaired from
/// the database on open.
pub async fn shared(db: &Db, config: &Config) -> Result<Arc<CallIndex>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<CallIndex>>>> = OnceLock::new();
    let dir = config.data.dir.join("index").join("calls");
    let registry = OPEN.get_or_init(Default::default);
    let existing = lock(registry).get(&dir).cloned();
    if let Some(index) = existing {
        return Ok(index);
    }
    let index = {
        let mut open = lock(registry);
        match open.get(&dir) {
            Some(index) => index.clone(),
            None => {
                let index = Arc::new(CallIndex::open(&dir)?);
                open.insert(dir, index.clone());
                index
            }
        }
    };
    let repair = index.reconcile(db, &Trackers::load(config)?).await?;
    if repair.reindexed + repair.removed > 0 {
        tracing::info!(?repair, "call index repaired from the database");
    }
    Ok(index)
}

/// Re-indexes one call now: after its transcript changed in place (speaker relabelling) or
/// its analysis was saved.
pub async fn reindex_call(db: &Db, config: &Config, call_id: &str) -> Result<()> {
    let index = shared(db, config).await?;
    index.reindex(db, &Trackers::load(config)?, call_id).await
}

/// [`reindex_call`] for the analysis job: the index is derived data, so a failure is logged
/// (the next search repairs it) rather than failing the analysis.
pub async fn refresh(db: &Db, config: &Config, call_id: &str) {
    if let Err(e) = reindex_call(db, config, call_id).await {
        tracing::warn!(call_id, error = %e, "call index not updated; the next search repairs it");
    }
}

// ---------------------------------------------------------------------------------------------
// Search.

/// A search across the caller's calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CallSearchRequest)]
pub struct SearchRequest {
    /// Words or a phrase, English or Mandarin: at most 1,000 bytes.
    #[schema(pattern = r"\S", max_length = 250)]
    pub query: String,
    /// Only this rep's calls (name or id; a rep may only give themselves).
    #[serde(default)]
    pub rep: Option<String>,
    /// Only calls whose title, or a customer-side participant's name or role, contains this
    /// (case-insensitive).
    #[serde(default)]
    pub customer: Option<String>,
    /// Calls on or after this day (YYYY-MM-DD).
    #[serde(default)]
    pub from: Option<String>,
    /// Calls on or before this day (YYYY-MM-DD).
    #[serde(default)]
    pub to: Option<String>,
    /// Only calls with an objection of this category (price, budget, timing, competitor,
    /// authority, need, trust, product_fit, contract).
    #[serde(default)]
    pub objection_category: Option<String>,
    /// Only calls where this tracker fired (a name from the trackers file).
    #[serde(default)]
    pub tracker: Option<String>,
    /// Most results (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One matching segment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub call_id: String,
    pub call_title: String,
    pub call_date: Option<String>,
    pub segment_id: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    /// `None` when the segment is unattributed.
    pub speaker: Option<String>,
    /// `seller`, `customer` or `unknown`.
    pub side: String,
    /// The segment with the matched words wrapped in `<b>…</b>`.
    pub snippet: String,
    /// That moment of the call: `/calls/{id}?t=<start_ms>`.
    pub link: String,
    pub score: f32,
}

/// Ranked segments.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CallSearchResponse)]
pub struct SearchResponse {
    pub query: String,
    /// Calls searched (in scope and passing the filters).
    pub calls_searched: usize,
    pub hits: Vec<SearchHit>,
    pub took_ms: f64,
}

/// Longest query accepted, in bytes.
const MAX_QUERY: usize = 1000;

impl SearchRequest {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(20).clamp(1, 100)
    }
}

/// The calls `viewer` may search under the request's filters (all but the tracker).
async fn candidates(db: &Db, viewer: &User, req: &SearchRequest) -> Result<Vec<Call>> {
    let from = analytics::parse_day(req.from.as_deref(), "from")?;
    let to = analytics::parse_day(req.to.as_deref(), "to")?;
    let rep = match req.rep.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(visible_rep(db, viewer, r).await?),
        None => None,
    };
    let mut calls =
        analytics::calls_in_range(db, viewer, rep.as_ref(), from.as_deref(), to.as_deref()).await?;
    if let Some(customer) = req.customer.as_deref().filter(|c| !c.is_empty()) {
        let needle = customer.to_lowercase();
        calls.retain(|c| {
            c.title.to_lowercase().contains(&needle)
                || c.participants.iter().any(|p| {
                    p.side == Side::Customer
                        && (p.name.to_lowercase().contains(&needle)
                            || p.role
                                .as_deref()
                                .is_some_and(|r| r.to_lowercase().contains(&needle)))
                })
        });
    }
    if let Some(category) = req.objection_category.as_deref().filter(|c| !c.is_empty()) {
        let category = Category::parse(category).ok_or_else(|| {
            Error::InvalidInput(format!(
                "objection_category {category:?}: use one of {}",
                Category::ALL.map(Category::as_str).join(", ")
            ))
        })?;
        let with: HashSet<String> = sqlx::query(
            "SELECT DISTINCT call_id FROM insights WHERE kind = 'objection' AND body LIKE $1",
        )
        .bind(format!("%\"category\":\"{}\"%", category.as_str()))
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| r.try_get("call_id"))
        .collect::<std::result::Result<_, _>>()?;
        calls.retain(|c| with.contains(&c.id));
    }
    Ok(calls)
}

/// Searches the transcripts of the calls `viewer` may see.
pub async fn search(
    db: &Db,
    config: &Config,
    viewer: &User,
    req: &SearchRequest,
) -> Result<SearchResponse> {
    let started = Instant::now();
    let query = req.query.trim();
    if query.is_empty() {
        return Err(Error::InvalidInput(
            "query is empty: give words or a phrase to find".into(),
        ));
    }
    if query.len() > MAX_QUERY {
        return Err(Error::InvalidInput(format!(
            "query is longer than {MAX_QUERY} bytes; search for the key words"
        )));
    }
    let trackers = Trackers::load(config)?;
    let tracker = req.tracker.as_deref().filter(|t| !t.is_empty());
    if let Some(t) = tracker
        && !trackers.names().contains(&t)
    {
        return Err(Error::InvalidInput(format!(
            "tracker {t:?} is not in the trackers file; use one of {}",
            trackers.names().join(", ")
        )));
    }
    let calls = candidates(db, viewer, req).await?;
    let index = shared(db, config).await?;
    index.reconcile(db, &trackers).await?;
    let mut response = SearchResponse {
        query: query.to_string(),
        calls_searched: calls.len(),
        hits: Vec::new(),
        took_ms: 0.0,
    };
    let terms = [
        words(&mut analyzers::english(), query),
        words(&mut analyzers::mandarin(), query),
    ];
    let f = index.fields;
    let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (slot, list) in terms.iter().enumerate() {
        for t in list {
            should.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.analyzed[slot], t),
                    IndexRecordOption::WithFreqs,
                )),
            ));
        }
    }
    if calls.is_empty() || should.is_empty() {
        response.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        return Ok(response);
    }
    let mut must: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Must, Box::new(BooleanQuery::new(should))),
        (
            Occur::Must,
            Box::new(TermSetQuery::new(
                calls.iter().map(|c| Term::from_field_text(f.id, &c.id)),
            )),
        ),
    ];
    if let Some(t) = tracker {
        must.push((
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(f.trackers, t),
                IndexRecordOption::Basic,
            )),
        ));
    }
    let searcher = index.reader.searcher();
    let top = searcher
        .search(&BooleanQuery::new(must), &TopDocs::with_limit(req.limit()))
        .map_err(index_err(NAME, "search"))?;
    let by_id: HashMap<&str, &Call> = calls.iter().map(|c| (c.id.as_str(), c)).collect();
    for (score, addr) in top {
        let doc: TantivyDocument = searcher.doc(addr).map_err(index_err(NAME, "read"))?;
        let text_of = |field: Field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let u64_of = |field: Field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
        let call_id = text_of(f.id).unwrap_or_default();
        let Some(call) = by_id.get(call_id.as_str()) else {
            continue;
        };
        let text = text_of(f.text).unwrap_or_default();
        let lang = text_of(f.lang).unwrap_or_default();
        let speaker = text_of(f.speaker);
        let wanted: HashSet<&str> = terms[slot(&lang)].iter().map(String::as_str).collect();
        let mut analyzer = trackers::analyzer_for(&lang);
        let matched: Vec<_> = analyzers::analyze(&mut analyzer, &text)
            .into_iter()
            .filter(|t| wanted.contains(t.text.as_str()))
            .collect();
        let start_ms = u64_of(f.start_ms);
        response.hits.push(SearchHit {
            side: speaker
                .as_deref()
                .and_then(|s| call.participants.iter().find(|p| same_name(&p.name, s)))
                .map_or("unknown", |p| analytics::side_name(p.side))
                .to_string(),
            snippet: if matched.is_empty() {
                text.clone()
            } else {
                snippet(&text, &matched)
            },
            link: format!("/calls/{call_id}?t={start_ms}"),
            call_title: call.title.clone(),
            call_date: call.call_date.clone(),
            segment_id: u64_of(f.segment) as u32,
            start_ms,
            end_ms: u64_of(f.end_ms),
            speaker,
            call_id,
            score,
        });
    }
    response.took_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(response)
}

fn words(analyzer: &mut tantivy::tokenizer::TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = trackers::words(analyzer, text);
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
