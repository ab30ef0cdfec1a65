//! The Gatehouse identity core.
//!
//! Everything that decides who may sign in lives here, free of HTTP and UI: the rules for
//! passwords, emails and one-time codes, failure throttling, password hashing on a bounded pool,
//! and the one sign-in pipeline every method goes through ([`identity::Identity`]). Pure
//! decisions are plain functions over plain data with the time passed in, so they are tested
//! with a fixed clock; the rest is tested against a real database.

pub mod breach;
pub mod clock;
pub mod codes;
pub mod conditional_access;
pub mod email;
pub mod generate;
pub mod geo;
pub mod hashing;
pub mod identity;
pub mod insights;
pub mod jws;
pub mod mail;
pub mod metrics;
pub mod password;
pub mod phone;
pub mod risk;
pub mod seal;
pub mod secret;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod webhooks;

pub use gatehouse_store as store;

/// An error and its sources, joined with ": ", for logs (never for people).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}
