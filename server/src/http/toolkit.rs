//! The toolkit every handler shares: rendering a page in the tenant's branding and language,
//! the request context of an attempt, the extractors of the signed-in person, and the answers
//! common to many handlers (redirects, error pages, the end of a sign-in).

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::branding::Branding;
use gatehouse_app::i18n::Texts;
use gatehouse_app::pages::{FormState, MessagePage};
use gatehouse_app::shell::{render_document, PageContext, ProviderLink};
use gatehouse_core::email::EmailProblem;
use gatehouse_core::identity::{
    AuthError, InputProblem, PortalAccess, RequestContext, SignInOutcome, SignedIn, ACCOUNT_PORTAL,
};
use gatehouse_core::mail::{EmailKind, EmailText, EmailTexts};
use gatehouse_core::store::{Session, User};
use gatehouse_core::tokens::random_id;

use super::cookies::{CookiePolicy, AUTHORIZE, DEVICE, FLOW, PENDING_SIGN_IN, SESSION};
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

    pub(super) fn with_branding(
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
        AuthError::BlockedByPolicy => {
            view(StatusCode::FORBIDDEN, "sign_in.blocked_by_policy", None)
        }
        AuthError::StrengthRequired => {
            view(StatusCode::FORBIDDEN, "sign_in.strength_required", None)
        }
        AuthError::SecondFactorRequired
        | AuthError::EnrollmentRequired
        | AuthError::TermsOfUseRequired
        | AuthError::PasswordChangeRequired
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
pub(crate) struct CatalogueEmails(Texts);

impl CatalogueEmails {
    /// The tenant's texts, for emails no request asks for (the daily digest).
    pub(crate) fn of(branding: &gatehouse_app::branding::Branding) -> Self {
        CatalogueEmails(Texts::new(branding.texts.clone(), &branding.product_name))
    }
}

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

pub(super) fn request_context(
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
        policy_results: None,
        sign_in_id: None,
        sign_in_risk: None,
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
pub(super) fn typed(name: &str, email: &str) -> FormState {
    FormState {
        name: name.chars().take(100).collect(),
        email: email.chars().take(320).collect(),
        ..FormState::default()
    }
}

/// The answer to a request that starts a code flow: on to the code page, or this page again
/// with the error and what was typed.
pub(super) fn flow_or_error<V: IntoView + 'static>(
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

impl Incoming {
    /// The client's address (the peer, or what a trusted proxy says it forwarded).
    pub(super) fn client_ip(&self, state: &AppState) -> std::net::IpAddr {
        client_ip(
            peer_ip(&self.extensions),
            &self.headers,
            &state.config.trusted_proxies,
        )
    }
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

/// The session cookie's lifetime: the browser session, unless a Conditional Access session
/// control makes it persistent (then the session's absolute lifetime).
pub(super) fn session_cookie_max_age(state: &AppState, signed: &SignedIn) -> Option<i64> {
    signed
        .persistent
        .then_some(state.config.session_absolute_hours * 3600)
}

pub(super) fn signed_in_response(state: &AppState, signed: SignedIn) -> Response {
    let cookies = cookie_policy(state);
    let max_age = session_cookie_max_age(state, &signed);
    redirect(
        "/account",
        vec![
            cookies.set(SESSION, signed.token.expose(), max_age),
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
        let (session, user) =
            require_enrolled_session(state, &parts.headers, &parts.extensions).await?;
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
    extensions: &axum::http::Extensions,
) -> Result<(Session, User), Response> {
    let (session, user) = require_session(state, headers).await?;
    portal_gate(state, headers, extensions, &session, &user, false).await?;
    Ok((session, user))
}

/// What an account must do before it uses the portal (and the console): add the second
/// factor the tenant requires (to the security-info page), then accept the terms of use a
/// policy requires there (to the terms page). A policy that blocks the session now ends it.
pub(super) async fn portal_gate(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    session: &Session,
    user: &User,
    console: bool,
) -> Result<(), Response> {
    let now = state.now();
    match state.identity.needs_enrollment_in_portal(user, now).await {
        Ok(false) => {}
        Ok(true) => return Err(redirect("/account/security?notice=mfa_required", vec![])),
        Err(err) => return Err(internal_error_page(Page::new(state).await, &err)),
    }
    let page = Page::new(state).await;
    let ctx = request_context(state, headers, extensions, &page);
    let message_page = |page: Page, key: &str, status: StatusCode, cookies: Vec<HeaderValue>| {
        let title = page.t().get("sign_in.title");
        let message = page.t().get(key);
        let mut page = page.status(status);
        for c in cookies {
            page = page.header(SET_COOKIE, c);
        }
        page.render("sign_in.title", move || {
            view! { <MessagePage title=title message=message/> }
        })
    };
    match state
        .identity
        .portal_access(&ctx, user, session, console, now)
        .await
    {
        Ok(PortalAccess::Allowed) => Ok(()),
        Ok(PortalAccess::AcceptTerms) => Err(redirect("/terms", vec![])),
        Ok(PortalAccess::ChangePassword) => Err(redirect("/account/password/required", vec![])),
        Ok(PortalAccess::SecondFactor { pending_id }) => Err(redirect(
            "/sign-in/verify",
            vec![cookie_policy(state).set(
                PENDING_SIGN_IN,
                &pending_id,
                Some(PENDING_COOKIE_MAX_AGE_S),
            )],
        )),
        Ok(PortalAccess::StrengthRequired) => Err(message_page(
            page,
            "sign_in.strength_required",
            StatusCode::FORBIDDEN,
            vec![],
        )),
        Ok(PortalAccess::Blocked) => Err(message_page(
            page,
            "sign_in.blocked_by_policy",
            StatusCode::FORBIDDEN,
            vec![cookie_policy(state).clear(SESSION)],
        )),
        Err(err) => Err(internal_error_page(page, &err)),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub(super) code: String,
}

pub(super) fn flow_started(state: &AppState, flow_id: &str) -> Response {
    redirect(
        "/code",
        vec![cookie_policy(state).set(FLOW, flow_id, Some(FLOW_COOKIE_MAX_AGE_S))],
    )
}
