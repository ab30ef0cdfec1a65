//! Conditional Access: the tenant's if-then policies, and their evaluation.
//!
//! A policy says: if this person (assignments) reaches this resource (targets) under these
//! conditions, then grant access only with these controls, or block. The evaluation is a pure
//! function of plain data ([`evaluate`]): the signals of one attempt, the policies and the named
//! locations. It returns the decision and, for every policy, whether it applied and why not.
//! A block in any enforced policy that applies wins; otherwise the requirements of every
//! applying policy must all be met. Report-only policies are evaluated and recorded with what
//! they would have done, and never change the outcome.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::identity::Strength;

/// Whether a policy is enforced, only recorded, or ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyState {
    On,
    ReportOnly,
    Off,
}

impl PolicyState {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyState::On => "on",
            PolicyState::ReportOnly => "report-only",
            PolicyState::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [PolicyState::On, PolicyState::ReportOnly, PolicyState::Off]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// How likely an attempt (sign-in risk) or an account (user risk) is not its owner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    None,
    Low,
    Medium,
    High,
}

impl std::str::FromStr for RiskLevel {
    type Err = PolicyProblem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            RiskLevel::None,
            RiskLevel::Low,
            RiskLevel::Medium,
            RiskLevel::High,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            PolicyProblem(format!(
                "{s:?} is not a risk level (none, low, medium, high)"
            ))
        })
    }
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

/// Who a policy is for. An exclusion beats an inclusion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Assignments {
    /// Every account.
    pub all_users: bool,
    /// Chosen accounts (ids).
    pub users: Vec<String>,
    /// Members of chosen groups (ids).
    pub groups: Vec<String>,
    pub exclude_users: Vec<String>,
    pub exclude_groups: Vec<String>,
}

/// What is being reached: an application (an OIDC client) or the account portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "id")]
pub enum Resource {
    Application(String),
    AccountPortal,
    /// The admin console (reached with a portal session).
    AdminConsole,
}

impl Resource {
    /// The resource of a sign-in for `application` (an OIDC client id, or the portal's name).
    pub fn of_application(application: &str) -> Self {
        match application {
            crate::identity::ACCOUNT_PORTAL => Resource::AccountPortal,
            crate::identity::ADMIN_CONSOLE => Resource::AdminConsole,
            id => Resource::Application(id.to_string()),
        }
    }
}

/// The resources a policy covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Targets {
    /// Every application (OIDC client), not the portal or the console.
    pub all_applications: bool,
    /// Chosen applications (client ids).
    pub applications: Vec<String>,
    /// The account portal (and the console, which is reached with a portal session).
    pub account_portal: bool,
    /// The admin console alone.
    pub admin_console: bool,
    /// Applications left out, even when all are targeted.
    pub exclude_applications: Vec<String>,
}

/// The device platform a user agent names. It is what the browser says, unverified: useful to
/// block, weak to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Android,
    Ios,
    Windows,
    Macos,
    Linux,
    Other,
}

impl std::str::FromStr for Platform {
    type Err = PolicyProblem;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Platform::Android,
            Platform::Ios,
            Platform::Windows,
            Platform::Macos,
            Platform::Linux,
            Platform::Other,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| {
            PolicyProblem(format!(
                "{s:?} is not a platform (android, ios, windows, macos, linux, other)"
            ))
        })
    }
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::Ios => "ios",
            Platform::Windows => "windows",
            Platform::Macos => "macos",
            Platform::Linux => "linux",
            Platform::Other => "other",
        }
    }

    /// The platform of a user agent, read with the Woothee parser.
    pub fn of_user_agent(user_agent: &str) -> Self {
        let Some(parsed) = woothee::parser::Parser::new().parse(user_agent) else {
            return Platform::Other;
        };
        match parsed.os {
            "Android" => Platform::Android,
            "iPhone" | "iPad" | "iPod" | "iOS" => Platform::Ios,
            "Mac OSX" | "Mac OS Classic" => Platform::Macos,
            "Linux" | "ChromeOS" => Platform::Linux,
            os if os.starts_with("Windows") => Platform::Windows,
            _ => Platform::Other,
        }
    }
}

/// How the request reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// A person's browser on our pages.
    Browser,
    /// An application without a browser (a public native client).
    Native,
}

/// Which named locations a policy covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "ids")]
pub enum LocationScope {
    /// Anywhere (the condition then only excludes).
    #[default]
    Any,
    /// Any location marked trusted.
    Trusted,
    /// These named locations.
    Selected(Vec<String>),
}

/// The location condition: where the attempt comes from, by its client address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocationCondition {
    pub include: LocationScope,
    /// Named locations left out (ids), even when included.
    pub exclude: Vec<String>,
    /// Leave out every trusted location.
    pub exclude_trusted: bool,
}

/// The conditions of a policy; each is optional and all that are set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// Sign-in risk levels that match (empty: any).
    pub sign_in_risk: Vec<RiskLevel>,
    /// User risk levels that match (empty: any).
    pub user_risk: Vec<RiskLevel>,
    pub locations: Option<LocationCondition>,
    /// Client types that match (empty: any).
    pub client_types: Vec<ClientType>,
    /// Device platforms that match (empty: any).
    pub platforms: Vec<Platform>,
    /// Device platforms left out.
    pub exclude_platforms: Vec<Platform>,
}

/// An authentication strength, from the weakest; a stronger one satisfies a weaker one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrengthLevel {
    /// Two factors of different kinds.
    Mfa,
    /// Multifactor without a password (a passkey).
    PasswordlessMfa,
    /// A factor bound to our origin that phishing cannot relay (a passkey).
    PhishingResistant,
}

impl StrengthLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            StrengthLevel::Mfa => "mfa",
            StrengthLevel::PasswordlessMfa => "passwordless-mfa",
            StrengthLevel::PhishingResistant => "phishing-resistant",
        }
    }

    /// Whether what a sign-in proved reaches this strength.
    pub fn met_by(self, proven: &Strength) -> bool {
        match self {
            StrengthLevel::Mfa => proven.is_multifactor(),
            StrengthLevel::PasswordlessMfa => proven.is_multifactor() && proven.is_passwordless(),
            StrengthLevel::PhishingResistant => {
                proven.is_multifactor() && proven.is_phishing_resistant()
            }
        }
    }
}

