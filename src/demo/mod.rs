//! The demo dataset behind `dealdesk demo`: users for every role in two regions, the starter
//! bid library, call transcripts queued for the real extraction, a synthetic deal history with
//! a fitted quote model, and a review history of quote recommendations — every piece written
//! through the same domain functions the API uses, so the audit chain stays valid.
//!
//! Seeding is idempotent: each part is recognised by a stable key (user names, bid ids, a
//! call's owner and title, deals' `external_id`s) and skipped when present, so a second run
//! changes nothing except issuing fresh tokens.

mod deals;

use std::path::PathBuf;

use serde::Serialize;

use crate::bids::{self, Library, record};
use crate::calls::dates::Date;
use crate::calls::pipeline::ANALYZE_JOB;
use crate::calls::records;
use crate::calls::transcript::CallTranscript;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jobs::JobQueue;
use crate::store::Db;
use crate::users::{self, NewUser, Role, User};

pub use deals::{DealsReport, QuotesReport};

/// The second region of the demo: a rep with Mandarin calls and their manager.
pub const APAC: &str = "apac";

/// What to seed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Region of the English-speaking rep and manager, the bid-team user and the admin.
    pub region: String,
    /// The project's `corpus/` folder (starter bids in `bids/`, call transcripts in `calls/`).
    pub corpus: PathBuf,
    /// How many of the demo calls to import (all when `None`).
    pub calls: Option<usize>,
}

/// A demo call and how many days before today it took place.
struct DemoCall {
    file: &'static str,
    days_ago: i64,
}

/// The demo calls, in the order `--calls N` takes them: English calls belong to the rep of
/// the main region, Mandarin ones to the apac rep.
const CALLS: [DemoCall; 5] = [
    DemoCall {
        file: "harbourline-pricing-en.json",
        days_ago: 23,
    },
    DemoCall {
        file: "huachen-quote-zh.json",
        days_ago: 16,
    },
    DemoCall {
        file: "kestrel-technical-en.json",
        days_ago: 9,
    },
    DemoCall {
        file: "qinghe-pilot-zh.json",
        days_ago: 4,
    },
    DemoCall {
        file: "aldermoor-contract-en.json",
        days_ago: 2,
    },
];

/// The number of demo calls shipped in `corpus/calls/`.
pub const CALL_COUNT: usize = CALLS.len();

/// A demo call as seeded.
#[derive(Debug, Clone, Serialize)]
pub struct SeededCall {
    pub id: String,
    pub title: String,
    pub owner: String,
    pub call_date: Option<String>,
    /// `queued` until `dealdesk serve` has analyzed it, then `done`.
    pub status: String,
    /// Queued for analysis by this run (false: it already was).
    pub new: bool,
}

/// What a run seeded; parts already present are reported as unchanged.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every demo user with a fresh token.
    pub users: Vec<NewUser>,
    pub bids: bids::ImportReport,
    pub calls: Vec<SeededCall>,
    pub deals: DealsReport,
    pub quotes: QuotesReport,
}

/// Seeds the demo dataset into the database of `config` (see the module docs).
pub async fn seed(config: &Config, db: &Db, opts: &Options) -> Result<Report> {
    for part in ["bids", "calls"] {
        if !opts.corpus.join(part).is_dir() {
            return Err(Error::InvalidInput(format!(
                "no {part} folder in {}: run `dealdesk demo` from the dealdesk checkout or give \
                 --corpus PATH/TO/dealdesk/corpus",
                opts.corpus.display()
            )));
        }
    }
    let users = seed_users(db, &opts.region).await?;
    let user = |name: &str| {
        users
            .iter()
            .map(|n| &n.user)
            .find(|u| u.name == name)
            .cloned()
            .expect("every demo user is seeded")
    };
    let bids = seed_bids(config, db, opts).await?;
    let calls = seed_calls(config, db, opts, &[user("demo-rep"), user("demo-rep-apac")]).await?;
    let deals = deals::seed_history(db, config, &opts.region).await?;
    let managers = [user("demo-manager"), user("demo-manager-apac")];
    let reps = [user("demo-rep"), user("demo-rep-apac")];
    let quotes = deals::seed_reviews(db, config, &reps, &managers).await?;
    Ok(Report {
        users,
        bids,
        calls,
        deals,
        quotes,
    })
}

/// The demo users: `demo-<role>` for every role in `region` (as before), plus a rep and a
/// manager in [`APAC`]. Existing users get a new token.
async fn seed_users(db: &Db, region: &str) -> Result<Vec<NewUser>> {
    let mut wanted: Vec<(String, Role, &str)> = Role::ALL
        .into_iter()
        .map(|role| (format!("demo-{role}"), role, region))
        .collect();
    wanted.push(("demo-rep-apac".into(), Role::Rep, APAC));
    wanted.push(("demo-manager-apac".into(), Role::Manager, APAC));
    let mut issued = Vec::new();
    for (name, role, region) in wanted {
        let new = match users::add(db, &name, role, region).await {
            Err(Error::Conflict(_)) => users::issue_token(db, &name).await?,
            other => other?,
        };
        issued.push(new);
    }
    Ok(issued)
}

/// The starter bid library, through the bid import (unchanged bids are left alone).
async fn seed_bids(config: &Config, db: &Db, opts: &Options) -> Result<bids::ImportReport> {
    let bids = record::read_path(&opts.corpus.join("bids"))?;
    let library = Library::open(config, db.clone()).await?;
    library.import(&bids, &|_| {}).await
}

/// Imports each demo transcript (dated `days_ago` before today) for its rep and queues its
/// analysis; a call the rep already has (same title) is left as it is.
async fn seed_calls(
    config: &Config,
    db: &Db,
    opts: &Options,
    [rep, rep_apac]: &[User; 2],
) -> Result<Vec<SeededCall>> {
    let today = Date::parse(&crate::review::metrics::today())?;
    let jobs = JobQueue::new(db.clone(), &config.jobs);
    let mut out = Vec::new();
    for demo in CALLS.iter().take(opts.calls.unwrap_or(CALL_COUNT)) {
        let path = opts.corpus.join("calls").join(demo.file);
        let mut t = CallTranscript::load(&path)?;
        t.call_date = Some(today.add_days(-demo.days_ago));
        let owner = if t.language == "zh" { rep_apac } else { rep };
        let existing = records::list_scoped(db, owner)
            .await?
            .into_iter()
            .find(|c| c.title == t.title && c.owner_id == owner.id);
        let call = match existing {
            Some(call) => call,
            None => records::import(db, owner, &t).await?,
        };
        // Queued unless it already was (a run stopped between import and queueing resumes).
        let new = call.job_id.is_none();
        let call = if new {
            let job = jobs
                .enqueue(
                    ANALYZE_JOB,
                    &serde_json::json!({"call_id": call.id}),
                    Some(&owner.id),
                )
                .await?;
            records::set_job(db, &call.id, &job.id).await?;
            records::get(db, &call.id).await?
        } else {
            call
        };
        out.push(SeededCall {
            id: call.id,
            title: call.title,
            owner: owner.name.clone(),
            call_date: call.call_date,
            status: call.status,
            new,
        });
    }
    Ok(out)
}
