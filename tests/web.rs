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
    let resp = server.post("/calls/import-transcript", &rep, transcript());
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let imported = resp.json::<Value>().unwrap()["call"]["id"]
        .as_str()
        .unwrap()
        .to_string();
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
    let db = format!("sqlite://{}", dir.path().join("data/dealdesk.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = dealdesk::store::Db::connect(&db, 1).await.unwrap();
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
