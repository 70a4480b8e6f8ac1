//! `dealdesk deals …`, `dealdesk quotes …` and `dealdesk eval quotes`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::print_json;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::quotes::eval::{self, EvalOptions};
use crate::quotes::recommend::DealInput;
use crate::quotes::service::{self, Actor};
use crate::quotes::simulate::{self, Market};
use crate::store::Db;

#[derive(Subcommand, Debug)]
pub enum DealsCommand {
    /// Import a CRM export: every row is checked, bad rows are listed with their line numbers
    /// and nothing is imported unless all are good.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The column mapping (TOML; see the README's Quotes section).
        #[arg(long)]
        map: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuotesCommand {
    /// Fit a new model version on every closed deal.
    Fit {
        #[arg(long)]
        json: bool,
    },
    /// Recommend a discount for the deal in a JSON file ({list_price, region, segment, features, ...}).
    Recommend {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Compare recommendations across regions and segments for matched deals.
    Fairness {
        #[arg(long)]
        json: bool,
    },
    /// Run the recommender in a simulated market with a known win curve and print the regret
    /// at each number of outcomes.
    Simulate {
        /// Outcome counts at which to refit and measure.
        #[arg(long, num_args = 1.., default_values_t = [100usize, 200, 400, 800, 1600, 3200, 6400])]
        at: Vec<usize>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct EvalQuotesArgs {
    /// The CSV file, one row per closed deal.
    #[arg(long)]
    pub csv: PathBuf,
    /// The outcome column.
    #[arg(long)]
    pub target: String,
    /// The target value that counts as won; every other non-empty value is lost.
    #[arg(long)]
    pub positive: String,
    /// Field separator (one character).
    #[arg(long, default_value = ",")]
    pub sep: String,
    /// Order rows by this column and test on the last 20% (else 5-fold stratified CV).
    #[arg(long)]
    pub time_col: Option<String>,
    /// Columns to leave out (ids, leaks); repeat or list several.
    #[arg(long, num_args = 1..)]
    pub drop: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn eval_quotes(args: EvalQuotesArgs) -> Result<()> {
    let sep = match args.sep.as_bytes() {
        [b] => *b,
        b"\\t" => b'\t',
        _ => {
            return Err(Error::InvalidInput(format!(
                "--sep {:?}: give one character, e.g. ',' or ';' (or \\t)",
                args.sep
            )));
        }
    };
    let report = eval::evaluate(&EvalOptions {
        csv: args.csv,
        target: args.target,
        positive: args.positive,
        sep,
        time_col: args.time_col,
        drop: args.drop,
    })?;
    if args.json {
        print_json(&report);
    } else {
        println!(
            "{} on {} rows ({} positive): AUC {:.4}  log-loss {:.4}  Brier {:.4}  ECE {:.4}  ({:.1} s)",
            report.protocol,
            report.rows,
            report.positives,
            report.auc,
            report.logloss,
            report.brier,
            report.ece,
            report.seconds
        );
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

pub fn deals_cmd(config: &Config, cmd: DealsCommand) -> Result<()> {
    let DealsCommand::Import { file, map, json } = cmd;
    let report = runtime()?.block_on(async {
        let db = Db::open(config).await?;
        service::import(&db, Actor::OPERATOR, &file, &map).await
    })?;
    if json {
        print_json(&report);
    } else {
        println!(
            "imported {} deals ({} won, {} lost, {} open)",
            report.imported, report.won, report.lost, report.open
        );
    }
    Ok(())
}

pub fn quotes_cmd(config: &Config, cmd: QuotesCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        QuotesCommand::Fit { json } => {
            let info = rt.block_on(async {
                let db = Db::open(config).await?;
                service::fit(&db, config, Actor::OPERATOR).await
            })?;
            if json {
                print_json(&info);
            } else {
                println!(
                    "model version {} ({}) on {} outcomes, discount curve: {}\nvalidation: {}",
                    info.version,
                    info.id,
                    info.rows,
                    if info.has_price {
                        "yes"
                    } else {
                        "no (context only)"
                    },
                    info.metrics
                );
            }
        }
        QuotesCommand::Recommend { file, json } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::io("cannot read the deal", &file, e))?;
            let deal: DealInput = serde_json::from_str(&text).map_err(|e| {
                Error::InvalidInput(format!(
                    "{} is not a deal: {e}; give {{\"list_price\": ..., \"region\": ..., \"features\": {{...}}}}",
                    file.display()
                ))
            })?;
            let rec = rt.block_on(async {
                let db = Db::open(config).await?;
                service::recommend(&db, config, Actor::OPERATOR, deal).await
            })?;
            if json {
                print_json(&rec);
            } else {
                match &rec.recommended {
                    Some(q) => println!(
                        "recommended discount {:.1} % (price {:.2}): P(win) {:.3} [{:.3}, {:.3}], expected margin {:.2}{}",
                        q.discount * 100.0,
                        q.price,
                        q.win_probability,
                        q.interval[0],
                        q.interval[1],
                        q.expected_margin,
                        rec.binding
                            .as_deref()
                            .map(|b| format!(" (bound by {b})"))
                            .unwrap_or_default()
                    ),
                    None => println!("P(win) {:.3}", rec.win_probability_at_list),
                }
                if let Some(id) = &rec.recommendation_id {
                    println!("above the approval threshold: recorded for review as {id}");
                }
                for c in &rec.explanation {
                    println!("  {:<30} {:+.3}", c.field, c.logit);
                }
                if let Some(note) = &rec.note {
                    println!("note: {note}");
                }
            }
        }
        QuotesCommand::Fairness { json } => {
            let report = rt.block_on(async {
                let db = Db::open(config).await?;
                service::fairness(&db, config).await
            })?;
            if json {
                print_json(&report);
            } else {
                for a in &report.attributes {
                    println!(
                        "{:<12} discount gap {:.4} (bound {}), win gap {:.4} (bound {}), {} groups{}",
                        a.attribute,
                        a.discount_gap,
                        report.max_discount_gap,
                        a.win_gap,
                        report.max_win_gap,
                        a.groups_compared,
                        if a.flagged { "  FLAGGED" } else { "" }
                    );
                }
                if !report.protected_in_use.is_empty() {
                    println!(
                        "FLAGGED: the model uses protected fields {:?}; refit",
                        report.protected_in_use
                    );
                }
            }
        }
        QuotesCommand::Simulate { at, seed, json } => {
            let curve =
                simulate::regret_curve(&Market::regional(), &service::rules(config)?, &at, seed)?;
            if json {
                print_json(&curve);
            } else {
                println!(
                    "{:>9} {:>12} {:>9} {:>8}",
                    "outcomes", "recommended", "optimum", "regret"
                );
                for p in curve {
                    println!(
                        "{:>9} {:>12.4} {:>9.4} {:>8.4}",
                        p.outcomes, p.recommended, p.optimum, p.regret
                    );
                }
            }
        }
    }
    Ok(())
}
