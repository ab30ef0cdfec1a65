//! Page handlers. Each GET renders a page; each POST parses its form, calls the identity core
//! once, and answers with a redirect (Post/Redirect/Get) or with the same page carrying the
//! error and the values typed. No handler holds identity logic of its own.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::branding::Branding;
use gatehouse_app::i18n::Texts;
use gatehouse_app::pages::{
    describe_user_agent, format_time, AccountData, AccountPage, CodePage, ConnectedAppRow,
    FormState, MessagePage, NewPasswordPage, ResetPage, SessionRow, SignInCodePage, SignInPage,
    SignUpCodePage, SignUpPage,
};
use gatehouse_app::shell::{render_document, PageContext, ProviderLink};
use gatehouse_core::email::EmailProblem;
use gatehouse_core::identity::{
    AuthError, CodeOutcome, InputProblem, RequestContext, SignInOutcome, SignedIn, ACCOUNT_PORTAL,
};
use gatehouse_core::mail::{EmailKind, EmailText, EmailTexts};
use gatehouse_core::secret::SecretString;
use gatehouse_core::store::{Session, User};
use gatehouse_core::tokens::random_id;

use super::cookies::{CookiePolicy, AUTHORIZE, DEVICE, FLOW, LINK, PENDING_SIGN_IN, SESSION};
use super::security;
use super::security::{client_ip, page_csp, peer_ip};
use crate::AppState;

/// How long the flow cookie lives (a little longer than a code).
pub(super) const FLOW_COOKIE_MAX_AGE_S: i64 = 15 * 60;

// ---------------------------------------------------------------- rendering

/// A page about to be rendered: its context (branding, texts, nonce) and response parts.
pub(super) struct Page {
    pub(super) ctx: PageContext,
    status: StatusCode,
    headers: Vec<(axum::http::HeaderName, HeaderValue)>,
}

impl Page {
    pub(super) async fn new(state: &AppState) -> Self {
        Self::with_branding(state.branding().await, state.leptos_options.clone())
    }

    /// The page with the enabled sign-in providers, for the pages that offer them (sign-in,
    /// sign-up, security info); other pages do not read them.
    pub(super) async fn with_providers(mut self, state: &AppState) -> Self {
        match state.identity.provider_buttons().await {
            Ok(buttons) => {
                self.ctx.providers = buttons
                    .into_iter()
                    .map(|b| ProviderLink {
                        id: b.id,
                        kind: b.kind.as_str().to_string(),
                        name: b.display_name,
                    })
                    .collect()
            }
            Err(e) => tracing::warn!(error = %e, "sign-in providers unavailable"),
        }
        self
    }

    fn with_branding(
        branding: Arc<Branding>,
        options: Option<leptos::config::LeptosOptions>,
    ) -> Self {
        let nonce = random_id();
        Page {
            ctx: PageContext::new(branding, nonce, options),
            status: StatusCode::OK,
            headers: Vec::new(),
        }
    }

    pub(super) fn t(&self) -> &Texts {
        &self.ctx.texts
    }

    pub(super) fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(super) fn header(mut self, name: axum::http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(super) fn render<V: IntoView + 'static>(
        self,
        title_key: &str,
        body: impl FnOnce() -> V + Send + 'static,
    ) -> Response {
        let title = self.ctx.texts.get(title_key);
        let csp = page_csp(&self.ctx.nonce);
        let html = render_document(self.ctx, title, body);
        let mut response = (self.status, html).into_response();
        let h = response.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(CONTENT_SECURITY_POLICY, v);
        }
        for (name, value) in self.headers {
            h.append(name, value);
        }
        response
    }
}

/// 303 See Other to a path of ours (built from constants and our own ids), with cookies.
pub(super) fn redirect(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(
        LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        h.append(SET_COOKIE, c);
    }
    response
}

/// How an error reads on a page, its status, and the field it is about.
pub(super) struct ErrorView {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) field: Option<&'static str>,
    pub(super) retry_after: Option<i64>,
}

