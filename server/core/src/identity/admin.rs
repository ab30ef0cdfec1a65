//! What tenant admins do to accounts and applications. Every action is written to the audit
//! log with the admin as the actor. Admins never see or set a password: a required reset
//! removes the password and emails the person a reset code.

use super::oidc::{ClientConfigError, ClientInput, ConnectedApplication, RegisteredClient};
use super::{AuthError, Identity, LinkedIdentity, RequestContext, SecondFactorMethod};
use crate::secret::SecretString;
use crate::store::{AuditEntry, Session, SignInFilter, SignInLogEntry, User};
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
        }
    }
}

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