/// A control a grant may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "level")]
pub enum Control {
    /// Multifactor authentication (the same as the strength `mfa`).
    Mfa,
    Strength(StrengthLevel),
    /// Acceptance of the tenant's terms of use, once per version of their text.
    TermsOfUse,
    /// A new password, chosen after the other controls (multifactor) are met; it remediates
    /// the account's user risk.
    PasswordChange,
}

impl Control {
    /// The strength this control asks for; none for the terms of use, which are met by
    /// accepting them, not by a factor.
    pub fn strength(self) -> Option<StrengthLevel> {
        match self {
            Control::Mfa => Some(StrengthLevel::Mfa),
            Control::Strength(level) => Some(level),
            Control::TermsOfUse | Control::PasswordChange => None,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Control::Mfa => "multifactor authentication".into(),
            Control::Strength(level) => format!("the strength {}", level.as_str()),
            Control::TermsOfUse => "acceptance of the terms of use".into(),
            Control::PasswordChange => "a password change".into(),
        }
    }

    /// The control's name in forms and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Mfa => "mfa",
            Control::Strength(level) => level.as_str(),
            Control::TermsOfUse => "terms-of-use",
            Control::PasswordChange => "password-change",
        }
    }

    /// The control named `name` (see [`Control::as_str`]).
    pub fn parse(name: &str) -> Option<Control> {
        Some(match name {
            "mfa" => Control::Mfa,
            "passwordless-mfa" => Control::Strength(StrengthLevel::PasswordlessMfa),
            "phishing-resistant" => Control::Strength(StrengthLevel::PhishingResistant),
            "terms-of-use" => Control::TermsOfUse,
            "password-change" => Control::PasswordChange,
            _ => return None,
        })
    }
}

/// What a policy does when it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Grant {
    Block,
    /// Grant access once the controls are met: all of them, or any one.
    Require {
        controls: Vec<Control>,
        #[serde(default)]
        require_all: bool,
    },
}

/// How often a person must sign in again to reach the targeted resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SignInFrequency {
    /// A sign-in made for this very request (as `prompt=login`).
    EveryTime,
    /// A sign-in within this many hours.
    Hours { hours: u32 },
}

impl SignInFrequency {
    /// The longest allowed, in hours (a year).
    pub const MAX_HOURS: u32 = 8760;

    /// Whether a session authenticated at `auth_time` meets it for a request made at
    /// `requested_at`, at `now` (milliseconds).
    pub fn met(self, auth_time: i64, requested_at: i64, now: i64) -> bool {
        match self {
            SignInFrequency::EveryTime => auth_time >= requested_at,
            SignInFrequency::Hours { hours } => now - auth_time <= i64::from(hours) * 3_600_000,
        }
    }

    /// The stricter of two frequencies.
    pub fn stricter(self, other: Self) -> Self {
        match (self, other) {
            (SignInFrequency::EveryTime, _) | (_, SignInFrequency::EveryTime) => {
                SignInFrequency::EveryTime
            }
            (SignInFrequency::Hours { hours: a }, SignInFrequency::Hours { hours: b }) => {
                SignInFrequency::Hours { hours: a.min(b) }
            }
        }
    }
}

/// Whether the browser keeps the session when it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PersistentBrowser {
    /// The session cookie lasts the session's whole lifetime, across browser restarts.
    Always,
    /// The session cookie ends when the browser closes.
    Never,
}

/// What a policy asks of the session once access is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionControls {
    pub sign_in_frequency: Option<SignInFrequency>,
    /// Unset: as usual (the cookie ends with the browser session).
    pub persistent_browser: Option<PersistentBrowser>,
}

/// A Conditional Access policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: String,
    pub name: String,
    pub state: PolicyState,
    #[serde(default)]
    pub assignments: Assignments,
    #[serde(default)]
    pub targets: Targets,
    #[serde(default)]
    pub conditions: Conditions,
    pub grant: Grant,
    #[serde(default)]
    pub session: SessionControls,
}

/// A named location: address ranges and countries, possibly trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedLocation {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub trusted: bool,
    /// IPv4 and IPv6 ranges in CIDR notation.
    #[serde(default)]
    pub ranges: Vec<IpNet>,
    /// Countries (ISO 3166-1 alpha-2), matched by the GeoIP database's country of the address.
    #[serde(default)]
    pub countries: Vec<String>,
}

impl NamedLocation {
    /// Whether the address is in one of the ranges, or the address's country (when a GeoIP
    /// database knows it) is one of the countries. An IPv4-mapped IPv6 address is its IPv4
    /// address.
    pub fn contains(&self, ip: IpAddr, country: Option<&str>) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|r| r.contains(&ip))
            || country.is_some_and(|c| self.countries.iter().any(|own| own == c))
    }
}

/// A policy or location refused at save time: what is wrong, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyProblem(pub String);

/// The longest name of a policy, group or location.
pub const MAX_NAME: usize = 100;

