//! The admin console at `/admin`. Every handler starts with [`require_admin`]: no session is
//! 401, a session without the admin role is 403, whatever the route or method. Actions go
//! through the identity core, which writes each one to the audit log.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{
    AdminAppPage, AdminAppsPage, AdminAuditPage, AdminBrandingPage, AdminDetailPage,
    AdminOutboxPage, AdminOverviewPage, AdminProvidersPage, AdminSignInsPage, AdminUserPage,
    AdminUsersPage, AppData, AppForm, AppsData, AuditData, AuditFilterForm, BrandingData, Cell,
    DetailData, Frame, OutboxData, OverviewData, Paging, ProviderForm, ProviderRow, ProvidersData,
    SignInFilterForm, SignInsData, UserData, UsersData,
};
use gatehouse_app::pages::{describe_user_agent, format_time, MessagePage};
use gatehouse_core::identity::admin::{AccountAction, AdminError};
use gatehouse_core::identity::oidc::{Client, ClientInput, GrantType};
use gatehouse_core::identity::SecondFactorMethod;
use gatehouse_core::store::{AuditFilter, SignInFilter, User};

use super::pages::{begin, current_session, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

const PAGE_SIZE: i64 = 25;

/// The signed-in admin of a console page (see [`require_admin`] for the refusals).
pub struct AdminUser(pub User);

impl axum::extract::FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        require_admin(state, &parts.headers).await.map(AdminUser)
    }
}

/// The signed-in admin, or the refusal: 401 without a session, 403 without the admin role.
pub(super) async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<User, Response> {
    match current_session(state, headers).await {
        Ok(Some((_, user))) if user.is_admin && !user.disabled => {
            // The tenant's multifactor rule holds for admins too: no console page before the
            // account has a second factor.
            match state.identity.needs_enrollment(&user).await {
                Ok(false) => Ok(user),
                Ok(true) => Err(redirect("/account/security?notice=mfa_required", vec![])),
                Err(e) => Err(internal_error_page(Page::new(state).await, &e)),
            }
        }
        Ok(Some(_)) => Err(refusal(
            state,
            StatusCode::FORBIDDEN,
            "Admins only",
            "This page is for the tenant's administrators. Your account does not have the admin role.",
        )
        .await),
        Ok(None) => Err(refusal(
            state,
            StatusCode::UNAUTHORIZED,
            "Sign in as an administrator",
            "Sign in with an administrator account to use the admin console.",
        )
        .await),
        Err(e) => Err(internal_error_page(Page::new(state).await, &e)),
    }
}

async fn refusal(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    let (title, message) = (title.to_string(), message.to_string());
    Page::new(state).await.status(status).render(
        "admin.title",
        move || view! { <MessagePage title=title message=message/> },
    )
}

async fn frame(state: &AppState, notice: Option<&str>) -> Frame {
    Frame {
        notice: notice.map(notice_text).map(str::to_string),
        error: None,
        outbox: state.identity.uses_development_outbox(),
    }
}

fn notice_text(code: &str) -> &'static str {
    match code {
        "disable" => "The account is disabled; its sessions and tokens ended.",
        "enable" => "The account is enabled.",
        "delete" => "The account was deleted.",
        "revoke-sessions" => {
            "Every session of the account ended and its application tokens were revoked."
        }
        "reset-mfa" => "The account's multifactor methods were removed.",
        "require-password-reset" => {
            "The password was removed and a reset code emailed to the person."
        }
        "registered" => "The application is registered.",
        "saved" => "The application was saved.",
        "deleted" => "The application was deleted.",
        "provider_saved" => "The provider was saved.",
        "provider_enable" => "The provider is enabled: its button shows on the sign-in pages.",
        "provider_disable" => "The provider is disabled: its button is hidden.",
        "provider_remove" => "The provider was removed.",
        "branding_saved" => "The branding was saved.",
        _ => "Done.",
    }
}

fn admin_error_text(err: &AdminError) -> String {
    match err {
        AdminError::NotFound => "There is no such account.".into(),
        AdminError::OwnAccount => "You cannot disable or delete your own account.".into(),
        AdminError::Client(problem) => sentence(&problem.to_string()),
        AdminError::Auth(e) => format!("The change could not be made ({}).", e.reason_code()),
    }
}

/// An error's text as a sentence for the page: capitalised, with a full stop.
fn sentence(text: &str) -> String {
    let mut s = text.to_string();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{s}.")
}

