//! Cohere embeddings over HTTP (`POST /v2/embed`).

use std::time::Duration;

use async_trait::async_trait;
use ragback_application::bounds::InvalidSetting;
use ragback_application::ports::{EmbedError, Embedder, EmbeddingPurpose, RerankError, Reranker};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::http;

/// Cohere accepts at most this many texts per call.
pub const MAX_TEXTS_PER_CALL: usize = 96;

/// Settings of the Cohere embedder (`RAGBACK_EMBEDDER__COHERE__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohereSettings {
    /// API base URL, without `/v2`.
    pub base_url: String,
    /// API key; also read from `COHERE_API_KEY`.
    pub api_key: Option<SecretString>,
    /// Embedding model.
    pub model: String,
    /// Timeout of one HTTP call (`request_timeout_ms`).
    #[serde(
        rename = "request_timeout_ms",
        deserialize_with = "crate::config::millis::deserialize"
    )]
    pub request_timeout: Duration,
    /// Texts per call, at most 96.
    pub batch_size: usize,
}

impl Default for CohereSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.cohere.com".into(),
            api_key: None,
            model: "embed-multilingual-v3.0".into(),
            request_timeout: Duration::from_millis(10_000),
            batch_size: MAX_TEXTS_PER_CALL,
        }
    }
}

impl CohereSettings {
    /// Checks what parses but cannot be used; keys are relative to the section.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        ragback_application::bounds::nonzero("request_timeout_ms", self.request_timeout)?;
        if !(1..=MAX_TEXTS_PER_CALL).contains(&self.batch_size) {
            return Err(InvalidSetting::new(
                "batch_size",
                format!("must be between 1 and {MAX_TEXTS_PER_CALL} (Cohere's limit per call)"),
            ));
        }
        Ok(())
    }

    /// The API key, unless absent or blank.
    pub fn api_key(&self) -> Option<&SecretString> {
        self.api_key
            .as_ref()
            .filter(|key| !key.expose_secret().trim().is_empty())
    }
}

/// Why the Cohere settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CohereConfigError {
    /// No key.
    #[error("no Cohere API key is set")]
    MissingKey,
    /// The base URL is not an http(s) URL.
    #[error("not a valid http(s) URL: {0}")]
    BaseUrl(String),
    /// The batch size is out of range.
    #[error("batch size must be between 1 and {MAX_TEXTS_PER_CALL}, got {0}")]
    BatchSize(usize),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Embeds texts with Cohere.
#[derive(Debug, Clone)]
pub struct CohereEmbedder {
    http: reqwest::Client,
    endpoint: url::Url,
    api_key: SecretString,
    model: String,
    model_id: String,
    batch_size: usize,
}

#[derive(Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    texts: &'a [String],
    input_type: &'static str,
    embedding_types: [&'static str; 1],
    truncate: &'static str,
}

#[derive(Deserialize)]
struct EmbedResponse {
    embeddings: Embeddings,
}

#[derive(Deserialize)]
struct Embeddings {
    float: Vec<Vec<f32>>,
}

impl CohereEmbedder {
    /// Builds the client; does not call Cohere.
    pub fn new(settings: &CohereSettings) -> Result<Self, CohereConfigError> {
        let (http, endpoint, api_key) = connect(settings, "embed")?;
        if !(1..=MAX_TEXTS_PER_CALL).contains(&settings.batch_size) {
            return Err(CohereConfigError::BatchSize(settings.batch_size));
        }
        Ok(Self {
            http,
            endpoint,
            api_key,
            model: settings.model.clone(),
            model_id: format!("cohere/{}", settings.model),
            batch_size: settings.batch_size,
        })
    }
}

