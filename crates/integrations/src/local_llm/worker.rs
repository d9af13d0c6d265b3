//! The generation workers: each a thread of its own with its own llama.cpp context (KV cache),
//! taking jobs from one queue. A job is a prompt's tokens and its sampling; the worker decodes
//! the prompt in batches, then samples token by token, sending each clean UTF-8 piece as it is
//! decoded. It stops at an end-of-generation token, at `max_tokens`, at the end of the context,
//! or as soon as nobody listens (the client left or the deadline passed): the receiver is checked
//! before every batch and every token.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use ragback_application::ports::{ChatModelError, TokenUsage};
use tokio::sync::mpsc;

/// Tokens decoded per batch of the prompt: small enough that a generation nobody waits for any
/// more (a client gone, a deadline passed) frees its worker within a fraction of a second, even
/// on a busy core.
pub(crate) const BATCH: usize = 128;
/// The longest reply when a request sets no `max_tokens`.
const DEFAULT_MAX_TOKENS: usize = 512;

/// How to pick each token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sampling {
    /// 0 picks the likeliest token every time.
    pub(crate) temperature: f32,
    /// Nucleus sampling.
    pub(crate) top_p: f32,
    /// The seed of the random draw.
    pub(crate) seed: u32,
    /// Penalty on recently seen tokens.
    pub(crate) repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub(crate) repeat_last_n: usize,
}

/// One generation to run.
pub(crate) struct Job {
    pub(crate) prompt: Vec<LlamaToken>,
    pub(crate) sampling: Sampling,
    /// A GBNF grammar the reply must follow (its root rule `root`).
    pub(crate) grammar: Option<String>,
    pub(crate) max_tokens: Option<usize>,
    pub(crate) events: mpsc::Sender<Event>,
}

/// What a job reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// The next piece of the reply.
    Piece(String),
    /// The reply is complete.
    End(TokenUsage),
    /// The generation failed; nothing follows.
    Failed(ChatModelError),
}

/// What every worker shares.
pub(crate) struct Shared {
    pub(crate) model: Arc<LlamaModel>,
    pub(crate) jobs: Mutex<std::sync::mpsc::Receiver<Job>>,
    pub(crate) context_tokens: u32,
    pub(crate) threads: i32,
    /// Tokens decoded in all, prompt tokens not counted (for metrics and tests).
    pub(crate) decoded: Arc<AtomicU64>,
    /// Whether a worker keeps the KV cache of the prefix its next prompt shares.
    pub(crate) reuse_prefix: bool,
}

