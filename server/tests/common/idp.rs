//! A local OpenID Connect provider double on an ephemeral port: discovery, a JWKS with ES256
//! keys, an authorization endpoint that answers at once, a token endpoint that checks PKCE and
//! mints ID tokens (or forges broken ones on request), and userinfo. Tests steer it through
//! [`Scenario`], configure it on a test server with [`add_provider`], and sign in through it
//! with [`sign_in_via`].

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Map, Value};
use sha2::Digest;

use gatehouse_core::identity::{ClaimMapping, Endpoints, ProviderInput, ProviderKind};
use gatehouse_core::secret::SecretString;

use super::{Browser, Reply, TestServer};

/// The client secret every test provider is configured with.
pub const CLIENT_SECRET: &str = "client-secret-7f3a9c1e5b";

/// A provider's settings with the test client and secret, nothing else set.
pub fn provider_input(id: &str, kind: ProviderKind) -> ProviderInput {
    ProviderInput {
        id: id.into(),
        kind,
        display_name: None,
        issuer: None,
        tenant: None,
        client_id: "gatehouse-test".into(),
        secret: Some(SecretString::new(CLIENT_SECRET)),
        scopes: None,
        claims: ClaimMapping::default(),
        endpoints: Endpoints::default(),
        apple: None,
        enabled: true,
    }
}

/// Configures the double `idp` on `server` as the OpenID Connect provider `id`, shown as `name`.
pub async fn add_provider(server: &TestServer, id: &str, name: &str, idp: &Idp) {
    let input = ProviderInput {
        display_name: Some(name.into()),
        issuer: Some(idp.base.clone()),
        ..provider_input(id, ProviderKind::Oidc)
    };
    server
        .state
        .identity
        .put_provider(input, server.state.now())
        .await
        .unwrap()
        .unwrap();
}

/// The identity the double signs the next person in as.
pub fn person(
    idp: &Idp,
    subject: &str,
    email: Option<&str>,
    verified: Option<bool>,
    name: Option<&str>,
) {
    idp.set(|s| {
        *s = Scenario {
            subject: subject.into(),
            email: email.map(str::to_string),
            email_verified: verified.map(|v| json!(v)),
            name: name.map(str::to_string),
            ..Default::default()
        }
    });
}

/// Starts a round trip from `start` (a button's form action) in `b`; the double answers at
/// once. Returns the callback path and query the provider sent the browser back to.
pub async fn round_trip(server: &TestServer, b: &mut Browser, start: &str) -> String {
    let r = b.post(start, &[]).await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.body);
    let refresh = r
        .headers
        .get("refresh")
        .expect("a Refresh header")
        .to_str()
        .unwrap();
    let url = refresh.strip_prefix("0;url=").unwrap().to_string();
    assert!(
        r.body.contains("Continue with"),
        "the page links on as well"
    );
    let answer = b.client.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::FOUND);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    location
        .strip_prefix(&server.base)
        .expect("our callback")
        .to_string()
}

/// A whole round trip through `provider` from the sign-in page's button: the callback's reply.
pub async fn sign_in_via(server: &TestServer, b: &mut Browser, provider: &str) -> Reply {
    let callback = round_trip(server, b, &format!("/sign-in/external/{provider}")).await;
    b.get(&callback).await
}

/// How the next ID token is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// Signed, then one byte of the payload changed.
    BadSignature,
    /// `alg: none` and no signature.
    AlgNone,
    /// Signed with a key the JWKS does not publish.
    UnknownKid,
    /// HS256 with the published public key as the HMAC secret.
    HmacWithPublicKey,
}

#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// Claims set on top of the defaults (iss, sub, aud, exp, iat, nonce, email...).
    pub claims: Map<String, Value>,
    /// Default claims removed.
    pub remove: Vec<&'static str>,
    pub forge: Option<Forge>,
    /// The token endpoint answers with this status and error body.
    pub token_error: Option<(u16, Value)>,
    /// The token endpoint never answers.
    pub hang_token: bool,
    /// The `sub` of the identity the next authorization is for.
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<Value>,
    pub name: Option<String>,
}

struct Grant {
    nonce: Option<String>,
    challenge: String,
    client_id: String,
    redirect_uri: String,
}

pub struct IdpState {
    pub issuer: String,
    /// The keys the JWKS publishes, by kid.
    published: Mutex<Vec<(String, SigningKey)>>,
    /// The kid that signs ID tokens.
    signing_kid: Mutex<String>,
    pub scenario: Mutex<Scenario>,
    grants: Mutex<HashMap<String, Grant>>,
    /// How many times the JWKS was fetched.
    pub jwks_fetches: Mutex<u32>,
    pub token_calls: Mutex<u32>,
}

pub struct Idp {
    pub base: String,
    pub state: Arc<IdpState>,
}

fn new_key() -> SigningKey {
    SigningKey::random(&mut rand::rngs::OsRng)
}

