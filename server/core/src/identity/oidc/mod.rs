//! The OpenID Connect provider: registered applications, signing keys, the authorization code
//! flow with PKCE, tokens (single-use codes, rotating refresh tokens with family revocation,
//! client credentials), userinfo, revocation, introspection and RP-initiated logout.
//!
//! The HTTP edge parses requests and renders pages; every decision is made here. The sign-in
//! itself is never done here: an authorization request waits (in the database) while the
//! person goes through the one sign-in pipeline, and a code is issued only for a live session.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{internal, AuthError, Identity, RequestContext};
use crate::jws::{self, Alg, SigningKey};
use crate::secret::SecretString;
use crate::store::{
    ClientRecord, CodeGrant, CodeRedemption, GrantRecord, RefreshUse, Session, SigningKeyRecord,
    User,
};
use crate::tokens::{random_id, secret_token, token_hash};

/// Authorization codes live one minute.
mod authorize;
mod keys;
mod logout;
mod tokens;

pub const CODE_TTL_MS: i64 = 60 * 1000;
pub const ACCESS_TOKEN_TTL_MS: i64 = 10 * 60 * 1000;
pub const ID_TOKEN_TTL_MS: i64 = 10 * 60 * 1000;
/// The absolute lifetime of a grant and so of its refresh tokens (rotation does not extend it).
pub const REFRESH_TOKEN_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// How long an authorization request waits for the person to sign in.
pub const AUTHORIZATION_REQUEST_TTL_MS: i64 = 30 * 60 * 1000;
/// How long a retired signing key stays published: longer than any token it signed lives.
pub const RETIRED_KEY_PUBLISHED_MS: i64 = ID_TOKEN_TTL_MS + 5 * 60 * 1000;
/// The scopes Gatehouse knows.
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The `acr` of a sign-in that proved two factors, and of one that proved one.
pub use super::strength::{ACR_MULTIFACTOR, ACR_SINGLE_FACTOR};
pub const DEFAULT_ID_TOKEN_ALG: Alg = Alg::Es256;

const SEAL_PURPOSE: &str = "signing-key";
const MAX_STATE: usize = 2048;
const MAX_NONCE: usize = 512;
const MAX_LOGIN_HINT: usize = 320;

// ---------------------------------------------------------------- applications

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// The scopes of Gatehouse's own APIs that an administrator may grant an application for
/// its calls as itself (client credentials), with what each allows.
pub const API_SCOPES: &[(&str, &str)] = &[
    (
        "gatehouse.risk.read",
        "Read risk detections and risky users (the risk API)",
    ),
    (
        "gatehouse.insights.read",
        "Read the usage and insights dashboards' numbers (the insights API)",
    ),
];

