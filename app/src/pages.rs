//! The pages. Each is a plain server-rendered form that posts to its own address; the server
//! answers with the next page or with this page again carrying an error and the values typed.

use leptos::prelude::*;

use crate::account::AccountDataSection;
use crate::components::{Field, FormError, Notice, PasswordField};
use crate::federation::{LinkedAccounts, LinkedRow, ProviderButtons};
use crate::passkey::{PasskeyButton, PasskeyTexts};
use crate::shell::texts;
use crate::shell::ProviderLink;

/// The passkey island's texts, with `button` as its label.
fn passkey_texts(button: &str) -> PasskeyTexts {
    let t = texts();
    PasskeyTexts {
        button: t.get(button),
        working: t.get("passkey.working"),
        cancelled: t.get("passkey.cancelled"),
        unsupported: t.get("passkey.unsupported"),
        failed: t.get("passkey.failed"),
    }
}

#[derive(Debug, Clone, Default)]
pub struct FormState {
    pub name: String,
    pub email: String,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// The field the error is about (`name`, `email`, `password`, `code`).
    pub invalid: Option<&'static str>,
}

impl FormState {
    fn is_invalid(&self, field: &str) -> bool {
        self.invalid == Some(field)
    }
}

fn password_field(
    id: &str,
    label: String,
    autocomplete: &str,
    hint: Option<String>,
    invalid: bool,
) -> impl IntoView {
    let t = texts();
    view! {
        <PasswordField
            id=id.to_string()
            label=label
            autocomplete=autocomplete.to_string()
            show_label=t.get("common.show_password")
            hint=hint
            invalid=invalid
        />
    }
}

#[component]
pub fn SignInPage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("sign_in.title")}</h1>
        <p class="gh-lead">{t.get("sign_in.lead")}</p>
        <FormError message=state.error.clone()/>
        <form method="post" action="/sign-in" class="gh-form">
            <Field id="email" label=t.get("common.email") kind="email" value=state.email.clone()
                autocomplete="username webauthn" invalid=state.error.is_some()/>
            {password_field("password", t.get("common.password"), "current-password", None, state.error.is_some())}
            <button type="submit" class="gh-button">{t.get("sign_in.submit")}</button>
        </form>
        <PasskeyButton
            mode="get".to_string()
            options_url="/sign-in/passkey/options".to_string()
            finish_url="/sign-in/passkey".to_string()
            texts=passkey_texts("passkey.sign_in")
            autofill=true
            name_input=None
            class="gh-button gh-button-secondary".to_string()
        />
        <ProviderButtons/>
        <p class="gh-links">
            <a href="/reset">{t.get("sign_in.forgot")}</a>
            <a href="/sign-in/code">{t.get("sign_in.use_code")}</a>
        </p>
        <p class="gh-switch">{t.get("sign_in.no_account")} " " <a href="/sign-up">{t.get("sign_in.create")}</a></p>
    }
}

#[component]
pub fn SignInCodePage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("sign_in_code.title")}</h1>
        <p class="gh-lead">{t.get("sign_in_code.lead")}</p>
        <FormError message=state.error.clone()/>
        <form method="post" action="/sign-in/code" class="gh-form">
            <Field id="email" label=t.get("common.email") kind="email" value=state.email.clone()
                autocomplete="username" invalid=state.is_invalid("email")/>
            <button type="submit" class="gh-button">{t.get("sign_in_code.submit")}</button>
        </form>
        <p class="gh-links"><a href="/sign-in">{t.get("sign_in_code.use_password")}</a></p>
    }
}

