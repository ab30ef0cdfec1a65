//! Sign-in through other identity providers: the account side.
//!
//! The HTTP edge speaks the protocol (OpenID Connect or OAuth 2.0) and hands a verified
//! [`ExternalProfile`] to this module, which decides what it means for the accounts:
//! - an identity is keyed by (issuer, subject), never by email;
//! - a known identity signs its account in through the usual pipeline (sign-in log row,
//!   second factor when the account has one);
//! - a new identity with a provider-verified email that no account uses becomes a new account;
//!   without a verified email (or a name) the person completes the sign-up, proving an email
//!   by code;
//! - a verified email that an account already uses never opens that account by itself: the
//!   person proves the account (password, code or passkey) and then confirms the link.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{
    internal, validate_display_name, AuthError, FlowStarted, Identity, Method, PendingSignUp,
    RequestContext, SignInOutcome,
};
use crate::secret::SecretString;
use crate::store::{
    CodePurpose, CodeRecord, ExternalIdentity, NewCode, NewUser, ProviderRecord, Session,
    StoreError, User,
};
use crate::tokens::{random_id, token_hash};
use crate::{email, seal};

/// How long the browser has to come back from the provider.
pub const AUTHORIZATION_TTL_MS: i64 = 10 * 60 * 1000;
/// How long a provider identity waits for the rest of its sign-up, or for its link.
pub const EXTERNAL_PENDING_TTL_MS: i64 = 15 * 60 * 1000;
/// Provider ids are short slugs: they appear in URLs.
pub const MAX_PROVIDER_ID: usize = 32;
const PROVIDER_SECRET_SEAL: &str = "provider-secret";
const PKCE_SEAL: &str = "pkce-verifier";

/// The protocols and presets Gatehouse knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID Connect provider, by issuer URL.
    Oidc,
    Google,
    Microsoft,
    Apple,
    /// OAuth 2.0 with the Graph API's `/me`.
    Facebook,
    /// OAuth 2.0 with the REST API's `/user` and `/user/emails`.
    Github,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Oidc,
        ProviderKind::Google,
        ProviderKind::Microsoft,
        ProviderKind::Apple,
        ProviderKind::Facebook,
        ProviderKind::Github,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Apple => "apple",
            ProviderKind::Facebook => "facebook",
            ProviderKind::Github => "github",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the provider speaks OpenID Connect (ID tokens) rather than plain OAuth 2.0.
    pub fn is_openid_connect(self) -> bool {
        !matches!(self, ProviderKind::Facebook | ProviderKind::Github)
    }

    /// The name shown on buttons when none is configured.
    pub fn default_name(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "OpenID Connect",
            ProviderKind::Google => "Google",
            ProviderKind::Microsoft => "Microsoft",
            ProviderKind::Apple => "Apple",
            ProviderKind::Facebook => "Facebook",
            ProviderKind::Github => "GitHub",
        }
    }

    /// The issuer of a preset, or the fixed issuer that keys identities of an OAuth 2.0
    /// provider (which has none of its own). `tenant` is the Microsoft directory.
    pub fn default_issuer(self, tenant: Option<&str>) -> Option<String> {
        match self {
            ProviderKind::Oidc => None,
            ProviderKind::Google => Some("https://accounts.google.com".into()),
            ProviderKind::Microsoft => Some(format!(
                "https://login.microsoftonline.com/{}/v2.0",
                tenant.unwrap_or(MICROSOFT_PERSONAL_ACCOUNTS_TENANT)
            )),
            ProviderKind::Apple => Some("https://appleid.apple.com".into()),
            ProviderKind::Facebook => Some("https://www.facebook.com".into()),
            ProviderKind::Github => Some("https://github.com".into()),
        }
    }

    pub fn default_scopes(self) -> Vec<String> {
        let scopes: &[&str] = match self {
            ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Microsoft => {
                &["openid", "email", "profile"]
            }
            ProviderKind::Apple => &["openid", "email", "name"],
            ProviderKind::Facebook => &["email", "public_profile"],
            ProviderKind::Github => &["read:user", "user:email"],
        };
        scopes.iter().map(|s| s.to_string()).collect()
    }

    /// The endpoints of the OAuth 2.0 providers (OpenID Connect providers publish theirs).
    pub fn default_endpoints(self) -> Endpoints {
        match self {
            ProviderKind::Facebook => Endpoints {
                authorization: Some("https://www.facebook.com/v19.0/dialog/oauth".into()),
                token: Some("https://graph.facebook.com/v19.0/oauth/access_token".into()),
                userinfo: Some("https://graph.facebook.com/v19.0/me?fields=id,name,email".into()),
                ..Endpoints::default()
            },
            ProviderKind::Github => Endpoints {
                authorization: Some("https://github.com/login/oauth/authorize".into()),
                token: Some("https://github.com/login/oauth/access_token".into()),
                userinfo: Some("https://api.github.com/user".into()),
                emails: Some("https://api.github.com/user/emails".into()),
                ..Endpoints::default()
            },
            _ => Endpoints::default(),
        }
    }
}

