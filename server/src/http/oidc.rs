//! The OpenID Connect provider at the edge: discovery, keys, the authorization endpoint and its
//! consent page, the token, userinfo, revocation and introspection endpoints, and
//! RP-initiated logout. Requests are parsed here; the identity core decides.
//!
//! CORS is answered only on discovery, keys, token and userinfo, and only for origins some
//! registered application allows; never on the authorization endpoint.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{
    HeaderName, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CACHE_CONTROL,
    CONTENT_TYPE, LOCATION, ORIGIN, PRAGMA, SET_COOKIE, VARY, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use leptos::prelude::*;
use serde_json::{json, Value};

use gatehouse_app::oidc::{
    AuthorizeErrorPage, ConsentData, ConsentPage, LogoutConfirmPage, ReturnPage,
};
use gatehouse_app::pages::MessagePage;
use gatehouse_core::identity::oidc::{
    AuthorizeNext, AuthorizeRejection, ClientAuth, LogoutProblem, TokenError, TokenRequest,
    ACR_MULTIFACTOR, ACR_SINGLE_FACTOR, SCOPES,
};
use gatehouse_core::jws::Alg;
use gatehouse_core::secret::SecretString;

use super::cookies::{AUTHORIZE, SESSION};
use super::toolkit::{
    begin, cookie_policy, current_session, internal_error_page, redirect, Incoming, Page,
};
use crate::AppState;

pub const AUTHORIZE_PATH: &str = "/authorize";
pub const TOKEN_PATH: &str = "/token";
pub const USERINFO_PATH: &str = "/userinfo";
pub const REVOKE_PATH: &str = "/revoke";
pub const INTROSPECT_PATH: &str = "/introspect";
pub const LOGOUT_PATH: &str = "/logout";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The waiting-authorization cookie lives as long as the request waits.
const AUTHORIZE_COOKIE_MAX_AGE_S: i64 =
    gatehouse_core::identity::oidc::AUTHORIZATION_REQUEST_TTL_MS / 1000;

// ---------------------------------------------------------------- helpers

/// `application/x-www-form-urlencoded` pairs, in order.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn has_duplicates(pairs: &[(String, String)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    pairs.iter().any(|(k, _)| !seen.insert(k.as_str()))
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn token_error(err: &TokenError) -> Response {
    if let TokenError::Server(e) = err {
        tracing::warn!(error = %e, "token endpoint failed");
    }
    let status = match err {
        TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
        TokenError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = json_response(
        status,
        json!({ "error": err.code(), "error_description": err.description() }),
    );
    if matches!(err, TokenError::InvalidClient) {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gatehouse\""),
        );
    }
    response
}

/// A 303 to a URL outside Gatehouse (a client's registered URI with our parameters).
fn redirect_to_client(url: &str, cookies: Vec<HeaderValue>) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            let h = response.headers_mut();
            h.insert(LOCATION, location);
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            for c in cookies {
                h.append(SET_COOKIE, c);
            }
            response
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect").into_response(),
    }
}

/// The CORS headers for `origin` when some registered application allows it.
async fn cors(state: &AppState, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![(VARY, HeaderValue::from_static("Origin"))];
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return out;
    };
    let allowed = match state.identity.clients().await {
        Ok(clients) => clients.iter().any(|c| c.allows_origin(origin)),
        Err(_) => false,
    };
    if allowed {
        if let Ok(v) = HeaderValue::from_str(origin) {
            out.push((ACCESS_CONTROL_ALLOW_ORIGIN, v));
        }
    }
    out
}

fn with_headers(mut response: Response, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    for (k, v) in headers {
        response.headers_mut().insert(k, v);
    }
    response
}

/// The answer to a CORS preflight of the endpoints that allow it.
pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut h = cors(&state, &headers).await;
    if h.iter().any(|(k, _)| k == ACCESS_CONTROL_ALLOW_ORIGIN) {
        h.push((
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        ));
        h.push((
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type"),
        ));
        h.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600")));
    }
    with_headers(StatusCode::NO_CONTENT.into_response(), h)
}

// ---------------------------------------------------------------- discovery and keys

