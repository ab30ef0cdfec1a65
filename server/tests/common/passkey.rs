//! A software authenticator for the HTTP tests (webauthn-authenticator-rs `SoftPasskey`):
//! registering a passkey on the security page, and signing in with it without a password.
//!
//! `SoftPasskey` keeps no resident credentials: it signs only for the credential ids a ceremony
//! names, and it returns no user handle. A passwordless ceremony names no credential, so
//! [`Passkey`] keeps beside the key what a discoverable authenticator stores with it (the
//! credential id and the account's user handle from the registration) and answers as one would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::{Browser, Reply, TestServer, PASSWORD};

/// The origin the server's passkeys are bound to.
pub fn origin(server: &TestServer) -> Url {
    Url::parse(&server.base).unwrap()
}

/// A registered passkey as a discoverable authenticator holds it.
pub struct Passkey {
    pub authenticator: SoftPasskey,
    /// The credential id (base64url), as the registration answer named it.
    credential_id: Value,
    /// The account's user handle (base64url), as the registration options named it.
    user_handle: Value,
}

/// Opens a registration ceremony, lets `authenticator` answer it, and sends the answer. Returns
/// the server's reply, the credential id and the user handle of the registration.
async fn registration(
    server: &TestServer,
    b: &mut Browser,
    authenticator: &mut SoftPasskey,
    name: &str,
) -> (Reply, Value, Value) {
    let opened = b
        .post_json("/account/security/passkeys/options", &json!({}))
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let opened = Browser::json(&opened);
    let user_handle = opened["options"]["publicKey"]["user"]["id"].clone();
    let options: CreationChallengeResponse =
        serde_json::from_value(opened["options"].clone()).unwrap();
    let credential = authenticator
        .do_registration(origin(server), options)
        .unwrap();
    let credential = serde_json::to_value(credential).unwrap();
    let credential_id = credential["id"].clone();
    let reply = b
        .post_json(
            "/account/security/passkeys",
            &json!({ "ceremony": opened["ceremony"], "name": name, "credential": credential }),
        )
        .await;
    (reply, credential_id, user_handle)
}

/// Opens a registration ceremony, lets `authenticator` answer it, and sends the answer.
pub async fn register(
    server: &TestServer,
    b: &mut Browser,
    authenticator: &mut SoftPasskey,
    name: &str,
) -> Reply {
    registration(server, b, authenticator, name).await.0
}

/// Adds a new passkey named `name` to the account signed in in `b`.
pub async fn add_passkey(server: &TestServer, b: &mut Browser, name: &str) -> Passkey {
    let mut authenticator = SoftPasskey::new(true);
    let (r, credential_id, user_handle) = registration(server, b, &mut authenticator, name).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        Browser::json(&r)["redirect"],
        "/account/security?notice=passkey_added"
    );
    Passkey {
        authenticator,
        credential_id,
        user_handle,
    }
}

/// A signed-up account with one software passkey named "Laptop".
pub async fn account_with_passkey(server: &TestServer, email: &str) -> (Browser, SoftPasskey) {
    let mut b = server.signed_up("Pat Key", email, PASSWORD).await;
    let passkey = add_passkey(server, &mut b, "Laptop").await;
    (b, passkey.authenticator)
}

/// Signs in with `passkey` and nothing else: opens a passwordless ceremony and answers it as a
/// discoverable authenticator does (choosing its credential for the site and returning the user
/// handle). Returns the reply to the answer: `{redirect}` with the session cookie when signed
/// in, `{error}` otherwise.
pub async fn sign_in_with_passkey(
    server: &TestServer,
    b: &mut Browser,
    passkey: &mut Passkey,
) -> Reply {
    let opened = b.post_json("/sign-in/passkey/options", &json!({})).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let opened = Browser::json(&opened);
    let mut options = opened["options"].clone();
    options["publicKey"]["allowCredentials"] =
        json!([{ "type": "public-key", "id": passkey.credential_id }]);
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = passkey
        .authenticator
        .do_authentication(origin(server), options)
        .unwrap();
    let mut credential = serde_json::to_value(credential).unwrap();
    credential["response"]["userHandle"] = passkey.user_handle.clone();
    b.post_json(
        "/sign-in/passkey",
        &json!({ "ceremony": opened["ceremony"], "credential": credential }),
    )
    .await
}
