//! The account portal: the account page (profile, password, sessions, applications), changing
//! the email address (and undoing it from the old address's link), deleting the account and
//! downloading its data. Each handler parses, calls the core once and renders or redirects.

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::account::{
    DeleteAccountData, DeleteAccountPage, EmailChangeData, EmailChangePage, EmailUndoData,
    EmailUndoPage, NotMeData, NotMePage,
};
use gatehouse_app::pages::{
    describe_user_agent, format_time, AccountData, AccountPage, ConnectedAppRow, MessagePage,
    SessionRow,
};
use gatehouse_core::identity::AuthError;
use gatehouse_core::secret::SecretString;
use gatehouse_core::store::{Session, User};

use super::cookies::{AUTHORIZE, EMAIL_CHANGE, LINK, SESSION};
use super::toolkit::{
    begin, cookie_policy, current_session, describe_error, internal_error_page, redirect,
    require_enrolled_session, CodeForm, EnrolledUser, Incoming, Page, SignedInUser,
};
use crate::AppState;

/// The email-change flow lives as long as its code (10 minutes).
const EMAIL_CHANGE_COOKIE_MAX_AGE_S: i64 = 10 * 60;

// ---------------------------------------------------------------- email change

#[derive(Deserialize)]
pub struct EmailChangeQuery {
    #[serde(default)]
    restart: Option<String>,
}

/// The email-change page as it stands for this browser, with an error if one is given.
#[allow(clippy::too_many_arguments)]
async fn email_change_view(
    state: &AppState,
    page: Page,
    headers: &HeaderMap,
    session: &Session,
    user: &User,
    typed: String,
    error: Option<&AuthError>,
    restart: bool,
) -> Response {
    let now = state.now();
    let flow = cookie_policy(state)
        .read(headers, EMAIL_CHANGE)
        .filter(|_| !restart)
        .unwrap_or_default();
    let pending = match state.identity.pending_email_change(user, &flow, now).await {
        Ok(p) => p,
        Err(e) => return internal_error_page(page, &e),
    };
    let mut data = EmailChangeData {
        recent: state.identity.signed_in_recently(session, now),
        has_password: user.password_hash.is_some(),
        current: user.email.clone(),
        pending,
        typed,
        ..EmailChangeData::default()
    };
    let mut page = page;
    if let Some(err) = error {
        let ev = describe_error(page.t(), err);
        data.error = Some(ev.message);
        data.invalid = ev.field;
        page = page.status(ev.status);
    }
    page.render(
        "email_change.title",
        move || view! { <EmailChangePage data=data/> },
    )
}

pub async fn email_change_page(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
    headers: HeaderMap,
    Query(q): Query<EmailChangeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let restart = q.restart.is_some();
    email_change_view(
        &state,
        page,
        &headers,
        &session,
        &user,
        String::new(),
        None,
        restart,
    )
    .await
}

#[derive(Deserialize)]
pub struct EmailChangeForm {
    #[serde(default)]
    email: String,
}

pub async fn start_email_change(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
    incoming: Incoming,
    Form(form): Form<EmailChangeForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .start_email_change(&ctx, &session, &user, &form.email, state.now())
        .await
    {
        Ok(flow) => redirect(
            "/account/email",
            vec![cookie_policy(&state).set(
                EMAIL_CHANGE,
                &flow.flow_id,
                Some(EMAIL_CHANGE_COOKIE_MAX_AGE_S),
            )],
        ),
        Err(err) => {
            let typed = form.email.chars().take(320).collect();
            email_change_view(
                &state,
                page,
                &incoming.headers,
                &session,
                &user,
                typed,
                Some(&err),
                true,
            )
            .await
        }
    }
}

