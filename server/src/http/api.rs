//! Gatehouse's own JSON API for other tools: the risk detections and the risky users, read by
//! applications with access tokens they got as themselves (client credentials) carrying a
//! scope an administrator granted them, paged by cursor, and described by an OpenAPI document.
//!
//! Errors follow RFC 6750 §3: no token or an unusable one is a 401 with a `Bearer` challenge,
//! a token without the scope a 403 naming the scope, a bad parameter a 400 naming it.

use axum::extract::{Path, RawQuery, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use gatehouse_core::identity::oidc::{INSIGHTS_READ_SCOPE, RISK_READ_SCOPE};
use gatehouse_core::risk::DetectionKind;
use gatehouse_core::store::{DetectionFilter, RiskyUserFilter, EVENT_TEST};
use gatehouse_core::webhooks::EVENT_TYPES;

use super::admin::risk::{DetectionRow, Export};
use super::oidc::{bearer, json_response, TOKEN_PATH};
use crate::AppState;

pub const RISK_DETECTIONS_PATH: &str = "/api/v1/risk-detections";
pub const RISKY_USERS_PATH: &str = "/api/v1/risky-users";
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
pub const INSIGHTS_PATH: &str = "/api/v1/insights/{dashboard}";

/// Items per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

const LEVELS: [&str; 3] = ["low", "medium", "high"];
const DETECTION_STATES: [&str; 5] = [
    "at-risk",
    "confirmed-compromised",
    "remediated",
    "dismissed",
    "confirmed-safe",
];
const USER_STATES: [&str; 2] = ["at-risk", "confirmed-compromised"];

fn challenge(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    scoped_challenge(status, error, description, RISK_READ_SCOPE)
}

/// An RFC 6750 error; `insufficient_scope` names the `scope` the route needs.
fn scoped_challenge(
    status: StatusCode,
    error: Option<&str>,
    description: &str,
    scope: &str,
) -> Response {
    let mut header = String::from("Bearer realm=\"gatehouse\"");
    if let Some(e) = error {
        header.push_str(&format!(", error=\"{e}\""));
        if e == "insufficient_scope" {
            header.push_str(&format!(", scope=\"{scope}\""));
        }
    }
    let mut response = json_response(
        status,
        json!({
            "error": error.unwrap_or("invalid_request"),
            "error_description": description,
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    response
}

fn bad_request(description: String) -> Response {
    challenge(
        StatusCode::BAD_REQUEST,
        Some("invalid_request"),
        &description,
    )
}

fn server_error(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "an API request failed");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({ "error": "server_error", "error_description": "try again later" }),
    )
}

/// `Ok(())` when the request carries a live application token with the risk scope.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    authorize_scope(state, headers, RISK_READ_SCOPE).await
}

/// `Ok(())` when the request carries a live application token with `scope`.
async fn authorize_scope(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<(), Response> {
    let Some(token) = bearer(headers) else {
        return Err(scoped_challenge(
            StatusCode::UNAUTHORIZED,
            None,
            "send an access token from the client credentials grant: Authorization: Bearer ...",
            scope,
        ));
    };
    match state.identity.api_caller(&token, state.now()).await {
        Ok(Some(caller)) if caller.has_scope(scope) => Ok(()),
        Ok(Some(_)) => Err(scoped_challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            &format!("the token does not carry the {scope} scope"),
            scope,
        )),
        Ok(None) => Err(scoped_challenge(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token is unknown, expired, revoked or not an application's own",
            scope,
        )),
        Err(e) => Err(server_error(&e)),
    }
}

/// The query's parameters, each at most once and each one of `known`.
fn parameters(query: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    for (i, (name, _)) in pairs.iter().enumerate() {
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "unknown parameter {name:?} (use {})",
                known.join(", ")
            ));
        }
        if pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("parameter {name:?} appears twice"));
        }
    }
    Ok(pairs)
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn one_of(
    pairs: &[(String, String)],
    name: &str,
    allowed: &[&str],
) -> Result<Option<String>, String> {
    match get(pairs, name) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(v) => Err(format!("{name} {v:?} is not one of {}", allowed.join(", "))),
    }
}

