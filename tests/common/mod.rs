//! Helpers for tests that run the real `dealdesk` binary against a fresh data directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn dealdesk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dealdesk"))
}

/// A `dealdesk` command whose config points everything into `dir`, and its database at
/// [`db_url`].
pub fn dealdesk(dir: &Path) -> Command {
    let mut cmd = Command::new(dealdesk_bin());
    cmd.current_dir(dir)
        .env_remove("DEALDESK_CONFIG")
        .env("DEALDESK_DATA_DIR", dir.join("data"))
        .env("DEALDESK_DATABASE_URL", db_url(dir))
        .env("DEALDESK_SERVER_LISTEN", "127.0.0.1:0")
        .env("DEALDESK_LOG_LEVEL", "warn");
    cmd
}

/// Runs `dealdesk doctor ARGS`; returns whether it exited 0 and what it printed.
pub fn doctor(mut cmd: Command, args: &[&str]) -> (bool, String) {
    let out = cmd.arg("doctor").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- dealdesk doctor {args:?}\n{text}");
    (out.status.success(), text)
}

/// The database of the test whose files are in `dir`: the SQLite file in its data directory,
/// or its own PostgreSQL database when `TEST_POSTGRES_URL` is set (scripts/test runs the
/// suite on both).
pub fn db_url(dir: &Path) -> String {
    let data = dir.join("data");
    // Its own thread, so callers inside a tokio runtime can use it too.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(dealdesk::store::test_database_url(&data))
            .expect("the test database can be created")
    })
    .join()
    .unwrap()
}

/// The test's database, opened and migrated like the server does.
pub async fn open_db(dir: &Path) -> dealdesk::store::Db {
    dealdesk::store::Db::connect(&db_url(dir), 1).await.unwrap()
}

/// Runs a CLI command to completion and returns its stdout; panics with stderr on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("dealdesk runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates a user with the CLI and returns their token.
pub fn add_user(dir: &Path, name: &str, role: &str, region: &str) -> String {
    let out = run_ok(dealdesk(dir).args([
        "users", "add", "--name", name, "--role", role, "--region", region, "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Spawns `cmd` and waits (up to a minute) for a stdout line starting with `prefix`; returns
/// the child and the rest of that line.
pub fn spawn_until(mut cmd: Command, prefix: &'static str) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("dealdesk starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    let rest = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("dealdesk printed no line starting {prefix:?}"));
    (child, rest)
}

/// A running `dealdesk serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts `cmd serve` and waits for its "listening on" line.
    pub fn start(mut cmd: Command) -> Server {
        cmd.arg("serve");
        let (child, url) = spawn_until(cmd, "dealdesk listening on ");
        Server { child, url }
    }

    /// `GET path` with a bearer token.
    pub fn get(&self, path: &str, token: &str) -> reqwest::blocking::Response {
        client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    /// `POST path` with a bearer token and a JSON body.
    pub fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> reqwest::blocking::Response {
        client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap().success()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of one running server for tests that act as several users: the token first.
pub struct Api {
    pub url: String,
    pub http: reqwest::blocking::Client,
}

impl Api {
    pub fn new(url: &str) -> Api {
        Api {
            url: url.to_string(),
            http: client(),
        }
    }

    pub fn get(&self, token: &str, path: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    /// `GET path`, which must answer 200; its JSON.
    pub fn json(&self, token: &str, path: &str) -> serde_json::Value {
        let resp = self.get(token, path);
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {path}");
        resp.json().unwrap()
    }

    pub fn post_raw(
        &self,
        token: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap()
    }

    pub fn post(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::blocking::Response {
        self.post_raw(
            token,
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
    }

    pub fn put(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::blocking::Response {
        self.http
            .put(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    }

    /// `POST /calls` with `file` and the text `fields`.
    pub fn upload(
        &self,
        token: &str,
        file: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        upload_call(&self.url, token, file, fields)
    }

    /// Polls a call until its analysis has finished; returns it (status `done` or `failed`).
    pub fn finished_call(&self, token: &str, id: &str) -> serde_json::Value {
        poll(Duration::from_secs(600), || {
            std::thread::sleep(Duration::from_millis(300));
            let call = self.json(token, &format!("/calls/{id}"));
            matches!(call["status"].as_str(), Some("done" | "failed")).then_some(call)
        })
    }

    /// Polls a call until its analysis is done (or fails the test).
    pub fn wait_done(&self, token: &str, id: &str) -> serde_json::Value {
        let call = self.finished_call(token, id);
        assert_eq!(call["status"], "done", "{call}");
        call
    }

    /// Polls a job until it has finished; returns it (state `done` or `failed`).
    pub fn finished_job(&self, token: &str, id: &str) -> serde_json::Value {
        poll(Duration::from_secs(600), || {
            std::thread::sleep(Duration::from_millis(300));
            let job = self.json(token, &format!("/jobs/{id}"));
            matches!(job["state"].as_str(), Some("done" | "failed")).then_some(job)
        })
    }
}

/// `POST /calls` with a multipart/form-data body: the text fields, then the file.
pub fn upload_call(
    url: &str,
    token: &str,
    file: Vec<u8>,
    fields: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let (content_type, body) = call_form(file, fields);
    client()
        .post(format!("{url}/calls"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap()
}

/// The content type and multipart/form-data body of a call upload: the text fields, then the
/// file.
pub fn call_form(file: Vec<u8>, fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    use std::io::Write;
    let boundary = "dealdesk-test-boundary-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"call.wav\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .unwrap();
    body.extend_from_slice(&file);
    write!(body, "\r\n--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A blocking HTTP client.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Polls `check` every few milliseconds until it returns Some, or panics after `limit`.
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first `secs` seconds of a 16-bit mono WAV, as a new WAV file.
pub fn wav_head(path: &Path, secs: u32) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    let n = (16_000 * 2 * secs) as usize;
    let mut out = wav_header(n as u32);
    out.extend_from_slice(&bytes[data..data + n]);
    out
}

/// The 44-byte header of a 16 kHz 16-bit mono PCM WAV file with `data_len` bytes of samples.
pub fn wav_header(data_len: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

/// The peak resident memory of a running process (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
