//! Conditional Access over HTTP: policies saved through the core apply at the pipeline's
//! decision step, for sign-ins on our pages and for applications' requests from an existing
//! session; every decision is in the sign-in log with each policy's result; a change on one
//! instance reaches another through the database's change counter; and the command line
//! manages policies, groups and locations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::oidc::{
    authorize_url, code_for, exchange, follow, pkce, query_param, refresh, register, target,
    userinfo, web_app,
};
use common::{Browser, TestServer, PASSWORD};
use gatehouse_core::conditional_access::{
    Assignments, Conditions, Control, Grant, LocationCondition, LocationScope, NamedLocation,
    Policy, PolicyResult, PolicyState, RiskLevel, Targets,
};
use gatehouse_core::identity::{AccessError, POLICY_CACHE_MS};
use gatehouse_core::store::SignInLogEntry;
use reqwest::StatusCode;

fn policy(id: &str, grant: Grant) -> Policy {
    Policy {
        id: id.into(),
        name: format!("Policy {id}"),
        state: PolicyState::On,
        assignments: Assignments {
            all_users: true,
            ..Assignments::default()
        },
        targets: Targets {
            all_applications: true,
            account_portal: true,
            ..Targets::default()
        },
        conditions: Conditions::default(),
        grant,
        session: Default::default(),
    }
}

fn require_mfa() -> Grant {
    Grant::Require {
        controls: vec![Control::Mfa],
        require_all: false,
    }
}

async fn save(server: &TestServer, p: &Policy) {
    server
        .state
        .identity
        .save_policy(p, None, server.state.now())
        .await
        .unwrap();
}

/// The policy results of a log row.
fn results(row: &SignInLogEntry) -> Vec<PolicyResult> {
    serde_json::from_str(
        row.policies
            .as_deref()
            .expect("the row records the policies"),
    )
    .unwrap()
}

async fn newest(server: &TestServer, email: &str) -> SignInLogEntry {
    server
        .store
        .sign_ins_for_email(email, 1)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn a_policy_requiring_mfa_for_one_application_asks_there_and_nowhere_else() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let blog = register(&server, web_app("Blog")).await;
    let mut p = policy("mfa-shop", require_mfa());
    p.targets = Targets {
        applications: vec![shop.id.clone()],
        ..Targets::default()
    };
    save(&server, &p).await;
    let mut b = server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut again = server.browser();
    let r = again
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"), "the portal is not targeted");
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(row.result, "success");
    let r = results(&row);
    assert_eq!(r.len(), 1);
    assert!(!r[0].applied);
    assert_eq!(r[0].reason, "the resource is not targeted");

    let (code, _) = code_for(&mut b, &blog, &[]).await;
    assert!(!code.is_empty(), "another application gets its code");
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (row.method.as_str(), row.result.as_str()),
        ("sso", "success")
    );
    assert_eq!(row.application, blog.id);

    // A session of the sign-up proved only the mailbox and the account has no second factor:
    // it adds one first, then the shop's request goes on.
    let (_, challenge) = pkce();
    let r = b.get(&authorize_url(&shop, &challenge, &[])).await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=app_requires_mfa"),
        "the shop sends the account to add a factor"
    );
    // A password session is asked for the second factor it can give: an emailed code.
    let r = again.get(&authorize_url(&shop, &challenge, &[])).await;
    assert_eq!(
        r.location(),
        Some("/sign-in/verify"),
        "the shop asks for a second factor"
    );
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (
            row.method.as_str(),
            row.result.as_str(),
            row.failure_reason.as_deref()
        ),
        ("sso", "interrupted", Some("second_factor_required"))
    );
    let r = results(&row);
    assert!(r[0].applied, "{r:?}");
    assert!(
        r[0].reason
            .contains(&format!("the application {}", shop.id)),
        "{r:?}"
    );
    // Without interaction the shop is told so, and gets no code.
    let r = b
        .get(&authorize_url(
            &shop,
            &challenge,
            &[("prompt", Some("none"))],
        ))
        .await;
    let location = target(&r).unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("interaction_required")
    );
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn a_location_policy_blocks_an_address_range_behind_the_trusted_proxy() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let now = server.state.now();
    server
        .state
        .identity
        .save_location(
            &NamedLocation {
                id: "blocked-net".into(),
                name: "Blocked network".into(),
                trusted: false,
                ranges: vec![
                    "198.51.100.0/24".parse().unwrap(),
                    "2001:db8:bad::/48".parse().unwrap(),
                ],
                countries: vec![],
            },
            now,
        )
        .await
        .unwrap();
    let mut p = policy("block-net", Grant::Block);
    p.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["blocked-net".into()]),
        ..LocationCondition::default()
    });
    save(&server, &p).await;
    let mut home = server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut console = server.admin_browser("Admin", "admin@example.com").await;
    for ip in ["198.51.100.7", "2001:db8:bad::1"] {
        let mut away = Browser::new(&server.base, ip);
        let before = server.counts().await;
        let r = away
            .sign_in_with_password("ada@example.com", PASSWORD)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{ip}");
        assert!(r.body.contains("access policy"), "{ip}: the page says why");
        assert!(away.session_cookie().is_none(), "{ip}");
        let row = newest(&server, "ada@example.com").await;
        assert_eq!(
            (row.result.as_str(), row.failure_reason.as_deref()),
            ("blocked", Some("blocked_by_policy")),
            "{ip}"
        );
        assert_eq!(row.client_ip, ip);
        let r = results(&row);
        assert!(
            r[0].applied && r[0].reason.contains("from Blocked network"),
            "{r:?}"
        );
        let detail = console.get(&format!("/admin/sign-ins/{}", row.id)).await;
        assert_eq!(detail.status, StatusCode::OK);
        assert!(
            detail.body.contains(
                "Policy block-net (on): applied, all users, the account portal, from Blocked network; blocks"
            ),
            "the console shows the decision"
        );
        let after = server.counts().await;
        let sessions =
            |c: &Vec<(String, i64)>| c.iter().find(|(t, _)| t == "sessions").map(|(_, n)| *n);
        assert_eq!(sessions(&before), sessions(&after), "{ip}: no session");
    }
    // The console lists the policy and the location, and What-If gives the same answer.
    let page = console.get("/admin/access").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Policy block-net") && page.body.contains("198.51.100.0/24"));
    let page = console
        .get("/admin/access?email=ada%40example.com&app=account&ip=198.51.100.7&platform=linux&sign_in_risk=none&user_risk=none")
        .await;
    assert!(
        page.body.contains("Blocked by the policy block-net."),
        "What-If answers"
    );
    let page = console
        .get("/admin/access?email=ada%40example.com&app=account&ip=203.0.113.10")
        .await;
    assert!(page
        .body
        .contains("Allowed: no enforced policy asks anything."));
    let page = console
        .get("/admin/access?email=ada%40example.com&ip=not-an-address")
        .await;
    assert!(page.body.contains("the IP address is not valid"));
    // From elsewhere the account signs in, and its session reaches the application.
    let (code, _) = code_for(&mut home, &shop, &[]).await;
    assert!(!code.is_empty());
    // The same session from the blocked network gets no code: the application is told.
    let mut moved = Browser::new(&server.base, "198.51.100.9");
    moved.cookies = home.cookies.clone();
    let (_, challenge) = pkce();
    let r = moved.get(&authorize_url(&shop, &challenge, &[])).await;
    let r = follow(&mut moved, r).await;
    let location = target(&r).unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert!(query_param(&location, "code").is_none());
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (row.method.as_str(), row.failure_reason.as_deref()),
        ("sso", Some("blocked_by_policy"))
    );
}

