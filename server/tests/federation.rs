//! Sign-in through other providers, against a local OpenID Connect provider double: the happy
//! paths (sign-up, sign-in again, finishing a sign-up, linking, unlinking) and every refusal
//! (SECURITY.md E1-E6): forged and wrong ID tokens, callback CSRF and replay, mix-up, keying on
//! (issuer, subject), linking without takeover, and a provider that does not answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::idp::{
    add_provider, person, provider_input, round_trip, sign_in_via, urlencode, Forge, Idp,
    CLIENT_SECRET,
};
use common::{TestServer, PASSWORD};
use gatehouse_core::identity::{Endpoints, ProviderInput, ProviderKind};
use gatehouse_core::secret::SecretString;
use reqwest::StatusCode;
use serde_json::json;

/// A server (provider calls time out after 1 s) with the double configured as "idp".
async fn setup() -> (TestServer, Idp) {
    let idp = Idp::start().await;
    let server =
        TestServer::start_with_settings(&[("GATEHOUSE_PROVIDER_TIMEOUT_SECONDS", "1".into())])
            .await;
    add_provider(&server, "idp", "Example ID", &idp).await;
    (server, idp)
}

async fn count(server: &TestServer, table: &str) -> i64 {
    server
        .counts()
        .await
        .into_iter()
        .find(|(t, _)| t == table)
        .unwrap()
        .1
}

async fn last_log(server: &TestServer) -> (String, String, Option<String>) {
    let row = server
        .store
        .recent_sign_ins(1)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a sign-in log row");
    (row.method, row.result, row.failure_reason)
}

#[tokio::test]
async fn a_verified_identity_signs_up_and_signs_in_again() {
    let (server, idp) = setup().await;
    // The buttons show on the sign-in and sign-up pages.
    let mut b = server.browser();
    for page in ["/sign-in", "/sign-up"] {
        let r = b.get(page).await;
        assert!(r.body.contains("Continue with Example ID"), "{page}");
        assert!(r.body.contains("action=\"/sign-in/external/idp\""));
    }
    person(
        &idp,
        "sub-ada",
        Some("Ada@Example.com"),
        Some(true),
        Some("Ada Lovelace"),
    );
    let r = sign_in_via(&server, &mut b, "idp").await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert!(b.session_cookie().is_some());
    let user = server.user("ada@example.com").await;
    assert_eq!(user.display_name, "Ada Lovelace");
    assert!(user.password_hash.is_none());
    assert_eq!(
        last_log(&server).await,
        ("sign_up_federated".into(), "success".into(), None)
    );
    let sessions = server.sessions_of("ada@example.com").await;
    assert_eq!(sessions[0].amr, "fed");
    assert!(server
        .audit_actions("ada@example.com")
        .await
        .contains(&"federation.linked".to_string()));

    // Again, from another browser: the same account, by (issuer, subject).
    let mut again = server.browser();
    let r = sign_in_via(&server, &mut again, "idp").await;
    assert_eq!(r.location(), Some("/account"));
    assert_eq!(count(&server, "users").await, 1);
    assert_eq!(count(&server, "external_identities").await, 1);
    assert_eq!(
        last_log(&server).await,
        ("federated".into(), "success".into(), None)
    );
    // The security page lists the link.
    let r = again.get("/account/security").await;
    assert!(r.body.contains("Linked accounts"));
    assert!(r.body.contains("Example ID (ada@example.com)"));
}

