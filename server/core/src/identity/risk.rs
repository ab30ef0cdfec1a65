//! Identity Protection in the pipeline: an account's user risk from its open detections, the
//! administrators' verdicts, and remediation by a new password chosen after multifactor
//! authentication (the "require password change" grant of Conditional Access).

use super::{AuthError, Identity, RequestContext, Strength};
use crate::conditional_access::RiskLevel;
use crate::risk::{
    user_risk, DetectionKind, RiskState, FAILING_MIN_ATTEMPTS, OFFLINE_WINDOW_MS,
    SPRAY_MIN_ACCOUNTS,
};
use crate::secret::SecretString;
use crate::store::{CodePurpose, NewCode};
use crate::store::{DetectionRecord, RiskStateChange, Session, User};
use crate::tokens::{random_id, secret_token, token_hash};

/// The lease of the offline detections, and how long a run may hold it.
pub const OFFLINE_JOB: &str = "risk-offline-detections";
pub const OFFLINE_LEASE_MS: i64 = 10 * 60 * 1000;

/// The lease of the administrators' daily digest, how often it goes out, and how many
/// accounts it lists by name.
pub const RISK_DIGEST_JOB: &str = "risk-digest";
pub const RISK_DIGEST_EVERY_MS: i64 = 24 * 60 * 60 * 1000;
pub const RISK_DIGEST_LISTED: usize = 20;

/// At most one risky-sign-in email per account in this window.
pub const RISKY_SIGN_IN_MAIL_WINDOW_MS: i64 = 6 * 60 * 60 * 1000;

/// Where the new-browser email's "this wasn't me" link leads, and how long it works.
pub const SIGN_IN_REPORT_PATH: &str = "/account/not-me";
pub const SIGN_IN_REPORT_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The sign-in a "this wasn't me" link names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportedSignIn {
    pub session_id: Option<String>,
    pub sign_in_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub signed_in_at: Option<i64>,
}

impl ReportedSignIn {
    fn of(payload: Option<&str>) -> Self {
        let v: serde_json::Value = payload
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default();
        let text = |k: &str| v[k].as_str().map(str::to_string);
        ReportedSignIn {
            session_id: text("session_id"),
            sign_in_id: text("sign_in_id"),
            client_ip: text("client_ip"),
            user_agent: text("user_agent"),
            signed_in_at: v["signed_in_at"].as_i64(),
        }
    }
}

/// What one run of the offline detections did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineRun {
    /// Addresses with enough password attempts to judge.
    pub sources: usize,
    /// Of those, the ones that sprayed or mostly failed.
    pub suspicious: usize,
    /// Detections raised.
    pub detections: usize,
}

