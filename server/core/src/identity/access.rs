//! Conditional Access in the pipeline: the policies in force (cached on each instance and read
//! again when the database's change counter moves), the signals of an attempt, and the admin's
//! operations on policies, named locations and groups. The decision itself is the pure
//! [`crate::conditional_access::evaluate`], called from the pipeline's decision step.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::oidc::Client;
use super::{AuthError, Identity, Method, RequestContext};
use crate::conditional_access::{
    evaluate, AccessDecision, AccessSignals, ClientType, Grant, NamedLocation, Platform, Policy,
    PolicyProblem, PolicySet, PolicyState, Resource, RiskLevel,
};
use crate::store::{GrantRecord, GroupRecord, PolicyVersion, SignInLogEntry, StoreError, User};
use crate::tokens::random_id;

/// How long an instance trusts its cached policies before it checks the database's change
/// counter again: a change made on another instance applies here within this time.
pub const POLICY_CACHE_MS: i64 = 5_000;

/// The policies an instance holds, and when it last checked they were current.
#[derive(Default)]
pub struct PolicyCache {
    held: tokio::sync::RwLock<Option<(i64, Arc<PolicySet>)>>,
}

impl PolicyCache {
    /// Forgets what is held, so the next read goes to the database (after a change here).
    async fn forget(&self) {
        *self.held.write().await = None;
    }
}

/// Everything an admin exports or imports at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(default)]
    pub locations: Vec<NamedLocation>,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

/// The inputs of a What-If question: who, where to, from where and with what.
#[derive(Debug, Clone)]
pub struct WhatIf {
    pub email: String,
    /// An OIDC client id, or the account portal's name.
    pub application: String,
    pub client_ip: String,
    pub platform: Platform,
    pub client_type: ClientType,
    pub sign_in_risk: RiskLevel,
    pub user_risk: RiskLevel,
}

/// What a policy would have done to the sign-ins of the last days.
#[derive(Debug, Clone, Default)]
pub struct ImpactReport {
    pub days: i64,
    /// Successful sign-ins replayed.
    pub sign_ins: i64,
    pub blocked: i64,
    /// Sign-ins that would have been asked for more than they proved.
    pub challenged: i64,
    pub users_blocked: i64,
    pub users_challenged: i64,
    /// Per application: (application, blocked, challenged), most affected first.
    pub by_application: Vec<(String, i64, i64)>,
    /// Up to ten of the affected sign-ins, with what would have happened.
    pub sample: Vec<(SignInLogEntry, &'static str)>,
}

/// What a live session may do in the account portal and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalAccess {
    Allowed,
    /// A policy blocks it now: the session has ended.
    Blocked,
    /// The console asks more than the session proved: its second factor again, completing
    /// the pending sign-in `pending_id` (which replaces the session).
    SecondFactor {
        pending_id: String,
    },
    /// The console asks a strength no factor of the account reaches.
    StrengthRequired,
    /// The account is at risk and a policy requires a new password first.
    ChangePassword,
    /// The terms of use a policy requires come first.
    AcceptTerms,
}

/// The most days an impact replay reaches back (the sign-in log's retention).
pub const MAX_IMPACT_DAYS: i64 = 90;

/// A policy as the console and the command line list it.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    pub policy: Policy,
    pub version: i64,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

