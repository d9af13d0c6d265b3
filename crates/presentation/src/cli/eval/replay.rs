//! `ragback eval replay`: regenerates each window's target for each arm — through a running
//! ragback server (`POST /generate`), or the reply in the log — into a resumable journal.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use ragback_infrastructure::Settings;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::calls::{
    Budget, BudgetReached, CallArgs, Failure, FailureKind, Prices, Retries, retrying,
    stop_on_ctrl_c, tally,
};
use super::dialogues::{Window, read_windows};
use super::journal::Journal;
use super::rows::{Reply, Status, Usage};

/// `ragback eval replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The windows (`ragback eval windows`).
    #[arg(long)]
    windows: PathBuf,
    /// The replies journal (resumed when it exists).
    #[arg(long)]
    out: PathBuf,
    /// An arm: `NAME=logged` (the reply in the log),
    /// `NAME=server:URL[,variant=V,model=M,temperature=T,top_p=P,max_tokens=N,seed=S,summary=on]`
    /// (a running ragback; `variant` picks one of its configured variants; `summary=on` sends each
    /// window as a conversation, its rolling summary written before the reply) or
    /// `NAME=local[,variant=V,…]` (ragback in this process, from this configuration).
    #[arg(long = "arm", required = true)]
    arms: Vec<String>,
    /// Facts: `live` (the server retrieves them now) or `none` (retrieval off).
    #[arg(long, default_value = "live")]
    facts: String,
    #[command(flatten)]
    calls: CallArgs,
    /// Deadline of one request, ms (`X-Request-Timeout`).
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Print the calls and a token estimate, call nothing.
    #[arg(long)]
    dry_run: bool,
}

