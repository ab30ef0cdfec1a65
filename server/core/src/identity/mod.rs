//! The sign-in pipeline and the account operations around it.
//!
//! Every way in goes through the same steps, in this order, in this module:
//! 1. context (application, client IP, user agent) arrives with the request;
//! 2. the first factor is verified behind the failure throttle, and the attempt is written to
//!    the sign-in log whatever its result; unknown accounts and wrong secrets look the same;
//! 3. (risk, Conditional Access and second factors plug in here as they arrive);
//! 4. a new session is created with a fresh id and the methods used, and the log row completed.

use std::sync::Arc;

mod account;
pub mod admin;
pub mod backchannel;
mod federation;
mod mfa;
pub mod oidc;
mod passkeys;
mod pipeline;
mod sessions;
mod sms;
mod strength;
pub use account::{AccountExport, PendingUndo, EMAIL_CHANGE_UNDO_TTL_MS, EMAIL_UNDO_PATH};
pub use federation::{
    acceptable_provider_url, AppleSigning, AuthorizationSecrets, ClaimMapping, Endpoints,
    ExternalFinish, ExternalIntent, ExternalOutcome, ExternalProfile, LinkedIdentity,
    PendingExternal, Provider, ProviderButton, ProviderConfigError, ProviderInput, ProviderKind,
    ProviderSettings, ReturnedAuthorization, AUTHORIZATION_TTL_MS,
    MICROSOFT_PERSONAL_ACCOUNTS_TENANT,
};
pub use mfa::{
    MfaPolicy, SecondFactorMethod, SecondFactorOptions, TotpEnrollment,
    EMAIL_FACTOR_AFTER_RESET_MS, MFA_POLICY_SETTING,
};
pub use passkeys::{
    relying_party, validate_passkey_name, PasskeyCeremony, PasskeyInfo, CEREMONY_TTL_MS,
    MAX_PASSKEYS, MAX_PASSKEY_NAME,
};
use pipeline::FirstFactor;
pub use pipeline::{decide_after_first_factor, FirstFactorDecision, SignInSignals};
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
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            session_idle_ms: 60 * 60 * 1000,
            session_absolute_ms: 24 * 60 * 60 * 1000,
            max_sessions_per_user: 20,
            public_url: "http://localhost:3000".into(),
            sms_hourly_limit: 500,
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
}

impl Method {
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
    #[error("a second factor is required")]
    SecondFactorRequired,
    #[error("the account must add a second factor first")]
    EnrollmentRequired,
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
            AuthError::SecondFactorRequired => "second_factor_required",
            AuthError::EnrollmentRequired => "enrollment_required",
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

/// The flows a person finishes by typing an emailed code on the code page. Grants, pending
/// sign-ins and passkey ceremonies are not among them, and second-factor email codes belong to
/// the second-factor step.
fn is_emailed_code_flow(purpose: CodePurpose) -> bool {
    matches!(
        purpose,
        CodePurpose::SignUpPassword
            | CodePurpose::SignUpCode
            | CodePurpose::SignIn
            | CodePurpose::ResetPassword
    )
}

/// A passed per-IP gate: the counter key, and whether this attempt was already counted.
struct IpGate {
    key: String,
    counted: bool,
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

#[derive(Serialize, Deserialize)]
struct PendingSignUp {
    display_name: String,
    #[serde(default)]
    password_hash: Option<String>,
    /// The provider identity the new account is linked to (a provider sign-up whose email is
    /// proven by this code).
    #[serde(default)]
    external: Option<ExternalProfile>,
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

/// The password rules for a new password of the account with this email, under the built-in and
/// the branded product names.
fn check_password_rules(
    ctx: &RequestContext,
    password: &SecretString,
    email: &str,
) -> Result<(), AuthError> {
    check_new_password(password.expose(), email, &[PRODUCT_NAME, &ctx.product_name])
        .map_err(|p| AuthError::InvalidInput(InputProblem::Password(p)))
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
        Ok(Identity {
            store,
            webauthn,
            hasher,
            key,
            mailer,
            sms,
            config,
            signing_keys: Default::default(),
            logout: Arc::new(sessions::NoLogoutDelivery),
        })
    }

