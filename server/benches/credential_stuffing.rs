//! Credential stuffing against the real server (SECURITY.md B2, a nightly-tier load run):
//! 1,000 accounts × 3 wrong passwords from 50 source addresses (through the trusted-proxy
//! header), while one legitimate customer keeps signing in. Prints how many wrong passwords got
//! in (must be 0; the run fails otherwise), how often the per-IP and per-account throttles and
//! the hashing queue answered, and the legitimate customer's latency percentiles.
//! Run with `cargo bench -p gatehouse --bench credential_stuffing`.
// A load run stops at the first setup failure; there is nothing to recover.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::clock::SystemClock;
use gatehouse_core::secret::SecretString;
use gatehouse_core::store::testing::fresh_sqlite_url;
use gatehouse_core::store::{NewUser, Store};
use gatehouse_server::config::Config;
use gatehouse_server::{build_state, http};

const ACCOUNTS: usize = 1_000;
const GUESSES_PER_ACCOUNT: usize = 3;
const SOURCE_IPS: usize = 50;
const ATTACK_CONNECTIONS: usize = 32;
const PASSWORD: &str = "the-real-passphrase-2026";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let wrong_successes = runtime.block_on(run());
    if wrong_successes > 0 {
        std::process::exit(1);
    }
}

async fn run() -> u64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let database_url = fresh_sqlite_url();
    let vars: HashMap<&str, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL", database_url.clone()),
        ("GATEHOUSE_PUBLIC_URL", format!("http://localhost:{port}")),
        (
            "GATEHOUSE_DATA_DIR",
            std::env::temp_dir()
                .join(format!("gatehouse-stuffing-{port}"))
                .display()
                .to_string(),
        ),
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1/32".into()),
    ]);
    let config = Config::load(None, &move |k| vars.get(k).cloned()).expect("config");
    let state = build_state(config, Arc::new(SystemClock))
        .await
        .expect("state");
    let hash = state
        .identity
        .hasher()
        .hash(&SecretString::new(PASSWORD))
        .await
        .expect("hash");
    let store = Store::connect(&database_url, 2).await.expect("store");
    for i in 0..=ACCOUNTS {
        let (id, email) = (format!("user-{i}"), format!("user{i}@example.com"));
        let user = NewUser {
            id: &id,
            email: &email,
            display_name: "Customer",
            password_hash: Some(&hash),
            is_admin: false,
            now: 0,
        };
        store.create_user(&user).await.expect("user");
    }
    let serving = state.clone();
    tokio::spawn(async move { http::serve(listener, serving, std::future::pending()).await });
    let base = format!("http://localhost:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let counts: Arc<[AtomicU64; 5]> = Arc::new(Default::default()); // signed in, 401, 429, 503, other
    let attack_over = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let attackers: Vec<_> = (0..ATTACK_CONNECTIONS)
        .map(|worker| {
            let (client, base, counts) = (client.clone(), base.clone(), counts.clone());
            tokio::spawn(async move {
                let mut n = worker;
                while n < ACCOUNTS * GUESSES_PER_ACCOUNT {
                    let (account, guess) = (n / GUESSES_PER_ACCOUNT, n % GUESSES_PER_ACCOUNT);
                    let ip = format!("203.0.113.{}", n % SOURCE_IPS + 1);
                    let r = client
                        .post(format!("{base}/sign-in"))
                        .header("origin", &base)
                        .header("x-forwarded-for", ip)
                        .form(&[
                            ("email", format!("user{account}@example.com")),
                            ("password", format!("leaked-guess-{guess}")),
                        ])
                        .send()
                        .await;
                    let slot = match r.map(|r| r.status().as_u16()) {
                        Ok(303) => 0,
                        Ok(401) => 1,
                        Ok(429) => 2,
                        Ok(503) => 3,
                        _ => 4,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                    n += ATTACK_CONNECTIONS;
                }
            })
        })
        .collect();
    let legitimate = {
        let (client, base, attack_over) = (client.clone(), base.clone(), attack_over.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while !attack_over.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/sign-in"))
                    .header("origin", &base)
                    .header("x-forwarded-for", "198.51.100.77")
                    .form(&[("email", "user1000@example.com"), ("password", PASSWORD)])
                    .send()
                    .await;
                latencies.push(t.elapsed());
                if !matches!(r.map(|r| r.status().as_u16()), Ok(303)) {
                    failures += 1;
                }
            }
            (latencies, failures)
        })
    };
    for a in attackers {
        let _ = a.await;
    }
    let elapsed = started.elapsed();
    attack_over.store(true, Ordering::Relaxed);
    let (mut latencies, legit_failures) = legitimate.await.expect("legitimate customer");
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(Duration::ZERO)
    };
    let c: Vec<u64> = counts.iter().map(|x| x.load(Ordering::Relaxed)).collect();
    println!(
        "attack: {} guesses on {ACCOUNTS} accounts from {SOURCE_IPS} addresses in {:.1} s",
        ACCOUNTS * GUESSES_PER_ACCOUNT,
        elapsed.as_secs_f64()
    );
    println!("wrong passwords that signed in: {}", c[0]);
    println!("evaluated and refused (401): {}", c[1]);
    println!("throttled per IP or account (429): {}", c[2]);
    println!("shed by the hashing queue (503): {}", c[3]);
    println!("other outcomes: {}", c[4]);
    println!(
        "legitimate customer: {} sign-ins, {} not signed in, p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        latencies.len(),
        legit_failures,
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.95).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or(Duration::ZERO).as_secs_f64() * 1000.0
    );
    c[0]
}
