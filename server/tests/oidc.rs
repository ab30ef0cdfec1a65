//! The OpenID Connect provider over HTTP, in the spirit of the OpenID conformance suite's
//! Basic OP plan and RFC 9700: discovery and keys, the code flow through the sign-in pages,
//! redirect URI matching, PKCE, single-use codes, refresh token rotation, prompt and max_age,
//! client authentication, consent, logout and key rotation. ID tokens are checked with the
//! `openidconnect` client library against the published keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{Browser, Reply, TestServer, PASSWORD};
use gatehouse_core::identity::oidc::RETIRED_KEY_PUBLISHED_MS;
use reqwest::StatusCode;
use serde_json::Value;

use common::oidc::*;

// ---------------------------------------------------------------- discovery and keys (D14, D15)

#[tokio::test]
async fn discovery_and_keys_describe_the_provider() {
    let server = TestServer::start().await;
    let d: Value = reqwest::get(format!("{}/.well-known/openid-configuration", server.base))
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).unwrap())
        .unwrap();
    assert_eq!(d["issuer"], server.base);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(d[field], format!("{}{path}", server.base), "{field}");
    }
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    let algs: Vec<&str> = d["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);
    assert!(!algs.contains(&"none") && !algs.iter().any(|a| a.starts_with("HS")));

    let keys = jwks(&server).await;
    let keys = keys["keys"].as_array().unwrap();
    let mut kinds: Vec<(String, String)> = keys
        .iter()
        .map(|k| {
            assert!(k["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
            assert_eq!(k["use"], "sig");
            assert!(
                k.get("d").is_none() && k.get("p").is_none(),
                "no private parts"
            );
            (
                k["alg"].as_str().unwrap().into(),
                k["kty"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("ES256".into(), "EC".into()),
            ("EdDSA".into(), "OKP".into()),
            ("RS256".into(), "RSA".into())
        ]
    );
    // The keys are stored, not made per request.
    assert_eq!(jwks(&server).await["keys"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn cors_is_answered_only_where_the_specs_expect_it_and_only_for_registered_origins() {
    let (server, app, mut b) = setup().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let acao = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/userinfo",
    ] {
        let r = http
            .get(format!("{}{path}", server.base))
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&r).as_deref(), Some(ORIGIN), "{path}");
        let r = http
            .get(format!("{}{path}", server.base))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&r), None, "{path} for an unregistered origin");
    }
    let pre = http
        .request(reqwest::Method::OPTIONS, format!("{}/token", server.base))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&pre).as_deref(), Some(ORIGIN));
    let t = http
        .post(format!("{}/token", server.base))
        .header("origin", ORIGIN)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&t).as_deref(), Some(ORIGIN));
    // Never on the authorization endpoint, whatever is asked.
    let (_, challenge) = pkce();
    for url in [
        authorize_url(&app, &challenge, &[]),
        authorize_url(
            &app,
            &challenge,
            &[("redirect_uri", Some("https://evil.example/cb"))],
        ),
        "/authorize".to_string(),
    ] {
        let req = b
            .client
            .get(format!("{}{url}", server.base))
            .header("origin", ORIGIN);
        let r = b.send(req).await;
        assert!(
            r.headers.get("access-control-allow-origin").is_none(),
            "{url}"
        );
    }
    let r = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/authorize", server.base),
        )
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&r), None);
}

// ---------------------------------------------------------------- the code flow

