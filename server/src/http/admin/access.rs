//! Conditional Access: the policies, groups and named locations in force, and What-If.

use axum::extract::{Query, State};
use axum::response::Response;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{AccessData, AdminAccessPage, Cell, Choice, WhatIfForm};
use gatehouse_app::pages::format_time;
use gatehouse_core::conditional_access::{AccessDecision, ClientType, Grant, Platform, RiskLevel};
use gatehouse_core::identity::{WhatIf, ACCOUNT_PORTAL, ADMIN_CONSOLE};

use super::{trimmed, AdminUser};
use crate::http::toolkit::{internal_error_page, Page};
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct WhatIfQuery {
    notice: Option<String>,
    email: Option<String>,
    app: Option<String>,
    ip: Option<String>,
    platform: Option<String>,
    sign_in_risk: Option<String>,
    user_risk: Option<String>,
}

pub async fn access(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<WhatIfQuery>,
) -> Response {
    let notice = q.notice.clone();
    access_page(&state, q, notice.as_deref(), None).await
}

/// The Conditional Access page, with a notice or the error of a refused change.
pub(super) async fn access_page(
    state: &AppState,
    q: WhatIfQuery,
    notice: Option<&str>,
    error: Option<String>,
) -> Response {
    let page = Page::new(state).await;
    let identity = &state.identity;
    let (policies, groups, locations, clients) = match (
        identity.list_policies().await,
        identity.groups().await,
        identity.named_locations().await,
        identity.clients().await,
    ) {
        (Ok(p), Ok(g), Ok(l), Ok(c)) => (p, g, l, c),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return internal_error_page(page, &e)
        }
    };
    let form = WhatIfForm {
        email: trimmed(&q.email),
        app: trimmed(&q.app),
        ip: trimmed(&q.ip),
        platform: trimmed(&q.platform),
        sign_in_risk: trimmed(&q.sign_in_risk),
        user_risk: trimmed(&q.user_risk),
    };
    let (mut f, status) = super::frame_with_error(state, notice, error).await;
    let (mut decision, mut results, mut country) = (None, Vec::new(), String::new());
    if !form.email.is_empty() {
        let question = WhatIf {
            email: form.email.clone(),
            application: if form.app.is_empty() {
                ACCOUNT_PORTAL.to_string()
            } else {
                form.app.clone()
            },
            client_ip: form.ip.clone(),
            platform: form.platform.parse().unwrap_or(Platform::Other),
            client_type: ClientType::Browser,
            sign_in_risk: form.sign_in_risk.parse().unwrap_or(RiskLevel::None),
            user_risk: form.user_risk.parse().unwrap_or(RiskLevel::None),
        };
        match identity.what_if(&question, state.now()).await {
            Ok(d) => {
                decision = Some(describe(&d));
                country = match (identity.geoip(), identity.country_of(&form.ip)) {
                    (None, _) => "Country of the address: unknown, no GeoIP database is configured (country locations never match).".into(),
                    (Some(_), None) => "Country of the address: not in the GeoIP database.".into(),
                    (Some(_), Some(c)) => format!("Country of the address: {c}."),
                };
                results = d
                    .results
                    .iter()
                    .map(|r| {
                        vec![
                            Cell::text(r.name.clone()),
                            Cell::text(r.state.as_str()),
                            Cell::text(if r.applied { "yes" } else { "no" }),
                            Cell::text(r.reason.clone()),
                        ]
                    })
                    .collect();
            }
            Err(e) => f.error = Some(format!("What If could not answer: {e}.")),
        }
    }
    let mut applications = vec![
        Choice {
            value: ACCOUNT_PORTAL.into(),
            label: "The account portal".into(),
        },
        Choice {
            value: ADMIN_CONSOLE.into(),
            label: "The admin console".into(),
        },
    ];
    applications.extend(clients.into_iter().map(|c| Choice {
        label: c.name,
        value: c.id,
    }));
    let data = AccessData {
        frame: f,
        policies: policies
            .into_iter()
            .map(|e| {
                vec![
                    Cell::link(
                        e.policy.name,
                        format!("/admin/access/policies/{}", e.policy.id),
                    ),
                    Cell::text(e.policy.state.as_str()),
                    Cell::text(e.version.to_string()),
                    Cell::text(format_time(e.updated_at)),
                ]
            })
            .collect(),
        groups: groups
            .into_iter()
            .map(|g| {
                vec![
                    Cell::text(g.name),
                    Cell::text(g.id),
                    Cell::text(g.members.to_string()),
                ]
            })
            .collect(),
        locations: locations
            .into_iter()
            .map(|l| {
                let mut places: Vec<String> = l.ranges.iter().map(ToString::to_string).collect();
                places.extend(l.countries);
                vec![
                    Cell::text(l.name),
                    Cell::text(l.id),
                    Cell::text(if l.trusted { "yes" } else { "no" }),
                    Cell::text(places.join(", ")),
                ]
            })
            .collect(),
        applications,
        form,
        decision,
        country,
        results,
    };
    page.status(status).render(
        "admin.title",
        move || view! { <AdminAccessPage data=data/> },
    )
}

/// The decision in words.
fn describe(d: &AccessDecision) -> String {
    if let Some(p) = &d.blocked_by {
        return format!("Blocked by the policy {p}.");
    }
    if d.required.is_empty() {
        return "Allowed: no enforced policy asks anything.".into();
    }
    let asks: Vec<String> = d
        .required
        .iter()
        .map(|r| format!("{} ({})", r.strength().as_str(), r.policy))
        .collect();
    let blocked_later = d
        .results
        .iter()
        .any(|r| r.applied && r.grant == Some(Grant::Block));
    let mut text = format!("Allowed once the sign-in meets: {}.", asks.join(", "));
    if blocked_later {
        text.push_str(" A report-only policy would block it.");
    }
    text
}
