//! The round trip through a provider and what its answer means: sign-in, a new account, or a sign-up the person completes.

use super::*;

impl Identity {
    /// Records an authorization request about to be sent to `provider`. The returned id goes
    /// into the browser's cookie: the response is accepted only from this browser, once.
    pub async fn begin_external(
        &self,
        provider: &Provider,
        intent: ExternalIntent,
        user_id: Option<&str>,
        secrets: &AuthorizationSecrets,
        now: i64,
    ) -> Result<String, AuthError> {
        let payload = AuthorizationPayload {
            provider_id: provider.id.clone(),
            state_hash: token_hash(secrets.state.expose()),
            nonce: secrets.nonce.expose().to_string(),
            sealed_verifier: seal::seal(
                &self.key,
                PKCE_SEAL,
                secrets.pkce_verifier.expose().as_bytes(),
            )
            .map_err(|e| internal(&e))?,
            intent,
        };
        let id = random_id();
        self.store
            .create_code(&NewCode {
                id: &id,
                purpose: CodePurpose::ExternalAuthorization,
                email: "",
                user_id,
                code_hash: "",
                payload: Some(&serde_json::to_string(&payload).map_err(|e| internal(&e))?),
                now,
                expires_at: now + AUTHORIZATION_TTL_MS,
            })
            .await?;
        Ok(id)
    }

    /// Takes the authorization request behind the browser's cookie, once, and checks that the
    /// response's `state` is the one sent. Anything else is a dead flow: a missing cookie, a
    /// replayed callback, another browser's `state`.
    pub async fn take_external(
        &self,
        flow_id: Option<&str>,
        state: &str,
        now: i64,
    ) -> Result<ReturnedAuthorization, AuthError> {
        let Some(flow_id) = flow_id.filter(|id| !id.is_empty() && id.len() <= 64) else {
            return Err(AuthError::CodeDead);
        };
        let Some(flow) = self
            .store
            .consume_grant(flow_id, CodePurpose::ExternalAuthorization, now)
            .await?
        else {
            return Err(AuthError::CodeDead);
        };
        let payload: AuthorizationPayload =
            serde_json::from_str(flow.payload.as_deref().unwrap_or(""))
                .map_err(|e| internal(&e))?;
        let matches: bool = token_hash(state)
            .as_bytes()
            .ct_eq(payload.state_hash.as_bytes())
            .into();
        if state.is_empty() || !matches {
            return Err(AuthError::CodeDead);
        }
        let verifier =
            seal::open(&self.key, PKCE_SEAL, &payload.sealed_verifier).map_err(|e| internal(&e))?;
        Ok(ReturnedAuthorization {
            provider_id: payload.provider_id,
            nonce: SecretString::new(payload.nonce),
            pkce_verifier: SecretString::new(
                String::from_utf8(verifier).map_err(|e| internal(&e))?,
            ),
            intent: payload.intent,
            user_id: flow.user_id,
        })
    }

    /// Writes a refused provider response to the sign-in log and hands the error back.
    pub async fn refuse_external(
        &self,
        ctx: &RequestContext,
        provider_id: &str,
        err: AuthError,
        now: i64,
    ) -> Result<AuthError, AuthError> {
        let label = format!(
            "provider:{}",
            provider_id
                .chars()
                .take(MAX_PROVIDER_ID)
                .collect::<String>()
        );
        self.refuse(ctx, &label, None, Method::Federated, err, now)
            .await
    }

    /// Carries a verified provider identity to its end (see the module documentation).
    pub async fn sign_in_external(
        &self,
        ctx: &RequestContext,
        profile: ExternalProfile,
        now: i64,
    ) -> Result<ExternalOutcome, AuthError> {
        let log_email = profile.verified_email().unwrap_or_default();
        if let Some(linked) = self
            .store
            .find_external_identity(&profile.issuer, &profile.subject)
            .await?
        {
            let Some(user) = self.store.find_user(&linked.user_id).await? else {
                return Err(AuthError::CodeDead);
            };
            if !user.disabled {
                self.store.touch_external_identity(&linked.id, now).await?;
            }
            let email = user.email.clone();
            let first = crate::identity::FirstFactor::proven(
                &email,
                user,
                Method::Federated,
                crate::identity::Strength::of(crate::identity::AuthMethod::Provider),
            );
            let outcome = self.conclude_first_factor(ctx, first, now).await?;
            return Ok(ExternalOutcome::SignIn(outcome));
        }
        if let Some(email) = profile.verified_email() {
            if let Some(user) = self.store.find_user_by_email(&email).await? {
                // Never in by email alone: the account must be proven first.
                let flow_id = self
                    .pending_external(
                        CodePurpose::ExternalLink,
                        &email,
                        Some(&user.id),
                        &profile,
                        now,
                    )
                    .await?;
                self.log_attempt(
                    ctx,
                    &email,
                    Some(&user.id),
                    Method::Federated,
                    Err(&AuthError::LinkRequired),
                    None,
                    now,
                )
                .await?;
                return Ok(ExternalOutcome::LinkRequired { flow_id });
            }
            if let Some(name) = profile.usable_name() {
                self.ip_budget(
                    ctx,
                    "sign_up_ip",
                    crate::identity::SIGN_UPS_PER_IP,
                    crate::identity::SIGN_UP_WINDOW_MS,
                    now,
                )
                .await?;
                let outcome = self
                    .create_external_account(ctx, &profile, &email, &name, now)
                    .await?;
                return Ok(ExternalOutcome::SignIn(outcome));
            }
        }
        let flow_id = self
            .pending_external(CodePurpose::ExternalSignUp, &log_email, None, &profile, now)
            .await?;
        Ok(ExternalOutcome::NeedsDetails { flow_id })
    }

