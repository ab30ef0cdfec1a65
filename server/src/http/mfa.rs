//! Second-factor and security-info handlers: completing a sign-in that waits for its second
//! factor, re-authenticating before sensitive changes, and adding or removing an authenticator
//! app. Like every handler, each parses its form and calls the identity core once.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use leptos::prelude::*;
use serde::Deserialize;

use gatehouse_app::federation::LinkedRow;
use gatehouse_app::pages::{
    format_time, CodePage, EnrollAuthenticatorPage, EnrollData, FormState, PhoneVerifyData,
    PhoneVerifyPage, RecoveryCodesPage, SecondFactorPage, SecurityData, SecurityMethodRow,
    SecurityPage,
};
use gatehouse_core::identity::{AuthError, PhoneEnrollment, SecondFactorMethod, TotpEnrollment};
use gatehouse_core::secret::SecretString;
use gatehouse_core::store::{Session, User};

use super::cookies::{AUTHORIZE, PENDING_SIGN_IN, SESSION};
use super::toolkit::SignedInUser;
use super::toolkit::{
    begin, cookie_policy, describe_error, error_page, internal_error_page, redirect,
    signed_in_response, CodeForm, Incoming, Page,
};
use crate::AppState;

// ---------------------------------------------------------------- the second factor at sign-in

#[derive(Deserialize)]
pub struct SecondFactorQuery {
    #[serde(default)]
    notice: Option<String>,
}

pub async fn second_factor_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SecondFactorQuery>,
) -> Response {
    let page = Page::new(&state).await;
    let pending = cookie_policy(&state)
        .read(&headers, PENDING_SIGN_IN)
        .unwrap_or_default();
    match state
        .identity
        .pending_second_factor(&pending, state.now())
        .await
    {
        Ok(Some(options)) => {
            let notice = match q.notice.as_deref() {
                Some("email_sent") => Some(page.t().get("second_factor.email_sent")),
                Some("sms_sent") => Some(page.t().get("second_factor.sms_sent")),
                _ => None,
            };
            let form = FormState {
                notice,
                ..FormState::default()
            };
            let (email_allowed, passkey, sms) =
                (options.email_allowed, options.passkey, options.sms);
            page.render(
                "second_factor.title",
                move || view! { <SecondFactorPage state=form email_allowed=email_allowed passkey=passkey sms=sms/> },
            )
        }
        Ok(None) => dead_sign_in(page),
        Err(err) => internal_error_page(page, &err),
    }
}

pub async fn send_second_factor_email(
    State(state): State<AppState>,
    incoming: Incoming,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let pending = cookie_policy(&state)
        .read(&incoming.headers, PENDING_SIGN_IN)
        .unwrap_or_default();
    let now = state.now();
    match state
        .identity
        .send_second_factor_email(&ctx, &pending, now)
        .await
    {
        Ok(()) => redirect("/sign-in/verify?notice=email_sent", vec![]),
        Err(AuthError::CodeDead) => dead_sign_in(page),
        Err(err) => second_factor_error(&state, page, &pending, &err).await,
    }
}

/// The second-factor page again, with the options of the pending sign-in and an error.
async fn second_factor_error(
    state: &AppState,
    page: Page,
    pending: &str,
    err: &AuthError,
) -> Response {
    let options = state
        .identity
        .pending_second_factor(pending, state.now())
        .await
        .ok()
        .flatten();
    let email_allowed = options.as_ref().is_some_and(|o| o.email_allowed);
    let passkey = options.as_ref().is_some_and(|o| o.passkey);
    let sms = options.and_then(|o| o.sms);
    error_page(
        page,
        err,
        FormState::default(),
        "second_factor.title",
        move |s| view! { <SecondFactorPage state=s email_allowed=email_allowed passkey=passkey sms=sms/> },
    )
}

