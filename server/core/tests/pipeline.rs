//! The sign-in pipeline driven through the core's public operations, without HTTP: every way
//! in ends in the one decision step, and what that step decides (a session, a pending second
//! factor, a refusal) is checked in the database it writes to. Time is a [`ManualClock`] that
//! the tests move, so expiry and authenticator steps need no waiting.
//!
//! Each scenario runs on a fresh SQLite database, and on a fresh PostgreSQL database when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set.

// Test helpers fail loudly: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use gatehouse_core::clock::{Clock, ManualClock};
use gatehouse_core::codes::CODE_TTL_MS;
use gatehouse_core::hashing::PasswordHasher;
use gatehouse_core::identity::admin::AccountAction;
use gatehouse_core::identity::backchannel::{LogoutNotice, BACKCHANNEL_LOGOUT_EVENT};
use gatehouse_core::identity::oidc::{AuthorizeNext, Client, ClientInput};
use gatehouse_core::identity::{
    AuthError, CodeOutcome, Identity, IdentityConfig, LogoutDelivery, MfaPolicy, RequestContext,
    SignInOutcome, SignedIn, Strength, ACCOUNT_PORTAL,
};
use gatehouse_core::mail::{DevelopmentOutbox, EmailKind, EmailText, EmailTexts};
use gatehouse_core::secret::{SecretKey, SecretString};
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_core::store::{SignInLogEntry, Store, User};
use gatehouse_core::totp::{self, TotpSecret};

const PASSWORD: &str = "violet-harbor-lantern-42";
const NEW_PASSWORD: &str = "amber-meadow-compass-97";
const CLIENT_IP: &str = "203.0.113.7";
const REDIRECT_URI: &str = "https://app.example.com/callback";
const BACKCHANNEL_URI: &str = "https://app.example.com/backchannel-logout";
/// A well-formed PKCE challenge (43 characters of the unreserved set).
const CODE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Email texts whose subject starts with the code, followed by the message's catalogue key.
#[derive(Debug)]
struct PlainEmails;

impl EmailTexts for PlainEmails {
    fn compose(&self, kind: EmailKind, code: Option<&str>) -> EmailText {
        let subject = match code {
            Some(code) => format!("{code} {}", kind.key()),
            None => kind.key().to_string(),
        };
        EmailText {
            body: subject.clone(),
            subject,
        }
    }
}

/// The logout tokens handed over for delivery, one entry per delivery.
#[derive(Default)]
struct RecordedLogouts {
    deliveries: Mutex<Vec<Vec<LogoutNotice>>>,
}

impl LogoutDelivery for RecordedLogouts {
    fn deliver(&self, notices: Vec<LogoutNotice>) {
        self.deliveries.lock().unwrap().push(notices);
    }
}

impl RecordedLogouts {
    fn take(&self) -> Vec<Vec<LogoutNotice>> {
        std::mem::take(&mut *self.deliveries.lock().unwrap())
    }
}

/// One tenant's identity core on its own database, with a clock the test moves.
struct Deployment {
    identity: Identity,
    /// The test's own handle on the core's database, for arranging and reading what the core
    /// wrote.
    store: Store,
    clock: Arc<ManualClock>,
    logouts: Arc<RecordedLogouts>,
}

impl Deployment {
    async fn on_sqlite() -> Self {
        Self::on(&fresh_sqlite_url()).await
    }