fn jwk(kid: &str, key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    })
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Idp {
    pub async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(IdpState {
            issuer: base.clone(),
            published: Mutex::new(vec![("key-1".into(), new_key())]),
            signing_kid: Mutex::new("key-1".into()),
            scenario: Mutex::new(Scenario::default()),
            grants: Mutex::new(HashMap::new()),
            jwks_fetches: Mutex::new(0),
            token_calls: Mutex::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Idp { base, state }
    }

    pub fn set(&self, f: impl FnOnce(&mut Scenario)) {
        f(&mut self.state.scenario.lock().unwrap());
    }

    /// Publishes a new key and signs with it from now on; the old key stays published unless
    /// `drop_old`.
    pub fn rotate(&self, kid: &str, drop_old: bool) {
        let mut keys = self.state.published.lock().unwrap();
        if drop_old {
            keys.clear();
        }
        keys.push((kid.to_string(), new_key()));
        *self.state.signing_kid.lock().unwrap() = kid.to_string();
    }

    pub fn jwks_fetches(&self) -> u32 {
        *self.state.jwks_fetches.lock().unwrap()
    }
}

async fn discovery(State(s): State<Arc<IdpState>>) -> Json<Value> {
    let b = &s.issuer;
    Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "userinfo_endpoint": format!("{b}/userinfo"),
        "jwks_uri": format!("{b}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(s): State<Arc<IdpState>>) -> Json<Value> {
    *s.jwks_fetches.lock().unwrap() += 1;
    let keys: Vec<Value> = s
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|(kid, k)| jwk(kid, k))
        .collect();
    Json(json!({ "keys": keys }))
}

/// Answers at once, as if the person had signed in and consented.
async fn authorize(
    State(s): State<Arc<IdpState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let code = format!("code-{}", rand::random::<u64>());
    s.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            nonce: q.get("nonce").cloned(),
            challenge: q.get("code_challenge").cloned().unwrap_or_default(),
            client_id: q.get("client_id").cloned().unwrap_or_default(),
            redirect_uri: q.get("redirect_uri").cloned().unwrap_or_default(),
        },
    );
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    let location = format!(
        "{redirect}?code={code}&state={}&iss={}",
        urlencode(&state),
        urlencode(&s.issuer)
    );
    (StatusCode::FOUND, [("location", location)]).into_response()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sign(kid: &str, key: &SigningKey, claims: &Value) -> String {
    let header = json!({ "alg": "ES256", "kid": kid, "typ": "JWT" });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

async fn token(
    State(s): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    *s.token_calls.lock().unwrap() += 1;
    let scenario = s.scenario.lock().unwrap().clone();
    if scenario.hang_token {
        std::future::pending::<()>().await;
    }
    if let Some((status, body)) = scenario.token_error {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let bad = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response();
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(grant) = s.grants.lock().unwrap().remove(&code) else {
        return bad("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        return bad("invalid_grant");
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return bad("invalid_grant");
    }
    // client_secret_basic (the default) or client_secret_post.
    let authenticated =
        headers.get("authorization").is_some() || form.contains_key("client_secret");
    if !authenticated {
        return bad("invalid_client");
    }
    let now = now_s();
    let mut claims = json!({
        "iss": s.issuer,
        "sub": scenario.subject,
        "aud": grant.client_id,
        "exp": now + 300,
        "iat": now,
        "nonce": grant.nonce,
    });
    let obj = claims.as_object_mut().unwrap();
    if let Some(e) = &scenario.email {
        obj.insert("email".into(), json!(e));
    }
    if let Some(v) = &scenario.email_verified {
        obj.insert("email_verified".into(), v.clone());
    }
    if let Some(n) = &scenario.name {
        obj.insert("name".into(), json!(n));
    }
    for (k, v) in &scenario.claims {
        obj.insert(k.clone(), v.clone());
    }
    for k in &scenario.remove {
        obj.remove(*k);
    }
    let kid = s.signing_kid.lock().unwrap().clone();
    let key = s
        .published
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| *k == kid)
        .map(|(_, k)| k.clone())
        .unwrap();
    let id_token = match scenario.forge {
        None => sign(&kid, &key, &claims),
        Some(Forge::BadSignature) => {
            let good = sign(&kid, &key, &claims);
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            let mut tampered = claims.clone();
            tampered["sub"] = json!(format!("{}-tampered", scenario.subject));
            parts[1] = URL_SAFE_NO_PAD.encode(tampered.to_string());
            parts.join(".")
        }
        Some(Forge::AlgNone) => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
        Some(Forge::UnknownKid) => sign("not-published", &new_key(), &claims),
        Some(Forge::HmacWithPublicKey) => {
            use hmac::Mac;
            let public = jwk(&kid, &key).to_string();
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": kid}).to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(public.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        }
    };
    Json(json!({
        "access_token": format!("at-{}", rand::random::<u64>()),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

async fn userinfo(State(s): State<Arc<IdpState>>) -> Json<Value> {
    let scenario = s.scenario.lock().unwrap().clone();
    Json(json!({ "sub": scenario.subject }))
}
