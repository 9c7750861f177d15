//! Tollgate: a control panel for fleets of WireGuard hosts.
//!
//! - [`domain`]: the pure core (types, parsers, policies); no IO, builds for the browser.
//! - [`api`]: the shapes the panel speaks (JSON API, server functions, UI).
//! - [`app`]: the Leptos UI, rendered on the server and hydrated in the browser.
//! - `server` (feature `ssr`): configuration, storage, host transports, the
//!   poller, authentication, HTTP.

// The server's pages carry hydration markers that depend on this setting,
// and the WebAssembly reads them: both must be built with it.
#[cfg(not(erase_components))]
compile_error!(
    "build inside the project, whose .cargo/config.toml sets `--cfg erase_components` for the server and the \
     WebAssembly alike; RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS in the environment, or a target's `rustflags` in a \
     cargo config, replace that setting"
);

pub mod api;
pub mod app;
pub mod domain;
pub mod error;

/// This build's id: a hash of the sources and lock file the server and the
/// browser's copy are both built from (`src/build.rs`).
pub const BUILD: &str = env!("TOLLGATE_BUILD");

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