pub async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let iss = state.identity.issuer().to_string();
    let endpoint = |path: &str| format!("{iss}{path}");
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let body = json!({
        "issuer": iss,
        "authorization_endpoint": endpoint(AUTHORIZE_PATH),
        "token_endpoint": endpoint(TOKEN_PATH),
        "userinfo_endpoint": endpoint(USERINFO_PATH),
        "jwks_uri": endpoint(JWKS_PATH),
        "revocation_endpoint": endpoint(REVOKE_PATH),
        "introspection_endpoint": endpoint(INTROSPECT_PATH),
        "end_session_endpoint": endpoint(LOGOUT_PATH),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": Alg::ALL.map(Alg::as_str),
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "create", "select_account"],
        "claims_supported": [
            "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr",
            "email", "email_verified", "name", "updated_at"
        ],
        "acr_values_supported": [ACR_SINGLE_FACTOR, ACR_MULTIFACTOR],
        "ui_locales_supported": ["en"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    let mut response = json_response(StatusCode::OK, body);
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response.headers_mut().remove(PRAGMA);
    with_headers(response, cors(&state, &headers).await)
}

pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.identity.jwks(state.now()).await {
        Ok(keys) => {
            let mut response = json_response(StatusCode::OK, keys);
            let h = response.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            h.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            h.remove(PRAGMA);
            with_headers(response, cors(&state, &headers).await)
        }
        Err(e) => {
            tracing::warn!(error = %e, "signing keys unavailable");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "temporarily_unavailable" }),
            )
        }
    }
}

// ---------------------------------------------------------------- authorization endpoint

fn error_page(page: Page, status: StatusCode, code: &str, message_key: &str) -> Response {
    let message = page.t().get(message_key);
    let code = code.to_string();
    page.status(status).render("oidc.error_title", move || {
        view! { <AuthorizeErrorPage message=message code=code/> }
    })
}

pub async fn authorize_get(
    State(state): State<AppState>,
    incoming: Incoming,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = form_pairs(query.unwrap_or_default().as_bytes());
    authorize(state, incoming, pairs).await
}

pub async fn authorize_post(
    State(state): State<AppState>,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    authorize(state, incoming, form_pairs(&body)).await
}

async fn authorize(state: AppState, incoming: Incoming, pairs: Vec<(String, String)>) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let (client, request) = match state.identity.validate_authorization(&pairs).await {
        Ok(valid) => valid,
        Err(AuthorizeRejection::Page(problem)) => {
            let key = format!("oidc.error.{}", problem.code());
            return error_page(page, StatusCode::BAD_REQUEST, problem.code(), &key);
        }
        Err(AuthorizeRejection::Redirect(r)) => {
            return redirect_to_client(&state.identity.rejection_url(&r), vec![]);
        }
    };
    let session = match current_session(&state, &incoming.headers).await {
        Ok(s) => s,
        Err(e) => return internal_error_page(page, &e),
    };
    let email = session.as_ref().map(|(_, u)| u.email.clone());
    match state
        .identity
        .authorize(&ctx, client, request, session, state.now())
        .await
    {
        Ok(next) => answer(&state, page, next, email, Back::Redirect),
        Err(e) => internal_error_page(page, &e),
    }
}

/// The way back to the application after a page of ours (sign-in, second factor, consent) was
/// submitted: a page whose `Refresh` header (and link) lead on, since a form's redirect chain
/// may not leave our origin (`form-action 'self'`).
fn return_page(page: Page, url: String, cookies: &super::cookies::CookiePolicy) -> Response {
    let mut page = page.header(SET_COOKIE, cookies.clear(AUTHORIZE));
    if let Ok(v) = HeaderValue::from_str(&format!("0;url={url}")) {
        page = page.header(HeaderName::from_static("refresh"), v);
    }
    page.render("oidc.return_title", move || view! { <ReturnPage url=url/> })
}

/// How the browser is sent back to the application.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Back {
    /// A 303 (the application's own request to us).
    Redirect,
    /// A page that leads on (after one of our forms).
    Page,
}

