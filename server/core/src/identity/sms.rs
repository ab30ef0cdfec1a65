//! Text-message codes: adding a phone number (proven by a code before use) and texting a code
//! as the second factor of a pending sign-in.
//!
//! Texts cost money and attract SMS pumping, so every text passes three budgets taken in the
//! database: per client address, per number (at most 5 an hour) and for the whole tenant. Only
//! numbers in the tenant's allowed country calling codes receive texts. SMS is the weakest
//! second factor (numbers can be ported or intercepted), and the pages say so.

use serde::{Deserialize, Serialize};

use super::{AuthError, Identity, InputProblem, RequestContext};
use crate::codes::{self, CODE_TTL_MS};
use crate::mail::EmailKind;
use crate::phone::{calling_code, normalize_phone, PhoneProblem};
use crate::store::{CodePurpose, InsightEvent, NewCode, PhoneNumber, Session, User};
use crate::tokens::random_id;

/// Texts one number may receive per hour, whatever the flows.
pub const SMS_PER_NUMBER_PER_HOUR: i64 = 5;
/// Texts one client address (IPv6: its /64) may cause per hour.
pub const SMS_PER_IP_PER_HOUR: i64 = 10;
const HOUR_MS: i64 = 60 * 60 * 1000;

/// The name of the setting holding the [`SmsPolicy`].
pub const SMS_POLICY_SETTING: &str = "sms_policy";

/// Where texts may go, set by the tenant's admin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsPolicy {
    /// Country calling codes (digits, no `+`) whose numbers may receive texts; empty allows
    /// every country.
    #[serde(default)]
    pub allowed_country_codes: Vec<String>,
}

impl SmsPolicy {
    pub fn allows(&self, e164: &str) -> bool {
        self.allowed_country_codes.is_empty()
            || calling_code(e164).is_some_and(|c| self.allowed_country_codes.iter().any(|a| a == c))
    }
}

/// A phone number being added: its id and the number, for the page that asks for the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneEnrollment {
    pub id: String,
    pub number: String,
}

impl Identity {
    /// The tenant's text-message policy.
    pub async fn sms_policy(&self) -> Result<SmsPolicy, AuthError> {
        self.setting(SMS_POLICY_SETTING).await
    }

    /// Stores the tenant's text-message policy.
    pub async fn set_sms_policy(&self, policy: &SmsPolicy, now: i64) -> Result<(), AuthError> {
        self.put_setting(SMS_POLICY_SETTING, policy, now).await
    }

    /// Counts a text (sent, refused or failed) in the metrics and for the MFA dashboard.
    /// A text not counted is logged, never an error: the count is not worth a sign-in.
    async fn count_text(&self, ctx: &RequestContext, result: &str, country: &str, now: i64) {
        self.metrics.text(result, country);
        let event = InsightEvent {
            id: random_id(),
            occurred_at: now,
            application: ctx.application.clone(),
            kind: crate::insights::DIM_TEXT.into(),
            value: country.into(),
            result: result.into(),
        };
        if let Err(e) = self.store.record_event(&event).await {
            tracing::warn!(error = %e, "a text message was not counted");
        }
    }

    /// Texts `code` for the flow `flow_id` to `number`, within every budget and the country
    /// allow-list. A refused text expires the flow: its code was never sent.
    pub(super) async fn send_text_code(
        &self,
        ctx: &RequestContext,
        number: &str,
        flow_id: &str,
        code: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let country = crate::phone::calling_code(number).unwrap_or("unknown");
        if !self.sms_policy().await?.allows(number) {
            self.count_text(ctx, "refused", country, now).await;
            self.store.expire_code(flow_id, now).await?;
            return Err(AuthError::InvalidInput(InputProblem::Phone(
                PhoneProblem::CountryNotAllowed,
            )));
        }
        let ip = super::ip_key(&ctx.client_ip);
        let budgets: [(&str, &str, i64); 3] = [
            ("sms_ip", &ip, SMS_PER_IP_PER_HOUR),
            ("sms_number", number, SMS_PER_NUMBER_PER_HOUR),
            ("sms_global", "all", self.config.sms_hourly_limit),
        ];
        for (scope, subject, limit) in budgets {
            if !self
                .store
                .take_budget(scope, subject, limit, HOUR_MS, now)
                .await?
            {
                tracing::warn!(budget = scope, "text-message budget reached; no text sent");
                self.count_text(ctx, "refused", country, now).await;
                self.store.expire_code(flow_id, now).await?;
                return Err(AuthError::TooManyRequests);
            }
        }
        let text = ctx.emails.compose(EmailKind::TextCode, Some(code));
        if let Err(e) = self
            .deliver("sms", self.sms.as_ref(), number, text, now)
            .await
        {
            self.count_text(ctx, "failed", country, now).await;
            return Err(e);
        }
        self.count_text(ctx, "sent", country, now).await;
        self.store.mark_code_sent(flow_id, now).await?;
        Ok(())
    }