fn api_scope_names() -> String {
    API_SCOPES
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The scope of the risk API.
pub const RISK_READ_SCOPE: &str = "gatehouse.risk.read";

/// The scope of the insights API.
pub const INSIGHTS_READ_SCOPE: &str = "gatehouse.insights.read";

/// A registered application.
#[derive(Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub logo_url: Option<String>,
    /// Confidential clients authenticate with a secret; public ones (SPAs, native apps) cannot.
    pub confidential: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// Browser origins allowed to call the token and userinfo endpoints (CORS).
    pub allowed_origins: Vec<String>,
    /// First-party applications are the tenant's own: no consent is asked.
    pub first_party: bool,
    pub id_token_alg: Alg,
    pub backchannel_logout_uri: Option<String>,
    /// API scopes granted for the application's own calls (client credentials).
    pub api_scopes: Vec<String>,
    pub has_secret: bool,
    pub created_at: i64,
    pub updated_at: i64,
    secret_hash: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("confidential", &self.confidential)
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .field("first_party", &self.first_party)
            .field("api_scopes", &self.api_scopes)
            .finish_non_exhaustive()
    }
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Client {
    fn from_record(r: ClientRecord) -> Client {
        Client {
            id: r.id,
            name: r.name,
            logo_url: r.logo_url,
            confidential: r.confidential,
            redirect_uris: json_list(&r.redirect_uris),
            post_logout_redirect_uris: json_list(&r.post_logout_redirect_uris),
            grant_types: json_list(&r.grant_types)
                .iter()
                .filter_map(|g| GrantType::parse(g))
                .collect(),
            allowed_origins: json_list(&r.allowed_origins),
            first_party: r.first_party,
            id_token_alg: Alg::parse(&r.id_token_alg).unwrap_or(DEFAULT_ID_TOKEN_ALG),
            backchannel_logout_uri: r.backchannel_logout_uri,
            api_scopes: json_list(&r.api_scopes),
            has_secret: r.secret_hash.is_some(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            secret_hash: r.secret_hash,
        }
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Byte-for-byte: the only comparison a redirect URI ever gets.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| r.as_bytes() == uri.as_bytes())
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris
            .iter()
            .any(|r| r.as_bytes() == uri.as_bytes())
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

/// What an admin (or the command line) submits to register or change an application.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInput {
    pub name: String,
    #[serde(default)]
    pub logo_url: Option<String>,
    pub confidential: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Empty means authorization code and refresh token.
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub first_party: bool,
    #[serde(default)]
    pub id_token_alg: Option<String>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// API scopes (see [`API_SCOPES`]) for the application's calls as itself.
    #[serde(default)]
    pub api_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    #[error("the name must be 1 to 100 characters")]
    Name,
    #[error("the logo must be an https URL")]
    LogoUrl,
    #[error("redirect URI {0:?} is not allowed: use an absolute https URL in canonical form without a fragment or credentials (http only on localhost, or a private-use scheme such as com.example.app:/callback)")]
    RedirectUri(String),
    #[error("an application that signs people in needs at least one redirect URI")]
    NoRedirectUri,
    #[error("post-logout redirect URI {0:?} is not allowed (same rules as redirect URIs)")]
    PostLogoutUri(String),
    #[error(
        "unknown grant type {0:?} (use authorization_code, refresh_token, client_credentials)"
    )]
    GrantType(String),
    #[error("a public application cannot use client credentials")]
    PublicClientCredentials,
    #[error("the refresh token grant needs the authorization code grant")]
    RefreshWithoutCode,
    #[error("origin {0:?} is not an origin (scheme://host[:port], https or localhost)")]
    Origin(String),
    #[error("unknown signing algorithm {0:?} (use ES256, EdDSA or RS256)")]
    Alg(String),
    #[error("the back-channel logout URI must be an https URL (http only on localhost)")]
    BackchannelUri,
    #[error("unknown API scope {0:?} (use {known})", known = api_scope_names())]
    ApiScope(String),
    #[error(
        "API scopes are for the application's calls as itself: allow the client credentials grant"
    )]
    ApiScopeWithoutClientCredentials,
    #[error("too many entries (at most 20 of each)")]
    TooMany,
    #[error("no such application")]
    NotFound,
    #[error("the change could not be saved (reference {0}); try again")]
    Unavailable(String),
}

