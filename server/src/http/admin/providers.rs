//! Identity providers: the sign-in buttons, their settings and their order.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use leptos::prelude::*;

use gatehouse_app::admin::{AdminProvidersPage, ProviderForm, ProviderRow, ProvidersData};

use super::{frame, not_found, sentence, AdminUser, NoticeQuery, PostedForm};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

async fn providers_page(state: &AppState, mut data: ProvidersData, status: StatusCode) -> Response {
    let page = Page::new(state).await;
    let list = match state.identity.providers().await {
        Ok(l) => l,
        Err(e) => return internal_error_page(page, &e),
    };
    data.rows = list
        .into_iter()
        .map(|p| ProviderRow {
            id: p.id.clone(),
            name: p.display_name.clone(),
            kind: p.kind.as_str().to_string(),
            enabled: p.enabled,
            issuer: p.settings.issuer.clone(),
            client_id: p.settings.client_id.clone(),
            position: p.position,
        })
        .collect();
    data.redirect_uri = state.federation.redirect_uri().to_string();
    page.status(status).render(
        "admin.title",
        move || view! { <AdminProvidersPage data=data/> },
    )
}

pub async fn providers(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let data = ProvidersData {
        frame: frame(&state, q.notice.as_deref()).await,
        form: ProviderForm {
            kind: "oidc".into(),
            ..ProviderForm::default()
        },
        ..ProvidersData::default()
    };
    providers_page(&state, data, StatusCode::OK).await
}

pub async fn save_provider(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    use gatehouse_core::identity::{ClaimMapping, Endpoints, ProviderInput, ProviderKind};
    let posted = PostedForm::parse(&body);
    let get = |name: &str| posted.get(name, 2000).trim().to_string();
    let optional = |v: String| (!v.is_empty()).then_some(v);
    let form = ProviderForm {
        id: get("id"),
        kind: get("kind"),
        name: get("name"),
        client_id: get("client_id"),
        issuer: get("issuer"),
        tenant: get("tenant"),
        scopes: get("scopes"),
    };
    let fail = |message: String, form: ProviderForm| async {
        let mut f = frame(&state, None).await;
        f.error = Some(message);
        let data = ProvidersData {
            frame: f,
            form,
            ..ProvidersData::default()
        };
        providers_page(&state, data, StatusCode::BAD_REQUEST).await
    };
    let Some(kind) = ProviderKind::parse(&form.kind).filter(|k| *k != ProviderKind::Apple) else {
        return fail("Choose the kind of provider.".into(), form).await;
    };
    let secret = get("client_secret");
    let input = ProviderInput {
        id: form.id.clone(),
        kind,
        display_name: optional(form.name.clone()),
        issuer: optional(form.issuer.clone()),
        tenant: optional(form.tenant.clone()),
        client_id: form.client_id.clone(),
        secret: optional(secret).map(gatehouse_core::secret::SecretString::new),
        scopes: optional(form.scopes.clone())
            .map(|s| s.split_whitespace().map(str::to_string).collect()),
        claims: ClaimMapping::default(),
        endpoints: Endpoints::default(),
        apple: None,
        enabled: true,
    };
    let (_, ctx) = begin(&state, &incoming).await;
    match state.identity.put_provider(input, state.now()).await {
        Ok(Ok(p)) => {
            let detail = format!("{} ({})", p.display_name, p.id);
            if let Err(e) = state
                .identity
                .admin_audit(
                    &ctx,
                    &admin,
                    None,
                    "admin.provider.saved",
                    &detail,
                    state.now(),
                )
                .await
            {
                return internal_error_page(Page::new(&state).await, &e);
            }
            redirect("/admin/providers?notice=provider_saved", vec![])
        }
        Ok(Err(problem)) => fail(sentence(&problem.to_string()), form).await,
        Err(e) => internal_error_page(Page::new(&state).await, &e),
    }
}

pub async fn provider_action(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let now = state.now();
    let done = match action.as_str() {
        "enable" => state.identity.set_provider_enabled(&id, true, now).await,
        "disable" => state.identity.set_provider_enabled(&id, false, now).await,
        "remove" => state.identity.remove_provider(&id).await,
        _ => return not_found().await,
    };
    match done {
        Ok(true) => {
            let (_, ctx) = begin(&state, &incoming).await;
            let audit = match action.as_str() {
                "enable" => "admin.provider.enabled",
                "disable" => "admin.provider.disabled",
                _ => "admin.provider.removed",
            };
            if let Err(e) = state
                .identity
                .admin_audit(&ctx, &admin, None, audit, &id, now)
                .await
            {
                return internal_error_page(Page::new(&state).await, &e);
            }
            redirect(
                &format!("/admin/providers?notice=provider_{action}"),
                vec![],
            )
        }
        Ok(false) => not_found().await,
        Err(e) => internal_error_page(Page::new(&state).await, &e),
    }
}
