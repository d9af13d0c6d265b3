//! The facts API: `/users/{id}/facts` and `/characters/{id}/facts` (add, list, delete one, delete
//! all), and `POST /facts/search`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use ragback_application::bounds;
use ragback_application::facts::stamped;
use ragback_domain::{CharacterId, Fact, FactId, FactOwner, FactSource, FactText, UserId};
use serde::Deserialize;

use super::admission::bounded;
use super::dto::at;
use super::error::ApiError;
use super::json::ApiJson;
use super::path::ApiPath;
use super::query;
use super::state::SharedState;
use crate::wire::{
    AddFactsRequest, AddFactsResponse, DeleteFactsResponse, ErrorBody, FactRecord, FactSourceDto,
    ListFactsResponse, SearchFactsRequest, SearchFactsResponse,
};

/// Largest page of a listing.
const MAX_PAGE: usize = 1_000;
/// Page size when none is given.
const DEFAULT_PAGE: usize = 100;

/// `users` or `characters` and the id, from the path.
fn owner(kind: &str, id: String) -> Result<FactOwner, ApiError> {
    match kind {
        "users" => Ok(FactOwner::User(at("user_id", UserId::parse(id))?)),
        "characters" => Ok(FactOwner::Character(at(
            "character_id",
            CharacterId::parse(id),
        )?)),
        _ => Err(ApiError::not_found_route()),
    }
}

