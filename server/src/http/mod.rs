//! The HTTP edge: routes, limits, timeouts and the security layers around them.

pub mod account;
pub mod admin;
pub mod api;
pub mod cookies;
pub mod federation;
pub mod metrics;
pub mod mfa;
pub mod oidc;
pub mod pages;
pub mod passkeys;
pub mod risk;
pub mod security;
pub mod terms;
pub mod toolkit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;

use crate::AppState;
use security::{Access, Guard};

/// Form posts are small: 16 KiB is far above any legitimate sign-in or sign-up form.
pub const FORM_BODY_LIMIT: usize = 16 * 1024;
/// Every request must complete within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One route: its path, the handlers for reading (GET) and for changing state (POST), and who
/// may send it state-changing requests.
struct RouteSpec {
    path: &'static str,
    read: Option<MethodRouter<AppState>>,
    change: Option<MethodRouter<AppState>>,
    access: Access,
}

/// A route that only our own pages may post to.
fn route(
    path: &'static str,
    read: Option<MethodRouter<AppState>>,
    change: Option<MethodRouter<AppState>>,
) -> RouteSpec {
    RouteSpec {
        path,
        read,
        change,
        access: Access::OwnPages,
    }
}

impl RouteSpec {
    /// Posts arrive from other sites by design (see [`Access::CrossSite`]).
    fn cross_site(mut self) -> Self {
        self.access = Access::CrossSite;
        self
    }

    /// Applications call it with their own credentials (see [`Access::Applications`]).
    fn for_applications(mut self) -> Self {
        self.access = Access::Applications;
        self
    }
}

