//! The in-process chat model: a quantised GGUF instruct model (SmolLM2-135M-Instruct by
//! default) run on the CPU by llama.cpp, through the `llama-cpp-2` bindings. The tokenizer and the
//! chat template come from the GGUF itself.
//!
//! Generations run on worker threads of their own (`RAGBACK_LLM__LOCAL__MAX_CONCURRENCY`, one by
//! default), never on the async runtime; requests beyond that wait for a worker, under their
//! deadline. Streamed pieces leave as they are decoded; a receiver that goes away — the client
//! left, the deadline passed — stops the decoding within one token.

mod gguf;
pub mod grammar;
mod prompt;
mod worker;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use ragback_application::ports::{
    ChatChunk, ChatModel, ChatModelError, ChatRequest, ChatStream, Completion, PromptMessage,
};
use tokio::sync::mpsc;

pub use crate::local_llm_settings::LocalLlmSettings;
use prompt::Template;
use worker::{Event, Job, Sampling, Shared};

/// Why the local model cannot be loaded. The message names the file and how to get the default.
#[derive(Debug, thiserror::Error)]
#[error(
    "the local chat model {path} {problem}; get the default model with `make model` (or `ragback \
     model fetch`), point RAGBACK_LLM__LOCAL__MODEL_PATH at a GGUF chat model, or use an API \
     (RAGBACK_LLM__API_KEY, RAGBACK_LLM__BASE_URL)"
)]
pub struct LocalLlmError {
    path: String,
    problem: String,
}

/// The llama.cpp backend: initialised once per process, its logs sent to `tracing`.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| format!("llama.cpp cannot start: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A GGUF chat model run in-process.
pub struct LocalChatModel {
    shared: Arc<Shared>,
    template: Arc<Template>,
    jobs: Mutex<std::sync::mpsc::SyncSender<Job>>,
    name: String,
    settings: LocalLlmSettings,
    decoded: Arc<AtomicU64>,
}

impl std::fmt::Debug for LocalChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChatModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `local/` and the file's name with its dots as dashes: `local/SmolLM2-135M-Instruct-Q4_1`.
fn model_name(path: &Path) -> String {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .map_or("model", |n| n.strip_suffix(".gguf").unwrap_or(n));
    format!("local/{}", stem.replace('.', "-"))
}

/// Generations that may wait per worker; more are refused (the caller retries, within its
/// deadline), so a flood cannot queue without bound.
const QUEUED_PER_WORKER: usize = 8;