/// A time: RFC 3339, or a date (its start, UTC).
fn time(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, String> {
    let Some(v) = get(pairs, name) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.timestamp_millis()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(Some(t.and_utc().timestamp_millis()));
        }
    }
    Err(format!(
        "{name} {v:?} is not a time (RFC 3339, such as 2026-12-01T00:00:00Z, or a date)"
    ))
}

fn limit(pairs: &[(String, String)]) -> Result<i64, String> {
    match get(pairs, "limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("limit {v:?} is not a number from 1 to {MAX_LIMIT}")),
        },
    }
}

/// A cursor names the last item of a page: its time and id, opaque to the caller.
fn encode_cursor(at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

fn cursor(pairs: &[(String, String)]) -> Result<Option<(i64, String)>, String> {
    let Some(v) = get(pairs, "cursor") else {
        return Ok(None);
    };
    let decoded = URL_SAFE_NO_PAD
        .decode(v)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let parsed = decoded.as_deref().and_then(|text| {
        let (at, id) = text.split_once('.')?;
        let at = at.parse::<i64>().ok()?;
        (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| (at, id.to_string()))
    });
    parsed
        .map(Some)
        .ok_or_else(|| "cursor is not one this API gave out".to_string())
}

fn page(items: Vec<Value>, next: Option<String>) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "items": items, "next_cursor": next }),
    )
}

/// `GET /api/v1/risk-detections`: detections newest first.
pub async fn risk_detections(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = authorize(&state, &headers).await {
        return r;
    }
    let known = [
        "kind",
        "level",
        "state",
        "user_id",
        "application",
        "since",
        "until",
        "limit",
        "cursor",
    ];
    let kinds: Vec<&str> = DetectionKind::ALL.iter().map(|k| k.as_str()).collect();
    let parsed = (|| {
        let pairs = parameters(query.as_deref(), &known)?;
        let filter = DetectionFilter {
            kind: one_of(&pairs, "kind", &kinds)?,
            level: one_of(&pairs, "level", &LEVELS)?,
            state: one_of(&pairs, "state", &DETECTION_STATES)?,
            user_id: get(&pairs, "user_id").map(str::to_string),
            application: get(&pairs, "application").map(str::to_string),
            from: time(&pairs, "since")?,
            to: time(&pairs, "until")?,
            after: cursor(&pairs)?,
            ..Default::default()
        };
        Ok::<_, String>((filter, limit(&pairs)?))
    })();
    let (filter, limit) = match parsed {
        Ok(p) => p,
        Err(description) => return bad_request(description),
    };
    let identity = &state.identity;
    let (mut found, _) = match identity.console_detections(&filter, 0, limit + 1).await {
        Ok(f) => f,
        Err(e) => return server_error(&e),
    };
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    let next = more
        .then(|| found.last().map(|d| encode_cursor(d.detected_at, &d.id)))
        .flatten();
    let ids: Vec<String> = found.iter().map(|d| d.user_id.clone()).collect();
    let emails = match identity.emails_of(&ids).await {
        Ok(e) => e,
        Err(e) => return server_error(&e),
    };
    let items = found
        .into_iter()
        .zip(emails)
        .map(|(d, e)| DetectionRow(d, e).json())
        .collect();
    page(items, next)
}

/// `GET /api/v1/risky-users`: accounts with open detections, most recently detected first.
pub async fn risky_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = authorize(&state, &headers).await {
        return r;
    }
    let parsed = (|| {
        let pairs = parameters(query.as_deref(), &["level", "state", "limit", "cursor"])?;
        let filter = RiskyUserFilter {
            level: one_of(&pairs, "level", &LEVELS)?,
            state: one_of(&pairs, "state", &USER_STATES)?,
            after: cursor(&pairs)?,
            ..Default::default()
        };
        Ok::<_, String>((filter, limit(&pairs)?))
    })();
    let (filter, limit) = match parsed {
        Ok(p) => p,
        Err(description) => return bad_request(description),
    };
    let (mut found, _) = match state
        .identity
        .console_risky_users(&filter, 0, limit + 1)
        .await
    {
        Ok(f) => f,
        Err(e) => return server_error(&e),
    };
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    let next = more
        .then(|| {
            found
                .last()
                .map(|u| encode_cursor(u.last_detected_at, &u.user_id))
        })
        .flatten();
    page(found.iter().map(Export::json).collect(), next)
}

