//! How an evaluation reaches ragback: an arm (`NAME=logged`, `NAME=server:URL[,…]` or
//! `NAME=local[,…]`), and one `POST /generate` — over HTTP to a running server, or through the
//! router in this process — with the service's retry policy. `replay` and `simulate` share it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ragback_infrastructure::Settings;
use serde_json::Value;

use super::calls::{Failure, Retries, retrying};

/// How an arm answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Source {
    /// The reply in the log.
    Logged,
    /// `POST {url}/generate` of a running ragback.
    Server {
        url: String,
        generation: Value,
        variant: Option<String>,
        summary: bool,
    },
    /// ragback's own router in this process, built from this invocation's configuration: the same
    /// path as the server, without one.
    Local {
        generation: Value,
        variant: Option<String>,
        summary: bool,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Arm {
    /// The arm's name.
    pub(super) name: String,
    /// How it answers.
    pub(super) source: Source,
}

pub(super) fn parse_arm(spec: &str) -> anyhow::Result<Arm> {
    let (name, rest) = spec
        .split_once('=')
        .with_context(|| format!("--arm {spec:?}: NAME=logged or NAME=server:URL[,key=value…]"))?;
    if rest == "logged" {
        return Ok(Arm {
            name: name.to_owned(),
            source: Source::Logged,
        });
    }
    let (url, options) = if let Some(server) = rest.strip_prefix("server:") {
        let (url, options) = server.split_once(',').unwrap_or((server, ""));
        (Some(url.trim_end_matches('/').to_owned()), options)
    } else if rest == "local" || rest.starts_with("local,") {
        (
            None,
            rest.strip_prefix("local")
                .unwrap_or_default()
                .trim_start_matches(','),
        )
    } else {
        bail!("--arm {spec:?}: the source is `logged`, `server:URL` or `local`");
    };
    let parts = options.split(',').filter(|p| !p.is_empty());
    let mut generation = serde_json::Map::new();
    let mut variant = None;
    let mut summary = false;
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("--arm {spec:?}: {part:?} is not key=value"))?;
        let value = match key {
            "variant" => {
                variant = Some(value.to_owned());
                continue;
            }
            "summary" => {
                summary = match value {
                    "on" => true,
                    "off" => false,
                    _ => bail!("--arm {spec:?}: summary is on or off"),
                };
                continue;
            }
            "model" => Value::from(value),
            "temperature" | "top_p" => Value::from(
                value
                    .parse::<f64>()
                    .with_context(|| format!("--arm: {key}"))?,
            ),
            "max_tokens" | "seed" => Value::from(
                value
                    .parse::<u64>()
                    .with_context(|| format!("--arm: {key}"))?,
            ),
            other => bail!(
                "--arm {spec:?}: unknown key {other:?} (variant, model, temperature, top_p, \
                 max_tokens, seed, summary)"
            ),
        };
        generation.insert(key.to_owned(), value);
    }
    let generation = Value::Object(generation);
    Ok(Arm {
        name: name.to_owned(),
        source: match url {
            Some(url) => Source::Server {
                url,
                generation,
                variant,
                summary,
            },
            None => Source::Local {
                generation,
                variant,
                summary,
            },
        },
    })
}

impl Arm {
    /// The arm's request options: its `generation`, `variant` and whether it keeps a rolling
    /// summary; `None` for the logged arm.
    pub(super) fn options(&self) -> Option<(&Value, Option<&str>, bool)> {
        match &self.source {
            Source::Logged => None,
            Source::Server {
                generation,
                variant,
                summary,
                ..
            }
            | Source::Local {
                generation,
                variant,
                summary,
            } => Some((generation, variant.as_deref(), *summary)),
        }
    }

    fn url(&self) -> Option<&str> {
        match &self.source {
            Source::Server { url, .. } => Some(url),
            _ => None,
        }
    }
}

