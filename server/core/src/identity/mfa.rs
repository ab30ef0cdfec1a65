//! The second factor of the sign-in pipeline, and the security-info operations behind it:
//! authenticator-app (TOTP) enrollment and removal, re-authentication before such changes, and
//! completing a sign-in that waits for its second factor.
//!
//! A first factor on an account with a second factor never yields a session: it yields a
//! single-use pending sign-in (10 minutes) that only a correct second factor turns into one.

use serde::{Deserialize, Serialize};

use super::{
    AuthError, AuthMethod, Identity, InputProblem, Method, RequestContext, SignedIn, Strength,
};
use crate::secret::SecretString;
use crate::store::{
    CodeAttempt, CodePurpose, CodeRecord, NewCode, PhoneNumber, Session, TotpCredential, User,
};
use crate::throttle::SECOND_FACTOR_POLICY;
use crate::tokens::random_id;
use crate::{codes, seal, totp};

/// How long a first factor waits for its second.
pub const SECOND_FACTOR_TTL_MS: i64 = 10 * 60 * 1000;
/// How long an unconfirmed authenticator enrollment stays open.
pub const ENROLLMENT_TTL_MS: i64 = 10 * 60 * 1000;
/// Adding or removing a method needs a sign-in at most this old.
pub const RECENT_SIGN_IN_MS: i64 = 10 * 60 * 1000;
/// Sealed TOTP secrets carry this purpose.
const TOTP_SEAL: &str = "totp-secret";

/// The tenant's multifactor policy, stored as a setting under [`MFA_POLICY_SETTING`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaPolicy {
    /// Every account must have a second factor: one without is sent to add one right after
    /// signing in, and the last method cannot be removed.
    #[serde(default)]
    pub require_mfa: bool,
}

/// The name of the setting that held the [`MfaPolicy`] before it became a policy.
pub const MFA_POLICY_SETTING: &str = "mfa_policy";

/// The id of the Conditional Access policy `gatehouse mfa require` turns on.
pub const MFA_FOR_ALL_POLICY: &str = "require-mfa-for-all-users";

/// "Require MFA for all users": every account, every application and the account portal, a
/// second factor.
pub fn mfa_for_all_policy(
    state: crate::conditional_access::PolicyState,
) -> crate::conditional_access::Policy {
    use crate::conditional_access::{Assignments, Control, Grant, Policy, Targets};
    Policy {
        id: MFA_FOR_ALL_POLICY.into(),
        name: "Require MFA for all users".into(),
        state,
        assignments: Assignments {
            all_users: true,
            ..Assignments::default()
        },
        targets: Targets {
            all_applications: true,
            account_portal: true,
            ..Targets::default()
        },
        conditions: Default::default(),
        grant: Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        },
        session: Default::default(),
    }
}

/// A second factor an account can use, strongest kinds first in every list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorMethod {
    Passkey(super::PasskeyInfo),
    AuthenticatorApp {
        id: String,
        added_at: i64,
        last_used_at: Option<i64>,
    },
    /// A proven phone number for texted codes (the weakest kind).
    Phone {
        id: String,
        number: String,
        added_at: i64,
        last_used_at: Option<i64>,
    },
}

impl SecondFactorMethod {
    pub fn id(&self) -> &str {
        match self {
            SecondFactorMethod::Passkey(p) => &p.id,
            SecondFactorMethod::AuthenticatorApp { id, .. }
            | SecondFactorMethod::Phone { id, .. } => id,
        }
    }
}

/// What a pending sign-in may be completed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorOptions {
    /// An emailed code may stand in for the app (never after an email-proven first factor).
    pub email_allowed: bool,
    /// An emailed code is on its way.
    pub email_sent: bool,
    /// The account has a passkey to offer first.
    pub passkey: bool,
    /// The account's phone number, masked, when a code may be texted to it.
    pub sms: Option<String>,
    /// A texted code is on its way.
    pub sms_sent: bool,
}

