//! The Gatehouse identity core.
//!
//! Everything that decides who may sign in lives here, free of HTTP and UI: the rules for
//! passwords, emails and one-time codes, failure throttling, password hashing on a bounded pool,
//! and the one sign-in pipeline every method goes through ([`identity::Identity`]). Pure
//! decisions are plain functions over plain data with the time passed in, so they are tested
//! with a fixed clock; the rest is tested against a real database.

pub mod clock;
pub mod codes;
pub mod email;
pub mod hashing;
pub mod identity;
pub mod mail;
pub mod password;
pub mod phone;
pub mod seal;
pub mod secret;
pub mod throttle;
pub mod tokens;
pub mod totp;

pub use gatehouse_store as store;
