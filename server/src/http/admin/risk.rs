//! Identity Protection in the console: the risky users, risky sign-ins and risk detections
//! reports (filters in the address, paging), each detection's evidence, and downloads of each
//! report as CSV or JSON, streamed page by page with the report's filters.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::admin::{
    AdminDetectionPage, AdminReportPage, Cell, Choice, DetectionData, ReportData, ReportExport,
    ReportFilter, TravelMap,
};
use gatehouse_app::pages::format_time;
use gatehouse_core::risk::{DetectionKind, RiskState};
use gatehouse_core::store::{
    DetectionFilter, DetectionRecord, RiskyUser, RiskyUserFilter, SignInFilter, SignInLogEntry,
};

use super::{
    day_ms, frame, not_found, page_number, paging, query_string, trimmed, AdminUser, PAGE_SIZE,
};
use crate::http::toolkit::{internal_error_page, Page};
use crate::AppState;

/// Reports cover this many days unless a start date is chosen.
const REPORT_DAYS: i64 = 90;
/// Rows fetched per database round trip of a download.
const EXPORT_BATCH: i64 = 500;

#[derive(Deserialize, Default)]
pub struct ReportQuery {
    email: Option<String>,
    kind: Option<String>,
    level: Option<String>,
    state: Option<String>,
    application: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<i64>,
    format: Option<String>,
}

/// The filter values as typed (for the form and the links), each choice checked against what
/// it may be (anything else is no filter).
struct Form {
    email: String,
    kind: String,
    level: String,
    state: String,
    application: String,
    from: String,
    to: String,
}

const LEVELS: [&str; 3] = ["low", "medium", "high"];
const STATES: [&str; 5] = [
    "at-risk",
    "confirmed-compromised",
    "remediated",
    "dismissed",
    "confirmed-safe",
];

impl Form {
    fn of(q: &ReportQuery) -> Form {
        let only = |v: &Option<String>, allowed: &[&str]| {
            let v = trimmed(v);
            if allowed.contains(&v.as_str()) {
                v
            } else {
                String::new()
            }
        };
        let kinds: Vec<&str> = DetectionKind::ALL.iter().map(|k| k.as_str()).collect();
        Form {
            email: trimmed(&q.email),
            kind: only(&q.kind, &kinds),
            level: only(&q.level, &LEVELS),
            state: only(&q.state, &STATES),
            application: trimmed(&q.application),
            from: trimmed(&q.from),
            to: trimmed(&q.to),
        }
    }

    fn pairs(&self) -> String {
        query_string(&[
            ("email", &self.email),
            ("kind", &self.kind),
            ("level", &self.level),
            ("state", &self.state),
            ("application", &self.application),
            ("from", &self.from),
            ("to", &self.to),
        ])
    }

    /// The time range: the chosen days, or the last [`REPORT_DAYS`].
    fn range(&self, now: i64) -> (Option<i64>, Option<i64>) {
        let from = day_ms(&self.from, false).or(Some(now - REPORT_DAYS * 24 * 60 * 60 * 1000));
        (from, day_ms(&self.to, true))
    }

    fn detections(&self, now: i64) -> DetectionFilter {
        let (from, to) = self.range(now);
        DetectionFilter {
            email: some(&self.email),
            kind: some(&self.kind),
            level: some(&self.level),
            state: some(&self.state),
            application: some(&self.application),
            from,
            to,
            ..Default::default()
        }
    }

    fn risky_users(&self) -> RiskyUserFilter {
        RiskyUserFilter {
            email: some(&self.email),
            level: some(&self.level),
            state: some(&self.state).filter(|s| s == "at-risk" || s == "confirmed-compromised"),
            ..Default::default()
        }
    }

