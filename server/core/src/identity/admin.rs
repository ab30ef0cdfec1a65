//! What tenant admins do to accounts and applications. Every action is written to the audit
//! log with the admin as the actor. Admins never see or set a password: a required reset
//! removes the password and emails the person a reset code.

use super::oidc::{ClientConfigError, ClientInput, ConnectedApplication, RegisteredClient};
use super::{
    AuthError, Identity, LinkedIdentity, RequestContext, SecondFactorMethod, ACCOUNT_PORTAL,
};
use crate::secret::SecretString;
use crate::store::{
    AuditEntry, AuditFilter, NewUser, OutboxMessage, Session, SignInFilter, SignInLogEntry, User,
};
use crate::tokens::random_id;

/// Why an admin action was not done.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no such account")]
    NotFound,
    #[error("admins cannot do this to their own account")]
    OwnAccount,
    #[error("{0}")]
    Client(#[from] ClientConfigError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<crate::store::StoreError> for AdminError {
    fn from(err: crate::store::StoreError) -> Self {
        AdminError::Auth(err.into())
    }
}

/// Everything the console shows about one account.
#[derive(Debug)]
pub struct UserOverview {
    pub user: User,
    pub user_risk: crate::conditional_access::RiskLevel,
    /// Identity Protection's detections of the account, newest first.
    pub detections: Vec<crate::store::DetectionRecord>,
    pub sessions: Vec<Session>,
    pub methods: Vec<SecondFactorMethod>,
    pub linked: Vec<LinkedIdentity>,
    pub applications: Vec<ConnectedApplication>,
    pub recent_sign_ins: Vec<SignInLogEntry>,
}

/// The admin actions on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    Disable,
    Enable,
    Delete,
    /// End every session and revoke every application's tokens.
    RevokeSessions,
    /// Remove every second factor and recovery code (after verifying the person out of band).
    ResetMfa,
    /// Remove the password; the person is emailed a reset code.
    RequirePasswordReset,
    /// Identity Protection: the account is compromised (high user risk; sessions and tokens
    /// end).
    ConfirmCompromised,
    /// Identity Protection: the account's open detections were the owner (closed as safe).
    ConfirmSafe,
    /// Identity Protection: the account's open detections are dismissed.
    DismissRisk,
}

impl AccountAction {
    pub fn parse(s: &str) -> Option<AccountAction> {
        Some(match s {
            "disable" => AccountAction::Disable,
            "enable" => AccountAction::Enable,
            "delete" => AccountAction::Delete,
            "revoke-sessions" => AccountAction::RevokeSessions,
            "reset-mfa" => AccountAction::ResetMfa,
            "require-password-reset" => AccountAction::RequirePasswordReset,
            "confirm-compromised" => AccountAction::ConfirmCompromised,
            "confirm-safe" => AccountAction::ConfirmSafe,
            "dismiss-risk" => AccountAction::DismissRisk,
            _ => return None,
        })
    }

    pub fn audit_action(self) -> &'static str {
        match self {
            AccountAction::Disable => "admin.user.disabled",
            AccountAction::Enable => "admin.user.enabled",
            AccountAction::Delete => "admin.user.deleted",
            AccountAction::RevokeSessions => "admin.user.sessions_revoked",
            AccountAction::ResetMfa => "admin.user.mfa_reset",
            AccountAction::RequirePasswordReset => "admin.user.password_reset_required",
            AccountAction::ConfirmCompromised => "admin.user.confirmed_compromised",
            AccountAction::ConfirmSafe => "admin.user.confirmed_safe",
            AccountAction::DismissRisk => "admin.user.risk_dismissed",
        }
    }
}

/// What `gatehouse dev generate` made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub users: u64,
    pub sign_ins: u64,
}

/// Rows written per transaction by the generator.
const GENERATE_BATCH: usize = 5_000;

