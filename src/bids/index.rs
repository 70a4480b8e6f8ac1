//! The tantivy index of bids in `<data>/index/bids`, derived from the database: per-field text
//! in an English and a Mandarin variant (a bid's text goes to its language's fields), fast
//! fields for the filters, the bid's database revision, and the stored record for results.
//!
//! Crash safety: tantivy makes a commit visible by atomically replacing `meta.json`, so a
//! killed process leaves the last commit intact. The database is written first; on open
//! [`super::Library`] compares every (id, revision) pair of both sides and repairs the index,
//! so an import killed between the two commits is finished on the next start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use tantivy::directory::MmapDirectory;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use super::analyzers::{self, EN, ZH};
use super::record::{Bid, Lang};
use crate::error::{Error, Result};

/// Writer memory budget (tantivy needs at least 15 MB).
const WRITER_HEAP: usize = 64 * 1024 * 1024;

/// The text fields, each with an English `[0]` and a Mandarin `[1]` variant.
#[derive(Clone, Copy)]
pub struct TextField {
    pub name: &'static str,
    pub fields: [Field; 2],
}

impl TextField {
    pub fn for_lang(&self, lang: Lang) -> Field {
        self.fields[lang_slot(lang)]
    }
}

/// The index slot of a language: 0 English, 1 Mandarin.
pub fn lang_slot(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Zh => 1,
    }
}

/// Handles of every field in the schema.
#[derive(Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub rev: Field,
    pub outcome: Field,
    pub sector: Field,
    pub region: Field,
    pub language: Field,
    pub date: Field,
    pub value: Field,
    pub doc: Field,
    pub title: TextField,
    pub requirements: TextField,
    pub body: TextField,
}

impl Fields {
    pub fn text(&self) -> [TextField; 3] {
        [self.title, self.requirements, self.body]
    }
}

/// An analyzed (not stored) text field using the analyzer `tokenizer`, with term frequencies.
pub fn analyzed_text(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqs),
    )
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = analyzed_text;
    let text_field = |b: &mut tantivy::schema::SchemaBuilder, name: &'static str| TextField {
        name,
        fields: [
            b.add_text_field(&format!("{name}_en"), text(EN)),
            b.add_text_field(&format!("{name}_zh"), text(ZH)),
        ],
    };
    let title = text_field(&mut b, "title");
    let requirements = text_field(&mut b, "requirements");
    let body = text_field(&mut b, "body");
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED | FAST),
        rev: b.add_i64_field("rev", FAST),
        outcome: b.add_text_field("outcome", STRING | FAST),
        sector: b.add_text_field("sector", STRING | FAST),
        region: b.add_text_field("region", STRING | FAST),
        language: b.add_text_field("language", STRING | FAST),
        date: b.add_i64_field("date", INDEXED | FAST),
        value: b.add_f64_field("value", INDEXED | FAST),
        doc: b.add_text_field("doc", STORED),
        title,
        requirements,
        body,
    };
    (b.build(), fields)
}

/// The bid index: a reader for searches and one writer.
pub struct BidIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    pub fields: Fields,
}

/// Maps a tantivy error of the index `name` while doing `what`.
pub fn index_err<'a>(name: &'a str, what: &'a str) -> impl Fn(tantivy::TantivyError) -> Error + 'a {
    move |e| Error::Internal(format!("{name}: {what}: {e}"))
}

/// Opens the derived index `name` in `dir` with `schema`, creating it, or recreating it when
/// it was written with another schema (it is rebuilt from the database); registers the
/// English and Mandarin analyzers.
pub fn open_derived(dir: &Path, schema: Schema, name: &str) -> Result<Index> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create the {name} directory"), dir, e))?;
    if let Some(damage) = damage(dir) {
        tracing::warn!(dir = %dir.display(), %damage, "{name} is damaged; rebuilding it from the database");
        // Held by another process (which may be committing right now): use it as it is.
        if let Err(e) = clear_derived(dir, name) {
            tracing::warn!("{e}");
        }
    }
    let open = || -> tantivy::Result<Index> {
        Index::open_or_create(MmapDirectory::open(dir)?, schema.clone())
    };
    let index = match open() {
        Ok(index) => index,
        Err(tantivy::TantivyError::SchemaError(_)) => {
            tracing::warn!(dir = %dir.display(), "{name} schema changed; rebuilding");
            std::fs::remove_dir_all(dir)
                .and_then(|_| std::fs::create_dir_all(dir))
                .map_err(|e| Error::io(format!("cannot clear the old {name}"), dir, e))?;
            open().map_err(index_err(name, "create"))?
        }
        Err(e) => return Err(index_err(name, "open")(e)),
    };
    analyzers::register(index.tokenizers());
    Ok(index)
}

