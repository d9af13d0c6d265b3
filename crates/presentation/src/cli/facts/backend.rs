//! The one facts interface of `ragback facts`, with two implementations: [`LocalFacts`] (the
//! store opened in this process, through the application's use cases) and
//! [`RemoteFacts`](super::remote::RemoteFacts) (the API of the `ragback serve` that holds it).

use async_trait::async_trait;
use ragback_application::ports::{EmbeddedFact, FactPage, FactStoreError};
use ragback_application::retrieval::SearchError;
use ragback_application::{AddFactsError, AddFactsReport, FactLibrary, FactRetriever};
use ragback_domain::{Fact, FactId, FactOwner, ScoredFact};

/// Why a facts command failed.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] FactStoreError),
    /// A search failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The server did not answer, or refused.
    #[error("{0}")]
    Server(String),
    /// The server's API lists facts per owner only.
    #[error("through the server API facts are listed per owner: give --user or --character")]
    NeedsOwner,
}

/// Why adding facts stopped, and how far it got: what was stored stays stored, and running the
/// same command again finishes the job.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct AddStopped {
    /// What was stored before it stopped.
    pub done: AddFactsReport,
    /// Why.
    pub reason: StopReason,
}

/// Why adding facts stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopReason {
    /// Ctrl-C, between two batches.
    #[error("interrupted")]
    Interrupted,
    /// The embedder, the store or the server failed.
    #[error("{0}")]
    Failed(String),
}

/// Progress after each stored batch.
pub type OnProgress<'a> = &'a mut (dyn FnMut(&AddFactsReport) + Send);
/// Asked before each batch: stop now?
pub type StopWhen<'a> = &'a (dyn Fn() -> bool + Sync);

/// What `ragback facts` needs from wherever the facts are.
#[async_trait]
pub trait FactsBackend: Send + Sync {
    /// Which of `facts` are stored already.
    async fn stored(&self, facts: &[Fact]) -> Result<Vec<FactId>, FactsError>;

    /// Embeds and stores `facts`, calling `progress` after every batch and stopping between
    /// batches when `stop` says so.
    async fn add(
        &self,
        facts: Vec<Fact>,
        progress: OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<AddFactsReport, AddStopped>;

    /// Stores exported facts with their vectors where the backend can take vectors; else embeds
    /// their texts again.
    async fn import(
        &self,
        facts: Vec<EmbeddedFact>,
        progress: OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<AddFactsReport, AddStopped>;

    /// A page of `owner`'s facts (or everyone's, where the backend can).
    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactsError>;

    /// How many facts `owner` has.
    async fn count(&self, owner: &FactOwner) -> Result<usize, FactsError>;

    /// Deletes one fact; `false` when the owner has no such fact.
    async fn delete(&self, owner: &FactOwner, id: FactId) -> Result<bool, FactsError>;

    /// Deletes every fact of `owner`; returns how many there were.
    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactsError>;

    /// The facts of `owners` most similar to `query`, at or above `threshold`, best first.
    async fn search(
        &self,
        query: &str,
        owners: &[FactOwner],
        top_k: usize,
        threshold: f32,
    ) -> Result<Vec<ScoredFact>, FactsError>;

    /// Where the facts are, for the summary line (`the store holds 27 facts`).
    async fn location(&self) -> String;
}

/// The store opened by this process.
pub struct LocalFacts {
    library: FactLibrary,
    retriever: FactRetriever,
}

impl LocalFacts {
    /// Facts through these use cases.
    pub fn new(library: FactLibrary, retriever: FactRetriever) -> Self {
        Self { library, retriever }
    }
}

/// The stop of a local add.
fn stopped(error: AddFactsError) -> AddStopped {
    let (done, reason) = match error {
        AddFactsError::NoEmbedder => (
            AddFactsReport::default(),
            StopReason::Failed(
                "no embedder is configured: set RAGBACK_EMBEDDER__PROVIDER=local (after `make \
                 model`) or a Cohere key (COHERE_API_KEY)"
                    .into(),
            ),
        ),
        AddFactsError::Interrupted { done } => (done, StopReason::Interrupted),
        AddFactsError::Embed { done, source } => (
            done,
            StopReason::Failed(format!("embedding failed: {source}")),
        ),
        AddFactsError::Store { done, source } => (
            done,
            StopReason::Failed(format!("storing failed: {source}")),
        ),
        full @ AddFactsError::OwnerFull { .. } => (
            AddFactsReport::default(),
            StopReason::Failed(full.to_string()),
        ),
    };
    AddStopped { done, reason }
}

#[async_trait]
impl FactsBackend for LocalFacts {
    async fn stored(&self, facts: &[Fact]) -> Result<Vec<FactId>, FactsError> {
        let ids: Vec<FactId> = facts.iter().map(|f| f.id).collect();
        Ok(self.library.known(&ids).await?)
    }

    async fn add(
        &self,
        facts: Vec<Fact>,
        progress: OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<AddFactsReport, AddStopped> {
        self.library
            .add_until(facts, progress, stop)
            .await
            .map_err(stopped)
    }

    async fn import(
        &self,
        facts: Vec<EmbeddedFact>,
        progress: OnProgress<'_>,
        stop: StopWhen<'_>,
    ) -> Result<AddFactsReport, AddStopped> {
        self.library
            .import(facts, 256, progress, stop)
            .await
            .map_err(stopped)
    }

    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactsError> {
        Ok(self.library.list(owner, start, limit, with_vectors).await?)
    }

    async fn count(&self, owner: &FactOwner) -> Result<usize, FactsError> {
        Ok(self.library.count(Some(owner)).await?)
    }

    async fn delete(&self, owner: &FactOwner, id: FactId) -> Result<bool, FactsError> {
        Ok(self.library.delete(owner, id).await?)
    }

    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactsError> {
        Ok(self.library.delete_owner(owner).await?)
    }

    async fn search(
        &self,
        query: &str,
        owners: &[FactOwner],
        top_k: usize,
        threshold: f32,
    ) -> Result<Vec<ScoredFact>, FactsError> {
        Ok(self
            .retriever
            .search(query, owners.to_vec(), top_k, threshold)
            .await?)
    }

    async fn location(&self) -> String {
        match self.library.count(None).await {
            Ok(total) => format!("the store holds {total} facts"),
            Err(error) => format!("the store cannot count its facts ({error})"),
        }
    }
}
