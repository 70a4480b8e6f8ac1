//! `dealdesk review …` and `dealdesk audit …`: the review queue and the audit trail from the
//! terminal. Decisions are taken as a named user (`--as`), with that user's scope and rights.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;

use super::print_json;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::review::{self, Decision, Filter, Kind, Rules, audit, breaker, metrics};
use crate::store::Db;
use crate::users;

#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// List recommendations a user may see (default: those waiting for a decision).
    List {
        /// The user whose queue to show (name or id).
        #[arg(long = "as")]
        user: String,
        /// proposed, approved, overridden or rejected; "all" for every state.
        #[arg(long, default_value = "proposed")]
        state: String,
        /// commitment, objection_answer, tender_draft or quote.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve a recommendation.
    Approve {
        id: String,
        #[arg(long = "as")]
        user: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Replace a recommendation's output with your own (a reason is required).
    Override {
        id: String,
        #[arg(long = "as")]
        user: String,
        /// The replacement value, as JSON.
        #[arg(long)]
        value: String,
        #[arg(long)]
        reason: String,
    },
    /// Reject a recommendation (a reason is required).
    Reject {
        id: String,
        #[arg(long = "as")]
        user: String,
        #[arg(long)]
        reason: String,
    },
    /// Check a rules file (default: the one in force) and print it as understood.
    Rules {
        #[arg(long)]
        check: Option<PathBuf>,
    },
    /// Kinds switched to manual by the circuit breaker; `--reset KIND` re-enables one.
    Breaker {
        #[arg(long)]
        reset: Option<String>,
        /// The admin re-enabling it (name or id).
        #[arg(long = "as")]
        user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Whether the AI helps: acceptance, override, review time, quote outcomes followed vs
    /// overridden.
    Roi {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (inclusive).
        #[arg(long)]
        to: String,
        /// One region (default: all).
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn report(config: &Config, cmd: ReportCommand) -> Result<()> {
    let ReportCommand::Roi {
        from,
        to,
        region,
        json,
    } = cmd;
    let db = Db::open(config).await?;
    let from_ms = metrics::date_ms(&from, "--from")?;
    let to_ms = metrics::date_ms(&to, "--to")? + 86_400_000;
    let m = metrics::ai_metrics(&db, region.as_deref(), from_ms, to_ms).await?;
    if json {
        print_json(&m);
        return Ok(());
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    let hours = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "{:<17} {:>8} {:>8} {:>6} {:>10} {:>8} {:>8} {:>9} {:>9}",
        "KIND",
        "PROPOSED",
        "APPROVED",
        "AUTO",
        "OVERRIDDEN",
        "REJECTED",
        "PENDING",
        "ACCEPT",
        "MEDIAN_H"
    );
    for k in &m.kinds {
        println!(
            "{:<17} {:>8} {:>8} {:>6} {:>10} {:>8} {:>8} {:>9} {:>9}",
            k.kind,
            k.proposed,
            k.approved,
            k.auto_approved,
            k.overridden,
            k.rejected,
            k.pending,
            pct(k.acceptance_rate),
            hours(k.median_review_hours)
        );
    }
    for (label, o) in [
        ("followed", &m.quotes_followed),
        ("overridden", &m.quotes_overridden),
    ] {
        println!(
            "quotes {label:<10}: {} closed, win rate {}, mean discount {}, won margin {:.0}",
            o.deals,
            pct(o.win_rate),
            pct(o.mean_discount),
            o.won_margin
        );
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain; names the first broken event and exits 1 if there is one.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Events of a subject (`deal:ID`, `call:ID`) or recommendation id; the latest without one.
    List {
        subject: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

pub async fn review(config: &Config, cmd: ReviewCommand) -> Result<()> {
    let db = Db::open(config).await?;
    let rules = review::rules_source(config)?;
    review::triage(&db, &rules.current()).await?;
    match cmd {
        ReviewCommand::List {
            user,
            state,
            kind,
            json,
        } => {
            let user = users::active(&db, &user).await?;
            let filter = Filter {
                state: (state != "all").then_some(state),
                kind: kind.as_deref().map(Kind::parse).transpose()?,
                ..Filter::default()
            };
            let items = review::list(&db, &user, &filter).await?;
            if json {
                print_json(&items);
            } else {
                println!(
                    "{:<36} {:<16} {:<10} {:<8} {:<10} RULE",
                    "ID", "KIND", "STATE", "ROUTE", "REGION"
                );
                for r in items {
                    let flag = if r.escalated_at.is_some() {
                        " (escalated)"
                    } else {
                        ""
                    };
                    println!(
                        "{:<36} {:<16} {:<10} {:<8} {:<10} {}{flag}",
                        r.id,
                        r.kind.as_str(),
                        r.state,
                        r.route.as_deref().unwrap_or("-"),
                        r.region,
                        r.rule.as_deref().unwrap_or("default")
                    );
                }
            }
        }
        ReviewCommand::Approve { id, user, note } => {
            decide(&db, &user, &id, Decision::Approve { note }).await?
        }
        ReviewCommand::Override {
            id,
            user,
            value,
            reason,
        } => {
            let replacement: Value = serde_json::from_str(&value).map_err(|e| {
                Error::InvalidInput(format!("--value is not JSON ({e}); quote it for the shell"))
            })?;
            decide(
                &db,
                &user,
                &id,
                Decision::Override {
                    replacement,
                    reason,
                },
            )
            .await?
        }
        ReviewCommand::Reject { id, user, reason } => {
            decide(&db, &user, &id, Decision::Reject { reason }).await?
        }
        ReviewCommand::Rules { check } => {
            let rules = match check {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| Error::io("cannot read the rules file", &path, e))?;
                    Rules::parse(&text, &path.display().to_string())?
                }
                None => rules.current().as_ref().clone(),
            };
            print!(
                "{}",
                toml::to_string_pretty(&rules).expect("rules serialize")
            );
        }
        ReviewCommand::Breaker { reset, user } => {
            if let Some(kind) = reset {
                let admin = match user {
                    Some(name) => Some(users::active(&db, &name).await?),
                    None => None,
                };
                if admin.as_ref().is_some_and(|u| u.role != users::Role::Admin) {
                    return Err(Error::Forbidden("only an admin may reset a breaker".into()));
                }
                breaker::reset(
                    &db,
                    admin.as_ref().map(|u| u.id.as_str()),
                    Kind::parse(&kind)?,
                )
                .await?;
                println!("{kind} is back to the review rules");
            }
            print_json(&breaker::tripped(&db).await?);
        }
    }
    Ok(())
}

async fn decide(db: &Db, user: &str, id: &str, decision: Decision) -> Result<()> {
    let user = users::active(db, user).await?;
    let rec = review::decide(db, &user, id, &decision).await?;
    println!("{} is {} by {}", rec.id, rec.state, user.name);
    Ok(())
}

/// Runs `dealdesk audit …`; `Ok(false)` when verification found a broken chain.
pub async fn audit_cmd(config: &Config, cmd: AuditCommand) -> Result<bool> {
    let db = Db::open(config).await?;
    match cmd {
        AuditCommand::Verify { json } => {
            let report = audit::verify(&db).await?;
            if json {
                print_json(&report);
            } else {
                match &report.first_broken {
                    None => println!("audit chain intact: {} events", report.events),
                    Some(b) => println!(
                        "audit chain BROKEN at event {} ({}): {}; {} events before it are intact",
                        b.seq, b.id, b.reason, report.events
                    ),
                }
            }
            Ok(report.first_broken.is_none())
        }
        AuditCommand::List { subject, limit } => {
            print_json(&audit::list(&db, subject.as_deref(), limit).await?);
            Ok(true)
        }
    }
}
