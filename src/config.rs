//! Configuration: built-in defaults, then `dealdesk.toml`, then `DEALDESK_*` environment
//! variables, then command-line flags — each layer overrides the one before.
//!
//! Environment variables name a key as `DEALDESK_<SECTION>_<KEY>` in upper case, e.g.
//! `DEALDESK_SERVER_LISTEN=0.0.0.0:8080` sets `[server] listen`, and `DEALDESK_DATABASE_URL`
//! sets `[database] url`. Values are read as TOML scalars (numbers, booleans) and fall back to
//! strings. Unknown sections or keys are errors, so a typo never silently does nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The environment variable that names the config file.
pub const CONFIG_ENV: &str = "DEALDESK_CONFIG";
const ENV_PREFIX: &str = "DEALDESK_";

/// The effective configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub data: DataConfig,
    pub models: ModelsConfig,
    pub jobs: JobsConfig,
    pub asr: AsrConfig,
    pub llm: LlmConfig,
    pub log: LogConfig,
    pub review: ReviewConfig,
    pub quotes: QuotesConfig,
    pub calls: CallsConfig,
    pub web: WebConfig,
    pub bids: BidsConfig,
    pub access: AccessConfig,
}

/// `[server]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// Largest accepted JSON request body, in bytes.
    pub max_body_bytes: u64,
    /// Largest accepted upload (a call recording, a tender file), in bytes.
    pub max_upload_bytes: u64,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_grace_secs: u64,
}

/// `[database]`: where dealdesk keeps its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASS@HOST/DB`. Empty: a SQLite file
    /// `dealdesk.db` in the data directory.
    pub url: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
}

/// `[data]`: files dealdesk owns (database file, uploads, indexes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The data directory. Default: `$XDG_DATA_HOME/dealdesk` (`~/.local/share/dealdesk`).
    pub dir: PathBuf,
    /// Where uploaded files live. Empty: `<dir>/blobs`. Processes on several machines that
    /// share one database point this at one shared mount (their indexes stay local).
    pub blobs_dir: PathBuf,
    /// Where uploaded files' bytes are kept: `dir` (files under `blobs_dir`) or `db` (in the
    /// database itself, for small deployments; see `store::blobs::DB_MAX_BYTES`).
    pub blobs: BlobBackend,
}

/// `[data] blobs`: the backend of the blob store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    /// Files under `[data] blobs_dir` (a shared mount when several machines serve).
    #[default]
    Dir,
    /// Rows of the `blob_chunks` table in the database.
    Db,
}

/// `[models]`: where model files are cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// The model cache. Default: `$XDG_CACHE_HOME/dealdesk/models` (`~/.cache/dealdesk/models`),
    /// outside any checkout so every clone and CI run reuses it.
    pub dir: PathBuf,
    /// A manifest file to use instead of the one built into the binary.
    pub manifest: Option<PathBuf>,
}

/// `[jobs]`: the background job workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs run at once by this process (each on its own blocking thread). 0 disables workers.
    pub workers: usize,
    /// Seconds a worker's claim on a job lasts without a heartbeat; after that another worker
    /// (or this process after a restart) takes the job over.
    pub lease_secs: u64,
    /// Tries before a job is marked `failed` with its last error.
    pub max_attempts: u32,
    /// Milliseconds an idle worker waits before looking for work again.
    pub poll_ms: u64,
    /// Jobs waiting for a worker beyond which uploads and drafts are refused with 429 and
    /// `Retry-After`, rather than accepting work that cannot be done soon.
    pub max_queued: u64,
}

/// `[asr]`: speech recognition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// Manifest id of the Whisper model.
    pub model: String,
    /// CPU threads per transcription.
    pub threads: usize,
    /// Beam width; 1 is greedy decoding (about twice as fast for a small accuracy cost).
    pub beam_size: usize,
    /// Seconds of audio per Whisper call; bounds memory on long recordings.
    pub block_secs: u32,
    /// Manifest id of the speaker-embedding model for diarization (a CAM++ checkpoint).
    pub diarization_model: String,
}

/// `[llm]`: the local language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Manifest id of the GGUF model.
    pub model: String,
    /// Manifest id of its `tokenizer.json`; empty: rebuild the tokenizer from the GGUF.
    pub tokenizer: String,
    /// CPU threads for inference. On a 2-core box that also transcribes, 1 avoids two
    /// spin-waiting pools fighting for the cores.
    pub threads: usize,
    /// Most tokens one request may generate.
    pub max_tokens: usize,
    /// Seconds one request may run before it is stopped.
    pub timeout_secs: u64,
    /// Longest context (prompt + output) in tokens; bounds memory.
    pub max_context: usize,
}

