#!/usr/bin/env bash
# Builds and runs the panel from this checkout on embedded SQLite, on a fresh
# Debian 12 machine, as root. Create the first admin in another terminal:
#   target/release/tollgate --config Leptos.toml admin create <username>
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup.sh
source .ci/env.sh
cargo leptos build --release
echo "Tollgate: http://${LEPTOS_SITE_ADDR:-127.0.0.1:3000}  (Ctrl-C stops it)"
# Creates or migrates the database and creates the secrets key file (once).
"$CARGO_TARGET_DIR/release/tollgate" --config Leptos.toml setup
exec "$CARGO_TARGET_DIR/release/tollgate" --config Leptos.toml serve "$@"
