//! What the OpenID Connect tests share: a registered application, PKCE, the authorization
//! request and its redirects, token requests, and ID tokens checked with the `openidconnect`
//! client library against the published keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_core::identity::oidc::ClientInput;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;

use super::{Browser, Reply, TestServer, PASSWORD};

pub const REDIRECT: &str = "https://app.example.com/callback";
pub const LOGOUT_REDIRECT: &str = "https://app.example.com/signed-out";
pub const ORIGIN: &str = "https://app.example.com";

#[derive(Clone)]
pub struct App {
    pub id: String,
    pub secret: Option<String>,
}

pub async fn register(server: &TestServer, input: ClientInput) -> App {
    let r = server
        .state
        .identity
        .register_client(&input, server.state.now())
        .await
        .unwrap();
    App {
        id: r.client.id.clone(),
        secret: r.secret.map(|s| s.expose().to_string()),
    }
}

pub fn web_app(name: &str) -> ClientInput {
    ClientInput {
        name: name.into(),
        confidential: true,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![LOGOUT_REDIRECT.into()],
        allowed_origins: vec![ORIGIN.into()],
        first_party: true,
        ..ClientInput::default()
    }
}

pub fn pkce() -> (String, String) {
    let verifier = gatehouse_core::tokens::secret_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `/authorize?` with the usual parameters, overridden or removed (`None`) by `changes`.
pub fn authorize_url(app: &App, challenge: &str, changes: &[(&str, Option<&str>)]) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), app.id.clone()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("scope".into(), "openid profile email".into()),
        ("state".into(), "st-123".into()),
        ("nonce".into(), "n-456".into()),
        ("code_challenge".into(), challenge.into()),
        ("code_challenge_method".into(), "S256".into()),
    ];
    for (k, v) in changes {
        params.retain(|(pk, _)| pk != k);
        if let Some(v) = v {
            params.push((k.to_string(), v.to_string()));
        }
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("/authorize?{}", query.join("&"))
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Where a reply sends the browser: its `Location`, or the URL of its `Refresh` header (the
/// page that leads back to the application after one of our forms).
pub fn target(reply: &Reply) -> Option<String> {
    if let Some(l) = reply.location() {
        return Some(l.to_string());
    }
    let refresh = reply.headers.get("refresh")?.to_str().ok()?;
    Some(refresh.split_once("url=")?.1.to_string())
}

/// Follows redirects within Gatehouse; stops at a redirect elsewhere or at a page.
pub async fn follow(b: &mut Browser, mut reply: Reply) -> Reply {
    for _ in 0..10 {
        match reply.location() {
            Some(l) if l.starts_with('/') => {
                let l = l.to_string();
                reply = b.get(&l).await;
            }
            _ => return reply,
        }
    }
    reply
}

/// A signed-in browser asks for a code; returns (code, verifier).
pub async fn code_for(
    b: &mut Browser,
    app: &App,
    changes: &[(&str, Option<&str>)],
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let first = b.get(&authorize_url(app, &challenge, changes)).await;
    let r = follow(b, first).await;
    let location = target(&r).unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.body));
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    let code = query_param(&location, "code").unwrap_or_else(|| panic!("{location}"));
    (code, verifier)
}

pub async fn token_request(
    server: &TestServer,
    app: &App,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .form(form);
    if let Some(secret) = &app.secret {
        req = req.basic_auth(&app.id, Some(secret));
    } else {
        let mut with_id: Vec<(&str, &str)> = form.to_vec();
        with_id.push(("client_id", &app.id));
        req = reqwest::Client::new()
            .post(format!("{}/token", server.base))
            .form(&with_id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null),
    )
}

pub async fn exchange(
    server: &TestServer,
    app: &App,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    token_request(
        server,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub async fn refresh(server: &TestServer, app: &App, token: &str) -> (StatusCode, Value) {
    token_request(
        server,
        app,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

pub async fn userinfo(server: &TestServer, access_token: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}/userinfo", server.base))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null),
    )
}

pub async fn jwks(server: &TestServer) -> Value {
    reqwest::get(format!("{}/.well-known/jwks.json", server.base))
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap()
}

/// Verifies an ID token with the `openidconnect` library against the published keys, the
/// issuer, the audience, the expiry (at the server's clock) and the nonce; returns its claims.
pub async fn verify_id_token(server: &TestServer, app: &App, token: &str, nonce: &str) -> Value {
    verify_id_token_with(server, app, token, Some(nonce)).await
}

/// [`verify_id_token`]; `None` accepts a token without a nonce (a refreshed ID token).
pub async fn verify_id_token_with(
    server: &TestServer,
    app: &App,
    token: &str,
    nonce: Option<&str>,
) -> Value {
    use openidconnect::core::{
        CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    };
    use openidconnect::{ClientId, IssuerUrl, Nonce};
    let keys: CoreJsonWebKeySet = serde_json::from_value(jwks(server).await).unwrap();
    let now = server.state.now();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(app.id.clone()),
        IssuerUrl::new(server.base.clone()).unwrap(),
        keys,
    )
    .set_allowed_algs(vec![
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EdDsa,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    ])
    .set_time_fn(move || chrono::DateTime::from_timestamp_millis(now).unwrap());
    let parsed: CoreIdToken = token.parse().unwrap();
    let checked = match nonce {
        Some(n) => parsed
            .claims(&verifier, &Nonce::new(n.to_string()))
            .map(|_| ()),
        None => parsed
            .claims(&verifier, |n: Option<&Nonce>| match n {
                None => Ok(()),
                Some(_) => Err("a refreshed ID token carries no nonce".to_string()),
            })
            .map(|_| ()),
    };
    checked.unwrap_or_else(|e| panic!("the ID token does not verify: {e}"));
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub async fn setup() -> (TestServer, App, Browser) {
    let server = TestServer::start().await;
    let app = register(&server, web_app("Web shop")).await;
    let b = server
        .signed_up("Ada Lovelace", "ada@example.com", PASSWORD)
        .await;
    (server, app, b)
}

pub async fn last_log(server: &TestServer) -> gatehouse_core::store::SignInLogEntry {
    server.store.recent_sign_ins(1).await.unwrap().remove(0)
}
