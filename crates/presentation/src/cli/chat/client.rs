//! The client of a running ragback's streamed `POST /generate`.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sse::SseDecoder;

/// A fact the server used, as shown to the person chatting.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct UsedFact {
    /// Whose fact: `user` or `character`.
    pub owner: String,
    /// The fact.
    pub text: String,
    /// Its similarity to the message.
    pub score: f32,
}

/// What retrieval gave a reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FactsEvent {
    /// `ok`, `skipped` or `degraded`.
    pub retrieval: String,
    /// The facts, best first.
    pub facts: Vec<UsedFact>,
}

/// A finished reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The whole clean reply.
    pub text: String,
    /// What retrieval gave it.
    pub facts: FactsEvent,
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

/// Talks to one ragback server.
#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    url: String,
    idle: Duration,
}

impl ChatClient {
    /// A client of the server at `url`, sending `key` as a bearer token when given; a reply that
    /// stays silent for `idle` is abandoned (the server's keep-alive comments count as activity).
    pub fn new(url: &str, idle: Duration, key: Option<&SecretString>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .default_headers(crate::cli::remote::bearer_headers(key)?)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            idle,
        })
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
        let send = self
            .http
            .post(format!("{}/generate", self.url))
            .json(&request)
            .send();
        let mut response = tokio::time::timeout(self.idle, send)
            .await
            .map_err(|_| ChatError::Silent(self.idle))?
            .map_err(|e| self.network(&e))?;
        let status = response.status();
        if !status.is_success() {
            let body = tokio::time::timeout(self.idle, response.bytes())
                .await
                .map_err(|_| ChatError::Silent(self.idle))?
                .unwrap_or_default();
            return Err(api_error(status.as_u16(), &body));
        }
        let mut decoder = SseDecoder::default();
        let mut facts = None;
        let mut streamed = String::new();
        loop {
            let chunk = tokio::time::timeout(self.idle, response.chunk())
                .await
                .map_err(|_| ChatError::Silent(self.idle))?
                .map_err(|e| ChatError::Broken(e.to_string()))?;
            let Some(bytes) = chunk else {
                return Err(ChatError::Broken(
                    "the stream ended before the reply was complete".into(),
                ));
            };
            for event in decoder.push(&bytes) {
                match event.event.as_str() {
                    "facts" => {
                        let parsed: FactsEvent = parse(&event.data)?;
                        show(Progress::Facts(&parsed));
                        facts = Some(parsed);
                    }
                    "delta" => {
                        let piece: Delta = parse(&event.data)?;
                        show(Progress::Delta(&piece.text));
                        streamed.push_str(&piece.text);
                    }
                    "done" => {
                        let done: Done = parse(&event.data)?;
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
                        });
                    }
                    "error" => return Err(api_error(200, event.data.as_bytes())),
                    _ => {}
                }
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

#[derive(Deserialize)]
struct Delta {
    text: String,
}

#[derive(Deserialize)]
struct Done {
    text: String,
    retrieval: String,
    facts: Vec<UsedFact>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

fn parse<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, ChatError> {
    serde_json::from_str(data)
        .map_err(|e| ChatError::Broken(format!("an event ragback sent is not understood: {e}")))
}

/// The API's JSON error, or the start of whatever else came with `status`.
fn api_error(status: u16, body: &[u8]) -> ChatError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ChatError::Api {
            code: error.code,
            message: error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = text.chars().take(200).collect();
            ChatError::Api {
                code: "unexpected_response".into(),
                message: format!(
                    "HTTP {status}: {}",
                    if text.is_empty() {
                        "(empty body)"
                    } else {
                        &text
                    }
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_as_one_line() {
        let json = br#"{"error": {"code": "llm_unavailable", "message": "try again later"}}"#;
        assert_eq!(
            api_error(502, json).to_string(),
            "ragback answered llm_unavailable: try again later"
        );
        let html = b"<html>\n<body>Bad Gateway</body>\n</html>";
        assert_eq!(
            api_error(502, html).to_string(),
            "ragback answered unexpected_response: HTTP 502: <html> <body>Bad Gateway</body> </html>"
        );
    }
}
