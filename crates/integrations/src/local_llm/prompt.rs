//! From a chat request to the tokens of the model's prompt, with the model's own chat template.
//!
//! ChatML models (SmolLM2, Qwen, …) get the template built token by token: the control tokens
//! `<|im_start|>`/`<|im_end|>` are inserted as ids, and every text — role names, messages — is
//! tokenized with special tokens *not* recognised, so a message that types `<|im_end|>` stays
//! text and cannot end its turn. Other templates are rendered by llama.cpp from the GGUF's
//! `tokenizer.chat_template`, with the model's control-token strings removed from the texts
//! first.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use ragback_application::ports::{PromptMessage, PromptRole};

/// How prompts are laid out for one model.
pub(crate) enum Template {
    /// `<|im_start|>role\ntext<|im_end|>\n` per message, then `<|im_start|>assistant\n`.
    ChatMl {
        /// `<|im_start|>`.
        start: LlamaToken,
        /// `<|im_end|>`.
        end: LlamaToken,
    },
    /// The GGUF's template, rendered by llama.cpp.
    Gguf {
        /// The template.
        template: LlamaChatTemplate,
        /// The text of every control token, removed from messages before rendering.
        controls: Vec<String>,
    },
}

/// Why a prompt could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PromptProblem(pub(crate) String);

fn role(role: PromptRole) -> &'static str {
    match role {
        PromptRole::System => "system",
        PromptRole::User => "user",
        PromptRole::Assistant => "assistant",
    }
}

/// The single control token `text` encodes to, when it does.
fn control_token(model: &LlamaModel, text: &str) -> Option<LlamaToken> {
    let vocab = model.vocab();
    match vocab.tokenize(text.as_bytes(), false, true).as_slice() {
        [token] if vocab.is_control(*token) => Some(*token),
        _ => None,
    }
}

impl Template {
    /// The template of `model`, from its `tokenizer.chat_template`.
    pub(crate) fn of(model: &LlamaModel, chat_template: &str) -> Result<Self, PromptProblem> {
        if chat_template.contains("<|im_start|>")
            && let (Some(start), Some(end)) = (
                control_token(model, "<|im_start|>"),
                control_token(model, "<|im_end|>"),
            )
        {
            return Ok(Self::ChatMl { start, end });
        }
        let template = model.chat_template(None).map_err(|e| {
            PromptProblem(format!(
                "its chat template cannot be used by llama.cpp: {e}"
            ))
        })?;
        let vocab = model.vocab();
        let controls = (0..vocab.n_tokens())
            .map(LlamaToken::new)
            .filter(|token| vocab.is_control(*token))
            .map(|token| {
                String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned()
            })
            .filter(|text| !text.trim().is_empty())
            .collect();
        Ok(Self::Gguf { template, controls })
    }

    /// The tokens of the prompt of `messages`, ending where the assistant's turn begins.
    pub(crate) fn tokens(
        &self,
        model: &LlamaModel,
        messages: &[PromptMessage],
    ) -> Result<Vec<LlamaToken>, PromptProblem> {
        match self {
            Self::ChatMl { start, end } => {
                let vocab = model.vocab();
                let text = |text: &str| vocab.tokenize(text.as_bytes(), false, false);
                let newline = text("\n");
                let mut tokens = Vec::new();
                for message in messages {
                    tokens.push(*start);
                    tokens.extend(text(&format!("{}\n", role(message.role))));
                    tokens.extend(text(&message.content));
                    tokens.push(*end);
                    tokens.extend(&newline);
                }
                tokens.push(*start);
                tokens.extend(text("assistant\n"));
                Ok(tokens)
            }
            Self::Gguf { template, controls } => {
                let chat = messages
                    .iter()
                    .map(|m| {
                        let content = controls
                            .iter()
                            .fold(m.content.clone(), |text, control| text.replace(control, ""));
                        LlamaChatMessage::new(role(m.role).to_owned(), content)
                            .map_err(|e| PromptProblem(format!("a message cannot be sent: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let rendered = model
                    .apply_chat_template(template, &chat, true)
                    .map_err(|e| PromptProblem(format!("the chat template failed: {e}")))?;
                Ok(model.vocab().tokenize(rendered.as_bytes(), false, true))
            }
        }
    }

    /// The tokens one message takes in a prompt, its framing included (exact for ChatML).
    pub(crate) fn message_tokens(&self, model: &LlamaModel, message: &PromptMessage) -> usize {
        let vocab = model.vocab();
        let text = |text: &str| vocab.tokenize(text.as_bytes(), false, false).len();
        let content = text(&message.content);
        match self {
            // <|im_start|> role\n … <|im_end|> \n
            Self::ChatMl { .. } => {
                2 + text(&format!("{}\n", role(message.role))) + content + text("\n")
            }
            // Templates differ; their framing is rarely above eight tokens.
            Self::Gguf { .. } => content + 8,
        }
    }

    /// The tokens that open the assistant's turn after the messages.
    pub(crate) fn opening_tokens(&self, model: &LlamaModel) -> usize {
        match self {
            Self::ChatMl { .. } => 1 + model.vocab().tokenize(b"assistant\n", false, false).len(),
            Self::Gguf { .. } => 8,
        }
    }
}
