//! Usage and insights: the dashboards, drawn from the rollup counters, and the CSV of each
//! chart's numbers.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{AdminInsightsPage, Chart, Choice, InsightsData, InsightsFilter};
use gatehouse_app::pages::format_time;
use gatehouse_core::identity::insights::InsightsQuery;
use gatehouse_core::identity::Method;
use gatehouse_core::insights::{zone, Table, TimeZone};
use gatehouse_core::store::Watermark;

use super::{frame_with_error, not_found, trimmed, AdminUser, AppNames};
use crate::http::toolkit::{internal_error_page, Page};
use crate::AppState;

/// The periods offered, in days.
pub(crate) const PERIODS: [(u32, &str); 4] = [
    (7, "Last 7 days"),
    (30, "Last 30 days"),
    (90, "Last 90 days"),
    (365, "Last 12 months"),
];

#[derive(Deserialize, Default)]
pub struct InsightsParams {
    application: Option<String>,
    zone: Option<String>,
    days: Option<String>,
    chart: Option<String>,
}

/// `/admin/insights`: the first dashboard.
pub async fn index(
    state: State<AppState>,
    admin: AdminUser,
    params: Query<InsightsParams>,
) -> Response {
    let first = gatehouse_app::admin::DASHBOARDS[0].0;
    dashboard(state, admin, Path(first.into()), params).await
}

/// The filters as asked, the query they make, and the problem with a time zone that is not
/// one (UTC is shown instead).
fn query_of(q: &InsightsParams) -> (InsightsFilter, InsightsQuery, Option<String>) {
    let days = q
        .days
        .as_deref()
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| PERIODS.iter().any(|(n, _)| n == d))
        .unwrap_or(30);
    let zone_name = trimmed(&q.zone);
    let (tz, problem) = match zone(&zone_name) {
        Ok(tz) => (tz, None),
        Err(e) => (TimeZone::UTC, Some(e.to_string())),
    };
    let application = trimmed(&q.application);
    (
        InsightsFilter {
            application: application.clone(),
            zone: if zone_name.is_empty() {
                "UTC".into()
            } else {
                zone_name
            },
            days: days.to_string(),
        },
        InsightsQuery {
            application: (!application.is_empty()).then_some(application),
            zone: tz,
            days,
        },
        problem,
    )
}

/// A method's name for a chart, from its logged value.
fn method_label(value: &str) -> String {
    Method::ALL
        .iter()
        .find(|m| m.as_str() == value)
        .map(|m| m.label().to_string())
        .unwrap_or_else(|| value.to_string())
}

fn chart(
    id: &str,
    title: &str,
    label_name: &str,
    unit: &str,
    table: Table,
    over_time: bool,
    csv_base: &str,
) -> Chart {
    Chart {
        id: id.into(),
        title: title.into(),
        label_name: label_name.into(),
        unit: unit.into(),
        labels: table.labels,
        series: table.series,
        cells: table.cells,
        csv_href: format!("{csv_base}&chart={id}"),
        over_time,
        additive: true,
    }
}

