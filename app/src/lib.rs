//! Gatehouse's pages.
//!
//! Pages are rendered on the server as plain HTML forms that work before (and without) any
//! script; the few interactive parts are `#[island]` components hydrated from wasm. The crate is
//! compiled twice: natively with `ssr` (the server renders pages) and to wasm with `hydrate`.
#![recursion_limit = "256"]

pub mod account;
pub mod admin;
pub mod branding;
pub mod components;
pub mod download;
pub mod federation;
pub mod i18n;
pub mod oidc;
pub mod pages;
pub mod passkey;
pub mod shell;

/// The wasm entry point: hydrates the islands on the page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