/// Sign-in log rows removed per statement, and statements per housekeeping pass.
pub const PRUNE_BATCH: i64 = 1_000;
pub const PRUNE_BATCHES: usize = 100;

impl Identity {
    /// Writes an admin's action to the audit log.
    pub async fn admin_audit(
        &self,
        ctx: &RequestContext,
        admin: &User,
        subject: Option<&str>,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.store
            .record_audit(&AuditEntry {
                id: random_id(),
                occurred_at: now,
                actor_user_id: Some(admin.id.clone()),
                subject_user_id: subject.map(str::to_string),
                action: action.to_string(),
                detail: detail.chars().take(500).collect(),
                client_ip: ctx.client_ip.clone(),
            })
            .await?;
        Ok(())
    }

    pub async fn user_overview(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Option<UserOverview>, AuthError> {
        if user_id.is_empty() || user_id.len() > 64 {
            return Ok(None);
        }
        let Some(user) = self.store.find_user(user_id).await? else {
            return Ok(None);
        };
        let (recent_sign_ins, _) = self
            .store
            .filter_sign_ins(
                &SignInFilter {
                    user_id: Some(user.id.clone()),
                    ..SignInFilter::default()
                },
                0,
                20,
            )
            .await?;
        Ok(Some(UserOverview {
            user_risk: self.user_risk(&user.id).await?,
            detections: self.store.detections_of(&user.id).await?,
            sessions: self.list_sessions(&user.id, now).await?,
            methods: self.second_factor_methods(&user.id).await?,
            linked: self.linked_identities(&user.id).await?,
            applications: self.connected_applications(&user.id, now).await?,
            recent_sign_ins,
            user,
        }))
    }

    /// Does `action` to an account, as `admin`, and writes it to the audit log.
    pub async fn admin_account_action(
        &self,
        ctx: &RequestContext,
        admin: &User,
        user_id: &str,
        action: AccountAction,
        now: i64,
    ) -> Result<(), AdminError> {
        let user = self
            .store
            .find_user(user_id)
            .await?
            .ok_or(AdminError::NotFound)?;
        let own = user.id == admin.id;
        if own && matches!(action, AccountAction::Disable | AccountAction::Delete) {
            return Err(AdminError::OwnAccount);
        }
        let detail = match action {
            AccountAction::Disable => {
                self.end_sessions(&user.id, super::SessionsToEnd::All, now)
                    .await?;
                self.store.set_user_disabled(&user.id, true, now).await?;
                self.store.revoke_user_grants(&user.id, now).await?;
                format!("{} disabled; sessions and tokens ended", user.email)
            }
            AccountAction::Enable => {
                self.store.set_user_disabled(&user.id, false, now).await?;
                format!("{} enabled", user.email)
            }
            AccountAction::Delete => {
                // The same deletion as the owner's own: personal data goes, the log rows stay
                // with the account id only.
                self.end_sessions(&user.id, super::SessionsToEnd::All, now)
                    .await?;
                self.store.delete_account(&user.id).await?;
                "account and personal data deleted".to_string()
            }
            AccountAction::RevokeSessions => {
                let ended = self
                    .end_sessions(&user.id, super::SessionsToEnd::All, now)
                    .await?;
                let revoked = self.store.revoke_user_grants(&user.id, now).await?;
                format!("{ended} sessions ended, {revoked} application grants revoked")
            }
            AccountAction::ResetMfa => {
                self.end_sessions(&user.id, super::SessionsToEnd::All, now)
                    .await?;
                let removed = self.store.delete_second_factors(&user.id).await?;
                format!("{removed} second factors and the recovery codes removed; sessions ended")
            }
            AccountAction::RequirePasswordReset => {
                self.end_sessions(&user.id, super::SessionsToEnd::All, now)
                    .await?;
                self.store.clear_password(&user.id, now).await?;
                self.store.revoke_user_grants(&user.id, now).await?;
                self.start_password_reset(ctx, &user.email, now).await?;
                format!("password removed and a reset code sent to {}", user.email)
            }
            AccountAction::ConfirmCompromised => {
                let ended = self
                    .end_sessions(&user.id, super::SessionsToEnd::All, now)
                    .await?;
                let revoked = self.store.revoke_user_grants(&user.id, now).await?;
                self.confirm_compromised(admin, &user, now).await?;
                format!("confirmed compromised: user risk high; {ended} sessions ended, {revoked} application grants revoked")
            }
            AccountAction::ConfirmSafe | AccountAction::DismissRisk => {
                let (state, words) = match action {
                    AccountAction::ConfirmSafe => {
                        (crate::risk::RiskState::ConfirmedSafe, "confirmed safe")
                    }
                    _ => (crate::risk::RiskState::Dismissed, "dismissed"),
                };
                let closed = self
                    .close_risk(
                        &user,
                        state,
                        Some(admin),
                        &format!("{words} by an administrator"),
                        now,
                    )
                    .await?;
                format!("{closed} open detections {words}")
            }
        };
        self.admin_audit(
            ctx,
            admin,
            Some(&user.id),
            action.audit_action(),
            &detail,
            now,
        )
        .await?;
        tracing::info!(admin = %admin.id, user = %user.id, action = action.audit_action(), "admin action");
        Ok(())
    }

    pub async fn admin_register_client(
        &self,
        ctx: &RequestContext,
        admin: &User,
        input: &ClientInput,
        now: i64,
    ) -> Result<RegisteredClient, AdminError> {
        let registered = self.register_client(input, now).await?;
        let detail = format!("{} ({})", registered.client.name, registered.client.id);
        self.admin_audit(ctx, admin, None, "admin.app.registered", &detail, now)
            .await?;
        Ok(registered)
    }

    pub async fn admin_update_client(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        input: &ClientInput,
        now: i64,
    ) -> Result<RegisteredClient, AdminError> {
        let updated = self.update_client(id, input, now).await?;
        let detail = format!("{} ({})", updated.client.name, updated.client.id);
        self.admin_audit(ctx, admin, None, "admin.app.updated", &detail, now)
            .await?;
        Ok(updated)
    }

    pub async fn admin_rotate_client_secret(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        now: i64,
    ) -> Result<SecretString, AdminError> {
        let secret = self.rotate_client_secret(id, now).await?;
        self.admin_audit(ctx, admin, None, "admin.app.secret_rotated", id, now)
            .await?;
        Ok(secret)
    }

    pub async fn admin_delete_client(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        now: i64,
    ) -> Result<(), AdminError> {
        let client = self
            .client(id)
            .await?
            .ok_or(AdminError::Client(ClientConfigError::NotFound))?;
        self.delete_client(id).await?;
        let detail = format!("{} ({})", client.name, client.id);
        self.admin_audit(ctx, admin, None, "admin.app.deleted", &detail, now)
            .await?;
        Ok(())
    }
}

/// An audit-log query as the console asks it: people by email (an unknown email matches
/// nothing), the rest as [`AuditFilter`].
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_email: String,
    pub subject_email: String,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// One page of audit entries, with the email of every account they name (or a note that the
/// account was deleted).
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub total: i64,
    pub emails: std::collections::HashMap<String, String>,
}