/// `POST /{users|characters}/{id}/facts`.
#[utoipa::path(
    post,
    path = "/{kind}/{id}/facts",
    tag = "facts",
    summary = "Add facts (embedded, stored; the same text twice is kept once)",
    params(
        ("kind" = String, Path, description = "`users` or `characters`"),
        ("id" = String, Path, description = "The user's or character's id"),
    ),
    request_body = AddFactsRequest,
    responses(
        (status = 200, description = "Ids of the facts, new or not", body = AddFactsResponse),
        (status = 403, description = "Admin keys are configured and this is not one", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "No embedder, or the store is unavailable", body = ErrorBody),
    )
)]
pub(crate) async fn add(
    State(state): State<SharedState>,
    ApiPath((kind, id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<AddFactsRequest>,
) -> Result<Json<AddFactsResponse>, ApiError> {
    let owner = owner(&kind, id)?;
    if request.facts.is_empty() {
        return Err(ApiError::invalid_field("facts", "give at least one fact"));
    }
    let max = state.limits.facts_per_call;
    if request.facts.len() > max {
        return Err(ApiError::invalid_field(
            "facts",
            format!(
                "at most {max} facts per call, got {}; send them in several calls \
                 (RAGBACK_SERVER__MAX_FACTS_PER_CALL sets the limit)",
                request.facts.len()
            ),
        ));
    }
    let source = match request.source {
        None => FactSource::Api,
        Some(FactSourceDto::Extracted) => {
            return Err(ApiError::invalid_field(
                "source",
                "`extracted` is recorded by memory extraction only: use `api` or `seeded`",
            ));
        }
        Some(source) => source.into(),
    };
    let facts = request
        .facts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let text = at(format!("facts[{i}]"), FactText::parse(text))?;
            Ok(Fact::new(owner.clone(), text))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let ids = facts.iter().map(|f| f.id.to_string()).collect();
    let report = bounded(
        &state.admission.upstream,
        state.limits.request_timeout,
        "adding facts",
        state.facts.add(stamped(facts, source), |_| {}),
    )
    .await?;
    Ok(Json(AddFactsResponse {
        ids,
        added: report.added,
        unchanged: report.unchanged + report.duplicates,
    }))
}

/// `limit`, `cursor` and `with_vectors`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    with_vectors: bool,
}

/// `GET /{users|characters}/{id}/facts?limit=&cursor=&with_vectors=`.
#[utoipa::path(
    get,
    path = "/{kind}/{id}/facts",
    tag = "facts",
    summary = "List an owner's facts, a page at a time",
    params(
        ("kind" = String, Path, description = "`users` or `characters`"),
        ("id" = String, Path, description = "The user's or character's id"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 1000 (100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("with_vectors" = Option<bool>, Query, description = "Include the vectors"),
    ),
    responses(
        (status = 200, description = "A page", body = ListFactsResponse),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<SharedState>,
    ApiPath((kind, id)): ApiPath<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ListFactsResponse>, ApiError> {
    let owner = owner(&kind, id)?;
    let params: ListQuery = query::parse(raw.as_deref())?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be a number from 1 to {MAX_PAGE}"),
        ));
    }
    let cursor = params
        .cursor
        .map(|c| c.parse::<FactId>())
        .transpose()
        .map_err(|_| {
            ApiError::invalid_field("cursor", "must be a `next_cursor` from a previous page")
        })?;
    let page = state
        .facts
        .list(Some(&owner), cursor, limit, params.with_vectors)
        .await?;
    Ok(Json(ListFactsResponse {
        facts: page
            .facts
            .into_iter()
            .map(|f| FactRecord::new(f.fact, None, f.vector))
            .collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

/// `DELETE /{users|characters}/{id}/facts/{fact_id}`: 204, or 404 when the owner has no such fact.
#[utoipa::path(
    delete,
    path = "/{kind}/{id}/facts/{fact_id}",
    tag = "facts",
    summary = "Delete one fact",
    params(
        ("kind" = String, Path, description = "`users` or `characters`"),
        ("id" = String, Path, description = "The user's or character's id"),
        ("fact_id" = String, Path, description = "The fact's id (a UUID)"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The owner has no such fact", body = ErrorBody),
    )
)]
pub(crate) async fn delete_one(
    State(state): State<SharedState>,
    ApiPath((kind, id, fact_id)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let owner = owner(&kind, id)?;
    let fact_id: FactId = fact_id
        .parse()
        .map_err(|_| ApiError::invalid_field("fact_id", "must be a fact id (a UUID)"))?;
    if state.facts.delete(&owner, fact_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::fact_not_found(&owner, &fact_id))
    }
}

/// `DELETE /{users|characters}/{id}/facts`: every fact of the owner.
#[utoipa::path(
    delete,
    path = "/{kind}/{id}/facts",
    tag = "facts",
    summary = "Delete every fact of an owner",
    params(
        ("kind" = String, Path, description = "`users` or `characters`"),
        ("id" = String, Path, description = "The user's or character's id"),
    ),
    responses((status = 200, description = "How many were deleted", body = DeleteFactsResponse))
)]
pub(crate) async fn delete_all(
    State(state): State<SharedState>,
    ApiPath((kind, id)): ApiPath<(String, String)>,
) -> Result<Json<DeleteFactsResponse>, ApiError> {
    let owner = owner(&kind, id)?;
    let deleted = state.facts.delete_owner(&owner).await?;
    Ok(Json(DeleteFactsResponse { deleted }))
}

/// `POST /facts/search`: the facts most similar to a text, with scores (to tune the threshold).
#[utoipa::path(
    post,
    path = "/facts/search",
    tag = "facts",
    summary = "The facts most similar to a text, with scores",
    request_body = SearchFactsRequest,
    responses(
        (status = 200, description = "Facts above the threshold, best first", body = SearchFactsResponse),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "No embedder, or it failed", body = ErrorBody),
    )
)]
pub(crate) async fn search(
    State(state): State<SharedState>,
    ApiJson(request): ApiJson<SearchFactsRequest>,
) -> Result<Json<SearchFactsResponse>, ApiError> {
    let mut owners = Vec::new();
    if let Some(id) = request.user_id {
        owners.push(FactOwner::User(at("user_id", UserId::parse(id))?));
    }
    if let Some(id) = request.character_id {
        owners.push(FactOwner::Character(at(
            "character_id",
            CharacterId::parse(id),
        )?));
    }
    if owners.is_empty() {
        return Err(ApiError::invalid_field(
            "user_id",
            "give user_id, character_id or both",
        ));
    }
    if request.query.trim().is_empty() {
        return Err(ApiError::invalid_field("query", "must not be empty"));
    }
    at("top_k", bounds::TOP_K.check_count(request.top_k))?;
    at("threshold", bounds::THRESHOLD.check(request.threshold))?;
    let found = bounded(
        &state.admission.upstream,
        state.limits.request_timeout,
        "the search",
        state
            .chat
            .retriever()
            .search(&request.query, owners, request.top_k, request.threshold),
    )
    .await?;
    Ok(Json(SearchFactsResponse {
        facts: found.into_iter().map(FactRecord::from).collect(),
    }))
}
