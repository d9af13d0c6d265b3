//! The reply guard's wiring: the guards `RAGBACK_GUARD__ADAPTERS` names (the rules, the trained
//! classifier, OpenAI's moderation endpoint, a Llama Guard model), the policy, and what a
//! variant changes of them.

use std::sync::Arc;

use ragback_application::guard::{ReplyGuard, VariantGuard};
use ragback_application::ports::{Embedder, Guard, Moderation};
use ragback_integrations::guard::{
    BannedPhrases, ClassifierGuard, LlamaGuard, ModerationGuard, RuleGuard, load_classifier,
};
use ragback_integrations::llm::{LlmProvider, LlmSettings, OpenAiChatModel};
use ragback_integrations::moderation::OpenAiModeration;

use super::{WiringError, setting};
use crate::settings::VariantGuard as VariantGuardConfig;
use crate::{GuardConfig, ModerationSettings, Settings};

/// The reply guard of the configuration (whether or not `RAGBACK_GUARD__ENABLED` puts it in
/// front of replies: `ragback guard check` uses it either way): the guards
/// `RAGBACK_GUARD__ADAPTERS` names, the trained classifier over `embedder` when its file is there
/// and was trained on that embedder's vectors.
pub fn build_guard(
    settings: &Settings,
    embedder: Option<Arc<dyn Embedder>>,
) -> Result<ReplyGuard, WiringError> {
    let config = &settings.guard;
    let mut guards: Vec<Arc<dyn Guard>> = Vec::new();
    if config.uses("rules") {
        let rules = RuleGuard::new(&config.banned.0).map_err(setting("RAGBACK_GUARD__BANNED"))?;
        guards.push(Arc::new(rules));
    } else if !config.banned.0.is_empty() {
        guards.push(banned_phrases(&config.banned.0, "RAGBACK_GUARD__BANNED")?);
    }
    if config.uses("classifier")
        && let Some(classifier) = classifier_guard(settings, embedder)?
    {
        guards.push(Arc::new(classifier));
    }
    if config.uses("openai") {
        let moderation = moderation_client(&config.openai, "RAGBACK_GUARD__OPENAI")?;
        guards.push(Arc::new(ModerationGuard::new(moderation)));
    }
    if config.uses("llm") {
        guards.push(Arc::new(llama_guard(config)?));
    }
    Ok(ReplyGuard::new(guards, policy(config, "RAGBACK_GUARD")?))
}

/// What the variant `name` changes of the guard: its banned phrases, checked beside the
/// service's guards, and the policy with its actions and deflections (`None`: nothing).
pub(super) fn variant_guard(
    settings: &Settings,
    name: &str,
    config: &VariantGuardConfig,
) -> Result<Option<VariantGuard>, WiringError> {
    if config.is_empty() {
        return Ok(None);
    }
    let prefix = format!("RAGBACK_VARIANTS__{}__GUARD", name.to_ascii_uppercase());
    let guards = if config.banned.0.is_empty() {
        Vec::new()
    } else {
        vec![banned_phrases(
            &config.banned.0,
            &format!("{prefix}__BANNED"),
        )?]
    };
    let policy = policy(&settings.guard.for_variant(config), &prefix)?;
    Ok(Some(VariantGuard { guards, policy }))
}

/// A guard of `phrases` alone (the rules' `banned` tag, without the built-in rules).
fn banned_phrases(phrases: &[String], variable: &str) -> Result<Arc<dyn Guard>, WiringError> {
    let guard = BannedPhrases::new(phrases).map_err(setting(variable))?;
    Ok(Arc::new(guard))
}

/// The policy of `config`, its errors named under `prefix`.
fn policy(
    config: &GuardConfig,
    prefix: &str,
) -> Result<ragback_application::guard::GuardPolicy, WiringError> {
    config.policy().map_err(|e| {
        setting(format!(
            "{prefix}__{}",
            e.key.replace('.', "__").to_uppercase()
        ))(e.problem)
    })
}

