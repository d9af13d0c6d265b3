//! Queued background jobs on a Qdrant server, shared by every replica: a collection of their own
//! beside the facts' (`{collection}_jobs`), laid out like them, created with the first job.
//!
//! A claim is optimistic: each lease carries a random token, and a job is re-leased by an upsert
//! that applies only while the token is the one read (Qdrant's conditional update,
//! `update_filter`); reading the jobs back tells which this claim won. Two replicas claiming at
//! once never both win a job.

use std::collections::HashMap;

use async_trait::async_trait;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, DeletePointsBuilder, Filter, GetPointsBuilder, PointId,
    PointStruct, PointsIdsList, Range, ScrollPointsBuilder, UpsertPointsBuilder,
};
use qdrant_client::{Payload, QdrantError};
use ragback_application::ports::{JobKind, JobStore, JobStoreError, QueuedJob};
use serde_json::{Value, json};

use super::QdrantFactStore;
use super::points::json_map;

/// The jobs' collection's suffix and its one-dimensional placeholder vector.
const JOBS: &str = "jobs";
const JOB_VECTOR: &str = "job";
/// The most jobs one claim takes.
const CLAIM_PAGE: u32 = 256;

fn point(id: &str) -> PointId {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.as_bytes())
        .to_string()
        .into()
}

fn payload_of(job: &QueuedJob, token: &str) -> Value {
    json!({
        "job_id": job.id, "kind": job.kind.as_str(), "payload": job.payload.to_string(),
        "lease_owner": job.lease_owner, "lease_until_ms": job.lease_until_ms,
        "attempts": job.attempts, "lease_token": token,
    })
}

