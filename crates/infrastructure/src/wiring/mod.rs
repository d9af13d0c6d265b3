//! Builds the use cases from the adapters the configuration chooses.

use std::sync::Arc;

use ragback_application::memory::MemoryExtractor;
use ragback_application::ports::{
    ChatModel, Embedder, FactStore, JobStore, PromptRenderer, SummaryStore,
};
use ragback_application::retrieval::RetrievalOverrides;
use ragback_application::summary::Summarizer;
use ragback_application::variants::{DEFAULT_VARIANT, Split, Variant, VariantSet, Variants};
use ragback_application::{ChatService, FactLibrary, FactRetriever};
use ragback_integrations::cohere::CohereEmbedder;
use ragback_integrations::llm::unsupported_outside_openrouter;
use ragback_integrations::llm::{LlmProvider, OpenAiChatModel};
use ragback_integrations::memory_prompts::TeraMemoryPrompts;
use ragback_integrations::prompt::TeraPromptRenderer;
use ragback_integrations::summary_prompt::TeraSummaryPrompt;

use crate::{EmbedderProvider, Settings, StoreKind};

mod guard;
mod stores;

pub use guard::{build_guard, build_moderation, build_static_embedder, is_static};
pub use stores::{Stores, open_store, open_stores};

/// Why the services could not be built; the message names the setting involved.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// Another process (usually `ragback serve`) holds the embedded store.
    #[error("{0}")]
    StoreLocked(String),
    /// A part cannot be built from its settings: the setting, and why.
    #[error("{setting}: {source}")]
    Setting {
        /// The setting (an environment variable, or its family: `RAGBACK_LLM__*`).
        setting: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The configuration asks for what this build, or the rest of the settings, cannot give.
    #[error("{0}")]
    Unavailable(String),
}

/// An adapter's error, whatever its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Maps an adapter's error to [`WiringError::Setting`] naming `setting`.
fn setting<E: Into<BoxError>>(setting: impl Into<String>) -> impl FnOnce(E) -> WiringError {
    let setting = setting.into();
    move |source| WiringError::Setting {
        setting,
        source: source.into(),
    }
}

/// The fact use cases, wired.
#[derive(Clone)]
pub struct FactServices {
    /// Adds, lists and deletes facts.
    pub facts: FactLibrary,
    /// Finds the facts relevant to a text.
    pub retriever: FactRetriever,
    /// The embedder's model id, when one is configured.
    pub embedder: Option<String>,
    /// The store itself.
    pub store: Arc<dyn FactStore>,
    /// The same store, holding conversation summaries.
    pub summaries: Arc<dyn SummaryStore>,
    /// The same store, holding queued background jobs.
    pub jobs: Arc<dyn JobStore>,
    /// The embedder itself.
    pub embedder_port: Option<Arc<dyn Embedder>>,
}

/// The use cases, wired.
#[derive(Clone)]
pub struct Services {
    /// Writes replies.
    pub chat: ChatService,
    /// Extracts facts from dialogues.
    pub memory: MemoryExtractor,
    /// Adds, lists and deletes facts; says how the store is.
    pub facts: FactLibrary,
    /// The embedder's model id, when one is configured.
    pub embedder: Option<String>,
    /// Writes conversation summaries (`None`: `RAGBACK_SUMMARY__ENABLED=false`).
    pub summarizer: Option<Summarizer>,
    /// Where summaries are, for reading and deleting them.
    pub summaries: Arc<dyn SummaryStore>,
    /// Where queued background jobs are kept until done.
    pub jobs: Arc<dyn JobStore>,
}

/// The chat model the configuration chooses: the OpenAI-compatible API, or the local model.
fn chat_model(settings: &Settings) -> Result<Arc<dyn ChatModel>, WiringError> {
    match settings.llm.resolved_provider() {
        LlmProvider::Auto | LlmProvider::Openai => Ok(Arc::new(
            OpenAiChatModel::new(&settings.llm).map_err(setting("RAGBACK_LLM__*"))?,
        )),
        #[cfg(feature = "local-llm")]
        LlmProvider::Local => {
            use ragback_integrations::local_llm::LocalChatModel;
            Ok(Arc::new(
                LocalChatModel::load(&settings.llm.local)
                    .map_err(setting("RAGBACK_LLM__LOCAL__MODEL_PATH"))?,
            ))
        }
        #[cfg(not(feature = "local-llm"))]
        LlmProvider::Local => Err(WiringError::Unavailable(
            "RAGBACK_LLM__PROVIDER=local: this ragback was built without the `local-llm` feature"
                .into(),
        )),
    }
}