/// The charts of a dashboard (the console's and the API's), its title and how far the
/// counters have read.
pub(crate) async fn charts(
    state: &AppState,
    dashboard: &str,
    q: &InsightsQuery,
    csv_base: &str,
) -> Result<Option<(String, Vec<Chart>, Watermark)>, gatehouse_core::identity::AuthError> {
    let now = state.now();
    let by_day = if q.days > 90 { "Month" } else { "Day" };
    Ok(Some(match dashboard {
        "authentications" => {
            let r = state.identity.authentications_report(q, now).await?;
            let mut methods = r.methods;
            methods.labels = methods.labels.iter().map(|m| method_label(m)).collect();
            (
                "Authentications".into(),
                vec![
                    chart(
                        "per-day",
                        &format!("Sign-in attempts per {}", by_day.to_lowercase()),
                        by_day,
                        "Sign-in attempts",
                        r.per_day,
                        true,
                        csv_base,
                    ),
                    chart(
                        "reasons",
                        &format!("Failures per {} by reason", by_day.to_lowercase()),
                        by_day,
                        "Failed or stopped attempts",
                        r.reasons,
                        true,
                        csv_base,
                    ),
                    chart(
                        "methods",
                        "Sign-in attempts by method",
                        "Method",
                        "Sign-in attempts",
                        methods,
                        false,
                        csv_base,
                    ),
                    chart(
                        "systems",
                        "Sign-in attempts by operating system",
                        "Operating system",
                        "Sign-in attempts",
                        r.systems,
                        false,
                        csv_base,
                    ),
                    chart(
                        "browsers",
                        "Sign-in attempts by browser",
                        "Browser",
                        "Sign-in attempts",
                        r.browsers,
                        false,
                        csv_base,
                    ),
                    chart(
                        "countries",
                        "Sign-in attempts by country",
                        "Country",
                        "Sign-in attempts",
                        r.countries,
                        false,
                        csv_base,
                    ),
                ],
                r.counted,
            )
        }
        "users" => {
            let r = state.identity.users_report(q, now).await?;
            let mut inactive = r.inactive;
            inactive.labels = inactive
                .labels
                .iter()
                .map(|l| format!("No sign-in for {l}"))
                .collect();
            let overlapping = |mut c: Chart| {
                c.additive = false;
                c
            };
            (
                "Users".into(),
                vec![
                    overlapping(chart(
                        "active",
                        &format!("Active and new users per {}", by_day.to_lowercase()),
                        by_day,
                        "Users",
                        r.active,
                        true,
                        csv_base,
                    )),
                    overlapping(chart(
                        "monthly",
                        "Monthly active and new users, last 12 months",
                        "Month",
                        "Users",
                        r.monthly,
                        true,
                        csv_base,
                    )),
                    chart(
                        "inactive",
                        &format!("Inactive users, of {} who ever signed in", r.seen),
                        "Inactive",
                        "Users",
                        inactive,
                        false,
                        csv_base,
                    ),
                ],
                r.counted,
            )
        }
        "mfa" => {
            let r = state.identity.mfa_report(q, now).await?;
            let m = r.methods;
            let methods = Table::column(
                "Accounts",
                vec![
                    ("Authenticator app".into(), m.totp),
                    ("Passkey".into(), m.passkey),
                    ("Text message".into(), m.sms),
                    ("Recovery codes".into(), m.recovery_codes),
                    ("Any second factor".into(), m.any_second_factor),
                    (
                        "No second factor".into(),
                        (m.accounts - m.any_second_factor).max(0),
                    ),
                ],
            );
            let mut per_day = r.per_day;
            per_day.series = per_day.series.iter().map(|m| method_label(m)).collect();
            let mut by_method = r.by_method;
            by_method.labels = by_method.labels.iter().map(|m| method_label(m)).collect();
            let mut texts = r.texts;
            texts.labels = texts.labels.iter().map(|c| format!("+{c}")).collect();
            (
                "MFA".into(),
                vec![
                    chart(
                        "methods",
                        &format!("Accounts with each method, of {} (all applications)", m.accounts),
                        "Method",
                        "Accounts",
                        methods,
                        false,
                        csv_base,
                    ),
                    chart(
                        "second-factors",
                        &format!("Second-factor attempts per {} by method", by_day.to_lowercase()),
                        by_day,
                        "Attempts",
                        per_day,
                        true,
                        csv_base,
                    ),
                    chart(
                        "second-factor-results",
                        "Second-factor attempts by method and result",
                        "Method",
                        "Attempts",
                        by_method,
                        false,
                        csv_base,
                    ),
                    chart(
                        "texts",
                        "Text messages by country calling code: sent, refused by a cap or the country list, failed",
                        "Country code",
                        "Text messages",
                        texts,
                        false,
                        csv_base,
                    ),
                ],
                r.counted,
            )
        }
        "security" => {
            let r = state.identity.policies_report(q, now).await?;
            let risk = state.identity.risk_report(q, now).await?;
            let names: std::collections::HashMap<String, String> = state
                .identity
                .list_policies()
                .await?
                .into_iter()
                .map(|e| (e.policy.id, e.policy.name))
                .collect();
            let name = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
            let mut outcomes = r.outcomes;
            outcomes.labels = outcomes.labels.iter().map(name).collect();
            outcomes.series = outcomes
                .series
                .iter()
                .map(|s| s.replace('_', " "))
                .collect();
            let mut applied = r.applied_per_day;
            applied.series = applied.series.iter().map(name).collect();
            let mut kinds = risk.by_kind;
            kinds.labels = kinds.labels.iter().map(|k| k.replace('_', " ")).collect();
            (
                "Security".into(),
                vec![
                    chart(
                        "applied",
                        &format!(
                            "Sign-ins each policy applied to, per {} (report-only: would have)",
                            by_day.to_lowercase()
                        ),
                        by_day,
                        "Sign-ins",
                        applied,
                        true,
                        csv_base,
                    ),
                    chart(
                        "outcomes",
                        "Policy results",
                        "Policy",
                        "Sign-ins evaluated",
                        outcomes,
                        false,
                        csv_base,
                    ),
                    chart(
                        "risk-levels",
                        &format!(
                            "Risk detections per {} by level (all applications)",
                            by_day.to_lowercase()
                        ),
                        by_day,
                        "Detections",
                        risk.per_day,
                        true,
                        csv_base,
                    ),
                    chart(
                        "risk-kinds",
                        "Risk detections by kind and level (all applications)",
                        "Detection",
                        "Detections",
                        kinds,
                        false,
                        csv_base,
                    ),
                ],
                r.counted,
            )
        }
        _ => return Ok(None),
    }))
}

