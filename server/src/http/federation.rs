//! Sign-in through other providers, at the edge: the hop to the provider, its answer, the
//! pages that finish a provider sign-up or link a provider to an existing account, and
//! linking and unlinking on the security-info page.

use axum::extract::{Path, Query, State};
use axum::http::header::HeaderName;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::federation::{
    ExternalFinishData, ExternalFinishPage, LinkData, LinkPage, LinkStage, ProviderErrorPage,
    RedirectPage,
};
use gatehouse_core::identity::{
    AuthError, ExternalFinish, ExternalIntent, ExternalOutcome, Provider, ProviderProblem,
};

use super::cookies::{EXTERNAL, FLOW, LINK};
use super::mfa::security_response;
use super::toolkit::SignedInUser;
use super::toolkit::{
    begin, cookie_policy, current_session, describe_error, flow_started, internal_error_page,
    redirect, sign_in_outcome_response, Incoming, Page,
};
use crate::federation::{CallbackParams, CALLBACK_PATH};
use crate::AppState;

/// The round-trip cookie lives as long as the authorization request.
const EXTERNAL_COOKIE_MAX_AGE_S: i64 = 10 * 60;
/// The pending-link cookie lives as long as the pending link.
const LINK_COOKIE_MAX_AGE_S: i64 = 15 * 60;

fn provider_error_page(page: Page, status: StatusCode, message: String) -> Response {
    page.status(status)
        .render("federation.error_title", move || {
            view! { <ProviderErrorPage message=message/> }
        })
}

fn problem_message(page: &Page, provider: &str, problem: ProviderProblem) -> (StatusCode, String) {
    let (status, key) = match problem {
        ProviderProblem::Cancelled => (StatusCode::OK, "federation.cancelled"),
        ProviderProblem::Unavailable => (StatusCode::BAD_GATEWAY, "federation.unavailable"),
        ProviderProblem::Error | ProviderProblem::InvalidResponse => {
            (StatusCode::BAD_GATEWAY, "federation.failed")
        }
    };
    (status, page.t().fill(key, "provider", provider))
}

fn expired(page: Page) -> Response {
    let message = page.t().get("federation.expired");
    provider_error_page(page, StatusCode::BAD_REQUEST, message)
}

/// An error of the identity core on the provider error page.
fn auth_error_page(page: Page, err: &AuthError) -> Response {
    match err {
        AuthError::CodeDead => expired(page),
        AuthError::Internal(_) => internal_error_page(page, err),
        AuthError::AlreadyLinked => {
            let message = page.t().get("federation.already_linked");
            provider_error_page(page, StatusCode::CONFLICT, message)
        }
        _ => {
            let ev = describe_error(page.t(), err);
            provider_error_page(page, ev.status, ev.message)
        }
    }
}

/// Sends the browser to the provider: the request's secrets are stored, the browser gets the
/// round-trip cookie, and the answer's `Refresh` header (and link) lead on to the provider.
async fn round_trip(
    state: &AppState,
    page: Page,
    provider: &Provider,
    intent: ExternalIntent,
    user_id: Option<&str>,
) -> Response {
    let authorization = match state.federation.authorization(provider).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(provider = %provider.id, problem = e.problem.code(), detail = %e.detail, "provider unavailable");
            let (status, message) = problem_message(&page, &provider.display_name, e.problem);
            return provider_error_page(page, status, message);
        }
    };
    let flow_id = match state
        .identity
        .begin_external(
            provider,
            intent,
            user_id,
            &authorization.secrets,
            state.now(),
        )
        .await
    {
        Ok(id) => id,
        Err(err) => return internal_error_page(page, &err),
    };
    let cookies = cookie_policy(state);
    let mut page = page.header(
        axum::http::header::SET_COOKIE,
        cookies.set(EXTERNAL, &flow_id, Some(EXTERNAL_COOKIE_MAX_AGE_S)),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("0;url={}", authorization.url)) {
        page = page.header(HeaderName::from_static("refresh"), v);
    }
    let name = provider.display_name.clone();
    let url = authorization.url;
    page.render("federation.redirect_title", move || {
        view! { <RedirectPage provider=name url=url/> }
    })
}

async fn enabled_provider(
    state: &AppState,
    page: Page,
    id: &str,
) -> Result<(Provider, Page), Response> {
    match state.identity.enabled_provider(id).await {
        Ok(Some(p)) => Ok((p, page)),
        Ok(None) => {
            let message = page.t().get("federation.unknown_provider");
            Err(provider_error_page(page, StatusCode::NOT_FOUND, message))
        }
        Err(err) => Err(internal_error_page(page, &err)),
    }
}

