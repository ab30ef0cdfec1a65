//! Identity Protection in the pipeline: an account's user risk from its open detections, the
//! administrators' verdicts, and remediation by a new password chosen after multifactor
//! authentication (the "require password change" grant of Conditional Access).

use super::{check_password_rules, AuthError, Identity, RequestContext, Strength};
use crate::conditional_access::RiskLevel;
use crate::risk::{user_risk, DetectionKind, RiskState};
use crate::secret::SecretString;
use crate::store::{DetectionRecord, RiskStateChange, Session, User};
use crate::tokens::random_id;

impl Identity {
    /// The account's user risk: the highest level of its detections still open.
    pub async fn user_risk(&self, user_id: &str) -> Result<RiskLevel, AuthError> {
        let levels = self.store.open_risk_levels(user_id).await?;
        Ok(user_risk(levels.iter().map(String::as_str)))
    }

    /// Every detection of the account, newest first.
    pub async fn risk_detections(&self, user: &User) -> Result<Vec<DetectionRecord>, AuthError> {
        Ok(self.store.detections_of(&user.id).await?)
    }

    /// Every change of the account's risk states, newest first.
    pub async fn risk_history(&self, user: &User) -> Result<Vec<RiskStateChange>, AuthError> {
        Ok(self.store.risk_history(&user.id).await?)
    }

    /// Stores an attempt's real-time detections against the account (at risk).
    pub(super) async fn record_findings(
        &self,
        user: &User,
        findings: &[crate::risk::Finding],
        now: i64,
    ) -> Result<(), AuthError> {
        for f in findings {
            self.store
                .record_detection(
                    &DetectionRecord {
                        id: random_id(),
                        user_id: user.id.clone(),
                        sign_in_id: None,
                        kind: f.kind.as_str().into(),
                        level: f.level.as_str().into(),
                        timing: "real-time".into(),
                        detected_at: now,
                        state: RiskState::AtRisk.as_str().into(),
                        evidence: f.evidence.to_string(),
                        summary: f.summary.clone(),
                        updated_at: now,
                    },
                    &random_id(),
                    None,
                    "detected at sign-in",
                )
                .await?;
        }
        Ok(())
    }

    /// The sign-in risk detected since `since` is remediated: the person completed the
    /// multifactor authentication a policy asked for.
    pub(super) async fn remediate_sign_in_risk(
        &self,
        user: &User,
        since: i64,
        now: i64,
    ) -> Result<u64, AuthError> {
        Ok(self
            .store
            .close_recent_sign_in_risk(
                &user.id,
                since,
                RiskState::Remediated.as_str(),
                "multifactor authentication completed the sign-in",
                now,
                &mut random_id,
            )
            .await?)
    }

    /// Replaces the address list `kind` with the ranges read from `text` (the Tor Project's
    /// exit list, or an address or CIDR range a line). Every instance uses it within
    /// the Conditional Access cache time. Returns how many entries it holds.
    pub async fn import_risk_list(
        &self,
        kind: crate::risk::ListKind,
        text: &str,
        now: i64,
    ) -> Result<u64, super::AccessError> {
        let nets = crate::risk::parse_list(kind, text).map_err(|e| {
            super::AccessError::Invalid(crate::conditional_access::PolicyProblem(e))
        })?;
        let entries: Vec<String> = nets.iter().map(ToString::to_string).collect();
        let n = self
            .store
            .replace_risk_list(kind.as_str(), &entries, now)
            .await
            .map_err(AuthError::from)?;
        self.policies_changed().await;
        Ok(n)
    }

    /// How many entries each address list holds.
    pub async fn risk_list_sizes(&self) -> Result<Vec<(crate::risk::ListKind, usize)>, AuthError> {
        let entries = self.store.risk_list_entries().await?;
        Ok(crate::risk::ListKind::ALL
            .into_iter()
            .map(|k| {
                (
                    k,
                    entries
                        .iter()
                        .filter(|(kind, _)| kind == k.as_str())
                        .count(),
                )
            })
            .collect())
    }

    /// An administrator confirms the account compromised: a high user-risk detection, open
    /// until the person changes the password after multifactor authentication or an
    /// administrator closes it.
    pub(super) async fn confirm_compromised(
        &self,
        admin: &User,
        user: &User,
        now: i64,
    ) -> Result<(), AuthError> {
        let kind = DetectionKind::AdminConfirmedCompromised;
        let evidence = serde_json::json!({ "admin": admin.id, "admin_email": admin.email });
        self.store
            .record_detection(
                &DetectionRecord {
                    id: random_id(),
                    user_id: user.id.clone(),
                    sign_in_id: None,
                    kind: kind.as_str().into(),
                    level: RiskLevel::High.as_str().into(),
                    timing: "offline".into(),
                    detected_at: now,
                    state: RiskState::ConfirmedCompromised.as_str().into(),
                    evidence: evidence.to_string(),
                    summary: format!("{} confirmed the account compromised.", admin.email),
                    updated_at: now,
                },
                &random_id(),
                Some(&admin.id),
                "confirmed compromised by an administrator",
            )
            .await?;
        Ok(())
    }

    /// Closes every open detection of the account in `state` (an administrator's verdict, or
    /// the person's remediation). Returns how many were open.
    pub(super) async fn close_risk(
        &self,
        user: &User,
        state: RiskState,
        by: Option<&User>,
        reason: &str,
        now: i64,
    ) -> Result<u64, AuthError> {
        Ok(self
            .store
            .close_open_risk(
                &user.id,
                state.as_str(),
                by.map(|u| u.id.as_str()),
                reason,
                now,
                &mut random_id,
            )
            .await?)
    }

    /// The person at risk chooses a new password, in a session that proved multifactor
    /// authentication (a policy asked for both): the password changes without the old one
    /// (which may be the attacker's), every other session ends, and the account's open
    /// detections are remediated. An account not at risk changes its password the usual way,
    /// with the current one: this is refused.
    pub async fn change_password_for_risk(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        new: &SecretString,
        now: i64,
    ) -> Result<(), AuthError> {
        if self.user_risk(&user.id).await? == RiskLevel::None {
            return Err(AuthError::ReauthenticationRequired);
        }
        if !Strength::parse(&session.amr).is_multifactor() {
            return Err(AuthError::SecondFactorRequired);
        }
        check_password_rules(ctx, new, &user.email)?;
        self.replace_password(ctx, session, user, new, now).await?;
        let remediated = self
            .close_risk(
                user,
                RiskState::Remediated,
                None,
                "password changed after multifactor authentication",
                now,
            )
            .await?;
        self.audit_silently(
            ctx,
            &user.id,
            "risk.remediated",
            &format!("{remediated} detections remediated by a password change"),
            now,
        )
        .await
    }
}