fn base_query(f: &InsightsFilter) -> String {
    super::query_string(&[
        ("application", &f.application),
        ("zone", &f.zone),
        ("days", &f.days),
    ])
}

pub async fn dashboard(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(dashboard): Path<String>,
    Query(params): Query<InsightsParams>,
) -> Response {
    let page = Page::new(&state).await;
    let (filter, query, problem) = query_of(&params);
    let csv_base = format!("/admin/insights/{dashboard}/export?{}", base_query(&filter));
    let (title, charts, counted) = match charts(&state, &dashboard, &query, &csv_base).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e),
    };
    let apps = match AppNames::load(&state).await {
        Ok(a) => a,
        Err(e) => return internal_error_page(page, &e),
    };
    let Some((id, _)) = gatehouse_app::admin::DASHBOARDS
        .iter()
        .find(|(id, _)| *id == dashboard)
    else {
        return not_found().await;
    };
    let status = if counted.rows_done == 0 {
        "Nothing counted yet: the counters are brought up to date every minute from the sign-in log."
            .to_string()
    } else {
        format!(
            "Counted from the sign-in log up to {} ({} attempts in all); brought up to date every minute. \
             Days run midnight to midnight in {}. Counters are kept for 25 months.",
            format_time(counted.updated_at),
            counted.rows_done,
            filter.zone
        )
    };
    let status = match *id {
        "users" => format!(
            "{status} Active users are estimated from HyperLogLog sketches: exact up to a few \
             hundred users a period, within about 1.6% (one standard error) above; new and \
             inactive users are exact."
        ),
        "mfa" => {
            format!("{status} Accounts with each method are counted now, over all applications.")
        }
        _ => status,
    };
    // A time zone that is not one is said on the page (400), which shows UTC meanwhile.
    let (frame, status_code) = frame_with_error(&state, None, problem).await;
    let data = InsightsData {
        frame,
        dashboard: id,
        title: format!("Usage and insights: {title}"),
        applications: apps.choices(),
        day_choices: PERIODS
            .iter()
            .map(|(n, label)| Choice {
                value: n.to_string(),
                label: label.to_string(),
            })
            .collect(),
        query: base_query(&filter),
        filter,
        status,
        charts,
    };
    let mut response = page.render(
        "admin.title",
        move || view! { <AdminInsightsPage data=data/> },
    );
    *response.status_mut() = status_code;
    response
}

/// One chart's numbers as CSV: the same table the page shows beside it.
pub async fn export(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(dashboard): Path<String>,
    Query(params): Query<InsightsParams>,
) -> Response {
    let page = Page::new(&state).await;
    let (filter, query, _) = query_of(&params);
    // The dashboard's first chart unless another is named.
    let wanted = trimmed(&params.chart);
    let found = match charts(&state, &dashboard, &query, "").await {
        Ok(Some((_, charts, _))) => charts
            .into_iter()
            .enumerate()
            .find(|(i, c)| c.id == wanted || (wanted.is_empty() && *i == 0))
            .map(|(_, c)| c),
        Ok(None) => None,
        Err(e) => return internal_error_page(page, &e),
    };
    let Some(chart) = found else {
        return not_found().await;
    };
    let table = Table {
        labels: chart.labels,
        series: chart.series,
        cells: chart.cells,
    };
    let name = format!("{dashboard}-{}-{}d", chart.id, filter.days);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        table.csv(&chart.label_name),
    )
        .into_response()
}
