//! The pages of the OpenID Connect provider: asking consent for a third-party application, a
//! refused authorization request, and signing out at an application's request.

use leptos::prelude::*;

use crate::shell::texts;

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentData {
    pub request_id: String,
    pub client_name: String,
    pub logo_url: Option<String>,
    /// Scope names; each is explained from the catalogue (`oidc.scope.{name}`).
    pub scopes: Vec<String>,
    pub account_email: String,
}

/// A third-party application asks for access: allow or deny. Both answers are plain forms.
#[component]
pub fn ConsentPage(data: ConsentData) -> impl IntoView {
    let t = texts();
    let title = t.fill("oidc.consent_title", "app", &data.client_name);
    view! {
        {data.logo_url.clone().map(|src| view! { <img class="gh-app-logo" src=src alt="" width="48" height="48"/> })}
        <h1>{title}</h1>
        <p class="gh-lead">{t.fill("oidc.consent_lead", "app", &data.client_name).replace("{email}", &data.account_email)}</p>
        <ul class="gh-scopes" aria-label=t.get("oidc.consent_scopes")>
            {data
                .scopes
                .iter()
                .map(|s| view! { <li>{texts().get(&format!("oidc.scope.{s}"))}</li> })
                .collect_view()}
        </ul>
        <p class="gh-hint">{t.get("oidc.consent_revocable")}</p>
        <form method="post" action="/authorize/consent" class="gh-form">
            <input type="hidden" name="request" value=data.request_id.clone()/>
            <button type="submit" name="decision" value="allow" class="gh-button">{t.get("oidc.consent_allow")}</button>
            <button type="submit" name="decision" value="deny" class="gh-button gh-button-secondary">{t.get("oidc.consent_deny")}</button>
        </form>
    }
}

/// What the terms-of-use page shows.
#[derive(Debug, Clone)]
pub struct TermsData {
    pub version: i64,
    pub title: String,
    /// The text, paragraph by paragraph (blank lines separate them).
    pub paragraphs: Vec<String>,
    pub published: String,
    /// The version the person was reading was replaced meanwhile.
    pub newer: bool,
}

/// The terms of use a policy requires: read, then accept (the sign-in or the application's
/// request goes on) or decline (signed out). Plain forms.
#[component]
pub fn TermsPage(data: TermsData) -> impl IntoView {
    let t = texts();
    let version_line = t
        .fill("terms.version", "version", &data.version.to_string())
        .replace("{date}", &data.published);
    view! {
        <h1>{t.get("terms.title")}</h1>
        {data.newer.then(|| view! { <p class="gh-alert" role="alert">{texts().get("terms.newer")}</p> })}
        <p class="gh-lead">{t.get("terms.lead")}</p>
        <section class="gh-terms" aria-labelledby="terms-heading" tabindex="0">
            <h2 id="terms-heading">{data.title}</h2>
            <p class="gh-hint">{version_line}</p>
            {data.paragraphs.into_iter().map(|p| view! { <p>{p}</p> }).collect_view()}
        </section>
        <form method="post" action="/terms" class="gh-form">
            <input type="hidden" name="version" value=data.version.to_string()/>
            <button type="submit" class="gh-button">{t.get("terms.accept")}</button>
        </form>
        <form method="post" action="/sign-out" class="gh-form">
            <button type="submit" class="gh-button gh-button-secondary">{t.get("terms.decline")}</button>
        </form>
    }
}

/// An authorization request that cannot be answered to the application (unknown application or
/// redirect address): explained here, and nobody is sent anywhere.
#[component]
pub fn AuthorizeErrorPage(message: String, code: String) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("oidc.error_title")}</h1>
        <p class="gh-alert" role="alert">{message}</p>
        <p class="gh-hint">{t.get("oidc.error_code")} " " <code>{code}</code></p>
        <p class="gh-links"><a href="/">{t.get("error.go_home")}</a></p>
    }
}

/// Signing out at an application's request, when the request alone does not prove the
/// application asked: the person confirms.
#[component]
pub fn LogoutConfirmPage(client_name: Option<String>) -> impl IntoView {
    let t = texts();
    let lead = match &client_name {
        Some(name) => t.fill("oidc.logout_lead_app", "app", name),
        None => t.get("oidc.logout_lead"),
    };
    view! {
        <h1>{t.get("oidc.logout_title")}</h1>
        <p class="gh-lead">{lead}</p>
        <form method="post" action="/logout" class="gh-form">
            <button type="submit" class="gh-button">{t.get("oidc.logout_confirm")}</button>
        </form>
        <p class="gh-links"><a href="/account">{t.get("oidc.logout_stay")}</a></p>
    }
}

/// On the way back to the application: the browser follows the `Refresh` header at once; the
/// link is there for anyone whose browser does not.
#[component]
pub fn ReturnPage(url: String) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("oidc.return_title")}</h1>
        <p class="gh-lead">{t.get("oidc.return_lead")}</p>
        <p><a class="gh-button" href=url>{t.get("oidc.return_continue")}</a></p>
    }
}
