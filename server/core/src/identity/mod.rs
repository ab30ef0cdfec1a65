//! The sign-in pipeline and the account operations around it: the errors and methods every
//! part shares, the `Identity` that holds the store, hasher, keys and senders, and the modules
//! along the pipeline's seams.
//!
//! Every way in goes through the same steps, in this order:
//! 1. context (application, client IP, user agent, device) arrives with the request;
//! 2. the first factor is verified behind the failure throttles (`gates`, `code_flows`,
//!    `passkeys`, `federation`), and the attempt is written to the sign-in log whatever its
//!    result (`records`); unknown accounts and wrong secrets look the same;
//! 3. one decision step (`pipeline`) refuses, waits for a second factor (`mfa`, `sms`,
//!    `passkeys`), or starts a session; risk and Conditional Access plug in there;
//! 4. the session records what was proven (`strength`) and ends through one operation that tells
//!    the applications (`sessions`, `backchannel`).

use std::sync::Arc;

mod access;
mod account;
mod code_flows;
use code_flows::PendingSignUp;
pub mod admin;
pub mod backchannel;
mod federation;
mod gates;
pub mod insights;
mod mfa;
pub mod oidc;
mod passkeys;
mod pipeline;
mod records;
mod risk;
pub use risk::{
    DetectionView, OfflineRun, ReportedSignIn, OFFLINE_JOB, RISK_DIGEST_EVERY_MS, RISK_DIGEST_JOB,
    SIGN_IN_REPORT_PATH, SIGN_IN_REPORT_TTL_MS,
};
mod sessions;
mod sms;
mod strength;
mod terms;
pub mod webhooks;
pub use access::{
    slug, AccessError, ImpactReport, PolicyDocument, PolicyEntry, PortalAccess, WhatIf,
    MAX_IMPACT_DAYS, POLICY_CACHE_MS,
};
pub use account::{AccountExport, PendingUndo, EMAIL_CHANGE_UNDO_TTL_MS, EMAIL_UNDO_PATH};
pub use federation::{
    acceptable_provider_url, AppleSigning, AuthorizationSecrets, ClaimMapping, Endpoints,
    ExternalFinish, ExternalIntent, ExternalOutcome, ExternalProfile, LinkedIdentity,
    PendingExternal, Provider, ProviderButton, ProviderConfigError, ProviderInput, ProviderKind,
    ProviderSettings, ReturnedAuthorization, AUTHORIZATION_TTL_MS,
    MICROSOFT_PERSONAL_ACCOUNTS_TENANT,
};
pub use mfa::{
    mfa_for_all_policy, MfaPolicy, SecondFactorMethod, SecondFactorOptions, TotpEnrollment,
    EMAIL_FACTOR_AFTER_RESET_MS, MFA_FOR_ALL_POLICY, MFA_POLICY_SETTING,
};
pub use passkeys::{
    relying_party, validate_passkey_name, PasskeyCeremony, PasskeyInfo, CEREMONY_TTL_MS,
    MAX_PASSKEYS, MAX_PASSKEY_NAME,
};
use pipeline::FirstFactor;
pub use pipeline::{
    decide_after_first_factor, decide_for_application, ApplicationDecision, ApplicationSignals,
    FirstFactorDecision, SignInSignals,
};
pub use sessions::{LogoutDelivery, SessionsToEnd};
pub use sms::{
    PhoneEnrollment, SmsPolicy, SMS_PER_IP_PER_HOUR, SMS_PER_NUMBER_PER_HOUR, SMS_POLICY_SETTING,
};
pub use strength::{AuthMethod, Strength};

use serde::{Deserialize, Serialize};

use crate::codes::{self, CODE_TTL_MS, MAX_WRONG_ATTEMPTS, RESEND_INTERVAL_MS};
use crate::email::{normalize_email, EmailProblem};
use crate::hashing::{HashError, PasswordHasher};
use crate::mail::{EmailKind, EmailText, EmailTexts, Mailer};
use crate::password::{check_new_password, PasswordProblem};
use crate::secret::{SecretKey, SecretString};
use crate::store::{
    CodeAttempt, CodePurpose, CodeRecord, NewCode, NewUser, OutboxMessage, Session, SignInLogEntry,
    Store, StoreError, ThrottleState, User,
};
use crate::throttle::{ThrottleDecision, ThrottlePolicy, ACCOUNT_POLICY, IP_POLICY};
use crate::tokens::{random_id, token_hash};