/// The embedder the configuration chooses, if any.
pub fn build_embedder(settings: &Settings) -> Result<Option<Arc<dyn Embedder>>, WiringError> {
    Ok(match settings.embedder.resolved_provider() {
        EmbedderProvider::Cohere => Some(Arc::new(
            CohereEmbedder::new(&settings.embedder.cohere)
                .map_err(setting("RAGBACK_EMBEDDER__COHERE__*"))?,
        )),
        #[cfg(feature = "local-embedder")]
        EmbedderProvider::Local => {
            use ragback_integrations::local::LocalEmbedder;
            Some(Arc::new(
                LocalEmbedder::load(&settings.embedder.local)
                    .map_err(setting("RAGBACK_EMBEDDER__LOCAL__MODEL_DIR"))?,
            ))
        }
        #[cfg(not(feature = "local-embedder"))]
        EmbedderProvider::Local => {
            return Err(WiringError::Unavailable(
                "RAGBACK_EMBEDDER__PROVIDER=local: built without the `local-embedder` feature"
                    .into(),
            ));
        }
        EmbedderProvider::None => None,
    })
}

/// The fact use cases without the chat model, for commands that only add, list and search facts
/// (`ragback facts`, `ragback eval retrieval`): nothing loads a language model.
pub fn build_fact_services(settings: &Settings) -> Result<FactServices, WiringError> {
    let Stores {
        facts: store,
        summaries,
        jobs,
    } = open_stores(settings)?;
    let embedder = build_embedder(settings)?;
    let mut retriever = FactRetriever::new(
        embedder.clone(),
        Arc::clone(&store),
        settings.retrieval_settings(),
    );
    if settings.retrieval.rerank == crate::settings::Rerank::Cohere {
        let reranker = ragback_integrations::cohere::CohereReranker::new(
            &settings.embedder.cohere,
            &settings.retrieval.rerank_model,
        )
        .map_err(setting(
            "RAGBACK_RETRIEVAL__RERANK=cohere needs Cohere (RAGBACK_EMBEDDER__COHERE__*)",
        ))?;
        retriever = retriever.with_reranker(Arc::new(reranker));
    }
    let facts = FactLibrary::new(
        embedder.clone(),
        Arc::clone(&store),
        settings.embedder.retry(),
        settings.embedder.batch_timeout,
    )
    .with_owner_cap(settings.store.max_facts_per_owner);
    Ok(FactServices {
        facts,
        retriever,
        embedder: embedder.as_ref().map(|e| e.model_id().to_owned()),
        store,
        summaries,
        jobs,
        embedder_port: embedder,
    })
}

/// Builds every service from `settings`: opens the store, loads the template and the local
/// models, creates the clients. Calls no remote service.
pub fn build_services(settings: &Settings) -> Result<Services, WiringError> {
    let FactServices {
        facts,
        retriever,
        embedder,
        store,
        summaries,
        jobs,
        embedder_port,
    } = build_fact_services(settings)?;
    let model = chat_model(settings)?;
    let prompts = TeraMemoryPrompts::load(&settings.memory.prompts)
        .map_err(setting("RAGBACK_MEMORY__PROMPTS"))?;
    let memory = MemoryExtractor::new(
        Arc::clone(&model),
        Arc::new(prompts),
        embedder_port.clone(),
        store,
        facts.clone(),
        settings.memory_settings(),
    );
    let summarizer = if settings.summary.enabled {
        let prompt = TeraSummaryPrompt::load(&settings.summary.prompts)
            .map_err(setting("RAGBACK_SUMMARY__PROMPTS"))?;
        Some(Summarizer::new(
            Arc::clone(&summaries),
            Arc::clone(&model),
            Arc::new(prompt),
            settings.summary_settings(),
        ))
    } else {
        None
    };
    let variants = build_variants(settings)?;
    let renderer = Arc::clone(&variants.default_variant().renderer);
    tracing::info!(
        llm = %model.describe(),
        llm_key_set = settings.llm.api_key().is_some(),
        embedder = embedder.as_deref().unwrap_or("none"),
        store = %match settings.store.kind {
            StoreKind::Edge => format!("qdrant-edge at {}", settings.store.path.display()),
            StoreKind::Qdrant => format!("qdrant at {} ({})", settings.store.url, settings.store.collection),
        },
        "services configured"
    );
    if !model.is_configured() {
        tracing::warn!(
            "no LLM API key: /generate will answer 503 until RAGBACK_LLM__API_KEY (or \
             OPENROUTER_API_KEY) is set, or RAGBACK_LLM__PROVIDER=local"
        );
    }
    let mut chat = ChatService::new(retriever, renderer, model, settings.chat_settings())
        .with_variants(Variants::new(variants));
    if settings.guard.enabled {
        let guard = build_guard(settings, embedder_port.clone())?;
        tracing::info!(guards = ?guard.names(), "every reply is checked before it is returned");
        chat = chat.with_guard(guard);
    } else {
        tracing::warn!(
            "the reply guard is off (RAGBACK_GUARD__ENABLED=false): replies are not checked"
        );
    }
    Ok(Services {
        chat,
        memory,
        facts,
        embedder,
        summarizer,
        summaries,
        jobs,
    })
}