impl From<AuthError> for ClientConfigError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Internal(reference) => ClientConfigError::Unavailable(reference),
            other => ClientConfigError::Unavailable(other.reason_code().to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ClientConfigError {
    fn from(err: crate::store::StoreError) -> Self {
        AuthError::from(err).into()
    }
}

fn is_loopback_host(host: Option<&str>) -> bool {
    matches!(host, Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// Whether `uri` may be registered as a redirect (or post-logout) URI. It must already be in
/// canonical form, so that the byte-for-byte match at sign-in is the match people expect.
pub fn registrable_redirect_uri(uri: &str) -> bool {
    if uri.is_empty()
        || uri.len() > 2000
        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if url.as_str() != uri
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || uri.contains('\\')
    {
        return false;
    }
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => is_loopback_host(url.host_str()),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "ftp" | "ws" | "wss" => {
            false
        }
        // Private-use schemes of native apps are reverse domain names (RFC 8252 §7.1).
        scheme => scheme.contains('.'),
    }
}

fn web_url(uri: &str) -> bool {
    match url::Url::parse(uri) {
        Ok(url) => {
            url.as_str() == uri
                && url.username().is_empty()
                && url.password().is_none()
                && (url.scheme() == "https"
                    || (url.scheme() == "http" && is_loopback_host(url.host_str())))
        }
        Err(_) => false,
    }
}

fn is_origin(origin: &str) -> bool {
    match url::Url::parse(origin) {
        Ok(url) => {
            url.origin().ascii_serialization() == origin
                && (url.scheme() == "https"
                    || (url.scheme() == "http" && is_loopback_host(url.host_str())))
        }
        Err(_) => false,
    }
}

fn clean_list(items: &[String]) -> Result<Vec<String>, ClientConfigError> {
    let mut out: Vec<String> = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    if out.len() > 20 {
        return Err(ClientConfigError::TooMany);
    }
    Ok(out)
}

/// Checks an application's settings; the record's id, secret and times are the caller's.
pub fn validate_client(input: &ClientInput) -> Result<ClientRecord, ClientConfigError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ClientConfigError::Name);
    }
    let logo_url = match input.logo_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if web_url(u) => Some(u.to_string()),
        Some(_) => return Err(ClientConfigError::LogoUrl),
    };
    let redirect_uris = clean_list(&input.redirect_uris)?;
    if let Some(bad) = redirect_uris.iter().find(|u| !registrable_redirect_uri(u)) {
        return Err(ClientConfigError::RedirectUri(bad.clone()));
    }
    let post_logout = clean_list(&input.post_logout_redirect_uris)?;
    if let Some(bad) = post_logout.iter().find(|u| !registrable_redirect_uri(u)) {
        return Err(ClientConfigError::PostLogoutUri(bad.clone()));
    }
    let mut grants: Vec<GrantType> = Vec::new();
    for g in clean_list(&input.grant_types)? {
        let parsed = GrantType::parse(&g).ok_or(ClientConfigError::GrantType(g))?;
        if !grants.contains(&parsed) {
            grants.push(parsed);
        }
    }
    if grants.is_empty() {
        grants = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    }
    if !input.confidential && grants.contains(&GrantType::ClientCredentials) {
        return Err(ClientConfigError::PublicClientCredentials);
    }
    if grants.contains(&GrantType::RefreshToken) && !grants.contains(&GrantType::AuthorizationCode)
    {
        return Err(ClientConfigError::RefreshWithoutCode);
    }
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(ClientConfigError::NoRedirectUri);
    }
    let origins = clean_list(&input.allowed_origins)?;
    if let Some(bad) = origins.iter().find(|o| !is_origin(o)) {
        return Err(ClientConfigError::Origin(bad.clone()));
    }
    let alg = match input.id_token_alg.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_ID_TOKEN_ALG,
        Some(a) => Alg::parse(a).ok_or_else(|| ClientConfigError::Alg(a.to_string()))?,
    };
    let backchannel = match input.backchannel_logout_uri.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if web_url(u) => Some(u.to_string()),
        Some(_) => return Err(ClientConfigError::BackchannelUri),
    };
    let api_scopes = clean_list(&input.api_scopes)?;
    if let Some(bad) = api_scopes
        .iter()
        .find(|s| !API_SCOPES.iter().any(|(known, _)| known == s))
    {
        return Err(ClientConfigError::ApiScope(bad.clone()));
    }
    if !api_scopes.is_empty() && !grants.contains(&GrantType::ClientCredentials) {
        return Err(ClientConfigError::ApiScopeWithoutClientCredentials);
    }
    let list = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    Ok(ClientRecord {
        id: String::new(),
        name: name.to_string(),
        logo_url,
        confidential: input.confidential,
        secret_hash: None,
        redirect_uris: list(&redirect_uris),
        post_logout_redirect_uris: list(&post_logout),
        grant_types: list(&grants.iter().map(|g| g.as_str().to_string()).collect()),
        allowed_origins: list(&origins),
        first_party: input.first_party,
        id_token_alg: alg.as_str().to_string(),
        backchannel_logout_uri: backchannel,
        created_at: 0,
        updated_at: 0,
        api_scopes: list(&api_scopes),
    })
}

/// A registered application and, for a confidential one, its secret (shown once).
#[derive(Debug)]
pub struct RegisteredClient {
    pub client: Client,
    pub secret: Option<SecretString>,
}

// ---------------------------------------------------------------- authorization requests

