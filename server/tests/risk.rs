//! Identity Protection's detections over HTTP: a password found in the breached-password
//! corpus (at sign-in, and refused as a new password), brute force followed by success,
//! atypical travel between GeoIP places, and unfamiliar sign-in properties; each is recorded
//! against the sign-in log row of its attempt and raises the user or sign-in risk.
//!
//! A sign-in from a listed (Tor) address meeting a sign-in-risk policy is covered by
//! `conditional_access.rs`
//! (`a_sign_in_from_a_listed_address_is_risky_and_the_mfa_a_policy_asks_remediates_it`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::mmdb::{write_mmdb, Layout, MmdbRecord};
use common::{Browser, TestServer, PASSWORD};
use gatehouse_core::breach::sha1_hex;
use gatehouse_core::conditional_access::{
    Assignments, Conditions, Control, Grant, Policy, PolicyState, RiskLevel, Targets,
};
use gatehouse_core::store::{DetectionRecord, SignInLogEntry};
use gatehouse_core::throttle::ACCOUNT_POLICY;
use reqwest::StatusCode;

const HOUR: i64 = 60 * 60 * 1000;
const DAY: i64 = 24 * HOUR;

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// Passwords the test corpus holds besides [`PASSWORD`] (none is otherwise refused).
const BREACHED: &str = "amber-falcon-quartz-17";
const ALSO_BREACHED: &str = "cobalt-willow-ember-58";
/// What the pages say of a breached new password (`password.breached`).
const BREACHED_MESSAGE: &str = "This password appears in a known data breach";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-risk-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Pwned Passwords file ordered by hash (`HASH:COUNT` a line) holding these passwords, with
/// a few unrelated hashes around them.
fn sorted_corpus(passwords: &[(&str, u64)]) -> PathBuf {
    let mut lines: Vec<String> = passwords
        .iter()
        .map(|(p, n)| format!("{}:{n}", sha1_hex(p)))
        .chain((0..20).map(|i| format!("{}:{}", sha1_hex(&format!("filler-{i}")), i + 1)))
        .collect();
    lines.sort();
    let file = temp_dir("corpus").join("pwned-passwords-sha1-ordered-by-hash.txt");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    file
}

/// A browser from `ip` (behind the trusted proxy) whose user agent is `agent`.
fn browser_as(server: &TestServer, ip: &str, agent: &str) -> Browser {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(agent)
        .build()
        .unwrap();
    Browser {
        client,
        base: server.base.clone(),
        cookies: HashMap::new(),
        forwarded_for: ip.into(),
    }
}