pub async fn send_second_factor_sms(State(state): State<AppState>, incoming: Incoming) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let pending = cookie_policy(&state)
        .read(&incoming.headers, PENDING_SIGN_IN)
        .unwrap_or_default();
    match state
        .identity
        .send_second_factor_sms(&ctx, &pending, state.now())
        .await
    {
        Ok(()) => redirect("/sign-in/verify?notice=sms_sent", vec![]),
        Err(AuthError::CodeDead) => dead_sign_in(page),
        Err(err) => second_factor_error(&state, page, &pending, &err).await,
    }
}

fn dead_sign_in(page: Page) -> Response {
    let message = page.t().get("second_factor.dead");
    let state = FormState {
        error: Some(message),
        ..FormState::default()
    };
    page.status(StatusCode::BAD_REQUEST).render(
        "second_factor.title",
        move || view! { <CodePage state=state live=false/> },
    )
}

pub async fn verify_second_factor(
    State(state): State<AppState>,
    incoming: Incoming,
    Form(form): Form<CodeForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let pending = cookie_policy(&state)
        .read(&incoming.headers, PENDING_SIGN_IN)
        .unwrap_or_default();
    match state
        .identity
        .verify_second_factor(&ctx, &pending, &form.code, state.now())
        .await
    {
        Ok(signed) => signed_in_response(&state, signed),
        Err(AuthError::CodeDead) => dead_sign_in(page),
        Err(err) => second_factor_error(&state, page, &pending, &err).await,
    }
}

// ---------------------------------------------------------------- security info

#[derive(Deserialize)]
pub struct SecurityQuery {
    #[serde(default)]
    notice: Option<String>,
}

/// The security-info page, with a notice, or an error as a status and a message.
async fn security_view(
    state: &AppState,
    page: Page,
    session: &Session,
    user: &User,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
    phone_input: &str,
) -> Response {
    let methods = match state.identity.second_factor_methods(&user.id).await {
        Ok(m) => m,
        Err(err) => return internal_error_page(page, &err),
    };
    let t = page.t().clone();
    let last_used = |at: Option<i64>| {
        at.map(format_time)
            .unwrap_or_else(|| t.get("security.never"))
    };
    let passkeys = methods
        .iter()
        .filter(|m| matches!(m, SecondFactorMethod::Passkey(_)))
        .count();
    let has_phone = methods
        .iter()
        .any(|m| matches!(m, SecondFactorMethod::Phone { .. }));
    let rows = methods
        .into_iter()
        .map(|m| match m {
            SecondFactorMethod::Passkey(p) => SecurityMethodRow {
                id: p.id,
                kind: "passkey",
                name: p.name,
                detail: Some(t.get(if p.synced {
                    "passkey.synced"
                } else {
                    "passkey.device"
                })),
                added: format_time(p.added_at),
                last_used: last_used(p.last_used_at),
            },
            SecondFactorMethod::Phone {
                id,
                number,
                added_at,
                last_used_at,
            } => SecurityMethodRow {
                id,
                kind: "phone",
                name: t.fill("security.phone", "number", &number),
                detail: Some(t.get("sms.weakest_short")),
                added: format_time(added_at),
                last_used: last_used(last_used_at),
            },
            SecondFactorMethod::AuthenticatorApp {
                id,
                added_at,
                last_used_at,
            } => SecurityMethodRow {
                id,
                kind: "authenticator",
                name: t.get("security.authenticator"),
                detail: None,
                added: format_time(added_at),
                last_used: last_used(last_used_at),
            },
        })
        .collect();
    let recovery_unused = match state.identity.unused_recovery_codes(&user.id).await {
        Ok(n) => n,
        Err(err) => return internal_error_page(page, &err),
    };
    let page = page.with_providers(state).await;
    let linked = match state.identity.linked_identities(&user.id).await {
        Ok(l) => l,
        Err(err) => return internal_error_page(page, &err),
    };
    let link_options = page
        .ctx
        .providers
        .iter()
        .filter(|p| !linked.iter().any(|l| l.provider_id == p.id))
        .cloned()
        .collect();
    let linked = linked
        .into_iter()
        .map(|l| LinkedRow {
            id: l.id,
            provider: l.provider_name,
            kind: l.kind.map(|k| k.as_str()).unwrap_or("oidc").to_string(),
            email: l.email,
            linked: format_time(l.linked_at),
            last_used: last_used(l.last_used_at),
        })
        .collect();
    let status = error.as_ref().map(|(s, _)| *s).unwrap_or(StatusCode::OK);
    let data = SecurityData {
        linked,
        link_options,
        methods: rows,
        recent: state.identity.signed_in_recently(session, state.now()),
        has_password: user.password_hash.is_some(),
        has_phone,
        phone_input: phone_input.chars().take(40).collect(),
        passkey_name: t.fill("passkey.default_name", "n", &(passkeys + 1).to_string()),
        recovery_unused,
        notice,
        error: error.map(|(_, m)| m),
    };
    page.status(status).render(
        "security.title",
        move || view! { <SecurityPage data=data/> },
    )
}