/// Loads and checks a prompt template; the error names `variable`.
fn template(
    path: &std::path::Path,
    variable: &str,
) -> Result<Arc<dyn PromptRenderer>, WiringError> {
    TeraPromptRenderer::from_file(path)
        .map(|renderer| Arc::new(renderer) as Arc<dyn PromptRenderer>)
        .map_err(setting(variable))
}

/// The variants of `settings` with their templates loaded and checked, and the split: what
/// `ragback serve` starts with and what SIGHUP reloads. Logs, once per variant, the routing its
/// provider will not be sent.
pub fn build_variants(settings: &Settings) -> Result<VariantSet, WiringError> {
    let defaults = settings.chat_settings().defaults;
    let mut variants = vec![Variant {
        name: DEFAULT_VARIANT.to_owned(),
        params: defaults.clone(),
        renderer: template(&settings.prompt.template, "RAGBACK_PROMPT__TEMPLATE")?,
        retrieval: RetrievalOverrides::default(),
        guard: None,
    }];
    for (name, config) in &settings.variants {
        let renderer = match &config.template {
            Some(path) => template(
                path,
                &format!("RAGBACK_VARIANTS__{}__TEMPLATE", name.to_ascii_uppercase()),
            )?,
            None => Arc::clone(&variants[0].renderer),
        };
        let r = &config.retrieval;
        variants.push(Variant {
            name: name.clone(),
            params: ragback_application::ports::GenerationParams {
                model: config
                    .model
                    .clone()
                    .unwrap_or_else(|| defaults.model.clone()),
                temperature: config.temperature.or(defaults.temperature),
                top_p: config.top_p.or(defaults.top_p),
                max_tokens: config.max_tokens.or(defaults.max_tokens),
                seed: None,
                routing: config
                    .routing
                    .as_ref()
                    .map_or_else(|| defaults.routing.clone(), |r| r.routing()),
                cache_control: config.cache_control.unwrap_or(defaults.cache_control),
            },
            renderer,
            retrieval: RetrievalOverrides {
                enabled: r.enabled,
                top_k: r.top_k,
                threshold: r.threshold,
                margin: r.margin,
            },
            guard: guard::variant_guard(settings, name, &config.guard)?,
        });
    }
    let experiment = &settings.experiment;
    let split = (!experiment.variants.is_empty())
        .then(|| Split::new(experiment.salt.clone(), experiment.shares()))
        .transpose()
        .map_err(setting("RAGBACK_EXPERIMENT__VARIANTS"))?;
    let set = VariantSet::new(variants, split)
        .map_err(setting("RAGBACK_EXPERIMENT__VARIANTS"))?
        .with_allowed_models(settings.llm.allowed_models.0.clone());
    warn_of_ignored_routing(settings, &set);
    Ok(set)
}

/// Warns of OpenRouter's settings that the configured provider will not be sent.
fn warn_of_ignored_routing(settings: &Settings, set: &VariantSet) {
    for warning in ignored_routing(settings, set) {
        tracing::warn!("{warning}");
    }
}

/// What of OpenRouter's settings the configured provider will not be sent, one sentence per
/// variant (and one for the attribution headers).
fn ignored_routing(settings: &Settings, set: &VariantSet) -> Vec<String> {
    let llm = &settings.llm;
    let local = llm.resolved_provider() == LlmProvider::Local;
    if llm.speaks_openrouter() && !local {
        return Vec::new();
    }
    let provider = if local {
        "the in-process model".to_owned()
    } else {
        format!("{} (not OpenRouter)", llm.base_url)
    };
    let mut warnings = Vec::new();
    for variant in set.variants() {
        let routing = &variant.params.routing;
        let mut ignored = unsupported_outside_openrouter(routing);
        if local
            && matches!(
                routing.reasoning,
                Some(ragback_application::ports::ReasoningBudget::Effort(_))
            )
        {
            ignored.push("reasoning_effort");
        }
        if !ignored.is_empty() {
            warnings.push(format!(
                "variant `{}`: {provider} is not sent {} (OpenRouter's routing; \
                 RAGBACK_LLM__DIALECT=openrouter sends them anyway)",
                variant.name,
                ignored.join(", ")
            ));
        }
    }
    let headers = llm.ignored_attribution();
    if !headers.is_empty() {
        warnings.push(format!(
            "{provider} is not sent the attribution headers ({}: OpenRouter's)",
            headers.join(", ")
        ));
    }
    warnings
}