/// How an arm answers.
#[derive(Debug, Clone, PartialEq)]
enum Source {
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
struct Arm {
    name: String,
    source: Source,
}

fn parse_arm(spec: &str) -> anyhow::Result<Arm> {
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

/// Runs `ragback eval replay`.
pub async fn run(args: ReplayArgs, settings: &Settings) -> anyhow::Result<()> {
    let arms: Vec<Arm> = args
        .arms
        .iter()
        .map(|a| parse_arm(a))
        .collect::<anyhow::Result<_>>()?;
    if !matches!(args.facts.as_str(), "live" | "none") {
        bail!("--facts is live or none");
    }
    let windows = read_windows(&args.windows)?;
    let prices = Prices::parse(&args.calls.prices)?;
    let jobs: Vec<(&Window, &Arm)> = windows
        .iter()
        .flat_map(|w| arms.iter().map(move |a| (w, a)))
        .collect();
    if args.dry_run {
        let chars: usize = windows
            .iter()
            .map(|w| w.context.iter().map(|m| m.text.len()).sum::<usize>() + 600)
            .sum();
        let calls = windows.len() * arms.iter().filter(|a| a.source != Source::Logged).count();
        println!(
            "{calls} calls to /generate for {} windows × {} arms; about {} prompt tokens (4 characters a token)",
            windows.len(),
            arms.len(),
            chars / 4 * arms.iter().filter(|a| a.source != Source::Logged).count()
        );
        return Ok(());
    }
    let config = json!({
        "windows": args.windows, "arms": args.arms, "facts": args.facts,
    });
    let journal = Arc::new(Journal::open(
        &args.out,
        "replay",
        &config,
        args.calls.new_run,
    )?);
    let budget = Budget::new(args.calls.max_cost, journal.spent());
    let retries = args.calls.retries();
    let client = ragback_integrations::http::client_builder()
        .timeout(Duration::from_millis(args.timeout_ms) + Duration::from_secs(5))
        .build()?;
    let token = settings
        .eval
        .server_api_key
        .as_ref()
        .map(|k| k.expose_secret().to_owned());
    let local = if arms
        .iter()
        .any(|a| matches!(a.source, Source::Local { .. }))
    {
        // The models the local arms name are the operator's own choice: allowed here.
        let mut settings = settings.clone();
        for arm in &arms {
            if let Source::Local { generation, .. } = &arm.source
                && let Some(model) = generation["model"].as_str()
            {
                settings.llm.allowed_models.0.push(model.to_owned());
            }
        }
        let services = ragback_infrastructure::build_services(&settings)?;
        Some(crate::api::router(crate::api::AppState::from_settings(
            services, &settings,
        )))
    } else {
        None
    };
    let stop = stop_on_ctrl_c();
    let todo: Vec<(&Window, &Arm)> = jobs
        .into_iter()
        .filter(|(w, a)| !journal.is_final(&key(w, a)))
        .filter(|(w, a)| journal.attempts(&key(w, a)) < retries.max_attempts)
        .collect();
    eprintln!(
        "replay: {} replies to make ({} already in {})",
        todo.len(),
        journal.done.len(),
        args.out.display()
    );
    let facts_on = args.facts == "live";
    let results = futures::stream::iter(todo)
        .map(|(window, arm)| {
            let (journal, budget, client, token, stop, prices, local) = (
                journal.clone(),
                budget.clone(),
                client.clone(),
                token.clone(),
                stop.clone(),
                &prices,
                local.clone(),
            );
            async move {
                if stop.load(Ordering::SeqCst) || budget.exhausted() {
                    return Ok(None);
                }
                let row = reply(
                    window,
                    arm,
                    Caller {
                        client: &client,
                        local: local.as_ref(),
                    },
                    token.as_deref(),
                    facts_on,
                    args.timeout_ms,
                    retries,
                    journal.attempts(&key(window, arm)),
                    prices,
                )
                .await;
                if let Some(cost) = row.cost_usd {
                    budget.add(cost);
                }
                journal.append(&row)?;
                Ok::<_, anyhow::Error>(Some(row.status == Status::Ok))
            }
        })
        .buffer_unordered(args.calls.concurrency.max(1));
    let (made, failed) = tally(results).await?;
    journal.finish()?;
    eprintln!(
        "replay: {made} replies made, {failed} failed; ${:.6} spent -> {}",
        budget.spent(),
        args.out.display()
    );
    if stop.load(Ordering::SeqCst) {
        return Err(crate::cli::Interrupted.into());
    }
    if budget.exhausted() {
        return Err(BudgetReached(budget.spent()).into());
    }
    Ok(())
}

fn key(window: &Window, arm: &Arm) -> String {
    format!("{}|{}|0", window.id, arm.name)
}

/// Who answers `/generate`: the HTTP client, or the router in process.
#[derive(Clone, Copy)]
struct Caller<'a> {
    client: &'a reqwest::Client,
    local: Option<&'a axum::Router>,
}

#[allow(clippy::too_many_arguments)]
async fn reply(
    window: &Window,
    arm: &Arm,
    caller: Caller<'_>,
    token: Option<&str>,
    facts: bool,
    timeout_ms: u64,
    retries: Retries,
    spent: u32,
    prices: &Prices,
) -> Reply {
    let mut row = Reply {
        key: key(window, arm),
        window: window.id.clone(),
        dialogue: window.dialogue.clone(),
        bucket: Some(window.bucket),
        arm: arm.name.clone(),
        sample: 0,
        status: Status::Ok,
        attempts: 0,
        latency_ms: None,
        text: None,
        model: None,
        variant: None,
        facts: None,
        retrieval: None,
        usage: None,
        cost_usd: None,
        error: None,
    };
    let (url, generation, variant, summary) = match &arm.source {
        Source::Logged => {
            row.text = Some(window.logged.text.clone());
            row.model.clone_from(&window.logged_model);
            row.variant.clone_from(&window.logged_variant);
            return row;
        }
        Source::Server {
            url,
            generation,
            variant,
            summary,
        } => (Some(url.as_str()), generation, variant, *summary),
        Source::Local {
            generation,
            variant,
            summary,
        } => (None, generation, variant, *summary),
    };
    let mut body = json!({
        "messages": window.context, "user": window.user, "character": window.character,
        "scenario": window.scenario, "generation": generation,
        "retrieval": {"enabled": facts},
        // A replay reads the store, never writes it (whatever RAGBACK_MEMORY__AUTO says).
        "memory": {"extract": false},
    });
    if let Some(variant) = variant {
        body["variant"] = json!(variant);
    }
    if summary {
        // A conversation per window and arm, its summary written before the reply: windows are
        // independent samples (replayed in any order, at once), each with the summary a live
        // conversation would have at that turn.
        body["conversation_id"] = json!(format!("eval:{}:{}", window.id, arm.name));
        body["summarize_first"] = json!(true);
    }
    let started = Instant::now();
    let (result, attempts) = retrying(retries, spent, || {
        let body = &body;
        async move {
            match (url, caller.local) {
                (Some(url), _) => {
                    let mut request = caller
                        .client
                        .post(format!("{url}/generate"))
                        .header("x-request-timeout", timeout_ms.to_string())
                        .json(body);
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    over_http(request).await
                }
                (None, Some(router)) => in_process(router, body, timeout_ms).await,
                (None, None) => Err(Failure::permanent("no in-process ragback was built")),
            }
        }
    })
    .await;
    row.attempts = attempts;
    row.latency_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    match result {
        Ok(response) => {
            let usage: Option<Usage> = serde_json::from_value(response["usage"].clone()).ok();
            let model = response["model"].as_str().unwrap_or_default();
            let tokens = usage.unwrap_or_default();
            row.cost_usd = prices.cost(model, tokens.prompt_tokens, tokens.completion_tokens);
            row.text = Some(response["text"].as_str().unwrap_or_default().to_owned());
            row.model = Some(model.to_owned());
            row.variant = response["variant"].as_str().map(str::to_owned);
            row.facts = Some(response["facts"].clone());
            row.retrieval = Some(response["retrieval"].clone());
            row.usage = usage;
        }
        Err(failure) => {
            row.status = match failure.kind {
                FailureKind::Transient => Status::ApiError,
                FailureKind::Permanent | FailureKind::Refused => Status::Invalid,
            };
            row.error = Some(failure.message);
        }
    }
    row
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
