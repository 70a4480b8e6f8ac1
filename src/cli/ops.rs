//! `dealdesk backup`, `restore` and `doctor`.

use std::path::PathBuf;

use clap::Args;

use super::print_json;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::{backup as snapshot, doctor as checkup};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A new (or empty) directory for the backup.
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A directory written by `dealdesk backup`.
    pub dir: PathBuf,
    /// Replace the data of a database and blob store that are not empty.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Only report; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn backup(config: &Config, args: BackupArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let m = snapshot::backup(config, &args.dir).await?;
    if args.json {
        print_json(&m);
        return Ok(());
    }
    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
    let bytes: u64 = m.blobs.iter().map(|b| b.size_bytes).sum();
    println!(
        "backed up {} tables ({rows} rows), {} uploads ({:.1} MB) and {} configuration files \
         into {} in {:.1} s",
        m.tables.len(),
        m.blobs.len(),
        bytes as f64 / 1e6,
        m.config.len(),
        args.dir.display(),
        started.elapsed().as_secs_f64()
    );
    if !m.damaged_blobs.is_empty() {
        eprintln!(
            "warning: {} uploads were missing or damaged and are not in the backup: {}; run \
             `dealdesk doctor`",
            m.damaged_blobs.len(),
            m.damaged_blobs.join(", ")
        );
    }
    Ok(())
}

pub async fn restore(config: &Config, args: RestoreArgs) -> Result<()> {
    let r = snapshot::restore(config, &args.dir, args.force).await?;
    if args.json {
        print_json(&r);
    } else {
        println!(
            "restored {} tables ({} rows) and {} uploads from {}; the backed-up configuration \
             files are in {} (compare them with yours); start dealdesk to rebuild the search \
             indexes",
            r.tables,
            r.rows,
            r.blobs,
            args.dir.display(),
            r.config_dir.display()
        );
    }
    Ok(())
}

pub async fn doctor(config: &Config, args: DoctorArgs) -> Result<()> {
    use checkup::Status;
    let report = checkup::run(config, !args.dry_run).await?;
    if args.json {
        print_json(&report);
    } else {
        for f in &report.findings {
            let status = match f.status {
                Status::Ok => "ok",
                Status::Repaired => "REPAIRED",
                Status::Problem => "PROBLEM",
            };
            println!("{status:<9} {:<11} {}", f.check, f.detail);
            if let Some(action) = &f.action {
                println!("{:<21} → {action}", "");
            }
        }
        println!(
            "doctor: {} repaired, {} problem(s)",
            report.count(Status::Repaired),
            report.count(Status::Problem)
        );
    }
    match report.count(Status::Problem) {
        0 => Ok(()),
        n => Err(Error::Conflict(format!(
            "{n} problem(s) need the operator (see above)"
        ))),
    }
}
