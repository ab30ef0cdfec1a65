//! The one decision step of the sign-in pipeline.
//!
//! Every first factor (password, emailed code at sign-in and sign-up, password reset, passkey,
//! provider sign-in and sign-up, re-authentication) ends in [`Identity::conclude_first_factor`],
//! and every second factor in [`Identity::conclude_second_factor`]. In order they refuse a
//! disabled account, gather the attempt's signals into one plain struct, decide with a pure
//! function what is still required, and then create either a pending sign-in that waits for it
//! or a session. Sessions are made here and nowhere else (`start_session` is private to this
//! module), so no way in can skip the decision. Risk and Conditional Access plug into
//! [`decide_after_first_factor`].

use super::{AuthError, Identity, Method, RequestContext, SignInOutcome, SignedIn, Strength};
use crate::conditional_access::{AccessDecision, PersistentBrowser, RiskLevel};
use crate::secret::SecretString;
use crate::store::{NewSession, Session, StoreError, User};
use crate::tokens::{random_id, secret_token, token_hash};

/// A first factor that was just proven, as it arrives at the decision step.
#[derive(Debug)]
pub(super) struct FirstFactor<'a> {
    /// The address as the attempt is logged (typed, or the account's).
    pub(super) email: &'a str,
    pub(super) user: User,
    pub(super) method: Method,
    /// What it proved.
    pub(super) strength: Strength,
    /// The credential that proved it (a passkey), bound to the session.
    pub(super) credential_id: Option<&'a str>,
    /// A re-authentication inside this live session, which the new session replaces.
    pub(super) reauthenticates: Option<&'a Session>,
    /// A password reset: the new password's hash and the credential epoch it was chosen on,
    /// saved only once nothing more is required.
    pub(super) new_password: Option<(&'a str, i64)>,
    /// What proving it revealed of the account's risk (a leaked password, a password found
    /// after many wrong ones), recorded with the attempt's other detections.
    pub(super) findings: Vec<crate::risk::Finding>,
}

impl<'a> FirstFactor<'a> {
    /// A first factor `method` that proved `strength` for `user`, logged under `email`.
    pub(super) fn proven(email: &'a str, user: User, method: Method, strength: Strength) -> Self {
        FirstFactor {
            email,
            user,
            method,
            strength,
            credential_id: None,
            reauthenticates: None,
            new_password: None,
            findings: Vec::new(),
        }
    }
}

/// Everything the decision step knows of an attempt, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInSignals {
    /// The application the sign-in is for (an OIDC client id, or the account portal).
    pub application: String,
    pub client_ip: String,
    pub user_agent: String,
    /// The browser's device cookie, when it has one.
    pub device: Option<String>,
    /// When the attempt was made (milliseconds since the epoch).
    pub at: i64,
    /// How the first factor was proven, and what has been proven so far.
    pub method: Method,
    pub strength: Strength,
    /// The account is disabled.
    pub disabled: bool,
    /// The account has a second factor it can complete a sign-in with.
    pub has_second_factor: bool,
    /// The person is re-confirming inside a live session (for a sensitive change).
    pub reauthentication: bool,
    /// What the tenant's Conditional Access policies decided for this attempt.
    pub access: AccessDecision,
    /// How likely the attempt is not the owner's.
    pub sign_in_risk: RiskLevel,
}

/// What a passed first factor leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstFactorDecision {
    /// Refused, with the reason to log and show.
    Refuse(AuthError),
    /// A pending sign-in that waits for a second factor; no session yet.
    SecondFactor,
    /// A new session.
    Session,
}

