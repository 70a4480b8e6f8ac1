//! Tokenizer loading and the token-bytes view llguidance needs.
//!
//! A model's tokenizer comes from a `tokenizer.json` when one is given, else it is rebuilt from
//! the GGUF metadata (`tokenizer.ggml.*`) with candle's `TokenizerFromGguf`. candle reproduces
//! Qwen's pre-tokenizer but maps SmolLM's (`tokenizer.ggml.pre = "smollm"`) to GPT-2's with a
//! prefix space; we replace it with SmolLM's own: single digits split off, then byte-level BPE
//! without a prefix space.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{DecoderWrapper, PreTokenizerWrapper};
use toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::error::{Error, Result};

/// A loaded tokenizer: the HF tokenizer that encodes prompt text (special-token strings in it
/// are encoded as plain text, so a prompt cannot forge turn markers) and decodes output.
#[derive(Clone)]
pub struct Tokenizer {
    hf: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.hf.get_vocab_size(true))
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer_json` if given, else builds the tokenizer from the GGUF metadata.
    pub(crate) fn load(ct: &gguf_file::Content, tokenizer_json: Option<&Path>) -> Result<Self> {
        let mut hf = match tokenizer_json {
            Some(p) => {
                if !p.exists() {
                    return Err(Error::Unavailable(format!(
                        "tokenizer file {} not found: run `dealdesk models fetch`",
                        p.display()
                    )));
                }
                tokenizers::Tokenizer::from_file(p).map_err(|e| {
                    Error::Unavailable(format!(
                        "tokenizer file {} is not a valid tokenizer.json ({e}): run `dealdesk models fetch` again",
                        p.display()
                    ))
                })?
            }
            None => {
                let mut hf = tokenizers::Tokenizer::from_gguf(ct).map_err(|e| {
                    Error::Unavailable(format!(
                        "the model file has no usable tokenizer ({e}); configure its tokenizer.json"
                    ))
                })?;
                let pre = ct
                    .metadata
                    .get("tokenizer.ggml.pre")
                    .and_then(|v| v.to_string().ok())
                    .map(|s| s.as_str())
                    .unwrap_or("");
                if pre == "smollm" {
                    let seq = Sequence::new(vec![
                        PreTokenizerWrapper::Digits(Digits::new(true)),
                        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
                    ]);
                    hf.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(seq)));
                }
                hf
            }
        };
        hf.set_encode_special_tokens(true);
        Ok(Self { hf })
    }

    /// Encodes text; special-token strings inside it stay plain text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.hf
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Internal(format!("tokenizer failed to encode: {e}")))
    }

    /// Decodes tokens to text, dropping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.hf
            .decode(ids, true)
            .map_err(|e| Error::Internal(format!("tokenizer failed to decode: {e}")))
    }

    /// The id of a token given by its exact string (e.g. `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.hf.token_to_id(token)
    }

    /// Number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.hf.get_vocab_size(true)
    }

    /// The raw bytes each token stands for, for llguidance's token trie: byte-level BPE
    /// tokens are mapped back through GPT-2's byte↔char table, SentencePiece byte-fallback
    /// tokens `<0xNN>` to their byte; special tokens get llguidance's 0xFF marker prefix.
    /// `n_vocab` pads to the model's output size (Qwen's is larger than its tokenizer).
    fn token_bytes(&self, n_vocab: usize) -> Result<Vec<Vec<u8>>> {
        let byte_level = match self.hf.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => true,
            Some(DecoderWrapper::Sequence(seq)) => seq
                .get_decoders()
                .iter()
                .any(|d| matches!(d, DecoderWrapper::ByteLevel(_))),
            _ => false,
        };
        let char_map = gpt2_char_to_byte();
        let specials: std::collections::HashSet<u32> = self
            .hf
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let n = n_vocab.max(self.vocab_size());
        let mut out = Vec::with_capacity(n);
        for id in 0..n as u32 {
            let Some(tok) = self.hf.id_to_token(id) else {
                let mut name = format!(".<[{id}]>").into_bytes();
                name[0] = TokTrie::SPECIAL_TOKEN_MARKER;
                out.push(name);
                continue;
            };
            let bytes = if specials.contains(&id) {
                let mut b = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                b.extend_from_slice(tok.as_bytes());
                b
            } else if byte_level {
                tok.chars()
                    .map(|c| char_map.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_default()
            } else if tok.len() == 6 && tok.starts_with("<0x") && tok.ends_with('>') {
                u8::from_str_radix(&tok[3..5], 16)
                    .map(|b| vec![b])
                    .unwrap_or_default()
            } else {
                tok.replace('\u{2581}', " ").into_bytes()
            };
            out.push(bytes);
        }
        Ok(out)
    }

    /// Builds llguidance's tokenizer environment. `stop` lists the tokens that end the
    /// constrained output (the first is its EOS).
    pub(crate) fn tok_env(&self, n_vocab: usize, stop: &[u32]) -> Result<toktrie::TokEnv> {
        let words = self.token_bytes(n_vocab)?;
        let eos = *stop
            .first()
            .ok_or_else(|| Error::Internal("no stop token for constrained decoding".into()))?;
        let info = TokRxInfo::new(words.len() as u32, eos);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(stop);
        Ok(Arc::new(TokEnvImpl {
            trie,
            hf: self.hf.clone(),
        }))
    }
}

/// llguidance's view of our tokenizer.
struct TokEnvImpl {
    trie: TokTrie,
    hf: tokenizers::Tokenizer,
}

impl TokenizerEnv for TokEnvImpl {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |s| {
            self.hf
                .encode_fast(s, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default()
        })
    }
}

/// GPT-2's byte-level BPE alphabet: printable bytes map to themselves, the others to
/// U+0100 onwards; this is its inverse.
fn gpt2_char_to_byte() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::new();
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        let c = b as char;
        if matches!(c, '!'..='~' | '\u{A1}'..='\u{AC}' | '\u{AE}'..='\u{FF}') {
            map.insert(c, b);
        } else if let Some(c) = char::from_u32(next) {
            map.insert(c, b);
            next += 1;
        }
    }
    map
}
