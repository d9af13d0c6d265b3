//! How a fact is laid out in Qdrant, the same in the embedded store (Qdrant Edge) and on a server,
//! so that facts move between them unchanged: the point id (the fact's UUID), the named vectors
//! (the dense `fact` and the sparse `lexical`), the payload (`payload`), the owner index, and how
//! a store from before the lexical vector is migrated. Each adapter keeps only its transport.

pub(crate) mod lexical;
pub(crate) mod payload;
pub(crate) mod summary;

use ragback_application::ports::FactStoreError;

pub(crate) use lexical::LEXICAL;
pub(crate) use payload::{MESSAGE_HASH, OWNER_KEY, from_payload, model_of, to_payload};

/// The name of the one dense vector of each point.
pub(crate) const VECTOR: &str = "fact";

/// Facts given their lexical vector per call when a store from before it is migrated.
pub(crate) const MIGRATION_BATCH: usize = 256;

/// The refusal of a point whose id is a number: ragback writes UUIDs only.
pub(crate) fn numeric_point(id: u64) -> FactStoreError {
    FactStoreError::Corrupted(format!(
        "point {id} has a numeric id: the store holds data not written by ragback"
    ))
}
