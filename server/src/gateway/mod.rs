//! The browsers' way in: `/v1/live` over WebTransport (HTTP/3) or, where UDP is blocked,
//! WebSocket. Each browser connection is a member of the relay like a native client (the
//! relay core lets browsers only watch), and speaks the same protocol bytes.

pub mod websocket;
pub mod webtransport;

/// Told to the console by `GET /v1/console/config`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WebTransportInfo {
    pub port: u16,
    pub path: &'static str,
    /// The development certificate's SHA-256 (hex), which browsers accept only when pinned
    /// with `serverCertificateHashes`; `None` with a real certificate.
    pub certificate_sha256: Option<String>,
}