/// The `prompt` values a request carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub create: bool,
}

/// A validated authorization request, kept while the person signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Prompt,
    /// Seconds.
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// `acr_values` named [`ACR_MULTIFACTOR`]: no code unless the session proved two factors.
    #[serde(default)]
    pub requires_multifactor: bool,
}

/// Why a request must not be answered by a redirect: the client or the redirect URI cannot
/// be trusted. Shown on an error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizePageError {
    MissingClient,
    UnknownClient,
    MissingRedirectUri,
    /// Not byte-for-byte one of the client's registered redirect URIs.
    UnregisteredRedirectUri,
    DuplicateParameter,
}

impl AuthorizePageError {
    pub fn code(self) -> &'static str {
        match self {
            AuthorizePageError::MissingClient => "missing_client_id",
            AuthorizePageError::UnknownClient => "unknown_client",
            AuthorizePageError::MissingRedirectUri => "missing_redirect_uri",
            AuthorizePageError::UnregisteredRedirectUri => "invalid_redirect_uri",
            AuthorizePageError::DuplicateParameter => "duplicate_parameter",
        }
    }
}

/// An OAuth error answered to the client at its (verified) redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeErrorRedirect {
    pub redirect_uri: String,
    pub error: &'static str,
    pub description: String,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeRejection {
    Page(AuthorizePageError),
    Redirect(AuthorizeErrorRedirect),
}

/// What to do with a valid request.
#[derive(Debug)]
pub enum AuthorizeNext {
    /// Send the browser here (a code or an error at the client's redirect URI).
    Redirect(String),
    /// The person must sign in (or sign up): the request waits under this id.
    SignIn {
        request_id: String,
        create: bool,
        login_hint: Option<String>,
    },
    /// The person must consent to a third-party application.
    Consent {
        request_id: String,
        client: Box<Client>,
        scope: Vec<String>,
    },
    /// The session proved one factor and the application needs two: the second factor
    /// completes the pending sign-in under `pending_id`, then the request goes on.
    SecondFactor {
        request_id: String,
        pending_id: String,
    },
    /// The account must add a second factor first (the tenant requires one, or the application
    /// does and the account has none it can use); then the request goes on.
    Enroll {
        request_id: String,
        /// The tenant's rule asks for it (else the application does).
        by_tenant: bool,
    },
    /// A policy requires the terms of use and the account has not accepted their current
    /// version: once it does, the request goes on.
    AcceptTerms { request_id: String },
    /// A policy requires the account, at risk, to choose a new password: once it does, the
    /// request goes on.
    ChangePassword { request_id: String },
}

/// An application with access to an account.
#[derive(Debug, Clone)]
pub struct ConnectedApplication {
    pub client: Client,
    pub scope: Vec<String>,
    pub since: i64,
}

/// What an ID token hint said, once verified.
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    pub subject: String,
    pub client_id: String,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutProblem {
    /// The hint is not an ID token we issued (bad signature, altered, another issuer).
    BadHint,
    /// The redirect is not registered for the client (or there is no client to check it).
    BadRedirect,
}

/// A checked logout request.
#[derive(Debug)]
pub struct LogoutCheck {
    pub hint: Option<IdTokenHint>,
    pub client: Option<Client>,
    /// Where to send the browser afterwards (registered URI with `state`), when allowed.
    pub redirect: Option<String>,
}

// ---------------------------------------------------------------- tokens

/// How a client authenticated at the token, revocation or introspection endpoint.
#[derive(Debug)]
pub struct ClientAuth {
    pub client_id: String,
    pub secret: Option<SecretString>,
}

/// A token request's parameters.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    /// The address and user agent the request came from (Conditional Access at refresh).
    pub client_ip: String,
    pub user_agent: String,
}

/// Errors of the token, revocation and introspection endpoints (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope")]
    InvalidScope,
    #[error("server error")]
    Server(#[from] AuthError),
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::UnauthorizedClient => "unauthorized_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::Server(_) => "server_error",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(d) | TokenError::InvalidGrant(d) => d,
            TokenError::InvalidClient => "client authentication failed",
            TokenError::UnauthorizedClient => "the client may not use this grant type",
            TokenError::UnsupportedGrantType => "unsupported grant type",
            TokenError::InvalidScope => "unknown or unallowed scope",
            TokenError::Server(_) => "the server could not complete the request",
        }
    }
}