/// The device cookie of `b` (whatever its prefix), to give another browser the same device.
fn device_cookie(b: &Browser) -> (String, String) {
    b.cookies
        .iter()
        .find(|(k, _)| k.ends_with("gh_device"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("the browser was given a device cookie")
}

/// Signs up `email` with [`PASSWORD`] through the pages from `b`.
async fn sign_up_from(server: &TestServer, b: &mut Browser, name: &str, email: &str) {
    let r = b
        .post(
            "/sign-up",
            &[("name", name), ("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let code = server.last_code(email).await;
    let r = b.post("/code", &[("code", &code)]).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
}

/// A password sign-in from a new browser at `ip` with `agent`, on `device` (the device
/// cookie) or a new one; it must succeed. Returns the browser.
async fn sign_in_from(
    server: &TestServer,
    email: &str,
    ip: &str,
    agent: &str,
    device: Option<&(String, String)>,
) -> Browser {
    let mut b = browser_as(server, ip, agent);
    if let Some((name, value)) = device {
        b.cookies.insert(name.clone(), value.clone());
    }
    let r = b.sign_in_with_password(email, PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    b
}

/// The newest sign-in log row of `email`.
async fn newest(server: &TestServer, email: &str) -> SignInLogEntry {
    server
        .store
        .sign_ins_for_email(email, 1)
        .await
        .unwrap()
        .remove(0)
}

/// The detections of the account with this email, newest first.
async fn detections(server: &TestServer, email: &str) -> Vec<DetectionRecord> {
    let user = server.user(email).await;
    server.state.identity.risk_detections(&user).await.unwrap()
}

async fn user_risk(server: &TestServer, email: &str) -> RiskLevel {
    let user = server.user(email).await;
    server.state.identity.user_risk(&user.id).await.unwrap()
}

/// The detections made at one sign-in log row.
async fn detected_at(server: &TestServer, row: &SignInLogEntry) -> Vec<DetectionRecord> {
    server
        .state
        .identity
        .detections_of_sign_in(&row.id)
        .await
        .unwrap()
}

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

fn totp_code(server: &TestServer, secret: &gatehouse_core::totp::TotpSecret) -> String {
    let step = gatehouse_core::totp::step_at(server.state.now() / 1000);
    gatehouse_core::totp::code_for_step(secret, step)
}

/// Signs `email` up with [`PASSWORD`] and adds an authenticator app through the pages;
/// returns the app's secret.
async fn with_authenticator(
    server: &TestServer,
    name: &str,
    email: &str,
) -> gatehouse_core::totp::TotpSecret {
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
    secret
}

/// Signs in with `password` and the authenticator (a new time step each time); returns the
/// signed-in browser.
async fn sign_in_with_app(
    server: &TestServer,
    email: &str,
    password: &str,
    secret: &gatehouse_core::totp::TotpSecret,
) -> Browser {
    server.clock.advance_ms(30_000);
    let mut b = server.browser();
    let r = b
        .sign_in_with_second_factor(email, password, &totp_code(server, secret))
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    b
}

/// A password the corpus holds raises one high leaked-credentials detection at sign-in, named
/// by the attempt's log row and kept while it is open; a policy for high user risk then asks a
/// new password after MFA, refuses a breached one there, and a fresh one remediates.
#[tokio::test]
async fn a_leaked_password_at_sign_in_is_high_user_risk_until_a_fresh_one_is_chosen() {
    let url = gatehouse_core::store::testing::fresh_sqlite_url();
    let key = (
        "GATEHOUSE_SECRET_KEY",
        "Z2F0ZWhvdXNlLXJpc2stdGVzdC1rZXktMzItYnl0ZXM=".to_string(),
    );
    // The account is made before the corpus is installed (it would refuse the password)...
    let before = TestServer::start_configured(url.clone(), std::slice::from_ref(&key)).await;
    let email = "leaky@example.com";
    let secret = with_authenticator(&before, "Leaky", email).await;
    // ...and the server restarted on the same database with it.
    let corpus = sorted_corpus(&[(PASSWORD, 3_861_493), (BREACHED, 12), (ALSO_BREACHED, 1)]);
    let server = TestServer::start_configured(
        url,
        &[
            key,
            ("GATEHOUSE_BREACHED_PASSWORDS", corpus.display().to_string()),
        ],
    )
    .await;
    assert!(server.state.identity.breach_corpus().is_some());
    assert!(detections(&server, email).await.is_empty());

    sign_in_with_app(&server, email, PASSWORD, &secret).await;
    let found = detections(&server, email).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let leaked = &found[0];
    assert_eq!(
        (
            leaked.kind.as_str(),
            leaked.level.as_str(),
            leaked.state.as_str()
        ),
        ("leaked-credentials", "high", "at-risk")
    );
    assert!(
        leaked.summary.contains("3,861,493 times"),
        "{}",
        leaked.summary
    );
    let row = server
        .store
        .find_sign_in(leaked.sign_in_id.as_deref().expect("it names its sign-in"))
        .await
        .unwrap()
        .expect("the sign-in log row exists");
    assert_eq!(
        (
            row.result.as_str(),
            row.method.as_str(),
            row.user_id.as_deref()
        ),
        (
            "interrupted",
            "password",
            Some(server.user(email).await.id.as_str())
        ),
        "the password step of the attempt"
    );
    assert_eq!(
        row.risk_level.as_deref(),
        Some("none"),
        "a leaked password is user risk, not sign-in risk"
    );
    assert_eq!(user_risk(&server, email).await, RiskLevel::High);

    // The same password again: still one open detection.
    sign_in_with_app(&server, email, PASSWORD, &secret).await;
    let found = detections(&server, email).await;
    assert_eq!(found.len(), 1, "{found:?}");

    // High user risk must change its password after MFA.
    let mut p = policy(
        "leaked",
        Grant::Require {
            controls: vec![Control::Mfa, Control::PasswordChange],
            require_all: true,
        },
    );
    p.conditions.user_risk = vec![RiskLevel::High];
    server
        .state
        .identity
        .save_policy(&p, None, server.state.now())
        .await
        .unwrap();
    let mut b = sign_in_with_app(&server, email, PASSWORD, &secret).await;
    assert_eq!(
        b.get("/account").await.location(),
        Some("/account/password/required")
    );
    assert_eq!(
        detections(&server, email).await.len(),
        1,
        "not added at the third sign-in either"
    );
    let refused = b
        .post("/account/password/required", &[("password", BREACHED)])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains(BREACHED_MESSAGE), "{}", refused.body);
    assert_eq!(user_risk(&server, email).await, RiskLevel::High);
    let fresh = "saffron-glacier-meridian-63";
    let r = b
        .post("/account/password/required", &[("password", fresh)])
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    assert_eq!(user_risk(&server, email).await, RiskLevel::None);
    let found = detections(&server, email).await;
    assert_eq!(
        (found.len(), found[0].state.as_str()),
        (1, "remediated"),
        "{found:?}"
    );

    // The fresh password signs in with nothing detected and nothing more asked.
    let mut again = sign_in_with_app(&server, email, fresh, &secret).await;
    assert_eq!(again.get("/account").await.status, StatusCode::OK);
    assert_eq!(detections(&server, email).await.len(), 1);
}

/// Sign-up refuses a password the corpus holds with the breached message, and makes nothing:
/// no account, no email, no code.
#[tokio::test]
async fn a_breached_password_is_refused_at_sign_up_and_nothing_is_created() {
    let corpus = sorted_corpus(&[(BREACHED, 12)]);
    let server = TestServer::start_with_settings(&[(
        "GATEHOUSE_BREACHED_PASSWORDS",
        corpus.display().to_string(),
    )])
    .await;
    let email = "newcomer@example.com";
    let without_throttle = |counts: Vec<(String, i64)>| {
        counts
            .into_iter()
            .filter(|(table, _)| table != "auth_throttle")
            .collect::<Vec<_>>()
    };
    let before = without_throttle(server.counts().await);
    let mut b = server.browser();
    let r = b
        .post(
            "/sign-up",
            &[
                ("name", "Newcomer"),
                ("email", email),
                ("password", BREACHED),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains(BREACHED_MESSAGE), "{}", r.body);
    assert!(
        server
            .store
            .find_user_by_email(email)
            .await
            .unwrap()
            .is_none(),
        "no account"
    );
    assert_eq!(server.message_count(email).await, 0, "no email");
    assert_eq!(without_throttle(server.counts().await), before);

    // A password the corpus does not hold signs up as usual.
    server.signed_up("Newcomer", email, PASSWORD).await;
}

/// `n` wrong passwords for `email`, the clock moved past each throttle delay first.
async fn wrong_passwords(server: &TestServer, email: &str, n: i64) {
    let mut b = server.browser();
    for failures in 0..n {
        server
            .clock
            .advance_ms(ACCOUNT_POLICY.delay_after(failures));
        let r = b
            .sign_in_with_password(email, "not-the-password-at-all")
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "attempt {}",
            failures + 1
        );
    }
    server.clock.advance_ms(ACCOUNT_POLICY.delay_after(n));
}

/// The right password after twelve wrong ones in a row is a medium brute-force detection on
/// the successful sign-in; after nine it is nothing.
#[tokio::test]
async fn the_right_password_after_many_wrong_ones_is_brute_force() {
    let server = TestServer::start().await;
    let email = "guessed@example.com";
    server.signed_up("Guessed", email, PASSWORD).await;

    wrong_passwords(&server, email, 9).await;
    server
        .browser()
        .sign_in_with_password(email, PASSWORD)
        .await;
    assert_eq!(newest(&server, email).await.result, "success");
    assert!(
        detections(&server, email).await.is_empty(),
        "nine is not many"
    );

    wrong_passwords(&server, email, 12).await;
    let r = server
        .browser()
        .sign_in_with_password(email, PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let found = detections(&server, email).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        (d.kind.as_str(), d.level.as_str(), d.state.as_str()),
        ("brute-force", "medium", "at-risk")
    );
    assert!(d.summary.contains("after 12 wrong ones"), "{}", d.summary);
    let evidence: serde_json::Value = serde_json::from_str(&d.evidence).unwrap();
    assert_eq!(evidence["failures"], 12);
    let row = newest(&server, email).await;
    assert_eq!(d.sign_in_id.as_deref(), Some(row.id.as_str()));
    assert_eq!(row.result, "success");
    assert_eq!(
        row.risk_level.as_deref(),
        Some("none"),
        "brute force is user risk"
    );
    assert_eq!(user_risk(&server, email).await, RiskLevel::Medium);
    // The security dashboard counts it, today, by kind and level.
    let days = gatehouse_core::insights::days(
        server.state.now(),
        7,
        &gatehouse_core::insights::TimeZone::UTC,
    );
    let report = gatehouse_core::identity::insights::risks(&server.store, &days)
        .await
        .unwrap();
    assert_eq!(report.by_kind.labels, ["brute-force"]);
    assert_eq!(report.by_kind.series, ["medium"]);
    assert_eq!(report.by_kind.cells, vec![vec![1]]);
    assert_eq!(report.per_day.total("medium"), 1);
    assert_eq!(report.per_day.cells.last(), Some(&vec![1]));
}

// Test networks behind the trusted proxy, and where the GeoIP database puts them.
const PARIS_NET: &str = "192.0.2.0/24";
const SYDNEY_NET: &str = "198.51.100.0/24";
const LYON_NET: &str = "203.0.113.0/24";

fn place(city: &'static str, country: &'static str, latitude: f64, longitude: f64) -> MmdbRecord {
    MmdbRecord {
        country,
        city: Some(city),
        latitude,
        longitude,
        accuracy_km: Some(20),
    }
}

/// A server whose GeoIP database places the test networks in Paris, Sydney and Lyon.
async fn geo_server() -> TestServer {
    let file = temp_dir("geoip").join("city.mmdb");
    write_mmdb(
        &file,
        Layout::GeoIp2,
        "GeoLite2-City",
        &[
            (
                PARIS_NET.parse().unwrap(),
                place("Paris", "FR", 48.8566, 2.3522),
            ),
            (
                SYDNEY_NET.parse().unwrap(),
                place("Sydney", "AU", -33.8688, 151.2093),
            ),
            (
                LYON_NET.parse().unwrap(),
                place("Lyon", "FR", 45.764, 4.8357),
            ),
        ],
    );
    TestServer::start_with_settings(&[("GATEHOUSE_GEOIP_DB", file.display().to_string())]).await
}

/// Signs `email` up from Paris and signs in from Paris `more` times, a day apart, on the same
/// browser and device; returns the device cookie.
async fn paris_regular(server: &TestServer, email: &str, more: usize) -> (String, String) {
    let mut b = browser_as(server, "192.0.2.10", FIREFOX_LINUX);
    sign_up_from(server, &mut b, "Regular", email).await;
    let device = device_cookie(&b);
    for _ in 0..more {
        server.clock.advance_ms(DAY);
        sign_in_from(server, email, "192.0.2.10", FIREFOX_LINUX, Some(&device)).await;
    }
    device
}

/// After ten successful sign-ins from Paris, Sydney two hours later is atypical travel, with
/// the place in the log row; a familiar place, or a trip at airliner speed (Paris to Lyon in
/// an hour), raises nothing.
#[tokio::test]
async fn a_sign_in_too_far_from_the_last_one_for_the_time_between_is_atypical_travel() {
    let server = geo_server().await;
    let email = "globetrotter@example.com";
    let device = paris_regular(&server, email, 9).await;
    assert!(detections(&server, email).await.is_empty());
    let home = newest(&server, email).await;
    assert_eq!(
        (home.country.as_deref(), home.city.as_deref()),
        (Some("FR"), Some("Paris"))
    );

    server.clock.advance_ms(2 * HOUR);
    sign_in_from(
        &server,
        email,
        "198.51.100.20",
        FIREFOX_LINUX,
        Some(&device),
    )
    .await;
    let row = newest(&server, email).await;
    let found = detected_at(&server, &row).await;
    let kinds: Vec<&str> = found.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["atypical-travel"],
        "a new country alone is not unfamiliar"
    );
    let travel = &found[0];
    assert_eq!(
        (travel.level.as_str(), travel.state.as_str()),
        ("medium", "at-risk")
    );
    assert!(
        travel.summary.starts_with("Sydney, AU 2 h after Paris, FR"),
        "{}",
        travel.summary
    );
    assert_eq!(travel.sign_in_id.as_deref(), Some(row.id.as_str()));
    assert_eq!(
        (
            row.country.as_deref(),
            row.city.as_deref(),
            row.latitude_e6,
            row.longitude_e6,
            row.accuracy_km,
        ),
        (
            Some("AU"),
            Some("Sydney"),
            Some(-33_868_800),
            Some(151_209_300),
            Some(20)
        )
    );
    assert_eq!(row.risk_level.as_deref(), Some("medium"));
    assert_eq!(user_risk(&server, email).await, RiskLevel::Medium);

    // Back in Paris a day later: a place the account knows, whatever the distance.
    server.clock.advance_ms(DAY);
    sign_in_from(&server, email, "192.0.2.10", FIREFOX_LINUX, Some(&device)).await;
    let row = newest(&server, email).await;
    assert!(detected_at(&server, &row).await.is_empty());
    assert_eq!(row.risk_level.as_deref(), Some("none"));

    // Lyon an hour after Paris: about 350 km/h once the radii are taken off, not atypical.
    server.clock.advance_ms(HOUR);
    sign_in_from(&server, email, "203.0.113.30", FIREFOX_LINUX, Some(&device)).await;
    let row = newest(&server, email).await;
    assert_eq!(row.city.as_deref(), Some("Lyon"));
    assert!(detected_at(&server, &row).await.is_empty());
    assert_eq!(detections(&server, email).await.len(), 1);
}

/// While an account is learning (fewer than ten successful sign-ins, the first less than
/// fourteen days ago) the same trip raises nothing; fourteen days after the first sign-in it
/// does, however few sign-ins there were.
#[tokio::test]
async fn travel_is_not_judged_during_the_learning_period() {
    let server = geo_server().await;
    let learning = "learning@example.com";
    paris_regular(&server, learning, 8).await;
    server.clock.advance_ms(2 * HOUR);
    sign_in_from(&server, learning, "198.51.100.21", CHROME_WINDOWS, None).await;
    let row = newest(&server, learning).await;
    assert_eq!(row.country.as_deref(), Some("AU"));
    assert_eq!(row.risk_level.as_deref(), Some("none"));
    assert!(
        detections(&server, learning).await.is_empty(),
        "nine sign-ins over eight days: still learning"
    );

    let old = "old-hand@example.com";
    let device = paris_regular(&server, old, 0).await;
    server.clock.advance_ms(14 * DAY);
    sign_in_from(&server, old, "192.0.2.11", FIREFOX_LINUX, Some(&device)).await;
    server.clock.advance_ms(2 * HOUR);
    sign_in_from(&server, old, "198.51.100.22", FIREFOX_LINUX, Some(&device)).await;
    let kinds: Vec<String> = detections(&server, old)
        .await
        .into_iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(
        kinds,
        ["atypical-travel"],
        "two sign-ins, fourteen days apart"
    );
}

/// After the learning period on Firefox on Linux, Chrome on Windows from a new device is three
/// unfamiliar properties (medium); the usual browser on a new device is ordinary; and an
/// account still learning is not judged.
#[tokio::test]
async fn a_new_browser_system_and_device_together_are_unfamiliar_properties() {
    let server = TestServer::start().await;
    let email = "creature-of-habit@example.com";
    let mut b = browser_as(&server, "192.0.2.40", FIREFOX_LINUX);
    sign_up_from(&server, &mut b, "Habit", email).await;
    let device = device_cookie(&b);
    for _ in 0..9 {
        server.clock.advance_ms(DAY);
        sign_in_from(&server, email, "192.0.2.40", FIREFOX_LINUX, Some(&device)).await;
    }
    let usual = newest(&server, email).await;
    assert_eq!(
        (usual.browser.as_deref(), usual.os.as_deref()),
        (Some("Firefox"), Some("Linux"))
    );
    assert!(usual.device.is_some());

    // The usual browser on a new device: one new property, nothing raised.
    server.clock.advance_ms(HOUR);
    sign_in_from(&server, email, "192.0.2.40", FIREFOX_LINUX, None).await;
    let row = newest(&server, email).await;
    assert!(row.device.is_some() && row.device != usual.device);
    assert!(detections(&server, email).await.is_empty());

    server.clock.advance_ms(HOUR);
    sign_in_from(&server, email, "192.0.2.40", CHROME_WINDOWS, None).await;
    let row = newest(&server, email).await;
    assert_eq!(row.browser.as_deref(), Some("Chrome"));
    let found = detected_at(&server, &row).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        (d.kind.as_str(), d.level.as_str(), d.state.as_str()),
        ("unfamiliar-features", "medium", "at-risk")
    );
    let evidence: serde_json::Value = serde_json::from_str(&d.evidence).unwrap();
    assert_eq!(
        evidence["new"],
        serde_json::json!(["browser", "operating system", "device"])
    );
    assert!(d.summary.contains("browser Chrome"), "{}", d.summary);
    assert_eq!(row.risk_level.as_deref(), Some("medium"));
    assert_eq!(user_risk(&server, email).await, RiskLevel::Medium);

    // A new account is still learning: the same change raises nothing.
    let newcomer = "newcomer@example.com";
    let mut b = browser_as(&server, "192.0.2.41", FIREFOX_LINUX);
    sign_up_from(&server, &mut b, "Newcomer", newcomer).await;
    server.clock.advance_ms(HOUR);
    sign_in_from(&server, newcomer, "192.0.2.41", CHROME_WINDOWS, None).await;
    assert!(detections(&server, newcomer).await.is_empty());
}

/// The sign-in risk of the history-based detections reaches Conditional Access: a policy
/// asking MFA for medium or high sign-in risk applies to an unfamiliar sign-in, and an
/// account without a second factor is blocked rather than let in with the password alone.
#[tokio::test]
async fn an_unfamiliar_sign_in_meets_a_sign_in_risk_policy() {
    let server = TestServer::start().await;
    let email = "habit@example.com";
    let mut b = browser_as(&server, "192.0.2.50", FIREFOX_LINUX);
    sign_up_from(&server, &mut b, "Habit", email).await;
    let device = device_cookie(&b);
    for _ in 0..9 {
        server.clock.advance_ms(DAY);
        sign_in_from(&server, email, "192.0.2.50", FIREFOX_LINUX, Some(&device)).await;
    }
    let mut p = policy(
        "risky-sign-ins",
        Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        },
    );
    p.conditions.sign_in_risk = vec![RiskLevel::Medium, RiskLevel::High];
    server
        .state
        .identity
        .save_policy(&p, None, server.state.now())
        .await
        .unwrap();

    server.clock.advance_ms(HOUR);
    let mut stranger = browser_as(&server, "192.0.2.50", CHROME_WINDOWS);
    let r = stranger.sign_in_with_password(email, PASSWORD).await;
    let row = newest(&server, email).await;
    assert_eq!(row.risk_level.as_deref(), Some("medium"));
    let kinds: Vec<String> = detected_at(&server, &row)
        .await
        .into_iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(kinds, ["unfamiliar-features"]);
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a risky sign-in never adds a factor: {:?} {}",
        r.location(),
        row.policies.as_deref().unwrap_or_default()
    );
    assert_eq!(row.failure_reason.as_deref(), Some("blocked_by_policy"));
    // The owner is told, once however often it is retried.
    let mails = server.store.messages_for(email).await.unwrap();
    assert!(
        mails[0].subject.contains("risky sign-in") && mails[0].subject.contains("was blocked"),
        "{}",
        mails[0].subject
    );
    let count = mails.len();
    server.clock.advance_ms(60_000);
    browser_as(&server, "192.0.2.50", CHROME_WINDOWS)
        .sign_in_with_password(email, PASSWORD)
        .await;
    assert_eq!(
        newest(&server, email).await.failure_reason.as_deref(),
        Some("blocked_by_policy")
    );
    assert_eq!(
        server.message_count(email).await,
        count,
        "one email in 6 hours"
    );
}

/// A risky sign-in (from a Tor exit) that a sign-in-risk policy asks for the second factor
/// is told to the owner; an ordinary one asked for the same factor is not.
#[tokio::test]
async fn a_risky_sign_in_a_policy_challenges_is_told_to_the_owner() {
    let server = TestServer::start().await;
    let email = "challenged@example.com";
    with_authenticator(&server, "Challenged", email).await;
    let identity = &server.state.identity;
    let now = server.state.now();
    identity
        .import_risk_list(gatehouse_core::risk::ListKind::Tor, "198.51.100.7\n", now)
        .await
        .unwrap();
    let mut p = policy(
        "risky-sign-ins",
        Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        },
    );
    p.conditions.sign_in_risk = vec![RiskLevel::Medium, RiskLevel::High];
    identity.save_policy(&p, None, now).await.unwrap();
    let before = server.message_count(email).await;

    server.clock.advance_ms(30_000);
    browser_as(&server, "198.51.100.7", FIREFOX_LINUX)
        .sign_in_with_password(email, PASSWORD)
        .await;
    let row = newest(&server, email).await;
    assert_eq!(
        (row.result.as_str(), row.risk_level.as_deref()),
        ("interrupted", Some("high"))
    );
    let mails = server.store.messages_for(email).await.unwrap();
    assert_eq!(mails.len(), before + 1);
    assert!(
        mails[0].subject.contains("asked for a second factor"),
        "{}",
        mails[0].subject
    );

    server.clock.advance_ms(30_000);
    browser_as(&server, "192.0.2.10", FIREFOX_LINUX)
        .sign_in_with_password(email, PASSWORD)
        .await;
    assert_eq!(newest(&server, email).await.result, "interrupted");
    assert_eq!(
        server.message_count(email).await,
        before + 1,
        "not risky: no email"
    );
}

