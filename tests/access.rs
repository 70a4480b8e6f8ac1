//! The role × route matrix: every route of the router, called on the real server with every
//! role, with no token, an invalid token and a revoked token. The routes come from the same
//! table that builds the router, so a new route cannot escape this test.

mod common;

use common::*;
use dealdesk::http::{Access, route_table};
use dealdesk::users::Role;
use reqwest::StatusCode;
use serde_json::Value;

fn concrete(path: &str) -> String {
    // Any value for path parameters: an allowed caller may get 404, never 401/403.
    path.replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "nobody")
        .replace("{kind}", "quote")
}

#[test]
fn every_route_admits_exactly_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let tokens: Vec<(Role, String)> = Role::ALL
        .iter()
        .map(|r| {
            (
                *r,
                add_user(dir.path(), &format!("u-{r}"), r.as_str(), "emea"),
            )
        })
        .collect();
    let revoked = add_user(dir.path(), "gone", "admin", "emea");
    run_ok(dealdesk(dir.path()).args(["users", "revoke", "gone"]));

    // A small body limit: the oversized request below then fits in the socket buffers, so the
    // client reads the 413 instead of racing the server's early close.
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_SERVER_MAX_BODY_BYTES", "65536");
    let server = Server::start(cmd);
    let http = client();
    let call = |method: &reqwest::Method, path: &str, token: Option<&str>| {
        let mut req = http
            .request(method.clone(), format!("{}{}", server.url, concrete(path)))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    let expect_error = |resp: reqwest::blocking::Response, status: StatusCode, what: &str| {
        assert_eq!(resp.status(), status, "{what}");
        let body: Value = resp.json().unwrap();
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{what}: {body}"
        );
    };

    let routes = route_table();
    assert!(routes.len() >= 9);
    for route in &routes {
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let what = format!("{} {}", route.method, route.path);
        match route.access {
            Access::Public => {
                let status = call(&method, route.path, None).status();
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what} is public but answered {status}"
                );
            }
            Access::Roles(allowed) => {
                expect_error(
                    call(&method, route.path, None),
                    StatusCode::UNAUTHORIZED,
                    &what,
                );
                expect_error(
                    call(&method, route.path, Some("ddk_0000")),
                    StatusCode::UNAUTHORIZED,
                    &what,
                );
                expect_error(
                    call(&method, route.path, Some(&revoked)),
                    StatusCode::UNAUTHORIZED,
                    &what,
                );
                for (role, token) in &tokens {
                    let resp = call(&method, route.path, Some(token));
                    if allowed.contains(role) {
                        let status = resp.status();
                        assert!(
                            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                            "{what} allows {role} but answered {status}"
                        );
                        assert!(!status.is_server_error(), "{what} as {role}: {status}");
                    } else {
                        expect_error(resp, StatusCode::FORBIDDEN, &format!("{what} as {role}"));
                    }
                }
            }
        }
    }

    // The API document lists every route with its method.
    let doc: Value = http
        .get(format!("{}/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for route in &routes {
        let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            route.method,
            route.path
        );
    }

    // Unknown routes and malformed JSON answer in the same error shape.
    expect_error(
        call(&reqwest::Method::GET, "/nope", None),
        StatusCode::NOT_FOUND,
        "404",
    );
    let admin = &tokens.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let resp = http
        .post(format!("{}/admin/users", server.url))
        .bearer_auth(admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "malformed JSON");
    let resp = http
        .post(format!("{}/admin/users", server.url))
        .bearer_auth(admin)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(100 * 1024)))
        .send()
        .unwrap();
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "oversized body");

    // An admin creates a user over HTTP; the new token works at once.
    let new: Value = http
        .post(format!("{}/admin/users", server.url))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "Mei", "role": "rep", "region": "apac"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let me: Value = http
        .get(format!("{}/me", server.url))
        .bearer_auth(new["token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["region"].as_str()),
        (Some("Mei"), Some("apac"))
    );
}
