//! The pages and parts of sign-in through other providers: the provider buttons, the hop to
//! the provider, finishing a provider sign-up, linking to an existing account, and the linked
//! accounts on the security-info page.

use leptos::prelude::*;

use crate::components::{Field, FormError};
use crate::shell::{providers, texts, ProviderLink};

/// The mark beside a provider's name: a letter in the provider's colours (themeable through
/// the `--gh-provider-*` variables), hidden from assistive technology since the name is said.
fn mark(kind: &str, name: &str) -> String {
    match kind {
        "google" => "G".into(),
        "microsoft" => "M".into(),
        "apple" => "\u{F8FF}".into(),
        "facebook" => "f".into(),
        "github" => "GH".into(),
        _ => name
            .chars()
            .find(|c| c.is_alphanumeric())
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_else(|| "?".into()),
    }
}

/// One button per enabled provider: "Continue with Google". Each is a small form, so it works
/// without script; the server answers with the hop to the provider.
#[component]
pub fn ProviderButtons() -> impl IntoView {
    let list = providers();
    if list.is_empty() {
        return None;
    }
    let t = texts();
    Some(view! {
        <section class="gh-providers" aria-labelledby="providers-heading">
            <h2 id="providers-heading" class="gh-divider"><span>{t.get("federation.or")}</span></h2>
            <ul class="gh-provider-list">
                {list
                    .into_iter()
                    .map(|p| {
                        let label = texts().fill("federation.continue_with", "provider", &p.name);
                        view! {
                            <li>
                                <form method="post" action=format!("/sign-in/external/{}", p.id)>
                                    <button type="submit" class=format!("gh-button gh-provider gh-provider-{}", p.kind)>
                                        <span class="gh-provider-mark" aria-hidden="true">{mark(&p.kind, &p.name)}</span>
                                        <span>{label}</span>
                                    </button>
                                </form>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    })
}

/// The hop to the provider: the browser follows the `Refresh` header at once; the link is
/// there for anyone whose browser does not.
#[component]
pub fn RedirectPage(provider: String, url: String) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.fill("federation.redirect_title", "provider", &provider)}</h1>
        <p class="gh-lead">{t.fill("federation.redirect_lead", "provider", &provider)}</p>
        <p><a class="gh-button" href=url>{t.fill("federation.continue_with", "provider", &provider)}</a></p>
    }
}

/// A provider could not sign the person in.
#[component]
pub fn ProviderErrorPage(message: String) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("federation.error_title")}</h1>
        <p class="gh-alert" role="alert">{message}</p>
        <p class="gh-links">
            <a href="/sign-in">{t.get("federation.back_to_sign_in")}</a>
            <a href="/sign-up">{t.get("sign_in.create")}</a>
        </p>
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExternalFinishData {
    pub provider: String,
    /// The name from the provider, when it gave one (not asked again).
    pub name: Option<String>,
    /// The email the provider proved (not asked again).
    pub verified_email: Option<String>,
    /// What the email field shows.
    pub email: String,
    /// What the name field shows.
    pub typed_name: String,
    pub error: Option<String>,
    pub invalid: Option<&'static str>,
}

/// Finishing a provider sign-up: only what the provider did not give.
#[component]
pub fn ExternalFinishPage(data: ExternalFinishData) -> impl IntoView {
    let t = texts();
    let lead = match &data.verified_email {
        Some(email) => t
            .fill(
                "federation.finish_lead_verified",
                "provider",
                &data.provider,
            )
            .replace("{email}", email),
        None => t.fill("federation.finish_lead", "provider", &data.provider),
    };
    let name_field = data.name.is_none().then(|| {
        let t = texts();
        view! {
            <Field id="name" label=t.get("common.name") value=data.typed_name.clone() autocomplete="name"
                maxlength=100 invalid=data.invalid == Some("name")/>
        }
    });
    let email_field = data.verified_email.is_none().then(|| {
        let t = texts();
        view! {
            <Field id="email" label=t.get("common.email") kind="email" value=data.email.clone()
                autocomplete="email" hint=t.get("federation.email_hint") invalid=data.invalid == Some("email")/>
        }
    });
    view! {
        <h1>{t.get("federation.finish_title")}</h1>
        <p class="gh-lead">{lead}</p>
        <FormError message=data.error.clone()/>
        <form method="post" action="/sign-in/external/finish" class="gh-form">
            {name_field}
            {email_field}
            <button type="submit" class="gh-button">{t.get("federation.finish_submit")}</button>
        </form>
        <p class="gh-links"><a href="/sign-in">{t.get("federation.back_to_sign_in")}</a></p>
    }
}

/// Where a pending link stands for this browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStage {
    /// Nobody is signed in: prove the account first.
    SignInFirst,
    /// The right account was just proven: confirm.
    Confirm,
    /// Someone is signed in, but not as the account the link waits for (or not since the
    /// round trip to the provider).
    OtherSession,
}

