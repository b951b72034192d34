#!/usr/bin/env bash
# Sets up and runs every check: formatting, lints, unit and property tests, and the
# end-to-end tests (real QUIC on loopback, GStreamer x264, SQLite and a throw-away
# PostgreSQL cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/farsight/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# run.sh builds with this same command (and --no-run), so the two share one build: keep
# their flags in step.
cargo test --workspace --locked 2>&1 | tee "$log"
# The console's wire codec and camera math, in the browser's language.
node --test tests/console/protocol.test.mjs 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { passed += $4; failed += $6 }
     /^# pass / { passed += $3 } /^# fail / { failed += $3 }
     END { printf "%d passed, %d failed\n", passed, failed }' "$log"
