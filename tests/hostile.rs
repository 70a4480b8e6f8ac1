//! Hostile content through the real binary over HTTP (issue 12, "Bad input"): prompt
//! injections in transcripts and tenders (English and Mandarin, `tests/hostile/`), Unicode
//! tricks, zero-width characters and control bytes, extremely long lines, empty uploads, an
//! upload that claims 2 GB, bodies whose Content-Length lies, and path-traversal file names on
//! every upload endpoint (`POST /calls`, the web app's tender file on `POST /app/bids`).
//!
//! Each input gets a clear 4xx in the documented `{code, message}` shape (the web app: its
//! error page) or is treated as data; nothing is written outside the data directory; and
//! nothing else changes: another call's insights, the review queue, the review rules, a bid,
//! a quote recommendation are the same after the hostile set as before it. Commitments and
//! objections from an injected transcript are each grounded in an exact quote of that
//! transcript and none comes from the injected lines; a draft for an injected tender cites
//! only bids that exist. Run with `--test-threads=1` (real models).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use reqwest::blocking::Response;
use serde_json::{Value, json};

const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile");
const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/eval/calls");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
/// The upload limit the server runs with here.
const MAX_UPLOAD: u64 = 4_000_000;

/// Phrases only the injected lines contain: no item may quote them.
const INJECTED: [&str; 8] = [
    "ignore all previous",
    "administrator mode",
    "system prompt",
    "ninety percent",
    "忽略之前",
    "系统提示",
    "打一折",
    "gnore previous",
];

/// A 4xx in the documented `{code, message}` shape; returns the body.
fn assert_error(resp: Response, what: &str) -> Value {
    let status = resp.status();
    assert!(status.is_client_error(), "{what}: status {status}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    let body: Value = resp.json().unwrap();
    let fields: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["code", "message"]),
        "{what}: {body}"
    );
    assert!(!body["code"].as_str().unwrap().is_empty(), "{what}");
    assert!(
        body["message"].as_str().unwrap().len() > 10,
        "{what}: {body}"
    );
    body
}

/// A multipart/form-data body: text fields, then one file part with the given file name.
fn multipart(fields: &[(&str, &str)], file_field: &str, file_name: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; \
         filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(file);
    write!(body, "\r\n--{BOUNDARY}--\r\n").unwrap();
    body
}

const BOUNDARY: &str = "hostile-boundary-3f9a";
const JSON: &str = "application/json";
const MULTIPART: &str = "multipart/form-data; boundary=hostile-boundary-3f9a";

/// Every file under `dir` except the data directory, with its size.
fn files_outside_data(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path == dir.join("data") {
                continue;
            }
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(path, meta.len());
            }
        }
    }
    out
}

/// Sends raw bytes on a fresh connection and returns what the server answered (status line
/// and body) within 20 s.
fn raw_exchange(url: &str, request: &[u8]) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The server may answer (413) and stop reading before all of it is sent.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Read until the headers and the JSON body have arrived (or the server closes).
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((_, body)) = text.split_once("\r\n\r\n")
            && serde_json::from_str::<Value>(body).is_ok()
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_else(|| panic!("no JSON body: {text:?}"));
    (status, body)
}

/// The things hostile input must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    demo_insights: Value,
    /// Recommendation id → (state, final output), for those that existed before.
    reviews: BTreeMap<String, (Value, Value)>,
    rules: Value,
    bid: Value,
    quote: Value,
}

fn snapshot(api: &Api, admin: &str, demo_call: &str, known: Option<&Snapshot>) -> Snapshot {
    let queue = api.json(admin, "/reviews?limit=1000");
    let reviews = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap().to_string();
            (id, (r["state"].clone(), r["final_output"].clone()))
        })
        .filter(|(id, _)| known.is_none_or(|k| k.reviews.contains_key(id)))
        .collect();
    let quote = api.post(
        admin,
        "/quotes/recommend",
        &json!({"region": "emea", "segment": "smb", "list_price": 20000.0,
                "features": {"product_line": "Argo"}}),
    );
    assert_eq!(quote.status(), StatusCode::OK);
    let mut quote: Value = quote.json().unwrap();
    // Each ask records its own open deal when it needs review: compare the numbers only.
    quote.as_object_mut().unwrap().remove("recommendation_id");
    Snapshot {
        demo_insights: api.json(admin, &format!("/calls/{demo_call}/insights")),
        reviews,
        rules: api.json(admin, "/review/rules"),
        bid: api.json(admin, "/bids/SB-101"),
        quote,
    }
}

/// The text of every segment of a transcript file.
fn segment_texts(transcript: &Value) -> Vec<String> {
    transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect()
}