/// "Continue with …" on the sign-in and sign-up pages.
pub async fn start(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let page = Page::new(&state).await;
    let (provider, page) = match enabled_provider(&state, page, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    round_trip(&state, page, &provider, ExternalIntent::SignIn, None).await
}

/// "Link …" on the security-info page (after a recent sign-in).
pub async fn start_link(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state).await;
    if !state.identity.signed_in_recently(&session, state.now()) {
        return security_response(
            &state,
            page,
            &session,
            &user,
            AuthError::ReauthenticationRequired,
        )
        .await;
    }
    let (provider, page) = match enabled_provider(&state, page, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    round_trip(
        &state,
        page,
        &provider,
        ExternalIntent::Link,
        Some(&user.id),
    )
    .await
}

/// Sign in with Apple (and any provider using `response_mode=form_post`) posts its answer
/// from the provider's site. The post changes nothing: it only turns the answer into a GET of
/// the callback, which the browser then makes with its own cookies.
pub async fn callback_post(Form(params): Form<CallbackParams>) -> Response {
    let mut query = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("code", &params.code),
        ("state", &params.state),
        ("iss", &params.iss),
        ("error", &params.error),
        ("error_description", &params.error_description),
        ("user", &params.user),
    ] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    redirect(&format!("{CALLBACK_PATH}?{}", query.finish()), vec![])
}

/// The provider's answer: taken once, only by the browser that started the round trip, then
/// verified, then carried through the sign-in pipeline.
pub async fn callback(
    State(state): State<AppState>,
    incoming: Incoming,
    Query(params): Query<CallbackParams>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let cookies = cookie_policy(&state);
    let flow = cookies.read(&incoming.headers, EXTERNAL);
    let now = state.now();
    let returned = match state
        .identity
        .take_external(flow.as_deref(), params.state.as_deref().unwrap_or(""), now)
        .await
    {
        Ok(r) => r,
        // No round trip of this browser's waits for this answer: nothing is written (a GET
        // anyone can send must not fill the sign-in log).
        Err(AuthError::CodeDead) => return with_cookie(expired(page), cookies.clear(EXTERNAL)),
        Err(err) => return internal_error_page(page, &err),
    };
    let (provider, page) = match enabled_provider(&state, page, &returned.provider_id).await {
        Ok(found) => found,
        Err(response) => return with_cookie(response, cookies.clear(EXTERNAL)),
    };
    let profile = match state
        .federation
        .complete(
            &provider,
            &params,
            &returned.nonce,
            &returned.pkce_verifier,
            now,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(provider = %provider.id, problem = e.problem.code(), detail = %e.detail, "provider sign-in refused");
            if let Err(err) = state
                .identity
                .refuse_external(&ctx, &provider.id, AuthError::Provider(e.problem), now)
                .await
            {
                return internal_error_page(page, &err);
            }
            let (status, message) = problem_message(&page, &provider.display_name, e.problem);
            return with_cookie(
                provider_error_page(page, status, message),
                cookies.clear(EXTERNAL),
            );
        }
    };
    let response = match returned.intent {
        ExternalIntent::Link => {
            let (session, user) = match current_session(&state, &incoming.headers).await {
                Ok(Some(found)) if Some(&found.1.id) == returned.user_id.as_ref() => found,
                Ok(_) => return with_cookie(expired(page), cookies.clear(EXTERNAL)),
                Err(err) => return internal_error_page(page, &err),
            };
            match state
                .identity
                .link_external_now(&ctx, &session, profile, now)
                .await
            {
                Ok(_) => redirect("/account/security?notice=provider_linked", vec![]),
                Err(err) => security_response(&state, page, &session, &user, err).await,
            }
        }
        ExternalIntent::SignIn => match state.identity.sign_in_external(&ctx, profile, now).await {
            Ok(ExternalOutcome::SignIn(outcome)) => sign_in_outcome_response(&state, outcome),
            Ok(ExternalOutcome::NeedsDetails { flow_id }) => redirect(
                "/sign-in/external/finish",
                vec![cookies.set(FLOW, &flow_id, Some(super::toolkit::FLOW_COOKIE_MAX_AGE_S))],
            ),
            Ok(ExternalOutcome::LinkRequired { flow_id }) => redirect(
                "/sign-in/link",
                vec![cookies.set(LINK, &flow_id, Some(LINK_COOKIE_MAX_AGE_S))],
            ),
            Err(err) => auth_error_page(page, &err),
        },
    };
    with_cookie(response, cookies.clear(EXTERNAL))
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response
        .headers_mut()
        .append(axum::http::header::SET_COOKIE, cookie);
    response
}

// ---------------------------------------------------------------- finishing a sign-up

#[derive(Deserialize)]
pub struct FinishForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

async fn finish_data(
    state: &AppState,
    flow: Option<&str>,
) -> Result<ExternalFinishData, AuthError> {
    let pending = state
        .identity
        .pending_external_sign_up(flow.unwrap_or(""), state.now())
        .await?;
    Ok(ExternalFinishData {
        provider: pending.provider_name,
        name: pending.name,
        verified_email: pending.verified_email,
        email: pending.suggested_email.unwrap_or_default(),
        typed_name: String::new(),
        error: None,
        invalid: None,
    })
}

