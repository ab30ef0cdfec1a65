//! Plain records read from and written to the store. Types that carry secrets (password hashes,
//! code hashes, session token hashes) redact them in `Debug`.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{bool_col, StoreResult};

pub(crate) const USER_COLUMNS: &str =
    "id, email, display_name, password_hash, is_admin, disabled, credential_epoch, created_at, updated_at";
pub(crate) const USER_COLUMNS_U: &str = "u.id AS id, u.email AS email, u.display_name AS display_name, \
     u.password_hash AS password_hash, u.is_admin AS is_admin, u.disabled AS disabled, \
     u.credential_epoch AS credential_epoch, u.created_at AS created_at, u.updated_at AS updated_at";
pub(crate) const SESSION_COLUMNS_S: &str =
    "s.id AS session_id, s.credential_epoch AS session_epoch, \
     s.amr AS amr, s.auth_time AS auth_time, s.created_at AS session_created_at, \
     s.last_seen_at AS last_seen_at, s.expires_at AS expires_at, s.client_ip AS client_ip, \
     s.user_agent AS user_agent, s.user_id AS session_user_id, s.second_factor_id AS second_factor_id";
pub(crate) const CODE_COLUMNS: &str =
    "id, purpose, email, user_id, payload, failed_attempts, sends, \
     created_at, last_sent_at, expires_at, consumed_at";
pub(crate) const TOTP_COLUMNS: &str =
    "id, user_id, sealed_secret, created_at, confirmed_at, last_used_step, last_used_at";
pub(crate) const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, name, passkey, created_at, last_used_at";
pub(crate) const PHONE_COLUMNS: &str = "id, user_id, number, created_at, verified_at, last_used_at";
pub(crate) const PROVIDER_COLUMNS: &str =
    "id, kind, display_name, settings, sealed_secret, enabled, position, created_at, updated_at";
pub(crate) const EXTERNAL_IDENTITY_COLUMNS: &str =
    "id, user_id, provider_id, issuer, subject, email, created_at, last_used_at";
pub(crate) const AUDIT_COLUMNS: &str =
    "id, occurred_at, actor_user_id, subject_user_id, action, detail, client_ip";
pub(crate) const SIGN_IN_COLUMNS: &str =
    "id, occurred_at, user_id, email, application, client_ip, \
     user_agent, method, result, failure_reason, session_id, policies, country, city, \
     latitude_e6, longitude_e6, accuracy_km, asn, browser, os, device, risk_level";

#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub credential_epoch: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("has_password", &self.password_hash.is_some())
            .field("is_admin", &self.is_admin)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl User {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            display_name: row.try_get("display_name")?,
            password_hash: row.try_get("password_hash")?,
            is_admin: bool_col(row, "is_admin")?,
            disabled: bool_col(row, "disabled")?,
            credential_epoch: row.try_get("credential_epoch")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub now: i64,
}

