//! The client of a running ragback's streamed `POST /generate`.

use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::Value;

use crate::cli::client::{api_error, bearer_headers};
use crate::wire::{DeltaEvent, ErrorDetail, FactsEvent, GenerateResponse};

/// A finished reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The whole clean reply.
    pub text: String,
    /// What retrieval gave it.
    pub facts: FactsEvent,
    /// The crisis referral the server set beside it, to show the person chatting.
    pub referral: Option<String>,
}

/// What the caller is shown while a reply streams.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Retrieval is done.
    Facts(&'a FactsEvent),
    /// A piece of the reply.
    Delta(&'a str),
}

/// Why a reply did not come. Every variant reads as one line.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Nothing listens at the URL.
    #[error("cannot reach ragback at {url} ({cause}); is it running? (`make run`)")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// The connection error.
        cause: String,
    },
    /// The server went silent for longer than the idle limit.
    #[error("ragback sent nothing for {0:?}; giving up on this reply")]
    Silent(Duration),
    /// The server answered with an error.
    #[error("ragback answered {code}: {message}")]
    Api {
        /// The error code.
        code: String,
        /// The error message.
        message: String,
    },
    /// The connection broke, or the server answered something that is not ragback's API.
    #[error("the reply from ragback broke off: {0}")]
    Broken(String),
}

impl From<ErrorDetail> for ChatError {
    fn from(error: ErrorDetail) -> Self {
        Self::Api {
            code: error.code,
            message: error.message,
        }
    }
}

/// Talks to one ragback server.
#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    url: String,
    idle: Duration,
    variant: Option<String>,
}

impl ChatClient {
    /// A client of the server at `url`, sending `key` as a bearer token when given; a reply that
    /// stays silent for `idle` is abandoned (the server's keep-alive comments count as activity).
    pub fn new(url: &str, idle: Duration, key: Option<&SecretString>) -> anyhow::Result<Self> {
        let http = ragback_integrations::http::client_builder()
            .default_headers(bearer_headers(key)?)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            idle,
            variant: None,
        })
    }

    /// The same client asking for `variant` with every turn (`None`: the server's split decides).
    pub fn with_variant(self, variant: Option<String>) -> Self {
        Self { variant, ..self }
    }

    /// Streams the reply to `request` (a `/generate` body; `stream` is set here), showing its
    /// progress as it comes.
    pub async fn reply(
        &self,
        request: &Value,
        mut show: impl FnMut(Progress<'_>),
    ) -> Result<Reply, ChatError> {
        let mut request = request.clone();
        request["stream"] = Value::Bool(true);
        if let Some(variant) = &self.variant {
            request["variant"] = Value::from(variant.as_str());
        }
        let send = self
            .http
            .post(format!("{}/generate", self.url))
            .json(&request)
            .send();
        let response = tokio::time::timeout(self.idle, send)
            .await
            .map_err(|_| ChatError::Silent(self.idle))?
            .map_err(|e| self.network(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = tokio::time::timeout(self.idle, response.bytes())
                .await
                .map_err(|_| ChatError::Silent(self.idle))?
                .unwrap_or_default();
            return Err(api_error(status.as_u16(), &body).into());
        }
        // The idle limit counts from the last bytes received: keep-alive comments, which are no
        // events, keep a slow reply alive.
        let idle = self.idle;
        let body = futures::stream::unfold(response.bytes_stream(), move |mut body| async move {
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(chunk)) => Some((chunk.map_err(Body::Broken), body)),
                Ok(None) => None,
                Err(_elapsed) => Some((Err(Body::Silent), body)),
            }
        });
        let mut events = std::pin::pin!(body.eventsource());
        let mut facts = None;
        let mut streamed = String::new();
        loop {
            let event = match events.next().await {
                Some(Ok(event)) => event,
                Some(Err(EventStreamError::Transport(Body::Silent))) => {
                    return Err(ChatError::Silent(idle));
                }
                Some(Err(error)) => return Err(ChatError::Broken(error.to_string())),
                None => {
                    return Err(ChatError::Broken(
                        "the stream ended before the reply was complete".into(),
                    ));
                }
            };
            match event.event.as_str() {
                "facts" => {
                    let parsed: FactsEvent = parse(&event.data)?;
                    show(Progress::Facts(&parsed));
                    facts = Some(parsed);
                }
                "delta" => {
                    let piece: DeltaEvent = parse(&event.data)?;
                    show(Progress::Delta(&piece.text));
                    streamed.push_str(&piece.text);
                }
                "done" => {
                    let done: GenerateResponse = parse(&event.data)?;
                    if done.text != streamed {
                        tracing::warn!("the streamed pieces differ from the final reply");
                    }
                    let facts = facts.unwrap_or(FactsEvent {
                        retrieval: done.retrieval,
                        facts: done.facts,
                    });
                    return Ok(Reply {
                        text: done.text,
                        facts,
                        referral: done.safety.and_then(|s| s.referral),
                    });
                }
                "error" => return Err(api_error(200, event.data.as_bytes()).into()),
                _ => {}
            }
        }
    }

    fn network(&self, error: &reqwest::Error) -> ChatError {
        if error.is_connect() {
            let cause = std::error::Error::source(error)
                .and_then(std::error::Error::source)
                .map_or_else(|| error.to_string(), ToString::to_string);
            ChatError::Unreachable {
                url: self.url.clone(),
                cause,
            }
        } else {
            ChatError::Broken(error.to_string())
        }
    }
}

/// What can go wrong while reading the body.
#[derive(Debug, thiserror::Error)]
enum Body {
    #[error("nothing received within the idle limit")]
    Silent,
    #[error(transparent)]
    Broken(reqwest::Error),
}

fn parse<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, ChatError> {
    serde_json::from_str(data)
        .map_err(|e| ChatError::Broken(format!("an event ragback sent is not understood: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_as_one_line() {
        let json = br#"{"error": {"code": "llm_unavailable", "message": "try again later"}}"#;
        assert_eq!(
            ChatError::from(api_error(502, json)).to_string(),
            "ragback answered llm_unavailable: try again later"
        );
        let html = b"<html>\n<body>Bad Gateway</body>\n</html>";
        assert_eq!(
            ChatError::from(api_error(502, html)).to_string(),
            "ragback answered unexpected_response: HTTP 502: <html> <body>Bad Gateway</body> </html>"
        );
    }
}