/// `[review]`: human review of AI recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// The review rules file (see the shipped `rules.toml`), re-read when it changes; empty:
    /// the built-in rules.
    pub rules: String,
    /// Seconds between triage passes (routing new proposals, escalating old ones).
    pub triage_secs: u64,
    /// Where alerts from the rules file are posted (JSON); empty: alerts are only logged.
    pub alert_webhook: String,
    /// Seconds between alert checks.
    pub alert_secs: u64,
}

/// `[calls]`: call analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Folder of edited playbook answers (`<language>/<category>.md`); empty:
    /// `<data.dir>/playbook`. Missing files fall back to the built-in answers.
    pub playbook_dir: PathBuf,
    /// CRM endpoint that receives the tasks of an analyzed call as JSON; empty: none.
    pub webhook_url: String,
    /// Tries of a webhook delivery (exponential back-off between them).
    pub webhook_attempts: u32,
    /// Seconds before the first retry; doubled after each failure.
    pub webhook_backoff_secs: f64,
    /// Topic trackers file for call analytics and search (see the shipped `trackers.toml`),
    /// read on every use; empty: the built-in trackers.
    pub trackers: String,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            playbook_dir: PathBuf::new(),
            webhook_url: String::new(),
            webhook_attempts: 5,
            webhook_backoff_secs: 1.0,
            trackers: String::new(),
        }
    }
}

impl CallsConfig {
    /// The playbook folder in effect.
    pub fn playbook_dir(&self, data: &DataConfig) -> PathBuf {
        if self.playbook_dir.as_os_str().is_empty() {
            data.dir.join("playbook")
        } else {
            self.playbook_dir.clone()
        }
    }
}

/// `[web]`: the browser app's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Hours a sign-in lasts.
    pub session_hours: u64,
    /// Mark cookies `Secure` (sent over HTTPS only); turn on when served over HTTPS, e.g.
    /// behind a TLS-terminating proxy.
    pub secure_cookies: bool,
}

/// `[bids]`: the bid library's retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BidsConfig {
    /// Dense multilingual retrieval beside BM25 (embeds every bid at import; needs the
    /// `multilingual-e5-small` model). Off: BM25 only, no embedding at import.
    pub dense: bool,
}

impl Default for BidsConfig {
    fn default() -> Self {
        BidsConfig { dense: true }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_hours: 12,
            secure_cookies: false,
        }
    }
}

/// `[access]`: failed sign-ins (a wrong or revoked token, on the sign-in form or as a bearer
/// token) are counted per client address in the database, so every process serving the same
/// database shares the count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Failed sign-ins from one address within `window_secs` that lock it out.
    pub max_failures: u32,
    /// The window in which failures are counted, in seconds.
    pub window_secs: u64,
    /// How long a locked-out address gets 429 (with `Retry-After`) for every token, in seconds.
    pub lockout_secs: u64,
    /// Take the client address from the first `X-Forwarded-For` entry: only behind a reverse
    /// proxy that sets it (otherwise a client could pick its own address).
    pub trust_forwarded_for: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            max_failures: 10,
            window_secs: 600,
            lockout_secs: 900,
            trust_forwarded_for: false,
        }
    }
}

/// `[log]`: diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `dealdesk=debug,tower_http=info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 2 * 1024 * 1024,
            max_upload_bytes: 1024 * 1024 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            max_connections: 8,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: xdg_dir("XDG_DATA_HOME", ".local/share").join("dealdesk"),
            blobs_dir: PathBuf::new(),
            blobs: BlobBackend::Dir,
        }
    }
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: xdg_dir("XDG_CACHE_HOME", ".cache")
                .join("dealdesk")
                .join("models"),
            manifest: None,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            workers: 1,
            lease_secs: 60,
            max_attempts: 3,
            max_queued: 200,
            poll_ms: 500,
        }
    }
}

impl Default for AsrConfig {
    fn default() -> Self {
        AsrConfig {
            model: "whisper-base".into(),
            threads: 2,
            beam_size: 1,
            block_secs: 300,
            diarization_model: crate::diarize::MODEL_ID.into(),
        }
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            model: "qwen2.5-coder-0.5b-instruct".into(),
            tokenizer: "qwen-tokenizer".into(),
            threads: 2,
            max_tokens: 512,
            timeout_secs: 300,
            max_context: 8192,
        }
    }
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            rules: String::new(),
            triage_secs: 5,
            alert_webhook: String::new(),
            alert_secs: 60,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info,whisper_rs=warn,symphonia_core=off,tantivy=warn".into(),
            format: "text".into(),
        }
    }
}