/// The console's overview figures.
#[derive(Debug, Clone)]
pub struct ConsoleOverview {
    pub users: i64,
    pub applications: i64,
    /// Sign-in attempts since the given time, by result.
    pub sign_ins: Vec<(String, i64)>,
}

/// The setting that holds the published branding record (JSON), read by every instance.
pub const BRANDING_SETTING: &str = "branding";

/// The console's reads. Each is a query for one page of the console; none changes anything.
impl Identity {
    pub async fn console_overview(&self, since: i64) -> Result<ConsoleOverview, AuthError> {
        Ok(ConsoleOverview {
            users: self.store.count_users().await?,
            applications: self.clients().await?.len() as i64,
            sign_ins: self.store.sign_in_counts(since).await?,
        })
    }

    /// How many accounts exist.
    pub async fn user_count(&self) -> Result<i64, AuthError> {
        Ok(self.store.count_users().await?)
    }

    /// Accounts whose email or name contains `query`, one page of them, and how many in all.
    pub async fn console_users(
        &self,
        query: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<User>, i64), AuthError> {
        Ok(self.store.search_users(query, offset, limit).await?)
    }

    /// One page of the sign-in log, filtered, and how many rows match in all.
    pub async fn console_sign_ins(
        &self,
        filter: &SignInFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<SignInLogEntry>, i64), AuthError> {
        Ok(self.store.filter_sign_ins(filter, offset, limit).await?)
    }

