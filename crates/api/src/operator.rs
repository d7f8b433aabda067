//! The operator's endpoints: the node's status, its peers and the origins
//! it holds, and its member of the owner's replica group. All but the
//! status are for admins.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Admin;
use crate::dto::*;
use crate::{ApiError, AppState};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Deserialize)]
pub(crate) struct StatusQuery {
    #[serde(default)]
    digest: bool,
}

pub(crate) async fn status(
    State(app): State<AppState>,
    query: std::result::Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<NodeStatus>> {
    let Query(query) = query?;
    Ok(Json(app.admin.status(query.digest).await?))
}

/// Connected peers: address, latency and records exchanged (admins).
pub(crate) async fn peers(State(app): State<AppState>, _: Admin) -> Result<Response> {
    Ok(Json(json!({ "peers": app.admin.peers() })).into_response())
}

/// The owner's replica group as this member sees it (admins).
pub(crate) async fn group(State(app): State<AppState>, _: Admin) -> Result<Response> {
    Ok(Json(app.admin.group()).into_response())
}

/// Sets the group's heartbeat and election timeout for every member (admins).
pub(crate) async fn group_timers(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<GroupTimersInput>, JsonRejection>,
) -> Result<Response> {
    let Json(input) = body?;
    app.admin.set_group_timers(input.heartbeat_ms, input.election_timeout_ms).await?;
    Ok(Json(app.admin.group()).into_response())
}

/// Adds a node to the replica group (admins); answers once it votes.
pub(crate) async fn add_group_member(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<GroupMemberInput>, JsonRejection>,
) -> Result<Response> {
    let Json(input) = body?;
    app.admin.add_group_member(input).await?;
    Ok(Json(app.admin.group()).into_response())
}

/// Takes a member out of the replica group (admins).
pub(crate) async fn remove_group_member(
    State(app): State<AppState>,
    _: Admin,
    id: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Response> {
    let Path(id) = id?;
    app.admin.remove_group_member(id).await?;
    Ok(Json(app.admin.group()).into_response())
}

/// Cuts this member off from some others, for fault tests (admins; only
/// with `[group] fault_hooks = true`).
pub(crate) async fn group_partition(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<GroupPartitionInput>, JsonRejection>,
) -> Result<Response> {
    let Json(input) = body?;
    app.admin.cut_off_group_peers(input.cut_off)?;
    Ok(Json(app.admin.group()).into_response())
}

/// Records held per origin and the frozen origins (admins).
pub(crate) async fn origins(State(app): State<AppState>, _: Admin) -> Result<Response> {
    let (origins, frozen) = app.admin.origins(ORIGINS_MAX).await?;
    Ok(Json(json!({ "origins": origins, "equivocations": frozen })).into_response())
}

/// Origins `GET /api/v1/origins` lists, those with the most records first.
const ORIGINS_MAX: u32 = 1_000;
