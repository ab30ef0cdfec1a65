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

    // ------------------------------------------------------------ signing keys

    fn open_key(&self, record: &SigningKeyRecord) -> Result<Arc<SigningKey>, AuthError> {
        if let Ok(cache) = self.signing_keys.lock() {
            if let Some(k) = cache.get(&record.id) {
                return Ok(k.clone());
            }
        }
        let alg = Alg::parse(&record.alg).ok_or_else(|| internal(&jws::JwsError::Key))?;
        let bytes = crate::seal::open(&self.key, SEAL_PURPOSE, &record.sealed_private)
            .map_err(|e| internal(&e))?;
        let key = Arc::new(
            SigningKey::from_private_bytes(alg, record.id.clone(), &bytes)
                .map_err(|e| internal(&e))?,
        );
        if let Ok(mut cache) = self.signing_keys.lock() {
            cache.insert(record.id.clone(), key.clone());
        }
        Ok(key)
    }

    async fn new_signing_key(&self, alg: Alg, now: i64) -> Result<Arc<SigningKey>, AuthError> {
        let key = tokio::task::spawn_blocking(move || SigningKey::generate(alg, random_id()))
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| internal(&e))?;
        let bytes = key.to_private_bytes().map_err(|e| internal(&e))?;
        let sealed =
            crate::seal::seal(&self.key, SEAL_PURPOSE, &bytes).map_err(|e| internal(&e))?;
        self.store
            .insert_signing_key(&SigningKeyRecord {
                id: key.kid().to_string(),
                alg: alg.as_str().to_string(),
                sealed_private: sealed,
                public_jwk: key.public_jwk().to_string(),
                created_at: now,
                retired_at: None,
                unpublish_at: None,
            })
            .await?;
        tracing::info!(kid = %key.kid(), alg = alg.as_str(), "created a token signing key");
        Ok(Arc::new(key))
    }

    /// The key that signs with `alg` now, created on first use.
    pub async fn signing_key(&self, alg: Alg, now: i64) -> Result<Arc<SigningKey>, AuthError> {
        match self.store.active_signing_key(alg.as_str()).await? {
            Some(record) => self.open_key(&record),
            None => self.new_signing_key(alg, now).await,
        }
    }

    /// The published keys (a JWK set): every algorithm's active key and the retired keys whose
    /// tokens may still be in use.
    pub async fn jwks(&self, now: i64) -> Result<Value, AuthError> {
        for alg in Alg::ALL {
            if self.store.active_signing_key(alg.as_str()).await?.is_none() {
                self.new_signing_key(alg, now).await?;
            }
        }
        let keys: Vec<Value> = self
            .store
            .published_signing_keys(now)
            .await?
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(json!({ "keys": keys }))
    }

    /// New keys for every algorithm. The old ones stop signing at once and stay published
    /// until every token they signed has expired. Returns the new key ids.
    pub async fn rotate_signing_keys(&self, now: i64) -> Result<Vec<String>, AuthError> {
        let mut kids = Vec::new();
        for alg in Alg::ALL {
            let key = self.new_signing_key(alg, now).await?;
            self.store
                .retire_signing_keys(
                    alg.as_str(),
                    now,
                    key.kid(),
                    now,
                    now + RETIRED_KEY_PUBLISHED_MS,
                )
                .await?;
            kids.push(key.kid().to_string());
        }
        Ok(kids)
    }

    /// Verifies a JWS signed by one of our published keys; returns its claims.
    async fn verify_own_jws(&self, token: &str, now: i64) -> Option<Value> {
        let header = jws::jws_header(token).ok()?;
        let kid = header.get("kid")?.as_str()?;
        let records = self.store.published_signing_keys(now).await.ok()?;
        let record = records.iter().find(|r| r.id == kid)?;
        let key = self.open_key(record).ok()?;
        key.verify(token).ok()
    }

    // ------------------------------------------------------------ authorization

    /// Validates an authorization request's parameters (as received, in order). Until the
    /// client and its redirect URI are known good, every problem is a page; after that, an
    /// error goes back to the client.
    pub async fn validate_authorization(
        &self,
        params: &[(String, String)],
    ) -> Result<(Client, AuthorizationRequest), AuthorizeRejection> {
        let mut seen = HashSet::new();
        let mut duplicate = None;
        for (k, _) in params {
            if !seen.insert(k.as_str()) {
                duplicate.get_or_insert(k.as_str());
            }
        }
        let get = |name: &str| -> Option<&str> {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let page = AuthorizeRejection::Page;
        if matches!(duplicate, Some("client_id" | "redirect_uri")) {
            return Err(page(AuthorizePageError::DuplicateParameter));
        }
        let client_id = get("client_id")
            .filter(|s| !s.is_empty())
            .ok_or(page(AuthorizePageError::MissingClient))?;
        let client = match self.client(client_id).await {
            Ok(Some(c)) => c,
            _ => return Err(page(AuthorizePageError::UnknownClient)),
        };
        let redirect_uri = get("redirect_uri")
            .filter(|s| !s.is_empty())
            .ok_or(page(AuthorizePageError::MissingRedirectUri))?;
        if !client.has_redirect_uri(redirect_uri) {
            return Err(page(AuthorizePageError::UnregisteredRedirectUri));
        }
        let state = get("state").map(str::to_string);
        let fail = |error: &'static str, description: &str| {
            AuthorizeRejection::Redirect(AuthorizeErrorRedirect {
                redirect_uri: redirect_uri.to_string(),
                error,
                description: description.to_string(),
                state: state.clone().filter(|s| s.len() <= MAX_STATE),
            })
        };
        if let Some(d) = duplicate {
            return Err(fail(
                "invalid_request",
                &format!("the parameter {d} appears more than once"),
            ));
        }
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(fail("invalid_request", "state is too long"));
        }
        if get("request").is_some() {
            return Err(fail(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if get("request_uri").is_some() {
            return Err(fail(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match get("response_type") {
            Some("code") => {}
            None | Some("") => return Err(fail("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only the authorization code flow (response_type=code) is supported",
                ))
            }
        }
        if !matches!(get("response_mode"), None | Some("query")) {
            return Err(fail(
                "invalid_request",
                "only response_mode=query is supported",
            ));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(fail(
                "unauthorized_client",
                "the client may not use the authorization code flow",
            ));
        }
        let scope = scope_list(get("scope").unwrap_or(""));
        if scope.iter().any(|s| !SCOPES.contains(&s.as_str())) {
            return Err(fail("invalid_scope", "unknown scope"));
        }
        if scope.iter().any(|s| s == "offline_access") && !client.allows(GrantType::RefreshToken) {
            return Err(fail(
                "invalid_scope",
                "offline_access needs the refresh token grant",
            ));
        }
        match get("code_challenge_method") {
            Some("S256") => {}
            None if get("code_challenge").is_none() => {}
            None => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ))
            }
            Some(_) => {
                return Err(fail(
                    "invalid_request",
                    "only the S256 code challenge method is supported",
                ))
            }
        }
        let code_challenge = match get("code_challenge") {
            Some(c) if c.len() == 43 && is_pkce_string(c) => c.to_string(),
            Some(_) => return Err(fail("invalid_request", "code_challenge is malformed")),
            None => {
                return Err(fail(
                    "invalid_request",
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ))
            }
        };
        let nonce = get("nonce").map(str::to_string);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
            return Err(fail("invalid_request", "nonce is too long"));
        }
        let mut prompt = Prompt::default();
        for p in get("prompt")
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
        {
            match p {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "create" => prompt.create = true,
                "select_account" => {}
                _ => return Err(fail("invalid_request", "unknown prompt value")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent || prompt.create) {
            return Err(fail(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match get("max_age") {
            None | Some("") => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n.min(i64::MAX / 1000)),
                _ => {
                    return Err(fail(
                        "invalid_request",
                        "max_age must be a number of seconds",
                    ))
                }
            },
        };
        let login_hint = get("login_hint")
            .map(str::trim)
            .filter(|h| !h.is_empty() && h.len() <= MAX_LOGIN_HINT)
            .map(str::to_string);
        let ui_locales = get("ui_locales")
            .filter(|l| l.len() <= 200)
            .map(str::to_string);
        // OpenID Connect Core §3.1.2.1: the requested Authentication Context Class References,
        // in order of preference. Asking for multifactor among them makes it a requirement
        // (the only stronger class we issue); other values leave the request as it was.
        let requires_multifactor = get("acr_values")
            .unwrap_or("")
            .split(' ')
            .any(|v| v == ACR_MULTIFACTOR);
        Ok((
            client,
            AuthorizationRequest {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                scope,
                state,
                nonce,
                code_challenge,
                prompt,
                max_age,
                login_hint,
                ui_locales,
                requires_multifactor,
            },
        ))
    }

    fn error_redirect(
        &self,
        req: &AuthorizationRequest,
        error: &'static str,
        description: &str,
    ) -> String {
        self.rejection_url(&AuthorizeErrorRedirect {
            redirect_uri: req.redirect_uri.clone(),
            error,
            description: description.to_string(),
            state: req.state.clone(),
        })
    }

    /// The URL an error goes back to the client with (`state` and `iss` included).
    pub fn rejection_url(&self, r: &AuthorizeErrorRedirect) -> String {
        let mut params = vec![
            ("error", r.error),
            ("error_description", r.description.as_str()),
        ];
        if let Some(s) = &r.state {
            params.push(("state", s));
        }
        params.push(("iss", self.issuer()));
        with_query(&r.redirect_uri, &params)
    }

    /// Whether the session was authenticated recently enough for the request made at
    /// `requested_at` (`prompt=login` wants a sign-in after the request; `max_age` one within
    /// that many seconds of it).
    fn fresh_enough(req: &AuthorizationRequest, requested_at: i64, session: &Session) -> bool {
        if req.prompt.login && session.auth_time < requested_at {
            return false;
        }
        if let Some(max_age) = req.max_age {
            if session.auth_time < requested_at - max_age * 1000 {
                return false;
            }
        }
        true
    }

    async fn needs_consent(
        &self,
        client: &Client,
        req: &AuthorizationRequest,
        user: &User,
    ) -> Result<bool, AuthError> {
        if client.first_party {
            return Ok(false);
        }
        if req.prompt.consent {
            return Ok(true);
        }
        let granted = self.store.consented_scope(&user.id, &client.id).await?;
        Ok(match granted {
            None => true,
            Some(g) => {
                let g = scope_list(&g);
                !req.scope.iter().all(|s| g.contains(s))
            }
        })
    }

    /// Decides a valid request, given the browser's session (if any).
    pub async fn authorize(
        &self,
        ctx: &RequestContext,
        client: Client,
        req: AuthorizationRequest,
        session: Option<(Session, User)>,
        now: i64,
    ) -> Result<AuthorizeNext, AuthError> {
        self.decide(ctx, client, req, None, session, now, now).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        ctx: &RequestContext,
        client: Client,
        req: AuthorizationRequest,
        request_id: Option<String>,
        session: Option<(Session, User)>,
        requested_at: i64,
        now: i64,
    ) -> Result<AuthorizeNext, AuthError> {
        let fresh = session
            .as_ref()
            .filter(|(s, _)| Self::fresh_enough(&req, requested_at, s));
        let Some((session, user)) = fresh else {
            // A session too old for the request (`prompt=login`, `max_age`) is a decision about
            // a known account: it is logged like every other answer to the application.
            if let Some((stale, user)) = &session {
                let err = if req.prompt.none {
                    AuthError::LoginRequired
                } else {
                    AuthError::ReauthenticationRequired
                };
                self.log_single_sign_on(ctx, &client.id, user, stale, Err(err), now)
                    .await?;
            }
            if req.prompt.none {
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "login_required",
                    "the person is not signed in",
                )));
            }
            let request_id = self.park(&req, request_id, now).await?;
            return Ok(AuthorizeNext::SignIn {
                request_id,
                create: req.prompt.create && session.is_none(),
                login_hint: req.login_hint.clone(),
            });
        };
        // What the account and the application need of the session comes before consent and
        // before any code: enrollment when the tenant requires a second factor, then a second
        // factor when the application asked for multifactor. Every answer to the application
        // from here on is written to the sign-in log under its id, with method `sso`.
        let sso = |result: Result<(), AuthError>| {
            self.log_single_sign_on(ctx, &client.id, user, session, result, now)
        };
        if self.needs_enrollment(user).await? {
            if req.prompt.none {
                sso(Err(AuthError::InteractionRequired)).await?;
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "interaction_required",
                    "the account must add a second factor first",
                )));
            }
            sso(Err(AuthError::EnrollmentRequired)).await?;
            let request_id = self.park(&req, request_id, now).await?;
            return Ok(AuthorizeNext::Enroll {
                request_id,
                by_tenant: true,
            });
        }
        if req.requires_multifactor && !super::Strength::parse(&session.amr).is_multifactor() {
            if req.prompt.none {
                sso(Err(AuthError::InteractionRequired)).await?;
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "interaction_required",
                    "the application requires a second factor",
                )));
            }
            sso(Err(AuthError::SecondFactorRequired)).await?;
            let request_id = self.park(&req, request_id, now).await?;
            return Ok(match self.begin_step_up(session, user, now).await? {
                Some(pending_id) => AuthorizeNext::SecondFactor {
                    request_id,
                    pending_id,
                },
                None => AuthorizeNext::Enroll {
                    request_id,
                    by_tenant: false,
                },
            });
        }
        if self.needs_consent(&client, &req, user).await? {
            if req.prompt.none {
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "consent_required",
                    "the person has not consented to this application",
                )));
            }
            let request_id = self.park(&req, request_id, now).await?;
            let scope = req.scope.clone();
            return Ok(AuthorizeNext::Consent {
                request_id,
                client: Box::new(client),
                scope,
            });
        }
        if let Some(id) = &request_id {
            if !self.store.take_authorization_request(id).await? {
                // Another tab finished this request first.
                return Ok(AuthorizeNext::Redirect(self.error_redirect(
                    &req,
                    "invalid_request",
                    "the authorization request was already answered",
                )));
            }
        }
        let url = self
            .issue_code(ctx, &client, &req, session, user, now)
            .await?;
        sso(Ok(())).await?;
        Ok(AuthorizeNext::Redirect(url))
    }

    /// Writes an answer to an application's request from an existing session to the sign-in
    /// log (method `sso`, under the application's id).
    async fn log_single_sign_on(
        &self,
        ctx: &RequestContext,
        client_id: &str,
        user: &User,
        session: &Session,
        result: Result<(), AuthError>,
        now: i64,
    ) -> Result<(), AuthError> {
        let ctx = RequestContext {
            application: client_id.to_string(),
            ..ctx.clone()
        };
        self.log_attempt(
            &ctx,
            &user.email,
            Some(&user.id),
            super::Method::SingleSignOn,
            result.as_ref().map(|_| ()),
            Some(&session.id),
            now,
        )
        .await
    }

    async fn park(
        &self,
        req: &AuthorizationRequest,
        existing: Option<String>,
        now: i64,
    ) -> Result<String, AuthError> {
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = random_id();
        let params = serde_json::to_string(req).map_err(|e| internal(&e))?;
        self.store
            .save_authorization_request(
                &id,
                &req.client_id,
                &params,
                now,
                now + AUTHORIZATION_REQUEST_TTL_MS,
            )
            .await?;
        Ok(id)
    }

    /// A waiting request: the request and its client, if it is still waiting.
    pub async fn waiting_authorization(
        &self,
        request_id: &str,
        now: i64,
    ) -> Result<Option<(Client, AuthorizationRequest, i64)>, AuthError> {
        if request_id.is_empty() || request_id.len() > 64 {
            return Ok(None);
        }
        let Some((client_id, params, created_at)) = self
            .store
            .find_authorization_request(request_id, now)
            .await?
        else {
            return Ok(None);
        };
        let Ok(req) = serde_json::from_str::<AuthorizationRequest>(&params) else {
            return Ok(None);
        };
        Ok(self
            .client(&client_id)
            .await?
            .filter(|c| c.has_redirect_uri(&req.redirect_uri))
            .map(|c| (c, req, created_at)))
    }

    /// Whether a waiting request still needs a (new) sign-in with this session.
    pub async fn waiting_needs_sign_in(
        &self,
        request_id: &str,
        session: Option<&Session>,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(match self.waiting_authorization(request_id, now).await? {
            Some((_, req, created_at)) => {
                !session.is_some_and(|s| Self::fresh_enough(&req, created_at, s))
            }
            None => false,
        })
    }

    /// Continues a waiting request after a sign-in. `None` when it is gone (expired or done).
    pub async fn resume_authorization(
        &self,
        ctx: &RequestContext,
        request_id: &str,
        session: Option<(Session, User)>,
        now: i64,
    ) -> Result<Option<AuthorizeNext>, AuthError> {
        let Some((client, mut req, created_at)) =
            self.waiting_authorization(request_id, now).await?
        else {
            return Ok(None);
        };
        // Whoever is asked again is no longer asked silently.
        req.prompt.none = false;
        self.decide(
            ctx,
            client,
            req,
            Some(request_id.to_string()),
            session,
            created_at,
            now,
        )
        .await
        .map(Some)
    }

    /// The person's answer on the consent page. Approval is remembered.
    pub async fn answer_consent(
        &self,
        ctx: &RequestContext,
        request_id: &str,
        session: Option<(Session, User)>,
        approve: bool,
        now: i64,
    ) -> Result<Option<AuthorizeNext>, AuthError> {
        let Some((client, mut req, created_at)) =
            self.waiting_authorization(request_id, now).await?
        else {
            return Ok(None);
        };
        let Some((s, user)) = session.filter(|(s, _)| Self::fresh_enough(&req, created_at, s))
        else {
            return self.resume_authorization(ctx, request_id, None, now).await;
        };
        if !approve {
            self.store.take_authorization_request(request_id).await?;
            return Ok(Some(AuthorizeNext::Redirect(self.error_redirect(
                &req,
                "access_denied",
                "the person declined",
            ))));
        }
        let granted = match self.store.consented_scope(&user.id, &client.id).await? {
            Some(g) => {
                let mut all = scope_list(&g);
                for s in &req.scope {
                    if !all.contains(s) {
                        all.push(s.clone());
                    }
                }
                all.join(" ")
            }
            None => req.scope.join(" "),
        };
        self.store
            .put_consent(&user.id, &client.id, &granted, now)
            .await?;
        req.prompt.consent = false;
        req.prompt.none = false;
        self.decide(
            ctx,
            client,
            req,
            Some(request_id.to_string()),
            Some((s, user)),
            created_at,
            now,
        )
        .await
        .map(Some)
    }

    /// The applications a person consented to, with the scope: (client, scope, granted at).
    pub async fn consents(&self, user_id: &str) -> Result<Vec<(Client, String, i64)>, AuthError> {
        Ok(self
            .store
            .consents_of_user(user_id)
            .await?
            .into_iter()
            .map(|(c, s, t)| (Client::from_record(c), s, t))
            .collect())
    }

    /// The applications with access to an account: consented to, or holding live tokens.
    pub async fn connected_applications(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<ConnectedApplication>, AuthError> {
        let mut out: Vec<ConnectedApplication> = Vec::new();
        fn merge(out: &mut Vec<ConnectedApplication>, client: Client, scope: &str, since: i64) {
            let entry = match out.iter_mut().position(|a| a.client.id == client.id) {
                Some(i) => &mut out[i],
                None => {
                    out.push(ConnectedApplication {
                        client,
                        scope: Vec::new(),
                        since,
                    });
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            entry.since = entry.since.min(since);
            for s in scope_list(scope) {
                if !entry.scope.contains(&s) {
                    entry.scope.push(s);
                }
            }
        }
        for (client, scope, granted_at) in self.consents(user_id).await? {
            merge(&mut out, client, &scope, granted_at);
        }
        for grant in self.store.live_grants_of_user(user_id, now).await? {
            if let Some(client) = self.client(&grant.client_id).await? {
                merge(&mut out, client, &grant.scope, grant.created_at);
            }
        }
        out.sort_by(|a, b| a.client.name.cmp(&b.client.name));
        Ok(out)
    }

    /// Removes an application's access to an account: its consent and every token it holds.
    pub async fn disconnect_application(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let consent = self.store.delete_consent(user_id, client_id).await?;
        let grants = self
            .store
            .revoke_client_grants_of_user(user_id, client_id, now)
            .await?;
        let changed = consent || grants > 0;
        if changed {
            self.audit(ctx, user_id, "oauth.access_removed", client_id, now)
                .await?;
        }
        Ok(changed)
    }

    /// Withdraws consent: the application must ask again, and its tokens die now.
    pub async fn revoke_consent(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let removed = self.store.delete_consent(user_id, client_id).await?;
        if removed {
            self.store
                .revoke_client_grants_of_user(user_id, client_id, now)
                .await?;
            self.audit(ctx, user_id, "oauth.consent_revoked", client_id, now)
                .await?;
        }
        Ok(removed)
    }

    async fn issue_code(
        &self,
        ctx: &RequestContext,
        client: &Client,
        req: &AuthorizationRequest,
        session: &Session,
        user: &User,
        now: i64,
    ) -> Result<String, AuthError> {
        let scope = req.scope.join(" ");
        let grant = GrantRecord {
            id: random_id(),
            client_id: client.id.clone(),
            user_id: Some(user.id.clone()),
            session_id: Some(session.id.clone()),
            scope: scope.clone(),
            credential_epoch: user.credential_epoch,
            offline: req.scope.iter().any(|s| s == "offline_access"),
            auth_time: Some(session.auth_time),
            amr: Some(session.amr.clone()),
            created_at: now,
            // Until its code is redeemed the grant lives no longer than the code.
            expires_at: now + CODE_TTL_MS,
            revoked_at: None,
        };
        let code = secret_token();
        self.store
            .create_grant(
                &grant,
                Some((
                    &token_hash(&code),
                    &CodeGrant {
                        grant_id: grant.id.clone(),
                        redirect_uri: req.redirect_uri.clone(),
                        code_challenge: Some(req.code_challenge.clone()),
                        nonce: req.nonce.clone(),
                        expires_at: now + CODE_TTL_MS,
                    },
                )),
                now,
            )
            .await?;
        self.audit(ctx, &user.id, "oauth.authorized", &client.id, now)
            .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            params.push(("state", s));
        }
        params.push(("iss", self.issuer()));
        Ok(with_query(&req.redirect_uri, &params))
    }

    // ------------------------------------------------------------ token endpoint

    /// Authenticates a client: confidential clients by their secret (Basic or post), public
    /// clients by their id alone. Unknown clients and wrong secrets look the same.
    pub async fn authenticate_client(&self, auth: &ClientAuth) -> Result<Client, TokenError> {
        let client = self
            .client(&auth.client_id)
            .await?
            .ok_or(TokenError::InvalidClient)?;
        match (&client.secret_hash, &auth.secret) {
            (Some(hash), Some(secret)) if secret_matches(secret.expose(), hash) => Ok(client),
            (None, None) if !client.confidential => Ok(client),
            _ => Err(TokenError::InvalidClient),
        }
    }

    pub async fn token(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let grant_type = match req.grant_type.as_str() {
            "" => return Err(TokenError::InvalidRequest("grant_type is required")),
            g => GrantType::parse(g).ok_or(TokenError::UnsupportedGrantType)?,
        };
        if !client.allows(grant_type) {
            return Err(TokenError::UnauthorizedClient);
        }
        match grant_type {
            GrantType::AuthorizationCode => self.redeem_code(client, req, now).await,
            GrantType::RefreshToken => self.refresh(client, req, now).await,
            GrantType::ClientCredentials => self.client_credentials(client, req, now).await,
        }
    }

    async fn redeem_code(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let code = req
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .ok_or(TokenError::InvalidRequest("code is required"))?;
        let redirect_uri = req
            .redirect_uri
            .as_deref()
            .ok_or(TokenError::InvalidRequest("redirect_uri is required"))?;
        let verifier = req.code_verifier.as_deref();
        if verifier.is_some_and(|v| !is_pkce_string(v)) {
            return Err(TokenError::InvalidRequest("code_verifier is malformed"));
        }
        let redeemed = match self.store.redeem_code(&token_hash(code), now).await? {
            CodeRedemption::Redeemed(c) => c,
            CodeRedemption::Replayed => {
                tracing::warn!(client = %client.id, "authorization code reused; its tokens are revoked");
                return Err(TokenError::InvalidGrant(
                    "the code was already used; tokens issued with it are revoked",
                ));
            }
            CodeRedemption::Unknown => {
                return Err(TokenError::InvalidGrant("unknown or expired code"))
            }
        };
        if redeemed.expires_at <= now {
            return Err(TokenError::InvalidGrant("unknown or expired code"));
        }
        let grant = self
            .store
            .grant_live_at_use(&redeemed.grant_id, now, Some(now))
            .await?
            .ok_or(TokenError::InvalidGrant(
                "the authorization is no longer valid",
            ))?;
        if grant.client_id != client.id {
            self.store.revoke_grant(&grant.id, now).await?;
            return Err(TokenError::InvalidGrant(
                "the code was issued to another client",
            ));
        }
        if redeemed.redirect_uri.as_bytes() != redirect_uri.as_bytes() {
            self.store.revoke_grant(&grant.id, now).await?;
            return Err(TokenError::InvalidGrant(
                "redirect_uri differs from the authorization request",
            ));
        }
        let pkce_ok = match (&redeemed.code_challenge, verifier) {
            (Some(challenge), Some(v)) => {
                pkce_s256(v).as_bytes().ct_eq(challenge.as_bytes()).into()
            }
            (None, None) => true,
            _ => false,
        };
        if !pkce_ok {
            self.store.revoke_grant(&grant.id, now).await?;
            return Err(TokenError::InvalidGrant("PKCE verification failed"));
        }
        // The grant becomes live now, for the lifetime of its refresh tokens.
        let expires_at = grant.created_at + REFRESH_TOKEN_TTL_MS;
        self.store.activate_grant(&grant.id, expires_at).await?;
        let grant = GrantRecord {
            expires_at,
            ..grant
        };
        self.issue_tokens(client, &grant, redeemed.nonce.as_deref(), true, now)
            .await
    }

    async fn refresh(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let token = req
            .refresh_token
            .as_deref()
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or(TokenError::InvalidRequest("refresh_token is required"))?;
        let id = token_hash(token);
        // A token of another client is refused without spending it.
        match self.store.token_grant(&id).await? {
            Some((_, owner, _)) if owner == client.id => {}
            _ => return Err(TokenError::InvalidGrant("unknown refresh token")),
        }
        let grant_id = match self.store.use_refresh_token(&id, now).await? {
            RefreshUse::Used(g) => g,
            RefreshUse::Replayed => {
                tracing::warn!(client = %client.id, "refresh token reused; its family is revoked");
                return Err(TokenError::InvalidGrant(
                    "the refresh token was already used; the session's tokens are revoked",
                ));
            }
            RefreshUse::Unknown => {
                return Err(TokenError::InvalidGrant("unknown or expired refresh token"))
            }
        };
        let mut grant = self
            .store
            .grant_live_at_use(&grant_id, now, Some(now))
            .await?
            .ok_or(TokenError::InvalidGrant(
                "the authorization is no longer valid",
            ))?;
        if let Some(scope) = req.scope.as_deref().filter(|s| !s.is_empty()) {
            let asked = scope_list(scope);
            let granted = scope_list(&grant.scope);
            if !asked.iter().all(|s| granted.contains(s)) {
                return Err(TokenError::InvalidScope);
            }
            grant.scope = asked.join(" ");
        }
        // An application refreshing never keeps the browser's session alive: a grant bound to
        // a session ends when that session does, idle expiry included.
        if !self.grant_session_live(&grant, now).await? {
            return Err(TokenError::InvalidGrant("the session has ended"));
        }
        self.issue_tokens(client, &grant, None, true, now).await
    }

    async fn client_credentials(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        if !client.confidential {
            return Err(TokenError::UnauthorizedClient);
        }
        // No API scopes are defined yet; the user scopes make no sense without a user.
        if req.scope.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            return Err(TokenError::InvalidScope);
        }
        let grant = GrantRecord {
            id: random_id(),
            client_id: client.id.clone(),
            user_id: None,
            session_id: None,
            scope: String::new(),
            credential_epoch: 0,
            offline: true,
            auth_time: None,
            amr: None,
            created_at: now,
            expires_at: now + ACCESS_TOKEN_TTL_MS,
            revoked_at: None,
        };
        self.store.create_grant(&grant, None, now).await?;
        self.issue_tokens(client, &grant, None, false, now).await
    }

    async fn issue_tokens(
        &self,
        client: &Client,
        grant: &GrantRecord,
        nonce: Option<&str>,
        with_refresh: bool,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let access = secret_token();
        let access_expires = (now + ACCESS_TOKEN_TTL_MS).min(grant.expires_at);
        self.store
            .insert_token(
                &token_hash(&access),
                &grant.id,
                "access",
                now,
                access_expires,
            )
            .await?;
        let refresh = if with_refresh && client.allows(GrantType::RefreshToken) {
            let r = secret_token();
            self.store
                .insert_token(&token_hash(&r), &grant.id, "refresh", now, grant.expires_at)
                .await?;
            Some(SecretString::new(r))
        } else {
            None
        };
        let scope = scope_list(&grant.scope);
        let id_token = match (&grant.user_id, scope.iter().any(|s| s == "openid")) {
            (Some(user_id), true) => {
                let user = self
                    .store
                    .find_user(user_id)
                    .await?
                    .ok_or(TokenError::InvalidGrant("the account no longer exists"))?;
                Some(
                    self.id_token(client, grant, &user, &scope, nonce, now)
                        .await?,
                )
            }
            _ => None,
        };
        Ok(TokenResponse {
            access_token: SecretString::new(access),
            expires_in: (access_expires - now) / 1000,
            refresh_token: refresh,
            id_token,
            scope: grant.scope.clone(),
        })
    }

    fn user_claims(user: &User, scope: &[String], claims: &mut Value) {
        if scope.iter().any(|s| s == "email") {
            claims["email"] = json!(user.email);
            // Accounts exist only once their email is proven.
            claims["email_verified"] = json!(true);
        }
        if scope.iter().any(|s| s == "profile") {
            claims["name"] = json!(user.display_name);
            claims["updated_at"] = json!(user.updated_at / 1000);
        }
    }

    async fn id_token(
        &self,
        client: &Client,
        grant: &GrantRecord,
        user: &User,
        scope: &[String],
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, AuthError> {
        let strength = super::Strength::parse(grant.amr.as_deref().unwrap_or_default());
        let mut claims = json!({
            "iss": self.issuer(),
            "sub": user.id,
            "aud": client.id,
            "azp": client.id,
            "iat": now / 1000,
            "exp": (now + ID_TOKEN_TTL_MS) / 1000,
            "auth_time": grant.auth_time.unwrap_or(now) / 1000,
            "amr": strength.amr(),
            "acr": strength.acr(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(sid) = &grant.session_id {
            claims["sid"] = json!(sid);
        }
        Self::user_claims(user, scope, &mut claims);
        let key = self.signing_key(client.id_token_alg, now).await?;
        key.sign("JWT", &claims).map_err(|e| internal(&e))
    }

    /// Whether a grant's tokens may still be used as far as its session goes: grants with
    /// `offline_access` and grants without a session outlive it; the others live only while
    /// their session is live for its browser (not expired, not idle too long).
    async fn grant_session_live(&self, grant: &GrantRecord, now: i64) -> Result<bool, AuthError> {
        match (&grant.session_id, grant.offline) {
            (Some(session_id), false) => Ok(self
                .store
                .session_is_live(session_id, self.config.session_idle_ms, now)
                .await?),
            _ => Ok(true),
        }
    }

    /// The live access token `token`, with its grant and user.
    pub async fn access_token_info(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<TokenInfo>, AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let Some((grant, expires_at)) = self
            .store
            .live_token(&token_hash(token), "access", now)
            .await?
        else {
            return Ok(None);
        };
        if !self.grant_session_live(&grant, now).await? {
            return Ok(None);
        }
        let user = match &grant.user_id {
            Some(id) => match self.store.find_user(id).await? {
                Some(u) => Some(u),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(TokenInfo {
            issued_at: expires_at - ACCESS_TOKEN_TTL_MS,
            grant,
            user,
            expires_at,
        }))
    }

    /// The userinfo response for an access token, or `None` (401) when it is not live or was
    /// not issued for a person with the openid scope.
    pub async fn userinfo(&self, token: &str, now: i64) -> Result<Option<Value>, AuthError> {
        let Some(info) = self.access_token_info(token, now).await? else {
            return Ok(None);
        };
        let scope = scope_list(&info.grant.scope);
        let (Some(user), true) = (info.user, scope.iter().any(|s| s == "openid")) else {
            return Ok(None);
        };
        let mut claims = json!({ "sub": user.id });
        Self::user_claims(&user, &scope, &mut claims);
        Ok(Some(claims))
    }

    /// RFC 7662: what a client may learn about a token. A token issued to another client is
    /// reported inactive (§4 allows it), so no client learns about another's tokens.
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<Value, AuthError> {
        let inactive = json!({ "active": false });
        if let Some(info) = self.access_token_info(token, now).await? {
            if info.grant.client_id != client.id {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "scope": info.grant.scope,
                "client_id": info.grant.client_id,
                "aud": info.grant.client_id,
                "iss": self.issuer(),
                "exp": info.expires_at / 1000,
                "iat": info.issued_at / 1000,
            });
            if let Some(u) = &info.user {
                out["sub"] = json!(u.id);
            }
            return Ok(out);
        }
        if token.len() <= 128 {
            if let Some((grant, expires_at)) = self
                .store
                .live_token(&token_hash(token), "refresh", now)
                .await?
            {
                if grant.client_id != client.id || !self.grant_session_live(&grant, now).await? {
                    return Ok(inactive);
                }
                let mut out = json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": grant.scope,
                    "client_id": grant.client_id,
                    "iss": self.issuer(),
                    "exp": expires_at / 1000,
                });
                if let Some(u) = &grant.user_id {
                    out["sub"] = json!(u);
                }
                return Ok(out);
            }
        }
        Ok(inactive)
    }

    /// RFC 7009: revokes a token of this client. A refresh token takes its whole grant with it;
    /// an access token only itself. Unknown tokens are no error.
    pub async fn revoke_token(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(());
        }
        let id = token_hash(token);
        if let Some((grant_id, owner, kind)) = self.store.token_grant(&id).await? {
            if owner == client.id {
                if kind == "refresh" {
                    self.store.revoke_grant(&grant_id, now).await?;
                } else {
                    self.store.spend_token(&id, now).await?;
                }
            }
        }
        Ok(())
    }

    /// Revokes every application grant (refresh and access tokens) of a user.
    pub async fn revoke_user_grants(&self, user_id: &str, now: i64) -> Result<u64, AuthError> {
        Ok(self.store.revoke_user_grants(user_id, now).await?)
    }

    // ------------------------------------------------------------ logout

    /// Checks an RP-initiated logout request. A hint must be an ID token we signed for this
    /// issuer (expired is fine); a post-logout redirect needs a hint (or client id) naming a
    /// client that registered it byte for byte.
    pub async fn check_logout(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        now: i64,
    ) -> Result<LogoutCheck, LogoutProblem> {
        let hint = match id_token_hint.filter(|h| !h.is_empty()) {
            None => None,
            Some(token) => {
                let claims = self
                    .verify_own_jws(token, now)
                    .await
                    .ok_or(LogoutProblem::BadHint)?;
                if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
                    return Err(LogoutProblem::BadHint);
                }
                let subject = claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .ok_or(LogoutProblem::BadHint)?;
                let aud = match claims.get("aud") {
                    Some(Value::String(a)) => a.clone(),
                    Some(Value::Array(a)) if a.len() == 1 => {
                        a[0].as_str().unwrap_or_default().to_string()
                    }
                    _ => return Err(LogoutProblem::BadHint),
                };
                Some(IdTokenHint {
                    subject: subject.to_string(),
                    client_id: aud,
                    session_id: claims
                        .get("sid")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
            }
        };
        let client_id = match (&hint, client_id.filter(|c| !c.is_empty())) {
            (Some(h), Some(c)) if h.client_id != c => return Err(LogoutProblem::BadHint),
            (Some(h), _) => Some(h.client_id.clone()),
            (None, c) => c.map(str::to_string),
        };
        let client = match &client_id {
            Some(id) => self.client(id).await.ok().flatten(),
            None => None,
        };
        if hint.is_some() && client.is_none() {
            return Err(LogoutProblem::BadHint);
        }
        let redirect = match post_logout_redirect_uri.filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.has_post_logout_redirect_uri(uri));
                if !registered {
                    return Err(LogoutProblem::BadRedirect);
                }
                // Without a verified hint nothing proves the client asked: no redirect.
                if hint.is_none() {
                    None
                } else {
                    let mut params = Vec::new();
                    if let Some(s) = state.filter(|s| s.len() <= MAX_STATE) {
                        params.push(("state", s));
                    }
                    Some(with_query(uri, &params))
                }
            }
        };
        Ok(LogoutCheck {
            hint,
            client,
            redirect,
        })
    }
}
