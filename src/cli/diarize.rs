//! `dealdesk eval diarization`.

use std::path::PathBuf;

use clap::Args;

use super::print_json;
use crate::config::Config;
use crate::diarize::{DEFAULT_MIN_SIMILARITY, DiarizeOptions, Diarizer, eval};
use crate::error::Result;
use crate::models::Manifest;

#[derive(Args, Debug)]
pub struct EvalDiarizationArgs {
    /// Folder of calls, each a sub-folder with call.wav (16 kHz mono) and turns.tsv.
    #[arg(long)]
    pub dir: PathBuf,
    /// Give the diarizer each call's true number of speakers instead of estimating it.
    #[arg(long)]
    pub speakers_known: bool,
    /// Cosine similarity at or above which two clusters are one speaker.
    #[arg(long, default_value_t = DEFAULT_MIN_SIMILARITY)]
    pub min_similarity: f32,
    #[arg(long)]
    pub json: bool,
}

pub fn eval_cmd(config: &Config, args: EvalDiarizationArgs) -> Result<()> {
    let diarizer = Diarizer::load(config, &Manifest::load(config)?)?;
    let opts = DiarizeOptions {
        min_similarity: args.min_similarity,
        ..DiarizeOptions::default()
    };
    let report = eval::evaluate(&diarizer, &args.dir, args.speakers_known, &opts)?;
    if args.json {
        print_json(&report);
        return Ok(());
    }
    println!("call     audio_s  speakers(ref)  DER     compute_s");
    for c in &report.calls {
        println!(
            "{:<8} {:>7.1}  {:>2} ({:>2})        {:.3}   {:.2}",
            c.call, c.audio_s, c.speakers, c.reference_speakers, c.der, c.compute_s
        );
    }
    println!(
        "total DER {:.3} (collar {} ms), speaker-count accuracy {:.2}, {:.2} s compute per \
         audio minute",
        report.der, report.collar_ms, report.speaker_count_accuracy, report.compute_s_per_audio_min
    );
    Ok(())
}
