//! Text-message codes over HTTP, with the Twilio-compatible gateway client talking to a local
//! HTTP server that records every request: the exact request, adding a phone number, the second
//! factor by text, the per-number, per-IP and tenant caps, and the country allow-list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use common::*;
use gatehouse_core::mail::Mailer;
use gatehouse_core::store::OutboxMessage;
use gatehouse_server::config::SmsGateway;
use gatehouse_server::sms::SmsGatewayClient;
use reqwest::StatusCode;

/// One request the gateway received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: String,
    content_type: String,
    body: String,
}

impl Received {
    fn field(&self, name: &str) -> String {
        url_form(&self.body)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }
}

fn url_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A local stand-in for the Messages API: records requests, answers like Twilio, or with
/// `status` when set.
#[derive(Clone, Default)]
struct Gateway {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<Option<u16>>>,
}

impl Gateway {
    async fn start() -> (Self, String) {
        let gateway = Gateway::default();
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(
                    |State(g): State<Gateway>,
                     Path(sid): Path<String>,
                     headers: HeaderMap,
                     body: String| async move {
                        let header = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        g.received.lock().unwrap().push(Received {
                            path: format!("/2010-04-01/Accounts/{sid}/Messages.json"),
                            authorization: header("authorization"),
                            content_type: header("content-type"),
                            body,
                        });
                        match *g.status.lock().unwrap() {
                            Some(code) => (
                                AxumStatus::from_u16(code).unwrap(),
                                r#"{"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}"#.to_string(),
                            ),
                            None => (
                                AxumStatus::CREATED,
                                r#"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}"#.to_string(),
                            ),
                        }
                    },
                ),
            )
            .with_state(gateway.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/2010-04-01", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (gateway, url)
    }

    fn to(&self, number: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.field("To") == number)
            .cloned()
            .collect()
    }

    /// The code in the newest text to `number`.
    fn last_code(&self, number: &str) -> String {
        let texts = self.to(number);
        let body = texts.last().expect("a text was sent").field("Body");
        body.split_whitespace().next().unwrap().to_string()
    }
}

fn settings(url: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut s = vec![
        ("GATEHOUSE_SMS_GATEWAY_URL", url.to_string()),
        ("GATEHOUSE_SMS_ACCOUNT_SID", "AC0123456789".to_string()),
        ("GATEHOUSE_SMS_AUTH_TOKEN", "token-never-logged".to_string()),
        ("GATEHOUSE_SMS_FROM", "+15005550006".to_string()),
    ];
    s.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    s
}

#[tokio::test]
async fn the_gateway_client_sends_exactly_the_messages_api_request() {
    let (gateway, url) = Gateway::start().await;
    let config = SmsGateway {
        url: url.clone(),
        account_sid: "AC0123456789".into(),
        auth_token: "token-never-logged".into(),
        from: "+15005550006".into(),
    };
    assert!(!format!("{config:?}").contains("token-never-logged"));
    let client = SmsGatewayClient::new(config).unwrap();
    let message = OutboxMessage {
        id: "m1".into(),
        created_at: 0,
        channel: "sms".into(),
        recipient: "+14155550100".into(),
        subject: "Your code".into(),
        body: "123456 is your Gatehouse code. Do not share it & keep it.".into(),
        sent_at: None,
        last_error: None,
    };
    client.deliver(&message).await.unwrap();
    let received = gateway.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.path, "/2010-04-01/Accounts/AC0123456789/Messages.json");
    // base64("AC0123456789:token-never-logged")
    assert_eq!(
        r.authorization,
        "Basic QUMwMTIzNDU2Nzg5OnRva2VuLW5ldmVyLWxvZ2dlZA=="
    );
    assert_eq!(r.content_type, "application/x-www-form-urlencoded");
    assert_eq!(
        url_form(&r.body),
        vec![
            ("To".to_string(), "+14155550100".to_string()),
            ("From".to_string(), "+15005550006".to_string()),
            (
                "Body".to_string(),
                "123456 is your Gatehouse code. Do not share it & keep it.".to_string()
            ),
        ]
    );

    // A refusal is reported with the gateway's status and code, never with the token.
    *gateway.status.lock().unwrap() = Some(400);
    let err = client.deliver(&message).await.unwrap_err();
    assert!(err.contains("HTTP 400") && err.contains("21211"), "{err}");
    assert!(!err.contains("token-never-logged"));
    // An unreachable gateway is an error, not a hang or a panic.
    let dead = SmsGatewayClient::new(SmsGateway {
        url: "http://127.0.0.1:9/2010-04-01".into(),
        account_sid: "AC1".into(),
        auth_token: "t".into(),
        from: "+15005550006".into(),
    })
    .unwrap();
    assert!(dead.deliver(&message).await.is_err());
}

