//! The quote page: a deal form, then the recommender's answer — the win-probability and
//! expected-margin curves over the discount as a server-rendered SVG chart, the recommended
//! discount with its interval, the explanation and similar past deals, and whether a manager
//! must approve it (then it is already in the review queue).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::svg::{self, Axis};
use super::{Page, render};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::quotes::recommend::{CurvePoint, DealInput, Recommendation};
use crate::quotes::service::{self, Actor};

/// What the form holds (kept to show it again with the answer).
#[derive(Deserialize, Default, Clone)]
pub struct DealForm {
    #[serde(default)]
    list_price: String,
    #[serde(default)]
    cost: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    region: String,
    /// One `name = value` per line; numbers stay numbers.
    #[serde(default)]
    features: String,
}

impl DealForm {
    fn to_input(&self) -> Result<DealInput> {
        let number = |name: &str, text: &str| -> Result<Option<f64>> {
            let text = text.trim().replace(',', "");
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<f64>()
                .map(Some)
                .map_err(|_| Error::InvalidInput(format!("{name}: {text:?} is not a number")))
        };
        let list_price = number("list price", &self.list_price)?
            .ok_or_else(|| Error::InvalidInput("enter the list price".into()))?;
        let mut features = Map::new();
        for (n, line) in self.features.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or_else(|| {
                Error::InvalidInput(format!(
                    "context line {}: write name = value, e.g. product = GTX Pro",
                    n + 1
                ))
            })?;
            let value = value.trim();
            let value = value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(value.to_string()), Value::Number);
            features.insert(name.trim().to_string(), value);
        }
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Ok(DealInput {
            deal_id: None,
            region: text(&self.region),
            segment: text(&self.segment),
            list_price,
            cost: number("cost", &self.cost)?,
            features,
        })
    }
}

/// The chart: win probability (0–1) and expected margin (scaled to its maximum) against the
/// discount, the discounts the guardrails forbid shaded, the recommendation marked.
pub struct Chart {
    pub win: String,
    pub margin: String,
    /// `(x, width)` of each forbidden stretch.
    pub forbidden: Vec<(f64, f64)>,
    pub marker: Option<f64>,
    /// Tick labels along the discount axis: `(x, label)`.
    pub ticks: Vec<(f64, String)>,
}

const W: f64 = 560.0;
const H: f64 = 220.0;

fn chart(curve: &[CurvePoint], recommended: Option<f64>) -> Chart {
    let max_d = curve
        .iter()
        .map(|p| p.discount)
        .fold(0.0, f64::max)
        .max(0.01);
    let max_m = curve
        .iter()
        .map(|p| p.expected_margin)
        .fold(0.0, f64::max)
        .max(1e-9);
    let x = Axis::new((0.0, max_d), (40.0, 40.0 + W));
    let y = Axis::new((0.0, 1.0), (10.0 + H, 10.0));
    let line = |value: &dyn Fn(&CurvePoint) -> f64| {
        svg::points(curve.iter().map(|p| (x.at(p.discount), y.at(value(p)))))
    };
    let step = if curve.len() > 1 {
        x.at(curve[1].discount) - x.at(curve[0].discount)
    } else {
        0.0
    };
    Chart {
        win: line(&|p| p.win_probability),
        margin: line(&|p| p.expected_margin / max_m),
        forbidden: curve
            .iter()
            .filter(|p| !p.allowed)
            .map(|p| (x.at(p.discount) - step / 2.0, step))
            .collect(),
        marker: recommended.map(|d| x.at(d)),
        ticks: x
            .ticks(5)
            .into_iter()
            .map(|(at, d)| (at, format!("{:.0}%", d * 100.0)))
            .collect(),
    }
}

struct Shown {
    rec: Recommendation,
    chart: Chart,
}

/// A number however many references a template passes it through.
trait Number {
    fn value(&self) -> f64;
}

