//! The pages where customers manage their account itself: its email address (and the undo
//! page the old address's link opens), deleting it, and downloading their data. Plain forms,
//! like every page.

use leptos::prelude::*;

use crate::components::{Field, FormError, Notice};
use crate::shell::texts;

/// The account page's section that leads to these pages.
#[component]
pub fn AccountDataSection() -> impl IntoView {
    let t = texts();
    view! {
        <section aria-labelledby="your-account-heading" class="gh-section">
            <h2 id="your-account-heading">{t.get("account.yours")}</h2>
            <ul class="gh-link-list">
                <li><a href="/account/email">{t.get("email_change.link")}</a></li>
                <li><a href="/account/data" download="gatehouse-account.json">{t.get("account.download")}</a></li>
                <li><a href="/account/delete">{t.get("delete_account.link")}</a></li>
            </ul>
        </section>
    }
}

/// The "confirm it is you" form of a page that needs a recent sign-in; `next` is where the
/// person comes back to.
#[component]
pub fn ReauthSection(has_password: bool, next: &'static str) -> impl IntoView {
    let t = texts();
    let form = if has_password {
        view! {
            <form method="post" action="/account/reauthenticate" class="gh-form">
                <input type="hidden" name="next" value=next/>
                <div class="gh-field">
                    <label for="password">{t.get("common.password")}</label>
                    <input id="password" name="password" type="password" required maxlength="4096"
                        autocomplete="current-password"/>
                </div>
                <button type="submit" class="gh-button">{t.get("security.reauth_submit")}</button>
            </form>
        }
        .into_any()
    } else {
        view! { <p><a href="/sign-in/code">{t.get("security.reauth_with_code")}</a></p> }.into_any()
    };
    view! {
        <section aria-labelledby="reauth-heading" class="gh-section">
            <h2 id="reauth-heading">{t.get("security.reauth_title")}</h2>
            <p>{t.get("account.reauth_lead")}</p>
            {form}
        </section>
    }
}

/// What the email-change page shows.
#[derive(Debug, Clone, Default)]
pub struct EmailChangeData {
    /// The sign-in is recent enough to change the address; otherwise the page asks again.
    pub recent: bool,
    pub has_password: bool,
    pub current: String,
    /// The address a code was sent to, once one was: the page then asks for the code.
    pub pending: Option<String>,
    /// The new address as typed (shown again after an error).
    pub typed: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The field the error is about (`email` or `code`).
    pub invalid: Option<&'static str>,
}

#[component]
pub fn EmailChangePage(data: EmailChangeData) -> impl IntoView {
    let t = texts();
    let invalid = data.invalid;
    view! {
        <h1>{t.get("email_change.title")}</h1>
        <p class="gh-lead">{t.fill("email_change.lead", "email", &data.current)}</p>
        <Notice message=data.notice.clone()/>
        <FormError message=data.error.clone()/>
        {(!data.recent).then(|| view! { <ReauthSection has_password=data.has_password next="/account/email"/> })}
        {data.recent.then(|| match data.pending.clone() {
            Some(address) => view! {
                <p>{t.fill("email_change.sent", "email", &address)}</p>
                <form method="post" action="/account/email/verify" class="gh-form">
                    <Field id="code" label=t.get("code.label") autocomplete="one-time-code"
                        inputmode="numeric" maxlength=12 invalid=invalid == Some("code")/>
                    <button type="submit" class="gh-button">{t.get("email_change.confirm")}</button>
                </form>
                <p class="gh-links"><a href="/account/email?restart=1">{t.get("email_change.other_address")}</a></p>
            }
            .into_any(),
            None => view! {
                <form method="post" action="/account/email" class="gh-form">
                    <Field id="email" label=t.get("email_change.new_label") kind="email"
                        value=data.typed.clone() autocomplete="email" invalid=invalid == Some("email")
                        hint=t.get("email_change.hint")/>
                    <button type="submit" class="gh-button">{t.get("email_change.send")}</button>
                </form>
            }
            .into_any(),
        })}
        <p class="gh-links"><a href="/account">{t.get("common.back_to_account")}</a></p>
    }
}