async fn not_found() -> Response {
    super::pages::not_found(axum::extract::Request::default()).await
}

fn paging(base: &str, page: i64, total: i64) -> Paging {
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let sep = if base.contains('?') { '&' } else { '?' };
    Paging {
        summary: format!("Page {page} of {pages} ({total} in all)"),
        previous: (page > 1).then(|| format!("{base}{sep}page={}", page - 1)),
        next: (page < pages).then(|| format!("{base}{sep}page={}", page + 1)),
    }
}

fn page_number(p: Option<i64>) -> i64 {
    p.unwrap_or(1).clamp(1, 100_000)
}

/// `name=value&...` of the non-empty values, for paging links.
fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    parts.join("&")
}

/// A `YYYY-MM-DD` day as milliseconds at its start (UTC); `end` gives the start of the next day.
fn day_ms(text: &str, end: bool) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let day = if end { day.succ_opt()? } else { day };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn trimmed(s: &Option<String>) -> String {
    s.as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(320)
        .collect()
}

// ---------------------------------------------------------------- overview

pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    let page = Page::new(&state).await;
    let store = state.store();
    let users = store.count_users().await;
    let apps = state.identity.clients().await;
    let sign_ins = store
        .sign_in_counts(state.now() - 24 * 60 * 60 * 1000)
        .await;
    let (users, apps, sign_ins) = match (users, apps, sign_ins) {
        (Ok(u), Ok(a), Ok(s)) => (u, a.len() as i64, s),
        (Err(e), _, _) | (_, _, Err(e)) => return internal_error_page(page, &e.into()),
        (_, Err(e), _) => return internal_error_page(page, &e),
    };
    let data = OverviewData {
        frame: frame(&state, None).await,
        users,
        applications: apps,
        sign_ins,
    };
    page.render(
        "admin.title",
        move || view! { <AdminOverviewPage data=data/> },
    )
}

// ---------------------------------------------------------------- users

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

pub async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<UsersQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    let page = Page::new(&state).await;
    let query = trimmed(&q.q);
    let number = page_number(q.page);
    let (found, total) = match state
        .store()
        .search_users(&query, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e.into()),
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

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
    error: Option<String>,
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

// ---------------------------------------------------------------- applications

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The application form from a posted body: (the values to show again, the input).
fn app_form(body: &[u8]) -> (AppForm, ClientInput) {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.chars().take(4000).collect::<String>())
            .unwrap_or_default()
    };
    let form = AppForm {
        name: get("name"),
        logo_url: get("logo_url"),
        confidential: get("type") != "public",
        redirect_uris: get("redirect_uris"),
        post_logout_redirect_uris: get("post_logout_redirect_uris"),
        grant_types: pairs
            .iter()
            .filter(|(k, _)| k == "grant")
            .map(|(_, v)| v.clone())
            .take(10)
            .collect(),
        allowed_origins: get("allowed_origins"),
        third_party: get("third_party") == "yes",
        id_token_alg: get("id_token_alg"),
        backchannel_logout_uri: get("backchannel_logout_uri"),
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
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
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
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
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

// ---------------------------------------------------------------- logs

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
    page: Option<i64>,
}

