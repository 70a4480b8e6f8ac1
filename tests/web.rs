//! The web app, end to end: the real binary with the real models, driven in headless Chromium
//! through chromedriver (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/setup`). Saves a screenshot of each main page under `eval/reports/screens/`.
//! Also the session and CSRF rules over plain HTTP.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");
const SCREENS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/eval/reports/screens");

/// A short call of our own with one clear commitment and one objection.
fn transcript() -> Value {
    json!({
        "language": "en", "call_date": "2026-03-10", "title": "Pricing follow-up with Lumen",
        "participants": [
            {"name": "Dana Reyes", "side": "seller"},
            {"name": "Sam Ortiz", "side": "customer"}
        ],
        "segments": [
            {"id": 0, "speaker": "Dana Reyes", "start_ms": 0, "end_ms": 4000,
             "text": "Thanks for making time today, Sam."},
            {"id": 1, "speaker": "Sam Ortiz", "start_ms": 4000, "end_ms": 9000,
             "text": "Honestly, the price is too high for our budget this year."},
            {"id": 2, "speaker": "Dana Reyes", "start_ms": 9000, "end_ms": 14000,
             "text": "I understand. I will send you a revised quote by Friday."},
            {"id": 3, "speaker": "Sam Ortiz", "start_ms": 14000, "end_ms": 17000,
             "text": "Great, that works for us."}
        ]
    })
}

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver; run scripts/setup)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"goog:chromeOptions": {"args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            "--window-size=1280,900", "--lang=en-US", "--autoplay-policy=no-user-gesture-required"
        ]}});
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session starts");
        Browser { driver, client }
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector} on the page: {e}"))
    }

    async fn text(&self, selector: &str) -> String {
        // A page that updates itself may replace the element between finding and reading it.
        for _ in 0..10 {
            if let Ok(text) = self.css(selector).await.text().await {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{selector} kept changing under the test");
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Saves a screenshot as `eval/reports/screens/<name>.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(SCREENS).unwrap();
        std::fs::write(Path::new(SCREENS).join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, url: &str, token: &str) {
        self.client.goto(&format!("{url}/app")).await.unwrap();
        assert_eq!(self.path().await, "/app/sign-in");
        self.css("#token").await.send_keys(token).await.unwrap();
        self.css("#sign-in").await.click().await.unwrap();
        self.css("#sign-out").await;
        assert_eq!(self.path().await, "/app");
    }

    async fn sign_out(&self) {
        self.css("#sign-out").await.click().await.unwrap();
        self.css("#token").await;
    }

    /// Reloads `url` until `selector` is on the page.
    async fn reload_until(&self, url: &str, selector: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            self.client.goto(url).await.unwrap();
            if self.client.find(Locator::Css(selector)).await.is_ok() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{selector} not on {url} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn a_rep_uploads_and_reads_a_call_and_a_manager_overrides_a_commitment() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rita", "rep", "emea");
    let manager = add_user(dir.path(), "maria", "manager", "emea");
    let bidder = add_user(dir.path(), "bo", "bid", "emea");
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids");
    run_ok(dealdesk(dir.path()).args(["bids", "import", corpus]));
    let server = Server::start(dealdesk(dir.path()));
    let url = server.url.clone();

    // A transcript to analyze in the background while the browser works.
    let imported = import_call(&server, &rep, transcript());
    // Closed deals with prices, and a quote model fitted on them.
    for i in 0..300u32 {
        let discount = f64::from(i * 37 % 30) / 100.0;
        let won = f64::from(i * 7919 % 100) / 100.0 < 0.25 + 1.5 * discount;
        let (segment, product) = [("smb", "Argo"), ("enterprise", "Helix")][i as usize % 2];
        let deal = json!({"segment": segment, "list_price": 20000.0 + f64::from(i % 7) * 1000.0,
            "discount": discount, "outcome": if won { "won" } else { "lost" },
            "features": {"product": product}});
        assert_eq!(
            server.post("/deals", &manager, deal).status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(
        server.post("/quotes/fit", &manager, json!({})).status(),
        StatusCode::CREATED
    );
    let wav: PathBuf = dir.path().join("first-seconds.wav");
    std::fs::write(&wav, wav_head(&Path::new(EVAL).join("en-02/call.wav"), 20)).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let b = Browser::start().await;

        // Sign-in: strangers are sent there; a wrong token gets a clear message.
        b.client.goto(&format!("{url}/app/calls")).await.unwrap();
        assert_eq!(b.path().await, "/app/sign-in");
        b.shot("sign-in").await;
        b.css("#token").await.send_keys("ddk_wrong").await.unwrap();
        b.css("#sign-in").await.click().await.unwrap();
        assert!(b.text(".error").await.contains("unknown or revoked"));

        // The rep: home, the 403 page on the manager's queue, the calls list.
        b.sign_in(&url, &rep).await;
        assert!(b.text("h1").await.contains("rita"));
        b.shot("home-rep").await;
        b.client.goto(&format!("{url}/app/reviews")).await.unwrap();
        b.css(".error-page[data-status=\"403\"]").await;
        b.shot("forbidden").await;
        b.client.goto(&format!("{url}/app/calls")).await.unwrap();
        assert!(b.text("#call-list").await.contains("Pricing follow-up with Lumen"));

        // Upload with the form: progress, then the transcript beside the player.
        b.css("#file")
            .await
            .send_keys(wav.to_str().unwrap())
            .await
            .unwrap();
        b.css("#title").await.send_keys("Short upload").await.unwrap();
        b.shot("calls").await;
        b.css("#upload-button").await.click().await.unwrap();
        b.css("#job-progress").await;
        assert!(b.path().await.starts_with("/app/calls/"));
        let uploaded_url = b.client.current_url().await.unwrap().to_string();
        b.shot("call-processing").await;
        b.client
            .wait()
            .at_most(Duration::from_secs(600))
            .for_element(Locator::Css("#transcript li"))
            .await
            .expect("the uploaded call's transcript appears without a manual reload");
        assert_eq!(b.client.current_url().await.unwrap().to_string(), uploaded_url);
        // The recording is served with range requests, and a line seeks the player.
        let ranged = b
            .js("const a = document.getElementById('player'); \
                 return fetch(a.src, {headers: {Range: 'bytes=0-11'}}) \
                 .then(r => [r.status, r.headers.get('content-type')]);")
            .await;
        assert_eq!(ranged, json!([206, "audio/wav"]));
        let lines = b.client.find_all(Locator::Css("#transcript li")).await.unwrap();
        assert!(lines.len() >= 2, "20 s of a call give more than one line");
        let last = lines.last().unwrap();
        let start_ms: f64 = last.attr("data-start").await.unwrap().unwrap().parse().unwrap();
        assert!(start_ms > 1000.0);
        last.click().await.unwrap();
        let at = b.js("return document.getElementById('player').currentTime;").await;
        assert!(
            (at.as_f64().unwrap() - start_ms / 1000.0).abs() < 0.6,
            "player at {at}, line starts at {start_ms} ms"
        );
        // While it plays, the current line is marked.
        let start = Instant::now();
        while b.client.find(Locator::Css("#transcript li.current")).await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "no current line while playing");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        b.shot("call-uploaded").await;

        // The imported call: highlighted commitment, its task, the ICS export.
        let call_url = format!("{url}/app/calls/{imported}");
        b.reload_until(&call_url, "#transcript li", Duration::from_secs(600))
            .await;
        let marked = b.text("#transcript mark.commitment").await;
        assert!(marked.contains("revised quote"), "{marked}");
        assert!(b.text("#commitments").await.contains("Dana Reyes"));
        let ics = b
            .js("return fetch(document.getElementById('export-ics').href).then(r => r.text());")
            .await;
        assert!(ics.as_str().unwrap().contains("BEGIN:VTODO"), "{ics}");
        b.shot("call").await;
        b.client.set_window_size(390, 844).await.unwrap();
        b.shot("call-phone").await;
        b.client.set_window_size(1280, 900).await.unwrap();

        // 简体中文, remembered across pages; then back.
        b.css("#lang-switch").await.click().await.unwrap();
        b.css("html[lang=\"zh-CN\"]").await;
        assert!(b.text("main h2").await.contains("转写"));
        b.client.goto(&format!("{url}/app")).await.unwrap();
        assert!(b.text("h1").await.contains("欢迎"));
        b.shot("home-rep-zh").await;
        b.css("#lang-switch").await.click().await.unwrap();
        b.css("html[lang=\"en\"]").await;
        assert!(b.text("h1").await.contains("Welcome"));

        // A quote: the curve, the recommended discount with its interval, the explanation.
        b.client.goto(&format!("{url}/app/quote")).await.unwrap();
        b.css("#list_price").await.send_keys("24000").await.unwrap();
        b.css("#segment").await.send_keys("smb").await.unwrap();
        b.css("#features").await.send_keys("product = Argo").await.unwrap();
        b.css("#recommend").await.click().await.unwrap();
        let discount = b.text("#recommended-discount").await;
        assert!(discount.ends_with('%'), "{discount}");
        let points = b.css("#curve polyline.win").await.attr("points").await.unwrap().unwrap();
        assert!(points.split_whitespace().count() > 5, "{points}");
        assert!(b.text("#quote-result").await.contains("95% interval"));
        b.shot("quote").await;
        b.js("document.getElementById('curve').scrollIntoView(); return 0;").await;
        b.shot("quote-curve").await;
        b.sign_out().await;

        // The manager: the queue, an override with a reason, the audit trail.
        b.sign_in(&url, &manager).await;
        assert_ne!(b.text("#pending").await, "0");
        b.client.goto(&format!("{url}/app/reviews?kind=commitment")).await.unwrap();
        b.shot("reviews").await;
        let item = b.css("#queue li.item").await;
        let id = item.attr("id").await.unwrap().unwrap();
        let id = id.strip_prefix("rec-").unwrap().to_string();
        b.css(&format!("#rec-{id} button.override")).await.click().await.unwrap();
        let replacement = b.css(&format!("#replacement-{id}")).await;
        replacement.clear().await.unwrap();
        replacement
            .send_keys(r#"{"owner": "Dana Reyes", "action": "send a revised quote", "due_date": "2026-03-16"}"#)
            .await
            .unwrap();
        b.shot("override-dialog").await;
        b.css(&format!("#reason-o-{id}"))
            .await
            .send_keys("The customer agreed to Monday on the follow-up email")
            .await
            .unwrap();
        b.css(&format!("#override-{id} button[type=submit]"))
            .await
            .click()
            .await
            .unwrap();
        b.css("#decided a").await.click().await.unwrap();
        let trail = b.text("#audit-trail").await;
        assert!(trail.contains("recommendation.overridden"), "{trail}");
        assert!(trail.contains("agreed to Monday"), "{trail}");
        assert!(trail.contains("maria"), "{trail}");
        b.shot("audit").await;
        b.sign_out().await;

        // The bid team: a tender finds similar winning bids; a hit opens the bid.
        b.sign_in(&url, &bidder).await;
        b.client.goto(&format!("{url}/app/calls")).await.unwrap();
        b.css(".error-page[data-status=\"403\"]").await;
        b.client.goto(&format!("{url}/app/bids")).await.unwrap();
        b.css("#t-title")
            .await
            .send_keys("Adult intensive care monitoring system")
            .await
            .unwrap();
        b.css("#t-req")
            .await
            .send_keys("Bedside monitors for a 16-bed intensive care unit\nCentral station with alarm review\nInterface to the electronic patient record")
            .await
            .unwrap();
        b.css("#find-bids").await.click().await.unwrap();
        b.css("#hits li.hit .badge.won").await;
        assert!(b.client.find(Locator::Css("#hits mark.match")).await.is_ok());
        b.js("document.getElementById('hits').scrollIntoView(); return 0;").await;
        b.shot("bids").await;
        // A cited draft: progress, then sections whose citations open the cited bid section.
        b.css("#draft-button").await.click().await.unwrap();
        b.css("#progress-card, #draft").await;
        assert!(b.path().await.starts_with("/app/drafts/"));
        b.client
            .wait()
            .at_most(Duration::from_secs(600))
            .for_element(Locator::Css("#draft a.cite"))
            .await
            .expect("the draft appears");
        let md = b
            .js("return fetch(document.getElementById('export-md').href).then(r => r.text());")
            .await;
        assert!(md.as_str().unwrap().contains("§"), "{md}");
        b.shot("draft").await;
        let cite = b.css("#draft a.cite").await;
        let href = cite.attr("href").await.unwrap().unwrap();
        let section = href.split('#').nth(1).unwrap().to_string();
        cite.click().await.unwrap();
        b.css(&format!("section#{section}")).await;
        assert!(b.path().await.starts_with("/app/bids/"));
        b.client.goto(&format!("{url}/app/bids")).await.unwrap();
        b.css("#t-title")
            .await
            .send_keys("Adult intensive care monitoring system")
            .await
            .unwrap();
        b.css("#find-bids").await.click().await.unwrap();
        b.css("#hits li.hit a").await.click().await.unwrap();
        b.css("#bid-outcome").await;
        assert!(b.path().await.starts_with("/app/bids/"));
        b.css("section.section").await;
        b.shot("bid").await;

        // A form without the session's CSRF token, and an API call without the header: 403.
        let status = b
            .js(&format!(
                "return fetch('/app/reviews/{id}', {{method: 'POST', \
                 headers: {{'content-type': 'application/x-www-form-urlencoded'}}, \
                 body: 'csrf=bad&action=approve'}}).then(r => r.status);"
            ))
            .await;
        assert_eq!(status, json!(403));
        let status = b
            .js(&format!(
                "return fetch('/recommendations/{id}/review', {{method: 'POST', \
                 headers: {{'content-type': 'application/json'}}, \
                 body: '{{\"action\": \"approve\"}}'}}).then(r => r.status);"
            ))
            .await;
        assert_eq!(status, json!(403));
        b.client.clone().close().await.unwrap();
    });
}

/// The `name=value` of a `Set-Cookie` header named `name`, with its attributes.
fn set_cookie(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// The CSRF token a page carries in its `<meta name="csrf-token">`.
fn page_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    html[at..at + 64].to_string()
}

#[test]
fn sessions_and_csrf_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rita", "rep", "emea");
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_WEB_SECURE_COOKIES", "true");
    let server = Server::start(cmd);
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = &server.url;

    // The sign-in page sets the pre-session CSRF cookie; its forms carry the same token.
    let page = http.get(format!("{url}/app/sign-in")).send().unwrap();
    let pre = set_cookie(&page, "dd_pre").unwrap();
    assert!(pre.contains("HttpOnly") && pre.contains("SameSite=Strict") && pre.contains("Secure"));
    let pre = cookie_value(&pre);
    let csrf = page_csrf(&page.text().unwrap());
    assert_eq!(pre, format!("dd_pre={csrf}"));
    let sign_in = |csrf: &str, token: &str| {
        http.post(format!("{url}/app/sign-in"))
            .header(COOKIE, &pre)
            .form(&[("csrf", csrf), ("token", token), ("next", "/app/calls")])
            .send()
            .unwrap()
    };
    assert_eq!(
        sign_in("0".repeat(64).as_str(), &rep).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        sign_in(&csrf, "ddk_wrong").status(),
        StatusCode::UNAUTHORIZED
    );
    let signed = sign_in(&csrf, &rep);
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed.headers()[LOCATION], "/app/calls");
    let session = set_cookie(&signed, "dd_session").unwrap();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    assert!(session.contains("Secure") && session.contains("Max-Age=43200"));
    let session = cookie_value(&session);

    // The session opens pages and the JSON API; changes need the session's CSRF token.
    let home = http
        .get(format!("{url}/app"))
        .header(COOKIE, &session)
        .send()
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let csrf = page_csrf(&home.text().unwrap());
    let api = |header: Option<&str>| {
        let mut req = http
            .post(format!("{url}/recommendations/none/review"))
            .header(COOKIE, &session)
            .json(&json!({"action": "approve"}));
        if let Some(h) = header {
            req = req.header("X-CSRF-Token", h);
        }
        req.send().unwrap()
    };
    assert_eq!(api(None).status(), StatusCode::FORBIDDEN);
    assert_eq!(api(Some(&"0".repeat(64))).status(), StatusCode::FORBIDDEN);
    assert_eq!(api(Some(&csrf)).status(), StatusCode::NOT_FOUND);
    let calls = http
        .get(format!("{url}/calls"))
        .header(COOKIE, &session)
        .send()
        .unwrap();
    assert_eq!(calls.status(), StatusCode::OK);
    // A rep posting a manager's form gets the 403 page, not a decision.
    let page = http
        .post(format!("{url}/app/reviews/none"))
        .header(COOKIE, &session)
        .form(&[("csrf", csrf.as_str()), ("action", "approve")])
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.text().unwrap().contains("data-status=\"403\""));

    // An expired session sends the browser to sign in, and the API answers 401.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = common::open_db(dir.path()).await;
        sqlx::query("UPDATE web_sessions SET expires_at = 0")
            .execute(db.pool())
            .await
            .unwrap();
    });
    let home = http
        .get(format!("{url}/app"))
        .header(COOKIE, &session)
        .send()
        .unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()[LOCATION], "/app/sign-in?next=/app");
    let calls = http
        .get(format!("{url}/calls"))
        .header(COOKIE, &session)
        .send()
        .unwrap();
    assert_eq!(calls.status(), StatusCode::UNAUTHORIZED);

    // Assets are built in and cached for good (their URL carries the content hash).
    let css = http.get(format!("{url}/static/app.css")).send().unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
}

/// Imports `transcript` as a call of the user with `token`; returns the call's id.
fn import_call(server: &Server, token: &str, transcript: Value) -> String {
    let resp = server.post("/calls/import-transcript", token, transcript);
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    resp.json::<Value>().unwrap()["call"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the analysis of call `id` is done (the test fails if it fails).
fn wait_analyzed(server: &Server, token: &str, id: &str) {
    poll(Duration::from_secs(900), || {
        std::thread::sleep(Duration::from_millis(200));
        let call = server
            .get(&format!("/calls/{id}"), token)
            .json::<Value>()
            .unwrap();
        match call["status"].as_str().unwrap() {
            "done" => Some(()),
            "failed" => panic!("the analysis failed: {call}"),
            _ => None,
        }
    });
}

/// A call whose seller is a diarized label not yet mapped to a participant, with two
/// commitments and two objections.
fn labelled_transcript() -> Value {
    let seg = |id: u32, label: &str, speaker: &str, text: &str| {
        json!({"id": id, "label": label, "speaker": speaker, "start_ms": id * 5000,
               "end_ms": id * 5000 + 4500, "text": text})
    };
    let (s1, s2) = ("Speaker 1", "Speaker 2");
    json!({
        "language": "en", "call_date": "2026-03-10", "title": "Renewal call with Lumen",
        "participants": [
            {"name": "Dana Reyes", "side": "seller"},
            {"name": "Sam Ortiz", "side": "customer"}
        ],
        "speakers": {"Speaker 1": null, "Speaker 2": "Sam Ortiz"},
        "segments": [
            seg(0, s1, s1, "Thanks for making time today, Sam. How is the rollout going?"),
            seg(1, s2, "Sam Ortiz", "Honestly, the price is too high for our budget this year."),
            seg(2, s1, s1, "I understand. I will send you a revised quote by Friday."),
            seg(3, s2, "Sam Ortiz", "We are also talking to HubSpot, and their offer is cheaper."),
            seg(4, s1, s1, "Fair enough. I will set up a demo of the reporting module for your team next Tuesday."),
            seg(5, s2, "Sam Ortiz", "Good, that works for us.")
        ]
    })
}

#[test]
fn a_rep_maps_speakers_and_accepts_edits_and_rejects_items_on_the_call_page() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rita", "rep", "emea");
    let server = Server::start(dealdesk(dir.path()));
    let url = server.url.clone();
    let call = import_call(&server, &rep, labelled_transcript());
    wait_analyzed(&server, &rep, &call);
    let call_url = format!("{url}/app/calls/{call}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let b = Browser::start().await;
        b.sign_in(&url, &rep).await;
        b.client.goto(&call_url).await.unwrap();

        // Analytics: both sides talk, the pricing tracker fired, the longest turn is 4.5 s.
        let sides = b.text("#talk-sides").await;
        assert!(sides.contains("Seller") && sides.contains("Customer"), "{sides}");
        assert_eq!(b.client.find_all(Locator::Css("#talk-ratio li")).await.unwrap().len(), 2);
        assert!(b.text("#trackers").await.contains("pricing"));
        assert!(b.text("#monologue").await.starts_with("0:04"));

        // The seller's commitments wait for the speakers to be mapped; map Speaker 1.
        assert!(b.text("#commitments").await.contains("Speaker 1"));
        b.css("#commitments .badge.relabel").await;
        let select = b.css("#speakers-form select[name=\"Speaker 1\"]").await;
        select
            .select_by(Locator::Css("option[value=\"Dana Reyes\"]"))
            .await
            .unwrap();
        b.css("#save-speakers").await.click().await.unwrap();
        let start = Instant::now();
        while b.client.find(Locator::Css("#commitments .badge.relabel")).await.is_ok() {
            assert!(start.elapsed() < Duration::from_secs(20), "the owners were not re-attributed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let owners = b.text("#commitments").await;
        assert!(owners.contains("Dana Reyes") && !owners.contains("Speaker 1"), "{owners}");
        let selected = b
            .js("return document.querySelector('#speakers-form select[name=\"Speaker 1\"]').value;")
            .await;
        assert_eq!(selected, json!("Dana Reyes"));

        // Three items the rep may decide: accept the first, edit the second, reject the third.
        let mut ids = Vec::new();
        for item in b.client.find_all(Locator::Css("li.item")).await.unwrap() {
            if item.find(Locator::Css("button.accept")).await.is_ok() {
                ids.push(item.attr("id").await.unwrap().unwrap()["rec-".len()..].to_string());
            }
        }
        assert!(ids.len() >= 3, "{} items to decide; the model found too few", ids.len());
        let (accepted, edited, rejected) = (&ids[0], &ids[1], &ids[2]);
        let state = |id: &str| format!("#rec-{id} .review-state");
        assert_eq!(b.text(&state(accepted)).await, "Waiting");

        b.css(&format!("#rec-{accepted} button.accept")).await.click().await.unwrap();
        b.css(&format!("#rec-{accepted}[data-state=approved]")).await;
        assert_eq!(b.text(&state(accepted)).await, "Approved");

        b.css(&format!("#rec-{edited} button.edit")).await.click().await.unwrap();
        let is_commitment = b.client.find(Locator::Css(&format!("#action-{edited}"))).await.is_ok();
        let new_value = if is_commitment {
            let action = b.css(&format!("#action-{edited}")).await;
            action.clear().await.unwrap();
            action.send_keys("send the revised quote with the multi-year discount").await.unwrap();
            b.js(&format!("document.getElementById('due_date-{edited}').value = '2026-03-16'; return 0;"))
                .await;
            "send the revised quote with the multi-year discount"
        } else {
            b.css(&format!("#category-{edited}"))
                .await
                .select_by(Locator::Css("option[value=\"competitor\"]"))
                .await
                .unwrap();
            "Competitor"
        };
        b.css(&format!("#reason-e-{edited}"))
            .await
            .send_keys("Sam asked for the multi-year option on the call")
            .await
            .unwrap();
        b.shot("call-review-dialog").await;
        b.css(&format!("#edit-{edited} button[type=submit]")).await.click().await.unwrap();
        b.css(&format!("#rec-{edited}[data-state=overridden]")).await;
        assert_eq!(b.text(&state(edited)).await, "Overridden");
        let shown = b.text(&format!("#rec-{edited}")).await;
        assert!(shown.contains(new_value) && shown.contains("Edited"), "{shown}");
        if is_commitment {
            assert!(shown.contains("2026-03-16"), "{shown}");
        }

        b.css(&format!("#rec-{rejected} button.reject")).await.click().await.unwrap();
        b.css(&format!("#reason-r-{rejected}"))
            .await
            .send_keys("Not a real commitment: said in passing")
            .await
            .unwrap();
        b.css(&format!("#reject-{rejected} button[type=submit]")).await.click().await.unwrap();
        b.css(&format!("#rec-{rejected}[data-state=rejected]")).await;
        assert_eq!(b.text(&state(rejected)).await, "Rejected");
        // Decided items offer no more decisions.
        for id in [accepted, edited, rejected] {
            assert!(b.client.find(Locator::Css(&format!("#rec-{id} button.accept"))).await.is_err());
        }

        // The JSON API agrees: states, the replacement, the speaker map and the owners.
        let get = |path: String| {
            format!("return fetch('{path}', {{headers: {{Accept: 'application/json'}}}}).then(r => r.json());")
        };
        for (id, expected) in [(accepted, "approved"), (edited, "overridden"), (rejected, "rejected")] {
            let rec = b.js(&get(format!("/recommendations/{id}"))).await;
            assert_eq!(rec["state"], expected, "{rec}");
        }
        let rec = b.js(&get(format!("/recommendations/{edited}"))).await;
        let replaced = &rec["final_output"];
        if is_commitment {
            assert_eq!(replaced["action"], new_value, "{rec}");
            assert_eq!(replaced["due_date"], "2026-03-16", "{rec}");
        } else {
            assert_eq!(replaced["category"], "competitor", "{rec}");
        }
        assert_eq!(replaced["quote"], rec["output"]["quote"], "the edit keeps the quote: {rec}");
        let transcript = b.js(&get(format!("/calls/{call}/transcript"))).await;
        assert_eq!(transcript["speakers"]["Speaker 1"], "Dana Reyes", "{transcript}");
        let insights = b.js(&get(format!("/calls/{call}/insights"))).await;
        for c in insights["commitments"].as_array().unwrap() {
            assert_eq!((&c["owner"], &c["needs_relabel"]), (&json!("Dana Reyes"), &json!(false)));
        }
        // The whole page in one picture, and at a phone's width.
        shot_at(&b, "call-review", (1280, 1800), "body").await;
        shot_at(&b, "call-review-phone", (390, 844), "#commitments").await;

        // 简体中文: the same page, translated.
        b.css("#lang-switch").await.click().await.unwrap();
        b.css("html[lang=\"zh-CN\"]").await;
        assert!(b.text("#stats-title").await.contains("通话分析"));
        assert_eq!(b.text(&state(accepted)).await, "已批准");
        shot_at(&b, "call-review-zh", (1280, 1800), "body").await;
        b.client.clone().close().await.unwrap();
    });
}

/// A screenshot at another window size, scrolled to `selector`; the window is back at
/// 1280×900 after it.
async fn shot_at(b: &Browser, name: &str, (width, height): (u32, u32), selector: &str) {
    b.client.set_window_size(width, height).await.unwrap();
    b.js(&format!(
        "document.querySelector('{selector}').scrollIntoView(); return 0;"
    ))
    .await;
    b.shot(name).await;
    b.client.set_window_size(1280, 900).await.unwrap();
}

/// The manager dashboard on a history recorded through the API: two calls (one per region)
/// analyzed by the real LLM, reviews decided, deals closed with and against the recommendation,
/// a fitted quote model, a tripped breaker and a firing alert. A manager sees their region
/// only, an admin every region and resets the breaker, a rep gets the 403 page.
#[test]
fn a_manager_reads_the_dashboard_of_their_region() {
    let dir = tempfile::tempdir().unwrap();
    let rep = add_user(dir.path(), "rita", "rep", "emea");
    let manager = add_user(dir.path(), "maria", "manager", "emea");
    let apac_rep = add_user(dir.path(), "kenji", "rep", "apac");
    let apac_manager = add_user(dir.path(), "ken", "manager", "apac");
    let admin = add_user(dir.path(), "ada", "admin", "hq");
    // The shipped rules, with the overdue-commitments alert firing from the first one.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules.toml")).unwrap();
    assert!(shipped.contains("above = 20\n"));
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, shipped.replace("above = 20\n", "above = 0\n")).unwrap();
    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_REVIEW_RULES", &rules);
    let server = Server::start(cmd);
    let url = server.url.clone();

    // Two calls two weeks ago, one per region: "by Friday" is overdue by now.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let call_day = today
        .checked_sub(jiff::Span::new().days(14))
        .unwrap()
        .to_string();
    let mut calls = Vec::new();
    for (token, title) in [
        (&rep, "Pricing follow-up with Lumen"),
        (&apac_rep, "Renewal with Orchid"),
    ] {
        let mut t = transcript();
        t["call_date"] = json!(call_day);
        t["title"] = json!(title);
        calls.push((token.clone(), import_call(&server, token, t)));
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let b = runtime.block_on(Browser::start());
    // Before any deal, model or decision: the empty states.
    runtime.block_on(async {
        b.sign_in(&url, &manager).await;
        b.css("nav a[href=\"/app/dashboard\"]")
            .await
            .click()
            .await
            .unwrap();
        assert_eq!(b.path().await, "/app/dashboard");
        b.css("#fairness-empty").await;
        b.css("#quotes-empty").await;
        b.css("#breakers-empty").await;
        b.css("#alerts-empty").await;
    });

    // Closed deals in both regions and a model fitted on them.
    for (token, region_shift) in [(&manager, 0u32), (&apac_manager, 1)] {
        for i in 0..150u32 {
            let discount = f64::from(i * 37 % 30) / 100.0;
            let won = f64::from((i + region_shift) * 7919 % 100) / 100.0 < 0.25 + 1.5 * discount;
            let (segment, product) = [("smb", "Argo"), ("enterprise", "Helix")][i as usize % 2];
            let deal = json!({"segment": segment, "list_price": 20000.0 + f64::from(i % 7) * 1000.0,
                "discount": discount, "outcome": if won { "won" } else { "lost" },
                "features": {"product": product}});
            assert_eq!(
                server.post("/deals", token, deal).status(),
                StatusCode::CREATED
            );
        }
    }
    assert_eq!(
        server.post("/quotes/fit", &manager, json!({})).status(),
        StatusCode::CREATED
    );
    // Quotes that followed or overrode the recommendation: emea 3 of 4 followed won, 0 of 2
    // overridden; apac 0 of 3 followed (a leak would show 3 of 7).
    let closed = |token: &str, followed: &str, won: bool| {
        let deal = json!({"segment": "smb", "list_price": 10000.0, "quoted_price": 9000.0,
            "cost": 6000.0, "outcome": if won { "won" } else { "lost" },
            "followed_recommendation": followed, "features": {"product": "Argo"}});
        assert_eq!(
            server.post("/deals", token, deal).status(),
            StatusCode::CREATED
        );
    };
    for won in [true, true, true, false] {
        closed(&manager, "followed", won);
    }
    for _ in 0..2 {
        closed(&manager, "overrode", false);
    }
    for _ in 0..3 {
        closed(&apac_manager, "followed", false);
    }

    // The calls' analyses, then decisions: emea approves commitments and overrides the rest,
    // apac rejects everything.
    for (token, id) in &calls {
        wait_analyzed(&server, token, id);
    }
    let mut decided = 0;
    for (token, region) in [(&manager, "emea"), (&apac_manager, "apac")] {
        let queue = server
            .get("/reviews?state=proposed", token)
            .json::<Value>()
            .unwrap();
        for item in queue["items"].as_array().unwrap() {
            assert_eq!(item["region"], region);
            let decision = match (region, item["kind"].as_str().unwrap()) {
                ("emea", "commitment") => json!({"action": "approve"}),
                ("emea", _) => json!({"action": "override", "replacement": "Offer a pilot",
                    "reason": "our playbook answer fits better"}),
                _ => json!({"action": "reject", "reason": "not said"}),
            };
            let id = item["id"].as_str().unwrap();
            let resp = server.post(&format!("/recommendations/{id}/review"), token, decision);
            assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().unwrap());
            decided += 1;
        }
    }
    assert!(decided >= 2, "both calls gave something to review");
    // The quote model's calibration drifted: quotes switch to manual review.
    runtime.block_on(async {
        let db = common::open_db(dir.path()).await;
        let mut conn = db.pool().acquire().await.unwrap();
        let rules = dealdesk::review::Rules::builtin();
        assert!(
            dealdesk::review::breaker::observe_calibration(&mut conn, &rules, 0.5)
                .await
                .unwrap()
        );
    });

    // What the JSON APIs say for the manager over the dashboard's default range.
    let from = dealdesk::calls::analytics::week_start(today)
        .checked_sub(jiff::Span::new().weeks(11))
        .unwrap()
        .to_string();
    let range = format!("from={from}&to={today}");
    let to_excl = today.checked_add(jiff::Span::new().days(1)).unwrap();
    let ai = server
        .get(&format!("/metrics/ai?from={from}&to={to_excl}"), &manager)
        .json::<Value>()
        .unwrap();
    let team = server
        .get(&format!("/analytics/calls?{range}"), &manager)
        .json::<Value>()
        .unwrap();
    let objections: u64 = team["total"]["objections"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("–".to_string(), |r| format!("{:.0}%", r * 100.0))
    };
    let expected_kinds: Vec<Value> = ai["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            json!([
                k["proposed"].to_string(),
                pct(&k["acceptance_rate"]),
                pct(&k["override_rate"])
            ])
        })
        .collect();
    let rita = ai["commitments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rep_name"] == "rita")
        .expect("rita has open commitments")
        .clone();
    assert!(rita["overdue"].as_i64().unwrap() >= 1, "{rita}");

    runtime.block_on(async {
        // The manager: their region's numbers, the same as the API's.
        b.client.goto(&format!("{url}/app/dashboard")).await.unwrap();
        assert!(b.text("#scope").await.contains("emea"));
        let kinds = b
            .js("return Array.from(document.querySelectorAll('#kinds tbody tr')).map(r => \
                 [r.cells[1].textContent.trim(), r.querySelector('.acceptance').textContent.trim(), \
                 r.querySelector('.override').textContent.trim()]);")
            .await;
        assert_eq!(kinds, json!(expected_kinds));
        assert_eq!(b.text("#quotes-followed .win-rate").await, "75%");
        assert_eq!(b.text("#quotes-followed .deals").await, "4");
        assert_eq!(b.text("#quotes-followed .margin").await, "9000");
        assert_eq!(b.text("#quotes-overridden .win-rate").await, "0%");
        assert_eq!(b.text("#quotes-overridden .deals").await, "2");
        assert!(objections >= 1, "the call's price objection: {team}");
        let summary = b.text("#objection-summary").await;
        let expected = format!("Objections raised: {objections} in 12 weeks");
        assert!(summary.starts_with(&expected), "{summary}");
        let bars = b.client.find_all(Locator::Css("#objection-chart rect")).await.unwrap();
        assert!(!bars.is_empty());
        let rows = b.text("#rep-commitments").await;
        assert!(rows.contains("rita") && !rows.contains("kenji"), "{rows}");
        assert_eq!(
            b.text("#rep-commitments tr[data-rep=\"rita\"] .overdue").await,
            rita["overdue"].to_string()
        );
        let alerts = b.text("#alert-list").await;
        assert!(alerts.contains("commitments overdue"), "{alerts}");
        assert!(b.text("#breaker-quote").await.contains("calibration"));
        assert!(b.client.find(Locator::Css("button.reset-breaker")).await.is_err(), "managers may not reset");
        assert!(b.client.find(Locator::Css("#fairness table.fairness-attr")).await.is_ok());
        let height = b.js("return document.documentElement.scrollHeight;").await;
        let height = height.as_u64().unwrap().clamp(900, 4000) as u32;
        b.client.set_window_size(1280, height + 100).await.unwrap();
        b.shot("dashboard").await;
        b.client.set_window_size(390, 844).await.unwrap();
        let phone = b.js("return document.documentElement.scrollHeight;").await;
        let phone = phone.as_u64().unwrap().clamp(844, 6000) as u32;
        b.client.set_window_size(390, phone + 100).await.unwrap();
        b.shot("dashboard-phone").await;
        b.client.set_window_size(1280, height + 100).await.unwrap();
        b.css("#lang-switch").await.click().await.unwrap();
        b.css("html[lang=\"zh-CN\"]").await;
        assert!(b.text("h1").await.contains("仪表板"));
        assert!(b.text("#objection-summary").await.contains(&format!("共 {objections} 条异议")));
        b.shot("dashboard-zh").await;
        b.css("#lang-switch").await.click().await.unwrap();
        b.css("html[lang=\"en\"]").await;
        b.client.set_window_size(1280, 900).await.unwrap();

        // A range without activity: the empty states.
        b.js("document.getElementById('d-from').value = '2026-01-05'; \
              document.getElementById('d-to').value = '2026-02-01'; return 0;")
            .await;
        b.css("#apply-range").await.click().await.unwrap();
        b.css("#objections-empty").await;
        assert!(b.client.current_url().await.unwrap().query().unwrap().contains("from=2026-01-05"));
        b.css("#quotes-empty").await;
        b.css("#review-empty").await;
        b.sign_out().await;

        // A rep: no link, and the 403 page.
        b.sign_in(&url, &rep).await;
        assert!(b.client.find(Locator::Css("nav a[href=\"/app/dashboard\"]")).await.is_err());
        b.client.goto(&format!("{url}/app/dashboard")).await.unwrap();
        b.css(".error-page[data-status=\"403\"]").await;
        b.sign_out().await;

        // The admin: every region, and the breaker reset from the page.
        b.sign_in(&url, &admin).await;
        b.client.goto(&format!("{url}/app/dashboard")).await.unwrap();
        // kenji's commitments were all rejected, so their tasks are gone: only rita's count.
        let rows = b.text("#rep-commitments").await;
        assert!(rows.contains("rita") && !rows.contains("kenji"), "{rows}");
        assert_eq!(b.text("#quotes-followed .deals").await, "7");
        assert_eq!(b.text("#quotes-followed .win-rate").await, "43%");
        b.css("#breaker-quote button.reset-breaker").await.click().await.unwrap();
        b.css("#breakers-empty").await;
        b.client.clone().close().await.unwrap();
    });
    let trail = server
        .get("/audit?subject=kind:quote", &admin)
        .json::<Value>()
        .unwrap();
    assert!(trail.to_string().contains("breaker.reset"), "{trail}");
}

/// The bid team's draft workflow: a tender uploaded as a Markdown file, similar bids, a cited
/// draft, a section edited (with one citation outside the draft's sources, which is flagged),
/// the edit in the Markdown export, and the draft submitted to the managers' queue.
#[test]
fn a_bid_writer_uploads_a_tender_file_edits_the_draft_and_submits_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = add_user(dir.path(), "bea", "bid", "emea");
    let manager = add_user(dir.path(), "max", "manager", "emea");
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids");
    run_ok(dealdesk(dir.path()).args(["bids", "import", corpus]));
    let tender = dir.path().join("icu-tender.md");
    std::fs::write(
        &tender,
        "# Intensive care monitoring\n\n## Requirements\n\n\
         - Bedside monitors for a 16-bed intensive care unit\n\
         - Interface to the electronic patient record\n",
    )
    .unwrap();
    let server = Server::start(dealdesk(dir.path()));
    let url = server.url.clone();
    let added = "Wall-mounted bedside monitors at all sixteen beds";

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let b = Browser::start().await;
        b.sign_in(&url, &writer).await;
        b.client.goto(&format!("{url}/app/bids")).await.unwrap();
        // A file that is not text is refused with a clear message, the form kept.
        let binary = dir.path().join("tender.txt");
        std::fs::write(&binary, b"\xff\xfe\x00\x01 binary").unwrap();
        b.css("#t-file")
            .await
            .send_keys(binary.to_str().unwrap())
            .await
            .unwrap();
        b.css("#find-bids").await.click().await.unwrap();
        let error = b.text("#tender-error").await;
        assert!(error.contains("binary"), "{error}");

        b.css("#t-file")
            .await
            .send_keys(tender.to_str().unwrap())
            .await
            .unwrap();
        b.css("#find-bids").await.click().await.unwrap();
        b.css("#hits li.hit .badge.won").await;
        let title = b.css("#t-title").await.prop("value").await.unwrap();
        assert_eq!(title.as_deref(), Some("Intensive care monitoring"));
        let requirements = b.css("#t-req").await.prop("value").await.unwrap().unwrap();
        assert_eq!(
            requirements,
            "- Bedside monitors for a 16-bed intensive care unit\n\
             - Interface to the electronic patient record"
        );

        b.css("#draft-button").await.click().await.unwrap();
        b.client
            .wait()
            .at_most(Duration::from_secs(600))
            .for_element(Locator::Css("#draft a.cite"))
            .await
            .expect("the draft appears");
        assert_eq!(b.text("#draft-state").await, "Not submitted");
        let draft_url = b.client.current_url().await.unwrap().to_string();

        // Edit the first section with the keyboard: a new bullet citing one of its sources,
        // and one citing a bid section that is not among the draft's sources.
        b.css("#section-0 summary").await.click().await.unwrap();
        let box0 = b.css("#edit-0").await;
        let before = box0.prop("value").await.unwrap().unwrap();
        let cite = before
            .split('[')
            .nth(1)
            .and_then(|c| c.split(']').next())
            .map(|c| format!("[{c}]"))
            .expect("the section has a citation");
        box0.clear().await.unwrap();
        box0.send_keys(&format!(
            "- {added}. {cite}\n{before}\n- Spare parts on site within four hours. [SB-999 §pricing]"
        ))
        .await
        .unwrap();
        b.css("#section-0 .save-draft").await.click().await.unwrap();
        b.css("#saved-note").await;
        let section = b.text("#section-0").await;
        assert!(section.contains(added), "{section}");
        assert!(section.contains("[SB-999 §pricing]"), "{section}");
        assert!(b.text("#section-0 .flag").await.contains("SB-999"));
        assert!(b.text("#edited-by").await.contains("bea"));
        b.css("#section-0 summary").await.click().await.unwrap();
        b.client.set_window_size(1280, 1400).await.unwrap();
        b.js("document.getElementById('draft').scrollIntoView(); return 0;")
            .await;
        b.shot("draft-edit").await;
        b.client.set_window_size(390, 844).await.unwrap();
        b.js("document.getElementById('section-0').scrollIntoView(); return 0;")
            .await;
        b.shot("draft-edit-phone").await;
        b.client.set_window_size(1280, 900).await.unwrap();

        // The Markdown export has the edit, marked AI-generated and edited by whom.
        let md = b
            .js("return fetch(document.getElementById('export-md').href).then(r => r.text());")
            .await;
        let md = md.as_str().unwrap();
        assert!(md.contains(added), "{md}");
        assert!(md.contains("AI-generated"), "{md}");
        assert!(md.contains("Edited by bea"), "{md}");
        assert!(md.contains("[SB-999 §pricing] is not among this draft's sources"), "{md}");

        // A citation of the edited section still opens the cited section of the source bid.
        let link = b.css("#section-0 li a.cite:not(.flagged)").await;
        let href = link.attr("href").await.unwrap().unwrap();
        let anchor = href.split('#').nth(1).unwrap().to_string();
        link.click().await.unwrap();
        b.css(&format!("section#{anchor}")).await;
        assert!(b.path().await.starts_with("/app/bids/"));

        // Submitted: in review, no longer editable.
        b.client.goto(&draft_url).await.unwrap();
        b.css("#submit-review").await.click().await.unwrap();
        b.css("#submitted-note").await;
        assert_eq!(b.text("#draft-state").await, "In review");
        assert!(b.client.find(Locator::Css("#edit-0")).await.is_err());
        b.css("#locked-note").await;
        b.client.clone().close().await.unwrap();
    });

    // The manager's queue holds the edited draft.
    let queue: Value = server
        .get("/reviews?kind=tender_draft", &manager)
        .json()
        .unwrap();
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{queue}");
    assert_eq!(items[0]["state"], "proposed");
    assert_eq!(items[0]["output"]["edited_by"], "bea");
    assert!(items[0]["output"].to_string().contains(added));
}