/// The built-in product name; passwords containing it are refused as well as the branded one.
pub const PRODUCT_NAME: &str = "Gatehouse";
/// Display names are 1 to this many characters.
pub const MAX_DISPLAY_NAME: usize = 100;
/// Sign-ups allowed from one IP per window.
pub const SIGN_UPS_PER_IP: i64 = 10;
pub const SIGN_UP_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Code requests (sign-in by code, reset, resend) allowed from one IP per window.
pub const CODE_REQUESTS_PER_IP: i64 = 20;
pub const CODE_REQUEST_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Messages one address may receive per window, whatever the flows.
pub const MAX_SENDS_PER_ADDRESS: i64 = 6;
pub const SEND_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Identical sign-up requests for one address within this window share one email.
pub const SIGN_UP_DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
/// How often a session's last-seen time is written.
pub(crate) const TOUCH_GRANULARITY_MS: i64 = 60 * 1000;

/// Wrong one-time codes per address: some room, then doubling delays; forgotten after a day.
pub const CODE_POLICY: ThrottlePolicy = ThrottlePolicy {
    free_failures: 10,
    base_delay_ms: 1_000,
    max_delay_ms: 15 * 60 * 1000,
    hard_limit: None,
    forget_after_ms: Some(24 * 60 * 60 * 1000),
};

/// The account portal, as an application in the sign-in log.
pub const ACCOUNT_PORTAL: &str = "account";

/// The admin console, as an application in the sign-in log and in Conditional Access.
pub const ADMIN_CONSOLE: &str = "admin-console";

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub session_idle_ms: i64,
    pub session_absolute_ms: i64,
    /// The most sessions one account may have; signing in once more ends the oldest.
    pub max_sessions_per_user: i64,
    /// The public URL: passkeys are bound to its host and accepted from its origin only.
    pub public_url: String,
    /// Texts the whole tenant may send per hour (a ceiling on SMS pumping).
    pub sms_hourly_limit: i64,
    /// How long raw sign-in log rows are kept (milliseconds).
    pub sign_in_log_ms: i64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            session_idle_ms: 60 * 60 * 1000,
            session_absolute_ms: 24 * 60 * 60 * 1000,
            max_sessions_per_user: 20,
            public_url: "http://localhost:3000".into(),
            sms_hourly_limit: 500,
            sign_in_log_ms: 90 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Who is asking, from where. Built by the HTTP edge for every request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub application: String,
    pub client_ip: String,
    pub user_agent: String,
    /// The branded product name (a context word passwords may not contain).
    pub product_name: String,
    /// The texts of the emails this request may send.
    pub emails: Arc<dyn EmailTexts>,
    /// The browser's device cookie (a random id), when the edge knows one.
    pub device: Option<String>,
    /// What Conditional Access decided for this attempt (JSON), written with its sign-in log
    /// row. The decision step sets it; the edge leaves it empty.
    pub policy_results: Option<String>,
    /// The id the attempt's sign-in log row takes, so its detections can name it. The
    /// decision step sets it; the edge leaves it empty.
    pub sign_in_id: Option<String>,
    /// The attempt's sign-in risk, written with its log row. The decision step sets it.
    pub sign_in_risk: Option<crate::conditional_access::RiskLevel>,
}

/// How a sign-in attempt was made, as written to the sign-in log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Password,
    EmailCode,
    SignUpPassword,
    SignUpEmailCode,
    PasswordReset,
    /// The authenticator-app code of a second factor.
    Totp,
    /// A recovery code in place of a second factor.
    RecoveryCode,
    /// A passkey: passwordless, or as the second factor.
    Passkey,
    /// A texted code as the second factor.
    Sms,
    /// An account at another identity provider (OpenID Connect or OAuth 2.0).
    Federated,
    /// A new account made from an identity at another provider.
    SignUpFederated,
    /// A new email address proven by code, replacing the account's.
    EmailChange,
    /// An application's authorization request answered from an existing session (single
    /// sign-on): every code an application receives has a row.
    SingleSignOn,
    /// An application's refresh of its tokens, refused by a Conditional Access block.
    TokenRefresh,
}