#[component]
pub fn SignUpPage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("sign_up.title")}</h1>
        <p class="gh-lead">{t.get("sign_up.lead")}</p>
        <FormError message=state.error.clone()/>
        <form method="post" action="/sign-up" class="gh-form">
            <Field id="name" label=t.get("common.name") value=state.name.clone() autocomplete="name"
                maxlength=100 invalid=state.is_invalid("name")/>
            <Field id="email" label=t.get("common.email") kind="email" value=state.email.clone()
                autocomplete="email" invalid=state.is_invalid("email")/>
            {password_field("password", t.get("common.password"), "new-password",
                Some(t.get("sign_up.password_hint")), state.is_invalid("password"))}
            <button type="submit" class="gh-button">{t.get("sign_up.submit")}</button>
        </form>
        <p class="gh-links"><a href="/sign-up/code">{t.get("sign_up.use_code")}</a></p>
        <ProviderButtons/>
        <p class="gh-switch">{t.get("sign_up.have_account")} " " <a href="/sign-in">{t.get("sign_up.sign_in")}</a></p>
    }
}

#[component]
pub fn SignUpCodePage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("sign_up_code.title")}</h1>
        <p class="gh-lead">{t.get("sign_up_code.lead")}</p>
        <FormError message=state.error.clone()/>
        <form method="post" action="/sign-up/code" class="gh-form">
            <Field id="name" label=t.get("common.name") value=state.name.clone() autocomplete="name"
                maxlength=100 invalid=state.is_invalid("name")/>
            <Field id="email" label=t.get("common.email") kind="email" value=state.email.clone()
                autocomplete="email" invalid=state.is_invalid("email")/>
            <button type="submit" class="gh-button">{t.get("sign_up_code.submit")}</button>
        </form>
        <p class="gh-links"><a href="/sign-up">{t.get("sign_up_code.use_password")}</a></p>
    }
}

/// The code entry page. With no live flow it only offers to start again.
#[component]
pub fn CodePage(state: FormState, live: bool) -> impl IntoView {
    let t = texts();
    if !live {
        return view! {
            <h1>{t.get("code.title")}</h1>
            <FormError message=Some(state.error.clone().unwrap_or_else(|| t.get("code.dead")))/>
            <p class="gh-links"><a href="/sign-in">{t.get("code.start_again")}</a></p>
        }
        .into_any();
    }
    view! {
        <h1>{t.get("code.title")}</h1>
        <p class="gh-lead">{t.fill("code.lead", "email", &state.email)}</p>
        <Notice message=state.notice.clone()/>
        <FormError message=state.error.clone()/>
        <form method="post" action="/code" class="gh-form">
            <Field id="code" label=t.get("code.label") autocomplete="one-time-code" inputmode="numeric"
                maxlength=12 invalid=state.is_invalid("code")/>
            <button type="submit" class="gh-button">{t.get("code.submit")}</button>
        </form>
        <form method="post" action="/code/resend" class="gh-form gh-secondary-form">
            <button type="submit" class="gh-button gh-button-secondary">{t.get("code.resend")}</button>
        </form>
    }
    .into_any()
}

#[component]
pub fn ResetPage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("reset.title")}</h1>
        <p class="gh-lead">{t.get("reset.lead")}</p>
        <FormError message=state.error.clone()/>
        <form method="post" action="/reset" class="gh-form">
            <Field id="email" label=t.get("common.email") kind="email" value=state.email.clone()
                autocomplete="username" invalid=state.is_invalid("email")/>
            <button type="submit" class="gh-button">{t.get("reset.submit")}</button>
        </form>
        <p class="gh-links"><a href="/sign-in">{t.get("reset.back")}</a></p>
    }
}

#[component]
pub fn NewPasswordPage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("new_password.title")}</h1>
        <FormError message=state.error.clone()/>
        <form method="post" action="/reset/new-password" class="gh-form">
            {password_field("password", t.get("new_password.label"), "new-password",
                Some(t.get("sign_up.password_hint")), state.is_invalid("password"))}
            <button type="submit" class="gh-button">{t.get("new_password.submit")}</button>
        </form>
    }
}

