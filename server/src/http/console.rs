//! The agent console: a static page and its modules, embedded in the binary so `farsight
//! serve` needs no files beside it. The page talks to `/v1/live` and the JSON API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every file of `server/console/`, by the name it is served under.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../console/style.css"),
    ),
    (
        "link.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/link.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "protocol.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/protocol.js"),
    ),
    (
        "camera.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/camera.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/ui.js"),
    ),
    (
        "queue.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/queue.js"),
    ),
    (
        "video.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/video.js"),
    ),
    (
        "marks.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/marks.js"),
    ),
    (
        "outreach.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/outreach.js"),
    ),
    (
        "zoom.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/zoom.js"),
    ),
    (
        "errors.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/errors.js"),
    ),
    (
        "transport.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/transport.js"),
    ),
];

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn index() -> Response {
    asset("index.html")
}

pub async fn file(Path(name): Path<String>) -> Response {
    asset(&name)
}

/// How the page opens WebTransport: port, path, and the certificate hash to pin when the
/// server runs on its development certificate. Public: it holds nothing secret.
pub async fn config(State(shared): State<Arc<crate::Shared>>) -> Response {
    Json(serde_json::json!({ "webtransport": shared.webtransport, "sso": shared.sso.is_some() }))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `server/console/` but not to `ASSETS` would be a 404 in the page.
    #[test]
    fn every_console_file_is_served_as_it_is_on_disk() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("server/console")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        served.sort();
        assert_eq!(served, on_disk);
        for (name, _, body) in ASSETS {
            assert_eq!(
                *body,
                std::fs::read_to_string(dir.join(name)).expect("readable"),
                "{name}"
            );
        }
    }
}