impl LocalChatModel {
    /// Checks the file, loads the model and starts the workers, each with its own context.
    pub fn load(settings: &LocalLlmSettings) -> Result<Self, LocalLlmError> {
        let path = &settings.model_path;
        let fail = |problem: String| LocalLlmError {
            path: path.display().to_string(),
            problem,
        };
        if !path.is_file() {
            return Err(fail("is missing".into()));
        }
        let info = gguf::read_info(path).map_err(|e| fail(e.to_string()))?;
        let Some(chat_template) = info.chat_template.clone() else {
            return Err(fail(format!(
                "is not a chat model: its GGUF ({} architecture) has no chat template \
                 (tokenizer.chat_template)",
                info.architecture
            )));
        };
        let backend = backend().map_err(&fail)?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| {
                fail(format!(
                    "cannot be loaded by llama.cpp ({} architecture): {e}; the log says why",
                    info.architecture
                ))
            })?;
        let template = Template::of(&model, &chat_template).map_err(|e| fail(e.to_string()))?;
        let trained = info
            .context_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        let context_tokens = settings.context_tokens.min(trained);
        // Bounded: a flood of requests waits in the callers (and their deadlines), not here.
        let (sender, receiver) =
            std::sync::mpsc::sync_channel(settings.max_concurrency.max(1) * QUEUED_PER_WORKER);
        let decoded = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            model: Arc::new(model),
            jobs: Mutex::new(receiver),
            context_tokens: u32::try_from(context_tokens).unwrap_or(u32::MAX),
            threads: i32::try_from(settings.resolved_threads()).unwrap_or(1),
            decoded: Arc::clone(&decoded),
            reuse_prefix: settings.reuse_prefix,
        });
        // One context at a time: llama.cpp does not create contexts of one model concurrently.
        for index in 0..settings.max_concurrency {
            let (ready, started) = std::sync::mpsc::channel();
            let worker = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("ragback-llm-{index}"))
                .spawn(move || worker::run(worker, backend, index, ready))
                .map_err(|e| fail(format!("cannot start a worker thread: {e}")))?;
            match started.recv() {
                Ok(Ok(())) => {}
                Ok(Err(problem)) => return Err(fail(problem)),
                Err(_) => return Err(fail("lost a worker thread while it started".into())),
            }
        }
        let name = model_name(path);
        tracing::info!(
            model = %name,
            architecture = %info.architecture,
            context_tokens,
            workers = settings.max_concurrency,
            threads = shared.threads,
            "local chat model loaded"
        );
        Ok(Self {
            shared,
            template: Arc::new(template),
            jobs: Mutex::new(sender),
            name,
            settings: settings.clone(),
            decoded,
        })
    }

    /// The model's name, as replies report it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tokens decoded since the model was loaded (prompts not counted).
    pub fn decoded_tokens(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// The token ids of the prompt of `messages` and how many of them are the control tokens
    /// that frame turns (for checks that message text never becomes one).
    pub fn prompt_tokens(&self, messages: &[PromptMessage]) -> Result<(Vec<i32>, usize), String> {
        let tokens = self
            .template
            .tokens(&self.shared.model, messages)
            .map_err(|e| e.to_string())?;
        let vocab = self.shared.model.vocab();
        let controls = tokens.iter().filter(|t| vocab.is_control(**t)).count();
        Ok((tokens.iter().map(|t| t.0).collect(), controls))
    }

    /// Queues the generation of `request`; its events come through the returned receiver, and
    /// dropping the receiver stops the generation.
    fn start(&self, request: &ChatRequest) -> Result<mpsc::Receiver<Event>, ChatModelError> {
        let prompt = self
            .template
            .tokens(&self.shared.model, &request.messages)
            .map_err(|e| ChatModelError::Rejected {
                status: 400,
                message: e.to_string(),
            })?;
        let params = &request.params;
        let defaults = crate::llm::Sampling::LOCAL;
        let sampling = Sampling {
            temperature: params.temperature.or(defaults.temperature).unwrap_or(0.0),
            top_p: params.top_p.or(defaults.top_p).unwrap_or(1.0),
            seed: params.seed.map_or_else(random_seed, |seed| seed as u32),
            repeat_penalty: self.settings.repeat_penalty,
            repeat_last_n: self.settings.repeat_last_n,
        };
        let grammar = request
            .json_schema
            .as_ref()
            .map(grammar::grammar)
            .transpose()
            .map_err(|e| ChatModelError::Rejected {
                status: 400,
                message: e.to_string(),
            })?;
        let (events, receiver) = mpsc::channel(64);
        let job = Job {
            prompt,
            sampling,
            grammar,
            max_tokens: params.max_tokens.map(|n| n as usize),
            events,
        };
        let sent = self
            .jobs
            .lock()
            .map_err(|_| ChatModelError::unavailable("the local model's queue is poisoned"))?
            .try_send(job);
        match sent {
            Ok(()) => Ok(receiver),
            Err(std::sync::mpsc::TrySendError::Full(_)) => Err(ChatModelError::Unavailable {
                message: format!(
                    "the local model is busy: {} generations are already waiting \
                     (RAGBACK_LLM__LOCAL__MAX_CONCURRENCY workers)",
                    self.settings.max_concurrency.max(1) * QUEUED_PER_WORKER
                ),
                retry_after: Some(std::time::Duration::from_secs(1)),
            }),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(
                ChatModelError::unavailable("the local model's workers have stopped"),
            ),
        }
    }
}

/// A seed for a request that sets none.
fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

#[async_trait]
impl ChatModel for LocalChatModel {
    fn is_configured(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("{} (in-process)", self.name)
    }

    fn slow_hint(&self) -> Option<String> {
        Some(format!(
            "the in-process model wrote it on {} thread(s) and {} generation(s) at once: on a \
             machine busy with other work fewer threads answer sooner \
             (RAGBACK_LLM__LOCAL__THREADS, RAGBACK_LLM__LOCAL__MAX_CONCURRENCY)",
            self.shared.threads, self.settings.max_concurrency
        ))
    }