    /// A deployment on a fresh PostgreSQL database, or `None` (after saying so) when no test
    /// server is configured.
    async fn on_postgres() -> Option<Self> {
        let Some(base) = postgres_url() else {
            eprintln!("PostgreSQL pipeline test skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
            return None;
        };
        let url = fresh_postgres_url(&base)
            .await
            .expect("create postgres database");
        Some(Self::on(&url).await)
    }

    async fn on(url: &str) -> Self {
        let store = Store::connect(url, 4).await.expect("connect");
        store.migrate().await.expect("migrate");
        let logouts = Arc::new(RecordedLogouts::default());
        let identity = Identity::new(
            store.clone(),
            PasswordHasher::for_this_machine().unwrap(),
            SecretKey::generate(),
            Arc::new(DevelopmentOutbox),
            Arc::new(DevelopmentOutbox),
            IdentityConfig::default(),
        )
        .unwrap()
        .with_logout_delivery(logouts.clone());
        Deployment {
            identity,
            store,
            clock: Arc::new(ManualClock::default()),
            logouts,
        }
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn later(&self, ms: i64) {
        self.clock.advance_ms(ms);
    }

    fn ctx(&self) -> RequestContext {
        RequestContext {
            application: ACCOUNT_PORTAL.to_string(),
            client_ip: CLIENT_IP.to_string(),
            user_agent: "pipeline test".to_string(),
            product_name: "Gatehouse".to_string(),
            emails: Arc::new(PlainEmails),
            device: None,
            policy_results: None,
            sign_in_id: None,
            sign_in_risk: None,
        }
    }

    /// The code in the newest message of `kind` sent to `email`.
    async fn code_sent(&self, email: &str, kind: EmailKind) -> String {
        let suffix = format!(" {}", kind.key());
        let messages = self.store().messages_for(email).await.unwrap();
        let newest = messages
            .iter()
            .find(|m| m.subject.ends_with(&suffix))
            .unwrap_or_else(|| panic!("no {} message was sent to {email}", kind.key()));
        newest
            .subject
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    async fn user(&self, email: &str) -> User {
        self.store()
            .find_user_by_email(email)
            .await
            .unwrap()
            .expect("the account exists")
    }

    /// How many rows `table` has.
    async fn rows(&self, table: &str) -> i64 {
        self.store()
            .table_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(name, _)| name == table)
            .unwrap_or_else(|| panic!("no table {table}"))
            .1
    }

    /// The newest sign-in log row under `email`.
    async fn newest_sign_in(&self, email: &str) -> SignInLogEntry {
        self.store()
            .sign_ins_for_email(email, 1)
            .await
            .unwrap()
            .into_iter()
            .next()
            .expect("a sign-in was logged")
    }

    /// Signs up `email` with [`PASSWORD`] through its emailed code; the sign-up's session.
    async fn signed_up(&self, email: &str) -> SignedIn {
        let ctx = self.ctx();
        let flow = self
            .identity
            .start_password_sign_up(
                &ctx,
                "Pat Example",
                email,
                &SecretString::new(PASSWORD),
                self.now(),
            )
            .await
            .unwrap();
        let code = self.code_sent(email, EmailKind::SignUpCode).await;
        match self
            .identity
            .verify_code(&ctx, &flow.flow_id, &code, self.now())
            .await
            .unwrap()
        {
            CodeOutcome::SignIn(SignInOutcome::SignedIn(signed)) => *signed,
            other => panic!("sign-up did not sign in: {other:?}"),
        }
    }

    async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<SignInOutcome, AuthError> {
        self.identity
            .sign_in_with_password(&self.ctx(), email, &SecretString::new(password), self.now())
            .await
    }

    /// A password sign-in that must end in a session.
    async fn signed_in(&self, email: &str, password: &str) -> SignedIn {
        match self.sign_in_with_password(email, password).await.unwrap() {
            SignInOutcome::SignedIn(signed) => *signed,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    /// Adds an authenticator app with the session `signed`; its id and secret. The clock then
    /// moves to the next step, so the code that confirmed it is not the one a sign-in sees.
    async fn enroll_authenticator(&self, signed: &SignedIn) -> (String, TotpSecret) {
        let now = self.now();
        let enrollment = self
            .identity
            .begin_totp_enrollment(&signed.session, &signed.user, "Gatehouse", now)
            .await
            .unwrap();
        let secret = TotpSecret::from_bytes(totp::base32_decode(&enrollment.secret).unwrap());
        self.identity
            .confirm_totp_enrollment(
                &self.ctx(),
                &signed.session,
                &signed.user,
                &enrollment.id,
                &authenticator_code(&secret, now),
                now,
            )
            .await
            .unwrap();
        self.later(totp::STEP_SECONDS * 1000);
        (enrollment.id, secret)
    }

    /// Signs in with password and authenticator app.
    async fn signed_in_with_authenticator(&self, email: &str, secret: &TotpSecret) -> SignedIn {
        let pending_id = match self.sign_in_with_password(email, PASSWORD).await.unwrap() {
            SignInOutcome::SecondFactorRequired { pending_id } => pending_id,
            other => panic!("expected a pending second factor, got {other:?}"),
        };
        let now = self.now();
        self.identity
            .verify_second_factor(
                &self.ctx(),
                &pending_id,
                &authenticator_code(secret, now),
                now,
            )
            .await
            .unwrap()
    }

    /// A first-party application, told of ending sessions at `backchannel` when given.
    async fn register_application(&self, name: &str, backchannel: Option<&str>) -> Client {
        self.identity
            .register_client(
                &ClientInput {
                    name: name.to_string(),
                    confidential: false,
                    redirect_uris: vec![REDIRECT_URI.to_string()],
                    first_party: true,
                    backchannel_logout_uri: backchannel.map(str::to_string),
                    ..ClientInput::default()
                },
                self.now(),
            )
            .await
            .unwrap()
            .client
    }

    /// An authorization request of `client` answered with the browser's session `token`.
    async fn authorize(&self, client: &Client, token: &SecretString) -> AuthorizeNext {
        let params: Vec<(String, String)> = [
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s1"),
            ("code_challenge", CODE_CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let Ok((client, req)) = self.identity.validate_authorization(&params).await else {
            panic!("the authorization request was rejected");
        };
        let session = self
            .identity
            .authenticate(token.expose(), self.now())
            .await
            .unwrap();
        assert!(session.is_some(), "the session behind the token is live");
        self.identity
            .authorize(&self.ctx(), client, req, session, self.now())
            .await
            .unwrap()
    }

    /// An application signs in with the session `token` and receives a code.
    async fn application_uses(&self, client: &Client, token: &SecretString) {
        match self.authorize(client, token).await {
            AuthorizeNext::Redirect(url) => {
                assert!(url.starts_with(REDIRECT_URI), "{url}");
                assert!(url.contains("code="), "{url}");
            }
            other => panic!("expected a code, got {other:?}"),
        }
    }

    /// Whether the session behind `token` is still live.
    async fn is_live(&self, token: &SecretString) -> bool {
        self.identity
            .authenticate(token.expose(), self.now())
            .await
            .unwrap()
            .is_some()
    }

    /// The delivered logout tokens as (client, uri, verified claims), in delivery order.
    async fn delivered_logouts(&self) -> Vec<Vec<(String, String, serde_json::Value)>> {
        let mut out = Vec::new();
        for delivery in self.logouts.take() {
            let mut notices = Vec::new();
            for notice in delivery {
                let client = self.identity.client(&notice.client_id).await.unwrap();
                let alg = client.expect("the application exists").id_token_alg;
                let key = self.identity.signing_key(alg, self.now()).await.unwrap();
                let claims = key.verify(&notice.token).expect("signed by the provider");
                notices.push((notice.client_id, notice.uri, claims));
            }
            out.push(notices);
        }
        out
    }
}

/// The authenticator app's code at `now` (milliseconds).
fn authenticator_code(secret: &TotpSecret, now: i64) -> String {
    totp::code_for_step(secret, totp::step_at(now.div_euclid(1000)))
}

fn is_multifactor(amr: &str) -> bool {
    Strength::parse(amr).is_multifactor()
}

/// Runs each scenario as `<scenario>::sqlite` and `<scenario>::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn sqlite() {
                    super::$scenario(super::Deployment::on_sqlite().await).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(deployment) = super::Deployment::on_postgres().await {
                        super::$scenario(deployment).await;
                    }
                }
            }
        )*
    };
}

on_both_backends!(
    a_password_without_second_factor_signs_in_with_one_factor,
    a_password_on_an_account_with_an_authenticator_waits_for_it,
    a_disabled_account_is_refused_after_its_first_factor,
    an_emailed_code_signs_in_once_and_only_while_it_lives,
    the_tenants_mfa_rule_sends_a_single_factor_session_to_enrollment,
    a_reauthentication_with_one_factor_drops_the_old_mfa,
    ending_sessions_tells_the_applications_that_used_them,
    the_last_method_stays_while_a_policy_asks_for_a_second_factor,
);

async fn a_password_without_second_factor_signs_in_with_one_factor(d: Deployment) {
    let email = "pat@example.com";
    d.signed_up(email).await;
    d.later(1_000);
    let sessions_before = d.rows("sessions").await;

    let signed = d.signed_in(email, PASSWORD).await;

    assert_eq!(d.rows("sessions").await, sessions_before + 1);
    assert_eq!(signed.session.amr, "pwd");
    assert!(!is_multifactor(&signed.session.amr));
    assert!(!signed.session.is_multifactor());
    assert_eq!(signed.session.second_factor_id, None);
    let (session, user) = d
        .identity
        .authenticate(signed.token.expose(), d.now())
        .await
        .unwrap()
        .expect("the new session is live");
    assert_eq!(session.id, signed.session.id);
    assert_eq!(user.email, email);

    let row = d.newest_sign_in(email).await;
    assert_eq!(row.method, "password");
    assert_eq!(row.result, "success");
    assert_eq!(row.failure_reason, None);
    assert_eq!(row.application, ACCOUNT_PORTAL);
    assert_eq!(row.client_ip, CLIENT_IP);
    assert_eq!(row.user_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(row.session_id.as_deref(), Some(signed.session.id.as_str()));
    let recent = d.store().recent_sign_ins(10).await.unwrap();
    assert_eq!(recent.first().map(|r| &r.id), Some(&row.id));

    // A wrong password is logged too, and makes no session.
    let sessions_before = d.rows("sessions").await;
    let err = d
        .sign_in_with_password(email, "not-the-password-at-all")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);
    assert_eq!(d.rows("sessions").await, sessions_before);
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("password", "failure")
    );
    assert_eq!(row.failure_reason.as_deref(), Some("invalid_credentials"));
    assert_eq!(row.session_id, None);
}