/// The decision after a first factor: a pure function of the signals, in order:
/// - a disabled account is refused, and so is an attempt a Conditional Access policy blocks;
/// - a person re-confirming inside a live session gets the new session (the policies were met
///   at the sign-in that made the live one);
/// - an account with a second factor must prove it unless the first factor was already
///   multifactor, and must prove one when a policy requires a strength the first factor does
///   not reach;
/// - a policy's strength that even a multifactor first factor does not reach is refused (the
///   person signs in again with a passkey);
/// - an account without a second factor that a policy asks for one gets a session only to add
///   one (the portal and the application's request send it to enrollment), unless the attempt
///   is risky or the account at risk is asked for a new password: a risky sign-in never adds
///   a factor, it is blocked;
/// - otherwise a session.
pub fn decide_after_first_factor(s: &SignInSignals) -> FirstFactorDecision {
    if s.disabled {
        return FirstFactorDecision::Refuse(AuthError::AccountDisabled);
    }
    if s.access.blocked_by.is_some() {
        return FirstFactorDecision::Refuse(AuthError::BlockedByPolicy);
    }
    if s.reauthentication {
        return FirstFactorDecision::Session;
    }
    let unmet = !s.access.unmet(&s.strength).is_empty();
    if s.has_second_factor && (!s.strength.is_multifactor() || unmet) {
        if s.strength.is_multifactor() {
            return FirstFactorDecision::Refuse(AuthError::StrengthRequired);
        }
        return FirstFactorDecision::SecondFactor;
    }
    if unmet {
        if s.strength.is_multifactor() {
            return FirstFactorDecision::Refuse(AuthError::StrengthRequired);
        }
        // A risky sign-in, or an account at risk that a policy asks for a new password,
        // never adds a factor: whoever holds only the password could remediate with it.
        if s.sign_in_risk >= RiskLevel::Medium || s.access.password_change {
            return FirstFactorDecision::Refuse(AuthError::BlockedByPolicy);
        }
    }
    FirstFactorDecision::Session
}

/// What an application's authorization request meets in the browser's existing session, as
/// plain data: the decision step for single sign-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationSignals {
    /// The OIDC client the request is for.
    pub application: String,
    /// The session was authenticated recently enough for the request (`prompt=login`,
    /// `max_age`).
    pub fresh: bool,
    /// What the session proved.
    pub strength: Strength,
    /// The tenant requires a second factor the account does not have yet.
    pub needs_enrollment: bool,
    /// The application asked for multifactor authentication (`acr_values`).
    pub requires_multifactor: bool,
    /// What the tenant's Conditional Access policies decided for this request.
    pub access: AccessDecision,
    /// The account has accepted the current version of the terms of use (or none is
    /// published).
    pub terms_accepted: bool,
}

/// What an application's request needs before it gets a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicationDecision {
    /// A Conditional Access policy blocks the request: the application is told so.
    Blocked,
    /// Sign in again: the session is older than the request allows.
    SignInAgain,
    /// Add a second factor first (the tenant's rule).
    Enroll,
    /// Prove a second factor now (the application asked for multifactor).
    SecondFactor,
    /// Choose a new password (a policy requires it of an account at risk).
    ChangePassword,
    /// Accept the current terms of use (a policy requires them).
    AcceptTerms,
    /// Nothing more: consent (when the application needs it) and the code.
    Proceed,
}

impl ApplicationDecision {
    /// What is logged when the step is needed: the reason, or, when the application allowed
    /// no interaction (`prompt=none`), the refusal it is sent.
    pub fn logged_error(self, interaction_allowed: bool) -> Option<AuthError> {
        Some(match (self, interaction_allowed) {
            (ApplicationDecision::Proceed, _) => return None,
            (ApplicationDecision::Blocked, _) => AuthError::BlockedByPolicy,
            (ApplicationDecision::SignInAgain, true) => AuthError::ReauthenticationRequired,
            (ApplicationDecision::SignInAgain, false) => AuthError::LoginRequired,
            (ApplicationDecision::Enroll, true) => AuthError::EnrollmentRequired,
            (ApplicationDecision::SecondFactor, true) => AuthError::SecondFactorRequired,
            (ApplicationDecision::AcceptTerms, true) => AuthError::TermsOfUseRequired,
            (ApplicationDecision::ChangePassword, true) => AuthError::PasswordChangeRequired,
            (
                ApplicationDecision::Enroll
                | ApplicationDecision::SecondFactor
                | ApplicationDecision::ChangePassword
                | ApplicationDecision::AcceptTerms,
                false,
            ) => AuthError::InteractionRequired,
        })
    }

    /// The OAuth error and its description for an application that allowed no interaction.
    pub fn oauth_error(self) -> Option<(&'static str, &'static str)> {
        match self {
            ApplicationDecision::Proceed => None,
            ApplicationDecision::Blocked => Some((
                "access_denied",
                "a Conditional Access policy blocks this sign-in",
            )),
            ApplicationDecision::SignInAgain => {
                Some(("login_required", "the session is too old for the request"))
            }
            ApplicationDecision::Enroll => Some((
                "interaction_required",
                "the account must add a second factor first",
            )),
            ApplicationDecision::SecondFactor => Some((
                "interaction_required",
                "the application requires a second factor",
            )),
            ApplicationDecision::ChangePassword => Some((
                "interaction_required",
                "the account must choose a new password first",
            )),
            ApplicationDecision::AcceptTerms => Some((
                "interaction_required",
                "the terms of use must be accepted first",
            )),
        }
    }
}

