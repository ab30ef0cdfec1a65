//! The admin console: overview, users, applications, sign-in logs, the audit log and the
//! development outbox. Plain server-rendered pages and forms; the server fills in the data
//! (already formatted) and checks that the viewer is an admin.

use leptos::prelude::*;

use crate::components::{FormError, Notice};
use crate::download::ExportLink;

/// The console's sections, in the order of its navigation.
pub const SECTIONS: [(&str, &str); 13] = [
    ("overview", "Overview"),
    ("users", "Users"),
    ("apps", "Applications"),
    ("sign-ins", "Sign-in logs"),
    ("audit", "Audit log"),
    ("access", "Conditional Access"),
    ("risk", "Identity Protection"),
    ("insights", "Usage and insights"),
    ("groups", "Groups"),
    ("locations", "Named locations"),
    ("providers", "Identity providers"),
    ("branding", "Branding"),
    ("outbox", "Outbox"),
];

fn section_href(id: &str) -> String {
    if id == "overview" {
        "/admin".into()
    } else {
        format!("/admin/{id}")
    }
}

/// A table cell: text, optionally a link, optionally more on hover (an id beside a name).
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    pub title: Option<String>,
}

impl Cell {
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            ..Cell::default()
        }
    }

    pub fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            href: Some(href.into()),
            title: None,
        }
    }

    /// The same cell with `title` shown on hover.
    pub fn titled(self, title: impl Into<String>) -> Cell {
        Cell {
            title: Some(title.into()),
            ..self
        }
    }
}

