//! The facts API of a running `ragback serve`, for the CLI when the server holds the embedded
//! store (Qdrant Edge allows one process per directory).

use std::time::Duration;

use anyhow::{Context, bail};
use ragback_application::AddFactsReport;
use ragback_application::ports::{FactPage, StoredFact};
use ragback_domain::{Fact, FactId, FactOwner, FactText, OwnerKind, ScoredFact};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

/// Facts per `POST …/facts` call: well under the server's default limit (256,
/// `RAGBACK_SERVER__MAX_FACTS_PER_CALL`), so a server configured lower still takes them.
const FACTS_PER_CALL: usize = 64;

/// A client of the facts API.
#[derive(Debug, Clone)]
pub struct RemoteFacts {
    http: reqwest::Client,
    base: String,
}

/// Why a remote add stopped: how far it got, and what happened.
#[derive(Debug)]
pub struct RemoteAddError {
    pub done: AddFactsReport,
    pub message: String,
}

#[derive(Deserialize)]
struct AddResponse {
    added: usize,
    unchanged: usize,
}

#[derive(Deserialize)]
struct FactRow {
    id: String,
    owner: String,
    owner_id: String,
    text: String,
    #[serde(default)]
    score: Option<f32>,
    #[serde(default)]
    vector: Option<Vec<f32>>,
}

#[derive(Deserialize)]
struct ListResponse {
    facts: Vec<FactRow>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct SearchResponse {
    facts: Vec<FactRow>,
}

impl FactRow {
    fn into_fact(self) -> anyhow::Result<(Fact, Option<f32>, Option<Vec<f32>>)> {
        let kind: OwnerKind = self.owner.parse().map_err(anyhow::Error::msg)?;
        let owner = FactOwner::from_parts(kind, &self.owner_id)?;
        let id: FactId = self.id.parse().context("fact id")?;
        let fact = Fact {
            id,
            owner,
            text: FactText::parse(self.text)?,
        };
        Ok((fact, self.score, self.vector))
    }
}

fn path(owner: &FactOwner) -> String {
    let kind = match owner.kind() {
        OwnerKind::User => "users",
        OwnerKind::Character => "characters",
    };
    format!("{kind}/{}/facts", percent_encode(owner.id()))
}

/// Percent-encodes a path segment.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The error message of an API error body, or the status.
async fn failure(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match body["error"]["message"].as_str() {
        Some(message) => format!("the server answered {status}: {message}"),
        None => format!("the server answered {status}"),
    }
}

/// `Authorization: Bearer <key>` (marked sensitive, so never printed), or nothing.
pub(crate) fn bearer_headers(key: Option<&SecretString>) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(key) = key {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            .map_err(|_| anyhow::anyhow!("the API key holds characters a header cannot carry"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

impl RemoteFacts {
    /// Connects to `base` (`http://127.0.0.1:8000`) if a ragback answers `/health` there;
    /// sends `key` as a bearer token when given.
    pub async fn connect(base: &str, key: Option<&SecretString>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .default_headers(bearer_headers(key)?)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(300))
            .build()?;
        let base = base.trim_end_matches('/').to_owned();
        let health = http
            .get(format!("{base}/health"))
            .send()
            .await
            .with_context(|| format!("no ragback server answers at {base}"))?;
        if !health.status().is_success() {
            bail!("{base}/health answered {}", health.status());
        }
        Ok(Self { http, base })
    }

    /// Where it connects.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Ids of every stored fact of `owner` (to plan without embedding).
    pub async fn ids(&self, owner: &FactOwner) -> anyhow::Result<Vec<FactId>> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let page = self.list(owner, start, 1_000, false).await?;
            ids.extend(page.facts.iter().map(|f| f.fact.id));
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(ids),
            }
        }
    }