#[async_trait]
impl Embedder for CohereEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    async fn embed(
        &self,
        texts: &[String],
        purpose: EmbeddingPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.len() > self.batch_size {
            return Err(EmbedError::InvalidInput(format!(
                "{} texts in one call, at most {} allowed",
                texts.len(),
                self.batch_size
            )));
        }
        let body = EmbedRequest {
            model: &self.model,
            texts,
            input_type: match purpose {
                EmbeddingPurpose::Query => "search_query",
                EmbeddingPurpose::Document => "search_document",
            },
            embedding_types: ["float"],
            truncate: "END",
        };
        let Answer {
            status,
            retry_after,
            bytes,
        } = post(&self.http, &self.endpoint, &self.api_key, &body)
            .await
            .map_err(EmbedError::Unavailable)?;
        if !status.is_success() {
            let message = http::error_message(&String::from_utf8_lossy(&bytes));
            return Err(match status {
                StatusCode::TOO_MANY_REQUESTS => EmbedError::RateLimited { retry_after },
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    EmbedError::Unauthorized(message)
                }
                StatusCode::REQUEST_TIMEOUT => {
                    EmbedError::Unavailable(format!("{status}: {message}"))
                }
                s if s.is_server_error() => EmbedError::Unavailable(format!("{status}: {message}")),
                _ => EmbedError::InvalidInput(format!("{status}: {message}")),
            });
        }
        let parsed: EmbedResponse = serde_json::from_slice(&bytes)
            .map_err(|e| EmbedError::InvalidResponse(format!("not an embed response: {e}")))?;
        let vectors = parsed.embeddings.float;
        if vectors.len() != texts.len() {
            return Err(EmbedError::InvalidResponse(format!(
                "{} embeddings for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        let dimension = vectors.first().map_or(0, Vec::len);
        if dimension == 0 || vectors.iter().any(|v| v.len() != dimension) {
            return Err(EmbedError::InvalidResponse(
                "embeddings are empty or of different dimensions".into(),
            ));
        }
        Ok(vectors)
    }
}

/// The client, the endpoint `{base_url}/v2/{path}` and the key of a Cohere API, checked; calls
/// nothing yet.
fn connect(
    settings: &CohereSettings,
    path: &str,
) -> Result<(reqwest::Client, url::Url, SecretString), CohereConfigError> {
    let api_key = settings
        .api_key()
        .ok_or(CohereConfigError::MissingKey)?
        .clone();
    let base = url::Url::parse(&settings.base_url)
        .map_err(|e| CohereConfigError::BaseUrl(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(CohereConfigError::BaseUrl(format!(
            "scheme must be http or https, not `{}`",
            base.scheme()
        )));
    }
    let endpoint = url::Url::parse(&format!(
        "{}/v2/{path}",
        settings.base_url.trim_end_matches('/')
    ))
    .map_err(|e| CohereConfigError::BaseUrl(e.to_string()))?;
    let http = crate::http::client_builder()
        .timeout(settings.request_timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| CohereConfigError::Client(e.to_string()))?;
    Ok((http, endpoint, api_key))
}

/// What Cohere answered, before it is read.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    bytes: Vec<u8>,
}

/// POSTs `body` to `endpoint` with the key; a transport failure is described without the URL.
async fn post(
    client: &reqwest::Client,
    endpoint: &url::Url,
    api_key: &SecretString,
    body: &impl Serialize,
) -> Result<Answer, String> {
    let response = client
        .post(endpoint.clone())
        .bearer_auth(api_key.expose_secret())
        .json(body)
        .send()
        .await
        .map_err(|e| http::describe_transport_error(&e))?;
    let status = response.status();
    let retry_after = http::retry_after(response.headers());
    let bytes = response
        .bytes()
        .await
        .map_err(|e| http::describe_transport_error(&e))?
        .to_vec();
    Ok(Answer {
        status,
        retry_after,
        bytes,
    })
}

/// Cohere's rerank (`POST /v2/rerank`): scores candidate facts against the query.
#[derive(Debug, Clone)]
pub struct CohereReranker {
    http: reqwest::Client,
    endpoint: url::Url,
    api_key: SecretString,
    model: String,
}

#[derive(Serialize)]
struct RerankRequest<'a> {
    model: &'a str,
    query: &'a str,
    documents: &'a [String],
    top_n: usize,
}

#[derive(Deserialize)]
struct RerankResponse {
    results: Vec<RerankResult>,
}

#[derive(Deserialize)]
struct RerankResult {
    index: usize,
    relevance_score: f32,
}

impl CohereReranker {
    /// A client of `{base_url}/v2/rerank` with the Cohere settings' key and timeout; calls
    /// nothing yet.
    pub fn new(settings: &CohereSettings, model: &str) -> Result<Self, CohereConfigError> {
        let (http, endpoint, api_key) = connect(settings, "rerank")?;
        Ok(Self {
            http,
            endpoint,
            api_key,
            model: model.to_owned(),
        })
    }
}

#[async_trait]
impl Reranker for CohereReranker {
    fn model(&self) -> &str {
        &self.model
    }

    async fn rerank(&self, query: &str, documents: &[String]) -> Result<Vec<f32>, RerankError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        let body = RerankRequest {
            model: &self.model,
            query,
            documents,
            top_n: documents.len(),
        };
        let Answer {
            status,
            retry_after,
            bytes,
        } = post(&self.http, &self.endpoint, &self.api_key, &body)
            .await
            .map_err(RerankError::Unavailable)?;
        if !status.is_success() {
            let message = http::error_message(&String::from_utf8_lossy(&bytes));
            return Err(match status {
                StatusCode::TOO_MANY_REQUESTS => RerankError::RateLimited {
                    retry_after,
                    message,
                },
                s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                    RerankError::Unavailable(format!("{status}: {message}"))
                }
                s => RerankError::Rejected {
                    status: s.as_u16(),
                    message,
                },
            });
        }
        let parsed: RerankResponse = serde_json::from_slice(&bytes)
            .map_err(|e| RerankError::InvalidResponse(format!("not a rerank response: {e}")))?;
        let mut scores = vec![f32::NAN; documents.len()];
        for result in parsed.results {
            let slot = scores.get_mut(result.index).ok_or_else(|| {
                RerankError::InvalidResponse(format!(
                    "index {} for {} documents",
                    result.index,
                    documents.len()
                ))
            })?;
            *slot = result.relevance_score;
        }
        if scores.iter().any(|s| s.is_nan()) {
            return Err(RerankError::InvalidResponse(
                "not every document was scored".into(),
            ));
        }
        Ok(scores)
    }
}