/// Microsoft's tenant of personal accounts (outlook.com, live.com).
pub const MICROSOFT_PERSONAL_ACCOUNTS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Endpoint overrides. OpenID Connect providers are discovered from their issuer and any
/// endpoint given here replaces the discovered one; OAuth 2.0 providers use these directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// GitHub's list of the user's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<String>,
}

/// Which ID-token claims carry the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimMapping {
    pub email: String,
    pub email_verified: String,
    pub name: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: "email".into(),
            email_verified: "email_verified".into(),
            name: "name".into(),
        }
    }
}

/// Sign in with Apple: the client secret is a short-lived JWT signed with this key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppleSigning {
    pub team_id: String,
    pub key_id: String,
}

/// A provider's settings, stored as JSON beside its sealed secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSettings {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: ClaimMapping,
    #[serde(default)]
    pub endpoints: Endpoints,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple: Option<AppleSigning>,
}

/// A configured provider with its secret opened (never shown, never logged).
#[derive(Clone)]
pub struct Provider {
    pub id: String,
    pub kind: ProviderKind,
    pub display_name: String,
    pub settings: ProviderSettings,
    /// The client secret; for Apple, the PKCS#8 PEM of the signing key.
    pub secret: Option<SecretString>,
    pub enabled: bool,
    pub position: i64,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("display_name", &self.display_name)
            .field("settings", &self.settings)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A button on the sign-in pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderButton {
    pub id: String,
    pub kind: ProviderKind,
    pub display_name: String,
}

/// What the command line (and later the admin console) gives to add or change a provider.
#[derive(Debug, Clone)]
pub struct ProviderInput {
    pub id: String,
    pub kind: ProviderKind,
    pub display_name: Option<String>,
    pub issuer: Option<String>,
    /// The Microsoft directory (tenant id); personal accounts when absent.
    pub tenant: Option<String>,
    pub client_id: String,
    pub secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    pub claims: ClaimMapping,
    pub endpoints: Endpoints,
    pub apple: Option<AppleSigning>,
    pub enabled: bool,
}

/// Why a provider configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderConfigError {
    #[error("the provider id must be 1 to 32 lowercase letters, digits or dashes")]
    Id,
    #[error("the display name must be 1 to 100 characters")]
    DisplayName,
    #[error("an issuer URL (https, or http on loopback) is required")]
    Issuer,
    #[error("endpoint {0} must be an https URL (or http on loopback)")]
    Endpoint(&'static str),
    #[error("the client id is required")]
    ClientId,
    #[error("a client secret is required")]
    Secret,
    #[error("Apple needs the team id, the key id and the signing key (PKCS#8 PEM)")]
    Apple,
    #[error("scopes must be non-empty words")]
    Scopes,
    #[error("claim names must be non-empty")]
    Claims,
}

/// Whether `url` may be used to reach a provider: https anywhere, plain http only on
/// loopback (local providers in development and tests).
pub fn acceptable_provider_url(url: &str) -> bool {
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let name = if host.starts_with('[') {
            host.split(']').next().unwrap_or("").trim_start_matches('[')
        } else {
            host.split(':').next().unwrap_or("")
        };
        return name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
    }
    false
}

fn valid_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PROVIDER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

/// The identity a provider vouched for, after its response was fully verified.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalProfile {
    pub provider_id: String,
    pub issuer: String,
    pub subject: String,
    #[serde(default)]
    pub email: Option<String>,
    /// The provider says it proved the email.
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub name: Option<String>,
}

impl std::fmt::Debug for ExternalProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalProfile")
            .field("provider_id", &self.provider_id)
            .field("issuer", &self.issuer)
            .field("email_verified", &self.email_verified)
            .finish_non_exhaustive()
    }
}

impl ExternalProfile {
    /// A verified, well-formed email, normalized; anything else is no email.
    fn verified_email(&self) -> Option<String> {
        if !self.email_verified {
            return None;
        }
        self.email
            .as_deref()
            .and_then(|e| email::normalize_email(e).ok())
    }

    fn usable_name(&self) -> Option<String> {
        self.name
            .as_deref()
            .and_then(|n| validate_display_name(n).ok())
    }
}