/// An authenticator enrollment in progress: what the person scans or types.
#[derive(Clone)]
pub struct TotpEnrollment {
    pub id: String,
    /// The secret in base32, for typing into the app.
    pub secret: String,
    /// The `otpauth://` URI the QR code carries.
    pub uri: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrollment")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// After a password reset proven by the mailbox, an emailed code is no second factor for this
/// long: whoever controls the mailbox also chose the password.
pub const EMAIL_FACTOR_AFTER_RESET_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// The audit action recorded when a password is set through a reset.
pub(super) const PASSWORD_RESET_AUDIT: &str = "password.reset";

/// What a pending sign-in remembers of its first factor, and what completing it will do.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct PendingSecondFactor {
    /// How the first factor was proven ([`Method::as_str`]).
    pub(super) method: String,
    /// What the first factor proved ([`Strength::stored`]).
    pub(super) amr: String,
    /// A password reset that waits for the second factor: the new password's hash is saved only
    /// once the factor is proven, on the credentials it was chosen against.
    #[serde(default)]
    pub(super) new_password_hash: Option<String>,
    #[serde(default)]
    pub(super) credential_epoch: Option<i64>,
    /// A step-up of an existing session (an application asked for more than it proved): that
    /// session is replaced by the new one.
    #[serde(default)]
    pub(super) replaces_session: Option<String>,
    /// The sign-in risk assessed at the first factor, which the decision after the second
    /// factor sees again (and which the second factor remediates when a policy asked for it).
    #[serde(default)]
    pub(super) sign_in_risk: Option<String>,
}

impl PendingSecondFactor {
    pub(super) fn new(method: Method, strength: &Strength) -> Self {
        PendingSecondFactor {
            method: method.as_str().into(),
            amr: strength.stored(),
            ..Default::default()
        }
    }

    fn of(pending: &CodeRecord) -> Option<Self> {
        serde_json::from_str(pending.payload.as_deref()?).ok()
    }

    /// Whether the first factor was a proof of the mailbox (an emailed code or a reset).
    fn first_is_mailbox(&self) -> bool {
        self.method != Method::Password.as_str()
            && self.method != Method::Federated.as_str()
            && self.method != Method::Passkey.as_str()
    }

    /// The second-factor throttle's subject: the account and the kind of first factor, so
    /// guesses after a password (by someone who knows it) never slow the owner's way in
    /// through the mailbox, while every guess after a password is still counted.
    fn throttle_subject(&self, user_id: &str) -> String {
        let kind = if self.first_is_mailbox() {
            "mailbox"
        } else {
            self.method.as_str()
        };
        format!("{user_id}:{kind}")
    }
}

/// The id of the emailed-code flow that belongs to a pending sign-in.
fn email_flow_id(pending_id: &str) -> String {
    format!("{pending_id}.email")
}

/// The id of the texted-code flow that belongs to a pending sign-in.
fn sms_flow_id(pending_id: &str) -> String {
    format!("{pending_id}.sms")
}

impl Identity {
    /// The second factors an account can complete a sign-in with.
    pub async fn second_factor_methods(
        &self,
        user_id: &str,
    ) -> Result<Vec<SecondFactorMethod>, AuthError> {
        let passkeys = self
            .list_passkeys(user_id)
            .await?
            .into_iter()
            .map(SecondFactorMethod::Passkey);
        let phones = self
            .verified_phone(user_id)
            .await?
            .into_iter()
            .filter_map(|p| {
                p.verified_at.map(|added_at| SecondFactorMethod::Phone {
                    id: p.id,
                    number: p.number,
                    added_at,
                    last_used_at: p.last_used_at,
                })
            });
        let apps = self
            .store
            .list_totp(user_id)
            .await?
            .into_iter()
            .filter_map(|t| {
                t.confirmed_at
                    .map(|added_at| SecondFactorMethod::AuthenticatorApp {
                        id: t.id,
                        added_at,
                        last_used_at: t.last_used_at,
                    })
            })
            .collect::<Vec<_>>();
        Ok(passkeys.chain(apps).chain(phones).collect())
    }

    /// The account's proven phone number, if any.
    async fn verified_phone(&self, user_id: &str) -> Result<Option<PhoneNumber>, AuthError> {
        Ok(self
            .store
            .list_phones(user_id)
            .await?
            .into_iter()
            .find(|p| p.verified_at.is_some()))
    }

    /// Whether an emailed code may be the second factor of this pending sign-in: only after a
    /// password, only on an account with no stronger method (app, passkey, phone), and never
    /// within [`EMAIL_FACTOR_AFTER_RESET_MS`] of a password reset. The same mailbox is never two
    /// factors.
    async fn email_factor_allowed(
        &self,
        pending: &CodeRecord,
        now: i64,
    ) -> Result<bool, AuthError> {
        let Some(first) = PendingSecondFactor::of(pending) else {
            return Ok(false);
        };
        let Some(user_id) = pending.user_id.as_deref() else {
            return Ok(false);
        };
        self.email_may_complete(user_id, &first, now).await
    }