/// What a one-time code (or the grant it leads to) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Verifies the email of a pending password sign-up.
    SignUpPassword,
    /// Verifies the email of a pending passwordless sign-up.
    SignUpCode,
    /// Signs an existing account in without a password.
    SignIn,
    /// Proves the mailbox before a new password may be set.
    ResetPassword,
    /// The single-use right to set a new password after a reset code was proven.
    ResetGrant,
    /// A first factor succeeded; the sign-in waits for a second factor (single use).
    SecondFactor,
    /// An emailed code offered as the second factor of a pending sign-in.
    SecondFactorEmail,
    /// A passkey registration ceremony in progress (its state is the payload; single use).
    PasskeyRegistration,
    /// A passwordless passkey sign-in ceremony in progress.
    PasskeySignIn,
    /// A passkey ceremony completing a pending sign-in's second factor.
    PasskeySecondFactor,
    /// A texted code that proves a new phone number (payload: the phone's id).
    PhoneVerification,
    /// A texted code offered as the second factor of a pending sign-in.
    SecondFactorSms,
    /// A redirect to a sign-in provider in progress (payload: state hash, nonce, PKCE verifier).
    ExternalAuthorization,
    /// A provider vouched for an identity that needs more before it becomes an account
    /// (payload: the external profile).
    ExternalSignUp,
    /// A provider identity waiting to be linked once the person proves the existing account.
    ExternalLink,
    /// A code sent to a new address before it replaces the account's email (payload: the old
    /// address).
    EmailChange,
    /// The single-use "this wasn't me" link sent to the old address after an email change; its
    /// id is the hash of the link's token and its email the old address, which stays reserved
    /// while the link lives (payload: the new address).
    EmailChangeUndo,
    /// The single-use "this wasn't me" link of a new-browser email: its id is the hash of the
    /// link's token (payload: the session the sign-in started).
    SignInReport,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::SignUpPassword => "sign_up_password",
            CodePurpose::SignUpCode => "sign_up_code",
            CodePurpose::SignIn => "sign_in",
            CodePurpose::ResetPassword => "reset_password",
            CodePurpose::ResetGrant => "reset_grant",
            CodePurpose::SecondFactor => "second_factor",
            CodePurpose::SecondFactorEmail => "second_factor_email",
            CodePurpose::PasskeyRegistration => "passkey_registration",
            CodePurpose::PasskeySignIn => "passkey_sign_in",
            CodePurpose::PasskeySecondFactor => "passkey_second_factor",
            CodePurpose::PhoneVerification => "phone_verification",
            CodePurpose::SecondFactorSms => "second_factor_sms",
            CodePurpose::ExternalAuthorization => "external_authorization",
            CodePurpose::ExternalSignUp => "external_sign_up",
            CodePurpose::ExternalLink => "external_link",
            CodePurpose::EmailChange => "email_change",
            CodePurpose::EmailChangeUndo => "email_change_undo",
            CodePurpose::SignInReport => "sign_in_report",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sign_up_password" => CodePurpose::SignUpPassword,
            "sign_up_code" => CodePurpose::SignUpCode,
            "sign_in" => CodePurpose::SignIn,
            "reset_password" => CodePurpose::ResetPassword,
            "reset_grant" => CodePurpose::ResetGrant,
            "second_factor" => CodePurpose::SecondFactor,
            "second_factor_email" => CodePurpose::SecondFactorEmail,
            "passkey_registration" => CodePurpose::PasskeyRegistration,
            "passkey_sign_in" => CodePurpose::PasskeySignIn,
            "passkey_second_factor" => CodePurpose::PasskeySecondFactor,
            "phone_verification" => CodePurpose::PhoneVerification,
            "second_factor_sms" => CodePurpose::SecondFactorSms,
            "external_authorization" => CodePurpose::ExternalAuthorization,
            "external_sign_up" => CodePurpose::ExternalSignUp,
            "external_link" => CodePurpose::ExternalLink,
            "email_change" => CodePurpose::EmailChange,
            "email_change_undo" => CodePurpose::EmailChangeUndo,
            "sign_in_report" => CodePurpose::SignInReport,
            _ => return None,
        })
    }
}

pub struct NewCode<'a> {
    pub id: &'a str,
    pub purpose: CodePurpose,
    pub email: &'a str,
    pub user_id: Option<&'a str>,
    pub code_hash: &'a str,
    pub payload: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct CodeRecord {
    pub id: String,
    pub purpose: CodePurpose,
    pub email: String,
    pub user_id: Option<String>,
    /// Flow data (for a pending sign-up: the display name and password hash).
    pub payload: Option<String>,
    pub failed_attempts: i64,
    pub sends: i64,
    pub created_at: i64,
    pub last_sent_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

impl std::fmt::Debug for CodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRecord")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("failed_attempts", &self.failed_attempts)
            .field("expires_at", &self.expires_at)
            .field("consumed_at", &self.consumed_at)
            .finish_non_exhaustive()
    }
}

