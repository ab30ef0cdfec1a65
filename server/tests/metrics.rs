//! `GET /metrics`: the Prometheus text format, parsed by a Prometheus text parser, moving when
//! sign-ins happen; readable from the allowed addresses or with the token, refused otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Browser, TestServer, PASSWORD};
use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;

const TOKEN: &str = "metrics-token-for-the-tests-0123456789";

fn scrape(body: &str) -> Scrape {
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The value of the sample `name` with these labels (0 when there is none yet).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn read(b: &mut Browser) -> Scrape {
    let r = b.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    scrape(&r.body)
}

#[tokio::test]
async fn metrics_parse_move_with_sign_ins_and_are_refused_to_other_addresses() {
    let server =
        TestServer::start_with_settings(&[("GATEHOUSE_METRICS_TOKEN", TOKEN.to_string())]).await;
    // The loopback may read them (the tests' proxy header names the client address).
    let mut local = Browser::new(&server.base, "127.0.0.1");
    let before = read(&mut local).await;
    for name in [
        "gatehouse_password_hash_queue",
        "gatehouse_db_pool_connections",
        "gatehouse_db_pool_idle_connections",
    ] {
        assert!(before.samples.iter().any(|s| s.metric == name), "{name}");
    }
    assert!(value(&before, "gatehouse_db_pool_connections", &[]) >= 1.0);
    let success = [("result", "success"), ("method", "password")];
    let wrong = [("result", "failure"), ("method", "password")];
    let (ok0, wrong0) = (
        value(&before, "gatehouse_sign_ins_total", &success),
        value(&before, "gatehouse_sign_ins_total", &wrong),
    );

    // A sign-up, a wrong password and a right one.
    let email = "ada@example.com";
    server.signed_up("Ada", email, PASSWORD).await;
    let mut b = server.browser();
    b.sign_in_with_password(email, "not-the-password-at-all")
        .await;
    b.sign_in_with_password(email, PASSWORD).await;

    let after = read(&mut local).await;
    assert_eq!(
        value(&after, "gatehouse_sign_ins_total", &success),
        ok0 + 1.0
    );
    assert_eq!(
        value(&after, "gatehouse_sign_ins_total", &wrong),
        wrong0 + 1.0
    );
    // Two password checks waited for a hashing slot (one sign-up hash besides).
    assert!(value(&after, "gatehouse_password_hash_wait_seconds_count", &[]) >= 3.0);
    // Requests are timed under their route's pattern, never the path with its ids.
    let posts = [("route", "/sign-in"), ("method", "POST"), ("status", "3xx")];
    assert!(
        value(
            &after,
            "gatehouse_http_request_duration_seconds_count",
            &posts
        ) >= 1.0,
        "{:?}",
        after.samples.iter().map(|s| &s.metric).collect::<Vec<_>>()
    );
    let user = server.user(email).await;
    let mut admin = server.admin_browser("Admin", "admin@example.com").await;
    admin.get(&format!("/admin/users/{}", user.id)).await;
    let text = local.get("/metrics").await.body;
    assert!(text.contains("route=\"/admin/users/{id}\""), "{text}");
    assert!(!text.contains(&user.id), "no ids in the labels");
    assert!(!text.contains(email), "no emails in the labels");

    // Another address is refused, even through the trusted proxy; the token lets it in.
    let mut outside = Browser::new(&server.base, "203.0.113.50");
    let refused = outside.get("/metrics").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!refused.body.contains("gatehouse_"));
    let wrong_token = outside
        .send(
            outside
                .client
                .get(format!("{}/metrics", server.base))
                .bearer_auth("metrics-token-for-the-tests-012345678X"),
        )
        .await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
    let with_token = outside
        .send(
            outside
                .client
                .get(format!("{}/metrics", server.base))
                .bearer_auth(TOKEN),
        )
        .await;
    assert_eq!(with_token.status, StatusCode::OK);
    assert!(
        value(
            &scrape(&with_token.body),
            "gatehouse_sign_ins_total",
            &success
        ) >= 1.0
    );
}

#[tokio::test]
async fn no_address_may_read_the_metrics_when_the_list_is_none() {
    let server =
        TestServer::start_with_settings(&[("GATEHOUSE_METRICS_ALLOW", "none".into())]).await;
    let mut local = Browser::new(&server.base, "127.0.0.1");
    assert_eq!(local.get("/metrics").await.status, StatusCode::FORBIDDEN);
}
