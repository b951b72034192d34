#!/usr/bin/env bash
# Sets up, builds and runs Farsight on its embedded SQLite (./farsight-data) with two
# wearables live — the glasses simulator (Bevy: a workbench, in a window when there is a
# display) and the probe (GStreamer test pattern) — and the agents' console to watch and draw
# on them. Ends by printing the console's address and the agent token; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/farsight/target}"
# Exactly the build `./scripts/test.sh` makes (same command, profile and features), so after
# either one the other compiles nothing. Its binaries land in $CARGO_TARGET_DIR/debug/.
cargo test --workspace --locked --no-run
farsight="$CARGO_TARGET_DIR/debug/farsight"
wearable="$CARGO_TARGET_DIR/debug/farsight-wearable"
data="${FARSIGHT_DATA_DIR:-farsight-data}"
export FARSIGHT_DATA_DIR="$data"

# Outreach: a synthetic usage history and a fitted model, made once (again if a run was
# stopped before the model was stored; imports skip what is already there).
if ! "$farsight" model list 2>/dev/null | grep -qw active; then
  rm -rf "$data/simulated"
  "$farsight" simulate --users 1000 --days 84 --seed 7 --out "$data/simulated"
  "$farsight" users import "$data/simulated/users.ndjson"
  "$farsight" events import "$data/simulated/events.ndjson"
  "$farsight" model train
fi

# Demo tokens, made once and kept beside the database (mode 600): NAME=token lines.
tokens="$data/demo-tokens"
mkdir -p "$data"
(umask 077 && touch "$tokens")
# shellcheck disable=SC1090
source "$tokens"
# token VAR ROLE NAME [TIER]: sets VAR, creating and keeping the token if it is not there
# yet. A wearable's token belongs to the first user of TIER in the simulated history, so the
# agents' queue shows that user's tier and most likely need.
token() {
  local var=$1 role=$2 name=$3 tier=${4:-} user=() value
  [ -n "${!var:-}" ] && return
  if [ -n "$tier" ]; then
    user=(--user "$(grep -m1 "\"tier\":\"$tier\"" "$data/simulated/users.ndjson" |
      sed 's/.*"user":"\([^"]*\)".*/\1/')")
  fi
  value=$("$farsight" token create --role "$role" --name "$name" "${user[@]}" 2>/dev/null)
  printf -v "$var" '%s' "$value"
  echo "$var=$value" >> "$tokens"
}
token AGENT agent demo-agent
token SIM wearable workbench-simulator gold
token PROBE wearable test-pattern platinum

echo
echo "highest predicted support needs:"
"$farsight" predictions --top 5
echo

pids=()
cleanup() {
  ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if curl -sf "http://127.0.0.1:8080/healthz" >/dev/null 2>&1; then
  echo "something already serves http://127.0.0.1:8080/ (another farsight serve?); stop it first" >&2
  exit 1
fi
echo "starting the server, the glasses simulator and the probe…"
"$farsight" serve > "$data/serve.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 100); do
  kill -0 "$server" 2>/dev/null || { tail -n 20 "$data/serve.log" >&2; echo "farsight serve did not start" >&2; exit 1; }
  curl -sf "http://127.0.0.1:8080/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:8080/healthz" >/dev/null 2>&1 ||
  { tail -n 20 "$data/serve.log" >&2; echo "farsight serve did not answer on 127.0.0.1:8080" >&2; exit 1; }
fingerprint=$(sed -n 's/^certificate SHA-256 //p' "$data/serve.log")
[ -n "$fingerprint" ] || { tail -n 20 "$data/serve.log" >&2; echo "farsight serve printed no certificate" >&2; exit 1; }

# The glasses simulator: a workbench seen from a moving head, rendered and published at
# 640×360 (software rendering without a GPU manages a few frames a second). On a desktop it
# opens the wearer's view in a window, where the console's marks appear on the bench;
# without a display it runs headless.
view=(--headless)
[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && view=()
# Tokens go in the environment, which other users cannot read (a command line they can).
FARSIGHT_TOKEN="$SIM" "$wearable" --sim "${view[@]}" --width 640 --height 360 \
  --server 127.0.0.1:4433 --fingerprint "$fingerprint" > "$data/wearable.log" 2>&1 &
sim=$!
pids+=("$sim")

# The probe: GStreamer's test pattern as 1280×720 H.264 at 30 fps, with a moving head pose.
FARSIGHT_TOKEN="$PROBE" "$farsight" probe publish > "$data/publish.log" 2>&1 &
probe=$!
pids+=("$probe")

# session PID LOG: waits (up to 120 s: software rendering compiles the simulator's pipelines
# first) for the wearable to print its session and the server to list it as live, and prints
# the session's id.
session() {
  local pid=$1 log=$2 id=
  for _ in $(seq 600); do
    [ -n "$id" ] || id=$(sed -n 's/^publishing session //p' "$log")
    if [ -n "$id" ] && [[ $(curl -sf -H "Authorization: Bearer $AGENT" \
      "http://127.0.0.1:8080/v1/sessions/$id") == *'"live":true'* ]]; then
      echo "$id"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 20 "$log" >&2
  echo "the wearable's session did not go live; its log is $log" >&2
  return 1
}
probe_session=$(session "$probe" "$data/publish.log")
sim_session=$(session "$sim" "$data/wearable.log")

cat <<EOF

Farsight is running: two wearables are live.

  agents' console   http://127.0.0.1:8080/
  agent token       $AGENT

  session $sim_session   workbench-simulator: the glasses simulator, a workbench seen from a moving head (640×360)
  session $probe_session   test-pattern: the probe, GStreamer's test pattern (1280×720, 30 fps)

  logs              $data/serve.log, $data/wearable.log, $data/publish.log
  Ctrl-C stops everything.
EOF

# Until Ctrl-C, or until one of them stops on its own.
status=0
wait -n "${pids[@]}" || status=$?
echo "a service stopped (exit $status); see the logs in $data/" >&2
exit 1
