//! `GET /metrics`: the instance's operations metrics in the Prometheus text format, for the
//! addresses `GATEHOUSE_METRICS_ALLOW` names (the loopback by default) or a caller with the
//! bearer token `GATEHOUSE_METRICS_TOKEN`; anyone else gets 403. And the layer that times
//! every routed request by its route pattern.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use gatehouse_core::metrics::CONTENT_TYPE;

use super::toolkit::Incoming;
use crate::AppState;

/// Whether the caller may read the metrics: from an allowed address, or with the token.
fn allowed(state: &AppState, incoming: &Incoming, headers: &HeaderMap) -> bool {
    let ip = incoming.client_ip(state).to_canonical();
    if state
        .config
        .metrics_allow
        .iter()
        .any(|net| net.contains(&ip))
    {
        return true;
    }
    let Some(token) = state.config.metrics_token.as_ref() else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    use subtle::ConstantTimeEq;
    !given.is_empty() && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
}

pub async fn metrics(
    State(state): State<AppState>,
    incoming: Incoming,
    headers: HeaderMap,
) -> Response {
    if !allowed(&state, &incoming, &headers) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CACHE_CONTROL, "no-store")],
            "The metrics are readable from the addresses GATEHOUSE_METRICS_ALLOW names, or with its token.\n",
        )
            .into_response();
    }
    let text = state.identity.metrics_text();
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// Times each routed request and counts it under its route pattern (never the path itself,
/// which may hold ids).
pub async fn time_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state.identity.metrics().http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