/// The first identity of a new account, used by it at once.
fn new_identity(
    profile: &ExternalProfile,
    user_id: &str,
    email: &str,
    now: i64,
) -> ExternalIdentity {
    ExternalIdentity {
        id: random_id(),
        user_id: user_id.to_string(),
        provider_id: profile.provider_id.clone(),
        issuer: profile.issuer.clone(),
        subject: profile.subject.clone(),
        email: Some(email.to_string()),
        created_at: now,
        last_used_at: Some(now),
    }
}

/// What the person wants from the round trip to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalIntent {
    SignIn,
    /// Link to the signed-in account (from the security-info page).
    Link,
}

/// The secrets of one authorization request, made by the protocol side.
pub struct AuthorizationSecrets {
    pub state: SecretString,
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
}

#[derive(Serialize, Deserialize)]
struct AuthorizationPayload {
    provider_id: String,
    state_hash: String,
    nonce: String,
    sealed_verifier: String,
    intent: ExternalIntent,
}

/// A returned browser's authorization request, taken (single use).
pub struct ReturnedAuthorization {
    pub provider_id: String,
    pub nonce: SecretString,
    pub pkce_verifier: SecretString,
    pub intent: ExternalIntent,
    /// The account a link was started from.
    pub user_id: Option<String>,
}

/// Where a verified provider identity leads.
#[derive(Debug)]
pub enum ExternalOutcome {
    /// Signed in (or on to the second factor).
    SignIn(SignInOutcome),
    /// The sign-up needs more (a name, or an email to prove): the flow's id goes into the
    /// browser's flow cookie.
    NeedsDetails { flow_id: String },
    /// The email belongs to an account: the person must prove that account before the link.
    LinkRequired { flow_id: String },
}

/// What the finishing form of a provider sign-up asks for.
#[derive(Debug, Clone)]
pub struct PendingExternal {
    pub provider_name: String,
    pub name: Option<String>,
    /// The email, when the provider proved it (not asked again).
    pub verified_email: Option<String>,
    /// An unproven email the provider gave, to prefill the form.
    pub suggested_email: Option<String>,
    /// For a pending link: the account's email.
    pub account_email: Option<String>,
}

/// What finishing a provider sign-up led to.
#[derive(Debug)]
pub enum ExternalFinish {
    SignIn(SignInOutcome),
    /// An email must be proven first: on to the code page.
    CodeSent(FlowStarted),
}

/// A linked provider account, for the security-info page.
#[derive(Debug, Clone)]
pub struct LinkedIdentity {
    pub id: String,
    pub provider_id: String,
    pub provider_name: String,
    pub kind: Option<ProviderKind>,
    pub email: Option<String>,
    pub linked_at: i64,
    pub last_used_at: Option<i64>,
}

impl Identity {
    // ------------------------------------------------------------ configuration