    /// One sign-in attempt.
    pub async fn console_sign_in(&self, id: &str) -> Result<Option<SignInLogEntry>, AuthError> {
        Ok(self.store.find_sign_in(id).await?)
    }

    /// One page of the audit log.
    pub async fn console_audit(
        &self,
        q: &AuditQuery,
        offset: i64,
        limit: i64,
    ) -> Result<AuditPage, AuthError> {
        let filter = AuditFilter {
            actor_user_id: self.account_id_for_filter(&q.actor_email).await?,
            subject_user_id: self.account_id_for_filter(&q.subject_email).await?,
            action: q.action.clone(),
            from: q.from,
            to: q.to,
        };
        let (entries, total) = self.store.filter_audit(&filter, offset, limit).await?;
        let mut ids: Vec<String> = Vec::new();
        for e in &entries {
            ids.extend(e.actor_user_id.iter().cloned());
            ids.extend(e.subject_user_id.iter().cloned());
        }
        let mut emails = std::collections::HashMap::new();
        for id in ids {
            if emails.contains_key(&id) {
                continue;
            }
            let email = match self.store.find_user(&id).await? {
                Some(u) => u.email,
                None => format!("deleted account {id}"),
            };
            emails.insert(id, email);
        }
        Ok(AuditPage {
            entries,
            total,
            emails,
        })
    }

    /// The account id an email filter stands for: none for an empty filter, and an id that
    /// matches nothing for an unknown email.
    async fn account_id_for_filter(&self, email: &str) -> Result<Option<String>, AuthError> {
        if email.is_empty() {
            return Ok(None);
        }
        let normalized = crate::email::normalize_email(email).unwrap_or_else(|_| email.to_string());
        Ok(Some(
            self.store
                .find_user_by_email(&normalized)
                .await?
                .map(|u| u.id)
                .unwrap_or_else(|| "-".into()),
        ))
    }

    /// The newest messages of the development outbox.
    pub async fn console_messages(&self, limit: i64) -> Result<Vec<OutboxMessage>, AuthError> {
        Ok(self.store.recent_messages(limit).await?)
    }

    /// The published branding record, if one was saved.
    pub async fn branding_record(&self) -> Result<Option<String>, AuthError> {
        Ok(self.store.get_setting(BRANDING_SETTING).await?)
    }

    /// Publishes a branding record (already validated by the caller, which knows its shape)
    /// and writes the change to the audit log.
    pub async fn save_branding_record(
        &self,
        ctx: &RequestContext,
        admin: &User,
        json: &str,
        summary: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.publish_branding_record(json, now).await?;
        self.admin_audit(ctx, admin, None, "admin.branding.saved", summary, now)
            .await
    }

    /// Publishes a branding record from the operator's command line or configuration.
    pub async fn publish_branding_record(&self, json: &str, now: i64) -> Result<(), AuthError> {
        Ok(self.store.put_setting(BRANDING_SETTING, json, now).await?)
    }

