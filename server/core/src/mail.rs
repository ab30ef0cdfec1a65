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
                "development outbox (no GATEHOUSE_SMTP_URL set): to {} | {} | {}",
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

/// The texts of the emails Gatehouse sends.
pub struct EmailText {
    pub subject: String,
    pub body: String,
}

pub fn sign_up_code(product: &str, code: &str) -> EmailText {
    EmailText {
        subject: format!("{code} is your {product} verification code"),
        body: format!(
            "Your {product} verification code is {code}.\n\nEnter it on the page where you started \
             creating your account. It expires in 10 minutes.\n\nIf you did not ask for this, you can ignore this email."
        ),
    }
}

pub fn sign_up_existing_account(product: &str) -> EmailText {
    EmailText {
        subject: format!("You already have a {product} account"),
        body: format!(
            "Someone, probably you, tried to create a {product} account with this email address, \
             but an account already exists.\n\nSign in instead, or reset your password if you have \
             forgotten it.\n\nIf this was not you, you can ignore this email."
        ),
    }
}

pub fn sign_in_code(product: &str, code: &str) -> EmailText {
    EmailText {
        subject: format!("{code} is your {product} sign-in code"),
        body: format!(
            "Your {product} sign-in code is {code}.\n\nIt expires in 10 minutes. Never share it: \
             {product} will never ask you for it.\n\nIf you did not try to sign in, you can ignore this email."
        ),
    }
}

pub fn no_account(product: &str) -> EmailText {
    EmailText {
        subject: format!("No {product} account for this address"),
        body: format!(
            "Someone, probably you, asked to sign in to {product} or reset a password with this email \
             address, but there is no account for it.\n\nYou can create one on the sign-up page.\n\n\
             If this was not you, you can ignore this email."
        ),
    }
}

pub fn reset_code(product: &str, code: &str) -> EmailText {
    EmailText {
        subject: format!("{code} is your {product} password reset code"),
        body: format!(
            "Your {product} password reset code is {code}.\n\nIt expires in 10 minutes. If you did \
             not ask to reset your password, you can ignore this email: your password stays as it is."
        ),
    }
}

pub fn password_changed(product: &str) -> EmailText {
    EmailText {
        subject: format!("Your {product} password was changed"),
        body: format!(
            "The password of your {product} account was just changed and your other sessions were \
             signed out.\n\nIf this was not you, reset your password now."
        ),
    }
}
