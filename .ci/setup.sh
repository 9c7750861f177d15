#!/usr/bin/env bash
# Installs what Tollgate needs to build, run and test, on Debian 12, as root.
# Skips everything already present, so running it again costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

[[ $EUID -eq 0 ]] || { echo "setup.sh: run as root (apt-get, network namespaces)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "setup.sh: cargo (rustup) is required: https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup.sh: Node.js with npm is required" >&2; exit 1; }

# Pinned tool versions.
CARGO_LEPTOS_VERSION=0.3.11
# cargo-leptos 0.3.11 needs a newer rustc than 1.95; only the tool is built with it.
CARGO_LEPTOS_TOOLCHAIN=1.96.0

APT_PACKAGES=(
  build-essential pkg-config libssl-dev ca-certificates  # native build deps
  wireguard-go wireguard-tools iproute2 iputils-ping openssh-server openvpn  # test hosts
  chromium  # Playwright drives Debian's Chromium; no browser is downloaded
  postgresql  # the store's tests run on PostgreSQL too (a throwaway cluster, .ci/postgres.sh)
)
# wasm-opt comes from npm (binaryen 132): Debian's binaryen 108 corrupts the
# reference-types WebAssembly that current Rust and wasm-bindgen produce.
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q " ${CARGO_LEPTOS_VERSION}$"; then
  say "installing cargo-leptos ${CARGO_LEPTOS_VERSION} (takes a while, once)"
  rustup toolchain install "$CARGO_LEPTOS_TOOLCHAIN" --profile minimal
  cargo "+$CARGO_LEPTOS_TOOLCHAIN" install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads --force
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  say "installing wasm-bindgen-cli ${WASM_BINDGEN_VERSION}"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# Tailwind and wasm-opt (for cargo-leptos) and Playwright, from package-lock.json.
if [[ ! -f node_modules/.package-lock.json ]] || ! cmp -s package-lock.json node_modules/.tollgate-lock; then
  say "npm: installing Tailwind, wasm-opt and Playwright"
  # `npm ci` refuses this lock: it names optional Tailwind binaries for other
  # platforms that the registry mirror lacks. Versions are pinned exactly in
  # package.json, and --no-save leaves the lock as it is.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-save --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.tollgate-lock
fi