fn answer(
    state: &AppState,
    page: Page,
    next: AuthorizeNext,
    email: Option<String>,
    back: Back,
) -> Response {
    let cookies = cookie_policy(state);
    match next {
        AuthorizeNext::Redirect(url) if back == Back::Page => return_page(page, url, &cookies),
        AuthorizeNext::Redirect(url) => redirect_to_client(&url, vec![cookies.clear(AUTHORIZE)]),
        AuthorizeNext::SignIn {
            request_id, create, ..
        } => redirect(
            if create { "/sign-up" } else { "/sign-in" },
            vec![cookies.set(AUTHORIZE, &request_id, Some(AUTHORIZE_COOKIE_MAX_AGE_S))],
        ),
        AuthorizeNext::SecondFactor {
            request_id,
            pending_id,
        } => redirect(
            "/sign-in/verify",
            vec![
                cookies.set(AUTHORIZE, &request_id, Some(AUTHORIZE_COOKIE_MAX_AGE_S)),
                cookies.set(
                    super::cookies::PENDING_SIGN_IN,
                    &pending_id,
                    Some(super::toolkit::PENDING_COOKIE_MAX_AGE_S),
                ),
            ],
        ),
        AuthorizeNext::Enroll {
            request_id,
            by_tenant,
        } => redirect(
            if by_tenant {
                "/account/security?notice=mfa_required"
            } else {
                "/account/security?notice=app_requires_mfa"
            },
            vec![cookies.set(AUTHORIZE, &request_id, Some(AUTHORIZE_COOKIE_MAX_AGE_S))],
        ),
        AuthorizeNext::ChangePassword { request_id } => redirect(
            "/account/password/required",
            vec![cookies.set(AUTHORIZE, &request_id, Some(AUTHORIZE_COOKIE_MAX_AGE_S))],
        ),
        AuthorizeNext::AcceptTerms { request_id } => redirect(
            "/terms",
            vec![cookies.set(AUTHORIZE, &request_id, Some(AUTHORIZE_COOKIE_MAX_AGE_S))],
        ),
        AuthorizeNext::Consent {
            request_id,
            client,
            scope,
        } => consent_page(
            page,
            request_id,
            &client,
            scope,
            email.unwrap_or_default(),
            &cookies,
        ),
    }
}

fn consent_page(
    page: Page,
    request_id: String,
    client: &gatehouse_core::identity::oidc::Client,
    scopes: Vec<String>,
    account_email: String,
    cookies: &super::cookies::CookiePolicy,
) -> Response {
    let cookie = cookies.set(AUTHORIZE, &request_id, Some(AUTHORIZE_COOKIE_MAX_AGE_S));
    let data = ConsentData {
        request_id,
        client_name: client.name.clone(),
        logo_url: client.logo_url.clone(),
        scopes,
        account_email,
    };
    page.header(SET_COOKIE, cookie).render(
        "oidc.consent_title",
        move || view! { <ConsentPage data=data/> },
    )
}

/// After a sign-in: the waiting request continues (a code, consent, or another sign-in).
pub async fn authorize_continue(State(state): State<AppState>, incoming: Incoming) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let cookies = cookie_policy(&state);
    let Some(request_id) = cookies.read(&incoming.headers, AUTHORIZE) else {
        return redirect("/account", vec![]);
    };
    let session = match current_session(&state, &incoming.headers).await {
        Ok(s) => s,
        Err(e) => return internal_error_page(page, &e),
    };
    let email = session.as_ref().map(|(_, u)| u.email.clone());
    match state
        .identity
        .resume_authorization(&ctx, &request_id, session, state.now())
        .await
    {
        Ok(Some(next)) => answer(&state, page, next, email, Back::Page),
        Ok(None) => expired_request(page, &cookies),
        Err(e) => internal_error_page(page, &e),
    }
}

fn expired_request(page: Page, cookies: &super::cookies::CookiePolicy) -> Response {
    error_page(
        page.header(SET_COOKIE, cookies.clear(AUTHORIZE)),
        StatusCode::BAD_REQUEST,
        "expired",
        "oidc.error.expired",
    )
}

/// The answer on the consent page. The request must be the one this browser is waiting for.
pub async fn consent(State(state): State<AppState>, incoming: Incoming, body: Bytes) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let cookies = cookie_policy(&state);
    let pairs = form_pairs(&body);
    let waiting = cookies.read(&incoming.headers, AUTHORIZE);
    let request_id = match (waiting, param(&pairs, "request")) {
        (Some(w), Some(r)) if w == r => w,
        // Not the request this browser waits for: refused, and the waiting one is kept.
        _ => {
            return error_page(
                page,
                StatusCode::BAD_REQUEST,
                "expired",
                "oidc.error.expired",
            )
        }
    };
    let approve = param(&pairs, "decision") == Some("allow");
    let session = match current_session(&state, &incoming.headers).await {
        Ok(s) => s,
        Err(e) => return internal_error_page(page, &e),
    };
    let email = session.as_ref().map(|(_, u)| u.email.clone());
    match state
        .identity
        .answer_consent(&ctx, &request_id, session, approve, state.now())
        .await
    {
        Ok(Some(next)) => answer(&state, page, next, email, Back::Page),
        Ok(None) => expired_request(page, &cookies),
        Err(e) => internal_error_page(page, &e),
    }
}