/// The new password a Conditional Access policy requires of an account at risk, after
/// multifactor authentication. No old password: it may be what leaked.
#[component]
pub fn PasswordRequiredPage(state: FormState) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("risk_password.title")}</h1>
        <p class="gh-lead">{t.get("risk_password.lead")}</p>
        <FormError message=state.error.clone()/>
        <form method="post" action="/account/password/required" class="gh-form">
            <input type="email" name="username" autocomplete="username" value=state.email.clone() hidden=true readonly=true/>
            {password_field("password", t.get("new_password.label"), "new-password",
                Some(t.get("sign_up.password_hint")), state.is_invalid("password"))}
            <button type="submit" class="gh-button">{t.get("risk_password.submit")}</button>
        </form>
    }
}

/// One row of the session list.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub signed_in: String,
    pub last_active: String,
    pub current: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AccountData {
    pub display_name: String,
    pub email: String,
    pub has_password: bool,
    pub sessions: Vec<SessionRow>,
    /// The applications with access to the account.
    pub apps: Vec<ConnectedAppRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Which form the error belongs to: `profile` or `password`.
    pub error_form: Option<&'static str>,
}

/// An application with access to the account, as the account page lists it.
#[derive(Debug, Clone, Default)]
pub struct ConnectedAppRow {
    pub client_id: String,
    pub name: String,
    /// The scopes, explained.
    pub access: Vec<String>,
    pub since: String,
}