fn job_of(map: &serde_json::Map<String, Value>) -> Result<(QueuedJob, String), JobStoreError> {
    let bad = |what: &str| JobStoreError::Corrupted(format!("a stored job's {what}"));
    let kind = match map.get("kind").and_then(Value::as_str) {
        Some("memory") => JobKind::Memory,
        Some("summary") => JobKind::Summary,
        _ => return Err(bad("kind")),
    };
    let payload = map
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| bad("payload"))?;
    Ok((
        QueuedJob {
            id: map
                .get("job_id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("id"))?
                .to_owned(),
            kind,
            payload,
            lease_owner: map
                .get("lease_owner")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            lease_until_ms: map
                .get("lease_until_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            attempts: map
                .get("attempts")
                .and_then(Value::as_u64)
                .map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX)),
        },
        map.get("lease_token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    ))
}

impl QdrantFactStore {
    fn jobs_collection(&self) -> String {
        format!("{}_{JOBS}", self.collection)
    }

    fn jobs_unavailable(&self, what: &'static str) -> impl Fn(QdrantError) -> JobStoreError + '_ {
        move |e| JobStoreError::Unavailable(format!("{what} at {}: {e}", self.url))
    }

    /// Whether the jobs' collection exists (asked until it does, then remembered).
    async fn jobs_exist(&self) -> Result<bool, JobStoreError> {
        self.side_exists(&self.jobs_collection(), &self.jobs_known)
            .await
            .map_err(self.jobs_unavailable("checking the jobs"))
    }

    /// Writes `points`, applying to an existing point only while `only_if` matches it.
    async fn write_jobs(
        &self,
        points: Vec<PointStruct>,
        only_if: Option<Filter>,
    ) -> Result<(), JobStoreError> {
        let mut request = UpsertPointsBuilder::new(self.jobs_collection(), points)
            .wait(true)
            .ordering(self.cluster.ordering());
        if let Some(filter) = only_if {
            request = request.update_filter(filter);
        }
        self.client
            .upsert_points(request)
            .await
            .map_err(self.jobs_unavailable("storing a job"))?;
        Ok(())
    }

    /// Writes `job` under a new lease token while its stored token is still `old_token` (else
    /// nothing changes: another process took it meanwhile); returns it with the new token.
    async fn relet(
        &self,
        job: QueuedJob,
        old_token: &str,
    ) -> Result<(QueuedJob, String), JobStoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let only_if = Filter::must([Condition::matches("lease_token", old_token.to_owned())]);
        self.write_jobs(vec![Self::job_point(&job, &token)?], Some(only_if))
            .await?;
        Ok((job, token))
    }

    /// The stored jobs among `ids`, with their lease tokens.
    async fn read_jobs(&self, ids: &[String]) -> Result<Vec<(QueuedJob, String)>, JobStoreError> {
        let points: Vec<PointId> = ids.iter().map(|id| point(id)).collect();
        let read = GetPointsBuilder::new(self.jobs_collection(), points).with_payload(true);
        let found = self
            .client
            .get_points(match self.cluster.read() {
                Some(consistency) => read.read_consistency(consistency),
                None => read,
            })
            .await
            .map_err(self.jobs_unavailable("reading jobs"))?;
        Ok(found
            .result
            .into_iter()
            .filter_map(|p| job_of(&json_map(p.payload)).ok())
            .collect())
    }

    fn job_point(job: &QueuedJob, token: &str) -> Result<PointStruct, JobStoreError> {
        let payload = Payload::try_from(payload_of(job, token))
            .map_err(|e| JobStoreError::Corrupted(format!("a job's payload: {e}")))?;
        let vectors = HashMap::from([(
            JOB_VECTOR.to_owned(),
            qdrant_client::qdrant::Vector::new_dense(vec![1.0]),
        )]);
        Ok(PointStruct::new(point(&job.id), vectors, payload))
    }
}

#[async_trait]
impl JobStore for QdrantFactStore {
    async fn put(&self, job: &QueuedJob) -> Result<(), JobStoreError> {
        self.create_side(&self.jobs_collection(), JOB_VECTOR, &self.jobs_known)
            .await
            .map_err(self.jobs_unavailable("creating the jobs"))?;
        let token = uuid::Uuid::new_v4().to_string();
        self.write_jobs(vec![Self::job_point(job, &token)?], None)
            .await
    }

    async fn claim(
        &self,
        kind: JobKind,
        owner: &str,
        now_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<QueuedJob>, JobStoreError> {
        if limit == 0 || !self.jobs_exist().await? {
            return Ok(Vec::new());
        }
        // Only free jobs are read: however many others hold, a free one is found.
        let free = Range {
            lte: Some(now_ms as f64),
            ..Range::default()
        };
        let mut request = ScrollPointsBuilder::new(self.jobs_collection())
            .filter(Filter::must([
                Condition::matches("kind", kind.as_str().to_owned()),
                Condition::range("lease_until_ms", free),
            ]))
            .limit(u32::try_from(limit).unwrap_or(CLAIM_PAGE).min(CLAIM_PAGE))
            .with_payload(true)
            .with_vectors(false);
        if let Some(read) = self.cluster.read() {
            request = request.read_consistency(read);
        }
        let page = self
            .client
            .scroll(request)
            .await
            .map_err(self.jobs_unavailable("looking for jobs"))?;
        let mut mine = Vec::new();
        for found in page.result {
            let (mut job, old_token) = job_of(&json_map(found.payload))?;
            job.lease_to(owner, until_ms);
            mine.push(self.relet(job, &old_token).await?);
        }
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        // Which leases held: those whose token is still ours.
        let ids: Vec<String> = mine.iter().map(|(job, _)| job.id.clone()).collect();
        let held: HashMap<String, String> = self
            .read_jobs(&ids)
            .await?
            .into_iter()
            .map(|(job, token)| (job.id, token))
            .collect();
        Ok(mine
            .into_iter()
            .filter(|(job, token)| held.get(&job.id) == Some(token))
            .map(|(job, _)| job)
            .collect())
    }

    async fn renew(&self, ids: &[String], owner: &str, until_ms: u64) -> Result<(), JobStoreError> {
        if ids.is_empty() || !self.jobs_exist().await? {
            return Ok(());
        }
        for (job, token) in self.read_jobs(ids).await? {
            if job.lease_owner == owner {
                self.relet(
                    QueuedJob {
                        lease_until_ms: until_ms,
                        ..job
                    },
                    &token,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn finish(&self, id: &str) -> Result<(), JobStoreError> {
        if !self.jobs_exist().await? {
            return Ok(());
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(self.jobs_collection())
                    .points(PointsIdsList {
                        ids: vec![point(id)],
                    })
                    .wait(true)
                    .ordering(self.cluster.ordering()),
            )
            .await
            .map_err(self.jobs_unavailable("removing a job"))?;
        Ok(())
    }

    async fn pending(&self) -> Result<usize, JobStoreError> {
        if !self.jobs_exist().await? {
            return Ok(0);
        }
        let counted = self
            .client
            .count(CountPointsBuilder::new(self.jobs_collection()).exact(true))
            .await
            .map_err(self.jobs_unavailable("counting jobs"))?;
        Ok(counted.result.map_or(0, |r| r.count as usize))
    }
}