    /// Whether an emailed code may complete a sign-in of `user_id` whose first factor is
    /// `first` (see [`Self::email_factor_allowed`]).
    async fn email_may_complete(
        &self,
        user_id: &str,
        first: &PendingSecondFactor,
        now: i64,
    ) -> Result<bool, AuthError> {
        if first.method != Method::Password.as_str() || first.new_password_hash.is_some() {
            return Ok(false);
        }
        if self.store.has_second_factor(user_id).await? {
            return Ok(false);
        }
        let reset = self
            .store
            .last_audit_at(user_id, PASSWORD_RESET_AUDIT)
            .await?;
        Ok(reset.is_none_or(|at| now - at >= EMAIL_FACTOR_AFTER_RESET_MS))
    }

    /// The tenant's multifactor rule: whether the Conditional Access policy "Require MFA for
    /// all users" ([`MFA_FOR_ALL_POLICY`]) is on.
    pub async fn mfa_policy(&self) -> Result<MfaPolicy, AuthError> {
        let on = self
            .store
            .find_policy(MFA_FOR_ALL_POLICY)
            .await?
            .is_some_and(|p| p.state == crate::conditional_access::PolicyState::On.as_str());
        Ok(MfaPolicy { require_mfa: on })
    }

    /// Turns the tenant's multifactor rule on or off: the policy "Require MFA for all users"
    /// is created the first time, and afterwards only its state changes (edits made to it in
    /// the console stay).
    pub async fn set_mfa_policy(&self, policy: MfaPolicy, now: i64) -> Result<(), AuthError> {
        use crate::conditional_access::PolicyState;
        let state = if policy.require_mfa {
            PolicyState::On
        } else {
            PolicyState::Off
        };
        let result = match self.store.find_policy(MFA_FOR_ALL_POLICY).await? {
            Some(_) => self
                .set_policy_state(MFA_FOR_ALL_POLICY, state, None, now)
                .await
                .map(|_| ()),
            None if !policy.require_mfa => Ok(()),
            None => self
                .save_policy(&mfa_for_all_policy(state), None, now)
                .await
                .map(|_| ()),
        };
        result.map_err(|e| match e {
            super::AccessError::Auth(e) => e,
            other => AuthError::Internal(other.to_string()),
        })
    }

    /// Moves the multifactor setting of earlier versions into its policy, once: a deployment
    /// that required MFA keeps requiring it.
    pub async fn migrate_mfa_setting(&self, now: i64) -> Result<(), AuthError> {
        let old: MfaPolicy = self.setting(MFA_POLICY_SETTING).await?;
        if old.require_mfa {
            if self.store.find_policy(MFA_FOR_ALL_POLICY).await?.is_none() {
                self.set_mfa_policy(old, now).await?;
            }
            self.put_setting(MFA_POLICY_SETTING, &MfaPolicy::default(), now)
                .await?;
        }
        Ok(())
    }

    /// Whether the tenant requires a second factor this account does not have yet: such an
    /// account is sent to add one before anything else.
    pub async fn needs_enrollment(&self, user: &User) -> Result<bool, AuthError> {
        Ok(self.mfa_policy().await?.require_mfa && !self.store.has_second_factor(&user.id).await?)
    }

    /// Whether the account must add a second factor before it uses the account portal: the
    /// tenant's rule, or an enforced Conditional Access policy that asks it for one there.
    pub async fn needs_enrollment_in_portal(
        &self,
        user: &User,
        now: i64,
    ) -> Result<bool, AuthError> {
        if self.store.has_second_factor(&user.id).await? {
            return Ok(false);
        }
        Ok(self.mfa_policy().await?.require_mfa
            || self.policy_requires_factor(user, true, now).await?)
    }

    /// Removes every second factor of the account with this email and ends its sessions, for
    /// an operator who verified the person out of band. Returns how many methods went, or
    /// `None` when there is no such account.
    pub async fn reset_second_factors(
        &self,
        email: &str,
        now: i64,
    ) -> Result<Option<u64>, AuthError> {
        let email = crate::email::normalize_email(email)
            .map_err(|p| AuthError::InvalidInput(InputProblem::Email(p)))?;
        let Some(user) = self.store.find_user_by_email(&email).await? else {
            return Ok(None);
        };
        self.end_sessions(&user.id, super::SessionsToEnd::All, now)
            .await?;
        let removed = self.store.delete_second_factors(&user.id).await?;
        self.store
            .record_audit(&crate::store::AuditEntry {
                id: random_id(),
                occurred_at: now,
                actor_user_id: None,
                subject_user_id: Some(user.id.clone()),
                action: "mfa.reset".into(),
                detail: format!("{removed} methods and the recovery codes removed by an operator"),
                client_ip: "command line".into(),
            })
            .await?;
        tracing::info!(user.id = %user.id, removed, "second factors reset");
        Ok(Some(removed))
    }

