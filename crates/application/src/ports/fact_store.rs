//! Port: where facts and their vectors live.

use async_trait::async_trait;
use ragback_domain::{Fact, FactId, FactOwner, ScoredFact};

/// A fact with its document embedding, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedFact {
    /// The fact.
    pub fact: Fact,
    /// Its embedding (`EmbeddingPurpose::Document`).
    pub vector: Vec<f32>,
    /// The embedding model ([`Embedder::model_id`](super::Embedder::model_id)), recorded with the
    /// fact: vectors of different models cannot be compared.
    pub model: String,
}

/// A similarity search restricted to some owners.
#[derive(Debug, Clone, PartialEq)]
pub struct FactQuery {
    /// The query embedding (`EmbeddingPurpose::Query`).
    pub vector: Vec<f32>,
    /// Only facts of these owners may be returned. Empty means no facts.
    pub owners: Vec<FactOwner>,
    /// At most this many facts.
    pub limit: usize,
    /// The model that embedded the query.
    pub model: String,
}

/// A fact found by words: its cosine similarity to the query vector (in `fact.score`, as in
/// [`FactStore::search`]) and its lexical score.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    /// The fact, scored by cosine similarity to the query vector.
    pub fact: ScoredFact,
    /// Its BM25 score for the query text (term frequency, document length, and the inverse
    /// document frequency of each shared word over the whole store); above 0, since it shares a
    /// word with the query.
    pub lexical: f32,
}

/// A stored fact, with its vector when it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFact {
    /// The fact.
    pub fact: Fact,
    /// Its document embedding, when listed `with_vectors`.
    pub vector: Option<Vec<f32>>,
    /// The model that embedded it, when recorded.
    pub model: Option<String>,
}

/// One page of a listing, in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct FactPage {
    /// The facts of this page.
    pub facts: Vec<StoredFact>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<FactId>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertReport {
    /// Facts that were not in the store before.
    pub added: usize,
    /// Facts already stored (same id); left as they were.
    pub unchanged: usize,
}

/// What the store holds, for readiness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    /// Number of stored facts.
    pub facts: usize,
    /// The vector dimension the store was created with; `None` before the first fact.
    pub dimension: Option<usize>,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FactStoreError {
    /// The store cannot be reached or read (I/O error, server down).
    #[error("fact store unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the store.
    #[error("fact store is locked: {0}")]
    Locked(String),
    /// The vectors do not have the dimension the store was created with: the embedder changed.
    #[error(
        "the fact store holds {store}-dimensional vectors but got {given}-dimensional ones: the \
         embedder changed since the facts were stored; delete the store and re-seed the facts"
    )]
    DimensionMismatch {
        /// The store's dimension.
        store: usize,
        /// The dimension received.
        given: usize,
    },
    /// The facts were embedded by another model than the one used now.
    #[error(
        "the fact store holds facts embedded with `{store}` but the embedder is now `{given}`: \
         vectors of different models cannot be compared; delete the store and re-seed the facts"
    )]
    ModelMismatch {
        /// The model the stored facts were embedded with.
        store: String,
        /// The model in use.
        given: String,
    },
    /// Stored data could not be understood.
    #[error("fact store holds invalid data: {0}")]
    Corrupted(String),
    /// The store is not set up as the settings say (a Qdrant collection's shards or replication):
    /// fix the settings or the store; retrying does not help.
    #[error("fact store misconfigured: {0}")]
    Misconfigured(String),
}

/// Refuses `given` when the store's facts record another model (`stored`).
pub fn ensure_same_model(stored: Option<&str>, given: &str) -> Result<(), FactStoreError> {
    match stored {
        Some(stored) if stored != given => Err(FactStoreError::ModelMismatch {
            store: stored.to_owned(),
            given: given.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Stores facts and finds them by similarity.
///
/// Implementations must: never return, nor delete, a fact of an owner that was not asked for;
/// return search results best first with cosine similarity as score; keep one copy per fact id;
/// refuse vectors whose dimension differs from the store's with
/// [`FactStoreError::DimensionMismatch`], and queries or facts of another model than the stored
/// facts' with [`FactStoreError::ModelMismatch`]; list facts in id order, pages chaining without gaps or
/// repeats; and make a write durable before it returns.
#[async_trait]
pub trait FactStore: Send + Sync {
    /// Stores facts; facts whose id is already stored are left unchanged.
    async fn upsert(&self, facts: Vec<EmbeddedFact>) -> Result<UpsertReport, FactStoreError>;

    /// The `limit` facts most similar to the query vector among the given owners, best first.
    async fn search(&self, query: FactQuery) -> Result<Vec<ScoredFact>, FactStoreError>;

    /// The `query.limit` facts of the given owners that best match `text` by words (BM25, after
    /// the store's tokenizer: lowercase, stop words removed, stemmed), best first, each with its
    /// cosine similarity to `query.vector` too. Facts sharing no word are never returned.
    async fn search_lexical(
        &self,
        query: FactQuery,
        text: &str,
    ) -> Result<Vec<LexicalHit>, FactStoreError>;

    /// Which of `ids` are already stored.
    async fn known(&self, ids: &[FactId]) -> Result<Vec<FactId>, FactStoreError>;

    /// A page of at most `limit` facts (a limit of 0 counts as 1) of `owner` (or of everyone),
    /// starting at `start` (an id from a previous page's `next`), in id order.
    async fn list(
        &self,
        owner: Option<&FactOwner>,
        start: Option<FactId>,
        limit: usize,
        with_vectors: bool,
    ) -> Result<FactPage, FactStoreError>;

    /// Deletes those of `ids` that belong to `owner`; returns how many were deleted.
    async fn delete(&self, owner: &FactOwner, ids: &[FactId]) -> Result<usize, FactStoreError>;

    /// Deletes every fact of `owner`; returns how many were deleted.
    async fn delete_owner(&self, owner: &FactOwner) -> Result<usize, FactStoreError>;

    /// Whether `owner` holds a fact whose provenance records the message hash `message_hash`
    /// (a fact extracted from that message): a filter in the store, not a scan of the owner's
    /// facts.
    async fn has_message(
        &self,
        owner: &FactOwner,
        message_hash: &str,
    ) -> Result<bool, FactStoreError>;

    /// How many facts one owner (or, with `None`, everyone) has.
    async fn count(&self, owner: Option<&FactOwner>) -> Result<usize, FactStoreError>;

    /// Whether the store is usable, and what it holds.
    async fn status(&self) -> Result<StoreStatus, FactStoreError>;

    /// Gets the store ready before a server takes requests: checks its set-up against the
    /// settings and runs the migrations it needs, once across the processes sharing it. A server
    /// calls it at start-up, off any request, and is not ready until it is done; stores with
    /// nothing to do keep this default.
    async fn prepare(&self) -> Result<(), FactStoreError> {
        Ok(())
    }

    /// Whether the store answers, cheaply: what readiness probes call, often. Counts nothing.
    async fn ping(&self) -> Result<(), FactStoreError> {
        self.status().await.map(drop)
    }

    /// Writes everything held in memory to durable storage (called once more at shutdown;
    /// writes are already durable when acknowledged). Remote stores have nothing to do.
    async fn flush(&self) -> Result<(), FactStoreError> {
        Ok(())
    }
}
