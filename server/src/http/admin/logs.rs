//! The logs: sign-in attempts (filtered, and one in detail), the audit log and the development outbox.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{
    AdminAuditPage, AdminDetailPage, AdminOutboxPage, AdminSignInsPage, AuditData, AuditFilterForm,
    Cell, DetailData, OutboxData, SignInFilterForm, SignInsData,
};
use gatehouse_app::pages::{describe_user_agent, format_time};
use gatehouse_core::identity::admin::{AuditPage, AuditQuery as AuditSearch};
use gatehouse_core::store::SignInFilter;

use super::risk::kind_label;
use super::{
    day_ms, frame, not_found, page_number, paging, query_string, trimmed, AdminUser, AppNames,
    PAGE_SIZE,
};
use gatehouse_app::admin::Choice;
use gatehouse_core::identity::Method;

/// A method's name, with its logged value on hover.
pub(super) fn method_cell(method: &str) -> Cell {
    match Method::ALL.iter().find(|m| m.as_str() == method) {
        Some(m) => Cell::text(m.label()).titled(method),
        None => Cell::text(method),
    }
}

/// A select's choices: any (the empty value), then each value with its label.
pub(super) fn choices_of(any: &str, values: &[(&str, &str)]) -> Vec<Choice> {
    std::iter::once(("", any))
        .chain(values.iter().copied())
        .map(|(value, label)| Choice {
            value: value.into(),
            label: label.into(),
        })
        .collect()
}
use crate::http::toolkit::{internal_error_page, Page};

use crate::AppState;

#[derive(Deserialize)]
pub struct SignInsQuery {
    email: Option<String>,
    application: Option<String>,
    result: Option<String>,
    method: Option<String>,
    ip: Option<String>,
    from: Option<String>,
    to: Option<String>,
    user: Option<String>,
    /// An exact start (milliseconds), as the overview's counts link with.
    since: Option<i64>,
    page: Option<i64>,
}

/// The first cells of a sign-in row: its time (opening the entry), its user (opening the
/// account, when known) and its application.
pub(super) fn sign_in_cells(
    e: &gatehouse_core::store::SignInLogEntry,
    apps: &AppNames,
) -> [Cell; 3] {
    [
        Cell::link(
            format_time(e.occurred_at),
            format!("/admin/sign-ins/{}", e.id),
        ),
        match &e.user_id {
            Some(id) => Cell::link(e.email.clone(), format!("/admin/users/{id}")),
            None => Cell::text(e.email.clone()),
        },
        apps.cell(&e.application),
    ]
}

pub async fn sign_ins(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<SignInsQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let form = SignInFilterForm {
        email: trimmed(&q.email),
        application: trimmed(&q.application),
        result: trimmed(&q.result),
        method: trimmed(&q.method),
        ip: trimmed(&q.ip),
        from: trimmed(&q.from),
        to: trimmed(&q.to),
    };
    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
    let filter = SignInFilter {
        email: some(&form.email),
        user_id: q.user.clone().filter(|u| !u.is_empty()),
        application: some(&form.application),
        result: some(&form.result),
        method: some(&form.method),
        client_ip: some(&form.ip),
        from: q.since.or_else(|| day_ms(&form.from, false)),
        to: day_ms(&form.to, true),
        ..Default::default()
    };
    let number = page_number(q.page);
    let since = q.since.map(|t| t.to_string()).unwrap_or_default();
    let (entries, total) = match state
        .identity
        .console_sign_ins(&filter, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e),
    };
    let apps = match AppNames::load(&state).await {
        Ok(a) => a,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = entries
        .iter()
        .map(|e| {
            let mut row = sign_in_cells(e, &apps).to_vec();
            row.extend([
                method_cell(&e.method),
                Cell::text(e.result.clone()),
                Cell::text(e.failure_reason.clone().unwrap_or_default()),
                Cell::text(e.client_ip.clone()),
            ]);
            row
        })
        .collect();
    let base = format!(
        "/admin/sign-ins?{}",
        query_string(&[
            ("email", &form.email),
            ("application", &form.application),
            ("result", &form.result),
            ("method", &form.method),
            ("ip", &form.ip),
            ("from", &form.from),
            ("to", &form.to),
            ("since", &since),
        ])
    );
    let days = state.identity.config().sign_in_log_ms / (24 * 60 * 60 * 1000);
    let data = SignInsData {
        frame: frame(&state, None).await,
        retention: format!(
            "Sign-in attempts are kept for {days} days (GATEHOUSE_SIGN_IN_LOG_DAYS), then removed."
        ),
        filter: form,
        applications: apps.choices(),
        results: choices_of(
            "Any result",
            &[
                ("success", "Success"),
                ("failure", "Failure"),
                ("interrupted", "Interrupted (a further step was asked)"),
                ("blocked", "Blocked"),
            ],
        ),
        methods: choices_of("Any method", &Method::ALL.map(|m| (m.as_str(), m.label()))),
        rows,
        paging: paging(&base, number, total),
    };
    page.render(
        "admin.title",
        move || view! { <AdminSignInsPage data=data/> },
    )
}