impl Policy {
    /// Checks what the evaluation relies on: a name, something to apply to, a grant that
    /// means something, and no reference to an unknown location.
    pub fn validate(&self, locations: &[NamedLocation]) -> Result<(), PolicyProblem> {
        let problem = |s: &str| Err(PolicyProblem(s.to_string()));
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_NAME {
            return problem("the name must have 1 to 100 characters");
        }
        if !valid_id(&self.id) {
            return problem("the id must be 1 to 64 letters, digits, '-' or '_'");
        }
        let a = &self.assignments;
        if !a.all_users && a.users.is_empty() && a.groups.is_empty() {
            return problem("the policy applies to nobody: choose all users, users or groups");
        }
        let t = &self.targets;
        if !t.all_applications && t.applications.is_empty() && !t.account_portal && !t.admin_console
        {
            return problem(
                "the policy targets nothing: choose all applications, applications, the account portal or the admin console",
            );
        }
        if let Grant::Require {
            controls,
            require_all,
        } = &self.grant
        {
            if controls.is_empty() && self.session == SessionControls::default() {
                return problem(
                    "a grant must require at least one control, block, or set a session control",
                );
            }
            if controls.contains(&Control::TermsOfUse) && controls.len() > 1 && !require_all {
                return problem(
                    "the terms of use are required together with the other controls: choose require all",
                );
            }
            if controls.contains(&Control::PasswordChange) {
                let with_factor = controls.iter().any(|c| c.strength().is_some());
                if !with_factor || !require_all {
                    return problem(
                        "a password change is required together with multifactor authentication: add MFA and choose require all",
                    );
                }
                let risky = &self.conditions.user_risk;
                if risky.is_empty() || risky.contains(&RiskLevel::None) {
                    return problem(
                        "a password change is asked only of risky accounts: choose user risk levels (low, medium or high) as a condition",
                    );
                }
            }
        }
        if let Some(SignInFrequency::Hours { hours }) = self.session.sign_in_frequency {
            if hours == 0 || hours > SignInFrequency::MAX_HOURS {
                return problem("the sign-in frequency must be 1 to 8760 hours, or every time");
            }
        }
        if let Some(l) = &self.conditions.locations {
            let known: HashSet<&str> = locations.iter().map(|l| l.id.as_str()).collect();
            let named = match &l.include {
                LocationScope::Selected(ids) => ids.iter().chain(l.exclude.iter()).collect(),
                _ => l.exclude.iter().collect::<Vec<_>>(),
            };
            if let Some(unknown) = named.into_iter().find(|id| !known.contains(id.as_str())) {
                return Err(PolicyProblem(format!(
                    "the location {unknown:?} does not exist"
                )));
            }
            if matches!(&l.include, LocationScope::Selected(ids) if ids.is_empty()) {
                return problem("choose at least one location, or any location");
            }
        }
        Ok(())
    }
}

impl NamedLocation {
    pub fn validate(&self) -> Result<(), PolicyProblem> {
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_NAME {
            return Err(PolicyProblem(
                "the name must have 1 to 100 characters".into(),
            ));
        }
        if !valid_id(&self.id) {
            return Err(PolicyProblem(
                "the id must be 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        if self.ranges.is_empty() && self.countries.is_empty() {
            return Err(PolicyProblem(
                "a location needs at least one address range or country".into(),
            ));
        }
        if let Some(bad) = self
            .countries
            .iter()
            .find(|c| !crate::geo::valid_country(c))
        {
            return Err(PolicyProblem(format!(
                "{bad:?} is not a country code: use two capital letters (ISO 3166-1 alpha-2, e.g. FR)"
            )));
        }
        Ok(())
    }
}

/// Ids of policies, groups and locations: short slugs, safe in URLs and logs.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Everything the evaluation knows of one attempt, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSignals {
    pub user_id: String,
    /// The groups the account is a member of (ids).
    pub groups: Vec<String>,
    pub resource: Resource,
    /// The client address (none when unknown: no location matches it).
    pub client_ip: Option<IpAddr>,
    /// The address's country from the GeoIP database (none without one: no country matches).
    pub country: Option<String>,
    pub client_type: ClientType,
    /// The device platform the user agent names.
    pub platform: Platform,
    pub sign_in_risk: RiskLevel,
    pub user_risk: RiskLevel,
}

/// What one policy did with an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyResult {
    pub id: String,
    pub name: String,
    pub state: PolicyState,
    /// Whether every assignment, target and condition matched.
    pub applied: bool,
    /// Why it applied, or the first part that did not match.
    pub reason: String,
    /// What it asks for when it applies: `block`, or the controls.
    pub grant: Option<Grant>,
}

/// The outcome of every enforced policy together (the default: no policy, nothing asked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessDecision {
    /// The enforced policy that blocks, if any (block wins over every grant).
    pub blocked_by: Option<String>,
    /// The grants of every enforced policy that applies; each must be met.
    pub required: Vec<Requirement>,
    /// The strictest sign-in frequency of the enforced policies that apply.
    pub sign_in_frequency: Option<SignInFrequency>,
    /// Whether the session cookie outlives the browser: `Never` when any enforced policy that
    /// applies says so, `Always` when one says so and none says never.
    pub persistent_browser: Option<PersistentBrowser>,
    /// An enforced policy that applies requires the terms of use to be accepted.
    pub terms_of_use: bool,
    /// An enforced policy that applies requires a new password (the account is at risk).
    pub password_change: bool,
    /// Every policy that is not off, in order, with its result.
    pub results: Vec<PolicyResult>,
}

/// One applying policy's grant that the attempt must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub policy: String,
    pub controls: Vec<Control>,
    pub require_all: bool,
}

impl Requirement {
    /// Whether what the attempt proved meets this grant's strengths (the terms of use are
    /// accepted apart, see [`AccessDecision::terms_of_use`]).
    pub fn met_by(&self, proven: &Strength) -> bool {
        let mut levels = self.controls.iter().filter_map(|c| c.strength()).peekable();
        if levels.peek().is_none() {
            return true;
        }
        if self.require_all {
            levels.all(|l| l.met_by(proven))
        } else {
            levels.any(|l| l.met_by(proven))
        }
    }

    /// The weakest strength that meets this grant: the strongest control when all are
    /// required, the weakest when any one is enough.
    pub fn strength(&self) -> StrengthLevel {
        let levels = self.controls.iter().filter_map(|c| c.strength());
        let level = if self.require_all {
            levels.max()
        } else {
            levels.min()
        };
        level.unwrap_or(StrengthLevel::Mfa)
    }
}

impl AccessDecision {
    /// No policy asks anything.
    pub fn allows_anything(&self) -> bool {
        self.blocked_by.is_none()
            && self.required.is_empty()
            && !self.terms_of_use
            && !self.password_change
    }

    /// The grants that what the attempt proved does not meet yet.
    pub fn unmet(&self, proven: &Strength) -> Vec<&Requirement> {
        self.required.iter().filter(|r| !r.met_by(proven)).collect()
    }

    /// The strength that meets every grant at once (the strongest of their strengths).
    pub fn required_strength(&self) -> Option<StrengthLevel> {
        self.required.iter().map(Requirement::strength).max()
    }

    /// The results as one JSON document for the sign-in log.
    pub fn log_json(&self) -> String {
        serde_json::to_string(&self.results).unwrap_or_default()
    }
}