async fn a_password_on_an_account_with_an_authenticator_waits_for_it(d: Deployment) {
    let email = "robin@example.com";
    let signed_up = d.signed_up(email).await;
    let (authenticator_id, secret) = d.enroll_authenticator(&signed_up).await;
    let sessions_before = d.rows("sessions").await;

    let pending_id = match d.sign_in_with_password(email, PASSWORD).await.unwrap() {
        SignInOutcome::SecondFactorRequired { pending_id } => pending_id,
        other => panic!("expected a pending second factor, got {other:?}"),
    };

    // No session yet: only a pending sign-in, logged as interrupted.
    assert_eq!(d.rows("sessions").await, sessions_before);
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("password", "interrupted")
    );
    assert_eq!(
        row.failure_reason.as_deref(),
        Some("second_factor_required")
    );
    assert_eq!(row.session_id, None);
    assert!(d
        .identity
        .pending_second_factor(&pending_id, d.now())
        .await
        .unwrap()
        .is_some());

    // A wrong code makes no session and leaves the pending sign-in open.
    let right = authenticator_code(&secret, d.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let err = d
        .identity
        .verify_second_factor(&d.ctx(), &pending_id, wrong, d.now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::SecondFactorWrong);
    assert_eq!(d.rows("sessions").await, sessions_before);

    let now = d.now();
    let signed = d
        .identity
        .verify_second_factor(
            &d.ctx(),
            &pending_id,
            &authenticator_code(&secret, now),
            now,
        )
        .await
        .unwrap();
    assert_eq!(d.rows("sessions").await, sessions_before + 1);
    assert_eq!(signed.session.amr, "pwd otp mfa");
    assert!(is_multifactor(&signed.session.amr));
    assert_eq!(
        Strength::parse(&signed.session.amr).amr(),
        vec!["pwd", "otp", "mfa"]
    );
    assert_eq!(
        signed.session.second_factor_id.as_deref(),
        Some(authenticator_id.as_str())
    );
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("totp", "success")
    );
    assert_eq!(row.session_id.as_deref(), Some(signed.session.id.as_str()));

    // The pending sign-in was used up: a good code of the next step cannot reuse it ...
    d.later(totp::STEP_SECONDS * 1000);
    let now = d.now();
    let next_code = authenticator_code(&secret, now);
    let err = d
        .identity
        .verify_second_factor(&d.ctx(), &pending_id, &next_code, now)
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::CodeDead);
    assert_eq!(d.rows("sessions").await, sessions_before + 1);
    // ... while the same code completes a new one.
    let again = match d.sign_in_with_password(email, PASSWORD).await.unwrap() {
        SignInOutcome::SecondFactorRequired { pending_id } => pending_id,
        other => panic!("expected a pending second factor, got {other:?}"),
    };
    assert_ne!(again, pending_id);
    let signed_again = d
        .identity
        .verify_second_factor(&d.ctx(), &again, &next_code, now)
        .await
        .unwrap();
    assert!(is_multifactor(&signed_again.session.amr));
}

