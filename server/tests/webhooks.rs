//! Identity Protection's webhooks end to end: an admin adds an endpoint in the console (its
//! secret shown once), detections, their changes of state and risky sign-ins reach a real
//! HTTP receiver on the loopback as signed OCSF records, a refused delivery is retried on the
//! schedule with the same `webhook-id`, a restarted instance neither loses a pending event nor
//! resends a delivered one, and a rotated secret signs beside the new one for a day.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use common::{Browser, TestServer, PASSWORD};
use gatehouse_core::secret::SecretString;
use gatehouse_core::webhooks::verify;
use gatehouse_server::webhooks::{deliver_due, WebhookPass};
use reqwest::StatusCode;

/// What the receiver got, and the statuses it answers with next (200 when none are queued).
#[derive(Default)]
struct Inbox {
    requests: Vec<(HeaderMap, Bytes)>,
    replies: VecDeque<u16>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start() -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app =
            axum::Router::new()
                .route(
                    "/hook",
                    axum::routing::post(
                        |State(inbox): State<Arc<Mutex<Inbox>>>,
                         headers: HeaderMap,
                         body: Bytes| async move {
                            let mut inbox = inbox.lock().unwrap();
                            inbox.requests.push((headers, body));
                            let status = inbox.replies.pop_front().unwrap_or(200);
                            AxumStatus::from_u16(status).unwrap()
                        },
                    ),
                )
                .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            inbox,
        }
    }

    fn reply_next(&self, statuses: &[u16]) {
        self.inbox.lock().unwrap().replies.extend(statuses);
    }

    fn received(&self) -> Vec<Delivery> {
        self.inbox
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(h, b)| Delivery {
                id: header(h, "webhook-id"),
                timestamp: header(h, "webhook-timestamp").parse().unwrap(),
                signature: header(h, "webhook-signature"),
                content_type: header(h, "content-type"),
                body: b.to_vec(),
                json: serde_json::from_slice(b).unwrap(),
            })
            .collect()
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .unwrap_or_else(|| panic!("the delivery has {name}"))
        .to_str()
        .unwrap()
        .to_string()
}

#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: i64,
    signature: String,
    content_type: String,
    body: Vec<u8>,
    json: serde_json::Value,
}

impl Delivery {
    fn verifies(&self, secret: &SecretString) -> bool {
        verify(
            secret,
            &self.id,
            self.timestamp,
            &self.body,
            &self.signature,
        )
    }
}

/// The text of the element with `data-testid="{id}"`.
fn test_id_text(body: &str, id: &str) -> String {
    let start = body
        .find(&format!("data-testid=\"{id}\""))
        .unwrap_or_else(|| panic!("the page shows {id}: {body}"));
    let rest = &body[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].to_string()
}