    fn sign_ins(&self, now: i64) -> SignInFilter {
        let (from, to) = self.range(now);
        SignInFilter {
            email: some(&self.email),
            application: some(&self.application),
            risk_level: some(&self.level),
            risky: true,
            from,
            to,
            ..Default::default()
        }
    }
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn choice_list(any: &str, values: &[(&str, &str)]) -> Vec<Choice> {
    super::logs::choices_of(any, values)
}

fn level_filter(f: &Form) -> ReportFilter {
    ReportFilter::Choice {
        id: "level",
        label: "Risk level",
        choices: choice_list(
            "Any level",
            &[("low", "Low"), ("medium", "Medium"), ("high", "High")],
        ),
        selected: f.level.clone(),
    }
}

fn state_label(state: &str) -> &str {
    match RiskState::parse(state) {
        Some(RiskState::AtRisk) => "At risk",
        Some(RiskState::ConfirmedCompromised) => "Confirmed compromised",
        Some(RiskState::Remediated) => "Remediated",
        Some(RiskState::Dismissed) => "Dismissed",
        Some(RiskState::ConfirmedSafe) => "Confirmed safe",
        None => state,
    }
}

pub(super) fn kind_label(kind: &str) -> String {
    DetectionKind::parse(kind)
        .map(|k| k.label().to_string())
        .unwrap_or_else(|| kind.to_string())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn exports(path: &str, f: &Form) -> Vec<ReportExport> {
    // The download links carry the page's filters.
    let q = f.pairs();
    let sep = if q.is_empty() { "" } else { "&" };
    let name = match path {
        "/admin/risk/users" => "risky-users",
        "/admin/risk/sign-ins" => "risky-sign-ins",
        _ => "risk-detections",
    };
    let mut formats = vec![
        ("Download CSV", "csv", "csv"),
        ("Download JSON", "json", "json"),
    ];
    if path != "/admin/risk/users" {
        formats.push(("Download OCSF (JSON Lines)", "ocsf", "ocsf.jsonl"));
    }
    formats
        .into_iter()
        .map(|(label, format, ext)| ReportExport {
            label: label.into(),
            href: format!("{path}/export?format={format}{sep}{q}"),
            filename: format!("{name}.{ext}"),
        })
        .collect()
}

fn date_filters(f: &Form) -> [ReportFilter; 2] {
    [
        ReportFilter::Date {
            id: "from",
            label: "From",
            value: f.from.clone(),
        },
        ReportFilter::Date {
            id: "to",
            label: "To",
            value: f.to.clone(),
        },
    ]
}

/// What the detections read, in words, for the reports.
fn sources(state: &AppState) -> Vec<String> {
    let files = |sources: Vec<gatehouse_core::geo::GeoSource>| {
        sources
            .iter()
            .map(|s| {
                let built = format_time(s.build_epoch as i64 * 1000);
                format!("{} ({}, built {built})", s.file, s.database_type)
            })
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let id = &state.identity;
    vec![
        match id.geoip() {
            Some(g) => format!("Places: {}.", files(g.sources())),
            None => "Places: no GeoIP database (GATEHOUSE_GEOIP_DB), so no atypical travel and no country or city.".into(),
        },
        match id.asn_db() {
            Some(a) => format!("Networks: {}.", files(a.sources())),
            None => "Networks: no ASN database (GATEHOUSE_ASN_DB), so networks are not compared.".into(),
        },
        match id.breach_corpus() {
            Some(c) => format!("Breached passwords: {}.", c.describe()),
            None => "Breached passwords: no corpus (GATEHOUSE_BREACHED_PASSWORDS); the shipped common-password list applies.".into(),
        },
    ]
}

fn days_note() -> Option<String> {
    Some(format!(
        "The last {REPORT_DAYS} days unless a start date is chosen; times in UTC."
    ))
}

// ---------------------------------------------------------------- risky users

pub async fn risky_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ReportQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let f = Form::of(&q);
    let number = page_number(q.page);
    let (users, total) = match state
        .identity
        .console_risky_users(&f.risky_users(), (number - 1) * PAGE_SIZE, PAGE_SIZE)
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = users
        .iter()
        .map(|u| {
            vec![
                Cell::link(u.email.clone(), format!("/admin/users/{}", u.user_id)),
                Cell::text(capitalised(&u.level)),
                Cell::text(state_label(&u.state)),
                Cell::link(
                    u.open_detections.to_string(),
                    format!(
                        "/admin/risk/detections?email={}",
                        url::form_urlencoded::byte_serialize(u.email.as_bytes())
                            .collect::<String>()
                    ),
                ),
                Cell::text(format_time(u.last_detected_at)),
            ]
        })
        .collect();
    let path = "/admin/risk/users";
    let data = ReportData {
        frame: frame(&state, None).await,
        title: "Risky users".into(),
        action: path.into(),
        filters: vec![
            ReportFilter::Text {
                id: "email",
                label: "User (email contains)",
                value: f.email.clone(),
            },
            level_filter(&f),
            ReportFilter::Choice {
                id: "state",
                label: "Risk state",
                choices: choice_list(
                    "Any state",
                    &[
                        ("at-risk", "At risk"),
                        ("confirmed-compromised", "Confirmed compromised"),
                    ],
                ),
                selected: f.state.clone(),
            },
        ],
        headers: vec!["User", "Risk level", "Risk state", "Open detections", "Last detected"],
        rows,
        paging: paging(&format!("{path}?{}", f.pairs()), number, total),
        exports: exports(path, &f),
        total: total.max(0) as u64,
        sources: sources(&state),
        note: Some(
            "Accounts with detections still open. Confirm safe, dismiss or confirm compromised on the user's page."
                .into(),
        ),
    };
    page.render(
        "admin.title",
        move || view! { <AdminReportPage data=data/> },
    )
}

// ---------------------------------------------------------------- risky sign-ins

fn place_of(e: &SignInLogEntry) -> String {
    match (&e.city, &e.country) {
        (Some(city), Some(country)) => format!("{city}, {country}"),
        (None, Some(country)) => country.clone(),
        _ => String::new(),
    }
}

pub async fn risky_sign_ins(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ReportQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let f = Form::of(&q);
    let number = page_number(q.page);
    let (entries, total) = match state
        .identity
        .console_sign_ins(
            &f.sign_ins(state.now()),
            (number - 1) * PAGE_SIZE,
            PAGE_SIZE,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e),
    };
    let apps = match super::AppNames::load(&state).await {
        Ok(a) => a,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = entries
        .iter()
        .map(|e| {
            let mut row = super::logs::sign_in_cells(e, &apps).to_vec();
            row.extend([
                Cell::text(capitalised(e.risk_level.as_deref().unwrap_or(""))),
                Cell::text(e.result.clone()),
                Cell::text(place_of(e)),
                Cell::text(e.client_ip.clone()),
            ]);
            row
        })
        .collect();
    let path = "/admin/risk/sign-ins";
    let [from, to] = date_filters(&f);
    let data = ReportData {
        frame: frame(&state, None).await,
        title: "Risky sign-ins".into(),
        action: path.into(),
        filters: vec![
            ReportFilter::Text {
                id: "email",
                label: "User (email contains)",
                value: f.email.clone(),
            },
            level_filter(&f),
            ReportFilter::Text {
                id: "application",
                label: "Application (client ID)",
                value: f.application.clone(),
            },
            from,
            to,
        ],
        headers: vec![
            "Time",
            "User",
            "Application",
            "Sign-in risk",
            "Result",
            "Place",
            "IP address",
        ],
        rows,
        paging: paging(&format!("{path}?{}", f.pairs()), number, total),
        exports: exports(path, &f),
        total: total.max(0) as u64,
        note: days_note(),
        sources: sources(&state),
    };
    page.render(
        "admin.title",
        move || view! { <AdminReportPage data=data/> },
    )
}

// ---------------------------------------------------------------- risk detections

pub async fn detections(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ReportQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let f = Form::of(&q);
    let number = page_number(q.page);
    let (found, total) = match state
        .identity
        .console_detections(
            &f.detections(state.now()),
            (number - 1) * PAGE_SIZE,
            PAGE_SIZE,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return internal_error_page(page, &e),
    };
    let ids: Vec<String> = found.iter().map(|d| d.user_id.clone()).collect();
    let emails = match state.identity.emails_of(&ids).await {
        Ok(e) => e,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = found
        .iter()
        .zip(emails)
        .map(|(d, email)| {
            vec![
                Cell::link(
                    format_time(d.detected_at),
                    format!("/admin/risk/detections/{}", d.id),
                ),
                Cell::link(email, format!("/admin/users/{}", d.user_id)),
                Cell::text(kind_label(&d.kind)),
                Cell::text(capitalised(&d.level)),
                Cell::text(state_label(&d.state)),
                Cell::text(capitalised(&d.timing)),
                Cell::text(d.summary.clone()),
            ]
        })
        .collect();
    let path = "/admin/risk/detections";
    let kinds: Vec<(&str, &str)> = DetectionKind::ALL
        .iter()
        .map(|k| (k.as_str(), k.label()))
        .collect();
    let states: Vec<(&str, &str)> = STATES.iter().map(|s| (*s, state_label(s))).collect();
    let [from, to] = date_filters(&f);
    let data = ReportData {
        frame: frame(&state, None).await,
        title: "Risk detections".into(),
        action: path.into(),
        filters: vec![
            ReportFilter::Text {
                id: "email",
                label: "User (email contains)",
                value: f.email.clone(),
            },
            ReportFilter::Choice {
                id: "kind",
                label: "Detection",
                choices: choice_list("Any detection", &kinds),
                selected: f.kind.clone(),
            },
            level_filter(&f),
            ReportFilter::Choice {
                id: "state",
                label: "Risk state",
                choices: choice_list("Any state", &states),
                selected: f.state.clone(),
            },
            ReportFilter::Text {
                id: "application",
                label: "Application (client ID)",
                value: f.application.clone(),
            },
            from,
            to,
        ],
        headers: vec![
            "Detected",
            "User",
            "Detection",
            "Level",
            "State",
            "Timing",
            "Evidence",
        ],
        rows,
        paging: paging(&format!("{path}?{}", f.pairs()), number, total),
        exports: exports(path, &f),
        total: total.max(0) as u64,
        note: days_note(),
        sources: sources(&state),
    };
    page.render(
        "admin.title",
        move || view! { <AdminReportPage data=data/> },
    )
}

/// The structured evidence as (field, value) lines; nested places as one line each.
fn evidence_lines(evidence: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = evidence.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o
                    .iter()
                    .map(|(k, v)| match (k.as_str(), v) {
                        ("at", serde_json::Value::Number(n)) => {
                            format!("at {}", n.as_i64().map(format_time).unwrap_or_default())
                        }
                        (_, serde_json::Value::String(s)) => format!("{k} {s}"),
                        _ => format!("{k} {v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            (k.replace('_', " "), value)
        })
        .collect()
}

fn travel_map(d: &DetectionRecord, evidence: &serde_json::Value) -> Option<TravelMap> {
    if d.kind != DetectionKind::AtypicalTravel.as_str() {
        return None;
    }
    let point = |p: &serde_json::Value| {
        Some((
            p["place"].as_str()?.to_string(),
            p["latitude"].as_f64()?,
            p["longitude"].as_f64()?,
        ))
    };
    Some(TravelMap {
        from: point(&evidence["from"])?,
        to: point(&evidence["to"])?,
        summary: d.summary.clone(),
    })
}

pub async fn detection(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state).await;
    let view = match state.identity.console_detection(&id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found().await,
        Err(e) => return internal_error_page(page, &e),
    };
    let d = &view.detection;
    let evidence: serde_json::Value = serde_json::from_str(&d.evidence).unwrap_or_default();
    let user = match &view.user {
        Some(u) => Cell::link(u.email.clone(), format!("/admin/users/{}", u.id)),
        None => Cell::text("(account deleted)"),
    };
    let sign_in = match &view.sign_in {
        Some(s) => Cell::link(
            format!("{} from {}", format_time(s.occurred_at), s.client_ip),
            format!("/admin/sign-ins/{}", s.id),
        ),
        None => Cell::text("none (not from a sign-in)"),
    };
    let history = view
        .history
        .iter()
        .map(|(c, by)| {
            vec![
                Cell::text(format_time(c.changed_at)),
                Cell::text(state_label(&c.state)),
                Cell::text(by.clone().unwrap_or_else(|| {
                    if c.changed_by.is_some() {
                        "an administrator since deleted".into()
                    } else {
                        "Gatehouse".into()
                    }
                })),
                Cell::text(c.reason.clone()),
            ]
        })
        .collect();
    let data = DetectionData {
        frame: frame(&state, None).await,
        title: kind_label(&d.kind),
        summary: d.summary.clone(),
        fields: vec![
            ("User", user),
            ("Level", Cell::text(capitalised(&d.level))),
            ("State", Cell::text(state_label(&d.state))),
            ("Timing", Cell::text(capitalised(&d.timing))),
            ("Detected", Cell::text(format_time(d.detected_at))),
            ("Sign-in", sign_in),
        ],
        map: travel_map(d, &evidence),
        evidence: evidence_lines(&evidence),
        history,
    };
    page.render(
        "admin.title",
        move || view! { <AdminDetectionPage data=data/> },
    )
}

// ---------------------------------------------------------------- downloads

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    /// OCSF 1.3.0 records, one a line (detections and sign-ins).
    Ocsf,
}

/// One report's rows as the download's records: a CSV header and rows, or JSON objects.
pub(crate) trait Export: Sized + Send + 'static {
    const HEADER: &'static [&'static str];
    fn csv_row(&self) -> Vec<String>;
    fn json(&self) -> serde_json::Value;
    /// The row as an OCSF record, for the reports that have one.
    fn ocsf(&self) -> Option<serde_json::Value> {
        None
    }
}