    /// Delivers the logout tokens of ending sessions through `delivery` (the server sends them
    /// over HTTP; without it they are made and dropped).
    pub fn with_logout_delivery(mut self, delivery: Arc<dyn LogoutDelivery>) -> Self {
        self.logout = delivery;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
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

    // ------------------------------------------------------------ password sign-in

    /// Signs in with email and password. Unknown email and wrong password give the same error
    /// after the same work (a dummy hash is verified for unknown accounts).
    pub async fn sign_in_with_password(
        &self,
        ctx: &RequestContext,
        email_input: &str,
        password: &SecretString,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        // An address that cannot exist is handled like an unknown account, under a fixed-size key
        // derived from what was typed.
        let email = normalize_email(email_input).unwrap_or_else(|_| {
            format!("invalid:{}", crate::tokens::token_hash(email_input.trim()))
        });
        let result = self.password_first_factor(ctx, &email, password, now).await;
        match result {
            Ok(user) => {
                let first = FirstFactor {
                    email: &email,
                    user,
                    method: Method::Password,
                    strength: Strength::of(AuthMethod::Password),
                    credential_id: None,
                    reauthenticates: None,
                    new_password: None,
                };
                self.conclude_first_factor(ctx, first, now).await
            }
            Err((user_id, err)) => {
                self.log_attempt(
                    ctx,
                    &email,
                    user_id.as_deref(),
                    Method::Password,
                    Err(&err),
                    None,
                    now,
                )
                .await?;
                Err(err)
            }
        }
    }

    async fn password_first_factor(
        &self,
        ctx: &RequestContext,
        email: &str,
        password: &SecretString,
        now: i64,
    ) -> Result<User, (Option<String>, AuthError)> {
        let fail = |user: Option<&User>, err: AuthError| (user.map(|u| u.id.clone()), err);
        let ip = self.ip_gate(ctx, now).await.map_err(|e| fail(None, e))?;
        // Per-account gate: the attempt is counted before the password is checked.
        self.claim_attempt(
            "password",
            email,
            ACCOUNT_POLICY,
            AuthError::PasswordPathClosed,
            now,
        )
        .await
        .map_err(|e| fail(None, e))?;
        let user = self
            .store
            .find_user_by_email(email)
            .await
            .map_err(|e| fail(None, e.into()))?;
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let ok = self
            .hasher
            .verify(password, stored)
            .await
            .map_err(|e| fail(user.as_ref(), e.into()))?;
        match user {
            Some(user) if ok => {
                // The counter includes this attempt (claimed before the check).
                let failures = self
                    .store
                    .throttle_state("password", email)
                    .await
                    .map_err(|e| fail(Some(&user), e.into()))?
                    .failures;
                self.store
                    .throttle_reset("password", email)
                    .await
                    .map_err(|e| fail(Some(&user), e.into()))?;
                if failures > 1 && !user.disabled {
                    self.send(
                        &user.email,
                        ctx.emails.compose(EmailKind::SignInAfterFailures, None),
                        now,
                    )
                    .await
                    .map_err(|e| fail(Some(&user), e))?;
                }
                Ok(user)
            }
            user => {
                self.ip_failure(&ip, now)
                    .await
                    .map_err(|e| fail(user.as_ref(), e))?;
                Err(fail(user.as_ref(), AuthError::InvalidCredentials))
            }
        }
    }

    /// The per-IP gate in front of every secret check (passwords and codes). IPv6 clients are
    /// counted per /64. Once an address is in the throttled range, each attempt must also win
    /// the counter by compare-and-set, so a burst cannot slip through when a delay ends.
    async fn ip_gate(&self, ctx: &RequestContext, now: i64) -> Result<IpGate, AuthError> {
        let key = ip_key(&ctx.client_ip);
        let mut state = self.store.throttle_state("ip", &key).await?;
        if IP_POLICY.is_stale(state, now) && state.failures > 0 {
            self.store.throttle_reset("ip", &key).await?;
            state = ThrottleState::default();
        }
        if let ThrottleDecision::WaitUntil(until) = IP_POLICY.decide(state, now) {
            return Err(retry_after(until, now));
        }
        let counted = state.failures > IP_POLICY.free_failures;
        if counted && !self.store.throttle_claim("ip", &key, state, now).await? {
            return Err(AuthError::Throttled { retry_after_s: 1 });
        }
        Ok(IpGate { key, counted })
    }

    /// Counts a failed secret check against the client's address (unless the gate already did).
    async fn ip_failure(&self, gate: &IpGate, now: i64) -> Result<(), AuthError> {
        if !gate.counted {
            self.store
                .throttle_record_failure("ip", &gate.key, now)
                .await?;
        }
        Ok(())
    }

    /// Checks a signed-in user's current password behind the same throttle as sign-in; a
    /// success clears the account's failure count.
    async fn verify_current_password(
        &self,
        user: &User,
        password: &SecretString,
        now: i64,
    ) -> Result<(), AuthError> {
        self.claim_attempt(
            "password",
            &user.email,
            ACCOUNT_POLICY,
            AuthError::PasswordPathClosed,
            now,
        )
        .await?;
        if !self
            .hasher
            .verify(password, user.password_hash.as_deref())
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        self.store.throttle_reset("password", &user.email).await?;
        Ok(())
    }

    /// Takes one evaluation slot from the (scope, subject) counter, or says why not. The counter
    /// moves by compare-and-set, so racing requests cannot evaluate more secrets than it counts.
    /// Returns the count of consecutive attempts, this one included.
    async fn claim_attempt(
        &self,
        scope: &str,
        subject: &str,
        policy: ThrottlePolicy,
        closed: AuthError,
        now: i64,
    ) -> Result<i64, AuthError> {
        let mut state = self.store.throttle_state(scope, subject).await?;
        if policy.is_stale(state, now) {
            self.store.throttle_reset(scope, subject).await?;
            state = ThrottleState::default();
        }
        match policy.decide(state, now) {
            ThrottleDecision::Closed => return Err(closed),
            ThrottleDecision::WaitUntil(until) => return Err(retry_after(until, now)),
            ThrottleDecision::Allow => {}
        }
        if self
            .store
            .throttle_claim(scope, subject, state, now)
            .await?
        {
            Ok(state.failures + 1)
        } else {
            // Another attempt for this account is being evaluated right now.
            Err(AuthError::Throttled { retry_after_s: 1 })
        }
    }

    // ------------------------------------------------------------ sessions

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
        check_password_rules(ctx, new, &user.email)?;
        self.verify_current_password(user, current, now).await?;
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
        self.send(
            &user.email,
            ctx.emails.compose(EmailKind::PasswordChanged, None),
            now,
        )
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------ code flows

    /// Starts a password sign-up: the account is created only when the emailed code is proven.
    /// An address that already has an account gets a notice instead of a code, and the caller
    /// sees exactly the same result.
    pub async fn start_password_sign_up(
        &self,
        ctx: &RequestContext,
        display_name: &str,
        email_input: &str,
        password: &SecretString,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let display_name = validate_display_name(display_name)?;
        let email = email_or_invalid(email_input)?;
        // Counted before the expensive checks, so unlimited posts cannot burn CPU.
        self.ip_budget(ctx, "sign_up_ip", SIGN_UPS_PER_IP, SIGN_UP_WINDOW_MS, now)
            .await?;
        check_password_rules(ctx, password, &email)?;
        let password_hash = self.hasher.hash(password).await?;
        let pending = PendingSignUp {
            display_name,
            password_hash: Some(password_hash),
            external: None,
        };
        self.start_sign_up(
            ctx,
            CodePurpose::SignUpPassword,
            &email,
            &pending,
            Some(password),
            now,
        )
        .await
    }

    /// Starts a passwordless sign-up (email code only).
    pub async fn start_code_sign_up(
        &self,
        ctx: &RequestContext,
        display_name: &str,
        email_input: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let display_name = validate_display_name(display_name)?;
        let email = email_or_invalid(email_input)?;
        self.ip_budget(ctx, "sign_up_ip", SIGN_UPS_PER_IP, SIGN_UP_WINDOW_MS, now)
            .await?;
        let pending = PendingSignUp {
            display_name,
            password_hash: None,
            external: None,
        };
        self.start_sign_up(ctx, CodePurpose::SignUpCode, &email, &pending, None, now)
            .await
    }

    /// Creates the pending sign-up and sends its code. Identical password sign-ups for the same
    /// address within [`SIGN_UP_DEDUP_WINDOW_MS`] (a double submit, a retry after a dropped
    /// connection) join the flow whose code already went out instead of sending another: one
    /// email, one account, the same response. A request with a different name or password is
    /// never joined to another's flow, so nobody can slip a password into someone else's
    /// sign-up, and passwordless sign-ups (which carry no secret to compare) are never joined.
    async fn start_sign_up(
        &self,
        ctx: &RequestContext,
        purpose: CodePurpose,
        email: &str,
        pending: &PendingSignUp,
        password: Option<&SecretString>,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let payload = serde_json::to_string(pending).map_err(|e| internal(&e))?;
        let exists = self.store.find_user_by_email(email).await?.is_some();
        let (flow_id, code) = self
            .new_flow(purpose, email, None, Some(&payload), now)
            .await?;
        let slot = format!("{}:{email}", purpose.as_str());
        if let Some(holder) = self
            .store
            .claim_send_slot(&slot, &flow_id, SIGN_UP_DEDUP_WINDOW_MS, now)
            .await?
        {
            if let Some(existing) = self.live_flow(&holder, now).await? {
                if existing.purpose == purpose
                    && self
                        .same_pending_sign_up(&existing, pending, password)
                        .await?
                {
                    self.store.expire_code(&flow_id, now).await?;
                    return Ok(FlowStarted {
                        flow_id: existing.id,
                    });
                }
            }
        }
        let text = if exists {
            ctx.emails.compose(EmailKind::SignUpExistingAccount, None)
        } else {
            ctx.emails
                .compose(EmailKind::SignUpCode, Some(code.expose()))
        };
        self.send_code(&flow_id, email, text, now).await?;
        Ok(FlowStarted { flow_id })
    }

    /// Whether a pending password sign-up holds the same name and password as this request.
    async fn same_pending_sign_up(
        &self,
        existing: &CodeRecord,
        pending: &PendingSignUp,
        password: Option<&SecretString>,
    ) -> Result<bool, AuthError> {
        let Some(theirs) = existing
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<PendingSignUp>(p).ok())
        else {
            return Ok(false);
        };
        if theirs.display_name != pending.display_name {
            return Ok(false);
        }
        match (password, theirs.password_hash.as_deref()) {
            (Some(password), Some(hash)) => Ok(self.hasher.verify(password, Some(hash)).await?),
            _ => Ok(false),
        }
    }