#[tokio::test]
async fn forged_and_wrong_id_tokens_are_refused_and_create_nothing() {
    let (server, idp) = setup().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    type Case = (&'static str, Box<dyn Fn(&mut common::idp::Scenario)>);
    let cases: Vec<Case> = vec![
        (
            "bad signature",
            Box::new(|s| s.forge = Some(Forge::BadSignature)),
        ),
        ("alg none", Box::new(|s| s.forge = Some(Forge::AlgNone))),
        (
            "unknown kid",
            Box::new(|s| s.forge = Some(Forge::UnknownKid)),
        ),
        (
            "hmac with the public key",
            Box::new(|s| s.forge = Some(Forge::HmacWithPublicKey)),
        ),
        (
            "wrong iss",
            Box::new(|s| {
                s.claims
                    .insert("iss".into(), json!("https://other-issuer.example"));
            }),
        ),
        (
            "wrong aud",
            Box::new(|s| {
                s.claims.insert("aud".into(), json!("another-client"));
            }),
        ),
        (
            "expired",
            Box::new(move |s| {
                s.claims.insert("exp".into(), json!(now - 120));
                s.claims.insert("iat".into(), json!(now - 900));
            }),
        ),
        (
            "issued in the future",
            Box::new(move |s| {
                s.claims.insert("iat".into(), json!(now + 600));
                s.claims.insert("exp".into(), json!(now + 900));
            }),
        ),
        (
            "nonce mismatch",
            Box::new(|s| {
                s.claims
                    .insert("nonce".into(), json!("someone-elses-nonce"));
            }),
        ),
        ("missing nonce", Box::new(|s| s.remove.push("nonce"))),
        ("missing sub", Box::new(|s| s.remove.push("sub"))),
    ];
    for (name, modify) in cases {
        person(
            &idp,
            &format!("sub-{name}"),
            Some("eve@example.com"),
            Some(true),
            Some("Eve"),
        );
        idp.set(|s| modify(s));
        let mut b = server.browser();
        let r = sign_in_via(&server, &mut b, "idp").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{name}: {}", r.body);
        assert!(
            r.body.contains("Example ID could not sign you in"),
            "{name}"
        );
        assert!(b.session_cookie().is_none(), "{name}");
        assert_eq!(count(&server, "users").await, 0, "{name}");
        assert_eq!(count(&server, "external_identities").await, 0, "{name}");
        assert_eq!(
            last_log(&server).await,
            (
                "federated".into(),
                "failure".into(),
                Some("provider_response_invalid".into())
            ),
            "{name}"
        );
    }
    // An unknown kid made the keys be fetched again (rotation), and still nothing passed.
    assert!(idp.jwks_fetches() >= 2);
}

#[tokio::test]
async fn rotated_signing_keys_are_fetched_again() {
    let (server, idp) = setup().await;
    person(
        &idp,
        "sub-rot",
        Some("rot@example.com"),
        Some(true),
        Some("Rot"),
    );
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp").await.location(),
        Some("/account")
    );
    let fetches = idp.jwks_fetches();
    idp.rotate("key-2", true);
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp").await.location(),
        Some("/account")
    );
    assert_eq!(idp.jwks_fetches(), fetches + 1);
}

#[tokio::test]
async fn callbacks_are_single_use_and_bound_to_the_browser() {
    let (server, idp) = setup().await;
    person(
        &idp,
        "sub-csrf",
        Some("victim@example.com"),
        Some(true),
        Some("Victim"),
    );

    // Without the round-trip cookie (another browser, or a forged link): refused.
    let mut attacker = server.browser();
    let callback = round_trip(&server, &mut attacker, "/sign-in/external/idp").await;
    let mut victim = server.browser();
    let r = victim.get(&callback).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("expired or was already used"));
    assert!(victim.session_cookie().is_none());

    // Another browser's state with this browser's cookie: refused.
    let mut a = server.browser();
    let a_callback = round_trip(&server, &mut a, "/sign-in/external/idp").await;
    let mut b = server.browser();
    let _b_callback = round_trip(&server, &mut b, "/sign-in/external/idp").await;
    let r = b.get(&a_callback).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&server, "users").await, 0);

    // Missing state: refused.
    let mut c = server.browser();
    let c_callback = round_trip(&server, &mut c, "/sign-in/external/idp").await;
    let without_state: String = c_callback
        .split(['?', '&'])
        .filter(|p| !p.starts_with("state="))
        .collect::<Vec<_>>()
        .join("&")
        .replacen('&', "?", 1);
    let r = c.get(&without_state).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&server, "users").await, 0);

    // The right browser with its own answer: signed in, once.
    let cookies_before_callback = a.cookies.clone();
    assert!(cookies_before_callback
        .keys()
        .any(|k| k.ends_with("gh_ext")));
    let r = a.get(&a_callback).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let sessions = server.sessions_of("victim@example.com").await.len();
    let mut replay = server.browser();
    replay.cookies = cookies_before_callback;
    let before = server.counts().await;
    let r = replay.get(&a_callback).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a replayed callback is refused"
    );
    assert_eq!(
        server.sessions_of("victim@example.com").await.len(),
        sessions
    );
    assert_eq!(
        server.counts().await,
        before,
        "a dead callback writes nothing"
    );
}

