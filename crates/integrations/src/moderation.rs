//! [`OpenAiModeration`]: the `Moderation` port over OpenAI's `POST /moderations`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ragback_application::ports::{Moderation, ModerationError, ModerationResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::http;

/// OpenAI's moderation endpoint (or one that speaks its format).
#[derive(Debug, Clone)]
pub struct OpenAiModeration {
    client: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    model: String,
}

#[derive(Deserialize)]
struct Body {
    results: Vec<ResultBody>,
}

#[derive(Deserialize)]
struct ResultBody {
    #[serde(default)]
    flagged: bool,
    #[serde(default)]
    categories: BTreeMap<String, bool>,
    #[serde(default)]
    category_scores: BTreeMap<String, f64>,
}

impl OpenAiModeration {
    /// A client of `{base_url}/moderations`; calls nothing yet.
    pub fn new(
        base_url: &str,
        api_key: Option<SecretString>,
        model: &str,
        timeout: std::time::Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = http::client_builder().timeout(timeout).build()?;
        Ok(Self {
            client,
            url: format!("{}/moderations", base_url.trim_end_matches('/')),
            api_key,
            model: model.to_owned(),
        })
    }
}

#[async_trait]
impl Moderation for OpenAiModeration {
    fn model(&self) -> &str {
        &self.model
    }

    async fn moderate(&self, texts: &[String]) -> Result<Vec<ModerationResult>, ModerationError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ModerationError::Unavailable(http::describe_transport_error(&e)))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| ModerationError::Unavailable(http::describe_transport_error(&e)))?;
        if status.as_u16() == 429 {
            return Err(ModerationError::RateLimited {
                retry_after,
                message: http::error_message(&text),
            });
        }
        if status.is_server_error() {
            return Err(ModerationError::Unavailable(format!(
                "{status}: {}",
                http::error_message(&text)
            )));
        }
        if !status.is_success() {
            return Err(ModerationError::Rejected {
                status: status.as_u16(),
                message: http::error_message(&text),
            });
        }
        let body: Body = serde_json::from_str(&text).map_err(|e| {
            ModerationError::InvalidResponse(format!("not a moderation result: {e}"))
        })?;
        if body.results.len() != texts.len() {
            return Err(ModerationError::InvalidResponse(format!(
                "{} results for {} texts",
                body.results.len(),
                texts.len()
            )));
        }
        Ok(body
            .results
            .into_iter()
            .map(|r| ModerationResult {
                flagged: r.flagged,
                categories: r.categories,
                scores: r.category_scores,
            })
            .collect())
    }
}
