//! Applications: registering, editing, rotating the secret of and deleting OpenID clients.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use leptos::prelude::*;

use gatehouse_app::admin::{AdminAppPage, AdminAppsPage, AppData, AppForm, AppsData, Cell};
use gatehouse_core::identity::oidc::{Client, ClientInput, GrantType};

use super::{admin_error_text, frame, not_found, refusal, AdminUser, NoticeQuery, PostedForm};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The application form from a posted body: (the values to show again, the input).
fn app_form(body: &[u8]) -> (AppForm, ClientInput) {
    let posted = PostedForm::parse(body);
    let get = |name: &str| posted.get(name, 4000);
    let form = AppForm {
        name: get("name"),
        logo_url: get("logo_url"),
        confidential: get("type") != "public",
        redirect_uris: get("redirect_uris"),
        post_logout_redirect_uris: get("post_logout_redirect_uris"),
        grant_types: posted.all("grant", 4000, 10),
        allowed_origins: get("allowed_origins"),
        third_party: get("third_party") == "yes",
        id_token_alg: get("id_token_alg"),
        backchannel_logout_uri: get("backchannel_logout_uri"),
        api_scopes: posted.all("api_scope", 4000, 10),
    };
    let input = ClientInput {
        name: form.name.clone(),
        logo_url: Some(form.logo_url.clone()),
        confidential: form.confidential,
        redirect_uris: lines(&form.redirect_uris),
        post_logout_redirect_uris: lines(&form.post_logout_redirect_uris),
        grant_types: form.grant_types.clone(),
        allowed_origins: lines(&form.allowed_origins),
        first_party: !form.third_party,
        id_token_alg: Some(form.id_token_alg.clone()),
        backchannel_logout_uri: Some(form.backchannel_logout_uri.clone()),
        api_scopes: form.api_scopes.clone(),
    };
    (form, input)
}

fn form_of(c: &Client) -> AppForm {
    AppForm {
        name: c.name.clone(),
        logo_url: c.logo_url.clone().unwrap_or_default(),
        confidential: c.confidential,
        redirect_uris: c.redirect_uris.join("\n"),
        post_logout_redirect_uris: c.post_logout_redirect_uris.join("\n"),
        grant_types: c
            .grant_types
            .iter()
            .map(|g| g.as_str().to_string())
            .collect(),
        allowed_origins: c.allowed_origins.join("\n"),
        third_party: !c.first_party,
        id_token_alg: c.id_token_alg.as_str().to_string(),
        backchannel_logout_uri: c.backchannel_logout_uri.clone().unwrap_or_default(),
        api_scopes: c.api_scopes.clone(),
    }
}

async fn apps_page(
    state: &AppState,
    page: Page,
    mut data: AppsData,
    status: StatusCode,
) -> Response {
    let clients = match state.identity.clients().await {
        Ok(c) => c,
        Err(e) => return internal_error_page(page, &e),
    };
    data.rows = clients
        .iter()
        .map(|c| {
            vec![
                Cell::link(c.name.clone(), format!("/admin/apps/{}", c.id)),
                Cell::text(c.id.clone()),
                Cell::text(if c.confidential {
                    "confidential"
                } else {
                    "public"
                }),
                Cell::text(if c.first_party {
                    "first party"
                } else {
                    "third party"
                }),
                Cell::text(c.redirect_uris.join(" ")),
            ]
        })
        .collect();
    page.status(status)
        .render("admin.title", move || view! { <AdminAppsPage data=data/> })
}

pub async fn apps(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let data = AppsData {
        frame: frame(&state, q.notice.as_deref()).await,
        rows: Vec::new(),
        form: AppForm {
            confidential: true,
            grant_types: vec![
                GrantType::AuthorizationCode.as_str().into(),
                GrantType::RefreshToken.as_str().into(),
            ],
            id_token_alg: "ES256".into(),
            ..AppForm::default()
        },
    };
    apps_page(&state, page, data, StatusCode::OK).await
}

fn app_page(page: Page, data: AppData, status: StatusCode) -> Response {
    page.status(status)
        .render("admin.title", move || view! { <AdminAppPage data=data/> })
}

pub async fn register_app(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let (form, input) = app_form(&body);
    match state
        .identity
        .admin_register_client(&ctx, &admin, &input, state.now())
        .await
    {
        Ok(registered) => {
            let c = registered.client;
            let data = AppData {
                frame: frame(&state, Some("registered")).await,
                id: c.id.clone(),
                name: c.name.clone(),
                confidential: c.confidential,
                secret: registered.secret.map(|s| s.expose().to_string()),
                form: form_of(&c),
            };
            app_page(page, data, StatusCode::CREATED)
        }
        Err(e) => {
            let mut f = frame(&state, None).await;
            f.error = Some(admin_error_text(&e));
            let data = AppsData {
                frame: f,
                rows: Vec::new(),
                form,
            };
            apps_page(&state, page, data, StatusCode::BAD_REQUEST).await
        }
    }
}

pub async fn app(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let c = match state.identity.client(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e),
    };
    let data = AppData {
        frame: frame(&state, q.notice.as_deref()).await,
        id: c.id.clone(),
        name: c.name.clone(),
        confidential: c.confidential,
        secret: None,
        form: form_of(&c),
    };
    app_page(page, data, StatusCode::OK)
}

pub async fn update_app(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let (form, input) = app_form(&body);
    match state
        .identity
        .admin_update_client(&ctx, &admin, &id, &input, state.now())
        .await
    {
        Ok(updated) if updated.secret.is_some() => {
            let c = updated.client;
            let data = AppData {
                frame: frame(&state, Some("saved")).await,
                id: c.id.clone(),
                name: c.name.clone(),
                confidential: c.confidential,
                secret: updated.secret.map(|s| s.expose().to_string()),
                form: form_of(&c),
            };
            app_page(page, data, StatusCode::OK)
        }
        Ok(_) => redirect(&format!("/admin/apps/{id}?notice=saved"), vec![]),
        Err(e) => {
            let mut f = frame(&state, None).await;
            f.error = Some(admin_error_text(&e));
            let name = form.name.clone();
            let confidential = form.confidential;
            let data = AppData {
                frame: f,
                id,
                name,
                confidential,
                secret: None,
                form,
            };
            app_page(page, data, StatusCode::BAD_REQUEST)
        }
    }
}

pub async fn rotate_app_secret(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let secret = match state
        .identity
        .admin_rotate_client_secret(&ctx, &admin, &id, state.now())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let message = admin_error_text(&e);
            return refusal(&state, StatusCode::BAD_REQUEST, "Not rotated", &message).await;
        }
    };
    let c = match state.identity.client(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e),
    };
    let data = AppData {
        frame: frame(&state, None).await,
        id: c.id.clone(),
        name: c.name.clone(),
        confidential: c.confidential,
        secret: Some(secret.expose().to_string()),
        form: form_of(&c),
    };
    app_page(page, data, StatusCode::OK)
}

pub async fn delete_app(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !url::form_urlencoded::parse(&body).any(|(k, v)| k == "confirm" && v == "yes") {
        return redirect(&format!("/admin/apps/{id}"), vec![]);
    }
    let (_, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .admin_delete_client(&ctx, &admin, &id, state.now())
        .await
    {
        Ok(()) => redirect("/admin/apps?notice=deleted", vec![]),
        Err(e) => {
            refusal(
                &state,
                StatusCode::BAD_REQUEST,
                "Not deleted",
                &admin_error_text(&e),
            )
            .await
        }
    }
}
