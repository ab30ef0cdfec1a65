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

mod links;
mod providers;
mod sign_in;

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