/// How many of an account's newest successful sign-ins the detections compare with.
pub const HISTORY_COMPARED: usize = 200;

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

    /// The account's successful sign-ins, as the history-based detections compare with.
    pub(super) async fn sign_in_history(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<crate::risk::SignInHistory, AuthError> {
        // One row: the profile each successful sign-in keeps up to date.
        if let Some(json) = self.store.sign_in_profile(user_id).await? {
            if let Ok(profile) = serde_json::from_str::<crate::risk::SignInProfile>(&json) {
                return Ok(profile.history());
            }
        }
        // An account without one yet (or with a damaged one): the log's summary.
        let summary = self
            .store
            .sign_in_summary(user_id, HISTORY_COMPARED as i64, now)
            .await?;
        Ok(crate::risk::history_of_summary(&summary))
    }

    /// Stores an attempt's real-time detections against the account (at risk), naming the
    /// attempt's sign-in log row.
    pub(super) async fn record_findings(
        &self,
        user: &User,
        findings: &[crate::risk::Finding],
        sign_in_id: Option<&str>,
        now: i64,
    ) -> Result<(), AuthError> {
        for f in findings {
            // A leaked password stays one detection until it is changed.
            if f.kind == DetectionKind::LeakedCredentials
                && self
                    .store
                    .has_open_detection(&user.id, f.kind.as_str())
                    .await?
            {
                continue;
            }
            self.record_detection_for(&user.id, f, sign_in_id, "real-time", now)
                .await?;
        }
        Ok(())
    }

    /// Stores one detection, at risk, with the first entry of its history.
    pub(super) async fn record_detection_for(
        &self,
        user_id: &str,
        f: &crate::risk::Finding,
        sign_in_id: Option<&str>,
        timing: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let reason = if timing == "offline" {
            "detected by the offline detections"
        } else {
            "detected at sign-in"
        };
        self.store
            .record_detection(
                &DetectionRecord {
                    id: random_id(),
                    user_id: user_id.to_string(),
                    sign_in_id: sign_in_id.map(str::to_string),
                    kind: f.kind.as_str().into(),
                    level: f.level.as_str().into(),
                    timing: timing.into(),
                    detected_at: now,
                    state: RiskState::AtRisk.as_str().into(),
                    evidence: f.evidence.to_string(),
                    summary: f.summary.clone(),
                    updated_at: now,
                },
                &random_id(),
                None,
                reason,
            )
            .await?;
        Ok(())
    }

    /// Runs the offline detections if no other instance is running them (the job's lease in
    /// the database): over the last [`OFFLINE_WINDOW_MS`], each address that sprayed
    /// passwords or failed most of its attempts is found from the sign-in log, and each
    /// account whose password it got right gets a detection naming that sign-in (once per
    /// sign-in and kind, however often the job runs). `None` when another instance holds the
    /// lease.
    pub async fn run_offline_detections(
        &self,
        holder: &str,
        now: i64,
    ) -> Result<Option<OfflineRun>, AuthError> {
        if !self
            .store
            .try_lease(OFFLINE_JOB, holder, OFFLINE_LEASE_MS, now)
            .await?
        {
            return Ok(None);
        }
        let run = self.offline_detections(now).await;
        self.store.release_lease(OFFLINE_JOB, holder, now).await?;
        run.map(Some)
    }

    /// A new single-use "this wasn't me" link for the sign-in that started `session_id`.
    pub(super) async fn sign_in_report_link(
        &self,
        ctx: &RequestContext,
        user: &User,
        session_id: &str,
        now: i64,
    ) -> Result<String, AuthError> {
        let token = secret_token();
        let payload = serde_json::json!({
            "session_id": session_id,
            "sign_in_id": ctx.sign_in_id,
            "client_ip": ctx.client_ip,
            "user_agent": ctx.user_agent,
            "signed_in_at": now,
        });
        self.store
            .create_code(&NewCode {
                id: &token_hash(&token),
                purpose: CodePurpose::SignInReport,
                email: &user.email,
                user_id: Some(&user.id),
                code_hash: "",
                payload: Some(&payload.to_string()),
                now,
                expires_at: now + SIGN_IN_REPORT_TTL_MS,
            })
            .await?;
        Ok(format!(
            "{}{SIGN_IN_REPORT_PATH}?token={token}",
            self.config.public_url.trim_end_matches('/')
        ))
    }

    /// The sign-in a "this wasn't me" link reports, or `None` when the link is unknown, used
    /// or expired. Reads only (mail scanners open links).
    pub async fn sign_in_report(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<ReportedSignIn>, AuthError> {
        Ok(self
            .live_link(token, CodePurpose::SignInReport, now)
            .await?
            .map(|record| ReportedSignIn::of(record.payload.as_deref())))
    }

    /// The owner reports a sign-in as not theirs, from the new-browser email's link (once):
    /// that sign-in's session ends, and with it every other (whoever signed in may know the
    /// password and hold more sessions), the password is removed (a reset code is emailed) and
    /// every application grant revoked, and a high user-reported detection raises the user
    /// risk.
    pub async fn report_sign_in(
        &self,
        ctx: &RequestContext,
        token: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let (record, user) = self
            .consume_link(token, CodePurpose::SignInReport, now)
            .await?;
        let reported = ReportedSignIn::of(record.payload.as_deref());
        self.end_sessions(&user.id, super::SessionsToEnd::All, now)
            .await?;
        let had_password = user.password_hash.is_some();
        if had_password {
            self.store.clear_password(&user.id, now).await?;
        }
        self.store.revoke_user_grants(&user.id, now).await?;
        let finding = crate::risk::Finding {
            kind: DetectionKind::UserReportedSuspicious,
            level: RiskLevel::High,
            summary: format!(
                "The owner reported the sign-in from {} as not theirs.",
                reported
                    .client_ip
                    .as_deref()
                    .unwrap_or("an unknown address")
            ),
            evidence: serde_json::json!({
                "session_id": reported.session_id,
                "client_ip": reported.client_ip,
                "user_agent": reported.user_agent,
                "signed_in_at": reported.signed_in_at,
                "password_removed": had_password,
            }),
        };
        self.record_detection_for(
            &user.id,
            &finding,
            reported.sign_in_id.as_deref(),
            "real-time",
            now,
        )
        .await?;
        self.audit_silently(
            ctx,
            &user.id,
            "risk.sign_in_reported",
            &format!(
                "reported from the new-browser email; sessions ended{}",
                if had_password {
                    ", password removed"
                } else {
                    ""
                }
            ),
            now,
        )
        .await?;
        if had_password {
            self.start_password_reset(ctx, &user.email, now).await?;
        }
        tracing::info!(user.id = %user.id, "sign-in reported by its owner");
        Ok(())
    }

    /// Tells the owner that a sign-in with their first factor looked risky and was blocked or
    /// asked for a second factor by a policy: at most one such email per account every
    /// [`RISKY_SIGN_IN_MAIL_WINDOW_MS`], so an attacker retrying cannot flood the mailbox.
    pub(super) async fn notify_risky_sign_in(
        &self,
        ctx: &RequestContext,
        user: &User,
        blocked: bool,
        now: i64,
    ) -> Result<(), AuthError> {
        let slot = format!("risky-sign-in:{}", user.id);
        if self
            .store
            .claim_send_slot(&slot, &random_id(), RISKY_SIGN_IN_MAIL_WINDOW_MS, now)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let kind = if blocked {
            crate::mail::EmailKind::RiskySignInBlocked
        } else {
            crate::mail::EmailKind::RiskySignInChallenged
        };
        self.send(&user.email, ctx.emails.compose(kind, None), now)
            .await
    }

    /// The daily digest to administrators of the accounts with new detections since the last
    /// one (or the last day): at most once every [`RISK_DIGEST_EVERY_MS`] across instances
    /// (the job's lease, and its last finish checked again under the lease); nothing is sent
    /// when there is nothing new. Returns how many accounts it listed, or `None` when it was
    /// not due or another instance holds it.
    pub async fn run_risk_digest(
        &self,
        holder: &str,
        texts: &dyn crate::mail::EmailTexts,
        now: i64,
    ) -> Result<Option<usize>, AuthError> {
        let due = |last: Option<i64>| last.is_none_or(|t| now - t >= RISK_DIGEST_EVERY_MS);
        if !due(self.store.job_finished_at(RISK_DIGEST_JOB).await?) {
            return Ok(None);
        }
        if !self
            .store
            .try_lease(RISK_DIGEST_JOB, holder, OFFLINE_LEASE_MS, now)
            .await?
        {
            return Ok(None);
        }
        let last = self.store.job_finished_at(RISK_DIGEST_JOB).await?;
        if !due(last) {
            self.store.drop_lease(RISK_DIGEST_JOB, holder).await?;
            return Ok(None);
        }
        let listed = self
            .send_risk_digest(texts, last.unwrap_or(now - RISK_DIGEST_EVERY_MS), now)
            .await;
        match listed {
            Ok(n) => {
                self.store
                    .release_lease(RISK_DIGEST_JOB, holder, now)
                    .await?;
                Ok(Some(n))
            }
            Err(e) => {
                self.store.drop_lease(RISK_DIGEST_JOB, holder).await?;
                Err(e)
            }
        }
    }

    async fn send_risk_digest(
        &self,
        texts: &dyn crate::mail::EmailTexts,
        since: i64,
        now: i64,
    ) -> Result<usize, AuthError> {
        let filter = crate::store::DetectionFilter {
            from: Some(since),
            to: Some(now),
            ..Default::default()
        };
        let (found, _) = self.store.filter_detections(&filter, 0, 1_000).await?;
        // Per account, newest first: the highest level and the kinds.
        let mut accounts: Vec<(String, RiskLevel, Vec<&'static str>)> = Vec::new();
        for d in &found {
            let level = d.level.parse::<RiskLevel>().unwrap_or(RiskLevel::High);
            let kind = DetectionKind::parse(&d.kind).map_or("Risk detection", |k| k.label());
            match accounts.iter_mut().find(|(u, _, _)| *u == d.user_id) {
                Some((_, l, kinds)) => {
                    *l = (*l).max(level);
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                None => accounts.push((d.user_id.clone(), level, vec![kind])),
            }
        }
        if accounts.is_empty() {
            return Ok(0);
        }
        let shown: Vec<String> = accounts
            .iter()
            .take(RISK_DIGEST_LISTED)
            .map(|(u, ..)| u.clone())
            .collect();
        let emails = self.emails_of(&shown).await?;
        let mut lines: Vec<String> = accounts
            .iter()
            .zip(emails)
            .map(|((_, level, kinds), email)| {
                format!("- {email}: {} ({})", level.as_str(), kinds.join(", "))
            })
            .collect();
        if accounts.len() > RISK_DIGEST_LISTED {
            lines.push(format!(
                "- and {} more accounts",
                accounts.len() - RISK_DIGEST_LISTED
            ));
        }
        lines.push(String::new());
        lines.push(format!(
            "{}/admin/risk/users",
            self.config.public_url.trim_end_matches('/')
        ));
        let content = lines.join("\n");
        for id in self.store.admin_ids().await? {
            if let Some(admin) = self.store.find_user(&id).await? {
                if !admin.disabled {
                    self.send(
                        &admin.email,
                        texts.compose(crate::mail::EmailKind::RiskDigest, Some(&content)),
                        now,
                    )
                    .await?;
                }
            }
        }
        Ok(accounts.len())
    }

    /// When the offline detections last finished, if ever.
    pub async fn offline_detections_finished_at(&self) -> Result<Option<i64>, AuthError> {
        Ok(self.store.job_finished_at(OFFLINE_JOB).await?)
    }

    async fn offline_detections(&self, now: i64) -> Result<OfflineRun, AuthError> {
        use crate::risk::{failing_source, password_spray};
        let from = now - OFFLINE_WINDOW_MS;
        let min = SPRAY_MIN_ACCOUNTS.min(FAILING_MIN_ATTEMPTS);
        let sources = self.store.password_sources(from, now, min).await?;
        let mut run = OfflineRun {
            sources: sources.len(),
            ..OfflineRun::default()
        };
        for source in &sources {
            let failing = failing_source(source);
            if failing.is_none() && password_spray(source, source.first_at).is_none() {
                continue;
            }
            run.suspicious += 1;
            let mut raised: Vec<(String, DetectionKind)> = Vec::new();
            for entry in self
                .store
                .proven_passwords_from(&source.client_ip, from, now)
                .await?
            {
                let Some(user_id) = &entry.user_id else {
                    continue;
                };
                for f in [password_spray(source, entry.occurred_at), failing.clone()]
                    .into_iter()
                    .flatten()
                {
                    // One detection per account, address and kind in a run; none twice for
                    // one sign-in across runs.
                    if raised.iter().any(|(u, k)| u == user_id && *k == f.kind)
                        || self
                            .store
                            .has_detection_of_sign_in(&entry.id, f.kind.as_str())
                            .await?
                    {
                        continue;
                    }
                    self.record_detection_for(user_id, &f, Some(&entry.id), "offline", now)
                        .await?;
                    raised.push((user_id.clone(), f.kind));
                    run.detections += 1;
                }
            }
        }
        Ok(run)
    }

    /// A new password (changed or reset) remediates a leaked or sprayed one: the old
    /// password no longer opens the account.
    pub(super) async fn password_replaced(&self, user: &User, now: i64) -> Result<(), AuthError> {
        for (kind, reason) in [
            (
                DetectionKind::LeakedCredentials,
                "the leaked password was replaced",
            ),
            (
                DetectionKind::PasswordSpray,
                "the sprayed password was replaced",
            ),
            (
                DetectionKind::UserReportedSuspicious,
                "the owner chose a new password after reporting the sign-in",
            ),
        ] {
            self.store
                .close_open_risk_of_kind(
                    &user.id,
                    kind.as_str(),
                    RiskState::Remediated.as_str(),
                    reason,
                    now,
                    &mut random_id,
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
        self.check_password_rules(ctx, new, &user.email)?;
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

/// What the console shows of one detection.
#[derive(Debug, Clone)]
pub struct DetectionView {
    pub detection: DetectionRecord,
    /// The account it is about (gone if deleted since).
    pub user: Option<User>,
    /// The sign-in it came from, when it came from one.
    pub sign_in: Option<crate::store::SignInLogEntry>,
    /// Every change of its state, oldest first, with the admin's email when an admin made it.
    pub history: Vec<(RiskStateChange, Option<String>)>,
}

impl Identity {
    /// One page of the risk detections, filtered, and how many match in all.
    pub async fn console_detections(
        &self,
        filter: &crate::store::DetectionFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<DetectionRecord>, i64), AuthError> {
        Ok(self.store.filter_detections(filter, offset, limit).await?)
    }

    /// One page of the accounts with open detections, and how many match in all.
    pub async fn console_risky_users(
        &self,
        filter: &crate::store::RiskyUserFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<crate::store::RiskyUser>, i64), AuthError> {
        Ok(self.store.risky_users(filter, offset, limit).await?)
    }

    /// One detection with its account, sign-in and history.
    pub async fn console_detection(&self, id: &str) -> Result<Option<DetectionView>, AuthError> {
        let Some(detection) = self.store.find_detection(id).await? else {
            return Ok(None);
        };
        let user = self.store.find_user(&detection.user_id).await?;
        let sign_in = match &detection.sign_in_id {
            Some(s) => self.store.find_sign_in(s).await?,
            None => None,
        };
        let mut history = Vec::new();
        for change in self.store.detection_history(id).await? {
            let by = match &change.changed_by {
                Some(admin) => self.store.find_user(admin).await?.map(|u| u.email),
                None => None,
            };
            history.push((change, by));
        }
        Ok(Some(DetectionView {
            detection,
            user,
            sign_in,
            history,
        }))
    }

    /// The detections made at one sign-in.
    pub async fn detections_of_sign_in(
        &self,
        sign_in_id: &str,
    ) -> Result<Vec<DetectionRecord>, AuthError> {
        Ok(self.store.detections_of_sign_in(sign_in_id).await?)
    }
}