/// The security-info page showing why an operation was refused.
pub(super) async fn security_response(
    state: &AppState,
    page: Page,
    session: &Session,
    user: &User,
    err: AuthError,
) -> Response {
    let ev = describe_error(page.t(), &err);
    let message = if matches!(err, AuthError::InvalidCredentials) {
        page.t().get("account.current_password_wrong")
    } else {
        ev.message
    };
    security_view(
        state,
        page,
        session,
        user,
        None,
        Some((ev.status, message)),
        "",
    )
    .await
}

/// The security-info page saying that an enrollment can no longer be completed.
async fn enrollment_expired(
    state: &AppState,
    page: Page,
    session: &Session,
    user: &User,
) -> Response {
    let message = page.t().get("enroll.expired");
    security_view(
        state,
        page,
        session,
        user,
        None,
        Some((StatusCode::BAD_REQUEST, message)),
        "",
    )
    .await
}

pub async fn security_page(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    headers: HeaderMap,
    Query(q): Query<SecurityQuery>,
) -> Response {
    // An application waits for this account to add a second factor: once one is added, the
    // request goes on (it asks for the new factor if the session has not proved it).
    let added = matches!(
        q.notice.as_deref(),
        Some("added" | "passkey_added" | "phone_added")
    );
    if added && cookie_policy(&state).read(&headers, AUTHORIZE).is_some() {
        match state.identity.has_second_factor(&user.id).await {
            Ok(true) => return redirect("/authorize/continue", vec![]),
            Ok(false) => {}
            Err(e) => return internal_error_page(Page::new(&state).await, &e),
        }
    }
    let page = Page::new(&state).await;
    let notice = match q.notice.as_deref() {
        Some("added") => Some(page.t().get("security.added_notice")),
        Some("removed") => Some(page.t().get("security.removed_notice")),
        Some("mfa_required") => Some(page.t().get("security.mfa_required")),
        Some("app_requires_mfa") => Some(page.t().get("security.app_requires_mfa")),
        Some("phone_added") => Some(page.t().get("sms.added_notice")),
        Some("phone_removed") => Some(page.t().get("sms.removed_notice")),
        Some("passkey_added") => Some(page.t().get("passkey.added_notice")),
        Some("passkey_removed") => Some(page.t().get("passkey.removed_notice")),
        Some("passkey_renamed") => Some(page.t().get("passkey.renamed_notice")),
        Some("confirmed") => Some(page.t().get("security.reauthenticated")),
        Some("provider_linked") => Some(page.t().get("federation.linked_notice")),
        Some("provider_unlinked") => Some(page.t().get("federation.unlinked_notice")),
        Some("link_cancelled") => Some(page.t().get("federation.link_cancelled")),
        _ => None,
    };
    security_view(&state, page, &session, &user, notice, None, "").await
}

