//! The quote recommender end to end with the real binary: CSV import (bad rows rejected with
//! line numbers, nothing half-imported), fitting, recommendations with guardrails and the
//! approval hand-off, outcomes with an incremental refit, fairness, and who may do what.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::*;
use dealdesk::quotes::simulate::{Market, Rng};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MAPPING: &str = r#"
outcome = "stage"
won = ["Won"]
lost = ["Lost"]
open = ["Engaging"]
external_id = "opportunity_id"
list_price = "list"
quoted_price = "quoted"
close_date = "closed"
region = "office"
segment = "segment"
features = ["product"]
"#;

/// A CRM export of `n` closed deals from the simulated market.
fn crm_csv(n: usize) -> String {
    let market = Market::regional();
    let mut rng = Rng::new(42);
    let past = market.history(n, &mut rng, |_, rng| {
        (0.3 * rng.uniform() * 100.0).round() / 100.0
    });
    let mut csv = "opportunity_id,stage,office,segment,product,list,quoted,closed\n".to_string();
    for d in &past {
        let i = &d.input;
        writeln!(
            csv,
            "{},{},{},{},{},{},{},2024-05-01",
            d.id,
            if d.won { "Won" } else { "Lost" },
            i.region.as_deref().unwrap(),
            i.segment.as_deref().unwrap(),
            i.features["product"].as_str().unwrap(),
            i.list_price,
            i.list_price * (1.0 - d.discount.unwrap()),
        )
        .unwrap();
    }
    csv
}