    /// Starts adding a phone number: it is stored unproven and a code is texted to it.
    /// An account has one number; a proven one must be removed before another is added.
    pub async fn begin_phone_enrollment(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        input: &str,
        now: i64,
    ) -> Result<PhoneEnrollment, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let number =
            normalize_phone(input).map_err(|p| AuthError::InvalidInput(InputProblem::Phone(p)))?;
        if !self.sms_policy().await?.allows(&number) {
            return Err(AuthError::InvalidInput(InputProblem::Phone(
                PhoneProblem::CountryNotAllowed,
            )));
        }
        if self
            .store
            .list_phones(&user.id)
            .await?
            .iter()
            .any(|p| p.verified_at.is_some())
        {
            return Err(AuthError::LimitReached);
        }
        let id = random_id();
        self.store
            .create_phone(&PhoneNumber {
                id: id.clone(),
                user_id: user.id.clone(),
                number: number.clone(),
                created_at: now,
                verified_at: None,
                last_used_at: None,
            })
            .await?;
        let code = codes::generate_code();
        let hash = codes::code_hash(&self.key, CodePurpose::PhoneVerification, &id, &code);
        self.store
            .create_code(&NewCode {
                id: &id,
                purpose: CodePurpose::PhoneVerification,
                email: &user.email,
                user_id: Some(&user.id),
                code_hash: &hash,
                payload: None,
                now,
                expires_at: now + CODE_TTL_MS,
            })
            .await?;
        self.send_text_code(ctx, &number, &id, code.expose(), now)
            .await?;
        Ok(PhoneEnrollment { id, number })
    }

    /// The number being added under this id, while its code is still live.
    pub async fn phone_enrollment(
        &self,
        user: &User,
        id: &str,
        now: i64,
    ) -> Result<Option<PhoneEnrollment>, AuthError> {
        if self.live_flow(id, now).await?.is_none() {
            return Ok(None);
        }
        Ok(self
            .store
            .list_phones(&user.id)
            .await?
            .into_iter()
            .find(|p| p.id == id && p.verified_at.is_none())
            .map(|p| PhoneEnrollment {
                id: p.id,
                number: p.number,
            }))
    }

    /// Proves a number with the code texted to it; from then on it is a second factor.
    pub async fn confirm_phone(
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
        let (flow, owner) = self
            .live_flow_with_user(id, CodePurpose::PhoneVerification, now)
            .await?;
        if owner.id != user.id {
            return Err(AuthError::CodeDead);
        }
        self.check_code(ctx, &flow, input, now).await?;
        let had_factor = self.store.has_second_factor(&user.id).await?;
        if !self.store.verify_phone(&user.id, id, now).await? {
            return Err(AuthError::CodeDead);
        }
        self.count_new_factor(
            session,
            user,
            had_factor,
            super::strength::AuthMethod::TextMessage,
            id,
            now,
        )
        .await?;
        self.audit(
            ctx,
            &user.id,
            "mfa.phone.added",
            "phone number for text messages",
            now,
        )
        .await?;
        tracing::info!(user.id = %user.id, "phone number added");
        Ok(())
    }

    /// Removes a phone number and ends every session completed with a code texted to it.
    /// Returns whether the current session was one of them.
    pub async fn remove_phone(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        self.may_remove_method(session, user, id, now).await?;
        if !self.store.delete_phone(&user.id, id).await? {
            return Err(AuthError::CodeDead);
        }
        self.method_removed(
            ctx,
            session,
            user,
            id,
            "mfa.phone.removed",
            "phone number for text messages",
            now,
        )
        .await
    }
}