/// One address sends wrong passwords for eleven accounts, one each, then the right one for
/// an account: the offline detections (run under their lease) raise one high password-spray
/// detection on that sign-in, none on the accounts it missed, and none twice; a run is
/// skipped while another instance holds the lease.
#[tokio::test]
async fn the_offline_detections_find_a_password_spray_that_got_a_password_right() {
    let server = TestServer::start().await;
    let victim = "sprayed@example.com";
    server.signed_up("Sprayed", victim, PASSWORD).await;
    server
        .signed_up("Missed", "missed@example.com", PASSWORD)
        .await;
    let sprayer = "198.51.100.77";
    let mut b = browser_as(&server, sprayer, CHROME_WINDOWS);
    let targets: Vec<String> = (0..10)
        .map(|i| format!("person{i}@example.com"))
        .chain(["missed@example.com".to_string()])
        .collect();
    for email in &targets {
        let r = b.sign_in_with_password(email, "Summer2026!").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{email}");
    }
    let r = browser_as(&server, sprayer, CHROME_WINDOWS)
        .sign_in_with_password(victim, PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let sprayed_row = newest(&server, victim).await;
    assert_eq!(sprayed_row.client_ip, sprayer);
    // The same account from its usual address is nothing to the spray.
    server
        .browser()
        .sign_in_with_password(victim, PASSWORD)
        .await;
    assert!(
        detections(&server, victim).await.is_empty(),
        "nothing in real time"
    );

    let now = server.state.now();
    let identity = &server.state.identity;
    let run = identity
        .run_offline_detections("instance-a", now)
        .await
        .unwrap()
        .expect("the lease was free");
    assert_eq!((run.suspicious, run.detections), (1, 1), "{run:?}");
    let found = detections(&server, victim).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        (
            d.kind.as_str(),
            d.level.as_str(),
            d.timing.as_str(),
            d.state.as_str()
        ),
        ("password-spray", "high", "offline", "at-risk")
    );
    assert_eq!(d.sign_in_id.as_deref(), Some(sprayed_row.id.as_str()));
    assert!(
        d.summary
            .starts_with("198.51.100.77 sent wrong passwords for 11 accounts"),
        "{}",
        d.summary
    );
    let evidence: serde_json::Value = serde_json::from_str(&d.evidence).unwrap();
    assert_eq!(
        (evidence["accounts"].as_i64(), evidence["failures"].as_i64()),
        (Some(11), Some(11))
    );
    assert_eq!(user_risk(&server, victim).await, RiskLevel::High);
    assert!(detections(&server, "missed@example.com").await.is_empty());
    assert_eq!(
        identity.offline_detections_finished_at().await.unwrap(),
        Some(now)
    );

    // Run again: nothing new.
    server.clock.advance_ms(60_000);
    let again = identity
        .run_offline_detections("instance-b", server.state.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.detections, 0);
    assert_eq!(detections(&server, victim).await.len(), 1);
    // Another instance holding the lease: this one skips.
    let now = server.state.now();
    assert!(server
        .store
        .try_lease(
            gatehouse_core::identity::OFFLINE_JOB,
            "instance-c",
            60_000,
            now
        )
        .await
        .unwrap());
    assert_eq!(
        identity
            .run_offline_detections("instance-a", now)
            .await
            .unwrap(),
        None
    );
}