    fn count_tokens(&self, message: &PromptMessage) -> usize {
        self.template.message_tokens(&self.shared.model, message)
    }

    fn context_tokens(&self) -> Option<usize> {
        // The assistant's opening tokens come on top of the messages.
        let opening = self.template.opening_tokens(&self.shared.model);
        Some((self.shared.context_tokens as usize).saturating_sub(opening))
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, ChatModelError> {
        let mut events = self.start(request)?;
        let limit = request.params.max_tokens;
        let mut text = String::new();
        while let Some(event) = events.recv().await {
            match event {
                Event::Piece(piece) => text.push_str(&piece),
                Event::End(usage) => {
                    let cut = limit.is_some_and(|limit| usage.completion_tokens >= limit);
                    return Ok(Completion {
                        text,
                        model: self.name.clone(),
                        usage: Some(usage),
                        finish_reason: Some(if cut { "length" } else { "stop" }.to_owned()),
                    });
                }
                Event::Failed(error) => return Err(error),
            }
        }
        Err(ChatModelError::unavailable(
            "the local model stopped before the reply was complete",
        ))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatModelError> {
        let events = self.start(request)?;
        let name = self.name.clone();
        let chunks = futures::stream::unfold((events, false), move |(mut events, ended)| {
            let name = name.clone();
            async move {
                if ended {
                    return None;
                }
                let item = match events.recv().await {
                    Some(Event::Piece(text)) => Ok(ChatChunk {
                        text,
                        model: None,
                        usage: None,
                    }),
                    Some(Event::End(usage)) => {
                        return Some((
                            Ok(ChatChunk {
                                text: String::new(),
                                model: Some(name),
                                usage: Some(usage),
                            }),
                            (events, true),
                        ));
                    }
                    Some(Event::Failed(error)) => {
                        return Some((Err(error), (events, true)));
                    }
                    None => Err(ChatModelError::unavailable(
                        "the local model stopped before the reply was complete",
                    )),
                };
                let ended = item.is_err();
                Some((item, (events, ended)))
            }
        });
        Ok(Box::pin(chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_llm::gguf::write::{Value, gguf};

    fn settings(path: &Path) -> LocalLlmSettings {
        LocalLlmSettings {
            model_path: path.to_path_buf(),
            ..LocalLlmSettings::default()
        }
    }

    fn load_error(path: &Path) -> String {
        LocalChatModel::load(&settings(path))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn model_names_come_from_the_file_name() {
        assert_eq!(
            model_name(Path::new("models/x/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "local/SmolLM2-135M-Instruct-Q4_1"
        );
        assert_eq!(model_name(Path::new("qwen2.5-0.5b")), "local/qwen2-5-0-5b");
    }

    #[test]
    fn a_missing_or_wrong_file_is_refused_naming_the_path_and_make_model() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing.gguf");
        let error = load_error(&missing);
        assert!(error.contains("nothing.gguf is missing"), "{error}");
        assert!(error.contains("make model"), "{error}");

        let text = dir.path().join("notes.gguf");
        std::fs::write(&text, "not a model").unwrap();
        let error = load_error(&text);
        assert!(error.contains("notes.gguf is not a GGUF file"), "{error}");

        let embedder = dir.path().join("bert.gguf");
        std::fs::write(
            &embedder,
            gguf(&[
                ("general.architecture", Value::Text("bert")),
                ("bert.context_length", Value::U32(512)),
            ]),
        )
        .unwrap();
        let error = load_error(&embedder);
        assert!(
            error.contains("is not a chat model") && error.contains("bert architecture"),
            "{error}"
        );

        let hollow = dir.path().join("hollow.gguf");
        std::fs::write(
            &hollow,
            gguf(&[
                ("general.architecture", Value::Text("llama")),
                (
                    "tokenizer.chat_template",
                    Value::Text("{{ '<|im_start|>' }}"),
                ),
            ]),
        )
        .unwrap();
        let error = load_error(&hollow);
        assert!(error.contains("cannot be loaded by llama.cpp"), "{error}");
    }
}
