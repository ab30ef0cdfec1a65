//! Passkey handlers. The ceremonies are driven by the passkey island in JSON: a POST opens a
//! ceremony and answers `{ceremony, options}`; a POST of `{ceremony, credential}` completes it
//! and answers `{redirect}` (with the session cookie when it signs in) or `{error}` with the
//! status of the error. Renaming and removing are plain forms.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use gatehouse_core::identity::{AuthError, PasskeyCeremony, SignInOutcome, SignedIn};
use gatehouse_core::store::{Session, User};

use super::cookies::{FLOW, PENDING_SIGN_IN, SESSION};
use super::toolkit::SignedInUser;
use super::toolkit::{
    begin, cookie_policy, current_session, describe_error, redirect, Incoming, Page,
};
use crate::AppState;

/// The browser's answer to a ceremony.
#[derive(Deserialize)]
pub struct Answer {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: serde_json::Value,
    /// The new passkey's name (registration only).
    #[serde(default)]
    name: String,
}

fn json_response(
    status: StatusCode,
    body: serde_json::Value,
    cookies: Vec<HeaderValue>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        h.append(SET_COOKIE, c);
    }
    response
}

/// An error as the island shows it: the page's message for it, with its status.
fn json_error(page: &Page, err: &AuthError) -> Response {
    let ev = describe_error(page.t(), err);
    json_response(ev.status, json!({ "error": ev.message }), vec![])
}

/// [`json_error`] for a request that has no page yet.
async fn json_error_new_page(state: &AppState, err: &AuthError) -> Response {
    json_error(&Page::new(state).await, err)
}

fn ceremony_json(c: PasskeyCeremony) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "ceremony": c.id, "options": c.options }),
        vec![],
    )
}

async fn ceremony_response(
    state: &AppState,
    started: Result<PasskeyCeremony, AuthError>,
) -> Response {
    match started {
        Ok(c) => ceremony_json(c),
        Err(err) => json_error_new_page(state, &err).await,
    }
}

fn signed_in_json(state: &AppState, signed: SignedIn) -> Response {
    let cookies = cookie_policy(state);
    let max_age = super::toolkit::session_cookie_max_age(state, &signed);
    json_response(
        StatusCode::OK,
        json!({ "redirect": "/account" }),
        vec![
            cookies.set(SESSION, signed.token.expose(), max_age),
            cookies.clear(FLOW),
            cookies.clear(PENDING_SIGN_IN),
        ],
    )
}

/// The signed-in account of a JSON request (the passkey island's), or the JSON answer for a
/// request without one.
pub struct JsonSignedIn {
    pub session: Session,
    pub user: User,
}

impl axum::extract::FromRequestParts<AppState> for JsonSignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        let (session, user) = json_session(state, &parts.headers).await?;
        Ok(JsonSignedIn { session, user })
    }
}

/// The signed-in account of a JSON request, or the answer for a request without one.
async fn json_session(state: &AppState, headers: &HeaderMap) -> Result<(Session, User), Response> {
    match current_session(state, headers).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(json_response(
            StatusCode::UNAUTHORIZED,
            json!({ "error": Page::new(state).await.t().get("second_factor.dead"), "redirect": "/sign-in" }),
            vec![],
        )),
        Err(err) => Err(json_error_new_page(state, &err).await),
    }
}

// ---------------------------------------------------------------- passwordless sign-in

pub async fn sign_in_options(State(state): State<AppState>, incoming: Incoming) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .begin_passkey_sign_in(&ctx, state.now())
        .await
    {
        Ok(c) => ceremony_json(c),
        Err(err) => json_error(&page, &err),
    }
}

pub async fn sign_in(
    State(state): State<AppState>,
    incoming: Incoming,
    Json(answer): Json<Answer>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .finish_passkey_sign_in(
            &ctx,
            &answer.ceremony,
            &answer.credential.to_string(),
            state.now(),
        )
        .await
    {
        Ok(SignInOutcome::SignedIn(signed)) => signed_in_json(&state, *signed),
        Ok(SignInOutcome::SecondFactorRequired { pending_id }) => {
            // The decision step wants more than the passkey proved: the next page asks for it.
            let cookies = cookie_policy(&state);
            json_response(
                StatusCode::OK,
                json!({ "redirect": "/sign-in/verify" }),
                vec![
                    cookies.set(
                        PENDING_SIGN_IN,
                        &pending_id,
                        Some(super::toolkit::PENDING_COOKIE_MAX_AGE_S),
                    ),
                    cookies.clear(FLOW),
                ],
            )
        }
        Err(err) => json_error(&page, &err),
    }
}

// ---------------------------------------------------------------- second factor

pub async fn second_factor_options(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let pending = cookie_policy(&state)
        .read(&headers, PENDING_SIGN_IN)
        .unwrap_or_default();
    let started = state
        .identity
        .begin_passkey_second_factor(&pending, state.now())
        .await;
    ceremony_response(&state, started).await
}

pub async fn second_factor(
    State(state): State<AppState>,
    incoming: Incoming,
    Json(answer): Json<Answer>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let pending = cookie_policy(&state)
        .read(&incoming.headers, PENDING_SIGN_IN)
        .unwrap_or_default();
    match state
        .identity
        .verify_passkey_second_factor(
            &ctx,
            &pending,
            &answer.ceremony,
            &answer.credential.to_string(),
            state.now(),
        )
        .await
    {
        Ok(signed) => signed_in_json(&state, signed),
        Err(err) => json_error(&page, &err),
    }
}

// ---------------------------------------------------------------- security info

pub async fn registration_options(
    State(state): State<AppState>,
    JsonSignedIn { session, user }: JsonSignedIn,
) -> Response {
    let started = state
        .identity
        .begin_passkey_registration(&session, &user, state.now())
        .await;
    ceremony_response(&state, started).await
}

pub async fn register(
    State(state): State<AppState>,
    JsonSignedIn { session, user }: JsonSignedIn,
    incoming: Incoming,
    Json(answer): Json<Answer>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .finish_passkey_registration(
            &ctx,
            &session,
            &user,
            &answer.ceremony,
            &answer.name,
            &answer.credential.to_string(),
            state.now(),
        )
        .await
    {
        Ok(_) => json_response(
            StatusCode::OK,
            json!({ "redirect": "/account/security?notice=passkey_added" }),
            vec![],
        ),
        Err(err) => json_error(&page, &err),
    }
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

pub async fn rename(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Path(id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .rename_passkey(&ctx, &user, &id, &form.name, state.now())
        .await
    {
        Ok(()) => redirect("/account/security?notice=passkey_renamed", vec![]),
        Err(err) => super::mfa::security_response(&state, page, &session, &user, err).await,
    }
}

pub async fn remove(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let result = state
        .identity
        .remove_passkey(&ctx, &session, &user, &id, state.now())
        .await;
    super::mfa::removal_response(
        &state,
        page,
        &session,
        &user,
        result,
        "/account/security?notice=passkey_removed",
    )
    .await
}