impl From<crate::store::StoreError> for TokenError {
    fn from(err: crate::store::StoreError) -> Self {
        TokenError::Server(err.into())
    }
}

/// A successful token response. `Debug` never shows the tokens.
pub struct TokenResponse {
    pub access_token: SecretString,
    pub expires_in: i64,
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<String>,
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An application calling Gatehouse's API as itself, and the scopes its token carries that
/// the application still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl ApiCaller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The owner of a live access token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub grant: GrantRecord,
    pub user: Option<User>,
    pub expires_at: i64,
    pub issued_at: i64,
}

fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters (a challenge of S256 has 43).
fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn scope_list(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// The `acr` a session earned: multifactor only when it proved two factors.
pub fn acr_of(amr: &str) -> &'static str {
    super::Strength::parse(amr).acr()
}

/// `uri` with the parameters appended to its query (its own query is kept).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_string(),
    }
}

fn secret_matches(secret: &str, hash: &str) -> bool {
    token_hash(secret).as_bytes().ct_eq(hash.as_bytes()).into()
}

impl Identity {
    /// The issuer: the public URL.
    pub fn issuer(&self) -> &str {
        &self.config.public_url
    }

    // ------------------------------------------------------------ applications

    pub async fn register_client(
        &self,
        input: &ClientInput,
        now: i64,
    ) -> Result<RegisteredClient, ClientConfigError> {
        let mut record = validate_client(input)?;
        record.id = random_id();
        let secret = record.confidential.then(secret_token);
        record.secret_hash = secret.as_deref().map(token_hash);
        record.created_at = now;
        record.updated_at = now;
        self.store.create_client(&record).await?;
        Ok(RegisteredClient {
            client: Client::from_record(record),
            secret: secret.map(SecretString::new),
        })
    }

    /// Changes an application's settings. A client that becomes confidential gets a secret
    /// (returned); one that becomes public loses its secret.
    pub async fn update_client(
        &self,
        id: &str,
        input: &ClientInput,
        now: i64,
    ) -> Result<RegisteredClient, ClientConfigError> {
        let existing = self.client(id).await?.ok_or(ClientConfigError::NotFound)?;
        let mut record = validate_client(input)?;
        record.id = existing.id.clone();
        record.updated_at = now;
        if !self.store.update_client(&record).await? {
            return Err(ClientConfigError::NotFound);
        }
        let mut secret = None;
        if record.confidential && !existing.has_secret {
            let s = secret_token();
            self.store
                .set_client_secret(id, Some(&token_hash(&s)), now)
                .await?;
            secret = Some(SecretString::new(s));
        } else if !record.confidential && existing.has_secret {
            self.store.set_client_secret(id, None, now).await?;
        }
        let client = self.client(id).await?.ok_or(ClientConfigError::NotFound)?;
        Ok(RegisteredClient { client, secret })
    }

    /// A new secret for a confidential application; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        id: &str,
        now: i64,
    ) -> Result<SecretString, ClientConfigError> {
        let client = self.client(id).await?.ok_or(ClientConfigError::NotFound)?;
        if !client.confidential {
            return Err(ClientConfigError::PublicClientCredentials);
        }
        let s = secret_token();
        if self
            .store
            .set_client_secret(id, Some(&token_hash(&s)), now)
            .await?
        {
            Ok(SecretString::new(s))
        } else {
            Err(ClientConfigError::NotFound)
        }
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>, AuthError> {
        if id.is_empty() || id.len() > 128 {
            return Ok(None);
        }
        Ok(self.store.find_client(id).await?.map(Client::from_record))
    }

    pub async fn clients(&self) -> Result<Vec<Client>, AuthError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .into_iter()
            .map(Client::from_record)
            .collect())
    }

    /// Deletes an application with every grant, code, token and consent it had.
    pub async fn delete_client(&self, id: &str) -> Result<bool, AuthError> {
        Ok(self.store.delete_client(id).await?)
    }
}
