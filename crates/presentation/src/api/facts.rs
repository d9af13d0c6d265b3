//! The facts API: `/users/{id}/facts` and `/characters/{id}/facts` (add, list, delete one, delete
//! all), and `POST /facts/search`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ragback_application::retrieval::MAX_TOP_K;
use ragback_domain::{
    CharacterId, Fact, FactId, FactOwner, FactText, OwnerKind, ScoredFact, UserId,
};
use serde::{Deserialize, Serialize};

use super::dto::at;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::state::SharedState;

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

/// A fact in a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FactOut {
    id: String,
    owner: &'static str,
    owner_id: String,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<Vec<f32>>,
}

impl FactOut {
    fn new(fact: Fact, score: Option<f32>, vector: Option<Vec<f32>>) -> Self {
        Self {
            id: fact.id.to_string(),
            owner: fact.owner.kind().as_str(),
            owner_id: fact.owner.id().to_owned(),
            text: fact.text.as_str().to_owned(),
            score,
            vector,
        }
    }
}

impl From<ScoredFact> for FactOut {
    fn from(f: ScoredFact) -> Self {
        Self::new(f.fact, Some(f.score), None)
    }
}

/// `{"facts": ["…", …]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddFactsRequest {
    facts: Vec<String>,
}

/// `{"ids": […], "added": n, "unchanged": m}`: an id per input fact, in input order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AddFactsResponse {
    ids: Vec<String>,
    added: usize,
    unchanged: usize,
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
    Path((kind, id)): Path<(String, String)>,
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
    let report = state.facts.add(facts, |_| {}).await?;
    Ok(Json(AddFactsResponse {
        ids,
        added: report.added,
        unchanged: report.unchanged + report.duplicates,
    }))
}

/// A page of facts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListResponse {
    facts: Vec<FactOut>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `limit`, `cursor` and `with_vectors` from the query string.
fn list_params(query: Option<&str>) -> Result<(usize, Option<FactId>, bool), ApiError> {
    let (mut limit, mut cursor, mut with_vectors) = (DEFAULT_PAGE, None, false);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            "limit",
                            format!("must be a number from 1 to {MAX_PAGE}"),
                        )
                    })?;
            }
            "cursor" => {
                cursor = Some(value.parse().map_err(|_| {
                    ApiError::invalid_field(
                        "cursor",
                        "must be a `next_cursor` from a previous page",
                    )
                })?);
            }
            "with_vectors" => {
                with_vectors = value.parse().map_err(|_| {
                    ApiError::invalid_field("with_vectors", "must be true or false")
                })?;
            }
            other => {
                return Err(ApiError::invalid_field(
                    other.to_owned(),
                    "unknown parameter (limit, cursor and with_vectors are accepted)",
                ));
            }
        }
    }
    Ok((limit, cursor, with_vectors))
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
        (status = 200, description = "A page", body = ListResponse),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<SharedState>,
    Path((kind, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<ListResponse>, ApiError> {
    let owner = owner(&kind, id)?;
    let (limit, cursor, with_vectors) = list_params(query.as_deref())?;
    let page = state
        .store
        .list(Some(&owner), cursor, limit, with_vectors)
        .await?;
    Ok(Json(ListResponse {
        facts: page
            .facts
            .into_iter()
            .map(|f| FactOut::new(f.fact, None, f.vector))
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
    Path((kind, id, fact_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let owner = owner(&kind, id)?;
    let fact_id: FactId = fact_id
        .parse()
        .map_err(|_| ApiError::invalid_field("fact_id", "must be a fact id (a UUID)"))?;
    match state.store.delete(&owner, &[fact_id]).await? {
        0 => Err(ApiError::fact_not_found(&owner, &fact_id)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// `{"deleted": n}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeletedResponse {
    deleted: usize,
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
    responses((status = 200, description = "How many were deleted", body = DeletedResponse))
)]
pub(crate) async fn delete_all(
    State(state): State<SharedState>,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<DeletedResponse>, ApiError> {
    let owner = owner(&kind, id)?;
    let deleted = state.store.delete_owner(&owner).await?;
    Ok(Json(DeletedResponse { deleted }))
}

/// `{"user_id"?, "character_id"?, "query", "top_k"?, "threshold"?}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchRequest {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    character_id: Option<String>,
    query: String,
    #[serde(default = "default_top_k")]
    top_k: usize,
    #[serde(default)]
    threshold: f32,
}

fn default_top_k() -> usize {
    10
}

/// `{"facts": [{id, owner, owner_id, text, score}]}`, best first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SearchResponse {
    facts: Vec<FactOut>,
}

/// `POST /facts/search`: the facts most similar to a text, with scores (to tune the threshold).
#[utoipa::path(
    post,
    path = "/facts/search",
    tag = "facts",
    summary = "The facts most similar to a text, with scores",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "Facts above the threshold, best first", body = SearchResponse),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 503, description = "No embedder, or it failed", body = ErrorBody),
    )
)]
pub(crate) async fn search(
    State(state): State<SharedState>,
    ApiJson(request): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
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
    if !(1..=MAX_TOP_K).contains(&request.top_k) {
        return Err(ApiError::invalid_field(
            "top_k",
            format!("must be between 1 and {MAX_TOP_K}"),
        ));
    }
    if !(-1.0..=1.0).contains(&request.threshold) {
        return Err(ApiError::invalid_field(
            "threshold",
            "must be between -1 and 1",
        ));
    }
    let found = state
        .chat
        .retriever()
        .search(&request.query, owners, request.top_k, request.threshold)
        .await?;
    Ok(Json(SearchResponse {
        facts: found.into_iter().map(FactOut::from).collect(),
    }))
}

/// Whose facts a path names, for messages.
pub(crate) fn describe(owner: &FactOwner) -> String {
    match owner.kind() {
        OwnerKind::User => format!("user `{}`", owner.id()),
        OwnerKind::Character => format!("character `{}`", owner.id()),
    }
}