/// Runs worker `index`: creates its context, says it is ready (or why not), then serves jobs until
/// the queue closes.
pub(crate) fn run(
    shared: Arc<Shared>,
    backend: &LlamaBackend,
    index: usize,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(shared.context_tokens))
        .with_n_batch(BATCH as u32)
        .with_n_threads(shared.threads)
        .with_n_threads_batch(shared.threads);
    let mut context = match shared.model.new_context(backend, params) {
        Ok(context) => context,
        Err(error) => {
            let _ = ready.send(Err(format!("cannot create a context: {error}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let mut cached = Cached::default();
    loop {
        let job = match shared.jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            tracing::debug!(worker = index, "the local model is shutting down");
            return;
        };
        if job.events.is_closed() {
            continue;
        }
        let started = Instant::now();
        let outcome = generate(&shared, &mut context, &mut cached, &job);
        let event = match outcome {
            Ok(Some(usage)) => {
                tracing::debug!(
                    worker = index,
                    prompt_tokens = usage.prompt_tokens,
                    completion_tokens = usage.completion_tokens,
                    reused_tokens = usage.cached_tokens,
                    ms = started.elapsed().as_millis() as u64,
                    "local generation done"
                );
                Event::End(usage)
            }
            // Nobody listens any more.
            Ok(None) => {
                tracing::debug!(
                    worker = index,
                    "local generation stopped: the receiver left"
                );
                continue;
            }
            Err(error) => Event::Failed(error),
        };
        let _ = job.events.blocking_send(event);
    }
}

/// What a worker's context holds: the tokens whose keys and values it has, in position order,
/// and how many of the first of them were decoded in whole batches of [`BATCH`] aligned on
/// position 0 — as a fresh decode of the same tokens would batch them.
#[derive(Default)]
struct Cached {
    tokens: Vec<LlamaToken>,
    aligned: usize,
}

/// How many of `prompt`'s first tokens can be kept from `cached`: a whole number of batches
/// that it holds decoded exactly as a fresh decode would (so the reply is the same, bit for bit,
/// as without reuse: llama.cpp's results depend on how tokens are batched), leaving at least the
/// last token to decode, whose logits start the reply.
fn reusable(cached: &Cached, prompt: &[LlamaToken]) -> usize {
    let common = cached
        .tokens
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count();
    let keep = common
        .min(cached.aligned)
        .min(prompt.len().saturating_sub(1));
    keep - keep % BATCH
}

/// Runs one job. `Ok(None)` when the receiver went away before the end. `cached` is what the
/// context holds, before and after.
fn generate(
    shared: &Shared,
    context: &mut LlamaContext<'_>,
    cached: &mut Cached,
    job: &Job,
) -> Result<Option<TokenUsage>, ChatModelError> {
    let model = &shared.model;
    let vocab = model.vocab();
    let room = context.n_ctx() as usize;
    let prompt = &job.prompt;
    if prompt.is_empty() || prompt.len() >= room {
        return Err(ChatModelError::Rejected {
            status: 400,
            message: format!(
                "the prompt takes {} tokens and the local model's context holds {room} \
                 (RAGBACK_LLM__LOCAL__CONTEXT_TOKENS; RAGBACK_PROMPT__MAX_PROMPT_TOKENS trims \
                 the history)",
                prompt.len()
            ),
        });
    }
    let max_tokens = job
        .max_tokens
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .min(room - prompt.len());
    // Keep what the previous generation left of this prompt's prefix; drop the rest.
    let mut reused = if shared.reuse_prefix {
        reusable(cached, prompt)
    } else {
        0
    };
    let kept = reused > 0
        && u32::try_from(reused)
            .ok()
            .and_then(|from| context.clear_kv_cache_seq(Some(0), Some(from), None).ok())
            .unwrap_or(false);
    if !kept {
        context.clear_kv_cache();
        reused = 0;
    }
    cached.tokens.truncate(reused);
    cached.aligned = reused;
    let mut batch = LlamaBatch::new(BATCH, 1);
    for (chunk_index, chunk) in prompt[reused..].chunks(BATCH).enumerate() {
        if job.events.is_closed() {
            return Ok(None);
        }
        batch.clear();
        let offset = reused + chunk_index * BATCH;
        for (i, token) in chunk.iter().enumerate() {
            let position = offset + i;
            batch
                .add(*token, position as i32, &[0], position + 1 == prompt.len())
                .map_err(|e| ChatModelError::unavailable(format!("local model batch: {e}")))?;
        }
        context
            .decode(&mut batch)
            .map_err(|e| ChatModelError::unavailable(format!("local model prompt: {e}")))?;
        metrics::counter!("ragback_local_llm_tokens_total", "kind" => "prompt")
            .increment(chunk.len() as u64);
        cached.tokens.extend_from_slice(chunk);
        if chunk.len() == BATCH {
            cached.aligned += BATCH;
        }
    }
    metrics::counter!("ragback_local_llm_tokens_total", "kind" => "reused")
        .increment(reused as u64);
    let mut sampler = sampler(model, job.sampling, job.grammar.as_deref(), prompt)?;
    let mut pending: Vec<u8> = Vec::new();
    let mut position = prompt.len();
    let mut completion = 0usize;
    while completion < max_tokens {
        if job.events.is_closed() {
            return Ok(None);
        }
        // `sample` accepts the token too (llama.cpp's `llama_sampler_sample`): the grammar
        // and the penalty's history move on once.
        let token = sampler.sample(context, batch.n_tokens() - 1);
        if vocab.is_eog(token) {
            break;
        }
        completion += 1;
        shared.decoded.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("ragback_local_llm_tokens_total", "kind" => "decoded").increment(1);
        pending.extend(vocab.token_to_piece(token, false, None));
        if let Some(piece) = take_utf8(&mut pending)
            && job.events.blocking_send(Event::Piece(piece)).is_err()
        {
            return Ok(None);
        }
        if completion == max_tokens {
            break;
        }
        batch.clear();
        batch
            .add(token, position as i32, &[0], true)
            .map_err(|e| ChatModelError::unavailable(format!("local model batch: {e}")))?;
        position += 1;
        context
            .decode(&mut batch)
            .map_err(|e| ChatModelError::unavailable(format!("local model decoding: {e}")))?;
        cached.tokens.push(token);
    }
    if !pending.is_empty() {
        let rest = String::from_utf8_lossy(&pending).into_owned();
        if job.events.blocking_send(Event::Piece(rest)).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(TokenUsage {
        prompt_tokens: u32::try_from(prompt.len()).unwrap_or(u32::MAX),
        completion_tokens: u32::try_from(completion).unwrap_or(u32::MAX),
        cached_tokens: u32::try_from(reused).unwrap_or(u32::MAX),
    }))
}

/// The sampler chain: the repeat penalty (which has seen the prompt's last tokens, as llama.cpp's
/// own tools do, so a small model does not copy the history's lines), the grammar when there is
/// one (every token it does not allow is ruled out), then greedy (temperature 0) or nucleus
/// sampling at the temperature with the seed.
fn sampler(
    model: &LlamaModel,
    sampling: Sampling,
    grammar: Option<&str>,
    prompt: &[LlamaToken],
) -> Result<LlamaSampler, ChatModelError> {
    let mut penalty = LlamaSampler::penalties(
        model.n_vocab(),
        i32::try_from(sampling.repeat_last_n).unwrap_or(i32::MAX),
        sampling.repeat_penalty,
        0.0,
        0.0,
    );
    let tail = prompt.len().saturating_sub(sampling.repeat_last_n);
    for token in &prompt[tail..] {
        penalty.accept(*token);
    }
    let mut chain = vec![penalty];
    if let Some(grammar) = grammar {
        chain.push(LlamaSampler::grammar(model, grammar, "root").map_err(|e| {
            ChatModelError::Rejected {
                status: 400,
                message: format!("the answer's grammar: {e}"),
            }
        })?);
    }
    if sampling.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.extend([
            LlamaSampler::top_p(sampling.top_p, 1),
            LlamaSampler::temp(sampling.temperature),
            LlamaSampler::dist(sampling.seed),
        ]);
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// The longest complete UTF-8 text at the start of `bytes`, taken out; what may be the start of
/// a character split across tokens stays. Bytes that can never be UTF-8 become U+FFFD.
fn take_utf8(bytes: &mut Vec<u8>) -> Option<String> {
    let valid = match std::str::from_utf8(bytes) {
        Ok(text) => text.len(),
        Err(error) => match error.error_len() {
            // Incomplete at the end: keep it for the next token.
            None => error.valid_up_to(),
            // Invalid in the middle: decode lossily up to the end.
            Some(_) => bytes.len(),
        },
    };
    if valid == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
    bytes.drain(..valid);
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_aligned_batches_of_the_shared_prefix_are_reused_never_the_last_token() {
        let t = |n: usize, last: i32| {
            let mut tokens: Vec<LlamaToken> = (0..n as i32).map(LlamaToken::new).collect();
            tokens.push(LlamaToken::new(last));
            tokens
        };
        let held = |tokens: Vec<LlamaToken>, aligned| Cached { tokens, aligned };
        // 300 shared tokens, of which 256 in whole batches.
        let cached = held(t(300, -1), 256);
        assert_eq!(reusable(&cached, &t(310, -2)), 256);
        assert_eq!(
            reusable(&cached, &t(200, -2)),
            128,
            "a shorter common prefix"
        );
        assert_eq!(
            reusable(&held(t(300, -1), 128), &t(310, -2)),
            128,
            "aligned part only"
        );
        assert_eq!(
            reusable(&held(t(255, -1), 256), &t(255, -1)),
            128,
            "never the last token"
        );
        assert_eq!(reusable(&Cached::default(), &t(300, -2)), 0);
    }

    #[test]
    fn characters_split_across_tokens_wait_for_their_end() {
        let mut bytes = "é".as_bytes()[..1].to_vec();
        assert_eq!(take_utf8(&mut bytes), None);
        bytes.extend(&"é".as_bytes()[1..]);
        bytes.extend(b"a");
        assert_eq!(take_utf8(&mut bytes).as_deref(), Some("éa"));
        assert!(bytes.is_empty());
        let mut emoji = "🙂".as_bytes()[..3].to_vec();
        assert_eq!(take_utf8(&mut emoji), None);
        let mut invalid = vec![b'a', 0xFF, b'b'];
        assert_eq!(take_utf8(&mut invalid).as_deref(), Some("a\u{FFFD}b"));
    }
}
