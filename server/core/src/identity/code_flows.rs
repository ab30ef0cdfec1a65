//! The flows finished by an emailed code: sign-up (with or without a password), sign-in by
//! code and password reset, their resends, and the account that a proven code creates or signs
//! in. The account exists only once its address is proven.

use super::*;

/// The flows a person finishes by typing an emailed code on the code page. Grants, pending
/// sign-ins and passkey ceremonies are not among them, and second-factor email codes belong to
/// the second-factor step.
pub(super) fn is_emailed_code_flow(purpose: CodePurpose) -> bool {
    matches!(
        purpose,
        CodePurpose::SignUpPassword
            | CodePurpose::SignUpCode
            | CodePurpose::SignIn
            | CodePurpose::ResetPassword
    )
}
#[derive(Serialize, Deserialize)]
pub(super) struct PendingSignUp {
    pub(super) display_name: String,
    #[serde(default)]
    pub(super) password_hash: Option<String>,
    /// The provider identity the new account is linked to (a provider sign-up whose email is
    /// proven by this code).
    #[serde(default)]
    pub(super) external: Option<ExternalProfile>,
}

impl Identity {
    // ------------------------------------------------------------ code flows

    /// Starts a password sign-up: the account is created only when the emailed code is proven.
    /// An address that already has an account gets a notice instead of a code, and the caller
    /// sees exactly the same result.
    pub async fn start_password_sign_up(
        &self,
        ctx: &RequestContext,
        display_name: &str,
        email_input: &str,
        password: &SecretString,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let display_name = validate_display_name(display_name)?;
        let email = email_or_invalid(email_input)?;
        // Counted before the expensive checks, so unlimited posts cannot burn CPU.
        self.ip_budget(ctx, "sign_up_ip", SIGN_UPS_PER_IP, SIGN_UP_WINDOW_MS, now)
            .await?;
        self.check_password_rules(ctx, password, &email)?;
        let password_hash = self.hasher.hash(password).await?;
        let pending = PendingSignUp {
            display_name,
            password_hash: Some(password_hash),
            external: None,
        };
        self.start_sign_up(
            ctx,
            CodePurpose::SignUpPassword,
            &email,
            &pending,
            Some(password),
            now,
        )
        .await
    }

    /// Starts a passwordless sign-up (email code only).
    pub async fn start_code_sign_up(
        &self,
        ctx: &RequestContext,
        display_name: &str,
        email_input: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let display_name = validate_display_name(display_name)?;
        let email = email_or_invalid(email_input)?;
        self.ip_budget(ctx, "sign_up_ip", SIGN_UPS_PER_IP, SIGN_UP_WINDOW_MS, now)
            .await?;
        let pending = PendingSignUp {
            display_name,
            password_hash: None,
            external: None,
        };
        self.start_sign_up(ctx, CodePurpose::SignUpCode, &email, &pending, None, now)
            .await
    }

    /// Creates the pending sign-up and sends its code. Identical password sign-ups for the same
    /// address within [`SIGN_UP_DEDUP_WINDOW_MS`] (a double submit, a retry after a dropped
    /// connection) join the flow whose code already went out instead of sending another: one
    /// email, one account, the same response. A request with a different name or password is
    /// never joined to another's flow, so nobody can slip a password into someone else's
    /// sign-up, and passwordless sign-ups (which carry no secret to compare) are never joined.
    pub(super) async fn start_sign_up(
        &self,
        ctx: &RequestContext,
        purpose: CodePurpose,
        email: &str,
        pending: &PendingSignUp,
        password: Option<&SecretString>,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let payload = serde_json::to_string(pending).map_err(|e| internal(&e))?;
        let exists = self.store.find_user_by_email(email).await?.is_some();
        let (flow_id, code) = self
            .new_flow(purpose, email, None, Some(&payload), now)
            .await?;
        let slot = format!("{}:{email}", purpose.as_str());
        if let Some(holder) = self
            .store
            .claim_send_slot(&slot, &flow_id, SIGN_UP_DEDUP_WINDOW_MS, now)
            .await?
        {
            if let Some(existing) = self.live_flow(&holder, now).await? {
                if existing.purpose == purpose
                    && self
                        .same_pending_sign_up(&existing, pending, password)
                        .await?
                {
                    self.store.expire_code(&flow_id, now).await?;
                    return Ok(FlowStarted {
                        flow_id: existing.id,
                    });
                }
            }
        }
        let text = if exists {
            ctx.emails.compose(EmailKind::SignUpExistingAccount, None)
        } else {
            ctx.emails
                .compose(EmailKind::SignUpCode, Some(code.expose()))
        };
        self.send_code(&flow_id, email, text, now).await?;
        Ok(FlowStarted { flow_id })
    }