impl Method {
    /// Every method, in the order the console lists them.
    pub const ALL: [Method; 14] = [
        Method::Password,
        Method::EmailCode,
        Method::Passkey,
        Method::Federated,
        Method::SingleSignOn,
        Method::Totp,
        Method::Sms,
        Method::RecoveryCode,
        Method::SignUpPassword,
        Method::SignUpEmailCode,
        Method::SignUpFederated,
        Method::PasswordReset,
        Method::EmailChange,
        Method::TokenRefresh,
    ];

    /// Its name in the console.
    pub fn label(self) -> &'static str {
        match self {
            Method::Password => "Password",
            Method::EmailCode => "Email code",
            Method::SignUpPassword => "Sign-up with a password",
            Method::SignUpEmailCode => "Sign-up with an email code",
            Method::PasswordReset => "Password reset",
            Method::Totp => "Authenticator app",
            Method::RecoveryCode => "Recovery code",
            Method::Passkey => "Passkey",
            Method::Sms => "Text message",
            Method::Federated => "Another provider",
            Method::SignUpFederated => "Sign-up with another provider",
            Method::EmailChange => "Email change",
            Method::SingleSignOn => "Single sign-on to an application",
            Method::TokenRefresh => "Token refresh",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::EmailCode => "email_code",
            Method::SignUpPassword => "sign_up_password",
            Method::SignUpEmailCode => "sign_up_email_code",
            Method::PasswordReset => "password_reset",
            Method::Totp => "totp",
            Method::RecoveryCode => "recovery_code",
            Method::Passkey => "passkey",
            Method::Sms => "sms",
            Method::Federated => "federated",
            Method::SignUpFederated => "sign_up_federated",
            Method::EmailChange => "email_change",
            Method::SingleSignOn => "sso",
            Method::TokenRefresh => "refresh",
        }
    }

    fn for_purpose(purpose: CodePurpose) -> Self {
        match purpose {
            CodePurpose::SignUpPassword => Method::SignUpPassword,
            CodePurpose::SignUpCode => Method::SignUpEmailCode,
            CodePurpose::SignIn => Method::EmailCode,
            CodePurpose::ResetPassword | CodePurpose::ResetGrant => Method::PasswordReset,
            CodePurpose::SecondFactor => Method::Totp,
            CodePurpose::SecondFactorEmail => Method::EmailCode,
            CodePurpose::PasskeyRegistration
            | CodePurpose::PasskeySignIn
            | CodePurpose::PasskeySecondFactor => Method::Passkey,
            CodePurpose::PhoneVerification | CodePurpose::SecondFactorSms => Method::Sms,
            CodePurpose::ExternalAuthorization
            | CodePurpose::ExternalSignUp
            | CodePurpose::ExternalLink => Method::Federated,
            CodePurpose::EmailChange | CodePurpose::EmailChangeUndo => Method::EmailChange,
            // A reported sign-in ends in a password reset.
            CodePurpose::SignInReport => Method::PasswordReset,
        }
    }
}

/// A field the person must correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputProblem {
    DisplayName,
    Email(EmailProblem),
    Password(PasswordProblem),
    Code,
    PasskeyName,
    Phone(crate::phone::PhoneProblem),
    /// The new email address is the one the account already has.
    SameEmail,
    /// The typed confirmation does not match what was asked for.
    Confirmation,
}

/// How a round trip to an identity provider failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderProblem {
    /// The person cancelled at the provider (`access_denied`).
    Cancelled,
    /// The provider answered with an error.
    Error,
    /// The provider could not be reached in time.
    Unavailable,
    /// The provider's answer failed verification (token, signature, issuer, nonce...).
    InvalidResponse,
}

