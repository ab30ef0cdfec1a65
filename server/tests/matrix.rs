//! Every first factor through every way to reach an application, over HTTP: the account portal,
//! `/authorize` signing in during the request, `/authorize` with an existing session,
//! `prompt=none`, `max_age`, and `acr_values` asking for multifactor; then each way again while
//! the tenant requires MFA of everyone, once the account is disabled, and while a Conditional
//! Access policy blocks the address the browsers come from.
//!
//! Each cell checks that the sign-in went through the pipeline's decision step: the sign-in log
//! has the first factor's row (under the application it was for) and, for every answer to an
//! application from a session, a row with method `sso` carrying the result; a disabled account
//! is refused; an account without a second factor is sent to add one; and a single-factor
//! session never gets a code whose ID token says `mfa`.
//!
//! The list of first factors comes from the core's own [`Method`]: [`role`] matches on it with
//! no wildcard arm, so a method added to the core does not compile here until it is given a
//! driver, and [`every_first_factor_the_sign_in_log_records_has_a_driver`] checks that each
//! driver is the one that writes that method. Each first factor is one test on one server; its
//! cells run in order on it and name themselves in every failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::idp::{self, Idp};
use common::passkey::{self, Passkey};
use common::{Browser, Reply, TestServer, PASSWORD};
use gatehouse_core::identity::oidc::{ClientInput, ACR_MULTIFACTOR};
use gatehouse_core::identity::{Method, MfaPolicy, ACCOUNT_PORTAL};
use gatehouse_core::store::{Session, SignInLogEntry};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;

const REDIRECT: &str = "https://app.example.com/callback";
const NONCE: &str = "n-matrix";
const NAME: &str = "Matrix Person";
/// The provider double's id on every server.
const PROVIDER: &str = "idp";
/// Where an account the tenant requires to add a second factor is sent.
const ENROLL_BY_TENANT: &str = "/account/security?notice=mfa_required";

// ---------------------------------------------------------------- the lists

/// Declares the first factors the matrix drives: the [`Factor`] enum, its list, and one test
/// per factor that runs the factor's row.
macro_rules! first_factors {
    ($($(#[$doc:meta])* $test:ident => $factor:ident,)+) => {
        /// A way to prove who one is that starts a sign-in, as the matrix drives it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Factor {
            $($(#[$doc])* $factor,)+
        }

        /// Every first factor.
        const FACTORS: &[Factor] = &[$(Factor::$factor,)+];

        $(
            #[tokio::test]
            async fn $test() {
                run_row(Factor::$factor).await;
            }
        )+
    };
}

first_factors! {
    /// Email and password on the sign-in page.
    password => Password,
    /// A code emailed to an existing account.
    email_code_sign_in => EmailCodeSignIn,
    /// A new account without a password, proven by an emailed code.
    email_code_sign_up => EmailCodeSignUp,
    /// A new account with a password, proven by an emailed code.
    password_sign_up => PasswordSignUp,
    /// A new password set after an emailed code.
    password_reset => PasswordReset,
    /// A passkey and nothing else.
    passkey_passwordless => Passkey,
    /// An identity at another provider, linked to the account.
    provider_sign_in => ProviderSignIn,
    /// A new account made from an identity at another provider.
    provider_sign_up => ProviderSignUp,
    /// The password again inside a live session.
    re_authentication => Reauthentication,
}

/// What a method written to the sign-in log is to the matrix.
#[derive(Debug)]
enum Role {
    /// It starts a sign-in; these drivers prove it.
    FirstFactor(&'static [Factor]),
    /// It is only ever written after a first factor: a second factor, an answer to an
    /// application from an existing session, a new email address proven inside a session.
    AfterFirstFactor,
}

/// Declares every method of the sign-in log with its role: the list [`METHODS`] and the
/// function [`role`], whose match lists the same methods and has no wildcard arm.
macro_rules! methods {
    ($($method:ident => $role:expr,)+) => {
        /// Every method the sign-in log records.
        const METHODS: &[Method] = &[$(Method::$method,)+];

        /// The role of a method. A method added to the core does not compile here until it is
        /// given one.
        fn role(method: Method) -> Role {
            match method {
                $(Method::$method => $role,)+
            }
        }
    };
}

methods! {
    Password => Role::FirstFactor(&[Factor::Password, Factor::Reauthentication]),
    EmailCode => Role::FirstFactor(&[Factor::EmailCodeSignIn]),
    SignUpPassword => Role::FirstFactor(&[Factor::PasswordSignUp]),
    SignUpEmailCode => Role::FirstFactor(&[Factor::EmailCodeSignUp]),
    PasswordReset => Role::FirstFactor(&[Factor::PasswordReset]),
    Totp => Role::AfterFirstFactor,
    RecoveryCode => Role::AfterFirstFactor,
    Passkey => Role::FirstFactor(&[Factor::Passkey]),
    Sms => Role::AfterFirstFactor,
    Federated => Role::FirstFactor(&[Factor::ProviderSignIn]),
    SignUpFederated => Role::FirstFactor(&[Factor::ProviderSignUp]),
    EmailChange => Role::AfterFirstFactor,
    SingleSignOn => Role::AfterFirstFactor,
    TokenRefresh => Role::AfterFirstFactor,
}

/// A way to reach an application, in the order a row takes them: the portal signs in the
/// browser whose session the ways after it use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// The account portal (`/account`).
    AccountPortal,
    /// `/authorize` without a session: the person signs in during the request.
    AuthorizeSigningIn,
    /// `/authorize` with a session.
    AuthorizeWithSession,
    /// `/authorize` with `prompt=none` and a session.
    PromptNone,
    /// `/authorize` with `acr_values` asking for multifactor.
    AcrMultifactor,
    /// `/authorize` with a `max_age` the session is older than.
    MaxAge,
}

const WAYS: [Way; 6] = [
    Way::AccountPortal,
    Way::AuthorizeSigningIn,
    Way::AuthorizeWithSession,
    Way::PromptNone,
    Way::AcrMultifactor,
    Way::MaxAge,
];

/// What holds for the account while a way is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Normally,
    /// The Conditional Access policy "Require MFA for all users" (`gatehouse mfa require`) is
    /// on: a policy requiring a second factor of every account, everywhere.
    MfaForEveryone,
    /// An administrator disabled the account after it signed in.
    AccountDisabled,
    /// A Conditional Access policy blocks the address the browsers come from, saved after the
    /// account signed in.
    BlockedByPolicy,
}

const CONDITIONS: [Condition; 4] = [
    Condition::Normally,
    Condition::MfaForEveryone,
    Condition::AccountDisabled,
    Condition::BlockedByPolicy,
];

impl Factor {
    /// The method its sign-in log row carries.
    fn logged_as(self) -> Method {
        match self {
            Factor::Password | Factor::Reauthentication => Method::Password,
            Factor::EmailCodeSignIn => Method::EmailCode,
            Factor::EmailCodeSignUp => Method::SignUpEmailCode,
            Factor::PasswordSignUp => Method::SignUpPassword,
            Factor::PasswordReset => Method::PasswordReset,
            Factor::Passkey => Method::Passkey,
            Factor::ProviderSignIn => Method::Federated,
            Factor::ProviderSignUp => Method::SignUpFederated,
        }
    }

    /// The `amr` of the ID token of a session it started. A password chosen at sign-up or reset
    /// proves nothing: those sessions proved the mailbox.
    fn amr(self) -> &'static [&'static str] {
        match self {
            Factor::Password | Factor::Reauthentication => &["pwd"],
            Factor::EmailCodeSignIn
            | Factor::EmailCodeSignUp
            | Factor::PasswordSignUp
            | Factor::PasswordReset => &["email"],
            Factor::Passkey => &["hwk", "mfa"],
            Factor::ProviderSignIn | Factor::ProviderSignUp => &["fed"],
        }
    }

    /// Whether it proves two factors by itself (and is the account's second factor too).
    fn is_multifactor(self) -> bool {
        self.amr().contains(&"mfa")
    }

    /// Whether it makes a new account each time (so it cannot be repeated for one).
    fn makes_an_account(self) -> bool {
        matches!(
            self,
            Factor::EmailCodeSignUp | Factor::PasswordSignUp | Factor::ProviderSignUp
        )
    }

    /// Whether it is proven inside a live session only.
    fn starts_from_a_session(self) -> bool {
        self == Factor::Reauthentication
    }

    /// Whether a person can prove it again for the same account from the sign-in page.
    fn signs_in_again(self) -> bool {
        !self.makes_an_account() && !self.starts_from_a_session()
    }

    /// The page of the portal it ends on.
    fn lands_on(self) -> &'static str {
        match self {
            Factor::Reauthentication => "/account/security?notice=confirmed",
            _ => "/account",
        }
    }

    /// Where an application asking for multifactor sends a session of this factor on an
    /// account without a second factor: the mailbox as the second factor after a password,
    /// otherwise the page to add one. `None`: the session is multifactor already.
    fn step_up(self) -> Option<&'static str> {
        match self {
            Factor::Password | Factor::Reauthentication => Some("/sign-in/verify"),
            Factor::EmailCodeSignIn
            | Factor::EmailCodeSignUp
            | Factor::PasswordSignUp
            | Factor::PasswordReset
            | Factor::ProviderSignIn
            | Factor::ProviderSignUp => Some("/account/security?notice=app_requires_mfa"),
            Factor::Passkey => None,
        }
    }
}

