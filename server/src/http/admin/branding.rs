//! Branding: the tenant's look and text.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use leptos::prelude::*;

use gatehouse_app::admin::{AdminBrandingPage, BrandingData};

use super::{frame, AdminUser, NoticeQuery};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

pub async fn branding(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let current = state.branding().await;
    let json = serde_json::to_string_pretty(&*current).unwrap_or_default();
    let data = BrandingData {
        frame: frame(&state, q.notice.as_deref()).await,
        json,
    };
    Page::new(&state).await.render(
        "admin.title",
        move || view! { <AdminBrandingPage data=data/> },
    )
}

pub async fn save_branding(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let text: String = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "branding")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let parsed = serde_json::from_str::<gatehouse_app::branding::Branding>(&text)
        .map_err(|e| format!("The branding is not valid JSON of the branding record: {e}."))
        .and_then(|b| {
            b.validate()
                .map(|()| b)
                .map_err(|p| format!("The branding was not saved: {} {}.", p.field, p.reason))
        });
    let branding = match parsed {
        Ok(b) => b,
        Err(message) => {
            let mut f = frame(&state, None).await;
            f.error = Some(message);
            let data = BrandingData {
                frame: f,
                json: text,
            };
            return Page::new(&state)
                .await
                .status(StatusCode::BAD_REQUEST)
                .render(
                    "admin.title",
                    move || view! { <AdminBrandingPage data=data/> },
                );
        }
    };
    let (page, ctx) = begin(&state, &incoming).await;
    let json = match serde_json::to_string(&branding) {
        Ok(j) => j,
        Err(e) => {
            return internal_error_page(
                page,
                &gatehouse_core::identity::AuthError::Internal(e.to_string()),
            )
        }
    };
    let now = state.now();
    if let Err(e) = state
        .identity
        .save_branding_record(&ctx, &admin, &json, &branding.product_name, now)
        .await
    {
        return internal_error_page(page, &e);
    }
    redirect("/admin/branding?notice=branding_saved", vec![])
}