    /// Refuses to remove `method_id` when it is the account's only second factor and the
    /// tenant requires one, or an enforced Conditional Access policy asks this account for one.
    pub(super) async fn ensure_not_last_method(
        &self,
        user: &User,
        method_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self.mfa_policy().await?.require_mfa
            && !self.policy_requires_factor(user, false, now).await?
        {
            return Ok(());
        }
        let methods = self.second_factor_methods(&user.id).await?;
        let others = methods.iter().filter(|m| m.id() != method_id).count();
        if others == 0 {
            return Err(AuthError::LastMethod);
        }
        Ok(())
    }

    /// Records a passed first factor that now waits for a second one.
    pub(super) async fn begin_second_factor(
        &self,
        user: &User,
        first: &PendingSecondFactor,
        now: i64,
    ) -> Result<String, AuthError> {
        let payload = serde_json::to_string(first).map_err(|e| super::internal(&e))?;
        let pending_id = random_id();
        self.store
            .create_code(&NewCode {
                id: &pending_id,
                purpose: CodePurpose::SecondFactor,
                email: &user.email,
                user_id: Some(&user.id),
                code_hash: "",
                payload: Some(&payload),
                now,
                expires_at: now + SECOND_FACTOR_TTL_MS,
            })
            .await?;
        Ok(pending_id)
    }

    /// A second factor for an existing session that proved less than an application needs:
    /// a pending sign-in that replaces the session once completed, or `None` when the account
    /// has no method that could be the second factor (it must add one first).
    pub(super) async fn begin_step_up(
        &self,
        session: &Session,
        user: &User,
        now: i64,
    ) -> Result<Option<String>, AuthError> {
        let proven = Strength::parse(&session.amr);
        let method = if proven.methods().contains(&AuthMethod::Password) {
            Method::Password
        } else if proven.methods().contains(&AuthMethod::Provider) {
            Method::Federated
        } else {
            Method::EmailCode
        };
        let first = PendingSecondFactor {
            replaces_session: Some(session.id.clone()),
            ..PendingSecondFactor::new(method, &proven)
        };
        let usable = self.store.has_second_factor(&user.id).await?
            || self.email_may_complete(&user.id, &first, now).await?;
        if !usable {
            return Ok(None);
        }
        Ok(Some(self.begin_second_factor(user, &first, now).await?))
    }

    /// The options of a live pending sign-in, or `None` when there is none.
    pub async fn pending_second_factor(
        &self,
        pending_id: &str,
        now: i64,
    ) -> Result<Option<SecondFactorOptions>, AuthError> {
        let Some(pending) = self
            .live_flow(pending_id, now)
            .await?
            .filter(|f| f.purpose == CodePurpose::SecondFactor)
        else {
            return Ok(None);
        };
        let email_sent = self
            .live_flow(&email_flow_id(&pending.id), now)
            .await?
            .is_some();
        let user_id = pending.user_id.clone().unwrap_or_default();
        let passkey = !self.store.list_passkeys(&user_id).await?.is_empty();
        let sms = self
            .verified_phone(&user_id)
            .await?
            .map(|p| crate::phone::mask(&p.number));
        let sms_sent = self
            .live_flow(&sms_flow_id(&pending.id), now)
            .await?
            .is_some();
        Ok(Some(SecondFactorOptions {
            email_allowed: self.email_factor_allowed(&pending, now).await?,
            email_sent,
            passkey,
            sms,
            sms_sent,
        }))
    }

    /// Emails a code that can complete this pending sign-in, unless its first factor already
    /// proved the mailbox (the same channel is never two factors). At most one a minute.
    pub async fn send_second_factor_email(
        &self,
        ctx: &RequestContext,
        pending_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(pending) = self
            .live_flow(pending_id, now)
            .await?
            .filter(|f| f.purpose == CodePurpose::SecondFactor)
        else {
            return Err(AuthError::CodeDead);
        };
        if !self.email_factor_allowed(&pending, now).await? {
            return Err(AuthError::SecondFactorWrong);
        }
        let flow_id = email_flow_id(&pending.id);
        let code = codes::generate_code();
        self.open_code_flow(
            &pending,
            &flow_id,
            CodePurpose::SecondFactorEmail,
            &code,
            None,
            now,
        )
        .await?;
        let text = ctx
            .emails
            .compose(crate::mail::EmailKind::SignInCode, Some(code.expose()));
        self.send_code(&flow_id, &pending.email, text, now).await
    }