#[derive(Deserialize)]
pub struct ReauthenticateForm {
    #[serde(default)]
    password: String,
    /// The page to return to: one of the pages that need a recent sign-in.
    #[serde(default)]
    next: String,
}

pub async fn reauthenticate(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Form(form): Form<ReauthenticateForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let password = SecretString::new(form.password);
    match state
        .identity
        .reauthenticate_with_password(&ctx, &session, &user, &password, state.now())
        .await
    {
        Ok(renewed) => {
            let cookies = cookie_policy(&state);
            let next = match form.next.as_str() {
                "/account/email" => "/account/email",
                "/account/delete" => "/account/delete",
                _ => "/account/security?notice=confirmed",
            };
            redirect(
                next,
                vec![cookies.set(
                    SESSION,
                    renewed.token.expose(),
                    super::toolkit::session_cookie_max_age(&state, &renewed),
                )],
            )
        }
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}

/// The enrollment page, with an error when the code was wrong.
fn enrollment_page(page: Page, enrollment: TotpEnrollment, error: Option<String>) -> Response {
    let qr_svg = qr_svg(&enrollment.uri);
    let grouped: Vec<String> = enrollment
        .secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let data = EnrollData {
        id: enrollment.id,
        secret: grouped.join(" "),
        uri: enrollment.uri,
        qr_svg,
        error,
    };
    page.render(
        "enroll.title",
        move || view! { <EnrollAuthenticatorPage data=data/> },
    )
}

/// The QR code of a setup URI, as an SVG made on the server (no script, no external service).
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // Inline in the page: the XML declaration does not belong there.
            match svg.find("<svg") {
                Some(i) => svg[i..].to_string(),
                None => String::new(),
            }
        }
        Err(_) => String::new(),
    }
}

pub async fn begin_authenticator(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
) -> Response {
    let page = Page::new(&state).await;
    let issuer = page.ctx.branding.product_name.clone();
    match state
        .identity
        .begin_totp_enrollment(&session, &user, &issuer, state.now())
        .await
    {
        Ok(enrollment) => redirect(
            &format!("/account/security/authenticator/{}", enrollment.id),
            vec![],
        ),
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}

pub async fn authenticator_page(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state).await;
    let issuer = page.ctx.branding.product_name.clone();
    match state
        .identity
        .totp_enrollment(&user, &id, &issuer, state.now())
        .await
    {
        Ok(Some(enrollment)) => enrollment_page(page, enrollment, None),
        Ok(None) => enrollment_expired(&state, page, &session, &user).await,
        Err(err) => internal_error_page(page, &err),
    }
}

pub async fn confirm_authenticator(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Path(id): Path<String>,
    Form(form): Form<CodeForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    match state
        .identity
        .confirm_totp_enrollment(&ctx, &session, &user, &id, &form.code, now)
        .await
    {
        Ok(()) => redirect("/account/security?notice=added", vec![]),
        Err(
            err @ (AuthError::SecondFactorWrong
            | AuthError::InvalidInput(_)
            | AuthError::Throttled { .. }),
        ) => {
            let issuer = page.ctx.branding.product_name.clone();
            let ev = describe_error(page.t(), &err);
            match state
                .identity
                .totp_enrollment(&user, &id, &issuer, now)
                .await
            {
                Ok(Some(enrollment)) => {
                    enrollment_page(page.status(ev.status), enrollment, Some(ev.message))
                }
                _ => enrollment_expired(&state, page, &session, &user).await,
            }
        }
        Err(AuthError::CodeDead) => enrollment_expired(&state, page, &session, &user).await,
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}

pub async fn remove_authenticator(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let result = state
        .identity
        .remove_totp(&ctx, &session, &user, &id, state.now())
        .await;
    removal_response(
        &state,
        page,
        &session,
        &user,
        result,
        "/account/security?notice=removed",
    )
    .await
}

pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .regenerate_recovery_codes(&ctx, &session, &user, state.now())
        .await
    {
        Ok(codes) => {
            let codes: Vec<String> = codes.iter().map(|c| c.expose().to_string()).collect();
            page.render(
                "recovery.new_title",
                move || view! { <RecoveryCodesPage codes=codes/> },
            )
        }
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}

// ---------------------------------------------------------------- phone numbers

#[derive(Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    phone: String,
}

