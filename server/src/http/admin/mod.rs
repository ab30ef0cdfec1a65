//! The admin console at `/admin`. Every handler starts with [`require_admin`]: no session is
//! 401, a session without the admin role is 403, whatever the route or method. Actions go
//! through the identity core, which writes each one to the audit log.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{AdminOverviewPage, Cell, Frame, OverviewData, Paging};
use gatehouse_app::pages::MessagePage;
use gatehouse_core::identity::admin::AdminError;
use gatehouse_core::store::User;

use crate::http::toolkit::{current_session, internal_error_page, Page};
use crate::AppState;

mod access;
mod apps;
mod branding;
mod groups;
mod insights;
mod locations;
mod logs;
mod policies;
mod providers;
pub(crate) mod risk;
mod users;
mod webhooks;

pub use access::access;
pub use apps::{app, apps, delete_app, register_app, rotate_app_secret, update_app};
pub use branding::{branding, save_branding};
pub use groups::{create_group, group, group_action, groups};
pub(crate) use insights::{charts as insight_charts, PERIODS as INSIGHT_PERIODS};
pub use insights::{
    dashboard as insights_dashboard, export as insights_export, index as insights_index,
};
pub use locations::{delete_location, locations, save_location};
pub use logs::{audit, outbox, sign_in, sign_ins};
pub use policies::{
    export as export_policies, import as import_policies, policy_delete, policy_edit, policy_new,
    policy_restore, policy_save, publish_terms, terms,
};
pub use providers::{provider_action, providers, save_provider};
pub use risk::{
    detection as risk_detection, detections as risk_detections, export_detections, export_sign_ins,
    export_users, risky_sign_ins, risky_users,
};
pub use users::{user, user_action, users};
pub use webhooks::{create_webhook, webhook, webhook_action, webhooks};

#[derive(Deserialize)]
pub struct NoticeQuery {
    pub(super) notice: Option<String>,
    pub(super) error: Option<String>,
}

pub(super) const PAGE_SIZE: i64 = 25;

/// The signed-in admin of a console page (see [`require_admin`] for the refusals).
pub struct AdminUser(pub User);

impl axum::extract::FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        require_admin(state, &parts.headers, &parts.extensions)
            .await
            .map(AdminUser)
    }
}

/// The signed-in admin, or the refusal: 401 without a session, 403 without the admin role.
pub(super) async fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<User, Response> {
    match current_session(state, headers).await {
        Ok(Some((session, user))) if user.is_admin && !user.disabled => {
            // The tenant's multifactor rule and the portal's terms of use hold for admins too:
            // no console page before the account has a second factor and accepted them.
            crate::http::toolkit::portal_gate(state, headers, extensions, &session, &user, true)
                .await?;
            Ok(user)
        }
        Ok(Some(_)) => Err(refusal(
            state,
            StatusCode::FORBIDDEN,
            "Admins only",
            "This page is for the tenant's administrators. Your account does not have the admin role.",
        )
        .await),
        Ok(None) => Err(refusal(
            state,
            StatusCode::UNAUTHORIZED,
            "Sign in as an administrator",
            "Sign in with an administrator account to use the admin console.",
        )
        .await),
        Err(e) => Err(internal_error_page(Page::new(state).await, &e)),
    }
}

pub(super) async fn refusal(
    state: &AppState,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let (title, message) = (title.to_string(), message.to_string());
    Page::new(state).await.status(status).render(
        "admin.title",
        move || view! { <MessagePage title=title message=message/> },
    )
}

pub(super) async fn frame(state: &AppState, notice: Option<&str>) -> Frame {
    Frame {
        notice: notice.map(notice_text).map(str::to_string),
        error: None,
        outbox: state.identity.uses_development_outbox(),
    }
}

/// The frame of a page shown again after a refused form: its error, and the status 400 (200
/// without one).
pub(super) async fn frame_with_error(
    state: &AppState,
    notice: Option<&str>,
    error: Option<String>,
) -> (Frame, StatusCode) {
    let mut f = frame(state, notice).await;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    f.error = error;
    (f, status)
}

pub(super) fn notice_text(code: &str) -> &'static str {
    match code {
        "disable" => "The account is disabled; its sessions and tokens ended.",
        "enable" => "The account is enabled.",
        "delete" => "The account was deleted.",
        "revoke-sessions" => {
            "Every session of the account ended and its application tokens were revoked."
        }
        "reset-mfa" => "The account's multifactor methods were removed.",
        "confirm-compromised" => {
            "The account is confirmed compromised: its user risk is high, its sessions and tokens ended."
        }
        "confirm-safe" => "The account's open risk detections were confirmed safe.",
        "dismiss-risk" => "The account's open risk detections were dismissed.",
        "require-password-reset" => {
            "The password was removed and a reset code emailed to the person."
        }
        "registered" => "The application is registered.",
        "saved" => "The application was saved.",
        "deleted" => "The application was deleted.",
        "provider_saved" => "The provider was saved.",
        "provider_enable" => "The provider is enabled: its button shows on the sign-in pages.",
        "provider_disable" => "The provider is disabled: its button is hidden.",
        "provider_remove" => "The provider was removed.",
        "branding_saved" => "The branding was saved.",
        "group_created" => "The group was created.",
        "location_saved" => "The location was saved.",
        "location_deleted" => "The location was deleted.",
        "group_deleted" => "The group was deleted.",
        "group_edited" => "The group was saved. Its id, which policies name, stays the same.",
        "member_added" => "The account is a member of the group.",
        "member_removed" => "The account is no longer a member of the group.",
        "policy_deleted" => "The policy was deleted.",
        "policies_imported" => "The policies and locations of the document were saved.",
        "terms_published" => {
            "The new version of the terms of use is published: it is asked for at the next sign-in."
        }
        "webhook_created" => "The endpoint is added: it receives the chosen events from now on.",
        "webhook_rotated" => {
            "The secret was rotated: deliveries carry signatures under both secrets for 24 hours."
        }
        "webhook_enable" => "The endpoint is enabled: pending and new events are delivered.",
        "webhook_disable" => "The endpoint is disabled: it receives no new events.",
        "webhook_test" => "A test event is queued: it is delivered within a few seconds.",
        "webhook_deleted" => "The endpoint was deleted with its pending deliveries.",
        _ => "Done.",
    }
}

