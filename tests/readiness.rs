//! `/readyz` reports the database and every default model; it is ready only when all are.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn readyz_names_missing_models_and_passes_with_the_fetched_cache() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();

    let mut empty_cache = dealdesk(dir.path());
    empty_cache.env("DEALDESK_MODELS_DIR", dir.path().join("no-models"));
    let server = Server::start(empty_cache);
    let resp = http.get(format!("{}/readyz", server.url)).send().unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"], "ok");
    let missing = body["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "whisper-base")
        .unwrap();
    assert_eq!(missing["ok"], false);
    assert!(
        missing["detail"].as_str().unwrap().contains("models fetch"),
        "{missing}"
    );
    drop(server);

    // The real cache, filled by `dealdesk models fetch` in scripts/test.
    let server = Server::start(dealdesk(dir.path()));
    let resp = http.get(format!("{}/readyz", server.url)).send().unwrap();
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "run `dealdesk models fetch` first: {body}"
    );
    assert_eq!(body["ready"], true);
}
