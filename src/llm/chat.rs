//! Chat templates: how a conversation becomes prompt tokens, and which tokens end a turn.
//!
//! The template is chosen from the GGUF's `tokenizer.chat_template` (its turn markers) and the
//! architecture. Templates are written in code rather than run as Jinja: the turn markers are
//! inserted as token ids and message text is encoded with special-token strings kept as plain
//! text, so a message cannot close its turn or open a system turn.

use serde::{Deserialize, Serialize};

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat template family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>\n` (Qwen, SmolLM). `no_think` adds Qwen 3's empty
    /// think block so the model answers directly.
    ChatMl { no_think: bool },
    /// `<start_of_turn>user\n…<end_of_turn>\n` (Gemma); system text is prefixed to the first
    /// user turn.
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3).
    Llama3,
}

/// A template resolved against a tokenizer: marker token ids and stop tokens.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub kind: ChatTemplate,
    /// Token ids that end generation: the template's end of turn first, then EOS.
    pub stop_tokens: Vec<u32>,
    bos: Option<u32>,
    markers: Vec<u32>,
}

const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

impl Template {
    /// Picks the template for a model from its GGUF chat template text and architecture.
    pub(crate) fn detect(
        arch: &str,
        jinja: Option<&str>,
        tok: &Tokenizer,
        eos: Option<u32>,
        bos: Option<u32>,
        add_bos: bool,
    ) -> Result<Self> {
        let has = |s: &str| jinja.is_some_and(|j| j.contains(s));
        let kind = if has("<|im_start|>") {
            ChatTemplate::ChatMl {
                no_think: arch == "qwen3",
            }
        } else if has("<start_of_turn>") {
            ChatTemplate::Gemma
        } else if has("<|start_header_id|>") {
            ChatTemplate::Llama3
        } else if arch.starts_with("gemma") {
            ChatTemplate::Gemma
        } else if tok.token_id("<|im_start|>").is_some() {
            ChatTemplate::ChatMl {
                no_think: arch == "qwen3",
            }
        } else if tok.token_id("<|start_header_id|>").is_some() {
            ChatTemplate::Llama3
        } else {
            return Err(Error::Unavailable(format!(
                "model architecture `{arch}` has no chat template dealdesk knows (ChatML, Gemma, Llama 3): use a supported model"
            )));
        };
        let names: &[&str] = match kind {
            ChatTemplate::ChatMl { .. } => &["<|im_start|>", "<|im_end|>"],
            ChatTemplate::Gemma => &["<start_of_turn>", "<end_of_turn>"],
            ChatTemplate::Llama3 => &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        };
        let mut markers = Vec::new();
        for n in names {
            markers.push(tok.token_id(n).ok_or_else(|| {
                Error::Unavailable(format!(
                    "the model's tokenizer lacks the chat token {n}: use the model's own tokenizer"
                ))
            })?);
        }
        let end_of_turn = *markers.last().unwrap_or(&0);
        let mut stop_tokens = vec![end_of_turn];
        for t in [eos, tok.token_id("<|endoftext|>"), tok.token_id("<eos>")]
            .into_iter()
            .flatten()
        {
            if !stop_tokens.contains(&t) {
                stop_tokens.push(t);
            }
        }
        let bos = if add_bos || kind == ChatTemplate::Gemma || kind == ChatTemplate::Llama3 {
            bos.or_else(|| tok.token_id("<bos>"))
                .or_else(|| tok.token_id("<|begin_of_text|>"))
        } else {
            None
        };
        Ok(Self {
            kind,
            stop_tokens,
            bos,
            markers,
        })
    }

    /// Renders a conversation as prompt tokens ending where the assistant's reply begins.
    pub(crate) fn render(&self, tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        if messages.is_empty() {
            return Err(Error::InvalidInput(
                "a chat needs at least one message".into(),
            ));
        }
        let mut out: Vec<u32> = self.bos.into_iter().collect();
        let role_name = |r: Role| match r {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match self.kind {
            ChatTemplate::ChatMl { no_think } => {
                let (start, end) = (self.markers[0], self.markers[1]);
                if messages[0].role != Role::System {
                    out.push(start);
                    out.extend(tok.encode(&format!("system\n{DEFAULT_SYSTEM}"))?);
                    out.push(end);
                    out.extend(tok.encode("\n")?);
                }
                for m in messages {
                    out.push(start);
                    out.extend(tok.encode(&format!("{}\n{}", role_name(m.role), m.content))?);
                    out.push(end);
                    out.extend(tok.encode("\n")?);
                }
                out.push(start);
                out.extend(tok.encode("assistant\n")?);
                if no_think {
                    out.extend(tok.encode("<think>\n\n</think>\n\n")?);
                }
            }
            ChatTemplate::Gemma => {
                let (start, end) = (self.markers[0], self.markers[1]);
                let mut pending_system = String::new();
                for m in messages {
                    if m.role == Role::System {
                        pending_system.push_str(&m.content);
                        pending_system.push_str("\n\n");
                        continue;
                    }
                    let role = if m.role == Role::Assistant {
                        "model"
                    } else {
                        "user"
                    };
                    out.push(start);
                    let text = format!(
                        "{role}\n{}{}",
                        std::mem::take(&mut pending_system),
                        m.content
                    );
                    out.extend(tok.encode(&text)?);
                    out.push(end);
                    out.extend(tok.encode("\n")?);
                }
                if !pending_system.is_empty() {
                    out.push(start);
                    out.extend(tok.encode(&format!("user\n{pending_system}"))?);
                    out.push(end);
                    out.extend(tok.encode("\n")?);
                }
                out.push(start);
                out.extend(tok.encode("model\n")?);
            }
            ChatTemplate::Llama3 => {
                let (sh, eh, eot) = (self.markers[0], self.markers[1], self.markers[2]);
                for m in messages {
                    out.push(sh);
                    out.extend(tok.encode(role_name(m.role))?);
                    out.push(eh);
                    out.extend(tok.encode(&format!("\n\n{}", m.content))?);
                    out.push(eot);
                }
                out.push(sh);
                out.extend(tok.encode("assistant")?);
                out.push(eh);
                out.extend(tok.encode("\n\n")?);
            }
        }
        Ok(out)
    }
}