/// The named location "nz" (the country NZ, no ranges) and a policy blocking sign-ins from it.
async fn block_new_zealand(server: &TestServer) {
    server
        .state
        .identity
        .save_location(
            &NamedLocation {
                id: "nz".into(),
                name: "New Zealand".into(),
                trusted: false,
                ranges: vec![],
                countries: vec!["NZ".into()],
            },
            server.state.now(),
        )
        .await
        .unwrap();
    let mut p = policy("block-nz", Grant::Block);
    p.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["nz".into()]),
        ..LocationCondition::default()
    });
    save(server, &p).await;
}

#[tokio::test]
async fn a_country_policy_blocks_with_a_geoip_database() {
    use common::mmdb::{write_mmdb, Layout, MmdbRecord};
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-ca-geoip-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("country.mmdb");
    write_mmdb(
        &file,
        Layout::GeoIp2,
        "GeoLite2-Country-Test",
        &[
            (
                "198.51.100.0/24".parse().unwrap(),
                MmdbRecord {
                    country: "NZ",
                    city: Some("Wellington"),
                    latitude: -41.2865,
                    longitude: 174.7762,
                    accuracy_km: Some(50),
                },
            ),
            (
                "192.0.2.0/24".parse().unwrap(),
                MmdbRecord {
                    country: "FR",
                    city: None,
                    latitude: 46.0,
                    longitude: 2.0,
                    accuracy_km: None,
                },
            ),
        ],
    );
    let server =
        TestServer::start_with_settings(&[("GATEHOUSE_GEOIP_DB", file.display().to_string())])
            .await;
    block_new_zealand(&server).await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut console = server.admin_browser("Admin", "admin@example.com").await;

    // From an address the database places in New Zealand: blocked, and logged as such.
    let mut away = Browser::new(&server.base, "198.51.100.7");
    let r = away
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("access policy"), "the page says why");
    assert!(away.session_cookie().is_none());
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (row.result.as_str(), row.failure_reason.as_deref()),
        ("blocked", Some("blocked_by_policy"))
    );
    assert_eq!(row.client_ip, "198.51.100.7");
    let r = results(&row);
    assert!(
        r[0].applied && r[0].reason.contains("from New Zealand"),
        "{r:?}"
    );
    // From France: signed in.
    let mut france = Browser::new(&server.base, "192.0.2.7");
    let r = france
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (row.result.as_str(), row.client_ip.as_str()),
        ("success", "192.0.2.7")
    );
    assert!(!results(&row)[0].applied);

    // The console names the database, and What-If gives the address's country.
    let page = console.get("/admin/locations").await;
    assert_eq!(page.status, StatusCode::OK);
    let status = page
        .body
        .split("id=\"geoip-status\"")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .expect("the page has the GeoIP status");
    assert!(
        status.contains("country.mmdb") && status.contains("GeoLite2-Country-Test"),
        "{status}"
    );
    let page = console
        .get("/admin/access?email=ada%40example.com&ip=198.51.100.7")
        .await;
    assert!(
        page.body.contains("Country of the address: NZ."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Blocked by the policy block-nz."));

    // Without a database no address has a country: the same policy blocks nothing.
    let bare = TestServer::start().await;
    block_new_zealand(&bare).await;
    bare.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut console = bare.admin_browser("Admin", "admin@example.com").await;
    let page = console.get("/admin/locations").await;
    assert!(
        page.body.contains("No GeoIP database is configured"),
        "{}",
        page.body
    );
    let mut away = Browser::new(&bare.base, "198.51.100.7");
    let r = away
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let row = newest(&bare, "ada@example.com").await;
    assert_eq!(
        (row.result.as_str(), row.client_ip.as_str()),
        ("success", "198.51.100.7")
    );
    assert!(!results(&row)[0].applied);
    let page = console
        .get("/admin/access?email=ada%40example.com&ip=198.51.100.7")
        .await;
    assert!(page
        .body
        .contains("Country of the address: unknown, no GeoIP database is configured"));
}

#[tokio::test]
async fn a_block_reaches_refresh_tokens_and_revokes_their_family() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let mut b = server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let (code, verifier) = code_for(&mut b, &shop, &[]).await;
    let (_, t1) = exchange(&server, &shop, &code, &verifier).await;
    let (status, t2) = refresh(&server, &shop, t1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "no policy yet");
    // The application's servers refresh from the loopback here; the policy blocks them.
    server
        .state
        .identity
        .save_location(
            &NamedLocation {
                id: "app-servers".into(),
                name: "Application servers".into(),
                trusted: false,
                ranges: vec!["127.0.0.0/8".parse().unwrap()],
                countries: vec![],
            },
            server.state.now(),
        )
        .await
        .unwrap();
    let mut p = policy("block-servers", Grant::Block);
    p.targets = Targets {
        applications: vec![shop.id.clone()],
        ..Targets::default()
    };
    p.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["app-servers".into()]),
        ..LocationCondition::default()
    });
    save(&server, &p).await;
    let (status, body) = refresh(&server, &shop, t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo(&server, t2["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "the grant's tokens are revoked"
    );
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (
            row.method.as_str(),
            row.result.as_str(),
            row.failure_reason.as_deref()
        ),
        ("refresh", "blocked", Some("blocked_by_policy"))
    );
    assert_eq!(row.application, shop.id);
    assert!(results(&row)[0].applied);
}

#[tokio::test]
async fn a_platform_policy_reads_the_user_agent() {
    let server = TestServer::start().await;
    let mut p = policy("no-android", Grant::Block);
    p.conditions.platforms = vec![gatehouse_core::conditional_access::Platform::Android];
    save(&server, &p).await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut phone = server.browser();
    phone.client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0 Mobile Safari/537.36",
        )
        .build()
        .unwrap();
    let r = phone
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = results(&newest(&server, "ada@example.com").await);
    assert!(r[0].applied, "{r:?}");
    let mut desktop = server.browser();
    let r = desktop
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"));
    let r = results(&newest(&server, "ada@example.com").await);
    assert_eq!(r[0].reason, "the platform is linux");
}

