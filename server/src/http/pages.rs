//! Page handlers. Each GET renders a page; each POST parses its form, calls the identity core
//! once, and answers with a redirect (Post/Redirect/Get) or with the same page carrying the
//! error and the values typed. No handler holds identity logic of its own.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::branding::Branding;
use gatehouse_app::pages::{
    CodePage, FormState, MessagePage, NewPasswordPage, ResetPage, SignInCodePage, SignInPage,
    SignUpCodePage, SignUpPage,
};
use gatehouse_core::identity::{AuthError, CodeOutcome};
use gatehouse_core::secret::SecretString;

use super::cookies::{AUTHORIZE, FLOW, SESSION};
use crate::AppState;

/// How long the flow cookie lives (a little longer than a code).
use super::toolkit::*;

// ---------------------------------------------------------------- simple pages

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers).await {
        Ok(Some(_)) => redirect("/account", vec![]),
        _ => redirect("/sign-in", vec![]),
    }
}

pub async fn health(State(state): State<AppState>) -> Response {
    if state.identity.database_ready().await {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

pub async fn not_found(_request: Request) -> Response {
    let page =
        Page::with_branding(Arc::new(Branding::default()), None).status(StatusCode::NOT_FOUND);
    let t = page.t().clone();
    page.render("error.not_found", move || {
        view! { <MessagePage title=t.get("error.not_found") message=t.get("error.not_found_lead")/> }
    })
}

// ---------------------------------------------------------------- sign-in with password

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let waiting = cookie_policy(&state).read(&headers, AUTHORIZE);
    let session = current_session(&state, &headers).await.ok().flatten();
    let mut form = FormState::default();
    if let Some(request_id) = &waiting {
        // An application is waiting: sign in (again) only if its request needs a new sign-in.
        let now = state.now();
        let identity = &state.identity;
        match identity
            .waiting_needs_sign_in(request_id, session.as_ref().map(|(s, _)| s), now)
            .await
        {
            Ok(false) if session.is_some() => return redirect("/authorize/continue", vec![]),
            Ok(_) => {
                if let Ok(Some((_, req, _))) = identity.waiting_authorization(request_id, now).await
                {
                    form.email = req.login_hint.unwrap_or_default();
                }
            }
            Err(e) => return internal_error_page(Page::new(&state).await, &e),
        }
    } else if session.is_some() {
        return redirect("/account", vec![]);
    }
    Page::new(&state)
        .await
        .with_providers(&state)
        .await
        .render("sign_in.title", move || view! { <SignInPage state=form/> })
}

pub async fn sign_in(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<SignInForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let password = SecretString::new(form.password);
    match state
        .identity
        .sign_in_with_password(&ctx, &form.email, &password, state.now())
        .await
    {
        Ok(outcome) => sign_in_outcome_response(&state, outcome),
        Err(err) => {
            let form_state = FormState {
                email: form.email.chars().take(320).collect(),
                ..FormState::default()
            };
            error_page(
                page.with_providers(&state).await,
                &err,
                form_state,
                "sign_in.title",
                |s| view! { <SignInPage state=s/> },
            )
        }
    }
}

pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = cookie_policy(&state);
    if let Some(token) = cookies.read(&headers, SESSION) {
        if let Err(err) = state.identity.sign_out(&token, state.now()).await {
            return internal_error_page(Page::new(&state).await, &err);
        }
    }
    redirect("/sign-in", vec![cookies.clear(SESSION)])
}

// ---------------------------------------------------------------- code flows

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in_code_page(State(state): State<AppState>) -> Response {
    Page::new(&state).await.render(
        "sign_in_code.title",
        || view! { <SignInCodePage state=FormState::default()/> },
    )
}

pub async fn sign_in_code(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<EmailForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let started = state
        .identity
        .start_code_sign_in(&ctx, &form.email, state.now())
        .await;
    flow_or_error(
        &state,
        page,
        started,
        typed("", &form.email),
        "sign_in_code.title",
        |s| {
            view! { <SignInCodePage state=s/> }
        },
    )
}

pub async fn sign_up_page(State(state): State<AppState>) -> Response {
    Page::new(&state).await.with_providers(&state).await.render(
        "sign_up.title",
        || view! { <SignUpPage state=FormState::default()/> },
    )
}

pub async fn sign_up(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<SignUpForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let password = SecretString::new(form.password);
    let started = state
        .identity
        .start_password_sign_up(&ctx, &form.name, &form.email, &password, state.now())
        .await;
    let page = match started {
        Ok(_) => page,
        Err(_) => page.with_providers(&state).await,
    };
    flow_or_error(
        &state,
        page,
        started,
        typed(&form.name, &form.email),
        "sign_up.title",
        |s| {
            view! { <SignUpPage state=s/> }
        },
    )
}

pub async fn sign_up_code_page(State(state): State<AppState>) -> Response {
    Page::new(&state).await.render(
        "sign_up_code.title",
        || view! { <SignUpCodePage state=FormState::default()/> },
    )
}