/// Adds an endpoint through the console; returns its id and its secret.
async fn add_endpoint(
    server: &TestServer,
    admin: &mut Browser,
    url: &str,
    events: &[&str],
) -> (String, SecretString) {
    let mut form = vec![("url", url), ("description", "SIEM")];
    form.extend(events.iter().map(|e| ("event", *e)));
    let r = admin.post("/admin/risk/webhooks", &form).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let secret = test_id_text(&r.body, "webhook-secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let endpoints = server
        .state
        .identity
        .webhook_endpoints(server.state.now())
        .await
        .unwrap();
    let id = endpoints.iter().find(|e| e.url == url).unwrap().id.clone();
    // The secret is shown once: the endpoint's page never shows it again.
    let page = admin.get(&format!("/admin/risk/webhooks/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&secret));
    assert!(!page.body.contains("webhook-secret"));
    (id, SecretString::new(secret))
}

/// The admin's browser signed in afresh (after the clock moved past its session).
async fn signed_in_again(server: &TestServer) -> Browser {
    let mut b = server.browser();
    let r = b.sign_in_with_password("admin@example.com", PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    b
}

async fn pass(server: &TestServer) -> WebhookPass {
    deliver_due(&server.state, "instance-a").await.unwrap()
}

#[tokio::test]
async fn detections_and_their_changes_reach_the_endpoint_signed_and_refusals_are_retried() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let mut admin = server.admin_browser("Admin", "admin@example.com").await;

    // The form refuses what it cannot deliver to, and keeps what was typed.
    let r = admin
        .post(
            "/admin/risk/webhooks",
            &[
                ("url", "http://siem.example.com/hook"),
                ("event", "risk_detection.created"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("must be an https address"), "{}", r.body);
    assert!(r.body.contains("http://siem.example.com/hook"));
    let r = admin
        .post(
            "/admin/risk/webhooks",
            &[("url", "https://siem.example.com/hook")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Choose at least one event"), "{}", r.body);
    assert!(server
        .state
        .identity
        .webhook_endpoints(0)
        .await
        .unwrap()
        .is_empty());

    let (id, secret) = add_endpoint(
        &server,
        &mut admin,
        &receiver.url,
        &["risk_detection.created", "risk_detection.state_changed"],
    )
    .await;
    let audit = admin.get("/admin/audit").await;
    assert!(
        audit.body.contains("admin.webhook.created"),
        "{}",
        audit.body
    );
    assert!(
        !audit.body.contains(secret.expose()),
        "the audit never holds the secret"
    );

    // Nothing happened yet: the worker does not even take its lease.
    assert_eq!(pass(&server).await, WebhookPass::default());
    assert!(receiver.received().is_empty());

    // An admin confirms an account compromised: one new detection, one event.
    let email = "ada@example.com";
    server.signed_up("Ada", email, PASSWORD).await;
    let user = server.user(email).await;
    let r = admin
        .post(
            &format!("/admin/users/{}/confirm-compromised", user.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // The endpoint refuses the first attempt.
    receiver.reply_next(&[500]);
    let first = pass(&server).await;
    assert_eq!((first.ran, first.delivered, first.failed), (true, 0, 1));
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert!(d.verifies(&secret), "signed with the endpoint's secret");
    assert!(!d.verifies(&gatehouse_core::webhooks::new_secret()));
    assert_eq!(d.content_type, "application/json");
    assert!((d.timestamp - server.state.now() / 1000).abs() <= 5);
    assert_eq!(d.json["type"], "risk_detection.created");
    let data = &d.json["data"];
    assert_eq!(data["class_uid"], 2004);
    assert_eq!(data["activity_id"], 1);
    assert_eq!(data["severity_id"], 4);
    assert_eq!(data["status"], "In Progress");
    assert_eq!(
        data["finding_info"]["types"][0],
        "admin-confirmed-compromised"
    );
    assert_eq!(data["evidences"][0]["user"]["email_addr"], email);
    assert_eq!(data["evidences"][0]["user"]["uid"], user.id.as_str());
    assert_eq!(data["metadata"]["version"], "1.3.0");

    // Not due again until the first pause is over.
    assert!(!pass(&server).await.ran);
    assert_eq!(receiver.received().len(), 1);
    let page = admin.get(&format!("/admin/risk/webhooks/{id}")).await;
    assert!(page.body.contains("Retrying"), "{}", page.body);
    assert!(page.body.contains("HTTP 500"));

    // After it, the same event comes again: same id, same body, a fresh timestamp.
    server.clock.advance_ms(31_000);
    let second = pass(&server).await;
    assert_eq!((second.delivered, second.failed), (1, 0));
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].id, got[0].id);
    assert_eq!(got[1].body, got[0].body);
    assert!(got[1].timestamp >= got[0].timestamp + 30);
    assert!(got[1].verifies(&secret));
    let page = admin.get(&format!("/admin/risk/webhooks/{id}")).await;
    assert!(page.body.contains("Delivered"), "{}", page.body);
    let list = admin.get("/admin/risk/webhooks").await;
    assert!(list.body.contains(&receiver.url));
    assert!(list.body.contains("Delivered (HTTP 200)"), "{}", list.body);

    // Delivered is done: nothing more is sent, however much later.
    server.clock.advance_ms(30 * 60 * 60 * 1000);
    assert!(!pass(&server).await.ran);
    let mut admin = signed_in_again(&server).await;

    // Confirming the account safe closes the detection: an event of the change.
    let r = admin
        .post(&format!("/admin/users/{}/confirm-safe", user.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(pass(&server).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    let change = &got[2];
    assert_ne!(change.id, got[0].id);
    assert!(change.verifies(&secret));
    assert_eq!(change.json["type"], "risk_detection.state_changed");
    assert_eq!(change.json["data"]["activity_id"], 3);
    assert_eq!(change.json["data"]["status"], "Resolved");
    assert_eq!(
        change.json["data"]["finding_info"]["uid"], data["finding_info"]["uid"],
        "the same finding"
    );
}

#[tokio::test]
async fn a_risky_sign_in_is_sent_as_an_authentication_event_with_its_detection() {
    use gatehouse_core::risk::ListKind;
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let mut admin = server.admin_browser("Admin", "admin@example.com").await;
    let (_, secret) = add_endpoint(
        &server,
        &mut admin,
        &receiver.url,
        &["risky_sign_in.created", "risk_detection.created"],
    )
    .await;
    let tor = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n\
               ExitAddress 198.51.100.7 2026-12-01 10:00:00\n";
    server
        .state
        .identity
        .import_risk_list(ListKind::Tor, tor, server.state.now())
        .await
        .unwrap();
    let email = "grace@example.com";
    server.signed_up("Grace", email, PASSWORD).await;
    // A sign-in from an ordinary address sends nothing.
    let mut home = Browser::new(&server.base, "203.0.113.20");
    home.sign_in_with_password(email, PASSWORD).await;
    assert!(!pass(&server).await.ran);

    let mut tor_browser = Browser::new(&server.base, "198.51.100.7");
    tor_browser.sign_in_with_password(email, PASSWORD).await;
    assert_eq!(pass(&server).await.delivered, 2);
    let got = receiver.received();
    assert!(got.iter().all(|d| d.verifies(&secret)));
    let sign_in = got
        .iter()
        .find(|d| d.json["type"] == "risky_sign_in.created")
        .expect("the risky sign-in");
    let row = server
        .store
        .sign_ins_for_email(email, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(sign_in.id, row.id, "the event is named by its log row");
    let data = &sign_in.json["data"];
    assert_eq!(data["class_uid"], 3002);
    assert_eq!(data["activity_name"], "Logon");
    assert_eq!(data["risk_level"], "High");
    assert_eq!(data["src_endpoint"]["ip"], "198.51.100.7");
    assert_eq!(data["user"]["email_addr"], email);
    assert_eq!(data["auth_protocol"], "password");
    let session = row.session_id.expect("the sign-in made a session");
    assert!(
        !String::from_utf8_lossy(&sign_in.body).contains(&session),
        "the session id is never sent"
    );
    let detection = got
        .iter()
        .find(|d| d.json["type"] == "risk_detection.created")
        .expect("its detection");
    assert_eq!(
        detection.json["data"]["finding_info"]["types"][0],
        "anonymous-ip"
    );
    assert_eq!(
        detection.json["data"]["evidences"][0]["src_endpoint"]["ip"],
        "198.51.100.7"
    );
    assert_eq!(
        detection.json["data"]["unmapped"]["gatehouse"]["sign_in_id"],
        row.id.as_str()
    );
}

#[tokio::test]
async fn pending_events_survive_a_restart_and_delivered_ones_are_not_sent_again() {
    let url = gatehouse_core::store::testing::fresh_sqlite_url();
    let key = (
        "GATEHOUSE_SECRET_KEY",
        "Z2F0ZWhvdXNlLXdlYmhvb2stdGVzdC1rZXktMzJieXQ=".to_string(),
    );
    let receiver = Receiver::start().await;
    let first = TestServer::start_configured(url.clone(), std::slice::from_ref(&key)).await;
    let mut admin = first.admin_browser("Admin", "admin@example.com").await;
    let (id, secret) = add_endpoint(
        &first,
        &mut admin,
        &receiver.url,
        &["risk_detection.created"],
    )
    .await;
    for (name, email) in [("Ada", "ada@example.com"), ("Bob", "bob@example.com")] {
        first.signed_up(name, email, PASSWORD).await;
        let user = first.user(email).await;
        let r = admin
            .post(
                &format!("/admin/users/{}/confirm-compromised", user.id),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        if email == "ada@example.com" {
            // Ada's event is delivered before the restart...
            assert_eq!(
                deliver_due(&first.state, "first").await.unwrap().delivered,
                1
            );
        }
    }
    // ...Bob's is still pending when the instance stops.
    assert_eq!(receiver.received().len(), 1);
    drop(admin);
    drop(first);

    // Another instance on the same database (and key) sends only Bob's.
    let second = TestServer::start_configured(url, std::slice::from_ref(&key)).await;
    let run = deliver_due(&second.state, "second").await.unwrap();
    assert_eq!((run.delivered, run.failed), (1, 0));
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].id, got[1].id);
    assert!(got.iter().all(|d| d.verifies(&secret)));
    let emails: Vec<&str> = got
        .iter()
        .map(|d| {
            d.json["data"]["evidences"][0]["user"]["email_addr"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(emails, ["ada@example.com", "bob@example.com"]);
    assert!(!deliver_due(&second.state, "second").await.unwrap().ran);
    let deliveries = second
        .state
        .identity
        .webhook_deliveries(&id, 10)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries
        .iter()
        .all(|d| d.delivered_at.is_some() && d.attempts == 1));
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_and_a_test_event_proves_the_endpoint() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let mut admin = server.admin_browser("Admin", "admin@example.com").await;
    let (id, old) = add_endpoint(
        &server,
        &mut admin,
        &receiver.url,
        &["risky_sign_in.created"],
    )
    .await;

    let r = admin
        .post(&format!("/admin/risk/webhooks/{id}/rotate"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = SecretString::new(test_id_text(&r.body, "webhook-secret"));
    assert_ne!(new.expose(), old.expose());
    assert!(r.body.contains("Also signs deliveries until"));

    let r = admin
        .post(&format!("/admin/risk/webhooks/{id}/test"), &[])
        .await;
    assert_eq!(
        r.location(),
        Some(format!("/admin/risk/webhooks/{id}?notice=webhook_test").as_str())
    );
    assert_eq!(pass(&server).await.delivered, 1);
    let d = receiver.received().remove(0);
    assert_eq!(d.json["type"], "webhook.test");
    assert_eq!(d.json["data"]["endpoint_id"], id.as_str());
    assert!(
        d.verifies(&new) && d.verifies(&old),
        "both sign during the change-over"
    );
    assert_eq!(d.signature.split(' ').count(), 2);

    // A day later the old secret no longer signs.
    server.clock.advance_ms(24 * 60 * 60 * 1000 + 1_000);
    let mut admin = signed_in_again(&server).await;
    admin
        .post(&format!("/admin/risk/webhooks/{id}/test"), &[])
        .await;
    assert_eq!(pass(&server).await.delivered, 1);
    let d = receiver.received().remove(1);
    assert!(d.verifies(&new) && !d.verifies(&old));

    // Disabled, it gets no events; enabled again, what was queued before is delivered.
    admin
        .post(&format!("/admin/risk/webhooks/{id}/test"), &[])
        .await;
    let r = admin
        .post(&format!("/admin/risk/webhooks/{id}/disable"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!pass(&server).await.ran);
    admin
        .post(&format!("/admin/risk/webhooks/{id}/enable"), &[])
        .await;
    assert_eq!(pass(&server).await.delivered, 1);
    assert_eq!(receiver.received().len(), 3);

    // Deleting asks for the confirmation, then removes the endpoint with its deliveries.
    let r = admin
        .post(&format!("/admin/risk/webhooks/{id}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = admin
        .post(
            &format!("/admin/risk/webhooks/{id}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/admin/risk/webhooks?notice=webhook_deleted")
    );
    assert!(server
        .state
        .identity
        .webhook_endpoints(0)
        .await
        .unwrap()
        .is_empty());
    assert!(server
        .state
        .identity
        .webhook_deliveries(&id, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        admin
            .get(&format!("/admin/risk/webhooks/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Customers and signed-out visitors cannot reach any of it.
    let mut customer = server.signed_up("Eve", "eve@example.com", PASSWORD).await;
    assert_eq!(
        customer.get("/admin/risk/webhooks").await.status,
        StatusCode::FORBIDDEN
    );
    let r = customer
        .post(
            "/admin/risk/webhooks",
            &[
                ("url", "https://evil.example/hook"),
                ("event", "risky_sign_in.created"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut nobody = server.browser();
    assert_eq!(
        nobody.get("/admin/risk/webhooks").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_given_up_a_day_after_the_event() {
    let server = TestServer::start().await;
    let mut admin = server.admin_browser("Admin", "admin@example.com").await;
    // A loopback port with nothing listening: every attempt fails to connect.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/hook");
    let (id, _) = add_endpoint(&server, &mut admin, &url, &["risky_sign_in.created"]).await;
    admin
        .post(&format!("/admin/risk/webhooks/{id}/test"), &[])
        .await;
    let mut attempts = 0;
    loop {
        let run = pass(&server).await;
        if !run.ran {
            // Not due: move to its next attempt (at most four hours on).
            let d = &server
                .state
                .identity
                .webhook_deliveries(&id, 1)
                .await
                .unwrap()[0];
            if d.given_up_at.is_some() {
                break;
            }
            server
                .clock
                .advance_ms((d.next_attempt_at - server.state.now()).max(0) + 1);
            continue;
        }
        assert_eq!(run.failed, 1);
        attempts += 1;
        assert!(attempts < 30, "bounded");
    }
    let d = &server
        .state
        .identity
        .webhook_deliveries(&id, 1)
        .await
        .unwrap()[0];
    assert!(d.delivered_at.is_none());
    assert!(d.given_up_at.unwrap() >= d.created_at + 24 * 60 * 60 * 1000);
    assert_eq!(d.attempts, attempts);
    assert_eq!(d.last_error.as_deref(), Some("could not connect"));
    let mut admin = signed_in_again(&server).await;
    let page = admin.get(&format!("/admin/risk/webhooks/{id}")).await;
    assert!(page.body.contains("Given up"), "{}", page.body);
}
