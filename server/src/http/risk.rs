//! The new password a Conditional Access policy requires of an account at risk: the page the
//! portal and an application's request send it to, once multifactor authentication is met.

use axum::extract::State;
use axum::response::Response;
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::pages::{FormState, PasswordRequiredPage};
use gatehouse_core::conditional_access::RiskLevel;
use gatehouse_core::identity::AuthError;
use gatehouse_core::secret::SecretString;

use super::terms::onward;
use super::toolkit::{begin, error_page, internal_error_page, redirect, require_session, Incoming};
use crate::AppState;

pub async fn page(State(state): State<AppState>, incoming: Incoming) -> Response {
    let (_, user) = match require_session(&state, &incoming.headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (page, _) = begin(&state, &incoming).await;
    match state.identity.user_risk(&user.id).await {
        Ok(RiskLevel::None) => onward(&state, &incoming),
        Ok(_) => {
            let form = FormState {
                email: user.email.clone(),
                ..FormState::default()
            };
            page.render("risk_password.title", move || {
                view! { <PasswordRequiredPage state=form/> }
            })
        }
        Err(e) => internal_error_page(page, &e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

pub async fn change(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<PasswordForm>,
) -> Response {
    let (session, user) = match require_session(&state, &incoming.headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (page, ctx) = begin(&state, &incoming).await;
    let password = SecretString::new(form.password);
    match state
        .identity
        .change_password_for_risk(&ctx, &session, &user, &password, state.now())
        .await
    {
        Ok(()) => onward(&state, &incoming),
        // The portal asks the second factor first; an account not at risk has nothing here.
        Err(AuthError::SecondFactorRequired | AuthError::ReauthenticationRequired) => {
            redirect("/account", vec![])
        }
        Err(e @ AuthError::Internal(_)) => internal_error_page(page, &e),
        Err(e) => {
            let form = FormState {
                email: user.email.clone(),
                ..FormState::default()
            };
            error_page(page, &e, form, "risk_password.title", |state| {
                view! { <PasswordRequiredPage state=state/> }
            })
        }
    }
}