async fn a_disabled_account_is_refused_after_its_first_factor(d: Deployment) {
    let email = "casey@example.com";
    let signed_up = d.signed_up(email).await;
    let (admin, _) = d
        .identity
        .create_admin("admin@example.com", "Admin", d.now())
        .await
        .unwrap();
    d.identity
        .admin_account_action(
            &d.ctx(),
            &admin,
            &signed_up.user.id,
            AccountAction::Disable,
            d.now(),
        )
        .await
        .unwrap();
    assert!(!d.is_live(&signed_up.token).await);
    assert!(d.user(email).await.disabled);
    d.later(1_000);
    let sessions_before = d.rows("sessions").await;
    let codes_before = d.rows("one_time_codes").await;

    // The right password reaches the decision step, which refuses the account ...
    let err = d.sign_in_with_password(email, PASSWORD).await.unwrap_err();
    assert_eq!(err, AuthError::AccountDisabled);
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("password", "failure")
    );
    assert_eq!(row.failure_reason.as_deref(), Some("account_disabled"));
    assert_eq!(row.user_id.as_deref(), Some(signed_up.user.id.as_str()));
    assert_eq!(row.session_id, None);
    assert_eq!(d.rows("sessions").await, sessions_before);
    assert_eq!(d.rows("one_time_codes").await, codes_before);
    // ... while a wrong one fails at the first factor and says nothing about the account.
    let err = d
        .sign_in_with_password(email, "not-the-password-at-all")
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);

    // A proven mailbox is refused at the same step.
    let flow = d
        .identity
        .start_code_sign_in(&d.ctx(), email, d.now())
        .await
        .unwrap();
    let code = d.code_sent(email, EmailKind::SignInCode).await;
    let err = d
        .identity
        .verify_code(&d.ctx(), &flow.flow_id, &code, d.now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::AccountDisabled);
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("email_code", "failure")
    );
    assert_eq!(row.failure_reason.as_deref(), Some("account_disabled"));
    assert_eq!(row.session_id, None);
    assert_eq!(d.rows("sessions").await, sessions_before);
    let user = d.user(email).await;
    assert!(d
        .identity
        .list_sessions(&user.id, d.now())
        .await
        .unwrap()
        .is_empty());
}