pub async fn finish_page(State(state): State<AppState>, incoming: Incoming) -> Response {
    let page = Page::new(&state).await;
    let flow = cookie_policy(&state).read(&incoming.headers, FLOW);
    match finish_data(&state, flow.as_deref()).await {
        Ok(data) => page.render("federation.finish_title", move || {
            view! { <ExternalFinishPage data=data/> }
        }),
        Err(err) => auth_error_page(page, &err),
    }
}

pub async fn finish(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<FinishForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let flow = cookie_policy(&state).read(&incoming.headers, FLOW);
    let result = state
        .identity
        .finish_external_sign_up(
            &ctx,
            flow.as_deref().unwrap_or(""),
            &form.name,
            &form.email,
            state.now(),
        )
        .await;
    match result {
        Ok(ExternalFinish::SignIn(outcome)) => sign_in_outcome_response(&state, outcome),
        Ok(ExternalFinish::CodeSent(started)) => flow_started(&state, &started.flow_id),
        Err(err @ (AuthError::InvalidInput(_) | AuthError::TooManyRequests)) => {
            let mut data = match finish_data(&state, flow.as_deref()).await {
                Ok(data) => data,
                Err(e) => return auth_error_page(page, &e),
            };
            let ev = describe_error(page.t(), &err);
            data.typed_name = form.name.chars().take(100).collect();
            data.email = form.email.chars().take(320).collect();
            data.error = Some(ev.message);
            data.invalid = ev.field;
            page.status(ev.status)
                .render("federation.finish_title", move || {
                    view! { <ExternalFinishPage data=data/> }
                })
        }
        Err(err) => auth_error_page(page, &err),
    }
}

// ---------------------------------------------------------------- linking to an existing account

pub async fn link_page(State(state): State<AppState>, incoming: Incoming) -> Response {
    let page = Page::new(&state).await;
    let cookies = cookie_policy(&state);
    let Some(flow) = cookies.read(&incoming.headers, LINK) else {
        return expired(page);
    };
    let now = state.now();
    let pending = match state.identity.pending_link(&flow, now).await {
        Ok(p) => p,
        Err(err) => return with_cookie(auth_error_page(page, &err), cookies.clear(LINK)),
    };
    let stage = match current_session(&state, &incoming.headers).await {
        Ok(None) => LinkStage::SignInFirst,
        Ok(Some((session, _))) => match state.identity.may_confirm_link(&session, &flow, now).await
        {
            Ok(true) => LinkStage::Confirm,
            Ok(false) => LinkStage::OtherSession,
            Err(err) => return auth_error_page(page, &err),
        },
        Err(err) => return internal_error_page(page, &err),
    };
    let data = LinkData {
        provider: pending.provider_name,
        account_email: pending.account_email.unwrap_or_default(),
        stage,
        error: None,
    };
    page.render(
        "federation.link_title",
        move || view! { <LinkPage data=data/> },
    )
}

pub async fn confirm_link(
    State(state): State<AppState>,
    SignedInUser { session, .. }: SignedInUser,
    incoming: Incoming,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let cookies = cookie_policy(&state);
    let Some(flow) = cookies.read(&incoming.headers, LINK) else {
        return expired(page);
    };
    match state
        .identity
        .confirm_link(&ctx, &session, &flow, state.now())
        .await
    {
        Ok(_) => redirect(
            "/account/security?notice=provider_linked",
            vec![cookies.clear(LINK)],
        ),
        Err(AuthError::ReauthenticationRequired) => redirect("/sign-in/link", vec![]),
        Err(err) => with_cookie(auth_error_page(page, &err), cookies.clear(LINK)),
    }
}

/// "Do not link": the pending link is dropped.
pub async fn cancel_link(State(state): State<AppState>, incoming: Incoming) -> Response {
    let cookies = cookie_policy(&state);
    if let Some(flow) = cookies.read(&incoming.headers, LINK) {
        if let Err(err) = state.identity.drop_pending_link(&flow, state.now()).await {
            return internal_error_page(Page::new(&state).await, &err);
        }
    }
    let to = match current_session(&state, &incoming.headers).await {
        Ok(Some(_)) => "/account/security?notice=link_cancelled",
        _ => "/sign-in",
    };
    redirect(to, vec![cookies.clear(LINK)])
}

/// "Unlink" on the security-info page.
pub async fn unlink(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    Path(id): Path<String>,
    incoming: Incoming,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .unlink_identity(&ctx, &session, &id, state.now())
        .await
    {
        Ok(_) => redirect("/account/security?notice=provider_unlinked", vec![]),
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}