    /// Starts a sign-in by email code. An unknown address gets a notice instead of a code.
    pub async fn start_code_sign_in(
        &self,
        ctx: &RequestContext,
        email_input: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        self.start_account_flow(
            ctx,
            CodePurpose::SignIn,
            email_input,
            EmailKind::SignInCode,
            now,
        )
        .await
    }

    /// Starts a self-service password reset by email code.
    pub async fn start_password_reset(
        &self,
        ctx: &RequestContext,
        email_input: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        self.start_account_flow(
            ctx,
            CodePurpose::ResetPassword,
            email_input,
            EmailKind::ResetCode,
            now,
        )
        .await
    }

    /// A code flow for an existing account: the code in `with_code` goes to the account's
    /// address; an address without an account gets a notice instead, and the caller cannot
    /// tell the two apart.
    async fn start_account_flow(
        &self,
        ctx: &RequestContext,
        purpose: CodePurpose,
        email_input: &str,
        with_code: EmailKind,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let email = email_or_invalid(email_input)?;
        self.code_request_budget(ctx, now).await?;
        let user = self.store.find_user_by_email(&email).await?;
        let user_id = user.as_ref().map(|u| u.id.as_str());
        let (flow_id, code) = self.new_flow(purpose, &email, user_id, None, now).await?;
        let text = match user_id {
            Some(_) => ctx.emails.compose(with_code, Some(code.expose())),
            None => ctx.emails.compose(EmailKind::NoAccount, None),
        };
        self.send_code(&flow_id, &email, text, now).await?;
        Ok(FlowStarted { flow_id })
    }