/// `GET /api/v1/insights/{dashboard}`: a dashboard's charts, each with its labels, series and
/// numbers, exactly as the console shows them.
pub async fn insights(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(dashboard): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(r) = authorize_scope(&state, &headers, INSIGHTS_READ_SCOPE).await {
        return r;
    }
    let parsed = (|| {
        let pairs = parameters(query.as_deref(), &["application", "zone", "days", "chart"])?;
        let days = match get(&pairs, "days") {
            None => 30,
            Some(d) => d
                .parse::<u32>()
                .ok()
                .filter(|d| super::admin::INSIGHT_PERIODS.iter().any(|(n, _)| n == d))
                .ok_or("days must be 7, 30, 90 or 365")?,
        };
        let zone_name = get(&pairs, "zone").unwrap_or("UTC").to_string();
        let zone = gatehouse_core::insights::zone(&zone_name).map_err(|e| e.to_string())?;
        let query = gatehouse_core::identity::insights::InsightsQuery {
            application: get(&pairs, "application").map(str::to_string),
            zone,
            days,
        };
        Ok::<_, String>((query, zone_name, get(&pairs, "chart").map(str::to_string)))
    })();
    let (q, zone_name, chart) = match parsed {
        Ok(p) => p,
        Err(description) => return bad_request(description),
    };
    let (charts, counted) = match super::admin::insight_charts(&state, &dashboard, &q, "").await {
        Ok(Some((_, charts, counted))) => (charts, counted),
        Ok(None) => {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({ "error": "not_found", "error_description": "no such dashboard (authentications, access)" }),
            )
        }
        Err(e) => return server_error(&e),
    };
    if let Some(wanted) = &chart {
        if !charts.iter().any(|c| &c.id == wanted) {
            return bad_request(format!(
                "chart must be one of {}",
                charts
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let charts: Vec<Value> = charts
        .into_iter()
        .filter(|c| chart.as_ref().is_none_or(|w| &c.id == w))
        .map(|c| {
            json!({
                "id": c.id,
                "title": c.title,
                "label_name": c.label_name,
                "unit": c.unit,
                "labels": c.labels,
                "series": c.series,
                "rows": c.cells,
                "additive": c.additive,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "dashboard": dashboard,
            "application": q.application,
            "zone": zone_name,
            "days": q.days,
            "counted": {
                "rows": counted.rows_done,
                "updated_at": (counted.updated_at > 0).then(|| super::admin::risk::iso(counted.updated_at)),
            },
            "charts": charts,
        }),
    )
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of this API.
pub async fn openapi(State(state): State<AppState>) -> Response {
    let mut response = json_response(StatusCode::OK, openapi_document(state.identity.issuer()));
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn openapi_document(issuer: &str) -> Value {
    let string = json!({ "type": "string" });
    let time = json!({ "type": "string", "format": "date-time" });
    let level = json!({ "type": "string", "enum": LEVELS });
    let kinds: Vec<&str> = DetectionKind::ALL.iter().map(|k| k.as_str()).collect();
    let query = |name: &str, description: &str, schema: Value| {
        json!({ "name": name, "in": "query", "required": false,
                "description": description, "schema": schema })
    };
    let paging = [
        query(
            "limit",
            "Items per page (default 100).",
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT }),
        ),
        query(
            "cursor",
            "The next_cursor of the previous page.",
            string.clone(),
        ),
    ];
    let errors = json!({
        "400": { "description": "A parameter is unknown, repeated or malformed.",
                 "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "401": { "description": "No access token, or one that is not live (WWW-Authenticate: Bearer).",
                 "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        "403": { "description": "The token lacks the route's scope (WWW-Authenticate: Bearer error=\"insufficient_scope\" with the scope).",
                 "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
    });
    let page_of = |schema: &str| {
        json!({
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{schema}") } },
                "next_cursor": { "type": ["string", "null"],
                                 "description": "Pass as cursor for the next page; null on the last page." },
            },
        })
    };
    let operation = |summary: &str, id: &str, params: Vec<Value>, schema: &str| {
        let mut responses = errors.clone();
        responses["200"] = json!({
            "description": "One page.",
            "content": { "application/json": { "schema": page_of(schema) } },
        });
        json!({ "get": {
            "summary": summary,
            "operationId": id,
            "security": [{ "clientCredentials": [RISK_READ_SCOPE] }],
            "parameters": params,
            "responses": responses,
        } })
    };
    let mut detection_params = vec![
        query(
            "kind",
            "The detection type.",
            json!({ "type": "string", "enum": kinds }),
        ),
        query("level", "The detection's level.", level.clone()),
        query(
            "state",
            "The risk state.",
            json!({ "type": "string", "enum": DETECTION_STATES }),
        ),
        query("user_id", "One account.", string.clone()),
        query(
            "application",
            "The application of the sign-in it came from.",
            string.clone(),
        ),
        query(
            "since",
            "Detected at or after (RFC 3339 or a date).",
            string.clone(),
        ),
        query(
            "until",
            "Detected before (RFC 3339 or a date).",
            string.clone(),
        ),
    ];
    detection_params.extend(paging.iter().cloned());
    let mut user_params = vec![
        query("level", "The user risk level.", level.clone()),
        query(
            "state",
            "The user's risk state.",
            json!({ "type": "string", "enum": USER_STATES }),
        ),
    ];
    user_params.extend(paging.iter().cloned());
    let webhooks = webhooks_document();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gatehouse API",
            "version": "1",
            "description": "Data for other tools: Identity Protection's risk detections with their evidence and the accounts at risk (gatehouse.risk.read), and the usage and insights dashboards' numbers (gatehouse.insights.read).",
        },
        "servers": [{ "url": issuer }],
        "paths": {
            RISK_DETECTIONS_PATH: operation("Risk detections, newest first", "listRiskDetections", detection_params, "RiskDetection"),
            RISKY_USERS_PATH: operation("Risky users, most recently detected first", "listRiskyUsers", user_params, "RiskyUser"),
            INSIGHTS_PATH: insights_operation(&errors, query),
        },
        "webhooks": webhooks,
        "components": {
            "securitySchemes": {
                "clientCredentials": {
                    "type": "oauth2",
                    "description": "An access token from the client credentials grant, for an application granted the scope in the console.",
                    "flows": { "clientCredentials": {
                        "tokenUrl": format!("{issuer}{TOKEN_PATH}"),
                        "scopes": {
                            RISK_READ_SCOPE: "Read risk detections and risky users",
                            INSIGHTS_READ_SCOPE: "Read the usage and insights dashboards' numbers",
                        },
                    } },
                },
            },
            "schemas": {
                "RiskDetection": {
                    "type": "object",
                    "required": ["id", "detected_at", "user_id", "email", "kind", "level", "state", "timing", "sign_in_id", "summary", "evidence"],
                    "properties": {
                        "id": string,
                        "detected_at": time,
                        "user_id": string,
                        "email": string,
                        "kind": { "type": "string", "enum": kinds },
                        "level": level,
                        "state": { "type": "string", "enum": DETECTION_STATES },
                        "timing": { "type": "string", "enum": ["real-time", "offline"] },
                        "sign_in_id": { "type": ["string", "null"], "description": "The sign-in log entry it came from." },
                        "summary": { "type": "string", "description": "The evidence in one sentence." },
                        "evidence": { "type": "object", "description": "The evidence as structured fields, by detection type." },
                    },
                },
                "RiskyUser": {
                    "type": "object",
                    "required": ["user_id", "email", "level", "state", "open_detections", "last_detected_at"],
                    "properties": {
                        "user_id": string,
                        "email": string,
                        "level": level,
                        "state": { "type": "string", "enum": USER_STATES },
                        "open_detections": { "type": "integer" },
                        "last_detected_at": time,
                    },
                },
                "WebhookEvent": {
                    "type": "object",
                    "description": "The Standard Webhooks envelope of every delivery.",
                    "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": { "type": "string", "enum": EVENT_TYPES.iter().map(|(t, _)| *t).chain([EVENT_TEST]).collect::<Vec<_>>() },
                        "timestamp": { "type": "string", "format": "date-time", "description": "When the event happened." },
                        "data": { "oneOf": [
                            { "$ref": "#/components/schemas/OcsfDetectionFinding" },
                            { "$ref": "#/components/schemas/OcsfAuthentication" },
                            { "type": "object", "description": "A test event's message and endpoint id." },
                        ] },
                    },
                },
                "OcsfDetectionFinding": {
                    "type": "object",
                    "description": "An OCSF 1.3.0 Detection Finding (https://schema.ocsf.io/1.3.0/classes/detection_finding); Gatehouse's own fields under unmapped.gatehouse.",
                    "required": ["class_uid", "category_uid", "activity_id", "type_uid", "time", "severity_id", "status_id", "finding_info", "metadata"],
                    "properties": {
                        "class_uid": { "const": 2004 },
                        "category_uid": { "const": 2 },
                        "activity_id": { "enum": [1, 2, 3], "description": "1 Create (a new detection), 2 Update, 3 Close (no longer at risk)." },
                        "type_uid": { "enum": [200401, 200402, 200403] },
                        "time": { "type": "integer", "description": "Milliseconds since 1970." },
                        "severity_id": { "enum": [1, 2, 3, 4] },
                        "risk_level_id": { "enum": [0, 1, 2, 3] },
                        "status_id": { "enum": [1, 2, 3, 4, 99], "description": "1 New (at risk), 2 In Progress (confirmed compromised), 3 Suppressed (dismissed), 4 Resolved (remediated or confirmed safe)." },
                        "finding_info": { "type": "object", "required": ["uid", "title", "types"], "properties": {
                            "uid": { "type": "string", "description": "The detection's id." },
                            "title": string,
                            "desc": string,
                            "types": { "type": "array", "items": { "type": "string", "enum": kinds } },
                        } },
                        "evidences": { "type": "array", "items": { "type": "object" } },
                        "metadata": { "type": "object" },
                        "unmapped": { "type": "object" },
                    },
                },
                "OcsfAuthentication": {
                    "type": "object",
                    "description": "An OCSF 1.3.0 Authentication event, activity Logon (https://schema.ocsf.io/1.3.0/classes/authentication).",
                    "required": ["class_uid", "category_uid", "activity_id", "type_uid", "time", "status_id", "src_endpoint", "metadata"],
                    "properties": {
                        "class_uid": { "const": 3002 },
                        "category_uid": { "const": 3 },
                        "activity_id": { "const": 1 },
                        "type_uid": { "const": 300201 },
                        "time": { "type": "integer", "description": "Milliseconds since 1970." },
                        "status_id": { "enum": [1, 2, 99] },
                        "risk_level_id": { "enum": [1, 2, 3] },
                        "src_endpoint": { "type": "object" },
                        "user": { "type": "object" },
                        "metadata": { "type": "object" },
                        "unmapped": { "type": "object" },
                    },
                },
                "InsightsDashboard": {
                    "type": "object",
                    "required": ["dashboard", "application", "zone", "days", "counted", "charts"],
                    "properties": {
                        "dashboard": { "type": "string", "enum": ["users", "authentications", "mfa", "security"] },
                        "application": { "type": ["string", "null"] },
                        "zone": string,
                        "days": { "type": "integer" },
                        "counted": { "type": "object", "required": ["rows", "updated_at"], "properties": {
                            "rows": { "type": "integer", "description": "Sign-in log rows counted so far." },
                            "updated_at": { "type": ["string", "null"], "format": "date-time", "description": "When the counters last moved." },
                        } },
                        "charts": { "type": "array", "items": { "$ref": "#/components/schemas/InsightsChart" } },
                    },
                },
                "InsightsChart": {
                    "type": "object",
                    "required": ["id", "title", "label_name", "unit", "labels", "series", "rows", "additive"],
                    "properties": {
                        "id": string,
                        "title": string,
                        "label_name": { "type": "string", "description": "What the labels are: Day, Month, or a dimension such as Browser." },
                        "unit": { "type": "string", "description": "What is counted." },
                        "labels": { "type": "array", "items": { "type": "string" }, "description": "A local day (YYYY-MM-DD), month (YYYY-MM) or value per row." },
                        "series": { "type": "array", "items": { "type": "string" } },
                        "rows": { "type": "array", "items": { "type": "array", "items": { "type": "integer" } },
                                  "description": "rows[i][j]: the count of labels[i] in series[j]." },
                        "additive": { "type": "boolean", "description": "Whether a row's series add up; false where they overlap (new users are among the active users)." },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "error_description"],
                    "properties": {
                        "error": { "type": "string", "enum": ["invalid_request", "invalid_token", "insufficient_scope", "not_found", "server_error"] },
                        "error_description": string,
                    },
                },
            },
        },
    })
}

