//! Conversation summaries on a Qdrant server: a collection of their own beside the facts'
//! (`{collection}_summaries`), created with the first summary; writes wait for the server.

use async_trait::async_trait;
use qdrant_client::qdrant::{
    DeletePointsBuilder, GetPointsBuilder, PointId, PointStruct, PointsIdsList, UpsertPointsBuilder,
};
use qdrant_client::{Payload, QdrantError};
use ragback_application::ports::{SummaryStore, SummaryStoreError};
use ragback_domain::{ConversationId, ConversationSummary, UserId};

use super::QdrantFactStore;
use super::points::json_map;
use crate::layout::summary::{
    SUMMARIES, SUMMARY_VECTOR, summary_from, summary_payload, summary_point, summary_vector,
};

impl QdrantFactStore {
    fn summaries_collection(&self) -> String {
        format!("{}_{SUMMARIES}", self.collection)
    }

    fn summary_unavailable(
        &self,
        what: &'static str,
    ) -> impl Fn(QdrantError) -> SummaryStoreError + '_ {
        move |e| SummaryStoreError::Unavailable(format!("{what} at {}: {e}", self.url))
    }

    /// Whether the summaries' collection exists; once it does, known without asking again (a
    /// turn with a conversation id reads its summary: one call, not two).
    async fn summaries_exist(&self) -> Result<bool, SummaryStoreError> {
        self.side_exists(&self.summaries_collection(), &self.summaries_known)
            .await
            .map_err(self.summary_unavailable("checking the summaries"))
    }
}

fn point(user: &UserId, conversation: &ConversationId) -> PointId {
    summary_point(user, conversation).to_string().into()
}

#[async_trait]
impl SummaryStore for QdrantFactStore {
    async fn get_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<ConversationSummary>, SummaryStoreError> {
        if !self.summaries_exist().await? {
            return Ok(None);
        }
        let found = self
            .client
            .get_points(
                match self.cluster.read() {
                    Some(read) => GetPointsBuilder::new(
                        self.summaries_collection(),
                        vec![point(user, conversation)],
                    )
                    .read_consistency(read),
                    None => GetPointsBuilder::new(
                        self.summaries_collection(),
                        vec![point(user, conversation)],
                    ),
                }
                .with_payload(true)
                .with_vectors(false),
            )
            .await
            .map_err(self.summary_unavailable("reading a summary"))?;
        found
            .result
            .into_iter()
            .next()
            .map(|p| summary_from(&json_map(p.payload)))
            .transpose()
    }

    async fn put_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        summary: &ConversationSummary,
    ) -> Result<(), SummaryStoreError> {
        let collection = self.summaries_collection();
        self.create_side(&collection, SUMMARY_VECTOR, &self.summaries_known)
            .await
            .map_err(self.summary_unavailable("creating the summaries"))?;
        let payload = Payload::try_from(summary_payload(user, conversation, summary))
            .map_err(|e| SummaryStoreError::Corrupted(format!("a summary's payload: {e}")))?;
        let vectors = std::collections::HashMap::from([(
            SUMMARY_VECTOR.to_owned(),
            qdrant_client::qdrant::Vector::new_dense(summary_vector()),
        )]);
        self.client
            .upsert_points(
                UpsertPointsBuilder::new(
                    &collection,
                    vec![PointStruct::new(
                        point(user, conversation),
                        vectors,
                        payload,
                    )],
                )
                .wait(true)
                .ordering(self.cluster.ordering()),
            )
            .await
            .map_err(self.summary_unavailable("storing a summary"))?;
        Ok(())
    }

    async fn delete_summary(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<bool, SummaryStoreError> {
        if self.get_summary(user, conversation).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(self.summaries_collection())
                    .points(PointsIdsList {
                        ids: vec![point(user, conversation)],
                    })
                    .wait(true)
                    .ordering(self.cluster.ordering()),
            )
            .await
            .map_err(self.summary_unavailable("deleting a summary"))?;
        Ok(true)
    }
}
