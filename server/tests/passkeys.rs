//! Passkeys over HTTP with a software authenticator (webauthn-authenticator-rs `SoftPasskey`):
//! registration, the second factor, replayed and expired ceremonies, counter regression,
//! renaming, removal and the tenant's "require MFA" rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::passkey::{account_with_passkey, origin};
use common::*;
use gatehouse_core::identity::MfaPolicy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

/// Signs in with the password: the account has a passkey, so this stops at the second factor.
async fn password_step(server: &TestServer, email: &str) -> Browser {
    let mut b = server.browser();
    let r = b.sign_in_with_password(email, PASSWORD).await;
    assert_eq!(r.location(), Some("/sign-in/verify"), "{}", r.body);
    assert!(b.session_cookie().is_none());
    b
}

/// Opens a second-factor ceremony and returns its id and the authenticator's answer.
async fn assertion(
    server: &TestServer,
    b: &mut Browser,
    authenticator: &mut SoftPasskey,
) -> (Value, Value) {
    let opened = b
        .post_json("/sign-in/verify/passkey/options", &json!({}))
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let opened = Browser::json(&opened);
    let options: RequestChallengeResponse =
        serde_json::from_value(opened["options"].clone()).unwrap();
    let credential = authenticator
        .do_authentication(origin(server), options)
        .unwrap();
    (
        opened["ceremony"].clone(),
        serde_json::to_value(credential).unwrap(),
    )
}

async fn answer(b: &mut Browser, ceremony: &Value, credential: &Value) -> Reply {
    b.post_json(
        "/sign-in/verify/passkey",
        &json!({ "ceremony": ceremony, "credential": credential }),
    )
    .await
}

