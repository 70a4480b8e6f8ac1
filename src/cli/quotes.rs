//! `dealdesk deals …`, `dealdesk quotes …` and `dealdesk eval quotes`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::print_json;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::quotes::eval::{self, EvalOptions};

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Cross-validate the quote model's win probability on a CSV (AUC, log-loss, Brier, ECE).
    Quotes(EvalQuotesArgs),
    /// Diarization error rate (250 ms collar) and speaker-count accuracy on labelled calls.
    Diarization(super::diarize::EvalDiarizationArgs),
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

pub fn eval_cmd(config: &Config, cmd: EvalCommand) -> Result<()> {
    let args = match cmd {
        EvalCommand::Quotes(args) => args,
        EvalCommand::Diarization(args) => return super::diarize::eval_cmd(config, args),
    };
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