    /// Adds one owner's facts in calls of at most [`FACTS_PER_CALL`], stopping between calls when `stop` says.
    pub async fn add(
        &self,
        owner: &FactOwner,
        facts: &[Fact],
        report: &mut AddFactsReport,
        progress: &mut dyn FnMut(&AddFactsReport),
        stop: &dyn Fn() -> bool,
    ) -> Result<(), RemoteAddError> {
        for chunk in facts.chunks(FACTS_PER_CALL) {
            if stop() {
                return Err(RemoteAddError {
                    done: *report,
                    message: "interrupted".into(),
                });
            }
            let texts: Vec<&str> = chunk.iter().map(|f| f.text.as_str()).collect();
            let fail = |message: String| RemoteAddError {
                done: *report,
                message,
            };
            let response = self
                .http
                .post(format!("{}/{}", self.base, path(owner)))
                .json(&json!({ "facts": texts }))
                .send()
                .await
                .map_err(|e| fail(format!("the server did not answer: {e}")))?;
            if !response.status().is_success() {
                return Err(fail(failure(response).await));
            }
            let answer: AddResponse = response
                .json()
                .await
                .map_err(|e| fail(format!("unexpected answer: {e}")))?;
            report.added += answer.added;
            report.unchanged += answer.unchanged;
            progress(report);
        }
        Ok(())
    }

    /// Deletes every fact of `owner`.
    pub async fn delete_owner(&self, owner: &FactOwner) -> anyhow::Result<usize> {
        let response = self
            .http
            .delete(format!("{}/{}", self.base, path(owner)))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(failure(response).await);
        }
        let body: Value = response.json().await?;
        Ok(body["deleted"].as_u64().unwrap_or(0) as usize)
    }

    /// Deletes one fact; `false` when the owner has no such fact.
    pub async fn delete(&self, owner: &FactOwner, id: FactId) -> anyhow::Result<bool> {
        let response = self
            .http
            .delete(format!("{}/{}/{id}", self.base, path(owner)))
            .send()
            .await?;
        match response.status().as_u16() {
            204 => Ok(true),
            404 => Ok(false),
            _ => bail!(failure(response).await),
        }
    }

    /// A page of `owner`'s facts.
    pub async fn list(
        &self,
        owner: &FactOwner,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> anyhow::Result<FactPage> {
        let mut url = format!(
            "{}/{}?limit={}&with_vectors={with_vectors}",
            self.base,
            path(owner),
            limit.clamp(1, 1_000)
        );
        if let Some(start) = start {
            url.push_str(&format!("&cursor={start}"));
        }
        let response = self.http.get(url).send().await?;
        if !response.status().is_success() {
            bail!(failure(response).await);
        }
        let page: ListResponse = response.json().await?;
        let facts = page
            .facts
            .into_iter()
            .map(|row| {
                let (fact, _, vector) = row.into_fact()?;
                Ok(StoredFact {
                    fact,
                    vector,
                    model: None,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let next = page
            .next_cursor
            .map(|c| c.parse())
            .transpose()
            .context("next_cursor")?;
        Ok(FactPage { facts, next })
    }

    /// Scored search among `owners` (at most one user and one character).
    pub async fn search(
        &self,
        query: &str,
        owners: &[FactOwner],
        top_k: usize,
        threshold: f32,
    ) -> anyhow::Result<Vec<ScoredFact>> {
        let mut body = json!({"query": query, "top_k": top_k, "threshold": threshold});
        for owner in owners {
            let key = match owner.kind() {
                OwnerKind::User => "user_id",
                OwnerKind::Character => "character_id",
            };
            body[key] = json!(owner.id());
        }
        let response = self
            .http
            .post(format!("{}/facts/search", self.base))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(failure(response).await);
        }
        let found: SearchResponse = response.json().await?;
        found
            .facts
            .into_iter()
            .map(|row| {
                let (fact, score, _) = row.into_fact()?;
                Ok(ScoredFact {
                    fact,
                    score: score.unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(percent_encode("john"), "john");
        assert_eq!(percent_encode("a b/ä"), "a%20b%2F%C3%A4");
    }
}
