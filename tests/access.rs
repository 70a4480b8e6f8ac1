//! The role × route × scope matrix on the real server. Every route of the router — the API's
//! table and the web app's — comes from the tables that build it, and must have an entry in
//! [`expectation`], so a new route cannot escape this test. Each is called with no
//! credentials, a wrong token, a revoked token, a revoked user's and an expired web session,
//! and by every role in the owner's region and in another one. Expected: no 5xx; a role that
//! may not call gets 403 (`{code, message}` from the API, the 403 page from the web app); no
//! credentials get 401 or the sign-in redirect; another region's or another user's object is
//! 404 (or 403), and no response to anyone outside an object's scope contains its data; every
//! form and every API change through a session refuses a missing or wrong CSRF token; every
//! response carries the security headers.

mod common;

use std::collections::BTreeMap;

use common::*;
use dealdesk::http::{Access, RouteSpec, SECURITY_HEADERS, route_table};
use dealdesk::review::{self, Kind, Proposal, Subject};
use reqwest::blocking::Client;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The data of each object of the fixture, unique strings that no other response contains.
const CALL_MARK: &str = "Zebra7731";
const JOB_MARK: &str = "Quokka5519";
const DEAL_MARK: &str = "Narwhal8842";
const REC_MARK: &str = "Axolotl2604";

/// The fixture's objects: rep-a's call, bid-a's draft job, a deal of region emea, and a
/// recommendation on rep-a's call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Object {
    Call,
    Job,
    Deal,
    Rec,
}

impl Object {
    const ALL: [Object; 4] = [Object::Call, Object::Job, Object::Deal, Object::Rec];

    fn mark(self) -> &'static str {
        match self {
            Object::Call => CALL_MARK,
            Object::Job => JOB_MARK,
            Object::Deal => DEAL_MARK,
            Object::Rec => REC_MARK,
        }
    }

    /// The product's scoping rules: a rep sees their own calls and recommendations, a
    /// manager their region's, an admin all; a job is its creator's and their region's
    /// managers'; deals are their region's.
    fn visible_to(self, who: &str) -> bool {
        match self {
            Object::Call | Object::Rec => matches!(who, "rep-a" | "mgr-a" | "admin"),
            Object::Job => matches!(who, "bid-a" | "mgr-a" | "admin"),
            Object::Deal => matches!(who, "rep-a" | "rep-a2" | "mgr-a" | "admin"),
        }
    }
}

/// What a route's test needs: which object `{id}` names (in the path or the input), the input
/// of a call (the query string of a GET; the body of others: JSON for the API, form fields for
/// pages), and which object's data an allowed caller in its scope must get (with a 2xx), so
/// the scope checks cannot pass by hiding everything.
struct Expect {
    id: Option<Object>,
    input: &'static str,
    shows: Option<Object>,
}

const fn plain(input: &'static str) -> Option<Expect> {
    Some(Expect {
        id: None,
        input,
        shows: None,
    })
}

const fn on(object: Object, input: &'static str, shows: bool) -> Option<Expect> {
    Some(Expect {
        id: Some(object),
        input,
        shows: if shows { Some(object) } else { None },
    })
}

/// A list: asked for the fixture's region or owner, it shows `object` to those in scope.
const fn listing(object: Object, query: &'static str) -> Option<Expect> {
    Some(Expect {
        id: None,
        input: query,
        shows: Some(object),
    })
}

