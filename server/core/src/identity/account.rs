//! What customers do with their own account besides signing in: change its email address,
//! delete it, and download what Gatehouse holds about them.
//!
//! An email change is the classic takeover step (move the account to a mailbox you control,
//! then reset the password), so it needs a recent sign-in, the new address is proven by code
//! before it replaces the old one, and the old address receives a single-use link, valid for
//! a week, that puts it back and ends every session. While that link lives the old address is
//! reserved: nobody can sign up with it or move another account to it.

use serde_json::{json, Value};

use super::RequestContext;
use super::{
    email_or_invalid, AuthError, FlowStarted, Identity, InputProblem, Method, SessionsToEnd,
};
use crate::mail::EmailKind;
use crate::store::{CodePurpose, NewCode, Session, SignInFilter, StoreError, User};
use crate::tokens::{secret_token, token_hash};

/// How long the old address's "this wasn't me" link works, and the address stays reserved.
pub const EMAIL_CHANGE_UNDO_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// The path of the page the undo link opens (its token in the query).
pub const EMAIL_UNDO_PATH: &str = "/account/email/undo";
/// How many of the person's own sign-in log rows a download holds (newest first).
pub const EXPORTED_SIGN_INS: i64 = 1000;

/// An email change that the old address's link would undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUndo {
    /// The address the link puts back.
    pub restore: String,
    /// The address the account has now.
    pub current: String,
    pub user_id: String,
}

/// A download of everything Gatehouse holds about a person, as JSON.
pub type AccountExport = Value;

