//! The added latency of the real-time detections at one sign-in: reading the account's sign-in
//! profile (one row its successful sign-ins keep up to date; 10,000 of them are logged over a
//! year, and the log's summary of the newest 200 is timed too, as read for an account whose
//! profile does not exist yet), the GeoIP
//! and ASN lookups of the address, and the detections themselves (address lists, atypical
//! travel, unfamiliar properties), as `Identity::assess_attempt` runs them before the decision
//! step, on SQLite, and on PostgreSQL when `GATEHOUSE_TEST_POSTGRES_URL` is set. GeoIP and ASN data come from `GATEHOUSE_BENCH_GEOIP` and
//! `GATEHOUSE_BENCH_ASN`, else `./data/geoip` and `./data/asn` when installed
//! (`server/scripts/geo-install`); without them the lookups are skipped and the output says so.
//! Prints the 50th and 99th percentile of 2,000 attempts against the target of 1 ms.

#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use gatehouse_core::geo::{AsnDb, GeoIp};
use gatehouse_core::hashing::PasswordHasher;
use gatehouse_core::identity::{Identity, IdentityConfig, RequestContext};
use gatehouse_core::mail::{DevelopmentOutbox, EmailKind, EmailText, EmailTexts};
use gatehouse_core::secret::SecretKey;
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_core::store::{NewUser, SignInLogEntry, Store};

const HISTORY: usize = 10_000;
const ATTEMPTS: usize = 2_000;
const TARGET_MS: f64 = 1.0;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug)]
struct NoTexts;

impl EmailTexts for NoTexts {
    fn compose(&self, _kind: EmailKind, _code: Option<&str>) -> EmailText {
        EmailText {
            subject: String::new(),
            body: String::new(),
        }
    }
}

fn data_file(variable: &str, default: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(default)))
        .filter(|p| p.exists())
}

