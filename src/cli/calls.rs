//! `dealdesk analyze`, `dealdesk extract`, `dealdesk eval calls`, `dealdesk calls …`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::print_json;
use crate::calls::dates::Date;
use crate::calls::eval::{self, Source};
use crate::calls::extract::Extraction;
use crate::calls::pipeline::{self, CallInfo};
use crate::calls::relabel;
use crate::calls::transcript::{CallTranscript, Participant, Side};
use crate::config::Config;
use crate::engines::Engines;
use crate::error::{Error, Result};
use crate::models::Manifest;

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// The recording (wav, mp3, m4a, ogg, flac; format sniffed from content).
    pub file: PathBuf,
    /// Date of the call, for relative deadlines ("by Friday").
    #[arg(long)]
    pub call_date: Option<String>,
    /// auto (English or Mandarin, detected), en or zh.
    #[arg(long, default_value = "auto")]
    pub language: String,
    /// A participant as NAME=seller|customer, repeated; with --channels split, in channel order.
    #[arg(long = "participant")]
    pub participants: Vec<String>,
    /// mix, or split (one party per stereo channel).
    #[arg(long, default_value = "mix")]
    pub channels: String,
    /// Print the transcript and insights as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// A transcript in the import format (see README, "Calls").
    #[arg(long)]
    pub transcript: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalCallsArgs {
    /// Folder of call folders (transcript.json, labels.json, call.wav, turns.tsv).
    #[arg(long)]
    pub dir: PathBuf,
    /// transcript (the labelled transcript) or audio (Whisper on call.wav).
    #[arg(long, default_value = "transcript")]
    pub from: String,
    /// Only these calls (comma separated folder names).
    #[arg(long, value_delimiter = ',')]
    pub calls: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

/// `dealdesk calls relabel`: map a call's diarized speaker labels to participants
/// ("Speaker 1=Daniel Okafor"; "Speaker 2=" unmaps). Re-attributes the transcript,
/// commitments, objections and tasks without rerunning the model; audited.
#[derive(Args, Debug)]
pub struct RelabelArgs {
    /// The call id.
    pub id: String,
    /// LABEL=PARTICIPANT, repeated.
    #[arg(required = true)]
    pub assignments: Vec<String>,
    /// The user acting (name or id); they must be able to see the call.
    #[arg(long = "as")]
    pub user: String,
    #[arg(long)]
    pub json: bool,
}

/// Runs `dealdesk calls relabel`.
pub async fn relabel_cmd(db: &crate::store::Db, args: RelabelArgs) -> Result<()> {
    let user = crate::users::active(db, &args.user).await?;
    let changes = relabel::parse_assignments(&args.assignments)?;
    let out = relabel::relabel(db, &user, &args.id, &changes).await?;
    if args.json {
        print_json(&out);
        return Ok(());
    }
    for (label, name) in &out.speakers {
        println!("{label} → {}", name.as_deref().unwrap_or("(unmapped)"));
    }
    let waiting = out
        .insights
        .commitments
        .iter()
        .filter(|c| c.needs_relabel)
        .count()
        + out
            .insights
            .objections
            .iter()
            .filter(|o| o.needs_relabel)
            .count();
    println!(
        "{} commitments, {} objections ({} removed: raised by the seller side); {waiting} \
         still owned by an unmapped speaker",
        out.insights.commitments.len(),
        out.insights.objections.len(),
        out.objections_removed
    );
    Ok(())
}

fn engines(config: &Config) -> Result<Engines> {
    Ok(Engines::new(
        Arc::new(config.clone()),
        Arc::new(Manifest::load(config)?),
    ))
}

fn progress_bar(hidden: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(100);
    if hidden || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

fn parse_participant(s: &str) -> Result<Participant> {
    let (name, side) = s.rsplit_once('=').ok_or_else(|| {
        Error::InvalidInput(format!(
            "--participant {s:?}: use NAME=seller or NAME=customer"
        ))
    })?;
    let side = match side.trim() {
        "seller" => Side::Seller,
        "customer" => Side::Customer,
        other => {
            return Err(Error::InvalidInput(format!(
                "--participant side {other:?}: use seller or customer"
            )));
        }
    };
    Ok(Participant {
        name: name.trim().to_string(),
        side,
        role: None,
    })
}

pub fn analyze(config: &Config, args: AnalyzeArgs) -> Result<()> {
    let info = CallInfo {
        language: args.language.parse()?,
        call_date: args.call_date.as_deref().map(Date::parse).transpose()?,
        participants: args
            .participants
            .iter()
            .map(|p| parse_participant(p))
            .collect::<Result<_>>()?,
        channels: match args.channels.as_str() {
            "mix" => crate::asr::Channels::Mix,
            "split" => crate::asr::Channels::Split,
            other => {
                return Err(Error::InvalidInput(format!(
                    "--channels {other:?}: use mix or split"
                )));
            }
        },
    };
    let engines = engines(config)?;
    let bar = progress_bar(args.json);
    let (t, ex) = pipeline::analyze(&engines, config, &args.file, &info, &|p| {
        bar.set_position((p * 100.0) as u64)
    })?;
    bar.finish_and_clear();
    print_analysis(Some(&t), &ex, args.json);
    Ok(())
}

pub fn extract(config: &Config, args: ExtractArgs) -> Result<()> {
    let t = CallTranscript::load(&args.transcript)?;
    let engines = engines(config)?;
    let bar = progress_bar(args.json);
    let llm = engines.llm()?;
    let ex =
        crate::calls::extract::extract(&t, &llm, &crate::calls::extract_options(config), &|p| {
            bar.set_position((p * 100.0) as u64)
        })?;
    bar.finish_and_clear();
    print_analysis(None, &ex, args.json);
    Ok(())
}

fn print_analysis(t: Option<&CallTranscript>, ex: &Extraction, json: bool) {
    if json {
        print_json(&serde_json::json!({"transcript": t, "insights": ex}));
        return;
    }
    if let Some(t) = t {
        for s in &t.segments {
            let who = s.speaker.as_deref().unwrap_or("?");
            println!(
                "[{} → {}] {who}: {}",
                super::clock(s.start_ms),
                super::clock(s.end_ms),
                s.text
            );
        }
        println!();
    }
    println!("Commitments ({}):", ex.commitments.len());
    for c in &ex.commitments {
        let due = c
            .due_date
            .map(|d| d.to_string())
            .unwrap_or_else(|| "no date".into());
        println!(
            "  - {} ({}): {} — due {due}\n    \"{}\" (turn {})",
            c.owner,
            crate::calls::tasks::side_name(c.side),
            c.action,
            c.quote,
            c.turn
        );
    }
    println!("Objections ({}):", ex.objections.len());
    for o in &ex.objections {
        let state = if o.resolved { "resolved" } else { "open" };
        println!(
            "  - {} by {} ({state}): \"{}\" (turn {})\n    answer: {}",
            o.category.as_str(),
            o.raised_by,
            o.quote,
            o.turn,
            o.answer
        );
    }
    for i in &ex.injections {
        println!(
            "Ignored a line addressed to the AI (turn {}): \"{}\"",
            i.turn, i.quote
        );
    }
    let d = &ex.dropped;
    println!(
        "Dropped: {} ungrounded, {} unattributed, {} by rules, {} by the model, {} withdrawn, {} duplicates, {} model errors; {} LLM questions in {:.1} s",
        d.ungrounded,
        d.unattributed,
        d.rules,
        d.model,
        d.withdrawn,
        d.duplicates,
        d.model_errors,
        ex.stats.llm_questions,
        ex.stats.llm_seconds
    );
}

pub fn eval(config: &Config, args: EvalCallsArgs) -> Result<()> {
    let engines = engines(config)?;
    let source = match args.from.as_str() {
        "transcript" => Source::Transcript,
        "audio" => Source::Audio(&engines),
        other => {
            return Err(Error::InvalidInput(format!(
                "--from {other:?}: use transcript or audio"
            )));
        }
    };
    let llm = engines.llm()?;
    let report = eval::run(
        &args.dir,
        &args.calls,
        &source,
        &llm,
        &crate::calls::extract_options(config),
        &|call| eprintln!("evaluating {call} …"),
    )?;
    if args.json {
        print_json(&report);
        return Ok(());
    }
    println!(
        "{:<8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "call", "C-P", "C-R", "C-F1", "O-F1", "cat", "due", "secs"
    );
    let pct = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for c in &report.calls {
        println!(
            "{:<8} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6} {:>6} {:>6.1}",
            c.call_id,
            c.commitments.precision,
            c.commitments.recall,
            c.commitments.f1,
            c.objections.f1,
            pct(c.category.accuracy),
            pct(c.due_date.accuracy),
            c.seconds
        );
    }
    println!(
        "total: commitment F1 {:.3}, objection F1 {:.3}, due-date accuracy {}, injection failures {}, {:.1} s",
        report.commitment_f1,
        report.objection_f1,
        pct(report.due_date_accuracy),
        report.injection_failures,
        report.seconds
    );
    if let Some(a) = report.attribution {
        println!(
            "speakers: {}/{} segments attributed to a participant ({} to the right one); {}/{} \
             items owned by a participant ({} the right one), the rest by an unmapped label",
            a.segments_mapped,
            a.segments,
            a.segments_correct,
            a.items_with_participant,
            a.items,
            a.items_owner_correct
        );
    }
    Ok(())
}