pub(crate) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A detection with its account's email.
pub(crate) struct DetectionRow(pub DetectionRecord, pub String);

impl Export for DetectionRow {
    const HEADER: &'static [&'static str] = &[
        "id",
        "detected_at",
        "user_id",
        "email",
        "kind",
        "level",
        "state",
        "timing",
        "sign_in_id",
        "summary",
        "evidence",
    ];
    fn csv_row(&self) -> Vec<String> {
        let d = &self.0;
        vec![
            d.id.clone(),
            iso(d.detected_at),
            d.user_id.clone(),
            self.1.clone(),
            d.kind.clone(),
            d.level.clone(),
            d.state.clone(),
            d.timing.clone(),
            d.sign_in_id.clone().unwrap_or_default(),
            d.summary.clone(),
            d.evidence.clone(),
        ]
    }
    fn json(&self) -> serde_json::Value {
        let d = &self.0;
        serde_json::json!({
            "id": d.id, "detected_at": iso(d.detected_at), "user_id": d.user_id,
            "email": self.1, "kind": d.kind, "level": d.level, "state": d.state,
            "timing": d.timing, "sign_in_id": d.sign_in_id, "summary": d.summary,
            "evidence": serde_json::from_str::<serde_json::Value>(&d.evidence).unwrap_or_default(),
        })
    }
    fn ocsf(&self) -> Option<serde_json::Value> {
        // The detection as it stands: its current state, as of its last change.
        let d = &self.0;
        let change = gatehouse_core::store::RiskStateChange {
            id: d.id.clone(),
            user_id: d.user_id.clone(),
            detection_id: d.id.clone(),
            state: d.state.clone(),
            changed_by: None,
            changed_at: d.updated_at,
            reason: String::new(),
        };
        let open = RiskState::parse(&d.state).is_none_or(RiskState::is_open);
        Some(gatehouse_core::webhooks::detection_finding(
            gatehouse_core::webhooks::FindingEvent {
                detection: d,
                change: &change,
                email: Some(&self.1),
                sign_in: None,
                created: open,
            },
        ))
    }
}