impl ProviderProblem {
    pub fn code(self) -> &'static str {
        match self {
            ProviderProblem::Cancelled => "provider_cancelled",
            ProviderProblem::Error => "provider_error",
            ProviderProblem::Unavailable => "provider_unavailable",
            ProviderProblem::InvalidResponse => "provider_response_invalid",
        }
    }
}

/// Why an operation did not succeed. Each variant has a stable code for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid input")]
    InvalidInput(InputProblem),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many attempts")]
    Throttled { retry_after_s: i64 },
    #[error("password sign-in closed after too many failures")]
    PasswordPathClosed,
    #[error("account disabled")]
    AccountDisabled,
    #[error("blocked by a Conditional Access policy")]
    BlockedByPolicy,
    #[error("a Conditional Access policy requires a stronger sign-in")]
    StrengthRequired,
    #[error("a second factor is required")]
    SecondFactorRequired,
    #[error("the account must add a second factor first")]
    EnrollmentRequired,
    #[error("the terms of use must be accepted first")]
    TermsOfUseRequired,
    #[error("the account is at risk and must choose a new password first")]
    PasswordChangeRequired,
    #[error("the application needs an interaction that was not allowed (prompt=none)")]
    InteractionRequired,
    #[error("the application needs a new sign-in that was not allowed (prompt=none)")]
    LoginRequired,
    #[error("wrong second factor")]
    SecondFactorWrong,
    #[error("sign-in again required")]
    ReauthenticationRequired,
    #[error("wrong code")]
    CodeWrong { attempts_left: i64 },
    #[error("code no longer valid")]
    CodeDead,
    #[error("passkey not accepted")]
    PasskeyFailed,
    #[error("passkey refused: counter or backup flags contradict the stored ones")]
    PasskeySuspicious,
    #[error("the last method cannot be removed while multifactor authentication is required")]
    LastMethod,
    #[error("limit reached")]
    LimitReached,
    #[error("resend too soon")]
    ResendTooSoon,
    #[error("account already exists")]
    AccountExists,
    #[error("the email belongs to an account that must be proven before the link")]
    LinkRequired,
    #[error("the provider account is linked to another account")]
    AlreadyLinked,
    #[error("the identity provider did not sign the person in")]
    Provider(ProviderProblem),
    #[error("too many requests")]
    TooManyRequests,
    #[error("overloaded")]
    Overloaded,
    #[error("internal error (reference {0})")]
    Internal(String),
}

impl AuthError {
    /// The stable failure reason written to the sign-in log.
    pub fn reason_code(&self) -> &'static str {
        match self {
            AuthError::InvalidInput(_) => "invalid_input",
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::Throttled { .. } => "throttled",
            AuthError::PasswordPathClosed => "password_path_closed",
            AuthError::AccountDisabled => "account_disabled",
            AuthError::BlockedByPolicy => "blocked_by_policy",
            AuthError::StrengthRequired => "strength_required",
            AuthError::SecondFactorRequired => "second_factor_required",
            AuthError::EnrollmentRequired => "enrollment_required",
            AuthError::TermsOfUseRequired => "terms_of_use_required",
            AuthError::PasswordChangeRequired => "password_change_required",
            AuthError::InteractionRequired => "interaction_required",
            AuthError::LoginRequired => "login_required",
            AuthError::SecondFactorWrong => "second_factor_invalid",
            AuthError::ReauthenticationRequired => "reauthentication_required",
            AuthError::CodeWrong { .. } => "code_invalid",
            AuthError::CodeDead => "code_expired_or_used",
            AuthError::PasskeyFailed => "passkey_invalid",
            AuthError::PasskeySuspicious => "passkey_possible_clone",
            AuthError::LastMethod => "last_method",
            AuthError::LimitReached => "limit_reached",
            AuthError::ResendTooSoon => "resend_too_soon",
            AuthError::AccountExists => "account_exists",
            AuthError::LinkRequired => "account_link_required",
            AuthError::AlreadyLinked => "identity_linked_elsewhere",
            AuthError::Provider(p) => p.code(),
            AuthError::TooManyRequests => "rate_limited",
            AuthError::Overloaded => "overloaded",
            AuthError::Internal(_) => "internal_error",
        }
    }
}

