//! Conversation summaries in the embedded store: a Qdrant Edge shard of their own in the
//! `summaries` directory beside the facts' (covered by the same directory lock), created with
//! the first summary.

use std::path::Path;

use async_trait::async_trait;
use qdrant_edge::{
    Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, PointId,
    PointInsertOperations, PointOperations, PointStruct, UpdateOperation, Vector, Vectors,
    WithPayloadInterface, WithVector,
};
use ragback_application::ports::{SummaryStore, SummaryStoreError};
use ragback_domain::{ConversationId, ConversationSummary, UserId};

use super::EdgeFactStore;
use super::shard::EDGE_CONFIG_FILE;
use crate::layout::summary::{
    SUMMARIES, SUMMARY_VECTOR, summary_from, summary_payload, summary_point, summary_vector,
};

fn unavailable(context: &'static str) -> impl Fn(qdrant_edge::OperationError) -> SummaryStoreError {
    move |e| SummaryStoreError::Unavailable(format!("{context}: {e}"))
}

/// Loads the summaries' shard under the store's `path`, if one was created.
pub(super) fn load(path: &Path) -> Result<Option<EdgeShard>, SummaryStoreError> {
    let dir = path.join(SUMMARIES);
    if !dir.join(EDGE_CONFIG_FILE).exists() {
        return Ok(None);
    }
    EdgeShard::load(&dir, None)
        .map(Some)
        .map_err(unavailable("cannot load the summaries"))
}

fn create(path: &Path) -> Result<EdgeShard, SummaryStoreError> {
    let dir = path.join(SUMMARIES);
    std::fs::create_dir_all(&dir).map_err(|e| {
        SummaryStoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
    })?;
    let config = EdgeConfigBuilder::new()
        .vector(
            SUMMARY_VECTOR,
            EdgeVectorParamsBuilder::new(1, Distance::Cosine).build(),
        )
        .build();
    EdgeShard::new(&dir, config).map_err(unavailable("cannot create the summaries"))
}

fn point(user: &UserId, conversation: &ConversationId) -> PointId {
    PointId::Uuid(summary_point(user, conversation))
}

fn read(
    shard: &EdgeShard,
    user: &UserId,
    conversation: &ConversationId,
) -> Result<Option<ConversationSummary>, SummaryStoreError> {
    let records = shard
        .retrieve(
            &[point(user, conversation)],
            Some(WithPayloadInterface::Bool(true)),
            Some(WithVector::Bool(false)),
        )
        .map_err(unavailable("summary lookup failed"))?;
    records
        .into_iter()
        .next()
        .map(|record| summary_from(&record.payload.map(|p| p.0).unwrap_or_default()))
        .transpose()
}

#[async_trait]
impl SummaryStore for EdgeFactStore {
    async fn get_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConversationSummary>, SummaryStoreError> {
        let (user, conversation) = (user.clone(), conversation.clone());
        self.summaries(move |shard, _| match shard {
            Some(shard) => read(shard, &user, &conversation),
            None => Ok(None),
        })
        .await
    }

    async fn put_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        summary: &ConversationSummary,
    ) -> Result<(), SummaryStoreError> {
        let payload = summary_payload(user, conversation, summary);
        let id = point(user, conversation);
        self.summaries(move |shard, path| {
            if shard.is_none() {
                *shard = Some(create(path)?);
            }
            let Some(shard) = shard.as_mut() else {
                return Ok(());
            };
            let vectors =
                Vectors::new_named([(SUMMARY_VECTOR, Vector::new_dense(summary_vector()))]);
            shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(vec![
                        PointStruct::new(id, vectors, payload).into(),
                    ])),
                ))
                .map_err(unavailable("cannot store the summary"))?;
            shard.flush();
            Ok(())
        })
        .await
    }

    async fn delete_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<bool, SummaryStoreError> {
        let (user, conversation) = (user.clone(), conversation.clone());
        self.summaries(move |shard, _| {
            let Some(shard) = shard.as_mut() else {
                return Ok(false);
            };
            if read(shard, &user, &conversation)?.is_none() {
                return Ok(false);
            }
            shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePoints {
                        ids: vec![point(&user, &conversation)],
                    },
                ))
                .map_err(unavailable("cannot delete the summary"))?;
            shard.flush();
            Ok(true)
        })
        .await
    }
}