impl Export for RiskyUser {
    const HEADER: &'static [&'static str] = &[
        "user_id",
        "email",
        "level",
        "state",
        "open_detections",
        "last_detected_at",
    ];
    fn csv_row(&self) -> Vec<String> {
        vec![
            self.user_id.clone(),
            self.email.clone(),
            self.level.clone(),
            self.state.clone(),
            self.open_detections.to_string(),
            iso(self.last_detected_at),
        ]
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "user_id": self.user_id, "email": self.email, "level": self.level,
            "state": self.state, "open_detections": self.open_detections,
            "last_detected_at": iso(self.last_detected_at),
        })
    }
}

impl Export for SignInLogEntry {
    const HEADER: &'static [&'static str] = &[
        "id",
        "occurred_at",
        "user_id",
        "email",
        "application",
        "method",
        "result",
        "failure_reason",
        "risk_level",
        "client_ip",
        "country",
        "city",
        "asn",
    ];
    fn csv_row(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            iso(self.occurred_at),
            self.user_id.clone().unwrap_or_default(),
            self.email.clone(),
            self.application.clone(),
            self.method.clone(),
            self.result.clone(),
            self.failure_reason.clone().unwrap_or_default(),
            self.risk_level.clone().unwrap_or_default(),
            self.client_ip.clone(),
            self.country.clone().unwrap_or_default(),
            self.city.clone().unwrap_or_default(),
            self.asn.map(|a| a.to_string()).unwrap_or_default(),
        ]
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "occurred_at": iso(self.occurred_at), "user_id": self.user_id,
            "email": self.email, "application": self.application, "method": self.method,
            "result": self.result, "failure_reason": self.failure_reason,
            "risk_level": self.risk_level, "client_ip": self.client_ip,
            "country": self.country, "city": self.city, "asn": self.asn,
        })
    }
    fn ocsf(&self) -> Option<serde_json::Value> {
        Some(gatehouse_core::webhooks::authentication(self))
    }
}

