//! Impact replay at scale: a draft policy replayed over 100,000 logged sign-ins (1,000 accounts,
//! 8 applications, 30 days, a mix of methods, platforms and addresses) on SQLite, and on
//! PostgreSQL when `GATEHOUSE_TEST_POSTGRES_URL` is set. Prints the replay time of each run
//! against the target of 2 s.

#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use gatehouse_core::conditional_access::{
    Assignments, Conditions, Control, Grant, LocationCondition, LocationScope, NamedLocation,
    Platform, Policy, PolicyState, SessionControls, Targets,
};
use gatehouse_core::hashing::PasswordHasher;
use gatehouse_core::identity::{Identity, IdentityConfig};
use gatehouse_core::mail::DevelopmentOutbox;
use gatehouse_core::secret::SecretKey;
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_core::store::{SignInLogEntry, Store};

const ROWS: usize = 100_000;
const DAY_MS: i64 = 86_400_000;
const TARGET_S: f64 = 2.0;

fn rows(now: i64) -> Vec<SignInLogEntry> {
    let agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    ];
    let methods = [
        "password",
        "email_code",
        "passkey",
        "password+totp",
        "sso",
        "provider:google",
    ];
    (0..ROWS)
        .map(|i| SignInLogEntry {
            id: format!("row-{i:07}"),
            occurred_at: now - 30 * DAY_MS + (i as i64) * (30 * DAY_MS / ROWS as i64),
            user_id: Some(format!("user-{}", i % 1000)),
            email: format!("user{}@example.com", i % 1000),
            application: format!("app-{}", i % 8),
            client_ip: if i % 10 == 0 {
                format!("198.51.100.{}", i % 250)
            } else {
                format!("10.{}.{}.{}", i % 7, i % 200, i % 250)
            },
            user_agent: agents[i % agents.len()].into(),
            method: methods[i % methods.len()].into(),
            result: "success".into(),
            failure_reason: None,
            session_id: None,
            policies: None,
            ..Default::default()
        })
        .collect()
}

fn draft() -> Policy {
    Policy {
        id: "draft".into(),
        name: "Draft".into(),
        state: PolicyState::ReportOnly,
        assignments: Assignments {
            all_users: true,
            exclude_users: vec!["user-7".into()],
            ..Assignments::default()
        },
        targets: Targets {
            all_applications: true,
            exclude_applications: vec!["app-3".into()],
            ..Targets::default()
        },
        conditions: Conditions {
            platforms: vec![
                Platform::Windows,
                Platform::Ios,
                Platform::Android,
                Platform::Linux,
            ],
            locations: Some(LocationCondition {
                include: LocationScope::Any,
                exclude_trusted: true,
                ..LocationCondition::default()
            }),
            ..Conditions::default()
        },
        grant: Grant::Require {
            controls: vec![Control::Mfa],
            require_all: false,
        },
        session: SessionControls::default(),
    }
}

async fn run(label: &str, url: &str) {
    let store = Store::connect(url, 4).await.expect("connect");
    store.migrate().await.expect("migrate");
    let now = 1_800_000_000_000;
    for chunk in rows(now).chunks(5_000) {
        store.record_sign_ins(chunk).await.expect("rows");
    }
    let identity = Identity::new(
        store,
        PasswordHasher::for_this_machine().expect("hasher"),
        SecretKey::generate(),
        Arc::new(DevelopmentOutbox),
        Arc::new(DevelopmentOutbox),
        IdentityConfig::default(),
    )
    .expect("identity");
    identity
        .save_location(
            &NamedLocation {
                id: "office".into(),
                name: "Office".into(),
                trusted: true,
                ranges: vec!["10.0.0.0/16".parse().expect("range")],
                countries: vec![],
            },
            now,
        )
        .await
        .expect("location");
    let policy = draft();
    let mut best = f64::MAX;
    let mut report = None;
    for _ in 0..3 {
        let started = Instant::now();
        let r = identity
            .policy_impact(&policy, 30, now)
            .await
            .expect("impact");
        best = best.min(started.elapsed().as_secs_f64());
        report = Some(r);
    }
    let r = report.expect("a run");
    println!(
        "impact replay ({label}): {} sign-ins in {best:.3} s (best of 3), target {TARGET_S:.1} s: ratio {:.2} of the limit; {} challenged, {} users",
        r.sign_ins,
        best / TARGET_S,
        r.challenged,
        r.users_challenged
    );
    identity.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run("SQLite", &fresh_sqlite_url()).await;
    match postgres_url() {
        Some(base) => {
            let url = fresh_postgres_url(&base).await.expect("postgres database");
            run("PostgreSQL", &url).await;
        }
        None => {
            println!("impact replay (PostgreSQL): skipped, GATEHOUSE_TEST_POSTGRES_URL is not set")
        }
    }
}