    pub(super) async fn pending_external(
        &self,
        purpose: CodePurpose,
        email: &str,
        user_id: Option<&str>,
        profile: &ExternalProfile,
        now: i64,
    ) -> Result<String, AuthError> {
        let id = random_id();
        self.store
            .create_code(&NewCode {
                id: &id,
                purpose,
                email,
                user_id,
                code_hash: "",
                payload: Some(&serde_json::to_string(profile).map_err(|e| internal(&e))?),
                now,
                expires_at: now + EXTERNAL_PENDING_TTL_MS,
            })
            .await?;
        Ok(id)
    }

    /// The new account of a provider identity with a proven email, and its sign-in.
    pub(super) async fn create_external_account(
        &self,
        ctx: &RequestContext,
        profile: &ExternalProfile,
        email: &str,
        name: &str,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        let user_id = random_id();
        let identity = new_identity(profile, &user_id, email, now);
        let created = self
            .store
            .create_user_with_identity(
                &NewUser {
                    id: &user_id,
                    email,
                    display_name: name,
                    password_hash: None,
                    is_admin: false,
                    now,
                },
                &identity,
            )
            .await;
        self.conclude_sign_up(
            ctx,
            email,
            created,
            Method::SignUpFederated,
            crate::identity::Strength::of(crate::identity::AuthMethod::Provider),
            Some(&profile.provider_id),
            now,
        )
        .await
    }

    /// A live pending provider sign-up or link, with its profile.
    pub(super) async fn live_external(
        &self,
        flow_id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(CodeRecord, ExternalProfile), AuthError> {
        let flow = self
            .live_flow(flow_id, now)
            .await?
            .filter(|f| f.purpose == purpose)
            .ok_or(AuthError::CodeDead)?;
        let profile: ExternalProfile = serde_json::from_str(flow.payload.as_deref().unwrap_or(""))
            .map_err(|e| internal(&e))?;
        Ok((flow, profile))
    }

    pub(super) async fn provider_name(&self, provider_id: &str) -> Result<String, AuthError> {
        Ok(self
            .store
            .find_provider(provider_id)
            .await?
            .map(|p| p.display_name)
            .unwrap_or_else(|| provider_id.to_string()))
    }

    /// What the page finishing a provider sign-up shows.
    pub async fn pending_external_sign_up(
        &self,
        flow_id: &str,
        now: i64,
    ) -> Result<PendingExternal, AuthError> {
        self.pending_view(flow_id, CodePurpose::ExternalSignUp, now)
            .await
    }

    /// A pending sign-up or link as its page shows it: a sign-up suggests the provider's
    /// unproven email, a link names the account it waits for.
    pub(super) async fn pending_view(
        &self,
        flow_id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<PendingExternal, AuthError> {
        let (flow, profile) = self.live_external(flow_id, purpose, now).await?;
        let link = purpose == CodePurpose::ExternalLink;
        Ok(PendingExternal {
            provider_name: self.provider_name(&profile.provider_id).await?,
            name: profile.usable_name(),
            verified_email: profile.verified_email(),
            suggested_email: profile
                .email
                .as_deref()
                .and_then(|e| email::normalize_email(e).ok())
                .filter(|_| !link),
            account_email: link.then_some(flow.email),
        })
    }

    /// Finishes a provider sign-up with what the provider did not give: a name, and an email
    /// to prove by code when the provider had none it vouched for.
    pub async fn finish_external_sign_up(
        &self,
        ctx: &RequestContext,
        flow_id: &str,
        name_input: &str,
        email_input: &str,
        now: i64,
    ) -> Result<ExternalFinish, AuthError> {
        let (flow, profile) = self
            .live_external(flow_id, CodePurpose::ExternalSignUp, now)
            .await?;
        let name = match profile.usable_name() {
            Some(name) if name_input.trim().is_empty() => name,
            _ => validate_display_name(name_input)?,
        };
        self.ip_budget(
            ctx,
            "sign_up_ip",
            crate::identity::SIGN_UPS_PER_IP,
            crate::identity::SIGN_UP_WINDOW_MS,
            now,
        )
        .await?;
        if let Some(email) = profile.verified_email() {
            if self
                .store
                .consume_grant(&flow.id, CodePurpose::ExternalSignUp, now)
                .await?
                .is_none()
            {
                return Err(AuthError::CodeDead);
            }
            let outcome = self
                .create_external_account(ctx, &profile, &email, &name, now)
                .await?;
            return Ok(ExternalFinish::SignIn(outcome));
        }
        let email = crate::identity::email_or_invalid(email_input)?;
        if self
            .store
            .consume_grant(&flow.id, CodePurpose::ExternalSignUp, now)
            .await?
            .is_none()
        {
            return Err(AuthError::CodeDead);
        }
        let pending = PendingSignUp {
            display_name: name,
            password_hash: None,
            external: Some(ExternalProfile {
                email: Some(email.clone()),
                ..profile
            }),
        };
        let started = self
            .start_sign_up(ctx, CodePurpose::SignUpCode, &email, &pending, None, now)
            .await?;
        Ok(ExternalFinish::CodeSent(started))
    }

    /// The account of a proven sign-up code whose flow came from a provider, with its identity.
    pub(in crate::identity) async fn create_account_from_code(
        &self,
        user: &NewUser<'_>,
        profile: &ExternalProfile,
    ) -> Result<User, StoreError> {
        let identity = new_identity(profile, user.id, user.email, user.now);
        self.store.create_user_with_identity(user, &identity).await
    }
}