/// Checks an analysed hostile call: every item quotes its transcript exactly, none quotes an
/// injected line. Returns how many items it had.
fn assert_grounded(api: &Api, token: &str, id: &str, texts: &[String]) -> usize {
    let insights = api.json(token, &format!("/calls/{id}/insights"));
    let items: Vec<&Value> = ["commitments", "objections"]
        .iter()
        .flat_map(|k| insights[k].as_array().unwrap())
        .collect();
    for item in &items {
        let quote = item["quote"].as_str().unwrap();
        assert!(
            texts.iter().any(|t| t.contains(quote)),
            "not an exact quote of the transcript: {quote:?}"
        );
        let lower = quote.to_lowercase();
        for phrase in INJECTED {
            assert!(
                !lower.contains(phrase),
                "an injected line became an item: {quote:?}"
            );
        }
    }
    items.len()
}

#[test]
fn hostile_content_is_refused_or_treated_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let seeded =
        run_ok(dealdesk(dir.path()).args(["demo", "--corpus", CORPUS, "--calls", "1", "--json"]));
    assert!(seeded.contains("demo-rep"), "{seeded}");
    let admin = add_user(dir.path(), "hostile-admin", "admin", "emea");
    let rep = add_user(dir.path(), "hostile-rep", "rep", "emea");
    let bid = add_user(dir.path(), "hostile-bid", "bid", "emea");
    let outside_before = files_outside_data(dir.path());
    let passwd_before = std::fs::read("/etc/passwd").unwrap();

    let mut cmd = dealdesk(dir.path());
    cmd.env("DEALDESK_SERVER_MAX_UPLOAD_BYTES", MAX_UPLOAD.to_string())
        .env("DEALDESK_LLM_THREADS", "1");
    let server = Server::start(cmd);
    let api = Api::new(&server.url);
    let mut tried = 0usize;

    // The demo call is analysed first; its insights are what the hostile set must not touch.
    let demo_call = api.json(&admin, "/calls")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(api.finished_call(&admin, &demo_call)["status"], "done");
    let before = snapshot(&api, &admin, &demo_call, None);
    assert!(
        !before.reviews.is_empty(),
        "the demo has reviews to protect"
    );

    // ---- Prompt injections and Unicode tricks in transcripts: analysed as data.
    let mut analysed = Vec::new();
    for name in [
        "injection-en.json",
        "injection-zh.json",
        "unicode-tricks.json",
    ] {
        tried += 1;
        let text = std::fs::read_to_string(Path::new(HOSTILE).join(name)).unwrap();
        let resp = api.post_raw(
            &rep,
            "/calls/import-transcript",
            "application/json",
            text.clone().into_bytes(),
        );
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{name}");
        let accepted: Value = resp.json().unwrap();
        let id = accepted["call"]["id"].as_str().unwrap().to_string();
        analysed.push((
            name,
            id,
            segment_texts(&serde_json::from_str(&text).unwrap()),
        ));
    }
    for (name, id, texts) in &analysed {
        let call = api.finished_call(&rep, id);
        assert_eq!(call["status"], "done", "{name}: {call}");
        // The transcript is stored as sent: the tricks are data, byte for byte.
        let stored = api.json(&rep, &format!("/calls/{id}/transcript"));
        assert_eq!(&segment_texts(&stored), texts, "{name}");
        let items = assert_grounded(&api, &rep, id, texts);
        eprintln!("{name}: {items} grounded items");
    }

    // ---- An extremely long line (1 MB of text in one segment) is refused with a clear
    // error, not queued for hours of analysis; a body over the JSON limit (2 MiB) is a 413.
    let long_line = |chars: usize| {
        let text = std::fs::read_to_string(Path::new(HOSTILE).join("injection-en.json")).unwrap();
        let mut t: Value = serde_json::from_str(&text).unwrap();
        t["segments"][4]["text"] = json!("I'll send the contract by Friday. ".repeat(chars / 34));
        t.to_string().into_bytes()
    };
    tried += 1;
    let resp = api.post_raw(&rep, "/calls/import-transcript", JSON, long_line(1_000_000));
    let body = assert_error(resp, "a 1 MB line");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("split long turns"),
        "{body}"
    );
    tried += 1;
    let mut request = format!(
        "POST /calls/import-transcript HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {rep}\r\n\
         Content-Type: {JSON}\r\nContent-Length: {}\r\n\r\n",
        long_line(3_000_000).len()
    )
    .into_bytes();
    request.extend(long_line(3_000_000));
    let (status, body) = raw_exchange(&api.url, &request);
    assert_eq!(
        (status, &body["code"]),
        (413, &json!("too_large")),
        "{body}"
    );

    // ---- Malformed requests: clear 4xx in the documented shape.
    let nul = std::fs::read_to_string(Path::new(HOSTILE).join("injection-en.json"))
        .unwrap()
        .replace("Let's talk", "Let\\u0000s talk");
    let malformed: [(&str, &str, Vec<u8>); 6] = [
        ("/calls/import-transcript", JSON, nul.into_bytes()),
        (
            "/calls/import-transcript",
            "application/json",
            b"\xff\xfe{\"language\":".to_vec(),
        ),
        (
            "/calls/import-transcript",
            "application/json",
            b"{\"language\": \"en\", \"segments\": [".to_vec(),
        ),
        (
            "/calls/import-transcript",
            "application/json",
            "{\"language\": \"en\u{202e}\"}".into(),
        ),
        ("/bids/search", "application/json", b"\x00\x00\x00".to_vec()),
        ("/calls", "text/plain", b"../../etc/passwd".to_vec()),
    ];
    for (path, content_type, body) in malformed {
        tried += 1;
        assert_error(api.post_raw(&rep, path, content_type, body), path);
    }
    for path in [
        "/calls/%FF%FE",
        "/reviews?limit=99999999999999999999999",
        "/calls/..%2F..%2Fetc%2Fpasswd",
    ] {
        tried += 1;
        assert_error(api.get(&rep, path), path);
    }

    // ---- Uploads: empty, hostile file names, lying sizes.
    tried += 1;
    let body = assert_error(
        api.post_raw(
            &rep,
            "/calls",
            MULTIPART,
            multipart(&[], "file", "empty.wav", b""),
        ),
        "a 0-byte upload",
    );
    assert!(
        body["message"].as_str().unwrap().contains("empty"),
        "{body}"
    );
    let wav = wav_head(&Path::new(EVAL).join("en-02/call.wav"), 1);
    let names = [
        "../../etc/passwd",
        "../../../../../../tmp/hostile-upload.wav",
        "/etc/passwd",
        "..\\..\\..\\Windows\\win.ini",
        "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "call\u{0}.wav",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "\u{202e}vaw.exe",
    ];
    for (i, name) in names.iter().enumerate() {
        tried += 1;
        // Different bytes each time, so none is a duplicate of the one before.
        let mut file = wav.clone();
        let last = file.len() - 1;
        file[last] = i as u8;
        let resp = api.post_raw(
            &rep,
            "/calls",
            MULTIPART,
            multipart(&[], "file", name, &file),
        );
        if resp.status().is_success() {
            // Treated as data: the name is the call's title, nothing more.
            let accepted: Value = resp.json().unwrap();
            assert_eq!(accepted["call"]["title"], *name, "{name:?}");
        } else {
            assert_error(resp, name);
        }
    }
    // The file name is also the title of a tender file in the web app; its text never comes
    // from the path it names.
    tried += tender_file_names(&api.url, &bid);

    // A body that claims 2 GB is refused at once, before it is read.
    tried += 1;
    let head = format!(
        "POST /calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {rep}\r\n\
         Content-Type: {MULTIPART}\r\nContent-Length: 2147483648\r\n\r\n"
    );
    let mut request = head.into_bytes();
    request.extend(multipart(&[], "file", "huge.wav", &wav[..4096]));
    let (status, body) = raw_exchange(&api.url, &request);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "too_large");
    // A body that claims less than it sends: the server reads what was declared and refuses
    // the torn form.
    tried += 1;
    let full = multipart(&[], "file", "short.wav", &wav);
    let head = format!(
        "POST /calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {rep}\r\nConnection: close\r\n\
         Content-Type: {MULTIPART}\r\nContent-Length: {}\r\n\r\n",
        full.len() / 2
    );
    let mut request = head.into_bytes();
    request.extend(&full);
    let (status, body) = raw_exchange(&api.url, &request);
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    // Streamed without a declared size (chunked) and over the limit: 413 while streaming.
    // Raw, since the server answers and closes before the client has sent everything.
    tried += 1;
    let mut payload = multipart(&[], "file", "stream.wav", b"");
    let tail = payload.split_off(payload.len() - format!("\r\n--{BOUNDARY}--\r\n").len());
    payload.extend(vec![7u8; MAX_UPLOAD as usize + 100_000]);
    payload.extend(tail);
    let mut request = format!(
        "POST /calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {rep}\r\n\
         Content-Type: {MULTIPART}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in payload.chunks(64 * 1024) {
        request.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_exchange(&api.url, &request);
    assert_eq!(
        (status, &body["code"]),
        (413, &json!("too_large")),
        "{body}"
    );

    // ---- Injected tenders: search and drafts cite only real bids.
    let tenders: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(HOSTILE).join("tender-injection.json")).unwrap(),
    )
    .unwrap();
    for tender in &tenders {
        tried += 1;
        let resp = api.post(&bid, "/bids/search", &json!({"tender": tender}));
        assert_eq!(resp.status(), StatusCode::OK);
        let found: Value = resp.json().unwrap();
        for hit in found["hits"].as_array().unwrap() {
            let id = hit["id"].as_str().unwrap();
            assert_eq!(
                api.get(&bid, &format!("/bids/{id}")).status(),
                StatusCode::OK,
                "{id}"
            );
        }
        let resp = api.post(&bid, "/bids/draft", tender);
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let job: Value = resp.json().unwrap();
        let job = api.finished_job(&bid, job["id"].as_str().unwrap());
        assert_eq!(job["state"], "done", "{job}");
        let draft = &job["result"];
        let precedents: BTreeSet<&str> = draft["precedents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for id in &precedents {
            assert_eq!(
                api.get(&bid, &format!("/bids/{id}")).status(),
                StatusCode::OK,
                "{id}"
            );
        }
        let mut cited = 0;
        for section in draft["sections"].as_array().unwrap() {
            for bullet in section["bullets"].as_array().unwrap() {
                assert!(
                    precedents.contains(bullet["bid_id"].as_str().unwrap()),
                    "{bullet}"
                );
                cited += 1;
            }
            for sentence in section["paragraph"].as_array().unwrap() {
                let citation = sentence["citation"].as_str().unwrap();
                assert!(
                    precedents.iter().any(|p| citation.contains(p)),
                    "a sentence cites something that is not a source: {sentence}"
                );
                let text = sentence["text"].as_str().unwrap().to_lowercase();
                for phrase in INJECTED.iter().chain(&["sb-999", "sb-000", "zb-999"]) {
                    assert!(!text.contains(phrase), "{sentence}");
                }
            }
        }
        eprintln!(
            "{}: {cited} cited bullets from {} sources",
            tender["title"],
            precedents.len()
        );
    }

    // ---- Nothing else changed; nothing was written outside the data directory.
    let after = snapshot(&api, &admin, &demo_call, Some(&before));
    assert_eq!(after, before);
    assert_eq!(
        api.json(&admin, "/audit/verify")["first_broken"],
        Value::Null
    );
    assert_eq!(files_outside_data(dir.path()), outside_before);
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
    assert!(!Path::new("/tmp/hostile-upload.wav").exists());
    let blobs = dir.path().join("data/blobs");
    for entry in walk(&blobs) {
        let name = entry.file_name().unwrap().to_str().unwrap().to_string();
        let parent = entry
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) && parent != "tmp",
            "only content-addressed blobs: {entry:?}"
        );
    }
    eprintln!("hostile inputs tried: {tried}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The web app's tender-file upload (`POST /app/bids`) with hostile file names: each is a 4xx
/// page with its message or the file's own text, never the file the name points at.
fn tender_file_names(url: &str, token: &str) -> usize {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{url}/app/sign-in")).send().unwrap();
    let pre = cookie(&page, "dd_pre");
    let csrf = page_csrf(&page.text().unwrap());
    let signed = http
        .post(format!("{url}/app/sign-in"))
        .header("cookie", &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("next", "/app/bids"),
        ])
        .send()
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let session = cookie(&signed, "dd_session");
    let csrf = page_csrf(
        &http
            .get(format!("{url}/app/bids"))
            .header("cookie", &session)
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    let text = "Bedside monitors for a 16-bed intensive care unit.";
    let cases: [(&str, &[u8]); 6] = [
        ("../../etc/passwd", text.as_bytes()),
        ("../../../etc/passwd.txt", text.as_bytes()),
        ("/etc/passwd.md", text.as_bytes()),
        ("..\\..\\Windows\\win.ini.txt", text.as_bytes()),
        ("tender\u{0}.txt", text.as_bytes()),
        ("empty.txt", b""),
    ];
    for (name, bytes) in cases {
        let resp = http
            .post(format!("{url}/app/bids"))
            .header("cookie", &session)
            .header("content-type", MULTIPART)
            .body(multipart(&[("csrf", &csrf)], "tender_file", name, bytes))
            .send()
            .unwrap();
        let status = resp.status();
        let page = resp.text().unwrap();
        assert!(
            !page.contains("root:x:0:0"),
            "{name:?} read the file it names"
        );
        if status == StatusCode::OK {
            assert!(
                page.contains("16-bed intensive care"),
                "{name:?}: the file's own text"
            );
        } else {
            assert!(status.is_client_error(), "{name:?}: {status}");
            assert!(
                page.contains("id=\"tender-error\""),
                "{name:?}: the form's error"
            );
        }
    }
    cases.len()
}

fn cookie(resp: &Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

/// The CSRF token a page carries in its `<meta name="csrf-token">`.
fn page_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    html[at..at + 64].to_string()
}