#[component]
fn AdminNav(current: &'static str, outbox: bool) -> impl IntoView {
    view! {
        <nav class="gh-admin-nav" aria-label="Admin console">
            <ul>
                {SECTIONS
                    .iter()
                    .filter(|(id, _)| outbox || *id != "outbox")
                    .map(|(id, label)| {
                        view! {
                            <li>
                                <a href=section_href(id) aria-current=(*id == current).then_some("page")>{*label}</a>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </nav>
    }
}

/// A captioned table; `caption` is also its accessible name.
#[component]
pub fn DataTable(
    caption: String,
    headers: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="gh-table-wrap">
            <table class="gh-table">
                <caption>{caption}</caption>
                <thead>
                    <tr>{headers.into_iter().map(|h| view! { <th scope="col">{h}</th> }).collect_view()}</tr>
                </thead>
                <tbody>
                    {rows
                        .into_iter()
                        .map(|row| {
                            view! {
                                <tr>
                                    {row
                                        .into_iter()
                                        .map(|c| match c.href {
                                            Some(href) => view! { <td title=c.title><a href=href>{c.text}</a></td> }.into_any(),
                                            None => view! { <td title=c.title>{c.text}</td> }.into_any(),
                                        })
                                        .collect_view()}
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            {empty.then(|| view! { <p>"Nothing to show."</p> })}
        </div>
    }
}

/// Previous and next links of a paged list.
#[derive(Debug, Clone, Default)]
pub struct Paging {
    pub summary: String,
    pub previous: Option<String>,
    pub next: Option<String>,
}

#[component]
fn Pager(paging: Paging) -> impl IntoView {
    view! {
        <nav class="gh-pager" aria-label="Pages">
            <p>{paging.summary}</p>
            {paging.previous.map(|href| view! { <a href=href rel="prev">"Previous page"</a> })}
            " "
            {paging.next.map(|href| view! { <a href=href rel="next">"Next page"</a> })}
        </nav>
    }
}

/// A labelled filter or form input that may be left empty.
#[component]
fn Input(
    id: &'static str,
    label: &'static str,
    value: String,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] hint: Option<&'static str>,
) -> impl IntoView {
    let hint_id = format!("{id}-hint");
    view! {
        <div class="gh-field">
            <label for=id>{label}</label>
            <input id=id name=id type=kind value=value maxlength="2000"
                aria-describedby=hint.map(|_| hint_id.clone())/>
            {hint.map(|h| view! { <p class="gh-hint" id=hint_id.clone()>{h}</p> })}
        </div>
    }
}

/// A deletion that asks for a ticked confirmation first (`confirm=yes`).
#[component]
fn DeleteForm(action: String, confirm: &'static str, button: &'static str) -> impl IntoView {
    view! {
        <form method="post" action=action class="gh-form">
            <div class="gh-check">
                <input type="checkbox" id="confirm-delete" name="confirm" value="yes" required/>
                <label for="confirm-delete">{confirm}</label>
            </div>
            <button type="submit" class="gh-button gh-button-danger">{button}</button>
        </form>
    }
}

/// What every console page carries.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Whether messages go to the development outbox (its section is shown only then).
    pub outbox: bool,
}

#[component]
fn Console(
    current: &'static str,
    title: String,
    frame: Frame,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="gh-admin">
            <div class="gh-account-head">
                <h1>{title}</h1>
                <p class="gh-links"><a href="/account">"Your account"</a></p>
            </div>
            <AdminNav current=current outbox=frame.outbox/>
            <Notice message=frame.notice.clone()/>
            <FormError message=frame.error.clone()/>
            {children()}
        </div>
    }
}

// ---------------------------------------------------------------- overview

#[derive(Debug, Clone, Default)]
pub struct OverviewData {
    pub frame: Frame,
    pub users: i64,
    pub applications: i64,
    /// (result, count) of the sign-ins of the last 24 hours.
    pub sign_ins: Vec<(String, i64)>,
    /// When those 24 hours began (milliseconds), for the links to the log.
    pub since: i64,
}

#[component]
pub fn AdminOverviewPage(data: OverviewData) -> impl IntoView {
    let rows = data
        .sign_ins
        .iter()
        .map(|(result, n)| {
            let href = format!("/admin/sign-ins?result={result}&since={}", data.since);
            vec![
                Cell::link(result.clone(), href.clone()),
                Cell::link(n.to_string(), href),
            ]
        })
        .collect();
    view! {
        <Console current="overview" title="Admin console".into() frame=data.frame>
            <dl class="gh-stats">
                <dt>"Users"</dt><dd><a href="/admin/users">{data.users}</a></dd>
                <dt>"Applications"</dt><dd><a href="/admin/apps">{data.applications}</a></dd>
            </dl>
            <DataTable caption="Sign-ins in the last 24 hours".into() headers=vec!["Result", "Count"] rows=rows/>
        </Console>
    }
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Default)]
pub struct UsersData {
    pub frame: Frame,
    pub query: String,
    pub rows: Vec<Vec<Cell>>,
    pub paging: Paging,
}

#[component]
pub fn AdminUsersPage(data: UsersData) -> impl IntoView {
    view! {
        <Console current="users" title="Users".into() frame=data.frame>
            <form method="get" action="/admin/users" class="gh-form gh-filters" role="search" aria-label="Search users">
                <Input id="q" label="Email or name contains" value=data.query/>
                <button type="submit" class="gh-button">"Search"</button>
            </form>
            <DataTable caption="Users".into() headers=vec!["Email", "Name", "Created", "Status"] rows=data.rows/>
            <Pager paging=data.paging/>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserData {
    pub frame: Frame,
    pub id: String,
    pub email: String,
    /// (label, value) pairs of the profile.
    pub profile: Vec<(&'static str, String)>,
    pub disabled: bool,
    pub own_account: bool,
    pub methods: Vec<Vec<Cell>>,
    pub linked: Vec<Vec<Cell>>,
    pub sessions: Vec<Vec<Cell>>,
    pub applications: Vec<Vec<Cell>>,
    pub sign_ins: Vec<Vec<Cell>>,
    /// Identity Protection: the account's user risk and its detections.
    pub user_risk: String,
    pub detections: Vec<Vec<Cell>>,
}

#[component]
fn ActionButton(
    user: String,
    action: &'static str,
    label: &'static str,
    #[prop(optional)] danger: bool,
) -> impl IntoView {
    view! {
        <form method="post" action=format!("/admin/users/{user}/{action}")>
            <button type="submit" class=if danger { "gh-button gh-button-danger" } else { "gh-button gh-button-secondary" }>{label}</button>
        </form>
    }
}

#[component]
pub fn AdminUserPage(data: UserData) -> impl IntoView {
    let id = data.id.clone();
    view! {
        <Console current="users" title=data.email.clone() frame=data.frame>
            <section class="gh-section" aria-labelledby="profile-heading">
                <h2 id="profile-heading">"Profile"</h2>
                <dl class="gh-stats">
                    {data.profile.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
                </dl>
            </section>
            <section class="gh-section" aria-labelledby="actions-heading">
                <h2 id="actions-heading">"Actions"</h2>
                <p class="gh-hint">"Admins never see or set passwords. Requiring a reset removes the password, ends every session and emails the person a reset code."</p>
                <div class="gh-actions">
                    {if data.disabled {
                        view! { <ActionButton user=id.clone() action="enable" label="Enable account"/> }.into_any()
                    } else if data.own_account {
                        ().into_any()
                    } else {
                        view! { <ActionButton user=id.clone() action="disable" label="Disable account" danger=true/> }.into_any()
                    }}
                    <ActionButton user=id.clone() action="revoke-sessions" label="Sign out everywhere and revoke tokens"/>
                    <ActionButton user=id.clone() action="reset-mfa" label="Reset multifactor methods"/>
                    <ActionButton user=id.clone() action="require-password-reset" label="Require password reset"/>
                </div>
            </section>
            <section class="gh-section" aria-labelledby="risk-heading">
                <h2 id="risk-heading">"Identity Protection"</h2>
                <p id="user-risk">{format!("User risk: {}", data.user_risk)}</p>
                <div class="gh-actions">
                    <ActionButton user=id.clone() action="confirm-compromised" label="Confirm compromised" danger=true/>
                    <ActionButton user=id.clone() action="confirm-safe" label="Confirm safe"/>
                    <ActionButton user=id.clone() action="dismiss-risk" label="Dismiss risk"/>
                </div>
                <DataTable caption="Risk detections".into() headers=vec!["Detected", "Detection", "Level", "State", "Evidence"] rows=data.detections/>
                {(!data.own_account).then(|| view! {
                    <DeleteForm action=format!("/admin/users/{id}/delete")
                        confirm="I understand the account and everything in it will be deleted" button="Delete account"/>
                })}
            </section>
            <DataTable caption="Sign-in methods".into() headers=vec!["Method", "Name", "Added"] rows=data.methods/>
            <DataTable caption="Linked providers".into() headers=vec!["Provider", "Email", "Linked"] rows=data.linked/>
            <DataTable caption="Sessions".into() headers=vec!["Device", "IP address", "Signed in", "Last active", "Methods"] rows=data.sessions/>
            <DataTable caption="Applications".into() headers=vec!["Application", "Access", "Since"] rows=data.applications/>
            <DataTable caption="Recent sign-ins".into() headers=vec!["Time", "Application", "Method", "Result", "IP address"] rows=data.sign_ins/>
        </Console>
    }
}

// ---------------------------------------------------------------- applications

/// The application form's values.
#[derive(Debug, Clone, Default)]
pub struct AppForm {
    pub name: String,
    pub logo_url: String,
    pub confidential: bool,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: Vec<String>,
    pub allowed_origins: String,
    pub third_party: bool,
    pub id_token_alg: String,
    pub backchannel_logout_uri: String,
    pub api_scopes: Vec<String>,
}

/// The scopes of Gatehouse's own API an application may be granted, with what each allows.
pub const API_SCOPE_CHOICES: &[(&str, &str)] = &[
    (
        "gatehouse.risk.read",
        "Read risk detections and risky users (gatehouse.risk.read)",
    ),
    (
        "gatehouse.insights.read",
        "Read the usage and insights dashboards' numbers (gatehouse.insights.read)",
    ),
];

#[component]
fn AppFields(form: AppForm) -> impl IntoView {
    let grants = [
        ("authorization_code", "Authorization code (people sign in)"),
        ("refresh_token", "Refresh tokens"),
        (
            "client_credentials",
            "Client credentials (the app as itself)",
        ),
    ];
    let lines = "One per line.";
    view! {
        <Input id="name" label="Name" value=form.name/>
        <fieldset class="gh-fieldset">
            <legend>"Type"</legend>
            <div class="gh-check">
                <input type="radio" id="type-confidential" name="type" value="confidential" checked=form.confidential/>
                <label for="type-confidential">"Confidential (a server that keeps a secret)"</label>
            </div>
            <div class="gh-check">
                <input type="radio" id="type-public" name="type" value="public" checked=!form.confidential/>
                <label for="type-public">"Public (single-page or native app; PKCE, no secret)"</label>
            </div>
        </fieldset>
        <div class="gh-field">
            <label for="redirect_uris">"Redirect URIs"</label>
            <textarea id="redirect_uris" name="redirect_uris" rows="3" aria-describedby="redirect_uris-hint">{form.redirect_uris}</textarea>
            <p class="gh-hint" id="redirect_uris-hint">{lines} " Matched byte for byte; https (http only on localhost)."</p>
        </div>
        <div class="gh-field">
            <label for="post_logout_redirect_uris">"Post-logout redirect URIs"</label>
            <textarea id="post_logout_redirect_uris" name="post_logout_redirect_uris" rows="2" aria-describedby="plr-hint">{form.post_logout_redirect_uris}</textarea>
            <p class="gh-hint" id="plr-hint">{lines}</p>
        </div>
        <fieldset class="gh-fieldset">
            <legend>"Allowed grants"</legend>
            {grants
                .into_iter()
                .map(|(value, label)| {
                    let id = format!("grant-{value}");
                    view! {
                        <div class="gh-check">
                            <input type="checkbox" id=id.clone() name="grant" value=value checked=form.grant_types.iter().any(|g| g == value)/>
                            <label for=id>{label}</label>
                        </div>
                    }
                })
                .collect_view()}
        </fieldset>
        <fieldset class="gh-fieldset">
            <legend>"Gatehouse API access (with client credentials)"</legend>
            {API_SCOPE_CHOICES
                .iter()
                .map(|(value, label)| {
                    let id = format!("api-scope-{value}");
                    view! {
                        <div class="gh-check">
                            <input type="checkbox" id=id.clone() name="api_scope" value=*value checked=form.api_scopes.iter().any(|s| s == value)/>
                            <label for=id>{*label}</label>
                        </div>
                    }
                })
                .collect_view()}
        </fieldset>
        <div class="gh-field">
            <label for="allowed_origins">"Allowed browser origins (CORS)"</label>
            <textarea id="allowed_origins" name="allowed_origins" rows="2" aria-describedby="origins-hint">{form.allowed_origins}</textarea>
            <p class="gh-hint" id="origins-hint">{lines} " For example https://app.example.com"</p>
        </div>
        <div class="gh-check">
            <input type="checkbox" id="third_party" name="third_party" value="yes" checked=form.third_party/>
            <label for="third_party">"Third-party application (people are asked to consent)"</label>
        </div>
        <Input id="logo_url" label="Logo URL" value=form.logo_url/>
        <div class="gh-field">
            <label for="id_token_alg">"ID token signing algorithm"</label>
            <select id="id_token_alg" name="id_token_alg">
                {["ES256", "EdDSA", "RS256"]
                    .into_iter()
                    .map(|a| view! { <option value=a selected=form.id_token_alg == a>{a}</option> })
                    .collect_view()}
            </select>
        </div>
        <Input id="backchannel_logout_uri" label="Back-channel logout URI" value=form.backchannel_logout_uri/>
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppsData {
    pub frame: Frame,
    pub rows: Vec<Vec<Cell>>,
    pub form: AppForm,
}

#[component]
pub fn AdminAppsPage(data: AppsData) -> impl IntoView {
    view! {
        <Console current="apps" title="Applications".into() frame=data.frame>
            <DataTable caption="Applications".into() headers=vec!["Name", "Client ID", "Type", "Party", "Redirect URIs"] rows=data.rows/>
            <section class="gh-section" aria-labelledby="register-heading">
                <h2 id="register-heading">"Register an application"</h2>
                <form method="post" action="/admin/apps" class="gh-form">
                    <AppFields form=data.form/>
                    <button type="submit" class="gh-button">"Register application"</button>
                </form>
            </section>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct AppData {
    pub frame: Frame,
    pub id: String,
    pub name: String,
    pub confidential: bool,
    /// A new secret, shown this once.
    pub secret: Option<String>,
    pub form: AppForm,
}

#[component]
pub fn AdminAppPage(data: AppData) -> impl IntoView {
    let id = data.id.clone();
    view! {
        <Console current="apps" title=data.name.clone() frame=data.frame>
            <dl class="gh-stats">
                <dt>"Client ID"</dt><dd><code>{data.id.clone()}</code></dd>
            </dl>
            {data.secret.map(|secret| view! {
                <section class="gh-section gh-secret" aria-labelledby="secret-heading">
                    <h2 id="secret-heading">"Client secret"</h2>
                    <p>"Copy it now: it is shown only this once and stored only as a hash."</p>
                    <p><code data-testid="client-secret">{secret}</code></p>
                </section>
            })}
            <section class="gh-section" aria-labelledby="edit-heading">
                <h2 id="edit-heading">"Settings"</h2>
                <form method="post" action=format!("/admin/apps/{id}") class="gh-form">
                    <AppFields form=data.form/>
                    <button type="submit" class="gh-button">"Save application"</button>
                </form>
            </section>
            <section class="gh-section" aria-labelledby="danger-heading">
                <h2 id="danger-heading">"Secret and deletion"</h2>
                {data.confidential.then(|| view! {
                    <form method="post" action=format!("/admin/apps/{id}/secret")>
                        <button type="submit" class="gh-button gh-button-secondary">"Rotate secret"</button>
                    </form>
                })}
                <DeleteForm action=format!("/admin/apps/{id}/delete")
                    confirm="I understand every token of this application stops working" button="Delete application"/>
            </section>
        </Console>
    }
}

// ---------------------------------------------------------------- logs

/// The sign-in log filter's values.
#[derive(Debug, Clone, Default)]
pub struct SignInFilterForm {
    pub email: String,
    pub application: String,
    pub result: String,
    pub method: String,
    pub ip: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default)]
pub struct SignInsData {
    pub frame: Frame,
    pub filter: SignInFilterForm,
    /// How long the log keeps its rows, in words.
    pub retention: String,
    /// The choices of the application, result and method filters (the first: any).
    pub applications: Vec<Choice>,
    pub results: Vec<Choice>,
    pub methods: Vec<Choice>,
    pub rows: Vec<Vec<Cell>>,
    pub paging: Paging,
}

#[component]
pub fn AdminSignInsPage(data: SignInsData) -> impl IntoView {
    let f = data.filter;
    view! {
        <Console current="sign-ins" title="Sign-in logs".into() frame=data.frame>
            <p class="gh-hint">{data.retention}</p>
            <form method="get" action="/admin/sign-ins" class="gh-form gh-filters" role="search" aria-label="Filter sign-ins">
                <Input id="email" label="User (email contains)" value=f.email/>
                <ChoiceSelect id="application" label="Application" choices=data.applications selected=f.application/>
                <ChoiceSelect id="result" label="Result" choices=data.results selected=f.result/>
                <ChoiceSelect id="method" label="Method" choices=data.methods selected=f.method/>
                <Input id="ip" label="IP address" value=f.ip/>
                <Input id="from" label="From" kind="date" value=f.from/>
                <Input id="to" label="To" kind="date" value=f.to/>
                <button type="submit" class="gh-button">"Filter"</button>
            </form>
            <DataTable caption="Sign-ins".into() headers=vec!["Time", "User", "Application", "Method", "Result", "Reason", "IP address"] rows=data.rows/>
            <Pager paging=data.paging/>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct DetailData {
    pub frame: Frame,
    pub title: String,
    pub current: &'static str,
    pub fields: Vec<(&'static str, Cell)>,
}

#[component]
pub fn AdminDetailPage(data: DetailData) -> impl IntoView {
    view! {
        <Console current=data.current title=data.title frame=data.frame>
            <dl class="gh-stats">
                {data
                    .fields
                    .into_iter()
                    .map(|(k, v)| {
                        let value = match v.href {
                            Some(href) => view! { <a href=href>{v.text}</a> }.into_any(),
                            None => view! { {v.text} }.into_any(),
                        };
                        view! { <dt>{k}</dt><dd>{value}</dd> }
                    })
                    .collect_view()}
            </dl>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilterForm {
    pub actor: String,
    pub subject: String,
    pub action: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditData {
    pub frame: Frame,
    pub filter: AuditFilterForm,
    pub rows: Vec<Vec<Cell>>,
    pub paging: Paging,
}

#[component]
pub fn AdminAuditPage(data: AuditData) -> impl IntoView {
    let f = data.filter;
    view! {
        <Console current="audit" title="Audit log".into() frame=data.frame>
            <form method="get" action="/admin/audit" class="gh-form gh-filters" role="search" aria-label="Filter the audit log">
                <Input id="actor" label="Done by (email)" value=f.actor/>
                <Input id="subject" label="Account (email)" value=f.subject/>
                <Input id="action" label="Action starts with" value=f.action hint="For example admin. or mfa."/>
                <Input id="from" label="From" kind="date" value=f.from/>
                <Input id="to" label="To" kind="date" value=f.to/>
                <button type="submit" class="gh-button">"Filter"</button>
            </form>
            <DataTable caption="Audit log".into() headers=vec!["Time", "Done by", "Account", "Action", "Detail", "IP address"] rows=data.rows/>
            <Pager paging=data.paging/>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct OutboxData {
    pub frame: Frame,
    pub rows: Vec<Vec<Cell>>,
}

#[component]
pub fn AdminOutboxPage(data: OutboxData) -> impl IntoView {
    view! {
        <Console current="outbox" title="Development outbox".into() frame=data.frame>
            <p class="gh-lead">"No email or SMS gateway is configured, so messages are kept here instead of being sent."</p>
            <DataTable caption="Messages".into() headers=vec!["Time", "Channel", "To", "Subject", "Body"] rows=data.rows/>
        </Console>
    }
}

// ---------------------------------------------------------------- conditional access

/// A choice of a select: its value and label.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// The What-If form's values.
#[derive(Debug, Clone, Default)]
pub struct WhatIfForm {
    pub email: String,
    pub app: String,
    pub ip: String,
    pub platform: String,
    pub sign_in_risk: String,
    pub user_risk: String,
}

#[derive(Debug, Clone, Default)]
pub struct AccessData {
    pub frame: Frame,
    pub policies: Vec<Vec<Cell>>,
    pub groups: Vec<Vec<Cell>>,
    pub locations: Vec<Vec<Cell>>,
    pub applications: Vec<Choice>,
    pub form: WhatIfForm,
    /// The What-If answer: the decision in words, and a row a policy.
    pub decision: Option<String>,
    /// Where the What-If address is, in words.
    pub country: String,
    pub results: Vec<Vec<Cell>>,
}

#[component]
fn ChoiceSelect(
    id: &'static str,
    label: &'static str,
    choices: Vec<Choice>,
    selected: String,
) -> impl IntoView {
    view! {
        <div class="gh-field">
            <label for=id>{label}</label>
            <select id=id name=id>
                {choices
                    .into_iter()
                    .map(|c| {
                        let chosen = c.value == selected;
                        view! { <option value=c.value selected=chosen>{c.label}</option> }
                    })
                    .collect_view()}
            </select>
        </div>
    }
}

fn choices(values: &[&str]) -> Vec<Choice> {
    values
        .iter()
        .map(|v| Choice {
            value: v.to_string(),
            label: v.to_string(),
        })
        .collect()
}

#[component]
pub fn AdminAccessPage(data: AccessData) -> impl IntoView {
    let f = data.form;
    let platforms = choices(&["other", "android", "ios", "windows", "macos", "linux"]);
    let risks = choices(&["none", "low", "medium", "high"]);
    view! {
        <Console current="access" title="Conditional Access".into() frame=data.frame>
            <p class="gh-lead">"If-then policies: they apply after the first factor of every sign-in, to every application's request and to refresh tokens. Start a new policy in report-only, look at its impact and its results in the sign-in logs, then turn it on."</p>
            <p class="gh-links">
                <a href="/admin/access/new-policy">"New policy"</a>
                <a href="/admin/access/export" download="gatehouse-policies.json">"Export all policies"</a>
                <a href="/admin/terms">"Terms of use"</a>
            </p>
            <DataTable caption="Policies".into() headers=vec!["Policy", "State", "Version", "Last change"] rows=data.policies/>
            <DataTable caption="Groups".into() headers=vec!["Group", "Id", "Members"] rows=data.groups/>
            <DataTable caption="Named locations".into() headers=vec!["Location", "Id", "Trusted", "Ranges and countries"] rows=data.locations/>
            <h2>"What If"</h2>
            <form method="get" action="/admin/access" class="gh-form gh-filters" aria-label="What If">
                <Input id="email" label="User (email)" value=f.email kind="email"/>
                <ChoiceSelect id="app" label="Application" choices=data.applications selected=f.app/>
                <Input id="ip" label="IP address" value=f.ip/>
                <ChoiceSelect id="platform" label="Device platform" choices=platforms selected=f.platform/>
                <ChoiceSelect id="sign_in_risk" label="Sign-in risk" choices=risks.clone() selected=f.sign_in_risk/>
                <ChoiceSelect id="user_risk" label="User risk" choices=risks selected=f.user_risk/>
                <button type="submit" class="gh-button">"Evaluate"</button>
            </form>
            {data.decision.map(|d| view! {
                <section aria-labelledby="what-if-answer">
                    <h3 id="what-if-answer">"The decision"</h3>
                    <p role="status">{d}</p>
                    <p id="what-if-country">{data.country.clone()}</p>
                    <DataTable caption="Policies evaluated".into() headers=vec!["Policy", "State", "Applies", "Why"] rows=data.results.clone()/>
                </section>
            })}
            <h2>"Import policies"</h2>
            <form method="post" action="/admin/access/import" class="gh-form" aria-label="Import policies">
                <div class="gh-field">
                    <label for="document">"Policy document (JSON, as exported)"</label>
                    <textarea id="document" name="document" rows="6" aria-describedby="document-hint"></textarea>
                    <p class="gh-hint" id="document-hint">"Every location and policy in it is checked first; nothing is saved when one is refused. Policies with the same id are replaced (a new version)."</p>
                </div>
                <button type="submit" class="gh-button">"Import"</button>
            </form>
        </Console>
    }
}

// ---------------------------------------------------------------- groups

#[derive(Debug, Clone, Default)]
pub struct GroupsData {
    pub frame: Frame,
    pub rows: Vec<Vec<Cell>>,
    pub name: String,
    pub description: String,
}

#[component]
pub fn AdminGroupsPage(data: GroupsData) -> impl IntoView {
    view! {
        <Console current="groups" title="Groups".into() frame=data.frame>
            <p class="gh-lead">"Groups gather accounts for Conditional Access: policies include or exclude them."</p>
            <DataTable caption="Groups".into() headers=vec!["Group", "Id", "Members", "Description"] rows=data.rows/>
            <h2>"New group"</h2>
            <form method="post" action="/admin/groups" class="gh-form" aria-label="New group">
                <Input id="name" label="Name" value=data.name/>
                <Input id="description" label="Description" value=data.description/>
                <button type="submit" class="gh-button">"Create group"</button>
            </form>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct GroupData {
    pub frame: Frame,
    pub id: String,
    pub name: String,
    pub description: String,
    /// The members' emails.
    pub members: Vec<String>,
    pub email: String,
}

#[component]
pub fn AdminGroupPage(data: GroupData) -> impl IntoView {
    let action = format!("/admin/groups/{}", data.id);
    let remove_action = action.clone();
    let empty = data.members.is_empty();
    let (name, description) = (data.name.clone(), data.description.clone());
    view! {
        <Console current="groups" title=data.name frame=data.frame>
            <p class="gh-lead">{data.description}</p>
            <div class="gh-table-wrap">
                <table class="gh-table">
                    <caption>"Members"</caption>
                    <thead><tr><th scope="col">"Email"</th><th scope="col">"Action"</th></tr></thead>
                    <tbody>
                        {data.members.into_iter().map(|m| {
                            let label = format!("Remove {m}");
                            view! {
                                <tr>
                                    <td>{m.clone()}</td>
                                    <td>
                                        <form method="post" action=remove_action.clone()>
                                            <input type="hidden" name="action" value="remove-member"/>
                                            <input type="hidden" name="email" value=m/>
                                            <button type="submit" class="gh-button gh-button-secondary" aria-label=label>"Remove"</button>
                                        </form>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                        {empty.then(|| view! { <tr><td colspan="2">"No members yet."</td></tr> })}
                    </tbody>
                </table>
            </div>
            <h2>"Add a member"</h2>
            <form method="post" action=action.clone() class="gh-form" aria-label="Add a member">
                <input type="hidden" name="action" value="add-member"/>
                <Input id="email" label="Email" kind="email" value=data.email/>
                <button type="submit" class="gh-button">"Add member"</button>
            </form>
            <h2>"Edit the group"</h2>
            <form method="post" action=action.clone() class="gh-form" aria-label="Edit the group">
                <input type="hidden" name="action" value="edit"/>
                <Input id="name" label="Name" value=name/>
                <Input id="description" label="Description" value=description/>
                <button type="submit" class="gh-button gh-button-secondary">"Save group"</button>
            </form>
            <form method="post" action=action>
                <input type="hidden" name="action" value="delete"/>
                <button type="submit" class="gh-button gh-button-danger">"Delete group"</button>
            </form>
        </Console>
    }
}

// ---------------------------------------------------------------- named locations

/// One named location in the console's list.
#[derive(Debug, Clone, Default)]
pub struct LocationRow {
    pub id: String,
    pub name: String,
    pub trusted: bool,
    pub ranges: String,
    pub countries: String,
}

#[derive(Debug, Clone, Default)]
pub struct LocationsData {
    pub frame: Frame,
    pub locations: Vec<LocationRow>,
    pub id: String,
    pub name: String,
    pub ranges: String,
    pub countries: String,
    pub trusted: bool,
    /// The GeoIP databases in use, in words; none when no database is configured.
    pub geoip: Option<String>,
}

#[component]
pub fn AdminLocationsPage(data: LocationsData) -> impl IntoView {
    let empty = data.locations.is_empty();
    view! {
        <Console current="locations" title="Named locations".into() frame=data.frame>
            <p class="gh-lead">"Address ranges and countries that Conditional Access conditions name; a trusted location can be left out of a policy."</p>
            {match data.geoip {
                Some(sources) => view! {
                    <p class="gh-hint" id="geoip-status">{format!("Countries come from {sources}. ")}
                        <a href="https://db-ip.com/">"IP Geolocation by DB-IP"</a>" (CC BY 4.0) when the db-ip files are used."</p>
                }.into_any(),
                None => view! {
                    <p class="gh-notice gh-notice-warning" role="note" id="geoip-status">"No GeoIP database is configured (GATEHOUSE_GEOIP_DB), so no address has a country: country locations never match. Ranges work as usual. The README says how to install the db-ip database."</p>
                }.into_any(),
            }}
            <div class="gh-table-wrap">
                <table class="gh-table">
                    <caption>"Named locations"</caption>
                    <thead><tr>
                        <th scope="col">"Location"</th><th scope="col">"Id"</th>
                        <th scope="col">"Trusted"</th><th scope="col">"Ranges"</th><th scope="col">"Countries"</th><th scope="col">"Action"</th>
                    </tr></thead>
                    <tbody>
                        {data.locations.into_iter().map(|l| {
                            let label = format!("Delete {}", l.name);
                            let id = l.id;
                            view! {
                                <tr>
                                    <td>{l.name}</td>
                                    <td>{id.clone()}</td>
                                    <td>{if l.trusted { "yes" } else { "no" }}</td>
                                    <td>{l.ranges}</td>
                                    <td>{l.countries}</td>
                                    <td>
                                        <form method="post" action=format!("/admin/locations/{id}/delete")>
                                            <button type="submit" class="gh-button gh-button-danger" aria-label=label>"Delete"</button>
                                        </form>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                        {empty.then(|| view! { <tr><td colspan="6">"No named locations yet."</td></tr> })}
                    </tbody>
                </table>
            </div>
            <h2>"Add or replace a location"</h2>
            <form method="post" action="/admin/locations" class="gh-form" aria-label="Add or replace a location">
                <Input id="id" label="Id" value=data.id hint="Letters, digits, - and _; the same id replaces a location"/>
                <Input id="name" label="Name" value=data.name/>
                <div class="gh-field">
                    <label for="ranges">"Address ranges"</label>
                    <textarea id="ranges" name="ranges" rows="4" aria-describedby="ranges-hint">{data.ranges}</textarea>
                    <p class="gh-hint" id="ranges-hint">"IPv4 or IPv6 ranges in CIDR notation, one a line, for example 203.0.113.0/24"</p>
                </div>
                <Input id="countries" label="Countries" value=data.countries hint="Two-letter country codes (ISO 3166-1), separated by commas or spaces, for example FR, NZ"/>
                <div class="gh-check">
                    <input type="checkbox" id="trusted" name="trusted" value="yes" checked=data.trusted/>
                    <label for="trusted">"Trusted location"</label>
                </div>
                <button type="submit" class="gh-button">"Save location"</button>
            </form>
        </Console>
    }
}

// ---------------------------------------------------------------- identity providers

/// One sign-in provider in the console's list.
#[derive(Debug, Clone, Default)]
pub struct ProviderRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub issuer: String,
    pub client_id: String,
    pub position: i64,
}

/// The add-a-provider form's values (never the secret).
#[derive(Debug, Clone, Default)]
pub struct ProviderForm {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub client_id: String,
    pub issuer: String,
    pub tenant: String,
    pub scopes: String,
}

#[derive(Debug, Clone, Default)]
pub struct ProvidersData {
    pub frame: Frame,
    pub rows: Vec<ProviderRow>,
    pub form: ProviderForm,
    /// The redirect URI to register at every provider.
    pub redirect_uri: String,
}

#[component]
pub fn AdminProvidersPage(data: ProvidersData) -> impl IntoView {
    let kinds = [
        ("oidc", "Any OpenID Connect provider"),
        ("google", "Google"),
        ("microsoft", "Microsoft"),
        ("facebook", "Facebook"),
        ("github", "GitHub"),
    ];
    let form = data.form;
    let empty = data.rows.is_empty();
    view! {
        <Console current="providers" title="Identity providers".into() frame=data.frame>
            <p class="gh-lead">"Register this redirect URI at every provider: " <code>{data.redirect_uri}</code></p>
            <div class="gh-table-wrap">
                <table class="gh-table">
                    <caption>"Identity providers"</caption>
                    <thead><tr>
                        <th scope="col">"Position"</th><th scope="col">"Name"</th><th scope="col">"Kind"</th>
                        <th scope="col">"Status"</th><th scope="col">"Issuer"</th><th scope="col">"Client ID"</th>
                        <th scope="col">"Actions"</th>
                    </tr></thead>
                    <tbody>
                        {data.rows.into_iter().map(|p| {
                            let (toggle, label) = if p.enabled { ("disable", "Disable") } else { ("enable", "Enable") };
                            view! {
                                <tr>
                                    <td>{p.position}</td><td>{p.name.clone()}</td><td>{p.kind}</td>
                                    <td>{if p.enabled { "enabled" } else { "disabled" }}</td>
                                    <td>{p.issuer}</td><td>{p.client_id}</td>
                                    <td class="gh-actions">
                                        <form method="post" action=format!("/admin/providers/{}/{toggle}", p.id)>
                                            <button type="submit" class="gh-button gh-button-secondary"
                                                aria-label=format!("{label} {}", p.name)>{label}</button>
                                        </form>
                                        <form method="post" action=format!("/admin/providers/{}/remove", p.id)>
                                            <button type="submit" class="gh-button gh-button-danger"
                                                aria-label=format!("Remove {}", p.name)>"Remove"</button>
                                        </form>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                {empty.then(|| view! { <p>"Nothing to show."</p> })}
            </div>
            <section class="gh-section" aria-labelledby="add-provider-heading">
                <h2 id="add-provider-heading">"Add or replace a provider"</h2>
                <p class="gh-hint">"Sign in with Apple needs its signing key file: add it with the gatehouse providers add command."</p>
                <form method="post" action="/admin/providers" class="gh-form">
                    <Input id="id" label="Provider ID" value=form.id hint="Lowercase letters, digits and dashes; a provider with this ID is replaced"/>
                    <div class="gh-field">
                        <label for="kind">"Kind"</label>
                        <select id="kind" name="kind">
                            {kinds.into_iter().map(|(v, l)| view! { <option value=v selected=form.kind == v>{l}</option> }).collect_view()}
                        </select>
                    </div>
                    <Input id="name" label="Button name" value=form.name hint="Shown as Continue with …; the kind's name when empty"/>
                    <Input id="client_id" label="Client ID" value=form.client_id/>
                    <Input id="client_secret" label="Client secret" kind="password" value=String::new() hint="Stored encrypted; never shown again"/>
                    <Input id="issuer" label="Issuer URL" value=form.issuer hint="For OpenID Connect providers"/>
                    <Input id="tenant" label="Microsoft directory (tenant) ID" value=form.tenant hint="Empty for personal Microsoft accounts"/>
                    <Input id="scopes" label="Scopes" value=form.scopes hint="Space-separated; the kind's defaults when empty"/>
                    <button type="submit" class="gh-button">"Save provider"</button>
                </form>
            </section>
        </Console>
    }
}

// ---------------------------------------------------------------- branding

#[derive(Debug, Clone, Default)]
pub struct BrandingData {
    pub frame: Frame,
    /// The branding record as JSON.
    pub json: String,
}

#[component]
pub fn AdminBrandingPage(data: BrandingData) -> impl IntoView {
    view! {
        <Console current="branding" title="Branding".into() frame=data.frame>
            <p class="gh-lead">"The branding record of every page: product name, logo, favicon, colors, background, corner radius, fonts, footer links and text overrides by message key. Saved changes apply to the next page load."</p>
            <form method="post" action="/admin/branding" class="gh-form">
                <div class="gh-field">
                    <label for="branding">"Branding (JSON)"</label>
                    <textarea id="branding" name="branding" rows="22" spellcheck="false" class="gh-code">{data.json}</textarea>
                </div>
                <button type="submit" class="gh-button">"Save branding"</button>
            </form>
        </Console>
    }
}

// ---------------------------------------------------------------- policy editor

/// Every field of a Conditional Access policy, as the editor's form holds it (the server
/// turns it into a policy and back).
#[derive(Debug, Clone, Default)]
pub struct PolicyForm {
    pub id: String,
    pub name: String,
    /// `on`, `report-only` or `off`.
    pub state: String,
    /// `all` or `selected`.
    pub users_scope: String,
    /// Emails, one a line.
    pub users: String,
    pub groups: Vec<String>,
    pub exclude_users: String,
    pub exclude_groups: Vec<String>,
    pub all_applications: bool,
    pub applications: Vec<String>,
    pub account_portal: bool,
    pub admin_console: bool,
    pub exclude_applications: Vec<String>,
    pub sign_in_risk: Vec<String>,
    pub user_risk: Vec<String>,
    pub client_types: Vec<String>,
    pub platforms: Vec<String>,
    pub exclude_platforms: Vec<String>,
    /// ``, `any`, `trusted` or `selected`.
    pub location_include: String,
    pub location_selected: Vec<String>,
    pub location_exclude: Vec<String>,
    pub exclude_trusted: bool,
    /// `block` or `require`.
    pub grant: String,
    pub controls: Vec<String>,
    pub require_all: bool,
    /// ``, `every-time` or `hours`.
    pub frequency: String,
    pub hours: String,
    /// ``, `always` or `never`.
    pub persistent: String,
}

/// One saved version in a policy's history.
#[derive(Debug, Clone, Default)]
pub struct HistoryRow {
    pub version: i64,
    pub when: String,
    pub who: String,
    /// What changed from the version before, one line a field.
    pub changes: Vec<String>,
    /// The version in force (nothing to restore).
    pub current: bool,
    /// The policy was deleted in this version.
    pub deleted: bool,
}

/// What an impact replay found, ready to show.
#[derive(Debug, Clone, Default)]
pub struct ImpactView {
    pub summary: String,
    pub by_application: Vec<Vec<Cell>>,
    pub sample: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyEditorData {
    pub frame: Frame,
    /// Editing a saved policy (else a new one).
    pub existing: bool,
    pub form: PolicyForm,
    pub groups: Vec<Choice>,
    pub applications: Vec<Choice>,
    pub locations: Vec<Choice>,
    /// The policy reaches the admin saving it: saved only once confirmed.
    pub warning: Option<String>,
    pub history: Vec<HistoryRow>,
    pub impact: Option<ImpactView>,
    pub impact_days: String,
}

/// A group of checkboxes named `name`, one a choice.
#[component]
fn Checks(
    legend: &'static str,
    name: &'static str,
    choices: Vec<Choice>,
    checked: Vec<String>,
    #[prop(optional)] hint: Option<&'static str>,
) -> impl IntoView {
    let empty = choices.is_empty();
    view! {
        <fieldset class="gh-fieldset">
            <legend>{legend}</legend>
            {hint.map(|h| view! { <p class="gh-hint">{h}</p> })}
            {choices
                .into_iter()
                .map(|c| {
                    let id = format!("{name}-{}", c.value);
                    let on = checked.contains(&c.value);
                    view! {
                        <div class="gh-check">
                            <input type="checkbox" id=id.clone() name=name value=c.value checked=on/>
                            <label for=id>{c.label}</label>
                        </div>
                    }
                })
                .collect_view()}
            {empty.then(|| view! { <p class="gh-hint">"None defined yet."</p> })}
        </fieldset>
    }
}

/// A group of radio buttons named `name`.
#[component]
fn Radios(
    legend: &'static str,
    name: &'static str,
    choices: Vec<Choice>,
    selected: String,
) -> impl IntoView {
    view! {
        <fieldset class="gh-fieldset">
            <legend>{legend}</legend>
            {choices
                .into_iter()
                .map(|c| {
                    let id = format!("{name}-{}", if c.value.is_empty() { "unset" } else { c.value.as_str() });
                    let on = c.value == selected;
                    view! {
                        <div class="gh-check">
                            <input type="radio" id=id.clone() name=name value=c.value checked=on/>
                            <label for=id>{c.label}</label>
                        </div>
                    }
                })
                .collect_view()}
        </fieldset>
    }
}

fn labelled(pairs: &[(&str, &str)]) -> Vec<Choice> {
    pairs
        .iter()
        .map(|(value, label)| Choice {
            value: value.to_string(),
            label: label.to_string(),
        })
        .collect()
}

#[component]
fn TextArea(
    id: &'static str,
    label: &'static str,
    value: String,
    hint: &'static str,
) -> impl IntoView {
    let hint_id = format!("{id}-hint");
    view! {
        <div class="gh-field">
            <label for=id>{label}</label>
            <textarea id=id name=id rows="3" aria-describedby=hint_id.clone()>{value}</textarea>
            <p class="gh-hint" id=hint_id>{hint}</p>
        </div>
    }
}

/// The policy editor: every field of a policy as a plain form (no JavaScript needed), the
/// impact of the form's policy over the sign-in log, and, for a saved policy, its history
/// with what each version changed and a way back to any of them.
#[component]
pub fn AdminPolicyEditorPage(data: PolicyEditorData) -> impl IntoView {
    let f = data.form;
    let title = if data.existing {
        format!("Policy: {}", f.name)
    } else {
        "New policy".to_string()
    };
    let risks = labelled(&[
        ("none", "None"),
        ("low", "Low"),
        ("medium", "Medium"),
        ("high", "High"),
    ]);
    let platforms = labelled(&[
        ("android", "Android"),
        ("ios", "iOS"),
        ("windows", "Windows"),
        ("macos", "macOS"),
        ("linux", "Linux"),
        ("other", "Other"),
    ]);
    let policy_id = f.id.clone();
    let existing = data.existing;
    let confirm = data.warning.is_some();
    let history = data.history;
    let has_history = !history.is_empty();
    view! {
        <Console current="access" title=title frame=data.frame>
            <p class="gh-links"><a href="/admin/access">"All policies"</a></p>
            {data.warning.map(|w| view! {
                <div class="gh-notice gh-notice-warning" role="alert" id="policy-warning">
                    <p>{w}</p>
                </div>
            })}
            <form method="post" action="/admin/access/policies" class="gh-form gh-policy-form" aria-label="Policy">
                <input type="hidden" name="existing" value=if existing { "yes" } else { "" }/>
                {if existing {
                    view! { <input type="hidden" name="id" value=f.id.clone()/> <p>"Id: " <code>{f.id.clone()}</code></p> }.into_any()
                } else {
                    view! { <Input id="id" label="Id" value=f.id.clone() hint="Letters, digits, - and _; left empty, it is made from the name"/> }.into_any()
                }}
                <Input id="name" label="Name" value=f.name.clone()/>
                <Radios legend="State" name="state" selected=f.state.clone() choices=labelled(&[
                    ("report-only", "Report-only: evaluated and logged, never enforced"),
                    ("on", "On: enforced"),
                    ("off", "Off"),
                ])/>

                <h2>"Users"</h2>
                <Radios legend="Include" name="users_scope" selected=f.users_scope.clone() choices=labelled(&[
                    ("all", "All users"),
                    ("selected", "Selected users and groups"),
                ])/>
                <TextArea id="users" label="Included users" value=f.users.clone() hint="Emails, one a line (with selected users and groups)"/>
                <Checks legend="Included groups" name="groups" choices=data.groups.clone() checked=f.groups.clone()/>
                <TextArea id="exclude_users" label="Excluded users" value=f.exclude_users.clone() hint="Emails, one a line; an exclusion beats an inclusion"/>
                <Checks legend="Excluded groups" name="exclude_groups" choices=data.groups checked=f.exclude_groups.clone()/>

                <h2>"Target resources"</h2>
                <div class="gh-check">
                    <input type="checkbox" id="all_applications" name="all_applications" value="yes" checked=f.all_applications/>
                    <label for="all_applications">"All applications"</label>
                </div>
                <Checks legend="Applications" name="applications" choices=data.applications.clone() checked=f.applications.clone()/>
                <div class="gh-check">
                    <input type="checkbox" id="account_portal" name="account_portal" value="yes" checked=f.account_portal/>
                    <label for="account_portal">"The account portal and the admin console"</label>
                </div>
                <div class="gh-check">
                    <input type="checkbox" id="admin_console" name="admin_console" value="yes" checked=f.admin_console/>
                    <label for="admin_console">"The admin console alone"</label>
                </div>
                <Checks legend="Excluded applications" name="exclude_applications" choices=data.applications checked=f.exclude_applications.clone()/>

                <h2>"Conditions"</h2>
                <p class="gh-hint">"Each condition left empty matches everything; all that are set must match."</p>
                <Checks legend="Sign-in risk" name="sign_in_risk" choices=risks.clone() checked=f.sign_in_risk.clone()/>
                <Checks legend="User risk" name="user_risk" choices=risks checked=f.user_risk.clone()/>
                <Checks legend="Device platforms" name="platforms" choices=platforms.clone() checked=f.platforms.clone()/>
                <Checks legend="Excluded device platforms" name="exclude_platforms" choices=platforms checked=f.exclude_platforms.clone()/>
                <Checks legend="Client types" name="client_types" checked=f.client_types.clone() choices=labelled(&[
                    ("browser", "Browser"),
                    ("native", "Application without a browser (public native client)"),
                ])/>
                <Radios legend="Locations" name="location_include" selected=f.location_include.clone() choices=labelled(&[
                    ("", "No location condition"),
                    ("any", "Any location (with exclusions below)"),
                    ("trusted", "Trusted locations"),
                    ("selected", "Selected locations"),
                ])/>
                <Checks legend="Selected locations" name="location_selected" choices=data.locations.clone() checked=f.location_selected.clone()/>
                <Checks legend="Excluded locations" name="location_exclude" choices=data.locations checked=f.location_exclude.clone()/>
                <div class="gh-check">
                    <input type="checkbox" id="exclude_trusted" name="exclude_trusted" value="yes" checked=f.exclude_trusted/>
                    <label for="exclude_trusted">"Exclude every trusted location"</label>
                </div>

                <h2>"Grant"</h2>
                <Radios legend="Access" name="grant" selected=f.grant.clone() choices=labelled(&[
                    ("block", "Block access"),
                    ("require", "Grant access, requiring the controls below"),
                ])/>
                <Checks legend="Controls" name="controls" checked=f.controls.clone() choices=labelled(&[
                    ("mfa", "Multifactor authentication"),
                    ("passwordless-mfa", "Authentication strength: passwordless MFA"),
                    ("phishing-resistant", "Authentication strength: phishing-resistant (passkey)"),
                    ("terms-of-use", "Accept the terms of use"),
                    ("password-change", "Require a password change (with MFA, for user risk)"),
                ])/>
                <Radios legend="With several controls" name="require_all" selected=(if f.require_all { "all" } else { "one" }).to_string() choices=labelled(&[
                    ("one", "Require one of the controls"),
                    ("all", "Require all the controls"),
                ])/>

                <h2>"Session"</h2>
                <Radios legend="Sign-in frequency" name="frequency" selected=f.frequency.clone() choices=labelled(&[
                    ("", "As usual"),
                    ("every-time", "Every time"),
                    ("hours", "After the number of hours below"),
                ])/>
                <Input id="hours" label="Hours" kind="number" value=f.hours.clone() hint="1 to 8760"/>
                <Radios legend="Persistent browser session" name="persistent" selected=f.persistent.clone() choices=labelled(&[
                    ("", "As usual (ends when the browser closes)"),
                    ("always", "Always persistent"),
                    ("never", "Never persistent"),
                ])/>

                <div class="gh-actions">
                    {if confirm {
                        view! { <button type="submit" name="action" value="confirm" class="gh-button">"Save anyway"</button> }.into_any()
                    } else {
                        view! { <button type="submit" name="action" value="save" class="gh-button">"Save policy"</button> }.into_any()
                    }}
                    <Input id="impact_days" label="Impact over the last days" kind="number" value=data.impact_days.clone() hint="1 to 90; replays the form's policy as if it were on, without saving it"/>
                    <button type="submit" name="action" value="impact" class="gh-button gh-button-secondary">"Show impact"</button>
                </div>
            </form>
            {data.impact.map(|i| view! {
                <section aria-labelledby="impact-heading">
                    <h2 id="impact-heading">"Impact"</h2>
                    <p role="status" id="impact-summary">{i.summary}</p>
                    <DataTable caption="Impact by application".into() headers=vec!["Application", "Blocked", "Challenged"] rows=i.by_application/>
                    <DataTable caption="Sample of affected sign-ins".into() headers=vec!["Time", "User", "Application", "Address", "Method", "Would be"] rows=i.sample/>
                </section>
            })}
            {has_history.then(|| {
                let restore_action = format!("/admin/access/policies/{policy_id}/restore");
                view! {
                    <section aria-labelledby="history-heading">
                        <h2 id="history-heading">"History"</h2>
                        <ol class="gh-history" reversed=true>
                            {history.into_iter().map(|h| {
                                let label = format!("Restore version {}", h.version);
                                let action = restore_action.clone();
                                view! {
                                    <li>
                                        <p><strong>{format!("Version {}", h.version)}</strong>{format!(" — {} by {}", h.when, h.who)}
                                            {h.current.then_some(" (in force)")}{h.deleted.then_some(" (deleted)")}</p>
                                        <ul class="gh-diff" aria-label=format!("Changes in version {}", h.version)>
                                            {h.changes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
                                        </ul>
                                        {(!h.current && !h.deleted).then(|| view! {
                                            <form method="post" action=action>
                                                <input type="hidden" name="version" value=h.version.to_string()/>
                                                <button type="submit" class="gh-button gh-button-secondary" aria-label=label>"Restore"</button>
                                            </form>
                                        })}
                                    </li>
                                }
                            }).collect_view()}
                        </ol>
                    </section>
                }
            })}
            {existing.then(|| {
                let state_action = format!("/admin/access/policies/{}/delete", f.id);
                view! {
                    <form method="post" action=state_action>
                        <button type="submit" class="gh-button gh-button-danger">"Delete policy"</button>
                    </form>
                }
            })}
        </Console>
    }
}

// ---------------------------------------------------------------- terms of use

#[derive(Debug, Clone, Default)]
pub struct TermsAdminData {
    pub frame: Frame,
    pub title: String,
    pub body: String,
    /// Published versions: version, title, when, by whom.
    pub versions: Vec<Vec<Cell>>,
}

#[component]
pub fn AdminTermsPage(data: TermsAdminData) -> impl IntoView {
    view! {
        <Console current="access" title="Terms of use".into() frame=data.frame>
            <p class="gh-lead">"The text a Conditional Access grant may require. Publishing a new version asks everyone those policies reach to accept it once more; each acceptance is recorded with its time and address."</p>
            <DataTable caption="Published versions".into() headers=vec!["Version", "Title", "Published", "By"] rows=data.versions/>
            <h2>"Publish a new version"</h2>
            <form method="post" action="/admin/terms" class="gh-form" aria-label="Publish terms of use">
                <Input id="title" label="Title" value=data.title/>
                <div class="gh-field">
                    <label for="body">"Text"</label>
                    <textarea id="body" name="body" rows="12" aria-describedby="body-hint">{data.body}</textarea>
                    <p class="gh-hint" id="body-hint">"Plain text; a blank line starts a new paragraph."</p>
                </div>
                <button type="submit" class="gh-button">"Publish"</button>
            </form>
        </Console>
    }
}

// ---------------------------------------------------------------- Identity Protection

/// A filter of a report: a text box, a date, or a choice.
#[derive(Debug, Clone)]
pub enum ReportFilter {
    Text {
        id: &'static str,
        label: &'static str,
        value: String,
    },
    Date {
        id: &'static str,
        label: &'static str,
        value: String,
    },
    Choice {
        id: &'static str,
        label: &'static str,
        choices: Vec<Choice>,
        selected: String,
    },
}

/// One of Identity Protection's reports (risky users, risky sign-ins, risk detections).
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    pub frame: Frame,
    pub title: String,
    /// The report's own address, where its filter form goes.
    pub action: String,
    pub filters: Vec<ReportFilter>,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    pub paging: Paging,
    /// Downloads with the page's filters.
    pub exports: Vec<ReportExport>,
    /// The report's rows with the page's filters (what a download's progress counts toward).
    pub total: u64,
    pub note: Option<String>,
    /// The data the detections use, in words (files, build dates, credits).
    pub sources: Vec<String>,
}

/// A download of a report: its label, its address (with the page's filters) and file name.
#[derive(Debug, Clone, Default)]
pub struct ReportExport {
    pub label: String,
    pub href: String,
    pub filename: String,
}

/// The three reports and the webhooks, for the navigation between them.
const REPORTS: [(&str, &str); 4] = [
    ("Risky users", "/admin/risk/users"),
    ("Risky sign-ins", "/admin/risk/sign-ins"),
    ("Risk detections", "/admin/risk/detections"),
    ("Webhooks", "/admin/risk/webhooks"),
];

#[component]
fn ReportNav(current: String) -> impl IntoView {
    view! {
        <nav class="gh-tabs" aria-label="Identity Protection reports">
            <ul>
                {REPORTS
                    .iter()
                    .map(|(label, href)| {
                        let here = *href == current;
                        view! { <li><a href=*href aria-current=here.then_some("page")>{*label}</a></li> }
                    })
                    .collect_view()}
            </ul>
        </nav>
    }
}

#[component]
pub fn AdminReportPage(data: ReportData) -> impl IntoView {
    let filters = data
        .filters
        .into_iter()
        .map(|f| match f {
            ReportFilter::Text { id, label, value } => {
                view! { <Input id=id label=label value=value/> }.into_any()
            }
            ReportFilter::Date { id, label, value } => {
                view! { <Input id=id label=label value=value kind="date"/> }.into_any()
            }
            ReportFilter::Choice {
                id,
                label,
                choices,
                selected,
            } => view! { <ChoiceSelect id=id label=label choices=choices selected=selected/> }
                .into_any(),
        })
        .collect_view();
    let caption = data.title.clone();
    let total = data.total;
    let aria = format!("Filter {}", data.title.to_lowercase());
    view! {
        <Console current="risk" title="Identity Protection".into() frame=data.frame>
            <ReportNav current=data.action.clone()/>
            <h2>{data.title.clone()}</h2>
            {data.note.map(|n| view! { <p class="gh-hint">{n}</p> })}
            <form method="get" action=data.action class="gh-form gh-filters" role="search" aria-label=aria>
                {filters}
                <button type="submit" class="gh-button">"Filter"</button>
            </form>
            <DataTable caption=caption headers=data.headers rows=data.rows/>
            <Pager paging=data.paging/>
            <p class="gh-links">
                {data
                    .exports
                    .into_iter()
                    .map(|e| view! { <ExportLink label=e.label href=e.href filename=e.filename total=total/>" " })
                    .collect_view()}
            </p>
            <h2>"Data sources"</h2>
            <ul class="gh-list" aria-label="Data sources">
                {data.sources.into_iter().map(|s| view! { <li>{s}</li> }).collect_view()}
            </ul>
            <p class="gh-hint">
                "GeoIP and ASN data: "<a href="https://db-ip.com">"IP Geolocation by DB-IP"</a>
                " (CC BY 4.0) and "<a href="https://www.routeviews.org">"RouteViews"</a>" (CC BY 4.0)."
            </p>
        </Console>
    }
}

/// Two places of an atypical-travel detection, drawn on a longitude/latitude grid.
#[derive(Debug, Clone, PartialEq)]
pub struct TravelMap {
    pub from: (String, f64, f64),
    pub to: (String, f64, f64),
    pub summary: String,
}

/// An equirectangular map (360 by 180 units) with a 30-degree graticule, the two places and
/// the line between them; its title and description say the same in words.
#[component]
fn TravelMapSvg(map: TravelMap) -> impl IntoView {
    let x = |lon: f64| lon.clamp(-180.0, 180.0) + 180.0;
    let y = |lat: f64| 90.0 - lat.clamp(-90.0, 90.0);
    let (from, to) = (map.from.clone(), map.to.clone());
    let (x1, y1, x2, y2) = (x(from.2), y(from.1), x(to.2), y(to.1));
    let meridians = (0..=12).map(|i| f64::from(i) * 30.0).collect::<Vec<_>>();
    let parallels = (0..=6).map(|i| f64::from(i) * 30.0).collect::<Vec<_>>();
    view! {
        <figure class="gh-map">
            <svg viewBox="-10 -10 380 200" role="img" aria-labelledby="travel-title travel-desc" width="100%">
                <title id="travel-title">{format!("From {} to {}", from.0, to.0)}</title>
                <desc id="travel-desc">{map.summary.clone()}</desc>
                <rect x="0" y="0" width="360" height="180" fill="#eef3f8" stroke="#5a6b7b" stroke-width="0.5"/>
                {meridians
                    .into_iter()
                    .map(|mx| view! { <line x1=mx y1="0" x2=mx y2="180" stroke="#b8c4d0" stroke-width="0.3"/> })
                    .collect_view()}
                {parallels
                    .into_iter()
                    .map(|py| view! { <line x1="0" y1=py x2="360" y2=py stroke="#b8c4d0" stroke-width="0.3"/> })
                    .collect_view()}
                <line x1="0" y1="90" x2="360" y2="90" stroke="#5a6b7b" stroke-width="0.5"/>
                <line x1=x1 y1=y1 x2=x2 y2=y2 stroke="#b3261e" stroke-width="1.2" stroke-dasharray="3 2"/>
                <circle cx=x1 cy=y1 r="3" fill="#1b4f8a"/>
                <circle cx=x2 cy=y2 r="3" fill="#b3261e"/>
                <text x=x1 y=y1 - 5.0 font-size="8" fill="#1b1f24">{format!("1. {}", from.0)}</text>
                <text x=x2 y=y2 - 5.0 font-size="8" fill="#1b1f24">{format!("2. {}", to.0)}</text>
            </svg>
            <figcaption>{map.summary}</figcaption>
        </figure>
    }
}

/// One detection: what, its evidence in words and fields, the map of a trip, its history.
#[derive(Debug, Clone, Default)]
pub struct DetectionData {
    pub frame: Frame,
    pub title: String,
    pub summary: String,
    pub fields: Vec<(&'static str, Cell)>,
    pub evidence: Vec<(String, String)>,
    pub map: Option<TravelMap>,
    pub history: Vec<Vec<Cell>>,
}

#[component]
pub fn AdminDetectionPage(data: DetectionData) -> impl IntoView {
    view! {
        <Console current="risk" title=data.title frame=data.frame>
            <ReportNav current="/admin/risk/detections".into()/>
            <p class="gh-lead">{data.summary}</p>
            <dl class="gh-stats">
                {data
                    .fields
                    .into_iter()
                    .map(|(k, v)| {
                        let value = match v.href {
                            Some(href) => view! { <a href=href>{v.text}</a> }.into_any(),
                            None => view! { {v.text} }.into_any(),
                        };
                        view! { <dt>{k}</dt><dd>{value}</dd> }
                    })
                    .collect_view()}
            </dl>
            {data.map.map(|m| view! { <h2>"Travel"</h2><TravelMapSvg map=m/> })}
            <h2>"Evidence"</h2>
            <dl class="gh-stats">
                {data.evidence.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
            </dl>
            <DataTable caption="State history".into() headers=vec!["Time", "State", "By", "Reason"] rows=data.history/>
        </Console>
    }
}

// ---------------------------------------------------------------- webhooks

/// The values of the new-endpoint form.
#[derive(Debug, Clone, Default)]
pub struct WebhookForm {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct WebhooksData {
    pub frame: Frame,
    /// The endpoints: URL (linked), events, state, last delivery.
    pub rows: Vec<Vec<Cell>>,
    pub form: WebhookForm,
    /// The event types to choose from: (value, what it is).
    pub choices: Vec<(String, String)>,
}

#[component]
pub fn AdminWebhooksPage(data: WebhooksData) -> impl IntoView {
    let form = data.form;
    view! {
        <Console current="risk" title="Identity Protection".into() frame=data.frame>
            <ReportNav current="/admin/risk/webhooks".into()/>
            <h2>"Webhooks"</h2>
            <p class="gh-hint">
                "Risk detections, their changes of state and risky sign-ins are sent as they happen to the endpoints below, as "
                <a href="https://schema.ocsf.io/1.3.0/">"OCSF 1.3.0"</a>" records, signed the "
                <a href="https://www.standardwebhooks.com/">"Standard Webhooks"</a>
                " way. Failed deliveries are retried with growing pauses for 24 hours."
            </p>
            <DataTable caption="Webhook endpoints".into() headers=vec!["Endpoint", "Events", "State", "Last delivery"] rows=data.rows/>
            <section class="gh-section" aria-labelledby="add-webhook-heading">
                <h2 id="add-webhook-heading">"Add an endpoint"</h2>
                <form method="post" action="/admin/risk/webhooks" class="gh-form" aria-label="Add a webhook endpoint">
                    <Input id="url" label="Endpoint URL" value=form.url kind="url" hint="An https address (http only to this machine)"/>
                    <Input id="description" label="Description" value=form.description/>
                    <fieldset class="gh-fieldset">
                        <legend>"Events"</legend>
                        {data
                            .choices
                            .into_iter()
                            .map(|(value, label)| {
                                let id = format!("event-{}", value.replace('.', "-"));
                                let checked = form.event_types.contains(&value);
                                view! {
                                    <div class="gh-check">
                                        <input type="checkbox" id=id.clone() name="event" value=value.clone() checked=checked/>
                                        <label for=id><code>{value}</code>" — "{label}</label>
                                    </div>
                                }
                            })
                            .collect_view()}
                    </fieldset>
                    <button type="submit" class="gh-button">"Add endpoint"</button>
                </form>
            </section>
        </Console>
    }
}

#[derive(Debug, Clone, Default)]
pub struct WebhookData {
    pub frame: Frame,
    pub id: String,
    pub url: String,
    pub fields: Vec<(&'static str, String)>,
    pub enabled: bool,
    /// A new signing secret, shown this once.
    pub secret: Option<String>,
    /// The recent deliveries: event, type, created, state, attempts, next attempt, last result.
    pub deliveries: Vec<Vec<Cell>>,
}

#[component]
pub fn AdminWebhookPage(data: WebhookData) -> impl IntoView {
    let id = data.id.clone();
    let action = move |a: &str| format!("/admin/risk/webhooks/{id}/{a}");
    let (toggle, toggle_label) = if data.enabled {
        ("disable", "Disable endpoint")
    } else {
        ("enable", "Enable endpoint")
    };
    view! {
        <Console current="risk" title="Webhook endpoint".into() frame=data.frame>
            <ReportNav current="/admin/risk/webhooks".into()/>
            <h2><code>{data.url}</code></h2>
            {data.secret.map(|secret| view! {
                <section class="gh-section gh-secret" aria-labelledby="secret-heading">
                    <h2 id="secret-heading">"Signing secret"</h2>
                    <p>"Copy it now: it is shown only this once. Verify each delivery's webhook-signature with it."</p>
                    <p><code data-testid="webhook-secret">{secret}</code></p>
                </section>
            })}
            <dl class="gh-stats">
                {data.fields.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> }).collect_view()}
            </dl>
            <div class="gh-actions">
                <form method="post" action=action("test")>
                    <button type="submit" class="gh-button">"Send test event"</button>
                </form>
                <form method="post" action=action(toggle)>
                    <button type="submit" class="gh-button gh-button-secondary">{toggle_label}</button>
                </form>
                <form method="post" action=action("rotate")>
                    <button type="submit" class="gh-button gh-button-secondary">"Rotate secret"</button>
                </form>
            </div>
            <DataTable caption="Recent deliveries".into() headers=vec!["Event", "Type", "Created", "State", "Attempts", "Next attempt", "Last result"] rows=data.deliveries/>
            <section class="gh-section" aria-labelledby="delete-heading">
                <h2 id="delete-heading">"Delete"</h2>
                <DeleteForm action=action("delete")
                    confirm="I understand its pending deliveries are dropped" button="Delete endpoint"/>
            </section>
        </Console>
    }
}

// ---------------------------------------------------------------- usage and insights

/// One chart of a dashboard and the numbers it draws: a row per label (a day, a month, or a
/// value such as a browser), a column per series (such as each result).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chart {
    /// Unique on the page (element ids derive from it).
    pub id: String,
    pub title: String,
    /// What the labels are ("Day", "Browser") and what is counted ("Sign-in attempts").
    pub label_name: String,
    pub unit: String,
    pub labels: Vec<String>,
    pub series: Vec<String>,
    pub cells: Vec<Vec<i64>>,
    /// Where its numbers download as CSV.
    pub csv_href: String,
    /// Columns along time, or bars per value.
    pub over_time: bool,
    /// Whether the series add up (stacked, with a total), or overlap (side by side, no
    /// total: new users are among the active ones).
    pub additive: bool,
}

/// Fills of the series: a colour and a pattern each, so the chart reads without colour too.
const SERIES_FILLS: [(&str, &str); 6] = [
    ("#1b4f8a", ""),
    ("#b3261e", "M0,6 L6,0"),
    ("#6b4fa0", "M3,0 L3,6"),
    ("#8a5a00", "M0,3 L6,3"),
    ("#2e7d32", "M0,0 L6,6 M0,6 L6,0"),
    ("#455a64", "M1,1 h1 v1 h-1 z M4,4 h1 v1 h-1 z"),
];

fn grouped(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `n` (at least 1).
fn nice_max(n: i64) -> i64 {
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n.max(1) {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
    }
}

impl Chart {
    fn totals(&self) -> Vec<i64> {
        self.cells.iter().map(|row| row.iter().sum()).collect()
    }

    /// The top of the value axis: the largest stack, or the largest bar.
    fn scale(&self) -> i64 {
        let top = if self.additive {
            self.totals().into_iter().max()
        } else {
            self.cells.iter().flatten().copied().max()
        };
        nice_max(top.unwrap_or(0))
    }

    /// The chart in one sentence, for its description.
    pub fn summary(&self) -> String {
        if !self.additive {
            let highs: Vec<String> = self
                .series
                .iter()
                .enumerate()
                .filter_map(|(j, s)| {
                    let (i, n) = self
                        .cells
                        .iter()
                        .enumerate()
                        .map(|(i, row)| (i, row[j]))
                        .max_by_key(|(i, n)| (*n, std::cmp::Reverse(*i)))?;
                    Some(format!("{s} {} ({})", grouped(n), self.labels[i]))
                })
                .collect();
            return format!(
                "Highest {}: {}.",
                self.label_name.to_lowercase(),
                highs.join(", ")
            );
        }
        let totals = self.totals();
        let total: i64 = totals.iter().sum();
        if total == 0 {
            return format!("No {} in this period.", self.unit.to_lowercase());
        }
        let (best, most) = totals
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
            .map(|(i, n)| (self.labels[i].clone(), *n))
            .unwrap_or_default();
        let series: Vec<String> = self
            .series
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let n: i64 = self.cells.iter().map(|row| row[j]).sum();
                format!("{s} {}", grouped(n))
            })
            .collect();
        format!(
            "{} {} in all ({}); the most, {}, for {best}.",
            grouped(total),
            self.unit.to_lowercase(),
            series.join(", "),
            grouped(most)
        )
    }
}

#[component]
fn ChartPatterns(id: String, count: usize) -> impl IntoView {
    view! {
        <defs>
            {(0..count)
                .map(|j| {
                    let (colour, path) = SERIES_FILLS[j % SERIES_FILLS.len()];
                    view! {
                        <pattern id=format!("{id}-fill-{j}") patternUnits="userSpaceOnUse" width="6" height="6">
                            <rect width="6" height="6" fill=colour/>
                            <path d=path stroke="#ffffff" stroke-width="1.2" fill="#ffffff"/>
                        </pattern>
                    }
                })
                .collect_view()}
        </defs>
    }
}

/// A chart drawn on the server as SVG with a title, axis names and a legend, the table of
/// its numbers beside it and a CSV download of them.
#[component]
pub fn ChartFigure(chart: Chart) -> impl IntoView {
    let id = chart.id.clone();
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let totals = chart.totals();
    let max = chart.scale();
    let n = chart.labels.len().max(1);
    let k = chart.series.len().max(1) as f64;
    let additive = chart.additive;
    // A total column where there is something to add up.
    let with_total = additive && chart.series.len() > 1;
    let fill = |j: usize| format!("url(#{id}-fill-{j})");
    let (width, left, top) = (640.0_f64, 56.0_f64, 12.0_f64);
    let graphic = if chart.over_time {
        let (plot_w, plot_h) = (width - left - 8.0, 180.0_f64);
        let slot = plot_w / n as f64;
        let y = |v: i64| top + plot_h - plot_h * v as f64 / max as f64;
        let every = n.div_ceil(8).max(1);
        let bars = chart
            .cells
            .iter()
            .enumerate()
            .flat_map(|(i, row)| {
                let mut base = 0i64;
                row.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0)
                    .map(|(j, v)| {
                        // Stacked, or side by side when the series overlap.
                        let (x, w, from) = if additive {
                            (left + slot * i as f64 + slot * 0.1, slot * 0.8, base)
                        } else {
                            let w = slot * 0.8 / k;
                            (left + slot * i as f64 + slot * 0.1 + w * j as f64, w, 0)
                        };
                        let (y1, y0) = (y(from + v), y(from));
                        base += v;
                        view! {
                            <rect x=x y=y1 width=w
                                height=(y0 - y1).max(0.5) fill=fill(j) stroke="#1b1f24" stroke-width="0.3"/>
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect_view();
        let ticks = chart
            .labels
            .iter()
            .enumerate()
            .filter(|(i, _)| i.is_multiple_of(every))
            .map(|(i, label)| {
                let short = label
                    .get(5..)
                    .filter(|s| !s.is_empty())
                    .unwrap_or(label)
                    .to_string();
                view! {
                    <text x=left + slot * (i as f64 + 0.5) y=top + plot_h + 14.0 font-size="10"
                        text-anchor="middle" fill="#1b1f24">{short}</text>
                }
            })
            .collect_view();
        let height = top + plot_h + 40.0;
        view! {
            <svg viewBox=format!("0 0 {width} {height}") role="img" aria-labelledby=format!("{title_id} {desc_id}") width="100%">
                <title id=title_id.clone()>{chart.title.clone()}</title>
                <desc id=desc_id.clone()>{chart.summary()}</desc>
                <ChartPatterns id=id.clone() count=chart.series.len()/>
                <line x1=left y1=top x2=left y2=top + plot_h stroke="#1b1f24" stroke-width="0.8"/>
                <line x1=left y1=top + plot_h x2=width - 8.0 y2=top + plot_h stroke="#1b1f24" stroke-width="0.8"/>
                {[0, max / 2, max]
                    .into_iter()
                    .map(|v| view! {
                        <text x=left - 6.0 y=y(v) + 3.0 font-size="10" text-anchor="end" fill="#1b1f24">{grouped(v)}</text>
                        <line x1=left y1=y(v) x2=width - 8.0 y2=y(v) stroke="#c9d1d9" stroke-width="0.4"/>
                    })
                    .collect_view()}
                {bars}
                {ticks}
                <text x=left + plot_w / 2.0 y=height - 6.0 font-size="11" text-anchor="middle" fill="#1b1f24">{chart.label_name.clone()}</text>
                <text x="12" y=top + plot_h / 2.0 font-size="11" text-anchor="middle" fill="#1b1f24"
                    transform=format!("rotate(-90 12 {})", top + plot_h / 2.0)>{chart.unit.clone()}</text>
            </svg>
        }
        .into_any()
    } else {
        let row_h = 22.0_f64;
        let label_w = 150.0_f64;
        let plot_w = width - label_w - 70.0;
        let height = top + row_h * n as f64 + 28.0;
        let x = |v: i64| label_w + plot_w * v as f64 / max as f64;
        let rows = chart
            .cells
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let ry = top + row_h * i as f64;
                let mut base = 0i64;
                let parts = row
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0)
                    .map(|(j, v)| {
                        let (x0, x1) = (x(base), x(base + v));
                        base += v;
                        view! {
                            <rect x=x0 y=ry + 4.0 width=(x1 - x0).max(0.5) height=row_h - 8.0 fill=fill(j)
                                stroke="#1b1f24" stroke-width="0.3"/>
                        }
                    })
                    .collect_view();
                let total: i64 = row.iter().sum();
                view! {
                    <text x=label_w - 6.0 y=ry + row_h / 2.0 + 4.0 font-size="11" text-anchor="end" fill="#1b1f24">{chart.labels[i].clone()}</text>
                    {parts}
                    <text x=x(total) + 4.0 y=ry + row_h / 2.0 + 4.0 font-size="10" fill="#1b1f24">{grouped(total)}</text>
                }
            })
            .collect_view();
        view! {
            <svg viewBox=format!("0 0 {width} {height}") role="img" aria-labelledby=format!("{title_id} {desc_id}") width="100%">
                <title id=title_id.clone()>{chart.title.clone()}</title>
                <desc id=desc_id.clone()>{chart.summary()}</desc>
                <ChartPatterns id=id.clone() count=chart.series.len()/>
                <line x1=label_w y1=top x2=label_w y2=height - 24.0 stroke="#1b1f24" stroke-width="0.8"/>
                {rows}
                <text x=label_w + plot_w / 2.0 y=height - 6.0 font-size="11" text-anchor="middle" fill="#1b1f24">{chart.unit.clone()}</text>
            </svg>
        }
        .into_any()
    };
    let legend = chart
        .series
        .iter()
        .enumerate()
        .map(|(j, s)| {
            view! {
                <li>
                    <svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" fill=fill(j) stroke="#1b1f24" stroke-width="0.5"/></svg>
                    " " {s.clone()}
                </li>
            }
        })
        .collect_view();
    let mut headers: Vec<String> = vec![chart.label_name.clone()];
    headers.extend(chart.series.iter().cloned());
    if with_total {
        headers.push("Total".into());
    }
    let body = chart
        .labels
        .iter()
        .zip(&chart.cells)
        .zip(&totals)
        .map(|((label, row), total)| {
            view! {
                <tr>
                    <th scope="row">{label.clone()}</th>
                    {row.iter().map(|v| view! { <td class="gh-num">{grouped(*v)}</td> }).collect_view()}
                    {with_total.then(|| view! { <td class="gh-num">{grouped(*total)}</td> })}
                </tr>
            }
        })
        .collect_view();
    let section_id = format!("{id}-section");
    view! {
        <section class="gh-chart" aria-labelledby=section_id>
            <h2 id=section_id.clone()>{chart.title.clone()}</h2>
            <figure>
                {graphic}
                <figcaption>
                    <ul class="gh-legend" aria-label=format!("Legend of {}", chart.title)>{legend}</ul>
                </figcaption>
            </figure>
            // Long tables scroll within their box, which the keyboard can reach.
            <div class="gh-table-wrap gh-chart-numbers" tabindex="0" role="region" aria-label=format!("Numbers of {}", chart.title)>
                <table class="gh-table">
                    <caption>{format!("{} (numbers)", chart.title)}</caption>
                    <thead><tr>{headers.into_iter().map(|h| view! { <th scope="col">{h}</th> }).collect_view()}</tr></thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
            <p><a href=chart.csv_href.clone() download="">{format!("Download CSV: {}", chart.title)}</a></p>
        </section>
    }
}

/// The dashboards' filters: application, time zone, how many days.
#[derive(Debug, Clone, Default)]
pub struct InsightsFilter {
    pub application: String,
    pub zone: String,
    pub days: String,
}

#[derive(Debug, Clone, Default)]
pub struct InsightsData {
    pub frame: Frame,
    /// Which dashboard (`authentications`, `access`), its title and the tabs.
    pub dashboard: &'static str,
    pub title: String,
    pub filter: InsightsFilter,
    pub applications: Vec<Choice>,
    pub day_choices: Vec<Choice>,
    /// How far the counters have read the sign-in log, and the time zone note.
    pub status: String,
    pub charts: Vec<Chart>,
    /// The filters as a query string, kept by the tabs.
    pub query: String,
}

/// The dashboards, each a tab.
pub const DASHBOARDS: [(&str, &str); 4] = [
    ("users", "Users"),
    ("authentications", "Authentications"),
    ("mfa", "MFA"),
    ("security", "Security"),
];

#[component]
pub fn AdminInsightsPage(data: InsightsData) -> impl IntoView {
    let f = data.filter;
    let current = data.dashboard;
    let query = data.query;
    view! {
        <Console current="insights" title=data.title frame=data.frame>
            <nav aria-label="Dashboards" class="gh-tabs">
                <ul>
                    {DASHBOARDS
                        .iter()
                        .map(|(id, label)| view! {
                            <li><a href=format!("/admin/insights/{id}?{query}") aria-current=(*id == current).then_some("page")>{*label}</a></li>
                        })
                        .collect_view()}
                </ul>
            </nav>
            <form method="get" action=format!("/admin/insights/{current}") class="gh-form gh-filters" role="search" aria-label="Dashboard filters">
                <ChoiceSelect id="application" label="Application" choices=data.applications selected=f.application/>
                <Input id="zone" label="Time zone" value=f.zone hint="An IANA name such as Europe/Paris; days start at midnight there."/>
                <ChoiceSelect id="days" label="Period" choices=data.day_choices selected=f.days/>
                <button type="submit" class="gh-button">"Show"</button>
            </form>
            <p class="gh-hint">{data.status}</p>
            {data.charts.into_iter().map(|chart| view! { <ChartFigure chart=chart/> }).collect_view()}
        </Console>
    }
}