/// The decision for an application's request from an existing session: a pure function of
/// the signals, checked in order (a fresh sign-in, a Conditional Access block, the tenant's
/// enrollment rule, a second factor when the application or a policy asks for more than the
/// session proved, a new password a policy requires of an account at risk, then the terms of
/// use a policy requires).
pub fn decide_for_application(s: &ApplicationSignals) -> ApplicationDecision {
    if !s.fresh {
        return ApplicationDecision::SignInAgain;
    }
    if s.access.blocked_by.is_some() {
        return ApplicationDecision::Blocked;
    }
    if s.needs_enrollment {
        return ApplicationDecision::Enroll;
    }
    let asked = s.requires_multifactor && !s.strength.is_multifactor();
    if asked || !s.access.unmet(&s.strength).is_empty() {
        return ApplicationDecision::SecondFactor;
    }
    if s.access.password_change {
        return ApplicationDecision::ChangePassword;
    }
    if s.access.terms_of_use && !s.terms_accepted {
        return ApplicationDecision::AcceptTerms;
    }
    ApplicationDecision::Proceed
}

impl Identity {
    /// The signals of an attempt.
    async fn signals(
        &self,
        ctx: &RequestContext,
        first: &FirstFactor<'_>,
        sign_in_risk: crate::conditional_access::RiskLevel,
        now: i64,
    ) -> Result<SignInSignals, AuthError> {
        let access = self
            .access_decision(ctx, &first.user, &ctx.application, now)
            .await?;
        Ok(SignInSignals {
            application: ctx.application.clone(),
            client_ip: ctx.client_ip.clone(),
            user_agent: ctx.user_agent.clone(),
            device: ctx.device.clone(),
            at: now,
            method: first.method,
            strength: first.strength.clone(),
            disabled: first.user.disabled,
            has_second_factor: self.store.has_second_factor(&first.user.id).await?,
            reauthentication: first.reauthenticates.is_some(),
            access,
            sign_in_risk,
        })
    }

