//! The Conditional Access policy editor: a plain form for every field of a policy, its impact
//! over the sign-in log before it is saved, its history with the changes of each version and
//! restore; export and import of every policy as one document; the terms of use. Every change
//! is in the audit log.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;

use gatehouse_app::admin::{
    AdminPolicyEditorPage, AdminTermsPage, Cell, Choice, HistoryRow, ImpactView, PolicyEditorData,
    PolicyForm, TermsAdminData,
};
use gatehouse_app::pages::format_time;
use gatehouse_core::conditional_access::{
    diff, Assignments, ClientType, Conditions, Control, Grant, LocationCondition, LocationScope,
    PersistentBrowser, Platform, Policy, PolicyState, RiskLevel, SessionControls, SignInFrequency,
    Targets,
};
use gatehouse_core::identity::{slug, AccessError, PolicyDocument};
use gatehouse_core::store::User;

use super::{frame_with_error, not_found, AdminUser};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

/// The form's fields, every value of every name.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Fields(
            url::form_urlencoded::parse(body)
                .into_owned()
                .take(2_000)
                .map(|(k, v)| (k, v.chars().take(20_000).collect()))
                .collect(),
        )
    }

    fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn checked(&self, name: &str) -> bool {
        self.one(name) == "yes"
    }
}

fn form_of_fields(f: &Fields) -> PolicyForm {
    PolicyForm {
        id: f.one("id"),
        name: f.one("name"),
        state: f.one("state"),
        users_scope: f.one("users_scope"),
        users: f.one("users"),
        groups: f.all("groups"),
        exclude_users: f.one("exclude_users"),
        exclude_groups: f.all("exclude_groups"),
        all_applications: f.checked("all_applications"),
        applications: f.all("applications"),
        account_portal: f.checked("account_portal"),
        admin_console: f.checked("admin_console"),
        exclude_applications: f.all("exclude_applications"),
        sign_in_risk: f.all("sign_in_risk"),
        user_risk: f.all("user_risk"),
        client_types: f.all("client_types"),
        platforms: f.all("platforms"),
        exclude_platforms: f.all("exclude_platforms"),
        location_include: f.one("location_include"),
        location_selected: f.all("location_selected"),
        location_exclude: f.all("location_exclude"),
        exclude_trusted: f.checked("exclude_trusted"),
        grant: f.one("grant"),
        controls: f.all("controls"),
        require_all: f.one("require_all") == "all",
        frequency: f.one("frequency"),
        hours: f.one("hours"),
        persistent: f.one("persistent"),
    }
}