pub async fn sign_up_code(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<SignUpForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let started = state
        .identity
        .start_code_sign_up(&ctx, &form.name, &form.email, state.now())
        .await;
    flow_or_error(
        &state,
        page,
        started,
        typed(&form.name, &form.email),
        "sign_up_code.title",
        |s| {
            view! { <SignUpCodePage state=s/> }
        },
    )
}

pub async fn reset_page(State(state): State<AppState>) -> Response {
    Page::new(&state).await.render(
        "reset.title",
        || view! { <ResetPage state=FormState::default()/> },
    )
}

pub async fn reset(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<EmailForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let started = state
        .identity
        .start_password_reset(&ctx, &form.email, state.now())
        .await;
    flow_or_error(
        &state,
        page,
        started,
        typed("", &form.email),
        "reset.title",
        |s| view! { <ResetPage state=s/> },
    )
}

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    notice: Option<String>,
}

pub async fn code_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let flow_id = cookie_policy(&state)
        .read(&headers, FLOW)
        .unwrap_or_default();
    let flow = match state.identity.live_flow(&flow_id, state.now()).await {
        Ok(flow) => flow.filter(|f| f.purpose != gatehouse_core::store::CodePurpose::ResetGrant),
        Err(err) => return internal_error_page(page, &err),
    };
    let notice = (q.notice.as_deref() == Some("resent")).then(|| page.t().get("code.resent"));
    let live = flow.is_some();
    let s = FormState {
        email: flow.map(|f| f.email).unwrap_or_default(),
        notice,
        ..FormState::default()
    };
    let status = if live {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page.status(status).render(
        "code.title",
        move || view! { <CodePage state=s live=live/> },
    )
}

pub async fn verify_code(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<CodeForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let cookies = cookie_policy(&state);
    let flow_id = cookies.read(&incoming.headers, FLOW).unwrap_or_default();
    let now = state.now();
    match state
        .identity
        .verify_code(&ctx, &flow_id, &form.code, now)
        .await
    {
        Ok(CodeOutcome::SignIn(outcome)) => sign_in_outcome_response(&state, outcome),
        Ok(CodeOutcome::ResetGranted { grant_id }) => redirect(
            "/reset/new-password",
            vec![cookies.set(FLOW, &grant_id, Some(FLOW_COOKIE_MAX_AGE_S))],
        ),
        Err(err) => {
            let live = matches!(
                err,
                AuthError::CodeWrong { .. }
                    | AuthError::InvalidInput(_)
                    | AuthError::Throttled { .. }
            );
            let email = match state.identity.live_flow(&flow_id, now).await {
                Ok(Some(f)) => f.email,
                _ => String::new(),
            };
            let s = FormState {
                email,
                ..FormState::default()
            };
            error_page(
                page,
                &err,
                s,
                "code.title",
                move |s| view! { <CodePage state=s live=live/> },
            )
        }
    }
}

pub async fn resend_code(State(state): State<AppState>, incoming: Incoming) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let flow_id = cookie_policy(&state)
        .read(&incoming.headers, FLOW)
        .unwrap_or_default();
    let now = state.now();
    match state.identity.resend_code(&ctx, &flow_id, now).await {
        Ok(()) => redirect("/code?notice=resent", vec![]),
        Err(err) => {
            let flow = state.identity.live_flow(&flow_id, now).await.ok().flatten();
            let live = flow.is_some();
            let s = FormState {
                email: flow.map(|f| f.email).unwrap_or_default(),
                ..FormState::default()
            };
            error_page(
                page,
                &err,
                s,
                "code.title",
                move |s| view! { <CodePage state=s live=live/> },
            )
        }
    }
}

pub async fn new_password_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let page = Page::new(&state).await;
    let grant_id = cookie_policy(&state)
        .read(&headers, FLOW)
        .unwrap_or_default();
    match state.identity.live_flow(&grant_id, state.now()).await {
        Ok(Some(f)) if f.purpose == gatehouse_core::store::CodePurpose::ResetGrant => page.render(
            "new_password.title",
            || view! { <NewPasswordPage state=FormState::default()/> },
        ),
        Ok(_) => error_page(
            page,
            &AuthError::CodeDead,
            FormState::default(),
            "code.title",
            |s| {
                view! { <CodePage state=s live=false/> }
            },
        ),
        Err(err) => internal_error_page(page, &err),
    }
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub(super) password: String,
}

pub async fn new_password(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let grant_id = cookie_policy(&state)
        .read(&incoming.headers, FLOW)
        .unwrap_or_default();
    let password = SecretString::new(form.password);
    match state
        .identity
        .complete_password_reset(&ctx, &grant_id, &password, state.now())
        .await
    {
        Ok(outcome) => sign_in_outcome_response(&state, outcome),
        Err(err @ AuthError::InvalidInput(_)) => error_page(
            page,
            &err,
            FormState::default(),
            "new_password.title",
            |s| view! { <NewPasswordPage state=s/> },
        ),
        Err(err) => error_page(
            page,
            &err,
            FormState::default(),
            "code.title",
            |s| view! { <CodePage state=s live=false/> },
        ),
    }
}