pub async fn confirm_email_change(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
    incoming: Incoming,
    Form(form): Form<CodeForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let cookies = cookie_policy(&state);
    let flow = cookies
        .read(&incoming.headers, EMAIL_CHANGE)
        .unwrap_or_default();
    match state
        .identity
        .confirm_email_change(&ctx, &session, &user, &flow, &form.code, state.now())
        .await
    {
        Ok(_) => redirect(
            "/account?notice=email_changed",
            vec![cookies.clear(EMAIL_CHANGE)],
        ),
        Err(err) => {
            // A dead flow starts again from the address form.
            let restart = !matches!(
                err,
                AuthError::CodeWrong { .. }
                    | AuthError::InvalidInput(_)
                    | AuthError::Throttled { .. }
            );
            email_change_view(
                &state,
                page,
                &incoming.headers,
                &session,
                &user,
                String::new(),
                Some(&err),
                restart,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct UndoQuery {
    #[serde(default)]
    token: String,
}

/// The page the old address's link opens: what would be undone, and one button. Reads only
/// (a link preview or a mail scanner opening it changes nothing).
pub async fn email_undo_page(
    State(state): State<AppState>,
    Query(q): Query<UndoQuery>,
) -> Response {
    let page = Page::new(&state).await;
    match state
        .identity
        .email_change_undo(&q.token, state.now())
        .await
    {
        Ok(change) => {
            let change = change.map(|c| (c.restore, c.current));
            let status = if change.is_some() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            let data = EmailUndoData {
                token: q.token.chars().take(128).collect(),
                change,
                ..EmailUndoData::default()
            };
            page.status(status).render(
                "email_undo.title",
                move || view! { <EmailUndoPage data=data/> },
            )
        }
        Err(e) => internal_error_page(page, &e),
    }
}

#[derive(Deserialize)]
pub struct UndoForm {
    #[serde(default)]
    token: String,
}

pub async fn undo_email_change(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<UndoForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    match state
        .identity
        .undo_email_change(&ctx, &form.token, now)
        .await
    {
        Ok(_) => {
            let data = EmailUndoData {
                done: true,
                ..EmailUndoData::default()
            };
            page.header(SET_COOKIE, cookie_policy(&state).clear(SESSION))
                .render(
                    "email_undo.title",
                    move || view! { <EmailUndoPage data=data/> },
                )
        }
        Err(err) => {
            let ev = describe_error(page.t(), &err);
            let data = EmailUndoData {
                error: Some(ev.message),
                ..EmailUndoData::default()
            };
            page.status(ev.status).render(
                "email_undo.title",
                move || view! { <EmailUndoPage data=data/> },
            )
        }
    }
}

// ---------------------------------------------------------------- "this wasn't me"

/// The page the new-browser email's link opens: the sign-in it reports, and one button.
/// Reads only: mail scanners open links.
pub async fn not_me_page(State(state): State<AppState>, Query(q): Query<UndoQuery>) -> Response {
    let page = Page::new(&state).await;
    match state.identity.sign_in_report(&q.token, state.now()).await {
        Ok(report) => {
            let status = if report.is_some() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            let sign_in = report.map(|r| {
                (
                    r.client_ip.unwrap_or_default(),
                    describe_user_agent(r.user_agent.as_deref().unwrap_or("")),
                )
            });
            let data = NotMeData {
                token: q.token.chars().take(128).collect(),
                sign_in,
                ..NotMeData::default()
            };
            page.status(status)
                .render("not_me.title", move || view! { <NotMePage data=data/> })
        }
        Err(e) => internal_error_page(page, &e),
    }
}

pub async fn report_sign_in(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<UndoForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    let reported = state.identity.report_sign_in(&ctx, &form.token, now).await;
    match reported {
        Ok(()) => {
            let data = NotMeData {
                done: true,
                ..NotMeData::default()
            };
            page.render("not_me.title", move || view! { <NotMePage data=data/> })
        }
        Err(err) => {
            let ev = describe_error(page.t(), &err);
            let data = NotMeData {
                error: Some(ev.message),
                ..NotMeData::default()
            };
            page.status(ev.status)
                .render("not_me.title", move || view! { <NotMePage data=data/> })
        }
    }
}

// ---------------------------------------------------------------- deletion

fn delete_view(
    state: &AppState,
    page: Page,
    session: &Session,
    user: &User,
    error: Option<&AuthError>,
) -> Response {
    let mut data = DeleteAccountData {
        recent: state.identity.signed_in_recently(session, state.now()),
        has_password: user.password_hash.is_some(),
        email: user.email.clone(),
        error: None,
    };
    let mut page = page;
    if let Some(err) = error {
        let ev = describe_error(page.t(), err);
        data.error = Some(ev.message);
        page = page.status(ev.status);
    }
    page.render(
        "delete_account.title",
        move || view! { <DeleteAccountPage data=data/> },
    )
}

pub async fn delete_account_page(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
) -> Response {
    delete_view(&state, Page::new(&state).await, &session, &user, None)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirmation: String,
}

pub async fn delete_account(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
    incoming: Incoming,
    Form(form): Form<DeleteForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    if !state.identity.signed_in_recently(&session, now) {
        return delete_view(
            &state,
            page,
            &session,
            &user,
            Some(&AuthError::ReauthenticationRequired),
        );
    }
    match state
        .identity
        .delete_own_account(&ctx, &session, &user, &form.confirmation, now)
        .await
    {
        Ok(()) => {
            let title = page.t().get("delete_account.done_title");
            let message = page.t().get("delete_account.done");
            page.header(SET_COOKIE, cookie_policy(&state).clear(SESSION))
                .render("delete_account.done_title", move || {
                    view! { <MessagePage title=title message=message/> }
                })
        }
        Err(err) => delete_view(&state, page, &session, &user, Some(&err)),
    }
}

// ---------------------------------------------------------------- download

/// Everything held about the signed-in person, as a JSON file. Reads only.
pub async fn download_data(
    State(state): State<AppState>,
    EnrolledUser { user, .. }: EnrolledUser,
) -> Response {
    match state.identity.export_account(&user, state.now()).await {
        Ok(export) => {
            let body = serde_json::to_string_pretty(&export).unwrap_or_else(|_| "{}".into());
            let mut response = (StatusCode::OK, body).into_response();
            let h = response.headers_mut();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            h.insert(
                CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"gatehouse-account.json\""),
            );
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => internal_error_page(Page::new(&state).await, &e),
    }
}

// ---------------------------------------------------------------- account

#[derive(Deserialize)]
pub struct AccountQuery {
    #[serde(default)]
    notice: Option<String>,
}

fn account_data(session: &Session, user: &User, sessions: Vec<Session>) -> AccountData {
    let rows = sessions
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == session.id,
            device: describe_user_agent(&s.user_agent),
            ip: s.client_ip,
            signed_in: format_time(s.created_at),
            last_active: format_time(s.last_seen_at),
            id: s.id,
        })
        .collect();
    AccountData {
        display_name: user.display_name.clone(),
        email: user.email.clone(),
        has_password: user.password_hash.is_some(),
        sessions: rows,
        ..AccountData::default()
    }
}

/// Renders the account page for the signed-in user, with a notice or an error.
async fn account_response(
    state: &AppState,
    page: Page,
    session: &Session,
    user: &User,
    notice: Option<String>,
    error: Option<(&'static str, AuthError)>,
) -> Response {
    let sessions = match state.identity.list_sessions(&user.id, state.now()).await {
        Ok(s) => s,
        Err(err) => return internal_error_page(page, &err),
    };
    let apps = match state
        .identity
        .connected_applications(&user.id, state.now())
        .await
    {
        Ok(a) => a,
        Err(err) => return internal_error_page(page, &err),
    };
    let mut data = account_data(session, user, sessions);
    data.apps = apps
        .into_iter()
        .map(|a| ConnectedAppRow {
            client_id: a.client.id,
            name: a.client.name,
            access: a
                .scope
                .iter()
                .map(|s| page.t().get(&format!("oidc.scope.{s}")))
                .collect(),
            since: format_time(a.since),
        })
        .collect();
    data.notice = notice;
    let mut page = page;
    if let Some((form, err)) = error {
        let ev = describe_error(page.t(), &err);
        let message = if matches!(err, AuthError::InvalidCredentials) {
            page.t().get("account.current_password_wrong")
        } else {
            ev.message
        };
        data.error = Some(message);
        data.error_form = Some(form);
        page = page.status(ev.status);
    }
    page.render("account.title", move || view! { <AccountPage data=data/> })
}

pub async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(q): Query<AccountQuery>,
) -> Response {
    // An application waits for this sign-in: it continues there.
    if cookie_policy(&state).read(&headers, AUTHORIZE).is_some() {
        if let Ok(Some(_)) = current_session(&state, &headers).await {
            return redirect("/authorize/continue", vec![]);
        }
    }
    // A provider link waits for the account that was just proven: confirm it first.
    if cookie_policy(&state).read(&headers, LINK).is_some() {
        if let Ok(Some(_)) = current_session(&state, &headers).await {
            return redirect("/sign-in/link", vec![]);
        }
    }
    let (session, user) = match require_enrolled_session(&state, &headers, &extensions).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = Page::new(&state).await;
    let notice = match q.notice.as_deref() {
        Some("profile_saved") => Some(page.t().get("account.profile_saved")),
        Some("password_changed") => Some(page.t().get("account.password_changed")),
        Some("session_revoked") => Some(page.t().get("account.session_revoked")),
        Some("app_removed") => Some(page.t().get("account.app_removed")),
        Some("email_changed") => Some(page.t().fill("account.email_changed", "email", &user.email)),
        _ => None,
    };
    account_response(&state, page, &session, &user, notice, None).await
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
}

pub async fn update_profile(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
    Form(form): Form<ProfileForm>,
) -> Response {
    match state
        .identity
        .update_display_name(&user.id, &form.name, state.now())
        .await
    {
        Ok(_) => redirect("/account?notice=profile_saved", vec![]),
        Err(err) => {
            account_response(
                &state,
                Page::new(&state).await,
                &session,
                &user,
                None,
                Some(("profile", err)),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    EnrolledUser { session, user }: EnrolledUser,
    incoming: Incoming,
    Form(form): Form<ChangePasswordForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let current = SecretString::new(form.current_password);
    let new = SecretString::new(form.new_password);
    match state
        .identity
        .change_password(&ctx, &session, &user, &current, &new, state.now())
        .await
    {
        Ok(()) => redirect("/account?notice=password_changed", vec![]),
        Err(err) => {
            account_response(&state, page, &session, &user, None, Some(("password", err))).await
        }
    }
}

pub async fn sign_out_session(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    Path(id): Path<String>,
) -> Response {
    match state
        .identity
        .revoke_session(&user.id, &id, state.now())
        .await
    {
        Ok(_) if id == session.id => {
            redirect("/sign-in", vec![cookie_policy(&state).clear(SESSION)])
        }
        Ok(_) => redirect("/account?notice=session_revoked", vec![]),
        Err(err) => internal_error_page(Page::new(&state).await, &err),
    }
}

pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    SignedInUser { user, .. }: SignedInUser,
) -> Response {
    match state
        .identity
        .revoke_all_sessions(&user.id, state.now())
        .await
    {
        Ok(_) => redirect("/sign-in", vec![cookie_policy(&state).clear(SESSION)]),
        Err(err) => internal_error_page(Page::new(&state).await, &err),
    }
}

/// Removes an application's access to the signed-in account.
pub async fn remove_app_access(
    State(state): State<AppState>,
    EnrolledUser { user, .. }: EnrolledUser,
    incoming: Incoming,
    Path(client_id): Path<String>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .disconnect_application(&ctx, &user.id, &client_id, state.now())
        .await
    {
        Ok(_) => redirect("/account?notice=app_removed", vec![]),
        Err(err) => internal_error_page(page, &err),
    }
}