// ---------------------------------------------------------------- token endpoint

/// The client's credentials from `Authorization: Basic` or the body; both at once, or a body
/// `client_id` that differs from the header's, is a malformed request.
fn client_auth(headers: &HeaderMap, pairs: &[(String, String)]) -> Result<ClientAuth, TokenError> {
    let body_id = param(pairs, "client_id");
    let body_secret = param(pairs, "client_secret");
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| TokenError::InvalidClient)?;
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return Err(TokenError::InvalidClient);
        };
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(TokenError::InvalidClient)?;
        let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
        // RFC 6749 §2.3.1: both parts are form-encoded before being joined.
        let decode = |s: &str| -> String {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (id, secret) = (decode(id), decode(secret));
        if body_secret.is_some() || body_id.is_some_and(|b| b != id) {
            return Err(TokenError::InvalidRequest(
                "use one client authentication method",
            ));
        }
        return Ok(ClientAuth {
            client_id: id,
            secret: Some(SecretString::new(secret)),
        });
    }
    let id = body_id
        .filter(|i| !i.is_empty())
        .ok_or(TokenError::InvalidClient)?;
    Ok(ClientAuth {
        client_id: id.to_string(),
        secret: body_secret.map(SecretString::new),
    })
}

fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, TokenError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(TokenError::InvalidRequest(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let pairs = form_pairs(body);
    if has_duplicates(&pairs) {
        return Err(TokenError::InvalidRequest(
            "a parameter appears more than once",
        ));
    }
    Ok(pairs)
}

pub async fn token(State(state): State<AppState>, incoming: Incoming, body: Bytes) -> Response {
    let headers = &incoming.headers;
    let client_ip = incoming.client_ip(&state).to_string();
    let cors = cors(&state, headers).await;
    let result = async {
        let pairs = parse_form(headers, &body)?;
        let auth = client_auth(headers, &pairs)?;
        let client = state.identity.authenticate_client(&auth).await?;
        let owned = |name: &str| param(&pairs, name).map(str::to_string);
        let request = TokenRequest {
            grant_type: owned("grant_type").unwrap_or_default(),
            code: owned("code"),
            redirect_uri: owned("redirect_uri"),
            code_verifier: owned("code_verifier"),
            refresh_token: owned("refresh_token"),
            scope: owned("scope"),
            client_ip,
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(512)
                .collect(),
        };
        state.identity.token(&client, &request, state.now()).await
    }
    .await;
    let response = match result {
        Ok(t) => {
            let mut body = json!({
                "access_token": t.access_token.expose(),
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "scope": t.scope,
            });
            if let Some(r) = &t.refresh_token {
                body["refresh_token"] = json!(r.expose());
            }
            if let Some(id) = &t.id_token {
                body["id_token"] = json!(id);
            }
            json_response(StatusCode::OK, body)
        }
        Err(e) => token_error(&e),
    };
    with_headers(response, cors)
}

// ---------------------------------------------------------------- userinfo

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string())
}

fn unauthorized(error: Option<&str>) -> Response {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"gatehouse\", error=\"{e}\""),
        None => "Bearer realm=\"gatehouse\"".to_string(),
    };
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        json!({ "error": error.unwrap_or("invalid_request") }),
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    response
}

async fn userinfo_for(state: &AppState, token: Option<String>) -> Response {
    let Some(token) = token else {
        return unauthorized(None);
    };
    match state.identity.userinfo(&token, state.now()).await {
        Ok(Some(claims)) => json_response(StatusCode::OK, claims),
        Ok(None) => unauthorized(Some("invalid_token")),
        Err(e) => {
            tracing::warn!(error = %e, "userinfo failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": "server_error" }),
            )
        }
    }
}

pub async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cors = cors(&state, &headers).await;
    with_headers(userinfo_for(&state, bearer(&headers)).await, cors)
}

