//! Identity Protection's webhook endpoints in the console: adding one (its secret shown once),
//! its recent deliveries, a test event, turning it off and on, rotating its secret, removing it.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use leptos::prelude::*;

use gatehouse_app::admin::{
    AdminWebhookPage, AdminWebhooksPage, Cell, WebhookData, WebhookForm, WebhooksData,
};
use gatehouse_app::pages::format_time;
use gatehouse_core::identity::webhooks::{WebhookEndpoint, WebhookInput};
use gatehouse_core::store::WebhookDeliveryRecord;
use gatehouse_core::webhooks::EVENT_TYPES;

use super::{frame, not_found, refusal, sentence, AdminUser, NoticeQuery, PostedForm};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

const PATH: &str = "/admin/risk/webhooks";
/// Deliveries shown on an endpoint's page.
const RECENT: i64 = 50;

fn choices() -> Vec<(String, String)> {
    EVENT_TYPES
        .iter()
        .map(|(t, label)| (t.to_string(), label.to_string()))
        .collect()
}

fn state_of(d: &WebhookDeliveryRecord) -> &'static str {
    if d.delivered_at.is_some() {
        "Delivered"
    } else if d.given_up_at.is_some() {
        "Given up"
    } else if d.attempts == 0 {
        "Pending"
    } else {
        "Retrying"
    }
}

fn last_result(d: &WebhookDeliveryRecord) -> String {
    match (d.last_status, &d.last_error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "—".into(),
    }
}

async fn webhooks_page(
    state: &AppState,
    page: Page,
    mut data: WebhooksData,
    status: StatusCode,
) -> Response {
    let now = state.now();
    let endpoints = match state.identity.webhook_endpoints(now).await {
        Ok(e) => e,
        Err(e) => return internal_error_page(page, &e),
    };
    let mut rows = Vec::with_capacity(endpoints.len());
    for e in endpoints {
        let last = match state.identity.webhook_deliveries(&e.id, 1).await {
            Ok(d) => d.into_iter().next(),
            Err(err) => return internal_error_page(page, &err),
        };
        let last = last.map_or("None yet".to_string(), |d| {
            format!(
                "{}: {} ({})",
                format_time(d.created_at),
                state_of(&d),
                last_result(&d)
            )
        });
        let label = if e.description.is_empty() {
            e.url.clone()
        } else {
            format!("{} ({})", e.url, e.description)
        };
        rows.push(vec![
            Cell::link(label, format!("{PATH}/{}", e.id)),
            Cell::text(e.event_types.join(", ")),
            Cell::text(if e.enabled { "Enabled" } else { "Disabled" }),
            Cell::text(last),
        ]);
    }
    data.rows = rows;
    data.choices = choices();
    page.status(status).render(
        "admin.title",
        move || view! { <AdminWebhooksPage data=data/> },
    )
}

pub async fn webhooks(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let data = WebhooksData {
        frame: frame(&state, q.notice.as_deref()).await,
        form: WebhookForm {
            event_types: EVENT_TYPES.iter().map(|(t, _)| t.to_string()).collect(),
            ..WebhookForm::default()
        },
        ..WebhooksData::default()
    };
    webhooks_page(&state, page, data, StatusCode::OK).await
}

