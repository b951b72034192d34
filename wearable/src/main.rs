//! `farsight-wearable`: the client for AR glasses. The Bevy application (capture, anchors,
//! annotation rendering, HUD, simulator) is not built yet; until then this binary says so
//! and points at the probe, which publishes like a wearable.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "farsight-wearable {}: the glasses client is not built yet; \
         `farsight probe publish` publishes test video as a wearable (protocol {})",
        env!("CARGO_PKG_VERSION"),
        farsight_protocol::PROTOCOL_VERSION,
    );
    ExitCode::FAILURE
}