    /// Adds a provider or replaces the one with the same id; the secret is sealed at rest.
    pub async fn put_provider(
        &self,
        input: ProviderInput,
        now: i64,
    ) -> Result<Result<Provider, ProviderConfigError>, AuthError> {
        let existing = self.store.find_provider(&input.id).await?;
        let provider = match self.provider_from_input(input, existing.as_ref()) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let sealed_secret = match &provider.secret {
            Some(secret) => Some(
                seal::seal(&self.key, PROVIDER_SECRET_SEAL, secret.expose().as_bytes())
                    .map_err(|e| internal(&e))?,
            ),
            None => None,
        };
        let position = match &existing {
            Some(p) => p.position,
            None => self
                .store
                .list_providers()
                .await?
                .iter()
                .map(|p| p.position + 1)
                .max()
                .unwrap_or(0),
        };
        let record = ProviderRecord {
            id: provider.id.clone(),
            kind: provider.kind.as_str().into(),
            display_name: provider.display_name.clone(),
            settings: serde_json::to_string(&provider.settings).map_err(|e| internal(&e))?,
            sealed_secret,
            enabled: provider.enabled,
            position,
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        self.store.put_provider(&record).await?;
        Ok(Ok(Provider {
            position,
            ..provider
        }))
    }

    fn provider_from_input(
        &self,
        input: ProviderInput,
        existing: Option<&ProviderRecord>,
    ) -> Result<Provider, ProviderConfigError> {
        if !valid_provider_id(&input.id) {
            return Err(ProviderConfigError::Id);
        }
        let display_name = input
            .display_name
            .unwrap_or_else(|| input.kind.default_name().to_string());
        let display_name =
            validate_display_name(&display_name).map_err(|_| ProviderConfigError::DisplayName)?;
        let issuer = match input.kind {
            ProviderKind::Oidc => input.issuer,
            kind => input
                .issuer
                .or_else(|| kind.default_issuer(input.tenant.as_deref())),
        }
        .map(|i| i.trim_end_matches('/').to_string())
        .filter(|i| acceptable_provider_url(i))
        .ok_or(ProviderConfigError::Issuer)?;
        let client_id = input.client_id.trim().to_string();
        if client_id.is_empty() || client_id.len() > 512 {
            return Err(ProviderConfigError::ClientId);
        }
        let mut endpoints = input.kind.default_endpoints();
        let o = input.endpoints;
        endpoints = Endpoints {
            authorization: o.authorization.or(endpoints.authorization),
            token: o.token.or(endpoints.token),
            userinfo: o.userinfo.or(endpoints.userinfo),
            jwks: o.jwks.or(endpoints.jwks),
            emails: o.emails.or(endpoints.emails),
        };
        for (name, url) in [
            ("authorization", &endpoints.authorization),
            ("token", &endpoints.token),
            ("userinfo", &endpoints.userinfo),
            ("jwks", &endpoints.jwks),
            ("emails", &endpoints.emails),
        ] {
            if let Some(url) = url {
                if !acceptable_provider_url(url) {
                    return Err(ProviderConfigError::Endpoint(name));
                }
            }
        }
        if !input.kind.is_openid_connect()
            && (endpoints.authorization.is_none()
                || endpoints.token.is_none()
                || endpoints.userinfo.is_none())
        {
            return Err(ProviderConfigError::Endpoint(
                "authorization/token/userinfo",
            ));
        }
        let scopes = input.scopes.unwrap_or_else(|| input.kind.default_scopes());
        if scopes.is_empty()
            || scopes
                .iter()
                .any(|s| s.is_empty() || s.len() > 100 || !s.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ProviderConfigError::Scopes);
        }
        let c = &input.claims;
        if c.email.is_empty() || c.email_verified.is_empty() || c.name.is_empty() {
            return Err(ProviderConfigError::Claims);
        }
        // A new secret replaces the stored one; otherwise the stored one is kept.
        let secret = match input.secret {
            Some(s) if !s.expose().trim().is_empty() => Some(SecretString::new(s.expose().trim())),
            _ => match existing.and_then(|p| p.sealed_secret.as_deref()) {
                Some(sealed) => Some(
                    self.open_secret(sealed)
                        .map_err(|_| ProviderConfigError::Secret)?,
                ),
                None => None,
            },
        };
        if input.kind == ProviderKind::Apple {
            let ok = input
                .apple
                .as_ref()
                .is_some_and(|a| !a.team_id.trim().is_empty() && !a.key_id.trim().is_empty())
                && secret
                    .as_ref()
                    .is_some_and(|s| s.expose().contains("BEGIN PRIVATE KEY"));
            if !ok {
                return Err(ProviderConfigError::Apple);
            }
        } else if secret.is_none() {
            return Err(ProviderConfigError::Secret);
        }
        Ok(Provider {
            id: input.id,
            kind: input.kind,
            display_name,
            settings: ProviderSettings {
                issuer,
                client_id,
                scopes,
                claims: input.claims,
                endpoints,
                apple: input.apple,
            },
            secret,
            enabled: input.enabled,
            position: 0,
        })
    }

    fn open_secret(&self, sealed: &str) -> Result<SecretString, AuthError> {
        let bytes =
            seal::open(&self.key, PROVIDER_SECRET_SEAL, sealed).map_err(|e| internal(&e))?;
        String::from_utf8(bytes)
            .map(SecretString::new)
            .map_err(|e| internal(&e))
    }

    fn provider_from_record(&self, record: ProviderRecord) -> Result<Provider, AuthError> {
        let kind =
            ProviderKind::parse(&record.kind).ok_or_else(|| internal(&StoreError::Malformed))?;
        let settings: ProviderSettings =
            serde_json::from_str(&record.settings).map_err(|e| internal(&e))?;
        let secret = match record.sealed_secret.as_deref() {
            Some(sealed) => Some(self.open_secret(sealed)?),
            None => None,
        };
        Ok(Provider {
            id: record.id,
            kind,
            display_name: record.display_name,
            settings,
            secret,
            enabled: record.enabled,
            position: record.position,
        })
    }

    /// Every configured provider, in display order.
    pub async fn providers(&self) -> Result<Vec<Provider>, AuthError> {
        self.store
            .list_providers()
            .await?
            .into_iter()
            .map(|r| self.provider_from_record(r))
            .collect()
    }

    /// An enabled provider by id.
    pub async fn enabled_provider(&self, id: &str) -> Result<Option<Provider>, AuthError> {
        if !valid_provider_id(id) {
            return Ok(None);
        }
        match self.store.find_provider(id).await? {
            Some(r) if r.enabled => Ok(Some(self.provider_from_record(r)?)),
            _ => Ok(None),
        }
    }