pub(super) fn describe_error(t: &Texts, err: &AuthError) -> ErrorView {
    let view = |status, key: &str, field| ErrorView {
        status,
        message: t.get(key),
        field,
        retry_after: None,
    };
    match err {
        AuthError::InvalidInput(InputProblem::DisplayName) => {
            view(StatusCode::BAD_REQUEST, "name.invalid", Some("name"))
        }
        AuthError::InvalidInput(InputProblem::Email(EmailProblem::Missing)) => {
            view(StatusCode::BAD_REQUEST, "email.missing", Some("email"))
        }
        AuthError::InvalidInput(InputProblem::Email(EmailProblem::Invalid)) => {
            view(StatusCode::BAD_REQUEST, "email.invalid", Some("email"))
        }
        AuthError::InvalidInput(InputProblem::Password(p)) => view(
            StatusCode::BAD_REQUEST,
            &format!("password.{}", p.code()),
            Some("password"),
        ),
        AuthError::InvalidInput(InputProblem::Code) => {
            view(StatusCode::BAD_REQUEST, "code.invalid_format", Some("code"))
        }
        AuthError::InvalidCredentials => view(StatusCode::UNAUTHORIZED, "sign_in.invalid", None),
        AuthError::Throttled { retry_after_s } => ErrorView {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: t.fill("common.throttled", "seconds", &retry_after_s.to_string()),
            field: None,
            retry_after: Some(*retry_after_s),
        },
        AuthError::PasswordPathClosed => {
            view(StatusCode::TOO_MANY_REQUESTS, "sign_in.closed", None)
        }
        AuthError::AccountDisabled => view(StatusCode::FORBIDDEN, "sign_in.disabled", None),
        AuthError::SecondFactorRequired
        | AuthError::EnrollmentRequired
        | AuthError::InteractionRequired
        | AuthError::LoginRequired => view(StatusCode::UNAUTHORIZED, "second_factor.lead", None),
        AuthError::SecondFactorWrong => {
            view(StatusCode::BAD_REQUEST, "second_factor.wrong", Some("code"))
        }
        AuthError::ReauthenticationRequired => {
            view(StatusCode::FORBIDDEN, "security.reauth_required", None)
        }
        AuthError::CodeWrong { attempts_left } => ErrorView {
            status: StatusCode::BAD_REQUEST,
            message: t.fill("code.wrong", "n", &attempts_left.to_string()),
            field: Some("code"),
            retry_after: None,
        },
        AuthError::CodeDead => view(StatusCode::BAD_REQUEST, "code.dead", None),
        AuthError::InvalidInput(InputProblem::PasskeyName) => view(
            StatusCode::BAD_REQUEST,
            "passkey.name_invalid",
            Some("passkey-name"),
        ),
        AuthError::InvalidInput(InputProblem::Phone(p)) => view(
            StatusCode::BAD_REQUEST,
            &format!("phone.{}", p.code()),
            Some("phone"),
        ),
        AuthError::InvalidInput(InputProblem::SameEmail) => {
            view(StatusCode::BAD_REQUEST, "email_change.same", Some("email"))
        }
        AuthError::InvalidInput(InputProblem::Confirmation) => view(
            StatusCode::BAD_REQUEST,
            "delete_account.confirmation_wrong",
            Some("confirmation"),
        ),
        AuthError::PasskeyFailed => view(StatusCode::BAD_REQUEST, "passkey.invalid", None),
        AuthError::PasskeySuspicious => view(StatusCode::FORBIDDEN, "passkey.suspicious", None),
        AuthError::LastMethod => view(StatusCode::CONFLICT, "security.last_method", None),
        AuthError::LimitReached => view(StatusCode::CONFLICT, "passkey.limit", None),
        AuthError::ResendTooSoon => {
            view(StatusCode::TOO_MANY_REQUESTS, "code.resend_too_soon", None)
        }
        AuthError::AccountExists => view(StatusCode::CONFLICT, "code.account_exists", None),
        AuthError::LinkRequired => view(StatusCode::CONFLICT, "federation.link_required", None),
        AuthError::AlreadyLinked => view(StatusCode::CONFLICT, "federation.already_linked", None),
        AuthError::Provider(_) => view(StatusCode::BAD_GATEWAY, "federation.provider_failed", None),
        AuthError::TooManyRequests => view(
            StatusCode::TOO_MANY_REQUESTS,
            "common.too_many_requests",
            None,
        ),
        AuthError::Overloaded => ErrorView {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: t.get("common.overloaded"),
            field: None,
            retry_after: Some(1),
        },
        AuthError::Internal(reference) => ErrorView {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{} {reference}", t.get("common.error_reference")),
            field: None,
            retry_after: None,
        },
    }
}