pub async fn userinfo_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cors = cors(&state, &headers).await;
    let token =
        bearer(&headers).or_else(|| param(&form_pairs(&body), "access_token").map(str::to_string));
    with_headers(userinfo_for(&state, token).await, cors)
}

// ---------------------------------------------------------------- revocation and introspection

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let pairs = parse_form(&headers, &body)?;
        let auth = client_auth(&headers, &pairs)?;
        let client = state.identity.authenticate_client(&auth).await?;
        let token =
            param(&pairs, "token").ok_or(TokenError::InvalidRequest("token is required"))?;
        state
            .identity
            .revoke_token(&client, token, state.now())
            .await?;
        Ok::<_, TokenError>(())
    }
    .await;
    match result {
        Ok(()) => json_response(StatusCode::OK, json!({})),
        Err(e) => token_error(&e),
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let pairs = parse_form(&headers, &body)?;
        let auth = client_auth(&headers, &pairs)?;
        let client = state.identity.authenticate_client(&auth).await?;
        // Only applications that can keep a secret may ask about tokens.
        if !client.confidential {
            return Err(TokenError::InvalidClient);
        }
        let token =
            param(&pairs, "token").ok_or(TokenError::InvalidRequest("token is required"))?;
        Ok(state
            .identity
            .introspect(&client, token, state.now())
            .await?)
    }
    .await;
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => token_error(&e),
    }
}

// ---------------------------------------------------------------- RP-initiated logout

fn signed_out_page(page: Page, cookies: Vec<HeaderValue>) -> Response {
    let title = page.t().get("oidc.signed_out_title");
    let message = page.t().get("oidc.signed_out_lead");
    let mut page = page;
    for c in cookies {
        page = page.header(SET_COOKIE, c);
    }
    page.render("oidc.signed_out_title", move || {
        view! { <MessagePage title=title message=message/> }
    })
}

async fn end_session(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(token) = cookie_policy(state).read(headers, SESSION) {
        if let Err(err) = state.identity.sign_out(&token, state.now()).await {
            return Err(internal_error_page(Page::new(state).await, &err));
        }
    }
    Ok(())
}

pub async fn logout_get(
    State(state): State<AppState>,
    incoming: Incoming,
    RawQuery(query): RawQuery,
) -> Response {
    let page = Page::new(&state).await;
    let pairs = form_pairs(query.unwrap_or_default().as_bytes());
    let cookies = cookie_policy(&state);
    let check = state
        .identity
        .check_logout(
            param(&pairs, "id_token_hint"),
            param(&pairs, "client_id"),
            param(&pairs, "post_logout_redirect_uri"),
            param(&pairs, "state"),
            state.now(),
        )
        .await;
    let check = match check {
        Ok(c) => c,
        Err(problem) => {
            let (code, key) = match problem {
                LogoutProblem::BadHint => ("invalid_id_token_hint", "oidc.error.bad_hint"),
                LogoutProblem::BadRedirect => (
                    "invalid_post_logout_redirect_uri",
                    "oidc.error.bad_logout_redirect",
                ),
            };
            return error_page(page, StatusCode::BAD_REQUEST, code, key);
        }
    };
    let session = match current_session(&state, &incoming.headers).await {
        Ok(s) => s,
        Err(e) => return internal_error_page(page, &e),
    };
    let hinted_user = check.hint.as_ref().map(|h| h.subject.as_str());
    let proven = match (&session, hinted_user) {
        (None, _) => true,
        (Some((_, user)), Some(sub)) => user.id == sub,
        (Some(_), None) => false,
    };
    if !proven {
        let client_name = check.client.map(|c| c.name);
        return page.render("oidc.logout_title", move || {
            view! { <LogoutConfirmPage client_name=client_name/> }
        });
    }
    if let Err(response) = end_session(&state, &incoming.headers).await {
        return response;
    }
    let clear = vec![cookies.clear(SESSION)];
    match check.redirect {
        Some(url) => redirect_to_client(&url, clear),
        None => signed_out_page(page, clear),
    }
}

/// The confirmation on the sign-out page (a same-origin form).
pub async fn logout_post(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(response) = end_session(&state, &headers).await {
        return response;
    }
    let page = Page::new(&state).await;
    signed_out_page(page, vec![cookie_policy(&state).clear(SESSION)])
}