#[test]
fn every_first_factor_the_sign_in_log_records_has_a_driver() {
    let mut names: Vec<&str> = METHODS.iter().map(|m| m.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), METHODS.len(), "each method is listed once");
    for &method in METHODS {
        match role(method) {
            Role::FirstFactor(drivers) => {
                assert!(
                    !drivers.is_empty(),
                    "{method:?} starts a sign-in: no driver"
                );
                for driver in drivers {
                    assert_eq!(
                        driver.logged_as(),
                        method,
                        "{driver:?} drives {method:?} but is logged as {:?}",
                        driver.logged_as()
                    );
                }
            }
            Role::AfterFirstFactor => assert!(
                FACTORS.iter().all(|f| f.logged_as() != method),
                "{method:?} is driven as a first factor"
            ),
        }
    }
    for &factor in FACTORS {
        assert!(
            matches!(role(factor.logged_as()), Role::FirstFactor(d) if d.contains(&factor)),
            "{factor:?} is not listed as the driver of {:?}",
            factor.logged_as()
        );
    }
}

// ---------------------------------------------------------------- one row

/// A cell of the matrix, as failures name it.
#[derive(Clone, Copy)]
struct Cell {
    factor: Factor,
    way: Way,
    condition: Condition,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} × {:?}", self.factor, self.way)?;
        match self.condition {
            Condition::Normally => Ok(()),
            Condition::MfaForEveryone => write!(f, " (MFA for everyone)"),
            Condition::AccountDisabled => write!(f, " (account disabled)"),
            Condition::BlockedByPolicy => write!(f, " (blocked by a policy)"),
        }
    }
}

/// Someone a row signs in: an account ready for the row's first factor or, for a sign-up, the
/// identity that makes one.
struct Person {
    email: String,
    password: String,
    /// Who the provider double says they are.
    subject: String,
    passkey: Option<Passkey>,
}

/// A registered application.
struct App {
    id: String,
    secret: String,
}

/// One first factor's server, with a registered application and a provider double.
struct Row {
    factor: Factor,
    server: TestServer,
    app: App,
    idp: Idp,
    /// Numbers people and passwords apart.
    counter: std::cell::Cell<u32>,
}

