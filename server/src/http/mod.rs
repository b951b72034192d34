//! HTTP: health, Prometheus metrics and the JSON API. Handlers stay small; errors go
//! through [`ApiError`]; every route but health and metrics takes a bearer token.

mod console;
pub mod headers;
mod invitations;
mod outreach;
mod sso;
mod throttle;
pub mod tls;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use farsight_protocol::SessionId;
use serde::Serialize;

use crate::Shared;
use farsight_outreach::event::Tier;
use farsight_store::{AuditEntry, StoreError, TokenRecord, TokenRole};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(console::index))
        .route("/console/{name}", get(console::file))
        .route("/v1/console/config", get(console::config))
        .route("/v1/live", get(crate::gateway::websocket::upgrade))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route(
            "/v1/sessions/{id}/invitations",
            axum::routing::post(invitations::create),
        )
        .route("/v1/audit", get(get_audit))
        .merge(outreach::routes())
        .merge(sso::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            throttle::failed_sign_ins,
        ))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            headers::security_headers,
        ))
        .with_state(shared)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    TokenRefused(&'static str),
    #[error("this token's role may not do that")]
    Forbidden,
    #[error("the token is limited to session {0}")]
    OutOfScope(i64),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage unavailable")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized | ApiError::TokenRefused(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::OutOfScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(e) => {
                tracing::error!(error = %e, "storage failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Result<&'static str, ApiError> {
    shared.store.list_tokens().await?;
    Ok("ok\n")
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.relay.sync_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

/// The caller's token, which must have one of the `allowed` roles and not be limited to a
/// session: what it reads or writes spans the installation.
pub async fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    allowed: &[TokenRole],
) -> Result<TokenRecord, ApiError> {
    let token = authorize_scoped(shared, headers, allowed).await?;
    match token.session {
        Some(session) => Err(ApiError::OutOfScope(session)),
        None => Ok(token),
    }
}

/// The caller's token, which must have one of the `allowed` roles; the caller checks its
/// session, if it is limited to one.
async fn authorize_scoped(
    shared: &Shared,
    headers: &HeaderMap,
    allowed: &[TokenRole],
) -> Result<TokenRecord, ApiError> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let check = crate::sso::check_secret(&shared.store, &shared.tickets, secret.trim()).await?;
    if let Some(why) = check.refusal() {
        return Err(ApiError::TokenRefused(why));
    }
    let token = check.valid().ok_or(ApiError::Unauthorized)?;
    if !allowed.contains(&token.role) {
        return Err(ApiError::Forbidden);
    }
    Ok(token)
}

const STAFF: &[TokenRole] = &[TokenRole::Agent, TokenRole::Supervisor];

#[derive(Debug, serde::Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

/// The newest audit entries, newest first: supervisors only.
async fn get_audit(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    authorize(&shared, &headers, &[TokenRole::Supervisor]).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to 10000, not {limit}"
        )));
    }
    Ok(Json(shared.store.audit_log(i64::from(limit)).await?))
}

#[derive(Debug, Serialize)]
struct SessionView {
    id: i64,
    name: String,
    created_at: i64,
    /// A wearable is connected and publishing now.
    live: bool,
    watchers: Vec<String>,
    last_group: i64,
    /// The plan tier of the user behind the wearable, when its token names one.
    tier: Option<Tier>,
    /// The topic that user most likely needs help with (their highest prediction).
    skill: Option<String>,
}

async fn session_view(
    shared: &Shared,
    s: farsight_store::SessionRecord,
) -> Result<SessionView, ApiError> {
    let live = shared.relay.session(SessionId(s.id as u64));
    let (tier, skill) = match shared.store.token_subject(s.owner_token).await? {
        Some(user) => {
            // The queue still works without a prediction; the skill is then unknown.
            let need = crate::outreach::service::top_need(&shared.store, &user)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "no prediction for the queue");
                    None
                });
            (shared.store.user_tier(&user).await?, need.map(|p| p.topic))
        }
        None => (None, None),
    };
    Ok(SessionView {
        live: live.as_ref().is_some_and(|l| l.publisher.is_some()),
        watchers: live
            .map(|l| l.watchers.into_iter().map(|p| p.name).collect())
            .unwrap_or_default(),
        id: s.id,
        name: s.name,
        created_at: s.created_at,
        last_group: s.last_group,
        tier,
        skill,
    })
}

/// Open sessions as a queue: live ones first, then the highest plan tier, then the longest
/// waiting.
async fn list_sessions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let token = authorize_scoped(&shared, &headers, STAFF).await?;
    let mut out = Vec::new();
    for s in shared.store.open_sessions().await? {
        if token.session.is_none_or(|only| only == s.id) {
            out.push(session_view(&shared, s).await?);
        }
    }
    out.sort_by_key(|s| (!s.live, std::cmp::Reverse(s.tier), s.created_at));
    Ok(Json(out))
}

async fn get_session(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<SessionView>, ApiError> {
    let token = authorize_scoped(&shared, &headers, STAFF).await?;
    if let Some(only) = token.session.filter(|only| *only as u64 != id) {
        return Err(ApiError::OutOfScope(only));
    }
    let s = shared
        .store
        .session(SessionId(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(session_view(&shared, s).await?))
}