impl From<HashError> for AuthError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Overloaded => AuthError::Overloaded,
            HashError::Failed => internal(&err),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        internal(&err)
    }
}

/// Logs an internal error with a short reference the person can quote; the detail stays here.
fn internal(err: &dyn std::error::Error) -> AuthError {
    let reference: String = random_id()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let detail = crate::error_chain(err);
    tracing::error!(reference = %reference, error = %detail, "internal error");
    AuthError::Internal(reference)
}

/// The key an address is throttled under: IPv4 as is, IPv6 by its /64 network (one subscriber
/// line usually holds a whole /64). IPv4-mapped IPv6 addresses are their IPv4 address, so IPv4
/// clients of a dual-stack listener never share one bucket.
pub fn ip_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(v4) => v4.to_string(),
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// A successful sign-in: the cookie secret (shown to the browser once) and the session.
#[derive(Debug)]
pub struct SignedIn {
    pub token: SecretString,
    pub session: Session,
    pub user: User,
    /// A Conditional Access session control keeps the session across browser restarts: its
    /// cookie lasts the session's lifetime instead of the browser session.
    pub persistent: bool,
}

/// Where a successful first factor leads.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in: a new session.
    SignedIn(Box<SignedIn>),
    /// The account has a second factor: the sign-in waits for it. The id goes into the
    /// browser's pending-sign-in cookie; no session exists yet.
    SecondFactorRequired { pending_id: String },
}

/// What a verified code leads to.
#[derive(Debug)]
pub enum CodeOutcome {
    SignIn(SignInOutcome),
    /// A reset code was proven: the flow may now set a new password with this grant.
    ResetGranted {
        grant_id: String,
    },
}

/// A started code flow (its id goes into the browser's flow cookie).
#[derive(Debug, Clone)]
pub struct FlowStarted {
    pub flow_id: String,
}

pub struct Identity {
    store: Store,
    webauthn: webauthn_rs::Webauthn,
    hasher: PasswordHasher,
    key: SecretKey,
    mailer: Arc<dyn Mailer>,
    sms: Arc<dyn Mailer>,
    config: IdentityConfig,
    /// Opened token signing keys by key id (the sealed keys live in the database).
    signing_keys: std::sync::Mutex<std::collections::HashMap<String, Arc<crate::jws::SigningKey>>>,
    /// Where logout tokens go when sessions end.
    logout: Arc<dyn LogoutDelivery>,
    /// The Conditional Access policies this instance holds.
    policies: access::PolicyCache,
    /// The GeoIP databases, when configured: countries for location conditions.
    geo: Option<Arc<crate::geo::GeoIp>>,
    /// The ASN database, when configured: networks for the unfamiliar-properties detection.
    asn: Option<Arc<crate::geo::AsnDb>>,
    /// The breached-password corpus, when configured: leaked credentials at every password
    /// sign-in, and breached passwords refused as new ones.
    breach: Option<Arc<crate::breach::BreachCorpus>>,
    /// This instance's operations metrics.
    metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

pub fn validate_display_name(input: &str) -> Result<String, AuthError> {
    let name = input.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_DISPLAY_NAME || name.chars().any(|c| c.is_control()) {
        return Err(AuthError::InvalidInput(InputProblem::DisplayName));
    }
    Ok(name.to_string())
}

fn email_or_invalid(input: &str) -> Result<String, AuthError> {
    normalize_email(input).map_err(|p| AuthError::InvalidInput(InputProblem::Email(p)))
}

fn retry_after(until: i64, now: i64) -> AuthError {
    AuthError::Throttled {
        retry_after_s: ((until - now).max(1) + 999) / 1000,
    }
}

impl Identity {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        key: SecretKey,
        mailer: Arc<dyn Mailer>,
        sms: Arc<dyn Mailer>,
        config: IdentityConfig,
    ) -> Result<Self, String> {
        let webauthn = relying_party(&config.public_url, PRODUCT_NAME)?;
        let metrics = crate::metrics::Metrics::new(hasher.wait_histogram());
        Ok(Identity {
            store,
            webauthn,
            metrics,
            hasher,
            key,
            mailer,
            sms,
            config,
            signing_keys: Default::default(),
            policies: Default::default(),
            logout: Arc::new(sessions::NoLogoutDelivery),
            geo: None,
            asn: None,
            breach: None,
        })
    }