#[tokio::test]
async fn responses_naming_another_issuer_are_refused() {
    let (server, idp) = setup().await;
    person(
        &idp,
        "sub-mix",
        Some("mix@example.com"),
        Some(true),
        Some("Mix"),
    );
    let mut b = server.browser();
    let callback = round_trip(&server, &mut b, "/sign-in/external/idp").await;
    let mixed = callback.replace(
        &format!("iss={}", urlencode(&idp.base)),
        &format!("iss={}", urlencode("https://idp-b.example")),
    );
    assert_ne!(mixed, callback);
    let r = b.get(&mixed).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(count(&server, "users").await, 0);
    // The double promises `iss` (RFC 9207): an answer without it is refused too.
    let mut b = server.browser();
    let callback = round_trip(&server, &mut b, "/sign-in/external/idp").await;
    let without_iss = callback.replace(&format!("&iss={}", urlencode(&idp.base)), "");
    assert_ne!(without_iss, callback);
    let r = b.get(&without_iss).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(count(&server, "users").await, 0);
    assert_eq!(
        idp.state.token_calls.lock().unwrap().clone(),
        0,
        "no code was redeemed"
    );
}

#[tokio::test]
async fn identities_are_keyed_by_issuer_and_subject() {
    let (server, idp) = setup().await;
    let idp_b = Idp::start().await;
    add_provider(&server, "idp-b", "Other ID", &idp_b).await;
    person(
        &idp,
        "same-sub",
        Some("first@example.com"),
        Some(true),
        Some("First"),
    );
    person(
        &idp_b,
        "same-sub",
        Some("second@example.com"),
        Some(true),
        Some("Second"),
    );
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp").await.location(),
        Some("/account")
    );
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp-b").await.location(),
        Some("/account")
    );
    // The same `sub` at two issuers is two people.
    assert_eq!(count(&server, "users").await, 2);
    assert_eq!(server.sessions_of("first@example.com").await.len(), 1);
    assert_eq!(server.sessions_of("second@example.com").await.len(), 1);

    // The same verified email at another issuer does not enter the account.
    person(
        &idp_b,
        "other-sub",
        Some("first@example.com"),
        Some(true),
        Some("Impostor"),
    );
    let mut b = server.browser();
    let r = sign_in_via(&server, &mut b, "idp-b").await;
    assert_eq!(r.location(), Some("/sign-in/link"));
    assert!(b.session_cookie().is_none());
    assert_eq!(server.sessions_of("first@example.com").await.len(), 1);
    assert_eq!(count(&server, "external_identities").await, 2);
    assert_eq!(
        last_log(&server).await,
        (
            "federated".into(),
            "interrupted".into(),
            Some("account_link_required".into())
        )
    );
}