#[tokio::test]
async fn the_code_flow_runs_through_the_sign_in_pages_and_its_tokens_verify() {
    let server = TestServer::start().await;
    let app = register(&server, web_app("Web shop")).await;
    server
        .signed_up("Ada Lovelace", "ada@example.com", PASSWORD)
        .await;

    // A new browser: the request waits while the person signs in.
    let mut b = server.browser();
    let (verifier, challenge) = pkce();
    let r = b
        .get(&authorize_url(
            &app,
            &challenge,
            &[("login_hint", Some("ada@example.com"))],
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/sign-in"));
    let page = b.get("/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("value=\"ada@example.com\""),
        "login_hint fills the email"
    );
    let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    let r = follow(&mut b, r).await;
    let location = target(&r).unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.base.as_str())
    );
    let code = query_param(&location, "code").unwrap();
    assert_eq!(
        last_log(&server).await.application,
        app.id,
        "logged under the application"
    );

    let (status, tokens) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verify_id_token(&server, &app, id_token, "n-456").await;
    let user = server.user("ada@example.com").await;
    let session = &server.sessions_of("ada@example.com").await[0];
    assert_eq!(claims["sub"], user.id);
    assert_eq!(claims["aud"], app.id);
    assert_eq!(claims["iss"], server.base);
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["sid"], session.id);
    assert_eq!(claims["auth_time"], session.auth_time / 1000);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["acr"], "urn:gatehouse:acr:sfa");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");

    let (status, info) = userinfo(&server, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], user.id);
    assert_eq!(info["email"], "ada@example.com");
    assert_eq!(info["name"], "Ada Lovelace");

    // Another sign-in of the same browser is single sign-on: a code at once, the same subject.
    let (code, verifier) = code_for(&mut b, &app, &[("nonce", Some("n-2"))]).await;
    let (_, again) = exchange(&server, &app, &code, &verifier).await;
    let claims2 = verify_id_token(&server, &app, again["id_token"].as_str().unwrap(), "n-2").await;
    assert_eq!(claims2["sub"], claims["sub"], "sub is stable");
    assert!(claims2["sub"].as_str().unwrap().len() <= 255);

    // Sign-out ends the tokens bound to the session.
    b.post("/sign-out", &[]).await;
    let (status, _) = userinfo(&server, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = refresh(&server, &app, again["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_second_factor_is_asked_before_the_code_and_reported_truthfully() {
    let server = TestServer::start().await;
    let app = register(&server, web_app("Bank")).await;
    // An account with an authenticator app.
    let mut b = server
        .signed_up("Two Step", "two@example.com", PASSWORD)
        .await;
    let r = b.post("/account/security/authenticator", &[]).await;
    let location = target(&r).unwrap();
    let page = b.get(&location).await;
    let start = page.body.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let end = start + page.body[start..].find('<').unwrap();
    let secret = gatehouse_core::totp::TotpSecret::from_bytes(
        gatehouse_core::totp::base32_decode(&page.body[start..end]).unwrap(),
    );
    let code_at = |offset_steps: i64| {
        let step = gatehouse_core::totp::step_at(server.state.now() / 1000) + offset_steps;
        gatehouse_core::totp::code_for_step(&secret, step)
    };
    let r = b
        .post(&format!("{location}/confirm"), &[("code", &code_at(0))])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    server.clock.advance_ms(31_000);

    let mut b = server.browser();
    let (verifier, challenge) = pkce();
    let r = b.get(&authorize_url(&app, &challenge, &[])).await;
    assert_eq!(r.location(), Some("/sign-in"));
    let r = b.sign_in_with_password("two@example.com", PASSWORD).await;
    assert_eq!(
        r.location(),
        Some("/sign-in/verify"),
        "no code before the second factor"
    );
    let r = b.post("/sign-in/verify", &[("code", &code_at(0))]).await;
    let r = follow(&mut b, r).await;
    let location = target(&r).unwrap();
    let code = query_param(&location, "code").expect("a code after the second factor");
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let claims =
        verify_id_token(&server, &app, tokens["id_token"].as_str().unwrap(), "n-456").await;
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        amr.contains(&"pwd") && amr.contains(&"otp") && amr.contains(&"mfa"),
        "{amr:?}"
    );
    assert_eq!(claims["acr"], "urn:gatehouse:acr:mfa");
}

#[tokio::test]
async fn an_email_code_sign_in_is_never_reported_as_multifactor() {
    let server = TestServer::start().await;
    let app = register(&server, web_app("Shop")).await;
    server
        .signed_up("Code User", "code@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    let (verifier, challenge) = pkce();
    b.get(&authorize_url(&app, &challenge, &[])).await;
    let r = b
        .post("/sign-in/code", &[("email", "code@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let code = server.last_code("code@example.com").await;
    let r = b.post("/code", &[("code", &code)]).await;
    let r = follow(&mut b, r).await;
    let code = query_param(&target(&r).unwrap(), "code").unwrap();
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let claims =
        verify_id_token(&server, &app, tokens["id_token"].as_str().unwrap(), "n-456").await;
    assert_eq!(claims["amr"], serde_json::json!(["email"]));
    assert_eq!(claims["acr"], "urn:gatehouse:acr:sfa");
}

// ---------------------------------------------------------------- redirect URIs (D1)

fn redirect_variants(registered: &str) -> Vec<String> {
    let url = url::Url::parse(registered).unwrap();
    let scheme = url.scheme().to_string();
    let host = url.host_str().unwrap_or("").to_string();
    let path = url.path().to_string();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = &registered[scheme.len()..];
    let mut v = vec![
        registered.to_uppercase(),
        format!("{}{rest}", scheme.to_uppercase()),
        registered.replacen(&host, &host.to_uppercase(), 1),
        format!("{registered}/"),
        registered.trim_end_matches('/').to_string() + "//",
        format!("{registered}?"),
        format!("{registered}?x=1"),
        format!("{registered}?code=evil"),
        format!("{registered}&x=1"),
        format!("{registered}#"),
        format!("{registered}#frag"),
        format!("{registered}%23frag"),
        format!("{registered}/.."),
        format!("{registered}/../evil"),
        format!("{registered}/..;/evil"),
        format!("{registered}/%2e%2e/evil"),
        format!("{registered}/%252e%252e/evil"),
        format!("{registered}%2F..%2Fevil"),
        format!("{registered}%00"),
        format!("{registered}\0"),
        format!("{registered} "),
        format!(" {registered}"),
        format!("{registered}\t"),
        format!("{registered}\n"),
        format!("{registered}%20"),
        format!("{registered}%0d%0aSet-Cookie:x=1"),
        format!("{registered}\\"),
        registered.replace('/', "\\"),
        format!("{registered}.evil.example"),
        format!("{registered}evil"),
        registered.replacen(&path, &path.to_uppercase(), 1),
        registered.replacen(&path, &format!("{path}x"), 1),
        registered.replacen(&path, "", 1),
        registered.replacen(&path, &format!("/x{path}"), 1),
        registered.replacen(&path, &path.replace('/', "%2F"), 1),
        registered.replacen(&path, &path.replace('a', "%61"), 1),
        registered.replacen(&path, &path.replace('c', "%63"), 1),
        registered.replacen(&path, &format!("{path}%2F"), 1),
        registered.replacen("://", ":///", 1),
        registered.replacen("://", ":/", 1),
        registered.replacen("://", "//", 1),
        registered.replacen(&format!("{scheme}://"), "//", 1),
        registered.replacen(&format!("{scheme}:"), "", 1),
        "javascript:alert(1)".into(),
        "JavaScript:alert(document.domain)//".into(),
        " javascript:alert(1)".into(),
        "java\tscript:alert(1)".into(),
        format!("javascript://{host}/%0aalert(1)"),
        "data:text/html,<script>alert(1)</script>".into(),
        "DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==".into(),
        "vbscript:msgbox(1)".into(),
        "file:///etc/passwd".into(),
        "about:blank".into(),
        "".into(),
        "/callback".into(),
        "callback".into(),
        "https://evil.example/callback".into(),
        format!("https://evil.example/{registered}"),
        format!("https://evil.example?{registered}"),
        format!("https://evil.example#{registered}"),
    ];
    if !host.is_empty() {
        v.extend([
            registered.replacen(&host, &format!("evil@{host}"), 1),
            registered.replacen(&host, &format!("{host}@evil.example"), 1),
            registered.replacen(&host, &format!("{host}@@evil.example"), 1),
            registered.replacen(&host, &format!("user:pass@{host}"), 1),
            registered.replacen(&host, &format!("{host}.evil.example"), 1),
            registered.replacen(&host, &format!("evil.{host}"), 1),
            registered.replacen(&host, &format!("{host}."), 1),
            registered.replacen(&host, &format!("{host}%2eevil.example"), 1),
            registered.replacen(&host, &format!("{host}%40evil.example"), 1),
            registered.replacen(&host, &format!("{host}\\@evil.example"), 1),
            registered.replacen(&host, &format!("{host}%5C@evil.example"), 1),
            registered.replacen(&host, &host.replace('a', "а"), 1), // Cyrillic a
            registered.replacen(&host, &host.replace('e', "е"), 1), // Cyrillic e
            registered.replacen(&host, &host.replace('o', "ο"), 1), // Greek omicron
            registered.replacen(&host, &host.replace('.', "。"), 1),
            registered.replacen(&host, &format!("xn--{host}"), 1),
            registered.replacen(&host, &host.replace('a', "%61"), 1),
            registered.replacen(&host, "127.0.0.1", 1),
            registered.replacen(&host, "localhost", 1),
            registered.replacen(&host, "[::1]", 1),
            registered.replacen(&host, "0.0.0.0", 1),
            registered.replacen(&host, "2130706433", 1),
            registered.replacen(&host, "0x7f000001", 1),
        ]);
        if port.is_empty() {
            for p in [":443", ":80", ":8443", ":0", ":"] {
                v.push(registered.replacen(&host, &format!("{host}{p}"), 1));
            }
        } else {
            v.push(registered.replacen(&port, "", 1));
            v.push(registered.replacen(&port, ":1", 1));
            v.push(registered.replacen(&port, &format!("{port}0"), 1));
            v.push(registered.replacen(&port, &format!(":0{}", &port[1..]), 1));
        }
        if host == "localhost" {
            v.push(registered.replacen("localhost", "127.0.0.1", 1));
            v.push(registered.replacen("localhost", "[::1]", 1));
        }
        if host == "127.0.0.1" {
            v.push(registered.replacen("127.0.0.1", "localhost", 1));
        }
        for other in ["http", "https", "ftp", "ws", "wss"] {
            if other != scheme {
                v.push(format!("{other}{rest}"));
            }
        }
    } else {
        v.extend([
            registered.replacen(':', "://", 1),
            registered.replacen(&scheme, &format!("{scheme}x"), 1),
            registered.replacen(&scheme, &scheme.replace('.', "-"), 1),
            format!("https://{}", &rest[1..].trim_start_matches('/')),
        ]);
    }
    v.retain(|candidate| candidate.as_bytes() != registered.as_bytes());
    v.sort();
    v.dedup();
    v
}

#[tokio::test]
async fn redirect_uri_corpus_never_redirects_anywhere_but_an_exact_match() {
    let server = TestServer::start().await;
    let registered = [
        "https://app.example.com/callback",
        "http://localhost:8080/oauth/cb",
        "com.example.app:/oauth2redirect",
    ];
    let mut input = web_app("Corpus");
    input.redirect_uris = registered.iter().map(|s| s.to_string()).collect();
    let app = register(&server, input).await;
    let mut b = server
        .signed_up("Corpus", "corpus@example.com", PASSWORD)
        .await;
    let (_, challenge) = pkce();

    // The registered URIs themselves: a code at exactly that URI.
    for uri in registered {
        let r = b
            .get(&authorize_url(
                &app,
                &challenge,
                &[("redirect_uri", Some(uri))],
            ))
            .await;
        let location = r
            .location()
            .unwrap_or_else(|| panic!("{uri}: {}", r.status));
        assert!(location.starts_with(&format!("{uri}?code=")), "{location}");
    }

    let mut tried = 0;
    for uri in registered {
        for variant in redirect_variants(uri) {
            let r = b
                .get(&authorize_url(
                    &app,
                    &challenge,
                    &[("redirect_uri", Some(&variant))],
                ))
                .await;
            assert!(
                r.location().is_none(),
                "{variant:?} was redirected to {:?}",
                r.location()
            );
            assert!(r.headers.get("refresh").is_none());
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{variant:?}");
            assert!(r.body.contains("<h1"), "an error page for {variant:?}");
            tried += 1;
        }
    }
    assert!(tried >= 200, "only {tried} variants");
    // A redirect URI of another client is no better.
    let other = register(&server, web_app("Other")).await;
    let r = b
        .get(&authorize_url(
            &other,
            &challenge,
            &[("redirect_uri", Some("http://localhost:8080/oauth/cb"))],
        ))
        .await;
    assert!(r.location().is_none());
    // Unknown and missing clients, and a repeated redirect_uri, get the page too.
    for url in [
        authorize_url(
            &App {
                id: "nope".into(),
                secret: None,
            },
            &challenge,
            &[],
        ),
        authorize_url(&app, &challenge, &[("client_id", None)]),
        authorize_url(&app, &challenge, &[("redirect_uri", None)]),
        format!(
            "{}&redirect_uri={}",
            authorize_url(&app, &challenge, &[]),
            enc("https://evil.example/cb")
        ),
    ] {
        let r = b.get(&url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(r.location().is_none(), "{url}");
    }
}

#[test]
fn registration_accepts_only_exact_safe_redirect_uris() {
    use gatehouse_core::identity::oidc::registrable_redirect_uri as ok;
    for good in [
        "https://app.example.com/callback",
        "https://app.example.com/cb?tenant=1",
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "com.example.app:/oauth2redirect",
    ] {
        assert!(ok(good), "{good}");
    }
    for bad in [
        "http://app.example.com/cb",
        "https://app.example.com",
        "https://app.example.com/cb#x",
        "https://user@app.example.com/cb",
        "javascript:alert(1)",
        "data:text/html,x",
        "myapp:/cb",
        "https://APP.example.com/cb",
        "https://app.example.com/a b",
        "",
    ] {
        assert!(!ok(bad), "{bad}");
    }
}

// ---------------------------------------------------------------- PKCE (D2)

async fn error_redirect(b: &mut Browser, url: &str) -> (String, Option<String>, Option<String>) {
    let r = b.get(url).await;
    let location = r
        .location()
        .unwrap_or_else(|| panic!("{url}: {} {}", r.status, r.body))
        .to_string();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert!(query_param(&location, "code").is_none(), "{location}");
    (
        query_param(&location, "error").unwrap_or_default(),
        query_param(&location, "state"),
        query_param(&location, "iss"),
    )
}

#[tokio::test]
async fn pkce_is_required_for_every_client_and_only_s256() {
    let (server, app, mut b) = setup().await;
    let mut public = web_app("Spa");
    public.confidential = false;
    let spa = register(&server, public).await;
    let (_, challenge) = pkce();
    for client in [&app, &spa] {
        let (error, state, iss) = error_redirect(
            &mut b,
            &authorize_url(
                client,
                &challenge,
                &[("code_challenge", None), ("code_challenge_method", None)],
            ),
        )
        .await;
        assert_eq!(error, "invalid_request");
        assert_eq!(state.as_deref(), Some("st-123"));
        assert_eq!(iss.as_deref(), Some(server.base.as_str()));
        let (error, _, _) = error_redirect(
            &mut b,
            &authorize_url(
                client,
                &challenge,
                &[("code_challenge_method", Some("plain"))],
            ),
        )
        .await;
        assert_eq!(error, "invalid_request", "plain is refused");
        let (error, _, _) = error_redirect(&mut b, &authorize_url(client, "short", &[])).await;
        assert_eq!(error, "invalid_request");
    }
    for client in [&app, &spa] {
        // A wrong verifier, and no verifier at all, fail; the code is then spent.
        let (code, _) = code_for(&mut b, client, &[]).await;
        let (status, body) = exchange(&server, client, &code, &pkce().0).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        let (code, verifier) = code_for(&mut b, client, &[]).await;
        let (status, body) = token_request(
            &server,
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        let (status, _) = exchange(&server, client, &code, &verifier).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a code is not retried");
        let (code, _) = code_for(&mut b, client, &[]).await;
        let (status, body) = exchange(&server, client, &code, "not a verifier!").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request"))
        );
        // The right verifier works.
        let (code, verifier) = code_for(&mut b, client, &[]).await;
        let (status, _) = exchange(&server, client, &code, &verifier).await;
        assert_eq!(status, StatusCode::OK);
    }
}

// ---------------------------------------------------------------- codes (D3, D4)

#[tokio::test]
async fn a_reused_code_fails_and_revokes_what_its_first_use_issued() {
    let (server, app, mut b) = setup().await;
    // At once.
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (status, first) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, access).await.0, StatusCode::OK);
    let (status, body) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(userinfo(&server, access).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh(&server, &app, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // After 30 seconds (moved clock).
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, first) = exchange(&server, &app, &code, &verifier).await;
    server.clock.advance_ms(30_000);
    let (status, _) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        userinfo(&server, first["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn fifty_concurrent_redemptions_of_one_code_give_one_success_and_then_revoke_it() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let server = Arc::new(server);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (server, app, code, verifier) =
            (server.clone(), app.clone(), code.clone(), verifier.clone());
        tasks.push(tokio::spawn(async move {
            exchange(&server, &app, &code, &verifier).await
        }));
    }
    let mut ok = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => ok.push(body),
            StatusCode::BAD_REQUEST => {
                assert_eq!(body["error"], "invalid_grant");
                refused += 1
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok.len(), refused), (1, 49));
    // The others were replays: the winner's tokens are revoked.
    let access = ok[0]["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, access).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn codes_expire_after_sixty_seconds() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    server.clock.advance_ms(61_000);
    let (status, body) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    server.clock.advance_ms(59_000);
    assert_eq!(
        exchange(&server, &app, &code, &verifier).await.0,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- client authentication (D5)

#[tokio::test]
async fn clients_authenticate_and_cannot_redeem_each_others_codes() {
    let (server, app, mut b) = setup().await;
    let other = register(&server, web_app("Other")).await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    for (who, secret) in [
        (app.id.clone(), "wrong".to_string()),
        (app.id.clone(), other.secret.clone().unwrap()),
        ("unknown".to_string(), app.secret.clone().unwrap()),
        (app.id.clone(), String::new()),
    ] {
        let (status, body) = token_request(
            &server,
            &App {
                id: who.clone(),
                secret: Some(secret),
            },
            &form,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{who}");
        assert_eq!(body["error"], "invalid_client");
    }
    // No credentials at all for a confidential client.
    let (status, body) = token_request(
        &server,
        &App {
            id: app.id.clone(),
            secret: None,
        },
        &form,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // client_secret_post works as well as Basic.
    let mut post_form = form.to_vec();
    post_form.push(("client_id", &app.id));
    let secret = app.secret.clone().unwrap();
    post_form.push(("client_secret", &secret));
    // Client B, properly authenticated, presents A's code.
    let (status, body) = token_request(&server, &other, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", app.id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "client_secret_post");
    // Basic and post at once is refused.
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .basic_auth(&app.id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A different redirect_uri at the token endpoint fails.
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (status, body) = token_request(
        &server,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.com/callback/"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_rotated_client_secret_replaces_the_old_one_at_once() {
    let (server, app, mut b) = setup().await;
    let new_secret = server
        .state
        .identity
        .rotate_client_secret(&app.id, server.state.now())
        .await
        .unwrap();
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    assert_eq!(
        exchange(&server, &app, &code, &verifier).await.0,
        StatusCode::UNAUTHORIZED
    );
    let rotated = App {
        id: app.id.clone(),
        secret: Some(new_secret.expose().to_string()),
    };
    assert_eq!(
        exchange(&server, &rotated, &code, &verifier).await.0,
        StatusCode::OK
    );
    let stored = server.store.find_client(&app.id).await.unwrap().unwrap();
    assert_ne!(
        stored.secret_hash.as_deref(),
        Some(new_secret.expose()),
        "stored hashed"
    );
    assert!(!format!("{stored:?}").contains(stored.secret_hash.as_deref().unwrap()));
}

// ---------------------------------------------------------------- grants, response types, scopes (D6)

#[tokio::test]
async fn unsupported_grants_response_types_and_scopes_are_refused() {
    let (server, app, mut b) = setup().await;
    let (_, challenge) = pkce();
    for (change, expected) in [
        (
            ("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            ("response_type", Some("id_token token")),
            "unsupported_response_type",
        ),
        (
            ("response_type", Some("code id_token")),
            "unsupported_response_type",
        ),
        (("response_type", None), "invalid_request"),
        (("scope", Some("openid admin")), "invalid_scope"),
        (("response_mode", Some("fragment")), "invalid_request"),
        (
            ("request", Some("eyJhbGciOiJub25lIn0.e30.")),
            "request_not_supported",
        ),
        (
            ("request_uri", Some("https://app.example.com/req")),
            "request_uri_not_supported",
        ),
        (("prompt", Some("none login")), "invalid_request"),
        (("max_age", Some("-1")), "invalid_request"),
    ] {
        let (error, state, _) =
            error_redirect(&mut b, &authorize_url(&app, &challenge, &[change])).await;
        assert_eq!(error, expected, "{change:?}");
        assert_eq!(state.as_deref(), Some("st-123"));
    }
    // Unknown parameters are ignored.
    let (code, _) = code_for(
        &mut b,
        &app,
        &[("foo", Some("bar")), ("claims_locales", Some("de"))],
    )
    .await;
    assert!(!code.is_empty());
    for grant in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "bogus",
    ] {
        let (status, body) = token_request(
            &server,
            &app,
            &[
                ("grant_type", grant),
                ("username", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")),
            "{grant}"
        );
    }
    // A grant the client is not registered for.
    let (status, body) =
        token_request(&server, &app, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    // Malformed requests are errors, never 500s.
    let resp = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .header("content-type", "application/json")
        .body("{\"grant_type\":\"authorization_code\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .basic_auth(&app.id, app.secret.as_ref())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&grant_type=refresh_token&%ff%fe=%00")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn confidential_clients_get_tokens_for_themselves_and_can_introspect_and_revoke() {
    let server = TestServer::start().await;
    let mut input = web_app("Backend");
    input.grant_types = vec!["client_credentials".into()];
    input.redirect_uris = vec![];
    let backend = register(&server, input).await;
    let (status, tokens) =
        token_request(&server, &backend, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none());
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (status, _) = token_request(
        &server,
        &backend,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no user scopes without a user"
    );
    // Userinfo is for people.
    assert_eq!(userinfo(&server, &access).await.0, StatusCode::UNAUTHORIZED);

    let introspect = |token: String| {
        let server_base = server.base.clone();
        let backend = backend.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{server_base}/introspect"))
                .basic_auth(&backend.id, backend.secret.as_ref())
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .map(|t| serde_json::from_str::<Value>(&t).unwrap())
                .unwrap()
        }
    };
    let info = introspect(access.clone()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], backend.id);
    assert!(info.get("sub").is_none());
    assert_eq!(
        introspect("garbage".into()).await,
        serde_json::json!({"active": false})
    );
    let revoked = reqwest::Client::new()
        .post(format!("{}/revoke", server.base))
        .basic_auth(&backend.id, backend.secret.as_ref())
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(introspect(access).await["active"], false);
    // Without the right secret nothing is told.
    let r = reqwest::Client::new()
        .post(format!("{}/introspect", server.base))
        .basic_auth(&backend.id, Some("wrong"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------- refresh tokens (D7)

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_family() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t1) = exchange(&server, &app, &code, &verifier).await;
    let rt1 = t1["refresh_token"].as_str().unwrap().to_string();
    let (status, t2) = refresh(&server, &app, &rt1).await;
    assert_eq!(status, StatusCode::OK);
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "rotated");
    let claims = verify_id_token_with(&server, &app, t2["id_token"].as_str().unwrap(), None).await;
    assert!(claims.get("nonce").is_none());
    assert_eq!(claims["sub"], server.user("ada@example.com").await.id);
    // Replaying RT1 kills the family: RT2 and its access token die.
    let (status, body) = refresh(&server, &app, &rt1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        refresh(&server, &app, &rt2).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo(&server, t2["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn fifty_concurrent_uses_of_one_refresh_token_give_one_success() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let server = Arc::new(server);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (server, app, rt) = (server.clone(), app.clone(), rt.clone());
            tokio::spawn(async move { refresh(&server, &app, &rt).await.0 })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn refresh_tokens_belong_to_their_client_and_expire() {
    let (server, app, mut b) = setup().await;
    let mut other_input = web_app("Other");
    other_input.redirect_uris = vec![REDIRECT.into()];
    let other = register(&server, other_input).await;
    let (code, verifier) = code_for(&mut b, &other, &[]).await;
    let (_, theirs) = exchange(&server, &other, &code, &verifier).await;
    let their_rt = theirs["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&server, &app, their_rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        refresh(&server, &other, their_rt).await.0,
        StatusCode::OK,
        "not spent by the refusal"
    );

    // An offline grant outlives the session but not its absolute lifetime.
    let (code, verifier) =
        code_for(&mut b, &app, &[("scope", Some("openid offline_access"))]).await;
    let (_, offline) = exchange(&server, &app, &code, &verifier).await;
    b.post("/sign-out", &[]).await;
    let (status, next) = refresh(&server, &app, offline["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "offline_access survives sign-out");
    server.clock.advance_ms(31 * 24 * 60 * 60 * 1000);
    assert_eq!(
        refresh(&server, &app, next["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn disabling_the_account_or_changing_its_password_ends_its_tokens() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) =
        code_for(&mut b, &app, &[("scope", Some("openid offline_access"))]).await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    let r = b
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "amber-quartz-meadow-77"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        refresh(&server, &app, t["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------- prompt and max_age (D10)

#[tokio::test]
async fn prompt_none_without_a_session_answers_login_required() {
    let (server, app, mut signed_in) = setup().await;
    let mut b = server.browser();
    let (_, challenge) = pkce();
    let (error, state, iss) = error_redirect(
        &mut b,
        &authorize_url(&app, &challenge, &[("prompt", Some("none"))]),
    )
    .await;
    assert_eq!(error, "login_required");
    assert_eq!(state.as_deref(), Some("st-123"));
    assert_eq!(iss.as_deref(), Some(server.base.as_str()));
    // With a session it is silent: a code at once.
    let (code, _) = code_for(&mut signed_in, &app, &[("prompt", Some("none"))]).await;
    assert!(!code.is_empty());
    // max_age exceeded with prompt=none: login_required too.
    server.clock.advance_ms(5_000);
    let (error, _, _) = error_redirect(
        &mut signed_in,
        &authorize_url(
            &app,
            &challenge,
            &[("prompt", Some("none")), ("max_age", Some("1"))],
        ),
    )
    .await;
    assert_eq!(error, "login_required");
}

#[tokio::test]
async fn prompt_login_and_max_age_force_a_new_sign_in() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    let first = verify_id_token(&server, &app, t["id_token"].as_str().unwrap(), "n-456").await;

    for change in [
        ("prompt", Some("login")),
        ("max_age", Some("1")),
        ("max_age", Some("0")),
    ] {
        server.clock.advance_ms(2_000);
        let (verifier, challenge) = pkce();
        let r = b.get(&authorize_url(&app, &challenge, &[change])).await;
        assert_eq!(r.location(), Some("/sign-in"), "{change:?}");
        let page = b.get("/sign-in").await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "the form, not the account page"
        );
        // Skipping the sign-in does not help.
        let r = b.get("/authorize/continue").await;
        assert_eq!(r.location(), Some("/sign-in"));
        let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
        let r = follow(&mut b, r).await;
        let code = query_param(&target(&r).unwrap(), "code").unwrap();
        let (_, t) = exchange(&server, &app, &code, &verifier).await;
        let claims = verify_id_token(&server, &app, t["id_token"].as_str().unwrap(), "n-456").await;
        assert!(
            claims["auth_time"].as_i64().unwrap() > first["auth_time"].as_i64().unwrap(),
            "{change:?}: a new auth_time"
        );
    }
}

#[tokio::test]
async fn prompt_create_opens_sign_up_and_the_new_account_returns_to_the_application() {
    let server = TestServer::start().await;
    let app = register(&server, web_app("Shop")).await;
    let mut b = server.browser();
    let (verifier, challenge) = pkce();
    let r = b
        .get(&authorize_url(
            &app,
            &challenge,
            &[("prompt", Some("create"))],
        ))
        .await;
    assert_eq!(r.location(), Some("/sign-up"));
    let r = b
        .post(
            "/sign-up",
            &[
                ("name", "New Person"),
                ("email", "new@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let code = server.last_code("new@example.com").await;
    let r = b.post("/code", &[("code", &code)]).await;
    let r = follow(&mut b, r).await;
    let code = query_param(&target(&r).unwrap(), "code").unwrap();
    let (status, t) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    let claims = verify_id_token(&server, &app, t["id_token"].as_str().unwrap(), "n-456").await;
    assert_eq!(claims["email"], "new@example.com");
}

// ---------------------------------------------------------------- consent (D12)

#[tokio::test]
async fn third_party_applications_ask_consent_once_until_it_is_revoked() {
    let (server, _, mut b) = setup().await;
    let mut input = web_app("Partner");
    input.first_party = false;
    let partner = register(&server, input).await;
    let (_, challenge) = pkce();

    let (error, _, _) = error_redirect(
        &mut b,
        &authorize_url(&partner, &challenge, &[("prompt", Some("none"))]),
    )
    .await;
    assert_eq!(error, "consent_required");

    let page = b.get(&authorize_url(&partner, &challenge, &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Partner wants to use your account"),
        "{}",
        page.body
    );
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers.get("x-frame-options").unwrap(), "DENY");
    let request = page.body.split("name=\"request\" value=\"").nth(1).unwrap();
    let request = request[..request.find('"').unwrap()].to_string();

    // A forged answer for another request id is refused; deny answers access_denied.
    let r = b
        .post(
            "/authorize/consent",
            &[("request", "other"), ("decision", "allow")],
        )
        .await;
    assert!(r.location().is_none());
    let r = b
        .post(
            "/authorize/consent",
            &[("request", &request), ("decision", "deny")],
        )
        .await;
    assert_eq!(
        query_param(&target(&r).unwrap(), "error").as_deref(),
        Some("access_denied")
    );

    // Allow: a code; next time no question.
    b.get(&authorize_url(&partner, &challenge, &[])).await;
    let page = b.get("/authorize/continue").await;
    let request = page.body.split("name=\"request\" value=\"").nth(1).unwrap();
    let request = request[..request.find('"').unwrap()].to_string();
    let r = b
        .post(
            "/authorize/consent",
            &[("request", &request), ("decision", "allow")],
        )
        .await;
    assert!(query_param(&target(&r).unwrap(), "code").is_some());
    let (code, verifier) = code_for(&mut b, &partner, &[]).await;
    let (_, t) = exchange(&server, &partner, &code, &verifier).await;
    // prompt=consent asks again even so.
    let page = b
        .get(&authorize_url(
            &partner,
            &challenge,
            &[("prompt", Some("consent"))],
        ))
        .await;
    assert!(page.body.contains("Allow"));

    // Revoking consent ends the tokens and the question comes back.
    let user = server.user("ada@example.com").await;
    let ctx = gatehouse_core::identity::RequestContext {
        application: "account".into(),
        client_ip: "203.0.113.10".into(),
        user_agent: "test".into(),
        product_name: "Gatehouse".into(),
        emails: Arc::new(NoEmails),
        device: None,
        policy_results: None,
        sign_in_id: None,
        sign_in_risk: None,
    };
    assert!(server
        .state
        .identity
        .revoke_consent(&ctx, &user.id, &partner.id, server.state.now())
        .await
        .unwrap());
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let page = b.get(&authorize_url(&partner, &challenge, &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"decision\""));
}

/// The texts of a request that sends no email.
#[derive(Debug)]
struct NoEmails;

impl gatehouse_core::mail::EmailTexts for NoEmails {
    fn compose(
        &self,
        _: gatehouse_core::mail::EmailKind,
        _: Option<&str>,
    ) -> gatehouse_core::mail::EmailText {
        gatehouse_core::mail::EmailText {
            subject: String::new(),
            body: String::new(),
        }
    }
}

// ---------------------------------------------------------------- logout (D11, C5)

#[tokio::test]
async fn logout_checks_the_hint_and_the_redirect_before_ending_the_session() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    let id_token = t["id_token"].as_str().unwrap().to_string();
    let logout = |hint: &str, redirect: &str| {
        format!(
            "/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
            enc(hint),
            enc(redirect)
        )
    };
    // An altered hint, a hint signed with alg=none, an unregistered or query-added redirect.
    let mut parts: Vec<String> = id_token.split('.').map(str::to_string).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = "someone-else".into();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let altered = parts.join(".");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        parts[1]
    );
    for url in [
        logout(&altered, LOGOUT_REDIRECT),
        logout(&none, LOGOUT_REDIRECT),
        logout("garbage", LOGOUT_REDIRECT),
        logout(&id_token, "https://evil.example/"),
        logout(&id_token, &format!("{LOGOUT_REDIRECT}?x=1")),
        logout(&id_token, &format!("{LOGOUT_REDIRECT}/")),
        logout(&id_token, REDIRECT),
    ] {
        let r = b.get(&url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(r.location().is_none());
    }
    // No hint: a confirmation page, no redirect, and the session lives until confirmed.
    let r = b
        .get(&format!(
            "/logout?client_id={}&post_logout_redirect_uri={}",
            app.id,
            enc(LOGOUT_REDIRECT)
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.location().is_none());
    assert!(r.body.contains("action=\"/logout\""));
    assert_eq!(server.sessions_of("ada@example.com").await.len(), 1);
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );

    // A valid hint for the signed-in person: signed out, back to the registered URI with state.
    let old_cookie = b.session_cookie().unwrap();
    let r = b.get(&logout(&id_token, LOGOUT_REDIRECT)).await;
    assert_eq!(
        r.location(),
        Some(format!("{LOGOUT_REDIRECT}?state=bye").as_str())
    );
    assert!(server.sessions_of("ada@example.com").await.is_empty());
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // The old cookie is dead.
    let mut replay = server.browser();
    replay
        .cookies
        .insert("__Host-gh_session".into(), old_cookie);
    assert_eq!(replay.get("/account").await.location(), Some("/sign-in"));
}

// ---------------------------------------------------------------- keys (D9)

#[tokio::test]
async fn rotated_keys_keep_earlier_tokens_verifiable_until_they_expire() {
    let (server, app, mut b) = setup().await;
    let mut eddsa = web_app("Ed");
    eddsa.id_token_alg = Some("EdDSA".into());
    let ed = register(&server, eddsa).await;
    let mut rsa = web_app("Rsa");
    rsa.id_token_alg = Some("RS256".into());
    let rs = register(&server, rsa).await;
    let mut tokens = Vec::new();
    for client in [&app, &ed, &rs] {
        let (code, verifier) = code_for(&mut b, client, &[]).await;
        let (_, t) = exchange(&server, client, &code, &verifier).await;
        let token = t["id_token"].as_str().unwrap().to_string();
        verify_id_token(&server, client, &token, "n-456").await;
        tokens.push((client.clone(), token));
    }
    let kid = |token: &str| -> String {
        let h: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        h["kid"].as_str().unwrap().to_string()
    };
    let old_kids: Vec<String> = tokens.iter().map(|(_, t)| kid(t)).collect();

    let new_kids = server
        .state
        .identity
        .rotate_signing_keys(server.state.now())
        .await
        .unwrap();
    let published: Vec<String> = jwks(&server).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    for k in old_kids.iter().chain(&new_kids) {
        assert!(published.contains(k), "{k} published");
    }
    for (client, token) in &tokens {
        verify_id_token(&server, client, token, "n-456").await;
    }
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    let new_token = t["id_token"].as_str().unwrap();
    assert!(
        new_kids.contains(&kid(new_token)),
        "new tokens use the new key"
    );
    verify_id_token(&server, &app, new_token, "n-456").await;

    server.clock.advance_ms(RETIRED_KEY_PUBLISHED_MS + 1_000);
    let published: Vec<String> = jwks(&server).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    for k in &old_kids {
        assert!(!published.contains(k), "{k} retired");
    }
    assert_eq!(published.len(), 3);
}

#[tokio::test]
async fn the_provider_works_the_same_on_postgres() {
    let Some(base) = gatehouse_core::store::testing::postgres_url() else {
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    };
    let url = gatehouse_core::store::testing::fresh_postgres_url(&base)
        .await
        .unwrap();
    let server = TestServer::start_with(url).await;
    let app = register(&server, web_app("Web shop")).await;
    let mut b = server.signed_up("Pg", "pg@example.com", PASSWORD).await;
    // Code reuse, concurrent redemptions and refresh rotation hold on PostgreSQL too.
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let server = Arc::new(server);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (server, app, code, verifier) =
                (server.clone(), app.clone(), code.clone(), verifier.clone());
            tokio::spawn(async move { exchange(&server, &app, &code, &verifier).await })
        })
        .collect();
    let mut ok = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == StatusCode::OK {
            ok.push(body);
        }
    }
    assert_eq!(ok.len(), 1);
    assert_eq!(
        userinfo(&server, ok[0]["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t1) = exchange(&server, &app, &code, &verifier).await;
    verify_id_token(&server, &app, t1["id_token"].as_str().unwrap(), "n-456").await;
    let rt1 = t1["refresh_token"].as_str().unwrap();
    let (_, t2) = refresh(&server, &app, rt1).await;
    assert_eq!(refresh(&server, &app, rt1).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        refresh(&server, &app, t2["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn people_see_the_applications_with_access_and_remove_them() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(
        &mut b,
        &app,
        &[("scope", Some("openid email offline_access"))],
    )
    .await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    let page = b.get("/account").await;
    assert!(page.body.contains("Applications with access"));
    assert!(page.body.contains("Web shop"));
    assert!(page.body.contains("See your email address"));
    let r = b
        .post(&format!("/account/apps/{}/remove", app.id), &[])
        .await;
    assert_eq!(r.location(), Some("/account?notice=app_removed"));
    assert_eq!(
        refresh(&server, &app, t["refresh_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(server
        .audit_actions("ada@example.com")
        .await
        .contains(&"oauth.access_removed".to_string()));
    let page = b.get("/account").await;
    assert!(page
        .body
        .contains("No application has access to your account."));
    // Another person's browser cannot remove it for them.
    let mut other = server.signed_up("Eve", "eve@example.com", PASSWORD).await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, t) = exchange(&server, &app, &code, &verifier).await;
    other
        .post(&format!("/account/apps/{}/remove", app.id), &[])
        .await;
    assert_eq!(
        userinfo(&server, t["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- back-channel logout (C5, D11)

/// An application's back-channel logout endpoint on loopback: every body it receives.
async fn logout_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let router = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://127.0.0.1:{port}/backchannel"), rx)
}

async fn next_logout_token(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a logout token arrives")
        .unwrap();
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("the body carries logout_token")
}

#[tokio::test]
async fn ending_a_session_sends_logout_tokens_to_the_applications_that_used_it() {
    let (server, plain, mut b) = setup().await;
    let (uri, mut rx) = logout_receiver().await;
    let mut input = web_app("Listening app");
    input.backchannel_logout_uri = Some(uri);
    let listening = register(&server, input).await;
    let d: Value = serde_json::from_str(
        &reqwest::get(format!("{}/.well-known/openid-configuration", server.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);

    for how in ["portal sign-out", "RP-initiated logout"] {
        let mut b2 = server.browser();
        let r = b2.sign_in_with_password("ada@example.com", PASSWORD).await;
        assert_eq!(r.location(), Some("/account"));
        let (code, verifier) = code_for(&mut b2, &listening, &[]).await;
        let (_, t) = exchange(&server, &listening, &code, &verifier).await;
        let id_token = t["id_token"].as_str().unwrap().to_string();
        let id_claims = verify_id_token(&server, &listening, &id_token, "n-456").await;
        // Another application without a back-channel URI is not called.
        code_for(&mut b2, &plain, &[]).await;

        if how == "portal sign-out" {
            b2.post("/sign-out", &[]).await;
        } else {
            let r = b2
                .get(&format!("/logout?id_token_hint={}", enc(&id_token)))
                .await;
            assert_eq!(r.status, StatusCode::OK, "signed out: {}", r.body);
        }
        let token = next_logout_token(&mut rx).await;
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["typ"], "logout+jwt", "{how}");
        let key = server
            .state
            .identity
            .signing_key(gatehouse_core::jws::Alg::Es256, server.state.now())
            .await
            .unwrap();
        let claims = key.verify(&token).expect("signed with the published key");
        assert_eq!(claims["iss"], server.base);
        assert_eq!(claims["aud"], listening.id);
        assert_eq!(claims["sub"], id_claims["sub"]);
        assert_eq!(
            claims["sid"], id_claims["sid"],
            "{how}: the session that ended"
        );
        assert!(claims["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some());
        assert!(claims.get("nonce").is_none());
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!((1..=120).contains(&lifetime), "{lifetime}");
    }
    // Only the listening application was told, once per session.
    assert!(rx.try_recv().is_err());
    let _ = b.get("/account").await;
}

#[tokio::test]
async fn ending_sessions_from_the_account_page_tells_the_applications_too() {
    let (server, _, mut b) = setup().await;
    let (uri, mut rx) = logout_receiver().await;
    let mut input = web_app("Listening app");
    input.backchannel_logout_uri = Some(uri);
    let listening = register(&server, input).await;
    let mut phone = server.browser();
    phone
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    let (code, verifier) = code_for(&mut phone, &listening, &[]).await;
    let (_, t) = exchange(&server, &listening, &code, &verifier).await;
    let claims = verify_id_token(
        &server,
        &listening,
        t["id_token"].as_str().unwrap(),
        "n-456",
    )
    .await;
    // The laptop signs the phone's session out.
    let r = b
        .post(
            &format!(
                "/account/sessions/{}/sign-out",
                claims["sid"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(r.location(), Some("/account?notice=session_revoked"));
    let token = next_logout_token(&mut rx).await;
    let key = server
        .state
        .identity
        .signing_key(gatehouse_core::jws::Alg::Es256, server.state.now())
        .await
        .unwrap();
    assert_eq!(key.verify(&token).unwrap()["sid"], claims["sid"]);
    assert!(rx.try_recv().is_err(), "only the session that ended");
}

// ---------------------------------------------------------------- repairs from the review

/// Adds an authenticator app to the signed-in browser's account through the pages; returns its
/// secret. The clock moves past the step used to confirm it.
async fn add_authenticator(
    server: &TestServer,
    b: &mut Browser,
) -> gatehouse_core::totp::TotpSecret {
    let r = b.post("/account/security/authenticator", &[]).await;
    let location = target(&r).unwrap();
    let page = b.get(&location).await;
    let start = page.body.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let end = start + page.body[start..].find('<').unwrap();
    let secret = gatehouse_core::totp::TotpSecret::from_bytes(
        gatehouse_core::totp::base32_decode(&page.body[start..end]).unwrap(),
    );
    let code = totp_now(server, &secret);
    let r = b
        .post(&format!("{location}/confirm"), &[("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    server.clock.advance_ms(31_000);
    secret
}

fn totp_now(server: &TestServer, secret: &gatehouse_core::totp::TotpSecret) -> String {
    let step = gatehouse_core::totp::step_at(server.state.now() / 1000);
    gatehouse_core::totp::code_for_step(secret, step)
}

fn amr_of(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Signs in with `password` in a new browser that is on its way to the application.
async fn password_sign_in_for(
    server: &TestServer,
    app: &App,
    (email, password): (&str, &str),
    changes: &[(&str, Option<&str>)],
) -> (Browser, String, Reply) {
    let mut b = server.browser();
    let (verifier, challenge) = pkce();
    let r = b.get(&authorize_url(app, &challenge, changes)).await;
    assert_eq!(r.location(), Some("/sign-in"), "{}", r.body);
    let r = b.sign_in_with_password(email, password).await;
    let r = follow(&mut b, r).await;
    (b, verifier, r)
}

#[tokio::test]
async fn with_mfa_required_no_code_and_no_console_page_before_a_second_factor_is_added() {
    let (server, app, mut b) = setup().await;
    server
        .state
        .identity
        .set_mfa_policy(
            gatehouse_core::identity::MfaPolicy { require_mfa: true },
            server.state.now(),
        )
        .await
        .unwrap();
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_url(
            &app,
            &challenge,
            &[("prompt", Some("none"))],
        ))
        .await;
    let location = target(&r).unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("interaction_required")
    );
    assert!(query_param(&location, "code").is_none());

    let (verifier, challenge) = pkce();
    let r = b.get(&authorize_url(&app, &challenge, &[])).await;
    assert_eq!(r.location(), Some("/account/security?notice=mfa_required"));
    let r = b.get("/account").await;
    let r = follow(&mut b, r).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        target(&r).is_none_or(|t| !t.starts_with(REDIRECT)),
        "no code"
    );

    // The console asks for the same first.
    server
        .state
        .identity
        .create_admin("ada@example.com", "Ada", server.state.now())
        .await
        .unwrap();
    assert_eq!(
        b.get("/admin").await.location(),
        Some("/account/security?notice=mfa_required")
    );

    // Once an app is added the request goes on to the application.
    let r = b.post("/account/security/authenticator", &[]).await;
    let location = target(&r).unwrap();
    let page = b.get(&location).await;
    let start = page.body.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let end = start + page.body[start..].find('<').unwrap();
    let secret = gatehouse_core::totp::TotpSecret::from_bytes(
        gatehouse_core::totp::base32_decode(&page.body[start..end]).unwrap(),
    );
    let r = b
        .post(
            &format!("{location}/confirm"),
            &[("code", &totp_now(&server, &secret))],
        )
        .await;
    let r = follow(&mut b, r).await;
    let back = target(&r).unwrap_or_else(|| panic!("{} {}", r.status, r.body));
    let code = query_param(&back, "code").expect("a code once a second factor exists");
    let (status, _) = exchange(&server, &app, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b.get("/admin").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_application_asking_for_multifactor_never_gets_a_single_factor_code() {
    let (server, app, mut b) = setup().await;
    let acr = ("acr_values", Some("urn:gatehouse:acr:mfa"));
    // The signed-in session proved one factor: silently, the answer is interaction_required.
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_url(
            &app,
            &challenge,
            &[acr, ("prompt", Some("none"))],
        ))
        .await;
    let location = target(&r).unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("interaction_required")
    );

    // Interactively, a second factor is asked for: the account has none, so after a password
    // the mailbox is the second factor, recorded as `email`.
    let (mut b, verifier, r) =
        password_sign_in_for(&server, &app, ("ada@example.com", PASSWORD), &[acr]).await;
    assert!(
        r.body.contains("Two-step verification"),
        "{} {}",
        r.status,
        r.body
    );
    assert!(target(&r).is_none(), "no code yet");
    assert!(r.body.contains("Email me a code instead"));
    b.post("/sign-in/verify/email", &[]).await;
    let emailed = server.last_code("ada@example.com").await;
    let r = b.post("/sign-in/verify", &[("code", &emailed)]).await;
    let r = follow(&mut b, r).await;
    let code = query_param(&target(&r).unwrap(), "code").expect("a code after the second factor");
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let claims =
        verify_id_token(&server, &app, tokens["id_token"].as_str().unwrap(), "n-456").await;
    assert_eq!(amr_of(&claims), vec!["pwd", "email", "mfa"]);
    assert_eq!(claims["acr"], "urn:gatehouse:acr:mfa");
    let sessions = server.sessions_of("ada@example.com").await;
    assert!(
        sessions.iter().all(|s| s.amr != "pwd"),
        "the single-factor session was replaced: {:?}",
        sessions.iter().map(|s| &s.amr).collect::<Vec<_>>()
    );

    // With an authenticator app, that is the second factor.
    let secret = add_authenticator(&server, &mut b).await;
    let (mut b2, verifier, r) =
        password_sign_in_for(&server, &app, ("ada@example.com", PASSWORD), &[acr]).await;
    assert!(r.body.contains("Two-step verification"));
    assert!(!r.body.contains("Email me a code instead"));
    let r = b2
        .post("/sign-in/verify", &[("code", &totp_now(&server, &secret))])
        .await;
    let r = follow(&mut b2, r).await;
    let code = query_param(&target(&r).unwrap(), "code").unwrap();
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let claims =
        verify_id_token(&server, &app, tokens["id_token"].as_str().unwrap(), "n-456").await;
    assert_eq!(amr_of(&claims), vec!["pwd", "otp", "mfa"]);
}

#[tokio::test]
async fn after_a_password_reset_the_mailbox_is_no_second_factor_for_a_week() {
    let (server, app, _) = setup().await;
    let acr = ("acr_values", Some("urn:gatehouse:acr:mfa"));
    // Whoever controls the mailbox resets the password...
    let mut b = server.browser();
    b.post("/reset", &[("email", "ada@example.com")]).await;
    let code = server.last_code("ada@example.com").await;
    b.post("/code", &[("code", &code)]).await;
    let r = b
        .post(
            "/reset/new-password",
            &[("password", "reset-by-mailbox-2026")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // ...and then cannot use it as the second factor: the account must add a real one.
    let account = ("ada@example.com", "reset-by-mailbox-2026");
    let (mut b, _, r) = password_sign_in_for(&server, &app, account, &[acr]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("needs two-step verification"),
        "sent to add a method: {}",
        r.body
    );
    assert!(target(&r).is_none(), "no code");
    assert!(b
        .post("/sign-in/verify/email", &[])
        .await
        .status
        .is_client_error());
    // A week later, password plus mailbox counts again.
    server
        .clock
        .advance_ms(gatehouse_core::identity::EMAIL_FACTOR_AFTER_RESET_MS + 1);
    let (_, _, r) = password_sign_in_for(&server, &app, account, &[acr]).await;
    assert!(r.body.contains("Email me a code instead"), "{}", r.body);
}

#[tokio::test]
async fn a_client_never_learns_about_another_clients_tokens_by_introspection() {
    let (server, app, mut b) = setup().await;
    let other = register(&server, web_app("Other shop")).await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    for token in [&tokens["access_token"], &tokens["refresh_token"]] {
        let ask = |who: &App| {
            reqwest::Client::new()
                .post(format!("{}/introspect", server.base))
                .basic_auth(&who.id, who.secret.as_deref())
                .form(&[("token", token.as_str().unwrap())])
                .send()
        };
        let theirs: Value =
            serde_json::from_str(&ask(&other).await.unwrap().text().await.unwrap()).unwrap();
        assert_eq!(theirs, serde_json::json!({ "active": false }));
        let own: Value =
            serde_json::from_str(&ask(&app).await.unwrap().text().await.unwrap()).unwrap();
        assert_eq!(own["active"], true);
    }
}

#[tokio::test]
async fn refreshing_never_keeps_an_idle_browser_session_alive() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let (code, verifier) =
        code_for(&mut b, &app, &[("scope", Some("openid offline_access"))]).await;
    let (_, offline) = exchange(&server, &app, &code, &verifier).await;
    // Within the idle limit (an hour) the application refreshes.
    server.clock.advance_ms(50 * 60 * 1000);
    let (status, tokens) = refresh(&server, &app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // The browser did nothing for 65 minutes: its session is over, whatever the application did.
    server.clock.advance_ms(15 * 60 * 1000);
    assert_eq!(b.get("/account").await.location(), Some("/sign-in"));
    let (status, body) = refresh(&server, &app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = userinfo(&server, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // offline_access outlives the session, as documented.
    let (status, _) = refresh(&server, &app, offline["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_grant_is_live_only_once_its_code_is_redeemed() {
    let (server, app, mut b) = setup().await;
    let user = server.user("ada@example.com").await;
    // A cross-site GET of /authorize for a signed-in person makes codes nobody redeems.
    for _ in 0..5 {
        code_for(&mut b, &app, &[]).await;
    }
    let connected = server
        .state
        .identity
        .connected_applications(&user.id, server.state.now())
        .await
        .unwrap();
    assert!(connected.is_empty(), "unredeemed codes give no access");
    server.clock.advance_ms(61_000);
    let live = server
        .store
        .live_grants_of_user(&user.id, server.state.now())
        .await
        .unwrap()
        .len();
    assert_eq!(live, 0);
    // A redeemed code's grant lives for its refresh tokens (30 days at most).
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let connected = server
        .state
        .identity
        .connected_applications(&user.id, server.state.now())
        .await
        .unwrap();
    assert_eq!(connected.len(), 1);
    server.clock.advance_ms(10 * 60 * 1000);
    b.get("/account").await;
    let (status, _) = refresh(&server, &app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the grant outlives its code");
}

#[tokio::test]
async fn applications_see_the_new_email_after_an_email_change() {
    let (server, app, mut b) = setup().await;
    let (code, verifier) = code_for(&mut b, &app, &[]).await;
    let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (_, before) = userinfo(&server, &access).await;
    assert_eq!(before["email"], "ada@example.com");
    b.post("/account/email", &[("email", "ada.new@example.com")])
        .await;
    let emailed = server.last_code("ada.new@example.com").await;
    let r = b.post("/account/email/verify", &[("code", &emailed)]).await;
    assert_eq!(r.location(), Some("/account?notice=email_changed"));
    let (_, after) = userinfo(&server, &access).await;
    assert_eq!(after["email"], "ada.new@example.com");
    assert_eq!(after["sub"], before["sub"], "the same account");
    let (status, refreshed) =
        refresh(&server, &app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let claims =
        verify_id_token_with(&server, &app, refreshed["id_token"].as_str().unwrap(), None).await;
    assert_eq!(claims["email"], "ada.new@example.com");
}

#[tokio::test]
async fn every_answer_to_an_application_from_a_session_is_in_the_sign_in_log() {
    let (server, app, mut b) = setup().await;
    code_for(&mut b, &app, &[]).await;
    let row = last_log(&server).await;
    assert_eq!(
        (
            row.method.as_str(),
            row.result.as_str(),
            row.application.as_str()
        ),
        ("sso", "success", app.id.as_str())
    );
    assert!(row.session_id.is_some());
    let (_, challenge) = pkce();
    b.get(&authorize_url(
        &app,
        &challenge,
        &[
            ("acr_values", Some("urn:gatehouse:acr:mfa")),
            ("prompt", Some("none")),
        ],
    ))
    .await;
    let row = last_log(&server).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("sso", "failure")
    );
    assert_eq!(row.failure_reason.as_deref(), Some("interaction_required"));
    b.get(&authorize_url(
        &app,
        &challenge,
        &[("acr_values", Some("urn:gatehouse:acr:mfa"))],
    ))
    .await;
    let row = last_log(&server).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("sso", "interrupted")
    );
    // A session too old for the request is logged too.
    b.get(&authorize_url(
        &app,
        &challenge,
        &[("max_age", Some("0")), ("prompt", Some("none"))],
    ))
    .await;
    let row = last_log(&server).await;
    assert_eq!(
        (
            row.method.as_str(),
            row.result.as_str(),
            row.failure_reason.as_deref()
        ),
        ("sso", "failure", Some("login_required"))
    );
    server.clock.advance_ms(1_000);
    b.get(&authorize_url(
        &app,
        &challenge,
        &[("prompt", Some("login"))],
    ))
    .await;
    let row = last_log(&server).await;
    assert_eq!(
        (
            row.method.as_str(),
            row.result.as_str(),
            row.failure_reason.as_deref()
        ),
        ("sso", "interrupted", Some("reauthentication_required"))
    );
}

#[tokio::test]
async fn every_way_a_session_ends_tells_the_applications_that_used_it() {
    let server = TestServer::start().await;
    let (uri, mut rx) = logout_receiver().await;
    let mut input = web_app("Listening app");
    input.backchannel_logout_uri = Some(uri);
    let app = register(&server, input).await;
    let admin_email = "boss@example.com";
    server
        .state
        .identity
        .create_admin(admin_email, "Boss", server.state.now())
        .await
        .unwrap();
    let mut admin = server.browser();
    admin.post("/sign-in/code", &[("email", admin_email)]).await;
    let code = server.last_code(admin_email).await;
    admin.post("/code", &[("code", &code)]).await;

    let mut n = 0;
    // Each case signs a fresh account in at the application, then ends the session one way.
    for way in [
        "password change",
        "password reset",
        "method removed",
        "admin ends sessions",
        "admin disables",
        "admin resets MFA",
        "admin requires a password reset",
        "account deleted",
    ] {
        n += 1;
        let email = format!("ends{n}@example.com");
        let mut b = server.signed_up("Ending", &email, PASSWORD).await;
        let secret = if way == "method removed" {
            let secret = add_authenticator(&server, &mut b).await;
            // Sign in again with the app so the session is completed with it.
            let mut again = server.browser();
            again.sign_in_with_password(&email, PASSWORD).await;
            again
                .post("/sign-in/verify", &[("code", &totp_now(&server, &secret))])
                .await;
            b = again;
            Some(secret)
        } else {
            None
        };
        let (code, verifier) = code_for(&mut b, &app, &[]).await;
        let (_, tokens) = exchange(&server, &app, &code, &verifier).await;
        let claims =
            verify_id_token(&server, &app, tokens["id_token"].as_str().unwrap(), "n-456").await;
        let user = server.user(&email).await;
        let action = |a: &str| format!("/admin/users/{}/{a}", user.id);
        match way {
            "password change" => {
                // Another session changes the password: this one ends.
                let mut other = server.browser();
                other.sign_in_with_password(&email, PASSWORD).await;
                let r = other
                    .post(
                        "/account/password",
                        &[
                            ("current_password", PASSWORD),
                            ("new_password", "a-new-password-2026"),
                        ],
                    )
                    .await;
                assert_eq!(
                    r.location(),
                    Some("/account?notice=password_changed"),
                    "{}",
                    r.body
                );
            }
            "password reset" => {
                let mut other = server.browser();
                other.post("/reset", &[("email", &email)]).await;
                let code = server.last_code(&email).await;
                other.post("/code", &[("code", &code)]).await;
                other
                    .post(
                        "/reset/new-password",
                        &[("password", "reset-password-2026x")],
                    )
                    .await;
            }
            "method removed" => {
                let id = server.store.list_totp(&user.id).await.unwrap()[0]
                    .id
                    .clone();
                let r = b
                    .post(&format!("/account/security/authenticator/{id}/remove"), &[])
                    .await;
                assert_eq!(r.location(), Some("/sign-in"), "{}", r.body);
                let _ = secret;
            }
            "admin ends sessions" => {
                admin.post(&action("revoke-sessions"), &[]).await;
            }
            "admin disables" => {
                admin.post(&action("disable"), &[]).await;
            }
            "admin resets MFA" => {
                admin.post(&action("reset-mfa"), &[]).await;
            }
            "admin requires a password reset" => {
                admin.post(&action("require-password-reset"), &[]).await;
            }
            "account deleted" => {
                let r = b.post("/account/delete", &[("confirmation", &email)]).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            }
            other => panic!("no way called {other}"),
        }
        eprintln!("waiting for the logout token after: {way}");
        let token = next_logout_token(&mut rx).await;
        let key = server
            .state
            .identity
            .signing_key(gatehouse_core::jws::Alg::Es256, server.state.now())
            .await
            .unwrap();
        let logout = key.verify(&token).unwrap();
        assert_eq!(logout["sid"], claims["sid"], "{way}");
        assert_eq!(logout["sub"], claims["sub"], "{way}");
        while rx.try_recv().is_ok() {}
    }
}