/// An RFC 3339 time (UTC) for people and other tools; `null` for none.
fn time(ms: Option<i64>) -> Value {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

impl Identity {
    // ------------------------------------------------------------ email change

    /// Starts moving the account to a new address: a code goes to that address. An address
    /// that belongs to another account (or is reserved) gets a notice instead of a code, and
    /// the person sees the same result, so the form tells nobody which addresses have
    /// accounts.
    pub async fn start_email_change(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        new_email: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let email = email_or_invalid(new_email)?;
        if email == user.email {
            return Err(AuthError::InvalidInput(InputProblem::SameEmail));
        }
        self.code_request_budget(ctx, now).await?;
        let taken = self.store.find_user_by_email(&email).await?.is_some()
            || self.store.email_reserved(&email, now).await?;
        let payload = json!({ "old_email": user.email }).to_string();
        let (flow_id, code) = self
            .new_flow(
                CodePurpose::EmailChange,
                &email,
                Some(&user.id),
                Some(&payload),
                now,
            )
            .await?;
        let text = if taken {
            ctx.emails.compose(EmailKind::EmailChangeTaken, None)
        } else {
            ctx.emails
                .compose(EmailKind::EmailChangeCode, Some(code.expose()))
        };
        self.send_code(&flow_id, &email, text, now).await?;
        Ok(FlowStarted { flow_id })
    }

    /// The address an email change of this account is waiting to prove, if one is.
    pub async fn pending_email_change(
        &self,
        user: &User,
        flow_id: &str,
        now: i64,
    ) -> Result<Option<String>, AuthError> {
        Ok(self
            .live_flow(flow_id, now)
            .await?
            .filter(|f| {
                f.purpose == CodePurpose::EmailChange && f.user_id.as_deref() == Some(&user.id)
            })
            .map(|f| f.email))
    }

    /// Completes an email change with the code sent to the new address. The old address is
    /// told, with the link that undoes it; provider identities stay as they are. Returns the
    /// new address.
    pub async fn confirm_email_change(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        flow_id: &str,
        input: &str,
        now: i64,
    ) -> Result<String, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let Some(flow) = self.live_flow(flow_id, now).await?.filter(|f| {
            f.purpose == CodePurpose::EmailChange && f.user_id.as_deref() == Some(&user.id)
        }) else {
            return Err(AuthError::CodeDead);
        };
        let accepted = match self.check_code(ctx, &flow, input, now).await {
            Ok(accepted) => accepted,
            Err(err) => {
                return Err(self
                    .refuse(
                        ctx,
                        &flow.email,
                        Some(&user.id),
                        Method::EmailChange,
                        err,
                        now,
                    )
                    .await?)
            }
        };
        let old = user.email.clone();
        let new = accepted.email;
        let moved = if self.store.email_reserved(&new, now).await? {
            Err(StoreError::Conflict)
        } else {
            self.store.change_email(&user.id, &old, &new, now).await
        };
        match moved {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::CodeDead),
            Err(StoreError::Conflict) => {
                return Err(self
                    .refuse(
                        ctx,
                        &new,
                        Some(&user.id),
                        Method::EmailChange,
                        AuthError::AccountExists,
                        now,
                    )
                    .await?)
            }
            Err(e) => return Err(e.into()),
        }
        // Failures counted against the new address before it was this account's start afresh.
        self.store.throttle_reset("password", &new).await?;
        let token = secret_token();
        self.store
            .create_code(&NewCode {
                id: &token_hash(&token),
                purpose: CodePurpose::EmailChangeUndo,
                email: &old,
                user_id: Some(&user.id),
                code_hash: "",
                payload: Some(&json!({ "new_email": new }).to_string()),
                now,
                expires_at: now + EMAIL_CHANGE_UNDO_TTL_MS,
            })
            .await?;
        let link = format!(
            "{}{EMAIL_UNDO_PATH}?token={token}",
            self.config.public_url.trim_end_matches('/')
        );
        self.send(
            &old,
            ctx.emails.compose(EmailKind::EmailChanged, Some(&link)),
            now,
        )
        .await?;
        self.audit_silently(
            ctx,
            &user.id,
            "account.email_changed",
            &format!("{old} replaced by {new}"),
            now,
        )
        .await?;
        self.log_attempt(
            ctx,
            &new,
            Some(&user.id),
            Method::EmailChange,
            Ok(()),
            Some(&session.id),
            now,
        )
        .await?;
        tracing::info!(user.id = %user.id, "email address changed");
        Ok(new)
    }

    /// The email change an undo link would reverse, or `None` when the link is unknown, used
    /// or expired. Reads only.
    pub async fn email_change_undo(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<PendingUndo>, AuthError> {
        let Some(record) = self
            .live_link(token, CodePurpose::EmailChangeUndo, now)
            .await?
        else {
            return Ok(None);
        };
        let Some(user_id) = record.user_id else {
            return Ok(None);
        };
        let current = match self.store.find_user(&user_id).await? {
            Some(user) => user.email,
            None => return Ok(None),
        };
        Ok(Some(PendingUndo {
            restore: record.email,
            current,
            user_id,
        }))
    }

    /// Undoes an email change from the old address's link (once): the old address is the
    /// account's again, every session ends and every application grant is revoked. Returns the
    /// account as it is now.
    pub async fn undo_email_change(
        &self,
        ctx: &RequestContext,
        token: &str,
        now: i64,
    ) -> Result<User, AuthError> {
        let (record, user) = self
            .consume_link(token, CodePurpose::EmailChangeUndo, now)
            .await?;
        match self.store.restore_email(&user.id, &record.email, now).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => return Err(AuthError::AccountExists),
            Err(e) => return Err(e.into()),
        }
        self.end_sessions(&user.id, SessionsToEnd::All, now).await?;
        self.store.revoke_user_grants(&user.id, now).await?;
        self.audit_silently(
            ctx,
            &user.id,
            "account.email_restored",
            &format!("{} restored from the old address's link", record.email),
            now,
        )
        .await?;
        self.send(
            &record.email,
            ctx.emails.compose(EmailKind::EmailRestored, None),
            now,
        )
        .await?;
        tracing::info!(user.id = %user.id, "email change undone");
        self.store
            .find_user(&user.id)
            .await?
            .ok_or(AuthError::CodeDead)
    }

    // ------------------------------------------------------------ deletion

    /// Deletes the signed-in person's account, after a recent sign-in and with their address
    /// typed as confirmation. The caller tells the applications (back-channel logout) before.
    pub async fn delete_own_account(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        confirmation: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let typed = crate::email::normalize_email(confirmation).unwrap_or_default();
        if typed != user.email {
            return Err(AuthError::InvalidInput(InputProblem::Confirmation));
        }
        self.delete_account(ctx, user, "account.deleted", now).await
    }

    /// Deletes an account: sessions, tokens, credentials and personal data go; the sign-in log
    /// keeps its rows with the account id only, and the audit log records the deletion. The
    /// owner is told at the address that was theirs (that notice is the one message kept).
    pub(super) async fn delete_account(
        &self,
        ctx: &RequestContext,
        user: &User,
        action: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.end_sessions(&user.id, SessionsToEnd::All, now).await?;
        if !self.store.delete_account(&user.id).await? {
            return Err(AuthError::CodeDead);
        }
        self.store
            .record_audit(&crate::store::AuditEntry {
                id: crate::tokens::random_id(),
                occurred_at: now,
                actor_user_id: None,
                subject_user_id: Some(user.id.clone()),
                action: action.to_string(),
                detail: "account and personal data deleted".into(),
                client_ip: ctx.client_ip.clone(),
            })
            .await?;
        self.send(
            &user.email,
            ctx.emails.compose(EmailKind::AccountDeleted, None),
            now,
        )
        .await?;
        tracing::info!(user.id = %user.id, action, "account deleted");
        Ok(())
    }

    // ------------------------------------------------------------ download

    /// Everything Gatehouse holds about the person, without any secret: the profile, the
    /// sign-in methods (names and dates), linked providers, sessions, applications with access
    /// and their own sign-in history.
    pub async fn export_account(&self, user: &User, now: i64) -> Result<AccountExport, AuthError> {
        let methods: Vec<Value> = self
            .second_factor_methods(&user.id)
            .await?
            .into_iter()
            .map(|m| match m {
                super::SecondFactorMethod::Passkey(p) => json!({
                    "type": "passkey",
                    "name": p.name,
                    "synced": p.synced,
                    "added_at": time(Some(p.added_at)),
                    "last_used_at": time(p.last_used_at),
                }),
                super::SecondFactorMethod::AuthenticatorApp {
                    added_at,
                    last_used_at,
                    ..
                } => json!({
                    "type": "authenticator_app",
                    "added_at": time(Some(added_at)),
                    "last_used_at": time(last_used_at),
                }),
                super::SecondFactorMethod::Phone {
                    number,
                    added_at,
                    last_used_at,
                    ..
                } => json!({
                    "type": "phone",
                    "number": number,
                    "added_at": time(Some(added_at)),
                    "last_used_at": time(last_used_at),
                }),
            })
            .collect();
        let providers: Vec<Value> = self
            .linked_identities(&user.id)
            .await?
            .into_iter()
            .map(|l| {
                json!({
                    "provider": l.provider_name,
                    "email": l.email,
                    "linked_at": time(Some(l.linked_at)),
                    "last_used_at": time(l.last_used_at),
                })
            })
            .collect();
        let sessions: Vec<Value> = self
            .list_sessions(&user.id, now)
            .await?
            .into_iter()
            .map(|s| {
                json!({
                    "signed_in_at": time(Some(s.auth_time)),
                    "last_seen_at": time(Some(s.last_seen_at)),
                    "expires_at": time(Some(s.expires_at)),
                    "ip_address": s.client_ip,
                    "user_agent": s.user_agent,
                    "methods": s.amr.split_whitespace().collect::<Vec<_>>(),
                })
            })
            .collect();
        let applications: Vec<Value> = self
            .connected_applications(&user.id, now)
            .await?
            .into_iter()
            .map(|a| {
                json!({
                    "name": a.client.name,
                    "client_id": a.client.id,
                    "scope": a.scope,
                    "since": time(Some(a.since)),
                })
            })
            .collect();
        let (rows, _) = self
            .store
            .filter_sign_ins(
                &SignInFilter {
                    user_id: Some(user.id.clone()),
                    ..SignInFilter::default()
                },
                0,
                EXPORTED_SIGN_INS,
            )
            .await?;
        let sign_ins: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                json!({
                    "at": time(Some(r.occurred_at)),
                    "application": r.application,
                    "method": r.method,
                    "result": r.result,
                    "reason": r.failure_reason,
                    "ip_address": r.client_ip,
                    "user_agent": r.user_agent,
                })
            })
            .collect();
        let recovery_codes_left = self.unused_recovery_codes(&user.id).await?;
        let export = json!({
            "exported_at": time(Some(now)),
            "profile": {
                "id": user.id,
                "email": user.email,
                "name": user.display_name,
                "has_password": user.password_hash.is_some(),
                "created_at": time(Some(user.created_at)),
                "updated_at": time(Some(user.updated_at)),
            },
            "sign_in_methods": methods,
            "recovery_codes_left": recovery_codes_left,
            "linked_providers": providers,
            "sessions": sessions,
            "applications": applications,
            "sign_ins": sign_ins,
        });
        Ok(export)
    }
}
