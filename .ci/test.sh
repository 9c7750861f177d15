#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine, as root: installs what is
# missing, then lints, unit tests, integration tests against real WireGuard
# hosts in network namespaces, and Playwright in Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup.sh
source .ci/env.sh

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
started=$SECONDS

step "format"
cargo fmt --check

step "clippy (server and browser code)"
cargo clippy --features ssr --all-targets --locked -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --features hydrate --locked -- -D warnings

step "unit and integration tests (real hosts in network namespaces; SQLite and PostgreSQL)"
source .ci/postgres.sh start
trap '.ci/postgres.sh stop' EXIT
export TOLLGATE_REQUIRE_POSTGRES=1  # the PostgreSQL half must not skip here
cargo test --features ssr --locked

step "integration tests again with the panel on PostgreSQL"
TOLLGATE_TEST_BACKEND=postgres cargo test --features ssr --locked \
  --test monitoring --test peers --test policy --test periods --test reconcile --test push --test generate --test hosts

step "front end (release WASM + CSS, as shipped) for the end-to-end tests"
cargo leptos build --release --frontend-only

step "release WASM within its budget (docs/BENCHMARKS.md)"
wasm_gzip=$(gzip -9c target/site/pkg/tollgate.wasm | wc -c)
echo "tollgate.wasm: ${wasm_gzip} B gzip -9 (budget 350000 B)"
if ((wasm_gzip > 350000)); then
  echo "tollgate.wasm is over its 350 KB gzip budget" >&2
  exit 1
fi

step "Playwright (Debian Chromium; with and without JavaScript; phone)"
TOLLGATE_BIN="$CARGO_TARGET_DIR/debug/tollgate" \
  npx playwright test -c end2end/playwright.config.ts

step "all tests passed in $((SECONDS - started)) s"