/// A year of successful sign-ins of one account from a handful of places and browsers.
fn history(user_id: &str, now: i64) -> Vec<SignInLogEntry> {
    let places = [
        ("FR", "Paris", 48_856_600, 2_352_200, 3215),
        ("FR", "Lyon", 45_764_000, 4_835_700, 12322),
        ("DE", "Berlin", 52_520_000, 13_405_000, 3320),
        ("GB", "London", 51_507_400, -127_800, 2856),
    ];
    let browsers = [
        ("Chrome", "Windows 10"),
        ("Safari", "iPhone"),
        ("Firefox", "Linux"),
    ];
    (0..HISTORY)
        .map(|i| {
            let (country, city, lat, lon, asn) = places[i % places.len()];
            let (browser, os) = browsers[i % browsers.len()];
            SignInLogEntry {
                id: format!("h{i:06}"),
                occurred_at: now - 365 * DAY_MS + (i as i64) * (365 * DAY_MS / HISTORY as i64),
                user_id: Some(user_id.into()),
                email: "bench@example.com".into(),
                application: "account".into(),
                client_ip: format!("192.0.2.{}", i % 250 + 1),
                user_agent: "Mozilla/5.0".into(),
                method: "password".into(),
                result: "success".into(),
                country: Some(country.into()),
                city: Some(city.into()),
                latitude_e6: Some(lat),
                longitude_e6: Some(lon),
                accuracy_km: Some(20),
                asn: Some(asn),
                browser: Some(browser.into()),
                os: Some(os.into()),
                device: Some(format!("device-{}", i % 3)),
                ..Default::default()
            }
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run("SQLite", fresh_sqlite_url()).await;
    match postgres_url() {
        Some(base) => {
            let url = fresh_postgres_url(&base)
                .await
                .expect("create the PostgreSQL database");
            run("PostgreSQL", url).await;
        }
        None => println!("PostgreSQL skipped: GATEHOUSE_TEST_POSTGRES_URL is not set"),
    }
}

async fn run(backend: &str, url: String) {
    let store = Store::connect(&url, 4).await.expect("connect");
    store.migrate().await.expect("migrate");
    let now = 1_800_000_000_000;
    store
        .create_user(&NewUser {
            id: "bench-user",
            email: "bench@example.com",
            display_name: "Bench",
            password_hash: None,
            is_admin: false,
            now: now - 366 * DAY_MS,
        })
        .await
        .expect("user");
    for chunk in history("bench-user", now).chunks(5_000) {
        store.record_sign_ins(chunk).await.expect("history");
    }
    let user = store
        .find_user("bench-user")
        .await
        .expect("read")
        .expect("the user");
    let geoip = data_file("GATEHOUSE_BENCH_GEOIP", "data/geoip")
        .map(|p| Arc::new(GeoIp::open(&p).expect("the GeoIP database opens")));
    let asn = data_file("GATEHOUSE_BENCH_ASN", "data/asn")
        .map(|p| Arc::new(AsnDb::open(&p).expect("the ASN data opens")));
    let data = match (&geoip, &asn) {
        (Some(_), Some(_)) => "GeoIP and ASN loaded",
        (Some(_), None) => "GeoIP loaded, no ASN data",
        (None, Some(_)) => "ASN loaded, no GeoIP database",
        (None, None) => "no GeoIP or ASN data (install with server/scripts/geo-install)",
    };
    let history_store = store.clone();
    let identity = Identity::new(
        store,
        PasswordHasher::for_this_machine().expect("hasher"),
        SecretKey::generate(),
        Arc::new(DevelopmentOutbox),
        Arc::new(DevelopmentOutbox),
        IdentityConfig::default(),
    )
    .expect("identity")
    .with_geoip(geoip)
    .with_asn(asn);
    let ips = [
        "81.2.69.160",
        "89.160.20.112",
        "2.125.160.216",
        "175.16.199.1",
    ];
    let agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    ];
    // Before its first sign-in since the upgrade, an account has no profile: the log's
    // summary of its newest 200 sign-ins is read instead.
    let mut summaries = Vec::with_capacity(ATTEMPTS);
    for _ in 0..ATTEMPTS {
        let started = Instant::now();
        history_store
            .sign_in_summary("bench-user", 200, now)
            .await
            .expect("history");
        summaries.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    // One successful sign-in then starts its profile, which every later one reads.
    let seen = SignInLogEntry {
        id: "first-after-upgrade".into(),
        occurred_at: now - 1_000,
        ..history("bench-user", now).pop().expect("a row")
    };
    let props = gatehouse_core::risk::properties_of_row(&seen);
    history_store
        .record_successful_sign_in(&seen, 200, &|seed| {
            gatehouse_core::risk::updated_profile(seed, &props, now)
        })
        .await
        .expect("the profile");
    let mut times = Vec::with_capacity(ATTEMPTS);
    let mut findings = 0;
    for i in 0..ATTEMPTS + 100 {
        let ctx = RequestContext {
            application: "account".into(),
            client_ip: ips[i % ips.len()].into(),
            user_agent: agents[i % agents.len()].into(),
            product_name: "Gatehouse".into(),
            emails: Arc::new(NoTexts),
            device: Some(format!("device-{}", i % 5)),
            policy_results: None,
            sign_in_id: None,
            sign_in_risk: None,
        };
        let started = Instant::now();
        let found = identity
            .assess_attempt(&ctx, &user, now + i as i64 * 1_000)
            .await
            .expect("assess");
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        // The first 100 warm the caches and the connection pool.
        if i >= 100 {
            times.push(elapsed);
            findings += found.len();
        }
    }
    // The part of it that reads the profile from the database.
    let mut reads = Vec::with_capacity(ATTEMPTS);
    for _ in 0..ATTEMPTS {
        let started = Instant::now();
        history_store
            .sign_in_profile("bench-user")
            .await
            .expect("profile")
            .expect("the account has a profile");
        reads.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    reads.sort_by(f64::total_cmp);
    summaries.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let r = |q: f64| reads[((reads.len() as f64 * q) as usize).min(reads.len() - 1)];
    let l = |q: f64| summaries[((summaries.len() as f64 * q) as usize).min(summaries.len() - 1)];
    println!(
        "real-time detections per sign-in ({backend}, {HISTORY} history rows, {data}): p50 {:.3} ms, p99 {:.3} ms, target {TARGET_MS:.1} ms: ratio {:.2} of the limit; {findings} findings in {ATTEMPTS} attempts",
        p(0.50),
        p(0.99),
        p(0.99) / TARGET_MS
    );
    println!(
        "  of which reading the account's sign-in profile (one row): p50 {:.3} ms, p99 {:.3} ms",
        r(0.50),
        r(0.99)
    );
    println!(
        "  before an account's first sign-in since the upgrade, the log's summary of its newest 200 instead: p50 {:.3} ms, p99 {:.3} ms",
        l(0.50),
        l(0.99)
    );
    identity.close().await;
}