    /// This instance's operations metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The metrics in the Prometheus text format, with the hashing queue and the database
    /// pool read now.
    pub fn metrics_text(&self) -> String {
        let (size, idle) = self.store.pool_use();
        self.metrics.encode(
            self.hasher.queue_depth(),
            crate::metrics::PoolUse { size, idle },
        )
    }

    /// Looks networks up in `asn`.
    pub fn with_asn(mut self, asn: Option<Arc<crate::geo::AsnDb>>) -> Self {
        self.asn = asn;
        self
    }

    /// The ASN database in use, if any.
    pub fn asn_db(&self) -> Option<&crate::geo::AsnDb> {
        self.asn.as_deref()
    }

    /// Checks passwords against `corpus` (the Pwned Passwords SHA-1 format).
    pub fn with_breach_corpus(mut self, corpus: Option<Arc<crate::breach::BreachCorpus>>) -> Self {
        self.breach = corpus;
        self
    }

    /// The breached-password corpus in use, if any.
    pub fn breach_corpus(&self) -> Option<&crate::breach::BreachCorpus> {
        self.breach.as_deref()
    }

    /// How often `password` appears in the breach corpus (none without one).
    fn times_breached(&self, password: &SecretString) -> Option<u64> {
        let corpus = self.breach.as_ref()?;
        corpus.times_seen(&crate::password::normalize_password(password.expose()))
    }

    /// The password rules for a new password of the account with this email, under the
    /// built-in and the branded product names; with a breach corpus, a password it holds is
    /// refused too.
    fn check_password_rules(
        &self,
        ctx: &RequestContext,
        password: &SecretString,
        email: &str,
    ) -> Result<(), AuthError> {
        check_new_password(password.expose(), email, &[PRODUCT_NAME, &ctx.product_name])
            .map_err(|p| AuthError::InvalidInput(InputProblem::Password(p)))?;
        if self.times_breached(password).is_some() {
            return Err(AuthError::InvalidInput(InputProblem::Password(
                PasswordProblem::Breached,
            )));
        }
        Ok(())
    }

    /// What a request shows of where and how it comes: place, network, browser, system and
    /// device (the time is the caller's).
    pub(super) fn properties_of(&self, ctx: &RequestContext) -> crate::risk::SignInProperties {
        let ip: Option<std::net::IpAddr> = ctx.client_ip.trim().parse().ok();
        let place = ip.and_then(|ip| self.geo.as_ref()?.lookup(ip));
        let asn = ip.and_then(|ip| self.asn.as_ref()?.lookup(ip));
        let agent = woothee::parser::Parser::new().parse(&ctx.user_agent);
        let known = |v: &str| {
            (!v.is_empty() && v != woothee::woothee::VALUE_UNKNOWN).then(|| v.to_string())
        };
        crate::risk::SignInProperties {
            at: 0,
            client_ip: ctx.client_ip.clone(),
            country: place.as_ref().map(|p| p.country.clone()),
            city: place.as_ref().and_then(|p| p.city.clone()),
            latitude: place.as_ref().and_then(|p| p.latitude),
            longitude: place.as_ref().and_then(|p| p.longitude),
            accuracy_km: place.as_ref().and_then(|p| p.accuracy_km),
            asn: asn.map(|a| a.number),
            browser: agent.as_ref().and_then(|a| known(a.name)),
            os: agent.as_ref().and_then(|a| known(a.os)),
            device: ctx
                .device
                .as_deref()
                .filter(|d| !d.is_empty() && d.len() <= 64)
                .map(token_hash),
        }
    }