/// Evaluates every policy against one attempt. Pure: the same inputs give the same decision.
pub fn evaluate(
    signals: &AccessSignals,
    policies: &[Policy],
    locations: &[NamedLocation],
) -> AccessDecision {
    let mut decision = AccessDecision::default();
    for policy in policies.iter().filter(|p| p.state != PolicyState::Off) {
        let verdict = applies(policy, signals, locations);
        let applied = verdict.is_ok();
        decision.results.push(PolicyResult {
            id: policy.id.clone(),
            name: policy.name.clone(),
            state: policy.state,
            applied,
            reason: verdict.unwrap_or_else(|why| why),
            grant: applied.then(|| policy.grant.clone()),
        });
        if !applied || policy.state != PolicyState::On {
            continue;
        }
        if let Some(f) = policy.session.sign_in_frequency {
            decision.sign_in_frequency = Some(match decision.sign_in_frequency {
                Some(held) => held.stricter(f),
                None => f,
            });
        }
        if let Some(p) = policy.session.persistent_browser {
            decision.persistent_browser = match (decision.persistent_browser, p) {
                (Some(PersistentBrowser::Never), _) | (_, PersistentBrowser::Never) => {
                    Some(PersistentBrowser::Never)
                }
                _ => Some(PersistentBrowser::Always),
            };
        }
        match &policy.grant {
            Grant::Block => {
                decision.blocked_by.get_or_insert_with(|| policy.id.clone());
            }
            // Access granted with session controls only.
            Grant::Require { controls, .. } if controls.is_empty() => {}
            Grant::Require {
                controls,
                require_all,
            } => {
                decision.terms_of_use |= controls.contains(&Control::TermsOfUse);
                decision.password_change |= controls.contains(&Control::PasswordChange);
                let strengths: Vec<Control> = controls
                    .iter()
                    .copied()
                    .filter(|c| c.strength().is_some())
                    .collect();
                if !strengths.is_empty() {
                    decision.required.push(Requirement {
                        policy: policy.id.clone(),
                        controls: strengths,
                        require_all: *require_all,
                    });
                }
            }
        }
    }
    decision
}

/// `Ok(why it applies)` or `Err(the first part that does not match)`.
fn applies(
    policy: &Policy,
    s: &AccessSignals,
    locations: &[NamedLocation],
) -> Result<String, String> {
    let a = &policy.assignments;
    fn in_group<'g>(groups: &'g [String], member_of: &[String]) -> Option<&'g String> {
        groups.iter().find(|g| member_of.contains(g))
    }
    if a.exclude_users.contains(&s.user_id) {
        return Err("the user is excluded".into());
    }
    if let Some(g) = in_group(&a.exclude_groups, &s.groups) {
        return Err(format!("the user is in the excluded group {g}"));
    }
    let who = if a.all_users {
        "all users".to_string()
    } else if a.users.contains(&s.user_id) {
        "the user is assigned".to_string()
    } else if let Some(g) = in_group(&a.groups, &s.groups) {
        format!("the user is in the group {g}")
    } else {
        return Err("the user is not assigned".into());
    };
    let t = &policy.targets;
    let what = match &s.resource {
        Resource::Application(id) if t.exclude_applications.contains(id) => {
            return Err(format!("the application {id} is excluded"))
        }
        Resource::Application(id) if t.applications.contains(id) => format!("the application {id}"),
        Resource::Application(_) if t.all_applications => "all applications".to_string(),
        Resource::AccountPortal if t.account_portal => "the account portal".to_string(),
        Resource::AdminConsole if t.admin_console || t.account_portal => {
            "the admin console".to_string()
        }
        _ => return Err("the resource is not targeted".into()),
    };
    let c = &policy.conditions;
    if !c.sign_in_risk.is_empty() && !c.sign_in_risk.contains(&s.sign_in_risk) {
        return Err(format!("the sign-in risk is {}", s.sign_in_risk.as_str()));
    }
    if !c.user_risk.is_empty() && !c.user_risk.contains(&s.user_risk) {
        return Err(format!("the user risk is {}", s.user_risk.as_str()));
    }
    if !c.client_types.is_empty() && !c.client_types.contains(&s.client_type) {
        return Err("the client type does not match".into());
    }
    if c.exclude_platforms.contains(&s.platform) {
        return Err(format!("the platform {} is excluded", s.platform.as_str()));
    }
    if !c.platforms.is_empty() && !c.platforms.contains(&s.platform) {
        return Err(format!("the platform is {}", s.platform.as_str()));
    }
    let mut place = String::new();
    if let Some(l) = &c.locations {
        place = location_matches(l, s.client_ip, s.country.as_deref(), locations)?;
    }
    let mut why = format!("{who}, {what}");
    if !place.is_empty() {
        why.push_str(", ");
        why.push_str(&place);
    }
    Ok(why)
}

fn location_matches(
    l: &LocationCondition,
    ip: Option<IpAddr>,
    country: Option<&str>,
    locations: &[NamedLocation],
) -> Result<String, String> {
    let here: Vec<&NamedLocation> = match ip {
        Some(ip) => locations
            .iter()
            .filter(|n| n.contains(ip, country))
            .collect(),
        None => Vec::new(),
    };
    if let Some(n) = here.iter().find(|n| l.exclude.contains(&n.id)) {
        return Err(format!(
            "the address is in the excluded location {}",
            n.name
        ));
    }
    if l.exclude_trusted {
        if let Some(n) = here.iter().find(|n| n.trusted) {
            return Err(format!("the address is in the trusted location {}", n.name));
        }
    }
    match &l.include {
        LocationScope::Any => Ok(String::new()),
        LocationScope::Trusted => match here.iter().find(|n| n.trusted) {
            Some(n) => Ok(format!("from the trusted location {}", n.name)),
            None => Err("the address is in no trusted location".into()),
        },
        LocationScope::Selected(ids) => match here.iter().find(|n| ids.contains(&n.id)) {
            Some(n) => Ok(format!("from {}", n.name)),
            None => Err("the address is in none of the locations".into()),
        },
    }
}

/// One field that differs between two versions of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The field's path, such as `conditions.platforms`.
    pub field: String,
    /// Its value before and after, as compact JSON (none: absent).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What changed from one policy document to the next, field by field (lists compare whole).