/// Why a change to policies, locations or groups was not made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(PolicyProblem),
    #[error("there is no such {0}")]
    NotFound(&'static str),
    #[error("a group with this name already exists")]
    Exists,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<StoreError> for AccessError {
    fn from(e: StoreError) -> Self {
        AccessError::Auth(e.into())
    }
}

impl Identity {
    /// The policies and locations in force: the cached set while it is younger than
    /// [`POLICY_CACHE_MS`] or the database's counter has not moved, otherwise read again.
    pub async fn policy_set(&self, now: i64) -> Result<Arc<PolicySet>, AuthError> {
        if let Some((checked, set)) = self.policies.held.read().await.as_ref() {
            if now - checked < POLICY_CACHE_MS {
                return Ok(set.clone());
            }
        }
        let version = self.store.ca_version().await?;
        let mut held = self.policies.held.write().await;
        if let Some((_, set)) = held.as_ref() {
            if set.version == version {
                let set = set.clone();
                *held = Some((now, set.clone()));
                return Ok(set);
            }
        }
        let set = Arc::new(self.read_policy_set(version).await?);
        *held = Some((now, set.clone()));
        Ok(set)
    }

    async fn read_policy_set(&self, version: i64) -> Result<PolicySet, AuthError> {
        let mut policies = Vec::new();
        for row in self.store.list_policies().await? {
            match serde_json::from_str::<Policy>(&row.document) {
                Ok(p) => policies.push(p),
                // A document this version cannot read is never silently ignored: it blocks,
                // and the log says why.
                Err(e) => {
                    tracing::error!(policy = %row.id, error = %e, "unreadable Conditional Access policy; it blocks until fixed");
                    policies.push(unreadable(&row.id, &row.name));
                }
            }
        }
        let mut locations = Vec::new();
        for row in self.store.list_locations().await? {
            match serde_json::from_str::<NamedLocation>(&row.document) {
                Ok(l) => locations.push(l),
                Err(e) => {
                    tracing::error!(location = %row.id, error = %e, "unreadable named location; it matches nothing");
                }
            }
        }
        let entries = self.store.risk_list_entries().await?;
        let risk_lists = crate::risk::RiskLists::from_entries(
            entries.iter().map(|(k, e)| (k.as_str(), e.as_str())),
        );
        Ok(PolicySet {
            version,
            policies,
            locations,
            risk_lists,
        })
    }

    /// Drops this instance's cached policies and lists (after a change made here).
    pub(super) async fn policies_changed(&self) {
        self.policies.forget().await;
    }

    /// The real-time detections of an attempt (the address lists, and the account's history
    /// for travel and unfamiliar properties), without recording them. Public for the
    /// benchmark of their latency.
    pub async fn assess_attempt(
        &self,
        ctx: &RequestContext,
        user: &User,
        now: i64,
    ) -> Result<Vec<crate::risk::Finding>, AuthError> {
        let set = self.policy_set(now).await?;
        let current = crate::risk::SignInProperties {
            at: now,
            ..self.properties_of(ctx)
        };
        let history = self.sign_in_history(&user.id, now).await?;
        Ok(crate::risk::assess_sign_in(
            &current,
            &history,
            &set.risk_lists,
            now,
        ))
    }

    /// The signals Conditional Access sees for `user` reaching `application` from
    /// `client_ip` with `user_agent`.
    pub(super) async fn access_signals(
        &self,
        client_ip: &str,
        user_agent: &str,
        user: &User,
        application: &str,
    ) -> Result<AccessSignals, AuthError> {
        let client_type = self.client_type_of(application).await?;
        Ok(AccessSignals {
            user_id: user.id.clone(),
            groups: self.store.groups_of_user(&user.id).await?,
            resource: Resource::of_application(application),
            client_ip: client_ip.parse().ok(),
            country: self.country_of(client_ip),
            client_type,
            platform: Platform::of_user_agent(user_agent),
            sign_in_risk: RiskLevel::None,
            user_risk: self.user_risk(&user.id).await?,
        })
    }

    /// How `application`'s sign-ins reach us: a public client without browser origins is a
    /// native application; everything else, the portal included, is a browser.
    async fn client_type_of(&self, application: &str) -> Result<ClientType, AuthError> {
        if application == crate::identity::ACCOUNT_PORTAL {
            return Ok(ClientType::Browser);
        }
        Ok(match self.client(application).await? {
            Some(c) if !c.confidential && c.allowed_origins.is_empty() => ClientType::Native,
            _ => ClientType::Browser,
        })
    }

    /// Whether any policy is evaluated at all: without one, no signal needs gathering.
    fn nothing_in_force(set: &PolicySet) -> bool {
        set.policies.iter().all(|p| p.state == PolicyState::Off)
    }

    /// What the policies decide for `user` reaching `application` in this request.
    pub(super) async fn access_decision(
        &self,
        ctx: &RequestContext,
        user: &User,
        application: &str,
        now: i64,
    ) -> Result<AccessDecision, AuthError> {
        let set = self.policy_set(now).await?;
        if Self::nothing_in_force(&set) {
            return Ok(AccessDecision::default());
        }
        let signals = self
            .access_signals(&ctx.client_ip, &ctx.user_agent, user, application)
            .await?;
        // The attempt's own assessment (every detection, made at its first factor) when this
        // request is part of a sign-in; the address lists in any case.
        let by_address = crate::risk::sign_in_risk(&crate::risk::assess_address_str(
            &ctx.client_ip,
            &set.risk_lists,
        ));
        let signals = AccessSignals {
            sign_in_risk: ctx.sign_in_risk.unwrap_or(RiskLevel::None).max(by_address),
            ..signals
        };
        Ok(evaluate(&signals, &set.policies, &set.locations))
    }

    /// Conditional Access on every page of the account portal and the console, for the live
    /// session: a block that began after the sign-in ends the session (logged, method `sso`,
    /// under the portal or the console), in the console a strength the session has not
    /// proven asks for the second factor again (a step-up), and terms of use a policy
    /// requires there are asked for first.
    pub async fn portal_access(
        &self,
        ctx: &RequestContext,
        user: &User,
        session: &crate::store::Session,
        console: bool,
        now: i64,
    ) -> Result<PortalAccess, AuthError> {
        let set = self.policy_set(now).await?;
        if Self::nothing_in_force(&set) {
            return Ok(PortalAccess::Allowed);
        }
        let portal = if console {
            crate::identity::ADMIN_CONSOLE
        } else {
            crate::identity::ACCOUNT_PORTAL
        };
        let decision = self.access_decision(ctx, user, portal, now).await?;
        if decision.blocked_by.is_some() {
            let ctx = RequestContext {
                application: portal.into(),
                policy_results: Some(decision.log_json()),
                ..ctx.clone()
            };
            self.end_sessions(&user.id, super::SessionsToEnd::One(&session.id), now)
                .await?;
            self.log_attempt(
                &ctx,
                &user.email,
                Some(&user.id),
                Method::SingleSignOn,
                Err(&AuthError::BlockedByPolicy),
                Some(&session.id),
                now,
            )
            .await?;
            return Ok(PortalAccess::Blocked);
        }
        let proven = crate::identity::Strength::parse(&session.amr);
        // The console asks the strength it requires of the live session; the portal only
        // when a new password is required, which a multifactor session chooses.
        let unmet = !decision.unmet(&proven).is_empty()
            || (decision.password_change && !proven.is_multifactor());
        if unmet && (console || decision.password_change) {
            return Ok(match self.begin_step_up(session, user, now).await? {
                Some(pending_id) => PortalAccess::SecondFactor { pending_id },
                None => PortalAccess::StrengthRequired,
            });
        }
        if decision.password_change {
            return Ok(PortalAccess::ChangePassword);
        }
        if decision.terms_of_use && !self.accepted_current_terms(user).await? {
            return Ok(PortalAccess::AcceptTerms);
        }
        Ok(PortalAccess::Allowed)
    }

    /// Conditional Access when an application refreshes its tokens: a block that applies to
    /// the grant's account, the application and the address the refresh comes from revokes the
    /// grant (every token of its family) and is written to the sign-in log.
    pub(super) async fn refresh_blocked(
        &self,
        client: &Client,
        grant: &GrantRecord,
        client_ip: &str,
        user_agent: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let set = self.policy_set(now).await?;
        if Self::nothing_in_force(&set) {
            return Ok(false);
        }
        let Some(user_id) = &grant.user_id else {
            return Ok(false);
        };
        let Some(user) = self.store.find_user(user_id).await? else {
            return Ok(false);
        };
        let signals = self
            .access_signals(client_ip, user_agent, &user, &client.id)
            .await?;
        let signals = AccessSignals {
            sign_in_risk: crate::risk::sign_in_risk(&crate::risk::assess_address_str(
                client_ip,
                &set.risk_lists,
            )),
            ..signals
        };
        let decision = evaluate(&signals, &set.policies, &set.locations);
        if decision.blocked_by.is_none() {
            return Ok(false);
        }
        self.store.revoke_grant(&grant.id, now).await?;
        self.store
            .record_sign_in(&SignInLogEntry {
                id: random_id(),
                occurred_at: now,
                user_id: Some(user.id.clone()),
                email: user.email.clone(),
                application: client.id.clone(),
                client_ip: client_ip.chars().take(64).collect(),
                user_agent: user_agent.chars().take(512).collect(),
                method: Method::TokenRefresh.as_str().into(),
                result: "blocked".into(),
                failure_reason: Some(AuthError::BlockedByPolicy.reason_code().into()),
                session_id: grant.session_id.clone(),
                policies: Some(decision.log_json()),
                ..Default::default()
            })
            .await?;
        Ok(true)
    }

    /// Whether an enforced policy that requires a second factor is assigned to this account
    /// (for the account portal, or for anything), its conditions aside but for the account's
    /// user risk: an account without a
    /// method is then sent to add one, and its last method stays, as under the tenant's MFA
    /// rule.
    pub(super) async fn policy_requires_factor(
        &self,
        user: &User,
        portal_only: bool,
        now: i64,
    ) -> Result<bool, AuthError> {
        let set = self.policy_set(now).await?;
        let asking: Vec<&Policy> = set
            .policies
            .iter()
            .filter(|p| {
                p.state == PolicyState::On
                    && matches!(&p.grant, Grant::Require { controls, .. }
                        if controls.iter().any(|c| c.strength().is_some()))
                    && (p.targets.account_portal || !portal_only)
            })
            .collect();
        if asking.is_empty() {
            return Ok(false);
        }
        // The account's user risk is a property of the account, not of one attempt: a policy
        // for risky accounts asks nothing of the others.
        let risk = if asking.iter().any(|p| !p.conditions.user_risk.is_empty()) {
            self.user_risk(&user.id).await?
        } else {
            RiskLevel::None
        };
        let asking: Vec<&&Policy> = asking
            .iter()
            .filter(|p| p.conditions.user_risk.is_empty() || p.conditions.user_risk.contains(&risk))
            .collect();
        let groups = self.store.groups_of_user(&user.id).await?;
        Ok(asking.iter().any(|p| {
            let a = &p.assignments;
            !a.exclude_users.contains(&user.id)
                && !a.exclude_groups.iter().any(|g| groups.contains(g))
                && (a.all_users
                    || a.users.contains(&user.id)
                    || a.groups.iter().any(|g| groups.contains(g)))
        }))
    }

    // ------------------------------------------------------------ administration

    /// Replays `policy` (whatever its state, as if enforced) over the successful sign-ins of
    /// the last `days` days, in batches, and counts what it would have blocked or asked more
    /// of. Groups are today's; what a sign-in proved is read from its method (a second
    /// factor or a passkey is multifactor, a passkey phishing-resistant).
    pub async fn policy_impact(
        &self,
        policy: &Policy,
        days: i64,
        now: i64,
    ) -> Result<ImpactReport, AccessError> {
        if !(1..=MAX_IMPACT_DAYS).contains(&days) {
            return Err(AccessError::Invalid(PolicyProblem(format!(
                "the replay covers 1 to {MAX_IMPACT_DAYS} days"
            ))));
        }
        let locations = self.current_policy_set().await?.locations;
        policy.validate(&locations).map_err(AccessError::Invalid)?;
        let enforced = [Policy {
            state: PolicyState::On,
            ..policy.clone()
        }];
        let mut report = ImpactReport {
            days,
            ..ImpactReport::default()
        };
        let mut groups: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut client_types: std::collections::HashMap<String, ClientType> = Default::default();
        let (mut blocked_users, mut challenged_users) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        let mut apps: std::collections::HashMap<String, (i64, i64)> = Default::default();
        // Parsing a user agent and looking an address up cost more than the evaluation:
        // each distinct one is done once per replay.
        let mut platforms: std::collections::HashMap<String, Platform> = Default::default();
        let mut countries: std::collections::HashMap<String, Option<String>> = Default::default();
        let mut after: Option<(i64, String)> = None;
        loop {
            let rows = self
                .store
                .successful_sign_ins_after(
                    now - days * 86_400_000,
                    after.as_ref().map(|(t, id)| (*t, id.as_str())),
                    2_000,
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some((last.occurred_at, last.id.clone()));
            for row in rows {
                let Some(user_id) = row.user_id.clone() else {
                    continue;
                };
                if !groups.contains_key(&user_id) {
                    let of_user = self.store.groups_of_user(&user_id).await?;
                    groups.insert(user_id.clone(), of_user);
                }
                if !client_types.contains_key(&row.application) {
                    let kind = self.client_type_of(&row.application).await?;
                    client_types.insert(row.application.clone(), kind);
                }
                let platform = *platforms
                    .entry(row.user_agent.clone())
                    .or_insert_with(|| Platform::of_user_agent(&row.user_agent));
                let country = countries
                    .entry(row.client_ip.clone())
                    .or_insert_with(|| self.country_of(&row.client_ip))
                    .clone();
                let signals = AccessSignals {
                    user_id: user_id.clone(),
                    groups: groups.get(&user_id).cloned().unwrap_or_default(),
                    resource: Resource::of_application(&row.application),
                    client_ip: row.client_ip.parse().ok(),
                    country,
                    client_type: client_types
                        .get(&row.application)
                        .copied()
                        .unwrap_or(ClientType::Browser),
                    platform,
                    sign_in_risk: RiskLevel::None,
                    user_risk: RiskLevel::None,
                };
                report.sign_ins += 1;
                let decision = evaluate(&signals, &enforced, &locations);
                let outcome = if decision.blocked_by.is_some() {
                    report.blocked += 1;
                    blocked_users.insert(user_id);
                    apps.entry(row.application.clone()).or_default().0 += 1;
                    "blocked"
                } else if !decision.unmet(&proven_by_method(&row.method)).is_empty() {
                    report.challenged += 1;
                    challenged_users.insert(user_id);
                    apps.entry(row.application.clone()).or_default().1 += 1;
                    "challenged"
                } else {
                    continue;
                };
                if report.sample.len() < 10 {
                    report.sample.push((row, outcome));
                }
            }
        }
        report.users_blocked = blocked_users.len() as i64;
        report.users_challenged = challenged_users.len() as i64;
        let mut by_app: Vec<(String, i64, i64)> =
            apps.into_iter().map(|(a, (b, c))| (a, b, c)).collect();
        by_app.sort_by(|x, y| (y.1 + y.2).cmp(&(x.1 + x.2)).then(x.0.cmp(&y.0)));
        report.by_application = by_app;
        Ok(report)
    }

    /// What the policies in force decide for these inputs: the same evaluation as a real
    /// sign-in, over the same policies, groups and locations.
    pub async fn what_if(&self, q: &WhatIf, now: i64) -> Result<AccessDecision, AccessError> {
        let user = self.account_by_email(&q.email).await?;
        let set = self.policy_set(now).await?;
        let signals = AccessSignals {
            user_id: user.id.clone(),
            groups: self.store.groups_of_user(&user.id).await?,
            resource: Resource::of_application(&q.application),
            client_ip: Some(q.client_ip.trim().parse().map_err(|_| {
                AccessError::Invalid(PolicyProblem("the IP address is not valid".into()))
            })?),
            country: self.country_of(&q.client_ip),
            client_type: q.client_type,
            platform: q.platform,
            sign_in_risk: q.sign_in_risk,
            user_risk: q.user_risk,
        };
        Ok(evaluate(&signals, &set.policies, &set.locations))
    }

    /// Every policy with its version, in the order they were created.
    pub async fn list_policies(&self) -> Result<Vec<PolicyEntry>, AuthError> {
        let mut out = Vec::new();
        for row in self.store.list_policies().await? {
            let policy = serde_json::from_str::<Policy>(&row.document)
                .unwrap_or_else(|_| unreadable(&row.id, &row.name));
            out.push(PolicyEntry {
                policy,
                version: row.version,
                updated_at: row.updated_at,
                updated_by: row.updated_by,
            });
        }
        Ok(out)
    }

    /// Saves a policy (new or changed) after checking it, and makes it apply at once here and
    /// within [`POLICY_CACHE_MS`] everywhere. Returns the version saved.
    pub async fn save_policy(
        &self,
        policy: &Policy,
        actor: Option<&User>,
        now: i64,
    ) -> Result<i64, AccessError> {
        self.check_policy(policy).await?;
        let document = serde_json::to_string(policy).map_err(|e| super::internal(&e))?;
        let version = self
            .store
            .put_policy(
                &policy.id,
                &policy.name,
                policy.state.as_str(),
                &document,
                actor.map(|u| u.id.as_str()),
                now,
            )
            .await?;
        self.policies.forget().await;
        Ok(version)
    }

    /// Whether `policy` may be saved as it is: its own rules, the locations it names, the
    /// lockout guard, and published terms of use when it requires them.
    pub async fn check_policy(&self, policy: &Policy) -> Result<(), AccessError> {
        let set = self.current_policy_set().await?;
        policy
            .validate(&set.locations)
            .map_err(AccessError::Invalid)?;
        self.refuse_lockout(policy).await?;
        let asks_terms = matches!(&policy.grant, Grant::Require { controls, .. }
            if controls.contains(&crate::conditional_access::Control::TermsOfUse));
        if asks_terms && policy.state != PolicyState::Off && self.terms_of_use().await?.is_none() {
            return Err(AccessError::Invalid(PolicyProblem(
                "publish the terms of use first: the policy requires them".into(),
            )));
        }
        Ok(())
    }

    /// Changes only a policy's state.
    pub async fn set_policy_state(
        &self,
        id: &str,
        state: PolicyState,
        actor: Option<&User>,
        now: i64,
    ) -> Result<i64, AccessError> {
        let row = self
            .store
            .find_policy(id)
            .await?
            .ok_or(AccessError::NotFound("policy"))?;
        let mut policy = serde_json::from_str::<Policy>(&row.document).map_err(|e| {
            AccessError::Invalid(PolicyProblem(format!(
                "the stored policy is unreadable: {e}"
            )))
        })?;
        policy.state = state;
        self.save_policy(&policy, actor, now).await
    }

    pub async fn delete_policy(
        &self,
        id: &str,
        actor: Option<&User>,
        now: i64,
    ) -> Result<(), AccessError> {
        if !self
            .store
            .delete_policy(id, actor.map(|u| u.id.as_str()), now)
            .await?
        {
            return Err(AccessError::NotFound("policy"));
        }
        self.policies.forget().await;
        Ok(())
    }

    /// Every saved version of a policy, newest first.
    pub async fn policy_history(&self, id: &str) -> Result<Vec<PolicyVersion>, AuthError> {
        Ok(self.store.policy_history(id).await?)
    }

    /// A policy that would lock everyone out of everything is refused unless it spares at
    /// least one administrator: an enforced block of all users, on every resource, under no
    /// condition.
    async fn refuse_lockout(&self, policy: &Policy) -> Result<(), AccessError> {
        let unconditional = policy.conditions == Default::default();
        let console = policy.targets.account_portal || policy.targets.admin_console;
        if policy.state != PolicyState::On
            || policy.grant != Grant::Block
            || !policy.assignments.all_users
            || !console
            || !unconditional
        {
            return Ok(());
        }
        let admins = self.store.admin_ids().await?;
        let a = &policy.assignments;
        let mut spared = a.exclude_users.iter().any(|u| admins.contains(u));
        for group in &a.exclude_groups {
            if spared {
                break;
            }
            spared = self
                .store
                .group_members(group)
                .await?
                .iter()
                .any(|m| m.is_admin);
        }
        if spared {
            return Ok(());
        }
        Err(AccessError::Invalid(PolicyProblem(
            "this policy would block every account, administrators included, from the admin console: exclude at least one administrator".into(),
        )))
    }

    /// Every named location.
    pub async fn named_locations(&self) -> Result<Vec<NamedLocation>, AuthError> {
        Ok(self.current_policy_set().await?.locations)
    }

    /// The policies and locations as the database holds them now (for the admin's views).
    async fn current_policy_set(&self) -> Result<PolicySet, AuthError> {
        let version = self.store.ca_version().await?;
        self.read_policy_set(version).await
    }

    /// Adds or replaces a named location.
    pub async fn save_location(
        &self,
        location: &NamedLocation,
        now: i64,
    ) -> Result<(), AccessError> {
        location.validate().map_err(AccessError::Invalid)?;
        let document = serde_json::to_string(location).map_err(|e| super::internal(&e))?;
        self.store
            .put_location(&location.id, &location.name, &document, now)
            .await?;
        self.policies.forget().await;
        Ok(())
    }

    /// Deletes a named location that no policy names.
    pub async fn delete_location(&self, id: &str, now: i64) -> Result<(), AccessError> {
        let set = self.current_policy_set().await?;
        if let Some(p) = set.policies.iter().find(|p| {
            p.conditions.locations.as_ref().is_some_and(|l| {
                l.exclude.iter().any(|x| x == id)
                    || matches!(&l.include, crate::conditional_access::LocationScope::Selected(ids) if ids.iter().any(|x| x == id))
            })
        }) {
            return Err(AccessError::Invalid(PolicyProblem(format!(
                "the policy {:?} uses this location; change it first",
                p.name
            ))));
        }
        if !self.store.delete_location(id, now).await? {
            return Err(AccessError::NotFound("location"));
        }
        self.policies.forget().await;
        Ok(())
    }

    /// Every policy and location, as one document.
    pub async fn export_policies(&self) -> Result<PolicyDocument, AuthError> {
        let set = self.current_policy_set().await?;
        Ok(PolicyDocument {
            locations: set.locations,
            policies: self
                .list_policies()
                .await?
                .into_iter()
                .map(|e| e.policy)
                .collect(),
        })
    }

    /// Saves every location and policy of a document (each checked as if saved alone;
    /// nothing is saved when one is refused). Returns how many policies were saved.
    pub async fn import_policies(
        &self,
        doc: &PolicyDocument,
        actor: Option<&User>,
        now: i64,
    ) -> Result<usize, AccessError> {
        let mut locations = self.current_policy_set().await?.locations;
        for l in &doc.locations {
            l.validate().map_err(|p| {
                AccessError::Invalid(PolicyProblem(format!("location {:?}: {p}", l.id)))
            })?;
            locations.retain(|x| x.id != l.id);
            locations.push(l.clone());
        }
        for p in &doc.policies {
            p.validate(&locations).map_err(|e| {
                AccessError::Invalid(PolicyProblem(format!("policy {:?}: {e}", p.id)))
            })?;
            self.refuse_lockout(p).await?;
        }
        for l in &doc.locations {
            self.save_location(l, now).await?;
        }
        for p in &doc.policies {
            self.save_policy(p, actor, now).await?;
        }
        Ok(doc.policies.len())
    }

    /// Every group, with its member count.
    pub async fn groups(&self) -> Result<Vec<GroupRecord>, AuthError> {
        Ok(self.store.list_groups().await?)
    }

    /// Creates a group; its id is a slug of its name.
    /// Renames a group and changes its description; its id, which policies name, stays.
    pub async fn update_group(
        &self,
        id: &str,
        name: &str,
        description: &str,
        now: i64,
    ) -> Result<(), AccessError> {
        let name = group_name(name)?;
        let description: String = description.trim().chars().take(500).collect();
        match self.store.update_group(id, name, &description, now).await {
            Ok(true) => {}
            Ok(false) => return Err(AccessError::NotFound("group")),
            Err(StoreError::Conflict) => return Err(AccessError::Exists),
            Err(e) => return Err(e.into()),
        }
        self.policies.forget().await;
        Ok(())
    }

    pub async fn create_group(
        &self,
        name: &str,
        description: &str,
        now: i64,
    ) -> Result<String, AccessError> {
        let name = group_name(name)?;
        let id = slug(name);
        if !crate::conditional_access::valid_id(&id) {
            return Err(AccessError::Invalid(PolicyProblem(
                "the name needs at least one letter or digit".into(),
            )));
        }
        let description: String = description.trim().chars().take(500).collect();
        match self.store.create_group(&id, name, &description, now).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(AccessError::Exists),
            Err(e) => return Err(e.into()),
        }
        self.policies.forget().await;
        Ok(id)
    }

    pub async fn delete_group(&self, id: &str, now: i64) -> Result<(), AccessError> {
        if !self.store.delete_group(id, now).await? {
            return Err(AccessError::NotFound("group"));
        }
        self.policies.forget().await;
        Ok(())
    }

    /// Adds the account with this email to a group.
    pub async fn add_group_member(
        &self,
        group_id: &str,
        email: &str,
        now: i64,
    ) -> Result<bool, AccessError> {
        let user = self.account_by_email(email).await?;
        match self.store.add_group_member(group_id, &user.id, now).await {
            Ok(added) => Ok(added),
            Err(StoreError::Conflict) => Err(AccessError::NotFound("group")),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_group_member(
        &self,
        group_id: &str,
        email: &str,
        now: i64,
    ) -> Result<bool, AccessError> {
        let user = self.account_by_email(email).await?;
        Ok(self
            .store
            .remove_group_member(group_id, &user.id, now)
            .await?)
    }

    /// The members of a group.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<User>, AuthError> {
        Ok(self.store.group_members(group_id).await?)
    }

    /// The policy with this id, as the console edits it.
    pub async fn find_policy(&self, id: &str) -> Result<Option<PolicyEntry>, AuthError> {
        let Some(row) = self.store.find_policy(id).await? else {
            return Ok(None);
        };
        let policy = serde_json::from_str::<Policy>(&row.document)
            .unwrap_or_else(|_| unreadable(&row.id, &row.name));
        Ok(Some(PolicyEntry {
            policy,
            version: row.version,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        }))
    }

    /// Saves an earlier version of a policy again, as a new version (its state included).
    pub async fn restore_policy(
        &self,
        id: &str,
        version: i64,
        actor: Option<&User>,
        now: i64,
    ) -> Result<i64, AccessError> {
        let history = self.store.policy_history(id).await?;
        let old = history
            .iter()
            .find(|v| v.version == version && !v.document.is_empty())
            .ok_or(AccessError::NotFound("policy version"))?;
        let policy = serde_json::from_str::<Policy>(&old.document).map_err(|e| {
            AccessError::Invalid(PolicyProblem(format!(
                "version {version} cannot be read any more: {e}"
            )))
        })?;
        self.save_policy(&policy, actor, now).await
    }

    /// The account ids of these emails; an unknown email is named in the refusal.
    pub async fn user_ids_by_email(&self, emails: &[String]) -> Result<Vec<String>, AccessError> {
        let mut ids = Vec::new();
        for email in emails {
            match self.account_by_email(email).await {
                Ok(user) => ids.push(user.id),
                Err(AccessError::NotFound(_)) => {
                    return Err(AccessError::Invalid(PolicyProblem(format!(
                        "no account has the email {email}"
                    ))))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ids)
    }

    /// The emails of these account ids (an id whose account is gone stays as it is).
    pub async fn emails_of(&self, ids: &[String]) -> Result<Vec<String>, AuthError> {
        let found = self.store.emails_by_id(ids).await?;
        Ok(ids
            .iter()
            .map(|id| found.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect())
    }

    /// Whether `policy` is assigned to `user` (included and not excluded), whatever its
    /// targets and conditions: the console warns an admin saving a policy that reaches them.
    pub async fn policy_assigned_to(
        &self,
        policy: &Policy,
        user: &User,
    ) -> Result<bool, AuthError> {
        let groups = self.store.groups_of_user(&user.id).await?;
        let a = &policy.assignments;
        Ok(!a.exclude_users.contains(&user.id)
            && !a.exclude_groups.iter().any(|g| groups.contains(g))
            && (a.all_users
                || a.users.contains(&user.id)
                || a.groups.iter().any(|g| groups.contains(g))))
    }

    async fn account_by_email(&self, email: &str) -> Result<User, AccessError> {
        let normalized =
            crate::email::normalize_email(email).map_err(|_| AccessError::NotFound("account"))?;
        self.store
            .find_user_by_email(&normalized)
            .await?
            .ok_or(AccessError::NotFound("account"))
    }
}

/// A policy whose stored document cannot be read: it blocks everyone everywhere, so a damaged
/// policy never opens what it was meant to close.
fn unreadable(id: &str, name: &str) -> Policy {
    Policy {
        id: id.to_string(),
        name: format!("{name} (unreadable)"),
        state: PolicyState::On,
        assignments: crate::conditional_access::Assignments {
            all_users: true,
            ..Default::default()
        },
        targets: crate::conditional_access::Targets {
            all_applications: true,
            account_portal: true,
            ..Default::default()
        },
        conditions: Default::default(),
        grant: Grant::Block,
        session: Default::default(),
    }
}

/// What a logged sign-in proved, read from its method: a second factor or a passkey made it
/// multifactor (a passkey also phishing-resistant); anything else was one factor.
fn proven_by_method(method: &str) -> crate::identity::Strength {
    use crate::identity::Strength;
    match method {
        "passkey" => Strength::parse("hwk mfa"),
        "totp" | "sms" | "recovery_code" => Strength::parse("pwd otp mfa"),
        _ => Strength::parse("pwd"),
    }
}

/// A lower-case slug of a name: letters and digits, other runs as one '-'.
/// A group's name, trimmed, or why it cannot be one.
fn group_name(name: &str) -> Result<&str, AccessError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > crate::conditional_access::MAX_NAME {
        return Err(AccessError::Invalid(PolicyProblem(
            "the name must have 1 to 100 characters".into(),
        )));
    }
    Ok(name)
}

/// An id made from a name: lower-case letters and digits, words joined by `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn group_ids_are_slugs_of_their_names() {
        assert_eq!(slug("Sales Team (EU)"), "sales-team-eu");
        assert_eq!(slug("  Ops  "), "ops");
        assert_eq!(slug("Équipe"), "quipe");
        assert_eq!(slug("!!!"), "");
    }
}