/// An address that failed 24 of its 25 password attempts over the day is a malicious address
/// to the offline detections: the one account it got into gets a high malicious-IP detection
/// on that sign-in; a day later the address is judged afresh.
#[tokio::test]
async fn the_offline_detections_flag_a_sign_in_from_an_address_that_mostly_fails() {
    let server = TestServer::start().await;
    let email = "reached@example.com";
    server.signed_up("Reached", email, PASSWORD).await;
    let ip = "192.0.2.66";
    let start = server.state.now();
    for i in 0..24 {
        server
            .store
            .record_sign_in(&SignInLogEntry {
                id: format!("fail-{i}"),
                occurred_at: start - 60 * 60 * 1000 + i * 1000,
                email: format!("guess{}@example.com", i % 2),
                application: "account".into(),
                client_ip: ip.into(),
                user_agent: "curl/8.0".into(),
                method: "password".into(),
                result: "failure".into(),
                failure_reason: Some("invalid_credentials".into()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let r = browser_as(&server, ip, FIREFOX_LINUX)
        .sign_in_with_password(email, PASSWORD)
        .await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let row = newest(&server, email).await;
    let run = server
        .state
        .identity
        .run_offline_detections("instance-a", server.state.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.detections, 1, "{run:?}");
    let found = detected_at(&server, &row).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            found[0].kind.as_str(),
            found[0].level.as_str(),
            found[0].timing.as_str()
        ),
        ("malicious-ip", "high", "offline")
    );
    assert!(
        found[0]
            .summary
            .starts_with("192.0.2.66 failed 96% of 25 password attempts"),
        "{}",
        found[0].summary
    );
    // The failures age out of the window: the address's next sign-in is judged on its own.
    server.clock.advance_ms(25 * HOUR);
    browser_as(&server, ip, FIREFOX_LINUX)
        .sign_in_with_password(email, PASSWORD)
        .await;
    let run = server
        .state
        .identity
        .run_offline_detections("instance-a", server.state.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.detections, 0, "{run:?}");
}

/// A token request to `/token` from `ip` (behind the trusted proxy).
async fn token_from(
    server: &TestServer,
    app: &common::oidc::App,
    ip: &str,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .header("x-forwarded-for", ip)
        .basic_auth(&app.id, app.secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default(),
    )
}

/// An application's tokens issued to one network and refreshed from another: one low
/// anomalous-token detection on the account for that grant (the country is the same, or
/// unknown), however often it refreshes from there; a refresh from where the tokens went
/// first raises nothing.
#[tokio::test]
async fn a_refresh_token_used_from_another_network_is_an_anomalous_token() {
    let asn = temp_dir("asn");
    std::fs::write(
        asn.join("asn-ipv4.csv"),
        "198.51.100.0,198.51.100.255,64500,Shop Hosting\n\
         203.0.113.0,203.0.113.255,64501,Elsewhere Networks\n",
    )
    .unwrap();
    let server = TestServer::start_configured(
        gatehouse_core::store::testing::fresh_sqlite_url(),
        &[("GATEHOUSE_ASN_DB", asn.display().to_string())],
    )
    .await;
    let app = common::oidc::register(&server, common::oidc::web_app("Web shop")).await;
    let email = "tokens@example.com";
    let mut b = server.signed_up("Tokens", email, PASSWORD).await;
    let (code, verifier) = common::oidc::code_for(&mut b, &app, &[]).await;
    let shop = "198.51.100.20";
    let (status, first) = token_from(
        &server,
        &app,
        shop,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", common::oidc::REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let refresh_from = |ip: &'static str, token: String| {
        let (server, app) = (&server, &app);
        async move {
            let (status, body) = token_from(
                server,
                app,
                ip,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["refresh_token"].as_str().unwrap().to_string()
        }
    };
    let t = refresh_from(shop, first["refresh_token"].as_str().unwrap().to_string()).await;
    assert!(detections(&server, email).await.is_empty(), "same network");
    let t = refresh_from("203.0.113.50", t).await;
    let found = detections(&server, email).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let d = &found[0];
    assert_eq!(
        (d.kind.as_str(), d.level.as_str(), d.state.as_str()),
        ("anomalous-token", "low", "at-risk")
    );
    assert_eq!(
        d.summary,
        "Web shop's refresh token, issued to AS64500, was used from AS64501 (203.0.113.50)."
    );
    let evidence: serde_json::Value = serde_json::from_str(&d.evidence).unwrap();
    assert_eq!(evidence["issued_to"]["asn"], 64500);
    assert_eq!(evidence["used_from"]["asn"], 64501);
    assert_eq!(user_risk(&server, email).await, RiskLevel::Low);
    // Once per grant.
    refresh_from("203.0.113.51", t).await;
    assert_eq!(detections(&server, email).await.len(), 1);
}

/// The new-browser email carries a "this wasn't me" link: its page only shows the sign-in
/// (reading changes nothing); its one button ends that browser's session and every other,
/// removes the password with a reset code emailed, and raises a high user-reported detection;
/// the link then works no more.
#[tokio::test]
async fn this_wasnt_me_in_the_new_browser_email_signs_that_browser_out_and_secures_the_account() {
    let server = TestServer::start().await;
    let email = "owner@example.com";
    let mut own = server.signed_up("Owner", email, PASSWORD).await;
    let before = server.message_count(email).await;
    let mut intruder = browser_as(&server, "203.0.113.99", CHROME_WINDOWS);
    let r = intruder.sign_in_with_password(email, PASSWORD).await;
    assert_eq!(r.location(), Some("/account"), "{}", r.body);
    let messages = server.store.messages_for(email).await.unwrap();
    assert_eq!(messages.len(), before + 1, "one new-browser email");
    let body = &messages[0].body;
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/account/not-me?token="))
        .unwrap_or_else(|| panic!("no link in {body}"));
    let path = &link[link.find("/account/not-me").unwrap()..];

    let mut reader = server.browser();
    let page = reader.get(path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("203.0.113.99"), "{}", page.body);
    assert!(page.body.contains("This wasn&#x27;t me") || page.body.contains("This wasn't me"));
    assert_eq!(
        reader.get(path).await.status,
        StatusCode::OK,
        "reading changes nothing"
    );
    assert_eq!(intruder.get("/account").await.status, StatusCode::OK);
    assert_eq!(own.get("/account").await.status, StatusCode::OK);

    let token = path.split("token=").nth(1).unwrap();
    let done = reader.post("/account/not-me", &[("token", token)]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body.contains("your password no longer works"),
        "{}",
        done.body
    );
    assert_ne!(
        intruder.get("/account").await.status,
        StatusCode::OK,
        "the reported browser is signed out"
    );
    assert_ne!(
        own.get("/account").await.status,
        StatusCode::OK,
        "every session ends"
    );
    let r = server
        .browser()
        .sign_in_with_password(email, PASSWORD)
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the password no longer works"
    );
    let found = detections(&server, email).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].kind.as_str(), found[0].level.as_str()),
        ("user-reported-suspicious", "high")
    );
    assert!(
        found[0].summary.contains("203.0.113.99"),
        "{}",
        found[0].summary
    );
    assert_eq!(user_risk(&server, email).await, RiskLevel::High);
    assert_eq!(
        server.message_count(email).await,
        before + 2,
        "a reset code was emailed"
    );

    // Once only.
    let again = reader.post("/account/not-me", &[("token", token)]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(reader.get(path).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(detections(&server, email).await.len(), 1);
}

/// Email texts that show what the digest was given.
#[derive(Debug)]
struct PlainTexts;

impl gatehouse_core::mail::EmailTexts for PlainTexts {
    fn compose(
        &self,
        kind: gatehouse_core::mail::EmailKind,
        code: Option<&str>,
    ) -> gatehouse_core::mail::EmailText {
        gatehouse_core::mail::EmailText {
            subject: kind.key().to_string(),
            body: code.unwrap_or_default().to_string(),
        }
    }
}

/// The administrators' digest lists the accounts with new detections since the last one,
/// with their highest level and kinds, once a day across instances, and says nothing when
/// there is nothing new.
#[tokio::test]
async fn administrators_get_a_daily_digest_of_the_accounts_with_new_detections() {
    let server = TestServer::start().await;
    server.admin_browser("Ada Admin", "admin@example.com").await;
    server
        .signed_up("Risky One", "one@example.com", PASSWORD)
        .await;
    server
        .signed_up("Risky Two", "two@example.com", PASSWORD)
        .await;
    let one = server.user("one@example.com").await;
    let two = server.user("two@example.com").await;
    let identity = &server.state.identity;
    let record =
        |user: &gatehouse_core::store::User, id: &str, kind: &str, level: &str, at: i64| {
            DetectionRecord {
                id: id.into(),
                user_id: user.id.clone(),
                sign_in_id: None,
                kind: kind.into(),
                level: level.into(),
                timing: "real-time".into(),
                detected_at: at,
                state: "at-risk".into(),
                evidence: "{}".into(),
                summary: "Test.".into(),
                updated_at: at,
            }
        };
    let now = server.state.now();
    for d in [
        record(&one, "d1", "anonymous-ip", "medium", now - 3_000),
        record(&one, "d2", "leaked-credentials", "high", now - 2_000),
        record(&two, "d3", "unfamiliar-features", "low", now - 1_000),
    ] {
        server
            .store
            .record_detection(&d, &format!("c-{}", d.id), None, "test")
            .await
            .unwrap();
    }
    let digests = || async {
        server
            .store
            .messages_for("admin@example.com")
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.subject == "risk_digest")
            .collect::<Vec<_>>()
    };
    assert_eq!(
        identity
            .run_risk_digest("instance-a", &PlainTexts, now)
            .await
            .unwrap(),
        Some(2)
    );
    let sent = digests().await;
    assert_eq!(sent.len(), 1);
    let body = &sent[0].body;
    assert!(
        body.contains("- two@example.com: low (Unfamiliar sign-in properties)"),
        "{body}"
    );
    assert!(
        body.contains("- one@example.com: high (Leaked credentials, Anonymous IP address)"),
        "{body}"
    );
    assert!(body.contains("/admin/risk/users"), "{body}");

    // Not again the same day, from this instance or another.
    server.clock.advance_ms(HOUR);
    let later = server.state.now();
    assert_eq!(
        identity
            .run_risk_digest("instance-b", &PlainTexts, later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(digests().await.len(), 1);

    // A day later with nothing new: no email.
    server.clock.advance_ms(DAY);
    let next_day = server.state.now();
    assert_eq!(
        identity
            .run_risk_digest("instance-b", &PlainTexts, next_day)
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(digests().await.len(), 1);

    // Another day: only what is new since.
    server.clock.advance_ms(DAY);
    let third = server.state.now();
    let d = record(&two, "d4", "brute-force", "medium", third - 1_000);
    server
        .store
        .record_detection(&d, "c-d4", None, "test")
        .await
        .unwrap();
    assert_eq!(
        identity
            .run_risk_digest("instance-a", &PlainTexts, third)
            .await
            .unwrap(),
        Some(1)
    );
    let sent = digests().await;
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0]
            .body
            .contains("- two@example.com: medium (Password guessed after many failures)"),
        "{}",
        sent[0].body
    );
    assert!(!sent[0].body.contains("one@example.com"));
}
