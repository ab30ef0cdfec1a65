//! The HTTP edge: routes, limits, timeouts and the security layers around them.

pub mod cookies;
pub mod pages;
pub mod security;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;

use crate::AppState;

/// Form posts are small: 16 KiB is far above any legitimate sign-in or sign-up form.
pub const FORM_BODY_LIMIT: usize = 16 * 1024;
/// Every request must complete within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Every route of the application, in one place (tests enumerate them from here).
pub const STATE_CHANGING_ROUTES: &[&str] = &[
    "/sign-in",
    "/sign-in/code",
    "/sign-up",
    "/sign-up/code",
    "/code",
    "/code/resend",
    "/reset",
    "/reset/new-password",
    "/sign-out",
    "/account/profile",
    "/account/password",
    "/account/sessions/sign-out-all",
    "/account/sessions/{id}/sign-out",
];

pub fn router(state: AppState) -> Router {
    let static_files = ServeDir::new(&state.config.site_root)
        .fallback(ServeDir::new("public").fallback(pages::not_found.into_service()));
    Router::new()
        .route("/", get(pages::home))
        .route("/healthz", get(pages::health))
        .route("/sign-in", get(pages::sign_in_page).post(pages::sign_in))
        .route(
            "/sign-in/code",
            get(pages::sign_in_code_page).post(pages::sign_in_code),
        )
        .route("/sign-up", get(pages::sign_up_page).post(pages::sign_up))
        .route(
            "/sign-up/code",
            get(pages::sign_up_code_page).post(pages::sign_up_code),
        )
        .route("/code", get(pages::code_page).post(pages::verify_code))
        .route("/code/resend", post(pages::resend_code))
        .route("/reset", get(pages::reset_page).post(pages::reset))
        .route(
            "/reset/new-password",
            get(pages::new_password_page).post(pages::new_password),
        )
        .route("/sign-out", post(pages::sign_out))
        .route("/account", get(pages::account_page))
        .route("/account/profile", post(pages::update_profile))
        .route("/account/password", post(pages::change_password))
        .route(
            "/account/sessions/sign-out-all",
            post(pages::sign_out_everywhere),
        )
        .route(
            "/account/sessions/{id}/sign-out",
            post(pages::sign_out_session),
        )
        .fallback_service(static_files)
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::require_same_origin,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(security::security_headers))
        .with_state(state)
}

/// The largest request head (request line and headers) accepted; beyond it, 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// The most headers a request may carry; beyond it, 431.
pub const MAX_HEADERS: usize = 100;
/// A client must send its whole request head within this time, or the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After a shutdown signal, in-flight requests get this long to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Serves HTTP/1.1 until `shutdown` resolves, then stops accepting and drains in-flight
/// requests. Each connection has a bounded request head, a bounded header count and a header
/// read timeout (slow-header clients are cut off); bodies and whole requests are bounded by the
/// router's layers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};

    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                tower::ServiceExt::oneshot(app.clone(), request.map(axum::body::Body::new))
            },
        );
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the drain timeout");
    }
    Ok(())
}
