//! Links between accounts and their identities at providers: confirming one after proving
//! the account, listing and removing them.

use super::*;

impl Identity {
    /// What the page of a pending link shows.
    pub async fn pending_link(
        &self,
        flow_id: &str,
        now: i64,
    ) -> Result<PendingExternal, AuthError> {
        self.pending_view(flow_id, CodePurpose::ExternalLink, now)
            .await
    }

    /// Drops a pending link ("do not link").
    pub async fn drop_pending_link(&self, flow_id: &str, now: i64) -> Result<(), AuthError> {
        if let Some(flow) = self.live_flow(flow_id, now).await? {
            if flow.purpose == CodePurpose::ExternalLink {
                self.store.expire_code(&flow.id, now).await?;
            }
        }
        Ok(())
    }

    /// Whether this session may confirm the pending link: it belongs to the account the link
    /// waits for, and it signed in after the provider round trip.
    pub async fn may_confirm_link(
        &self,
        session: &Session,
        flow_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let (flow, _) = self
            .live_external(flow_id, CodePurpose::ExternalLink, now)
            .await?;
        Ok(flow.user_id.as_deref() == Some(session.user_id.as_str())
            && session.auth_time >= flow.created_at)
    }

    /// Links a pending provider identity to the account that was just proven in this session.
    pub async fn confirm_link(
        &self,
        ctx: &RequestContext,
        session: &Session,
        flow_id: &str,
        now: i64,
    ) -> Result<String, AuthError> {
        if !self.may_confirm_link(session, flow_id, now).await? {
            return Err(AuthError::ReauthenticationRequired);
        }
        let flow = self
            .store
            .consume_grant(flow_id, CodePurpose::ExternalLink, now)
            .await?
            .ok_or(AuthError::CodeDead)?;
        let profile: ExternalProfile = serde_json::from_str(flow.payload.as_deref().unwrap_or(""))
            .map_err(|e| internal(&e))?;
        self.link(ctx, &session.user_id, &profile, now).await
    }

    /// Links a provider identity to the signed-in account (the security-info page's "link").
    pub async fn link_external_now(
        &self,
        ctx: &RequestContext,
        session: &Session,
        profile: ExternalProfile,
        now: i64,
    ) -> Result<String, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        self.link(ctx, &session.user_id, &profile, now).await
    }

    pub(super) async fn link(
        &self,
        ctx: &RequestContext,
        user_id: &str,
        profile: &ExternalProfile,
        now: i64,
    ) -> Result<String, AuthError> {
        if let Some(existing) = self
            .store
            .find_external_identity(&profile.issuer, &profile.subject)
            .await?
        {
            return if existing.user_id == user_id {
                self.provider_name(&profile.provider_id).await
            } else {
                Err(AuthError::AlreadyLinked)
            };
        }
        let linked = self
            .store
            .link_external_identity(&ExternalIdentity {
                id: random_id(),
                user_id: user_id.to_string(),
                provider_id: profile.provider_id.clone(),
                issuer: profile.issuer.clone(),
                subject: profile.subject.clone(),
                email: profile.email.clone().filter(|e| e.len() <= 320),
                created_at: now,
                last_used_at: None,
            })
            .await;
        match linked {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(AuthError::AlreadyLinked),
            Err(e) => return Err(e.into()),
        }
        self.audit(ctx, user_id, "federation.linked", &profile.provider_id, now)
            .await?;
        self.provider_name(&profile.provider_id).await
    }

    /// The provider accounts linked to an account.
    pub async fn linked_identities(&self, user_id: &str) -> Result<Vec<LinkedIdentity>, AuthError> {
        let providers = self.store.list_providers().await?;
        Ok(self
            .store
            .list_external_identities(user_id)
            .await?
            .into_iter()
            .map(|i| {
                let provider = providers.iter().find(|p| p.id == i.provider_id);
                LinkedIdentity {
                    id: i.id,
                    provider_id: i.provider_id.clone(),
                    provider_name: provider
                        .map_or_else(|| i.provider_id.clone(), |p| p.display_name.clone()),
                    kind: provider.and_then(|p| ProviderKind::parse(&p.kind)),
                    email: i.email,
                    linked_at: i.created_at,
                    last_used_at: i.last_used_at,
                }
            })
            .collect())
    }

    /// Unlinks a provider account. The account's own email stays a way in (a code can always
    /// be sent to it), so unlinking never locks anyone out. Needs a recent sign-in.
    pub async fn unlink_identity(
        &self,
        ctx: &RequestContext,
        session: &Session,
        identity_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        if identity_id.is_empty() || identity_id.len() > 64 {
            return Ok(false);
        }
        let removed = self
            .store
            .unlink_external_identity(&session.user_id, identity_id)
            .await?;
        if removed {
            self.audit(
                ctx,
                &session.user_id,
                "federation.unlinked",
                identity_id,
                now,
            )
            .await?;
        }
        Ok(removed)
    }
}