async fn run_row(factor: Factor) {
    let row = Row::start(factor).await;
    for condition in CONDITIONS {
        match condition {
            Condition::Normally => row.every_way().await,
            Condition::MfaForEveryone => row.every_way_with_mfa_for_everyone().await,
            Condition::AccountDisabled => row.every_way_once_disabled().await,
            Condition::BlockedByPolicy => row.every_way_blocked_by_policy().await,
        }
    }
}

/// Where a browser was sent: the last reply, and each of our pages it went to on the way.
struct Journey {
    reply: Reply,
    path: Vec<String>,
}

impl Journey {
    /// Where the last reply sends the browser: its `Location`, or the URL of its `Refresh`
    /// header (the page that leads back to the application after one of our forms).
    fn target(&self) -> Option<String> {
        if let Some(l) = self.reply.location() {
            return Some(l.to_string());
        }
        let refresh = self.reply.headers.get("refresh")?.to_str().ok()?;
        Some(refresh.split_once("url=")?.1.to_string())
    }

    /// A parameter of the answer the application received, if the browser was sent back to it.
    fn answer(&self, name: &str) -> Option<String> {
        let target = self.target()?;
        if !target.starts_with(&format!("{REDIRECT}?")) {
            return None;
        }
        url::Url::parse(&target)
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn code(&self) -> Option<String> {
        self.answer("code")
    }

    fn error(&self) -> Option<String> {
        self.answer("error")
    }

    fn visited(&self, page: &str) -> bool {
        self.path.iter().any(|p| p == page)
    }

    fn ended_on(&self, page: &str) -> bool {
        self.path.last().map(String::as_str) == Some(page) && self.reply.status == StatusCode::OK
    }
}

impl fmt::Display for Journey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = &self.reply.body;
        // A page by its title, anything else by its start.
        let shown: String = match (body.find("<title>"), body.find("</title>")) {
            (Some(start), Some(end)) if start < end => body[start + 7..end].to_string(),
            _ => body.chars().take(200).collect(),
        };
        write!(
            f,
            "went through {:?}, ended with {} {:?}: {shown}",
            self.path,
            self.reply.status,
            self.target()
        )
    }
}

/// Follows the browser through our pages: redirects within Gatehouse, and the `redirect` a
/// passkey answer gives the island. Stops at a redirect elsewhere or at a page.
async fn follow(b: &mut Browser, mut reply: Reply) -> Journey {
    let mut path = Vec::new();
    for _ in 0..12 {
        let next = match reply.location() {
            Some(l) if l.starts_with('/') => Some(l.to_string()),
            Some(_) => None,
            None => Browser::json(&reply)["redirect"]
                .as_str()
                .filter(|r| r.starts_with('/'))
                .map(str::to_string),
        };
        let Some(next) = next else { break };
        reply = b.get(&next).await;
        path.push(next);
    }
    Journey { reply, path }
}

/// A row of the sign-in log a cell expects.
struct Logged<'a> {
    method: &'a str,
    application: &'a str,
    result: &'a str,
    reason: Option<&'a str>,
    /// The session it names (`None`: no session).
    session: Option<&'a str>,
}

