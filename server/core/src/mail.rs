//! Outgoing email. Every message is first written to the outbox table; a [`Mailer`] then
//! delivers it (SMTP in production) or leaves it there as the development outbox.

use std::future::Future;
use std::pin::Pin;

use crate::store::OutboxMessage;

pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Delivers one message. The error is an operator-facing reason (never shown to end users).
pub trait Mailer: Send + Sync + 'static {
    fn deliver<'a>(&'a self, message: &'a OutboxMessage) -> DeliveryFuture<'a>;
    /// True when messages stay in the development outbox instead of leaving the machine.
    fn is_development_outbox(&self) -> bool;
}

/// The development outbox: messages are kept in the database and printed in the log.
#[derive(Debug, Default)]
pub struct DevelopmentOutbox;

impl Mailer for DevelopmentOutbox {
    fn deliver<'a>(&'a self, message: &'a OutboxMessage) -> DeliveryFuture<'a> {
        Box::pin(async move {
            tracing::info!(
                target: "gatehouse::outbox",
                "development outbox ({}): to {} | {} | {}",
                message.channel,
                message.recipient,
                message.subject,
                message.body.replace('\n', " / ")
            );
            Ok(())
        })
    }

    fn is_development_outbox(&self) -> bool {
        true
    }
}

/// An email's subject and body, ready to send.
pub struct EmailText {
    pub subject: String,
    pub body: String,
}

/// The emails Gatehouse sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    /// The code that verifies a new account's address.
    SignUpCode,
    /// Someone tried to sign up with an address that already has an account (no code).
    SignUpExistingAccount,
    /// The code that signs an account in.
    SignInCode,
    /// A code was asked for an address without an account (no code).
    NoAccount,
    /// The code that allows a new password to be set.
    ResetCode,
    /// The password was changed and other sessions ended.
    PasswordChanged,
    /// A code sent by text message (only the body is used).
    TextCode,
    /// The account was signed in to from a browser it had not been used from before.
    NewDeviceSignIn,
    /// A sign-in succeeded after wrong passwords were tried.
    SignInAfterFailures,
    /// A sign-in method (second factor, passkey, phone, linked provider, recovery codes) was
    /// added or replaced.
    MethodAdded,
    /// A sign-in method was removed.
    MethodRemoved,
    /// Wrong second factors were tried after a correct password: the second factor now waits.
    SecondFactorThrottled,
    /// The code that proves a new address before it becomes the account's email.
    EmailChangeCode,
    /// Someone asked to move another account to this address, which already has one (no code).
    EmailChangeTaken,
    /// To the old address: the account's email was changed; the code is the undo link.
    EmailChanged,
    /// The email change was undone and every session ended.
    EmailRestored,
    /// The account was deleted.
    AccountDeleted,
    /// A risky sign-in (medium or high sign-in risk) with the right first factor was blocked.
    RiskySignInBlocked,
    /// A risky sign-in with the right first factor was asked for a second factor.
    RiskySignInChallenged,
    /// To administrators, daily: the accounts with new risk detections (the list is the
    /// "code").
    RiskDigest,
}

impl EmailKind {
    /// The message-catalogue key stem (`email.<key>.subject`, `email.<key>.body`).
    pub fn key(self) -> &'static str {
        match self {
            EmailKind::SignUpCode => "sign_up_code",
            EmailKind::SignUpExistingAccount => "sign_up_existing_account",
            EmailKind::SignInCode => "sign_in_code",
            EmailKind::NoAccount => "no_account",
            EmailKind::ResetCode => "reset_code",
            EmailKind::PasswordChanged => "password_changed",
            EmailKind::TextCode => "text_code",
            EmailKind::NewDeviceSignIn => "new_device",
            EmailKind::SignInAfterFailures => "after_failures",
            EmailKind::MethodAdded => "method_added",
            EmailKind::MethodRemoved => "method_removed",
            EmailKind::SecondFactorThrottled => "second_factor_throttled",
            EmailKind::EmailChangeCode => "email_change_code",
            EmailKind::EmailChangeTaken => "email_change_taken",
            EmailKind::EmailChanged => "email_changed",
            EmailKind::EmailRestored => "email_restored",
            EmailKind::AccountDeleted => "account_deleted",
            EmailKind::RiskySignInBlocked => "risky_sign_in_blocked",
            EmailKind::RiskySignInChallenged => "risky_sign_in_challenged",
            EmailKind::RiskDigest => "risk_digest",
        }
    }
}

/// Where email texts come from: the message catalogue, in the request's locale and with the
/// designer's overrides, so customers read the same voice in their inbox as on the pages.
pub trait EmailTexts: Send + Sync + std::fmt::Debug {
    fn compose(&self, kind: EmailKind, code: Option<&str>) -> EmailText;
}