/// `[quotes]`: the quote recommender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotesConfig {
    /// The rules file (guardrails, approval threshold, fairness bounds); empty: the built-in
    /// `quote_rules.toml`.
    pub rules: PathBuf,
    /// Refit the model (warm-started) after this many new outcomes; 0: only on demand.
    pub refit_every: u64,
}

impl Default for QuotesConfig {
    fn default() -> Self {
        QuotesConfig {
            rules: PathBuf::new(),
            refit_every: 50,
        }
    }
}

/// `$VAR` if set and absolute, else `$HOME/fallback` (the XDG base-directory rule).
fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(fallback),
    }
}

impl Config {
    /// Loads the configuration from the process environment: the file named by `explicit`,
    /// else `$DEALDESK_CONFIG`, else `./dealdesk.toml` if present; then `DEALDESK_*` variables.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(explicit, &env)
    }

    /// [`Config::load`] with the environment given, so precedence can be tested.
    pub fn load_from(explicit: Option<&Path>, env: &[(String, String)]) -> Result<Config> {
        let env_file = env
            .iter()
            .find(|(k, _)| k == CONFIG_ENV)
            .map(|(_, v)| PathBuf::from(v));
        let file = match explicit.map(Path::to_path_buf).or(env_file) {
            Some(path) => Some(path),
            None => Some(PathBuf::from("dealdesk.toml")).filter(|p| p.exists()),
        };
        let mut table = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::io("cannot read the config file", path, e))?;
                text.parse::<toml::Table>().map_err(|e| {
                    Error::Config(format!("{} is not valid TOML: {e}", path.display()))
                })?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                if name == CONFIG_ENV {
                    continue;
                }
                apply_env(&mut table, name, rest, value)?;
            }
        }
        let origin = file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "defaults".into());
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| Error::Config(format!("{origin} and DEALDESK_* variables: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.server.max_body_bytes == 0 || self.server.max_upload_bytes == 0 {
            return Err(Error::Config(
                "server.max_body_bytes and server.max_upload_bytes must be above 0".into(),
            ));
        }
        if self.asr.threads == 0 || self.asr.beam_size == 0 || self.asr.block_secs < 30 {
            return Err(Error::Config(
                "asr.threads and asr.beam_size must be at least 1, asr.block_secs at least 30"
                    .into(),
            ));
        }
        if self.llm.threads == 0 || self.llm.max_tokens == 0 || self.llm.max_context == 0 {
            return Err(Error::Config(
                "llm.threads, llm.max_tokens and llm.max_context must be at least 1".into(),
            ));
        }
        if self.jobs.lease_secs == 0 || self.jobs.max_attempts == 0 || self.jobs.max_queued == 0 {
            return Err(Error::Config(
                "jobs.lease_secs, jobs.max_attempts and jobs.max_queued must be at least 1".into(),
            ));
        }
        if self.review.triage_secs == 0 {
            return Err(Error::Config(
                "review.triage_secs must be at least 1".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(Error::Config(format!(
                "log.format is {:?}; use \"text\" or \"json\"",
                self.log.format
            )));
        }
        let url = &self.database.url;
        if !(url.is_empty() || url.starts_with("sqlite:") || url.starts_with("postgres")) {
            return Err(Error::Config(format!(
                "database.url {url:?} is neither sqlite://PATH nor postgres://..."
            )));
        }
        Ok(())
    }

    /// The directory of uploaded files in effect: `[data] blobs_dir`, or `<data dir>/blobs`.
    pub fn blobs_dir(&self) -> PathBuf {
        if self.data.blobs_dir.as_os_str().is_empty() {
            self.data.dir.join("blobs")
        } else {
            self.data.blobs_dir.clone()
        }
    }

    /// The database URL in effect: `[database] url`, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.data.dir.join("dealdesk.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The effective configuration as TOML, for `dealdesk config show`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// Sets `[section] key` from `DEALDESK_SECTION_KEY`.
fn apply_env(table: &mut toml::Table, name: &str, rest: &str, value: &str) -> Result<()> {
    let lower = rest.to_ascii_lowercase();
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    let (section, key) = lower
        .split_once('_')
        .filter(|(s, _)| defaults.contains_key(*s))
        .ok_or_else(|| {
            let sections: Vec<&String> = defaults.keys().collect();
            Error::Config(format!(
                "{name}: unknown setting; DEALDESK_<SECTION>_<KEY> with a section of {sections:?}"
            ))
        })?;
    let known = defaults[section].as_table().expect("sections are tables");
    // `manifest` has no default value, so it is absent from the serialized defaults.
    if !(known.contains_key(key) || section == "models" && key == "manifest") {
        return Err(Error::Config(format!(
            "{name}: [{section}] has no key {key:?}; known keys: {:?}",
            known.keys().collect::<Vec<_>>()
        )));
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table() && !v.is_array())
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    // Paths and URLs stay strings even when they look like numbers.
    let parsed = match (&known.get(key), parsed) {
        (Some(toml::Value::String(_)), v) if !v.is_str() => toml::Value::String(value.to_string()),
        (_, v) => v,
    };
    table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| Error::Config(format!("[{section}] in the config file is not a table")))?
        .insert(key.to_string(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_without_file_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        // An explicitly named file must exist.
        assert!(Config::load_from(Some(&missing), &[]).is_err());
        let c = Config::load_from(None, &env(&[("HOME", "/h")])).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.jobs.workers, 1);
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dealdesk.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\nmax_body_bytes = 100\n[jobs]\nworkers = 4\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("DEALDESK_JOBS_WORKERS", "2"),
                ("DEALDESK_DATABASE_URL", "postgres://u@h/db"),
                ("DEALDESK_DATA_DIR", "/srv/dd"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000", "file beats default");
        assert_eq!(c.server.max_body_bytes, 100);
        assert_eq!(c.jobs.workers, 2, "env beats file");
        assert_eq!(c.database.url, "postgres://u@h/db");
        assert_eq!(c.database_url(), "postgres://u@h/db");
        assert_eq!(c.data.dir, PathBuf::from("/srv/dd"));
        assert_eq!(c.jobs.lease_secs, 60, "untouched keys keep defaults");
    }

    #[test]
    fn config_env_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.toml");
        std::fs::write(&path, "[log]\nlevel = \"debug\"\n").unwrap();
        let c = Config::load_from(None, &env(&[(CONFIG_ENV, path.to_str().unwrap())])).unwrap();
        assert_eq!(c.log.level, "debug");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let e = Config::load_from(None, &env(&[("DEALDESK_JOBS_WORKRES", "2")])).unwrap_err();
        assert!(e.to_string().contains("no key \"workres\""), "{e}");
        let e = Config::load_from(None, &env(&[("DEALDESK_NOPE_X", "2")])).unwrap_err();
        assert!(e.to_string().contains("unknown setting"), "{e}");
        let e = Config::load_from(None, &env(&[("DEALDESK_JOBS_WORKERS", "many")])).unwrap_err();
        assert!(e.to_string().contains("workers"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nlisen = \"x\"\n").unwrap();
        let e = Config::load_from(Some(&path), &[]).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::load_from(None, &env(&[("DEALDESK_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(e.to_string().contains("log.format"), "{e}");
    }

    #[test]
    fn numeric_looking_strings_stay_strings() {
        let c = Config::load_from(None, &env(&[("DEALDESK_LOG_LEVEL", "1")])).unwrap();
        assert_eq!(c.log.level, "1");
    }

    #[test]
    fn shown_config_parses_back_to_itself() {
        let c = Config::default();
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn the_shipped_dealdesk_toml_documents_every_key_with_its_default() {
        let text = include_str!("../dealdesk.toml");
        // Uncomment `# key = value` lines; keep sections and prose comments as they are.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let documented: toml::Table = uncommented.parse().unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &defaults {
            let doc = documented[section].as_table().unwrap();
            for (key, value) in keys.as_table().unwrap() {
                assert!(
                    doc.contains_key(key),
                    "dealdesk.toml does not document [{section}] {key}"
                );
                if section != "data" && section != "models" {
                    assert_eq!(
                        &doc[key], value,
                        "[{section}] {key} default differs from the docs"
                    );
                }
            }
            for key in doc.keys() {
                assert!(
                    keys.as_table().unwrap().contains_key(key) || key == "manifest",
                    "dealdesk.toml documents [{section}] {key}, which does not exist"
                );
            }
        }
        // The shipped file itself (all commented out) yields the defaults.
        let shipped: Config = toml::from_str(text).unwrap();
        assert_eq!(shipped, Config::default());
    }
}