    /// The buttons of the sign-in pages: enabled providers in order (no secrets opened).
    pub async fn provider_buttons(&self) -> Result<Vec<ProviderButton>, AuthError> {
        Ok(self
            .store
            .list_providers()
            .await?
            .into_iter()
            .filter(|r| r.enabled)
            .filter_map(|r| {
                Some(ProviderButton {
                    kind: ProviderKind::parse(&r.kind)?,
                    id: r.id,
                    display_name: r.display_name,
                })
            })
            .collect())
    }

    pub async fn set_provider_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(self.store.set_provider_enabled(id, enabled, now).await?)
    }

    pub async fn set_provider_position(
        &self,
        id: &str,
        position: i64,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(self.store.set_provider_position(id, position, now).await?)
    }

    pub async fn remove_provider(&self, id: &str) -> Result<bool, AuthError> {
        Ok(self.store.delete_provider(id).await?)
    }

    // ------------------------------------------------------------ the round trip

    /// Records an authorization request about to be sent to `provider`. The returned id goes
    /// into the browser's cookie: the response is accepted only from this browser, once.
    pub async fn begin_external(
        &self,
        provider: &Provider,
        intent: ExternalIntent,
        user_id: Option<&str>,
        secrets: &AuthorizationSecrets,
        now: i64,
    ) -> Result<String, AuthError> {
        let payload = AuthorizationPayload {
            provider_id: provider.id.clone(),
            state_hash: token_hash(secrets.state.expose()),
            nonce: secrets.nonce.expose().to_string(),
            sealed_verifier: seal::seal(
                &self.key,
                PKCE_SEAL,
                secrets.pkce_verifier.expose().as_bytes(),
            )
            .map_err(|e| internal(&e))?,
            intent,
        };
        let id = random_id();
        self.store
            .create_code(&NewCode {
                id: &id,
                purpose: CodePurpose::ExternalAuthorization,
                email: "",
                user_id,
                code_hash: "",
                payload: Some(&serde_json::to_string(&payload).map_err(|e| internal(&e))?),
                now,
                expires_at: now + AUTHORIZATION_TTL_MS,
            })
            .await?;
        Ok(id)
    }

    /// Takes the authorization request behind the browser's cookie, once, and checks that the
    /// response's `state` is the one sent. Anything else is a dead flow: a missing cookie, a
    /// replayed callback, another browser's `state`.
    pub async fn take_external(
        &self,
        flow_id: Option<&str>,
        state: &str,
        now: i64,
    ) -> Result<ReturnedAuthorization, AuthError> {
        let Some(flow_id) = flow_id.filter(|id| !id.is_empty() && id.len() <= 64) else {
            return Err(AuthError::CodeDead);
        };
        let Some(flow) = self
            .store
            .consume_grant(flow_id, CodePurpose::ExternalAuthorization, now)
            .await?
        else {
            return Err(AuthError::CodeDead);
        };
        let payload: AuthorizationPayload =
            serde_json::from_str(flow.payload.as_deref().unwrap_or(""))
                .map_err(|e| internal(&e))?;
        let matches: bool = token_hash(state)
            .as_bytes()
            .ct_eq(payload.state_hash.as_bytes())
            .into();
        if state.is_empty() || !matches {
            return Err(AuthError::CodeDead);
        }
        let verifier =
            seal::open(&self.key, PKCE_SEAL, &payload.sealed_verifier).map_err(|e| internal(&e))?;
        Ok(ReturnedAuthorization {
            provider_id: payload.provider_id,
            nonce: SecretString::new(payload.nonce),
            pkce_verifier: SecretString::new(
                String::from_utf8(verifier).map_err(|e| internal(&e))?,
            ),
            intent: payload.intent,
            user_id: flow.user_id,
        })
    }

    /// Writes a refused provider response to the sign-in log and hands the error back.
    pub async fn refuse_external(
        &self,
        ctx: &RequestContext,
        provider_id: &str,
        err: AuthError,
        now: i64,
    ) -> Result<AuthError, AuthError> {
        let label = format!(
            "provider:{}",
            provider_id
                .chars()
                .take(MAX_PROVIDER_ID)
                .collect::<String>()
        );
        self.refuse(ctx, &label, None, Method::Federated, err, now)
            .await
    }

    /// Carries a verified provider identity to its end (see the module documentation).
    pub async fn sign_in_external(
        &self,
        ctx: &RequestContext,
        profile: ExternalProfile,
        now: i64,
    ) -> Result<ExternalOutcome, AuthError> {
        let log_email = profile.verified_email().unwrap_or_default();
        if let Some(linked) = self
            .store
            .find_external_identity(&profile.issuer, &profile.subject)
            .await?
        {
            let Some(user) = self.store.find_user(&linked.user_id).await? else {
                return Err(AuthError::CodeDead);
            };
            if !user.disabled {
                self.store.touch_external_identity(&linked.id, now).await?;
            }
            let email = user.email.clone();
            let first = super::FirstFactor::proven(
                &email,
                user,
                Method::Federated,
                super::Strength::of(super::AuthMethod::Provider),
            );
            let outcome = self.conclude_first_factor(ctx, first, now).await?;
            return Ok(ExternalOutcome::SignIn(outcome));
        }
        if let Some(email) = profile.verified_email() {
            if let Some(user) = self.store.find_user_by_email(&email).await? {
                // Never in by email alone: the account must be proven first.
                let flow_id = self
                    .pending_external(
                        CodePurpose::ExternalLink,
                        &email,
                        Some(&user.id),
                        &profile,
                        now,
                    )
                    .await?;
                self.log_attempt(
                    ctx,
                    &email,
                    Some(&user.id),
                    Method::Federated,
                    Err(&AuthError::LinkRequired),
                    None,
                    now,
                )
                .await?;
                return Ok(ExternalOutcome::LinkRequired { flow_id });
            }
            if let Some(name) = profile.usable_name() {
                self.ip_budget(
                    ctx,
                    "sign_up_ip",
                    super::SIGN_UPS_PER_IP,
                    super::SIGN_UP_WINDOW_MS,
                    now,
                )
                .await?;
                let outcome = self
                    .create_external_account(ctx, &profile, &email, &name, now)
                    .await?;
                return Ok(ExternalOutcome::SignIn(outcome));
            }
        }
        let flow_id = self
            .pending_external(CodePurpose::ExternalSignUp, &log_email, None, &profile, now)
            .await?;
        Ok(ExternalOutcome::NeedsDetails { flow_id })
    }

    async fn pending_external(
        &self,
        purpose: CodePurpose,
        email: &str,
        user_id: Option<&str>,
        profile: &ExternalProfile,
        now: i64,
    ) -> Result<String, AuthError> {
        let id = random_id();
        self.store
            .create_code(&NewCode {
                id: &id,
                purpose,
                email,
                user_id,
                code_hash: "",
                payload: Some(&serde_json::to_string(profile).map_err(|e| internal(&e))?),
                now,
                expires_at: now + EXTERNAL_PENDING_TTL_MS,
            })
            .await?;
        Ok(id)
    }

    /// The new account of a provider identity with a proven email, and its sign-in.
    async fn create_external_account(
        &self,
        ctx: &RequestContext,
        profile: &ExternalProfile,
        email: &str,
        name: &str,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        let user_id = random_id();
        let identity = new_identity(profile, &user_id, email, now);
        let created = self
            .store
            .create_user_with_identity(
                &NewUser {
                    id: &user_id,
                    email,
                    display_name: name,
                    password_hash: None,
                    is_admin: false,
                    now,
                },
                &identity,
            )
            .await;
        let user = match created {
            Ok(user) => user,
            Err(StoreError::Conflict) => {
                return Err(self
                    .refuse(
                        ctx,
                        email,
                        None,
                        Method::SignUpFederated,
                        AuthError::AccountExists,
                        now,
                    )
                    .await?)
            }
            Err(e) => return Err(e.into()),
        };
        self.store.throttle_reset("password", email).await?;
        self.store.throttle_reset("code", email).await?;
        self.audit_silently(
            ctx,
            &user.id,
            "federation.linked",
            &profile.provider_id,
            now,
        )
        .await?;
        let first = super::FirstFactor::proven(
            email,
            user,
            Method::SignUpFederated,
            super::Strength::of(super::AuthMethod::Provider),
        );
        self.conclude_first_factor(ctx, first, now).await
    }

    /// A live pending provider sign-up or link, with its profile.
    async fn live_external(
        &self,
        flow_id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(CodeRecord, ExternalProfile), AuthError> {
        let flow = self
            .live_flow(flow_id, now)
            .await?
            .filter(|f| f.purpose == purpose)
            .ok_or(AuthError::CodeDead)?;
        let profile: ExternalProfile = serde_json::from_str(flow.payload.as_deref().unwrap_or(""))
            .map_err(|e| internal(&e))?;
        Ok((flow, profile))
    }

    async fn provider_name(&self, provider_id: &str) -> Result<String, AuthError> {
        Ok(self
            .store
            .find_provider(provider_id)
            .await?
            .map(|p| p.display_name)
            .unwrap_or_else(|| provider_id.to_string()))
    }

    /// What the page finishing a provider sign-up shows.
    pub async fn pending_external_sign_up(
        &self,
        flow_id: &str,
        now: i64,
    ) -> Result<PendingExternal, AuthError> {
        self.pending_view(flow_id, CodePurpose::ExternalSignUp, now)
            .await
    }

    /// A pending sign-up or link as its page shows it: a sign-up suggests the provider's
    /// unproven email, a link names the account it waits for.
    async fn pending_view(
        &self,
        flow_id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<PendingExternal, AuthError> {
        let (flow, profile) = self.live_external(flow_id, purpose, now).await?;
        let link = purpose == CodePurpose::ExternalLink;
        Ok(PendingExternal {
            provider_name: self.provider_name(&profile.provider_id).await?,
            name: profile.usable_name(),
            verified_email: profile.verified_email(),
            suggested_email: profile
                .email
                .as_deref()
                .and_then(|e| email::normalize_email(e).ok())
                .filter(|_| !link),
            account_email: link.then_some(flow.email),
        })
    }

    /// Finishes a provider sign-up with what the provider did not give: a name, and an email
    /// to prove by code when the provider had none it vouched for.
    pub async fn finish_external_sign_up(
        &self,
        ctx: &RequestContext,
        flow_id: &str,
        name_input: &str,
        email_input: &str,
        now: i64,
    ) -> Result<ExternalFinish, AuthError> {
        let (flow, profile) = self
            .live_external(flow_id, CodePurpose::ExternalSignUp, now)
            .await?;
        let name = match profile.usable_name() {
            Some(name) if name_input.trim().is_empty() => name,
            _ => validate_display_name(name_input)?,
        };
        self.ip_budget(
            ctx,
            "sign_up_ip",
            super::SIGN_UPS_PER_IP,
            super::SIGN_UP_WINDOW_MS,
            now,
        )
        .await?;
        if let Some(email) = profile.verified_email() {
            if self
                .store
                .consume_grant(&flow.id, CodePurpose::ExternalSignUp, now)
                .await?
                .is_none()
            {
                return Err(AuthError::CodeDead);
            }
            let outcome = self
                .create_external_account(ctx, &profile, &email, &name, now)
                .await?;
            return Ok(ExternalFinish::SignIn(outcome));
        }
        let email = super::email_or_invalid(email_input)?;
        if self
            .store
            .consume_grant(&flow.id, CodePurpose::ExternalSignUp, now)
            .await?
            .is_none()
        {
            return Err(AuthError::CodeDead);
        }
        let pending = PendingSignUp {
            display_name: name,
            password_hash: None,
            external: Some(ExternalProfile {
                email: Some(email.clone()),
                ..profile
            }),
        };
        let started = self
            .start_sign_up(ctx, CodePurpose::SignUpCode, &email, &pending, None, now)
            .await?;
        Ok(ExternalFinish::CodeSent(started))
    }

    /// The account of a proven sign-up code whose flow came from a provider, with its identity.
    pub(super) async fn create_account_from_code(
        &self,
        user: &NewUser<'_>,
        profile: &ExternalProfile,
    ) -> Result<User, StoreError> {
        let identity = new_identity(profile, user.id, user.email, user.now);
        self.store.create_user_with_identity(user, &identity).await
    }

    /// What the page of a pending link shows.
    pub async fn pending_link(
        &self,
        flow_id: &str,
        now: i64,
    ) -> Result<PendingExternal, AuthError> {
        self.pending_view(flow_id, CodePurpose::ExternalLink, now)
            .await
    }

    /// Drops a pending link ("do not link").
    pub async fn drop_pending_link(&self, flow_id: &str, now: i64) -> Result<(), AuthError> {
        if let Some(flow) = self.live_flow(flow_id, now).await? {
            if flow.purpose == CodePurpose::ExternalLink {
                self.store.expire_code(&flow.id, now).await?;
            }
        }
        Ok(())
    }

    /// Whether this session may confirm the pending link: it belongs to the account the link
    /// waits for, and it signed in after the provider round trip.
    pub async fn may_confirm_link(
        &self,
        session: &Session,
        flow_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let (flow, _) = self
            .live_external(flow_id, CodePurpose::ExternalLink, now)
            .await?;
        Ok(flow.user_id.as_deref() == Some(session.user_id.as_str())
            && session.auth_time >= flow.created_at)
    }

    /// Links a pending provider identity to the account that was just proven in this session.
    pub async fn confirm_link(
        &self,
        ctx: &RequestContext,
        session: &Session,
        flow_id: &str,
        now: i64,
    ) -> Result<String, AuthError> {
        if !self.may_confirm_link(session, flow_id, now).await? {
            return Err(AuthError::ReauthenticationRequired);
        }
        let flow = self
            .store
            .consume_grant(flow_id, CodePurpose::ExternalLink, now)
            .await?
            .ok_or(AuthError::CodeDead)?;
        let profile: ExternalProfile = serde_json::from_str(flow.payload.as_deref().unwrap_or(""))
            .map_err(|e| internal(&e))?;
        self.link(ctx, &session.user_id, &profile, now).await
    }

    /// Links a provider identity to the signed-in account (the security-info page's "link").
    pub async fn link_external_now(
        &self,
        ctx: &RequestContext,
        session: &Session,
        profile: ExternalProfile,
        now: i64,
    ) -> Result<String, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        self.link(ctx, &session.user_id, &profile, now).await
    }

    async fn link(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        profile: &ExternalProfile,
        now: i64,
    ) -> Result<String, AuthError> {
        if let Some(existing) = self
            .store
            .find_external_identity(&profile.issuer, &profile.subject)
            .await?
        {
            return if existing.user_id == user_id {
                self.provider_name(&profile.provider_id).await
            } else {
                Err(AuthError::AlreadyLinked)
            };
        }
        let linked = self
            .store
            .link_external_identity(&ExternalIdentity {
                id: random_id(),
                user_id: user_id.to_string(),
                provider_id: profile.provider_id.clone(),
                issuer: profile.issuer.clone(),
                subject: profile.subject.clone(),
                email: profile.email.clone().filter(|e| e.len() <= 320),
                created_at: now,
                last_used_at: None,
            })
            .await;
        match linked {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(AuthError::AlreadyLinked),
            Err(e) => return Err(e.into()),
        }
        self.audit(ctx, user_id, "federation.linked", &profile.provider_id, now)
            .await?;
        self.provider_name(&profile.provider_id).await
    }

    /// The provider accounts linked to an account.
    pub async fn linked_identities(&self, user_id: &str) -> Result<Vec<LinkedIdentity>, AuthError> {
        let providers = self.store.list_providers().await?;
        Ok(self
            .store
            .list_external_identities(user_id)
            .await?
            .into_iter()
            .map(|i| {
                let provider = providers.iter().find(|p| p.id == i.provider_id);
                LinkedIdentity {
                    id: i.id,
                    provider_id: i.provider_id.clone(),
                    provider_name: provider
                        .map_or_else(|| i.provider_id.clone(), |p| p.display_name.clone()),
                    kind: provider.and_then(|p| ProviderKind::parse(&p.kind)),
                    email: i.email,
                    linked_at: i.created_at,
                    last_used_at: i.last_used_at,
                }
            })
            .collect())
    }

    /// Unlinks a provider account. The account's own email stays a way in (a code can always
    /// be sent to it), so unlinking never locks anyone out. Needs a recent sign-in.
    pub async fn unlink_identity(
        &self,
        ctx: &RequestContext,
        session: &Session,
        identity_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        if identity_id.is_empty() || identity_id.len() > 64 {
            return Ok(false);
        }
        let removed = self
            .store
            .unlink_external_identity(&session.user_id, identity_id)
            .await?;
        if removed {
            self.audit(
                ctx,
                &session.user_id,
                "federation.unlinked",
                identity_id,
                now,
            )
            .await?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_are_https_or_loopback() {
        assert!(acceptable_provider_url("https://accounts.google.com"));
        assert!(acceptable_provider_url("http://127.0.0.1:9000/x"));
        assert!(acceptable_provider_url("http://localhost:9000"));
        assert!(acceptable_provider_url("http://[::1]:9000/"));
        assert!(!acceptable_provider_url("http://example.com"));
        assert!(!acceptable_provider_url("http://localhost@evil.example"));
        assert!(!acceptable_provider_url(
            "http://evil.example@localhost.evil"
        ));
        assert!(!acceptable_provider_url("ftp://localhost"));
        assert!(!acceptable_provider_url("https:///path"));
        assert!(!acceptable_provider_url("https://a b"));
    }

    #[test]
    fn provider_ids_are_slugs() {
        assert!(valid_provider_id("google"));
        assert!(valid_provider_id("corp-sso-2"));
        assert!(!valid_provider_id(""));
        assert!(!valid_provider_id("-x"));
        assert!(!valid_provider_id("Google"));
        assert!(!valid_provider_id("a/b"));
        assert!(!valid_provider_id(&"a".repeat(33)));
    }

    #[test]
    fn only_verified_emails_count() {
        let mut p = ExternalProfile {
            provider_id: "x".into(),
            issuer: "https://idp".into(),
            subject: "1".into(),
            email: Some("Ada@Example.com".into()),
            email_verified: false,
            name: Some("Ada".into()),
        };
        assert_eq!(p.verified_email(), None);
        p.email_verified = true;
        assert_eq!(p.verified_email().as_deref(), Some("ada@example.com"));
        p.email = Some("not an email".into());
        assert_eq!(p.verified_email(), None);
        assert!(!format!("{p:?}").contains("not an email"));
    }
}