/// The LLM judge of `ragback eval`.
#[derive(Clone)]
pub struct Judge {
    /// The model behind it.
    pub model: Arc<dyn ChatModel>,
    /// The model name sent with each call, and recorded in every judgment.
    pub model_name: String,
    /// The local chat model stands in (no `RAGBACK_EVAL__JUDGE__BASE_URL`): a smoke test of the
    /// pipeline, not a judge whose verdicts mean anything.
    pub smoke_test: bool,
}

/// The judge the configuration names: `RAGBACK_EVAL__JUDGE__*`, else the local chat model as a
/// smoke-test judge (when built in and its file is present).
pub fn build_judge(settings: &Settings) -> Result<Judge, WiringError> {
    let judge = &settings.eval.judge;
    eval_model(
        settings,
        judge.base_url.as_deref(),
        judge.api_key.as_ref(),
        &judge.model,
        judge.timeout,
        "RAGBACK_EVAL__JUDGE",
        "judge",
    )
}

/// The user simulator of `ragback eval simulate`: `RAGBACK_EVAL__SIMULATOR__*`, else the local
/// chat model as a smoke-test simulator.
pub fn build_simulator(settings: &Settings) -> Result<Judge, WiringError> {
    let simulator = &settings.eval.simulator;
    eval_model(
        settings,
        simulator.base_url.as_deref(),
        simulator.api_key.as_ref(),
        &simulator.model,
        simulator.timeout,
        "RAGBACK_EVAL__SIMULATOR",
        "simulator",
    )
}

/// An evaluation model: an OpenAI-compatible endpoint when `base_url` is set, else the local chat
/// model as a labelled smoke test.
fn eval_model(
    settings: &Settings,
    base_url: Option<&str>,
    api_key: Option<&secrecy::SecretString>,
    model: &str,
    timeout: std::time::Duration,
    variables: &'static str,
    role: &str,
) -> Result<Judge, WiringError> {
    if let Some(base_url) = base_url {
        let llm = ragback_integrations::llm::LlmSettings {
            provider: LlmProvider::Openai,
            base_url: base_url.to_owned(),
            api_key: api_key.cloned(),
            model: model.to_owned(),
            timeout,
            ..Default::default()
        };
        let chat = OpenAiChatModel::new(&llm).map_err(setting(variables))?;
        return Ok(Judge {
            model: Arc::new(chat),
            model_name: model.to_owned(),
            smoke_test: false,
        });
    }
    #[cfg(feature = "local-llm")]
    if settings.llm.local.model_path.is_file() {
        use ragback_integrations::local_llm::LocalChatModel;
        let model = LocalChatModel::load(&settings.llm.local)
            .map_err(setting("RAGBACK_LLM__LOCAL__MODEL_PATH"))?;
        let model_name = model.describe();
        return Ok(Judge {
            model: Arc::new(model),
            model_name,
            smoke_test: true,
        });
    }
    #[cfg(not(feature = "local-llm"))]
    let _ = settings;
    Err(WiringError::Unavailable(format!(
        "no {role}: set {variables}__BASE_URL (and __API_KEY, __MODEL) to an OpenAI-compatible \
         endpoint, or fetch the local chat model (`ragback model fetch`) for a smoke-test {role}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigSources;

    fn warnings(vars: &[(&str, &str)]) -> Vec<String> {
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../../prompts/chat.tera");
        vars.push(("RAGBACK_PROMPT__TEMPLATE".into(), template.into()));
        vars.push((
            "RAGBACK_VARIANTS__B__ROUTING__FALLBACK_MODELS".into(),
            "x/y".into(),
        ));
        vars.push((
            "RAGBACK_VARIANTS__C__ROUTING__REASONING_EFFORT".into(),
            "low".into(),
        ));
        let settings = Settings::load(&ConfigSources::none(), &vars).unwrap();
        ignored_routing(&settings, &build_variants(&settings).unwrap())
    }

    #[test]
    fn routing_a_provider_cannot_take_is_named_at_start_up() {
        let openrouter = warnings(&[("RAGBACK_LLM__API_KEY", "sk-or-1")]);
        assert!(openrouter.is_empty(), "{openrouter:?}");

        let ollama = warnings(&[
            ("RAGBACK_LLM__BASE_URL", "http://localhost:11434/v1"),
            ("RAGBACK_LLM__APP_TITLE", "my-app"),
        ]);
        assert_eq!(ollama.len(), 2, "{ollama:?}");
        assert!(ollama[0].starts_with("variant `b`: http://localhost:11434/v1 (not OpenRouter)"));
        assert!(ollama[0].contains("fallback_models"), "{ollama:?}");
        assert!(ollama[1].contains("app_title"), "{ollama:?}");

        let local = warnings(&[("RAGBACK_LLM__PROVIDER", "local")]);
        assert!(
            local
                .iter()
                .any(|w| w.starts_with("variant `c`: the in-process model")
                    && w.contains("reasoning_effort")),
            "{local:?}"
        );
    }
}
