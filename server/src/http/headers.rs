//! The web's basic defences on every response: a Content-Security-Policy that lets the
//! page run only the console's own files (no inline script, no other origin), no framing,
//! no referrer, no MIME sniffing; and, served over TLS, HTTPS only from then on (HSTS).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::Shared;

pub async fn security_headers(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_name)
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let policy = content_security_policy(host.as_deref(), shared.webtransport.port);
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, policy.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // For browsers that predate frame-ancestors.
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if shared.https {
        // A year of HTTPS only for this host, once a browser has seen it over TLS.
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Scripts, styles and images from the server itself only; connections to itself and to
/// its WebTransport port on the host the page was loaded from.
pub fn content_security_policy(host: Option<&str>, webtransport_port: u16) -> String {
    let connect = match host {
        Some(host) => format!("'self' https://{host}:{webtransport_port}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The host part of a `Host` header, when it is a plain name or address: anything else
/// (which no browser sends) is left out of the policy rather than written into it.
fn host_name(host: &str) -> Option<&str> {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => &host[..rest.find(']')? + 2],
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!name.is_empty() && name.chars().all(allowed)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_taken_without_its_port() {
        assert_eq!(host_name("127.0.0.1:8080"), Some("127.0.0.1"));
        assert_eq!(host_name("localhost"), Some("localhost"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(
            host_name("console.example.com:443"),
            Some("console.example.com")
        );
    }

    #[test]
    fn a_host_that_could_change_the_policy_is_left_out() {
        assert_eq!(host_name("evil; script-src *:80"), None);
        assert_eq!(host_name("a'b"), None);
        assert_eq!(host_name(":80"), None);
        let policy = content_security_policy(None, 4433);
        assert!(policy.contains("connect-src 'self';"), "{policy}");
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        let policy = content_security_policy(Some("127.0.0.1"), 4433);
        assert!(policy.contains("script-src 'self';"));
        assert!(!policy.contains("unsafe"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(policy.contains("connect-src 'self' https://127.0.0.1:4433;"));
    }
}