pub async fn sign_ins(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignInsQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
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
        from: day_ms(&form.from, false),
        to: day_ms(&form.to, true),
    };
    let number = page_number(q.page);
    let (entries, total) = match state
        .store()
        .filter_sign_ins(&filter, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e.into()),
    };
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                Cell::link(
                    format_time(e.occurred_at),
                    format!("/admin/sign-ins/{}", e.id),
                ),
                match &e.user_id {
                    Some(id) => Cell::link(e.email.clone(), format!("/admin/users/{id}")),
                    None => Cell::text(e.email.clone()),
                },
                Cell::text(e.application.clone()),
                Cell::text(e.method.clone()),
                Cell::text(e.result.clone()),
                Cell::text(e.failure_reason.clone().unwrap_or_default()),
                Cell::text(e.client_ip.clone()),
            ]
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
        ])
    );
    let data = SignInsData {
        frame: frame(&state, None).await,
        filter: form,
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    let page = Page::new(&state).await;
    let e = match state.store().find_sign_in(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e.into()),
    };
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
            ("Application", Cell::text(e.application.clone())),
            ("Method", Cell::text(e.method.clone())),
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
        ],
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
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    let page = Page::new(&state).await;
    let form = AuditFilterForm {
        actor: trimmed(&q.actor),
        subject: trimmed(&q.subject),
        action: trimmed(&q.action),
        from: trimmed(&q.from),
        to: trimmed(&q.to),
    };
    let store = state.store();
    // People are filtered by email; an unknown email matches nothing.
    let user_id = |email: String| async move {
        if email.is_empty() {
            return Ok(None);
        }
        let normalized = gatehouse_core::email::normalize_email(&email).unwrap_or(email);
        Ok::<_, gatehouse_core::store::StoreError>(Some(
            store
                .find_user_by_email(&normalized)
                .await?
                .map(|u| u.id)
                .unwrap_or_else(|| "-".into()),
        ))
    };
    let (actor, subject) = match (
        user_id(form.actor.clone()).await,
        user_id(form.subject.clone()).await,
    ) {
        (Ok(a), Ok(s)) => (a, s),
        (Err(e), _) | (_, Err(e)) => return internal_error_page(page, &e.into()),
    };
    let filter = AuditFilter {
        actor_user_id: actor,
        subject_user_id: subject,
        action: (!form.action.is_empty()).then(|| form.action.clone()),
        from: day_ms(&form.from, false),
        to: day_ms(&form.to, true),
    };
    let number = page_number(q.page);
    let (entries, total) = match store
        .filter_audit(&filter, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e.into()),
    };
    // Emails of the people named, for reading.
    let mut emails = std::collections::HashMap::new();
    let mut ids: Vec<String> = Vec::new();
    for e in &entries {
        for id in [&e.actor_user_id, &e.subject_user_id].into_iter().flatten() {
            ids.push(id.clone());
        }
    }
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(slot) = emails.entry(id.clone()) {
            let email = match store.find_user(&id).await {
                Ok(Some(u)) => u.email,
                _ => format!("deleted account {id}"),
            };
            slot.insert(email);
        }
    }
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

pub async fn outbox(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    if !state.identity.uses_development_outbox() {
        return not_found().await;
    }
    let page = Page::new(&state).await;
    let messages = match state.store().recent_messages(100).await {
        Ok(m) => m,
        Err(e) => return internal_error_page(page, &e.into()),
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

// ---------------------------------------------------------------- identity providers

async fn providers_page(state: &AppState, mut data: ProvidersData, status: StatusCode) -> Response {
    let page = Page::new(state).await;
    let list = match state.identity.providers().await {
        Ok(l) => l,
        Err(e) => return internal_error_page(page, &e),
    };
    data.rows = list
        .into_iter()
        .map(|p| ProviderRow {
            id: p.id.clone(),
            name: p.display_name.clone(),
            kind: p.kind.as_str().to_string(),
            enabled: p.enabled,
            issuer: p.settings.issuer.clone(),
            client_id: p.settings.client_id.clone(),
            position: p.position,
        })
        .collect();
    data.redirect_uri = state.federation.redirect_uri().to_string();
    page.status(status).render(
        "admin.title",
        move || view! { <AdminProvidersPage data=data/> },
    )
}

pub async fn providers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    let data = ProvidersData {
        frame: frame(&state, q.notice.as_deref()).await,
        form: ProviderForm {
            kind: "oidc".into(),
            ..ProviderForm::default()
        },
        ..ProvidersData::default()
    };
    providers_page(&state, data, StatusCode::OK).await
}

pub async fn save_provider(
    State(state): State<AppState>,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    use gatehouse_core::identity::{ClaimMapping, Endpoints, ProviderInput, ProviderKind};
    let admin = match require_admin(&state, &incoming.headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().chars().take(2000).collect::<String>())
            .unwrap_or_default()
    };
    let optional = |v: String| (!v.is_empty()).then_some(v);
    let form = ProviderForm {
        id: get("id"),
        kind: get("kind"),
        name: get("name"),
        client_id: get("client_id"),
        issuer: get("issuer"),
        tenant: get("tenant"),
        scopes: get("scopes"),
    };
    let fail = |message: String, form: ProviderForm| async {
        let mut f = frame(&state, None).await;
        f.error = Some(message);
        let data = ProvidersData {
            frame: f,
            form,
            ..ProvidersData::default()
        };
        providers_page(&state, data, StatusCode::BAD_REQUEST).await
    };
    let Some(kind) = ProviderKind::parse(&form.kind).filter(|k| *k != ProviderKind::Apple) else {
        return fail("Choose the kind of provider.".into(), form).await;
    };
    let secret = get("client_secret");
    let input = ProviderInput {
        id: form.id.clone(),
        kind,
        display_name: optional(form.name.clone()),
        issuer: optional(form.issuer.clone()),
        tenant: optional(form.tenant.clone()),
        client_id: form.client_id.clone(),
        secret: optional(secret).map(gatehouse_core::secret::SecretString::new),
        scopes: optional(form.scopes.clone())
            .map(|s| s.split_whitespace().map(str::to_string).collect()),
        claims: ClaimMapping::default(),
        endpoints: Endpoints::default(),
        apple: None,
        enabled: true,
    };
    let (_, ctx) = begin(&state, &incoming).await;
    match state.identity.put_provider(input, state.now()).await {
        Ok(Ok(p)) => {
            let detail = format!("{} ({})", p.display_name, p.id);
            if let Err(e) = state
                .identity
                .admin_audit(
                    &ctx,
                    &admin,
                    None,
                    "admin.provider.saved",
                    &detail,
                    state.now(),
                )
                .await
            {
                return internal_error_page(Page::new(&state).await, &e);
            }
            redirect("/admin/providers?notice=provider_saved", vec![])
        }
        Ok(Err(problem)) => fail(sentence(&problem.to_string()), form).await,
        Err(e) => internal_error_page(Page::new(&state).await, &e),
    }
}