/// Renders `page` with the error applied to `state`.
pub(super) fn error_page<V: IntoView + 'static>(
    page: Page,
    err: &AuthError,
    mut form: FormState,
    title_key: &str,
    body: impl FnOnce(FormState) -> V + Send + 'static,
) -> Response {
    let ev = describe_error(page.t(), err);
    form.error = Some(ev.message);
    form.invalid = ev.field;
    let mut page = page.status(ev.status);
    if let Some(s) = ev.retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            page = page.header(RETRY_AFTER, v);
        }
    }
    page.render(title_key, move || body(form))
}

// ---------------------------------------------------------------- request context

pub(super) fn cookie_policy(state: &AppState) -> CookiePolicy {
    CookiePolicy {
        secure: state.config.secure_cookies(),
    }
}

/// Email texts from the message catalogue of the page being answered (locale and branding).
#[derive(Debug)]
struct CatalogueEmails(Texts);

impl EmailTexts for CatalogueEmails {
    fn compose(&self, kind: EmailKind, code: Option<&str>) -> EmailText {
        let text = |part: &str| {
            let t = self.0.get(&format!("email.{}.{part}", kind.key()));
            match code {
                Some(code) => t.replace("{code}", code),
                None => t,
            }
        };
        EmailText {
            subject: text("subject"),
            body: text("body"),
        }
    }
}

fn request_context(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    page: &Page,
) -> RequestContext {
    let ip = client_ip(peer_ip(extensions), headers, &state.config.trusted_proxies);
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    RequestContext {
        application: ACCOUNT_PORTAL.into(),
        client_ip: ip.to_string(),
        user_agent: user_agent.chars().take(512).collect(),
        product_name: page.ctx.branding.product_name.clone(),
        emails: Arc::new(CatalogueEmails(page.ctx.texts.clone())),
        device: cookie_policy(state)
            .read(headers, DEVICE)
            .or_else(|| extensions.get::<security::NewDevice>().map(|d| d.0.clone())),
    }
}

/// The page a POST handler answers with, and who is asking.
pub(super) async fn begin(state: &AppState, incoming: &Incoming) -> (Page, RequestContext) {
    let page = Page::new(state).await;
    let mut ctx = request_context(state, &incoming.headers, &incoming.extensions, &page);
    // A sign-in made for an application is logged under that application.
    if let Some(request_id) = cookie_policy(state).read(&incoming.headers, AUTHORIZE) {
        if let Ok(Some((client, _, _))) = state
            .identity
            .waiting_authorization(&request_id, state.now())
            .await
        {
            ctx.application = client.id;
        }
    }
    (page, ctx)
}

/// What typed values are shown again with an error (bounded like the fields).
fn typed(name: &str, email: &str) -> FormState {
    FormState {
        name: name.chars().take(100).collect(),
        email: email.chars().take(320).collect(),
        ..FormState::default()
    }
}

/// The answer to a request that starts a code flow: on to the code page, or this page again
/// with the error and what was typed.
fn flow_or_error<V: IntoView + 'static>(
    state: &AppState,
    page: Page,
    started: Result<gatehouse_core::identity::FlowStarted, AuthError>,
    form: FormState,
    title_key: &str,
    body: impl FnOnce(FormState) -> V + Send + 'static,
) -> Response {
    match started {
        Ok(flow) => flow_started(state, &flow.flow_id),
        Err(err) => error_page(page, &err, form, title_key, body),
    }
}

/// The parts of a request a POST handler needs besides its form.
pub struct Incoming {
    pub(super) headers: HeaderMap,
    extensions: axum::http::Extensions,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Incoming {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Incoming {
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        })
    }
}

