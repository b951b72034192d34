//! The outreach API: usage events and user profiles in (service tokens), predictions and
//! models out (staff and service tokens).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use farsight_outreach::batch::BatchReport;
use farsight_outreach::calls::CallRecord;
use farsight_outreach::dial::Outcome;
use farsight_outreach::event::{MAX_BATCH_BYTES, UserProfile, parse_profile};
use farsight_outreach::ids::{CallId, Millis};
use farsight_outreach::predict::Prediction;
use farsight_outreach::report::Report;
use farsight_store::{StoredModel, TokenRole};

use super::{ApiError, authorize};
use crate::Shared;
use crate::outreach::ingest::{IngestError, ingest_events, ingest_users};
use crate::outreach::report;
use crate::outreach::scheduler::record_outcome;
use crate::outreach::service::{OutreachError, current_predictions};

const SERVICE: &[TokenRole] = &[TokenRole::Service];
const READERS: &[TokenRole] = &[TokenRole::Service, TokenRole::Agent, TokenRole::Supervisor];
/// Most predictions one request may ask for.
const MAX_TOP: usize = 10_000;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/users", post(post_users))
        .route("/v1/users/{id}", put(put_user).get(get_user))
        .route("/v1/predictions", get(get_predictions))
        .route("/v1/models", get(get_models))
        .route("/v1/calls", get(get_calls))
        .route("/v1/calls/{id}/disposition", post(post_disposition))
        .route("/v1/outreach/report", get(get_report))
        .route("/v1/outreach/report.png", get(get_report_chart))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
}

/// 200 when any row was good (or the batch was empty), 422 when every row was rejected.
fn batch_response(
    report: Result<BatchReport, IngestError>,
) -> Result<(StatusCode, Json<BatchReport>), ApiError> {
    let report = match report {
        Ok(report) => report,
        Err(IngestError::Batch(e)) => return Err(ApiError::BadRequest(e.to_string())),
        Err(IngestError::Store(e)) => return Err(e.into()),
    };
    let status = if report.accepted + report.duplicates == 0 && !report.rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}

async fn post_events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchReport>), ApiError> {
    authorize(&shared, &headers, SERVICE).await?;
    let report = ingest_events(&shared.store, &body, 1).await;
    if let Ok(r) = &report {
        let m = &shared.metrics;
        m.events_accepted.inc_by(r.accepted as u64);
        m.events_duplicate.inc_by(r.duplicates as u64);
        m.rows_rejected.inc_by(r.rejected.len() as u64);
    }
    batch_response(report)
}

async fn post_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchReport>), ApiError> {
    authorize(&shared, &headers, SERVICE).await?;
    batch_response(ingest_users(&shared.store, &body, 1).await)
}

async fn put_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(mut body): Json<serde_json::Value>,
) -> Result<Json<UserProfile>, ApiError> {
    authorize(&shared, &headers, SERVICE).await?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("user".into(), id.into());
    }
    let profile = parse_profile(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    shared
        .store
        .upsert_users(std::slice::from_ref(&profile))
        .await?;
    Ok(Json(profile))
}

async fn get_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<UserProfile>, ApiError> {
    authorize(&shared, &headers, READERS).await?;
    Ok(Json(
        shared.store.user(&id).await?.ok_or(ApiError::NotFound)?,
    ))
}

#[derive(Debug, Deserialize)]
struct PredictionQuery {
    top: Option<usize>,
    /// Milliseconds since the epoch; default: the newest event stored.
    at: Option<Millis>,
}

async fn get_predictions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PredictionQuery>,
) -> Result<Json<Vec<Prediction>>, ApiError> {
    authorize(&shared, &headers, READERS).await?;
    let top = q.top.unwrap_or(20).min(MAX_TOP);
    match current_predictions(&shared.store, top, q.at).await {
        Ok(predictions) => Ok(Json(predictions)),
        Err(e @ (OutreachError::NoModel | OutreachError::Stale(_))) => {
            Err(ApiError::Conflict(e.to_string()))
        }
        Err(OutreachError::Store(e)) => Err(e.into()),
        Err(other) => Err(ApiError::BadRequest(other.to_string())),
    }
}

async fn get_models(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Vec<StoredModel>>, ApiError> {
    authorize(&shared, &headers, READERS).await?;
    Ok(Json(shared.store.models().await?))
}

async fn get_calls(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Vec<CallRecord>>, ApiError> {
    authorize(&shared, &headers, READERS).await?;
    Ok(Json(shared.store.calls().await?))
}

#[derive(Debug, Deserialize)]
struct DispositionBody {
    disposition: Outcome,
}

/// A contact-center platform reports how a call it was handed went.
async fn post_disposition(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<DispositionBody>,
) -> Result<Json<CallRecord>, ApiError> {
    authorize(&shared, &headers, SERVICE).await?;
    let id = CallId(id);
    let call = shared.store.call(id).await?.ok_or(ApiError::NotFound)?;
    if call.state != "placed" {
        return Err(ApiError::Conflict(format!(
            "call {id} is {}, not waiting for a disposition",
            call.state
        )));
    }
    if body.disposition == Outcome::Placed {
        return Err(ApiError::BadRequest("placed is not an outcome".into()));
    }
    let tz = shared
        .store
        .user(call.user.as_str())
        .await?
        .map(|u| u.tz)
        .unwrap_or_else(|| "UTC".into());
    let now = Millis::now();
    record_outcome(
        &shared.store,
        &shared.policy,
        id,
        &tz,
        call.attempts,
        &body.disposition,
        now,
    )
    .await
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(
        shared.store.call(id).await?.ok_or(ApiError::NotFound)?,
    ))
}

async fn get_report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Report>, ApiError> {
    authorize(&shared, &headers, READERS).await?;
    Ok(Json(report::build(&shared.store, Millis::now()).await?))
}

/// The report's chart: called users against the hold-out, with 95% intervals.
async fn get_report_chart(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    authorize(&shared, &headers, READERS).await?;
    let report = report::build(&shared.store, Millis::now()).await?;
    let png = tokio::task::spawn_blocking(move || report::chart_png(&report))
        .await
        .map_err(|e| ApiError::Internal(format!("chart: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/png")], png).into_response())
}