/// CSV text of records (a header first when `header`); fields that a spreadsheet would run as
/// a formula are prefixed with a quote.
fn csv_text(rows: &[Vec<String>], header: Option<&[&str]>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if let Some(h) = header {
        let _ = w.write_record(h);
    }
    for row in rows {
        let safe: Vec<String> = row
            .iter()
            .map(|v| {
                if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                    format!("'{v}")
                } else {
                    v.clone()
                }
            })
            .collect();
        let _ = w.write_record(&safe);
    }
    w.into_inner().unwrap_or_default()
}

/// Streams a report: `fetch(offset, limit)` is called for successive batches until one comes
/// back short, and each batch is written out before the next is read, so no download holds
/// the whole report in memory.
fn stream<T, F, Fut>(format: Format, name: &str, fetch: F) -> Response
where
    T: Export,
    F: Fn(i64, i64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Vec<T>, String>> + Send + 'static,
{
    struct Cursor<F> {
        fetch: F,
        offset: i64,
        done: bool,
    }
    let cursor = Cursor {
        fetch,
        offset: 0,
        done: false,
    };
    let body = futures_util::stream::unfold(cursor, move |mut c| async move {
        if c.done {
            return None;
        }
        let first = c.offset == 0;
        let batch = match (c.fetch)(c.offset, EXPORT_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "a report download stopped");
                c.done = true;
                return Some((
                    Err(std::io::Error::other("the report could not be read")),
                    c,
                ));
            }
        };
        let last = (batch.len() as i64) < EXPORT_BATCH;
        c.offset += batch.len() as i64;
        c.done = last;
        let bytes = match format {
            Format::Csv => {
                let rows: Vec<Vec<String>> = batch.iter().map(Export::csv_row).collect();
                csv_text(&rows, first.then_some(T::HEADER))
            }
            Format::Json => {
                let mut out = Vec::new();
                if first {
                    out.push(b'[');
                }
                for (i, item) in batch.iter().enumerate() {
                    if !(first && i == 0) {
                        out.push(b',');
                    }
                    out.extend(item.json().to_string().into_bytes());
                    out.push(b'\n');
                }
                if last {
                    out.push(b']');
                }
                out
            }
            Format::Ocsf => {
                let mut out = Vec::new();
                for record in batch.iter().filter_map(Export::ocsf) {
                    out.extend(record.to_string().into_bytes());
                    out.push(b'\n');
                }
                out
            }
        };
        Some((Ok::<_, std::io::Error>(bytes), c))
    });
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
        Format::Ocsf => ("application/x-ndjson", "ocsf.jsonl"),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{ext}\""),
            ),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

