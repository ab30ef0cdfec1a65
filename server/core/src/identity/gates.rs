//! The gates in front of every secret check: password sign-in behind the per-account and
//! per-IP throttles (the attempt counted before the secret is checked, by compare-and-set), and
//! the re-check of a signed-in person's current password.

use super::*;

/// A passed per-IP gate: the counter key, and whether this attempt was already counted.
pub(super) struct IpGate {
    pub(super) key: String,
    pub(super) counted: bool,
}

impl Identity {
    // ------------------------------------------------------------ password sign-in

    /// Signs in with email and password. Unknown email and wrong password give the same error
    /// after the same work (a dummy hash is verified for unknown accounts).
    pub async fn sign_in_with_password(
        &self,
        ctx: &RequestContext,
        email_input: &str,
        password: &SecretString,
        now: i64,
    ) -> Result<SignInOutcome, AuthError> {
        // An address that cannot exist is handled like an unknown account, under a fixed-size key
        // derived from what was typed.
        let email = normalize_email(email_input).unwrap_or_else(|_| {
            format!("invalid:{}", crate::tokens::token_hash(email_input.trim()))
        });
        let result = self.password_first_factor(ctx, &email, password, now).await;
        match result {
            Ok((user, findings)) => {
                let first = FirstFactor {
                    findings,
                    ..FirstFactor::proven(
                        &email,
                        user,
                        Method::Password,
                        Strength::of(AuthMethod::Password),
                    )
                };
                self.conclude_first_factor(ctx, first, now).await
            }
            Err((user_id, err)) => {
                self.log_attempt(
                    ctx,
                    &email,
                    user_id.as_deref(),
                    Method::Password,
                    Err(&err),
                    None,
                    now,
                )
                .await?;
                Err(err)
            }
        }
    }

    pub(super) async fn password_first_factor(
        &self,
        ctx: &RequestContext,
        email: &str,
        password: &SecretString,
        now: i64,
    ) -> Result<(User, Vec<crate::risk::Finding>), (Option<String>, AuthError)> {
        let fail = |user: Option<&User>, err: AuthError| (user.map(|u| u.id.clone()), err);
        let ip = self.ip_gate(ctx, now).await.map_err(|e| fail(None, e))?;
        // Per-account gate: the attempt is counted before the password is checked.
        self.claim_attempt(
            "password",
            email,
            ACCOUNT_POLICY,
            AuthError::PasswordPathClosed,
            now,
        )
        .await
        .map_err(|e| fail(None, e))?;
        let user = self
            .store
            .find_user_by_email(email)
            .await
            .map_err(|e| fail(None, e.into()))?;
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let ok = self
            .hasher
            .verify(password, stored)
            .await
            .map_err(|e| fail(user.as_ref(), e.into()))?;
        match user {
            Some(user) if ok => {
                // The counter includes this attempt (claimed before the check).
                let failures = self
                    .store
                    .throttle_state("password", email)
                    .await
                    .map_err(|e| fail(Some(&user), e.into()))?
                    .failures;
                self.store
                    .throttle_reset("password", email)
                    .await
                    .map_err(|e| fail(Some(&user), e.into()))?;
                if failures > 1 && !user.disabled {
                    self.send(
                        &user.email,
                        ctx.emails.compose(EmailKind::SignInAfterFailures, None),
                        now,
                    )
                    .await
                    .map_err(|e| fail(Some(&user), e))?;
                }
                // What the proof says of the account: the right password after many wrong
                // ones, and a password anyone holding a breach corpus knows.
                let mut findings: Vec<_> =
                    crate::risk::brute_force(failures - 1).into_iter().collect();
                if let (Some(times), Some(corpus)) =
                    (self.times_breached(password), self.breach.as_ref())
                {
                    findings.push(crate::risk::leaked_credentials(times, &corpus.describe()));
                }
                Ok((user, findings))
            }
            user => {
                self.ip_failure(&ip, now)
                    .await
                    .map_err(|e| fail(user.as_ref(), e))?;
                Err(fail(user.as_ref(), AuthError::InvalidCredentials))
            }
        }
    }

    /// The per-IP gate in front of every secret check (passwords and codes). IPv6 clients are
    /// counted per /64. Once an address is in the throttled range, each attempt must also win
    /// the counter by compare-and-set, so a burst cannot slip through when a delay ends.
    pub(super) async fn ip_gate(
        &self,
        ctx: &RequestContext,
        now: i64,
    ) -> Result<IpGate, AuthError> {
        let key = ip_key(&ctx.client_ip);
        let mut state = self.store.throttle_state("ip", &key).await?;
        if IP_POLICY.is_stale(state, now) && state.failures > 0 {
            self.store.throttle_reset("ip", &key).await?;
            state = ThrottleState::default();
        }
        if let ThrottleDecision::WaitUntil(until) = IP_POLICY.decide(state, now) {
            return Err(retry_after(until, now));
        }
        let counted = state.failures > IP_POLICY.free_failures;
        if counted && !self.store.throttle_claim("ip", &key, state, now).await? {
            return Err(AuthError::Throttled { retry_after_s: 1 });
        }
        Ok(IpGate { key, counted })
    }

    /// Counts a failed secret check against the client's address (unless the gate already did).
    pub(super) async fn ip_failure(&self, gate: &IpGate, now: i64) -> Result<(), AuthError> {
        if !gate.counted {
            self.store
                .throttle_record_failure("ip", &gate.key, now)
                .await?;
        }
        Ok(())
    }

    /// Checks a signed-in user's current password behind the same throttle as sign-in; a
    /// success clears the account's failure count.
    pub(super) async fn verify_current_password(
        &self,
        user: &User,
        password: &SecretString,
        now: i64,
    ) -> Result<(), AuthError> {
        self.claim_attempt(
            "password",
            &user.email,
            ACCOUNT_POLICY,
            AuthError::PasswordPathClosed,
            now,
        )
        .await?;
        if !self
            .hasher
            .verify(password, user.password_hash.as_deref())
            .await?
        {
            return Err(AuthError::InvalidCredentials);
        }
        self.store.throttle_reset("password", &user.email).await?;
        Ok(())
    }

    /// Takes one evaluation slot from the (scope, subject) counter, or says why not. The counter
    /// moves by compare-and-set, so racing requests cannot evaluate more secrets than it counts.
    /// Returns the count of consecutive attempts, this one included.
    pub(super) async fn claim_attempt(
        &self,
        scope: &str,
        subject: &str,
        policy: ThrottlePolicy,
        closed: AuthError,
        now: i64,
    ) -> Result<i64, AuthError> {
        let mut state = self.store.throttle_state(scope, subject).await?;
        if policy.is_stale(state, now) {
            self.store.throttle_reset(scope, subject).await?;
            state = ThrottleState::default();
        }
        match policy.decide(state, now) {
            ThrottleDecision::Closed => return Err(closed),
            ThrottleDecision::WaitUntil(until) => return Err(retry_after(until, now)),
            ThrottleDecision::Allow => {}
        }
        if self
            .store
            .throttle_claim(scope, subject, state, now)
            .await?
        {
            Ok(state.failures + 1)
        } else {
            // Another attempt for this account is being evaluated right now.
            Err(AuthError::Throttled { retry_after_s: 1 })
        }
    }
}