    /// Takes one code request (sign-in by code, reset, resend, email change) from the client
    /// address's budget.
    async fn code_request_budget(&self, ctx: &RequestContext, now: i64) -> Result<(), AuthError> {
        self.ip_budget(
            ctx,
            "code_request_ip",
            CODE_REQUESTS_PER_IP,
            CODE_REQUEST_WINDOW_MS,
            now,
        )
        .await
    }

    /// Takes one request from the client address's budget for `scope` (IPv6 per /64).
    async fn ip_budget(
        &self,
        ctx: &RequestContext,
        scope: &str,
        limit: i64,
        window_ms: i64,
        now: i64,
    ) -> Result<(), AuthError> {
        if self
            .store
            .take_budget(scope, &ip_key(&ctx.client_ip), limit, window_ms, now)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::TooManyRequests)
        }
    }

    /// A new flow with a fresh code (not sent yet).
    async fn new_flow(
        &self,
        purpose: CodePurpose,
        email: &str,
        user_id: Option<&str>,
        payload: Option<&str>,
        now: i64,
    ) -> Result<(String, SecretString), AuthError> {
        let flow_id = random_id();
        let code = codes::generate_code();
        self.store
            .create_code(&NewCode {
                id: &flow_id,
                purpose,
                email,
                user_id,
                code_hash: &codes::code_hash(&self.key, purpose, &flow_id, &code),
                payload,
                now,
                expires_at: now + CODE_TTL_MS,
            })
            .await?;
        Ok((flow_id, code))
    }

    /// Sends a flow's code, within the address's budget of [`MAX_SENDS_PER_ADDRESS`] messages
    /// per [`SEND_WINDOW_MS`] (taken atomically, so a burst of requests cannot exceed it). Over
    /// budget, the flow is ended unsent: it can never be used to guess, and the caller sees the
    /// same result as when the message went out.
    async fn send_code(
        &self,
        flow_id: &str,
        email: &str,
        text: EmailText,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self
            .store
            .take_budget("send", email, MAX_SENDS_PER_ADDRESS, SEND_WINDOW_MS, now)
            .await?
        {
            tracing::warn!("per-address message budget reached; no code sent");
            self.store.expire_code(flow_id, now).await?;
            return Ok(());
        }
        self.send(email, text, now).await?;
        self.store.mark_code_sent(flow_id, now).await?;
        Ok(())
    }