pub async fn provider_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let now = state.now();
    let done = match action.as_str() {
        "enable" => state.identity.set_provider_enabled(&id, true, now).await,
        "disable" => state.identity.set_provider_enabled(&id, false, now).await,
        "remove" => state.identity.remove_provider(&id).await,
        _ => return not_found().await,
    };
    match done {
        Ok(true) => {
            let (_, ctx) = begin(&state, &incoming).await;
            let audit = match action.as_str() {
                "enable" => "admin.provider.enabled",
                "disable" => "admin.provider.disabled",
                _ => "admin.provider.removed",
            };
            if let Err(e) = state
                .identity
                .admin_audit(&ctx, &admin, None, audit, &id, now)
                .await
            {
                return internal_error_page(Page::new(&state).await, &e);
            }
            redirect(
                &format!("/admin/providers?notice=provider_{action}"),
                vec![],
            )
        }
        Ok(false) => not_found().await,
        Err(e) => internal_error_page(Page::new(&state).await, &e),
    }
}

// ---------------------------------------------------------------- branding

pub async fn branding(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if let Err(r) = require_admin(&state, &headers).await {
        return r;
    }
    let current = state.branding().await;
    let json = serde_json::to_string_pretty(&*current).unwrap_or_default();
    let data = BrandingData {
        frame: frame(&state, q.notice.as_deref()).await,
        json,
    };
    Page::new(&state).await.render(
        "admin.title",
        move || view! { <AdminBrandingPage data=data/> },
    )
}

pub async fn save_branding(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let text: String = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "branding")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let parsed = serde_json::from_str::<gatehouse_app::branding::Branding>(&text)
        .map_err(|e| format!("The branding is not valid JSON of the branding record: {e}."))
        .and_then(|b| {
            b.validate()
                .map(|()| b)
                .map_err(|p| format!("The branding was not saved: {} {}.", p.field, p.reason))
        });
    let branding = match parsed {
        Ok(b) => b,
        Err(message) => {
            let mut f = frame(&state, None).await;
            f.error = Some(message);
            let data = BrandingData {
                frame: f,
                json: text,
            };
            return Page::new(&state)
                .await
                .status(StatusCode::BAD_REQUEST)
                .render(
                    "admin.title",
                    move || view! { <AdminBrandingPage data=data/> },
                );
        }
    };
    let (page, ctx) = begin(&state, &incoming).await;
    let json = match serde_json::to_string(&branding) {
        Ok(j) => j,
        Err(e) => {
            return internal_error_page(
                page,
                &gatehouse_core::identity::AuthError::Internal(e.to_string()),
            )
        }
    };
    let now = state.now();
    if let Err(e) = state
        .store()
        .put_setting(crate::BRANDING_SETTING, &json, now)
        .await
    {
        return internal_error_page(page, &e.into());
    }
    if let Err(e) = state
        .identity
        .admin_audit(
            &ctx,
            &admin,
            None,
            "admin.branding.saved",
            &branding.product_name,
            now,
        )
        .await
    {
        return internal_error_page(page, &e);
    }
    redirect("/admin/branding?notice=branding_saved", vec![])
}
