//! Users: the searchable list, one account's page and the actions on it.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{AdminUserPage, AdminUsersPage, Cell, UserData, UsersData};
use gatehouse_app::pages::{describe_user_agent, format_time};
use gatehouse_core::identity::admin::{AccountAction, AdminError};
use gatehouse_core::identity::SecondFactorMethod;

use super::{
    frame, not_found, page_number, paging, query_string, trimmed, AdminUser, NoticeQuery, PAGE_SIZE,
};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

pub async fn users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<UsersQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let query = trimmed(&q.q);
    let number = page_number(q.page);
    let (found, total) = match state
        .identity
        .console_users(&query, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = found
        .into_iter()
        .map(|u| {
            let mut status = Vec::new();
            if u.is_admin {
                status.push("admin");
            }
            status.push(if u.disabled { "disabled" } else { "active" });
            vec![
                Cell::link(u.email.clone(), format!("/admin/users/{}", u.id)),
                Cell::text(u.display_name),
                Cell::text(format_time(u.created_at)),
                Cell::text(status.join(", ")),
            ]
        })
        .collect();
    let base = format!("/admin/users?{}", query_string(&[("q", &query)]));
    let data = UsersData {
        frame: frame(&state, q.notice.as_deref()).await,
        query,
        rows,
        paging: paging(&base, number, total),
    };
    page.render("admin.title", move || view! { <AdminUsersPage data=data/> })
}

pub async fn user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let overview = match state.identity.user_overview(&id, state.now()).await {
        Ok(Some(o)) => o,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e),
    };
    let u = &overview.user;
    let mut frame = frame(&state, q.notice.as_deref()).await;
    frame.error = q.error.as_deref().map(|e| match e {
        "own_account" => "You cannot disable or delete your own account.".to_string(),
        _ => "The change could not be made.".to_string(),
    });
    let data = UserData {
        frame,
        id: u.id.clone(),
        email: u.email.clone(),
        profile: vec![
            ("Email", u.email.clone()),
            ("Name", u.display_name.clone()),
            ("User ID (sub)", u.id.clone()),
            ("Created", format_time(u.created_at)),
            (
                "Status",
                if u.disabled { "disabled" } else { "active" }.to_string(),
            ),
            ("Admin", if u.is_admin { "yes" } else { "no" }.to_string()),
            (
                "Password",
                if u.password_hash.is_some() {
                    "set"
                } else {
                    "none"
                }
                .to_string(),
            ),
        ],
        disabled: u.disabled,
        own_account: u.id == admin.id,
        user_risk: overview.user_risk.as_str().to_string(),
        detections: overview
            .detections
            .iter()
            .map(|d| {
                let kind = gatehouse_core::risk::DetectionKind::parse(&d.kind)
                    .map(|k| k.label().to_string())
                    .unwrap_or_else(|| d.kind.clone());
                vec![
                    Cell::text(format_time(d.detected_at)),
                    Cell::text(kind),
                    Cell::text(d.level.clone()),
                    Cell::text(d.state.clone()),
                    Cell::text(d.summary.clone()),
                ]
            })
            .collect(),
        methods: overview
            .methods
            .iter()
            .map(|m| {
                let (kind, name, added) = match m {
                    SecondFactorMethod::Passkey(p) => ("Passkey", p.name.clone(), p.added_at),
                    SecondFactorMethod::AuthenticatorApp { added_at, .. } => {
                        ("Authenticator app", String::new(), *added_at)
                    }
                    SecondFactorMethod::Phone {
                        number, added_at, ..
                    } => ("Phone (SMS)", number.clone(), *added_at),
                };
                vec![
                    Cell::text(kind),
                    Cell::text(name),
                    Cell::text(format_time(added)),
                ]
            })
            .collect(),
        linked: overview
            .linked
            .iter()
            .map(|l| {
                vec![
                    Cell::text(l.provider_name.clone()),
                    Cell::text(l.email.clone().unwrap_or_default()),
                    Cell::text(format_time(l.linked_at)),
                ]
            })
            .collect(),
        sessions: overview
            .sessions
            .iter()
            .map(|s| {
                vec![
                    Cell::text(describe_user_agent(&s.user_agent)),
                    Cell::text(s.client_ip.clone()),
                    Cell::text(format_time(s.created_at)),
                    Cell::text(format_time(s.last_seen_at)),
                    Cell::text(s.amr.clone()),
                ]
            })
            .collect(),
        applications: overview
            .applications
            .iter()
            .map(|a| {
                vec![
                    Cell::link(
                        a.client.name.clone(),
                        format!("/admin/apps/{}", a.client.id),
                    ),
                    Cell::text(a.scope.join(" ")),
                    Cell::text(format_time(a.since)),
                ]
            })
            .collect(),
        sign_ins: overview
            .recent_sign_ins
            .iter()
            .map(sign_in_row_short)
            .collect(),
    };
    page.render("admin.title", move || view! { <AdminUserPage data=data/> })
}

fn sign_in_row_short(e: &gatehouse_core::store::SignInLogEntry) -> Vec<Cell> {
    vec![
        Cell::link(
            format_time(e.occurred_at),
            format!("/admin/sign-ins/{}", e.id),
        ),
        Cell::text(e.application.clone()),
        Cell::text(e.method.clone()),
        Cell::text(e.result.clone()),
        Cell::text(e.client_ip.clone()),
    ]
}

pub async fn user_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(parsed) = AccountAction::parse(&action) else {
        return not_found().await;
    };
    if parsed == AccountAction::Delete
        && !url::form_urlencoded::parse(&body).any(|(k, v)| k == "confirm" && v == "yes")
    {
        return redirect(&format!("/admin/users/{id}?error=confirm"), vec![]);
    }
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .admin_account_action(&ctx, &admin, &id, parsed, state.now())
        .await
    {
        Ok(()) if parsed == AccountAction::Delete => redirect("/admin/users?notice=delete", vec![]),
        Ok(()) => redirect(&format!("/admin/users/{id}?notice={action}"), vec![]),
        Err(AdminError::OwnAccount) => {
            redirect(&format!("/admin/users/{id}?error=own_account"), vec![])
        }
        Err(AdminError::NotFound) => not_found().await,
        Err(AdminError::Auth(e)) => internal_error_page(page, &e),
        Err(e) => internal_error_page(
            page,
            &gatehouse_core::identity::AuthError::Internal(e.to_string()),
        ),
    }
}
