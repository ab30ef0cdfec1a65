//! Named locations for Conditional Access: list, add or replace, delete. Every change is in
//! the audit log.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use leptos::prelude::*;

use gatehouse_app::admin::{AdminLocationsPage, LocationRow, LocationsData};
use gatehouse_core::conditional_access::NamedLocation;
use gatehouse_core::identity::AccessError;

use super::{frame_with_error, not_found, AdminUser, NoticeQuery};
use crate::http::toolkit::{begin, internal_error_page, redirect, Incoming, Page};
use crate::AppState;

/// What the form held, to show it again with an error.
#[derive(Default)]
struct Typed {
    id: String,
    name: String,
    ranges: String,
    countries: String,
    trusted: bool,
}

/// The GeoIP databases in use, in words, or none.
pub(super) fn geoip_sources(state: &AppState) -> Option<String> {
    let sources = state.identity.geoip()?.sources();
    let named: Vec<String> = sources
        .iter()
        .map(|s| {
            let built = gatehouse_app::pages::format_time(s.build_epoch as i64 * 1000);
            format!("{} ({}, built {built})", s.file, s.database_type)
        })
        .collect();
    Some(named.join(" and "))
}

async fn locations_page(
    state: &AppState,
    notice: Option<&str>,
    error: Option<String>,
    typed: Typed,
) -> Response {
    let page = Page::new(state).await;
    let locations = match state.identity.named_locations().await {
        Ok(l) => l,
        Err(e) => return internal_error_page(page, &e),
    };
    let (f, status) = frame_with_error(state, notice, error).await;
    let data = LocationsData {
        frame: f,
        locations: locations
            .into_iter()
            .map(|l| {
                let ranges: Vec<String> = l.ranges.iter().map(ToString::to_string).collect();
                LocationRow {
                    ranges: ranges.join(", "),
                    countries: l.countries.join(", "),
                    id: l.id,
                    name: l.name,
                    trusted: l.trusted,
                }
            })
            .collect(),
        id: typed.id,
        name: typed.name,
        ranges: typed.ranges,
        countries: typed.countries,
        trusted: typed.trusted,
        geoip: geoip_sources(state),
    };
    page.status(status).render(
        "admin.title",
        move || view! { <AdminLocationsPage data=data/> },
    )
}

pub async fn locations(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<NoticeQuery>,
) -> Response {
    locations_page(&state, q.notice.as_deref(), None, Typed::default()).await
}

pub async fn save_location(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    body: Bytes,
) -> Response {
    let get = |name: &str| {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().chars().take(4000).collect::<String>())
            .unwrap_or_default()
    };
    let typed = Typed {
        id: get("id"),
        name: get("name"),
        ranges: get("ranges"),
        countries: get("countries"),
        trusted: get("trusted") == "yes",
    };
    let mut ranges = Vec::new();
    for line in typed
        .ranges
        .split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match line.parse() {
            Ok(r) => ranges.push(r),
            Err(_) => {
                let error = format!(
                    "{line:?} is not an address range in CIDR notation, such as 203.0.113.0/24."
                );
                return locations_page(&state, None, Some(error), typed).await;
            }
        }
    }
    let location = NamedLocation {
        id: typed.id.clone(),
        name: typed.name.clone(),
        trusted: typed.trusted,
        ranges,
        countries: typed
            .countries
            .split([',', ' ', '\n'])
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect(),
    };
    let now = state.now();
    match state.identity.save_location(&location, now).await {
        Ok(()) => {
            let (page, ctx) = begin(&state, &incoming).await;
            if let Err(e) = state
                .identity
                .admin_audit(
                    &ctx,
                    &admin,
                    None,
                    "admin.location.saved",
                    &location.id,
                    now,
                )
                .await
            {
                return internal_error_page(page, &e);
            }
            redirect("/admin/locations?notice=location_saved", vec![])
        }
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => {
            locations_page(
                &state,
                None,
                Some(format!("The location was not saved: {e}.")),
                typed,
            )
            .await
        }
    }
}

pub async fn delete_location(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    incoming: Incoming,
    Path(id): Path<String>,
) -> Response {
    let now = state.now();
    match state.identity.delete_location(&id, now).await {
        Ok(()) => {
            let (page, ctx) = begin(&state, &incoming).await;
            if let Err(e) = state
                .identity
                .admin_audit(&ctx, &admin, None, "admin.location.deleted", &id, now)
                .await
            {
                return internal_error_page(page, &e);
            }
            redirect("/admin/locations?notice=location_deleted", vec![])
        }
        Err(AccessError::NotFound(_)) => not_found().await,
        Err(AccessError::Auth(e)) => internal_error_page(Page::new(&state).await, &e),
        Err(e) => {
            locations_page(
                &state,
                None,
                Some(format!("The location was not deleted: {e}.")),
                Typed::default(),
            )
            .await
        }
    }
}