/// Why the derived index in `dir` cannot be used as it is, if it cannot: its metadata does not
/// load, or a file of a live segment is missing or fails its checksum (a truncated or
/// overwritten file). `None` for a sound index and for a directory without one yet.
pub fn damage(dir: &Path) -> Option<String> {
    if !dir.join("meta.json").exists() {
        return None;
    }
    let index = match MmapDirectory::open(dir)
        .map_err(tantivy::TantivyError::from)
        .and_then(Index::open)
    {
        Ok(index) => index,
        Err(e) => return Some(format!("it does not open: {e}")),
    };
    use tantivy::index::SegmentComponent;
    let metas = match index.searchable_segment_metas() {
        Ok(metas) => metas,
        Err(e) => return Some(format!("its segment list does not load: {e}")),
    };
    let missing: Vec<String> = metas
        .iter()
        .flat_map(|m| {
            SegmentComponent::iterator()
                .filter(|c| match c {
                    SegmentComponent::TempStore => false,
                    SegmentComponent::Delete => m.has_deletes(),
                    _ => true,
                })
                .map(|c| m.relative_path(*c))
        })
        .filter(|f| !dir.join(f).exists())
        .map(|f| f.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Some(format!("missing files: {}", missing.join(", ")));
    }
    match index.validate_checksum() {
        Ok(bad) if bad.is_empty() => None,
        Ok(bad) => {
            let mut bad: Vec<String> = bad.iter().map(|f| f.display().to_string()).collect();
            bad.sort();
            Some(format!("files failing their checksum: {}", bad.join(", ")))
        }
        Err(e) => Some(format!("its files cannot be read: {e}")),
    }
}

/// Empties the derived index in `dir` so it is rebuilt from the database; refused (as
/// [`Error::Unavailable`]) while another process holds its writer.
pub fn clear_derived(dir: &Path, name: &str) -> Result<()> {
    let directory = MmapDirectory::open(dir).map_err(|e| index_err(name, "open")(e.into()))?;
    let lock = tantivy::Directory::acquire_lock(&directory, &tantivy::directory::INDEX_WRITER_LOCK)
        .map_err(|_| {
            Error::Unavailable(format!(
                "the {name} in {} is damaged and in use by another dealdesk process; stop \
                 that process and start it again (it rebuilds the index from the database)",
                dir.display()
            ))
        })?;
    drop(directory);
    let cleared = std::fs::remove_dir_all(dir).and_then(|_| std::fs::create_dir_all(dir));
    drop(lock);
    cleared.map_err(|e| Error::io(format!("cannot clear the damaged {name}"), dir, e))
}

/// The one writer of a derived index; another process holding it is a [`Error::Conflict`].
pub fn derived_writer(index: &Index, dir: &Path, name: &str, heap: usize) -> Result<IndexWriter> {
    index.writer_with_num_threads(1, heap).map_err(|e| match e {
        tantivy::TantivyError::LockFailure(..) => Error::Conflict(format!(
            "the {name} in {} is in use by another dealdesk process; stop the \
                 server (or run this through its API) and retry",
            dir.display()
        )),
        e => index_err(name, "writer")(e),
    })
}

/// The revision of every document key in an index, from its fast columns `id` and `rev`.
pub fn fast_revisions(searcher: &Searcher, name: &str) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for segment in searcher.segment_readers() {
        let fast = segment.fast_fields();
        let ids = fast
            .str("id")
            .map_err(index_err(name, "id column"))?
            .ok_or_else(|| Error::Internal(format!("{name}: no id column")))?;
        let revs = fast.i64("rev").map_err(index_err(name, "rev column"))?;
        let mut id = String::new();
        for doc in segment.doc_ids_alive() {
            let Some(ord) = ids.term_ords(doc).next() else {
                continue;
            };
            ids.ord_to_str(ord, &mut id)
                .map_err(|e| Error::Internal(format!("{name}: read id: {e}")))?;
            out.insert(id.clone(), revs.first(doc).unwrap_or(-1));
        }
    }
    Ok(out)
}

impl BidIndex {
    /// Opens the index in `dir`, creating it (or recreating it, when it was written with a
    /// different schema: it is derived data) as needed.
    pub fn open(dir: &Path) -> Result<BidIndex> {
        let (schema, fields) = schema();
        let index = open_derived(dir, schema, "bid index")?;
        let writer = derived_writer(&index, dir, "bid index", WRITER_HEAP)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err("bid index", "reader"))?;
        Ok(BidIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    /// The one writer (held for a batch of changes followed by [`Self::commit`]).
    pub fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces (or adds) the document of `bid` at database revision `rev`.
    pub fn upsert(&self, writer: &IndexWriter, bid: &Bid, rev: i64) -> Result<()> {
        let f = &self.fields;
        writer.delete_term(Term::from_field_text(f.id, &bid.id));
        let slot = lang_slot(bid.language);
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &bid.id);
        doc.add_i64(f.rev, rev);
        doc.add_text(f.outcome, bid.outcome.as_str());
        doc.add_text(f.sector, &bid.sector);
        doc.add_text(f.region, &bid.region);
        doc.add_text(f.language, bid.language.as_str());
        doc.add_i64(f.date, bid.date_number().unwrap_or(0));
        doc.add_f64(f.value, bid.value.unwrap_or(0.0));
        doc.add_text(f.doc, serde_json::to_string(bid).expect("a bid serializes"));
        doc.add_text(f.title.fields[slot], &bid.title);
        for r in &bid.requirements {
            doc.add_text(f.requirements.fields[slot], r);
        }
        for (_, text) in bid.sections.iter() {
            doc.add_text(f.body.fields[slot], text);
        }
        for tag in &bid.tags {
            doc.add_text(f.body.fields[slot], tag);
        }
        writer
            .add_document(doc)
            .map_err(index_err("bid index", "add a document"))?;
        Ok(())
    }

