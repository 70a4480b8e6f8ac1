//! The review rules (`rules.toml`): which recommendations need a person, and who.
//!
//! The rules are data that operations staff edit; [`RulesSource`] re-reads the file when its
//! modification time changes and keeps the last good version when an edit is invalid, so a
//! typo never switches governance off. The built-in default is the repository's `rules.toml`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Kind;
use super::alerts::Alert;
use crate::error::{Error, Result};

/// The rules shipped with dealdesk (the repository's `rules.toml`).
pub const DEFAULT_RULES: &str = include_str!("../../rules.toml");

/// Who decides a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Approved by the rules themselves.
    Auto,
    /// The rep who owns the subject (or a manager).
    Owner,
    /// A manager of the region (or an admin).
    Manager,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Auto => "auto",
            Route::Owner => "owner",
            Route::Manager => "manager",
        }
    }
}

/// One rule: conditions that must all hold, and the route it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub regions: Vec<String>,
    pub discount_above: Option<f64>,
    pub deal_value_above: Option<f64>,
    pub confidence_below: Option<f64>,
    pub route: Route,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub after_hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    pub window: usize,
    pub max_failure_rate: f64,
    pub max_quote_ece: f64,
}

/// The whole rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub default: Route,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    pub escalation: Escalation,
    pub breaker: Breaker,
    #[serde(default, rename = "alert")]
    pub alerts: Vec<Alert>,
}

/// The facts of one recommendation that rules look at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts<'a> {
    pub kind: Kind,
    pub region: &'a str,
    pub discount: Option<f64>,
    pub deal_value: Option<f64>,
    pub confidence: Option<f64>,
}

/// The route chosen and the rule that chose it (`None`: the default).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub route: Route,
    pub rule: Option<String>,
}