    /// Opens (or, at most once a minute, renews) the code flow `flow_id` of a pending sign-in
    /// with `code`. Of racing requests, one creates the flow and the others count as resends.
    async fn open_code_flow(
        &self,
        pending: &CodeRecord,
        flow_id: &str,
        purpose: CodePurpose,
        code: &SecretString,
        payload: Option<&str>,
        now: i64,
    ) -> Result<(), AuthError> {
        let hash = codes::code_hash(&self.key, purpose, flow_id, code);
        let created = self
            .store
            .create_code_if_absent(&NewCode {
                id: flow_id,
                purpose,
                email: &pending.email,
                user_id: pending.user_id.as_deref(),
                code_hash: &hash,
                payload,
                now,
                expires_at: pending.expires_at,
            })
            .await?;
        if !created
            && self
                .store
                .resend_code(
                    flow_id,
                    &hash,
                    codes::RESEND_INTERVAL_MS,
                    codes::MAX_WRONG_ATTEMPTS,
                    pending.expires_at,
                    now,
                )
                .await?
                .is_none()
        {
            return Err(AuthError::ResendTooSoon);
        }
        Ok(())
    }

    /// Texts a code that can complete this pending sign-in to the account's proven number,
    /// within the text-message budgets. At most one a minute.
    pub async fn send_second_factor_sms(
        &self,
        ctx: &RequestContext,
        pending_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let (pending, user) = self
            .live_flow_with_user(pending_id, CodePurpose::SecondFactor, now)
            .await?;
        let Some(phone) = self.verified_phone(&user.id).await? else {
            return Err(AuthError::SecondFactorWrong);
        };
        let flow_id = sms_flow_id(&pending.id);
        let code = codes::generate_code();
        let payload = serde_json::json!({ "phone_id": phone.id }).to_string();
        self.open_code_flow(
            &pending,
            &flow_id,
            CodePurpose::SecondFactorSms,
            &code,
            Some(&payload),
            now,
        )
        .await?;
        self.send_text_code(ctx, &phone.number, &flow_id, code.expose(), now)
            .await
    }

    /// Completes a pending sign-in with an authenticator-app code. The code's step is recorded
    /// by a single conditional write, so a code (or an older one) is never accepted twice, and
    /// the pending sign-in is consumed once: at most one session comes out of it.
    pub async fn verify_second_factor(
        &self,
        ctx: &RequestContext,
        pending_id: &str,
        input: &str,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        let (pending, user) = self
            .live_flow_with_user(pending_id, CodePurpose::SecondFactor, now)
            .await?;
        let result = self
            .check_second_factor(ctx, &pending, &user, input, now)
            .await;
        let (credential_id, method) = match result {
            Ok(found) => found,
            Err(err) => {
                let method = if codes::parse_code(input).is_none() {
                    Method::RecoveryCode
                } else if self
                    .live_flow(&sms_flow_id(&pending.id), now)
                    .await?
                    .is_some()
                {
                    Method::Sms
                } else {
                    Method::Totp
                };
                self.metrics.second_factor(method.as_str(), false);
                self.log_attempt(
                    ctx,
                    &user.email,
                    Some(&user.id),
                    method,
                    Err(&err),
                    None,
                    now,
                )
                .await?;
                return Err(err);
            }
        };
        let factor = match method {
            Method::Sms => AuthMethod::TextMessage,
            Method::EmailCode => AuthMethod::EmailCode,
            Method::RecoveryCode => AuthMethod::RecoveryCode,
            _ => AuthMethod::AuthenticatorApp,
        };
        self.complete_second_factor(
            ctx,
            &pending,
            user,
            method,
            factor,
            credential_id.as_deref(),
            now,
        )
        .await
    }