pub async fn export_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ReportQuery>,
) -> Response {
    export(state, "users", q).await
}

pub async fn export_sign_ins(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ReportQuery>,
) -> Response {
    export(state, "sign-ins", q).await
}

pub async fn export_detections(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ReportQuery>,
) -> Response {
    export(state, "detections", q).await
}

/// A report's download, with the report's filters.
async fn export(state: AppState, report: &str, q: ReportQuery) -> Response {
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some("ocsf") if report != "users" => Format::Ocsf,
        _ => {
            let choices = if report == "users" {
                "Choose format=csv or format=json."
            } else {
                "Choose format=csv, format=json or format=ocsf."
            };
            return (StatusCode::BAD_REQUEST, choices).into_response();
        }
    };
    let f = Form::of(&q);
    let identity = state.identity.clone();
    let now = state.now();
    match report {
        "detections" => {
            let filter = f.detections(now);
            stream(format, "risk-detections", move |offset, limit| {
                let (identity, filter) = (identity.clone(), filter.clone());
                async move {
                    let (found, _) = identity
                        .console_detections(&filter, offset, limit)
                        .await
                        .map_err(|e| e.to_string())?;
                    let ids: Vec<String> = found.iter().map(|d| d.user_id.clone()).collect();
                    let emails = identity.emails_of(&ids).await.map_err(|e| e.to_string())?;
                    Ok(found
                        .into_iter()
                        .zip(emails)
                        .map(|(d, e)| DetectionRow(d, e))
                        .collect())
                }
            })
        }
        "users" => {
            let filter = f.risky_users();
            stream(format, "risky-users", move |offset, limit| {
                let (identity, filter) = (identity.clone(), filter.clone());
                async move {
                    identity
                        .console_risky_users(&filter, offset, limit)
                        .await
                        .map(|(users, _)| users)
                        .map_err(|e| e.to_string())
                }
            })
        }
        "sign-ins" => {
            let filter = f.sign_ins(now);
            stream(format, "risky-sign-ins", move |offset, limit| {
                let (identity, filter) = (identity.clone(), filter.clone());
                async move {
                    identity
                        .console_sign_ins(&filter, offset, limit)
                        .await
                        .map(|(rows, _)| rows)
                        .map_err(|e| e.to_string())
                }
            })
        }
        _ => not_found().await,
    }
}