/// Every route of the application. The router is built from this table and the tests
/// enumerate it, so no route escapes the security tests.
fn route_specs() -> Vec<RouteSpec> {
    use pages::*;
    vec![
        route("/", Some(get(home)), None),
        route("/healthz", Some(get(health)), None),
        route("/metrics", Some(get(metrics::metrics)), None),
        route("/sign-in", Some(get(sign_in_page)), Some(post(sign_in))),
        route(
            "/sign-in/code",
            Some(get(sign_in_code_page)),
            Some(post(sign_in_code)),
        ),
        route("/sign-up", Some(get(sign_up_page)), Some(post(sign_up))),
        route(
            "/sign-up/code",
            Some(get(sign_up_code_page)),
            Some(post(sign_up_code)),
        ),
        route("/code", Some(get(code_page)), Some(post(verify_code))),
        route("/code/resend", None, Some(post(resend_code))),
        route("/reset", Some(get(reset_page)), Some(post(reset))),
        route(
            "/reset/new-password",
            Some(get(new_password_page)),
            Some(post(new_password)),
        ),
        route("/sign-out", None, Some(post(sign_out))),
        route("/terms", Some(get(terms::terms)), Some(post(terms::accept))),
        route(
            "/account/password/required",
            Some(get(risk::page)),
            Some(post(risk::change)),
        ),
        route("/account", Some(get(account::account_page)), None),
        route(
            "/account/profile",
            None,
            Some(post(account::update_profile)),
        ),
        route(
            "/account/password",
            None,
            Some(post(account::change_password)),
        ),
        route(
            "/account/email",
            Some(get(account::email_change_page)),
            Some(post(account::start_email_change)),
        ),
        route(
            "/account/email/verify",
            None,
            Some(post(account::confirm_email_change)),
        ),
        route(
            gatehouse_core::identity::SIGN_IN_REPORT_PATH,
            Some(get(account::not_me_page)),
            Some(post(account::report_sign_in)),
        ),
        route(
            gatehouse_core::identity::EMAIL_UNDO_PATH,
            Some(get(account::email_undo_page)),
            Some(post(account::undo_email_change)),
        ),
        route(
            "/account/delete",
            Some(get(account::delete_account_page)),
            Some(post(account::delete_account)),
        ),
        route("/account/data", Some(get(account::download_data)), None),
        route(
            "/account/apps/{id}/remove",
            None,
            Some(post(account::remove_app_access)),
        ),
        route(
            "/account/sessions/sign-out-all",
            None,
            Some(post(account::sign_out_everywhere)),
        ),
        route(
            "/account/sessions/{id}/sign-out",
            None,
            Some(post(account::sign_out_session)),
        ),
        route(
            "/sign-in/verify",
            Some(get(mfa::second_factor_page)),
            Some(post(mfa::verify_second_factor)),
        ),
        route("/account/security", Some(get(mfa::security_page)), None),
        route(
            "/account/reauthenticate",
            None,
            Some(post(mfa::reauthenticate)),
        ),
        route(
            "/account/security/authenticator",
            None,
            Some(post(mfa::begin_authenticator)),
        ),
        route(
            "/account/security/recovery-codes",
            None,
            Some(post(mfa::regenerate_recovery_codes)),
        ),
        route(
            "/sign-in/verify/email",
            None,
            Some(post(mfa::send_second_factor_email)),
        ),
        route(
            "/account/security/authenticator/{id}",
            Some(get(mfa::authenticator_page)),
            None,
        ),
        route(
            "/account/security/authenticator/{id}/confirm",
            None,
            Some(post(mfa::confirm_authenticator)),
        ),
        route(
            "/account/security/authenticator/{id}/remove",
            None,
            Some(post(mfa::remove_authenticator)),
        ),
        route(
            "/sign-in/verify/sms",
            None,
            Some(post(mfa::send_second_factor_sms)),
        ),
        route(
            "/account/security/phone",
            None,
            Some(post(mfa::begin_phone)),
        ),
        route(
            "/account/security/phone/{id}",
            Some(get(mfa::phone_verify_page)),
            None,
        ),
        route(
            "/account/security/phone/{id}/confirm",
            None,
            Some(post(mfa::confirm_phone)),
        ),
        route(
            "/account/security/phone/{id}/remove",
            None,
            Some(post(mfa::remove_phone)),
        ),
        route(
            "/sign-in/passkey/options",
            None,
            Some(post(passkeys::sign_in_options)),
        ),
        route("/sign-in/passkey", None, Some(post(passkeys::sign_in))),
        route(
            "/sign-in/verify/passkey/options",
            None,
            Some(post(passkeys::second_factor_options)),
        ),
        route(
            "/sign-in/verify/passkey",
            None,
            Some(post(passkeys::second_factor)),
        ),
        route(
            "/account/security/passkeys/options",
            None,
            Some(post(passkeys::registration_options)),
        ),
        route(
            "/account/security/passkeys",
            None,
            Some(post(passkeys::register)),
        ),
        route(
            "/account/security/passkeys/{id}/rename",
            None,
            Some(post(passkeys::rename)),
        ),
        route(
            "/account/security/passkeys/{id}/remove",
            None,
            Some(post(passkeys::remove)),
        ),
        route(
            "/sign-in/external/{provider}",
            None,
            Some(post(federation::start)),
        ),
        route(
            crate::federation::CALLBACK_PATH,
            Some(get(federation::callback)),
            Some(post(federation::callback_post)),
        )
        .cross_site(),
        route(
            "/sign-in/external/finish",
            Some(get(federation::finish_page)),
            Some(post(federation::finish)),
        ),
        route(
            "/sign-in/link",
            Some(get(federation::link_page)),
            Some(post(federation::confirm_link)),
        ),
        route(
            "/sign-in/link/cancel",
            None,
            Some(post(federation::cancel_link)),
        ),
        route(
            "/account/security/providers/{provider}/link",
            None,
            Some(post(federation::start_link)),
        ),
        route(
            "/account/security/linked/{id}/unlink",
            None,
            Some(post(federation::unlink)),
        ),
        route("/admin", Some(get(admin::overview)), None),
        route("/admin/users", Some(get(admin::users)), None),
        route("/admin/users/{id}", Some(get(admin::user)), None),
        route(
            "/admin/users/{id}/{action}",
            None,
            Some(post(admin::user_action)),
        ),
        route(
            "/admin/apps",
            Some(get(admin::apps)),
            Some(post(admin::register_app)),
        ),
        route(
            "/admin/apps/{id}",
            Some(get(admin::app)),
            Some(post(admin::update_app)),
        ),
        route(
            "/admin/apps/{id}/secret",
            None,
            Some(post(admin::rotate_app_secret)),
        ),
        route(
            "/admin/apps/{id}/delete",
            None,
            Some(post(admin::delete_app)),
        ),
        route("/admin/sign-ins", Some(get(admin::sign_ins)), None),
        route("/admin/sign-ins/{id}", Some(get(admin::sign_in)), None),
        route("/admin/audit", Some(get(admin::audit)), None),
        route("/admin/risk", Some(get(admin::risky_users)), None),
        route("/admin/risk/users", Some(get(admin::risky_users)), None),
        route(
            "/admin/risk/webhooks",
            Some(get(admin::webhooks)),
            Some(post(admin::create_webhook)),
        ),
        route("/admin/risk/webhooks/{id}", Some(get(admin::webhook)), None),
        route(
            "/admin/risk/webhooks/{id}/{action}",
            None,
            Some(post(admin::webhook_action)),
        ),
        route(
            "/admin/risk/users/export",
            Some(get(admin::export_users)),
            None,
        ),
        route(
            "/admin/risk/sign-ins",
            Some(get(admin::risky_sign_ins)),
            None,
        ),
        route(
            "/admin/risk/sign-ins/export",
            Some(get(admin::export_sign_ins)),
            None,
        ),
        route(
            "/admin/risk/detections",
            Some(get(admin::risk_detections)),
            None,
        ),
        route(
            "/admin/risk/detections/export",
            Some(get(admin::export_detections)),
            None,
        ),
        route(
            "/admin/risk/detections/{id}",
            Some(get(admin::risk_detection)),
            None,
        ),
        route("/admin/access", Some(get(admin::access)), None),
        route("/admin/insights", Some(get(admin::insights_index)), None),
        route(
            "/admin/insights/{dashboard}",
            Some(get(admin::insights_dashboard)),
            None,
        ),
        route(
            "/admin/insights/{dashboard}/export",
            Some(get(admin::insights_export)),
            None,
        ),
        route(
            "/admin/access/new-policy",
            Some(get(admin::policy_new)),
            None,
        ),
        route(
            "/admin/access/policies",
            None,
            Some(post(admin::policy_save)),
        ),
        route(
            "/admin/access/policies/{id}",
            Some(get(admin::policy_edit)),
            None,
        ),
        route(
            "/admin/access/policies/{id}/restore",
            None,
            Some(post(admin::policy_restore)),
        ),
        route(
            "/admin/access/policies/{id}/delete",
            None,
            Some(post(admin::policy_delete)),
        ),
        route(
            "/admin/access/export",
            Some(get(admin::export_policies)),
            None,
        ),
        route(
            "/admin/access/import",
            None,
            Some(post(admin::import_policies)),
        ),
        route(
            "/admin/terms",
            Some(get(admin::terms)),
            Some(post(admin::publish_terms)),
        ),
        route(
            "/admin/groups",
            Some(get(admin::groups)),
            Some(post(admin::create_group)),
        ),
        route(
            "/admin/locations",
            Some(get(admin::locations)),
            Some(post(admin::save_location)),
        ),
        route(
            "/admin/locations/{id}/delete",
            None,
            Some(post(admin::delete_location)),
        ),
        route(
            "/admin/groups/{id}",
            Some(get(admin::group)),
            Some(post(admin::group_action)),
        ),
        route("/admin/outbox", Some(get(admin::outbox)), None),
        route(
            "/admin/providers",
            Some(get(admin::providers)),
            Some(post(admin::save_provider)),
        ),
        route(
            "/admin/providers/{id}/{action}",
            None,
            Some(post(admin::provider_action)),
        ),
        route(
            "/admin/branding",
            Some(get(admin::branding)),
            Some(post(admin::save_branding)),
        ),
        route(
            api::RISK_DETECTIONS_PATH,
            Some(get(api::risk_detections)),
            None,
        ),
        route(api::RISKY_USERS_PATH, Some(get(api::risky_users)), None),
        route(api::INSIGHTS_PATH, Some(get(api::insights)), None),
        route(api::OPENAPI_PATH, Some(get(api::openapi)), None),
        route(
            oidc::DISCOVERY_PATH,
            Some(get(oidc::discovery).options(oidc::preflight)),
            None,
        ),
        route(
            oidc::JWKS_PATH,
            Some(get(oidc::jwks).options(oidc::preflight)),
            None,
        ),
        route(
            oidc::AUTHORIZE_PATH,
            Some(get(oidc::authorize_get)),
            Some(post(oidc::authorize_post)),
        )
        .cross_site(),
        route(
            "/authorize/continue",
            Some(get(oidc::authorize_continue)),
            None,
        ),
        route("/authorize/consent", None, Some(post(oidc::consent))),
        route(
            oidc::TOKEN_PATH,
            None,
            Some(post(oidc::token).options(oidc::preflight)),
        )
        .for_applications(),
        route(
            oidc::USERINFO_PATH,
            Some(get(oidc::userinfo_get).options(oidc::preflight)),
            Some(post(oidc::userinfo_post)),
        )
        .for_applications(),
        route(oidc::REVOKE_PATH, None, Some(post(oidc::revoke))).for_applications(),
        route(oidc::INTROSPECT_PATH, None, Some(post(oidc::introspect))).for_applications(),
        route(
            oidc::LOGOUT_PATH,
            Some(get(oidc::logout_get)),
            Some(post(oidc::logout_post)),
        ),
    ]
}