async fn an_emailed_code_signs_in_once_and_only_while_it_lives(d: Deployment) {
    let email = "sam@example.com";
    d.signed_up(email).await;
    d.later(1_000);
    let sessions_before = d.rows("sessions").await;

    let flow = d
        .identity
        .start_code_sign_in(&d.ctx(), email, d.now())
        .await
        .unwrap();
    let code = d.code_sent(email, EmailKind::SignInCode).await;
    let signed = match d
        .identity
        .verify_code(&d.ctx(), &flow.flow_id, &code, d.now())
        .await
        .unwrap()
    {
        CodeOutcome::SignIn(SignInOutcome::SignedIn(signed)) => *signed,
        other => panic!("expected a session, got {other:?}"),
    };
    assert_eq!(signed.session.amr, "email");
    assert!(!is_multifactor(&signed.session.amr));
    assert_eq!(d.rows("sessions").await, sessions_before + 1);
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("email_code", "success")
    );
    assert_eq!(row.session_id.as_deref(), Some(signed.session.id.as_str()));

    // Single use: the same code on the same flow is dead.
    let err = d
        .identity
        .verify_code(&d.ctx(), &flow.flow_id, &code, d.now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::CodeDead);
    assert_eq!(d.rows("sessions").await, sessions_before + 1);

    // A code past its lifetime is refused, right as it is.
    d.later(1_000);
    let flow = d
        .identity
        .start_code_sign_in(&d.ctx(), email, d.now())
        .await
        .unwrap();
    let code = d.code_sent(email, EmailKind::SignInCode).await;
    d.later(CODE_TTL_MS + 1);
    let err = d
        .identity
        .verify_code(&d.ctx(), &flow.flow_id, &code, d.now())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::CodeDead);
    assert_eq!(d.rows("sessions").await, sessions_before + 1);
}