    /// The first sign-in of an account just created (from a proven sign-up code, or from a
    /// provider's identity): a conflict is refused as an existing account; failures recorded
    /// against the address before it had an account are cleared; an identity from a provider
    /// is audited as linked; then the decision step.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn conclude_sign_up(
        &self,
        ctx: &RequestContext,
        email: &str,
        created: Result<User, StoreError>,
        method: Method,
        strength: Strength,
        provider_id: Option<&str>,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        let user = match created {
            Ok(user) => user,
            Err(StoreError::Conflict) => {
                return Err(self
                    .refuse(ctx, email, None, method, AuthError::AccountExists, now)
                    .await?)
            }
            Err(e) => return Err(e.into()),
        };
        self.store.throttle_reset("password", &user.email).await?;
        self.store.throttle_reset("code", &user.email).await?;
        if let Some(provider_id) = provider_id {
            self.audit_silently(ctx, &user.id, "federation.linked", provider_id, now)
                .await?;
        }
        let first = FirstFactor::proven(email, user, method, strength);
        self.conclude_first_factor(ctx, first, now).await
    }

    /// The decision step after every first factor: refuse, wait for a second factor (a
    /// single-use pending sign-in, logged as interrupted), or start a session.
    pub(super) async fn conclude_first_factor(
        &self,
        ctx: &RequestContext,
        first: FirstFactor<'_>,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        // The real-time detections come first: recorded whatever the decision, and the
        // sign-in risk the decision (and the policies) see.
        let sign_in_id = random_id();
        let mut findings = self.assess_attempt(ctx, &first.user, now).await?;
        let sign_in_risk = crate::risk::sign_in_risk(&findings);
        findings.extend(first.findings.iter().cloned());
        self.record_findings(&first.user, &findings, Some(&sign_in_id), now)
            .await?;
        let ctx = &RequestContext {
            sign_in_id: Some(sign_in_id),
            sign_in_risk: Some(sign_in_risk),
            ..ctx.clone()
        };
        let signals = self.signals(ctx, &first, sign_in_risk, now).await?;
        let ctx = &RequestContext {
            policy_results: Some(signals.access.log_json()),
            ..ctx.clone()
        };
        let risky = sign_in_risk >= crate::conditional_access::RiskLevel::Medium;
        match decide_after_first_factor(&signals) {
            FirstFactorDecision::Refuse(err) => {
                if risky && matches!(err, AuthError::BlockedByPolicy) {
                    self.notify_risky_sign_in(ctx, &first.user, true, now)
                        .await?;
                }
                Err(self
                    .refuse(
                        ctx,
                        first.email,
                        Some(&first.user.id),
                        first.method,
                        err,
                        now,
                    )
                    .await?)
            }
            FirstFactorDecision::SecondFactor => {
                if risky && !signals.access.required.is_empty() {
                    self.notify_risky_sign_in(ctx, &first.user, false, now)
                        .await?;
                }
                let pending = super::mfa::PendingSecondFactor {
                    new_password_hash: first.new_password.map(|(hash, _)| hash.to_string()),
                    credential_epoch: first.new_password.map(|(_, epoch)| epoch),
                    sign_in_risk: Some(sign_in_risk.as_str().into()),
                    ..super::mfa::PendingSecondFactor::new(first.method, &first.strength)
                };
                let pending_id = self.begin_second_factor(&first.user, &pending, now).await?;
                self.log_attempt(
                    ctx,
                    first.email,
                    Some(&first.user.id),
                    first.method,
                    Err(&AuthError::SecondFactorRequired),
                    None,
                    now,
                )
                .await?;
                Ok(SignInOutcome::SecondFactorRequired { pending_id })
            }
            FirstFactorDecision::Session => {
                let user_id = first.user.id.clone();
                let amr = first.strength.stored();
                let user = match first.new_password {
                    Some((hash, epoch)) => {
                        self.save_reset_password(ctx, first.user, hash, epoch, now)
                            .await?
                    }
                    None => first.user,
                };
                let persistent =
                    signals.access.persistent_browser == Some(PersistentBrowser::Always);
                let mut signed = self
                    .start_session(
                        ctx,
                        first.email,
                        user,
                        first.method,
                        &amr,
                        first.credential_id,
                        now,
                    )
                    .await?;
                signed.persistent = persistent;
                if let Some(old) = first.reauthenticates {
                    self.end_sessions(&user_id, super::SessionsToEnd::One(&old.id), now)
                        .await?;
                }
                Ok(SignInOutcome::SignedIn(Box::new(signed)))
            }
        }
    }

    /// The decision step after a second factor: the account is refused if it was disabled
    /// meanwhile; otherwise a session with the methods of both factors, which replaces the
    /// session a step-up started from.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn conclude_second_factor(
        &self,
        ctx: &RequestContext,
        user: User,
        method: Method,
        strength: &Strength,
        credential_id: Option<&str>,
        replaces: Option<&str>,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        self.refuse_if_disabled(ctx, &user, method, now).await?;
        // The policies again, with what both factors proved: a block that began meanwhile, or
        // a strength the second factor did not reach, ends here.
        let access = self
            .access_decision(ctx, &user, &ctx.application, now)
            .await?;
        let ctx = &RequestContext {
            policy_results: Some(access.log_json()),
            ..ctx.clone()
        };
        let refusal = if access.blocked_by.is_some() {
            Some(AuthError::BlockedByPolicy)
        } else if !access.unmet(strength).is_empty() {
            Some(AuthError::StrengthRequired)
        } else {
            None
        };
        if let Some(err) = refusal {
            return Err(self
                .refuse(ctx, &user.email, Some(&user.id), method, err, now)
                .await?);
        }
        let email = user.email.clone();
        let mut signed = self
            .start_session(
                ctx,
                &email,
                user,
                method,
                &strength.stored(),
                credential_id,
                now,
            )
            .await?;
        if let Some(old) = replaces {
            self.end_sessions(&signed.user.id, super::SessionsToEnd::One(old), now)
                .await?;
        }
        // Multifactor authentication that a policy asked for remediates the risk this sign-in
        // was detected with (its pending sign-in lives at most this long).
        if !access.required.is_empty() {
            self.remediate_sign_in_risk(&signed.user, now - 15 * 60 * 1000, now)
                .await?;
        }
        signed.persistent = access.persistent_browser == Some(PersistentBrowser::Always);
        Ok(signed)
    }

    /// Creates the session of a completed sign-in and logs the success.
    #[allow(clippy::too_many_arguments)]
    async fn start_session(
        &self,
        ctx: &RequestContext,
        email: &str,
        user: User,
        method: Method,
        amr: &str,
        second_factor_id: Option<&str>,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        let signed_in = self
            .create_session(ctx, user, amr, second_factor_id, now)
            .await?;
        self.note_device(ctx, &signed_in.user, method, &signed_in.session.id, now)
            .await?;
        self.log_attempt(
            ctx,
            email,
            Some(&signed_in.user.id),
            method,
            Ok(()),
            Some(&signed_in.session.id),
            now,
        )
        .await?;
        Ok(signed_in)
    }

    /// A new session with a new random id (never the pre-authentication one).
    async fn create_session(
        &self,
        ctx: &RequestContext,
        user: User,
        amr: &str,
        second_factor_id: Option<&str>,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        let token = secret_token();
        let id = random_id();
        let user_agent: String = ctx.user_agent.chars().take(512).collect();
        let expires_at = now + self.config.session_absolute_ms;
        self.store
            .create_session(&NewSession {
                id: &id,
                token_hash: &token_hash(&token),
                user_id: &user.id,
                credential_epoch: user.credential_epoch,
                amr,
                now,
                expires_at,
                client_ip: &ctx.client_ip,
                user_agent: &user_agent,
                second_factor_id,
            })
            .await?;
        self.store
            .trim_sessions(
                &user.id,
                &id,
                self.config.max_sessions_per_user,
                self.config.session_idle_ms,
                now,
            )
            .await?;
        let session = Session {
            id,
            user_id: user.id.clone(),
            credential_epoch: user.credential_epoch,
            amr: amr.to_string(),
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at,
            client_ip: ctx.client_ip.clone(),
            user_agent,
            second_factor_id: second_factor_id.map(str::to_string),
        };
        Ok(SignedIn {
            token: SecretString::new(token),
            session,
            user,
            persistent: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals() -> SignInSignals {
        SignInSignals {
            application: "account".into(),
            client_ip: "203.0.113.9".into(),
            user_agent: "Firefox".into(),
            device: None,
            at: 1_000,
            method: Method::Password,
            strength: Strength::of(super::super::AuthMethod::Password),
            disabled: false,
            has_second_factor: false,
            reauthentication: false,
            access: AccessDecision::default(),
            sign_in_risk: RiskLevel::None,
        }
    }

    #[test]
    fn a_disabled_account_is_refused_whatever_it_proved() {
        for stored in ["pwd", "hwk mfa", "fed"] {
            let s = SignInSignals {
                disabled: true,
                has_second_factor: true,
                strength: Strength::parse(stored),
                ..signals()
            };
            assert_eq!(
                decide_after_first_factor(&s),
                FirstFactorDecision::Refuse(AuthError::AccountDisabled)
            );
        }
    }

    #[test]
    fn a_second_factor_is_asked_unless_already_proven_or_only_reconfirming() {
        let with_factor = SignInSignals {
            has_second_factor: true,
            ..signals()
        };
        assert_eq!(
            decide_after_first_factor(&with_factor),
            FirstFactorDecision::SecondFactor
        );
        let passkey = SignInSignals {
            method: Method::Passkey,
            strength: Strength::parse("hwk mfa"),
            ..with_factor.clone()
        };
        assert_eq!(
            decide_after_first_factor(&passkey),
            FirstFactorDecision::Session
        );
        let reconfirming = SignInSignals {
            reauthentication: true,
            ..with_factor
        };
        assert_eq!(
            decide_after_first_factor(&reconfirming),
            FirstFactorDecision::Session
        );
        assert_eq!(
            decide_after_first_factor(&signals()),
            FirstFactorDecision::Session
        );
    }

    fn app_signals() -> ApplicationSignals {
        ApplicationSignals {
            application: "shop".into(),
            fresh: true,
            strength: Strength::parse("pwd"),
            needs_enrollment: false,
            requires_multifactor: false,
            access: AccessDecision::default(),
            terms_accepted: true,
        }
    }

    #[test]
    fn an_account_at_risk_without_a_factor_is_blocked_not_enrolled() {
        let at_risk = SignInSignals {
            has_second_factor: false,
            access: AccessDecision {
                password_change: true,
                ..access(false, &[crate::conditional_access::Control::Mfa])
            },
            ..signals()
        };
        assert_eq!(
            decide_after_first_factor(&at_risk),
            FirstFactorDecision::Refuse(AuthError::BlockedByPolicy)
        );
        let with_factor = SignInSignals {
            has_second_factor: true,
            ..at_risk
        };
        assert_eq!(
            decide_after_first_factor(&with_factor),
            FirstFactorDecision::SecondFactor
        );
    }

    #[test]
    fn a_password_change_comes_after_the_factors_and_before_the_terms() {
        let both = AccessDecision {
            password_change: true,
            terms_of_use: true,
            ..AccessDecision::default()
        };
        let s = ApplicationSignals {
            access: both,
            terms_accepted: false,
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&s),
            ApplicationDecision::ChangePassword
        );
        let stepping_up = ApplicationSignals {
            access: AccessDecision {
                password_change: true,
                ..access(false, &[crate::conditional_access::Control::Mfa])
            },
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&stepping_up),
            ApplicationDecision::SecondFactor,
            "multifactor first"
        );
        assert_eq!(
            ApplicationDecision::ChangePassword.logged_error(true),
            Some(AuthError::PasswordChangeRequired)
        );
        assert_eq!(
            ApplicationDecision::ChangePassword.logged_error(false),
            Some(AuthError::InteractionRequired)
        );
    }

    #[test]
    fn the_terms_of_use_come_after_the_factors_and_only_when_not_accepted() {
        let terms = AccessDecision {
            terms_of_use: true,
            ..AccessDecision::default()
        };
        let pending = ApplicationSignals {
            access: terms.clone(),
            terms_accepted: false,
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&pending),
            ApplicationDecision::AcceptTerms
        );
        let accepted = ApplicationSignals {
            access: terms.clone(),
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&accepted),
            ApplicationDecision::Proceed
        );
        let enroll_first = ApplicationSignals {
            needs_enrollment: true,
            ..pending.clone()
        };
        assert_eq!(
            decide_for_application(&enroll_first),
            ApplicationDecision::Enroll
        );
        assert_eq!(
            ApplicationDecision::AcceptTerms.logged_error(false),
            Some(AuthError::InteractionRequired)
        );
        assert_eq!(
            ApplicationDecision::AcceptTerms.logged_error(true),
            Some(AuthError::TermsOfUseRequired)
        );
        assert_eq!(
            ApplicationDecision::AcceptTerms.oauth_error().map(|e| e.0),
            Some("interaction_required")
        );
    }

    #[test]
    fn an_application_request_checks_freshness_then_enrollment_then_multifactor() {
        assert_eq!(
            decide_for_application(&app_signals()),
            ApplicationDecision::Proceed
        );
        let everything_missing = ApplicationSignals {
            fresh: false,
            needs_enrollment: true,
            requires_multifactor: true,
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&everything_missing),
            ApplicationDecision::SignInAgain
        );
        let fresh = ApplicationSignals {
            fresh: true,
            ..everything_missing
        };
        assert_eq!(decide_for_application(&fresh), ApplicationDecision::Enroll);
        let enrolled = ApplicationSignals {
            needs_enrollment: false,
            ..fresh
        };
        assert_eq!(
            decide_for_application(&enrolled),
            ApplicationDecision::SecondFactor
        );
        let multifactor = ApplicationSignals {
            strength: Strength::parse("pwd otp mfa"),
            ..enrolled
        };
        assert_eq!(
            decide_for_application(&multifactor),
            ApplicationDecision::Proceed
        );
    }

    #[test]
    fn without_interaction_every_needed_step_is_a_refusal_the_application_understands() {
        use ApplicationDecision::*;
        assert_eq!(Proceed.logged_error(false), None);
        assert_eq!(Proceed.oauth_error(), None);
        assert_eq!(
            SignInAgain.logged_error(false),
            Some(AuthError::LoginRequired)
        );
        assert_eq!(
            SignInAgain.logged_error(true),
            Some(AuthError::ReauthenticationRequired)
        );
        for step in [Enroll, SecondFactor] {
            assert_eq!(
                step.logged_error(false),
                Some(AuthError::InteractionRequired)
            );
            assert_eq!(
                step.oauth_error().map(|e| e.0),
                Some("interaction_required")
            );
        }
        assert_eq!(
            SignInAgain.oauth_error().map(|e| e.0),
            Some("login_required")
        );
        assert_eq!(
            Enroll.logged_error(true),
            Some(AuthError::EnrollmentRequired)
        );
        assert_eq!(
            SecondFactor.logged_error(true),
            Some(AuthError::SecondFactorRequired)
        );
    }

    fn access(blocked: bool, controls: &[crate::conditional_access::Control]) -> AccessDecision {
        AccessDecision {
            blocked_by: blocked.then(|| "block".to_string()),
            required: if controls.is_empty() {
                vec![]
            } else {
                vec![crate::conditional_access::Requirement {
                    policy: "require".into(),
                    controls: controls.to_vec(),
                    require_all: false,
                }]
            },
            ..AccessDecision::default()
        }
    }

    #[test]
    fn a_policy_block_refuses_after_the_first_factor_whatever_was_proven() {
        for stored in ["pwd", "hwk mfa"] {
            let s = SignInSignals {
                strength: Strength::parse(stored),
                access: access(true, &[]),
                ..signals()
            };
            assert_eq!(
                decide_after_first_factor(&s),
                FirstFactorDecision::Refuse(AuthError::BlockedByPolicy)
            );
        }
    }

    #[test]
    fn a_policy_asking_for_mfa_asks_the_second_factor_or_sends_to_enrollment() {
        use crate::conditional_access::{Control, StrengthLevel};
        let mfa = access(false, &[Control::Mfa]);
        let with_factor = SignInSignals {
            has_second_factor: true,
            access: mfa.clone(),
            ..signals()
        };
        assert_eq!(
            decide_after_first_factor(&with_factor),
            FirstFactorDecision::SecondFactor
        );
        let without = SignInSignals {
            access: mfa.clone(),
            ..signals()
        };
        assert_eq!(
            decide_after_first_factor(&without),
            FirstFactorDecision::Session,
            "a session only to add a factor"
        );
        let risky = SignInSignals {
            sign_in_risk: RiskLevel::Medium,
            ..without
        };
        assert_eq!(
            decide_after_first_factor(&risky),
            FirstFactorDecision::Refuse(AuthError::BlockedByPolicy),
            "a risky sign-in never adds a factor"
        );
        let passkey = SignInSignals {
            strength: Strength::parse("hwk mfa"),
            method: Method::Passkey,
            access: access(
                false,
                &[Control::Strength(StrengthLevel::PhishingResistant)],
            ),
            ..signals()
        };
        assert_eq!(
            decide_after_first_factor(&passkey),
            FirstFactorDecision::Session
        );
        let app = SignInSignals {
            strength: Strength::parse("pwd otp mfa"),
            has_second_factor: true,
            ..passkey
        };
        assert_eq!(
            decide_after_first_factor(&app),
            FirstFactorDecision::Refuse(AuthError::StrengthRequired),
            "an authenticator app is multifactor but not phishing-resistant"
        );
        let reconfirming = SignInSignals {
            reauthentication: true,
            ..with_factor
        };
        assert_eq!(
            decide_after_first_factor(&reconfirming),
            FirstFactorDecision::Session
        );
    }

    #[test]
    fn an_application_request_meets_the_policies_too() {
        use crate::conditional_access::Control;
        let blocked = ApplicationSignals {
            access: access(true, &[]),
            needs_enrollment: true,
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&blocked),
            ApplicationDecision::Blocked
        );
        assert_eq!(
            ApplicationDecision::Blocked.logged_error(true),
            Some(AuthError::BlockedByPolicy)
        );
        assert_eq!(
            ApplicationDecision::Blocked.oauth_error().map(|e| e.0),
            Some("access_denied")
        );
        let stale = ApplicationSignals {
            fresh: false,
            ..blocked
        };
        assert_eq!(
            decide_for_application(&stale),
            ApplicationDecision::SignInAgain
        );
        let asks = ApplicationSignals {
            access: access(false, &[Control::Mfa]),
            ..app_signals()
        };
        assert_eq!(
            decide_for_application(&asks),
            ApplicationDecision::SecondFactor
        );
        let met = ApplicationSignals {
            strength: Strength::parse("pwd otp mfa"),
            ..asks
        };
        assert_eq!(decide_for_application(&met), ApplicationDecision::Proceed);
    }
}
