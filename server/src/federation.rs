//! The protocol side of sign-in through other providers: OpenID Connect (discovery, JWKS, the
//! authorization code flow with PKCE, ID token validation) through the `openidconnect` crate,
//! and OAuth 2.0 with a profile API (Facebook, GitHub) through the `oauth2` crate. What comes
//! out is a verified [`ExternalProfile`]; what it means for accounts is the identity core's
//! business.
//!
//! Every outbound call has the configured timeout (10 s by default) and follows no redirects.
//! Discovery documents are cached for an hour; an ID token signed with a key the cached set
//! does not hold makes the key set be fetched again once (key rotation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySet, JsonWebKeySetUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, TokenResponse, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

use gatehouse_core::error_chain;
use gatehouse_core::identity::{
    AuthorizationSecrets, ExternalProfile, Provider, ProviderKind, ProviderProblem,
};
use gatehouse_core::secret::SecretString;

/// The path providers send the browser back to.
pub const CALLBACK_PATH: &str = "/sign-in/external/callback";
/// How long a discovery document is trusted before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(60 * 60);
/// ID tokens issued further in the future than this are refused.
const MAX_CLOCK_SKEW_S: i64 = 5 * 60;
/// The most a profile response may hold.
const MAX_PROFILE_BYTES: usize = 64 * 1024;

/// RFC 9207: whether the provider sends `iss` with its authorization response.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct IssParameter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for IssParameter {}

type Metadata = ProviderMetadata<
    IssParameter,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The signature algorithms accepted on ID tokens: asymmetric ones only, so a token "signed"
/// with HMAC over a public key (or not signed at all) never passes.
const ACCEPTED_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Why a round trip failed, with the detail kept for the log (never shown to the person).
#[derive(Debug)]
pub struct FederationError {
    pub problem: ProviderProblem,
    pub detail: String,
}

fn fail(problem: ProviderProblem, detail: impl Into<String>) -> FederationError {
    FederationError {
        problem,
        detail: detail.into(),
    }
}

fn invalid(detail: impl Into<String>) -> FederationError {
    fail(ProviderProblem::InvalidResponse, detail)
}

/// What the provider sent back with the browser (query string or form post).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct CallbackParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// Sign in with Apple's first-time user object (the name), form-posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A redirect to the provider and the secrets to keep until the browser returns.
pub struct Authorization {
    pub url: String,
    pub secrets: AuthorizationSecrets,
}

struct CachedMetadata {
    fetched: Instant,
    fingerprint: String,
    metadata: Metadata,
}

pub struct Federation {
    http: reqwest::Client,
    redirect_uri: String,
    metadata: Mutex<HashMap<String, CachedMetadata>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl Federation {
    pub fn new(public_origin: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent("Gatehouse")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Federation {
            http,
            redirect_uri: format!("{public_origin}{CALLBACK_PATH}"),
            metadata: Mutex::new(HashMap::new()),
        })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    fn redirect_url(&self) -> Result<RedirectUrl, FederationError> {
        RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| fail(ProviderProblem::Error, format!("redirect URI: {e}")))
    }

    // ------------------------------------------------------------ discovery

    fn fingerprint(provider: &Provider) -> String {
        serde_json::to_string(&provider.settings).unwrap_or_default()
    }

    fn cached(&self, provider: &Provider) -> Option<Metadata> {
        let cache = self.metadata.lock().ok()?;
        let entry = cache.get(&provider.id)?;
        (entry.fetched.elapsed() < METADATA_TTL && entry.fingerprint == Self::fingerprint(provider))
            .then(|| entry.metadata.clone())
    }

    fn remember(&self, provider: &Provider, metadata: &Metadata) {
        if let Ok(mut cache) = self.metadata.lock() {
            cache.insert(
                provider.id.clone(),
                CachedMetadata {
                    fetched: Instant::now(),
                    fingerprint: Self::fingerprint(provider),
                    metadata: metadata.clone(),
                },
            );
        }
    }

