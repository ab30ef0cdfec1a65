//! What the identity logic writes down and sends: messages through the outbox, tenant
//! settings, known browsers, the audit log, the sign-in log, and the owner's notifications of
//! security events.

use super::*;

impl Identity {
    // ------------------------------------------------------------ plumbing

    pub(super) async fn send(
        &self,
        recipient: &str,
        text: EmailText,
        now: i64,
    ) -> Result<(), AuthError> {
        self.deliver("email", self.mailer.as_ref(), recipient, text, now)
            .await
    }

    /// Writes a message to the outbox and hands it to `sender` (the mailer, or the SMS
    /// gateway); a real delivery removes its content from the table.
    pub(super) async fn deliver(
        &self,
        channel: &str,
        sender: &dyn Mailer,
        recipient: &str,
        text: EmailText,
        now: i64,
    ) -> Result<(), AuthError> {
        let message = OutboxMessage {
            id: random_id(),
            created_at: now,
            channel: channel.into(),
            recipient: recipient.into(),
            subject: text.subject,
            body: text.body,
            sent_at: None,
            last_error: None,
        };
        self.store.enqueue_message(&message).await?;
        match sender.deliver(&message).await {
            // Delivered for real: the content (a live code) is removed from the table.
            Ok(()) if !sender.is_development_outbox() => {
                self.store
                    .redact_delivered_message(&message.id, now)
                    .await?
            }
            Ok(()) => {
                self.store
                    .mark_message(&message.id, Some(now), None)
                    .await?
            }
            Err(reason) => {
                tracing::warn!(message_id = %message.id, channel, reason = %reason, "delivery failed");
                self.store
                    .mark_message(&message.id, None, Some(&reason))
                    .await?;
            }
        }
        Ok(())
    }

    /// A tenant setting stored as JSON; its default when unset or unreadable.
    pub(super) async fn setting<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, AuthError> {
        Ok(self
            .store
            .get_setting(name)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default())
    }

