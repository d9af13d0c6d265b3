//! `GET /health` (the process is up) and `GET /ready` (it can serve `/generate`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::state::SharedState;

/// `GET /health`: always 200 while the process serves HTTP.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object))
)]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Checks {
    store: Check,
    llm: Check,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Check {
    ok: bool,
    message: String,
}

/// `GET /ready`: 200 when the store answers and the LLM is configured, else 503 saying which.
/// Open to every caller, so it says only that: no fact count, no path or URL, no error text (the
/// log has the cause), and it counts nothing — probes call it often.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    summary = "Readiness: the store answers and the LLM is configured",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; the failing check says which", body = Readiness),
    )
)]
pub(crate) async fn ready(State(state): State<SharedState>) -> (StatusCode, Json<Readiness>) {
    let store = match state.facts.ping().await {
        Ok(()) => Check {
            ok: true,
            message: "the fact store answers".into(),
        },
        Err(error) => {
            tracing::warn!(%error, "readiness: the fact store does not answer");
            Check {
                ok: false,
                message: "the fact store does not answer; the cause is in ragback's log".into(),
            }
        }
    };
    let llm = if state.chat.model_configured() {
        Check {
            ok: true,
            message: "the language model is configured".into(),
        }
    } else {
        Check {
            ok: false,
            message: "no language model is configured: set RAGBACK_LLM__API_KEY (or \
                      OPENROUTER_API_KEY), or use the local model (RAGBACK_LLM__PROVIDER=local)"
                .into(),
        }
    };
    let ready = store.ok && llm.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            checks: Checks { store, llm },
        }),
    )
}