async fn endpoint_page(
    state: &AppState,
    page: Page,
    endpoint: WebhookEndpoint,
    notice: Option<&str>,
    secret: Option<String>,
    status: StatusCode,
) -> Response {
    let deliveries = match state
        .identity
        .webhook_deliveries(&endpoint.id, RECENT)
        .await
    {
        Ok(d) => d,
        Err(e) => return internal_error_page(page, &e),
    };
    let rows = deliveries
        .iter()
        .map(|d| {
            let next = if d.delivered_at.is_none() && d.given_up_at.is_none() {
                format_time(d.next_attempt_at)
            } else {
                "—".into()
            };
            vec![
                Cell::text(d.event_id.clone()),
                Cell::text(d.event_type.clone()),
                Cell::text(format_time(d.created_at)),
                Cell::text(state_of(d)),
                Cell::text(d.attempts.to_string()),
                Cell::text(next),
                Cell::text(last_result(d)),
            ]
        })
        .collect();
    let mut fields = vec![
        ("Description", endpoint.description.clone()),
        ("Events", endpoint.event_types.join(", ")),
        (
            "State",
            if endpoint.enabled {
                "Enabled".into()
            } else {
                "Disabled: it receives no new events; pending ones wait".into()
            },
        ),
        ("Added", format_time(endpoint.created_at)),
    ];
    if let Some(until) = endpoint.previous_secret_until {
        fields.push((
            "Previous secret",
            format!("Also signs deliveries until {}", format_time(until)),
        ));
    }
    let data = WebhookData {
        frame: frame(state, notice).await,
        id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        fields,
        enabled: endpoint.enabled,
        secret,
        deliveries: rows,
    };
    page.status(status).render(
        "admin.title",
        move || view! { <AdminWebhookPage data=data/> },
    )
}

pub async fn webhook(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let page = Page::new(&state).await;
    match state.identity.webhook_endpoint(&id, state.now()).await {
        Ok(Some(e)) => {
            endpoint_page(&state, page, e, q.notice.as_deref(), None, StatusCode::OK).await
        }
        Ok(None) => not_found().await,
        Err(e) => internal_error_page(page, &e),
    }
}

pub async fn create_webhook(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let form = PostedForm::parse(&body);
    let input = WebhookInput {
        url: form.get("url", 2100),
        description: form.get("description", 2100),
        event_types: form.all("event", 100, 10),
    };
    match state
        .identity
        .admin_create_webhook(&ctx, &admin, &input, state.now())
        .await
    {
        Ok(Ok(created)) => {
            let secret = created.secret.expose().to_string();
            endpoint_page(
                &state,
                page,
                created.endpoint,
                Some("webhook_created"),
                Some(secret),
                StatusCode::CREATED,
            )
            .await
        }
        Ok(Err(problem)) => {
            let mut f = frame(&state, None).await;
            f.error = Some(sentence(&problem.to_string()));
            let data = WebhooksData {
                frame: f,
                form: WebhookForm {
                    url: input.url,
                    description: input.description,
                    event_types: input.event_types,
                },
                ..WebhooksData::default()
            };
            webhooks_page(&state, page, data, StatusCode::BAD_REQUEST).await
        }
        Err(e) => internal_error_page(page, &e),
    }
}

pub async fn webhook_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    let identity = &state.identity;
    let done = match action.as_str() {
        "rotate" => match identity
            .admin_rotate_webhook_secret(&ctx, &admin, &id, now)
            .await
        {
            Ok(Some(secret)) => {
                return match identity.webhook_endpoint(&id, now).await {
                    Ok(Some(e)) => {
                        let secret = secret.expose().to_string();
                        endpoint_page(
                            &state,
                            page,
                            e,
                            Some("webhook_rotated"),
                            Some(secret),
                            StatusCode::OK,
                        )
                        .await
                    }
                    Ok(None) => not_found().await,
                    Err(e) => internal_error_page(page, &e),
                };
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        },
        "enable" | "disable" => {
            identity
                .admin_set_webhook_enabled(&ctx, &admin, &id, action == "enable", now)
                .await
        }
        "test" => {
            identity
                .admin_send_test_webhook(&ctx, &admin, &id, now)
                .await
        }
        "delete" => {
            if !url::form_urlencoded::parse(&body).any(|(k, v)| k == "confirm" && v == "yes") {
                return refusal(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "Not deleted",
                    "Tick the confirmation to delete the endpoint.",
                )
                .await;
            }
            match identity.admin_delete_webhook(&ctx, &admin, &id, now).await {
                Ok(true) => return redirect(&format!("{PATH}?notice=webhook_deleted"), vec![]),
                other => other,
            }
        }
        _ => return not_found().await,
    };
    match done {
        Ok(true) => redirect(&format!("{PATH}/{id}?notice=webhook_{action}"), vec![]),
        Ok(false) => not_found().await,
        Err(e) => internal_error_page(page, &e),
    }
}