#[tokio::test]
async fn linking_to_an_existing_account_needs_the_account_proven() {
    let (server, idp) = setup().await;
    server
        .signed_up("Alice", "alice@example.com", PASSWORD)
        .await;

    // An unverified (or absent) email flag never links: the person must prove an address.
    for verified in [Some(false), None] {
        person(
            &idp,
            "sub-alice",
            Some("alice@example.com"),
            verified,
            Some("Alice"),
        );
        let mut b = server.browser();
        let r = sign_in_via(&server, &mut b, "idp").await;
        assert_eq!(
            r.location(),
            Some("/sign-in/external/finish"),
            "{verified:?}"
        );
        let r = b.get("/sign-in/external/finish").await;
        assert!(r.body.contains("Finish creating your account"));
        assert!(
            r.body.contains("value=\"alice@example.com\""),
            "the unproven email is only a suggestion"
        );
        assert!(b.session_cookie().is_none());
        assert_eq!(server.sessions_of("alice@example.com").await.len(), 1);
    }
    assert_eq!(count(&server, "external_identities").await, 0);

    // A verified email: the link waits until the account is proven in this browser.
    person(
        &idp,
        "sub-alice",
        Some("alice@example.com"),
        Some(true),
        Some("Alice"),
    );
    let mut b = server.browser();
    let r = sign_in_via(&server, &mut b, "idp").await;
    assert_eq!(r.location(), Some("/sign-in/link"));
    let r = b.get("/sign-in/link").await;
    assert!(
        r.body
            .contains("An account with alice@example.com already exists"),
        "{}",
        r.body
    );
    // Confirming without a session does nothing.
    let r = b.post("/sign-in/link", &[]).await;
    assert_eq!(r.location(), Some("/sign-in"));
    assert_eq!(count(&server, "external_identities").await, 0);
    // The password proves the account; the account page leads on to the confirmation.
    let r = b.sign_in_with_password("alice@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"));
    let r = b.get("/account").await;
    assert_eq!(r.location(), Some("/sign-in/link"));
    let r = b.get("/sign-in/link").await;
    assert!(r.body.contains("Link Example ID"), "{}", r.body);
    let r = b.post("/sign-in/link", &[]).await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=provider_linked")
    );
    assert_eq!(count(&server, "external_identities").await, 1);
    assert!(server
        .audit_actions("alice@example.com")
        .await
        .contains(&"federation.linked".to_string()));
    // From now on the provider signs Alice in.
    let mut other = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut other, "idp").await.location(),
        Some("/account")
    );
    assert_eq!(count(&server, "users").await, 1);
}

#[tokio::test]
async fn a_session_from_before_the_round_trip_cannot_confirm_a_link() {
    let (server, idp) = setup().await;
    let mut alice = server
        .signed_up("Alice", "alice@example.com", PASSWORD)
        .await;
    server
        .signed_up("Mallory", "mallory@example.com", PASSWORD)
        .await;
    // Someone signed in as Alice long ago; the provider vouches for Mallory's address.
    server.clock.advance_ms(60_000);
    person(
        &idp,
        "sub-m",
        Some("mallory@example.com"),
        Some(true),
        Some("Mallory"),
    );
    let r = sign_in_via(&server, &mut alice, "idp").await;
    assert_eq!(r.location(), Some("/sign-in/link"));
    let r = alice.get("/sign-in/link").await;
    assert!(
        r.body.contains("signed in with another account"),
        "{}",
        r.body
    );
    let r = alice.post("/sign-in/link", &[]).await;
    assert_eq!(r.location(), Some("/sign-in/link"));
    assert_eq!(count(&server, "external_identities").await, 0);
}

