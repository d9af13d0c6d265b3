//! The HTTP transport under async-openai: executes the request and turns a non-2xx answer into
//! an error that keeps the status and `Retry-After` (async-openai's own error drops headers).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use reqwest::StatusCode;

use crate::http;

/// A non-2xx answer of the provider.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {message}")]
pub(super) struct StatusError {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<Duration>,
    pub(super) message: String,
}

/// A tower service executing async-openai's requests with reqwest, without retries.
#[derive(Debug, Clone)]
pub(super) struct Transport {
    client: reqwest::Client,
}

impl Transport {
    pub(super) fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = client.execute(request).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = http::retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            Err(OpenAIError::Boxed(Box::new(StatusError {
                status,
                retry_after,
                message: http::error_message(&body),
            })))
        })
    }
}