pub async fn sign_in(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state).await;
    let e = match state.identity.console_sign_in(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e),
    };
    let policies = conditional_access_rows(e.policies.as_deref());
    let detections = match state.identity.detections_of_sign_in(&e.id).await {
        Ok(d) => d,
        Err(e) => return internal_error_page(page, &e),
    };
    let place = match (&e.city, &e.country) {
        (Some(city), Some(country)) => format!("{city}, {country}"),
        (None, Some(country)) => country.clone(),
        _ => "unknown".into(),
    };
    let risk = vec![
        (
            "Sign-in risk",
            Cell::text(
                e.risk_level
                    .clone()
                    .unwrap_or_else(|| "not assessed".into()),
            ),
        ),
        ("Place", Cell::text(place)),
        (
            "Network",
            Cell::text(
                e.asn
                    .map(|a| format!("AS{a}"))
                    .unwrap_or_else(|| "unknown".into()),
            ),
        ),
    ]
    .into_iter()
    .chain(detections.iter().map(|d| {
        (
            "Risk detection",
            Cell::link(
                format!("{} ({}): {}", kind_label(&d.kind), d.level, d.summary),
                format!("/admin/risk/detections/{}", d.id),
            ),
        )
    }));
    let data = DetailData {
        frame: frame(&state, None).await,
        title: format!("Sign-in of {}", e.email),
        current: "sign-ins",
        fields: vec![
            ("Time", Cell::text(format_time(e.occurred_at))),
            (
                "User",
                match &e.user_id {
                    Some(u) => Cell::link(e.email.clone(), format!("/admin/users/{u}")),
                    None => Cell::text(format!("{} (no account)", e.email)),
                },
            ),
            (
                "Application",
                match AppNames::load(&state).await {
                    Ok(apps) => {
                        let named = apps.cell(&e.application);
                        Cell::text(format!("{} ({})", named.text, e.application))
                    }
                    Err(_) => Cell::text(e.application.clone()),
                },
            ),
            ("Method", method_cell(&e.method)),
            ("Result", Cell::text(e.result.clone())),
            (
                "Failure reason",
                Cell::text(e.failure_reason.clone().unwrap_or_else(|| "none".into())),
            ),
            ("IP address", Cell::text(e.client_ip.clone())),
            ("Device", Cell::text(describe_user_agent(&e.user_agent))),
            ("User agent", Cell::text(e.user_agent.clone())),
            (
                "Session",
                Cell::text(e.session_id.clone().unwrap_or_else(|| "none".into())),
            ),
        ]
        .into_iter()
        .chain(risk)
        .chain(policies)
        .collect(),
    };
    page.render(
        "admin.title",
        move || view! { <AdminDetailPage data=data/> },
    )
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    subject: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<i64>,
}

