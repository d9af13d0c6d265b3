//! [`RemoteFacts`]: the facts API of a running `ragback serve`, for `ragback facts` when the
//! server holds the embedded store (Qdrant Edge allows one process per directory).

use std::time::Duration;

use async_trait::async_trait;
use ragback_application::AddFactsReport;
use ragback_application::ports::{EmbeddedFact, FactPage, StoredFact};
use ragback_domain::{Fact, FactId, FactOwner, OwnerKind, ScoredFact};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use super::backend::{AddStopped, FactsBackend, FactsError, OnProgress, StopReason, StopWhen};
use crate::cli::client::{api_error, bearer_headers, path_segment};
use crate::wire::{
    AddFactsRequest, AddFactsResponse, DeleteFactsResponse, FactRecord, ListFactsResponse,
    SearchFactsRequest, SearchFactsResponse,
};

/// Facts per `POST …/facts` call: well under the server's default limit (256,
/// `RAGBACK_SERVER__MAX_FACTS_PER_CALL`), so a server configured lower still takes them.
const FACTS_PER_CALL: usize = 64;

/// Largest page the API lists.
const MAX_PAGE: usize = 1_000;

/// A client of the facts API.
#[derive(Debug, Clone)]
pub struct RemoteFacts {
    http: reqwest::Client,
    base: String,
}

/// `users/{id}/facts` or `characters/{id}/facts`, the id percent-encoded.
fn path(owner: &FactOwner) -> String {
    let kind = match owner.kind() {
        OwnerKind::User => "users",
        OwnerKind::Character => "characters",
    };
    format!("{kind}/{}/facts", path_segment(owner.id()))
}

fn unreachable(error: reqwest::Error) -> FactsError {
    FactsError::Server(format!("the server did not answer: {error}"))
}

/// The body of a successful answer, or the API's error.
async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, FactsError> {
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        let error = api_error(status.as_u16(), &body);
        return Err(FactsError::Server(format!(
            "the server answered {status}: {}",
            error.message
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| FactsError::Server(format!("the server's answer is not understood: {e}")))
}

/// A listed or found fact, checked.
fn fact_of(record: &FactRecord) -> Result<Fact, FactsError> {
    record
        .to_fact()
        .map_err(|e| FactsError::Server(format!("the server listed a fact that is not valid: {e}")))
}

impl RemoteFacts {
    /// Connects to `base` (`http://127.0.0.1:8000`) if a ragback answers `/health` there;
    /// sends `key` as a bearer token when given.
    pub async fn connect(base: &str, key: Option<&SecretString>) -> anyhow::Result<Self> {
        let http = ragback_integrations::http::client_builder()
            .default_headers(bearer_headers(key)?)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(300))
            .build()?;
        let base = base.trim_end_matches('/').to_owned();
        let health = http
            .get(format!("{base}/health"))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("no ragback server answers at {base}: {e}"))?;
        anyhow::ensure!(
            health.status().is_success(),
            "{base}/health answered {}",
            health.status()
        );
        Ok(Self { http, base })
    }

    /// Ids of every stored fact of `owner`.
    async fn ids(&self, owner: &FactOwner) -> Result<Vec<FactId>, FactsError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let page = self.list(Some(owner), start, MAX_PAGE, false).await?;
            ids.extend(page.facts.iter().map(|f| f.fact.id));
            match page.next {
                Some(next) => start = Some(next),
                None => return Ok(ids),
            }
        }
    }

    /// Posts one owner's facts, at most [`FACTS_PER_CALL`] per call.
    async fn post(
        &self,
        owner: &FactOwner,
        facts: &[Fact],
        report: &mut AddFactsReport,
        progress: &mut OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<(), StopReason> {
        for chunk in facts.chunks(FACTS_PER_CALL) {
            if stop() {
                return Err(StopReason::Interrupted);
            }
            let request = AddFactsRequest {
                facts: chunk.iter().map(|f| f.text.as_str().to_owned()).collect(),
                source: Some(crate::wire::FactSourceDto::Seeded),
            };
            let response = self
                .http
                .post(format!("{}/{}", self.base, path(owner)))
                .json(&request)
                .send()
                .await
                .map_err(|e| StopReason::Failed(unreachable(e).to_string()))?;
            let added: AddFactsResponse = answer(response)
                .await
                .map_err(|e| StopReason::Failed(e.to_string()))?;
            report.added += added.added;
            report.unchanged += added.unchanged;
            progress(report);
        }
        Ok(())
    }
}