fn pkce() -> (String, String) {
    let verifier = gatehouse_core::tokens::secret_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn claims_of(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).expect("a signed JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn amr_of(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Row {
    async fn start(factor: Factor) -> Row {
        let server = TestServer::start().await;
        let idp = Idp::start().await;
        idp::add_provider(&server, PROVIDER, "Example ID", &idp).await;
        let registered = server
            .state
            .identity
            .register_client(
                &ClientInput {
                    name: "Matrix app".into(),
                    confidential: true,
                    redirect_uris: vec![REDIRECT.into()],
                    first_party: true,
                    ..ClientInput::default()
                },
                server.state.now(),
            )
            .await
            .unwrap();
        let app = App {
            id: registered.client.id.clone(),
            secret: registered.secret.unwrap().expose().to_string(),
        };
        Row {
            factor,
            server,
            app,
            idp,
            counter: std::cell::Cell::new(0),
        }
    }

    fn cell(&self, way: Way, condition: Condition) -> Cell {
        Cell {
            factor: self.factor,
            way,
            condition,
        }
    }

    fn next_number(&self) -> u32 {
        self.counter.set(self.counter.get() + 1);
        self.counter.get()
    }

    /// Moves the clock on a second and returns the time: what happens next is after it.
    fn mark(&self) -> i64 {
        self.server.clock.advance_ms(1_000);
        self.server.state.now()
    }

    /// Someone new, ready for the row's first factor: an account that has a password, a
    /// passkey or a linked provider identity; for a sign-up, an address nobody uses yet.
    async fn person(&self) -> Person {
        let n = self.next_number();
        let mut person = Person {
            email: format!("person{n}@example.com"),
            password: PASSWORD.into(),
            subject: format!("subject-{n}"),
            passkey: None,
        };
        match self.factor {
            Factor::Password
            | Factor::EmailCodeSignIn
            | Factor::PasswordReset
            | Factor::Reauthentication => {
                self.server.signed_up(NAME, &person.email, PASSWORD).await;
            }
            Factor::Passkey => {
                let mut b = self.server.signed_up(NAME, &person.email, PASSWORD).await;
                person.passkey = Some(passkey::add_passkey(&self.server, &mut b, "Laptop").await);
            }
            Factor::ProviderSignIn => {
                let mut b = self.server.browser();
                let r = self.through_provider(&mut b, &person).await;
                assert_eq!(r.location(), Some("/account"), "{}", r.body);
            }
            Factor::EmailCodeSignUp | Factor::PasswordSignUp | Factor::ProviderSignUp => {}
        }
        person
    }

    async fn through_provider(&self, b: &mut Browser, person: &Person) -> Reply {
        idp::person(
            &self.idp,
            &person.subject,
            Some(&person.email),
            Some(true),
            Some(NAME),
        );
        idp::sign_in_via(&self.server, b, PROVIDER).await
    }

    /// What must come before the first factor in `b`: a session to re-authenticate in.
    async fn ready(&self, b: &mut Browser, person: &Person) {
        if self.factor.starts_from_a_session() {
            let r = b
                .sign_in_with_password(&person.email, &person.password)
                .await;
            assert_eq!(r.location(), Some("/account"), "{}", r.body);
        }
    }

    /// Proves the row's first factor in `b`; returns the reply to its last step.
    async fn prove(&self, cell: Cell, b: &mut Browser, person: &mut Person) -> Reply {
        self.server.clock.advance_ms(1_000);
        let server = &self.server;
        let email = person.email.clone();
        match self.factor {
            Factor::Password => b.sign_in_with_password(&email, &person.password).await,
            Factor::EmailCodeSignIn => {
                let r = b.post("/sign-in/code", &[("email", &email)]).await;
                assert_eq!(r.location(), Some("/code"), "{cell}: {}", r.body);
                let code = server.last_code(&email).await;
                b.post("/code", &[("code", &code)]).await
            }
            Factor::EmailCodeSignUp => {
                let r = b
                    .post("/sign-up/code", &[("name", NAME), ("email", &email)])
                    .await;
                assert_eq!(r.location(), Some("/code"), "{cell}: {}", r.body);
                let code = server.last_code(&email).await;
                b.post("/code", &[("code", &code)]).await
            }
            Factor::PasswordSignUp => {
                let r = b
                    .post(
                        "/sign-up",
                        &[
                            ("name", NAME),
                            ("email", &email),
                            ("password", &person.password),
                        ],
                    )
                    .await;
                assert_eq!(r.location(), Some("/code"), "{cell}: {}", r.body);
                let code = server.last_code(&email).await;
                b.post("/code", &[("code", &code)]).await
            }
            Factor::PasswordReset => {
                let r = b.post("/reset", &[("email", &email)]).await;
                assert_eq!(r.location(), Some("/code"), "{cell}: {}", r.body);
                let code = server.last_code(&email).await;
                let r = b.post("/code", &[("code", &code)]).await;
                assert_eq!(
                    r.location(),
                    Some("/reset/new-password"),
                    "{cell}: {}",
                    r.body
                );
                let password = format!("{PASSWORD}-renewed-{}", self.next_number());
                let r = b
                    .post("/reset/new-password", &[("password", &password)])
                    .await;
                if r.status == StatusCode::SEE_OTHER {
                    person.password = password;
                }
                r
            }
            Factor::Passkey => {
                let key = person.passkey.as_mut().expect("the person has a passkey");
                passkey::sign_in_with_passkey(server, b, key).await
            }
            Factor::ProviderSignIn | Factor::ProviderSignUp => {
                self.through_provider(b, person).await
            }
            Factor::Reauthentication => {
                b.post("/account/reauthenticate", &[("password", &person.password)])
                    .await
            }
        }
    }

    /// The live session of the browser, if it has one.
    async fn session_of(&self, b: &Browser) -> Option<Session> {
        let token = b.session_cookie()?;
        self.server
            .state
            .identity
            .authenticate(&token, self.server.state.now())
            .await
            .unwrap()
            .map(|(session, _)| session)
    }

    async fn live_session(&self, cell: Cell, b: &Browser) -> Session {
        self.session_of(b)
            .await
            .unwrap_or_else(|| panic!("{cell}: the browser has no live session"))
    }

    fn authorize_url(&self, challenge: &str, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.app.id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("state", "st-matrix"),
            ("nonce", NONCE),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| {
                let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                format!("{k}={v}")
            })
            .collect();
        format!("/authorize?{}", query.join("&"))
    }

    /// Sends the browser to `/authorize` with these extra parameters; returns the verifier of
    /// the request's PKCE challenge and where the browser went.
    async fn authorize(&self, b: &mut Browser, extra: &[(&str, &str)]) -> (String, Journey) {
        let (verifier, challenge) = pkce();
        let r = b.get(&self.authorize_url(&challenge, extra)).await;
        (verifier, follow(b, r).await)
    }

    /// Redeems a code; returns the claims of its ID token.
    async fn id_token(&self, cell: Cell, code: &str, verifier: &str) -> Value {
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.server.base))
            .basic_auth(&self.app.id, Some(&self.app.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "{cell}: the code redeems: {body}");
        let claims = claims_of(body["id_token"].as_str().expect("an ID token"));
        assert_eq!(claims["aud"], self.app.id.as_str(), "{cell}: {claims}");
        assert_eq!(claims["nonce"], NONCE, "{cell}: {claims}");
        claims
    }

    /// Asserts the code's ID token says exactly what the row's first factor proved, and no
    /// `mfa` unless it proved two factors. Returns its claims.
    async fn assert_token_of_factor(&self, cell: Cell, code: &str, verifier: &str) -> Value {
        let claims = self.id_token(cell, code, verifier).await;
        let amr = amr_of(&claims);
        assert_eq!(amr, self.factor.amr(), "{cell}: amr of the ID token");
        if !self.factor.is_multifactor() {
            assert!(
                !amr.iter().any(|m| m == "mfa"),
                "{cell}: a single-factor session got a code that says mfa: {amr:?}"
            );
            assert_ne!(claims["acr"], ACR_MULTIFACTOR, "{cell}: {claims}");
        }
        claims
    }

    /// The sign-in log rows about `email` written since `since`.
    async fn log(&self, email: &str, since: i64) -> Vec<SignInLogEntry> {
        self.server
            .store
            .sign_ins_for_email(email, 200)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.occurred_at >= since)
            .collect()
    }

    async fn assert_logged(&self, cell: Cell, email: &str, since: i64, expected: Logged<'_>) {
        let rows = self.log(email, since).await;
        let found = rows.iter().any(|r| {
            r.method == expected.method
                && r.application == expected.application
                && r.result == expected.result
                && r.failure_reason.as_deref() == expected.reason
                && r.session_id.as_deref() == expected.session
        });
        assert!(
            found,
            "{cell}: no sign-in log row ({}, {}, {}, {:?}, session {:?}); the rows since: {:?}",
            expected.method,
            expected.application,
            expected.result,
            expected.reason,
            expected.session,
            rows.iter()
                .map(|r| (
                    &r.method,
                    &r.application,
                    &r.result,
                    &r.failure_reason,
                    &r.session_id
                ))
                .collect::<Vec<_>>()
        );
    }

    /// The first factor's own row: a success that started `session`, under `application`.
    async fn assert_first_factor_logged(
        &self,
        cell: Cell,
        email: &str,
        since: i64,
        application: &str,
        session: &Session,
    ) {
        let expected = Logged {
            method: self.factor.logged_as().as_str(),
            application,
            result: "success",
            reason: None,
            session: Some(&session.id),
        };
        self.assert_logged(cell, email, since, expected).await;
    }

    /// The answer to the application from `session`, with its result and reason.
    async fn assert_sso_logged(
        &self,
        cell: Cell,
        email: &str,
        since: i64,
        session: &Session,
        result: &str,
        reason: Option<&str>,
    ) {
        let expected = Logged {
            method: Method::SingleSignOn.as_str(),
            application: &self.app.id,
            result,
            reason,
            session: Some(&session.id),
        };
        self.assert_logged(cell, email, since, expected).await;
    }

    fn assert_no_code(&self, cell: Cell, journey: &Journey) {
        assert!(
            journey.code().is_none(),
            "{cell}: the application got a code: {journey}"
        );
    }

    // ------------------------------------------------------------ every way, normally

    async fn every_way(&self) {
        let condition = Condition::Normally;
        let mut person = self.person().await;
        // The portal signs this browser in; the ways after it start from its session.
        let mut b = self.server.browser();
        for way in WAYS {
            let cell = self.cell(way, condition);
            match way {
                Way::AccountPortal => self.portal(cell, &mut b, &mut person).await,
                Way::AuthorizeSigningIn => self.signing_in_for_the_application(cell).await,
                Way::AuthorizeWithSession => {
                    self.answered_from_the_session(cell, &mut b, &person, &[])
                        .await
                }
                Way::PromptNone => {
                    self.answered_from_the_session(cell, &mut b, &person, &[("prompt", "none")])
                        .await
                }
                Way::AcrMultifactor => self.multifactor_asked(cell, &mut b, &person).await,
                Way::MaxAge => self.too_old(cell, &mut b, &mut person).await,
            }
        }
    }

    async fn portal(&self, cell: Cell, b: &mut Browser, person: &mut Person) {
        self.ready(b, person).await;
        let before = self.session_of(b).await;
        let since = self.mark();
        let r = self.prove(cell, b, person).await;
        let journey = follow(b, r).await;
        assert!(
            journey.ended_on(self.factor.lands_on()),
            "{cell}: lands on {}: {journey}",
            self.factor.lands_on()
        );
        let session = self.live_session(cell, b).await;
        self.assert_first_factor_logged(cell, &person.email, since, ACCOUNT_PORTAL, &session)
            .await;
        if let Some(before) = before {
            assert_ne!(before.id, session.id, "{cell}: a new session id");
            let live = self.server.sessions_of(&person.email).await;
            assert!(
                live.iter().all(|s| s.id != before.id),
                "{cell}: the re-confirmed session was replaced"
            );
        }
    }

    async fn signing_in_for_the_application(&self, cell: Cell) {
        if self.factor.starts_from_a_session() {
            // Proven inside a live session only: nobody re-authenticates during a request.
            return;
        }
        let mut person = self.person().await;
        let mut b = self.server.browser();
        let since = self.mark();
        let (verifier, challenge) = pkce();
        let r = b.get(&self.authorize_url(&challenge, &[])).await;
        assert_eq!(r.location(), Some("/sign-in"), "{cell}: asked to sign in");
        let r = self.prove(cell, &mut b, &mut person).await;
        let journey = follow(&mut b, r).await;
        let code = journey
            .code()
            .unwrap_or_else(|| panic!("{cell}: no code after signing in: {journey}"));
        let session = self.live_session(cell, &b).await;
        self.assert_first_factor_logged(cell, &person.email, since, &self.app.id, &session)
            .await;
        self.assert_sso_logged(cell, &person.email, since, &session, "success", None)
            .await;
        self.assert_token_of_factor(cell, &code, &verifier).await;
    }

    /// A code at once from the browser's session, through the decision for the application.
    async fn answered_from_the_session(
        &self,
        cell: Cell,
        b: &mut Browser,
        person: &Person,
        extra: &[(&str, &str)],
    ) {
        let session = self.live_session(cell, b).await;
        let since = self.mark();
        let (verifier, journey) = self.authorize(b, extra).await;
        assert!(
            journey.path.is_empty(),
            "{cell}: no page in between: {journey}"
        );
        let code = journey
            .code()
            .unwrap_or_else(|| panic!("{cell}: no code from the session: {journey}"));
        self.assert_sso_logged(cell, &person.email, since, &session, "success", None)
            .await;
        self.assert_token_of_factor(cell, &code, &verifier).await;
    }

    async fn multifactor_asked(&self, cell: Cell, b: &mut Browser, person: &Person) {
        let acr = ("acr_values", ACR_MULTIFACTOR);
        let session = self.live_session(cell, b).await;
        let since = self.mark();
        let Some(step_up) = self.factor.step_up() else {
            // The session proved two factors: a code, silently too, that says so.
            for extra in [vec![acr], vec![acr, ("prompt", "none")]] {
                let (verifier, journey) = self.authorize(b, &extra).await;
                let code = journey
                    .code()
                    .unwrap_or_else(|| panic!("{cell}: {extra:?}: no code: {journey}"));
                let claims = self.id_token(cell, &code, &verifier).await;
                assert!(
                    amr_of(&claims).iter().any(|m| m == "mfa"),
                    "{cell}: {claims}"
                );
                assert_eq!(claims["acr"], ACR_MULTIFACTOR, "{cell}: {claims}");
            }
            self.assert_sso_logged(cell, &person.email, since, &session, "success", None)
                .await;
            return;
        };
        let (_, journey) = self.authorize(b, &[acr, ("prompt", "none")]).await;
        assert_eq!(
            journey.error().as_deref(),
            Some("interaction_required"),
            "{cell}: prompt=none: {journey}"
        );
        self.assert_sso_logged(
            cell,
            &person.email,
            since,
            &session,
            "failure",
            Some("interaction_required"),
        )
        .await;
        let (_, challenge) = pkce();
        let r = b.get(&self.authorize_url(&challenge, &[acr])).await;
        assert_eq!(
            r.location(),
            Some(step_up),
            "{cell}: sent on for a second factor"
        );
        let journey = follow(b, r).await;
        self.assert_no_code(cell, &journey);
        self.assert_sso_logged(
            cell,
            &person.email,
            since,
            &session,
            "interrupted",
            Some("second_factor_required"),
        )
        .await;
    }

    async fn too_old(&self, cell: Cell, b: &mut Browser, person: &mut Person) {
        let session = self.live_session(cell, b).await;
        self.server.clock.advance_ms(2_000);
        let since = self.mark();
        let max_age = ("max_age", "1");
        let (_, journey) = self.authorize(b, &[max_age, ("prompt", "none")]).await;
        assert_eq!(
            journey.error().as_deref(),
            Some("login_required"),
            "{cell}: prompt=none: {journey}"
        );
        self.assert_sso_logged(
            cell,
            &person.email,
            since,
            &session,
            "failure",
            Some("login_required"),
        )
        .await;
        let (verifier, challenge) = pkce();
        let r = b.get(&self.authorize_url(&challenge, &[max_age])).await;
        assert_eq!(
            r.location(),
            Some("/sign-in"),
            "{cell}: asked to sign in again"
        );
        self.assert_sso_logged(
            cell,
            &person.email,
            since,
            &session,
            "interrupted",
            Some("reauthentication_required"),
        )
        .await;
        if !self.factor.signs_in_again() {
            return;
        }
        let since = self.mark();
        let r = self.prove(cell, b, person).await;
        let journey = follow(b, r).await;
        let code = journey
            .code()
            .unwrap_or_else(|| panic!("{cell}: no code after signing in again: {journey}"));
        let renewed = self.live_session(cell, b).await;
        assert!(renewed.auth_time >= since, "{cell}: a new sign-in");
        self.assert_first_factor_logged(cell, &person.email, since, &self.app.id, &renewed)
            .await;
        self.assert_sso_logged(cell, &person.email, since, &renewed, "success", None)
            .await;
        let claims = self.assert_token_of_factor(cell, &code, &verifier).await;
        assert!(
            claims["auth_time"].as_i64().unwrap() * 1000 > session.auth_time,
            "{cell}: the new auth_time"
        );
    }

    // ------------------------------------------------------------ MFA for everyone

    async fn every_way_with_mfa_for_everyone(&self) {
        let condition = Condition::MfaForEveryone;
        let mut person = self.person().await;
        let identity = &self.server.state.identity;
        let now = self.server.state.now();
        identity
            .set_mfa_policy(MfaPolicy { require_mfa: true }, now)
            .await
            .unwrap();
        let mut b = self.server.browser();
        for way in WAYS {
            let cell = self.cell(way, condition);
            match way {
                Way::AccountPortal => self.portal_enrolling(cell, &mut b, &mut person).await,
                Way::AuthorizeSigningIn => self.signing_in_enrolling(cell).await,
                Way::AuthorizeWithSession | Way::AcrMultifactor => {
                    let extra: &[(&str, &str)] = match way {
                        Way::AcrMultifactor => &[("acr_values", ACR_MULTIFACTOR)],
                        _ => &[],
                    };
                    self.session_enrolling(cell, &mut b, &person, extra).await
                }
                Way::PromptNone => self.silently_enrolling(cell, &mut b, &person).await,
                Way::MaxAge => self.too_old_enrolling(cell, &mut b, &mut person).await,
            }
        }
        identity
            .set_mfa_policy(MfaPolicy { require_mfa: false }, now)
            .await
            .unwrap();
    }

    /// With a passkey, the account has its second factor: the session reaches everything.
    /// Otherwise the account must add one first: the portal sends it there.
    async fn portal_enrolling(&self, cell: Cell, b: &mut Browser, person: &mut Person) {
        self.ready(b, person).await;
        let since = self.mark();
        let r = self.prove(cell, b, person).await;
        follow(b, r).await;
        let session = self.live_session(cell, b).await;
        self.assert_first_factor_logged(cell, &person.email, since, ACCOUNT_PORTAL, &session)
            .await;
        let r = b.get("/account").await;
        if self.factor.is_multifactor() {
            assert_eq!(r.status, StatusCode::OK, "{cell}: the portal: {}", r.body);
        } else {
            assert_eq!(
                r.location(),
                Some(ENROLL_BY_TENANT),
                "{cell}: sent to add a second factor"
            );
        }
    }

    /// Asserts the application was answered as the tenant's rule requires: a multifactor code
    /// when the account has its second factor, otherwise no code and the page to add one.
    async fn assert_enrollment_decided(
        &self,
        cell: Cell,
        journey: &Journey,
        verifier: &str,
        email: &str,
        since: i64,
        session: &Session,
    ) {
        if self.factor.is_multifactor() {
            let code = journey
                .code()
                .unwrap_or_else(|| panic!("{cell}: no code: {journey}"));
            self.assert_token_of_factor(cell, &code, verifier).await;
            self.assert_sso_logged(cell, email, since, session, "success", None)
                .await;
        } else {
            self.assert_no_code(cell, journey);
            assert!(
                journey.visited(ENROLL_BY_TENANT),
                "{cell}: sent to add a second factor: {journey}"
            );
            self.assert_sso_logged(
                cell,
                email,
                since,
                session,
                "interrupted",
                Some("enrollment_required"),
            )
            .await;
        }
    }

    async fn signing_in_enrolling(&self, cell: Cell) {
        if self.factor.starts_from_a_session() {
            return;
        }
        let mut person = self.person().await;
        let mut b = self.server.browser();
        let since = self.mark();
        let (verifier, challenge) = pkce();
        let r = b.get(&self.authorize_url(&challenge, &[])).await;
        assert_eq!(r.location(), Some("/sign-in"), "{cell}: asked to sign in");
        let r = self.prove(cell, &mut b, &mut person).await;
        let journey = follow(&mut b, r).await;
        let session = self.live_session(cell, &b).await;
        self.assert_first_factor_logged(cell, &person.email, since, &self.app.id, &session)
            .await;
        self.assert_enrollment_decided(cell, &journey, &verifier, &person.email, since, &session)
            .await;
    }

    async fn session_enrolling(
        &self,
        cell: Cell,
        b: &mut Browser,
        person: &Person,
        extra: &[(&str, &str)],
    ) {
        let session = self.live_session(cell, b).await;
        let since = self.mark();
        let (verifier, journey) = self.authorize(b, extra).await;
        self.assert_enrollment_decided(cell, &journey, &verifier, &person.email, since, &session)
            .await;
    }

    async fn silently_enrolling(&self, cell: Cell, b: &mut Browser, person: &Person) {
        let session = self.live_session(cell, b).await;
        let since = self.mark();
        let (verifier, journey) = self.authorize(b, &[("prompt", "none")]).await;
        if self.factor.is_multifactor() {
            let code = journey
                .code()
                .unwrap_or_else(|| panic!("{cell}: no code: {journey}"));
            self.assert_token_of_factor(cell, &code, &verifier).await;
            self.assert_sso_logged(cell, &person.email, since, &session, "success", None)
                .await;
            return;
        }
        assert_eq!(
            journey.error().as_deref(),
            Some("interaction_required"),
            "{cell}: {journey}"
        );
        self.assert_sso_logged(
            cell,
            &person.email,
            since,
            &session,
            "failure",
            Some("interaction_required"),
        )
        .await;
    }

    async fn too_old_enrolling(&self, cell: Cell, b: &mut Browser, person: &mut Person) {
        if !self.factor.signs_in_again() {
            return;
        }
        self.server.clock.advance_ms(2_000);
        let (verifier, challenge) = pkce();
        let r = b
            .get(&self.authorize_url(&challenge, &[("max_age", "1")]))
            .await;
        assert_eq!(
            r.location(),
            Some("/sign-in"),
            "{cell}: asked to sign in again"
        );
        let since = self.mark();
        let r = self.prove(cell, b, person).await;
        let journey = follow(b, r).await;
        let renewed = self.live_session(cell, b).await;
        self.assert_first_factor_logged(cell, &person.email, since, &self.app.id, &renewed)
            .await;
        self.assert_enrollment_decided(cell, &journey, &verifier, &person.email, since, &renewed)
            .await;
    }

    // ------------------------------------------------------------ a disabled account

    async fn every_way_once_disabled(&self) {
        let condition = Condition::AccountDisabled;
        let mut person = self.person().await;
        // Signed in at the portal, then disabled.
        let mut b = self.server.browser();
        self.portal(
            self.cell(Way::AccountPortal, condition),
            &mut b,
            &mut person,
        )
        .await;
        let user = self.server.user(&person.email).await;
        assert!(self
            .server
            .store
            .set_user_disabled(&user.id, true, self.server.state.now())
            .await
            .unwrap());
        for way in WAYS {
            let cell = self.cell(way, condition);
            let since = self.mark();
            match way {
                Way::AccountPortal => {
                    let r = b.get("/account").await;
                    assert_eq!(r.location(), Some("/sign-in"), "{cell}: signed out");
                    if self.factor.starts_from_a_session() {
                        let r = self.prove(cell, &mut b, &mut person).await;
                        assert_eq!(r.location(), Some("/sign-in"), "{cell}: {}", r.body);
                        assert!(self.session_of(&b).await.is_none(), "{cell}: no session");
                    } else {
                        self.refused(cell, &mut person).await;
                    }
                }
                Way::AuthorizeSigningIn => {
                    if self.factor.signs_in_again() {
                        self.refused(cell, &mut person).await;
                    }
                }
                // The session ended with the account: every request is answered as without one.
                Way::AuthorizeWithSession => {
                    let (_, journey) = self.authorize(&mut b, &[]).await;
                    assert!(
                        journey.visited("/sign-in"),
                        "{cell}: asked to sign in: {journey}"
                    );
                    self.assert_no_code(cell, &journey);
                }
                Way::PromptNone | Way::AcrMultifactor | Way::MaxAge => {
                    let extra: &[(&str, &str)] = match way {
                        Way::AcrMultifactor => &[("acr_values", ACR_MULTIFACTOR)],
                        Way::MaxAge => &[("max_age", "1")],
                        _ => &[],
                    };
                    let mut params = extra.to_vec();
                    params.push(("prompt", "none"));
                    let (_, journey) = self.authorize(&mut b, &params).await;
                    assert_eq!(
                        journey.error().as_deref(),
                        Some("login_required"),
                        "{cell}: {journey}"
                    );
                }
            }
            let answered = self.log(&person.email, since).await;
            assert!(
                answered.iter().all(|r| r.method != "sso"),
                "{cell}: no answer from the ended session: {:?}",
                answered.iter().map(|r| &r.method).collect::<Vec<_>>()
            );
            if self.factor.starts_from_a_session() {
                assert!(
                    answered.is_empty(),
                    "{cell}: nothing was proven: {:?}",
                    answered.iter().map(|r| &r.method).collect::<Vec<_>>()
                );
            }
        }
    }

    async fn every_way_blocked_by_policy(&self) {
        use gatehouse_core::conditional_access::{
            Assignments, Grant, LocationCondition, LocationScope, NamedLocation, Policy,
            PolicyState, Targets,
        };
        let condition = Condition::BlockedByPolicy;
        let mut person = self.person().await;
        let mut b = self.server.browser();
        self.portal(
            self.cell(Way::AccountPortal, condition),
            &mut b,
            &mut person,
        )
        .await;
        let identity = &self.server.state.identity;
        let now = self.server.state.now();
        identity
            .save_location(
                &NamedLocation {
                    id: "test-browsers".into(),
                    name: "The test browsers".into(),
                    trusted: false,
                    ranges: vec!["203.0.113.0/24".parse().unwrap()],
                    countries: vec![],
                },
                now,
            )
            .await
            .unwrap();
        let policy = Policy {
            id: "block-test-browsers".into(),
            name: "Block the test browsers".into(),
            state: PolicyState::On,
            assignments: Assignments {
                all_users: true,
                ..Assignments::default()
            },
            targets: Targets {
                all_applications: true,
                account_portal: true,
                ..Targets::default()
            },
            conditions: gatehouse_core::conditional_access::Conditions {
                locations: Some(LocationCondition {
                    include: LocationScope::Selected(vec!["test-browsers".into()]),
                    ..LocationCondition::default()
                }),
                ..Default::default()
            },
            grant: Grant::Block,
            session: Default::default(),
        };
        identity.save_policy(&policy, None, now).await.unwrap();
        let session = self
            .live_session(self.cell(Way::AccountPortal, condition), &b)
            .await;
        for way in WAYS {
            let cell = self.cell(way, condition);
            let since = self.mark();
            match way {
                Way::AccountPortal => {
                    if self.factor.signs_in_again() {
                        self.refused_because(cell, &mut person, "blocked", "blocked_by_policy")
                            .await;
                    }
                }
                Way::AuthorizeSigningIn => {
                    if self.factor.signs_in_again() {
                        self.refused_because(cell, &mut person, "blocked", "blocked_by_policy")
                            .await;
                    }
                }
                Way::AuthorizeWithSession | Way::PromptNone | Way::AcrMultifactor => {
                    let mut params: Vec<(&str, &str)> = match way {
                        Way::AcrMultifactor => vec![("acr_values", ACR_MULTIFACTOR)],
                        _ => vec![],
                    };
                    if way == Way::PromptNone {
                        params.push(("prompt", "none"));
                    }
                    let (_, journey) = self.authorize(&mut b, &params).await;
                    assert_eq!(
                        journey.error().as_deref(),
                        Some("access_denied"),
                        "{cell}: {journey}"
                    );
                    self.assert_no_code(cell, &journey);
                    self.assert_sso_logged(
                        cell,
                        &person.email,
                        since,
                        &session,
                        "blocked",
                        Some("blocked_by_policy"),
                    )
                    .await;
                }
                // A session older than the request signs in again first, and that sign-in is
                // what the policy then refuses.
                Way::MaxAge => {
                    self.server.clock.advance_ms(2_000);
                    let (_, journey) = self
                        .authorize(&mut b, &[("max_age", "1"), ("prompt", "none")])
                        .await;
                    assert_eq!(
                        journey.error().as_deref(),
                        Some("login_required"),
                        "{cell}: {journey}"
                    );
                }
            }
        }
        // The live portal session meets the block at its next page: it ends there, logged.
        let since = self.mark();
        let r = b.get("/account").await;
        let cell = self.cell(Way::AccountPortal, condition);
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{cell}: the portal under a block"
        );
        assert!(
            self.session_of(&b).await.is_none(),
            "{cell}: the blocked session ended"
        );
        let expected = Logged {
            method: Method::SingleSignOn.as_str(),
            application: ACCOUNT_PORTAL,
            result: "blocked",
            reason: Some("blocked_by_policy"),
            session: Some(&session.id),
        };
        self.assert_logged(cell, &person.email, since, expected)
            .await;
        identity
            .delete_policy("block-test-browsers", None, self.server.state.now())
            .await
            .unwrap();
        identity
            .delete_location("test-browsers", self.server.state.now())
            .await
            .unwrap();
    }

    /// The first factor again, in a new browser, for the portal or (when the cell's way is
    /// signing in during `/authorize`) the application: proven, then refused by the decision
    /// step, with no session and no code.
    async fn refused(&self, cell: Cell, person: &mut Person) {
        self.refused_because(cell, person, "failure", "account_disabled")
            .await
    }

    /// [`Self::refused`], with the result and the reason the log must show.
    async fn refused_because(
        &self,
        cell: Cell,
        person: &mut Person,
        result: &'static str,
        reason: &'static str,
    ) {
        if self.factor.makes_an_account() {
            // A sign-up makes a new account, never a disabled one.
            return;
        }
        let hash_before = self.server.user(&person.email).await.password_hash;
        let mut b = self.server.browser();
        let since = self.mark();
        let application = if cell.way == Way::AuthorizeSigningIn {
            let (_, challenge) = pkce();
            let r = b.get(&self.authorize_url(&challenge, &[])).await;
            assert_eq!(r.location(), Some("/sign-in"), "{cell}: asked to sign in");
            self.app.id.as_str()
        } else {
            ACCOUNT_PORTAL
        };
        let r = self.prove(cell, &mut b, person).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{cell}: refused: {}",
            r.body
        );
        let journey = follow(&mut b, r).await;
        self.assert_no_code(cell, &journey);
        assert!(self.session_of(&b).await.is_none(), "{cell}: no session");
        let expected = Logged {
            method: self.factor.logged_as().as_str(),
            application,
            result,
            reason: Some(reason),
            session: None,
        };
        self.assert_logged(cell, &person.email, since, expected)
            .await;
        assert_eq!(
            self.server.user(&person.email).await.password_hash,
            hash_before,
            "{cell}: the password is unchanged"
        );
    }
}
