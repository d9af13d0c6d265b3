//! The state every handler reads.

use std::sync::Arc;
use std::time::Duration;

use ragback_application::jobs::JobJournal;
use ragback_application::memory::{MemoryExtractor, MemoryQueue};
use ragback_application::ports::SummaryStore;
use ragback_application::summary::SummaryQueue;
use ragback_application::{ChatService, FactLibrary};
use ragback_infrastructure::telemetry::{self, Metrics};
use ragback_infrastructure::{Services, Settings};

use super::admission::{Admission, Pool};
use super::auth::{Auth, KeyLists};

/// The state as handlers receive it: one clone per request, so a reference count.
pub(crate) type SharedState = Arc<AppState>;

/// Request limits enforced before any upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body, in bytes.
    pub body_bytes: usize,
    /// Most messages per request.
    pub messages: usize,
    /// Longest message, in characters.
    pub message_chars: usize,
    /// Most facts per `POST …/facts`.
    pub facts_per_call: usize,
    /// Generations at once.
    pub concurrency: usize,
    /// Other calls that reach an upstream (adding and searching facts, memory extraction) at once.
    pub upstream_concurrency: usize,
    /// How long a call waits for a slot before 503.
    pub queue_timeout: Duration,
    /// Deadline of a call that is not a generation (adding and searching facts, extraction).
    pub request_timeout: Duration,
    /// Time allowed to receive a request's whole body.
    pub body_timeout: Duration,
}

/// The slots of the two pools (see [`admission`](super::admission)).
#[derive(Debug, Clone)]
pub struct Admissions {
    /// `/generate`, `/api/v1/chat`.
    pub generation: Admission,
    /// Adding and searching facts, memory extraction.
    pub upstream: Admission,
}

impl Admissions {
    /// Pools sized by `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            generation: Admission::new(Pool::Generation, limits.concurrency, limits.queue_timeout),
            upstream: Admission::new(
                Pool::Upstream,
                limits.upstream_concurrency,
                limits.queue_timeout,
            ),
        }
    }
}

/// What the handlers share. Built once; the router hands each request an [`Arc`] of it.
pub struct AppState {
    /// Writes replies.
    pub chat: ChatService,
    /// Adds, lists and deletes facts; says how the store is.
    pub facts: FactLibrary,
    /// Extracts facts from dialogues (`None`: not offered, 503).
    pub memory: Option<MemoryExtractor>,
    /// Extractions after `/generate` replies (`None`: not offered).
    pub memory_queue: Option<MemoryQueue>,
    /// Whether `/generate` extracts when the request does not say.
    pub memory_auto: bool,
    /// Conversation summaries, to read and delete (`None`: not offered, 503).
    pub summaries: Option<Arc<dyn SummaryStore>>,
    /// Request limits.
    pub limits: Limits,
    /// The slots calls take before reaching an upstream.
    pub admission: Admissions,
    /// Who may call which route.
    pub auth: Auth,
    /// Browser origins allowed (`*` for any); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Rendered by `/metrics`.
    pub metrics: Metrics,
}

impl AppState {
    /// The state for `services` under `settings`; starts the background work on the current
    /// runtime: the store's preparation, the memory and summary workers.
    pub fn from_settings(services: Services, settings: &Settings) -> Self {
        let server = &settings.server;
        let limits = Limits {
            body_bytes: server.body_limit_bytes,
            messages: server.max_messages,
            message_chars: server.max_message_chars,
            facts_per_call: server.max_facts_per_call,
            concurrency: server.max_concurrency,
            upstream_concurrency: server.max_upstream_concurrency,
            queue_timeout: server.queue_timeout,
            request_timeout: server.request_timeout,
            body_timeout: server.body_timeout,
        };
        // The store is prepared (checked, migrated) at start-up, off every request; /ready says
        // no until it is done.
        let facts = services.facts.clone();
        tokio::spawn(async move { facts.prepare().await });
        // Background jobs are kept in the store until done, and the jobs another process left
        // are taken over.
        let journal = settings.jobs.durable.then(|| {
            JobJournal::new(
                services.jobs.clone(),
                process_name(),
                settings.jobs.lease,
                settings.jobs.sweep,
            )
        });
        // Turns with a conversation id read summaries and queue their extension.
        let chat = match services.summarizer {
            Some(summarizer) => {
                let capacity = settings.summary.queue_capacity;
                services.chat.with_summaries(match &journal {
                    Some(journal) => {
                        SummaryQueue::start_durable(summarizer, capacity, journal.clone())
                    }
                    None => SummaryQueue::start(summarizer, capacity),
                })
            }
            None => services.chat,
        };
        let capacity = settings.memory.queue_capacity;
        let memory_queue = match journal {
            Some(journal) => MemoryQueue::start_durable(services.memory.clone(), capacity, journal),
            None => MemoryQueue::start(services.memory.clone(), capacity),
        };
        Self {
            chat,
            summaries: settings.summary.enabled.then_some(services.summaries),
            facts: services.facts,
            memory_queue: Some(memory_queue),
            memory: Some(services.memory),
            memory_auto: settings.memory.auto,
            admission: Admissions::new(&limits),
            limits,
            auth: Auth::new(KeyLists {
                read: &server.api_keys.0,
                memory: &server.memory_api_keys.0,
                admin: &server.admin_api_keys.0,
            }),
            cors_origins: server.cors_origins.0.clone(),
            metrics: telemetry::metrics(),
        }
    }
}

/// This process among the replicas: its host, its process id and when it started, so that a
/// restarted process is another owner (it may take over its predecessor's jobs).
fn process_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "ragback".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        ragback_application::jobs::now_ms()
    )
}