impl Rules {
    /// Parses and validates rules; `origin` names the source in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Rules> {
        let rules: Rules = toml::from_str(text)
            .map_err(|e| Error::Config(format!("review rules in {origin}: {e}")))?;
        rules.validate(origin)?;
        Ok(rules)
    }

    /// The rules shipped with dealdesk.
    pub fn builtin() -> Rules {
        Rules::parse(DEFAULT_RULES, "the built-in rules.toml").expect("the shipped rules are valid")
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(format!("review rules in {origin}: {msg}")));
        let mut names = std::collections::HashSet::new();
        for rule in &self.rules {
            if rule.name.trim().is_empty() {
                return fail("every [[rule]] needs a name".into());
            }
            if !names.insert(rule.name.as_str()) {
                return fail(format!(
                    "two rules are named {:?}; names must be unique",
                    rule.name
                ));
            }
            let fraction = |v: Option<f64>, key: &str| match v {
                Some(x) if !(0.0..=1.0).contains(&x) => Err(Error::Config(format!(
                    "review rules in {origin}: rule {:?}: {key} is {x}; use a fraction from 0 to 1",
                    rule.name
                ))),
                _ => Ok(()),
            };
            fraction(rule.discount_above, "discount_above")?;
            fraction(rule.confidence_below, "confidence_below")?;
            if rule
                .deal_value_above
                .is_some_and(|v| !v.is_finite() || v < 0.0)
            {
                return fail(format!(
                    "rule {:?}: deal_value_above must be a non-negative number",
                    rule.name
                ));
            }
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let mut alert_names = std::collections::HashSet::new();
        for alert in &self.alerts {
            if alert.name.trim().is_empty() || !alert_names.insert(alert.name.as_str()) {
                return fail("every [[alert]] needs a unique name".into());
            }
            if !alert.above.is_finite() || alert.days == 0 {
                return fail(format!(
                    "alert {:?}: above must be a number and days at least 1",
                    alert.name
                ));
            }
        }
        if !positive(self.escalation.after_hours) {
            return fail("escalation.after_hours must be above 0".into());
        }
        let b = &self.breaker;
        if b.window == 0 || !(0.0..=1.0).contains(&b.max_failure_rate) || !positive(b.max_quote_ece)
        {
            return fail(
                "breaker.window must be at least 1, breaker.max_failure_rate from 0 to 1 and \
                 breaker.max_quote_ece above 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// The route for a recommendation: the first matching rule's, else the default. A missing
    /// fact never satisfies a condition on it.
    pub fn route(&self, facts: &Facts) -> Decision {
        let above = |bound: Option<f64>, value: Option<f64>| {
            bound.is_none_or(|b| value.is_some_and(|v| v > b))
        };
        let below = |bound: Option<f64>, value: Option<f64>| {
            bound.is_none_or(|b| value.is_some_and(|v| v < b))
        };
        self.rules
            .iter()
            .find(|rule| {
                (rule.kinds.is_empty() || rule.kinds.contains(&facts.kind))
                    && (rule.regions.is_empty()
                        || rule
                            .regions
                            .iter()
                            .any(|r| r.eq_ignore_ascii_case(facts.region)))
                    && above(rule.discount_above, facts.discount)
                    && above(rule.deal_value_above, facts.deal_value)
                    && below(rule.confidence_below, facts.confidence)
            })
            .map_or(
                Decision {
                    route: self.default,
                    rule: None,
                },
                |rule| Decision {
                    route: rule.route,
                    rule: Some(rule.name.clone()),
                },
            )
    }
}

/// The rules in force: the built-in ones, or a file re-read whenever it changes.
#[derive(Clone)]
pub struct RulesSource {
    inner: Arc<Mutex<State>>,
}

struct State {
    path: Option<PathBuf>,
    modified: Option<SystemTime>,
    rules: Arc<Rules>,
    /// Why the file's current content was refused, while it is.
    error: Option<String>,
}

impl RulesSource {
    /// The built-in rules, never reloaded.
    pub fn builtin() -> RulesSource {
        RulesSource::from_state(None, Rules::builtin())
    }

    /// Rules from `path`; the file must be valid now (later invalid edits are refused).
    pub fn file(path: &Path) -> Result<RulesSource> {
        let (rules, modified) = read(path)?;
        let source = RulesSource::from_state(Some(path.to_path_buf()), rules);
        source.lock().modified = modified;
        Ok(source)
    }

    fn from_state(path: Option<PathBuf>, rules: Rules) -> RulesSource {
        RulesSource {
            inner: Arc::new(Mutex::new(State {
                path,
                modified: None,
                rules: Arc::new(rules),
                error: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rules in force, re-reading the file first if it changed since the last look.
    pub fn current(&self) -> Arc<Rules> {
        let mut state = self.lock();
        if let Some(path) = state.path.clone() {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified != state.modified {
                state.modified = modified;
                match read(&path) {
                    Ok((rules, _)) => {
                        tracing::info!(path = %path.display(), "review rules reloaded");
                        state.rules = Arc::new(rules);
                        state.error = None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "review rules edit refused; the previous rules stay");
                        state.error = Some(e.to_string());
                    }
                }
            }
        }
        state.rules.clone()
    }

    /// Why the rules file's current content is refused, if it is.
    pub fn error(&self) -> Option<String> {
        self.current();
        self.lock().error.clone()
    }
}

fn read(path: &Path) -> Result<(Rules, Option<SystemTime>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read the review rules", path, e))?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((Rules::parse(&text, &path.display().to_string())?, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: Kind) -> Facts<'static> {
        Facts {
            kind,
            region: "emea",
            discount: None,
            deal_value: None,
            confidence: None,
        }
    }

    #[test]
    fn the_shipped_rules_route_by_discount_value_confidence_and_kind() {
        let rules = Rules::builtin();
        let quote = |discount| Facts {
            discount: Some(discount),
            ..facts(Kind::Quote)
        };
        assert_eq!(rules.route(&quote(0.20)).route, Route::Manager);
        assert_eq!(rules.route(&quote(0.10)).route, Route::Auto);
        let big = Facts {
            deal_value: Some(400_000.0),
            ..quote(0.05)
        };
        assert_eq!(rules.route(&big).route, Route::Manager);
        let unsure = Facts {
            confidence: Some(0.3),
            ..facts(Kind::Commitment)
        };
        let decision = rules.route(&unsure);
        assert_eq!(decision.route, Route::Manager);
        assert_eq!(
            decision.rule.as_deref(),
            Some("low-confidence output needs a manager")
        );
        assert_eq!(rules.route(&facts(Kind::TenderDraft)).route, Route::Manager);
        let sure = Facts {
            confidence: Some(0.9),
            ..facts(Kind::Commitment)
        };
        assert_eq!(
            rules.route(&sure),
            Decision {
                route: Route::Owner,
                rule: None
            }
        );
    }

    #[test]
    fn region_conditions_match_case_insensitively_and_missing_facts_never_match() {
        let rules = Rules::parse(
            r#"
default = "auto"
[[rule]]
name = "apac quotes"
kinds = ["quote"]
regions = ["APAC"]
route = "manager"
[[rule]]
name = "discounted"
discount_above = 0.1
route = "owner"
[escalation]
after_hours = 1
[breaker]
window = 10
max_failure_rate = 0.5
max_quote_ece = 0.1
"#,
            "test",
        )
        .unwrap();
        let apac = Facts {
            region: "apac",
            ..facts(Kind::Quote)
        };
        assert_eq!(rules.route(&apac).route, Route::Manager);
        // No discount known: the discount rule does not apply.
        assert_eq!(rules.route(&facts(Kind::Quote)).route, Route::Auto);
    }

    #[test]
    fn invalid_rules_are_refused_with_the_reason() {
        let base = Rules::builtin();
        let mut text = toml::to_string(&base).unwrap();
        text = text.replace("discount_above = 0.15", "discount_above = 15.0");
        let err = Rules::parse(&text, "ops.toml").unwrap_err().to_string();
        assert!(
            err.contains("ops.toml") && err.contains("discount_above"),
            "{err}"
        );
        let err = Rules::parse("default = \"sometimes\"", "ops.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes"), "{err}");
        let typo = DEFAULT_RULES.replace("confidence_below", "confidense_below");
        assert!(Rules::parse(&typo, "ops.toml").is_err());
    }

    #[test]
    fn the_file_is_reloaded_on_change_and_a_bad_edit_keeps_the_last_good_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, DEFAULT_RULES).unwrap();
        let source = RulesSource::file(&path).unwrap();
        assert_eq!(source.current().default, Route::Owner);

        let touch = |text: &str| {
            std::fs::write(&path, text).unwrap();
            // Make the change visible even on filesystems with coarse timestamps.
            let later = SystemTime::now() + std::time::Duration::from_secs(2);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(later)
                .unwrap();
        };
        touch(&DEFAULT_RULES.replace("default = \"owner\"", "default = \"manager\""));
        assert_eq!(source.current().default, Route::Manager);
        assert_eq!(source.error(), None);

        touch("default = [");
        assert_eq!(source.current().default, Route::Manager);
        assert!(source.error().unwrap().contains("rules.toml"));
    }
}