fn emails(text: &str) -> Vec<String> {
    text.split(['\n', ',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_all<T: std::str::FromStr>(values: &[String], what: &str) -> Result<Vec<T>, String> {
    values
        .iter()
        .map(|v| v.parse().map_err(|_| format!("{v:?} is not a {what}")))
        .collect()
}

fn client_type(v: &str) -> Result<ClientType, String> {
    match v {
        "browser" => Ok(ClientType::Browser),
        "native" => Ok(ClientType::Native),
        other => Err(format!("{other:?} is not a client type")),
    }
}

/// The policy the form describes; a value no policy can hold is named in the refusal (the
/// policy's own rules are checked when it is saved).
async fn policy_of_form(state: &AppState, f: &PolicyForm) -> Result<Policy, String> {
    let identity = &state.identity;
    let ids = |text: &str| {
        let list = emails(text);
        async move {
            identity
                .user_ids_by_email(&list)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let all_users = f.users_scope != "selected";
    let state_value = PolicyState::parse(&f.state).ok_or("choose a state")?;
    let grant = match f.grant.as_str() {
        "block" => Grant::Block,
        "require" => Grant::Require {
            controls: f
                .controls
                .iter()
                .map(|c| Control::parse(c).ok_or(format!("{c:?} is not a control")))
                .collect::<Result<_, _>>()?,
            require_all: f.require_all,
        },
        _ => return Err("choose whether the policy blocks or grants access".into()),
    };
    let locations = match f.location_include.as_str() {
        "" => None,
        include => Some(LocationCondition {
            include: match include {
                "any" => LocationScope::Any,
                "trusted" => LocationScope::Trusted,
                "selected" => LocationScope::Selected(f.location_selected.clone()),
                other => return Err(format!("{other:?} is not a location choice")),
            },
            exclude: f.location_exclude.clone(),
            exclude_trusted: f.exclude_trusted,
        }),
    };
    let sign_in_frequency = match f.frequency.as_str() {
        "" => None,
        "every-time" => Some(SignInFrequency::EveryTime),
        "hours" => Some(SignInFrequency::Hours {
            hours: f
                .hours
                .parse()
                .map_err(|_| "the sign-in frequency needs a number of hours")?,
        }),
        other => return Err(format!("{other:?} is not a sign-in frequency")),
    };
    let persistent_browser = match f.persistent.as_str() {
        "" => None,
        "always" => Some(PersistentBrowser::Always),
        "never" => Some(PersistentBrowser::Never),
        other => return Err(format!("{other:?} is not a persistence choice")),
    };
    let id = if f.id.is_empty() {
        slug(&f.name)
    } else {
        f.id.clone()
    };
    Ok(Policy {
        id,
        name: f.name.clone(),
        state: state_value,
        assignments: Assignments {
            all_users,
            users: if all_users {
                Vec::new()
            } else {
                ids(&f.users).await?
            },
            groups: if all_users {
                Vec::new()
            } else {
                f.groups.clone()
            },
            exclude_users: ids(&f.exclude_users).await?,
            exclude_groups: f.exclude_groups.clone(),
        },
        targets: Targets {
            all_applications: f.all_applications,
            applications: f.applications.clone(),
            account_portal: f.account_portal,
            admin_console: f.admin_console,
            exclude_applications: f.exclude_applications.clone(),
        },
        conditions: Conditions {
            sign_in_risk: parse_all::<RiskLevel>(&f.sign_in_risk, "risk level")?,
            user_risk: parse_all::<RiskLevel>(&f.user_risk, "risk level")?,
            locations,
            client_types: f
                .client_types
                .iter()
                .map(|c| client_type(c))
                .collect::<Result<_, _>>()?,
            platforms: parse_all::<Platform>(&f.platforms, "platform")?,
            exclude_platforms: parse_all::<Platform>(&f.exclude_platforms, "platform")?,
        },
        grant,
        session: SessionControls {
            sign_in_frequency,
            persistent_browser,
        },
    })
}

/// The form showing a saved policy.
async fn form_of_policy(state: &AppState, p: &Policy) -> Result<PolicyForm, Response> {
    let identity = &state.identity;
    let lines = |ids: &[String]| {
        let ids = ids.to_vec();
        async move { identity.emails_of(&ids).await.map(|e| e.join("\n")) }
    };
    let (users, exclude_users) = match (
        lines(&p.assignments.users).await,
        lines(&p.assignments.exclude_users).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(internal_error_page(Page::new(state).await, &e)),
    };
    let (location_include, location_selected, location_exclude, exclude_trusted) =
        match &p.conditions.locations {
            None => (String::new(), Vec::new(), Vec::new(), false),
            Some(l) => {
                let (include, selected) = match &l.include {
                    LocationScope::Any => ("any", Vec::new()),
                    LocationScope::Trusted => ("trusted", Vec::new()),
                    LocationScope::Selected(ids) => ("selected", ids.clone()),
                };
                (
                    include.to_string(),
                    selected,
                    l.exclude.clone(),
                    l.exclude_trusted,
                )
            }
        };
    let (grant, controls, require_all) = match &p.grant {
        Grant::Block => ("block", Vec::new(), false),
        Grant::Require {
            controls,
            require_all,
        } => (
            "require",
            controls.iter().map(|c| c.as_str().to_string()).collect(),
            *require_all,
        ),
    };
    let (frequency, hours) = match p.session.sign_in_frequency {
        None => ("", String::new()),
        Some(SignInFrequency::EveryTime) => ("every-time", String::new()),
        Some(SignInFrequency::Hours { hours }) => ("hours", hours.to_string()),
    };
    let strs = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
    Ok(PolicyForm {
        id: p.id.clone(),
        name: p.name.clone(),
        state: p.state.as_str().into(),
        users_scope: if p.assignments.all_users {
            "all"
        } else {
            "selected"
        }
        .into(),
        users,
        groups: p.assignments.groups.clone(),
        exclude_users,
        exclude_groups: p.assignments.exclude_groups.clone(),
        all_applications: p.targets.all_applications,
        applications: p.targets.applications.clone(),
        account_portal: p.targets.account_portal,
        admin_console: p.targets.admin_console,
        exclude_applications: p.targets.exclude_applications.clone(),
        sign_in_risk: strs(
            p.conditions
                .sign_in_risk
                .iter()
                .map(|r| r.as_str())
                .collect(),
        ),
        user_risk: strs(p.conditions.user_risk.iter().map(|r| r.as_str()).collect()),
        client_types: strs(
            p.conditions
                .client_types
                .iter()
                .map(|c| match c {
                    ClientType::Browser => "browser",
                    ClientType::Native => "native",
                })
                .collect(),
        ),
        platforms: strs(p.conditions.platforms.iter().map(|x| x.as_str()).collect()),
        exclude_platforms: strs(
            p.conditions
                .exclude_platforms
                .iter()
                .map(|x| x.as_str())
                .collect(),
        ),
        location_include,
        location_selected,
        location_exclude,
        exclude_trusted,
        grant: grant.into(),
        controls,
        require_all,
        frequency: frequency.into(),
        hours,
        persistent: match p.session.persistent_browser {
            None => "",
            Some(PersistentBrowser::Always) => "always",
            Some(PersistentBrowser::Never) => "never",
        }
        .into(),
    })
}

/// What the editor shows besides the form.
#[derive(Default)]
struct Extras {
    notice: Option<&'static str>,
    error: Option<String>,
    warning: Option<String>,
    impact: Option<ImpactView>,
    impact_days: String,
}

async fn editor_page(
    state: &AppState,
    existing: bool,
    form: PolicyForm,
    extras: Extras,
) -> Response {
    let page = Page::new(state).await;
    let identity = &state.identity;
    let (groups, locations, clients) = match (
        identity.groups().await,
        identity.named_locations().await,
        identity.clients().await,
    ) {
        (Ok(g), Ok(l), Ok(c)) => (g, l, c),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return internal_error_page(page, &e),
    };
    let history = if existing {
        match history_rows(state, &form.id).await {
            Ok(h) => h,
            Err(e) => return internal_error_page(page, &e),
        }
    } else {
        Vec::new()
    };
    // The notice is already the sentence to show (not a code for `notice_text`).
    let (mut frame, status) = frame_with_error(state, None, extras.error).await;
    frame.notice = extras.notice.map(str::to_string);
    let data = PolicyEditorData {
        frame,
        existing,
        form,
        groups: groups
            .into_iter()
            .map(|g| Choice {
                label: g.name,
                value: g.id,
            })
            .collect(),
        applications: clients
            .into_iter()
            .map(|c| Choice {
                label: format!("{} ({})", c.name, c.id),
                value: c.id,
            })
            .collect(),
        locations: locations
            .into_iter()
            .map(|l| Choice {
                label: if l.trusted {
                    format!("{} (trusted)", l.name)
                } else {
                    l.name
                },
                value: l.id,
            })
            .collect(),
        warning: extras.warning,
        history,
        impact: extras.impact,
        impact_days: if extras.impact_days.is_empty() {
            "30".into()
        } else {
            extras.impact_days
        },
    };
    page.status(status).render(
        "admin.title",
        move || view! { <AdminPolicyEditorPage data=data/> },
    )
}

/// Every version of a policy, newest first, each with what it changed from the one before.
async fn history_rows(
    state: &AppState,
    id: &str,
) -> Result<Vec<HistoryRow>, gatehouse_core::identity::AuthError> {
    let versions = state.identity.policy_history(id).await?;
    let parsed: Vec<Option<Policy>> = versions
        .iter()
        .map(|v| serde_json::from_str::<Policy>(&v.document).ok())
        .collect();
    let mut who_cache: std::collections::HashMap<String, String> = Default::default();
    let mut rows = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let previous = parsed.get(i + 1).and_then(Option::as_ref);
        let changes = diff(previous, parsed[i].as_ref())
            .into_iter()
            .map(|c| {
                format!(
                    "{}: {} → {}",
                    c.field,
                    c.before.as_deref().unwrap_or("(unset)"),
                    c.after.as_deref().unwrap_or("(unset)")
                )
            })
            .collect();
        let who = match &v.changed_by {
            None => "the command line".to_string(),
            Some(user_id) => match who_cache.get(user_id) {
                Some(email) => email.clone(),
                None => {
                    let email = state
                        .identity
                        .emails_of(std::slice::from_ref(user_id))
                        .await?
                        .pop()
                        .unwrap_or_default();
                    who_cache.insert(user_id.clone(), email.clone());
                    email
                }
            },
        };
        rows.push(HistoryRow {
            version: v.version,
            when: format_time(v.changed_at),
            who,
            changes,
            current: i == 0,
            deleted: v.document.is_empty(),
        });
    }
    Ok(rows)
}

fn new_form() -> PolicyForm {
    PolicyForm {
        state: "report-only".into(),
        users_scope: "all".into(),
        all_applications: true,
        grant: "require".into(),
        controls: vec!["mfa".into()],
        ..PolicyForm::default()
    }
}

pub async fn policy_new(State(state): State<AppState>, _admin: AdminUser) -> Response {
    editor_page(&state, false, new_form(), Extras::default()).await
}

pub async fn policy_edit(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<super::NoticeQuery>,
) -> Response {
    let entry = match state.identity.find_policy(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(Page::new(&state).await, &e),
    };
    let form = match form_of_policy(&state, &entry.policy).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    let notice = match q.notice.as_deref() {
        Some("policy_saved") => {
            Some("The policy was saved. It applies on every instance within a few seconds.")
        }
        Some("policy_restored") => Some("The earlier version was saved as the newest one."),
        _ => None,
    };
    editor_page(
        &state,
        true,
        form,
        Extras {
            notice,
            ..Extras::default()
        },
    )
    .await
}

/// The admin's own reach: a policy that applies to them, blocks or asks something and targets
/// the portal (the console) or everything warns before it is saved.
async fn reaches_admin(state: &AppState, policy: &Policy, admin: &User) -> bool {
    if policy.state == PolicyState::Off {
        return false;
    }
    state
        .identity
        .policy_assigned_to(policy, admin)
        .await
        .unwrap_or(true)
}

pub async fn policy_save(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let form = form_of_fields(&fields);
    let existing = fields.checked("existing");
    let action = fields.one("action");
    let impact_days = fields.one("impact_days");
    let refused = |error: String, form: PolicyForm| {
        let state = state.clone();
        let impact_days = impact_days.clone();
        async move {
            editor_page(
                &state,
                existing,
                form,
                Extras {
                    error: Some(error),
                    impact_days,
                    ..Extras::default()
                },
            )
            .await
        }
    };
    let policy = match policy_of_form(&state, &form).await {
        Ok(p) => p,
        Err(e) => return refused(format!("The policy was not saved: {e}."), form).await,
    };
    let now = state.now();
    if action == "impact" {
        let days = impact_days.parse::<i64>().unwrap_or(0);
        return match state.identity.policy_impact(&policy, days, now).await {
            Ok(r) => {
                let summary = format!(
                    "Over the last {} days, of {} successful sign-ins, this policy would have blocked {} ({} users) and asked {} for more than they proved ({} users).",
                    r.days, r.sign_ins, r.blocked, r.users_blocked, r.challenged, r.users_challenged
                );
                let impact = ImpactView {
                    summary,
                    by_application: r
                        .by_application
                        .iter()
                        .map(|(app, b, c)| {
                            vec![
                                Cell::text(app.clone()),
                                Cell::text(b.to_string()),
                                Cell::text(c.to_string()),
                            ]
                        })
                        .collect(),
                    sample: r
                        .sample
                        .iter()
                        .map(|(row, outcome)| {
                            vec![
                                Cell::link(
                                    format_time(row.occurred_at),
                                    format!("/admin/sign-ins/{}", row.id),
                                ),
                                Cell::text(row.email.clone()),
                                Cell::text(row.application.clone()),
                                Cell::text(row.client_ip.clone()),
                                Cell::text(row.method.clone()),
                                Cell::text(*outcome),
                            ]
                        })
                        .collect(),
                };
                editor_page(
                    &state,
                    existing,
                    form,
                    Extras {
                        impact: Some(impact),
                        impact_days,
                        ..Extras::default()
                    },
                )
                .await
            }
            Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
            Err(e) => refused(format!("The impact could not be computed: {e}."), form).await,
        };
    }
    if !existing {
        match state.identity.find_policy(&policy.id).await {
            Ok(Some(_)) => {
                return refused(
                    format!(
                        "A policy with the id {} already exists: choose another id, or edit that policy.",
                        policy.id
                    ),
                    form,
                )
                .await
            }
            Ok(None) => {}
            Err(e) => return internal_error_page(Page::new(&state).await, &e),
        }
    }
    match state.identity.check_policy(&policy).await {
        Ok(()) => {}
        Err(AccessError::Auth(e)) => return internal_error_page(Page::new(&state).await, &e),
        Err(e) => return refused(format!("The policy was not saved: {e}."), form).await,
    }
    if action != "confirm" && reaches_admin(&state, &policy, &admin).await {
        let mut form = form;
        form.id = policy.id.clone();
        return editor_page(
            &state,
            existing,
            form,
            Extras {
                warning: Some(format!(
                    "This policy applies to you ({}): once saved, your own sign-ins and this console meet it too. Check it, then choose “Save anyway” to save it.",
                    admin.email
                )),
                impact_days,
                ..Extras::default()
            },
        )
        .await;
    }
    match state.identity.save_policy(&policy, Some(&admin), now).await {
        Ok(version) => {
            audited(
                &state,
                &incoming,
                &admin,
                "admin.policy.saved",
                &format!("{} version {version}", policy.id),
                now,
                &format!("/admin/access/policies/{}?notice=policy_saved", policy.id),
            )
            .await
        }
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => refused(format!("The policy was not saved: {e}."), form).await,
    }
}

pub async fn policy_restore(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let version = fields.one("version").parse::<i64>().unwrap_or(0);
    let now = state.now();
    match state
        .identity
        .restore_policy(&id, version, Some(&admin), now)
        .await
    {
        Ok(saved) => {
            audited(
                &state,
                &incoming,
                &admin,
                "admin.policy.restored",
                &format!("{id} version {version} as version {saved}"),
                now,
                &format!("/admin/access/policies/{id}?notice=policy_restored"),
            )
            .await
        }
        Err(AccessError::NotFound(_)) => not_found().await,
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => {
            let entry = match state.identity.find_policy(&id).await {
                Ok(Some(entry)) => entry,
                Ok(None) => return not_found().await,
                Err(e) => return internal_error_page(Page::new(&state).await, &e),
            };
            let form = match form_of_policy(&state, &entry.policy).await {
                Ok(f) => f,
                Err(response) => return response,
            };
            editor_page(
                &state,
                true,
                form,
                Extras {
                    error: Some(format!("Version {version} was not restored: {e}.")),
                    ..Extras::default()
                },
            )
            .await
        }
    }
}

pub async fn policy_delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    let now = state.now();
    match state.identity.delete_policy(&id, Some(&admin), now).await {
        Ok(()) => {
            audited(
                &state,
                &incoming,
                &admin,
                "admin.policy.deleted",
                &id,
                now,
                "/admin/access?notice=policy_deleted",
            )
            .await
        }
        Err(AccessError::NotFound(_)) => not_found().await,
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => {
            super::access::access_page(
                &state,
                Default::default(),
                None,
                Some(format!("The policy was not deleted: {e}.")),
            )
            .await
        }
    }
}

/// Writes the admin's change to the audit log, then sends the browser to `to`.
async fn audited(
    state: &AppState,
    incoming: &Incoming,
    admin: &User,
    action: &str,
    detail: &str,
    now: i64,
    to: &str,
) -> Response {
    let (page, ctx) = begin(state, incoming).await;
    match state
        .identity
        .admin_audit(&ctx, admin, None, action, detail, now)
        .await
    {
        Ok(()) => redirect(to, vec![]),
        Err(e) => internal_error_page(page, &e),
    }
}

/// Every named location and policy as one JSON document, to download.
pub async fn export(State(state): State<AppState>, _admin: AdminUser) -> Response {
    let doc = match state.identity.export_policies().await {
        Ok(d) => d,
        Err(e) => return internal_error_page(Page::new(&state).await, &e),
    };
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let mut response = (StatusCode::OK, json).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"gatehouse-policies.json\""),
    );
    response
}

