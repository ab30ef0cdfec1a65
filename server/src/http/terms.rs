//! The terms-of-use page: shown when a Conditional Access policy requires the terms and the
//! account has not accepted their current version, before the account portal or an
//! application's request goes on.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::oidc::{TermsData, TermsPage};
use gatehouse_app::pages::format_time;
use gatehouse_core::store::TermsRecord;

use super::cookies::AUTHORIZE;
use super::toolkit::{
    begin, cookie_policy, internal_error_page, redirect, require_session, Incoming, Page,
};
use crate::AppState;

fn terms_page(page: Page, terms: TermsRecord, newer: bool) -> Response {
    let data = TermsData {
        version: terms.version,
        title: terms.title,
        paragraphs: terms
            .body
            .split("\n\n")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        published: format_time(terms.published_at),
        newer,
    };
    let page = if newer {
        page.status(StatusCode::CONFLICT)
    } else {
        page
    };
    page.render("terms.title", move || view! { <TermsPage data=data/> })
}

/// Where the person goes once nothing is left to accept: the waiting application's request,
/// or the account page.
pub(super) fn onward(state: &AppState, incoming: &Incoming) -> Response {
    if cookie_policy(state)
        .read(&incoming.headers, AUTHORIZE)
        .is_some()
    {
        redirect("/authorize/continue", vec![])
    } else {
        redirect("/account", vec![])
    }
}

pub async fn terms(State(state): State<AppState>, incoming: Incoming) -> Response {
    let (_, user) = match require_session(&state, &incoming.headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .terms_to_accept(&ctx, &user, &ctx.application, state.now())
        .await
    {
        Ok(Some(terms)) => terms_page(page, terms, false),
        Ok(None) => onward(&state, &incoming),
        Err(e) => internal_error_page(page, &e),
    }
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    version: String,
}

pub async fn accept(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<AcceptForm>,
) -> Response {
    let (_, user) = match require_session(&state, &incoming.headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    let version = form.version.trim().parse::<i64>().unwrap_or(0);
    match state.identity.accept_terms(&ctx, &user, version, now).await {
        Ok(true) => onward(&state, &incoming),
        Ok(false) => match state.identity.terms_of_use().await {
            Ok(Some(current)) => terms_page(page, current, true),
            Ok(None) => onward(&state, &incoming),
            Err(e) => internal_error_page(page, &e),
        },
        Err(e) => internal_error_page(page, &e),
    }
}
