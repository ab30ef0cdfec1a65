//! The database's summary of an account's sign-in history equals the summary computed from
//! the rows one by one: for random histories (places with and without a city, missing
//! networks and devices, repeated addresses, equal times, rows in the future, failures and
//! other accounts' rows mixed in) on SQLite, and on PostgreSQL when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::risk::{history_of_summary, properties_of_row, RecentSignIns, SignInHistory};
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_core::store::{NewUser, SignInLogEntry, Store};
use proptest::prelude::*;

const LIMIT: usize = 12;

#[derive(Debug, Clone)]
struct Row {
    at: i64,
    ip: u8,
    place: Option<(u8, bool)>,
    asn: Option<u8>,
    browser: Option<u8>,
    device: Option<u8>,
    success: bool,
    other_account: bool,
}

fn row() -> impl Strategy<Value = Row> {
    (
        0i64..40,
        0u8..4,
        proptest::option::of((0u8..3, any::<bool>())),
        proptest::option::of(0u8..3),
        proptest::option::of(0u8..2),
        proptest::option::of(0u8..3),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(at, ip, place, asn, browser, device, success, other_account)| Row {
                at: at * 1_000,
                ip,
                place,
                asn,
                browser,
                device,
                success,
                other_account,
            },
        )
}

fn entry(case: u32, i: usize, r: &Row) -> SignInLogEntry {
    let countries = ["FR", "AU", "US"];
    let cities = ["Paris", "Sydney", "Boston"];
    SignInLogEntry {
        id: format!("c{case:03}-r{i:03}"),
        occurred_at: r.at,
        user_id: Some(format!("{}{case}", if r.other_account { "b" } else { "a" })),
        email: "ada@example.com".into(),
        application: "account".into(),
        client_ip: format!("192.0.2.{}", r.ip),
        user_agent: "ua".into(),
        method: "password".into(),
        result: if r.success { "success" } else { "failure" }.into(),
        country: r.place.map(|(c, _)| countries[c as usize].into()),
        city: r
            .place
            .and_then(|(c, with_city)| with_city.then(|| cities[c as usize].into())),
        latitude_e6: r.place.map(|(c, _)| 10_000_000 * i64::from(c) - 33_000_000),
        longitude_e6: r.place.map(|(c, _)| 50_000_000 * i64::from(c) + 2_000_000),
        accuracy_km: r.place.map(|_| 20),
        asn: r.asn.map(|a| 64_500 + i64::from(a)),
        browser: r.browser.map(|b| ["Firefox", "Chrome"][b as usize].into()),
        os: Some("Linux".into()),
        device: r.device.map(|d| format!("device-{d}")),
        ..SignInLogEntry::default()
    }
}

/// The history computed from the rows one by one: the account's newest `LIMIT` successes.
fn by_hand(rows: &[SignInLogEntry], user: &str, now: i64) -> SignInHistory {
    let mut mine: Vec<&SignInLogEntry> = rows
        .iter()
        .filter(|e| e.user_id.as_deref() == Some(user) && e.result == "success")
        .collect();
    mine.sort_by(|a, b| (b.occurred_at, &b.id).cmp(&(a.occurred_at, &a.id)));
    RecentSignIns {
        first_at: mine.last().map(|e| e.occurred_at),
        recent: mine
            .iter()
            .take(LIMIT)
            .map(|e| properties_of_row(e))
            .collect(),
    }
    .summary(now)
}

/// The same history with its lists in one order (the database groups in its own).
fn sorted(mut h: SignInHistory) -> SignInHistory {
    h.seen.asns.sort_unstable();
    h.seen.countries.sort();
    h.seen.browsers.sort();
    h.seen.oses.sort();
    h.seen.devices.sort();
    h.seen.places.sort();
    h.seen.addresses.sort();
    h
}

async fn stores() -> Vec<Store> {
    let mut urls = vec![fresh_sqlite_url()];
    match postgres_url() {
        Some(base) => urls.push(fresh_postgres_url(&base).await.unwrap()),
        None => {
            eprintln!("PostgreSQL history tests skipped: GATEHOUSE_TEST_POSTGRES_URL is not set")
        }
    }
    let mut out = Vec::new();
    for url in urls {
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        out.push(store);
    }
    out
}

#[test]
fn the_databases_summary_of_a_history_equals_the_summary_of_its_rows() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stores = runtime.block_on(stores());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let cases = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(
            &(prop::collection::vec(row(), 0..30), 0i64..45),
            |(rows, now_s)| {
                let case = cases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Each case has accounts of its own, so it starts from an empty history.
                let (user, other) = (format!("a{case}"), format!("b{case}"));
                let entries: Vec<SignInLogEntry> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| entry(case, i, r))
                    .collect();
                let now = now_s * 1_000;
                let expected = sorted(by_hand(&entries, &user, now));
                for store in &stores {
                    let got = runtime.block_on(async {
                        for id in [&user, &other] {
                            store
                                .create_user(&NewUser {
                                    id,
                                    email: &format!("{id}@example.com"),
                                    display_name: id,
                                    password_hash: None,
                                    is_admin: false,
                                    now: 0,
                                })
                                .await
                                .unwrap();
                        }
                        store.record_sign_ins(&entries).await.unwrap();
                        store
                            .sign_in_summary(&user, LIMIT as i64, now)
                            .await
                            .unwrap()
                    });
                    prop_assert_eq!(sorted(history_of_summary(&got)), expected.clone());
                }
                Ok(())
            },
        )
        .unwrap();
}
