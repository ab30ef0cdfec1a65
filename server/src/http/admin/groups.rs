//! Groups of accounts for Conditional Access: create, list, members, delete. Every change is
//! in the audit log.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use leptos::prelude::*;

use gatehouse_app::admin::{AdminGroupPage, AdminGroupsPage, Cell, GroupData, GroupsData};
use gatehouse_core::identity::AccessError;

use super::{frame_with_error, not_found, AdminUser, NoticeQuery};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

fn field(body: &[u8], name: &str) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().chars().take(320).collect())
        .unwrap_or_default()
}

async fn groups_page(
    state: &AppState,
    notice: Option<&str>,
    error: Option<String>,
    typed: (String, String),
) -> Response {
    let page = Page::new(state).await;
    let groups = match state.identity.groups().await {
        Ok(g) => g,
        Err(e) => return internal_error_page(page, &e),
    };
    let (f, status) = frame_with_error(state, notice, error).await;
    let data = GroupsData {
        frame: f,
        rows: groups
            .into_iter()
            .map(|g| {
                vec![
                    Cell::link(g.name, format!("/admin/groups/{}", g.id)),
                    Cell::text(g.id),
                    Cell::text(g.members.to_string()),
                    Cell::text(g.description),
                ]
            })
            .collect(),
        name: typed.0,
        description: typed.1,
    };
    page.status(status).render(
        "admin.title",
        move || view! { <AdminGroupsPage data=data/> },
    )
}

pub async fn groups(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    groups_page(&state, q.notice.as_deref(), None, Default::default()).await
}

pub async fn create_group(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let (name, description) = (field(&body, "name"), field(&body, "description"));
    let now = state.now();
    match state.identity.create_group(&name, &description, now).await {
        Ok(id) => {
            let (page, ctx) = begin(&state, &incoming).await;
            if let Err(e) = state
                .identity
                .admin_audit(&ctx, &admin, None, "admin.group.created", &name, now)
                .await
            {
                return internal_error_page(page, &e);
            }
            redirect(&format!("/admin/groups/{id}?notice=group_created"), vec![])
        }
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => {
            groups_page(
                &state,
                None,
                Some(format!("The group was not created: {e}.")),
                (name, description),
            )
            .await
        }
    }
}

async fn group_page(
    state: &AppState,
    id: &str,
    notice: Option<&str>,
    error: Option<String>,
    email: String,
) -> Response {
    let page = Page::new(state).await;
    let (groups, members) = match (
        state.identity.groups().await,
        state.identity.group_members(id).await,
    ) {
        (Ok(g), Ok(m)) => (g, m),
        (Err(e), _) | (_, Err(e)) => return internal_error_page(page, &e),
    };
    let Some(group) = groups.into_iter().find(|g| g.id == id) else {
        return not_found().await;
    };
    let (f, status) = frame_with_error(state, notice, error).await;
    let data = GroupData {
        frame: f,
        id: group.id,
        name: group.name,
        description: group.description,
        members: members.into_iter().map(|u| u.email).collect(),
        email,
    };
    page.status(status)
        .render("admin.title", move || view! { <AdminGroupPage data=data/> })
}

pub async fn group(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    group_page(&state, &id, q.notice.as_deref(), None, String::new()).await
}

pub async fn group_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let now = state.now();
    let email = field(&body, "email");
    let identity = &state.identity;
    let (done, audit, notice) = match field(&body, "action").as_str() {
        "add-member" => (
            identity.add_group_member(&id, &email, now).await.map(drop),
            "admin.group.member_added",
            "member_added",
        ),
        "remove-member" => (
            identity
                .remove_group_member(&id, &email, now)
                .await
                .map(drop),
            "admin.group.member_removed",
            "member_removed",
        ),
        "delete" => (
            identity.delete_group(&id, now).await,
            "admin.group.deleted",
            "group_deleted",
        ),
        "edit" => (
            identity
                .update_group(
                    &id,
                    &field(&body, "name"),
                    &field(&body, "description"),
                    now,
                )
                .await,
            "admin.group.edited",
            "group_edited",
        ),
        _ => return not_found().await,
    };
    match done {
        Ok(()) => {
            let (page, ctx) = begin(&state, &incoming).await;
            let detail = if email.is_empty() {
                id.clone()
            } else {
                format!("{id}: {email}")
            };
            if let Err(e) = identity
                .admin_audit(&ctx, &admin, None, audit, &detail, now)
                .await
            {
                return internal_error_page(page, &e);
            }
            if notice == "group_deleted" {
                redirect("/admin/groups?notice=group_deleted", vec![])
            } else {
                redirect(&format!("/admin/groups/{id}?notice={notice}"), vec![])
            }
        }
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(AccessError::NotFound("group")) => not_found().await,
        Err(e) => group_page(&state, &id, None, Some(format!("Not done: {e}.")), email).await,
    }
}
