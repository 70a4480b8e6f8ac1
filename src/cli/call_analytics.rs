//! `dealdesk calls analytics|search|relabel`: the caller's scope applies as in
//! the API; the CLI acts as a named user (`--as`, default: the `--rep` given).

use clap::{Args, Subcommand};

use super::print_json;
use crate::calls::analytics::{self, CallAnalytics, Range, Sides, Summary, TeamAnalytics};
use crate::calls::search::{self, SearchRequest};
use crate::calls::trackers::Trackers;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::users::{self, User};

#[derive(Subcommand, Debug)]
pub enum CallsCommand {
    /// Talk metrics and trackers of one call, or aggregated over a rep's or team's calls.
    Analytics(AnalyticsArgs),
    /// Find moments in the transcripts of the calls you may see (English or Mandarin).
    Search(SearchArgs),
    /// Map a call's diarized speaker labels to participants; re-attributes its items, audited.
    Relabel(super::calls::RelabelArgs),
}

#[derive(Args, Debug)]
pub struct AnalyticsArgs {
    /// A call id (omit it to aggregate over --rep/--from/--to).
    pub id: Option<String>,
    /// Only this rep's calls (name or id).
    #[arg(long)]
    pub rep: Option<String>,
    /// First call day, YYYY-MM-DD.
    #[arg(long)]
    pub from: Option<String>,
    /// Last call day, YYYY-MM-DD.
    #[arg(long)]
    pub to: Option<String>,
    /// Act as this user (name or id); default: the --rep.
    #[arg(long = "as")]
    pub user: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Words or a phrase.
    pub query: String,
    #[arg(long)]
    pub rep: Option<String>,
    /// Part of the customer's name, role or the call title.
    #[arg(long)]
    pub customer: Option<String>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    /// price, budget, timing, competitor, authority, need, trust, product_fit, contract.
    #[arg(long)]
    pub objection_category: Option<String>,
    /// A tracker name from the trackers file.
    #[arg(long)]
    pub tracker: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Act as this user (name or id); default: the --rep.
    #[arg(long = "as")]
    pub user: Option<String>,
    #[arg(long)]
    pub json: bool,
}

async fn acting(db: &Db, user: Option<&str>, rep: Option<&str>) -> Result<User> {
    let name = user.or(rep).ok_or_else(|| {
        Error::InvalidInput(
            "say who is asking: --as USER (their scope applies: a rep sees their own calls, a \
             manager their region's)"
                .into(),
        )
    })?;
    users::active(db, name).await
}

pub async fn calls_cmd(config: &Config, cmd: CallsCommand) -> Result<()> {
    let db = Db::open(config).await?;
    match cmd {
        CallsCommand::Analytics(a) => {
            let user = acting(&db, a.user.as_deref(), a.rep.as_deref()).await?;
            let trackers = Trackers::load(config)?;
            match a.id {
                Some(id) => {
                    if a.rep.is_some() || a.from.is_some() || a.to.is_some() {
                        return Err(Error::InvalidInput(
                            "give a call id, or --rep/--from/--to for an aggregate, not both"
                                .into(),
                        ));
                    }
                    let r = analytics::for_call(&db, &user, &trackers, &id).await?;
                    if a.json {
                        print_json(&r);
                    } else {
                        print_call(&r);
                    }
                }
                None => {
                    let range = Range {
                        rep: a.rep,
                        from: a.from,
                        to: a.to,
                    };
                    let r = analytics::for_range(&db, &user, &trackers, &range).await?;
                    if a.json {
                        print_json(&r);
                    } else {
                        print_range(&r);
                    }
                }
            }
        }
        CallsCommand::Relabel(args) => super::calls::relabel_cmd(&db, args).await?,
        CallsCommand::Search(s) => {
            let user = acting(&db, s.user.as_deref(), s.rep.as_deref()).await?;
            let req = SearchRequest {
                query: s.query,
                rep: s.rep,
                customer: s.customer,
                from: s.from,
                to: s.to,
                objection_category: s.objection_category,
                tracker: s.tracker,
                limit: Some(s.limit),
            };
            let r = search::search(&db, config, &user, &req).await?;
            if s.json {
                print_json(&r);
            } else {
                for h in &r.hits {
                    println!(
                        "{}  {:>8}  {:<16} {}\n    {}",
                        h.call_title,
                        clock(h.start_ms),
                        h.speaker.as_deref().unwrap_or(analytics::UNATTRIBUTED),
                        h.link,
                        h.snippet
                    );
                }
                println!(
                    "{} hits in {} calls searched ({:.1} ms)",
                    r.hits.len(),
                    r.calls_searched,
                    r.took_ms
                );
            }
        }
    }
    Ok(())
}

fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn print_sides(s: &Sides) {
    println!(
        "talk: seller {}  customer {}  unknown {}",
        pct(s.seller.talk_ratio),
        pct(s.customer.talk_ratio),
        pct(s.unknown.talk_ratio)
    );
}

fn print_call(a: &CallAnalytics) {
    println!(
        "{} ({}, {} segments, {})",
        a.title,
        a.language,
        a.segments,
        clock(a.span_ms)
    );
    print_sides(&a.sides);
    for s in &a.speakers {
        println!(
            "  {:<20} {:<8} {:>5}  {} questions",
            s.speaker,
            s.side,
            pct(s.talk_ratio),
            s.questions
        );
    }
    if let Some(m) = &a.longest_monologue {
        println!(
            "longest monologue: {} {:.0} s at {}",
            m.speaker,
            m.duration_ms as f64 / 1000.0,
            clock(m.start_ms)
        );
    }
    println!(
        "customer questions: {}  switches/min: {:.1}  silence: {}  attributed: {}",
        a.customer_questions,
        a.switches_per_minute,
        pct(a.silence_share),
        pct(a.attributed_share)
    );
    for t in a.trackers.iter().filter(|t| t.count > 0) {
        let at: Vec<String> = t.hits.iter().map(|h| clock(h.start_ms)).collect();
        println!(
            "tracker {:<16} {:>3}  at {}",
            t.name,
            t.count,
            at.join(", ")
        );
    }
}

fn print_summary(s: &Summary) {
    println!("{} calls, {} of talk", s.calls, clock(s.talk_ms));
    print_sides(&s.sides);
    println!(
        "customer questions/call: {:.1}  switches/min: {:.1}  silence: {}  mean longest monologue: {:.0} s",
        s.customer_questions_per_call,
        s.switches_per_minute,
        pct(s.silence_share),
        s.mean_longest_monologue_ms / 1000.0
    );
    let c = &s.commitments;
    println!(
        "commitments: {} ({} kept, {} open, {} overdue)",
        c.total, c.kept, c.open, c.overdue
    );
    let objections: Vec<String> = s
        .objections
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("objections: {}", objections.join(", "));
    let trackers: Vec<String> = s
        .trackers
        .iter()
        .map(|(k, v)| format!("{k} {}/{}", v.hits, v.calls))
        .collect();
    println!("trackers (hits/calls): {}", trackers.join(", "));
}

fn print_range(r: &TeamAnalytics) {
    println!(
        "{} to {}{}",
        r.from.as_deref().unwrap_or("start"),
        r.to.as_deref().unwrap_or("today"),
        r.rep
            .as_deref()
            .map(|rep| format!(", rep {rep}"))
            .unwrap_or_default()
    );
    print_summary(&r.total);
    for rep in &r.by_rep {
        println!("\n{} ({})", rep.rep, rep.region);
        print_summary(&rep.summary);
    }
}