    /// Looks countries up in `geo` (without it, no address has a country and country
    /// conditions never match).
    pub fn with_geoip(mut self, geo: Option<Arc<crate::geo::GeoIp>>) -> Self {
        self.geo = geo;
        self
    }

    /// The GeoIP databases in use, if any.
    pub fn geoip(&self) -> Option<&crate::geo::GeoIp> {
        self.geo.as_deref()
    }

    /// The network of a client address (autonomous system, country), as far as the ASN and
    /// GeoIP databases know it.
    pub fn network_of(&self, client_ip: &str) -> crate::risk::Network {
        let ip: Option<std::net::IpAddr> = client_ip.trim().parse().ok();
        crate::risk::Network {
            asn: ip
                .and_then(|ip| self.asn.as_ref()?.lookup(ip))
                .map(|a| a.number),
            country: self.country_of(client_ip),
        }
    }

    /// The country of a client address, when a GeoIP database is configured and knows it.
    pub fn country_of(&self, client_ip: &str) -> Option<String> {
        let ip = client_ip.trim().parse().ok()?;
        self.geo.as_ref()?.country(ip)
    }

    /// Delivers the logout tokens of ending sessions through `delivery` (the server sends them
    /// over HTTP; without it they are made and dropped).
    pub fn with_logout_delivery(mut self, delivery: Arc<dyn LogoutDelivery>) -> Self {
        self.logout = delivery;
        self
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    pub fn uses_development_outbox(&self) -> bool {
        self.mailer.is_development_outbox()
    }

    /// Whether texts stay in the development outbox (no SMS gateway configured).
    pub fn sms_in_development_outbox(&self) -> bool {
        self.sms.is_development_outbox()
    }

    // ------------------------------------------------------------ profile and password

    pub async fn update_display_name(
        &self,
        user_id: &str,
        input: &str,
        now: i64,
    ) -> Result<String, AuthError> {
        let name = validate_display_name(input)?;
        self.store.set_display_name(user_id, &name, now).await?;
        Ok(name)
    }

    /// Changes the password of a signed-in user. The current password is required and counted
    /// by the same throttle as sign-in; every other session ends.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        current: &SecretString,
        new: &SecretString,
        now: i64,
    ) -> Result<(), AuthError> {
        self.check_password_rules(ctx, new, &user.email)?;
        self.verify_current_password(user, current, now).await?;
        self.replace_password(ctx, session, user, new, now).await
    }

    /// Sets a new password from a live session: refused if the password changed since the
    /// session's credential was checked; the session moves onto the new credential, every
    /// other session ends, and the owner is emailed.
    pub(super) async fn replace_password(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        new: &SecretString,
        now: i64,
    ) -> Result<(), AuthError> {
        let hash = self.hasher.hash(new).await?;
        // Refused if the password changed since this session's credential was checked (a reset
        // in the meantime wins).
        let epoch = self
            .store
            .set_password(&user.id, &hash, session.credential_epoch, now)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        self.store.rebind_session(&session.id, epoch).await?;
        self.end_sessions(&user.id, SessionsToEnd::AllBut(&session.id), now)
            .await?;
        self.password_replaced(user, now).await?;
        self.send(
            &user.email,
            ctx.emails.compose(EmailKind::PasswordChanged, None),
            now,
        )
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------ administration

    /// Creates an administrator account (from the command line), or grants the role to an
    /// existing account. The new account has no password: its owner signs in by email code
    /// and may then set one.
    pub async fn create_admin(
        &self,
        email_input: &str,
        display_name: &str,
        now: i64,
    ) -> Result<(User, bool), AuthError> {
        let email = email_or_invalid(email_input)?;
        if let Some(user) = self.store.find_user_by_email(&email).await? {
            self.store.set_admin(&user.id, true, now).await?;
            return Ok((
                User {
                    is_admin: true,
                    ..user
                },
                false,
            ));
        }
        let display_name = validate_display_name(display_name)?;
        let id = random_id();
        let user = self
            .store
            .create_user(&NewUser {
                id: &id,
                email: &email,
                display_name: &display_name,
                password_hash: None,
                is_admin: true,
                now,
            })
            .await?;
        Ok((user, true))
    }
}