pub(super) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, AuthError> {
    match cookie_policy(state).read(headers, SESSION) {
        Some(token) => state.identity.authenticate(&token, state.now()).await,
        None => Ok(None),
    }
}

/// How long the pending-sign-in cookie lives (as long as the pending sign-in).
pub(super) const PENDING_COOKIE_MAX_AGE_S: i64 = 10 * 60;

pub(super) fn signed_in_response(state: &AppState, signed: SignedIn) -> Response {
    let cookies = cookie_policy(state);
    redirect(
        "/account",
        vec![
            cookies.set(SESSION, signed.token.expose(), None),
            cookies.clear(FLOW),
            cookies.clear(PENDING_SIGN_IN),
        ],
    )
}

/// A passed first factor: signed in, or on to the second factor (no session yet).
pub(super) fn sign_in_outcome_response(state: &AppState, outcome: SignInOutcome) -> Response {
    match outcome {
        SignInOutcome::SignedIn(signed) => signed_in_response(state, *signed),
        SignInOutcome::SecondFactorRequired { pending_id } => {
            let cookies = cookie_policy(state);
            redirect(
                "/sign-in/verify",
                vec![
                    cookies.set(PENDING_SIGN_IN, &pending_id, Some(PENDING_COOKIE_MAX_AGE_S)),
                    cookies.clear(FLOW),
                ],
            )
        }
    }
}

pub(super) fn internal_error_page(page: Page, err: &AuthError) -> Response {
    let ev = describe_error(page.t(), err);
    let title = page.t().get("error.title");
    page.status(ev.status).render(
        "error.title",
        move || view! { <MessagePage title=title message=ev.message/> },
    )
}

// ---------------------------------------------------------------- simple pages

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers).await {
        Ok(Some(_)) => redirect("/account", vec![]),
        _ => redirect("/sign-in", vec![]),
    }
}

pub async fn health(State(state): State<AppState>) -> Response {
    match state.store().count_users().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
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

pub(super) fn flow_started(state: &AppState, flow_id: &str) -> Response {
    redirect(
        "/code",
        vec![cookie_policy(state).set(FLOW, flow_id, Some(FLOW_COOKIE_MAX_AGE_S))],
    )
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

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub(super) code: String,
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

/// The signed-in person of a page: a live session, or the answer that sends the browser to
/// sign in. Handlers take it as an argument, so none can forget the check.
pub struct SignedInUser {
    pub session: Session,
    pub user: User,
}

impl axum::extract::FromRequestParts<AppState> for SignedInUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let (session, user) = require_session(state, &parts.headers).await?;
        Ok(SignedInUser { session, user })
    }
}

/// [`SignedInUser`] whose account meets the tenant's multifactor rule; otherwise the answer is
/// the security-info page, where a second factor is added first.
pub struct EnrolledUser {
    pub session: Session,
    pub user: User,
}

impl axum::extract::FromRequestParts<AppState> for EnrolledUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let (session, user) = require_enrolled_session(state, &parts.headers).await?;
        Ok(EnrolledUser { session, user })
    }
}

/// The signed-in user, or a redirect to the sign-in page.
pub(super) async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Session, User), Response> {
    match current_session(state, headers).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(redirect(
            "/sign-in",
            vec![cookie_policy(state).clear(SESSION)],
        )),
        Err(err) => Err(internal_error_page(Page::new(state).await, &err)),
    }
}

/// The signed-in user of an account page. When the tenant requires a second factor the
/// account lacks, the answer is the security-info page, where one is added first.
pub(super) async fn require_enrolled_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Session, User), Response> {
    let (session, user) = require_session(state, headers).await?;
    match state.identity.needs_enrollment(&user).await {
        Ok(false) => Ok((session, user)),
        Ok(true) => Err(redirect("/account/security?notice=mfa_required", vec![])),
        Err(err) => Err(internal_error_page(Page::new(state).await, &err)),
    }
}

pub async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
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
    let (session, user) = match require_enrolled_session(&state, &headers).await {
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
