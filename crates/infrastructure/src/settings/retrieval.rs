//! `RAGBACK_RETRIEVAL__*`: which facts a reply gets.

use ragback_application::bounds::{self, InvalidSetting};
use ragback_domain::UserId;
use serde::{Deserialize, Deserializer};

/// The user whose facts `/api/v1/chat` and requests without a user id use.
const DEFAULT_USER: &str = "john";

/// The optional reranking stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rerank {
    /// The vector search's scores decide.
    None,
    /// Cohere's rerank endpoint scores the candidates.
    Cohere,
}

/// Retrieval defaults (`RAGBACK_RETRIEVAL__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Whether retrieval runs when the request does not say.
    pub enabled: bool,
    /// Facts per reply, at most.
    pub top_k: usize,
    /// Minimum cosine similarity of a used fact.
    pub threshold: f32,
    /// Facts after the best must score within this of it (2 = any).
    pub margin: f32,
    /// A reranking stage after the vector search: `none` or `cohere` (Cohere's rerank, with the
    /// Cohere key of `RAGBACK_EMBEDDER__COHERE__*`).
    pub rerank: Rerank,
    /// Cohere's rerank model.
    pub rerank_model: String,
    /// The least rerank relevance of a used fact (0–1).
    pub rerank_threshold: f32,
    /// How many of the vector search's best facts are reranked.
    pub rerank_candidates: usize,
    /// The query: the last user message and the messages before it, this many in all.
    pub query_messages: usize,
    /// How much the earlier messages of the query weigh against the last user message (0 to 1;
    /// 0 embeds the window as one text).
    pub query_context_weight: f32,
    /// The last user message is also searched alone, each fact at the better of its scores.
    pub query_last_alone: bool,
    /// Hybrid search: the last user message's words (BM25) searched beside its embedding.
    pub hybrid: bool,
    /// With hybrid search, a fact found by its words is used at this much below the threshold
    /// (whatever the margin).
    pub lexical_allowance: f32,
    /// Whose facts to use when a request names no user (and for `/api/v1/chat`).
    #[serde(deserialize_with = "user_id")]
    pub default_user_id: UserId,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            top_k: 3,
            threshold: 0.275,
            margin: 0.15,
            rerank: Rerank::None,
            rerank_model: "rerank-v3.5".into(),
            rerank_threshold: 0.3,
            rerank_candidates: 20,
            query_messages: 3,
            query_context_weight: 0.0,
            query_last_alone: true,
            hybrid: true,
            lexical_allowance: 0.025,
            default_user_id: UserId::parse(DEFAULT_USER)
                .unwrap_or_else(|_| unreachable!("`{DEFAULT_USER}` is a valid user id")),
        }
    }
}

impl RetrievalConfig {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        bounds::TOP_K.setting_count("top_k", self.top_k)?;
        bounds::THRESHOLD.setting("threshold", self.threshold)?;
        bounds::MARGIN.setting("margin", self.margin)?;
        bounds::UNIT.setting("query_context_weight", self.query_context_weight)?;
        bounds::MARGIN.setting("lexical_allowance", self.lexical_allowance)?;
        bounds::THRESHOLD.setting("rerank_threshold", self.rerank_threshold)?;
        bounds::TOP_K.setting_count("rerank_candidates", self.rerank_candidates)?;
        bounds::POSITIVE.setting_count("query_messages", self.query_messages)
    }
}

/// A user id, validated as the domain does.
fn user_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<UserId, D::Error> {
    let id = String::deserialize(deserializer)?;
    UserId::parse(id).map_err(serde::de::Error::custom)
}