    /// Removes the document of bid `id`.
    pub fn delete(&self, writer: &IndexWriter, id: &str) {
        writer.delete_term(Term::from_field_text(self.fields.id, id));
    }

    /// Makes every change since the last commit durable and visible to searches.
    pub fn commit(&self, writer: &mut IndexWriter) -> Result<()> {
        writer.commit().map_err(index_err("bid index", "commit"))?;
        self.reader
            .reload()
            .map_err(index_err("bid index", "reload"))
    }

    /// Drops every document (for a rebuild; takes effect at the next commit).
    pub fn clear(&self, writer: &mut IndexWriter) -> Result<()> {
        writer
            .delete_all_documents()
            .map_err(index_err("bid index", "clear"))
            .map(|_| ())
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The indexed revision of bid `id`, if it is in the index.
    pub fn revision_of(&self, id: &str) -> Result<Option<i64>> {
        let searcher = self.searcher();
        let query = tantivy::query::TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let hits = searcher
            .search(&query, &tantivy::collector::TopDocs::with_limit(1))
            .map_err(index_err("bid index", "look up a bid"))?;
        let Some((_, addr)) = hits.first() else {
            return Ok(None);
        };
        let revs = searcher
            .segment_reader(addr.segment_ord)
            .fast_fields()
            .i64("rev")
            .map_err(index_err("bid index", "rev column"))?;
        Ok(Some(revs.first(addr.doc_id).unwrap_or(-1)))
    }

    /// The revision of every indexed bid, by id.
    pub fn revisions(&self) -> Result<HashMap<String, i64>> {
        fast_revisions(&self.searcher(), "bid index")
    }

    /// The id and outcome of each hit, from the fast fields (no stored document is read).
    pub fn keys(
        &self,
        searcher: &Searcher,
        hits: &[(DocAddress, f32)],
    ) -> Result<Vec<(String, String)>> {
        let mut columns = HashMap::new();
        let mut out = Vec::with_capacity(hits.len());
        for (addr, _) in hits {
            if let std::collections::hash_map::Entry::Vacant(slot) = columns.entry(addr.segment_ord)
            {
                let fast = searcher.segment_reader(addr.segment_ord).fast_fields();
                let column = |name: &str| {
                    fast.str(name)
                        .map_err(index_err("bid index", "fast column"))?
                        .ok_or_else(|| Error::Internal(format!("bid index: no {name} column")))
                };
                slot.insert((column("id")?, column("outcome")?));
            }
            let (ids, outcomes) = &columns[&addr.segment_ord];
            let read = |col: &tantivy::columnar::StrColumn| -> Result<String> {
                let mut s = String::new();
                if let Some(ord) = col.term_ords(addr.doc_id).next() {
                    col.ord_to_str(ord, &mut s)
                        .map_err(|e| Error::Internal(format!("bid index: read a column: {e}")))?;
                }
                Ok(s)
            };
            out.push((read(ids)?, read(outcomes)?));
        }
        Ok(out)
    }

    /// The document address of bid `id`, if it is indexed.
    pub fn address(&self, searcher: &Searcher, id: &str) -> Result<Option<DocAddress>> {
        let query = tantivy::query::TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            tantivy::schema::IndexRecordOption::Basic,
        );
        let hits = searcher
            .search(&query, &tantivy::collector::TopDocs::with_limit(1))
            .map_err(index_err("bid index", "look up a bid"))?;
        Ok(hits.first().map(|(_, addr)| *addr))
    }

    /// The stored bid record of a search hit.
    pub fn stored_bid(&self, searcher: &Searcher, addr: DocAddress) -> Result<Bid> {
        let doc: TantivyDocument = searcher
            .doc(addr)
            .map_err(index_err("bid index", "read a document"))?;
        let json = doc
            .get_first(self.fields.doc)
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::Internal("bid index: a document lost its record".into()))?;
        serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("bid index: stored record unreadable: {e}")))
    }

    pub fn num_docs(&self) -> u64 {
        self.searcher().num_docs()
    }
}