#[tokio::test]
async fn a_registered_passkey_completes_the_second_factor() {
    let server = TestServer::start().await;
    let (mut b, mut authenticator) = account_with_passkey(&server, "pat@example.com").await;
    let page = b.get("/account/security?notice=passkey_added").await;
    assert!(page.body.contains("Passkey added."), "{}", page.body);
    assert!(page.body.contains("Laptop"));
    assert!(page.body.contains("Passkey on one device or security key"));

    let mut b = password_step(&server, "pat@example.com").await;
    let verify = b.get("/sign-in/verify").await;
    assert!(
        verify.body.contains("Use a passkey"),
        "the passkey is offered first"
    );
    let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
    let r = answer(&mut b, &ceremony, &credential).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(Browser::json(&r)["redirect"], "/account");
    assert!(b.session_cookie().is_some());
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    let sessions = server.sessions_of("pat@example.com").await;
    assert!(sessions.iter().any(|s| s.is_multifactor()));
    assert!(
        sessions.iter().filter(|s| !s.is_multifactor()).count() == 1,
        "the sign-up session proved one factor"
    );
    assert!(
        sessions.iter().any(|s| s.amr == "pwd hwk mfa"),
        "{:?}",
        sessions.iter().map(|s| &s.amr).collect::<Vec<_>>()
    );
    let log = server
        .store
        .sign_ins_for_email("pat@example.com", 1)
        .await
        .unwrap();
    assert_eq!(
        (log[0].method.as_str(), log[0].result.as_str()),
        ("passkey", "success")
    );
    assert!(server
        .audit_actions("pat@example.com")
        .await
        .iter()
        .any(|a| a == "mfa.passkey.added"));
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "replay@example.com").await;
    let mut b = password_step(&server, "replay@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
    assert_eq!(
        answer(&mut b, &ceremony, &credential).await.status,
        StatusCode::OK
    );

    // The same answer again, by a second browser that also passed the password.
    let mut other = password_step(&server, "replay@example.com").await;
    let r = answer(&mut other, &ceremony, &credential).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a used ceremony is gone");
    // The old answer to a new ceremony: its signature covers the old challenge.
    let opened = other
        .post_json("/sign-in/verify/passkey/options", &json!({}))
        .await;
    let fresh = Browser::json(&opened)["ceremony"].clone();
    let r = answer(&mut other, &fresh, &credential).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        Browser::json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("not accepted"),
        "{}",
        r.body
    );
    assert!(other.session_cookie().is_none());
    assert_eq!(
        other.get("/account").await.location(),
        Some("/sign-in"),
        "no session came out of a replay"
    );
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "late@example.com").await;
    let mut b = password_step(&server, "late@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
    server.clock.advance_ms(5 * 60 * 1000 + 1);
    let r = answer(&mut b, &ceremony, &credential).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(b.session_cookie().is_none());

    // Registration ceremonies expire the same way.
    let mut owner = server
        .signed_up("Late Too", "late2@example.com", PASSWORD)
        .await;
    let opened = owner
        .post_json("/account/security/passkeys/options", &json!({}))
        .await;
    let opened = Browser::json(&opened);
    let options: CreationChallengeResponse =
        serde_json::from_value(opened["options"].clone()).unwrap();
    let credential = SoftPasskey::new(true)
        .do_registration(origin(&server), options)
        .unwrap();
    server.clock.advance_ms(5 * 60 * 1000 + 1);
    let r = owner
        .post_json(
            "/account/security/passkeys",
            &json!({ "ceremony": opened["ceremony"], "name": "Late", "credential": credential }),
        )
        .await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.body);
    let user = server.user("late2@example.com").await;
    assert!(server
        .store
        .list_passkeys(&user.id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_counter_that_goes_backwards_is_refused_and_logged() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "clone@example.com").await;
    let user = server.user("clone@example.com").await;
    // The stored counter is ahead of the authenticator, as after a copy of the key was used.
    let stored = server.store.list_passkeys(&user.id).await.unwrap()[0].clone();
    let mut record: Value = serde_json::from_str(&stored.passkey).unwrap();
    record["cred"]["counter"] = json!(1000);
    assert!(server
        .store
        .record_passkey_use(&stored.id, &stored.passkey, &record.to_string(), 0)
        .await
        .unwrap());

    let mut b = password_step(&server, "clone@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
    let r = answer(&mut b, &ceremony, &credential).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(Browser::json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("looks copied"));
    assert!(b.session_cookie().is_none());
    let log = server
        .store
        .sign_ins_for_email("clone@example.com", 1)
        .await
        .unwrap();
    assert_eq!(
        log[0].failure_reason.as_deref(),
        Some("passkey_possible_clone")
    );
    assert!(server
        .audit_actions(&user.email)
        .await
        .iter()
        .any(|a| a == "mfa.passkey.suspicious"));
}

#[tokio::test]
async fn registration_excludes_known_credentials_and_refuses_a_replayed_registration() {
    let server = TestServer::start().await;
    let mut b = server
        .signed_up("Two Keys", "two@example.com", PASSWORD)
        .await;
    let opened = b
        .post_json("/account/security/passkeys/options", &json!({}))
        .await;
    let opened = Browser::json(&opened);
    let options: CreationChallengeResponse =
        serde_json::from_value(opened["options"].clone()).unwrap();
    assert_eq!(
        opened["options"]["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(
        opened["options"]["publicKey"]["rp"]["id"], "localhost",
        "the relying party is the public URL's host"
    );
    let credential = SoftPasskey::new(true)
        .do_registration(origin(&server), options)
        .unwrap();
    let body = json!({ "ceremony": opened["ceremony"], "name": "First", "credential": credential });
    let r = b.post_json("/account/security/passkeys", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let again = b.post_json("/account/security/passkeys", &body).await;
    assert_eq!(
        again.status,
        StatusCode::BAD_REQUEST,
        "a ceremony is single use"
    );

    let second = b
        .post_json("/account/security/passkeys/options", &json!({}))
        .await;
    let second = Browser::json(&second);
    let excluded = second["options"]["publicKey"]["excludeCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0]["id"], credential.id.as_str());
    // The first registration's answer, sent to the new ceremony, answers the wrong challenge.
    let r = b
        .post_json(
            "/account/security/passkeys",
            &json!({ "ceremony": second["ceremony"], "name": "Copy", "credential": credential }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let user = server.user("two@example.com").await;
    assert_eq!(server.store.list_passkeys(&user.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn passkeys_are_renamed_and_removing_one_ends_its_sessions() {
    let server = TestServer::start().await;
    let (mut owner, mut authenticator) = account_with_passkey(&server, "rename@example.com").await;
    let user = server.user("rename@example.com").await;
    let id = server.store.list_passkeys(&user.id).await.unwrap()[0]
        .id
        .clone();

    let r = owner
        .post(
            &format!("/account/security/passkeys/{id}/rename"),
            &[("name", "  ")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("1 to 64 characters"), "{}", r.body);
    let r = owner
        .post(
            &format!("/account/security/passkeys/{id}/rename"),
            &[("name", "Work laptop")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=passkey_renamed")
    );
    assert!(owner
        .get("/account/security")
        .await
        .body
        .contains("Work laptop"));

    // Another person's session cannot rename or remove it.
    let mut stranger = server
        .signed_up("Stranger", "stranger@example.com", PASSWORD)
        .await;
    let r = stranger
        .post(&format!("/account/security/passkeys/{id}/remove"), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A session signed in with the passkey ends when the passkey is removed.
    let mut with_passkey = password_step(&server, "rename@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut with_passkey, &mut authenticator).await;
    assert_eq!(
        answer(&mut with_passkey, &ceremony, &credential)
            .await
            .status,
        StatusCode::OK
    );
    let r = owner
        .post(&format!("/account/security/passkeys/{id}/remove"), &[])
        .await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=passkey_removed")
    );
    assert_eq!(
        with_passkey.get("/account").await.location(),
        Some("/sign-in")
    );
    assert_eq!(owner.get("/account").await.status, StatusCode::OK);
    let actions = server.audit_actions(&user.email).await;
    assert!(
        actions.iter().any(|a| a == "mfa.passkey.renamed")
            && actions.iter().any(|a| a == "mfa.passkey.removed")
    );
    // Without a second factor the password signs in directly again.
    let mut b = server.browser();
    let r = b
        .sign_in_with_password("rename@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"));
}

#[tokio::test]
async fn the_last_method_stays_while_the_tenant_requires_mfa() {
    let server = TestServer::start().await;
    let (mut owner, _) = account_with_passkey(&server, "keep@example.com").await;
    server
        .state
        .identity
        .set_mfa_policy(MfaPolicy { require_mfa: true }, server.state.now())
        .await
        .unwrap();
    let user = server.user("keep@example.com").await;
    let id = server.store.list_passkeys(&user.id).await.unwrap()[0]
        .id
        .clone();
    let r = owner
        .post(&format!("/account/security/passkeys/{id}/remove"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("only method"), "{}", r.body);
    assert_eq!(server.store.list_passkeys(&user.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn passkey_steps_without_their_earlier_steps_never_sign_in() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "skip@example.com").await;
    // A valid assertion exists, but this browser never passed the password.
    let mut first = password_step(&server, "skip@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut first, &mut authenticator).await;
    let mut b = server.browser();
    let r = answer(&mut b, &ceremony, &credential).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = b
        .post_json("/sign-in/verify/passkey/options", &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The passwordless endpoint takes only its own ceremonies, and a garbage answer is refused.
    let r = b
        .post_json(
            "/sign-in/passkey",
            &json!({ "ceremony": ceremony, "credential": credential }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let opened = b.post_json("/sign-in/passkey/options", &json!({})).await;
    assert_eq!(opened.status, StatusCode::OK);
    let opened = Browser::json(&opened);
    assert_eq!(opened["options"]["mediation"], "conditional");
    assert_eq!(
        opened["options"]["publicKey"]["userVerification"],
        "required"
    );
    let r = b
        .post_json(
            "/sign-in/passkey",
            &json!({ "ceremony": opened["ceremony"], "credential": { "id": "x" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(b.session_cookie().is_none());
    // Registration needs a session.
    let r = b
        .post_json("/account/security/passkeys/options", &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn twenty_concurrent_answers_to_one_ceremony_give_one_session() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "race@example.com").await;
    let mut b = password_step(&server, "race@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
    let cookie = b.cookie_header();
    let client = reqwest::Client::new();
    let answers = (0..20).map(|_| {
        client
            .post(format!("{}/sign-in/verify/passkey", server.base))
            .header("origin", server.base.clone())
            .header("cookie", cookie.clone())
            .header("content-type", "application/json")
            .body(json!({ "ceremony": ceremony, "credential": credential }).to_string())
            .send()
    });
    let results = futures::future::join_all(answers).await;
    let ok = results
        .into_iter()
        .filter(|r| r.as_ref().unwrap().status() == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    let sessions = server.sessions_of("race@example.com").await;
    assert_eq!(
        sessions.iter().filter(|s| s.amr.contains("hwk")).count(),
        1,
        "exactly one session came out of the ceremony"
    );
}

#[tokio::test]
async fn an_assertion_made_for_another_origin_is_refused() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "origin@example.com").await;
    let mut b = password_step(&server, "origin@example.com").await;
    let opened = b
        .post_json("/sign-in/verify/passkey/options", &json!({}))
        .await;
    let opened = Browser::json(&opened);
    let challenge = opened["options"]["publicKey"]["challenge"]
        .as_str()
        .unwrap();
    assert!(
        challenge.len() >= 43,
        "at least 32 random bytes, base64url: {challenge}"
    );
    let options: RequestChallengeResponse =
        serde_json::from_value(opened["options"].clone()).unwrap();
    // A page on another port of the same host asked the authenticator.
    let elsewhere = Url::parse("http://localhost:1").unwrap();
    let credential = authenticator.do_authentication(elsewhere, options).unwrap();
    let r = answer(
        &mut b,
        &opened["ceremony"],
        &serde_json::to_value(credential).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(b.session_cookie().is_none());
}

#[tokio::test]
async fn backup_flags_that_contradict_the_stored_ones_are_refused() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "flags@example.com").await;
    let user = server.user("flags@example.com").await;
    // The credential was registered as backup eligible; the authenticator now says it is not.
    let stored = server.store.list_passkeys(&user.id).await.unwrap()[0].clone();
    let mut record: Value = serde_json::from_str(&stored.passkey).unwrap();
    assert_eq!(record["cred"]["backup_eligible"], false);
    record["cred"]["backup_eligible"] = json!(true);
    assert!(server
        .store
        .record_passkey_use(&stored.id, &stored.passkey, &record.to_string(), 0)
        .await
        .unwrap());
    let mut b = password_step(&server, "flags@example.com").await;
    let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
    let r = answer(&mut b, &ceremony, &credential).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(b.session_cookie().is_none());
}

#[tokio::test]
async fn the_stored_counter_follows_the_authenticator() {
    let server = TestServer::start().await;
    let (_, mut authenticator) = account_with_passkey(&server, "count@example.com").await;
    let user = server.user("count@example.com").await;
    for expected in 1..=2 {
        let mut b = password_step(&server, "count@example.com").await;
        let (ceremony, credential) = assertion(&server, &mut b, &mut authenticator).await;
        assert_eq!(
            answer(&mut b, &ceremony, &credential).await.status,
            StatusCode::OK
        );
        let stored = server.store.list_passkeys(&user.id).await.unwrap()[0].clone();
        let record: Value = serde_json::from_str(&stored.passkey).unwrap();
        assert_eq!(record["cred"]["counter"], json!(expected));
        assert!(stored.last_used_at.is_some());
    }
}

#[tokio::test]
async fn an_operator_reset_removes_every_method_and_ends_the_sessions() {
    let server = TestServer::start().await;
    let (mut owner, _) = account_with_passkey(&server, "lost@example.com").await;
    let removed = server
        .state
        .identity
        .reset_second_factors("Lost@Example.com", server.state.now())
        .await
        .unwrap();
    assert_eq!(removed, Some(1));
    assert_eq!(owner.get("/account").await.location(), Some("/sign-in"));
    let mut b = server.browser();
    let r = b.sign_in_with_password("lost@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "no second factor is left");
    let user = server.user("lost@example.com").await;
    assert_eq!(server.audit_actions(&user.email).await[0], "mfa.reset");
    assert_eq!(
        server
            .state
            .identity
            .reset_second_factors("nobody@example.com", 0)
            .await
            .unwrap(),
        None
    );
}