/// The routes as (path, answers GET, answers POST), for tests that must cover every route.
pub fn route_list() -> Vec<(&'static str, bool, bool)> {
    route_specs()
        .iter()
        .map(|r| (r.path, r.read.is_some(), r.change.is_some()))
        .collect()
}

/// The paths of every state-changing route that only our own pages may post to (the others
/// are [`Access::CrossSite`] or [`Access::Applications`] by design).
pub fn state_changing_routes() -> Vec<&'static str> {
    route_specs()
        .into_iter()
        .filter(|r| r.change.is_some() && r.access == Access::OwnPages)
        .map(|r| r.path)
        .collect()
}

pub fn router(state: AppState) -> Router {
    let static_files = ServeDir::new(&state.config.site_root)
        .fallback(ServeDir::new("public").fallback(pages::not_found.into_service()));
    let specs = route_specs();
    let guard = Guard {
        state: state.clone(),
        access: Arc::new(
            specs
                .iter()
                .filter(|r| r.access != Access::OwnPages)
                .map(|r| (r.path, r.access))
                .collect(),
        ),
    };
    let mut router = Router::new();
    for spec in specs {
        let methods = [spec.read, spec.change]
            .into_iter()
            .flatten()
            .fold(MethodRouter::new(), MethodRouter::merge);
        router = router.route(spec.path, methods);
    }
    // Every routed request is timed under its route's pattern.
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::time_requests,
        ))
        .fallback_service(static_files)
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            security::device_cookie,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            security::require_same_origin,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::security_headers,
        ))
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