    pub(super) async fn put_setting<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        now: i64,
    ) -> Result<(), AuthError> {
        let json = serde_json::to_string(value).map_err(|e| internal(&e))?;
        self.store.put_setting(name, &json, now).await?;
        Ok(())
    }

    /// Remembers the browser an account signed in from, and tells the owner when it is new
    /// (not for the first browser an account ever used, nor for the sign-up itself), with a
    /// "this wasn't me" link that reports the sign-in of `session_id`.
    pub(super) async fn note_device(
        &self,
        ctx: &RequestContext,
        user: &User,
        method: Method,
        session_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(device) = ctx
            .device
            .as_deref()
            .filter(|d| !d.is_empty() && d.len() <= 64)
        else {
            return Ok(());
        };
        let (new, known_before) = self
            .store
            .remember_device(&user.id, &token_hash(device), now)
            .await?;
        let sign_up = matches!(
            method,
            Method::SignUpPassword | Method::SignUpEmailCode | Method::SignUpFederated
        );
        if new && known_before > 0 && !sign_up {
            let link = self.sign_in_report_link(ctx, user, session_id, now).await?;
            self.send(
                &user.email,
                ctx.emails.compose(EmailKind::NewDeviceSignIn, Some(&link)),
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Tells the owner when a security event changed the ways into their account.
    pub(super) async fn notify_method_change(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        action: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let kind = match action {
            "mfa.authenticator.added"
            | "mfa.passkey.added"
            | "mfa.phone.added"
            | "mfa.recovery_codes.generated"
            | "federation.linked" => EmailKind::MethodAdded,
            "mfa.authenticator.removed"
            | "mfa.passkey.removed"
            | "mfa.phone.removed"
            | "federation.unlinked" => EmailKind::MethodRemoved,
            _ => return Ok(()),
        };
        if let Some(user) = self.store.find_user(user_id).await? {
            self.send(&user.email, ctx.emails.compose(kind, None), now)
                .await?;
        }
        Ok(())
    }

    /// Writes a security event about an account, done by its owner, to the audit log, and
    /// tells the owner when it changed the ways into the account.
    pub(super) async fn audit(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.audit_silently(ctx, user_id, action, detail, now)
            .await?;
        self.notify_method_change(ctx, user_id, action, now).await
    }

    /// [`Identity::audit`] without telling the owner (the event is part of creating the
    /// account, which they are doing right now).
    pub(super) async fn audit_silently(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        action: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.store
            .record_audit(&crate::store::AuditEntry {
                id: random_id(),
                occurred_at: now,
                actor_user_id: Some(user_id.to_string()),
                subject_user_id: Some(user_id.to_string()),
                action: action.to_string(),
                detail: detail.chars().take(500).collect(),
                client_ip: ctx.client_ip.clone(),
            })
            .await?;
        Ok(())
    }

    /// Refuses, and logs, a sign-in to a disabled account.
    pub(super) async fn refuse_if_disabled(
        &self,
        ctx: &RequestContext,
        user: &User,
        method: Method,
        now: i64,
    ) -> Result<(), AuthError> {
        if user.disabled {
            return Err(self
                .refuse(
                    ctx,
                    &user.email,
                    Some(&user.id),
                    method,
                    AuthError::AccountDisabled,
                    now,
                )
                .await?);
        }
        Ok(())
    }

    /// Logs a refused attempt and hands back the error to return.
    pub(super) async fn refuse(
        &self,
        ctx: &RequestContext,
        email: &str,
        user_id: Option<&str>,
        method: Method,
        err: AuthError,
        now: i64,
    ) -> Result<AuthError, AuthError> {
        self.log_attempt(ctx, email, user_id, method, Err(&err), None, now)
            .await?;
        Ok(err)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn log_attempt(
        &self,
        ctx: &RequestContext,
        email: &str,
        user_id: Option<&str>,
        method: Method,
        result: Result<(), &AuthError>,
        session_id: Option<&str>,
        now: i64,
    ) -> Result<(), AuthError> {
        let (result, reason) = match result {
            Ok(()) => ("success", None),
            Err(
                e @ (AuthError::SecondFactorRequired
                | AuthError::EnrollmentRequired
                | AuthError::TermsOfUseRequired
                | AuthError::PasswordChangeRequired
                | AuthError::ReauthenticationRequired
                | AuthError::LinkRequired),
            ) => ("interrupted", Some(e.reason_code())),
            Err(
                e @ (AuthError::Throttled { .. }
                | AuthError::PasswordPathClosed
                | AuthError::TooManyRequests
                | AuthError::BlockedByPolicy),
            ) => ("blocked", Some(e.reason_code())),
            Err(e) => ("failure", Some(e.reason_code())),
        };
        self.metrics.sign_in(result, method.as_str());
        let email: String = email.chars().take(320).collect();
        let user_agent: String = ctx.user_agent.chars().take(512).collect();
        let p = self.properties_of(ctx);
        let e6 = |degrees: Option<f64>| degrees.map(|d| (d * 1e6).round() as i64);
        let entry = SignInLogEntry {
            id: ctx.sign_in_id.clone().unwrap_or_else(random_id),
            occurred_at: now,
            user_id: user_id.map(str::to_string),
            email,
            application: ctx.application.clone(),
            client_ip: ctx.client_ip.clone(),
            user_agent,
            method: method.as_str().into(),
            result: result.into(),
            failure_reason: reason.map(str::to_string),
            session_id: session_id.map(str::to_string),
            policies: ctx.policy_results.clone(),
            country: p.country,
            city: p.city.map(|c| c.chars().take(100).collect()),
            latitude_e6: e6(p.latitude),
            longitude_e6: e6(p.longitude),
            accuracy_km: p.accuracy_km.map(i64::from),
            asn: p.asn.map(i64::from),
            browser: p.browser.map(|b| b.chars().take(64).collect()),
            os: p.os.map(|o| o.chars().take(64).collect()),
            device: p.device,
            risk_level: ctx.sign_in_risk.map(|r| r.as_str().to_string()),
        };
        if entry.result == "success" && entry.user_id.is_some() {
            // The account's sign-in profile takes this sign-in in, in the same transaction.
            let seen = crate::risk::properties_of_row(&entry);
            let update = move |seed: crate::store::ProfileSeed<'_>| {
                crate::risk::updated_profile(seed, &seen, now)
            };
            self.store
                .record_successful_sign_in(&entry, super::risk::HISTORY_COMPARED as i64, &update)
                .await?;
        } else {
            self.store.record_sign_in(&entry).await?;
        }
        Ok(())
    }
}