pub async fn audit(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<AuditQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let form = AuditFilterForm {
        actor: trimmed(&q.actor),
        subject: trimmed(&q.subject),
        action: trimmed(&q.action),
        from: trimmed(&q.from),
        to: trimmed(&q.to),
    };
    let query = AuditSearch {
        actor_email: form.actor.clone(),
        subject_email: form.subject.clone(),
        action: (!form.action.is_empty()).then(|| form.action.clone()),
        from: day_ms(&form.from, false),
        to: day_ms(&form.to, true),
    };
    let number = page_number(q.page);
    let AuditPage {
        entries,
        total,
        emails,
    } = match state
        .identity
        .console_audit(&query, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e),
    };
    let person = |id: &Option<String>| match id {
        Some(id) => Cell::link(
            emails.get(id).cloned().unwrap_or_default(),
            format!("/admin/users/{id}"),
        ),
        None => Cell::text("system"),
    };
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                Cell::text(format_time(e.occurred_at)),
                person(&e.actor_user_id),
                person(&e.subject_user_id),
                Cell::text(e.action.clone()),
                Cell::text(e.detail.clone()),
                Cell::text(e.client_ip.clone()),
            ]
        })
        .collect();
    let base = format!(
        "/admin/audit?{}",
        query_string(&[
            ("actor", &form.actor),
            ("subject", &form.subject),
            ("action", &form.action),
            ("from", &form.from),
            ("to", &form.to),
        ])
    );
    let data = AuditData {
        frame: frame(&state, None).await,
        filter: form,
        rows,
        paging: paging(&base, number, total),
    };
    page.render("admin.title", move || view! { <AdminAuditPage data=data/> })
}

pub async fn outbox(State(state): State<AppState>, _admin: AdminUser) -> Response {
    if !state.identity.uses_development_outbox() {
        return not_found().await;
    }
    let page = Page::new(&state).await;
    let messages = match state.identity.console_messages(100).await {
        Ok(m) => m,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = messages
        .into_iter()
        .map(|m| {
            vec![
                Cell::text(format_time(m.created_at)),
                Cell::text(m.channel),
                Cell::text(m.recipient),
                Cell::text(m.subject),
                Cell::text(m.body),
            ]
        })
        .collect();
    let data = OutboxData {
        frame: frame(&state, None).await,
        rows,
    };
    page.render(
        "admin.title",
        move || view! { <AdminOutboxPage data=data/> },
    )
}

/// The Conditional Access section of a sign-in: one row a policy evaluated, with its state,
/// whether it applied and why, and what it asks for.
fn conditional_access_rows(logged: Option<&str>) -> Vec<(&'static str, Cell)> {
    use gatehouse_core::conditional_access::{Grant, PolicyResult};
    let results: Vec<PolicyResult> = match logged.map(serde_json::from_str) {
        Some(Ok(r)) => r,
        Some(Err(_)) => return vec![("Conditional Access", Cell::text("unreadable record"))],
        None => return vec![("Conditional Access", Cell::text("not evaluated"))],
    };
    if results.is_empty() {
        return vec![("Conditional Access", Cell::text("no policy in force"))];
    }
    results
        .into_iter()
        .map(|r| {
            let grant = match &r.grant {
                Some(Grant::Block) => "; blocks".to_string(),
                Some(Grant::Require {
                    controls,
                    require_all,
                }) => {
                    let named: Vec<String> = controls.iter().map(|c| c.describe()).collect();
                    let join = if *require_all { " and " } else { " or " };
                    format!("; requires {}", named.join(join))
                }
                None => String::new(),
            };
            let verdict = if r.applied { "applied" } else { "not applied" };
            (
                "Conditional Access",
                Cell::text(format!(
                    "{} ({}): {verdict}, {}{grant}",
                    r.name,
                    r.state.as_str(),
                    r.reason
                )),
            )
        })
        .collect()
}