/// Imports a document like the export's: every location and policy in it is checked first,
/// and nothing is saved when one is refused.
pub async fn import(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let text = fields.one("document");
    let back_with = |error: String| {
        let state = state.clone();
        async move { super::access::access_page(&state, Default::default(), None, Some(error)).await }
    };
    let doc: PolicyDocument = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return back_with(format!(
                "The document was not imported: it is not a policy document (line {}, column {}).",
                e.line(),
                e.column()
            ))
            .await
        }
    };
    let now = state.now();
    match state
        .identity
        .import_policies(&doc, Some(&admin), now)
        .await
    {
        Ok(n) => {
            audited(
                &state,
                &incoming,
                &admin,
                "admin.policies.imported",
                &format!("{n} policies, {} locations", doc.locations.len()),
                now,
                "/admin/access?notice=policies_imported",
            )
            .await
        }
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => back_with(format!("The document was not imported: {e}.")).await,
    }
}

// ---------------------------------------------------------------- terms of use

async fn terms_admin_page(
    state: &AppState,
    notice: Option<&str>,
    error: Option<String>,
    title: String,
    body: String,
) -> Response {
    let page = Page::new(state).await;
    let history = match state.identity.terms_history().await {
        Ok(h) => h,
        Err(e) => return internal_error_page(page, &e),
    };
    let (title, body) = match (title.is_empty() && body.is_empty(), history.first()) {
        (true, Some(current)) => (current.title.clone(), current.body.clone()),
        _ => (title, body),
    };
    let mut versions = Vec::new();
    for t in &history {
        let by = match &t.published_by {
            Some(id) => state
                .identity
                .emails_of(std::slice::from_ref(id))
                .await
                .ok()
                .and_then(|mut e| e.pop())
                .unwrap_or_default(),
            None => "the command line".into(),
        };
        versions.push(vec![
            Cell::text(t.version.to_string()),
            Cell::text(t.title.clone()),
            Cell::text(format_time(t.published_at)),
            Cell::text(by),
        ]);
    }
    let (frame, status) = frame_with_error(state, notice, error).await;
    let data = TermsAdminData {
        frame,
        title,
        body,
        versions,
    };
    page.status(status)
        .render("admin.title", move || view! { <AdminTermsPage data=data/> })
}

pub async fn terms(
    State(state): State<AppState>,
    _admin: AdminUser,
    axum::extract::Query(q): axum::extract::Query<super::NoticeQuery>,
) -> Response {
    terms_admin_page(
        &state,
        q.notice.as_deref(),
        None,
        String::new(),
        String::new(),
    )
    .await
}

pub async fn publish_terms(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let (title, text) = (fields.one("title"), fields.one("body"));
    let (_, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .publish_terms(&ctx, Some(&admin), &title, &text, state.now())
        .await
    {
        Ok(_) => redirect("/admin/terms?notice=terms_published", vec![]),
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => {
            terms_admin_page(
                &state,
                None,
                Some(format!("The terms were not published: {e}.")),
                title,
                text,
            )
            .await
        }
    }
}
