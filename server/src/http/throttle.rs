//! Failed sign-ins over HTTP count against the caller's address like those over the relay:
//! past the limit, a request with a token is refused (429) before the token is looked at.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Shared;

pub async fn failed_sign_ins(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let now = Instant::now();
    let ip = remote.ip();
    let signs_in = request.headers().contains_key(header::AUTHORIZATION);
    if signs_in && let Err(wait) = shared.limits.may_sign_in(ip, now) {
        shared.metrics.address_limited("http", "failed_sign_ins");
        let secs = wait.as_secs().max(1);
        let body = serde_json::json!({
            "error": format!("too many failed sign-ins from this address: wait {secs} s"),
        });
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            axum::Json(body),
        )
            .into_response();
    }
    let response = next.run(request).await;
    if signs_in && response.status() == StatusCode::UNAUTHORIZED {
        shared.limits.failed(ip, now);
    }
    response
}