impl CodeRecord {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        let purpose: String = row.try_get("purpose")?;
        Ok(CodeRecord {
            id: row.try_get("id")?,
            purpose: CodePurpose::parse(&purpose).ok_or(crate::StoreError::Malformed)?,
            email: row.try_get("email")?,
            user_id: row.try_get("user_id")?,
            payload: row.try_get("payload")?,
            failed_attempts: row.try_get("failed_attempts")?,
            sends: row.try_get("sends")?,
            created_at: row.try_get("created_at")?,
            last_sent_at: row.try_get("last_sent_at")?,
            expires_at: row.try_get("expires_at")?,
            consumed_at: row.try_get("consumed_at")?,
        })
    }
}

/// The outcome of submitting a code.
#[derive(Debug)]
pub enum CodeAttempt {
    /// The code was right and is now consumed.
    Accepted(CodeRecord),
    /// The code was wrong; the flow may try again.
    Wrong { attempts_left: i64 },
    /// The code was wrong and that was the last allowed attempt.
    Exhausted,
    /// The flow is unknown, expired, consumed or out of attempts.
    Dead,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: i64,
    pub last_failure_at: i64,
}

pub struct NewSession<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub credential_epoch: i64,
    pub amr: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub client_ip: &'a str,
    pub user_agent: &'a str,
    /// The second factor the sign-in was completed with, if any.
    pub second_factor_id: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub credential_epoch: i64,
    /// Space-separated OIDC `amr` values.
    pub amr: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub client_ip: String,
    pub user_agent: String,
    pub second_factor_id: Option<String>,
}

impl Session {
    /// Whether the sign-in proved two factors (its `amr` holds `mfa`): the strength later
    /// checks ask for.
    pub fn is_multifactor(&self) -> bool {
        self.amr.split_whitespace().any(|m| m == "mfa")
    }
}