fn run_err(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn import_fit_recommend_record_and_check_fairness() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let map = write(d, "map.toml", MAPPING);
    // Every quote above 5 % needs approval, and every new outcome refits.
    let rules = dealdesk::quotes::rules::DEFAULT_RULES
        .replace("approval_discount = 0.15", "approval_discount = 0.05");
    let rules = write(d, "rules.toml", &rules);
    let env = |mut cmd: std::process::Command| {
        cmd.env("DEALDESK_QUOTES_RULES", &rules)
            .env("DEALDESK_QUOTES_REFIT_EVERY", "1");
        cmd
    };

    // Bad rows: each reported with its line, and nothing imported.
    let good = crm_csv(1500);
    let mut bad = good.clone();
    bad.push_str("x1,Maybe,West,smb,Argo,100,90,2024-05-01\n");
    bad.push_str("x2,Won,West,smb,Argo,100,120,2024-05-01\n");
    bad.push_str("x3,Lost,West,smb,Argo,lots,90,2024-05-01\n");
    bad.push_str("x4,Won,,smb,Argo,100,90,2024-05-01\n");
    let bad = write(d, "bad.csv", &bad);
    let err = run_err(env(dealdesk(d)).args(["deals", "import", &bad, "--map", &map]));
    assert!(
        err.contains("4 bad row(s)") && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(err.contains("line 1502: stage \"Maybe\""), "{err}");
    assert!(
        err.contains("line 1503: discount")
            && err.contains("line 1504: list price \"lots\"")
            && err.contains("line 1505: the region is empty"),
        "{err}"
    );
    let err = run_err(env(dealdesk(d)).args(["quotes", "fit"]));
    assert!(
        err.contains("0 outcomes"),
        "nothing may have been imported: {err}"
    );

    let good = write(d, "good.csv", &good);
    let out: Value = serde_json::from_str(&run_ok(
        env(dealdesk(d)).args(["deals", "import", &good, "--map", &map, "--json"]),
    ))
    .unwrap();
    assert_eq!(out["imported"], 1500);

    let rep = add_user(d, "rep", "rep", "West");
    let manager = add_user(d, "boss", "manager", "West");
    let east = add_user(d, "east-rep", "rep", "East");
    let server = Server::start(env(dealdesk(d)));
    let http = client();
    let post = |path: &str, token: &str, body: Value| server.post(path, token, body);

    // Fitting is for managers.
    assert_eq!(
        post("/quotes/fit", &rep, json!({})).status(),
        StatusCode::FORBIDDEN
    );
    let resp = post("/quotes/fit", &manager, json!({}));
    assert_eq!(resp.status(), StatusCode::CREATED);
    let model: Value = resp.json().unwrap();
    assert_eq!(model["version"], 1);
    assert_eq!(model["has_price"], true);
    assert_eq!(model["training_sha256"].as_str().unwrap().len(), 64);
    assert!(model["metrics"]["auc"].as_f64().unwrap() > 0.55, "{model}");

    // A recommendation: the curve, a guarded discount, an interval, reasons, similar deals,
    // and (above 5 %) a proposal for review on a new open deal.
    let deal = json!({"region": "West", "segment": "smb", "list_price": 5000.0,
                      "features": {"product": "Argo"}});
    let resp = post("/quotes/recommend", &rep, deal.clone());
    assert_eq!(resp.status(), StatusCode::OK);
    let rec: Value = resp.json().unwrap();
    let q = &rec["recommended"];
    let discount = q["discount"].as_f64().unwrap();
    assert!(discount <= 0.20 + 1e-9, "smb max_discount is 0.20: {rec}");
    assert!(rec["curve"].as_array().unwrap().len() > 20);
    let (lo, p, hi) = (
        q["interval"][0].as_f64().unwrap(),
        q["win_probability"].as_f64().unwrap(),
        q["interval"][1].as_f64().unwrap(),
    );
    assert!(lo < p && p < hi, "{rec}");
    assert_eq!(rec["similar"].as_array().unwrap().len(), 5);
    assert!(!rec["explanation"].as_array().unwrap().is_empty());
    assert_eq!(rec["needs_approval"], discount > 0.05);
    assert_eq!(
        rec["recommendation_id"].is_string(),
        discount > 0.05,
        "{rec}"
    );
    let proposal = rec["recommendation_id"].as_str().map(str::to_string);

    // A rep records a deal in their region, then its outcome; the outcome refits (version 2).
    let resp = post(
        "/deals",
        &rep,
        json!({"segment": "smb", "list_price": 5000.0, "features": {"product": "Argo"}}),
    );
    assert_eq!(resp.status(), StatusCode::CREATED);
    let open: Value = resp.json().unwrap();
    assert_eq!(open["region"], "West");
    let id = open["id"].as_str().unwrap();
    let outcome = json!({"outcome": "won", "quoted_price": 4500.0, "close_date": "2024-06-01", "followed_recommendation": "followed"});
    assert_eq!(
        post(&format!("/deals/{id}/outcome"), &east, outcome.clone()).status(),
        StatusCode::NOT_FOUND
    );
    let resp = post(&format!("/deals/{id}/outcome"), &rep, outcome.clone());
    assert_eq!(resp.status(), StatusCode::OK);
    let closed: Value = resp.json().unwrap();
    assert!((closed["discount"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    assert_eq!(
        post(&format!("/deals/{id}/outcome"), &rep, outcome).status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        post(
            "/deals",
            &rep,
            json!({"region": "East", "list_price": 10.0})
        )
        .status(),
        StatusCode::FORBIDDEN
    );
    let rec: Value = post("/quotes/recommend", &rep, deal.clone())
        .json()
        .unwrap();
    assert_eq!(rec["model_version"], 2, "the outcome triggered a refit");

    // A manager overrides the proposed quote; the deal's outcome is then tracked as one that
    // overrode the model, without the rep having to say so.
    let rid = proposal.expect("the first quote's discount needs approval");
    let resp = post(
        &format!("/recommendations/{rid}/review"),
        &manager,
        json!({"action": "override", "replacement": {"discount": 0.04}, "reason": "price list"}),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let reviewed: Value = resp.json().unwrap();
    let deal_id = reviewed["subject_id"].as_str().unwrap();
    let resp = post(
        &format!("/deals/{deal_id}/outcome"),
        &manager,
        json!({"outcome": "lost", "discount": 0.04}),
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let closed: Value = resp.json().unwrap();
    assert_eq!(closed["followed_recommendation"], "overrode", "{closed}");
    let bad = post("/quotes/recommend", &rep, json!({"list_price": -1.0}));
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Fairness: managers only; the simulated market plants a regional effect and the model
    // may use region, so the region gap is flagged.
    let get = |token: &str| {
        http.get(format!("{}/quotes/fairness", server.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(get(&rep).status(), StatusCode::FORBIDDEN);
    let report: Value = get(&manager).json().unwrap();
    let region = report["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attribute"] == "region")
        .unwrap();
    assert_eq!(region["flagged"], true, "{report}");
    assert_eq!(report["flagged"], true);

    // The CLI gives the same recommendation.
    let deal_file = write(d, "deal.json", &deal.to_string());
    let cli: Value = serde_json::from_str(&run_ok(env(dealdesk(d)).args([
        "quotes",
        "recommend",
        &deal_file,
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        cli["recommended"]["discount"],
        rec["recommended"]["discount"]
    );
}