/// ragback in this process, when an arm is `local`: built from this invocation's configuration,
/// with the models the local arms name allowed (the operator's own choice).
pub(super) fn local_router(
    arms: &[Arm],
    settings: &Settings,
) -> anyhow::Result<Option<axum::Router>> {
    if !arms
        .iter()
        .any(|a| matches!(a.source, Source::Local { .. }))
    {
        return Ok(None);
    }
    let mut settings = settings.clone();
    for arm in arms {
        if let Source::Local { generation, .. } = &arm.source
            && let Some(model) = generation["model"].as_str()
        {
            settings.llm.allowed_models.0.push(model.to_owned());
        }
    }
    let services = ragback_infrastructure::build_services(&settings)?;
    Ok(Some(crate::api::router(
        crate::api::AppState::from_settings(services, &settings),
    )))
}

/// The HTTP client of `/generate` calls with a deadline of `timeout_ms` (and 5 s to spare), and
/// the server's token (`RAGBACK_EVAL__SERVER_API_KEY`).
pub(super) fn http_client(
    settings: &Settings,
    timeout_ms: u64,
) -> anyhow::Result<(reqwest::Client, Option<String>)> {
    use secrecy::ExposeSecret as _;
    let client = ragback_integrations::http::client_builder()
        .timeout(Duration::from_millis(timeout_ms) + Duration::from_secs(5))
        .build()?;
    let token = settings
        .eval
        .server_api_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned());
    Ok((client, token))
}

/// Who answers `/generate`: the HTTP client (with the server's token), or the router in process.
#[derive(Clone, Copy)]
pub(super) struct Caller<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) local: Option<&'a axum::Router>,
    pub(super) token: Option<&'a str>,
    pub(super) timeout_ms: u64,
}

/// One `/generate` for `arm` with retries (`spent` attempts already spent on this row): the
/// answer's body, the attempts and the milliseconds it took.
pub(super) async fn generate(
    caller: Caller<'_>,
    arm: &Arm,
    body: &Value,
    retries: Retries,
    spent: u32,
) -> (Result<Value, Failure>, u32, u64) {
    let started = Instant::now();
    let url = arm.url();
    let (result, attempts) = retrying(retries, spent, || async move {
        match (url, caller.local) {
            (Some(url), _) => {
                let mut request = caller
                    .client
                    .post(format!("{url}/generate"))
                    .header("x-request-timeout", caller.timeout_ms.to_string())
                    .json(body);
                if let Some(token) = caller.token {
                    request = request.bearer_auth(token);
                }
                over_http(request).await
            }
            (None, Some(router)) => in_process(router, body, caller.timeout_ms).await,
            (None, None) => Err(Failure::permanent("no in-process ragback was built")),
        }
    })
    .await;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    (result, attempts, elapsed)
}

/// `/generate` through the router in this process.
async fn in_process(
    router: &axum::Router,
    body: &Value,
    timeout_ms: u64,
) -> Result<Value, Failure> {
    use tower::ServiceExt as _;
    let request = axum::http::Request::post("/generate")
        .header("content-type", "application/json")
        .header("x-request-timeout", timeout_ms.to_string())
        .body(axum::body::Body::from(body.to_string()))
        .map_err(|e| Failure::permanent(e.to_string()))?;
    let response = router
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| Failure::transient(e.to_string(), None))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers().get("retry-after"));
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .map_err(|e| Failure::transient(format!("ragback's answer: {e}"), None))?;
    let body = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::transient(format!("ragback's answer: {e}"), None))?;
    classify(status, retry_after, body)
}

fn retry_after(value: Option<&axum::http::HeaderValue>) -> Option<Duration> {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(ragback_integrations::http::parse_retry_after)
}

/// A `/generate` answer: the body of a 2xx; 429 and 5xx are worth another try, other 4xx not.
fn classify(status: u16, retry_after: Option<Duration>, body: Value) -> Result<Value, Failure> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let message = format!(
        "ragback answered {status}: {}",
        body["error"]["message"].as_str().unwrap_or_default()
    );
    if status == 429 || status >= 500 {
        Err(Failure::transient(message, retry_after))
    } else {
        Err(Failure::permanent(message))
    }
}

/// One `/generate` call over HTTP.
async fn over_http(request: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| Failure::transient(format!("ragback: {e}"), None))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers().get("retry-after"));
    let body: Value = response
        .json()
        .await
        .map_err(|e| Failure::transient(format!("ragback's answer: {e}"), None))?;
    classify(status, retry_after, body)
}
