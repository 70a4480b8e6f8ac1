//! Schema-constrained decoding with llguidance.
//!
//! Each step llguidance computes the set of tokens that keep the output a prefix of some
//! document valid under the JSON Schema; every other logit is set to −∞ before sampling, so the
//! model cannot leave the grammar whatever the prompt says. Tokens the grammar forces (key
//! names, punctuation) are fed to the model in one batch without sampling. The finished text is
//! still parsed and validated against the schema in code: an invalid result is an error, never
//! passed on.
//!
//! llguidance's token trie is built from our own tokenizer's token bytes (see
//! [`super::tokenizer`]), so only one copy of the `tokenizers` crate is linked.

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

/// The per-model state llguidance needs: built once, on the first constrained request.
pub(crate) struct ConstraintEnv {
    factory: ParserFactory,
}

impl ConstraintEnv {
    pub(crate) fn new(tok: &Tokenizer, n_vocab: usize, stop: &[u32]) -> Result<Self> {
        let env = tok.tok_env(n_vocab, stop)?;
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| Error::Internal(format!("llguidance setup failed: {e}")))?;
        factory.quiet();
        Ok(Self { factory })
    }
}

/// What the generation loop does next.
pub(crate) enum Step {
    /// Sample from the masked logits.
    Sample,
    /// The grammar is complete: stop.
    Done,
}

/// One constrained generation.
pub(crate) struct Constraint {
    matcher: Matcher,
}

/// Compact, single-line JSON: `{"a": 1, "b": [2, 3]}`. No free whitespace, so the model
/// cannot pad forever and more tokens are forced.
fn with_layout(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Value::Object(map) = &mut s {
        map.entry("x-guidance").or_insert_with(|| {
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
            })
        });
    }
    s
}

impl Constraint {
    pub(crate) fn new(env: &ConstraintEnv, schema: &Value) -> Result<Self> {
        if !schema.is_object() {
            return Err(Error::InvalidInput(
                "the JSON schema must be an object".to_string(),
            ));
        }
        let grammar = TopLevelGrammar::from_json_schema(with_layout(schema));
        let parser = env
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::InvalidInput(format!("JSON schema not supported: {e}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::InvalidInput(format!(
                "JSON schema not supported: {e}"
            )));
        }
        Ok(Self { matcher })
    }

    fn err(&self, what: &str) -> Error {
        Error::Internal(format!(
            "constrained decoding failed while {what}: {}",
            self.matcher.get_error().unwrap_or_default()
        ))
    }

    /// Sets every logit the grammar does not allow to −∞.
    pub(crate) fn mask_logits(&mut self, logits: &mut [f32]) -> Result<Step> {
        if self.matcher.is_stopped() {
            return Ok(Step::Done);
        }
        let mask = self
            .matcher
            .compute_mask()
            .map_err(|_| self.err("computing the token mask"))?;
        let words = mask.as_slice();
        let mut any = false;
        for (w, chunk) in words.iter().zip(logits.chunks_mut(32)) {
            match *w {
                0 => chunk.fill(f32::NEG_INFINITY),
                u32::MAX => any = true,
                bits => {
                    any = true;
                    for (i, l) in chunk.iter_mut().enumerate() {
                        if bits & (1 << i) == 0 {
                            *l = f32::NEG_INFINITY;
                        }
                    }
                }
            }
        }
        // Logits past the mask (should not happen: the trie is padded to the model's vocab).
        if words.len() * 32 < logits.len() {
            logits[words.len() * 32..].fill(f32::NEG_INFINITY);
        }
        if !any {
            return Err(self.err("masking (no token allowed)"));
        }
        Ok(Step::Sample)
    }

    /// Advances the grammar by a sampled token; returns the tokens it then forces.
    pub(crate) fn commit(&mut self, token: u32) -> Result<Vec<u32>> {
        self.matcher
            .consume_token(token)
            .map_err(|_| self.err("consuming a token"))?;
        if self.matcher.is_stopped() {
            return Ok(Vec::new());
        }
        let forced = self.matcher.consume_ff_tokens();
        if self.matcher.is_error() {
            return Err(self.err("forcing tokens"));
        }
        Ok(forced)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.matcher.is_stopped()
    }
}

/// Parses and validates the constrained output; any failure is an error.
pub fn parse_and_validate(text: &str, validator: &jsonschema::Validator) -> Result<Value> {
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        Error::Internal(format!(
            "constrained output is not valid JSON ({e}); refusing to pass it on"
        ))
    })?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(3)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    if !errors.is_empty() {
        return Err(Error::Internal(format!(
            "constrained output does not match the schema ({}); refusing to pass it on",
            errors.join("; ")
        )));
    }
    Ok(value)
}

/// Compiles a schema for validation; a schema that does not compile is the caller's error.
pub fn compile_validator(schema: &Value) -> Result<jsonschema::Validator> {
    jsonschema::validator_for(schema)
        .map_err(|e| Error::InvalidInput(format!("invalid JSON schema: {e}")))
}