    /// Looks a flow up for display (the address the code went to). Unknown and dead flows are
    /// both `None`.
    pub async fn live_flow(
        &self,
        flow_id: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, AuthError> {
        if flow_id.is_empty() || flow_id.len() > 64 {
            return Ok(None);
        }
        let flow = self.store.find_code(flow_id).await?;
        Ok(flow.filter(|f| f.consumed_at.is_none() && f.expires_at > now))
    }

    /// A live flow of `purpose` and the account it belongs to; anything else is a dead flow.
    async fn live_flow_with_user(
        &self,
        id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(CodeRecord, User), AuthError> {
        let Some(flow) = self
            .live_flow(id, now)
            .await?
            .filter(|f| f.purpose == purpose)
        else {
            return Err(AuthError::CodeDead);
        };
        let user = match &flow.user_id {
            Some(user_id) => self.store.find_user(user_id).await?,
            None => None,
        };
        user.map(|user| (flow, user)).ok_or(AuthError::CodeDead)
    }

    /// Sends a new code for a live flow, at most once a minute; wrong attempts are not reset.
    pub async fn resend_code(
        &self,
        ctx: &RequestContext,
        flow_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(flow) = self.live_flow(flow_id, now).await? else {
            return Err(AuthError::CodeDead);
        };
        if !is_emailed_code_flow(flow.purpose) {
            return Err(AuthError::CodeDead);
        }
        self.code_request_budget(ctx, now).await?;
        let code = codes::generate_code();
        let hash = codes::code_hash(&self.key, flow.purpose, &flow.id, &code);
        let Some(flow) = self
            .store
            .resend_code(
                &flow.id,
                &hash,
                RESEND_INTERVAL_MS,
                MAX_WRONG_ATTEMPTS,
                now + CODE_TTL_MS,
                now,
            )
            .await?
        else {
            return Err(AuthError::ResendTooSoon);
        };
        let text = match flow.purpose {
            CodePurpose::SignUpPassword | CodePurpose::SignUpCode => {
                if self.store.find_user_by_email(&flow.email).await?.is_some() {
                    ctx.emails.compose(EmailKind::SignUpExistingAccount, None)
                } else {
                    ctx.emails
                        .compose(EmailKind::SignUpCode, Some(code.expose()))
                }
            }
            CodePurpose::SignIn if flow.user_id.is_some() => ctx
                .emails
                .compose(EmailKind::SignInCode, Some(code.expose())),
            CodePurpose::ResetPassword if flow.user_id.is_some() => ctx
                .emails
                .compose(EmailKind::ResetCode, Some(code.expose())),
            _ => ctx.emails.compose(EmailKind::NoAccount, None),
        };
        if !self
            .store
            .take_budget(
                "send",
                &flow.email,
                MAX_SENDS_PER_ADDRESS,
                SEND_WINDOW_MS,
                now,
            )
            .await?
        {
            return Err(AuthError::TooManyRequests);
        }
        self.send(&flow.email, text, now).await
    }

    /// Checks a code for a flow and carries the flow to its end: a new account, a session, or
    /// the right to set a new password. Exactly one of many concurrent correct submissions wins.
    pub async fn verify_code(
        &self,
        ctx: &RequestContext,
        flow_id: &str,
        input: &str,
        now: i64,
    ) -> Result<CodeOutcome, AuthError> {
        let Some(flow) = self.live_flow(flow_id, now).await? else {
            return Err(AuthError::CodeDead);
        };
        // Grants carry no code, and second-factor email codes belong to the second-factor step.
        if !is_emailed_code_flow(flow.purpose) {
            return Err(AuthError::CodeDead);
        }
        let method = Method::for_purpose(flow.purpose);
        let outcome = self.check_code(ctx, &flow, input, now).await;
        let accepted = match outcome {
            Ok(accepted) => accepted,
            Err(err) => {
                self.log_attempt(
                    ctx,
                    &flow.email,
                    flow.user_id.as_deref(),
                    method,
                    Err(&err),
                    None,
                    now,
                )
                .await?;
                return Err(err);
            }
        };
        match accepted.purpose {
            CodePurpose::SignUpPassword | CodePurpose::SignUpCode => {
                let pending: PendingSignUp =
                    serde_json::from_str(accepted.payload.as_deref().unwrap_or(""))
                        .map_err(|e| internal(&e))?;
                let user_id = random_id();
                let new_user = NewUser {
                    id: &user_id,
                    email: &accepted.email,
                    display_name: &pending.display_name,
                    password_hash: pending.password_hash.as_deref(),
                    is_admin: false,
                    now,
                };
                let created = match &pending.external {
                    Some(profile) => self.create_account_from_code(&new_user, profile).await,
                    None => self.store.create_user(&new_user).await,
                };
                let user = match created {
                    Ok(user) => {
                        // Failures recorded against the address before it had an account must
                        // not count against the new account.
                        self.store.throttle_reset("password", &user.email).await?;
                        self.store.throttle_reset("code", &user.email).await?;
                        user
                    }
                    Err(StoreError::Conflict) => {
                        return Err(self
                            .refuse(
                                ctx,
                                &accepted.email,
                                None,
                                method,
                                AuthError::AccountExists,
                                now,
                            )
                            .await?);
                    }
                    Err(e) => return Err(e.into()),
                };
                let (method, amr) = match (&pending.external, &pending.password_hash) {
                    (Some(profile), _) => {
                        self.audit_silently(
                            ctx,
                            &user.id,
                            "federation.linked",
                            &profile.provider_id,
                            now,
                        )
                        .await?;
                        (Method::SignUpFederated, Strength::of(AuthMethod::Provider))
                    }
                    // The password was chosen just now, not proven: the mailbox was.
                    (None, _) => (method, Strength::of(AuthMethod::EmailCode)),
                };
                let first = FirstFactor {
                    email: &accepted.email,
                    user,
                    method,
                    strength: amr,
                    credential_id: None,
                    reauthenticates: None,
                    new_password: None,
                };
                let signed = self.conclude_first_factor(ctx, first, now).await?;
                Ok(CodeOutcome::SignIn(signed))
            }
            CodePurpose::SignIn => {
                let user = match &accepted.user_id {
                    Some(id) => self.store.find_user(id).await?,
                    None => None,
                };
                let Some(user) = user else {
                    return Err(self
                        .refuse(ctx, &accepted.email, None, method, AuthError::CodeDead, now)
                        .await?);
                };
                // A proven mailbox is the other way in that reopens a closed password path.
                if !user.disabled {
                    self.store.throttle_reset("password", &user.email).await?;
                }
                let first = FirstFactor {
                    email: &accepted.email,
                    user,
                    method,
                    strength: Strength::of(AuthMethod::EmailCode),
                    credential_id: None,
                    reauthenticates: None,
                    new_password: None,
                };
                let signed = self.conclude_first_factor(ctx, first, now).await?;
                Ok(CodeOutcome::SignIn(signed))
            }
            CodePurpose::ResetPassword => {
                let grant_id = random_id();
                self.store
                    .create_code(&NewCode {
                        id: &grant_id,
                        purpose: CodePurpose::ResetGrant,
                        email: &accepted.email,
                        user_id: accepted.user_id.as_deref(),
                        code_hash: "",
                        payload: None,
                        now,
                        expires_at: now + codes::RESET_GRANT_TTL_MS,
                    })
                    .await?;
                Ok(CodeOutcome::ResetGranted { grant_id })
            }
            CodePurpose::ResetGrant
            | CodePurpose::SecondFactor
            | CodePurpose::SecondFactorEmail
            | CodePurpose::PasskeyRegistration
            | CodePurpose::PasskeySignIn
            | CodePurpose::PasskeySecondFactor
            | CodePurpose::PhoneVerification
            | CodePurpose::SecondFactorSms
            | CodePurpose::ExternalAuthorization
            | CodePurpose::ExternalSignUp
            | CodePurpose::ExternalLink
            | CodePurpose::EmailChange
            | CodePurpose::EmailChangeUndo => Err(AuthError::CodeDead),
        }
    }

    async fn check_code(
        &self,
        ctx: &RequestContext,
        flow: &CodeRecord,
        input: &str,
        now: i64,
    ) -> Result<CodeRecord, AuthError> {
        let code = codes::parse_code(input).ok_or(AuthError::InvalidInput(InputProblem::Code))?;
        let ip = self.ip_gate(ctx, now).await?;
        self.claim_attempt(
            "code",
            &flow.email,
            CODE_POLICY,
            AuthError::PasswordPathClosed,
            now,
        )
        .await?;
        let hash = codes::code_hash(&self.key, flow.purpose, &flow.id, &code);
        match self
            .store
            .try_consume_code(&flow.id, flow.purpose, &hash, MAX_WRONG_ATTEMPTS, now)
            .await?
        {
            CodeAttempt::Accepted(record) => {
                self.store.throttle_reset("code", &flow.email).await?;
                Ok(record)
            }
            CodeAttempt::Wrong { attempts_left } => {
                self.ip_failure(&ip, now).await?;
                Err(AuthError::CodeWrong { attempts_left })
            }
            CodeAttempt::Exhausted => {
                self.ip_failure(&ip, now).await?;
                Err(AuthError::CodeDead)
            }
            CodeAttempt::Dead => Err(AuthError::CodeDead),
        }
    }

    /// Sets a new password with a reset grant. Ends every session of the account, then signs
    /// this browser in. On an account with a second factor the new password is saved only once
    /// that factor is proven: the mailbox alone never changes the password of such an account.
    pub async fn complete_password_reset(
        &self,
        ctx: &RequestContext,
        grant_id: &str,
        new_password: &SecretString,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        let (grant, user) = self
            .live_flow_with_user(grant_id, CodePurpose::ResetGrant, now)
            .await?;
        check_password_rules(ctx, new_password, &user.email)?;
        let hash = self.hasher.hash(new_password).await?;
        if self
            .store
            .consume_grant(&grant.id, CodePurpose::ResetGrant, now)
            .await?
            .is_none()
        {
            return Err(AuthError::CodeDead);
        }
        let email = user.email.clone();
        let epoch = user.credential_epoch;
        // On an account with a second factor the decision step waits for it, and the new
        // password is saved only then; otherwise it is saved before the session starts.
        let first = FirstFactor {
            email: &email,
            user,
            method: Method::PasswordReset,
            strength: Strength::of(AuthMethod::EmailCode),
            credential_id: None,
            reauthenticates: None,
            new_password: Some((&hash, epoch)),
        };
        self.conclude_first_factor(ctx, first, now).await
    }

    /// Saves a password chosen through a reset, if the credentials are still those it was
    /// chosen against: every session ends, the password path reopens, the owner is told, and
    /// the audit log records it (an emailed code is then no second factor for a week).
    async fn save_reset_password(
        &self,
        ctx: &RequestContext,
        user: User,
        hash: &str,
        epoch: i64,
        now: i64,
    ) -> Result<User, AuthError> {
        let epoch = self
            .store
            .set_password(&user.id, hash, epoch, now)
            .await?
            .ok_or(AuthError::CodeDead)?;
        self.end_sessions(&user.id, SessionsToEnd::All, now).await?;
        self.store.throttle_reset("password", &user.email).await?;
        self.send(
            &user.email,
            ctx.emails.compose(EmailKind::PasswordChanged, None),
            now,
        )
        .await?;
        self.audit_silently(
            ctx,
            &user.id,
            mfa::PASSWORD_RESET_AUDIT,
            "password set through a reset",
            now,
        )
        .await?;
        Ok(User {
            credential_epoch: epoch,
            password_hash: Some(hash.to_string()),
            ..user
        })
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

    // ------------------------------------------------------------ plumbing

    async fn send(&self, recipient: &str, text: EmailText, now: i64) -> Result<(), AuthError> {
        self.deliver("email", self.mailer.as_ref(), recipient, text, now)
            .await
    }

    /// Writes a message to the outbox and hands it to `sender` (the mailer, or the SMS
    /// gateway); a real delivery removes its content from the table.
    async fn deliver(
        &self,
        channel: &str,
        sender: &dyn Mailer,
        recipient: &str,
        text: EmailText,
        now: i64,
    ) -> Result<(), AuthError> {
        let message = OutboxMessage {
            id: random_id(),
            created_at: now,
            channel: channel.into(),
            recipient: recipient.into(),
            subject: text.subject,
            body: text.body,
            sent_at: None,
            last_error: None,
        };
        self.store.enqueue_message(&message).await?;
        match sender.deliver(&message).await {
            // Delivered for real: the content (a live code) is removed from the table.
            Ok(()) if !sender.is_development_outbox() => {
                self.store
                    .redact_delivered_message(&message.id, now)
                    .await?
            }
            Ok(()) => {
                self.store
                    .mark_message(&message.id, Some(now), None)
                    .await?
            }
            Err(reason) => {
                tracing::warn!(message_id = %message.id, channel, reason = %reason, "delivery failed");
                self.store
                    .mark_message(&message.id, None, Some(&reason))
                    .await?;
            }
        }
        Ok(())
    }

    /// A tenant setting stored as JSON; its default when unset or unreadable.
    async fn setting<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, AuthError> {
        Ok(self
            .store
            .get_setting(name)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default())
    }

    async fn put_setting<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        now: i64,
    ) -> Result<(), AuthError> {
        let json = serde_json::to_string(value).map_err(|e| internal(&e))?;
        self.store.put_setting(name, &json, now).await?;
        Ok(())
    }

    /// Remembers the browser an account signed in from, and tells the owner when it is new
    /// (not for the first browser an account ever used, nor for the sign-up itself).
    async fn note_device(
        &self,
        ctx: &RequestContext,
        user: &User,
        method: Method,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(device) = ctx
            .device
            .as_deref()
            .filter(|d| !d.is_empty() && d.len() <= 64)
        else {
            return Ok(());
        };
        let (new, known_before) = self
            .store
            .remember_device(&user.id, &token_hash(device), now)
            .await?;
        let sign_up = matches!(
            method,
            Method::SignUpPassword | Method::SignUpEmailCode | Method::SignUpFederated
        );
        if new && known_before > 0 && !sign_up {
            self.send(
                &user.email,
                ctx.emails.compose(EmailKind::NewDeviceSignIn, None),
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Tells the owner when a security event changed the ways into their account.
    async fn notify_method_change(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        action: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let kind = match action {
            "mfa.authenticator.added"
            | "mfa.passkey.added"
            | "mfa.phone.added"
            | "mfa.recovery_codes.generated"
            | "federation.linked" => EmailKind::MethodAdded,
            "mfa.authenticator.removed"
            | "mfa.passkey.removed"
            | "mfa.phone.removed"
            | "federation.unlinked" => EmailKind::MethodRemoved,
            _ => return Ok(()),
        };
        if let Some(user) = self.store.find_user(user_id).await? {
            self.send(&user.email, ctx.emails.compose(kind, None), now)
                .await?;
        }
        Ok(())
    }

    /// Writes a security event about an account, done by its owner, to the audit log, and
    /// tells the owner when it changed the ways into the account.
    async fn audit(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.audit_silently(ctx, user_id, action, detail, now)
            .await?;
        self.notify_method_change(ctx, user_id, action, now).await
    }

    /// [`Identity::audit`] without telling the owner (the event is part of creating the
    /// account, which they are doing right now).
    async fn audit_silently(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.store
            .record_audit(&crate::store::AuditEntry {
                id: random_id(),
                occurred_at: now,
                actor_user_id: Some(user_id.to_string()),
                subject_user_id: Some(user_id.to_string()),
                action: action.to_string(),
                detail: detail.chars().take(500).collect(),
                client_ip: ctx.client_ip.clone(),
            })
            .await?;
        Ok(())
    }

    /// Refuses, and logs, a sign-in to a disabled account.
    async fn refuse_if_disabled(
        &self,
        ctx: &RequestContext,
        user: &User,
        method: Method,
        now: i64,
    ) -> Result<(), AuthError> {
        if user.disabled {
            return Err(self
                .refuse(
                    ctx,
                    &user.email,
                    Some(&user.id),
                    method,
                    AuthError::AccountDisabled,
                    now,
                )
                .await?);
        }
        Ok(())
    }

    /// Logs a refused attempt and hands back the error to return.
    async fn refuse(
        &self,
        ctx: &RequestContext,
        email: &str,
        user_id: Option<&str>,
        method: Method,
        err: AuthError,
        now: i64,
    ) -> Result<AuthError, AuthError> {
        self.log_attempt(ctx, email, user_id, method, Err(&err), None, now)
            .await?;
        Ok(err)
    }

    #[allow(clippy::too_many_arguments)]
    async fn log_attempt(
        &self,
        ctx: &RequestContext,
        email: &str,
        user_id: Option<&str>,
        method: Method,
        result: Result<(), &AuthError>,
        session_id: Option<&str>,
        now: i64,
    ) -> Result<(), AuthError> {
        let (result, reason) = match result {
            Ok(()) => ("success", None),
            Err(
                e @ (AuthError::SecondFactorRequired
                | AuthError::EnrollmentRequired
                | AuthError::ReauthenticationRequired
                | AuthError::LinkRequired),
            ) => ("interrupted", Some(e.reason_code())),
            Err(
                e @ (AuthError::Throttled { .. }
                | AuthError::PasswordPathClosed
                | AuthError::TooManyRequests),
            ) => ("blocked", Some(e.reason_code())),
            Err(e) => ("failure", Some(e.reason_code())),
        };
        let email: String = email.chars().take(320).collect();
        let user_agent: String = ctx.user_agent.chars().take(512).collect();
        self.store
            .record_sign_in(&SignInLogEntry {
                id: random_id(),
                occurred_at: now,
                user_id: user_id.map(str::to_string),
                email,
                application: ctx.application.clone(),
                client_ip: ctx.client_ip.clone(),
                user_agent,
                method: method.as_str().into(),
                result: result.into(),
                failure_reason: reason.map(str::to_string),
                session_id: session_id.map(str::to_string),
            })
            .await?;
        Ok(())
    }
}
