#!/usr/bin/env bash
# Installs what building and testing Farsight needs on Debian: GStreamer (with x264 from
# plugins-ugly), PostgreSQL for the storage tests, sipp for the SIP tests, Chromium with
# Playwright for the console tests, Mesa's software Vulkan (lavapipe) for the wearable's
# renders, and a virtual X display (Xvfb, with xwd for screenshots and xdotool for keys) for
# its window. Safe to run again; skips what is there.
set -euo pipefail

packages=(
  pkg-config
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly
  gstreamer1.0-tools
  postgresql
  curl
  sip-tester
  fonts-dejavu-core
  chromium
  mesa-vulkan-drivers
  xvfb
  x11-apps
  xdotool
)
# Node.js drives Chromium (Playwright); a newer one already installed is kept.
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "error: a Rust toolchain (cargo, rustc 1.95 or newer) is required; see https://rustup.rs" >&2
  exit 1
fi

# The console tests' driver, playwright-core (it uses Debian's Chromium, downloads none), and
# the OpenID provider the single sign-on test signs in with, oidc-provider.
if [ ! -d tests/console/node_modules/playwright-core ] || [ ! -d tests/console/node_modules/oidc-provider ]; then
  npm ci --prefix tests/console --no-audit --no-fund --loglevel=error
fi

# Builds live outside the clone so a second run on the same machine reuses them.
echo "CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/farsight/target}"
