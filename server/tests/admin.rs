//! The admin console over HTTP: every admin route refuses anyone but an admin (the route list
//! comes from the router), and admins manage applications and users and read the sign-in and
//! audit logs. Admins never see or set a password.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Browser, TestServer, PASSWORD};
use gatehouse_server::http;
use reqwest::StatusCode;

async fn admin(server: &TestServer) -> Browser {
    server.admin_browser("Ada Admin", "admin@example.com").await
}

fn admin_routes() -> Vec<(String, bool, bool)> {
    http::route_list()
        .into_iter()
        .filter(|(p, _, _)| p.starts_with("/admin"))
        .map(|(p, get, post)| {
            (
                p.replace("{id}", "some-id")
                    .replace("{action}", "disable")
                    .replace("{dashboard}", "authentications"),
                get,
                post,
            )
        })
        .collect()
}

#[tokio::test]
async fn every_admin_route_refuses_anyone_but_an_admin() {
    let server = TestServer::start().await;
    let mut admin = admin(&server).await;
    let target = server.user("admin@example.com").await;
    let mut user = server
        .signed_up("Una User", "user@example.com", PASSWORD)
        .await;
    let mut nobody = server.browser();
    let routes = admin_routes();
    assert!(routes.len() >= 12, "{routes:?}");
    let before = server.counts().await;
    for (path, get, post) in &routes {
        // Real ids, so that a missed check would act on something that exists.
        let path = path.replace("some-id", &target.id);
        if *get {
            assert_eq!(
                nobody.get(&path).await.status,
                StatusCode::UNAUTHORIZED,
                "GET {path}"
            );
            assert_eq!(
                user.get(&path).await.status,
                StatusCode::FORBIDDEN,
                "GET {path}"
            );
        }
        if *post {
            let form = [
                ("confirm", "yes"),
                ("name", "x"),
                ("redirect_uris", "https://a.example/cb"),
            ];
            assert_eq!(
                nobody.post(&path, &form).await.status,
                StatusCode::UNAUTHORIZED,
                "POST {path}"
            );
            assert_eq!(
                user.post(&path, &form).await.status,
                StatusCode::FORBIDDEN,
                "POST {path}"
            );
        }
    }
    assert_eq!(
        server.counts().await,
        before,
        "the refusals changed nothing"
    );
    assert!(!server.user("admin@example.com").await.disabled);
    // The admin gets every page.
    for (path, get, _) in &routes {
        if *get && !path.contains("some-id") {
            let r = admin.get(path).await;
            assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        }
    }
    // A disabled admin is no admin.
    server
        .store
        .set_user_disabled(&target.id, true, server.state.now())
        .await
        .unwrap();
    assert_ne!(admin.get("/admin").await.status, StatusCode::OK);
}