    /// The end of every second factor: the pending sign-in is consumed (once: at most one
    /// session comes out of it) and the session records both factors.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn complete_second_factor(
        &self,
        ctx: &RequestContext,
        pending: &CodeRecord,
        user: User,
        method: Method,
        factor: AuthMethod,
        credential_id: Option<&str>,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        if self
            .store
            .consume_grant(&pending.id, CodePurpose::SecondFactor, now)
            .await?
            .is_none()
        {
            return Err(AuthError::CodeDead);
        }
        self.metrics.second_factor(method.as_str(), true);
        let first = PendingSecondFactor::of(pending)
            .ok_or_else(|| super::internal(&crate::store::StoreError::Conflict))?;
        let strength = Strength::parse(&first.amr).with(factor);
        let user = match (&first.new_password_hash, first.credential_epoch) {
            (Some(hash), Some(epoch)) if !user.disabled => {
                self.save_reset_password(ctx, user, hash, epoch, now)
                    .await?
            }
            _ => user,
        };
        let ctx = &RequestContext {
            sign_in_risk: first.sign_in_risk.as_deref().and_then(|r| r.parse().ok()),
            ..ctx.clone()
        };
        self.conclude_second_factor(
            ctx,
            user,
            method,
            &strength,
            credential_id,
            first.replaces_session.as_deref(),
            now,
        )
        .await
    }

    /// Checks a second factor behind the per-IP and per-account throttles: a 6-digit code
    /// against the account's authenticator apps, or one of its recovery codes. Returns the
    /// authenticator that matched (none for a recovery code) and how the factor was proven.
    async fn check_second_factor(
        &self,
        ctx: &RequestContext,
        pending: &CodeRecord,
        user: &User,
        input: &str,
        now: i64,
    ) -> Result<(Option<String>, Method), AuthError> {
        let app_code = codes::parse_code(input);
        let recovery = codes::parse_recovery_code(input);
        if app_code.is_none() && recovery.is_none() {
            return Err(AuthError::InvalidInput(InputProblem::Code));
        }
        let ip = self.ip_gate(ctx, now).await?;
        let (subject, attempt) = self.claim_second_factor_attempt(pending, user, now).await?;
        if let Some(code) = recovery {
            let hash = codes::recovery_code_hash(&self.key, &user.id, &code);
            if self
                .store
                .consume_recovery_code(&user.id, &hash, now)
                .await?
            {
                self.store.throttle_reset("second_factor", &subject).await?;
                tracing::info!(user.id = %user.id, "recovery code used");
                return Ok((None, Method::RecoveryCode));
            }
        }
        if let Some(code) = &app_code {
            let unix_seconds = now.div_euclid(1000);
            for credential in self
                .store
                .list_totp(&user.id)
                .await?
                .into_iter()
                .filter(|t| t.confirmed_at.is_some())
            {
                let secret = self.open_totp_secret(&credential)?;
                if let Some(step) =
                    totp::verify(&secret, code, unix_seconds, credential.last_used_step)
                {
                    if self
                        .store
                        .claim_totp_step(&credential.id, step, now)
                        .await?
                    {
                        self.store.throttle_reset("second_factor", &subject).await?;
                        return Ok((Some(credential.id), Method::Totp));
                    }
                }
            }
        }
        if let (Some(code), true) = (&app_code, self.email_factor_allowed(pending, now).await?) {
            let flow_id = email_flow_id(&pending.id);
            let hash = codes::code_hash(&self.key, CodePurpose::SecondFactorEmail, &flow_id, code);
            let attempt = self
                .store
                .try_consume_code(
                    &flow_id,
                    CodePurpose::SecondFactorEmail,
                    &hash,
                    codes::MAX_WRONG_ATTEMPTS,
                    now,
                )
                .await?;
            if matches!(attempt, CodeAttempt::Accepted(_)) {
                self.store.throttle_reset("second_factor", &subject).await?;
                return Ok((None, Method::EmailCode));
            }
        }
        if let Some(code) = &app_code {
            let flow_id = sms_flow_id(&pending.id);
            let hash = codes::code_hash(&self.key, CodePurpose::SecondFactorSms, &flow_id, code);
            let attempt = self
                .store
                .try_consume_code(
                    &flow_id,
                    CodePurpose::SecondFactorSms,
                    &hash,
                    codes::MAX_WRONG_ATTEMPTS,
                    now,
                )
                .await?;
            if let CodeAttempt::Accepted(flow) = attempt {
                self.store.throttle_reset("second_factor", &subject).await?;
                let phone_id = flow
                    .payload
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                    .and_then(|v| v["phone_id"].as_str().map(str::to_string));
                if let Some(id) = &phone_id {
                    self.store.touch_phone(id, now).await?;
                }
                return Ok((phone_id, Method::Sms));
            }
        }
        self.ip_failure(&ip, now).await?;
        self.second_factor_failed(ctx, user, attempt, now).await?;
        Err(AuthError::SecondFactorWrong)
    }

    /// Takes one attempt from the second-factor throttle of this pending sign-in's account and
    /// kind of first factor: the subject to reset on success, and the attempt's number.
    pub(super) async fn claim_second_factor_attempt(
        &self,
        pending: &CodeRecord,
        user: &User,
        now: i64,
    ) -> Result<(String, i64), AuthError> {
        let subject = PendingSecondFactor::of(pending)
            .unwrap_or_default()
            .throttle_subject(&user.id);
        let attempt = self
            .claim_attempt(
                "second_factor",
                &subject,
                SECOND_FACTOR_POLICY,
                AuthError::Throttled { retry_after_s: 900 },
                now,
            )
            .await?;
        Ok((subject, attempt))
    }

    /// After a wrong second factor: when this failure starts the delays, the owner is told
    /// (once per run of failures), since someone who knows the password is guessing.
    pub(super) async fn second_factor_failed(
        &self,
        ctx: &RequestContext,
        user: &User,
        failures: i64,
        now: i64,
    ) -> Result<(), AuthError> {
        if failures == SECOND_FACTOR_POLICY.free_failures + 1 {
            self.send(
                &user.email,
                ctx.emails
                    .compose(crate::mail::EmailKind::SecondFactorThrottled, None),
                now,
            )
            .await?;
            self.audit_silently(
                ctx,
                &user.id,
                "mfa.second_factor.throttled",
                "wrong second factors after the first factor",
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// A new set of recovery codes, shown once; the old set stops working.
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        now: i64,
    ) -> Result<Vec<SecretString>, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let codes: Vec<SecretString> = (0..codes::RECOVERY_CODES)
            .map(|_| codes::generate_recovery_code())
            .collect();
        let hashes: Vec<(String, String)> = codes
            .iter()
            .map(|c| {
                let parsed = codes::parse_recovery_code(c.expose()).unwrap_or_default();
                (
                    random_id(),
                    codes::recovery_code_hash(&self.key, &user.id, &parsed),
                )
            })
            .collect();
        self.store
            .replace_recovery_codes(&user.id, &hashes, now)
            .await?;
        self.audit(
            ctx,
            &user.id,
            "mfa.recovery_codes.generated",
            "10 new recovery codes",
            now,
        )
        .await?;
        tracing::info!(user.id = %user.id, "recovery codes regenerated");
        Ok(codes)
    }

    /// How many recovery codes the account has left.
    pub async fn unused_recovery_codes(&self, user_id: &str) -> Result<i64, AuthError> {
        Ok(self.store.unused_recovery_codes(user_id).await?)
    }

    fn open_totp_secret(&self, credential: &TotpCredential) -> Result<totp::TotpSecret, AuthError> {
        let bytes = seal::open(&self.key, TOTP_SEAL, &credential.sealed_secret)
            .map_err(|e| super::internal(&e))?;
        Ok(totp::TotpSecret::from_bytes(bytes))
    }

    /// Whether the session's sign-in is recent enough to change security info.
    pub fn signed_in_recently(&self, session: &Session, now: i64) -> bool {
        now - session.auth_time <= RECENT_SIGN_IN_MS
    }

    /// Starts adding an authenticator app: a fresh 160-bit secret, sealed at rest, unconfirmed
    /// until a correct code comes back.
    pub async fn begin_totp_enrollment(
        &self,
        session: &Session,
        user: &User,
        issuer: &str,
        now: i64,
    ) -> Result<TotpEnrollment, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let secret = totp::TotpSecret::generate();
        let sealed =
            seal::seal(&self.key, TOTP_SEAL, secret.as_bytes()).map_err(|e| super::internal(&e))?;
        let id = random_id();
        self.store.create_totp(&id, &user.id, &sealed, now).await?;
        Ok(TotpEnrollment {
            uri: totp::otpauth_uri(issuer, &user.email, &secret),
            secret: secret.to_base32(),
            id,
        })
    }

    /// The enrollment in progress with this id, for showing it again.
    pub async fn totp_enrollment(
        &self,
        user: &User,
        id: &str,
        issuer: &str,
        now: i64,
    ) -> Result<Option<TotpEnrollment>, AuthError> {
        let pending = self.store.list_totp(&user.id).await?.into_iter().find(|t| {
            t.id == id && t.confirmed_at.is_none() && t.created_at > now - ENROLLMENT_TTL_MS
        });
        let Some(pending) = pending else {
            return Ok(None);
        };
        let secret = self.open_totp_secret(&pending)?;
        Ok(Some(TotpEnrollment {
            uri: totp::otpauth_uri(issuer, &user.email, &secret),
            secret: secret.to_base32(),
            id: pending.id,
        }))
    }

    /// The account's first second factor, just proven while it was added in this session,
    /// counts for the session when a policy required it: a sign-in that was let in only to
    /// add one (the tenant's rule or a Conditional Access policy) is then multifactor, as if
    /// the factor had been asked at sign-in. A factor added of the person's own accord leaves
    /// the session as it was.
    pub(super) async fn count_new_factor(
        &self,
        session: &Session,
        user: &User,
        had_factor: bool,
        method: super::strength::AuthMethod,
        factor_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let proven = Strength::parse(&session.amr);
        if had_factor || proven.is_multifactor() {
            return Ok(());
        }
        let required = self.mfa_policy().await?.require_mfa
            || self.policy_requires_factor(user, false, now).await?;
        if !required {
            return Ok(());
        }
        let amr = proven.with(method).stored();
        if !Strength::parse(&amr).is_multifactor() {
            return Ok(());
        }
        self.store
            .add_session_factor(&session.id, &amr, factor_id)
            .await?;
        Ok(())
    }

    /// Completes an enrollment with the first correct code from the app.
    pub async fn confirm_totp_enrollment(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        id: &str,
        input: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let code =
            crate::codes::parse_code(input).ok_or(AuthError::InvalidInput(InputProblem::Code))?;
        let pending = self.store.list_totp(&user.id).await?.into_iter().find(|t| {
            t.id == id && t.confirmed_at.is_none() && t.created_at > now - ENROLLMENT_TTL_MS
        });
        let Some(pending) = pending else {
            return Err(AuthError::CodeDead);
        };
        let ip = self.ip_gate(ctx, now).await?;
        let secret = self.open_totp_secret(&pending)?;
        let had_factor = self.store.has_second_factor(&user.id).await?;
        match totp::verify(&secret, &code, now.div_euclid(1000), -1) {
            Some(step)
                if self
                    .store
                    .confirm_totp(&pending.id, &user.id, step, ENROLLMENT_TTL_MS, now)
                    .await? =>
            {
                self.count_new_factor(
                    session,
                    user,
                    had_factor,
                    AuthMethod::AuthenticatorApp,
                    &pending.id,
                    now,
                )
                .await?;
                self.audit(
                    ctx,
                    &user.id,
                    "mfa.authenticator.added",
                    "authenticator app",
                    now,
                )
                .await?;
                tracing::info!(user.id = %user.id, "authenticator app added");
                Ok(())
            }
            Some(_) => Err(AuthError::CodeDead),
            None => {
                self.ip_failure(&ip, now).await?;
                Err(AuthError::SecondFactorWrong)
            }
        }
    }

    /// Removes an authenticator app and ends every session that was completed with it.
    /// Returns whether the current session was one of them.
    pub async fn remove_totp(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        self.may_remove_method(session, user, id, now).await?;
        if !self.store.delete_totp(&user.id, id).await? {
            return Err(AuthError::CodeDead);
        }
        self.method_removed(
            ctx,
            session,
            user,
            id,
            "mfa.authenticator.removed",
            "authenticator app",
            now,
        )
        .await
    }

    /// Whether a method may be removed now: after a recent sign-in, and not the last one while
    /// the tenant requires a second factor.
    pub(super) async fn may_remove_method(
        &self,
        session: &Session,
        user: &User,
        id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        self.ensure_not_last_method(user, id, now).await
    }

    /// The end of removing a method: every session completed with it ends and the audit log
    /// records it. Returns whether the current session was one of them.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn method_removed(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        id: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        self.end_sessions(&user.id, super::SessionsToEnd::CompletedWith(id), now)
            .await?;
        self.audit(ctx, &user.id, action, detail, now).await?;
        tracing::info!(user.id = %user.id, action, "second factor removed");
        Ok(session.second_factor_id.as_deref() == Some(id))
    }

    /// Confirms it is still the account's owner before a sensitive change: the current
    /// password again (counted by the sign-in throttle). The session is replaced by a new one
    /// with a fresh sign-in time and a new id.
    pub async fn reauthenticate_with_password(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        password: &SecretString,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        match self.verify_current_password(user, password, now).await {
            Err(err @ AuthError::InvalidCredentials) => {
                return Err(self
                    .refuse(ctx, &user.email, Some(&user.id), Method::Password, err, now)
                    .await?);
            }
            other => other?,
        }
        let first = super::FirstFactor {
            email: &user.email,
            user: user.clone(),
            method: Method::Password,
            strength: Strength::of(AuthMethod::Password),
            // Still bound to the factor its lineage was completed with: removing that factor
            // ends it too.
            credential_id: session.second_factor_id.as_deref(),
            reauthenticates: Some(session),
            new_password: None,
            findings: Vec::new(),
        };
        match self.conclude_first_factor(ctx, first, now).await? {
            super::SignInOutcome::SignedIn(renewed) => Ok(*renewed),
            super::SignInOutcome::SecondFactorRequired { .. } => {
                Err(AuthError::SecondFactorRequired)
            }
        }
    }
}