#[derive(Debug, Clone)]
pub struct LinkData {
    pub provider: String,
    pub account_email: String,
    pub stage: LinkStage,
    pub error: Option<String>,
}

/// Linking a provider to the existing account with the same email, once that account has
/// been proven in this browser.
#[component]
pub fn LinkPage(data: LinkData) -> impl IntoView {
    let t = texts();
    let body = match data.stage {
        LinkStage::SignInFirst => view! {
            <p class="gh-lead">{t.fill("federation.link_lead", "provider", &data.provider).replace("{email}", &data.account_email)}</p>
            <p><a class="gh-button" href="/sign-in">{t.get("federation.link_sign_in")}</a></p>
            <form method="post" action="/sign-in/link/cancel">
                <button type="submit" class="gh-button gh-button-secondary">{t.get("federation.link_cancel")}</button>
            </form>
        }
        .into_any(),
        LinkStage::Confirm => view! {
            <p class="gh-lead">{t.fill("federation.link_confirm_lead", "provider", &data.provider).replace("{email}", &data.account_email)}</p>
            <form method="post" action="/sign-in/link" class="gh-form">
                <button type="submit" class="gh-button">{t.fill("federation.link_confirm", "provider", &data.provider)}</button>
            </form>
            <form method="post" action="/sign-in/link/cancel">
                <button type="submit" class="gh-button gh-button-secondary">{t.get("federation.link_cancel")}</button>
            </form>
        }
        .into_any(),
        LinkStage::OtherSession => view! {
            <p class="gh-lead">{t.get("federation.link_other_session").replace("{email}", &data.account_email)}</p>
            <form method="post" action="/sign-out">
                <button type="submit" class="gh-button">{t.get("account.sign_out")}</button>
            </form>
            <form method="post" action="/sign-in/link/cancel">
                <button type="submit" class="gh-button gh-button-secondary">{t.get("federation.link_cancel")}</button>
            </form>
        }
        .into_any(),
    };
    view! {
        <h1>{t.fill("federation.link_title", "provider", &data.provider)}</h1>
        <FormError message=data.error.clone()/>
        {body}
    }
}

/// A linked provider account on the security-info page.
#[derive(Debug, Clone)]
pub struct LinkedRow {
    pub id: String,
    pub provider: String,
    pub kind: String,
    pub email: Option<String>,
    pub linked: String,
    pub last_used: String,
}

/// The linked provider accounts, with unlink buttons and buttons to link more (both only after
/// a recent sign-in).
#[component]
pub fn LinkedAccounts(
    rows: Vec<LinkedRow>,
    available: Vec<ProviderLink>,
    recent: bool,
) -> impl IntoView {
    let t = texts();
    let empty = rows.is_empty();
    view! {
        <section aria-labelledby="linked-heading" class="gh-section">
            <h2 id="linked-heading">{t.get("federation.linked_title")}</h2>
            {empty.then(|| view! { <p>{texts().get("federation.linked_none")}</p> })}
            <ul class="gh-sessions" aria-label=t.get("federation.linked_title")>
                {rows
                    .into_iter()
                    .map(|r| {
                        let t = texts();
                        let title = match &r.email {
                            Some(email) => format!("{} ({email})", r.provider),
                            None => r.provider.clone(),
                        };
                        view! {
                            <li class="gh-session">
                                <div>
                                    <p class="gh-device">
                                        <span class=format!("gh-provider-mark gh-provider-{}", r.kind) aria-hidden="true">{mark(&r.kind, &r.provider)}</span>
                                        " " {title.clone()}
                                    </p>
                                    <dl>
                                        <dt>{t.get("federation.linked_on")}</dt><dd>{r.linked.clone()}</dd>
                                        <dt>{t.get("security.last_used")}</dt><dd>{r.last_used.clone()}</dd>
                                    </dl>
                                </div>
                                {recent.then(|| view! {
                                    <form method="post" action=format!("/account/security/linked/{}/unlink", r.id)>
                                        <button type="submit" class="gh-button gh-button-secondary"
                                            aria-label=format!("{} {}", texts().get("federation.unlink"), title)>
                                            {texts().get("federation.unlink")}
                                        </button>
                                    </form>
                                })}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            {(recent && !available.is_empty()).then(|| view! {
                <ul class="gh-provider-list" aria-label=texts().get("federation.link_more")>
                    {available
                        .into_iter()
                        .map(|p| view! {
                            <li>
                                <form method="post" action=format!("/account/security/providers/{}/link", p.id)>
                                    <button type="submit" class=format!("gh-button gh-button-secondary gh-provider gh-provider-{}", p.kind)>
                                        <span class="gh-provider-mark" aria-hidden="true">{mark(&p.kind, &p.name)}</span>
                                        <span>{texts().fill("federation.link_with", "provider", &p.name)}</span>
                                    </button>
                                </form>
                            </li>
                        })
                        .collect_view()}
                </ul>
            })}
            <p class="gh-hint">{t.get("federation.email_always")}</p>
        </section>
    }
}