    /// The provider's discovery document (with configured endpoint overrides applied).
    async fn metadata(&self, provider: &Provider) -> Result<Metadata, FederationError> {
        if let Some(m) = self.cached(provider) {
            return Ok(m);
        }
        let issuer = IssuerUrl::new(provider.settings.issuer.clone())
            .map_err(|e| fail(ProviderProblem::Error, format!("issuer URL: {e}")))?;
        let mut metadata = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                let detail = format!("discovery: {}", error_chain(&e));
                match e {
                    openidconnect::DiscoveryError::Request(_) => {
                        fail(ProviderProblem::Unavailable, detail)
                    }
                    _ => invalid(detail),
                }
            })?;
        let e = &provider.settings.endpoints;
        if let Some(url) = &e.authorization {
            metadata = metadata.set_authorization_endpoint(
                AuthUrl::new(url.clone()).map_err(|e| invalid(e.to_string()))?,
            );
        }
        if let Some(url) = &e.token {
            metadata = metadata.set_token_endpoint(Some(
                TokenUrl::new(url.clone()).map_err(|e| invalid(e.to_string()))?,
            ));
        }
        if let Some(url) = &e.userinfo {
            metadata = metadata.set_userinfo_endpoint(Some(
                UserInfoUrl::new(url.clone()).map_err(|e| invalid(e.to_string()))?,
            ));
        }
        if let Some(url) = &e.jwks {
            let jwks_url =
                JsonWebKeySetUrl::new(url.clone()).map_err(|e| invalid(e.to_string()))?;
            let keys = self.fetch_keys(&jwks_url).await?;
            metadata = metadata.set_jwks_uri(jwks_url).set_jwks(keys);
        }
        self.remember(provider, &metadata);
        Ok(metadata)
    }

    async fn fetch_keys(
        &self,
        url: &JsonWebKeySetUrl,
    ) -> Result<JsonWebKeySet<CoreJsonWebKey>, FederationError> {
        JsonWebKeySet::fetch_async(url, &self.http)
            .await
            .map_err(|e| {
                let detail = format!("keys: {}", error_chain(&e));
                match e {
                    openidconnect::DiscoveryError::Request(_) => {
                        fail(ProviderProblem::Unavailable, detail)
                    }
                    _ => invalid(detail),
                }
            })
    }

    fn client_secret(
        &self,
        provider: &Provider,
        now_ms: i64,
    ) -> Result<Option<ClientSecret>, FederationError> {
        match provider.kind {
            ProviderKind::Apple => {
                let apple = provider.settings.apple.as_ref().ok_or_else(|| {
                    fail(ProviderProblem::Error, "Apple signing settings missing")
                })?;
                let key = provider
                    .secret
                    .as_ref()
                    .ok_or_else(|| fail(ProviderProblem::Error, "Apple signing key missing"))?;
                let jwt = apple_client_secret(
                    &apple.team_id,
                    &apple.key_id,
                    &provider.settings.client_id,
                    key,
                    now_ms / 1000,
                )
                .map_err(|e| fail(ProviderProblem::Error, e))?;
                Ok(Some(ClientSecret::new(jwt)))
            }
            _ => Ok(provider
                .secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string()))),
        }
    }

    // ------------------------------------------------------------ the redirect

    /// The authorization request: code flow, PKCE S256, fresh `state` and `nonce`.
    pub async fn authorization(
        &self,
        provider: &Provider,
    ) -> Result<Authorization, FederationError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let scopes = provider
            .settings
            .scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
            .map(|s| Scope::new(s.clone()));
        let (url, state, nonce) = if provider.kind.is_openid_connect() {
            let metadata = self.metadata(provider).await?;
            let client = CoreClient::from_provider_metadata(
                metadata,
                ClientId::new(provider.settings.client_id.clone()),
                None,
            )
            .set_redirect_uri(self.redirect_url()?);
            let mut request = client
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    CsrfToken::new_random,
                    Nonce::new_random,
                )
                .add_scopes(scopes)
                .set_pkce_challenge(challenge);
            if provider.kind == ProviderKind::Apple {
                // Apple returns the name only with a form post.
                request = request.add_extra_param("response_mode", "form_post");
            }
            let (url, state, nonce) = request.url();
            (url, state, nonce.secret().clone())
        } else {
            let client = self.oauth2_client(provider, None)?;
            let (url, state) = client
                .authorize_url(CsrfToken::new_random)
                .add_scopes(scopes)
                .set_pkce_challenge(challenge)
                .url();
            (url, state, String::new())
        };
        Ok(Authorization {
            url: url.to_string(),
            secrets: AuthorizationSecrets {
                state: SecretString::new(state.secret().clone()),
                nonce: SecretString::new(nonce),
                pkce_verifier: SecretString::new(verifier.secret().clone()),
            },
        })
    }

    fn oauth2_client(
        &self,
        provider: &Provider,
        secret: Option<ClientSecret>,
    ) -> Result<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        FederationError,
    > {
        let e = &provider.settings.endpoints;
        let auth = e
            .authorization
            .clone()
            .ok_or_else(|| fail(ProviderProblem::Error, "authorization endpoint missing"))?;
        let token = e
            .token
            .clone()
            .ok_or_else(|| fail(ProviderProblem::Error, "token endpoint missing"))?;
        let mut client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(
            provider.settings.client_id.clone(),
        ))
        .set_auth_uri(
            oauth2::AuthUrl::new(auth).map_err(|e| fail(ProviderProblem::Error, e.to_string()))?,
        )
        .set_token_uri(
            oauth2::TokenUrl::new(token)
                .map_err(|e| fail(ProviderProblem::Error, e.to_string()))?,
        )
        .set_redirect_uri(
            oauth2::RedirectUrl::new(self.redirect_uri.clone())
                .map_err(|e| fail(ProviderProblem::Error, e.to_string()))?,
        )
        // Facebook and GitHub take the client secret in the form body.
        .set_auth_type(oauth2::AuthType::RequestBody);
        if let Some(secret) = secret {
            client = client.set_client_secret(oauth2::ClientSecret::new(secret.secret().clone()));
        }
        Ok(client)
    }

    // ------------------------------------------------------------ the return

    /// Verifies the provider's answer for an authorization this browser started, and returns
    /// the identity it vouches for. `now_ms` is the clock ID token times are checked against.
    pub async fn complete(
        &self,
        provider: &Provider,
        params: &CallbackParams,
        nonce: &SecretString,
        pkce_verifier: &SecretString,
        now_ms: i64,
    ) -> Result<ExternalProfile, FederationError> {
        if let Some(error) = &params.error {
            let problem = if error == "access_denied" {
                ProviderProblem::Cancelled
            } else {
                ProviderProblem::Error
            };
            return Err(fail(
                problem,
                format!(
                    "the provider answered {}: {}",
                    truncate(error),
                    truncate(params.error_description.as_deref().unwrap_or(""))
                ),
            ));
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| invalid("no authorization code"))?;
        if provider.kind.is_openid_connect() {
            self.complete_openid_connect(provider, params, code, nonce, pkce_verifier, now_ms)
                .await
        } else {
            self.complete_oauth2(provider, code, pkce_verifier, now_ms)
                .await
        }
    }

    async fn complete_openid_connect(
        &self,
        provider: &Provider,
        params: &CallbackParams,
        code: &str,
        nonce: &SecretString,
        pkce_verifier: &SecretString,
        now_ms: i64,
    ) -> Result<ExternalProfile, FederationError> {
        let metadata = self.metadata(provider).await?;
        // Mix-up defence (RFC 9207): a response naming another issuer is refused, and a
        // provider that promises `iss` must send it.
        let promised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        match &params.iss {
            Some(iss) if iss != metadata.issuer().as_str() => {
                return Err(invalid(format!(
                    "authorization response from issuer {} instead of {}",
                    truncate(iss),
                    metadata.issuer().as_str()
                )))
            }
            None if promised => {
                return Err(invalid("authorization response without its issuer"));
            }
            _ => {}
        }
        let secret = self.client_secret(provider, now_ms)?;
        let signing_algs: Vec<CoreJwsSigningAlgorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| ACCEPTED_ALGS.contains(a))
            .cloned()
            .collect();
        let issuer = metadata.issuer().clone();
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(provider.settings.client_id.clone()),
            secret,
        )
        .set_redirect_uri(self.redirect_url()?);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| fail(ProviderProblem::Error, format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_string()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| invalid("the token response has no ID token"))?;
        let nonce = Nonce::new(nonce.expose().to_string());
        let verify = |keys: JsonWebKeySet<CoreJsonWebKey>| {
            let verifier = openidconnect::IdTokenVerifier::new_public_client(
                ClientId::new(provider.settings.client_id.clone()),
                issuer.clone(),
                keys,
            )
            .set_allowed_algs(signing_algs.clone())
            .set_time_fn(move || clock(now_ms))
            .set_issue_time_verifier_fn(move |iat| {
                if iat.timestamp() > now_ms / 1000 + MAX_CLOCK_SKEW_S {
                    Err(format!("issued in the future ({})", iat.timestamp()))
                } else {
                    Ok(())
                }
            });
            id_token
                .claims(&verifier, &nonce)
                .map(|c| c.subject().as_str().to_string())
        };
        let subject = match verify(metadata.jwks().clone()) {
            Ok(subject) => subject,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys: fetch them once more and retry.
                let keys = self.fetch_keys(metadata.jwks_uri()).await?;
                let refreshed = metadata.clone().set_jwks(keys.clone());
                self.remember(provider, &refreshed);
                verify(keys).map_err(|e| invalid(format!("ID token: {}", error_chain(&e))))?
            }
            Err(e) => return Err(invalid(format!("ID token: {}", error_chain(&e)))),
        };
        // The signature and the claims are verified: read the profile claims by name.
        let mut claims = jwt_payload(&id_token.to_string())?;
        let mapping = &provider.settings.claims;
        let wants_userinfo =
            claims.get(&mapping.email).is_none() || claims.get(&mapping.name).is_none();
        if wants_userinfo {
            if let Some(url) = client.user_info_url() {
                let info = self
                    .get_json(url.as_str(), response.access_token().secret(), false)
                    .await?;
                // OpenID Connect Core 5.3.2: the userinfo `sub` must be the ID token's.
                if info.get("sub").and_then(|s| s.as_str()) != Some(subject.as_str()) {
                    return Err(invalid("userinfo is about another subject"));
                }
                if let (Some(target), Some(extra)) = (claims.as_object_mut(), info.as_object()) {
                    for (k, v) in extra {
                        target.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let mut name = text(&mapping.name);
        if name.is_none() {
            name = apple_user_name(params.user.as_deref());
        }
        Ok(ExternalProfile {
            provider_id: provider.id.clone(),
            issuer: issuer.as_str().to_string(),
            subject,
            email: text(&mapping.email),
            email_verified: claims.get(&mapping.email_verified).is_some_and(truthy),
            name,
        })
    }

    async fn complete_oauth2(
        &self,
        provider: &Provider,
        code: &str,
        pkce_verifier: &SecretString,
        now_ms: i64,
    ) -> Result<ExternalProfile, FederationError> {
        let secret = self.client_secret(provider, now_ms)?;
        let client = self.oauth2_client(provider, secret)?;
        let response = client
            .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(
                pkce_verifier.expose().to_string(),
            ))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let token = response.access_token().secret();
        let e = &provider.settings.endpoints;
        let profile_url = e
            .userinfo
            .as_deref()
            .ok_or_else(|| fail(ProviderProblem::Error, "profile endpoint missing"))?;
        let github = provider.kind == ProviderKind::Github;
        let profile = self.get_json(profile_url, token, github).await?;
        match provider.kind {
            ProviderKind::Github => {
                let emails = match e.emails.as_deref() {
                    Some(url) => Some(self.get_json(url, token, true).await?),
                    None => None,
                };
                parse_github_profile(provider, &profile, emails.as_ref())
            }
            _ => parse_facebook_profile(provider, &profile),
        }
    }

    /// GETs a JSON document with a bearer token.
    async fn get_json(
        &self,
        url: &str,
        token: &str,
        github: bool,
    ) -> Result<serde_json::Value, FederationError> {
        let mut request = self.http.get(url).bearer_auth(token);
        request = if github {
            request
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
        } else {
            request.header("accept", "application/json")
        };
        let response = request.send().await.map_err(|e| {
            fail(
                ProviderProblem::Unavailable,
                format!("profile: {}", error_chain(&e)),
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(
                ProviderProblem::Error,
                format!("profile endpoint answered {status}"),
            ));
        }
        let body = response.bytes().await.map_err(|e| {
            fail(
                ProviderProblem::Unavailable,
                format!("profile: {}", error_chain(&e)),
            )
        })?;
        if body.len() > MAX_PROFILE_BYTES {
            return Err(invalid("profile response too large"));
        }
        serde_json::from_slice(&body).map_err(|e| invalid(format!("profile is not JSON: {e}")))
    }
}

fn token_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    e: RequestTokenError<RE, T>,
) -> FederationError {
    let detail = format!("token endpoint: {}", error_chain(&e));
    match e {
        RequestTokenError::ServerResponse(_) => fail(ProviderProblem::Error, detail),
        RequestTokenError::Request(_) => fail(ProviderProblem::Unavailable, detail),
        _ => invalid(detail),
    }
}

fn clock(now_ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default()
}

fn truncate(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// `true`, or the string `"true"` (Apple sends booleans as strings).
fn truthy(v: &serde_json::Value) -> bool {
    v.as_bool() == Some(true) || v.as_str() == Some("true")
}

/// The payload of a JWS whose signature has already been verified.
fn jwt_payload(jwt: &str) -> Result<serde_json::Value, FederationError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| invalid("ID token is not a JWS"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| invalid("ID token payload is not base64url"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("ID token payload is not JSON"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(invalid("ID token payload is not an object"))
    }
}

/// The name in Sign in with Apple's `user` form field (sent on the first authorization only).
fn apple_user_name(user: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(user?).ok()?;
    let name = v.get("name")?;
    let part = |k: &str| {
        name.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let full = format!("{} {}", part("firstName"), part("lastName"))
        .trim()
        .to_string();
    (!full.is_empty()).then_some(full)
}

fn id_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn opt_text(v: Option<&serde_json::Value>) -> Option<String> {
    v.and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Facebook's Graph API `/me?fields=id,name,email`. Facebook returns only a confirmed primary
/// email, and none when the person has none or declined the `email` permission.
pub fn parse_facebook_profile(
    provider: &Provider,
    me: &serde_json::Value,
) -> Result<ExternalProfile, FederationError> {
    let subject = id_string(me.get("id")).ok_or_else(|| invalid("profile without an id"))?;
    let email = opt_text(me.get("email"));
    Ok(ExternalProfile {
        provider_id: provider.id.clone(),
        issuer: provider.settings.issuer.clone(),
        subject,
        email_verified: email.is_some(),
        email,
        name: opt_text(me.get("name")),
    })
}

/// GitHub's `/user` and `/user/emails`: the email is the primary one, and only when GitHub
/// has verified it. The public profile email alone is never trusted.
pub fn parse_github_profile(
    provider: &Provider,
    user: &serde_json::Value,
    emails: Option<&serde_json::Value>,
) -> Result<ExternalProfile, FederationError> {
    let subject = id_string(user.get("id")).ok_or_else(|| invalid("profile without an id"))?;
    let primary = emails.and_then(|e| e.as_array()).and_then(|list| {
        list.iter()
            .find(|e| e.get("primary").and_then(|p| p.as_bool()) == Some(true))
    });
    let (email, verified) = match primary {
        Some(p) => (
            opt_text(p.get("email")),
            p.get("verified").and_then(|v| v.as_bool()) == Some(true),
        ),
        None => (None, false),
    };
    Ok(ExternalProfile {
        provider_id: provider.id.clone(),
        issuer: provider.settings.issuer.clone(),
        subject,
        email,
        email_verified: verified,
        name: opt_text(user.get("name")).or_else(|| opt_text(user.get("login"))),
    })
}

/// Sign in with Apple's client secret: an ES256 JWT signed with the team's key, valid for five
/// minutes.
pub fn apple_client_secret(
    team_id: &str,
    key_id: &str,
    client_id: &str,
    pem: &SecretString,
    now_s: i64,
) -> Result<String, String> {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem.expose())
        .map_err(|_| "the Apple signing key is not a P-256 PKCS#8 PEM key".to_string())?;
    let header = serde_json::json!({ "alg": "ES256", "kid": key_id, "typ": "JWT" });
    let claims = serde_json::json!({
        "iss": team_id,
        "iat": now_s,
        "exp": now_s + 300,
        "aud": "https://appleid.apple.com",
        "sub": client_id,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gatehouse_core::identity::{ClaimMapping, Endpoints, ProviderSettings};

    fn provider(kind: ProviderKind) -> Provider {
        Provider {
            id: kind.as_str().into(),
            kind,
            display_name: kind.default_name().into(),
            settings: ProviderSettings {
                issuer: kind.default_issuer(None).unwrap_or_default(),
                client_id: "client".into(),
                scopes: kind.default_scopes(),
                claims: ClaimMapping::default(),
                endpoints: Endpoints::default(),
                apple: None,
            },
            secret: None,
            enabled: true,
            position: 0,
        }
    }

    #[test]
    fn apple_names_come_from_the_user_field() {
        assert_eq!(
            apple_user_name(Some(
                r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@b.c"}"#
            ))
            .as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(apple_user_name(Some("not json")), None);
        assert_eq!(apple_user_name(None), None);
    }

    #[test]
    fn verified_payloads_decode_and_flags_read_apple_strings() {
        let jwt = format!(
            "e30.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"sub":"1","email_verified":"true"}"#)
        );
        let p = jwt_payload(&jwt).unwrap();
        assert!(truthy(&p["email_verified"]));
        assert!(!truthy(&serde_json::json!("false")));
        assert!(jwt_payload("e30.e30").is_ok());
        assert!(jwt_payload("e30.WzFd.x").is_err());
        assert!(jwt_payload("nodots").is_err());
    }

    #[test]
    fn facebook_profiles() {
        let fb = provider(ProviderKind::Facebook);
        let p = parse_facebook_profile(
            &fb,
            &serde_json::json!({"id": "10158", "name": "Ada", "email": "ada@example.com"}),
        )
        .unwrap();
        assert_eq!(p.subject, "10158");
        assert_eq!(p.issuer, "https://www.facebook.com");
        assert!(p.email_verified);
        let no_email =
            parse_facebook_profile(&fb, &serde_json::json!({"id": "7", "name": "Bo"})).unwrap();
        assert_eq!(no_email.email, None);
        assert!(!no_email.email_verified);
        assert!(parse_facebook_profile(&fb, &serde_json::json!({"name": "No id"})).is_err());
        assert!(parse_facebook_profile(&fb, &serde_json::json!({"id": ""})).is_err());
    }

    #[test]
    fn github_profiles_trust_only_the_verified_primary_email() {
        let gh = provider(ProviderKind::Github);
        let user = serde_json::json!({"id": 42, "login": "ada", "name": null, "email": "public@example.com"});
        let emails = serde_json::json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "ada@example.com", "primary": true, "verified": true}
        ]);
        let p = parse_github_profile(&gh, &user, Some(&emails)).unwrap();
        assert_eq!(p.subject, "42");
        assert_eq!(p.email.as_deref(), Some("ada@example.com"));
        assert!(p.email_verified);
        assert_eq!(p.name.as_deref(), Some("ada"));

        let unverified =
            serde_json::json!([{"email": "ada@example.com", "primary": true, "verified": false}]);
        let p = parse_github_profile(&gh, &user, Some(&unverified)).unwrap();
        assert!(!p.email_verified);

        // No list (or no primary): no email at all, never the public profile's.
        let p = parse_github_profile(&gh, &user, None).unwrap();
        assert_eq!(p.email, None);
        let p = parse_github_profile(&gh, &user, Some(&serde_json::json!([]))).unwrap();
        assert_eq!(p.email, None);
        assert!(parse_github_profile(&gh, &serde_json::json!({"login": "x"}), None).is_err());
    }

    #[test]
    fn apple_client_secrets_are_es256_jwts() {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        let jwt = apple_client_secret(
            "TEAM",
            "KEY",
            "com.example",
            &SecretString::new(pem.to_string()),
            1_000,
        )
        .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims = jwt_payload(&jwt).unwrap();
        assert_eq!(claims["iss"], "TEAM");
        assert_eq!(claims["sub"], "com.example");
        assert_eq!(claims["exp"], 1_300);
        use p256::ecdsa::signature::Verifier;
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        key.verifying_key()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert!(apple_client_secret("T", "K", "c", &SecretString::new("nonsense"), 0).is_err());
    }
}