impl Number for f64 {
    fn value(&self) -> f64 {
        *self
    }
}

impl<T: Number> Number for &T {
    fn value(&self) -> f64 {
        (**self).value()
    }
}

impl Shown {
    fn pct(&self, v: impl Number) -> String {
        format!("{:.1}%", v.value() * 100.0)
    }

    fn money(&self, v: impl Number) -> String {
        format!("{:.2}", v.value())
    }

    /// The recommended quote's win-probability interval.
    fn interval(&self) -> String {
        self.rec.recommended.map_or_else(String::new, |q| {
            format!("{} – {}", self.pct(q.interval[0]), self.pct(q.interval[1]))
        })
    }

    /// A contribution as a signed logit and the share of the bar it fills (0–100).
    fn bar(&self, logit: impl Number) -> f64 {
        let logit = logit.value();
        let max = self
            .rec
            .explanation
            .iter()
            .map(|c| c.logit.abs())
            .fold(1e-9, f64::max);
        (logit.abs() / max * 100.0).round()
    }
}

#[derive(Template)]
#[template(path = "quote.html")]
struct QuotePage {
    p: Page,
    form: DealForm,
    shown: Option<Shown>,
}

/// `GET /app/quote`.
pub async fn form(Extension(p): Extension<Page>) -> Response {
    let region = p
        .user
        .as_ref()
        .map(|u| u.region.clone())
        .unwrap_or_default();
    render(&QuotePage {
        p,
        form: DealForm {
            region,
            ..DealForm::default()
        },
        shown: None,
    })
}

/// `POST /app/quote`: the same recommendation as `POST /quotes/recommend` (recorded for
/// review when it needs approval).
pub async fn recommend(
    State(state): State<AppState>,
    Extension(p): Extension<Page>,
    Form(form): Form<DealForm>,
) -> Result<Response> {
    let user = p
        .user
        .clone()
        .ok_or_else(|| Error::Unauthenticated(String::new()))?;
    let rec =
        service::recommend(&state.db, &state.config, Actor::of(&user), form.to_input()?).await?;
    let chart = chart(&rec.curve, rec.recommended.map(|q| q.discount));
    Ok(render(&QuotePage {
        p,
        form,
        shown: Some(Shown { rec, chart }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_a_deal_with_typed_context() {
        let form = DealForm {
            list_price: "12,000".into(),
            cost: "".into(),
            segment: "smb".into(),
            region: " West ".into(),
            features: "product = GTX Pro\nseats = 40\n\n".into(),
        };
        let deal = form.to_input().unwrap();
        assert_eq!(deal.list_price, 12000.0);
        assert_eq!(deal.cost, None);
        assert_eq!(deal.region.as_deref(), Some("West"));
        assert_eq!(deal.features["product"], "GTX Pro");
        assert_eq!(deal.features["seats"], 40.0);
        let bad = DealForm {
            list_price: "lots".into(),
            ..DealForm::default()
        };
        assert!(
            bad.to_input()
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        let bad = DealForm {
            list_price: "10".into(),
            features: "no equals sign".into(),
            ..DealForm::default()
        };
        assert!(bad.to_input().unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn the_chart_spans_the_curve_and_shades_forbidden_discounts() {
        let curve: Vec<CurvePoint> = (0..=4)
            .map(|i| CurvePoint {
                discount: f64::from(i) * 0.1,
                win_probability: 0.2 + 0.1 * f64::from(i),
                expected_margin: 100.0 - f64::from(i),
                allowed: i < 3,
            })
            .collect();
        let c = chart(&curve, Some(0.2));
        assert!(c.win.starts_with("40.0,"));
        assert_eq!(c.win.split_whitespace().count(), 5);
        assert_eq!(c.forbidden.len(), 2);
        assert_eq!(c.marker, Some(40.0 + 0.5 * W));
        assert_eq!(c.ticks.last().unwrap().1, "40%");
    }
}