/// The expectation of every route. A route missing here fails the test.
fn expectation(method: &Method, path: &str) -> Option<Expect> {
    use Object::*;
    match (method.as_str(), path) {
        // API: system and administration
        ("GET", "/healthz" | "/readyz" | "/openapi.json" | "/me" | "/audit/verify") => plain(""),
        ("GET", "/jobs/{id}") => on(Job, "", true),
        ("GET", "/admin/users") => plain(""),
        ("POST", "/admin/users") => plain("{}"),
        ("POST", "/admin/users/{name}/revoke" | "/admin/blobs/verify") => plain("{}"),
        // API: review and audit
        ("GET", "/reviews") => listing(Rec, "region=emea"),
        ("GET", "/recommendations/{id}") => on(Rec, "", true),
        ("POST", "/recommendations/{id}/review") => on(Rec, r#"{"action": "approve"}"#, false),
        ("GET", "/audit") => on(Rec, "subject={id}", false),
        ("GET", "/review/rules" | "/metrics") => plain(""),
        ("GET", "/metrics/ai") => plain("region=emea"),
        ("POST", "/review/breakers/{kind}/reset") => plain("{}"),
        // API: quotes
        ("POST", "/deals") => plain(r#"{"list_price": 1000.0}"#),
        ("POST", "/deals/{id}/outcome") => on(
            Deal,
            r#"{"outcome": "won", "quoted_price": 900.0, "close_date": "2026-01-15"}"#,
            false,
        ),
        ("POST", "/quotes/recommend") => plain(r#"{"list_price": 1000.0}"#),
        ("POST", "/quotes/fit") => plain("{}"),
        ("GET", "/quotes/fairness") => plain(""),
        // API: bids (a library shared by the bid team)
        ("POST", "/bids" | "/bids/search" | "/bids/draft" | "/bids/factors") => plain("{}"),
        ("GET", "/bids/{id}") => plain(""),
        ("POST", "/bids/{id}/outcome") => plain(r#"{"outcome": "won"}"#),
        // API: calls
        ("POST", "/calls" | "/calls/import-transcript") => plain("{}"),
        ("GET", "/calls") => listing(Call, ""),
        ("GET", "/calls/{id}" | "/calls/{id}/transcript") => on(Call, "", true),
        (
            "GET",
            "/calls/{id}/insights"
            | "/calls/{id}/tasks"
            | "/calls/{id}/tasks.csv"
            | "/calls/{id}/tasks.ics"
            | "/calls/{id}/analytics"
            | "/calls/{id}/recording",
        ) => on(Call, "", false),
        ("POST", "/calls/{id}/tasks/{task}") => on(Call, r#"{"status": "done"}"#, false),
        ("PUT", "/calls/{id}/speakers") => on(Call, r#"{"Speaker 1": null}"#, false),
        ("GET", "/analytics/calls") => plain("rep=rep-a"),
        ("POST", "/calls/search") => plain(r#"{"query": "renewal"}"#),
        // Web app
        ("GET", "/" | "/static/{name}" | "/app/sign-in" | "/app") => plain(""),
        ("POST", "/app/sign-in") => plain("token=ddk_wrong&next=/app"),
        ("POST", "/app/sign-out") => plain(""),
        ("POST", "/app/lang") => plain("lang=zh&back=/app"),
        ("GET", "/app/calls") => listing(Call, ""),
        ("GET", "/app/calls/{id}") => on(Call, "", true),
        ("GET", "/app/quote" | "/app/bids" | "/app/bids/{id}") => plain(""),
        ("POST", "/app/quote") => plain("list_price=1000&segment=smb"),
        ("POST", "/app/bids" | "/app/drafts") => plain("title=Ward+monitors&requirements=HL7"),
        ("GET", "/app/drafts/{id}" | "/app/drafts/{id}/draft.md") => on(Job, "", false),
        ("POST", "/app/drafts/{id}/edit") => on(Job, "s0=changed", false),
        ("POST", "/app/drafts/{id}/submit") => on(Job, "", false),
        ("GET", "/app/reviews" | "/app/dashboard") => plain("region=emea"),
        ("GET", "/app/audit") => on(Rec, "subject={id}", false),
        ("POST", "/app/reviews/{id}") => on(Rec, "action=approve", false),
        _ => None,
    }
}

/// Every route the server has: the API's table and the web app's.
fn all_routes() -> Vec<(RouteSpec, bool)> {
    let api = route_table().into_iter().map(|r| (r, true));
    let web = dealdesk::web::route_table().into_iter().map(|r| (r, false));
    api.chain(web).collect()
}

/// Who calls.
#[derive(Clone)]
enum Auth {
    Nobody,
    Bearer(String),
    /// A web session's cookie, and the CSRF token sent with changes (None: none sent).
    Session(String, Option<String>),
}

/// A caller: a user with their token and web session.
struct Caller {
    name: &'static str,
    role: &'static str,
    token: String,
    session: String,
    csrf: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

struct Matrix {
    http: Client,
    url: String,
    ids: BTreeMap<&'static str, String>,
    /// Requests made, for the report.
    requests: usize,
}

impl Matrix {
    /// A client of the server at `url` that does not follow redirects.
    fn new(url: &str) -> Matrix {
        Matrix {
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            url: url.to_string(),
            ids: BTreeMap::new(),
            requests: 0,
        }
    }

    fn concrete(&self, path: &str, id: Option<Object>) -> String {
        let id = match id {
            Some(Object::Call) => &self.ids["call"],
            Some(Object::Job) => &self.ids["job"],
            Some(Object::Deal) => &self.ids["deal"],
            Some(Object::Rec) => &self.ids["rec"],
            None => "00000000-0000-0000-0000-000000000000",
        };
        let name = if path.starts_with("/static/") {
            "app.css"
        } else {
            "nobody"
        };
        path.replace("{id}", id)
            .replace("{task}", "00000000-0000-0000-0000-000000000000")
            .replace("{name}", name)
            .replace("{kind}", "quote")
    }

    /// One request; checks what every answer must have (no 5xx, the security headers).
    fn send(&mut self, method: &Method, path: &str, api: bool, input: &str, auth: &Auth) -> Answer {
        self.requests += 1;
        let query = if *method == Method::GET && !input.is_empty() {
            format!("?{input}")
        } else {
            String::new()
        };
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}{query}", self.url));
        let mut body = input.to_string();
        match auth {
            Auth::Nobody => {}
            Auth::Bearer(token) => req = req.bearer_auth(token),
            Auth::Session(cookie, csrf) => {
                req = req.header(COOKIE, cookie);
                match csrf {
                    Some(csrf) if api => req = req.header("X-CSRF-Token", csrf),
                    Some(csrf) => body = format!("csrf={csrf}&{body}"),
                    None => {}
                }
            }
        }
        if method != Method::GET {
            let kind = if api {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            req = req.header(CONTENT_TYPE, kind).body(body);
        }
        let resp = req.send().unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.text().unwrap();
        let what = format!("{method} {path}");
        assert!(
            !status.is_server_error() || (path == "/readyz" && status.as_u16() == 503),
            "{what}: {status} {body}"
        );
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(
                headers.get(name.as_str()).and_then(|v| v.to_str().ok()),
                Some(value),
                "{what}: header {name}"
            );
        }
        let cache = headers[CACHE_CONTROL].to_str().unwrap();
        assert!(
            path.starts_with("/static/") || cache == "no-store" || cache.starts_with("private"),
            "{what}: Cache-Control {cache}"
        );
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// The answer is an error in the API's `{code, message}` shape with `status`.
fn api_error(a: &Answer, status: StatusCode, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    let body: Value =
        serde_json::from_str(&a.body).unwrap_or_else(|_| panic!("{what}: {}", a.body));
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{what}: {body}"
    );
}

/// The answer is the web app's error page with `status`.
fn error_page(a: &Answer, status: StatusCode, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert!(
        a.body
            .contains(&format!("data-status=\"{}\"", status.as_u16())),
        "{what}: not the {status} page"
    );
}

/// The answer sends the browser to sign in.
fn sign_in_redirect(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{what}");
    let to = a.headers[LOCATION].to_str().unwrap();
    assert!(to.starts_with("/app/sign-in?next="), "{what}: to {to}");
}

/// The `name=value` of the `Set-Cookie` header named `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// The CSRF token of a page (`<meta name="csrf-token">`).
fn page_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    html[at..at + 64].to_string()
}

/// Signs in on the web form with `token`; returns the session cookie and its CSRF token.
fn web_session(m: &mut Matrix, token: &str) -> (String, String) {
    let form = m.send(&Method::GET, "/app/sign-in", false, "", &Auth::Nobody);
    let pre = cookie(&form.headers, "dd_pre").unwrap();
    let signed = m.send(
        &Method::POST,
        "/app/sign-in",
        false,
        &format!("token={token}&next=/app"),
        &Auth::Session(pre, Some(page_csrf(&form.body))),
    );
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let session = cookie(&signed.headers, "dd_session").unwrap();
    let home = m.send(
        &Method::GET,
        "/app",
        false,
        "",
        &Auth::Session(session.clone(), None),
    );
    (session, page_csrf(&home.body))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// A recommendation on rep-a's call, written into the database as the call pipeline does.
fn propose_on_call(dir: &std::path::Path, call_id: &str) -> String {
    block_on(async {
        let db = common::open_db(dir).await;
        let owner = dealdesk::users::active(&db, "rep-a").await.unwrap();
        let mut tx = db.pool().begin().await.unwrap();
        let id = review::propose(
            &mut tx,
            &Proposal {
                kind: Kind::Commitment,
                subject: Subject::Call,
                subject_id: call_id.to_string(),
                region: owner.region.clone(),
                owner_id: Some(owner.id.clone()),
                model_id: "test".into(),
                model_version: "test".into(),
                prompt_version: None,
                input: json!({"turn": 2}),
                output: json!({"turn": 2, "quote": format!("send the {REC_MARK} quote")}),
                explanation: None,
                confidence: Some(0.9),
                discount: None,
                deal_value: None,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    })
}

#[test]
fn every_route_by_every_role_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let people = [
        ("rep-a", "rep", "emea"),
        ("rep-a2", "rep", "emea"),
        ("rep-b", "rep", "apac"),
        ("bid-a", "bid", "emea"),
        ("bid-b", "bid", "apac"),
        ("mgr-a", "manager", "emea"),
        ("mgr-b", "manager", "apac"),
        ("admin", "admin", "emea"),
    ];
    let tokens: Vec<String> = people
        .iter()
        .map(|(name, role, region)| add_user(dir.path(), name, role, region))
        .collect();
    let gone = add_user(dir.path(), "gone", "admin", "emea");

    // No workers (the matrix needs no model); failed sign-ins are many here, so no lockout.
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_JOBS_WORKERS", "0")
        .env("DEALDESK_BIDS_DENSE", "false")
        .env("DEALDESK_ACCESS_MAX_FAILURES", "1000000");
    let server = Server::start(cmd);
    let mut m = Matrix::new(&server.url);

    // The fixture: rep-a's call, bid-a's draft job, a deal of emea, a recommendation.
    let call: Value = server
        .post(
            "/calls/import-transcript",
            &tokens[0],
            json!({
                "language": "en", "call_date": "2026-03-10", "title": format!("Renewal {CALL_MARK}"),
                "participants": [{"name": "Dana Reyes", "side": "seller"},
                                 {"name": "Sam Ortiz", "side": "customer"}],
                "segments": [
                    {"id": 0, "speaker": "Dana Reyes", "start_ms": 0, "end_ms": 4000,
                     "text": format!("Welcome to the {CALL_MARK} renewal.")},
                    {"id": 1, "speaker": "Sam Ortiz", "start_ms": 4000, "end_ms": 9000,
                     "text": "The price is too high for our budget."}
                ]
            }),
        )
        .json()
        .unwrap();
    m.ids
        .insert("call", call["call"]["id"].as_str().unwrap().to_string());
    let job: Value = server
        .post(
            "/bids/draft",
            &tokens[3],
            json!({"title": format!("Tender {JOB_MARK}"), "requirements": "Bedside monitors"}),
        )
        .json()
        .unwrap();
    m.ids.insert("job", job["id"].as_str().unwrap().to_string());
    let deal: Value = server
        .post(
            "/deals",
            &tokens[0],
            json!({"external_id": DEAL_MARK, "list_price": 1000.0, "segment": "smb"}),
        )
        .json()
        .unwrap();
    m.ids
        .insert("deal", deal["id"].as_str().unwrap().to_string());
    let rec = propose_on_call(dir.path(), &m.ids["call"]);
    m.ids.insert("rec", rec);

    // Everyone's web session; then a revoked user's and an expired one.
    let mut callers = Vec::new();
    for ((name, role, _), token) in people.iter().zip(&tokens) {
        let (session, csrf) = web_session(&mut m, token);
        callers.push(Caller {
            name,
            role,
            token: token.clone(),
            session,
            csrf,
        });
    }
    let (gone_session, _) = web_session(&mut m, &gone);
    run_ok(dealdesk(dir.path()).args(["users", "revoke", "gone"]));
    let started = dealdesk::store::now_ms();
    let (expired, expired_csrf) = web_session(&mut m, &tokens[0]);
    block_on(async {
        let db = common::open_db(dir.path()).await;
        sqlx::query("UPDATE web_sessions SET expires_at = 0 WHERE created_at >= $1")
            .bind(started)
            .execute(db.pool())
            .await
            .unwrap();
    });

    let routes = all_routes();
    let missing: Vec<String> = routes
        .iter()
        .filter(|(r, _)| expectation(&r.method, r.path).is_none())
        .map(|(r, _)| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in expectation() of tests/access.rs: {missing:?}"
    );

    let (mut cases, mut scoped) = (0, 0);
    for (route, api) in &routes {
        let api = *api;
        let expect = expectation(&route.method, route.path).unwrap();
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let path = m.concrete(route.path, expect.id);
        let changes = method != Method::GET;
        let what = format!("{method} {}", route.path);
        let mut send = |m: &mut Matrix, auth: &Auth| {
            cases += 1;
            let input = m.concrete(expect.input, expect.id);
            m.send(&method, &path, api, &input, auth)
        };
        // Nobody sees any object's data without credentials.
        let hides_all = |a: &Answer, who: &str| {
            for o in Object::ALL {
                assert!(!a.body.contains(o.mark()), "{what} as {who} shows {o:?}");
            }
        };

        let allowed = match route.access {
            Access::Public => {
                let a = send(&mut m, &Auth::Nobody);
                hides_all(&a, "nobody");
                if !api && changes {
                    // A form without the pre-session CSRF cookie and token is refused.
                    error_page(&a, StatusCode::FORBIDDEN, &what);
                    let wrong = Auth::Session(
                        "dd_pre=".to_string() + &"1".repeat(64),
                        Some("2".repeat(64)),
                    );
                    error_page(&send(&mut m, &wrong), StatusCode::FORBIDDEN, &what);
                } else {
                    let status = a.status;
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{what}: {status}"
                    );
                }
                continue;
            }
            Access::Roles(allowed) => allowed,
        };

        // No credentials, a wrong or revoked token, a revoked user's or an expired session.
        let strangers = [
            Auth::Nobody,
            Auth::Bearer("ddk_0000".into()),
            Auth::Bearer(gone.clone()),
            Auth::Session(gone_session.clone(), None),
            Auth::Session(expired.clone(), Some(expired_csrf.clone())),
        ];
        for auth in &strangers {
            let a = send(&mut m, auth);
            hides_all(&a, "a stranger");
            if api {
                api_error(&a, StatusCode::UNAUTHORIZED, &what);
            } else {
                // Pages go by the session only: a token is no session.
                sign_in_redirect(&a, &what);
            }
        }

        // Out-of-scope callers first: the in-scope ones may change the object.
        let mut order: Vec<&Caller> = callers.iter().collect();
        order.sort_by_key(|c| expect.id.is_some_and(|o| o.visible_to(c.name)));
        for caller in order {
            let role_ok = allowed.iter().any(|r| r.as_str() == caller.role);
            let auth = if api {
                Auth::Bearer(caller.token.clone())
            } else {
                Auth::Session(caller.session.clone(), Some(caller.csrf.clone()))
            };
            let who = format!("{what} as {}", caller.name);
            if role_ok && changes {
                // A change through a session needs its CSRF token: missing or wrong, refused.
                let check = |a: &Answer, why: &str| {
                    if api {
                        api_error(a, StatusCode::FORBIDDEN, &format!("{who}, {why}"));
                    } else {
                        error_page(a, StatusCode::FORBIDDEN, &format!("{who}, {why}"));
                    }
                };
                let session = caller.session.clone();
                check(
                    &send(&mut m, &Auth::Session(session.clone(), None)),
                    "no CSRF token",
                );
                check(
                    &send(&mut m, &Auth::Session(session, Some("0".repeat(64)))),
                    "wrong CSRF token",
                );
            }
            let a = send(&mut m, &auth);
            for o in Object::ALL {
                if !o.visible_to(caller.name) {
                    assert!(!a.body.contains(o.mark()), "{who} shows {o:?}: {}", a.body);
                }
            }
            if !role_ok {
                if api {
                    api_error(&a, StatusCode::FORBIDDEN, &who);
                } else {
                    error_page(&a, StatusCode::FORBIDDEN, &who);
                }
                continue;
            }
            assert_ne!(a.status, StatusCode::UNAUTHORIZED, "{who}");
            match expect.id {
                Some(o) if !o.visible_to(caller.name) => {
                    scoped += 1;
                    assert!(
                        a.status == StatusCode::NOT_FOUND || a.status == StatusCode::FORBIDDEN,
                        "{who}: another's {o:?} answered {}: {}",
                        a.status,
                        a.body
                    );
                    if api {
                        api_error(&a, a.status, &who);
                    } else {
                        error_page(&a, a.status, &who);
                    }
                }
                _ => {
                    if let Some(o) = expect.shows.filter(|o| o.visible_to(caller.name)) {
                        assert!(a.status.is_success(), "{who}: {} {}", a.status, a.body);
                        assert!(a.body.contains(o.mark()), "{who} does not show {o:?}");
                    }
                }
            }
        }
    }
    eprintln!(
        "access matrix: {} routes ({} API, {} web), {} callers, {cases} cases, {scoped} out-of-scope object cases, {} requests",
        routes.len(),
        routes.iter().filter(|(_, api)| *api).count(),
        routes.iter().filter(|(_, api)| !*api).count(),
        callers.len() + 5,
        m.requests
    );
}

#[test]
fn api_errors_keep_their_shape_and_the_document_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let admin = add_user(dir.path(), "root", "admin", "emea");
    // A small body limit: the oversized request below then fits in the socket buffers, so the
    // client reads the 413 instead of racing the server's early close.
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_SERVER_MAX_BODY_BYTES", "65536");
    let server = Server::start(cmd);
    let http = client();
    let expect_error = |resp: reqwest::blocking::Response, status: StatusCode, what: &str| {
        assert_eq!(resp.status(), status, "{what}");
        let body: Value = resp.json().unwrap();
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{what}: {body}"
        );
    };

    // The API document lists every route with its method.
    let doc: Value = http
        .get(format!("{}/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for route in route_table() {
        let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            route.method,
            route.path
        );
    }

    // Unknown routes and malformed JSON answer in the same error shape.
    let nope = http.get(format!("{}/nope", server.url)).send().unwrap();
    assert_eq!(
        nope.headers()["content-security-policy"],
        dealdesk::http::CSP
    );
    expect_error(nope, StatusCode::NOT_FOUND, "404");
    let post_users = |body: String| {
        http.post(format!("{}/admin/users", server.url))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    expect_error(
        post_users("{\"name\": ".into()),
        StatusCode::BAD_REQUEST,
        "malformed JSON",
    );
    expect_error(
        post_users(format!("{{\"name\": \"{}\"}}", "x".repeat(100 * 1024))),
        StatusCode::PAYLOAD_TOO_LARGE,
        "oversized body",
    );

    // An admin creates a user over HTTP; the new token works at once.
    let new: Value =
        post_users(json!({"name": "Mei", "role": "rep", "region": "apac"}).to_string())
            .json()
            .unwrap();
    let me: Value = server
        .get("/me", new["token"].as_str().unwrap())
        .json()
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["region"].as_str()),
        (Some("Mei"), Some("apac"))
    );
}

#[test]
fn failed_sign_ins_lock_the_address_out_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let token = add_user(dir.path(), "rita", "rep", "emea");
    let start = |n: u32, trust_proxy: bool| {
        let mut cmd = dealdesk(dir.path());
        // Its own data directory (indexes are per process), the same database.
        cmd.env("DEALDESK_DATA_DIR", dir.path().join(format!("data-{n}")))
            .env("DEALDESK_JOBS_WORKERS", "0")
            .env("DEALDESK_ACCESS_MAX_FAILURES", "3")
            .env("DEALDESK_ACCESS_LOCKOUT_SECS", "120")
            .env(
                "DEALDESK_ACCESS_TRUST_FORWARDED_FOR",
                trust_proxy.to_string(),
            );
        Server::start(cmd)
    };
    // Two processes on one database, and a third behind a (trusted) proxy.
    let (one, two, proxied) = (start(1, false), start(2, false), start(3, true));
    let mut m = Matrix::new(&two.url);
    let (session, _) = web_session(&mut m, &token);

    // Two wrong bearer tokens on one process, a wrong token on the other's sign-in form.
    for _ in 0..2 {
        let a = one.get("/me", "ddk_wrong");
        assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
    }
    // No token at all is no sign-in attempt: not counted.
    let none = client().get(format!("{}/me", one.url)).send().unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let form = m.send(&Method::GET, "/app/sign-in", false, "", &Auth::Nobody);
    let pre = cookie(&form.headers, "dd_pre").unwrap();
    let csrf = page_csrf(&form.body);
    let in_chinese = Auth::Session(format!("{pre}; dd_lang=zh"), Some(csrf));
    let sign_in = |m: &mut Matrix, token: &str| {
        m.send(
            &Method::POST,
            "/app/sign-in",
            false,
            &format!("token={token}&next=/app"),
            &in_chinese,
        )
    };
    assert_eq!(
        sign_in(&mut m, "ddk_wrong").status,
        StatusCode::UNAUTHORIZED
    );

    // Locked out on both processes, even with the right token.
    for server in [&one, &two] {
        let a = server.get("/me", &token);
        assert_eq!(a.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = a.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((110..=120).contains(&retry), "Retry-After {retry}");
        let body: Value = a.json().unwrap();
        assert_eq!(body["code"], "rate_limited", "{body}");
    }
    let page = sign_in(&mut m, &token);
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.body.contains("登录失败次数过多"), "{}", page.body);
    assert!(cookie(&page.headers, "dd_session").is_none());

    // A header the server does not trust changes nothing; the session from before still works.
    let me_from = |server: &Server, forwarded_for: &str| {
        client()
            .get(format!("{}/me", server.url))
            .bearer_auth(&token)
            .header("x-forwarded-for", forwarded_for)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(me_from(&one, "203.0.113.9"), StatusCode::TOO_MANY_REQUESTS);
    let home = m.send(
        &Method::GET,
        "/app",
        false,
        "",
        &Auth::Session(session, None),
    );
    assert_eq!(home.status, StatusCode::OK);

    // Behind a trusted proxy the client's own address counts: another client is let in.
    assert_eq!(me_from(&proxied, "203.0.113.9, 10.0.0.1"), StatusCode::OK);
}