impl Session {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(Session {
            id: row.try_get("session_id")?,
            user_id: row.try_get("session_user_id")?,
            credential_epoch: row.try_get("session_epoch")?,
            amr: row.try_get("amr")?,
            auth_time: row.try_get("auth_time")?,
            created_at: row.try_get("session_created_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            expires_at: row.try_get("expires_at")?,
            client_ip: row.try_get("client_ip")?,
            user_agent: row.try_get("user_agent")?,
            second_factor_id: row.try_get("second_factor_id")?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInLogEntry {
    pub id: String,
    pub occurred_at: i64,
    pub user_id: Option<String>,
    pub email: String,
    pub application: String,
    pub client_ip: String,
    pub user_agent: String,
    pub method: String,
    pub result: String,
    pub failure_reason: Option<String>,
    pub session_id: Option<String>,
    /// What Conditional Access decided: every policy evaluated and its result (JSON).
    pub policies: Option<String>,
    /// Where the address is (ISO country, city, coordinates in millionths of a degree, the
    /// accuracy radius in km) when a GeoIP database is installed.
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude_e6: Option<i64>,
    pub longitude_e6: Option<i64>,
    pub accuracy_km: Option<i64>,
    /// The address's autonomous system, when an ASN database is installed.
    pub asn: Option<i64>,
    /// The browser family and operating system the user agent names.
    pub browser: Option<String>,
    pub os: Option<String>,
    /// The device cookie's hash.
    pub device: Option<String>,
    /// The attempt's sign-in risk (none, low, medium, high), when it was assessed.
    pub risk_level: Option<String>,
}

impl SignInLogEntry {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(SignInLogEntry {
            id: row.try_get("id")?,
            occurred_at: row.try_get("occurred_at")?,
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            application: row.try_get("application")?,
            client_ip: row.try_get("client_ip")?,
            user_agent: row.try_get("user_agent")?,
            method: row.try_get("method")?,
            result: row.try_get("result")?,
            failure_reason: row.try_get("failure_reason")?,
            session_id: row.try_get("session_id")?,
            policies: row.try_get("policies")?,
            country: row.try_get("country")?,
            city: row.try_get("city")?,
            latitude_e6: row.try_get("latitude_e6")?,
            longitude_e6: row.try_get("longitude_e6")?,
            accuracy_km: row.try_get("accuracy_km")?,
            asn: row.try_get("asn")?,
            browser: row.try_get("browser")?,
            os: row.try_get("os")?,
            device: row.try_get("device")?,
            risk_level: row.try_get("risk_level")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: String,
    pub created_at: i64,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

impl OutboxMessage {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(OutboxMessage {
            id: row.try_get("id")?,
            created_at: row.try_get("created_at")?,
            channel: row.try_get("channel")?,
            recipient: row.try_get("recipient")?,
            subject: row.try_get("subject")?,
            body: row.try_get("body")?,
            sent_at: row.try_get("sent_at")?,
            last_error: row.try_get("last_error")?,
        })
    }
}

/// An authenticator-app credential. The sealed secret stays out of `Debug`.
#[derive(Clone)]
pub struct TotpCredential {
    pub id: String,
    pub user_id: String,
    pub sealed_secret: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_step: i64,
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for TotpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCredential")
            .field("id", &self.id)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_step", &self.last_used_step)
            .finish_non_exhaustive()
    }
}

impl TotpCredential {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(TotpCredential {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            sealed_secret: row.try_get("sealed_secret")?,
            created_at: row.try_get("created_at")?,
            confirmed_at: row.try_get("confirmed_at")?,
            last_used_step: row.try_get("last_used_step")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

/// A registered passkey. `passkey` is the WebAuthn library's credential record (public key,
/// signature counter, backup flags): public data, rewritten after every use.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: String,
    pub user_id: String,
    /// The WebAuthn credential id, base64url without padding.
    pub credential_id: String,
    pub name: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl PasskeyRecord {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(PasskeyRecord {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            credential_id: row.try_get("credential_id")?,
            name: row.try_get("name")?,
            passkey: row.try_get("passkey")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

/// A security event that is not a sign-in attempt (a method added or removed, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: String,
    pub occurred_at: i64,
    /// Who did it (the user themself, an admin, or none for the system).
    pub actor_user_id: Option<String>,
    /// Whose account it concerns.
    pub subject_user_id: Option<String>,
    /// A stable action name, such as `mfa.passkey.added`.
    pub action: String,
    /// Non-secret detail for people reading the log.
    pub detail: String,
    pub client_ip: String,
}

impl AuditEntry {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(AuditEntry {
            id: row.try_get("id")?,
            occurred_at: row.try_get("occurred_at")?,
            actor_user_id: row.try_get("actor_user_id")?,
            subject_user_id: row.try_get("subject_user_id")?,
            action: row.try_get("action")?,
            detail: row.try_get("detail")?,
            client_ip: row.try_get("client_ip")?,
        })
    }
}

/// A phone number for text-message codes, in E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    pub id: String,
    pub user_id: String,
    pub number: String,
    pub created_at: i64,
    pub verified_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl PhoneNumber {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(PhoneNumber {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            number: row.try_get("number")?,
            created_at: row.try_get("created_at")?,
            verified_at: row.try_get("verified_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

/// A configured sign-in provider. `settings` is the provider's JSON settings (issuer, client
/// id, scopes, endpoints); `sealed_secret` its sealed client secret or signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub id: String,
    pub kind: String,
    pub display_name: String,
    pub settings: String,
    pub sealed_secret: Option<String>,
    pub enabled: bool,
    pub position: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for ProviderRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("display_name", &self.display_name)
            .field("settings", &self.settings)
            .field("has_secret", &self.sealed_secret.is_some())
            .field("enabled", &self.enabled)
            .field("position", &self.position)
            .finish()
    }
}

impl ProviderRecord {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(ProviderRecord {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            display_name: row.try_get("display_name")?,
            settings: row.try_get("settings")?,
            sealed_secret: row.try_get("sealed_secret")?,
            enabled: crate::bool_col(row, "enabled")?,
            position: row.try_get("position")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// An account at a provider, linked to a Gatehouse account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub id: String,
    pub user_id: String,
    /// The provider it was linked through (the provider may have been removed since).
    pub provider_id: String,
    pub issuer: String,
    pub subject: String,
    /// The email the provider gave when it was linked, for display.
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl ExternalIdentity {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(ExternalIdentity {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            provider_id: row.try_get("provider_id")?,
            issuer: row.try_get("issuer")?,
            subject: row.try_get("subject")?,
            email: row.try_get("email")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}