/// Signs up and adds `number` through the pages, reading the code at the gateway.
async fn with_phone(server: &TestServer, gateway: &Gateway, email: &str, number: &str) -> Browser {
    let mut b = server.signed_up("Tex Ting", email, PASSWORD).await;
    let page = b.get("/account/security").await;
    assert!(
        page.body.contains("least secure"),
        "SMS is called the weakest method"
    );
    let r = b
        .post("/account/security/phone", &[("phone", number)])
        .await;
    let verify = r.location().expect("on to the code page").to_string();
    let page = b.get(&verify).await;
    assert!(page.body.contains("Check your phone"), "{}", page.body);
    let e164: String = number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    let code = gateway.last_code(&e164);
    let r = b
        .post(&format!("{verify}/confirm"), &[("code", &code)])
        .await;
    assert_eq!(r.location(), Some("/account/security?notice=phone_added"));
    b
}

#[tokio::test]
async fn a_texted_code_completes_the_second_factor() {
    let (gateway, url) = Gateway::start().await;
    let server = TestServer::start_with_settings(&settings(&url, &[])).await;
    let mut owner = with_phone(&server, &gateway, "sms@example.com", "+1 415 555 0123").await;
    let page = owner.get("/account/security?notice=phone_added").await;
    assert!(page.body.contains("Phone number added."));
    assert!(page.body.contains("Text messages to +14155550123"));

    let mut b = server.browser();
    let r = b.sign_in_with_password("sms@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/sign-in/verify"));
    let page = b.get("/sign-in/verify").await;
    assert!(
        page.body.contains("Text a code to +•••••••••23"),
        "{}",
        page.body
    );
    let r = b.post("/sign-in/verify/sms", &[]).await;
    assert_eq!(r.location(), Some("/sign-in/verify?notice=sms_sent"));
    assert_eq!(gateway.to("+14155550123").len(), 2);
    let code = gateway.last_code("+14155550123");
    // Asking again at once is refused: one text a minute.
    let r = b.post("/sign-in/verify/sms", &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = b.post("/sign-in/verify", &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let sessions = server.sessions_of("sms@example.com").await;
    assert!(sessions.iter().any(|s| s.amr == "pwd sms mfa"));
    let log = server
        .store
        .sign_ins_for_email("sms@example.com", 1)
        .await
        .unwrap();
    assert_eq!(
        (log[0].method.as_str(), log[0].result.as_str()),
        ("sms", "success")
    );
    // A delivered text's content is not kept.
    let kept = server.store.messages_for("+14155550123").await.unwrap();
    assert!(kept.iter().all(|m| !m.body.contains(&code)));

    // Removing the number ends the session that used it.
    let user = server.user("sms@example.com").await;
    let phone_id = server.store.list_phones(&user.id).await.unwrap()[0]
        .id
        .clone();
    let r = owner
        .post(&format!("/account/security/phone/{phone_id}/remove"), &[])
        .await;
    assert_eq!(r.location(), Some("/account/security?notice=phone_removed"));
    assert_eq!(b.get("/account").await.location(), Some("/sign-in"));
    let actions = server.audit_actions("sms@example.com").await;
    assert!(
        actions.iter().any(|a| a == "mfa.phone.added")
            && actions.iter().any(|a| a == "mfa.phone.removed")
    );
}

#[tokio::test]
async fn one_number_receives_at_most_five_texts_an_hour() {
    let (gateway, url) = Gateway::start().await;
    let server = TestServer::start_with_settings(&settings(&url, &[])).await;
    with_phone(&server, &gateway, "pump@example.com", "+44 20 7946 0958").await;
    let number = "+442079460958";
    let mut refused = 0;
    for i in 0..8 {
        // Each attempt from its own address, so only the per-number cap can stop it.
        let mut b = Browser::new(&server.base, &format!("198.51.100.{}", i + 1));
        let r = b.sign_in_with_password("pump@example.com", PASSWORD).await;
        assert_eq!(r.location(), Some("/sign-in/verify"));
        let r = b.post("/sign-in/verify/sms", &[]).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert_eq!(gateway.to(number).len(), 5, "counted at the gateway");
    assert_eq!(refused, 4);
    // An hour later the number may receive texts again.
    server.clock.advance_ms(60 * 60 * 1000 + 1);
    let mut b = Browser::new(&server.base, "198.51.100.200");
    b.sign_in_with_password("pump@example.com", PASSWORD).await;
    let r = b.post("/sign-in/verify/sms", &[]).await;
    assert_eq!(r.location(), Some("/sign-in/verify?notice=sms_sent"));
    assert_eq!(gateway.to(number).len(), 6);
}

/// Signs up from an address of its own (sign-ups are limited per address).
async fn signed_up_from(server: &TestServer, email: &str, n: usize) -> Browser {
    let mut b = Browser::new(&server.base, &format!("10.9.{}.{}", n / 200, n % 200 + 1));
    let r = b
        .post(
            "/sign-up",
            &[("name", "Pumper"), ("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let code = server.last_code(email).await;
    let r = b.post("/code", &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account"));
    b
}

#[tokio::test]
async fn one_address_and_the_whole_tenant_have_text_caps_too() {
    let (gateway, url) = Gateway::start().await;
    let server =
        TestServer::start_with_settings(&settings(&url, &[("GATEHOUSE_SMS_HOURLY_LIMIT", "12")]))
            .await;
    // One client address adding numbers to many accounts: 10 texts an hour.
    let mut sent = 0;
    for i in 0..12 {
        let mut b = signed_up_from(&server, &format!("pumper{i}@example.com"), i).await;
        b.forwarded_for = "203.0.113.77".into();
        let r = b
            .post(
                "/account/security/phone",
                &[("phone", &format!("+1 415 555 01{i:02}"))],
            )
            .await;
        if r.status == StatusCode::SEE_OTHER {
            sent += 1;
        } else {
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        }
    }
    assert_eq!(sent, 10);
    assert_eq!(gateway.received.lock().unwrap().len(), 10);
    // From other addresses, the tenant's cap (12 an hour) stops the rest.
    for i in 0..4 {
        let mut b = signed_up_from(&server, &format!("other{i}@example.com"), 100 + i).await;
        b.forwarded_for = format!("192.0.2.{}", i + 1);
        b.post(
            "/account/security/phone",
            &[("phone", &format!("+1 415 555 02{i:02}"))],
        )
        .await;
    }
    assert_eq!(gateway.received.lock().unwrap().len(), 12);
}

#[tokio::test]
async fn numbers_outside_the_allowed_countries_get_no_text() {
    let (gateway, url) = Gateway::start().await;
    let server = TestServer::start_with_settings(&settings(&url, &[])).await;
    server
        .store
        .put_setting(
            gatehouse_core::identity::SMS_POLICY_SETTING,
            r#"{"allowed_country_codes":["44"]}"#,
            0,
        )
        .await
        .unwrap();
    let mut b = server
        .signed_up("Abroad", "abroad@example.com", PASSWORD)
        .await;
    let r = b
        .post("/account/security/phone", &[("phone", "+1 415 555 0199")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("cannot be sent to numbers in that country"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("value=\"+1 415 555 0199\""),
        "what was typed is kept"
    );
    let r = b
        .post("/account/security/phone", &[("phone", "555-0199")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("international format"));
    assert!(gateway.received.lock().unwrap().is_empty());
    let r = b
        .post("/account/security/phone", &[("phone", "+44 20 7946 0000")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(gateway.to("+442079460000").len(), 1);
}

#[tokio::test]
async fn a_thousand_requests_to_text_one_number_send_five() {
    let (gateway, url) = Gateway::start().await;
    let server = TestServer::start_with_settings(&settings(&url, &[])).await;
    with_phone(&server, &gateway, "flood@example.com", "+1 415 555 0142").await;
    // 50 pending sign-ins from 50 addresses, each asking for a text 20 times at once.
    let mut pending = Vec::new();
    for i in 0..50 {
        let mut b = Browser::new(&server.base, &format!("198.18.{}.{}", i / 200, i % 200 + 1));
        let r = b.sign_in_with_password("flood@example.com", PASSWORD).await;
        assert_eq!(r.location(), Some("/sign-in/verify"));
        pending.push(b);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let requests = pending.iter().flat_map(|b| {
        (0..20).map(|_| {
            client
                .post(format!("{}/sign-in/verify/sms", server.base))
                .header("origin", server.base.clone())
                .header("cookie", b.cookie_header())
                .header("x-forwarded-for", b.forwarded_for.clone())
                .send()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses.len(), 1000);
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 429),
        "{statuses:?}"
    );
    // One text proved the number; four more fit in the hour.
    assert_eq!(gateway.to("+14155550142").len(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 4);
}