/// The applications' names by client id, the account portal's among them: the logs show
/// names, with the id on hover.
pub(super) struct AppNames(std::collections::HashMap<String, String>);

impl AppNames {
    pub(super) async fn load(
        state: &AppState,
    ) -> Result<Self, gatehouse_core::identity::AuthError> {
        let mut names: std::collections::HashMap<String, String> = state
            .identity
            .clients()
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        names.insert(
            gatehouse_core::identity::ACCOUNT_PORTAL.into(),
            "Account portal".into(),
        );
        Ok(AppNames(names))
    }

    /// A cell naming the application `id` (its id on hover; the id itself once it is gone).
    pub(super) fn cell(&self, id: &str) -> Cell {
        match self.0.get(id) {
            Some(name) => Cell::text(name.clone()).titled(id),
            None => Cell::text(id),
        }
    }

    /// The application filter's choices: any, then each by name.
    pub(super) fn choices(&self) -> Vec<gatehouse_app::admin::Choice> {
        let mut apps: Vec<(&String, &String)> = self.0.iter().collect();
        apps.sort_by(|a, b| {
            a.1.to_lowercase()
                .cmp(&b.1.to_lowercase())
                .then(a.0.cmp(b.0))
        });
        std::iter::once(gatehouse_app::admin::Choice {
            value: String::new(),
            label: "Any application".into(),
        })
        .chain(
            apps.into_iter()
                .map(|(id, name)| gatehouse_app::admin::Choice {
                    value: id.clone(),
                    label: name.clone(),
                }),
        )
        .collect()
    }
}

/// The fields of a posted console form.
pub(super) struct PostedForm(Vec<(String, String)>);

impl PostedForm {
    pub(super) fn parse(body: &[u8]) -> Self {
        PostedForm(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name` (empty when absent), at most `max` characters.
    pub(super) fn get(&self, name: &str, max: usize) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.chars().take(max).collect())
            .unwrap_or_default()
    }

    /// Every value of `name` (checkboxes), at most `count` of at most `max` characters.
    pub(super) fn all(&self, name: &str, max: usize, count: usize) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.chars().take(max).collect())
            .take(count)
            .collect()
    }
}

pub(super) fn admin_error_text(err: &AdminError) -> String {
    match err {
        AdminError::NotFound => "There is no such account.".into(),
        AdminError::OwnAccount => "You cannot disable or delete your own account.".into(),
        AdminError::Client(problem) => sentence(&problem.to_string()),
        AdminError::Auth(e) => format!("The change could not be made ({}).", e.reason_code()),
    }
}

/// An error's text as a sentence for the page: capitalised, with a full stop.
pub(super) fn sentence(text: &str) -> String {
    let mut s = text.to_string();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{s}.")
}

pub(super) async fn not_found() -> Response {
    crate::http::pages::not_found(axum::extract::Request::default()).await
}

pub(super) fn paging(base: &str, page: i64, total: i64) -> Paging {
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let sep = if base.contains('?') { '&' } else { '?' };
    Paging {
        summary: format!("Page {page} of {pages} ({total} in all)"),
        previous: (page > 1).then(|| format!("{base}{sep}page={}", page - 1)),
        next: (page < pages).then(|| format!("{base}{sep}page={}", page + 1)),
    }
}

pub(super) fn page_number(p: Option<i64>) -> i64 {
    p.unwrap_or(1).clamp(1, 100_000)
}

/// `name=value&...` of the non-empty values, for paging links.
pub(super) fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    parts.join("&")
}

/// A `YYYY-MM-DD` day as milliseconds at its start (UTC); `end` gives the start of the next day.
pub(super) fn day_ms(text: &str, end: bool) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let day = if end { day.succ_opt()? } else { day };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

pub(super) fn trimmed(s: &Option<String>) -> String {
    s.as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(320)
        .collect()
}

// ---------------------------------------------------------------- overview

pub async fn overview(State(state): State<AppState>, _admin: AdminUser) -> Response {
    let page = Page::new(&state).await;
    let since = state.now() - 24 * 60 * 60 * 1000;
    let overview = match state.identity.console_overview(since).await {
        Ok(o) => o,
        Err(e) => return internal_error_page(page, &e),
    };
    let data = OverviewData {
        frame: frame(&state, None).await,
        users: overview.users,
        applications: overview.applications,
        sign_ins: overview.sign_ins,
        since,
    };
    page.render(
        "admin.title",
        move || view! { <AdminOverviewPage data=data/> },
    )
}