/// The insights route's operation in the OpenAPI document.
fn insights_operation(errors: &Value, query: impl Fn(&str, &str, Value) -> Value) -> Value {
    let mut responses = errors.clone();
    responses["200"] = json!({
        "description": "The dashboard's charts.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/InsightsDashboard" } } },
    });
    responses["404"] = json!({
        "description": "No such dashboard.",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    });
    json!({ "get": {
        "summary": "A usage and insights dashboard's numbers",
        "operationId": "getInsightsDashboard",
        "security": [{ "clientCredentials": [INSIGHTS_READ_SCOPE] }],
        "parameters": [
            { "name": "dashboard", "in": "path", "required": true,
              "schema": { "type": "string", "enum": ["users", "authentications", "mfa", "security"] } },
            query("application", "One application's client id (all when absent).", json!({ "type": "string" })),
            query("zone", "The IANA time zone days run in (UTC by default).", json!({ "type": "string" })),
            query("days", "The period: 7, 30 or 90 days by day, or 365 for 12 months by month (30 by default).",
                  json!({ "type": "integer", "enum": [7, 30, 90, 365] })),
            query("chart", "Only this chart (its id).", json!({ "type": "string" })),
        ],
        "responses": responses,
    } })
}

/// The webhooks' part of the document: one operation per event type, with the Standard
/// Webhooks headers.
fn webhooks_document() -> Value {
    let header = |name: &str, description: &str| {
        json!({ "name": name, "in": "header", "required": true,
                "description": description, "schema": { "type": "string" } })
    };
    let headers = [
        header("webhook-id", "The event's id: the same on every attempt."),
        header("webhook-timestamp", "Unix seconds of the attempt."),
        header("webhook-signature", "v1, and the base64 HMAC-SHA256 of id.timestamp.body under the endpoint's secret; two, separated by a space, for a day after a rotation."),
    ];
    let mut out = serde_json::Map::new();
    for (event, description) in EVENT_TYPES
        .iter()
        .chain([&(EVENT_TEST, "A test event an admin sends to one endpoint")])
    {
        out.insert(
            (*event).to_string(),
            json!({ "post": {
                "summary": description,
                "operationId": event.replace('.', "_"),
                "parameters": headers,
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/WebhookEvent" } } } },
                "responses": {
                    "2XX": { "description": "Delivered." },
                    "default": { "description": "Retried after 30 s, doubling to 4 h, for 24 h." },
                },
            } }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_webhook_event() {
        let doc = openapi_document("https://id.example.com");
        for (event, _) in EVENT_TYPES {
            let op = &doc["webhooks"][event]["post"];
            assert_eq!(
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/WebhookEvent"
            );
            assert_eq!(op["parameters"].as_array().unwrap().len(), 3);
        }
        assert!(doc["webhooks"][EVENT_TEST].is_object());
        assert_eq!(
            doc["components"]["schemas"]["OcsfDetectionFinding"]["properties"]["class_uid"]
                ["const"],
            2004
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_was_not_given_out() {
        let c = encode_cursor(1_764_000_000_000, "d-42");
        let pairs = vec![("cursor".to_string(), c)];
        assert_eq!(
            cursor(&pairs).ok().flatten(),
            Some((1_764_000_000_000, "d-42".to_string()))
        );
        for bad in ["", "!!", "bm9kb3Q", "eC5h", "MTIzLg"] {
            let pairs = vec![("cursor".to_string(), bad.to_string())];
            let result = cursor(&pairs);
            if bad.is_empty() {
                assert!(matches!(result, Ok(None)));
            } else {
                assert!(result.is_err(), "{bad:?} must be refused");
            }
        }
    }

    #[test]
    fn every_detection_kind_and_state_is_in_the_document() {
        let doc = openapi_document("https://id.example.com");
        let kinds = &doc["components"]["schemas"]["RiskDetection"]["properties"]["kind"]["enum"];
        assert_eq!(kinds.as_array().unwrap().len(), DetectionKind::ALL.len());
        assert_eq!(
            doc["components"]["securitySchemes"]["clientCredentials"]["flows"]["clientCredentials"]
                ["tokenUrl"],
            "https://id.example.com/token"
        );
    }
}