#[tokio::test]
async fn a_pending_sign_up_squatting_the_email_is_ended_by_the_owner() {
    let (server, idp) = setup().await;
    // The attacker starts a password sign-up with the victim's address (the code goes to the
    // victim, so the attacker cannot finish it, and it must not stay finishable).
    let mut attacker = server.browser();
    let squatter_password = "attacker-chosen-Password-9";
    let r = attacker
        .post(
            "/sign-up",
            &[
                ("name", "Squatter"),
                ("email", "victim@example.com"),
                ("password", squatter_password),
            ],
        )
        .await;
    assert_eq!(r.location(), Some("/code"));
    let code = server.last_code("victim@example.com").await;

    person(
        &idp,
        "sub-victim",
        Some("victim@example.com"),
        Some(true),
        Some("Victim"),
    );
    let mut victim = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut victim, "idp").await.location(),
        Some("/account")
    );
    // The squatted sign-up is over, even with its code...
    let r = attacker.post("/code", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // ...and the attacker's password opens nothing.
    let mut b = server.browser();
    let r = b
        .post(
            "/sign-in",
            &[
                ("email", "victim@example.com"),
                ("password", squatter_password),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(server
        .user("victim@example.com")
        .await
        .password_hash
        .is_none());
}

#[tokio::test]
async fn without_a_verified_email_the_sign_up_proves_one_by_code() {
    let (server, idp) = setup().await;
    person(&idp, "sub-noemail", None, None, None);
    let mut b = server.browser();
    let r = sign_in_via(&server, &mut b, "idp").await;
    assert_eq!(r.location(), Some("/sign-in/external/finish"));
    let r = b.get("/sign-in/external/finish").await;
    assert!(r.body.contains("for=\"name\""));
    assert!(r.body.contains("for=\"email\""));
    // Bad input keeps the form and what was typed.
    let r = b
        .post(
            "/sign-in/external/finish",
            &[("name", ""), ("email", "nobody@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("value=\"nobody@example.com\""));
    let r = b
        .post(
            "/sign-in/external/finish",
            &[("name", "Grace Hopper"), ("email", "grace@example.com")],
        )
        .await;
    assert_eq!(r.location(), Some("/code"));
    assert_eq!(
        count(&server, "users").await,
        0,
        "nothing exists before the email is proven"
    );
    let code = server.last_code("grace@example.com").await;
    let r = b.post("/code", &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(
        server.user("grace@example.com").await.display_name,
        "Grace Hopper"
    );
    assert_eq!(last_log(&server).await.0, "sign_up_federated");
    // The identity is linked: the provider signs Grace in from now on.
    let mut again = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut again, "idp").await.location(),
        Some("/account")
    );
    assert_eq!(count(&server, "users").await, 1);

    // A verified email without a name: only the name is asked.
    person(
        &idp,
        "sub-noname",
        Some("noname@example.com"),
        Some(true),
        None,
    );
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp").await.location(),
        Some("/sign-in/external/finish")
    );
    let r = b.get("/sign-in/external/finish").await;
    assert!(r.body.contains("for=\"name\""));
    assert!(!r.body.contains("for=\"email\""));
    let r = b
        .post("/sign-in/external/finish", &[("name", "No Name")])
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(
        server.user("noname@example.com").await.display_name,
        "No Name"
    );
}

#[tokio::test]
async fn provider_errors_and_cancellations_are_explained() {
    let (server, idp) = setup().await;
    person(
        &idp,
        "sub-err",
        Some("err@example.com"),
        Some(true),
        Some("Err"),
    );
    // The person cancelled at the provider.
    let mut b = server.browser();
    let callback = round_trip(&server, &mut b, "/sign-in/external/idp").await;
    let state = callback
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let r = b
        .get(&format!(
            "/sign-in/external/callback?error=access_denied&state={state}&iss={}",
            urlencode(&idp.base)
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("You cancelled signing in with Example ID"));
    assert_eq!(
        last_log(&server).await.2.as_deref(),
        Some("provider_cancelled")
    );
    // The provider reported an error.
    let mut b = server.browser();
    let callback = round_trip(&server, &mut b, "/sign-in/external/idp").await;
    let state = callback
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let r = b
        .get(&format!("/sign-in/external/callback?error=server_error&error_description=%3Cscript%3E&state={state}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(!r.body.contains("<script>"));
    // The token endpoint refused or failed.
    for (status, body) in [
        (400, json!({"error": "invalid_grant"})),
        (500, json!({"oops": true})),
    ] {
        idp.set(|s| s.token_error = Some((status, body.clone())));
        let mut b = server.browser();
        let r = sign_in_via(&server, &mut b, "idp").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{status}");
        assert!(r.body.contains("could not sign you in"));
    }
    assert_eq!(count(&server, "users").await, 0);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_times_out_without_starving_other_requests() {
    let (server, idp) = setup().await;
    person(
        &idp,
        "sub-slow",
        Some("slow@example.com"),
        Some(true),
        Some("Slow"),
    );
    idp.set(|s| s.hang_token = true);
    let mut b = server.browser();
    let callback = round_trip(&server, &mut b, "/sign-in/external/idp").await;
    let base = server.base.clone();
    let cookie = b.cookie_header();
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("{base}{callback}"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    });
    // Once the token request hangs at the provider, other routes still answer.
    while *idp.state.token_calls.lock().unwrap() == 0 {
        tokio::task::yield_now().await;
    }
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let r = pending.await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Example ID is not answering"));
    assert_eq!(
        last_log(&server).await.2.as_deref(),
        Some("provider_unavailable")
    );
    assert_eq!(count(&server, "users").await, 0);
}

#[tokio::test]
async fn users_link_and_unlink_providers_on_the_security_page() {
    let (server, idp) = setup().await;
    let mut alice = server
        .signed_up("Alice", "alice@example.com", PASSWORD)
        .await;
    let r = alice.get("/account/security").await;
    assert!(r.body.contains("Link Example ID"));
    person(
        &idp,
        "sub-alice-work",
        Some("alice@work.example"),
        Some(true),
        Some("Alice W"),
    );
    let callback = round_trip(&server, &mut alice, "/account/security/providers/idp/link").await;
    let r = alice.get(&callback).await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=provider_linked"),
        "{}",
        r.body
    );
    let linked = server
        .state
        .identity
        .linked_identities(&server.user("alice@example.com").await.id)
        .await
        .unwrap();
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].email.as_deref(), Some("alice@work.example"));
    // The provider now signs Alice in, although its email differs.
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp").await.location(),
        Some("/account")
    );
    assert_eq!(server.sessions_of("alice@example.com").await.len(), 2);

    // Someone else cannot link the same provider account.
    let mut bob = server.signed_up("Bob", "bob@example.com", PASSWORD).await;
    let callback = round_trip(&server, &mut bob, "/account/security/providers/idp/link").await;
    let r = bob.get(&callback).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(count(&server, "external_identities").await, 1);

    // Unlink: gone, audited, and the provider no longer signs Alice in.
    let r = alice
        .post(
            &format!("/account/security/linked/{}/unlink", linked[0].id),
            &[],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=provider_unlinked")
    );
    assert_eq!(count(&server, "external_identities").await, 0);
    assert!(server
        .audit_actions("alice@example.com")
        .await
        .contains(&"federation.unlinked".to_string()));
    let alice_sessions = server.sessions_of("alice@example.com").await.len();
    let mut b = server.browser();
    sign_in_via(&server, &mut b, "idp").await;
    assert_eq!(
        server.sessions_of("alice@example.com").await.len(),
        alice_sessions
    );

    // Linking needs a recent sign-in.
    server.clock.advance_ms(11 * 60 * 1000);
    let r = alice
        .post("/account/security/providers/idp/link", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get("refresh").is_none());
}