#[tokio::test]
async fn what_if_answers_what_the_real_sign_in_meets() {
    use gatehouse_core::conditional_access::{ClientType, Platform, RiskLevel};
    use gatehouse_core::identity::WhatIf;
    let server = TestServer::start().await;
    let now = server.state.now();
    server
        .state
        .identity
        .save_location(
            &NamedLocation {
                id: "blocked-net".into(),
                name: "Blocked network".into(),
                trusted: false,
                ranges: vec!["198.51.100.0/24".parse().unwrap()],
                countries: vec![],
            },
            now,
        )
        .await
        .unwrap();
    let mut block = policy("block-net", Grant::Block);
    block.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["blocked-net".into()]),
        ..LocationCondition::default()
    });
    save(&server, &block).await;
    let mut watch = policy("watch", require_mfa());
    watch.state = PolicyState::ReportOnly;
    save(&server, &watch).await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    for ip in ["198.51.100.4", "203.0.113.10"] {
        let question = WhatIf {
            email: "ada@example.com".into(),
            application: gatehouse_core::identity::ACCOUNT_PORTAL.into(),
            client_ip: ip.into(),
            platform: Platform::Linux,
            client_type: ClientType::Browser,
            sign_in_risk: RiskLevel::None,
            user_risk: RiskLevel::None,
        };
        let answer = server
            .state
            .identity
            .what_if(&question, server.state.now())
            .await
            .unwrap();
        let mut b = Browser::new(&server.base, ip);
        b.sign_in_with_password("ada@example.com", PASSWORD).await;
        let real = results(&newest(&server, "ada@example.com").await);
        assert_eq!(answer.results, real, "{ip}: What-If and the sign-in agree");
        assert_eq!(
            answer.blocked_by.is_some(),
            ip.starts_with("198.51.100."),
            "{ip}"
        );
    }
    let unknown = WhatIf {
        email: "nobody@example.com".into(),
        application: "account".into(),
        client_ip: "203.0.113.1".into(),
        platform: Platform::Other,
        client_type: ClientType::Browser,
        sign_in_risk: RiskLevel::None,
        user_risk: RiskLevel::None,
    };
    assert!(matches!(
        server.state.identity.what_if(&unknown, now).await,
        Err(AccessError::NotFound("account"))
    ));
}

#[tokio::test]
async fn sign_in_frequency_asks_again_once_its_time_has_passed() {
    use gatehouse_core::conditional_access::SignInFrequency;
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let blog = register(&server, web_app("Blog")).await;
    // Access granted with a session control only: a sign-in within the hour.
    let mut p = policy(
        "hourly-shop",
        Grant::Require {
            controls: vec![],
            require_all: false,
        },
    );
    p.targets = Targets {
        applications: vec![shop.id.clone()],
        ..Targets::default()
    };
    p.session.sign_in_frequency = Some(SignInFrequency::Hours { hours: 1 });
    save(&server, &p).await;
    let mut b = server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let silently = |app| {
        let (_, challenge) = pkce();
        authorize_url(app, &challenge, &[("prompt", Some("none"))])
    };
    let r = b.get(&silently(&shop)).await;
    assert!(
        query_param(&target(&r).unwrap(), "code").is_some(),
        "within the hour"
    );
    // The session stays alive (activity within the idle time), but its sign-in gets old.
    server.clock.advance_ms(40 * 60 * 1000);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    server.clock.advance_ms(25 * 60 * 1000);
    let r = b.get(&silently(&shop)).await;
    let location = target(&r).unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("login_required"),
        "{location}"
    );
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(
        (row.method.as_str(), row.failure_reason.as_deref()),
        ("sso", Some("login_required"))
    );
    let r = b.get(&silently(&blog)).await;
    assert!(
        query_param(&target(&r).unwrap(), "code").is_some(),
        "another application is not targeted"
    );
    let (_, challenge) = pkce();
    let r = b.get(&authorize_url(&shop, &challenge, &[])).await;
    assert_eq!(r.location(), Some("/sign-in"), "asked to sign in again");
    let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    let r = follow(&mut b, r).await;
    assert!(
        query_param(&target(&r).unwrap(), "code").is_some(),
        "a new sign-in meets it"
    );
}

#[tokio::test]
async fn impact_replays_a_draft_over_the_sign_in_log() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let now = server.state.now();
    server
        .state
        .identity
        .save_location(
            &NamedLocation {
                id: "blocked-net".into(),
                name: "Blocked network".into(),
                trusted: false,
                ranges: vec!["198.51.100.0/24".parse().unwrap()],
                countries: vec![],
            },
            now,
        )
        .await
        .unwrap();
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    server.signed_up("Bob", "bob@example.com", PASSWORD).await;
    let mut last = server.browser();
    for (email, ip) in [
        ("ada@example.com", "198.51.100.1"),
        ("ada@example.com", "198.51.100.2"),
        ("bob@example.com", "198.51.100.3"),
        ("bob@example.com", "203.0.113.4"),
    ] {
        last = Browser::new(&server.base, ip);
        let r = last.sign_in_with_password(email, PASSWORD).await;
        assert_eq!(r.location(), Some("/account"));
    }
    code_for(&mut last, &shop, &[]).await;
    let mut draft = policy("draft-block", Grant::Block);
    draft.state = PolicyState::Off;
    draft.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["blocked-net".into()]),
        ..LocationCondition::default()
    });
    let identity = &server.state.identity;
    let report = identity
        .policy_impact(&draft, 30, server.state.now())
        .await
        .unwrap();
    // Two sign-ups, four password sign-ins and one single sign-on to the shop were logged.
    assert_eq!(report.sign_ins, 7);
    assert_eq!((report.blocked, report.users_blocked), (3, 2));
    assert_eq!(report.challenged, 0);
    assert_eq!(report.by_application, [("account".to_string(), 3, 0)]);
    assert!(report
        .sample
        .iter()
        .all(|(row, outcome)| row.client_ip.starts_with("198.51.100.") && *outcome == "blocked"));
    // Asking for MFA of the shop challenges its one sign-on.
    let mut mfa_shop = policy("draft-mfa", require_mfa());
    mfa_shop.targets = Targets {
        applications: vec![shop.id.clone()],
        ..Targets::default()
    };
    let report = identity
        .policy_impact(&mfa_shop, 30, server.state.now())
        .await
        .unwrap();
    assert_eq!((report.blocked, report.challenged), (0, 1));
    assert_eq!(report.by_application, [(shop.id.clone(), 0, 1)]);
    // The replay reaches back only the days asked.
    server.clock.advance_ms(2 * 86_400_000);
    let report = identity
        .policy_impact(&draft, 1, server.state.now())
        .await
        .unwrap();
    assert_eq!(report.sign_ins, 0);
    assert!(identity
        .policy_impact(&draft, 0, server.state.now())
        .await
        .is_err());
    assert!(
        identity.list_policies().await.unwrap().is_empty(),
        "a replay saves nothing"
    );
}