    /// Whether a pending password sign-up holds the same name and password as this request.
    pub(super) async fn same_pending_sign_up(
        &self,
        existing: &CodeRecord,
        pending: &PendingSignUp,
        password: Option<&SecretString>,
    ) -> Result<bool, AuthError> {
        let Some(theirs) = existing
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<PendingSignUp>(p).ok())
        else {
            return Ok(false);
        };
        if theirs.display_name != pending.display_name {
            return Ok(false);
        }
        match (password, theirs.password_hash.as_deref()) {
            (Some(password), Some(hash)) => Ok(self.hasher.verify(password, Some(hash)).await?),
            _ => Ok(false),
        }
    }

    /// Starts a sign-in by email code. An unknown address gets a notice instead of a code.
    pub async fn start_code_sign_in(
        &self,
        ctx: &RequestContext,
        email_input: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        self.start_account_flow(
            ctx,
            CodePurpose::SignIn,
            email_input,
            EmailKind::SignInCode,
            now,
        )
        .await
    }

    /// Starts a self-service password reset by email code.
    pub async fn start_password_reset(
        &self,
        ctx: &RequestContext,
        email_input: &str,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        self.start_account_flow(
            ctx,
            CodePurpose::ResetPassword,
            email_input,
            EmailKind::ResetCode,
            now,
        )
        .await
    }

    /// A code flow for an existing account: the code in `with_code` goes to the account's
    /// address; an address without an account gets a notice instead, and the caller cannot
    /// tell the two apart.
    pub(super) async fn start_account_flow(
        &self,
        ctx: &RequestContext,
        purpose: CodePurpose,
        email_input: &str,
        with_code: EmailKind,
        now: i64,
    ) -> Result<FlowStarted, AuthError> {
        let email = email_or_invalid(email_input)?;
        self.code_request_budget(ctx, now).await?;
        let user = self.store.find_user_by_email(&email).await?;
        let user_id = user.as_ref().map(|u| u.id.as_str());
        let (flow_id, code) = self.new_flow(purpose, &email, user_id, None, now).await?;
        let text = match user_id {
            Some(_) => ctx.emails.compose(with_code, Some(code.expose())),
            None => ctx.emails.compose(EmailKind::NoAccount, None),
        };
        self.send_code(&flow_id, &email, text, now).await?;
        Ok(FlowStarted { flow_id })
    }

    /// Takes one code request (sign-in by code, reset, resend, email change) from the client
    /// address's budget.
    pub(super) async fn code_request_budget(
        &self,
        ctx: &RequestContext,
        now: i64,
    ) -> Result<(), AuthError> {
        self.ip_budget(
            ctx,
            "code_request_ip",
            CODE_REQUESTS_PER_IP,
            CODE_REQUEST_WINDOW_MS,
            now,
        )
        .await
    }

    /// Takes one request from the client address's budget for `scope` (IPv6 per /64).
    pub(super) async fn ip_budget(
        &self,
        ctx: &RequestContext,
        scope: &str,
        limit: i64,
        window_ms: i64,
        now: i64,
    ) -> Result<(), AuthError> {
        if self
            .store
            .take_budget(scope, &ip_key(&ctx.client_ip), limit, window_ms, now)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::TooManyRequests)
        }
    }

    /// A new flow with a fresh code (not sent yet).
    pub(super) async fn new_flow(
        &self,
        purpose: CodePurpose,
        email: &str,
        user_id: Option<&str>,
        payload: Option<&str>,
        now: i64,
    ) -> Result<(String, SecretString), AuthError> {
        let flow_id = random_id();
        let code = codes::generate_code();
        self.store
            .create_code(&NewCode {
                id: &flow_id,
                purpose,
                email,
                user_id,
                code_hash: &codes::code_hash(&self.key, purpose, &flow_id, &code),
                payload,
                now,
                expires_at: now + CODE_TTL_MS,
            })
            .await?;
        Ok((flow_id, code))
    }

    /// Sends a flow's code, within the address's budget of [`MAX_SENDS_PER_ADDRESS`] messages
    /// per [`SEND_WINDOW_MS`] (taken atomically, so a burst of requests cannot exceed it). Over
    /// budget, the flow is ended unsent: it can never be used to guess, and the caller sees the
    /// same result as when the message went out.
    pub(super) async fn send_code(
        &self,
        flow_id: &str,
        email: &str,
        text: EmailText,
        now: i64,
    ) -> Result<(), AuthError> {
        if !self
            .store
            .take_budget("send", email, MAX_SENDS_PER_ADDRESS, SEND_WINDOW_MS, now)
            .await?
        {
            tracing::warn!("per-address message budget reached; no code sent");
            self.store.expire_code(flow_id, now).await?;
            return Ok(());
        }
        self.send(email, text, now).await?;
        self.store.mark_code_sent(flow_id, now).await?;
        Ok(())
    }

    /// Looks a flow up for display (the address the code went to). Unknown and dead flows are
    /// both `None`.
    pub async fn live_flow(
        &self,
        flow_id: &str,
        now: i64,
    ) -> Result<Option<CodeRecord>, AuthError> {
        if flow_id.is_empty() || flow_id.len() > 64 {
            return Ok(None);
        }
        let flow = self.store.find_code(flow_id).await?;
        Ok(flow.filter(|f| f.consumed_at.is_none() && f.expires_at > now))
    }

    /// A live flow of `purpose` and the account it belongs to; anything else is a dead flow.
    /// The live single-use link of `purpose` behind an emailed `token` (reads only: mail
    /// scanners open links), or `None` when it is unknown, used or expired.
    pub(super) async fn live_link(
        &self,
        token: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<Option<CodeRecord>, AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .live_flow(&token_hash(token), now)
            .await?
            .filter(|f| f.purpose == purpose))
    }

    /// Uses up the single-use link of `purpose` behind `token` (one statement, so of two
    /// clicks one wins) and returns it with its account.
    pub(super) async fn consume_link(
        &self,
        token: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(CodeRecord, User), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Err(AuthError::CodeDead);
        }
        let Some(record) = self
            .store
            .consume_grant(&token_hash(token), purpose, now)
            .await?
        else {
            return Err(AuthError::CodeDead);
        };
        let user = match &record.user_id {
            Some(id) => self.store.find_user(id).await?,
            None => None,
        }
        .ok_or(AuthError::CodeDead)?;
        Ok((record, user))
    }

    pub(super) async fn live_flow_with_user(
        &self,
        id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(CodeRecord, User), AuthError> {
        let Some(flow) = self
            .live_flow(id, now)
            .await?
            .filter(|f| f.purpose == purpose)
        else {
            return Err(AuthError::CodeDead);
        };
        let user = match &flow.user_id {
            Some(user_id) => self.store.find_user(user_id).await?,
            None => None,
        };
        user.map(|user| (flow, user)).ok_or(AuthError::CodeDead)
    }

    /// Sends a new code for a live flow, at most once a minute; wrong attempts are not reset.
    pub async fn resend_code(
        &self,
        ctx: &RequestContext,
        flow_id: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(flow) = self.live_flow(flow_id, now).await? else {
            return Err(AuthError::CodeDead);
        };
        if !is_emailed_code_flow(flow.purpose) {
            return Err(AuthError::CodeDead);
        }
        self.code_request_budget(ctx, now).await?;
        let code = codes::generate_code();
        let hash = codes::code_hash(&self.key, flow.purpose, &flow.id, &code);
        let Some(flow) = self
            .store
            .resend_code(
                &flow.id,
                &hash,
                RESEND_INTERVAL_MS,
                MAX_WRONG_ATTEMPTS,
                now + CODE_TTL_MS,
                now,
            )
            .await?
        else {
            return Err(AuthError::ResendTooSoon);
        };
        let text = match flow.purpose {
            CodePurpose::SignUpPassword | CodePurpose::SignUpCode => {
                if self.store.find_user_by_email(&flow.email).await?.is_some() {
                    ctx.emails.compose(EmailKind::SignUpExistingAccount, None)
                } else {
                    ctx.emails
                        .compose(EmailKind::SignUpCode, Some(code.expose()))
                }
            }
            CodePurpose::SignIn if flow.user_id.is_some() => ctx
                .emails
                .compose(EmailKind::SignInCode, Some(code.expose())),
            CodePurpose::ResetPassword if flow.user_id.is_some() => ctx
                .emails
                .compose(EmailKind::ResetCode, Some(code.expose())),
            _ => ctx.emails.compose(EmailKind::NoAccount, None),
        };
        if !self
            .store
            .take_budget(
                "send",
                &flow.email,
                MAX_SENDS_PER_ADDRESS,
                SEND_WINDOW_MS,
                now,
            )
            .await?
        {
            return Err(AuthError::TooManyRequests);
        }
        self.send(&flow.email, text, now).await
    }

    /// Checks a code for a flow and carries the flow to its end: a new account, a session, or
    /// the right to set a new password. Exactly one of many concurrent correct submissions wins.
    pub async fn verify_code(
        &self,
        ctx: &RequestContext,
        flow_id: &str,
        input: &str,
        now: i64,
    ) -> Result<CodeOutcome, AuthError> {
        let Some(flow) = self.live_flow(flow_id, now).await? else {
            return Err(AuthError::CodeDead);
        };
        // Grants carry no code, and second-factor email codes belong to the second-factor step.
        if !is_emailed_code_flow(flow.purpose) {
            return Err(AuthError::CodeDead);
        }
        let method = Method::for_purpose(flow.purpose);
        let outcome = self.check_code(ctx, &flow, input, now).await;
        let accepted = match outcome {
            Ok(accepted) => accepted,
            Err(err) => {
                self.log_attempt(
                    ctx,
                    &flow.email,
                    flow.user_id.as_deref(),
                    method,
                    Err(&err),
                    None,
                    now,
                )
                .await?;
                return Err(err);
            }
        };
        match accepted.purpose {
            CodePurpose::SignUpPassword | CodePurpose::SignUpCode => {
                let pending: PendingSignUp =
                    serde_json::from_str(accepted.payload.as_deref().unwrap_or(""))
                        .map_err(|e| internal(&e))?;
                let user_id = random_id();
                let new_user = NewUser {
                    id: &user_id,
                    email: &accepted.email,
                    display_name: &pending.display_name,
                    password_hash: pending.password_hash.as_deref(),
                    is_admin: false,
                    now,
                };
                let created = match &pending.external {
                    Some(profile) => self.create_account_from_code(&new_user, profile).await,
                    None => self.store.create_user(&new_user).await,
                };
                let (method, strength, provider) = match &pending.external {
                    Some(profile) => (
                        Method::SignUpFederated,
                        Strength::of(AuthMethod::Provider),
                        Some(profile.provider_id.as_str()),
                    ),
                    // The password was chosen just now, not proven: the mailbox was.
                    None => (method, Strength::of(AuthMethod::EmailCode), None),
                };
                let signed = self
                    .conclude_sign_up(
                        ctx,
                        &accepted.email,
                        created,
                        method,
                        strength,
                        provider,
                        now,
                    )
                    .await?;
                Ok(CodeOutcome::SignIn(signed))
            }
            CodePurpose::SignIn => {
                let user = match &accepted.user_id {
                    Some(id) => self.store.find_user(id).await?,
                    None => None,
                };
                let Some(user) = user else {
                    return Err(self
                        .refuse(ctx, &accepted.email, None, method, AuthError::CodeDead, now)
                        .await?);
                };
                // A proven mailbox is the other way in that reopens a closed password path.
                if !user.disabled {
                    self.store.throttle_reset("password", &user.email).await?;
                }
                let first = FirstFactor::proven(
                    &accepted.email,
                    user,
                    method,
                    Strength::of(AuthMethod::EmailCode),
                );
                let signed = self.conclude_first_factor(ctx, first, now).await?;
                Ok(CodeOutcome::SignIn(signed))
            }
            CodePurpose::ResetPassword => {
                let grant_id = random_id();
                self.store
                    .create_code(&NewCode {
                        id: &grant_id,
                        purpose: CodePurpose::ResetGrant,
                        email: &accepted.email,
                        user_id: accepted.user_id.as_deref(),
                        code_hash: "",
                        payload: None,
                        now,
                        expires_at: now + codes::RESET_GRANT_TTL_MS,
                    })
                    .await?;
                Ok(CodeOutcome::ResetGranted { grant_id })
            }
            CodePurpose::ResetGrant
            | CodePurpose::SecondFactor
            | CodePurpose::SecondFactorEmail
            | CodePurpose::PasskeyRegistration
            | CodePurpose::PasskeySignIn
            | CodePurpose::PasskeySecondFactor
            | CodePurpose::PhoneVerification
            | CodePurpose::SecondFactorSms
            | CodePurpose::ExternalAuthorization
            | CodePurpose::ExternalSignUp
            | CodePurpose::ExternalLink
            | CodePurpose::EmailChange
            | CodePurpose::EmailChangeUndo
            | CodePurpose::SignInReport => Err(AuthError::CodeDead),
        }
    }

    pub(super) async fn check_code(
        &self,
        ctx: &RequestContext,
        flow: &CodeRecord,
        input: &str,
        now: i64,
    ) -> Result<CodeRecord, AuthError> {
        let code = codes::parse_code(input).ok_or(AuthError::InvalidInput(InputProblem::Code))?;
        let ip = self.ip_gate(ctx, now).await?;
        self.claim_attempt(
            "code",
            &flow.email,
            CODE_POLICY,
            AuthError::PasswordPathClosed,
            now,
        )
        .await?;
        let hash = codes::code_hash(&self.key, flow.purpose, &flow.id, &code);
        match self
            .store
            .try_consume_code(&flow.id, flow.purpose, &hash, MAX_WRONG_ATTEMPTS, now)
            .await?
        {
            CodeAttempt::Accepted(record) => {
                self.store.throttle_reset("code", &flow.email).await?;
                Ok(record)
            }
            CodeAttempt::Wrong { attempts_left } => {
                self.ip_failure(&ip, now).await?;
                Err(AuthError::CodeWrong { attempts_left })
            }
            CodeAttempt::Exhausted => {
                self.ip_failure(&ip, now).await?;
                Err(AuthError::CodeDead)
            }
            CodeAttempt::Dead => Err(AuthError::CodeDead),
        }
    }

    /// Sets a new password with a reset grant. Ends every session of the account, then signs
    /// this browser in. On an account with a second factor the new password is saved only once
    /// that factor is proven: the mailbox alone never changes the password of such an account.
    pub async fn complete_password_reset(
        &self,
        ctx: &RequestContext,
        grant_id: &str,
        new_password: &SecretString,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        let (grant, user) = self
            .live_flow_with_user(grant_id, CodePurpose::ResetGrant, now)
            .await?;
        self.check_password_rules(ctx, new_password, &user.email)?;
        let hash = self.hasher.hash(new_password).await?;
        if self
            .store
            .consume_grant(&grant.id, CodePurpose::ResetGrant, now)
            .await?
            .is_none()
        {
            return Err(AuthError::CodeDead);
        }
        let email = user.email.clone();
        let epoch = user.credential_epoch;
        // On an account with a second factor the decision step waits for it, and the new
        // password is saved only then; otherwise it is saved before the session starts.
        let first = FirstFactor {
            email: &email,
            user,
            method: Method::PasswordReset,
            strength: Strength::of(AuthMethod::EmailCode),
            credential_id: None,
            reauthenticates: None,
            new_password: Some((&hash, epoch)),
            findings: Vec::new(),
        };
        self.conclude_first_factor(ctx, first, now).await
    }

    /// Saves a password chosen through a reset, if the credentials are still those it was
    /// chosen against: every session ends, the password path reopens, the owner is told, and
    /// the audit log records it (an emailed code is then no second factor for a week).
    pub(super) async fn save_reset_password(
        &self,
        ctx: &RequestContext,
        user: User,
        hash: &str,
        epoch: i64,
        now: i64,
    ) -> Result<User, AuthError> {
        let epoch = self
            .store
            .set_password(&user.id, hash, epoch, now)
            .await?
            .ok_or(AuthError::CodeDead)?;
        self.end_sessions(&user.id, SessionsToEnd::All, now).await?;
        self.password_replaced(&user, now).await?;
        self.store.throttle_reset("password", &user.email).await?;
        self.send(
            &user.email,
            ctx.emails.compose(EmailKind::PasswordChanged, None),
            now,
        )
        .await?;
        self.audit_silently(
            ctx,
            &user.id,
            mfa::PASSWORD_RESET_AUDIT,
            "password set through a reset",
            now,
        )
        .await?;
        Ok(User {
            credential_epoch: epoch,
            password_hash: Some(hash.to_string()),
            ..user
        })
    }
}
