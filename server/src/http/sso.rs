//! Single sign-on's HTTP side: `/v1/auth/login` sends the browser to the identity provider,
//! `/v1/auth/callback` takes it back and keeps the sign-in in an HttpOnly cookie, the page
//! trades that cookie for short-lived tickets at `/v1/auth/ticket`, and `/v1/auth/logout`
//! ends the sign-in.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use farsight_store::{Actor, AuditAction, TokenCheck};
use serde::Deserialize;

use super::ApiError;
use crate::Shared;
use crate::sso::ticket;

const COOKIE: &str = "farsight_session";

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/auth/login", get(login))
        .route("/v1/auth/callback", get(callback))
        .route("/v1/auth/ticket", post(issue_ticket))
        .route("/v1/auth/logout", post(logout))
}

async fn login(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let sso = shared.sso.as_ref().ok_or(ApiError::NotFound)?;
    match sso.begin().await {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => Ok(back_to_console(&e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The console's sign-in page, saying why signing in failed.
fn back_to_console(message: &str) -> Response {
    let query: String = url_encode(message);
    Redirect::to(&format!("/?sso_error={query}")).into_response()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(back): Query<Callback>,
) -> Result<Response, ApiError> {
    let sso = shared.sso.as_ref().ok_or(ApiError::NotFound)?;
    let (Some(code), Some(state)) = (back.code, back.state) else {
        let why = back.error_description.or(back.error);
        let why = why.unwrap_or_else(|| "no authorization code".into());
        return Ok(back_to_console(&format!(
            "the identity provider refused: {why}"
        )));
    };
    let signed = match sso.finish(&code, &state).await {
        Ok(signed) => signed,
        Err(e) => {
            let detail = format!("{e} (single sign-on from {})", peer.ip());
            let actor = Actor {
                token: None,
                name: peer.ip().to_string(),
            };
            shared
                .store
                .audit(&actor, AuditAction::SignInRefused, None, &detail)
                .await?;
            return Ok(back_to_console(&e.to_string()));
        }
    };
    let (record, secret) = shared.store.create_token(signed.role, &signed.name).await?;
    let hours = i64::from(sso.config.session_hours.max(1));
    let expires = record.created_at + hours * 3_600_000_000;
    shared.store.set_token_expiry(record.id, expires).await?;
    let actor = Actor {
        token: Some(record.id),
        name: signed.name.clone(),
    };
    let detail = format!(
        "as {} by single sign-on (subject {}) from {}",
        signed.role.as_str(),
        signed.subject,
        peer.ip()
    );
    shared
        .store
        .audit(&actor, AuditAction::SignIn, None, &detail)
        .await?;
    let cookie = cookie(&secret, hours * 3_600, shared.https);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

/// The sign-in cookie: out of scripts' reach, sent only by this site's own pages.
fn cookie(value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// A ticket for the page signed in by the cookie, with who it is.
async fn issue_ticket(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secret = session_cookie(&headers).ok_or(ApiError::Unauthorized)?;
    let check = shared.store.check_token(secret).await?;
    if let Some(why) = check.refusal() {
        return Err(ApiError::TokenRefused(why));
    }
    let TokenCheck::Valid(token) = check else {
        return Err(ApiError::Unauthorized);
    };
    if !token.role.is_staff() {
        return Err(ApiError::Forbidden);
    }
    let now = jiff::Timestamp::now().as_second();
    let body = serde_json::json!({
        "ticket": shared.tickets.issue(token.id, now),
        "expires_in": ticket::LIFETIME.as_secs(),
        "name": token.name,
        "role": token.role,
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Ends the cookie's sign-in (its tickets with it) and forgets the cookie.
async fn logout(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers)
        && let TokenCheck::Valid(token) = shared.store.check_token(secret).await?
    {
        let actor = Actor {
            token: Some(token.id),
            name: token.name.clone(),
        };
        shared
            .store
            .audit(&actor, AuditAction::SignOut, None, "single sign-on")
            .await?;
        shared.store.revoke_token(token.id).await?;
    }
    let forget = cookie("", 0, shared.https);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, forget)]).into_response())
}
