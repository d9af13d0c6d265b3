//! The JSON the API sends and takes, shared by the server (`api`) and its clients in this crate
//! (`ragback facts` through a server, `ragback chat`): one definition of each body, serialised by
//! one side and read by the other, and described in `/openapi.json`.

mod error;
mod facts;
mod generate;
mod memory;
mod summary;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use facts::{
    AddFactsRequest, AddFactsResponse, DeleteFactsResponse, FactRecord, FactSourceDto,
    ListFactsResponse, OwnerKindDto, ProvenanceFields, SearchFactsRequest, SearchFactsResponse,
};
pub use generate::{
    DeltaEvent, FactsEvent, GenerateResponse, PromptDto, RetrievalReport, RetrievalStatusDto,
    SafetyDto, TimingsDto, UsageDto, UsedFact, UsedLore,
};
pub use memory::{ActionDto, DecisionDto, ExtractResponse};
pub use summary::SummaryRecord;
