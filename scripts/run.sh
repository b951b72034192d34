#!/usr/bin/env bash
# Sets up, builds and runs Farsight on its embedded SQLite (./farsight-data) with two
# wearables live — the glasses simulator (Bevy: a workbench, in a window when there is a
# display) and the probe (GStreamer test video) — the agents' console to watch and draw on them, and an
# agent-side watcher printing every frame it receives. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/farsight/target}"
cargo build --release --locked -p farsight-server
# The simulator in the test profile: it shares the tests' build, and its frames cost the
# (software) GPU, not Rust code.
cargo build --locked -p farsight-wearable
farsight="$CARGO_TARGET_DIR/release/farsight"
wearable="$CARGO_TARGET_DIR/debug/farsight-wearable"
data="${FARSIGHT_DATA_DIR:-farsight-data}"
export FARSIGHT_DATA_DIR="$data"

# Outreach: a synthetic usage history and a fitted model, made once.
if [ ! -d "$data/simulated" ]; then
  "$farsight" simulate --users 1000 --days 84 --seed 7 --out "$data/simulated"
  "$farsight" users import "$data/simulated/users.ndjson"
  "$farsight" events import "$data/simulated/events.ndjson"
  "$farsight" model train
fi
# Demo tokens, made once and kept beside the database (mode 600).
tokens="$data/demo-tokens"
if [ ! -s "$tokens" ]; then
  mkdir -p "$data"
  umask 077
  {
    # The glasses belong to a platinum user of the simulated history: the agents' queue
    # shows their tier and most likely need.
    user=$(grep -m1 '"tier":"platinum"' "$data/simulated/users.ndjson" | sed 's/.*"user":"\([^"]*\)".*/\1/')
    echo "WEARABLE=$("$farsight" token create --role wearable --name demo-glasses --user "$user" 2>/dev/null)"
    echo "AGENT=$("$farsight" token create --role agent --name demo-agent 2>/dev/null)"
  } > "$tokens"
fi
# shellcheck disable=SC1090
source "$tokens"
if [ -z "${SIM:-}" ]; then
  user=$(grep -m1 '"tier":"gold"' "$data/simulated/users.ndjson" | sed 's/.*"user":"\([^"]*\)".*/\1/')
  SIM=$("$farsight" token create --role wearable --name workbench-simulator --user "$user" 2>/dev/null)
  echo "SIM=$SIM" >> "$tokens"
fi

echo "highest predicted support needs:"
"$farsight" predictions --top 5

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

"$farsight" serve > "$data/serve.log" &
server=$!
pids+=("$server")
for _ in $(seq 50); do
  kill -0 "$server" 2>/dev/null || { echo "farsight serve did not start" >&2; exit 1; }
  curl -sf "http://127.0.0.1:8080/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
cat "$data/serve.log"
fingerprint=$(sed -n 's/^certificate SHA-256 //p' "$data/serve.log")

# The glasses simulator: a workbench seen from a moving head, rendered and published at
# 640×360 (software rendering without a GPU manages a few frames a second). On a desktop it
# opens the wearer's view in a window, where the console's marks appear on the bench;
# without a display it runs headless.
view=(--headless)
[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && view=()
"$wearable" --sim "${view[@]}" --width 640 --height 360 --server 127.0.0.1:4433 \
  --token "$SIM" --fingerprint "$fingerprint" > "$data/wearable.log" 2>&1 &
pids+=($!)

"$farsight" probe publish --token "$WEARABLE" > "$data/publish.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  session=$(sed -n 's/^publishing session //p' "$data/publish.log")
  [ -n "$session" ] && break
  sleep 0.2
done
[ -n "${session:-}" ] || { cat "$data/publish.log"; exit 1; }

# Software rendering takes a while to compile its pipelines; give the simulator 30 s.
for _ in $(seq 150); do
  sim_session=$(sed -n 's/^publishing session //p' "$data/wearable.log")
  [ -n "$sim_session" ] && break
  sleep 0.2
done
echo
echo "agent console:  http://127.0.0.1:8080/  (sign in with the agent token $AGENT)"
echo "  the glasses simulator's workbench is session ${sim_session:-(starting; see $data/wearable.log)}, the probe's test video session $session"
echo "session $session is live; sessions:  curl -H 'Authorization: Bearer $AGENT' http://127.0.0.1:8080/v1/sessions"
echo "predicted needs:  curl -H 'Authorization: Bearer $AGENT' 'http://127.0.0.1:8080/v1/predictions?top=10'"
echo "watching it as an agent (Ctrl-C to stop):"
"$farsight" probe watch --token "$AGENT" --session "$session"
