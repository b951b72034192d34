//! Inviting a colleague into one session: `POST /v1/sessions/{id}/invitations` makes an agent
//! token limited to that session, expiring within hours, shown this once.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use farsight_protocol::SessionId;
use farsight_store::{Actor, AuditAction, TokenRole};
use serde::Deserialize;

use super::{ApiError, STAFF, authorize_scoped};
use crate::Shared;

/// How long an invitation lasts unless asked otherwise, and at most.
const DEFAULT_HOURS: u32 = 8;
const MAX_HOURS: u32 = 72;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// The colleague's name as others will see it; default "guest of <inviter>".
    name: Option<String>,
    hours: Option<u32>,
}

pub async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Option<Json<InvitationRequest>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let inviter = authorize_scoped(&shared, &headers, STAFF).await?;
    if let Some(only) = inviter.session.filter(|only| *only as u64 != id) {
        return Err(ApiError::OutOfScope(only));
    }
    let request = body.map(|Json(r)| r).unwrap_or_default();
    let hours = request.hours.unwrap_or(DEFAULT_HOURS);
    if !(1..=MAX_HOURS).contains(&hours) {
        let message = format!("hours must be 1 to {MAX_HOURS}, not {hours}");
        return Err(ApiError::BadRequest(message));
    }
    let name = request
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("guest of {}", inviter.name));
    if name.chars().count() > 128 {
        return Err(ApiError::BadRequest("name: at most 128 characters".into()));
    }
    let session = shared.store.session(SessionId(id)).await?;
    let session = session.ok_or(ApiError::NotFound)?;
    if session.ended_at.is_some() {
        return Err(ApiError::Conflict(format!("session {id} has ended")));
    }
    let (token, secret) = shared.store.create_token(TokenRole::Agent, &name).await?;
    shared.store.set_token_session(token.id, session.id).await?;
    let expires_at = token.created_at + i64::from(hours) * 3_600_000_000;
    shared.store.set_token_expiry(token.id, expires_at).await?;
    let actor = Actor {
        token: Some(inviter.id),
        name: inviter.name.clone(),
    };
    let detail = format!(
        "invitation: agent token {} ({name}) for {hours} h",
        token.id
    );
    let at = Some(SessionId(id));
    shared
        .store
        .audit(&actor, AuditAction::TokenCreate, at, &detail)
        .await?;
    let body = serde_json::json!({
        "token": secret,
        "id": token.id,
        "name": name,
        "session": session.id,
        "expires_at": expires_at,
    });
    Ok((StatusCode::CREATED, Json(body)))
}