    /// Whether the account has a second factor it can complete a sign-in with.
    pub async fn has_second_factor(&self, user_id: &str) -> Result<bool, AuthError> {
        Ok(self.store.has_second_factor(user_id).await?)
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn database_ready(&self) -> bool {
        self.store.count_users().await.is_ok()
    }

    /// Removes expired rows (sessions, codes, enrollments, counters gone quiet, old messages
    /// and authorization state); returns how many. Idempotent, so every instance may run it.
    pub async fn housekeeping(&self, now: i64) -> Result<u64, AuthError> {
        let closed_at = crate::throttle::ACCOUNT_POLICY
            .hard_limit
            .unwrap_or(i64::MAX);
        let mut removed = self.store.purge_expired(now, closed_at).await?;
        removed += self.prune_sign_in_log(now).await?;
        removed += self.prune_insight_counts(now).await?;
        Ok(removed)
    }

    /// Writes generated accounts and sign-ins (see [`crate::generate`]); refused (`None`) when
    /// the database already holds accounts or sign-ins, unless `force`. `progress` hears the
    /// rows written so far.
    pub async fn generate(
        &self,
        plan: &crate::generate::Plan,
        force: bool,
        progress: &(dyn Fn(Generated) + Sync),
    ) -> Result<Option<Generated>, AuthError> {
        if !force && !self.store.is_empty().await? {
            return Ok(None);
        }
        let first = u64::try_from(self.store.count_users().await?).unwrap_or(0);
        let mut done = Generated {
            users: 0,
            sign_ins: 0,
        };
        let users: Vec<_> = crate::generate::users(plan, first).collect();
        for chunk in users.chunks(GENERATE_BATCH) {
            let rows: Vec<NewUser<'_>> = chunk.iter().map(|u| u.as_new_user()).collect();
            self.store.create_users(&rows).await?;
            done.users += chunk.len() as u64;
            progress(done);
        }
        let mut applications = vec![ACCOUNT_PORTAL.to_string()];
        applications.extend(self.store.list_clients().await?.into_iter().map(|c| c.id));
        let mut batch = Vec::with_capacity(GENERATE_BATCH);
        for entry in crate::generate::sign_ins(plan, first, &applications) {
            batch.push(entry);
            if batch.len() == GENERATE_BATCH {
                self.store.record_sign_ins(&batch).await?;
                self.store
                    .record_events(&crate::generate::texts(&batch))
                    .await?;
                done.sign_ins += batch.len() as u64;
                batch.clear();
                progress(done);
            }
        }
        if !batch.is_empty() {
            self.store.record_sign_ins(&batch).await?;
            self.store
                .record_events(&crate::generate::texts(&batch))
                .await?;
            done.sign_ins += batch.len() as u64;
            progress(done);
        }
        Ok(Some(done))
    }

    /// Removes the sign-in log rows older than the retention period, a small batch per
    /// statement with a yield between, so a backlog never holds the log (or sign-ins) up; at
    /// most [`PRUNE_BATCHES`] batches a pass, the rest at the next.
    /// Only rows the insights rollup has counted go, so the rollup is brought up to date
    /// first (safe beside a running rollup job: a batch is counted once).
    pub async fn prune_sign_in_log(&self, now: i64) -> Result<u64, AuthError> {
        crate::insights::roll_up(
            &self.store,
            now,
            super::insights::ROLLUP_BATCH,
            super::insights::ROLLUP_MAX_BATCHES,
        )
        .await?;
        let before = now - self.config.sign_in_log_ms;
        let mut removed = 0;
        for _ in 0..PRUNE_BATCHES {
            let n = self.store.prune_sign_in_log(before, PRUNE_BATCH).await?
                + self.store.prune_insight_events(before, PRUNE_BATCH).await?;
            removed += n;
            if n < PRUNE_BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(removed)
    }

    /// Closes the database pool (at shutdown, after the last request).
    pub async fn close(&self) {
        self.store.close().await;
    }
}