#[tokio::test]
async fn admins_register_edit_rotate_and_delete_applications() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    let r = b
        .post(
            "/admin/apps",
            &[
                ("name", "Billing job"),
                ("type", "confidential"),
                ("grant", "client_credentials"),
                ("id_token_alg", "ES256"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let secret = r
        .body
        .split("data-testid=\"client-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let clients = server.state.identity.clients().await.unwrap();
    let app = clients.iter().find(|c| c.name == "Billing job").unwrap();
    let token = |secret: String| {
        let (base, id) = (server.base.clone(), app.id.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        token(secret.clone()).await,
        StatusCode::OK,
        "the shown secret works"
    );
    // Shown once: the application's page does not show it again.
    let page = b.get(&format!("/admin/apps/{}", app.id)).await;
    assert!(!page.body.contains(&secret));

    // A bad redirect URI is refused with its reason; nothing changes.
    let r = b
        .post(
            &format!("/admin/apps/{}", app.id),
            &[
                ("name", "Billing"),
                ("type", "confidential"),
                ("grant", "authorization_code"),
                ("redirect_uris", "http://evil.example/cb"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("is not allowed"), "{}", r.body);
    assert_eq!(
        server
            .state
            .identity
            .client(&app.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Billing job"
    );
    let r = b
        .post(
            &format!("/admin/apps/{}", app.id),
            &[
                ("name", "Billing service"),
                ("type", "confidential"),
                ("grant", "client_credentials"),
                ("grant", "authorization_code"),
                (
                    "redirect_uris",
                    "https://billing.example.com/cb\nhttps://billing.example.com/cb2",
                ),
                ("third_party", "yes"),
            ],
        )
        .await;
    assert_eq!(
        r.location(),
        Some(format!("/admin/apps/{}?notice=saved", app.id).as_str())
    );
    let saved = server
        .state
        .identity
        .client(&app.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.name, "Billing service");
    assert_eq!(saved.redirect_uris.len(), 2);
    assert!(!saved.first_party);

    let r = b.post(&format!("/admin/apps/{}/secret", app.id), &[]).await;
    let rotated = r
        .body
        .split("data-testid=\"client-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        token(secret).await,
        StatusCode::UNAUTHORIZED,
        "the old secret stopped"
    );
    assert_eq!(token(rotated).await, StatusCode::OK);

    // Deleting needs the confirmation.
    b.post(&format!("/admin/apps/{}/delete", app.id), &[]).await;
    assert!(server
        .state
        .identity
        .client(&app.id)
        .await
        .unwrap()
        .is_some());
    let r = b
        .post(
            &format!("/admin/apps/{}/delete", app.id),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.location(), Some("/admin/apps?notice=deleted"));
    assert!(server
        .state
        .identity
        .client(&app.id)
        .await
        .unwrap()
        .is_none());

    let audit = b.get("/admin/audit?action=admin.app").await;
    for action in [
        "admin.app.registered",
        "admin.app.updated",
        "admin.app.secret_rotated",
        "admin.app.deleted",
    ] {
        assert!(audit.body.contains(action), "{action}");
    }
    assert!(
        audit.body.contains("admin@example.com"),
        "the actor is shown"
    );
}

#[tokio::test]
async fn admins_search_users_and_act_on_them_without_ever_seeing_a_password() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    let mut person = server
        .signed_up("Pat Person", "pat@example.com", PASSWORD)
        .await;
    for i in 0..30 {
        server
            .state
            .identity
            .create_admin(
                &format!("filler{i}@example.com"),
                "Filler",
                server.state.now(),
            )
            .await
            .unwrap();
    }
    let pat = server.user("pat@example.com").await;

    let r = b.get("/admin/users?q=PAT@").await;
    assert!(r.body.contains("pat@example.com"));
    assert!(!r.body.contains("filler1@example.com"));
    let r = b.get("/admin/users?q=%25").await;
    assert!(r.body.contains("Nothing to show."), "wildcards are literal");
    let r = b.get("/admin/users").await;
    assert!(r.body.contains("Page 1 of 2 (32 in all)"), "{}", r.body);
    assert!(r.body.contains("rel=\"next\""));

    let page = b.get(&format!("/admin/users/{}", pat.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Pat Person"));
    assert!(!page.body.contains("$argon2"), "no password hash");
    assert!(!page.body.contains(PASSWORD));

    // Ending the sessions signs the person out at once.
    let r = b
        .post(&format!("/admin/users/{}/revoke-sessions", pat.id), &[])
        .await;
    assert_eq!(
        r.location(),
        Some(format!("/admin/users/{}?notice=revoke-sessions", pat.id).as_str())
    );
    assert_eq!(person.get("/account").await.location(), Some("/sign-in"));

    // Disabled: no sign-in; enabled again: sign-in works.
    b.post(&format!("/admin/users/{}/disable", pat.id), &[])
        .await;
    let mut again = server.browser();
    let r = again
        .sign_in_with_password("pat@example.com", PASSWORD)
        .await;
    assert!(again.session_cookie().is_none(), "{}", r.status);
    b.post(&format!("/admin/users/{}/enable", pat.id), &[])
        .await;
    let r = again
        .sign_in_with_password("pat@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"));

    // A required reset removes the password and emails a code; the admin sets nothing.
    let sent = server.message_count("pat@example.com").await;
    b.post(
        &format!("/admin/users/{}/require-password-reset", pat.id),
        &[],
    )
    .await;
    assert_eq!(server.message_count("pat@example.com").await, sent + 1);
    assert!(server.user("pat@example.com").await.password_hash.is_none());
    assert_eq!(again.get("/account").await.location(), Some("/sign-in"));
    let mut third = server.browser();
    third
        .sign_in_with_password("pat@example.com", PASSWORD)
        .await;
    assert!(third.session_cookie().is_none());

    // Admins cannot disable or delete themselves.
    let me = server.user("admin@example.com").await;
    let r = b
        .post(&format!("/admin/users/{}/disable", me.id), &[])
        .await;
    assert_eq!(
        r.location(),
        Some(format!("/admin/users/{}?error=own_account", me.id).as_str())
    );
    assert!(!server.user("admin@example.com").await.disabled);

    // Deleting needs the confirmation.
    b.post(&format!("/admin/users/{}/delete", pat.id), &[])
        .await;
    assert!(server.store.find_user(&pat.id).await.unwrap().is_some());
    let r = b
        .post(
            &format!("/admin/users/{}/delete", pat.id),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.location(), Some("/admin/users?notice=delete"));
    assert!(server.store.find_user(&pat.id).await.unwrap().is_none());

    // Every action is in the audit log, with the admin as the actor.
    let entries = server
        .store
        .filter_audit(
            &gatehouse_core::store::AuditFilter {
                actor_user_id: Some(me.id.clone()),
                ..Default::default()
            },
            0,
            50,
        )
        .await
        .unwrap()
        .0;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "admin.user.sessions_revoked",
        "admin.user.disabled",
        "admin.user.enabled",
        "admin.user.password_reset_required",
        "admin.user.deleted",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let page = b
        .get("/admin/audit?actor=admin%40example.com&action=admin.user")
        .await;
    assert!(page.body.contains("admin.user.deleted"));
    assert!(!page.body.contains("admin.app."));
}

#[tokio::test]
async fn sign_in_logs_are_filtered_and_opened() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    server.signed_up("Lee", "lee@example.com", PASSWORD).await;
    let mut other = server.browser();
    other
        .post(
            "/sign-in",
            &[
                ("email", "lee@example.com"),
                ("password", "wrong-password-here"),
            ],
        )
        .await;
    let failures = b.get("/admin/sign-ins?result=failure").await;
    assert!(failures.body.contains("invalid_credentials"));
    assert!(!failures.body.contains(">success<"));
    let lee = b.get("/admin/sign-ins?email=LEE").await;
    assert!(lee.body.contains("lee@example.com"));
    assert!(!lee.body.contains("admin@example.com"));
    let none = b
        .get("/admin/sign-ins?application=no-such-app&from=2020-01-01&to=2020-01-02")
        .await;
    assert!(none.body.contains("Nothing to show."));
    let (entries, _) = server
        .store
        .filter_sign_ins(
            &gatehouse_core::store::SignInFilter {
                result: Some("failure".into()),
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    let one = b.get(&format!("/admin/sign-ins/{}", entries[0].id)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.contains("invalid_credentials"));
    assert!(one.body.contains("203.0.113.10"));
    // Garbage filters are no error.
    let r = b.get("/admin/sign-ins?from=yesterday&page=-4&to=%00").await;
    assert_eq!(r.status, StatusCode::OK);

    // Applications by name (the id on hover), enumerations as selects keeping the choice.
    let all = b
        .get("/admin/sign-ins?result=failure&method=password")
        .await;
    assert!(
        all.body
            .contains("<td title=\"account\">Account portal</td>"),
        "{}",
        all.body
    );
    assert!(all.body.contains("<select id=\"result\" name=\"result\">"));
    assert!(
        all.body
            .contains("<option value=\"failure\" selected>Failure</option>"),
        "{}",
        all.body
    );
    assert!(all
        .body
        .contains("<option value=\"password\" selected>Password</option>"));
    assert!(all
        .body
        .contains("<option value=\"account\">Account portal</option>"));
    assert!(all.body.contains("<td title=\"password\">Password</td>"));
    assert!(
        one.body.contains("Account portal (account)"),
        "{}",
        one.body
    );

    // Each count of the overview opens the log filtered to exactly what it counted.
    let overview = b.get("/admin").await;
    let link = overview
        .body
        .split("href=\"")
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .find(|href| href.starts_with("/admin/sign-ins?result=failure&amp;since="))
        .expect("a link from the failures' count")
        .replace("&amp;", "&");
    let counted = overview
        .body
        .matches(&format!("href=\"{}\">", link.replace('&', "&amp;")))
        .count();
    assert_eq!(counted, 2, "the result and its count both link");
    let filtered = b.get(&link).await;
    assert_eq!(
        filtered.body.matches("invalid_credentials").count(),
        1,
        "{}",
        filtered.body
    );
}

#[tokio::test]
async fn admins_manage_sign_in_providers_and_branding() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    let page = b.get("/admin/providers").await;
    assert!(
        page.body.contains("/sign-in/external/callback"),
        "the redirect URI to register"
    );

    // An OpenID Connect provider needs its issuer: refused with the reason, nothing saved.
    let r = b
        .post(
            "/admin/providers",
            &[
                ("id", "corp"),
                ("kind", "oidc"),
                ("client_id", "c1"),
                ("client_secret", "s3cret-value-for-corp"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("issuer URL"), "{}", r.body);
    assert!(
        !r.body.contains("s3cret-value-for-corp"),
        "the secret is never shown again"
    );
    assert!(server.state.identity.providers().await.unwrap().is_empty());

    let r = b
        .post(
            "/admin/providers",
            &[
                ("id", "gh"),
                ("kind", "github"),
                ("name", "GitHub"),
                ("client_id", "gh-client"),
                ("client_secret", "gh-secret-never-shown"),
            ],
        )
        .await;
    assert_eq!(r.location(), Some("/admin/providers?notice=provider_saved"));
    let page = b.get("/admin/providers").await;
    assert!(page.body.contains("gh-client"));
    assert!(!page.body.contains("gh-secret-never-shown"));
    assert!(server
        .browser()
        .get("/sign-in")
        .await
        .body
        .contains("Continue with GitHub"));
    b.post("/admin/providers/gh/disable", &[]).await;
    assert!(!server
        .browser()
        .get("/sign-in")
        .await
        .body
        .contains("Continue with GitHub"));
    b.post("/admin/providers/gh/enable", &[]).await;
    assert!(server
        .browser()
        .get("/sign-in")
        .await
        .body
        .contains("Continue with GitHub"));
    b.post("/admin/providers/gh/remove", &[]).await;
    assert!(server.state.identity.providers().await.unwrap().is_empty());

    // Branding: the record as JSON, validated before it is saved.
    let page = b.get("/admin/branding").await;
    assert!(page.body.contains("product_name"));
    let mut record: serde_json::Value =
        serde_json::to_value(gatehouse_app::branding::Branding::default()).unwrap();
    record["primary_color"] = "red; background: url(x)".into();
    let r = b
        .post("/admin/branding", &[("branding", &record.to_string())])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("primary_color"), "{}", r.body);
    let r = b
        .post("/admin/branding", &[("branding", "{not json")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(server
        .browser()
        .get("/sign-in")
        .await
        .body
        .contains("Gatehouse"));
    record["primary_color"] = "#0a7d4f".into();
    record["product_name"] = "Acme ID".into();
    let r = b
        .post("/admin/branding", &[("branding", &record.to_string())])
        .await;
    assert_eq!(r.location(), Some("/admin/branding?notice=branding_saved"));
    let sign_in = server.browser().get("/sign-in").await;
    assert!(sign_in.body.contains("Acme ID"));
    assert!(sign_in.body.contains("#0a7d4f"));

    let audit = b.get("/admin/audit?action=admin.").await;
    for action in [
        "admin.provider.saved",
        "admin.provider.disabled",
        "admin.provider.enabled",
        "admin.provider.removed",
        "admin.branding.saved",
    ] {
        assert!(audit.body.contains(action), "{action}");
    }
}

/// A detection of `kind` for `user`, from the sign-in `sign_in_id`.
#[allow(clippy::too_many_arguments)]
fn detection(
    user: &gatehouse_core::store::User,
    kind: &str,
    level: &str,
    state: &str,
    at: i64,
    sign_in_id: Option<&str>,
    evidence: serde_json::Value,
    summary: &str,
) -> gatehouse_core::store::DetectionRecord {
    gatehouse_core::store::DetectionRecord {
        id: format!("det-{kind}-{}-{at}", user.id),
        user_id: user.id.clone(),
        sign_in_id: sign_in_id.map(str::to_string),
        kind: kind.into(),
        level: level.into(),
        timing: "real-time".into(),
        detected_at: at,
        state: state.into(),
        evidence: evidence.to_string(),
        summary: summary.into(),
        updated_at: at,
    }
}

#[tokio::test]
async fn identity_protection_reports_filter_open_evidence_and_download() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    server
        .signed_up("Tom Traveller", "tom@example.com", PASSWORD)
        .await;
    server
        .signed_up("Sam Safe", "sam@example.com", PASSWORD)
        .await;
    let tom = server.user("tom@example.com").await;
    let sam = server.user("sam@example.com").await;
    let now = server.state.now();
    // Tom's risky sign-in, as the pipeline logs it, and its detection.
    server
        .store
        .record_sign_in(&gatehouse_core::store::SignInLogEntry {
            id: "risky-sign-in".into(),
            occurred_at: now - 1_000,
            user_id: Some(tom.id.clone()),
            email: tom.email.clone(),
            application: "account".into(),
            client_ip: "198.51.100.20".into(),
            user_agent: "Mozilla/5.0".into(),
            method: "password".into(),
            result: "success".into(),
            country: Some("AU".into()),
            city: Some("Sydney".into()),
            asn: Some(64_500),
            risk_level: Some("medium".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let travel = detection(
        &tom,
        "atypical-travel",
        "medium",
        "at-risk",
        now - 1_000,
        Some("risky-sign-in"),
        serde_json::json!({
            "from": {"place": "Paris, FR", "latitude": 48.85, "longitude": 2.35, "at": now - 7_200_000},
            "to": {"place": "Sydney, AU", "latitude": -33.87, "longitude": 151.21, "at": now - 1_000},
            "distance_km": 16960.0, "speed_kmh": 8480.0,
        }),
        "Sydney, AU 2 h after Paris, FR: 16,960 km at 8,480 km/h.",
    );
    let dismissed = detection(
        &sam,
        "anonymous-ip",
        "high",
        "dismissed",
        now - 5_000,
        None,
        serde_json::json!({"address": "198.51.100.7", "list": "tor"}),
        "The sign-in came from 198.51.100.7, a Tor exit node.",
    );
    for d in [&travel, &dismissed] {
        server
            .store
            .record_detection(d, &format!("change-{}", d.id), None, "detected at sign-in")
            .await
            .unwrap();
    }

    // Risky users: Tom only (Sam's one detection is dismissed).
    let users = b.get("/admin/risk/users").await;
    assert_eq!(users.status, StatusCode::OK);
    assert!(users.body.contains("tom@example.com"), "{}", users.body);
    assert!(!users.body.contains("sam@example.com"));
    assert!(users.body.contains("Medium"));
    let high = b.get("/admin/risk/users?level=high").await;
    assert!(!high.body.contains("tom@example.com"));
    assert!(high.body.contains("Nothing to show."));

    // Risk detections, filtered by kind, level, state and user, newest first.
    let all = b.get("/admin/risk/detections").await;
    assert!(all.body.contains("Atypical travel") && all.body.contains("Anonymous IP address"));
    let tor = b.get("/admin/risk/detections?kind=anonymous-ip").await;
    assert!(tor.body.contains("sam@example.com"));
    assert!(!tor.body.contains("tom@example.com"));
    let open = b
        .get("/admin/risk/detections?state=at-risk&email=TOM")
        .await;
    assert!(open.body.contains("tom@example.com"));
    assert!(!open.body.contains("sam@example.com"));
    let garbage = b
        .get("/admin/risk/detections?kind=%00&level=extreme&page=-1")
        .await;
    assert_eq!(
        garbage.status,
        StatusCode::OK,
        "unknown choices are no filter"
    );
    let old = b
        .get("/admin/risk/detections?from=2001-01-01&to=2001-01-02")
        .await;
    assert!(old.body.contains("Nothing to show."));

    // Risky sign-ins: the logged attempt with its place.
    let sign_ins = b.get("/admin/risk/sign-ins").await;
    assert!(sign_ins.body.contains("Sydney, AU"), "{}", sign_ins.body);
    assert!(sign_ins.body.contains("/admin/sign-ins/risky-sign-in"));
    assert!(b
        .get("/admin/risk/sign-ins?level=high")
        .await
        .body
        .contains("Nothing to show."));

    // A detection's evidence in words, its map, its sign-in and its history.
    let page = b
        .get(&format!("/admin/risk/detections/{}", travel.id))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("Sydney, AU 2 h after Paris, FR: 16,960 km at 8,480 km/h."));
    assert!(page.body.contains("<svg"), "the travel map");
    assert!(page.body.contains("From Paris, FR to Sydney, AU"));
    assert!(page.body.contains("/admin/sign-ins/risky-sign-in"));
    assert!(page.body.contains("detected at sign-in"));
    let page = b
        .get(&format!("/admin/risk/detections/{}", dismissed.id))
        .await;
    assert!(!page.body.contains("<svg"), "no map without travel");
    assert_eq!(
        b.get("/admin/risk/detections/no-such-detection")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The sign-in log's detail names the attempt's detection.
    let detail = b.get("/admin/sign-ins/risky-sign-in").await;
    assert!(
        detail.body.contains("Atypical travel (medium)"),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("AS64500"));

    // Downloads carry the page's filters.
    let csv = b
        .get("/admin/risk/detections/export?format=csv&state=at-risk")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(
        lines[0].starts_with("id,detected_at,user_id,email,kind"),
        "{}",
        csv.body
    );
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[1].contains("atypical-travel") && lines[1].contains("tom@example.com"));
    let json = b.get("/admin/risk/detections/export?format=json").await;
    let rows: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["kind"], "atypical-travel", "newest first");
    assert_eq!(rows[0]["evidence"]["to"]["place"], "Sydney, AU");
    let users: serde_json::Value =
        serde_json::from_str(&b.get("/admin/risk/users/export?format=json").await.body).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["email"], "tom@example.com");
    let sign_ins = b.get("/admin/risk/sign-ins/export").await;
    assert!(
        sign_ins.body.contains("risky-sign-in,"),
        "{}",
        sign_ins.body
    );
    assert_eq!(
        b.get("/admin/risk/users/export?format=xml").await.status,
        StatusCode::BAD_REQUEST
    );

    // The open schema: OCSF records, one a line, for detections and sign-ins.
    assert!(all.body.contains("Download OCSF (JSON Lines)"));
    let ocsf = b.get("/admin/risk/detections/export?format=ocsf").await;
    assert_eq!(ocsf.status, StatusCode::OK);
    assert_eq!(ocsf.headers["content-type"], "application/x-ndjson");
    let findings: Vec<serde_json::Value> = ocsf
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 2);
    assert!(findings.iter().all(|f| f["class_uid"] == 2004));
    assert_eq!(findings[0]["finding_info"]["types"][0], "atypical-travel");
    assert_eq!(
        (
            findings[0]["activity_id"].as_i64(),
            findings[0]["status"].as_str()
        ),
        (Some(1), Some("New"))
    );
    assert_eq!(
        (
            findings[1]["activity_id"].as_i64(),
            findings[1]["status"].as_str()
        ),
        (Some(3), Some("Suppressed"))
    );
    assert_eq!(
        findings[0]["evidences"][0]["user"]["email_addr"],
        "tom@example.com"
    );
    let logons = b.get("/admin/risk/sign-ins/export?format=ocsf").await;
    let logon: serde_json::Value =
        serde_json::from_str(logons.body.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            logon["class_uid"].as_i64(),
            logon["src_endpoint"]["location"]["city"].as_str()
        ),
        (Some(3002), Some("Sydney"))
    );
    assert_eq!(
        b.get("/admin/risk/users/export?format=ocsf").await.status,
        StatusCode::BAD_REQUEST,
        "risky users are not events"
    );
}

#[tokio::test]
async fn a_report_download_streams_every_row_in_batches() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    server
        .signed_up("Many Detections", "many@example.com", PASSWORD)
        .await;
    let user = server.user("many@example.com").await;
    let now = server.state.now();
    // More rows than one batch of the download, and a value a spreadsheet would run.
    for i in 0..1_203 {
        let d = detection(
            &user,
            "unfamiliar-features",
            "low",
            "at-risk",
            now - i,
            None,
            serde_json::json!({"new": ["browser", "device"]}),
            if i == 0 {
                "=HYPERLINK(\"x\")"
            } else {
                "New browser and device."
            },
        );
        server
            .store
            .record_detection(&d, &format!("c{i}"), None, "detected at sign-in")
            .await
            .unwrap();
    }
    let csv = b.get("/admin/risk/detections/export?format=csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body.lines().count(), 1 + 1_203);
    assert!(csv.body.contains("'=HYPERLINK"), "formulas are defused");
    let json: serde_json::Value = serde_json::from_str(
        &b.get("/admin/risk/detections/export?format=json")
            .await
            .body,
    )
    .unwrap();
    let ids: std::collections::HashSet<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1_203, "every row once");
}

/// An application's own token for `scope` (or its granted scopes when `None`).
async fn app_token(
    server: &TestServer,
    id: &str,
    secret: &str,
    scope: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let r = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default(),
    )
}

async fn api_get(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", server.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        challenge,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_risk_api_serves_applications_granted_its_scope_with_cursor_paging() {
    let server = TestServer::start().await;
    let mut b = admin(&server).await;
    // The admin grants the scope in the console; another application lacks it.
    let secret_of = |body: &str| {
        body.split("data-testid=\"client-secret\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string()
    };
    let r = b
        .post(
            "/admin/apps",
            &[
                ("name", "SIEM"),
                ("type", "confidential"),
                ("grant", "client_credentials"),
                ("api_scope", "gatehouse.risk.read"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let siem_secret = secret_of(&r.body);
    let r = b
        .post(
            "/admin/apps",
            &[
                ("name", "Billing"),
                ("type", "confidential"),
                ("grant", "client_credentials"),
            ],
        )
        .await;
    let billing_secret = secret_of(&r.body);
    // An API scope without the client credentials grant is refused with its reason.
    let r = b
        .post(
            "/admin/apps",
            &[
                ("name", "Web"),
                ("type", "confidential"),
                ("grant", "authorization_code"),
                ("redirect_uris", "https://web.example.com/cb"),
                ("api_scope", "gatehouse.risk.read"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("client credentials"), "{}", r.body);
    let clients = server.state.identity.clients().await.unwrap();
    let siem = clients.iter().find(|c| c.name == "SIEM").unwrap().clone();
    let billing = clients
        .iter()
        .find(|c| c.name == "Billing")
        .unwrap()
        .clone();
    assert_eq!(siem.api_scopes, ["gatehouse.risk.read"]);
    assert!(b
        .get(&format!("/admin/apps/{}", siem.id))
        .await
        .body
        .contains("value=\"gatehouse.risk.read\" checked"));

    // Data: three accounts, five detections.
    let mut users = Vec::new();
    for (name, email) in [
        ("Ann", "ann@example.com"),
        ("Ben", "ben@example.com"),
        ("Cy", "cy@example.com"),
    ] {
        server.signed_up(name, email, PASSWORD).await;
        users.push(server.user(email).await);
    }
    let now = server.state.now();
    let rows = [
        (0, "leaked-credentials", "high", now - 5_000),
        (1, "anonymous-ip", "medium", now - 4_000),
        (1, "unfamiliar-features", "low", now - 3_000),
        (2, "atypical-travel", "high", now - 2_000),
        (0, "anonymous-ip", "medium", now - 1_000),
    ];
    for (i, (u, kind, level, at)) in rows.into_iter().enumerate() {
        let d = detection(
            &users[u],
            kind,
            level,
            "at-risk",
            at,
            None,
            serde_json::json!({"n": i}),
            "Evidence.",
        );
        server
            .store
            .record_detection(&d, &format!("c{i}"), None, "detected")
            .await
            .unwrap();
    }

    // Without a token, with a bad one, with a token lacking the scope.
    let (status, challenge, _) = api_get(&server, "/api/v1/risk-detections", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"gatehouse\""));
    let (status, challenge, body) =
        api_get(&server, "/api/v1/risky-users", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));
    assert_eq!(body["error"], "invalid_token");
    let (status, _) = app_token(
        &server,
        &billing.id,
        &billing_secret,
        Some("gatehouse.risk.read"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a scope not granted is refused at the token endpoint"
    );
    let (status, billing_token) = app_token(&server, &billing.id, &billing_secret, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, challenge, _) = api_get(
        &server,
        "/api/v1/risk-detections",
        billing_token["access_token"].as_str(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"gatehouse.risk.read\""),
        "{challenge}"
    );
    // A client secret is no access token.
    let (status, _, _) = api_get(&server, "/api/v1/risk-detections", Some(&siem_secret)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a client secret is not a token"
    );

    let (status, granted) = app_token(&server, &siem.id, &siem_secret, None).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(
        granted["scope"], "gatehouse.risk.read",
        "the granted scopes by default"
    );
    let token = granted["access_token"].as_str().unwrap().to_string();

    // Pages of two: every detection once, newest first, then no cursor.
    let mut seen = Vec::new();
    let mut path = "/api/v1/risk-detections?limit=2".to_string();
    loop {
        let (status, _, page) = api_get(&server, &path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|d| d["evidence"]["n"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/risk-detections?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [4, 3, 2, 1, 0]);
    // Filters.
    let (_, _, high) = api_get(
        &server,
        "/api/v1/risk-detections?level=high&kind=atypical-travel",
        Some(&token),
    )
    .await;
    let items = high["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["email"], "cy@example.com");
    assert_eq!(items[0]["summary"], "Evidence.");
    let (_, _, of_ben) = api_get(
        &server,
        &format!("/api/v1/risk-detections?user_id={}", users[1].id),
        Some(&token),
    )
    .await;
    assert_eq!(of_ben["items"].as_array().unwrap().len(), 2);
    // Risky users by cursor: Ann (newest), Cy, Ben.
    let (_, _, first) = api_get(&server, "/api/v1/risky-users?limit=1", Some(&token)).await;
    assert_eq!(first["items"][0]["email"], "ann@example.com");
    assert_eq!(first["items"][0]["level"], "high");
    assert_eq!(first["items"][0]["open_detections"], 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, _, rest) = api_get(
        &server,
        &format!("/api/v1/risky-users?cursor={cursor}"),
        Some(&token),
    )
    .await;
    let emails: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["cy@example.com", "ben@example.com"]);
    assert!(rest["next_cursor"].is_null());
    let (_, _, medium) = api_get(&server, "/api/v1/risky-users?level=medium", Some(&token)).await;
    assert_eq!(medium["items"][0]["email"], "ben@example.com");

    // Bad parameters get a 400 naming them.
    for (query, named) in [
        ("level=severe", "level"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%21%21", "cursor"),
        ("since=yesterday", "since"),
        ("sort=asc", "sort"),
        ("level=low&level=high", "level"),
    ] {
        let (status, _, body) = api_get(
            &server,
            &format!("/api/v1/risk-detections?{query}"),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }

    // Taking the scope away ends the token's access at once.
    let r = b
        .post(
            &format!("/admin/apps/{}", siem.id),
            &[
                ("name", "SIEM"),
                ("type", "confidential"),
                ("grant", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (status, _, _) = api_get(&server, "/api/v1/risky-users", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route_and_what_it_returns() {
    let server = TestServer::start().await;
    let r = reqwest::get(format!("{}/api/v1/openapi.json", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let api_routes: Vec<String> = http::route_list()
        .into_iter()
        .map(|(p, _, _)| p.to_string())
        .filter(|p| p.starts_with("/api/") && p != "/api/v1/openapi.json")
        .collect();
    assert_eq!(api_routes.len(), 3);
    for path in &api_routes {
        let op = &doc["paths"][path]["get"];
        assert!(op.is_object(), "{path} is documented");
        let scope = if path.starts_with("/api/v1/insights/") {
            "gatehouse.insights.read"
        } else {
            "gatehouse.risk.read"
        };
        assert_eq!(op["security"][0]["clientCredentials"][0], scope, "{path}");
        assert!(flows_scope(&doc, scope), "{scope} is a documented scope");
        for status in ["200", "400", "401", "403"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    let flows = &doc["components"]["securitySchemes"]["clientCredentials"]["flows"];
    assert_eq!(
        flows["clientCredentials"]["tokenUrl"],
        format!("{}/token", server.state.identity.issuer())
    );
    // The documented fields are exactly those the API returns.
    let mut b = admin(&server).await;
    let r = b
        .post(
            "/admin/apps",
            &[
                ("name", "SIEM"),
                ("type", "confidential"),
                ("grant", "client_credentials"),
                ("api_scope", "gatehouse.risk.read"),
            ],
        )
        .await;
    let secret = r
        .body
        .split("data-testid=\"client-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let siem = server
        .state
        .identity
        .clients()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "SIEM")
        .unwrap();
    let user = server.user("admin@example.com").await;
    let d = detection(
        &user,
        "anonymous-ip",
        "medium",
        "at-risk",
        server.state.now(),
        None,
        serde_json::json!({}),
        "Tor.",
    );
    server
        .store
        .record_detection(&d, "c1", None, "detected")
        .await
        .unwrap();
    let (_, granted) = app_token(&server, &siem.id, &secret, Some("gatehouse.risk.read")).await;
    let token = granted["access_token"].as_str().unwrap();
    for (path, schema) in [
        ("/api/v1/risk-detections", "RiskDetection"),
        ("/api/v1/risky-users", "RiskyUser"),
    ] {
        let (_, _, page) = api_get(&server, path, Some(token)).await;
        let mut returned: Vec<String> = page["items"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut documented: Vec<String> = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        returned.sort();
        documented.sort();
        assert_eq!(returned, documented, "{schema}");
        let mut required: Vec<String> = doc["components"]["schemas"][schema]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        required.sort();
        assert_eq!(
            required, documented,
            "{schema}: every field is always present"
        );
    }
}

#[tokio::test]
async fn the_sign_in_log_keeps_its_rows_for_the_configured_days() {
    let server =
        TestServer::start_with_settings(&[("GATEHOUSE_SIGN_IN_LOG_DAYS", "30".into())]).await;
    let mut b = admin(&server).await;
    let now = server.state.now();
    let day = 24 * 60 * 60 * 1000;
    let row = |id: String, at: i64| gatehouse_core::store::SignInLogEntry {
        id,
        occurred_at: at,
        email: "old@example.com".into(),
        application: "account".into(),
        client_ip: "192.0.2.1".into(),
        user_agent: "ua".into(),
        method: "password".into(),
        result: "failure".into(),
        ..Default::default()
    };
    // More old rows than one batch, and a few recent ones.
    let old: Vec<_> = (0..2_500)
        .map(|i| row(format!("old-{i}"), now - 40 * day - i))
        .collect();
    server.store.record_sign_ins(&old).await.unwrap();
    let recent: Vec<_> = (0..3)
        .map(|i| row(format!("new-{i}"), now - 29 * day + i))
        .collect();
    server.store.record_sign_ins(&recent).await.unwrap();
    let page = b.get("/admin/sign-ins").await;
    assert!(
        page.body.contains("Sign-in attempts are kept for 30 days"),
        "{}",
        page.body
    );
    assert!(server.state.identity.housekeeping(now).await.unwrap() >= 2_500);
    let left = server
        .store
        .sign_ins_for_email("old@example.com", 10_000)
        .await
        .unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|r| r.id.starts_with("new-")));
}

#[tokio::test]
async fn generated_data_fills_an_empty_database_and_is_refused_over_real_data() {
    let data = std::env::temp_dir().join(format!(
        "gatehouse-generate-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let run = |args: &[&str]| common::gatehouse_cli(&data, args);
    let out = run(&[
        "dev",
        "generate",
        "--users",
        "50",
        "--sign-ins",
        "3000",
        "--days",
        "7",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("generated 50 accounts and 3000 sign-ins over 7 days"),
        "{text}"
    );
    let url = format!("sqlite://{}?mode=rwc", data.join("gatehouse.db").display());
    let store = gatehouse_core::store::Store::connect(&url, 2)
        .await
        .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 50);
    let (rows, total) = store
        .filter_sign_ins(&gatehouse_core::store::SignInFilter::default(), 0, 3_000)
        .await
        .unwrap();
    assert_eq!(total, 3_000);
    let week_ago = rows.iter().map(|r| r.occurred_at).min().unwrap();
    let newest = rows.iter().map(|r| r.occurred_at).max().unwrap();
    assert!(newest - week_ago <= 7 * 24 * 60 * 60 * 1000);
    assert!(rows.iter().any(|r| r.result == "failure"));
    assert!(rows.iter().any(|r| r.method == "passkey"));

    // A database with data is left alone without --force, and grows with it.
    let refused = run(&["dev", "generate", "--users", "10", "--sign-ins", "10"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("add --force"));
    assert_eq!(store.count_users().await.unwrap(), 50);
    let more = run(&[
        "dev",
        "generate",
        "--users",
        "10",
        "--sign-ins",
        "100",
        "--force",
    ]);
    assert!(
        more.status.success(),
        "{}",
        String::from_utf8_lossy(&more.stderr)
    );
    assert_eq!(store.count_users().await.unwrap(), 60);
    let bad = run(&["dev", "generate", "--days", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--days"));
}

/// Whether the OpenAPI document's client credentials flow lists `scope`.
fn flows_scope(doc: &serde_json::Value, scope: &str) -> bool {
    doc["components"]["securitySchemes"]["clientCredentials"]["flows"]["clientCredentials"]
        ["scopes"][scope]
        .is_string()
}

/// The client id and secret of a new application with the client credentials grant and the
/// API scopes given.
async fn api_client(
    server: &TestServer,
    admin: &mut Browser,
    name: &str,
    scopes: &[&str],
) -> (String, String) {
    let mut form = vec![
        ("name", name),
        ("type", "confidential"),
        ("grant", "client_credentials"),
    ];
    form.extend(scopes.iter().map(|s| ("api_scope", *s)));
    let r = admin.post("/admin/apps", &form).await;
    let secret = r
        .body
        .split("data-testid=\"client-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let id = server
        .state
        .identity
        .clients()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap()
        .id;
    (id, secret)
}

/// The CSV's columns summed over its rows, by header.
fn csv_totals(csv: &str) -> std::collections::BTreeMap<String, i64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut totals = std::collections::BTreeMap::new();
    for line in lines {
        for (name, cell) in header.iter().zip(line.split(',')).skip(1) {
            *totals.entry(name.to_string()).or_insert(0) += cell.parse::<i64>().unwrap();
        }
    }
    totals
}

#[tokio::test]
async fn the_dashboards_draw_and_export_what_the_sign_in_log_holds() {
    let server = TestServer::start().await;
    let mut admin = admin(&server).await;
    server
        .signed_up("Una User", "una@example.com", PASSWORD)
        .await;
    let mut una = server.browser();
    una.sign_in_with_password("una@example.com", "not her password 1")
        .await;
    una.sign_in_with_password("una@example.com", "not her password 2")
        .await;
    una.sign_in_with_password("una@example.com", PASSWORD).await;

    // Nothing is counted until the rollup job runs.
    let page = admin.get("/admin/insights/authentications").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Nothing counted yet"), "{}", page.body);
    let run = server
        .state
        .identity
        .run_rollups("test", server.state.now())
        .await
        .unwrap()
        .expect("the lease is free");
    assert!(run.caught_up && run.rows > 0);

    let (log, total) = server
        .store
        .filter_sign_ins(&gatehouse_core::store::SignInFilter::default(), 0, 1_000)
        .await
        .unwrap();
    assert_eq!(run.rows, total as u64);
    let mut by_result = std::collections::BTreeMap::new();
    for e in &log {
        *by_result.entry(e.result.clone()).or_insert(0i64) += 1;
    }
    assert_eq!(by_result.get("failure"), Some(&2), "{by_result:?}");

    let first = admin.get("/admin/insights").await;
    assert!(
        first.body.contains("Active and new users per day"),
        "{}",
        first.body
    );
    let page = admin
        .get("/admin/insights/authentications?days=7&zone=Asia%2FKolkata")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "Sign-in attempts per day",
        "<svg",
        "role=\"img\"",
        "Sign-in attempts per day (numbers)",
        "Sign-in attempts by browser",
        "Days run midnight to midnight in Asia/Kolkata",
        "Download CSV: Sign-in attempts per day",
    ] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }

    // Each chart's CSV holds the numbers of its table, which are the log's.
    let csv = admin
        .get("/admin/insights/authentications/export?days=7&zone=Asia%2FKolkata&chart=per-day")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.body.starts_with("Day,"), "{}", csv.body);
    assert_eq!(csv.body.lines().count(), 1 + 7);
    assert_eq!(csv_totals(&csv.body), by_result);
    let reasons = admin
        .get("/admin/insights/authentications/export?days=7&chart=reasons")
        .await;
    assert_eq!(
        csv_totals(&reasons.body).get("invalid_credentials"),
        Some(&2),
        "{}",
        reasons.body
    );
    let methods = admin
        .get("/admin/insights/authentications/export?days=30&chart=methods")
        .await;
    let in_all: i64 = csv_totals(&methods.body).values().sum();
    assert_eq!(in_all, total);
    // One application's numbers: the account portal's are all of these; another has none.
    let portal = admin
        .get("/admin/insights/authentications/export?days=7&chart=per-day&application=account")
        .await;
    assert_eq!(csv_totals(&portal.body), by_result);
    let other = admin
        .get("/admin/insights/authentications/export?days=7&chart=per-day&application=nobody")
        .await;
    assert!(csv_totals(&other.body).is_empty(), "{}", other.body);
    // Twelve months.
    let year = admin
        .get("/admin/insights/authentications/export?days=365&chart=per-day")
        .await;
    assert!(year.body.starts_with("Month,"), "{}", year.body);
    assert_eq!(year.body.lines().count(), 1 + 12);
    assert_eq!(csv_totals(&year.body), by_result);

    // A time zone that is not one is said; unknown dashboards and charts are not found.
    let bad = admin
        .get("/admin/insights/authentications?zone=Mars%2FOlympus")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("unknown time zone"), "{}", bad.body);
    assert_eq!(
        admin.get("/admin/insights/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin
            .get("/admin/insights/authentications/export?chart=nothing")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let security = admin.get("/admin/insights/security").await;
    assert_eq!(security.status, StatusCode::OK);
    for needle in ["Policy results", "Risk detections by kind and level"] {
        assert!(
            security.body.contains(needle),
            "{needle}: {}",
            security.body
        );
    }

    // Users: everyone who signed in today is active and new (the admin and Una).
    let signed_in: std::collections::BTreeSet<&str> = log
        .iter()
        .filter(|e| e.result == "success")
        .filter_map(|e| e.user_id.as_deref())
        .collect();
    assert_eq!(signed_in.len(), 2, "{signed_in:?}");
    let users = admin
        .get("/admin/insights/users/export?days=7&chart=active")
        .await;
    assert!(
        users.body.starts_with("Day,Active users,New users"),
        "{}",
        users.body
    );
    let totals = csv_totals(&users.body);
    assert_eq!(totals.get("Active users"), Some(&2), "{}", users.body);
    assert_eq!(totals.get("New users"), Some(&2), "{}", users.body);
    let inactive = admin
        .get("/admin/insights/users/export?chart=inactive")
        .await;
    assert_eq!(
        csv_totals(&inactive.body).get("Users"),
        Some(&0),
        "{}",
        inactive.body
    );
    let page = admin.get("/admin/insights/users").await;
    for needle in [
        "Monthly active and new users",
        "of 2 who ever signed in",
        "HyperLogLog",
    ] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }
    // MFA: no account has a second factor yet.
    let methods = admin.get("/admin/insights/mfa/export?chart=methods").await;
    assert!(
        methods.body.contains("No second factor,2"),
        "{}",
        methods.body
    );
    let page = admin.get("/admin/insights/mfa").await;
    for needle in [
        "Second-factor attempts per day by method",
        "Text messages by country",
    ] {
        assert!(page.body.contains(needle), "{needle}: {}", page.body);
    }

    // The same numbers from the insights API, for an application granted its scope.
    let (reader, reader_secret) = api_client(
        &server,
        &mut admin,
        "Dashboards",
        &["gatehouse.insights.read"],
    )
    .await;
    let (risk_only, risk_secret) =
        api_client(&server, &mut admin, "SIEM", &["gatehouse.risk.read"]).await;
    let (status, granted) = app_token(&server, &reader, &reader_secret, None).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["scope"], "gatehouse.insights.read");
    let token = granted["access_token"].as_str().unwrap().to_string();
    let path = "/api/v1/insights/authentications?days=7&zone=Asia%2FKolkata&chart=per-day";
    let (status, _, body) = api_get(&server, path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["zone"], "Asia/Kolkata");
    assert_eq!(body["counted"]["rows"], total);
    let chart = &body["charts"][0];
    assert_eq!(body["charts"].as_array().unwrap().len(), 1);
    assert_eq!(chart["id"], "per-day");
    assert_eq!(chart["labels"].as_array().unwrap().len(), 7);
    let mut api_totals = std::collections::BTreeMap::new();
    for row in chart["rows"].as_array().unwrap() {
        for (series, n) in chart["series"]
            .as_array()
            .unwrap()
            .iter()
            .zip(row.as_array().unwrap())
        {
            *api_totals
                .entry(series.as_str().unwrap().to_string())
                .or_insert(0i64) += n.as_i64().unwrap();
        }
    }
    assert_eq!(api_totals, by_result);
    for (dashboard, charts) in [("users", 3), ("mfa", 4), ("security", 4)] {
        let (status, _, body) = api_get(
            &server,
            &format!("/api/v1/insights/{dashboard}"),
            Some(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["charts"].as_array().unwrap().len(),
            charts,
            "{dashboard}"
        );
    }
    // Refused without a token, with another scope's token, and for bad parameters.
    let (status, challenge, _) = api_get(&server, path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().starts_with("Bearer"));
    let (_, granted) = app_token(&server, &risk_only, &risk_secret, None).await;
    let other = granted["access_token"].as_str().unwrap();
    let (status, challenge, _) = api_get(&server, path, Some(other)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains("insufficient_scope")
            && challenge.contains("scope=\"gatehouse.insights.read\""),
        "{challenge}"
    );
    for (bad, says) in [
        ("/api/v1/insights/authentications?days=8", "days"),
        (
            "/api/v1/insights/authentications?zone=Mars%2FOlympus",
            "time zone",
        ),
        ("/api/v1/insights/authentications?chart=nothing", "chart"),
        ("/api/v1/insights/authentications?colour=red", "colour"),
    ] {
        let (status, _, body) = api_get(&server, bad, Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["error_description"].as_str().unwrap().contains(says),
            "{bad}: {body}"
        );
    }
    let (status, _, _) = api_get(&server, "/api/v1/insights/nothing", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
