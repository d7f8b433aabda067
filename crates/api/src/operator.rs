//! The operator's endpoints: the node's status, its peers and the origins
//! it holds, and its member of the owner's replica group. All but the
//! status are for admins.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Admin;
use crate::dto::*;
use crate::request::NumberIdPath;
use crate::{ApiError, AppState};

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusQuery {
    /// Adds the catalog's digest (it reads the whole catalog).
    #[serde(default)]
    digest: bool,
}

/// Peers, records held, replication lag: what an operator checks first.
#[utoipa::path(get, path = "/api/v1/status", tag = "operator", params(StatusQuery), responses((status = 200, body = NodeStatus)))]
pub(crate) async fn status(
    State(app): State<AppState>,
    query: std::result::Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<NodeStatus>> {
    let Query(query) = query?;
    Ok(Json(app.admin.status(query.digest).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PeersView {
    peers: Vec<PeerView>,
}

/// Connected peers: address, latency and records exchanged (admins).
#[utoipa::path(get, path = "/api/v1/peers", tag = "operator", responses((status = 200, body = PeersView)))]
pub(crate) async fn peers(State(app): State<AppState>, _: Admin) -> Json<PeersView> {
    Json(PeersView { peers: app.admin.peers() })
}

/// The owner's replica group as this member sees it: members, leader,
/// term, indexes and timers (admins).
#[utoipa::path(get, path = "/api/v1/group", tag = "operator", responses((status = 200, body = GroupView)))]
pub(crate) async fn group(State(app): State<AppState>, _: Admin) -> Json<GroupView> {
    Json(app.admin.group())
}

/// Sets the group's heartbeat and election timeout for every member
/// (admins; the election timeout at least ten heartbeats).
#[utoipa::path(put, path = "/api/v1/group/timers", tag = "operator", request_body = GroupTimersInput, responses((status = 200, body = GroupView)))]
pub(crate) async fn group_timers(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<GroupTimersInput>, JsonRejection>,
) -> Result<Json<GroupView>> {
    let Json(input) = body?;
    app.admin.set_group_timers(input.heartbeat_ms, input.election_timeout_ms).await?;
    Ok(Json(app.admin.group()))
}

/// Adds a node to the replica group: a learner until it has caught up,
/// then a voter (admins; any member takes it). Answers once it votes.
#[utoipa::path(post, path = "/api/v1/group/members", tag = "operator", request_body = GroupMemberInput, responses((status = 200, body = GroupView)))]
pub(crate) async fn add_group_member(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<GroupMemberInput>, JsonRejection>,
) -> Result<Json<GroupView>> {
    let Json(input) = body?;
    app.admin.add_group_member(input).await?;
    Ok(Json(app.admin.group()))
}

/// A one-time, expiring invitation for a machine to join the replica
/// group with `caravan group join --invite TOKEN` (admins).
#[utoipa::path(post, path = "/api/v1/group/invitations", tag = "operator", request_body = InvitationInput, responses((status = 201, body = InvitationView)))]
pub(crate) async fn invite(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<InvitationInput>, JsonRejection>,
) -> Result<Response> {
    let Json(input) = body?;
    let ttl_s = input.ttl_seconds.map_or(3_600, i64::from);
    if !(60..=604_800).contains(&ttl_s) {
        return Err(ApiError::invalid("ttl_seconds must be between 60 (a minute) and 604800 (a week)"));
    }
    let invitation = app.admin.invite(ttl_s * 1000).await?;
    Ok((StatusCode::CREATED, Json(invitation)).into_response())
}

/// Takes a member out of the replica group (admins).
#[utoipa::path(delete, path = "/api/v1/group/members/{id}", tag = "operator", params(NumberIdPath), responses((status = 200, body = GroupView)))]
pub(crate) async fn remove_group_member(
    State(app): State<AppState>,
    _: Admin,
    id: std::result::Result<Path<u64>, PathRejection>,
) -> Result<Json<GroupView>> {
    let Path(id) = id?;
    app.admin.remove_group_member(id).await?;
    Ok(Json(app.admin.group()))
}

/// Cuts this member off from some others, for fault tests (admins; only
/// with `[group] fault_hooks = true`, else 404). An empty list heals.
#[utoipa::path(put, path = "/api/v1/group/partition", tag = "operator", request_body = GroupPartitionInput, responses((status = 200, body = GroupView)))]
pub(crate) async fn group_partition(
    State(app): State<AppState>,
    _: Admin,
    body: std::result::Result<Json<GroupPartitionInput>, JsonRejection>,
) -> Result<Json<GroupView>> {
    let Json(input) = body?;
    app.admin.cut_off_group_peers(input.cut_off)?;
    Ok(Json(app.admin.group()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OriginsView {
    /// Those with the most records first, at most 1,000.
    origins: Vec<OriginView>,
    equivocations: Vec<EquivocationView>,
}

/// Records held per origin, and the origins frozen for equivocating (admins).
#[utoipa::path(get, path = "/api/v1/origins", tag = "operator", responses((status = 200, body = OriginsView)))]
pub(crate) async fn origins(State(app): State<AppState>, _: Admin) -> Result<Json<OriginsView>> {
    let (origins, equivocations) = app.admin.origins(ORIGINS_MAX).await?;
    Ok(Json(OriginsView { origins, equivocations }))
}

/// Origins `GET /api/v1/origins` lists, those with the most records first.
const ORIGINS_MAX: u32 = 1_000;
