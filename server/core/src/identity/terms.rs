//! The terms of use a Conditional Access grant may require: the tenant publishes versions of
//! one text; an account accepts each version once, and the acceptance is recorded with when
//! and from where. A new version is asked for again.

use super::{AccessError, AuthError, Identity, RequestContext};
use crate::conditional_access::{Control, Grant, PolicyProblem, PolicyState};
use crate::store::{TermsAcceptance, TermsRecord, User};

/// The longest title and text of the terms.
pub const MAX_TERMS_TITLE: usize = 200;
pub const MAX_TERMS_BODY: usize = 50_000;

impl Identity {
    /// The newest published version of the terms of use, if any.
    pub async fn terms_of_use(&self) -> Result<Option<TermsRecord>, AuthError> {
        Ok(self.store.current_terms().await?)
    }

    /// Every published version, newest first.
    pub async fn terms_history(&self) -> Result<Vec<TermsRecord>, AuthError> {
        Ok(self.store.terms_history().await?)
    }

    /// The versions an account accepted, newest first.
    pub async fn terms_accepted_by(&self, user: &User) -> Result<Vec<TermsAcceptance>, AuthError> {
        Ok(self.store.terms_acceptances(&user.id).await?)
    }

    /// Publishes a new version of the terms: every account a policy asks for them accepts it
    /// at its next sign-in or application request.
    pub async fn publish_terms(
        &self,
        ctx: &RequestContext,
        admin: Option<&User>,
        title: &str,
        body: &str,
        now: i64,
    ) -> Result<i64, AccessError> {
        let (title, body) = (title.trim(), body.trim());
        if title.is_empty() || title.chars().count() > MAX_TERMS_TITLE {
            return Err(AccessError::Invalid(PolicyProblem(format!(
                "the title must have 1 to {MAX_TERMS_TITLE} characters"
            ))));
        }
        if body.is_empty() || body.chars().count() > MAX_TERMS_BODY {
            return Err(AccessError::Invalid(PolicyProblem(format!(
                "the text must have 1 to {MAX_TERMS_BODY} characters"
            ))));
        }
        let version = self
            .store
            .publish_terms(title, body, admin.map(|a| a.id.as_str()), now)
            .await
            .map_err(AuthError::from)?;
        if let Some(admin) = admin {
            self.admin_audit(
                ctx,
                admin,
                None,
                "admin.terms.published",
                &format!("version {version}"),
                now,
            )
            .await?;
        }
        Ok(version)
    }

    /// Whether an enforced policy could ask anyone for the terms: without one, nothing is
    /// looked up.
    async fn terms_in_force(&self, now: i64) -> Result<bool, AuthError> {
        let set = self.policy_set(now).await?;
        Ok(set.policies.iter().any(|p| {
            p.state == PolicyState::On
                && matches!(&p.grant, Grant::Require { controls, .. } if controls.contains(&Control::TermsOfUse))
        }))
    }

    /// Whether the account has accepted the current terms (true when none are published).
    pub(super) async fn accepted_current_terms(&self, user: &User) -> Result<bool, AuthError> {
        Ok(match self.store.current_terms().await? {
            Some(terms) => {
                self.store
                    .has_accepted_terms(&user.id, terms.version)
                    .await?
            }
            None => true,
        })
    }

    /// The terms this account must accept before it reaches `application` in this request:
    /// an enforced policy that applies requires them and the current version is not accepted.
    pub async fn terms_to_accept(
        &self,
        ctx: &RequestContext,
        user: &User,
        application: &str,
        now: i64,
    ) -> Result<Option<TermsRecord>, AuthError> {
        if !self.terms_in_force(now).await? {
            return Ok(None);
        }
        let decision = self.access_decision(ctx, user, application, now).await?;
        if !decision.terms_of_use {
            return Ok(None);
        }
        let Some(terms) = self.store.current_terms().await? else {
            return Ok(None);
        };
        if self
            .store
            .has_accepted_terms(&user.id, terms.version)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(terms))
    }

    /// Records that the account accepted `version`, which must be the current one (a page
    /// shown before a newer version was published is not taken for the new one: false, and
    /// the new text is shown).
    pub async fn accept_terms(
        &self,
        ctx: &RequestContext,
        user: &User,
        version: i64,
        now: i64,
    ) -> Result<bool, AuthError> {
        let current = self.store.current_terms().await?;
        if current.as_ref().map(|t| t.version) != Some(version) {
            return Ok(false);
        }
        self.store
            .accept_terms(&user.id, version, &ctx.client_ip, now)
            .await?;
        self.audit_silently(
            ctx,
            &user.id,
            "terms.accepted",
            &format!("version {version}"),
            now,
        )
        .await?;
        Ok(true)
    }
}