#[tokio::test]
async fn social_sign_in_asks_for_the_second_factor() {
    let (server, idp) = setup().await;
    person(
        &idp,
        "sub-2fa",
        Some("two@example.com"),
        Some(true),
        Some("Two"),
    );
    let mut b = server.browser();
    assert_eq!(
        sign_in_via(&server, &mut b, "idp").await.location(),
        Some("/account")
    );
    let user = server.user("two@example.com").await;
    let store = &server.store;
    let now = server.state.now();
    store
        .create_phone(&gatehouse_core::store::PhoneNumber {
            id: "phone-1".into(),
            user_id: user.id.clone(),
            number: "+14155550100".into(),
            created_at: now,
            verified_at: None,
            last_used_at: None,
        })
        .await
        .unwrap();
    assert!(store.verify_phone(&user.id, "phone-1", now).await.unwrap());
    let mut b = server.browser();
    let r = sign_in_via(&server, &mut b, "idp").await;
    assert_eq!(r.location(), Some("/sign-in/verify"));
    assert!(b.session_cookie().is_none());
    assert_eq!(
        last_log(&server).await,
        (
            "federated".into(),
            "interrupted".into(),
            Some("second_factor_required".into())
        )
    );
}

#[tokio::test]
async fn disabled_providers_vanish_and_secrets_stay_sealed() {
    let (server, _idp) = setup().await;
    let record = server.store.find_provider("idp").await.unwrap().unwrap();
    assert!(!record.settings.contains(CLIENT_SECRET));
    assert!(!record
        .sealed_secret
        .as_deref()
        .unwrap()
        .contains(CLIENT_SECRET));
    assert!(!format!("{record:?}").contains(record.sealed_secret.as_deref().unwrap()));
    let provider = server
        .state
        .identity
        .enabled_provider("idp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(provider.secret.as_ref().unwrap().expose(), CLIENT_SECRET);
    assert!(!format!("{provider:?}").contains(CLIENT_SECRET));

    assert!(server
        .state
        .identity
        .set_provider_enabled("idp", false, 0)
        .await
        .unwrap());
    let mut b = server.browser();
    let r = b.get("/sign-in").await;
    assert!(!r.body.contains("Example ID"));
    let r = b.post("/sign-in/external/idp", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.get("refresh").is_none());
    let r = b.post("/sign-in/external/..%2Fadmin", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn form_posted_answers_become_a_get_of_the_callback() {
    let (server, _idp) = setup().await;
    // Sent from the provider's site: no Origin of ours, and no change of state.
    let before = server.counts().await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/sign-in/external/callback", server.base))
        .header("origin", "https://appleid.apple.com")
        .form(&[("code", "c1"), ("state", "s1"), ("user", "{\"name\":{}}")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/sign-in/external/callback?code=c1&state=s1&user="));
    assert_eq!(server.counts().await, before);
}

/// A GitHub- and Facebook-like OAuth 2.0 provider: authorize answers at once, the token
/// endpoint checks PKCE and the client secret in the body, and the profile endpoints answer
/// with what the test set.
async fn oauth2_double(
    user: serde_json::Value,
    emails: serde_json::Value,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::Query;
    use axum::routing::{get, post};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let challenges: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let c1 = challenges.clone();
    let c2 = challenges.clone();
    let s1 = seen.clone();
    let s2 = seen.clone();
    let app = axum::Router::new()
        .route(
            "/authorize",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let code = format!("c{}", rand::random::<u32>());
                c1.lock().unwrap().insert(code.clone(), q["code_challenge"].clone());
                let to = format!("{}?code={code}&state={}", q["redirect_uri"], urlencode(&q["state"]));
                (StatusCode::FOUND, [("location", to)])
            }),
        )
        .route(
            "/token",
            post(move |axum::Form(f): axum::Form<HashMap<String, String>>| async move {
                use base64::Engine;
                use sha2::Digest;
                let challenge = c2.lock().unwrap().remove(&f["code"]).unwrap_or_default();
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(f["code_verifier"].as_bytes()));
                s1.lock().unwrap().push(format!("token secret={}", f.get("client_secret").map_or("", String::as_str)));
                if computed != challenge || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
                    return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "bad_verification_code"})));
                }
                (StatusCode::OK, axum::Json(json!({"access_token": "gho_token", "token_type": "bearer", "scope": "read:user,user:email"})))
            }),
        )
        .route(
            "/user",
            get(move |headers: axum::http::HeaderMap| async move {
                s2.lock().unwrap().push(format!("profile auth={}", headers["authorization"].to_str().unwrap()));
                axum::Json(user)
            }),
        )
        .route("/user/emails", get(move || async move { axum::Json(emails) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

async fn add_oauth2_provider(server: &TestServer, kind: ProviderKind, base: &str) {
    let input = ProviderInput {
        endpoints: Endpoints {
            authorization: Some(format!("{base}/authorize")),
            token: Some(format!("{base}/token")),
            userinfo: Some(format!("{base}/user")),
            emails: Some(format!("{base}/user/emails")),
            jwks: None,
        },
        ..provider_input(kind.as_str(), kind)
    };
    server
        .state
        .identity
        .put_provider(input, server.state.now())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn github_signs_up_with_its_verified_primary_email_only() {
    let server = TestServer::start().await;
    let (base, seen) = oauth2_double(
        json!({"id": 583231, "login": "octocat", "name": "The Octocat", "email": "public@example.com"}),
        json!([
            {"email": "old@example.com", "primary": false, "verified": true},
            {"email": "octocat@example.com", "primary": true, "verified": true}
        ]),
    )
    .await;
    add_oauth2_provider(&server, ProviderKind::Github, &base).await;
    let mut b = server.browser();
    assert!(b
        .get("/sign-in")
        .await
        .body
        .contains("Continue with GitHub"));
    let r = sign_in_via(&server, &mut b, "github").await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let user = server.user("octocat@example.com").await;
    assert_eq!(user.display_name, "The Octocat");
    let identity = server
        .store
        .find_external_identity("https://github.com", "583231")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, user.id);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&format!("token secret={CLIENT_SECRET}")));
    assert!(seen.contains(&"profile auth=Bearer gho_token".to_string()));
}

#[tokio::test]
async fn github_without_a_verified_primary_email_proves_one_by_code() {
    let server = TestServer::start().await;
    let (base, _) = oauth2_double(
        json!({"id": 7, "login": "unverified", "name": null}),
        json!([{"email": "victim@example.com", "primary": true, "verified": false}]),
    )
    .await;
    add_oauth2_provider(&server, ProviderKind::Github, &base).await;
    // Someone owns victim@example.com here; an unverified GitHub address must not reach it.
    server
        .signed_up("Victim", "victim@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    let r = sign_in_via(&server, &mut b, "github").await;
    assert_eq!(r.location(), Some("/sign-in/external/finish"));
    assert!(b.session_cookie().is_none());
    assert_eq!(server.sessions_of("victim@example.com").await.len(), 1);
    assert_eq!(count(&server, "external_identities").await, 0);
}

#[tokio::test]
async fn facebook_profiles_without_an_email_ask_for_one() {
    let server = TestServer::start().await;
    let (base, _) = oauth2_double(json!({"id": "10224", "name": "Face Book"}), json!([])).await;
    add_oauth2_provider(&server, ProviderKind::Facebook, &base).await;
    let mut b = server.browser();
    let r = sign_in_via(&server, &mut b, "facebook").await;
    assert_eq!(r.location(), Some("/sign-in/external/finish"));
    let r = b.get("/sign-in/external/finish").await;
    assert!(r.body.contains("Facebook confirmed who you are"));
    assert!(
        !r.body.contains("for=\"name\""),
        "the provider gave the name"
    );
    assert!(r.body.contains("for=\"email\""));
}

#[tokio::test]
async fn provider_settings_are_validated() {
    use gatehouse_core::identity::{AppleSigning, ProviderConfigError};
    let server = TestServer::start().await;
    let input = |kind: ProviderKind| ProviderInput {
        secret: Some(SecretString::new("secret")),
        ..provider_input("p", kind)
    };
    let identity = &server.state.identity;
    let put = |i: ProviderInput| async move {
        identity
            .put_provider(i, 0)
            .await
            .unwrap()
            .map(|p| p.settings)
    };
    // A generic provider needs an issuer, https (or loopback http).
    assert_eq!(
        put(input(ProviderKind::Oidc)).await.unwrap_err(),
        ProviderConfigError::Issuer
    );
    let mut i = input(ProviderKind::Oidc);
    i.issuer = Some("http://idp.example.com".into());
    assert_eq!(put(i).await.unwrap_err(), ProviderConfigError::Issuer);
    let mut i = input(ProviderKind::Google);
    i.endpoints.token = Some("http://evil.example/token".into());
    assert_eq!(
        put(i).await.unwrap_err(),
        ProviderConfigError::Endpoint("token")
    );
    let mut i = input(ProviderKind::Github);
    i.secret = None;
    assert_eq!(put(i).await.unwrap_err(), ProviderConfigError::Secret);
    let mut i = input(ProviderKind::Google);
    i.id = "Not A Slug".into();
    assert_eq!(put(i).await.unwrap_err(), ProviderConfigError::Id);
    // Apple needs its team, key id and a PKCS#8 key.
    let mut i = input(ProviderKind::Apple);
    i.apple = Some(AppleSigning {
        team_id: "T".into(),
        key_id: "K".into(),
    });
    assert_eq!(put(i).await.unwrap_err(), ProviderConfigError::Apple);
    assert_eq!(
        server
            .counts()
            .await
            .iter()
            .find(|(t, _)| t == "identity_providers")
            .unwrap()
            .1,
        0
    );

    // Presets fill in what they know.
    let google = put(input(ProviderKind::Google)).await.unwrap();
    assert_eq!(google.issuer, "https://accounts.google.com");
    assert_eq!(google.scopes, ["openid", "email", "profile"]);
    let mut i = input(ProviderKind::Microsoft);
    i.tenant = Some("contoso-tenant-id".into());
    assert_eq!(
        put(i).await.unwrap().issuer,
        "https://login.microsoftonline.com/contoso-tenant-id/v2.0"
    );
    let github = put(input(ProviderKind::Github)).await.unwrap();
    assert_eq!(
        github.endpoints.emails.as_deref(),
        Some("https://api.github.com/user/emails")
    );
    // Saving again without a secret keeps the stored one.
    let mut i = input(ProviderKind::Github);
    i.secret = None;
    put(i).await.unwrap();
    let p = identity.enabled_provider("p").await.unwrap().unwrap();
    assert_eq!(p.secret.unwrap().expose(), "secret");
}
