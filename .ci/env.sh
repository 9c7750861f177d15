# Sourced by the scripts in .ci/: tool paths and build locations.
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# cargo-leptos writes the site (pkg/, assets) to site-root in Cargo.toml,
# relative to the checkout, whatever CARGO_TARGET_DIR says.
export LEPTOS_SITE_ROOT="$PWD/target/site"
# Leptos compiles the asset names into the server (`tollgate.wasm`, not
# `tollgate_bg.wasm`) only when this is set at build time, as cargo-leptos
# does; every cargo call here sets it too, from Cargo.toml's one copy.
LEPTOS_OUTPUT_NAME="$(sed -n 's/^output-name = "\(.*\)"$/\1/p' Cargo.toml)"
export LEPTOS_OUTPUT_NAME
# Never let Playwright fetch a browser; the specs use /usr/bin/chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