async fn the_tenants_mfa_rule_sends_a_single_factor_session_to_enrollment(d: Deployment) {
    let email = "alex@example.com";
    let application = d.register_application("Shop", None).await;
    d.signed_up(email).await;
    d.identity
        .set_mfa_policy(MfaPolicy { require_mfa: true }, d.now())
        .await
        .unwrap();
    assert!(d.identity.mfa_policy().await.unwrap().require_mfa);
    d.later(1_000);

    // The decision step starts a session (there is no factor to wait for) ...
    let signed = d.signed_in(email, PASSWORD).await;
    assert_eq!(signed.session.amr, "pwd");
    assert!(d.identity.needs_enrollment(&signed.user).await.unwrap());

    // ... which an application cannot use until a factor is added.
    let grants_before = d.rows("oauth_grants").await;
    let request_id = match d.authorize(&application, &signed.token).await {
        AuthorizeNext::Enroll {
            request_id,
            by_tenant,
        } => {
            assert!(by_tenant);
            request_id
        }
        other => panic!("expected enrollment, got {other:?}"),
    };
    assert_eq!(d.rows("oauth_grants").await, grants_before);
    let row = d.newest_sign_in(email).await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("sso", "interrupted")
    );
    assert_eq!(row.failure_reason.as_deref(), Some("enrollment_required"));
    assert_eq!(row.application, application.id);

    // The session may add the factor; the waiting request then goes on to its code.
    let (authenticator_id, _) = d.enroll_authenticator(&signed).await;
    assert!(!d.identity.needs_enrollment(&signed.user).await.unwrap());
    let (session, user) = d
        .identity
        .authenticate(signed.token.expose(), d.now())
        .await
        .unwrap()
        .expect("the session is live");
    match d
        .identity
        .resume_authorization(&d.ctx(), &request_id, Some((session, user)), d.now())
        .await
        .unwrap()
    {
        Some(AuthorizeNext::Redirect(url)) => assert!(url.contains("code="), "{url}"),
        other => panic!("expected a code, got {other:?}"),
    }
    assert_eq!(d.rows("oauth_grants").await, grants_before + 1);

    // The only factor cannot be removed while the rule stands.
    let err = d
        .identity
        .remove_totp(
            &d.ctx(),
            &signed.session,
            &signed.user,
            &authenticator_id,
            d.now(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::LastMethod);
}

async fn a_reauthentication_with_one_factor_drops_the_old_mfa(d: Deployment) {
    let email = "jo@example.com";
    let signed_up = d.signed_up(email).await;
    let (authenticator_id, secret) = d.enroll_authenticator(&signed_up).await;
    let signed = d.signed_in_with_authenticator(email, &secret).await;
    assert!(is_multifactor(&signed.session.amr));
    d.later(60_000);

    // A wrong password changes nothing.
    let err = d
        .identity
        .reauthenticate_with_password(
            &d.ctx(),
            &signed.session,
            &signed.user,
            &SecretString::new("not-the-password-at-all"),
            d.now(),
        )
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);
    assert!(d.is_live(&signed.token).await);

    let renewed = d
        .identity
        .reauthenticate_with_password(
            &d.ctx(),
            &signed.session,
            &signed.user,
            &SecretString::new(PASSWORD),
            d.now(),
        )
        .await
        .unwrap();
    // A new session that proved what was just proven, and nothing it had before.
    assert_ne!(renewed.session.id, signed.session.id);
    assert_eq!(renewed.session.amr, "pwd");
    assert!(!is_multifactor(&renewed.session.amr));
    assert!(!renewed.session.is_multifactor());
    assert!(renewed.session.auth_time > signed.session.auth_time);
    // Still bound to the factor its lineage was completed with.
    assert_eq!(
        renewed.session.second_factor_id.as_deref(),
        Some(authenticator_id.as_str())
    );
    assert!(!d.is_live(&signed.token).await);
    assert!(d.is_live(&renewed.token).await);
    let (stored, _) = d
        .identity
        .authenticate(renewed.token.expose(), d.now())
        .await
        .unwrap()
        .expect("the renewed session is live");
    assert_eq!(stored.amr, "pwd");
}