pub async fn begin_phone(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Form(form): Form<PhoneForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    match state
        .identity
        .begin_phone_enrollment(&ctx, &session, &user, &form.phone, state.now())
        .await
    {
        Ok(enrollment) => redirect(
            &format!("/account/security/phone/{}", enrollment.id),
            vec![],
        ),
        Err(err @ (AuthError::InvalidInput(_) | AuthError::TooManyRequests)) => {
            let ev = describe_error(page.t(), &err);
            security_view(
                &state,
                page,
                &session,
                &user,
                None,
                Some((ev.status, ev.message)),
                &form.phone,
            )
            .await
        }
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}

fn phone_page(
    page: Page,
    enrollment: PhoneEnrollment,
    error: Option<(StatusCode, String)>,
) -> Response {
    let status = error.as_ref().map(|(s, _)| *s).unwrap_or(StatusCode::OK);
    let data = PhoneVerifyData {
        id: enrollment.id,
        number: enrollment.number,
        invalid: error.is_some(),
        error: error.map(|(_, m)| m),
    };
    page.status(status).render(
        "sms.verify_title",
        move || view! { <PhoneVerifyPage data=data/> },
    )
}

pub async fn phone_verify_page(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state).await;
    match state
        .identity
        .phone_enrollment(&user, &id, state.now())
        .await
    {
        Ok(Some(enrollment)) => phone_page(page, enrollment, None),
        Ok(None) => enrollment_expired(&state, page, &session, &user).await,
        Err(err) => internal_error_page(page, &err),
    }
}

pub async fn confirm_phone(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Path(id): Path<String>,
    Form(form): Form<CodeForm>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let now = state.now();
    match state
        .identity
        .confirm_phone(&ctx, &session, &user, &id, &form.code, now)
        .await
    {
        Ok(()) => redirect("/account/security?notice=phone_added", vec![]),
        Err(
            err @ (AuthError::CodeWrong { .. }
            | AuthError::InvalidInput(_)
            | AuthError::Throttled { .. }),
        ) => {
            let ev = describe_error(page.t(), &err);
            match state.identity.phone_enrollment(&user, &id, now).await {
                Ok(Some(enrollment)) => phone_page(page, enrollment, Some((ev.status, ev.message))),
                _ => enrollment_expired(&state, page, &session, &user).await,
            }
        }
        Err(AuthError::CodeDead) => enrollment_expired(&state, page, &session, &user).await,
        Err(err) => security_response(&state, page, &session, &user, err).await,
    }
}

pub async fn remove_phone(
    State(state): State<AppState>,
    SignedInUser { session, user }: SignedInUser,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    let (page, ctx) = begin(&state, &incoming).await;
    let result = state
        .identity
        .remove_phone(&ctx, &session, &user, &id, state.now())
        .await;
    removal_response(
        &state,
        page,
        &session,
        &user,
        result,
        "/account/security?notice=phone_removed",
    )
    .await
}

/// The answer to removing a method: back to security info with `notice`, to the sign-in page
/// when the current session was signed in with it, or the reason it was refused.
pub(super) async fn removal_response(
    state: &AppState,
    page: Page,
    session: &Session,
    user: &User,
    result: Result<bool, AuthError>,
    notice: &str,
) -> Response {
    match result {
        Ok(true) => redirect("/sign-in", vec![cookie_policy(state).clear(SESSION)]),
        Ok(false) => redirect(notice, vec![]),
        Err(err) => security_response(state, page, session, user, err).await,
    }
}