#[tokio::test]
async fn admins_manage_groups_in_the_console_and_each_change_is_audited() {
    let server = TestServer::start().await;
    server.signed_up("Bob", "bob@example.com", PASSWORD).await;
    let mut console = server.admin_browser("Admin", "admin@example.com").await;
    let r = console
        .post(
            "/admin/groups",
            &[("name", "Field Staff"), ("description", "On the road")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/groups/field-staff?notice=group_created")
    );
    let again = console
        .post("/admin/groups", &[("name", "field staff")])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("already exists"));
    let r = console
        .post(
            "/admin/groups/field-staff",
            &[("action", "add-member"), ("email", "Bob@Example.com")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/groups/field-staff?notice=member_added")
    );
    let page = console.get("/admin/groups/field-staff").await;
    assert!(page.body.contains("bob@example.com") && page.body.contains("Remove bob@example.com"));
    let unknown = console
        .post(
            "/admin/groups/field-staff",
            &[("action", "add-member"), ("email", "nobody@example.com")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.contains("no such account"));
    let list = console.get("/admin/groups").await;
    assert!(list.body.contains("Field Staff") && list.body.contains("On the road"));
    let r = console
        .post(
            "/admin/groups/field-staff",
            &[("action", "remove-member"), ("email", "bob@example.com")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/groups/field-staff?notice=member_removed")
    );
    // Renamed, the group keeps its id (policies name it by id); an empty name is refused.
    let r = console
        .post(
            "/admin/groups/field-staff",
            &[
                ("action", "edit"),
                ("name", "Field team"),
                ("description", "On the road"),
            ],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/groups/field-staff?notice=group_edited")
    );
    let groups = server.state.identity.groups().await.unwrap();
    let g = groups.iter().find(|g| g.id == "field-staff").unwrap();
    assert_eq!(
        (g.name.as_str(), g.description.as_str()),
        ("Field team", "On the road")
    );
    let bad = console
        .post(
            "/admin/groups/field-staff",
            &[("action", "edit"), ("name", "  "), ("description", "")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("1 to 100 characters"), "{}", bad.body);
    let r = console
        .post("/admin/groups/field-staff", &[("action", "delete")])
        .await;
    assert_eq!(r.location(), Some("/admin/groups?notice=group_deleted"));
    assert_eq!(
        console.get("/admin/groups/field-staff").await.status,
        StatusCode::NOT_FOUND
    );
    let actions = server
        .store
        .filter_audit(&Default::default(), 0, 50)
        .await
        .unwrap()
        .0;
    let actions: Vec<&str> = actions.iter().map(|a| a.action.as_str()).collect();
    for done in [
        "admin.group.created",
        "admin.group.member_added",
        "admin.group.member_removed",
        "admin.group.edited",
        "admin.group.deleted",
    ] {
        assert!(actions.contains(&done), "{done} in {actions:?}");
    }
}

#[tokio::test]
async fn admins_manage_named_locations_in_the_console() {
    let server = TestServer::start().await;
    let mut console = server.admin_browser("Admin", "admin@example.com").await;
    let bad = console
        .post(
            "/admin/locations",
            &[
                ("id", "office"),
                ("name", "Office"),
                ("ranges", "203.0.113.0/24\n10.0.0.0/99"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("10.0.0.0/99"),
        "the refusal names the line"
    );
    assert!(server
        .state
        .identity
        .named_locations()
        .await
        .unwrap()
        .is_empty());
    let r = console
        .post(
            "/admin/locations",
            &[
                ("id", "office"),
                ("name", "Office"),
                ("ranges", "203.0.113.0/24\n2001:db8::/32"),
                ("trusted", "yes"),
            ],
        )
        .await;
    assert_eq!(r.location(), Some("/admin/locations?notice=location_saved"));
    let saved = server.state.identity.named_locations().await.unwrap();
    assert_eq!(saved.len(), 1);
    assert!(saved[0].trusted && saved[0].ranges.len() == 2);
    let page = console.get("/admin/locations").await;
    assert!(page.body.contains("203.0.113.0/24, 2001:db8::/32"));
    // A location a policy uses stays until the policy changes.
    let mut p = policy("block-office", Grant::Block);
    p.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["office".into()]),
        ..LocationCondition::default()
    });
    // Applications only: the console's own browser is in the office range, and a block of the
    // portal would end its session at the next page.
    p.targets.account_portal = false;
    save(&server, &p).await;
    let busy = console.post("/admin/locations/office/delete", &[]).await;
    assert_eq!(busy.status, StatusCode::BAD_REQUEST);
    assert!(busy.body.contains("uses this location"));
    server
        .state
        .identity
        .delete_policy("block-office", None, server.state.now())
        .await
        .unwrap();
    let r = console.post("/admin/locations/office/delete", &[]).await;
    assert_eq!(
        r.location(),
        Some("/admin/locations?notice=location_deleted")
    );
    assert_eq!(
        console
            .post("/admin/locations/office/delete", &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn report_only_changes_nothing_and_is_logged_with_what_it_would_have_done() {
    let server = TestServer::start().await;
    let mut p = policy("try-block", Grant::Block);
    p.state = PolicyState::ReportOnly;
    save(&server, &p).await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut b = server.browser();
    let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"));
    let row = newest(&server, "ada@example.com").await;
    assert_eq!(row.result, "success");
    let r = results(&row);
    assert_eq!(r[0].state, PolicyState::ReportOnly);
    assert!(r[0].applied);
    assert_eq!(r[0].grant, Some(Grant::Block), "what it would have done");
}

#[tokio::test]
async fn a_policy_saved_on_one_instance_applies_on_another_within_the_cache_time() {
    let url = gatehouse_core::store::testing::fresh_sqlite_url();
    let one = TestServer::start_with(url.clone()).await;
    let two = TestServer::start_with(url).await;
    one.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut b = two.browser();
    let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "no policy yet");
    save(
        &one,
        &sparing_an_admin(policy("block-all", Grant::Block), &one).await,
    )
    .await;
    let mut c = two.browser();
    let r = c.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(
        r.location(),
        Some("/account"),
        "the other instance still holds what it read"
    );
    two.clock.advance_ms(POLICY_CACHE_MS);
    let mut d = two.browser();
    let r = d.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the change has arrived");
}

/// `p`, sparing a new administrator of `server`, so that it may block everything.
async fn sparing_an_admin(mut p: Policy, server: &TestServer) -> Policy {
    let (admin, _) = server
        .state
        .identity
        .create_admin("admin@example.com", "Admin", server.state.now())
        .await
        .unwrap();
    p.assignments.exclude_users = vec![admin.id];
    p
}

#[tokio::test]
async fn a_policy_that_would_lock_everyone_out_is_refused_unless_it_spares_an_admin() {
    let server = TestServer::start().await;
    let identity = &server.state.identity;
    let everything = policy("block-all", Grant::Block);
    let err = identity
        .save_policy(&everything, None, server.state.now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AccessError::Invalid(p) if p.0.contains("administrator")),
        "{err}"
    );
    assert!(identity.list_policies().await.unwrap().is_empty());
    // Report-only, conditional or sparing an admin, it may be saved.
    let mut report = everything.clone();
    report.state = PolicyState::ReportOnly;
    identity
        .save_policy(&report, None, server.state.now())
        .await
        .unwrap();
    let sparing = sparing_an_admin(everything, &server).await;
    let version = identity
        .save_policy(&sparing, None, server.state.now())
        .await
        .unwrap();
    assert_eq!(version, 2, "the second version of the same policy");
    // A policy naming a location that does not exist is refused with its name.
    let mut nowhere = policy("nowhere", Grant::Block);
    nowhere.conditions.locations = Some(LocationCondition {
        include: LocationScope::Selected(vec!["atlantis".into()]),
        ..LocationCondition::default()
    });
    let err = identity
        .save_policy(&nowhere, None, server.state.now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("atlantis"), "{err}");
}

#[tokio::test]
async fn group_assignments_and_exclusions_follow_membership() {
    let server = TestServer::start().await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    server.signed_up("Bob", "bob@example.com", PASSWORD).await;
    let identity = &server.state.identity;
    let now = server.state.now();
    let group = identity.create_group("Contractors", "", now).await.unwrap();
    assert_eq!(group, "contractors");
    assert!(matches!(
        identity.create_group("contractors", "", now).await,
        Err(AccessError::Exists)
    ));
    identity
        .add_group_member(&group, "Bob@Example.com", now)
        .await
        .unwrap();
    let mut p = policy("block-contractors", Grant::Block);
    p.assignments = Assignments {
        groups: vec![group.clone()],
        ..Assignments::default()
    };
    save(&server, &p).await;
    let mut ada = server.browser();
    let r = ada.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "not a member");
    let mut bob = server.browser();
    let r = bob.sign_in_with_password("bob@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a member");
    let r = results(&newest(&server, "bob@example.com").await);
    assert!(r[0].reason.contains("in the group contractors"), "{r:?}");
    identity
        .remove_group_member(&group, "bob@example.com", server.state.now())
        .await
        .unwrap();
    let mut bob = server.browser();
    let r = bob.sign_in_with_password("bob@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "no longer a member");
}

fn gatehouse(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::gatehouse_cli(data_dir, args)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_command_line_manages_policies_groups_and_locations() {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-ca-cli-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let out = gatehouse(
        &dir,
        &[
            "locations",
            "add",
            "office",
            "--name",
            "Office",
            "--range",
            "203.0.113.0/24",
            "--range",
            "2001:db8::/32",
            "--trusted",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("office"));
    let bad = gatehouse(
        &dir,
        &[
            "locations",
            "add",
            "x",
            "--name",
            "X",
            "--range",
            "10.0.0.1/99",
        ],
    );
    assert!(!bad.status.success());
    let out = gatehouse(&dir, &["groups", "add", "Sales Team"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("group sales-team created"));
    let doc = dir.join("policies.json");
    std::fs::write(
        &doc,
        r#"{"policies": [{"id": "mfa-outside", "name": "MFA outside the office", "state": "on",
            "assignments": {"all_users": true, "exclude_groups": ["sales-team"]},
            "targets": {"all_applications": true},
            "conditions": {"locations": {"include": {"kind": "any"}, "exclude": ["office"]}},
            "grant": {"kind": "require", "controls": [{"kind": "mfa"}]}}]}"#,
    )
    .unwrap();
    let out = gatehouse(&dir, &["policies", "import", doc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("mfa-outside"));
    let out = gatehouse(&dir, &["policies", "report-only", "mfa-outside"]);
    assert!(text(&out).contains("report-only"), "{}", text(&out));
    let out = gatehouse(
        &dir,
        &[
            "policies",
            "what-if",
            "--email",
            "nobody@example.com",
            "--ip",
            "203.0.113.9",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("no such account"), "{}", text(&out));
    let out = gatehouse(
        &dir,
        &[
            "policies",
            "what-if",
            "--email",
            "x@example.com",
            "--ip",
            "1.2.3.4",
            "--platform",
            "beos",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("not a platform"), "{}", text(&out));
    let out = gatehouse(&dir, &["policies", "history", "mfa-outside"]);
    assert!(text(&out).contains("version 2"), "{}", text(&out));
    let out = gatehouse(&dir, &["policies", "export"]);
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["policies"][0]["state"], "report-only");
    assert_eq!(exported["locations"][0]["id"], "office");
    let busy = gatehouse(&dir, &["locations", "remove", "office"]);
    assert!(!busy.status.success());
    assert!(
        text(&busy).contains("uses this location"),
        "{}",
        text(&busy)
    );
    std::fs::write(&doc, r#"{"policies": [{"id": "broken"}]}"#).unwrap();
    let refused = gatehouse(&dir, &["policies", "import", doc.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not a policy document"),
        "{}",
        text(&refused)
    );
    let out = gatehouse(&dir, &["policies", "remove", "mfa-outside"]);
    assert!(
        text(&out).contains("no Conditional Access policies"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------- terms of use

/// The texts of a request made directly on the core, which sends no email.
#[derive(Debug)]
struct NoEmails;

impl gatehouse_core::mail::EmailTexts for NoEmails {
    fn compose(
        &self,
        _: gatehouse_core::mail::EmailKind,
        _: Option<&str>,
    ) -> gatehouse_core::mail::EmailText {
        gatehouse_core::mail::EmailText {
            subject: String::new(),
            body: String::new(),
        }
    }
}

/// A request on the core from the test browser's address, for `application`.
fn core_ctx(application: &str) -> gatehouse_core::identity::RequestContext {
    gatehouse_core::identity::RequestContext {
        application: application.into(),
        client_ip: "203.0.113.10".into(),
        user_agent: "test".into(),
        product_name: "Gatehouse".into(),
        emails: std::sync::Arc::new(NoEmails),
        device: None,
        policy_results: None,
        sign_in_id: None,
        sign_in_risk: None,
    }
}

async fn publish(server: &TestServer, title: &str, body: &str) -> i64 {
    server
        .state
        .identity
        .publish_terms(
            &core_ctx(gatehouse_core::identity::ACCOUNT_PORTAL),
            None,
            title,
            body,
            server.state.now(),
        )
        .await
        .unwrap()
}

fn require_terms() -> Grant {
    Grant::Require {
        controls: vec![Control::TermsOfUse],
        require_all: true,
    }
}

/// A policy asking every account for the terms in `app` and in the account portal.
fn terms_policy(app: &str) -> Policy {
    let mut p = policy("terms", require_terms());
    p.targets = Targets {
        applications: vec![app.into()],
        account_portal: true,
        ..Targets::default()
    };
    p
}

/// The versions the account with this email has accepted, newest first.
async fn accepted(server: &TestServer, email: &str) -> Vec<i64> {
    let user = server.user(email).await;
    server
        .state
        .identity
        .terms_accepted_by(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.version)
        .collect()
}

#[tokio::test]
async fn terms_of_use_are_asked_once_per_version() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let identity = &server.state.identity;
    // Nothing to accept yet: a policy requiring the terms is refused until they exist, and
    // they cannot be offered as "any one of" beside a factor.
    let err = identity
        .save_policy(&terms_policy(&shop.id), None, server.state.now())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("publish the terms of use first"),
        "{err}"
    );
    assert!(identity.list_policies().await.unwrap().is_empty());
    assert!(identity.terms_of_use().await.unwrap().is_none());
    let v1 = publish(
        &server,
        "House rules v1",
        "Be kind to the other guests.\n\nNo spam, ever.",
    )
    .await;
    assert_eq!(v1, 1);
    let mut either = terms_policy(&shop.id);
    either.grant = Grant::Require {
        controls: vec![Control::Mfa, Control::TermsOfUse],
        require_all: false,
    };
    let err = identity
        .save_policy(&either, None, server.state.now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("require all"), "{err}");
    save(&server, &terms_policy(&shop.id)).await;

    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let user = server.user("ada@example.com").await;
    server
        .store
        .set_admin(&user.id, true, server.state.now())
        .await
        .unwrap();
    let mut b = server.browser();
    let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    for page in ["/account", "/account/email", "/admin"] {
        let r = b.get(page).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, Some("/terms")),
            "{page} waits for the terms"
        );
    }
    let page = b.get("/terms").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for text in [
        "<h1>Terms of use</h1>",
        "House rules v1",
        "<p>Be kind to the other guests.</p>",
        "<p>No spam, ever.</p>",
        "action=\"/terms\"",
        "name=\"version\" value=\"1\"",
        "Accept and continue",
        "action=\"/sign-out\"",
        "Decline and sign out",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
    assert!(accepted(&server, "ada@example.com").await.is_empty());
    let r = b.post("/terms", &[("version", "1")]).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    assert_eq!(b.get("/admin").await.status, StatusCode::OK);
    assert_eq!(
        b.get("/terms").await.location(),
        Some("/account"),
        "nothing is left to accept"
    );
    assert_eq!(accepted(&server, "ada@example.com").await, [1]);
    assert!(server
        .audit_actions("ada@example.com")
        .await
        .contains(&"terms.accepted".to_string()));

    // Accepted once, the version is not asked again at the next sign-in.
    b.post("/sign-out", &[]).await;
    assert!(b.session_cookie().is_none());
    let mut again = server.browser();
    let r = again
        .sign_in_with_password("ada@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"));
    assert_eq!(again.get("/account").await.status, StatusCode::OK);

    // A new version is asked for again; a page of the old one does not accept it.
    let v2 = publish(&server, "House rules v2", "Be kind.\n\nNo pets.").await;
    assert_eq!(v2, 2);
    assert_eq!(again.get("/account").await.location(), Some("/terms"));
    let page = again.get("/terms").await;
    assert!(page.body.contains("House rules v2") && page.body.contains("<p>No pets.</p>"));
    assert!(page.body.contains("name=\"version\" value=\"2\""));
    let stale = again.post("/terms", &[("version", "1")]).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert!(stale.body.contains("The terms of use changed"));
    assert!(stale.body.contains("House rules v2") && stale.body.contains("value=\"2\""));
    assert_eq!(
        accepted(&server, "ada@example.com").await,
        [1],
        "version 2 is not accepted by a page of version 1"
    );
    assert_eq!(again.get("/account").await.location(), Some("/terms"));
    assert!(!identity
        .accept_terms(&core_ctx("account"), &user, 7, server.state.now())
        .await
        .unwrap());
    let r = again.post("/terms", &[("version", "2")]).await;
    assert_eq!(r.location(), Some("/account"));
    assert_eq!(again.get("/account").await.status, StatusCode::OK);
    assert_eq!(accepted(&server, "ada@example.com").await, [2, 1]);
    assert!(identity
        .terms_to_accept(
            &core_ctx("account"),
            &user,
            gatehouse_core::identity::ACCOUNT_PORTAL,
            server.state.now()
        )
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_application_request_waits_for_the_terms_of_use() {
    let server = TestServer::start().await;
    let shop = register(&server, web_app("Shop")).await;
    let blog = register(&server, web_app("Blog")).await;
    publish(&server, "Shop terms", "Pay for what you take.").await;
    save(&server, &terms_policy(&shop.id)).await;
    server.signed_up("Bob", "bob@example.com", PASSWORD).await;
    let mut b = server.browser();
    let r = b.sign_in_with_password("bob@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"));

    // An application the policy does not target gets its code.
    let (code, _) = code_for(&mut b, &blog, &[]).await;
    assert!(!code.is_empty());
    // Without interaction the shop is told an interaction is needed, and gets no code.
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_url(
            &shop,
            &challenge,
            &[("prompt", Some("none"))],
        ))
        .await;
    let location = target(&r).unwrap();
    assert!(location.starts_with(common::oidc::REDIRECT), "{location}");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("interaction_required"),
        "{location}"
    );
    assert!(query_param(&location, "code").is_none());
    let row = newest(&server, "bob@example.com").await;
    assert_eq!(
        (row.method.as_str(), row.application.as_str()),
        ("sso", shop.id.as_str())
    );
    assert_eq!(row.failure_reason.as_deref(), Some("interaction_required"));
    assert!(accepted(&server, "bob@example.com").await.is_empty());

    // Interactively the shop's request waits on the terms page.
    let (verifier, challenge) = pkce();
    let r = b.get(&authorize_url(&shop, &challenge, &[])).await;
    assert_eq!(r.location(), Some("/terms"), "{}", r.body);
    let row = newest(&server, "bob@example.com").await;
    assert_eq!(
        (
            row.method.as_str(),
            row.result.as_str(),
            row.failure_reason.as_deref()
        ),
        ("sso", "interrupted", Some("terms_of_use_required"))
    );
    assert_eq!(row.application, shop.id);
    assert!(results(&row)[0].applied);
    let page = b.get("/terms").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Shop terms") && page.body.contains("Pay for what you take."));
    let r = b.post("/terms", &[("version", "1")]).await;
    assert_eq!(r.location(), Some("/authorize/continue"), "{}", r.body);
    let r = follow(&mut b, r).await;
    let location = target(&r).unwrap_or_else(|| panic!("{} {}", r.status, r.body));
    assert!(location.starts_with(common::oidc::REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    let code = query_param(&location, "code").unwrap_or_else(|| panic!("{location}"));
    let (status, tokens) = exchange(&server, &shop, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(accepted(&server, "bob@example.com").await, [1]);
    let user = server.user("bob@example.com").await;
    let acceptance = &server
        .state
        .identity
        .terms_accepted_by(&user)
        .await
        .unwrap()[0];
    assert_eq!(acceptance.client_ip, "203.0.113.10");
    assert!(server
        .audit_actions("bob@example.com")
        .await
        .contains(&"terms.accepted".to_string()));
    // Accepted, the shop's silent requests get codes, and the portal opens.
    let (_, challenge) = pkce();
    let r = b
        .get(&authorize_url(
            &shop,
            &challenge,
            &[("prompt", Some("none"))],
        ))
        .await;
    assert!(query_param(&target(&r).unwrap(), "code").is_some());
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------- persistent browser session

/// The session cookie a reply sets (it must set one).
fn session_set_cookie(r: &common::Reply) -> String {
    r.set_cookies()
        .into_iter()
        .find(|c| {
            let name = c.split('=').next().unwrap_or("");
            name.ends_with("gh_session") && !c.contains("Max-Age=0")
        })
        .unwrap_or_else(|| panic!("no session cookie in {:?}", r.set_cookies()))
}

fn persistent(id: &str, p: gatehouse_core::conditional_access::PersistentBrowser) -> Policy {
    let mut pol = policy(
        id,
        Grant::Require {
            controls: vec![],
            require_all: false,
        },
    );
    pol.session.persistent_browser = Some(p);
    pol
}

#[tokio::test]
async fn a_persistent_browser_policy_keeps_the_session_cookie() {
    use gatehouse_core::conditional_access::PersistentBrowser;
    let server = TestServer::start().await;
    server.signed_up("Ada", "ada@example.com", PASSWORD).await;
    // Another account signs in with a passkey alone.
    let mut passkey = {
        let mut b = server.signed_up("Pat", "pat@example.com", PASSWORD).await;
        common::passkey::add_passkey(&server, &mut b, "Laptop").await
    };
    let srv = &server;
    let sign_in = || async move {
        let mut b = srv.browser();
        let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
        assert_eq!(r.location(), Some("/account"), "{}", r.body);
        session_set_cookie(&r)
    };
    let cookie = sign_in().await;
    assert!(!cookie.contains("Max-Age"), "no policy: {cookie}");

    save(&server, &persistent("keep", PersistentBrowser::Always)).await;
    let cookie = sign_in().await;
    assert!(cookie.contains("; Max-Age=86400"), "always: {cookie}");
    let mut b = server.browser();
    let r = common::passkey::sign_in_with_passkey(&server, &mut b, &mut passkey).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookie = session_set_cookie(&r);
    assert!(
        cookie.contains("; Max-Age=86400"),
        "always, with a passkey: {cookie}"
    );

    // Report-only, the control changes nothing.
    server
        .state
        .identity
        .set_policy_state("keep", PolicyState::ReportOnly, None, server.state.now())
        .await
        .unwrap();
    let cookie = sign_in().await;
    assert!(!cookie.contains("Max-Age"), "report-only: {cookie}");
    server
        .state
        .identity
        .set_policy_state("keep", PolicyState::On, None, server.state.now())
        .await
        .unwrap();

    // Never wins over always.
    save(&server, &persistent("forget", PersistentBrowser::Never)).await;
    let cookie = sign_in().await;
    assert!(!cookie.contains("Max-Age"), "always and never: {cookie}");

    // The lifetime is the session's absolute lifetime as configured.
    let short =
        TestServer::start_with_settings(&[("GATEHOUSE_SESSION_ABSOLUTE_HOURS", "8".into())]).await;
    save(&short, &persistent("keep", PersistentBrowser::Always)).await;
    short.signed_up("Ada", "ada@example.com", PASSWORD).await;
    let mut b = short.browser();
    let r = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    let cookie = session_set_cookie(&r);
    assert!(cookie.contains("; Max-Age=28800"), "8 hours: {cookie}");
}

// ---------------------------------------------------------------- the MFA setting

#[tokio::test]
async fn the_old_mfa_setting_becomes_a_policy_at_start_up() {
    use gatehouse_core::identity::{MfaPolicy, MFA_FOR_ALL_POLICY, MFA_POLICY_SETTING};
    let url = gatehouse_core::store::testing::fresh_sqlite_url();
    let one = TestServer::start_with(url.clone()).await;
    // An earlier version required MFA through a setting.
    one.store
        .put_setting(
            MFA_POLICY_SETTING,
            r#"{"require_mfa":true}"#,
            one.state.now(),
        )
        .await
        .unwrap();
    assert!(one
        .state
        .identity
        .find_policy(MFA_FOR_ALL_POLICY)
        .await
        .unwrap()
        .is_none());
    assert!(
        !one.state.identity.mfa_policy().await.unwrap().require_mfa,
        "the setting alone is no longer read"
    );

    let two = TestServer::start_with(url.clone()).await;
    let entry = two
        .state
        .identity
        .find_policy(MFA_FOR_ALL_POLICY)
        .await
        .unwrap()
        .expect("the start-up made the policy");
    assert_eq!(entry.policy.state, PolicyState::On);
    assert_eq!(entry.version, 1);
    assert_eq!(
        entry.policy.grant,
        Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false
        }
    );
    assert!(entry.policy.assignments.all_users);
    assert!(entry.policy.targets.all_applications && entry.policy.targets.account_portal);
    let setting: serde_json::Value = serde_json::from_str(
        &two.store
            .get_setting(MFA_POLICY_SETTING)
            .await
            .unwrap()
            .expect("the setting stays, cleared"),
    )
    .unwrap();
    assert_eq!(setting["require_mfa"], false);
    assert!(two.state.identity.mfa_policy().await.unwrap().require_mfa);
    // Another start-up finds nothing left to move.
    let three = TestServer::start_with(url).await;
    let entry = three
        .state
        .identity
        .find_policy(MFA_FOR_ALL_POLICY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((entry.policy.state, entry.version), (PolicyState::On, 1));

    // Turning the rule off keeps the policy, off.
    two.state
        .identity
        .set_mfa_policy(MfaPolicy { require_mfa: false }, two.state.now())
        .await
        .unwrap();
    assert!(!two.state.identity.mfa_policy().await.unwrap().require_mfa);
    let listed = two.state.identity.list_policies().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].policy.id, MFA_FOR_ALL_POLICY);
    assert_eq!(listed[0].policy.state, PolicyState::Off);
    assert_eq!(listed[0].policy.state.as_str(), "off");
    assert_eq!(listed[0].version, 2);
    two.state
        .identity
        .set_mfa_policy(MfaPolicy { require_mfa: true }, two.state.now())
        .await
        .unwrap();
    let listed = two.state.identity.list_policies().await.unwrap();
    assert_eq!(
        (listed.len(), listed[0].policy.state, listed[0].version),
        (1, PolicyState::On, 3)
    );
}

/// The account's browser after it adds an authenticator app through the pages, and the app's
/// secret.
async fn with_authenticator(
    server: &TestServer,
    name: &str,
    email: &str,
) -> (Browser, gatehouse_core::totp::TotpSecret) {
    let mut b = server.signed_up(name, email, PASSWORD).await;
    let r = b.post("/account/security/authenticator", &[]).await;
    let location = r.location().expect("the enrollment page").to_string();
    let page = b.get(&location).await;
    let start = page.body.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let end = start + page.body[start..].find('<').unwrap();
    let secret = gatehouse_core::totp::TotpSecret::from_bytes(
        gatehouse_core::totp::base32_decode(&page.body[start..end].replace(' ', "")).unwrap(),
    );
    let r = b
        .post(
            &format!("{location}/confirm"),
            &[("code", &totp_code(server, &secret))],
        )
        .await;
    assert_eq!(r.location(), Some("/account/security?notice=added"));
    (b, secret)
}

fn totp_code(server: &TestServer, secret: &gatehouse_core::totp::TotpSecret) -> String {
    let step = gatehouse_core::totp::step_at(server.state.now() / 1000);
    gatehouse_core::totp::code_for_step(secret, step)
}

#[tokio::test]
async fn an_account_confirmed_compromised_changes_its_password_after_mfa_and_is_remediated() {
    let server = TestServer::start().await;
    let mut admin = server.admin_browser("Ada Admin", "ada@example.com").await;
    let email = "risky@example.com";
    let (mut own, secret) = with_authenticator(&server, "Risky", email).await;
    let user = server.user(email).await;
    let identity = &server.state.identity;

    // A password change needs MFA beside it and a user-risk condition.
    let mut p = policy(
        "risky-users",
        Grant::Require {
            controls: vec![Control::Mfa, Control::PasswordChange],
            require_all: true,
        },
    );
    let refused = identity
        .save_policy(&p, None, server.state.now())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("user risk"), "{refused}");
    p.conditions.user_risk = vec![RiskLevel::High];
    save(&server, &p).await;
    assert_eq!(identity.user_risk(&user.id).await.unwrap(), RiskLevel::None);
    assert_eq!(
        own.get("/account").await.status,
        StatusCode::OK,
        "not at risk: nothing asked"
    );
    // Not at risk, the page changes nothing: the usual change needs the current password.
    let r = own
        .post(
            "/account/password/required",
            &[("password", "copper-meadow-signal-77")],
        )
        .await;
    assert_eq!(r.location(), Some("/account"));
    assert_eq!(
        server
            .browser()
            .sign_in_with_password(email, PASSWORD)
            .await
            .location(),
        Some("/sign-in/verify"),
        "the password is unchanged"
    );

    // The admin confirms the account compromised: high user risk, its session ends.
    let r = admin
        .post(
            &format!("/admin/users/{}/confirm-compromised", user.id),
            &[],
        )
        .await;
    assert_eq!(
        r.location()
            .map(|l| l.ends_with("notice=confirm-compromised")),
        Some(true),
        "{:?}",
        r.location()
    );
    assert_eq!(identity.user_risk(&user.id).await.unwrap(), RiskLevel::High);
    assert_eq!(own.get("/account").await.location(), Some("/sign-in"));
    let page = admin.get(&format!("/admin/users/{}", user.id)).await;
    assert!(page.body.contains("User risk: high"), "{}", page.body);
    assert!(page.body.contains("Admin confirmed user compromised"));

    // Signing in asks the second factor, then a new password before anything else.
    server.clock.advance_ms(30_000);
    let mut b = server.browser();
    let r = b
        .sign_in_with_second_factor(email, PASSWORD, &totp_code(&server, &secret))
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(
        b.get("/account").await.location(),
        Some("/account/password/required")
    );
    let page = b.get("/account/password/required").await;
    assert!(page.body.contains("Choose a new password to continue"));
    let weak = b
        .post("/account/password/required", &[("password", "short")])
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert_eq!(identity.user_risk(&user.id).await.unwrap(), RiskLevel::High);
    let new_password = "copper-meadow-signal-77";
    let r = b
        .post("/account/password/required", &[("password", new_password)])
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);

    // Remediated: the risk is gone, with its history, and the old password no longer works.
    assert_eq!(identity.user_risk(&user.id).await.unwrap(), RiskLevel::None);
    let detections = identity.risk_detections(&user).await.unwrap();
    assert_eq!(detections.len(), 1);
    assert_eq!(detections[0].state, "remediated");
    let history = identity.risk_history(&user).await.unwrap();
    let states: Vec<&str> = history.iter().map(|h| h.state.as_str()).collect();
    assert_eq!(states, vec!["remediated", "confirmed-compromised"]);
    assert_eq!(
        history[1].changed_by.as_deref(),
        Some(server.user("ada@example.com").await.id.as_str())
    );
    let mut old = server.browser();
    assert_ne!(
        old.sign_in_with_password(email, PASSWORD).await.location(),
        Some("/sign-in/verify"),
        "the old password is refused"
    );
    server.clock.advance_ms(30_000);
    let mut again = server.browser();
    let r = again
        .sign_in_with_second_factor(email, new_password, &totp_code(&server, &secret))
        .await;
    assert_eq!(r.location(), Some("/account"));
    assert_eq!(
        again.get("/account").await.status,
        StatusCode::OK,
        "nothing more is asked"
    );

    // An account at risk without a second factor cannot add one to remediate: blocked.
    let bare = "bare@example.com";
    server.signed_up("Bare", bare, PASSWORD).await;
    let bare_user = server.user(bare).await;
    admin
        .post(
            &format!("/admin/users/{}/confirm-compromised", bare_user.id),
            &[],
        )
        .await;
    let mut b = server.browser();
    let r = b.sign_in_with_password(bare, PASSWORD).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let row = newest(&server, bare).await;
    assert_eq!(row.failure_reason.as_deref(), Some("blocked_by_policy"));
    // Confirmed safe by the admin, it signs in again (and is sent to add a factor).
    admin
        .post(&format!("/admin/users/{}/confirm-safe", bare_user.id), &[])
        .await;
    assert_eq!(
        identity.user_risk(&bare_user.id).await.unwrap(),
        RiskLevel::None
    );
    let r = server.browser().sign_in_with_password(bare, PASSWORD).await;
    assert_eq!(r.location(), Some("/account"));
}

#[tokio::test]
async fn a_sign_in_from_a_listed_address_is_risky_and_the_mfa_a_policy_asks_remediates_it() {
    use gatehouse_core::risk::ListKind;
    let server = TestServer::start().await;
    let identity = &server.state.identity;
    let now = server.state.now();
    let email = "traveller@example.com";
    let (_own, secret) = with_authenticator(&server, "Traveller", email).await;
    let user = server.user(email).await;
    let tor = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-12-01 09:00:00\n\
               ExitAddress 198.51.100.7 2026-12-01 10:00:00\n";
    assert_eq!(
        identity
            .import_risk_list(ListKind::Tor, tor, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        identity
            .import_risk_list(ListKind::Vpn, "# hosting\n100.64.0.0/10\n", now)
            .await
            .unwrap(),
        1
    );
    let refused = identity
        .import_risk_list(ListKind::Bad, "192.0.2.1\nnonsense\n", now)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("line 2"), "{refused}");
    let mut p = policy("risky-sign-ins", require_mfa());
    p.conditions.sign_in_risk = vec![RiskLevel::Medium, RiskLevel::High];
    save(&server, &p).await;

    // From a Tor exit, behind the trusted proxy: high sign-in risk, the policy applies, the
    // detection is stored, and the second factor remediates it.
    server.clock.advance_ms(30_000);
    let mut b = Browser::new(&server.base, "198.51.100.7");
    let r = b
        .sign_in_with_second_factor(email, PASSWORD, &totp_code(&server, &secret))
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let rows = server.store.sign_ins_for_email(email, 2).await.unwrap();
    let first = rows.iter().find(|r| r.result == "interrupted").unwrap();
    let applied = results(first);
    assert!(applied[0].applied, "{applied:?}");
    let detections = identity.risk_detections(&user).await.unwrap();
    assert_eq!(detections.len(), 1);
    assert_eq!(
        (detections[0].kind.as_str(), detections[0].level.as_str()),
        ("anonymous-ip", "high")
    );
    assert!(detections[0].summary.contains("Tor exit node"));
    assert_eq!(
        detections[0].state, "remediated",
        "the MFA the policy asked remediates it"
    );
    assert_eq!(identity.user_risk(&user.id).await.unwrap(), RiskLevel::None);

    // From an ordinary address the policy does not apply and nothing is detected.
    server.clock.advance_ms(30_000);
    let mut home = Browser::new(&server.base, "192.0.2.10");
    home.sign_in_with_second_factor(email, PASSWORD, &totp_code(&server, &secret))
        .await;
    let row = server
        .store
        .sign_ins_for_email(email, 2)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.result == "interrupted")
        .unwrap();
    let r = results(&row);
    assert!(!r[0].applied);
    assert!(
        r[0].reason.contains("sign-in risk is none"),
        "{}",
        r[0].reason
    );
    assert_eq!(identity.risk_detections(&user).await.unwrap().len(), 1);

    // An account without a second factor from a VPN range: medium risk, which never adds a
    // factor: blocked, and the detection stays open, raising the user risk.
    let bare = "bare@example.com";
    server.signed_up("Bare", bare, PASSWORD).await;
    let bare_user = server.user(bare).await;
    let mut vpn = Browser::new(&server.base, "100.64.1.9");
    let r = vpn.sign_in_with_password(bare, PASSWORD).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        newest(&server, bare).await.failure_reason.as_deref(),
        Some("blocked_by_policy")
    );
    assert_eq!(
        identity.user_risk(&bare_user.id).await.unwrap(),
        RiskLevel::Medium
    );
}
