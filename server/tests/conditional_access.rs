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
    Policy, PolicyResult, PolicyState, Targets,
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
