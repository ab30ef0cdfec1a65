//! HTTP integration tests: the real router on an ephemeral port, driven over HTTP with a cookie
//! jar, on SQLite (and PostgreSQL for the backend-parity test when configured). The clock is a
//! manual one the tests move; codes are read from the development outbox.

// Test helpers fail loudly: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_server::config::Config;
use gatehouse_server::http;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;

// ------------------------------------------------------------------ flows

async fn sign_up_sign_out_sign_in(server: &TestServer) {
    let mut b = server.browser();
    let page = b.get("/sign-up").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("<label for=\"password\">Password</label>"));
    let r = b
        .post(
            "/sign-up",
            &[
                ("name", "Ada Lovelace"),
                ("email", " Ada@Example.com "),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.location(), Some("/code"));
    assert!(
        server
            .store
            .find_user_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none(),
        "no account before the email is proven"
    );
    let code_page = b.get("/code").await;
    assert!(
        code_page.body.contains("ada@example.com"),
        "{}",
        code_page.body
    );
    let code = server.last_code("ada@example.com").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = b.post("/code", &[("code", wrong)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Attempts left: 4"), "{}", r.body);
    let r = b.post("/code", &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account"));
    let account = b.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("ada@example.com") && account.body.contains("Ada Lovelace"));
    let old_cookie = b.session_cookie().unwrap();

    let r = b.post("/sign-out", &[]).await;
    assert_eq!(r.location(), Some("/sign-in"));
    assert_eq!(b.get("/account").await.location(), Some("/sign-in"));
    let mut replay = server.browser();
    replay
        .cookies
        .insert("__Host-gh_session".into(), old_cookie.clone());
    assert_eq!(
        replay.get("/account").await.location(),
        Some("/sign-in"),
        "a signed-out cookie is dead"
    );

    let r = b.sign_in_with_password("ADA@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let new_cookie = b.session_cookie().unwrap();
    assert_ne!(new_cookie, old_cookie, "a new session id at every sign-in");
    let log = server
        .store
        .sign_ins_for_email("ada@example.com", 10)
        .await
        .unwrap();
    let methods: Vec<_> = log
        .iter()
        .map(|e| (e.method.as_str(), e.result.as_str()))
        .collect();
    assert_eq!(
        methods,
        vec![
            ("password", "success"),
            ("sign_up_password", "success"),
            ("sign_up_password", "failure")
        ]
    );
    assert!(log
        .iter()
        .all(|e| e.client_ip == "203.0.113.10" && e.application == "account"));
}

#[tokio::test]
async fn sign_up_verify_sign_out_and_sign_in_again_on_sqlite() {
    sign_up_sign_out_sign_in(&TestServer::start().await).await;
}

#[tokio::test]
async fn sign_up_verify_sign_out_and_sign_in_again_on_postgres() {
    let Some(base) = postgres_url() else {
        eprintln!("PostgreSQL HTTP test skipped: GATEHOUSE_TEST_POSTGRES_URL is not set");
        return;
    };
    let url = fresh_postgres_url(&base).await.unwrap();
    sign_up_sign_out_sign_in(&TestServer::start_with(url).await).await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_identical() {
    let server = TestServer::start().await;
    server
        .signed_up("Known", "known@example.com", PASSWORD)
        .await;
    let mut a = server.browser();
    let mut b = server.browser();
    let unknown = a
        .post(
            "/sign-in",
            &[
                ("email", "nobody@example.com"),
                ("password", "wrong-password-1"),
            ],
        )
        .await;
    let wrong = b
        .post(
            "/sign-in",
            &[
                ("email", "known@example.com"),
                ("password", "wrong-password-1"),
            ],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    assert!(unknown.body.contains("The email or password is incorrect."));
    assert_eq!(
        unknown
            .body_without_nonces()
            .replace("nobody@example.com", "X"),
        wrong
            .body_without_nonces()
            .replace("known@example.com", "X")
    );
    let names = |r: &Reply| {
        let mut v: Vec<String> = r
            .headers
            .keys()
            .map(|k| k.to_string())
            .filter(|k| k != "date" && k != "content-length")
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&unknown), names(&wrong));
}

#[tokio::test]
async fn sign_up_with_an_existing_email_looks_like_a_new_one() {
    let server = TestServer::start().await;
    server
        .signed_up("First", "taken@example.com", PASSWORD)
        .await;
    let mut a = server.browser();
    let mut b = server.browser();
    let existing = a
        .post(
            "/sign-up",
            &[
                ("name", "X"),
                ("email", "taken@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let fresh = b
        .post(
            "/sign-up",
            &[
                ("name", "X"),
                ("email", "fresh@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(existing.status, fresh.status);
    assert_eq!(existing.location(), fresh.location());
    let messages = server
        .store
        .messages_for("taken@example.com")
        .await
        .unwrap();
    assert!(
        messages[0].subject.contains("already have"),
        "the owner is told, without a code"
    );
    assert_eq!(server.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn codes_are_single_use_and_expire() {
    let server = TestServer::start().await;
    let mut b = server
        .signed_up("Replay", "replay@example.com", PASSWORD)
        .await;
    // The sign-up code cannot be used again.
    let code = server.last_code("replay@example.com").await;
    let mut other = server.browser();
    other.cookies = b.cookies.clone();
    other.cookies.remove("__Host-gh_session");
    let r = b.post("/code", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // An email sign-in code expires after 10 minutes.
    let mut c = server.browser();
    assert_eq!(
        c.post("/sign-in/code", &[("email", "replay@example.com")])
            .await
            .location(),
        Some("/code")
    );
    let code = server.last_code("replay@example.com").await;
    server.clock.advance_ms(10 * 60 * 1000 + 1);
    let r = c.post("/code", &[("code", &code)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("expired"), "{}", r.body);
    assert!(c.session_cookie().is_none());
}

#[tokio::test]
async fn fifty_concurrent_submissions_of_one_code_give_exactly_one_session() {
    let server = TestServer::start().await;
    server
        .signed_up("Racer", "racer@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    b.post("/sign-in/code", &[("email", "racer@example.com")])
        .await;
    let code = server.last_code("racer@example.com").await;
    let cookie = b.cookie_header();
    let sessions_before = server
        .store
        .list_sessions(
            &server
                .store
                .find_user_by_email("racer@example.com")
                .await
                .unwrap()
                .unwrap()
                .id,
            server.state.now(),
        )
        .await
        .unwrap()
        .len();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = b.client.clone();
            let url = format!("{}/code", server.base);
            let origin = server.base.clone();
            let cookie = cookie.clone();
            let code = code.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("origin", origin)
                    .header("cookie", cookie)
                    .form(&[("code", code)])
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut signed_in = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.headers()
            .get(LOCATION)
            .map(|l| l == "/account")
            .unwrap_or(false)
        {
            signed_in += 1;
        }
    }
    assert_eq!(signed_in, 1);
    let user = server
        .store
        .find_user_by_email("racer@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server
            .store
            .list_sessions(&user.id, server.state.now())
            .await
            .unwrap()
            .len(),
        sessions_before + 1
    );
}

#[tokio::test]
async fn cross_origin_posts_to_every_state_changing_route_are_refused() {
    let server = TestServer::start().await;
    let victim = server
        .signed_up("Victim", "victim@example.com", PASSWORD)
        .await;
    let before = server.counts().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for route in http::state_changing_routes() {
        let path = route.replace("{id}", "some-session");
        for (name, value) in [
            ("origin", "http://evil.test"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "null"),
            ("x-none", ""),
        ] {
            let mut req = client
                .post(format!("{}{}", server.base, path))
                .header("cookie", victim.cookie_header())
                .form(&[
                    ("email", "victim@example.com"),
                    ("password", PASSWORD),
                    ("name", "Mallory"),
                    ("code", "123456"),
                ]);
            if name != "x-none" {
                req = req.header(name, value);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::FORBIDDEN,
                "{path} with {name}: {value}"
            );
        }
    }
    assert_eq!(
        server.counts().await,
        before,
        "refused requests changed nothing"
    );
    let mut v = victim;
    assert_eq!(
        v.get("/account").await.status,
        StatusCode::OK,
        "the victim is still signed in"
    );
}

#[tokio::test]
async fn malformed_and_oversized_inputs_get_4xx_and_change_nothing() {
    let server = TestServer::start().await;
    let before = server.counts().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |path: &str, ctype: &str, body: Vec<u8>| {
        client
            .post(format!("{}{}", server.base, path))
            .header("origin", server.base.clone())
            .header("content-type", ctype.to_string())
            .body(body)
    };
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "/sign-up",
            form,
            format!(
                "name=a&email=b%40example.com&password={}",
                "x".repeat(20_000)
            )
            .into_bytes(),
        ),
        ("/sign-up", form, vec![0xff, 0xfe, 0x00, 0x80]),
        (
            "/sign-up",
            "application/json",
            b"{\"email\":\"a@example.com\"}".to_vec(),
        ),
        (
            "/sign-up",
            form,
            b"name=a&email=a%00b%40example.com&password=long-enough-pass".to_vec(),
        ),
        (
            "/sign-up",
            form,
            format!(
                "name={}&email=c%40example.com&password=long-enough-pass",
                "n".repeat(10_000)
            )
            .into_bytes(),
        ),
        (
            "/sign-up",
            form,
            b"name=a&email=not-an-email&password=long-enough-pass".to_vec(),
        ),
        ("/sign-up", form, b"name=&email=&password=".to_vec()),
        (
            "/sign-up",
            form,
            b"name=a&name=b&email=d%40example.com&password=long-enough-pass".to_vec(),
        ),
        ("/sign-in/code", form, b"email=%3Cscript%3E".to_vec()),
        ("/code", form, b"code=12345678901234567890".to_vec()),
        ("/reset", form, Vec::new()),
    ];
    for (path, ctype, body) in cases {
        let r = post(path, ctype, body.clone()).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(
            status.is_client_error(),
            "{path} {ctype} {:?} -> {status}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        assert!(
            !text.to_lowercase().contains("sqlite") && !text.contains("panicked"),
            "{text}"
        );
    }
    let after = server.counts().await;
    let ignore_logs = |v: Vec<(String, i64)>| {
        v.into_iter()
            .filter(|(t, _)| t != "sign_in_log" && t != "auth_throttle")
            .collect::<Vec<_>>()
    };
    assert_eq!(ignore_logs(after), ignore_logs(before));
}

#[tokio::test]
async fn failures_are_throttled_from_the_fifth_and_success_resets_the_count() {
    let server = TestServer::start().await;
    server
        .signed_up("Guess", "guess@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    for _ in 0..4 {
        let r = b
            .post(
                "/sign-in",
                &[
                    ("email", "guess@example.com"),
                    ("password", "nope-nope-nope"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let fifth = b
        .post(
            "/sign-in",
            &[
                ("email", "guess@example.com"),
                ("password", "nope-nope-nope"),
            ],
        )
        .await;
    assert_eq!(fifth.status, StatusCode::UNAUTHORIZED);
    let sixth = b.sign_in_with_password("guess@example.com", PASSWORD).await;
    assert_eq!(
        sixth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits after five failures"
    );
    assert!(sixth.headers.get("retry-after").is_some());
    server.clock.advance_ms(1_001);
    let ok = b.sign_in_with_password("guess@example.com", PASSWORD).await;
    assert_eq!(ok.location(), Some("/account"));
    let state = server
        .store
        .throttle_state("password", "guess@example.com")
        .await
        .unwrap();
    assert_eq!(state.failures, 0, "success resets the counter");
    let log = server
        .store
        .sign_ins_for_email("guess@example.com", 3)
        .await
        .unwrap();
    assert_eq!(log[1].failure_reason.as_deref(), Some("throttled"));
}

#[tokio::test]
async fn one_hundred_failures_close_password_sign_in_until_an_email_code() {
    let server = TestServer::start().await;
    server
        .signed_up("Target", "target@example.com", PASSWORD)
        .await;
    for i in 0..100 {
        let mut b = Browser::new(&server.base, &format!("198.51.100.{}", i % 200));
        let r = b
            .post(
                "/sign-in",
                &[
                    ("email", "target@example.com"),
                    ("password", "wrong-wrong-wrong"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        server.clock.advance_ms(16 * 60 * 1000);
    }
    let mut b = server.browser();
    let r = b
        .sign_in_with_password("target@example.com", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("email code"), "{}", r.body);
    assert_eq!(
        server
            .store
            .throttle_state("password", "target@example.com")
            .await
            .unwrap()
            .failures,
        100
    );
    // The email code is the other way in, and it reopens the password path.
    b.post("/sign-in/code", &[("email", "target@example.com")])
        .await;
    let code = server.last_code("target@example.com").await;
    assert_eq!(
        b.post("/code", &[("code", &code)]).await.location(),
        Some("/account")
    );
    let mut again = server.browser();
    assert_eq!(
        again
            .sign_in_with_password("target@example.com", PASSWORD)
            .await
            .location(),
        Some("/account")
    );
}

#[tokio::test]
async fn password_reset_ends_every_other_session() {
    let server = TestServer::start().await;
    let mut first = server
        .signed_up("Reset", "reset@example.com", PASSWORD)
        .await;
    let mut second = server.browser();
    assert_eq!(
        second
            .sign_in_with_password("reset@example.com", PASSWORD)
            .await
            .location(),
        Some("/account")
    );
    let mut resetter = server.browser();
    assert_eq!(
        resetter
            .post("/reset", &[("email", "reset@example.com")])
            .await
            .location(),
        Some("/code")
    );
    let code = server.last_code("reset@example.com").await;
    assert_eq!(
        resetter.post("/code", &[("code", &code)]).await.location(),
        Some("/reset/new-password")
    );
    let weak = resetter
        .post("/reset/new-password", &[("password", "password")])
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body.contains("too common"));
    let r = resetter
        .post(
            "/reset/new-password",
            &[("password", "a-brand-new-passphrase")],
        )
        .await;
    assert_eq!(r.location(), Some("/account"));
    assert_eq!(first.get("/account").await.location(), Some("/sign-in"));
    assert_eq!(second.get("/account").await.location(), Some("/sign-in"));
    let mut b = server.browser();
    assert_eq!(
        b.sign_in_with_password("reset@example.com", PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.post(
            "/sign-in",
            &[
                ("email", "reset@example.com"),
                ("password", "a-brand-new-passphrase")
            ]
        )
        .await
        .location(),
        Some("/account")
    );
    // The grant was single use.
    assert_eq!(
        resetter
            .post(
                "/reset/new-password",
                &[("password", "another-new-passphrase")]
            )
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn reset_for_an_unknown_email_looks_the_same() {
    let server = TestServer::start().await;
    server
        .signed_up("Known", "exists@example.com", PASSWORD)
        .await;
    let mut a = server.browser();
    let mut b = server.browser();
    let known = a.post("/reset", &[("email", "exists@example.com")]).await;
    let unknown = b.post("/reset", &[("email", "ghost@example.com")]).await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.location(), unknown.location());
    let ka = a.get("/code").await;
    let ub = b.get("/code").await;
    assert_eq!(
        ka.body_without_nonces().replace("exists@example.com", "X"),
        ub.body_without_nonces().replace("ghost@example.com", "X")
    );
    assert!(server
        .store
        .messages_for("ghost@example.com")
        .await
        .unwrap()[0]
        .subject
        .starts_with("No "));
}

#[tokio::test]
async fn passwordless_sign_up_and_sign_in_with_email_codes() {
    let server = TestServer::start().await;
    let mut b = server.browser();
    assert_eq!(
        b.post(
            "/sign-up/code",
            &[("name", "Grace"), ("email", "grace@example.com")]
        )
        .await
        .location(),
        Some("/code")
    );
    let code = server.last_code("grace@example.com").await;
    assert_eq!(
        b.post("/code", &[("code", &code)]).await.location(),
        Some("/account")
    );
    let account = b.get("/account").await;
    assert!(account.body.contains("has no password yet"));
    b.post("/sign-out", &[]).await;
    assert_eq!(
        b.post("/sign-in/code", &[("email", "grace@example.com")])
            .await
            .location(),
        Some("/code")
    );
    // Resend: at most one a minute, and the old code stops working.
    let first = server.last_code("grace@example.com").await;
    assert_eq!(
        b.post("/code/resend", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    server.clock.advance_ms(61_000);
    assert_eq!(
        b.post("/code/resend", &[]).await.location(),
        Some("/code?notice=resent")
    );
    let second = server.last_code("grace@example.com").await;
    if first != second {
        assert_eq!(
            b.post("/code", &[("code", &first)]).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        b.post("/code", &[("code", &second)]).await.location(),
        Some("/account")
    );
    let log = server
        .store
        .sign_ins_for_email("grace@example.com", 1)
        .await
        .unwrap();
    assert_eq!(
        (log[0].method.as_str(), log[0].result.as_str()),
        ("email_code", "success")
    );
    assert_eq!(server.message_count("grace@example.com").await, 3);
}

#[tokio::test]
async fn account_page_lists_sessions_and_signs_out_one_or_all() {
    let server = TestServer::start().await;
    let mut a = server
        .signed_up("Multi", "multi@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    b.sign_in_with_password("multi@example.com", PASSWORD).await;
    let user = server
        .store
        .find_user_by_email("multi@example.com")
        .await
        .unwrap()
        .unwrap();
    let sessions = server
        .store
        .list_sessions(&user.id, server.state.now())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let page = a.get("/account").await;
    assert!(page.body.contains("Chrome on Linux") && page.body.contains("This device"));
    let b_session = sessions
        .iter()
        .find(|s| s.created_at == sessions.iter().map(|s| s.created_at).max().unwrap())
        .unwrap();
    // Another user cannot end this session.
    let mut stranger = server
        .signed_up("Stranger", "stranger@example.com", PASSWORD)
        .await;
    stranger
        .post(&format!("/account/sessions/{}/sign-out", b_session.id), &[])
        .await;
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    let r = a
        .post(&format!("/account/sessions/{}/sign-out", b_session.id), &[])
        .await;
    assert_eq!(r.location(), Some("/account?notice=session_revoked"));
    assert_eq!(b.get("/account").await.location(), Some("/sign-in"));
    assert_eq!(
        a.post("/account/sessions/sign-out-all", &[])
            .await
            .location(),
        Some("/sign-in")
    );
    assert_eq!(a.get("/account").await.location(), Some("/sign-in"));
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let server = TestServer::start().await;
    let mut a = server
        .signed_up("Change", "change@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    b.sign_in_with_password("change@example.com", PASSWORD)
        .await;
    let wrong = a
        .post(
            "/account/password",
            &[
                ("current_password", "not-my-password"),
                ("new_password", "fresh-river-stone-9"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("current password is incorrect"));
    assert_eq!(
        server
            .store
            .throttle_state("password", "change@example.com")
            .await
            .unwrap()
            .failures,
        1,
        "counted toward throttling"
    );
    let ok = a
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "fresh-river-stone-9"),
            ],
        )
        .await;
    assert_eq!(ok.location(), Some("/account?notice=password_changed"));
    assert_eq!(
        a.get("/account").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        b.get("/account").await.location(),
        Some("/sign-in"),
        "the other session ended"
    );
    assert!(a
        .post("/account/profile", &[("name", "  New Name ")])
        .await
        .location()
        .unwrap()
        .contains("profile_saved"));
    assert!(a.get("/account").await.body.contains("New Name"));
    assert_eq!(
        a.post("/account/profile", &[("name", "")]).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn pages_carry_security_headers_and_cookies_are_locked_down() {
    let server = TestServer::start().await;
    let mut b = server.browser();
    let page = b.get("/sign-in").await;
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self' 'nonce-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(
        page.body.contains(&format!("nonce=\"{nonce}\"")),
        "the inline style carries the nonce"
    );
    assert_eq!(
        page.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(page.headers.get("referrer-policy").unwrap(), "no-referrer");
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    let second = b.get("/sign-in").await;
    assert_ne!(
        second.headers.get("content-security-policy"),
        page.headers.get("content-security-policy"),
        "a new nonce per response"
    );
    let r = b
        .post(
            "/sign-up",
            &[
                ("name", "C"),
                ("email", "cookie@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let flow = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-gh_flow="))
        .unwrap();
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(flow.contains(attr), "{flow}");
    }
    let code = server.last_code("cookie@example.com").await;
    let r = b.post("/code", &[("code", &code)]).await;
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-gh_session="))
        .unwrap();
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Domain"));
    let token = session
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap();
    assert!(token.len() >= 22);
    let json = b
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json.headers().get("content-security-policy").unwrap(),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(b.get("/no/such/page").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn branding_from_the_database_reaches_the_first_paint() {
    let server = TestServer::start().await;
    let branding = gatehouse_app::branding::Branding {
        product_name: "Acme ID".into(),
        primary_color: "#aa0000".into(),
        texts: [
            ("sign_in.title".to_string(), "Welcome to Acme".to_string()),
            (
                "email.sign_in_code.subject".to_string(),
                "{code} opens your {product}".to_string(),
            ),
        ]
        .into(),
        ..Default::default()
    };
    let json = serde_json::to_string(&branding).unwrap();
    server
        .store
        .put_setting(gatehouse_server::BRANDING_SETTING, &json, 0)
        .await
        .unwrap();
    let mut b = server.browser();
    let page = b.get("/sign-in").await;
    assert!(page.body.contains("--gh-primary:#aa0000"));
    assert!(page.body.contains("Welcome to Acme"));
    assert!(page.body.contains("Acme ID"));
    let r = b
        .post(
            "/sign-up",
            &[
                ("name", "N"),
                ("email", "n@example.com"),
                ("password", "acme id rules forever"),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "the branded product name is a context word"
    );
}

#[tokio::test]
async fn sign_up_is_rate_limited_per_ip() {
    let server = TestServer::start().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let mut b = server.browser();
        let email = format!("bulk{i}@example.com");
        statuses.push(
            b.post("/sign-up/code", &[("name", "Bulk"), ("email", &email)])
                .await
                .status,
        );
    }
    assert!(
        statuses[..10].iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_wrong_passwords_are_all_counted() {
    let server = TestServer::start().await;
    server
        .signed_up("Burst", "burst@example.com", PASSWORD)
        .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
            let base = server.base.clone();
            tokio::spawn(async move {
                client
                    .post(format!("{base}/sign-in"))
                    .header("origin", base.clone())
                    .header(
                        "x-forwarded-for",
                        format!("198.18.{}.{}", i / 200, i % 200 + 1),
                    )
                    .form(&[
                        ("email", "burst@example.com"),
                        ("password", "wrong-guess-000"),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut evaluated = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
        if status == StatusCode::UNAUTHORIZED {
            evaluated += 1;
        }
    }
    let counter = server
        .store
        .throttle_state("password", "burst@example.com")
        .await
        .unwrap()
        .failures;
    assert_eq!(
        counter, evaluated,
        "every evaluated password was counted, and no more were evaluated"
    );
    assert!(
        evaluated <= 6,
        "throttling engaged from the fifth failure; {evaluated} evaluated"
    );
}

#[tokio::test]
async fn sessions_end_after_idle_time_and_absolute_lifetime() {
    let server = TestServer::start().await;
    let mut b = server.signed_up("Idle", "idle@example.com", PASSWORD).await;
    server.clock.advance_ms(59 * 60 * 1000);
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "activity within the idle window"
    );
    server.clock.advance_ms(61 * 60 * 1000);
    assert_eq!(
        b.get("/account").await.location(),
        Some("/sign-in"),
        "idle for more than an hour"
    );

    let mut c = server.browser();
    c.sign_in_with_password("idle@example.com", PASSWORD).await;
    for hour in 0..24 {
        server.clock.advance_ms(59 * 60 * 1000);
        assert_eq!(
            c.get("/account").await.status,
            StatusCode::OK,
            "active session, {hour}h59m"
        );
    }
    server.clock.advance_ms(59 * 60 * 1000);
    assert_eq!(
        c.get("/account").await.location(),
        Some("/sign-in"),
        "never longer than 24 hours"
    );
}

#[tokio::test]
async fn a_cookie_set_before_sign_in_is_never_the_session() {
    let server = TestServer::start().await;
    server
        .signed_up("Fixed", "fixed@example.com", PASSWORD)
        .await;
    let mut b = server.browser();
    let planted = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    b.cookies
        .insert("__Host-gh_session".into(), planted.clone());
    assert_eq!(
        b.get("/account").await.location(),
        Some("/sign-in"),
        "a forged cookie is nobody"
    );
    b.sign_in_with_password("fixed@example.com", PASSWORD).await;
    let session = b.session_cookie().unwrap();
    assert_ne!(session, planted);
    let mut attacker = server.browser();
    attacker.cookies.insert("__Host-gh_session".into(), planted);
    assert_eq!(attacker.get("/account").await.location(), Some("/sign-in"));
}

#[tokio::test]
async fn get_requests_change_nothing() {
    let server = TestServer::start().await;
    let mut b = server
        .signed_up("Reader", "reader@example.com", PASSWORD)
        .await;
    let before = server.counts().await;
    // Every route of the router, with GET and HEAD, plus static and unknown paths.
    let mut paths: Vec<String> = http::route_list()
        .into_iter()
        .map(|(p, _, _)| p.replace("{id}", "x"))
        .collect();
    paths.extend([
        "/logo.svg".to_string(),
        "/nope".to_string(),
        "/pkg/gatehouse.css".to_string(),
    ]);
    for path in &paths {
        let head = b
            .client
            .head(format!("{}{}", server.base, path))
            .send()
            .await
            .unwrap();
        assert!(
            head.status().as_u16() < 500,
            "HEAD {path}: {}",
            head.status()
        );
        let r = b.get(path).await;
        assert!(r.status.as_u16() < 500, "{path}: {}", r.status);
        for j in 0..20 {
            let q: String = (0..40)
                .map(|i| {
                    ["%00", "&", "=", "notice=", "x", "%ff", "\u{e9}", "<"]
                        [(i * 7 + j * 3 + path.len()) % 8]
                })
                .collect();
            let r = b.get(&format!("{path}?{q}")).await;
            assert!(r.status.as_u16() < 500, "{path}?{q}: {}", r.status);
        }
    }
    // Token signing keys are made on first use (the first read of the key set); that is the
    // only row a GET may add.
    let without_keys = |counts: Vec<(String, i64)>| -> Vec<(String, i64)> {
        counts
            .into_iter()
            .filter(|(t, _)| t != "signing_keys")
            .collect()
    };
    assert_eq!(without_keys(server.counts().await), without_keys(before));
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "GET /sign-out does not sign out"
    );
}

#[tokio::test]
async fn generated_garbage_to_every_route_gets_4xx_never_5xx() {
    use rand::{Rng, SeedableRng};
    let server = TestServer::start().await;
    let signed_in = server.signed_up("Fuzz", "fuzz@example.com", PASSWORD).await;
    let cookie = signed_in.cookie_header();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a7e);
    let fields = [
        "email",
        "password",
        "name",
        "code",
        "current_password",
        "new_password",
        "notice",
    ];
    let ctypes = [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data",
        "",
    ];
    let mut cases = Vec::new();
    for route in http::state_changing_routes() {
        for _ in 0..1000 {
            let path = route
                .replace("{id}", &rng.gen::<u64>().to_string())
                .replace("{provider}", &rng.gen::<u16>().to_string());
            let body: Vec<u8> = match rng.gen_range(0..5) {
                0 => (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
                1 => {
                    let mut s = String::new();
                    for _ in 0..rng.gen_range(0..6) {
                        let f = fields[rng.gen_range(0..fields.len())];
                        let len = rng.gen_range(0..400);
                        let v: String = (0..len)
                            .map(|_| char::from(rng.gen_range(0x20u8..0x7f)))
                            .collect();
                        s.push_str(&format!(
                            "{f}={}&",
                            v.replace('&', "%26").replace('=', "%3D")
                        ));
                    }
                    s.into_bytes()
                }
                2 => b"email=%FF%FE&password=%00%00&name=%C0%AF".to_vec(),
                3 => "[".repeat(rng.gen_range(1..5000)).into_bytes(),
                _ => format!(
                    "email={}&password={}",
                    "%".repeat(rng.gen_range(1..50)),
                    "a".repeat(rng.gen_range(0..10_000))
                )
                .into_bytes(),
            };
            let ctype = ctypes[rng.gen_range(0..ctypes.len())];
            let with_cookie = rng.gen_bool(0.5);
            cases.push((path, body, ctype, with_cookie));
        }
    }
    let results = futures::future::join_all(cases.chunks(cases.len() / 8 + 1).map(|chunk| {
        let client = client.clone();
        let base = server.base.clone();
        let cookie = cookie.clone();
        let chunk = chunk.to_vec();
        async move {
            let mut bad = Vec::new();
            for (path, body, ctype, with_cookie) in chunk {
                let mut req = client
                    .post(format!("{base}{path}"))
                    .header("origin", base.clone())
                    .body(body);
                if !ctype.is_empty() {
                    req = req.header("content-type", ctype);
                }
                if with_cookie {
                    req = req.header("cookie", cookie.clone());
                }
                let r = req.send().await.unwrap();
                let status = r.status();
                // Nonces are random and may spell anything: they are not what is looked for.
                let text = common::without_nonces(&r.text().await.unwrap_or_default());
                if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE
                    || text.contains("panicked")
                    || text.to_lowercase().contains("sqlx")
                {
                    bad.push(format!(
                        "{path} -> {status}: {}",
                        &text[..text.len().min(200)]
                    ));
                }
            }
            bad
        }
    }))
    .await;
    let bad: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        bad.is_empty(),
        "{} bad responses, first: {:?}",
        bad.len(),
        bad.first()
    );
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused_and_slow_headers_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let big = client
        .get(format!("{}/sign-in", server.base))
        .header("x-big", "a".repeat(100_000))
        .send()
        .await;
    if let Ok(r) = big {
        assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let mut many = client.get(format!("{}/sign-in", server.base));
    for i in 0..1000 {
        many = many.header(format!("x-h{i}"), "v");
    }
    if let Ok(r) = many.send().await {
        assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let body = format!(
        "email=a%40example.com&password={}",
        "p".repeat(http::FORM_BODY_LIMIT)
    );
    let r = client
        .post(format!("{}/sign-in", server.base))
        .header("origin", server.base.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A client that never finishes its headers is disconnected by the header read timeout.
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let mut slow = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    slow.write_all(b"GET /sign-in HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(closed.is_ok(), "the server closed the connection");
    // The server still serves everyone else.
    assert_eq!(
        client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_ones() {
    let StoppableServer {
        base,
        store,
        stop: stop_tx,
        handle: server,
    } = stoppable_server(fresh_sqlite_url()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A password check in flight (Argon2id takes a while) when the signal arrives.
    let in_flight = {
        let client = client.clone();
        let base = base.clone();
        tokio::spawn(async move {
            client
                .post(format!("{base}/sign-in"))
                .header("origin", base.clone())
                .form(&[
                    ("email", "someone@example.com"),
                    ("password", "whatever-it-is"),
                ])
                .send()
                .await
        })
    };
    // The server has the request once its attempt is counted (that happens before hashing).
    let mut polls = 0;
    while store
        .throttle_state("password", "someone@example.com")
        .await
        .unwrap()
        .failures
        == 0
    {
        polls += 1;
        assert!(polls < 10_000, "the request never reached the server");
        tokio::task::yield_now().await;
    }
    let _ = stop_tx.send(());
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "an accepted request completes normally"
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn the_secret_key_is_generated_once_into_the_data_folder_and_kept_private() {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-key-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let vars: HashMap<&str, String> =
        HashMap::from([("GATEHOUSE_DATA_DIR", dir.display().to_string())]);
    let config = Config::load(None, &move |k| vars.get(k).cloned()).unwrap();
    assert!(
        !dir.join("secret.key").exists(),
        "nothing before the first start"
    );
    let first = gatehouse_server::load_secret_key(&config).unwrap();
    let second = gatehouse_server::load_secret_key(&config).unwrap();
    assert_eq!(
        first.as_bytes(),
        second.as_bytes(),
        "not regenerated per boot"
    );
    assert_ne!(first.as_bytes(), &[0u8; 32]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secret.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let other_dir =
        std::env::temp_dir().join(format!("gatehouse-key-other-{}", rand::random::<u32>()));
    let vars: HashMap<&str, String> =
        HashMap::from([("GATEHOUSE_DATA_DIR", other_dir.display().to_string())]);
    let other = gatehouse_server::load_secret_key(
        &Config::load(None, &move |k| vars.get(k).cloned()).unwrap(),
    )
    .unwrap();
    assert_ne!(
        first.as_bytes(),
        other.as_bytes(),
        "each installation has its own key"
    );
}

#[tokio::test]
async fn identical_sign_ups_at_once_make_one_flow_one_email_one_account() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            let base = server.base.clone();
            tokio::spawn(async move {
                client
                    .post(format!("{base}/sign-up"))
                    .header("origin", base.clone())
                    .form(&[
                        ("name", "Twice"),
                        ("email", "twice@example.com"),
                        ("password", PASSWORD),
                    ])
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut flows = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers().get(LOCATION).unwrap(), "/code");
        let cookie = r
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        flows.insert(cookie.split(';').next().unwrap().to_string());
    }
    assert_eq!(
        server.message_count("twice@example.com").await,
        1,
        "one verification email"
    );
    assert_eq!(
        flows.len(),
        1,
        "every request joined the flow whose code went out"
    );
    // A retry after a dropped connection joins too.
    let mut retry = server.browser();
    retry
        .post(
            "/sign-up",
            &[
                ("name", "Twice"),
                ("email", "twice@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(server.message_count("twice@example.com").await, 1);
    let code = server.last_code("twice@example.com").await;
    assert_eq!(
        retry.post("/code", &[("code", &code)]).await.location(),
        Some("/account")
    );
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    // A different password is never joined to someone else's pending sign-up.
    let mut other = server.browser();
    other
        .post(
            "/sign-up",
            &[
                ("name", "Twice"),
                ("email", "late@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let mut intruder = server.browser();
    intruder
        .post(
            "/sign-up",
            &[
                ("name", "Twice"),
                ("email", "late@example.com"),
                ("password", "intruder-password-9"),
            ],
        )
        .await;
    assert_ne!(
        intruder.cookies.get("__Host-gh_flow"),
        other.cookies.get("__Host-gh_flow")
    );
    assert_eq!(server.message_count("late@example.com").await, 2);
}

#[tokio::test]
async fn an_account_keeps_at_most_twenty_sessions_and_the_oldest_ends_first() {
    let server = TestServer::start().await;
    let mut first = server.signed_up("Many", "many@example.com", PASSWORD).await;
    let mut others = Vec::new();
    for _ in 0..20 {
        let mut b = server.browser();
        assert_eq!(
            b.sign_in_with_password("many@example.com", PASSWORD)
                .await
                .location(),
            Some("/account")
        );
        others.push(b);
    }
    let user = server
        .store
        .find_user_by_email("many@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server
            .store
            .list_sessions(&user.id, server.state.now())
            .await
            .unwrap()
            .len(),
        20
    );
    assert_eq!(
        first.get("/account").await.location(),
        Some("/sign-in"),
        "the oldest session ended"
    );
    assert_eq!(others[0].get("/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_burst_of_code_requests_cannot_bomb_an_inbox_and_each_ip_has_a_budget() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            let base = server.base.clone();
            tokio::spawn(async move {
                client
                    .post(format!("{base}/sign-in/code"))
                    .header("origin", base.clone())
                    .header(
                        "x-forwarded-for",
                        format!("198.19.{}.{}", i / 100, i % 100 + 1),
                    )
                    .form(&[("email", "inbox@example.com")])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            StatusCode::SEE_OTHER,
            "every request looks the same"
        );
    }
    assert_eq!(
        server.message_count("inbox@example.com").await,
        6,
        "at most 6 messages per address per 15 minutes"
    );

    let mut one_ip = server.browser();
    let mut statuses = Vec::new();
    for i in 0..21 {
        statuses.push(
            one_ip
                .post("/reset", &[("email", &format!("someone{i}@example.com"))])
                .await
                .status,
        );
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
    assert_eq!(statuses[20], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn markup_in_names_and_emails_is_rendered_as_text() {
    let server = TestServer::start().await;
    let name = "<script>alert(1)</script>\"onmouseover=\"x";
    let mut b = server.signed_up(name, "xss@example.com", PASSWORD).await;
    let page = b.get("/account").await;
    assert!(
        !page.body.contains("<script>alert(1)"),
        "raw markup reached the page"
    );
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let r = b
        .post(
            "/sign-in/code",
            &[("email", "\"><img src=x onerror=alert(1)>@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        !r.body.contains("<img src=x"),
        "the typed value is escaped when shown again"
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_and_one_that_never_ends_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let head = format!(
        "POST /sign-in HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.base
    );
    // Over the limit: refused with 413 as soon as the limit is passed.
    let mut big = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    big.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 4096, "a".repeat(4096));
    for _ in 0..5 {
        if big.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut reply = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), big.read(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&reply[..n])
    );

    // Never ends: the request timeout answers 408 (or closes) instead of waiting forever.
    let mut slow = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(b"5\r\nemail\r\n").await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(40),
        slow.read_to_end(&mut reply),
    )
    .await;
    assert!(read.is_ok(), "the server ended the request");
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_under_load_loses_no_accepted_request_and_checkpoints_the_wal() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let db_url = fresh_sqlite_url();
    let db_path = db_url
        .trim_start_matches("sqlite://")
        .trim_end_matches("?mode=rwc")
        .to_string();
    let StoppableServer {
        base,
        store,
        stop: stop_tx,
        handle: server,
    } = stoppable_server(db_url).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..16)
        .map(|_| {
            let (client, base, done, stopping) =
                (client.clone(), base.clone(), done.clone(), stopping.clone());
            tokio::spawn(async move {
                let mut problems = Vec::new();
                for _ in 0..400 {
                    match client
                        .get(format!("{base}/sign-in"))
                        .header("connection", "close")
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let status = r.status();
                            match r.text().await {
                                Ok(body)
                                    if status == StatusCode::OK && body.contains("</html>") =>
                                {
                                    done.fetch_add(1, Ordering::SeqCst);
                                }
                                other => {
                                    problems.push(format!("{status}: {:?}", other.map(|b| b.len())))
                                }
                            }
                        }
                        Err(e) if stopping.load(Ordering::SeqCst) => {
                            let _ = e;
                            break;
                        }
                        Err(e) => problems.push(format!("before shutdown: {e}")),
                    }
                }
                problems
            })
        })
        .collect();
    while done.load(Ordering::SeqCst) < 200 {
        tokio::task::yield_now().await;
    }
    stopping.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(25), server)
        .await
        .expect("exits within 25 s")
        .unwrap()
        .unwrap();
    for task in load {
        let problems = task.await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
    store.close().await;
    let wal = std::fs::metadata(format!("{db_path}-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        wal <= 4096,
        "the WAL was checkpointed on close ({wal} bytes left)"
    );
}

#[tokio::test]
async fn unknown_and_expired_flows_get_the_same_answer() {
    let server = TestServer::start().await;
    let mut expired = server.browser();
    expired
        .post("/sign-in/code", &[("email", "flows@example.com")])
        .await;
    server.clock.advance_ms(11 * 60 * 1000);
    let mut unknown = server.browser();
    unknown
        .cookies
        .insert("__Host-gh_flow".into(), "AAAAAAAAAAAAAAAAAAAAAA".into());
    let mut none = server.browser();
    let answers = [
        expired.post("/code", &[("code", "123456")]).await,
        unknown.post("/code", &[("code", "123456")]).await,
        none.post("/code", &[("code", "123456")]).await,
    ];
    for a in &answers[1..] {
        assert_eq!(a.status, answers[0].status);
        assert_eq!(a.body_without_nonces(), answers[0].body_without_nonces());
    }
    assert_eq!(
        expired.get("/code").await.body_without_nonces(),
        unknown.get("/code").await.body_without_nonces()
    );
}

#[tokio::test]
async fn line_breaks_in_input_never_reach_response_headers() {
    let server = TestServer::start().await;
    let mut b = server.browser();
    let r = b
        .post(
            "/sign-in",
            &[
                ("email", "a@example.com\r\nSet-Cookie: injected=1"),
                ("password", "x\r\nLocation: //evil.test"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(LOCATION).is_none());
    assert!(r.set_cookies().iter().all(|c| !c.contains("injected")));
    let r = b
        .post(
            "/sign-in/code",
            &[("email", "b@example.com\r\nX-Injected: 1")],
        )
        .await;
    assert!(r.headers.get("x-injected").is_none());
}

/// The setup key shown on the enrollment page.
fn setup_key(body: &str) -> gatehouse_core::totp::TotpSecret {
    let start = body
        .find("id=\"totp-secret\">")
        .expect("the key is on the page")
        + "id=\"totp-secret\">".len();
    let end = start + body[start..].find('<').unwrap();
    gatehouse_core::totp::TotpSecret::from_bytes(
        gatehouse_core::totp::base32_decode(&body[start..end]).unwrap(),
    )
}

fn code_now(server: &TestServer, secret: &gatehouse_core::totp::TotpSecret) -> String {
    let step = gatehouse_core::totp::step_at(server.state.now() / 1000);
    gatehouse_core::totp::code_for_step(secret, step)
}

/// Signs up, adds an authenticator app through the pages, and returns the browser and secret.
async fn with_authenticator(
    server: &TestServer,
    email: &str,
) -> (Browser, gatehouse_core::totp::TotpSecret) {
    let mut b = server.signed_up("Two Step", email, PASSWORD).await;
    let r = b.post("/account/security/authenticator", &[]).await;
    let location = r
        .location()
        .unwrap_or_else(|| {
            panic!(
                "{} {}",
                r.status,
                &r.body[r.body.len().saturating_sub(1500)..]
            )
        })
        .to_string();
    assert!(
        location.starts_with("/account/security/authenticator/"),
        "{location}"
    );
    let page = b.get(&location).await;
    assert!(
        page.body.contains("otpauth://totp/Gatehouse:"),
        "the setup link is shown"
    );
    assert!(
        page.body.contains("<svg"),
        "the QR code is rendered on the server"
    );
    let secret = setup_key(&page.body);
    let wrong = b
        .post(&format!("{location}/confirm"), &[("code", "000000")])
        .await;
    if code_now(server, &secret) != "000000" {
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    }
    let ok = b
        .post(
            &format!("{location}/confirm"),
            &[("code", &code_now(server, &secret))],
        )
        .await;
    assert_eq!(
        ok.location(),
        Some("/account/security?notice=added"),
        "{}",
        ok.body
    );
    (b, secret)
}

#[tokio::test]
async fn an_authenticator_app_is_then_required_at_every_sign_in() {
    let server = TestServer::start().await;
    let (mut first, secret) = with_authenticator(&server, "mfa@example.com").await;
    assert!(first
        .get("/account/security")
        .await
        .body
        .contains("Authenticator app"));
    first.post("/sign-out", &[]).await;

    // The password alone leads to the second-factor page, never to a session.
    let mut b = server.browser();
    let r = b.sign_in_with_password("mfa@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/sign-in/verify"));
    assert!(b.session_cookie().is_none());
    assert_eq!(
        b.get("/account").await.location(),
        Some("/sign-in"),
        "skipping the second factor gives nothing"
    );
    assert_eq!(b.get("/sign-in/verify").await.status, StatusCode::OK);
    let wrong = b.post("/sign-in/verify", &[("code", "12345x")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    // The code used at enrollment is spent: wait for the next step.
    server.clock.advance_ms(30_000);
    let code = code_now(&server, &secret);
    let r = b.post("/sign-in/verify", &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    let user = server
        .store
        .find_user_by_email("mfa@example.com")
        .await
        .unwrap()
        .unwrap();
    let sessions = server
        .store
        .list_sessions(&user.id, server.state.now())
        .await
        .unwrap();
    assert!(sessions
        .iter()
        .any(|s| s.amr == "pwd otp mfa" && s.second_factor_id.is_some()));

    // The same code is never accepted again, not even in another sign-in.
    let mut again = server.browser();
    again
        .sign_in_with_password("mfa@example.com", PASSWORD)
        .await;
    assert_eq!(
        again
            .post("/sign-in/verify", &[("code", &code)])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert!(again.session_cookie().is_none());

    // The email-code path and a password reset also stop at the second factor.
    let mut by_code = server.browser();
    by_code
        .post("/sign-in/code", &[("email", "mfa@example.com")])
        .await;
    let email_code = server.last_code("mfa@example.com").await;
    assert_eq!(
        by_code
            .post("/code", &[("code", &email_code)])
            .await
            .location(),
        Some("/sign-in/verify")
    );
    assert!(by_code.session_cookie().is_none());
    let mut resetter = server.browser();
    resetter
        .post("/reset", &[("email", "mfa@example.com")])
        .await;
    let reset_code = server.last_code("mfa@example.com").await;
    resetter.post("/code", &[("code", &reset_code)]).await;
    let r = resetter
        .post(
            "/reset/new-password",
            &[("password", "another-fine-passphrase")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/sign-in/verify"),
        "a reset never skips the second factor"
    );
    assert!(resetter.session_cookie().is_none());

    let log = server
        .store
        .sign_ins_for_email("mfa@example.com", 20)
        .await
        .unwrap();
    assert!(log
        .iter()
        .any(|e| e.method == "password" && e.result == "interrupted"));
    assert!(log
        .iter()
        .any(|e| e.method == "totp" && e.result == "success"));
    assert!(log.iter().any(
        |e| e.method == "totp" && e.failure_reason.as_deref() == Some("second_factor_invalid")
    ));
}

#[tokio::test]
async fn fifty_parallel_submissions_of_one_authenticator_code_give_one_session() {
    let server = TestServer::start().await;
    let (_, secret) = with_authenticator(&server, "race-mfa@example.com").await;
    server.clock.advance_ms(30_000);
    let code = code_now(&server, &secret);
    let mut pending = Vec::new();
    for _ in 0..2 {
        let mut b = server.browser();
        b.sign_in_with_password("race-mfa@example.com", PASSWORD)
            .await;
        pending.push(b.cookie_header());
    }
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let (base, cookie, code) = (server.base.clone(), pending[i % 2].clone(), code.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/sign-in/verify"))
                    .header("origin", base.clone())
                    .header("cookie", cookie)
                    .form(&[("code", code)])
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut sessions = 0;
    for t in tasks {
        if t.await
            .unwrap()
            .headers()
            .get(LOCATION)
            .is_some_and(|l| l == "/account")
        {
            sessions += 1;
        }
    }
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn security_changes_need_a_recent_sign_in_and_removal_ends_sessions_made_with_it() {
    let server = TestServer::start().await;
    let (mut owner, secret) = with_authenticator(&server, "remove@example.com").await;
    // A second browser signs in with the authenticator.
    server.clock.advance_ms(30_000);
    let mut other = server.browser();
    other
        .sign_in_with_password("remove@example.com", PASSWORD)
        .await;
    assert_eq!(
        other
            .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
            .await
            .location(),
        Some("/account")
    );

    // Eleven minutes later, changes need the password again.
    server.clock.advance_ms(11 * 60 * 1000);
    let refused = owner.post("/account/security/authenticator", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Confirm it is you"));
    let before = owner.session_cookie().unwrap();
    assert_eq!(
        owner
            .post("/account/reauthenticate", &[("password", "not-it-at-all")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = owner
        .post("/account/reauthenticate", &[("password", PASSWORD)])
        .await;
    assert_eq!(r.location(), Some("/account/security?notice=confirmed"));
    assert_ne!(
        owner.session_cookie().unwrap(),
        before,
        "a new session id after re-authentication"
    );

    let user = server
        .store
        .find_user_by_email("remove@example.com")
        .await
        .unwrap()
        .unwrap();
    let id = server.store.list_totp(&user.id).await.unwrap()[0]
        .id
        .clone();
    let r = owner
        .post(&format!("/account/security/authenticator/{id}/remove"), &[])
        .await;
    assert_eq!(r.location(), Some("/account/security?notice=removed"));
    assert_eq!(
        other.get("/account").await.location(),
        Some("/sign-in"),
        "the session made with it ended"
    );
    assert_eq!(
        owner.get("/account").await.status,
        StatusCode::OK,
        "the password-only session stays"
    );
    let mut next = server.browser();
    assert_eq!(
        next.sign_in_with_password("remove@example.com", PASSWORD)
            .await
            .location(),
        Some("/account")
    );
}

/// The recovery codes shown on their page.
fn recovery_codes(body: &str) -> Vec<String> {
    body.split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn recovery_codes_stand_in_for_the_second_factor_once_each() {
    let server = TestServer::start().await;
    let (mut owner, _) = with_authenticator(&server, "recover@example.com").await;
    assert!(owner
        .get("/account/security")
        .await
        .body
        .contains("You have no recovery codes"));
    let page = owner.post("/account/security/recovery-codes", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let codes = recovery_codes(&page.body);
    assert_eq!(codes.len(), 10);
    assert!(owner
        .get("/account/security")
        .await
        .body
        .contains("Unused recovery codes: 10."));

    let mut lost_phone = server.browser();
    assert_eq!(
        lost_phone
            .sign_in_with_password("recover@example.com", PASSWORD)
            .await
            .location(),
        Some("/sign-in/verify")
    );
    let typed = codes[0].to_uppercase().replace('-', " ");
    assert_eq!(
        lost_phone
            .post("/sign-in/verify", &[("code", &typed)])
            .await
            .location(),
        Some("/account")
    );
    let mut again = server.browser();
    again
        .sign_in_with_password("recover@example.com", PASSWORD)
        .await;
    assert_eq!(
        again
            .post("/sign-in/verify", &[("code", &codes[0])])
            .await
            .status,
        StatusCode::BAD_REQUEST,
        "used once"
    );
    assert!(owner
        .get("/account/security")
        .await
        .body
        .contains("Unused recovery codes: 9."));

    // A new set replaces the old one.
    let fresh = recovery_codes(
        &owner
            .post("/account/security/recovery-codes", &[])
            .await
            .body,
    );
    let mut old = server.browser();
    old.sign_in_with_password("recover@example.com", PASSWORD)
        .await;
    assert_eq!(
        old.post("/sign-in/verify", &[("code", &codes[1])])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        old.post("/sign-in/verify", &[("code", &fresh[1])])
            .await
            .location(),
        Some("/account")
    );
    let log = server
        .store
        .sign_ins_for_email("recover@example.com", 30)
        .await
        .unwrap();
    assert!(log
        .iter()
        .any(|e| e.method == "recovery_code" && e.result == "success"));
}

#[tokio::test]
async fn an_emailed_code_is_never_the_second_factor_of_an_account_with_a_stronger_method() {
    let server = TestServer::start().await;
    with_authenticator(&server, "either@example.com").await;
    let mut b = server.browser();
    assert_eq!(
        b.sign_in_with_password("either@example.com", PASSWORD)
            .await
            .location(),
        Some("/sign-in/verify")
    );
    let page = b.get("/sign-in/verify").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("Email me a code instead"),
        "the mailbox is not offered beside an authenticator app"
    );
    let sent_before = server.message_count("either@example.com").await;
    assert_eq!(
        b.post("/sign-in/verify/email", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.message_count("either@example.com").await,
        sent_before,
        "no code is emailed"
    );
    assert!(b.session_cookie().is_none());

    // Nor after an email-code first factor.
    let mut by_email = server.browser();
    by_email
        .post("/sign-in/code", &[("email", "either@example.com")])
        .await;
    let first = server.last_code("either@example.com").await;
    assert_eq!(
        by_email.post("/code", &[("code", &first)]).await.location(),
        Some("/sign-in/verify")
    );
    assert!(!by_email
        .get("/sign-in/verify")
        .await
        .body
        .contains("Email me a code instead"));
    assert_eq!(
        by_email.post("/sign-in/verify/email", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(by_email.session_cookie().is_none());
}

#[tokio::test]
async fn the_mailbox_alone_never_opens_an_account_with_an_authenticator_app() {
    // The takeover the review found: reset by email code, then password plus "email me a code".
    let server = TestServer::start().await;
    let (_, secret) = with_authenticator(&server, "victim@example.com").await;
    let mut attacker = server.browser();
    attacker
        .post("/reset", &[("email", "victim@example.com")])
        .await;
    let code = server.last_code("victim@example.com").await;
    assert_eq!(
        attacker.post("/code", &[("code", &code)]).await.location(),
        Some("/reset/new-password")
    );
    let chosen = "attacker-chosen-password-77";
    assert_eq!(
        attacker
            .post("/reset/new-password", &[("password", chosen)])
            .await
            .location(),
        Some("/sign-in/verify"),
        "the second factor is asked before the new password is saved"
    );
    assert!(attacker.session_cookie().is_none());
    assert!(!attacker
        .get("/sign-in/verify")
        .await
        .body
        .contains("Email me a code instead"));
    // The password did not change: the new one does not work, the old one still does.
    let mut probe = server.browser();
    assert_eq!(
        probe
            .sign_in_with_password("victim@example.com", chosen)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let mut owner = server.browser();
    assert_eq!(
        owner
            .sign_in_with_password("victim@example.com", PASSWORD)
            .await
            .location(),
        Some("/sign-in/verify")
    );

    // The owner resetting with the app code: the password is saved and the session is full.
    server.clock.advance_ms(31_000);
    let mut again = server.browser();
    again
        .post("/reset", &[("email", "victim@example.com")])
        .await;
    server.clock.advance_ms(61_000);
    let code = server.last_code("victim@example.com").await;
    again.post("/code", &[("code", &code)]).await;
    let fresh = "owner-fresh-password-2026";
    again
        .post("/reset/new-password", &[("password", fresh)])
        .await;
    let r = again
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let sessions = server.sessions_of("victim@example.com").await;
    assert_eq!(sessions.len(), 1, "every other session ended");
    assert!(sessions[0].amr.split(' ').any(|m| m == "mfa"));
    assert!(server
        .audit_actions("victim@example.com")
        .await
        .contains(&"password.reset".to_string()));
    let mut later = server.browser();
    later
        .sign_in_with_password("victim@example.com", fresh)
        .await;
    assert_eq!(
        later.get("/sign-in/verify").await.status,
        StatusCode::OK,
        "the new password is the one that works now"
    );
}

#[tokio::test]
async fn wrong_second_factors_slow_down_but_never_close_the_owners_way_in() {
    let server = TestServer::start().await;
    let (_, secret) = with_authenticator(&server, "locked@example.com").await;
    let user = server.user("locked@example.com").await;
    server.clock.advance_ms(31_000);
    let sent_before = server.message_count("locked@example.com").await;
    let wrong = |server: &TestServer| {
        if code_now(server, &secret) == "000000" {
            "111111"
        } else {
            "000000"
        }
    };
    // Someone who knows the password guesses app codes.
    let mut attacker = server.browser();
    attacker
        .sign_in_with_password("locked@example.com", PASSWORD)
        .await;
    for _ in 0..10 {
        let r = attacker
            .post("/sign-in/verify", &[("code", wrong(&server))])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        server.clock.advance_ms(20_000);
    }
    assert_eq!(
        server.message_count("locked@example.com").await,
        sent_before + 1,
        "the owner is told once, when the delays begin"
    );
    assert!(server
        .audit_actions("locked@example.com")
        .await
        .contains(&"mfa.second_factor.throttled".to_string()));
    // Far past the account limit of the password path (100 consecutive failures).
    let subject = format!("{}:password", user.id);
    for _ in 0..150 {
        server
            .store
            .throttle_record_failure("second_factor", &subject, server.state.now())
            .await
            .unwrap();
    }
    // The owner's way in through the mailbox is not slowed by the guesses after the password.
    let mut owner = server.browser();
    owner
        .post("/sign-in/code", &[("email", "locked@example.com")])
        .await;
    let code = server.last_code("locked@example.com").await;
    assert_eq!(
        owner.post("/code", &[("code", &code)]).await.location(),
        Some("/sign-in/verify")
    );
    let r = owner
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    assert_eq!(r.location(), Some("/account"), "{} {}", r.status, r.body);
    // After the longest delay (15 minutes) the password path works again: never closed.
    server.clock.advance_ms(16 * 60 * 1000);
    let mut later = server.browser();
    later
        .sign_in_with_password("locked@example.com", PASSWORD)
        .await;
    let r = later
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    assert_eq!(r.location(), Some("/account"), "{} {}", r.status, r.body);
}

#[tokio::test]
async fn re_authenticating_with_a_password_records_only_the_password() {
    let server = TestServer::start().await;
    let (_, secret) = with_authenticator(&server, "reauth@example.com").await;
    let mut b = server.browser();
    b.sign_in_with_password("reauth@example.com", PASSWORD)
        .await;
    server.clock.advance_ms(31_000);
    b.post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    let before = server.sessions_of("reauth@example.com").await;
    assert!(before.iter().any(|s| s.amr.contains("mfa")));
    server.clock.advance_ms(11 * 60 * 1000);
    let r = b
        .post("/account/reauthenticate", &[("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let after = server.sessions_of("reauth@example.com").await;
    let newest = after.iter().max_by_key(|s| s.auth_time).unwrap();
    assert_eq!(newest.amr, "pwd", "only the password was proven then");
}

/// Runs the `gatehouse` binary with a fresh data folder.
fn gatehouse(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::gatehouse_cli(data_dir, args)
}

#[test]
fn the_command_line_migrates_creates_the_first_admin_and_sets_branding() {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-cli-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let help = gatehouse(&dir, &["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for setting in [
        "GATEHOUSE_DATABASE_URL",
        "GATEHOUSE_PUBLIC_URL",
        "GATEHOUSE_DATA_DIR",
        "GATEHOUSE_SMTP_URL",
        "GATEHOUSE_TRUSTED_PROXIES",
        "GATEHOUSE_SECRET_KEY",
        "RUST_LOG",
        "--public-url",
    ] {
        assert!(help.contains(setting), "--help documents {setting}");
    }
    assert!(gatehouse(&dir, &["migrate"]).status.success());
    assert!(dir.join("gatehouse.db").exists());

    let admin = gatehouse(&dir, &["create-admin", "--email", "Admin@Example.com"]);
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    assert!(String::from_utf8_lossy(&admin.stdout).contains("admin@example.com"));
    assert!(
        dir.join("secret.key").exists(),
        "the key is made on first use and kept"
    );
    let bad = gatehouse(&dir, &["create-admin", "--email", "not-an-address"]);
    assert!(!bad.status.success());

    let branding = dir.join("branding.toml");
    std::fs::write(
        &branding,
        "product_name = \"Acme ID\"\nprimary_color = \"#0b5cad\"\n",
    )
    .unwrap();
    let set = gatehouse(&dir, &["branding", "set", branding.to_str().unwrap()]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let shown = gatehouse(&dir, &["branding", "show"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("\"product_name\": \"Acme ID\"") && shown.contains("#0b5cad"),
        "{shown}"
    );

    std::fs::write(&branding, "primary_color = \"red;}body{\"\n").unwrap();
    let refused = gatehouse(&dir, &["branding", "set", branding.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("primary_color"));
    let shown = gatehouse(&dir, &["mfa", "show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("optional"));
    let set = gatehouse(&dir, &["mfa", "require"]);
    assert!(set.status.success());
    let shown = gatehouse(&dir, &["mfa", "show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("required for every account"));
    assert!(!gatehouse(&dir, &["mfa", "maybe"]).status.success());
    let reset = gatehouse(&dir, &["reset-mfa", "--email", "admin@example.com"]);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(String::from_utf8_lossy(&reset.stdout).contains("removed 0 second factors"));
    let missing = gatehouse(&dir, &["reset-mfa", "--email", "nobody@example.com"]);
    assert!(!missing.status.success());
    let set = gatehouse(&dir, &["sms", "countries", "1,+44"]);
    assert!(set.status.success());
    let shown = gatehouse(&dir, &["sms", "show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("only +1, +44"));
    let refused = gatehouse(&dir, &["sms", "countries", "1,999"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("\"999\" is not a country calling code")
    );
    let unknown = gatehouse(&dir, &["frobnicate"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unrecognized subcommand"));
    let incomplete = gatehouse(&dir, &["apps", "add", "--name", "Shop", "--public"]);
    assert!(!incomplete.status.success());
    assert!(String::from_utf8_lossy(&incomplete.stderr).contains("--redirect-uri"));
    let completions = gatehouse(&dir, &["completions", "bash"]);
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("create-admin"));
}

#[test]
fn a_failed_migration_or_a_bad_setting_stops_the_process_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-cli-bad-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gatehouse.db"), b"this is not a database").unwrap();
    let out = gatehouse(&dir, &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("gatehouse: database"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("migrate")
        .env_clear()
        .env("GATEHOUSE_PUBLIC_URL", "ftp://example.com")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEHOUSE_PUBLIC_URL"));
    // The same setting as an option wins over its variable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["--public-url", "ftp://example.com", "migrate"])
        .env_clear()
        .env("GATEHOUSE_PUBLIC_URL", "https://id.example.com")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEHOUSE_PUBLIC_URL"));
}

#[tokio::test]
async fn when_the_tenant_requires_mfa_an_account_without_it_adds_a_method_first() {
    let server = TestServer::start().await;
    let mut b = server
        .signed_up("Enrol Me", "enrol@example.com", PASSWORD)
        .await;
    server
        .state
        .identity
        .set_mfa_policy(
            gatehouse_core::identity::MfaPolicy { require_mfa: true },
            server.state.now(),
        )
        .await
        .unwrap();
    let r = b.get("/account").await;
    assert_eq!(r.location(), Some("/account/security?notice=mfa_required"));
    let r = b.post("/account/profile", &[("name", "Changed")]).await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=mfa_required"),
        "nothing else until a method is added"
    );
    let page = b.get("/account/security?notice=mfa_required").await;
    assert!(
        page.body.contains("requires two-step verification"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Add an authenticator app"));

    // Adding an authenticator app opens the account.
    let r = b.post("/account/security/authenticator", &[]).await;
    let enroll = b.get(r.location().unwrap()).await;
    let code = code_now(&server, &setup_key(&enroll.body));
    let confirm = format!("{}/confirm", r.location().unwrap());
    let r = b.post(&confirm, &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account/security?notice=added"));
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
}

/// The subjects of the messages sent to `email`, oldest first.
async fn subjects(server: &TestServer, email: &str) -> Vec<String> {
    let mut messages = server.store.messages_for(email).await.unwrap();
    messages.reverse();
    messages.into_iter().map(|m| m.subject).collect()
}

fn count_of(subjects: &[String], part: &str) -> usize {
    subjects.iter().filter(|s| s.contains(part)).count()
}

#[tokio::test]
async fn the_owner_is_told_once_of_each_new_device_failed_attempts_and_method_change() {
    let server = TestServer::start().await;
    let email = "told@example.com";
    let (mut first, secret) = with_authenticator(&server, email).await;
    let mut seen = subjects(&server, email).await;
    assert_eq!(
        count_of(&seen, "New sign-in"),
        0,
        "not for the sign-up: {seen:?}"
    );
    assert_eq!(count_of(&seen, "method was added"), 1, "{seen:?}");
    assert!(first.cookies.contains_key("__Host-gh_device"));

    // The same browser again: nothing. Another browser: one message, and only once.
    first.post("/sign-out", &[]).await;
    let r = first.sign_in_with_password(email, PASSWORD).await;
    assert_eq!(r.location(), Some("/sign-in/verify"));
    server.clock.advance_ms(30_000);
    first
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    assert_eq!(
        subjects(&server, email).await.len(),
        seen.len(),
        "a known device"
    );
    let mut second = server.browser();
    second.sign_in_with_password(email, PASSWORD).await;
    server.clock.advance_ms(30_000);
    let r = second
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    assert_eq!(r.location(), Some("/account"));
    seen = subjects(&server, email).await;
    assert_eq!(count_of(&seen, "New sign-in"), 1, "{seen:?}");
    second.post("/sign-out", &[]).await;
    second.sign_in_with_password(email, PASSWORD).await;
    server.clock.advance_ms(30_000);
    second
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    assert_eq!(count_of(&subjects(&server, email).await, "New sign-in"), 1);

    // Wrong passwords, then the right one: one message.
    second.post("/sign-out", &[]).await;
    for _ in 0..2 {
        second
            .sign_in_with_password(email, "not-the-password-1")
            .await;
    }
    second.sign_in_with_password(email, PASSWORD).await;
    seen = subjects(&server, email).await;
    assert_eq!(count_of(&seen, "after failed attempts"), 1, "{seen:?}");
    // A sign-in without failures before it tells nothing.
    server.clock.advance_ms(30_000);
    second
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;
    second.post("/sign-out", &[]).await;
    second.sign_in_with_password(email, PASSWORD).await;
    assert_eq!(
        count_of(&subjects(&server, email).await, "after failed attempts"),
        1
    );
    server.clock.advance_ms(30_000);
    second
        .post("/sign-in/verify", &[("code", &code_now(&server, &secret))])
        .await;

    // Removing the authenticator app: one message.
    let r = second
        .post("/account/reauthenticate", &[("password", PASSWORD)])
        .await;
    assert_eq!(
        r.location(),
        Some("/account/security?notice=confirmed"),
        "{} {}",
        r.status,
        r.body
    );
    let user = server.user(email).await;
    let id = server.store.list_totp(&user.id).await.unwrap()[0]
        .id
        .clone();
    let r = second
        .post(&format!("/account/security/authenticator/{id}/remove"), &[])
        .await;
    // This session was completed with that app, so it ends with it.
    assert_eq!(r.location(), Some("/sign-in"));
    assert!(server.store.list_totp(&user.id).await.unwrap().is_empty());
    seen = subjects(&server, email).await;
    assert_eq!(count_of(&seen, "method was removed"), 1, "{seen:?}");
    assert_eq!(count_of(&seen, "method was added"), 1);
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_keep_their_own_rate_limit() {
    // Behind a proxy on [::], IPv4 clients arrive as ::ffff:a.b.c.d; each keeps its own bucket.
    let server = TestServer::start().await;
    let mut noisy = server.browser();
    noisy.forwarded_for = "::ffff:198.51.100.7".into();
    let mut last = StatusCode::OK;
    for i in 0..32 {
        let email = format!("nobody{i}@example.com");
        last = noisy
            .sign_in_with_password(&email, "wrong-password-1")
            .await
            .status;
    }
    assert_eq!(
        last,
        StatusCode::TOO_MANY_REQUESTS,
        "the noisy address is slowed"
    );
    let mut neighbour = server.browser();
    neighbour.forwarded_for = "::ffff:198.51.100.8".into();
    let r = neighbour
        .post(
            "/sign-in",
            &[
                ("email", "someone@example.com"),
                ("password", "wrong-password-1"),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "another IPv4 client is not"
    );
    let log = server.store.recent_sign_ins(1).await.unwrap();
    assert_eq!(
        log[0].client_ip, "198.51.100.8",
        "logged as the IPv4 address"
    );
}

#[tokio::test]
async fn https_deployments_send_hsts_and_plain_http_does_not() {
    let plain = TestServer::start().await;
    let r = plain.browser().get("/sign-in").await;
    assert!(r.headers.get("strict-transport-security").is_none());
    let port_hint = "https://id.example.com".to_string();
    let tls = TestServer::start_with_settings(&[("GATEHOUSE_PUBLIC_URL", port_hint)]).await;
    let r = reqwest::get(format!("{}/healthz", tls.base)).await.unwrap();
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_the_database_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-modes-{}-{}",
        std::process::id(),
        gatehouse_core::tokens::random_id()
    ));
    let url = format!("sqlite://{}/gatehouse.db?mode=rwc", dir.display());
    let _server = TestServer::start_with_settings(&[
        ("GATEHOUSE_DATA_DIR", dir.display().to_string()),
        ("GATEHOUSE_DATABASE_URL", url),
    ])
    .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("gatehouse.db")), 0o600);
    assert_eq!(mode(&dir.join("secret.key")), 0o600);

    // A --secret-out file that already existed is made owner-only as well.
    let data = dir.join("cli");
    std::fs::create_dir_all(&data).unwrap();
    let out = dir.join("shop.secret");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = gatehouse(
        &data,
        &[
            "apps",
            "add",
            "--name",
            "Shop",
            "--confidential",
            "--redirect-uri",
            "https://shop.example.com/cb",
            "--secret-out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(mode(&out), 0o600);
    assert_ne!(std::fs::read_to_string(&out).unwrap(), "old");
}

// ---------------------------------------------------------------- self-service: email, deletion, data

/// The undo link in the newest message to `email`.
async fn undo_link(server: &TestServer, email: &str) -> String {
    let messages = server.store.messages_for(email).await.unwrap();
    let body = &messages.first().expect("a message").body;
    let start = body
        .find("/account/email/undo?token=")
        .expect("an undo link");
    let end = body[start..]
        .find(char::is_whitespace)
        .map_or(body.len(), |e| start + e);
    body[start..end].to_string()
}

#[tokio::test]
async fn changing_the_email_address_needs_a_recent_sign_in_and_the_new_address_proven() {
    let server = TestServer::start().await;
    let mut b = server.signed_up("Mover", "old@example.com", PASSWORD).await;
    server
        .signed_up("Other", "taken@example.com", PASSWORD)
        .await;
    let user = server.user("old@example.com").await;

    // A stale session is asked to confirm first, and changes nothing.
    server.clock.advance_ms(11 * 60 * 1000);
    let page = b.get("/account/email").await;
    assert!(page.body.contains("Confirm it is you"), "{}", page.body);
    let r = b
        .post("/account/email", &[("email", "new@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(server.message_count("new@example.com").await, 0);
    let r = b
        .post(
            "/account/reauthenticate",
            &[("password", PASSWORD), ("next", "/account/email")],
        )
        .await;
    assert_eq!(r.location(), Some("/account/email"));

    // Someone else's address: a notice goes there, no code, the same answer here.
    let before = server.message_count("taken@example.com").await;
    let r = b
        .post("/account/email", &[("email", "taken@example.com")])
        .await;
    assert_eq!(r.location(), Some("/account/email"));
    assert_eq!(server.message_count("taken@example.com").await, before + 1);
    let notice = &server
        .store
        .messages_for("taken@example.com")
        .await
        .unwrap()[0];
    assert!(
        !notice.subject.chars().next().unwrap().is_ascii_digit(),
        "no code"
    );
    let guess = b.post("/account/email/verify", &[("code", "123456")]).await;
    assert_eq!(guess.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.user("old@example.com").await.email,
        "old@example.com"
    );

    // The new address: a wrong code is refused, the right one moves the account.
    let r = b
        .post("/account/email", &[("email", "New@Example.com ")])
        .await;
    assert_eq!(r.location(), Some("/account/email"));
    let code = server.last_code("new@example.com").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = b.post("/account/email/verify", &[("code", wrong)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.user("old@example.com").await.id,
        user.id,
        "unchanged"
    );
    let r = b.post("/account/email/verify", &[("code", &code)]).await;
    assert_eq!(
        r.location(),
        Some("/account?notice=email_changed"),
        "{}",
        r.body
    );
    assert_eq!(server.user("new@example.com").await.id, user.id);
    assert!(server
        .store
        .find_user_by_email("old@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(server
        .audit_actions("new@example.com")
        .await
        .contains(&"account.email_changed".to_string()));
    let log = server.store.recent_sign_ins(1).await.unwrap();
    assert_eq!(
        (log[0].method.as_str(), log[0].result.as_str()),
        ("email_change", "success")
    );
    // The same code cannot be used twice.
    let again = b.post("/account/email/verify", &[("code", &code)]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    // The new address signs in; the old one is reserved while its undo link lives.
    let mut fresh = server.browser();
    let r = fresh
        .sign_in_with_password("new@example.com", PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"));
    let mut squatter = server.browser();
    squatter
        .post(
            "/sign-up",
            &[
                ("name", "Squat"),
                ("email", "old@example.com"),
                ("password", "squatting-on-it-2026"),
            ],
        )
        .await;
    let code = server.last_code("old@example.com").await;
    let r = squatter.post("/code", &[("code", &code)]).await;
    assert!(
        r.location() != Some("/account"),
        "the old address is reserved"
    );
    assert!(server
        .store
        .find_user_by_email("old@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_old_address_can_undo_an_email_change_once_and_every_session_ends() {
    let server = TestServer::start().await;
    let mut b = server
        .signed_up("Victim", "mine@example.com", PASSWORD)
        .await;
    b.post("/account/email", &[("email", "thief@example.com")])
        .await;
    let code = server.last_code("thief@example.com").await;
    b.post("/account/email/verify", &[("code", &code)]).await;
    let link = undo_link(&server, "mine@example.com").await;

    // Opening the link changes nothing by itself (mail scanners open links).
    let mut owner = server.browser();
    let page = owner.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("mine@example.com") && page.body.contains("thief@example.com"));
    assert_eq!(
        server.user("thief@example.com").await.email,
        "thief@example.com"
    );

    let token = link.split("token=").nth(1).unwrap().to_string();
    let r = owner
        .post("/account/email/undo", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let user = server.user("mine@example.com").await;
    assert!(server
        .state
        .identity
        .list_sessions(&user.id, server.state.now())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.get("/account").await.location(), Some("/sign-in"));
    assert!(server
        .audit_actions("mine@example.com")
        .await
        .contains(&"account.email_restored".to_string()));
    // Single use.
    let twice = owner
        .post("/account/email/undo", &[("token", &token)])
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert_eq!(owner.get(&link).await.status, StatusCode::BAD_REQUEST);
    // And only for 7 days.
    let mut b = server
        .signed_up("Later", "later@example.com", PASSWORD)
        .await;
    b.post("/account/email", &[("email", "later2@example.com")])
        .await;
    let code = server.last_code("later2@example.com").await;
    b.post("/account/email/verify", &[("code", &code)]).await;
    let link = undo_link(&server, "later@example.com").await;
    server
        .clock
        .advance_ms(gatehouse_core::identity::EMAIL_CHANGE_UNDO_TTL_MS + 1);
    let token = link.split("token=").nth(1).unwrap().to_string();
    let late = owner
        .post("/account/email/undo", &[("token", &token)])
        .await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.user("later2@example.com").await.display_name,
        "Later"
    );
}

#[tokio::test]
async fn people_delete_their_account_after_a_recent_sign_in_and_a_typed_confirmation() {
    let server = TestServer::start().await;
    let mut b = server
        .signed_up("Leaving", "leaving@example.com", PASSWORD)
        .await;
    let user = server.user("leaving@example.com").await;
    let mut other = server.browser();
    other
        .sign_in_with_password("leaving@example.com", PASSWORD)
        .await;
    // A wrong confirmation deletes nothing.
    let r = b
        .post(
            "/account/delete",
            &[("confirmation", "someone@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(server.user("leaving@example.com").await.id, user.id);
    // A stale session deletes nothing.
    server.clock.advance_ms(11 * 60 * 1000);
    let r = b
        .post(
            "/account/delete",
            &[("confirmation", "leaving@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    b.post(
        "/account/reauthenticate",
        &[("password", PASSWORD), ("next", "/account/delete")],
    )
    .await;
    let r = b
        .post(
            "/account/delete",
            &[("confirmation", " Leaving@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(server
        .store
        .find_user_by_email("leaving@example.com")
        .await
        .unwrap()
        .is_none());
    assert_eq!(other.get("/account").await.location(), Some("/sign-in"));
    // The sign-in log keeps its rows with the account id only.
    let (rows, _) = server
        .store
        .filter_sign_ins(
            &gatehouse_core::store::SignInFilter {
                user_id: Some(user.id.clone()),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| r.email.is_empty() && r.client_ip.is_empty() && r.user_agent.is_empty()));
    // The password no longer works, and the address is free for a new account.
    let mut again = server.browser();
    let r = again
        .sign_in_with_password("leaving@example.com", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    server
        .signed_up("Back", "leaving@example.com", PASSWORD)
        .await;
}

#[tokio::test]
async fn people_download_what_is_held_about_them_without_any_secret() {
    let server = TestServer::start().await;
    let (mut b, secret) = with_authenticator(&server, "export@example.com").await;
    let _ = secret;
    let r = b.get("/account/data").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"gatehouse-account.json\"")
    );
    let data: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(data["profile"]["email"], "export@example.com");
    assert_eq!(data["sign_in_methods"][0]["type"], "authenticator_app");
    assert!(data["sessions"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(data["sign_ins"].as_array().is_some_and(|s| !s.is_empty()));
    let user = server.user("export@example.com").await;
    for secret_value in [
        user.password_hash.clone().unwrap(),
        b.session_cookie().unwrap(),
        PASSWORD.to_string(),
    ] {
        assert!(!r.body.contains(&secret_value), "no secret in the download");
    }
    // Someone else's session downloads their own data, never this one's.
    let mut stranger = server
        .signed_up("Stranger", "stranger@example.com", PASSWORD)
        .await;
    let theirs = stranger.get("/account/data").await;
    assert!(!theirs.body.contains("export@example.com"));
    assert_eq!(
        server.browser().get("/account/data").await.location(),
        Some("/sign-in")
    );
}