/// Either side may be missing (created, deleted).
pub fn diff(before: Option<&Policy>, after: Option<&Policy>) -> Vec<Change> {
    fn leaves(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, v, out);
                }
            }
            v => {
                out.insert(prefix.to_string(), v.to_string());
            }
        }
    }
    let flat = |p: Option<&Policy>| {
        let mut out = std::collections::BTreeMap::new();
        if let Some(v) = p.and_then(|p| serde_json::to_value(p).ok()) {
            leaves("", &v, &mut out);
        }
        out.retain(|_, v| v != "null" && v != "[]" && v != "false");
        out
    };
    let (a, b) = (flat(before), flat(after));
    let fields: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    fields
        .into_iter()
        .filter(|f| a.get(*f) != b.get(*f))
        .map(|f| Change {
            field: f.clone(),
            before: a.get(f).cloned(),
            after: b.get(f).cloned(),
        })
        .collect()
}

/// The policies and locations in force, with the version they were read at.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub version: i64,
    pub policies: Vec<Policy>,
    pub locations: Vec<NamedLocation>,
    /// Identity Protection's address lists (they change with the same counter).
    pub risk_lists: crate::risk::RiskLists,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals() -> AccessSignals {
        AccessSignals {
            user_id: "u1".into(),
            groups: vec!["staff".into()],
            resource: Resource::Application("shop".into()),
            client_ip: Some("203.0.113.9".parse().unwrap()),
            country: None,
            client_type: ClientType::Browser,
            platform: Platform::Linux,
            sign_in_risk: RiskLevel::None,
            user_risk: RiskLevel::None,
        }
    }

    fn policy(id: &str, grant: Grant) -> Policy {
        Policy {
            id: id.into(),
            name: format!("Policy {id}"),
            state: PolicyState::On,
            assignments: Assignments {
                all_users: true,
                ..Assignments::default()
            },
            targets: Targets {
                all_applications: true,
                ..Targets::default()
            },
            conditions: Conditions::default(),
            grant,
            session: SessionControls::default(),
        }
    }

    fn mfa() -> Grant {
        Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        }
    }

    fn office() -> NamedLocation {
        NamedLocation {
            id: "office".into(),
            name: "Office".into(),
            trusted: true,
            ranges: vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            countries: vec![],
        }
    }

    #[test]
    fn terms_of_use_are_required_apart_from_strengths() {
        let terms_only = policy(
            "terms",
            Grant::Require {
                controls: vec![Control::TermsOfUse],
                require_all: true,
            },
        );
        let d = evaluate(&signals(), std::slice::from_ref(&terms_only), &[]);
        assert!(d.terms_of_use);
        assert!(d.required.is_empty(), "no strength is asked");
        assert!(!d.allows_anything());
        let both = policy(
            "both",
            Grant::Require {
                controls: vec![Control::Mfa, Control::TermsOfUse],
                require_all: true,
            },
        );
        let d = evaluate(&signals(), std::slice::from_ref(&both), &[]);
        assert!(d.terms_of_use);
        assert_eq!(d.required[0].controls, vec![Control::Mfa]);
        // "Any one of" cannot mix the terms with a factor.
        let any = policy(
            "any",
            Grant::Require {
                controls: vec![Control::Mfa, Control::TermsOfUse],
                require_all: false,
            },
        );
        assert!(any.validate(&[]).unwrap_err().0.contains("require all"));
        // Report-only terms are recorded, never asked.
        let report = Policy {
            state: PolicyState::ReportOnly,
            ..terms_only
        };
        assert!(!evaluate(&signals(), &[report], &[]).terms_of_use);
        for c in [
            Control::Mfa,
            Control::TermsOfUse,
            Control::Strength(StrengthLevel::PhishingResistant),
        ] {
            assert_eq!(Control::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn the_console_is_targeted_alone_or_with_the_portal() {
        let at_console = AccessSignals {
            resource: Resource::AdminConsole,
            ..signals()
        };
        let with_targets = |t: Targets| Policy {
            targets: t,
            ..policy("c", Grant::Block)
        };
        let console_only = with_targets(Targets {
            admin_console: true,
            ..Targets::default()
        });
        let portal = with_targets(Targets {
            account_portal: true,
            ..Targets::default()
        });
        let apps = with_targets(Targets {
            all_applications: true,
            ..Targets::default()
        });
        assert!(
            evaluate(&at_console, std::slice::from_ref(&console_only), &[])
                .blocked_by
                .is_some()
        );
        assert!(evaluate(&at_console, &[portal], &[]).blocked_by.is_some());
        assert!(evaluate(&at_console, &[apps], &[]).blocked_by.is_none());
        let at_portal = AccessSignals {
            resource: Resource::AccountPortal,
            ..signals()
        };
        assert!(
            evaluate(&at_portal, std::slice::from_ref(&console_only), &[])
                .blocked_by
                .is_none()
        );
        assert!(console_only.validate(&[]).is_ok());
        assert_eq!(
            Resource::of_application(crate::identity::ADMIN_CONSOLE),
            Resource::AdminConsole
        );
    }

    #[test]
    fn a_password_change_goes_with_mfa_and_user_risk() {
        let mut p = policy(
            "pw",
            Grant::Require {
                controls: vec![Control::Mfa, Control::PasswordChange],
                require_all: true,
            },
        );
        assert!(p.validate(&[]).unwrap_err().0.contains("user risk"));
        p.conditions.user_risk = vec![RiskLevel::None, RiskLevel::High];
        assert!(p.validate(&[]).unwrap_err().0.contains("user risk"));
        p.conditions.user_risk = vec![RiskLevel::High];
        assert!(p.validate(&[]).is_ok());
        let alone = Policy {
            grant: Grant::Require {
                controls: vec![Control::PasswordChange],
                require_all: true,
            },
            ..p.clone()
        };
        assert!(alone.validate(&[]).unwrap_err().0.contains("multifactor"));
        let any = Policy {
            grant: Grant::Require {
                controls: vec![Control::Mfa, Control::PasswordChange],
                require_all: false,
            },
            ..p.clone()
        };
        assert!(any.validate(&[]).unwrap_err().0.contains("require all"));
        let risky = AccessSignals {
            user_risk: RiskLevel::High,
            ..signals()
        };
        let d = evaluate(&risky, std::slice::from_ref(&p), &[]);
        assert!(d.password_change);
        assert_eq!(d.required[0].controls, vec![Control::Mfa]);
        assert!(
            !evaluate(&signals(), &[p], &[]).password_change,
            "not at risk"
        );
        assert_eq!(
            Control::parse("password-change"),
            Some(Control::PasswordChange)
        );
    }

    #[test]
    fn never_persistent_wins_over_always() {
        let with = |id: &str, p: PersistentBrowser| Policy {
            session: SessionControls {
                persistent_browser: Some(p),
                ..SessionControls::default()
            },
            ..policy(
                id,
                Grant::Require {
                    controls: vec![],
                    require_all: false,
                },
            )
        };
        let always = with("a", PersistentBrowser::Always);
        let never = with("n", PersistentBrowser::Never);
        assert!(
            always.validate(&[]).is_ok(),
            "a session control alone is a grant"
        );
        let d = evaluate(&signals(), std::slice::from_ref(&always), &[]);
        assert_eq!(d.persistent_browser, Some(PersistentBrowser::Always));
        assert!(d.allows_anything());
        let d = evaluate(&signals(), &[always, never], &[]);
        assert_eq!(d.persistent_browser, Some(PersistentBrowser::Never));
        assert_eq!(evaluate(&signals(), &[], &[]).persistent_browser, None);
    }

    #[test]
    fn a_diff_names_each_changed_field() {
        let before = policy("a", mfa());
        let mut after = before.clone();
        after.name = "Renamed".into();
        after.conditions.platforms = vec![Platform::Ios];
        after.state = PolicyState::ReportOnly;
        let changes = diff(Some(&before), Some(&after));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["conditions.platforms", "name", "state"]);
        let platforms = &changes[0];
        assert_eq!(platforms.before, None);
        assert_eq!(platforms.after.as_deref(), Some("[\"ios\"]"));
        assert!(diff(Some(&before), Some(&before)).is_empty());
        let created = diff(None, Some(&before));
        assert!(created
            .iter()
            .any(|c| c.field == "name" && c.before.is_none()));
        let deleted = diff(Some(&before), None);
        assert!(deleted.iter().all(|c| c.after.is_none()));
    }

    #[test]
    fn countries_match_by_the_geoip_country_and_never_without_one() {
        let mut p = policy("a", Grant::Block);
        p.conditions.locations = Some(LocationCondition {
            include: LocationScope::Selected(vec!["nz".into()]),
            ..LocationCondition::default()
        });
        let nz = NamedLocation {
            id: "nz".into(),
            name: "New Zealand".into(),
            trusted: false,
            ranges: vec![],
            countries: vec!["NZ".into()],
        };
        let from = |country: Option<&str>| AccessSignals {
            country: country.map(str::to_string),
            ..signals()
        };
        let d = evaluate(
            &from(Some("NZ")),
            std::slice::from_ref(&p),
            std::slice::from_ref(&nz),
        );
        assert_eq!(d.blocked_by.as_deref(), Some("a"));
        assert!(d.results[0].reason.contains("from New Zealand"));
        assert_eq!(
            evaluate(
                &from(Some("AU")),
                std::slice::from_ref(&p),
                std::slice::from_ref(&nz)
            )
            .blocked_by,
            None
        );
        // Without a GeoIP database no address has a country: the condition never matches.
        let none = evaluate(
            &from(None),
            std::slice::from_ref(&p),
            std::slice::from_ref(&nz),
        );
        assert_eq!(none.blocked_by, None);
        assert!(none.results[0].reason.contains("none of the locations"));
        // Excluding a country leaves it out of "anywhere".
        p.conditions.locations = Some(LocationCondition {
            include: LocationScope::Any,
            exclude: vec!["nz".into()],
            ..LocationCondition::default()
        });
        assert_eq!(
            evaluate(
                &from(Some("NZ")),
                std::slice::from_ref(&p),
                std::slice::from_ref(&nz)
            )
            .blocked_by,
            None
        );
        assert!(evaluate(&from(Some("FR")), &[p], std::slice::from_ref(&nz))
            .blocked_by
            .is_some());
        // Codes are checked when saved.
        let lower = NamedLocation {
            countries: vec!["nz".into()],
            ..nz.clone()
        };
        assert!(lower
            .validate()
            .unwrap_err()
            .0
            .contains("not a country code"));
        let empty = NamedLocation {
            countries: vec![],
            ..nz
        };
        assert!(empty.validate().unwrap_err().0.contains("range or country"));
    }

    #[test]
    fn block_wins_over_every_grant() {
        let d = evaluate(
            &signals(),
            &[policy("a", mfa()), policy("b", Grant::Block)],
            &[],
        );
        assert_eq!(d.blocked_by.as_deref(), Some("b"));
        assert_eq!(d.required.len(), 1, "the grant is still recorded");
        assert!(d.results.iter().all(|r| r.applied));
    }

    #[test]
    fn an_exclusion_beats_an_inclusion() {
        let mut p = policy("a", Grant::Block);
        p.assignments.users = vec!["u1".into()];
        p.assignments.exclude_users = vec!["u1".into()];
        let d = evaluate(&signals(), &[p.clone()], &[]);
        assert_eq!(d.blocked_by, None);
        assert_eq!(d.results[0].reason, "the user is excluded");
        p.assignments.exclude_users.clear();
        p.assignments.exclude_groups = vec!["staff".into()];
        let d = evaluate(&signals(), &[p], &[]);
        assert_eq!(d.blocked_by, None);
        assert!(d.results[0].reason.contains("excluded group staff"));
    }

    #[test]
    fn report_only_and_off_never_change_the_outcome() {
        let mut p = policy("a", Grant::Block);
        p.state = PolicyState::ReportOnly;
        let d = evaluate(&signals(), &[p.clone()], &[]);
        assert!(d.allows_anything());
        assert!(d.results[0].applied, "what it would have done is recorded");
        assert_eq!(d.results[0].grant, Some(Grant::Block));
        p.state = PolicyState::Off;
        let d = evaluate(&signals(), &[p], &[]);
        assert!(d.allows_anything());
        assert!(d.results.is_empty(), "an off policy is not evaluated");
    }

    #[test]
    fn strengths_are_ordered_and_a_stronger_one_satisfies_a_weaker_one() {
        let password = Strength::parse("pwd");
        let app = Strength::parse("pwd otp mfa");
        let passkey = Strength::parse("hwk mfa");
        assert!(StrengthLevel::Mfa < StrengthLevel::PasswordlessMfa);
        assert!(StrengthLevel::PasswordlessMfa < StrengthLevel::PhishingResistant);
        for level in [
            StrengthLevel::Mfa,
            StrengthLevel::PasswordlessMfa,
            StrengthLevel::PhishingResistant,
        ] {
            assert!(!level.met_by(&password), "{level:?}");
            assert!(level.met_by(&passkey), "{level:?}");
        }
        assert!(StrengthLevel::Mfa.met_by(&app));
        assert!(!StrengthLevel::PhishingResistant.met_by(&app));
        let any = Requirement {
            policy: "a".into(),
            controls: vec![
                Control::Mfa,
                Control::Strength(StrengthLevel::PhishingResistant),
            ],
            require_all: false,
        };
        assert!(any.met_by(&app));
        assert_eq!(any.strength(), StrengthLevel::Mfa);
        let all = Requirement {
            require_all: true,
            ..any
        };
        assert!(!all.met_by(&app));
        assert!(all.met_by(&passkey));
        assert_eq!(all.strength(), StrengthLevel::PhishingResistant);
    }

    #[test]
    fn targets_pick_the_resource() {
        let mut p = policy("a", Grant::Block);
        p.targets = Targets {
            applications: vec!["shop".into()],
            ..Targets::default()
        };
        assert!(evaluate(&signals(), &[p.clone()], &[]).blocked_by.is_some());
        let portal = AccessSignals {
            resource: Resource::AccountPortal,
            ..signals()
        };
        let d = evaluate(&portal, &[p.clone()], &[]);
        assert_eq!(d.blocked_by, None);
        assert_eq!(d.results[0].reason, "the resource is not targeted");
        p.targets.account_portal = true;
        assert!(evaluate(&portal, &[p.clone()], &[]).blocked_by.is_some());
        let mut all = policy("b", Grant::Block);
        all.targets.exclude_applications = vec!["shop".into()];
        assert_eq!(evaluate(&signals(), &[all.clone()], &[]).blocked_by, None);
        let other = AccessSignals {
            resource: Resource::Application("blog".into()),
            ..signals()
        };
        assert!(evaluate(&other, &[all.clone()], &[]).blocked_by.is_some());
        assert_eq!(
            evaluate(&portal, &[all], &[]).blocked_by,
            None,
            "all applications is not the portal"
        );
    }

    #[test]
    fn each_condition_alone_and_together() {
        let mut p = policy("a", Grant::Block);
        p.conditions.sign_in_risk = vec![RiskLevel::Medium, RiskLevel::High];
        assert_eq!(evaluate(&signals(), &[p.clone()], &[]).blocked_by, None);
        let risky = AccessSignals {
            sign_in_risk: RiskLevel::High,
            ..signals()
        };
        assert!(evaluate(&risky, &[p.clone()], &[]).blocked_by.is_some());
        p.conditions.user_risk = vec![RiskLevel::High];
        let d = evaluate(&risky, &[p.clone()], &[]);
        assert_eq!(d.blocked_by, None, "every set condition must match");
        assert_eq!(d.results[0].reason, "the user risk is none");
        let both = AccessSignals {
            user_risk: RiskLevel::High,
            ..risky.clone()
        };
        assert!(evaluate(&both, &[p.clone()], &[]).blocked_by.is_some());
        p.conditions.client_types = vec![ClientType::Native];
        assert_eq!(evaluate(&both, &[p.clone()], &[]).blocked_by, None);
        let native = AccessSignals {
            client_type: ClientType::Native,
            ..both
        };
        assert!(evaluate(&native, &[p], &[]).blocked_by.is_some());
    }

    #[test]
    fn platforms_come_from_the_user_agent_parser() {
        let cases = [
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36", Platform::Android),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", Platform::Ios),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36", Platform::Windows),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", Platform::Macos),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", Platform::Linux),
            ("curl/8.5.0", Platform::Other),
            ("", Platform::Other),
        ];
        for (ua, platform) in cases {
            assert_eq!(Platform::of_user_agent(ua), platform, "{ua}");
        }
    }

    #[test]
    fn platform_conditions_include_and_exclude() {
        let mut p = policy("a", Grant::Block);
        p.conditions.platforms = vec![Platform::Android, Platform::Ios];
        assert_eq!(evaluate(&signals(), &[p.clone()], &[]).blocked_by, None);
        let phone = AccessSignals {
            platform: Platform::Ios,
            ..signals()
        };
        assert!(evaluate(&phone, &[p.clone()], &[]).blocked_by.is_some());
        p.conditions.platforms.clear();
        p.conditions.exclude_platforms = vec![Platform::Ios];
        let d = evaluate(&phone, &[p.clone()], &[]);
        assert_eq!(d.blocked_by, None);
        assert_eq!(d.results[0].reason, "the platform ios is excluded");
        assert!(evaluate(&signals(), &[p], &[]).blocked_by.is_some());
    }

    #[test]
    fn locations_match_ipv4_ipv6_and_mapped_addresses() {
        let mut p = policy("a", Grant::Block);
        p.conditions.locations = Some(LocationCondition {
            include: LocationScope::Selected(vec!["office".into()]),
            ..LocationCondition::default()
        });
        let at = |ip: &str| AccessSignals {
            client_ip: Some(ip.parse().unwrap()),
            ..signals()
        };
        let locations = [office()];
        for inside in ["203.0.113.200", "2001:db8::1", "::ffff:203.0.113.7"] {
            let d = evaluate(&at(inside), &[p.clone()], &locations);
            assert!(d.blocked_by.is_some(), "{inside}");
            assert!(d.results[0].reason.contains("from Office"), "{inside}");
        }
        for outside in ["198.51.100.1", "2001:db9::1", "::ffff:198.51.100.1"] {
            assert_eq!(
                evaluate(&at(outside), &[p.clone()], &locations).blocked_by,
                None,
                "{outside}"
            );
        }
        let unknown = AccessSignals {
            client_ip: None,
            ..signals()
        };
        assert_eq!(
            evaluate(&unknown, &[p.clone()], &locations).blocked_by,
            None
        );
        // Everywhere except the trusted office.
        p.conditions.locations = Some(LocationCondition {
            include: LocationScope::Any,
            exclude_trusted: true,
            ..LocationCondition::default()
        });
        assert_eq!(
            evaluate(&at("203.0.113.5"), &[p.clone()], &locations).blocked_by,
            None
        );
        assert!(evaluate(&at("198.51.100.1"), &[p.clone()], &locations)
            .blocked_by
            .is_some());
        p.conditions.locations = Some(LocationCondition {
            include: LocationScope::Trusted,
            ..LocationCondition::default()
        });
        assert!(evaluate(&at("203.0.113.5"), &[p], &locations)
            .blocked_by
            .is_some());
    }

    #[test]
    fn the_strictest_sign_in_frequency_of_the_enforced_policies_holds() {
        let mut eight = policy("a", mfa());
        eight.session.sign_in_frequency = Some(SignInFrequency::Hours { hours: 8 });
        let mut two = policy("b", mfa());
        two.session.sign_in_frequency = Some(SignInFrequency::Hours { hours: 2 });
        let d = evaluate(&signals(), &[eight.clone(), two.clone()], &[]);
        assert_eq!(
            d.sign_in_frequency,
            Some(SignInFrequency::Hours { hours: 2 })
        );
        two.state = PolicyState::ReportOnly;
        let d = evaluate(&signals(), &[eight.clone(), two], &[]);
        assert_eq!(
            d.sign_in_frequency,
            Some(SignInFrequency::Hours { hours: 8 })
        );
        let mut every = policy("c", mfa());
        every.session.sign_in_frequency = Some(SignInFrequency::EveryTime);
        let d = evaluate(&signals(), &[eight, every], &[]);
        assert_eq!(d.sign_in_frequency, Some(SignInFrequency::EveryTime));
        let hour = 3_600_000;
        let f = SignInFrequency::Hours { hours: 8 };
        assert!(f.met(0, 10, 8 * hour));
        assert!(!f.met(0, 10, 8 * hour + 1));
        assert!(SignInFrequency::EveryTime.met(10, 10, 11));
        assert!(!SignInFrequency::EveryTime.met(9, 10, 11));
        let mut never = policy("d", mfa());
        never.session.sign_in_frequency = Some(SignInFrequency::Hours { hours: 0 });
        assert!(never.validate(&[]).is_err());
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let ok = policy("a", mfa());
        assert_eq!(ok.validate(&[]), Ok(()));
        let mut nobody = ok.clone();
        nobody.assignments.all_users = false;
        assert!(nobody.validate(&[]).unwrap_err().0.contains("nobody"));
        let mut nothing = ok.clone();
        nothing.targets = Targets::default();
        assert!(nothing
            .validate(&[])
            .unwrap_err()
            .0
            .contains("targets nothing"));
        let mut empty = ok.clone();
        empty.grant = Grant::Require {
            controls: vec![],
            require_all: false,
        };
        assert!(empty.validate(&[]).is_err());
        let mut elsewhere = ok.clone();
        elsewhere.conditions.locations = Some(LocationCondition {
            include: LocationScope::Selected(vec!["mars".into()]),
            ..LocationCondition::default()
        });
        assert!(elsewhere
            .validate(&[office()])
            .unwrap_err()
            .0
            .contains("mars"));
        let mut bad_id = ok;
        bad_id.id = "a b".into();
        assert!(bad_id.validate(&[]).is_err());
    }

    #[test]
    fn policies_read_back_from_their_json() {
        let mut p = policy("a", mfa());
        p.conditions.locations = Some(LocationCondition {
            include: LocationScope::Selected(vec!["office".into()]),
            exclude: vec![],
            exclude_trusted: false,
        });
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        let typo = json.replace("\"assignments\"", "\"asignments\"");
        assert!(
            serde_json::from_str::<Policy>(&typo).is_err(),
            "unknown fields are refused"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn state() -> impl Strategy<Value = PolicyState> {
            prop_oneof![
                Just(PolicyState::On),
                Just(PolicyState::ReportOnly),
                Just(PolicyState::Off)
            ]
        }

        fn risk() -> impl Strategy<Value = RiskLevel> {
            prop_oneof![
                Just(RiskLevel::None),
                Just(RiskLevel::Low),
                Just(RiskLevel::Medium),
                Just(RiskLevel::High)
            ]
        }

        fn any_policy() -> impl Strategy<Value = Policy> {
            (
                state(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec(risk(), 0..3),
                any::<bool>(),
            )
                .prop_map(|(state, block, exclude, portal, risks, all)| {
                    let mut p = policy(
                        "p",
                        if block {
                            Grant::Block
                        } else {
                            Grant::Require {
                                controls: vec![Control::Mfa],
                                require_all: all,
                            }
                        },
                    );
                    p.state = state;
                    p.targets.account_portal = portal;
                    p.conditions.sign_in_risk = risks;
                    if exclude {
                        p.assignments.exclude_groups = vec!["staff".into()];
                    }
                    p
                })
        }

        proptest! {
            #[test]
            fn report_only_policies_never_change_the_decision(
                policies in proptest::collection::vec(any_policy(), 0..6),
                risk in risk(),
            ) {
                let s = AccessSignals { sign_in_risk: risk, ..signals() };
                let enforced: Vec<Policy> =
                    policies.iter().filter(|p| p.state == PolicyState::On).cloned().collect();
                let with = evaluate(&s, &policies, &[]);
                let without = evaluate(&s, &enforced, &[]);
                prop_assert_eq!(with.blocked_by, without.blocked_by);
                prop_assert_eq!(with.required, without.required);
            }

            #[test]
            fn a_block_that_applies_always_wins(
                policies in proptest::collection::vec(any_policy(), 0..6),
                risk in risk(),
            ) {
                let s = AccessSignals { sign_in_risk: risk, ..signals() };
                let d = evaluate(&s, &policies, &[]);
                let blocking = d.results.iter().any(|r| {
                    r.applied && r.state == PolicyState::On && r.grant == Some(Grant::Block)
                });
                prop_assert_eq!(d.blocked_by.is_some(), blocking);
            }

            #[test]
            fn an_excluded_group_is_never_touched(
                policies in proptest::collection::vec(any_policy(), 0..6),
            ) {
                let excluded: Vec<Policy> = policies
                    .into_iter()
                    .map(|mut p| { p.assignments.exclude_groups = vec!["staff".into()]; p })
                    .collect();
                let d = evaluate(&signals(), &excluded, &[]);
                prop_assert!(d.allows_anything());
                prop_assert!(d.results.iter().all(|r| !r.applied));
            }
        }
    }
}