#[component]
fn ConnectedApps(apps: Vec<ConnectedAppRow>) -> impl IntoView {
    let t = texts();
    let empty = apps.is_empty();
    view! {
        <section aria-labelledby="apps-heading" class="gh-section">
            <h2 id="apps-heading">{t.get("account.apps")}</h2>
            {empty.then(|| view! { <p>{texts().get("account.apps_none")}</p> })}
            <ul class="gh-sessions" aria-label=t.get("account.apps")>
                {apps
                    .into_iter()
                    .map(|a| {
                        let t = texts();
                        view! {
                            <li class="gh-session">
                                <div>
                                    <p class="gh-device">{a.name.clone()}</p>
                                    <dl>
                                        <dt>{t.get("account.apps_access")}</dt><dd>{a.access.join(", ")}</dd>
                                        <dt>{t.get("account.apps_since")}</dt><dd>{a.since.clone()}</dd>
                                    </dl>
                                </div>
                                <form method="post" action=format!("/account/apps/{}/remove", a.client_id)>
                                    <button type="submit" class="gh-button gh-button-secondary"
                                        aria-label=format!("{} {}", t.get("account.apps_remove"), a.name)>
                                        {t.get("account.apps_remove")}
                                    </button>
                                </form>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

#[component]
pub fn AccountPage(data: AccountData) -> impl IntoView {
    let t = texts();
    let profile_error = (data.error_form == Some("profile"))
        .then(|| data.error.clone())
        .flatten();
    let password_error = (data.error_form == Some("password"))
        .then(|| data.error.clone())
        .flatten();
    let sessions = data.sessions.clone();
    view! {
        <div class="gh-account-head">
            <h1>{t.get("account.title")}</h1>
            <form method="post" action="/sign-out">
                <button type="submit" class="gh-button gh-button-secondary">{t.get("account.sign_out")}</button>
            </form>
        </div>
        <p class="gh-lead">{t.get("account.signed_in_as")} " " <strong>{data.email.clone()}</strong></p>
        <p class="gh-links"><a href="/account/security">{t.get("account.security_link")}</a></p>
        <Notice message=data.notice.clone()/>
        <section aria-labelledby="profile-heading" class="gh-section">
            <h2 id="profile-heading">{t.get("account.profile")}</h2>
            <FormError message=profile_error.clone()/>
            <form method="post" action="/account/profile" class="gh-form">
                <Field id="name" label=t.get("common.name") value=data.display_name.clone() autocomplete="name"
                    maxlength=100 invalid=profile_error.is_some()/>
                <button type="submit" class="gh-button">{t.get("account.save_profile")}</button>
            </form>
        </section>
        <section aria-labelledby="password-heading" class="gh-section">
            <h2 id="password-heading">{t.get("account.change_password")}</h2>
            <FormError message=password_error.clone()/>
            {if data.has_password {
                view! {
                    <form method="post" action="/account/password" class="gh-form">
                        {password_field("current_password", t.get("account.current_password"), "current-password", None, password_error.is_some())}
                        {password_field("new_password", t.get("account.new_password"), "new-password",
                            Some(t.get("sign_up.password_hint")), password_error.is_some())}
                        <button type="submit" class="gh-button">{t.get("account.change_password")}</button>
                    </form>
                }.into_any()
            } else {
                view! { <p>{t.get("account.no_password")}</p> }.into_any()
            }}
        </section>
        <section aria-labelledby="sessions-heading" class="gh-section">
            <h2 id="sessions-heading">{t.get("account.sessions")}</h2>
            <p>{t.get("account.sessions_lead")}</p>
            <ul class="gh-sessions" aria-label=t.get("account.sessions")>
                {sessions
                    .into_iter()
                    .map(|s| {
                        let t = texts();
                        let action = format!("/account/sessions/{}/sign-out", s.id);
                        view! {
                            <li class="gh-session">
                                <div>
                                    <p class="gh-device">
                                        {s.device.clone()}
                                        {s.current.then(|| view! { " " <span class="gh-badge">{t.get("account.this_device")}</span> })}
                                    </p>
                                    <dl>
                                        <dt>{t.get("account.ip")}</dt><dd>{s.ip.clone()}</dd>
                                        <dt>{t.get("account.signed_in")}</dt><dd>{s.signed_in.clone()}</dd>
                                        <dt>{t.get("account.last_active")}</dt><dd>{s.last_active.clone()}</dd>
                                    </dl>
                                </div>
                                <form method="post" action=action>
                                    <button type="submit" class="gh-button gh-button-secondary"
                                        aria-label=format!("{} {}", t.get("account.sign_out_session"), s.device)>
                                        {t.get("account.sign_out_session")}
                                    </button>
                                </form>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            <form method="post" action="/account/sessions/sign-out-all">
                <button type="submit" class="gh-button gh-button-danger">{t.get("account.sign_out_everywhere")}</button>
            </form>
        </section>
        <ConnectedApps apps=data.apps.clone()/>
        <AccountDataSection/>
    }
}

#[component]
pub fn SecondFactorPage(
    state: FormState,
    /// An emailed code may be used instead.
    #[prop(optional)]
    email_allowed: bool,
    /// The account has a passkey (offered first: the strongest method).
    #[prop(optional)]
    passkey: bool,
    /// The account's phone number, masked, when a code may be texted to it.
    #[prop(optional_no_strip)]
    sms: Option<String>,
) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("second_factor.title")}</h1>
        <p class="gh-lead">{t.get(if passkey { "second_factor.lead_passkey" } else { "second_factor.lead" })}</p>
        <Notice message=state.notice.clone()/>
        <FormError message=state.error.clone()/>
        {passkey.then(|| view! {
            <PasskeyButton
                mode="get".to_string()
                options_url="/sign-in/verify/passkey/options".to_string()
                finish_url="/sign-in/verify/passkey".to_string()
                texts=passkey_texts("passkey.use")
                autofill=false
                name_input=None
                class="gh-button".to_string()
            />
        })}
        <form method="post" action="/sign-in/verify" class="gh-form">
            <Field id="code" label=t.get("second_factor.label") autocomplete="one-time-code"
                maxlength=16 invalid=state.is_invalid("code") hint=t.get("second_factor.recovery_hint")/>
            <button type="submit" class="gh-button">{t.get("second_factor.submit")}</button>
        </form>
        {sms.map(|number| view! {
            <form method="post" action="/sign-in/verify/sms" class="gh-form gh-secondary-form">
                <button type="submit" class="gh-button gh-button-secondary">{texts().fill("second_factor.sms", "number", &number)}</button>
                <p class="gh-hint">{texts().get("sms.weakest_short")}</p>
            </form>
        })}
        {email_allowed.then(|| view! {
            <form method="post" action="/sign-in/verify/email" class="gh-form gh-secondary-form">
                <button type="submit" class="gh-button gh-button-secondary">{texts().get("second_factor.email")}</button>
            </form>
        })}
    }
}

/// One sign-in method on the security-info page.
#[derive(Debug, Clone)]
pub struct SecurityMethodRow {
    pub id: String,
    /// `passkey` or `authenticator`.
    pub kind: &'static str,
    pub name: String,
    /// What kind of method it is, when the name does not say (for passkeys).
    pub detail: Option<String>,
    pub added: String,
    pub last_used: String,
}

#[derive(Debug, Clone, Default)]
pub struct SecurityData {
    pub methods: Vec<SecurityMethodRow>,
    /// The sign-in is recent enough to change security info without confirming again.
    pub recent: bool,
    pub has_password: bool,
    /// The suggested name of a new passkey.
    pub passkey_name: String,
    /// The account has a proven phone number (one per account).
    pub has_phone: bool,
    /// The number typed when adding one failed.
    pub phone_input: String,
    /// Unused recovery codes.
    pub recovery_unused: i64,
    /// Linked provider accounts.
    pub linked: Vec<LinkedRow>,
    /// Enabled providers not linked yet.
    pub link_options: Vec<ProviderLink>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[component]
pub fn SecurityPage(data: SecurityData) -> impl IntoView {
    let t = texts();
    let methods = data.methods.clone();
    let empty = methods.is_empty();
    let manage = if data.recent {
        view! {
            <section aria-labelledby="add-heading" class="gh-section">
                <h2 id="add-heading">{t.get("security.add_title")}</h2>
                <div class="gh-form">
                    <Field id="passkey-name" label=t.get("passkey.name") value=data.passkey_name.clone()
                        maxlength=64 hint=t.get("passkey.name_hint")/>
                    <PasskeyButton
                        mode="create".to_string()
                        options_url="/account/security/passkeys/options".to_string()
                        finish_url="/account/security/passkeys".to_string()
                        texts=passkey_texts("passkey.add")
                        autofill=false
                        name_input=Some("passkey-name".to_string())
                        class="gh-button".to_string()
                    />
                </div>
                <form method="post" action="/account/security/authenticator">
                    <button type="submit" class="gh-button gh-button-secondary">{t.get("security.add_authenticator")}</button>
                </form>
                {(!data.has_phone).then(|| view! {
                    <form method="post" action="/account/security/phone" class="gh-form">
                        <h3>{texts().get("sms.add_title")}</h3>
                        <p class="gh-hint" id="sms-weakest">{texts().get("sms.weakest")}</p>
                        <Field id="phone" label=texts().get("sms.number") kind="tel" value=data.phone_input.clone()
                            autocomplete="tel" inputmode="tel" maxlength=40 hint=texts().get("sms.number_hint")
                            invalid=!data.phone_input.is_empty() && data.error.is_some()/>
                        <button type="submit" class="gh-button gh-button-secondary">{texts().get("sms.send")}</button>
                    </form>
                })}
            </section>
        }
        .into_any()
    } else {
        let reauth = if data.has_password {
            view! {
                <form method="post" action="/account/reauthenticate" class="gh-form">
                    <PasswordField id="password".to_string() label=t.get("common.password")
                        autocomplete="current-password".to_string() show_label=t.get("common.show_password")
                        hint=None invalid=data.error.is_some()/>
                    <button type="submit" class="gh-button">{t.get("security.reauth_submit")}</button>
                </form>
            }
            .into_any()
        } else {
            view! { <p><a href="/sign-in/code">{t.get("security.reauth_with_code")}</a></p> }
                .into_any()
        };
        view! {
            <section aria-labelledby="reauth-heading" class="gh-section">
                <h2 id="reauth-heading">{t.get("security.reauth_title")}</h2>
                <p>{t.get("security.reauth_lead")}</p>
                {reauth}
            </section>
        }
        .into_any()
    };
    view! {
        <h1>{t.get("security.title")}</h1>
        <p class="gh-lead">{t.get("security.lead")}</p>
        <Notice message=data.notice.clone()/>
        <FormError message=data.error.clone()/>
        <section aria-labelledby="methods-heading" class="gh-section">
            <h2 id="methods-heading">{t.get("security.methods")}</h2>
            {empty.then(|| view! { <p>{t.get("security.none")}</p> })}
            <ul class="gh-sessions" aria-label=t.get("security.methods")>
                {methods
                    .into_iter()
                    .map(|m| {
                        let t = texts();
                        let path = match m.kind {
                            "passkey" => "passkeys",
                            "phone" => "phone",
                            _ => "authenticator",
                        };
                        let action = format!("/account/security/{path}/{}/remove", m.id);
                        let rename = (m.kind == "passkey").then(|| {
                            let input = format!("rename-{}", m.id);
                            view! {
                                <form method="post" action=format!("/account/security/passkeys/{}/rename", m.id)
                                    class="gh-inline-form">
                                    <label for=input.clone()>{t.fill("passkey.new_name", "name", &m.name)}</label>
                                    <input id=input name="name" type="text" required maxlength="64" value=m.name.clone()/>
                                    <button type="submit" class="gh-button gh-button-secondary"
                                        aria-label=format!("{} {}", t.get("passkey.rename"), m.name)>
                                        {t.get("passkey.rename")}
                                    </button>
                                </form>
                            }
                        });
                        let recent = data.recent;
                        view! {
                            <li class="gh-session">
                                <div>
                                    <p class="gh-device">{m.name.clone()}</p>
                                    {m.detail.clone().map(|d| view! { <p class="gh-hint">{d}</p> })}
                                    <dl>
                                        <dt>{t.get("security.added")}</dt><dd>{m.added.clone()}</dd>
                                        <dt>{t.get("security.last_used")}</dt><dd>{m.last_used.clone()}</dd>
                                    </dl>
                                </div>
                                {rename}
                                {recent.then(|| view! {
                                    <form method="post" action=action>
                                        <button type="submit" class="gh-button gh-button-secondary"
                                            aria-label=format!("{} {}", t.get("security.remove"), m.name)>
                                            {t.get("security.remove")}
                                        </button>
                                    </form>
                                })}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
        <LinkedAccounts rows=data.linked.clone() available=data.link_options.clone() recent=data.recent/>
        <section aria-labelledby="recovery-heading" class="gh-section">
            <h2 id="recovery-heading">{t.get("recovery.title")}</h2>
            <p>
                {if data.recovery_unused > 0 {
                    t.fill("recovery.count", "n", &data.recovery_unused.to_string())
                } else {
                    t.get("recovery.none")
                }}
            </p>
            {data.recent.then(|| view! {
                <form method="post" action="/account/security/recovery-codes">
                    <button type="submit" class="gh-button gh-button-secondary">{texts().get("recovery.create")}</button>
                </form>
            })}
        </section>
        {manage}
        <p class="gh-links"><a href="/account">{t.get("security.back")}</a></p>
    }
}

#[component]
pub fn RecoveryCodesPage(codes: Vec<String>) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{t.get("recovery.new_title")}</h1>
        <p class="gh-lead">{t.get("recovery.new_lead")}</p>
        <ul class="gh-recovery" aria-label=t.get("recovery.title")>
            {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
        </ul>
        <p class="gh-links"><a href="/account/security">{t.get("security.back")}</a></p>
    }
}

#[derive(Debug, Clone, Default)]
pub struct EnrollData {
    pub id: String,
    /// The base32 key, grouped for reading.
    pub secret: String,
    pub uri: String,
    /// The QR code as SVG markup, made on the server from the URI.
    pub qr_svg: String,
    pub error: Option<String>,
}

#[component]
pub fn EnrollAuthenticatorPage(data: EnrollData) -> impl IntoView {
    let t = texts();
    let action = format!("/account/security/authenticator/{}/confirm", data.id);
    view! {
        <h1>{t.get("enroll.title")}</h1>
        <FormError message=data.error.clone()/>
        <p>{t.get("enroll.scan")}</p>
        <div class="gh-qr" role="img" aria-label=t.get("enroll.qr_label") inner_html=data.qr_svg.clone()></div>
        <p>{t.get("enroll.manual")}</p>
        <dl class="gh-setup">
            <dt>{t.get("enroll.key")}</dt>
            <dd><code id="totp-secret">{data.secret.clone()}</code></dd>
            <dt>{t.get("enroll.uri")}</dt>
            <dd><code id="totp-uri">{data.uri.clone()}</code></dd>
        </dl>
        <p>{t.get("enroll.enter_code")}</p>
        <form method="post" action=action class="gh-form">
            <Field id="code" label=t.get("enroll.label") autocomplete="one-time-code" inputmode="numeric"
                maxlength=12 invalid=data.error.is_some()/>
            <button type="submit" class="gh-button">{t.get("enroll.submit")}</button>
        </form>
        <p class="gh-links"><a href="/account/security">{t.get("security.back")}</a></p>
    }
}

#[component]
pub fn MessagePage(title: String, message: String) -> impl IntoView {
    let t = texts();
    view! {
        <h1>{title}</h1>
        <p class="gh-lead">{message}</p>
        <p class="gh-links"><a href="/">{t.get("error.go_home")}</a></p>
    }
}

/// "Chrome on Windows" from a user agent string.
pub fn describe_user_agent(ua: &str) -> String {
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("HeadlessChrome/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        ""
    };
    let os = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        ""
    };
    match (browser, os) {
        ("", "") => "Unknown device".to_string(),
        (b, "") => b.to_string(),
        ("", o) => format!("Browser on {o}"),
        (b, o) => format!("{b} on {o}"),
    }
}

/// "2026-11-26 05:30 UTC" from milliseconds since the epoch.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_671_000_000), "2026-11-26 05:30 UTC");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn describes_common_user_agents() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";
        assert_eq!(describe_user_agent(chrome), "Chrome on Linux");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_user_agent(iphone), "Safari on iOS");
        assert_eq!(describe_user_agent("curl/8.0"), "Unknown device");
    }
}

#[derive(Debug, Clone, Default)]
pub struct PhoneVerifyData {
    pub id: String,
    pub number: String,
    pub error: Option<String>,
    pub invalid: bool,
}

/// Asks for the code texted to a number being added.
#[component]
pub fn PhoneVerifyPage(data: PhoneVerifyData) -> impl IntoView {
    let t = texts();
    let action = format!("/account/security/phone/{}/confirm", data.id);
    view! {
        <h1>{t.get("sms.verify_title")}</h1>
        <p class="gh-lead">{t.fill("sms.verify_lead", "number", &data.number)}</p>
        <FormError message=data.error.clone()/>
        <form method="post" action=action class="gh-form">
            <Field id="code" label=t.get("code.label") autocomplete="one-time-code" inputmode="numeric"
                maxlength=12 invalid=data.invalid/>
            <button type="submit" class="gh-button">{t.get("sms.verify_submit")}</button>
        </form>
        <p class="gh-links"><a href="/account/security">{t.get("security.back_to_security")}</a></p>
    }
}