async fn ending_sessions_tells_the_applications_that_used_them(d: Deployment) {
    let email = "kim@example.com";
    let told = d.register_application("Shop", Some(BACKCHANNEL_URI)).await;
    let untold = d.register_application("Blog", None).await;
    let current = d.signed_up(email).await;
    let user_id = current.user.id.clone();

    // Sign-out: the one session's application is told, with the session named.
    let first = d.signed_in(email, PASSWORD).await;
    d.application_uses(&told, &first.token).await;
    d.identity
        .sign_out(first.token.expose(), d.now())
        .await
        .unwrap();
    assert!(!d.is_live(&first.token).await);
    let deliveries = d.delivered_logouts().await;
    assert_eq!(deliveries.len(), 1, "one delivery for one ended session");
    let [(client_id, uri, claims)] = deliveries[0].as_slice() else {
        panic!("expected one logout token, got {:?}", deliveries[0]);
    };
    assert_eq!(client_id, &told.id);
    assert_eq!(uri, BACKCHANNEL_URI);
    assert_eq!(claims["sid"], first.session.id.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["aud"], told.id.as_str());
    assert_eq!(claims["iss"], d.identity.issuer());
    assert!(claims["events"].get(BACKCHANNEL_LOGOUT_EVENT).is_some());

    // A session no application used ends silently.
    let unused = d.signed_in(email, PASSWORD).await;
    d.identity
        .sign_out(unused.token.expose(), d.now())
        .await
        .unwrap();
    assert!(d.delivered_logouts().await.is_empty());

    // A password change ends every other session, and only those are told of.
    let used = d.signed_in(email, PASSWORD).await;
    let unused = d.signed_in(email, PASSWORD).await;
    d.application_uses(&told, &used.token).await;
    d.application_uses(&told, &current.token).await;
    d.identity
        .change_password(
            &d.ctx(),
            &current.session,
            &current.user,
            &SecretString::new(PASSWORD),
            &SecretString::new(NEW_PASSWORD),
            d.now(),
        )
        .await
        .unwrap();
    assert!(d.is_live(&current.token).await);
    assert!(!d.is_live(&used.token).await);
    assert!(!d.is_live(&unused.token).await);
    let deliveries = d.delivered_logouts().await;
    assert_eq!(deliveries.len(), 1);
    let sids: Vec<&str> = deliveries[0]
        .iter()
        .map(|(_, _, claims)| claims["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, vec![used.session.id.as_str()]);

    // Signing out everywhere tells the application of each session it used, and never the
    // application that asked not to be told.
    let second = d.signed_in(email, NEW_PASSWORD).await;
    d.application_uses(&told, &second.token).await;
    d.application_uses(&untold, &second.token).await;
    let ended = d
        .identity
        .revoke_all_sessions(&user_id, d.now())
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert!(!d.is_live(&current.token).await);
    assert!(!d.is_live(&second.token).await);
    let deliveries = d.delivered_logouts().await;
    assert_eq!(deliveries.len(), 1);
    let mut told_of: Vec<(&str, &str)> = deliveries[0]
        .iter()
        .map(|(client_id, _, claims)| (client_id.as_str(), claims["sid"].as_str().unwrap()))
        .collect();
    told_of.sort();
    let mut expected = vec![
        (told.id.as_str(), current.session.id.as_str()),
        (told.id.as_str(), second.session.id.as_str()),
    ];
    expected.sort();
    assert_eq!(told_of, expected);
    assert!(d
        .identity
        .list_sessions(&user_id, d.now())
        .await
        .unwrap()
        .is_empty());
}

async fn the_last_method_stays_while_a_policy_asks_for_a_second_factor(d: Deployment) {
    use gatehouse_core::conditional_access::{
        Assignments, Conditions, Control, Grant, Policy, PolicyState, Targets,
    };
    let email = "kim@example.com";
    let signed = d.signed_up(email).await;
    let (authenticator_id, _) = d.enroll_authenticator(&signed).await;
    let mut policy = Policy {
        id: "mfa-apps".into(),
        name: "MFA for the applications".into(),
        state: PolicyState::On,
        assignments: Assignments {
            all_users: true,
            ..Assignments::default()
        },
        targets: Targets {
            all_applications: true,
            ..Targets::default()
        },
        conditions: Conditions::default(),
        grant: Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        },
        session: Default::default(),
    };
    d.identity
        .save_policy(&policy, None, d.now())
        .await
        .unwrap();
    let ctx = d.ctx();
    let remove = || {
        d.identity.remove_totp(
            &ctx,
            &signed.session,
            &signed.user,
            &authenticator_id,
            d.now(),
        )
    };
    assert_eq!(remove().await.unwrap_err(), AuthError::LastMethod);
    // Report-only asks nothing of anyone: the method may go.
    policy.state = PolicyState::ReportOnly;
    d.identity
        .save_policy(&policy, None, d.now())
        .await
        .unwrap();
    assert!(remove().await.is_ok());
}