/// What the page behind the old address's "this wasn't me" link shows.
#[derive(Debug, Clone, Default)]
pub struct EmailUndoData {
    pub token: String,
    /// (address to restore, the account's address now), while the link is live.
    pub change: Option<(String, String)>,
    pub error: Option<String>,
    /// The change was undone.
    pub done: bool,
}

#[component]
pub fn EmailUndoPage(data: EmailUndoData) -> impl IntoView {
    let t = texts();
    let body = if data.done {
        view! {
            <p class="gh-notice" role="status">{t.get("email_undo.done")}</p>
            <p class="gh-links"><a href="/reset">{t.get("email_undo.reset")}</a></p>
        }
        .into_any()
    } else {
        match data.change.clone() {
            Some((old, new)) => view! {
                <p class="gh-lead">{t.fill("email_undo.lead", "old", &old).replace("{new}", &new)}</p>
                <form method="post" action="/account/email/undo" class="gh-form">
                    <input type="hidden" name="token" value=data.token.clone()/>
                    <button type="submit" class="gh-button gh-button-danger">{t.get("email_undo.submit")}</button>
                </form>
            }
            .into_any(),
            None => view! { <p>{t.get("email_undo.dead")}</p> }.into_any(),
        }
    };
    view! {
        <h1>{t.get("email_undo.title")}</h1>
        <FormError message=data.error.clone()/>
        {body}
    }
}

/// What the "this wasn't me" page shows.
#[derive(Debug, Clone, Default)]
pub struct NotMeData {
    pub token: String,
    /// (address, browser) of the reported sign-in, while the link is live.
    pub sign_in: Option<(String, String)>,
    pub error: Option<String>,
    /// The sign-in was reported.
    pub done: bool,
}

#[component]
pub fn NotMePage(data: NotMeData) -> impl IntoView {
    let t = texts();
    let body = if data.done {
        view! {
            <p class="gh-notice" role="status">{t.get("not_me.done")}</p>
            <p class="gh-links"><a href="/reset">{t.get("not_me.reset")}</a></p>
        }
        .into_any()
    } else {
        match data.sign_in.clone() {
            Some((ip, agent)) => view! {
                <p class="gh-lead">{t.fill("not_me.lead", "ip", &ip).replace("{agent}", &agent)}</p>
                <form method="post" action="/account/not-me" class="gh-form">
                    <input type="hidden" name="token" value=data.token.clone()/>
                    <button type="submit" class="gh-button gh-button-danger">{t.get("not_me.submit")}</button>
                </form>
            }
            .into_any(),
            None => view! {
                <p>{t.get("not_me.dead")}</p>
                <p class="gh-links"><a href="/reset">{t.get("not_me.reset")}</a></p>
            }
            .into_any(),
        }
    };
    view! {
        <h1>{t.get("not_me.title")}</h1>
        <FormError message=data.error.clone()/>
        {body}
    }
}

/// What the delete-account page shows.
#[derive(Debug, Clone, Default)]
pub struct DeleteAccountData {
    pub recent: bool,
    pub has_password: bool,
    pub email: String,
    pub error: Option<String>,
}

#[component]
pub fn DeleteAccountPage(data: DeleteAccountData) -> impl IntoView {
    let t = texts();
    let invalid = data.error.is_some();
    view! {
        <h1>{t.get("delete_account.title")}</h1>
        <p class="gh-lead">{t.get("delete_account.lead")}</p>
        <FormError message=data.error.clone()/>
        {if data.recent {
            view! {
                <form method="post" action="/account/delete" class="gh-form">
                    <Field id="confirmation" label=t.fill("delete_account.confirm_label", "email", &data.email)
                        kind="email" autocomplete="off" invalid=invalid/>
                    <button type="submit" class="gh-button gh-button-danger">{t.get("delete_account.submit")}</button>
                </form>
            }
            .into_any()
        } else {
            view! { <ReauthSection has_password=data.has_password next="/account/delete"/> }.into_any()
        }}
        <p class="gh-links"><a href="/account">{t.get("common.back_to_account")}</a></p>
    }
}