/// The classifier guard, when `RAGBACK_GUARD__CLASSIFIER` names a file (the default) and the
/// embedder is the one it was trained with; otherwise the other guards check alone, and the log
/// says why. A file that is there but unreadable or of another version is an error.
fn classifier_guard(
    settings: &Settings,
    embedder: Option<Arc<dyn Embedder>>,
) -> Result<Option<ClassifierGuard>, WiringError> {
    let Some(path) = settings.guard.classifier.as_ref() else {
        return Ok(None);
    };
    if !path.is_file() {
        tracing::warn!(
            path = %path.display(),
            "no guard classifier there (RAGBACK_GUARD__CLASSIFIER): the other guards check alone"
        );
        return Ok(None);
    }
    let model = load_classifier(path).map_err(setting("RAGBACK_GUARD__CLASSIFIER"))?;
    let embedder = if is_static(&model.embedder) {
        Some(build_static_embedder(settings)?)
    } else {
        embedder
    };
    let Some(embedder) = embedder else {
        tracing::warn!("no embedder: the guard's classifier is off, the other guards check alone");
        return Ok(None);
    };
    match ClassifierGuard::new(model, embedder) {
        Ok(guard) => Ok(Some(guard)),
        Err(problem) => {
            tracing::warn!(%problem, "the guard's classifier is off, the other guards check alone");
            Ok(None)
        }
    }
}

/// Whether a classifier was trained on the static vectors ([`build_static_embedder`]).
pub fn is_static(embedder_id: &str) -> bool {
    embedder_id.starts_with("static/")
}

/// The local model's word-piece embeddings, averaged: the vectors of the guard's bulk classifier
/// (thousands of texts a second), read from `RAGBACK_EMBEDDER__LOCAL__MODEL_DIR`.
pub fn build_static_embedder(settings: &Settings) -> Result<Arc<dyn Embedder>, WiringError> {
    #[cfg(feature = "local-embedder")]
    {
        use ragback_integrations::local::StaticEmbedder;
        let embedder = StaticEmbedder::load(&settings.embedder.local.model_dir)
            .map_err(setting("RAGBACK_EMBEDDER__LOCAL__MODEL_DIR"))?;
        Ok(Arc::new(embedder))
    }
    #[cfg(not(feature = "local-embedder"))]
    {
        let _ = settings;
        Err(WiringError::Unavailable(
            "static vectors need the local model: built without the `local-embedder` feature"
                .into(),
        ))
    }
}

/// The `llm` guard: the model of `RAGBACK_GUARD__LLM__*` behind its OpenAI-compatible endpoint.
fn llama_guard(config: &GuardConfig) -> Result<LlamaGuard, WiringError> {
    let llm = &config.llm;
    let base_url = llm.base_url.clone().ok_or_else(|| {
        WiringError::Unavailable(
            "the `llm` guard needs RAGBACK_GUARD__LLM__BASE_URL (the endpoint serving the guard \
             model)"
                .into(),
        )
    })?;
    let settings = LlmSettings {
        provider: LlmProvider::Openai,
        base_url,
        api_key: llm.api_key.clone(),
        model: llm.model.clone(),
        timeout: llm.timeout,
        ..Default::default()
    };
    let model = OpenAiChatModel::new(&settings).map_err(setting("RAGBACK_GUARD__LLM__*"))?;
    Ok(LlamaGuard::new(Arc::new(model), llm.model.clone()))
}

/// OpenAI's moderation endpoint, for `ragback eval moderate --adapter openai`.
pub fn build_moderation(settings: &Settings) -> Result<Arc<dyn Moderation>, WiringError> {
    moderation_client(&settings.eval.moderation, "RAGBACK_EVAL__MODERATION")
}

/// A client of the moderation endpoint of `m`, whose variables start with `prefix`.
fn moderation_client(
    m: &ModerationSettings,
    prefix: &str,
) -> Result<Arc<dyn Moderation>, WiringError> {
    if m.api_key.is_none() && m.base_url.contains("api.openai.com") {
        return Err(WiringError::Unavailable(format!(
            "OpenAI's moderation endpoint needs {prefix}__API_KEY (or another {prefix}__BASE_URL)"
        )));
    }
    let moderation = OpenAiModeration::new(&m.base_url, m.api_key.clone(), &m.model, m.timeout)
        .map_err(setting(format!("{prefix}__*")))?;
    Ok(Arc::new(moderation))
}