#[async_trait]
impl FactsBackend for RemoteFacts {
    async fn stored(&self, facts: &[Fact]) -> Result<Vec<FactId>, FactsError> {
        let mut owners: Vec<&FactOwner> = Vec::new();
        for fact in facts {
            if !owners.contains(&&fact.owner) {
                owners.push(&fact.owner);
            }
        }
        let mut stored = Vec::new();
        for owner in owners {
            stored.extend(self.ids(owner).await?);
        }
        Ok(stored)
    }

    async fn add(
        &self,
        facts: Vec<Fact>,
        mut progress: OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<AddFactsReport, AddStopped> {
        let mut report = AddFactsReport {
            to_add: facts.len(),
            ..AddFactsReport::default()
        };
        progress(&report);
        // The API takes one owner's facts per call: in first-seen order of the owners.
        let mut owners: Vec<FactOwner> = Vec::new();
        for fact in &facts {
            if !owners.contains(&fact.owner) {
                owners.push(fact.owner.clone());
            }
        }
        for owner in &owners {
            let mine: Vec<Fact> = facts
                .iter()
                .filter(|f| &f.owner == owner)
                .cloned()
                .collect();
            if let Err(reason) = self
                .post(owner, &mine, &mut report, &mut progress, stop)
                .await
            {
                return Err(AddStopped {
                    done: report,
                    reason,
                });
            }
        }
        Ok(report)
    }

    async fn import(
        &self,
        facts: Vec<EmbeddedFact>,
        progress: OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<AddFactsReport, AddStopped> {
        // The API takes texts: the server embeds them again.
        let facts = facts.into_iter().map(|e| e.fact).collect();
        self.add(facts, progress, stop).await
    }

    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactsError> {
        let owner = owner.ok_or(FactsError::NeedsOwner)?;
        let mut query = vec![
            ("limit", limit.clamp(1, MAX_PAGE).to_string()),
            ("with_vectors", with_vectors.to_string()),
        ];
        if let Some(start) = start {
            query.push(("cursor", start.to_string()));
        }
        let response = self
            .http
            .get(format!("{}/{}", self.base, path(owner)))
            .query(&query)
            .send()
            .await
            .map_err(unreachable)?;
        let page: ListFactsResponse = answer(response).await?;
        let facts = page
            .facts
            .into_iter()
            .map(|record| {
                Ok(StoredFact {
                    fact: fact_of(&record)?,
                    vector: record.vector,
                    model: None,
                })
            })
            .collect::<Result<_, FactsError>>()?;
        let next = page
            .next_cursor
            .map(|c| c.parse())
            .transpose()
            .map_err(|_| FactsError::Server("the server's next_cursor is not a fact id".into()))?;
        Ok(FactPage { facts, next })
    }

    async fn count(&self, owner: &FactOwner) -> Result<usize, FactsError> {
        Ok(self.ids(owner).await?.len())
    }

    async fn delete(&self, owner: &FactOwner, id: FactId) -> Result<bool, FactsError> {
        let response = self
            .http
            .delete(format!("{}/{}/{id}", self.base, path(owner)))
            .send()
            .await
            .map_err(unreachable)?;
        match response.status().as_u16() {
            204 => Ok(true),
            404 => Ok(false),
            _ => answer::<serde::de::IgnoredAny>(response)
                .await
                .map(|_| false),
        }
    }

    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactsError> {
        let response = self
            .http
            .delete(format!("{}/{}", self.base, path(owner)))
            .send()
            .await
            .map_err(unreachable)?;
        let deleted: DeleteFactsResponse = answer(response).await?;
        Ok(deleted.deleted)
    }

    async fn search(
        &self,
        query: &str,
        owners: &[FactOwner],
        top_k: usize,
        threshold: f32,
    ) -> Result<Vec<ScoredFact>, FactsError> {
        let id_of = |kind: OwnerKind| {
            owners
                .iter()
                .find(|o| o.kind() == kind)
                .map(|o| o.id().to_owned())
        };
        let request = SearchFactsRequest {
            user_id: id_of(OwnerKind::User),
            character_id: id_of(OwnerKind::Character),
            query: query.to_owned(),
            top_k,
            threshold,
        };
        let response = self
            .http
            .post(format!("{}/facts/search", self.base))
            .json(&request)
            .send()
            .await
            .map_err(unreachable)?;
        let found: SearchFactsResponse = answer(response).await?;
        found
            .facts
            .iter()
            .map(|record| {
                Ok(ScoredFact {
                    fact: fact_of(record)?,
                    score: record.score.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn location(&self) -> String {
        format!("through {}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use ragback_domain::UserId;

    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        let owner = |id: &str| FactOwner::User(UserId::parse(id).unwrap());
        assert_eq!(path(&owner("john")), "users/john/facts");
        assert_eq!(path(&owner("a b/ä")), "users/a%20b%2F%C3%A4/facts");
    }
}
