//! Password sign-in throughput against its physical limit.
//!
//! Prints, in one run: Argon2id (19 MiB, t=2, p=1) hashes per second on all cores; password
//! sign-ins per second end to end through the real server on loopback (form post, throttle,
//! hash, session row, sign-in log row, cookie); and their ratio. Run with
//! `cargo bench -p gatehouse --bench sign_in`.
// A benchmark stops at the first setup failure; there is nothing to recover.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::clock::SystemClock;
use gatehouse_core::secret::SecretString;
use gatehouse_core::store::testing::fresh_sqlite_url;
use gatehouse_server::config::Config;
use gatehouse_server::{build_state, http};

const MEASURE: Duration = Duration::from_secs(8);
const USERS: usize = 32;
const PASSWORD: &str = "benchmark-passphrase-2026";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    // 1. The physical limit: raw Argon2id hashes on every core.
    let hasher =
        gatehouse_core::hashing::PasswordHasher::new(cores, cores * 4, Duration::from_secs(30))
            .expect("hasher");
    let stored = hasher
        .hash(&SecretString::new(PASSWORD))
        .await
        .expect("hash");
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..cores {
        let (h, s, d) = (hasher.clone(), stored.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while start.elapsed() < MEASURE {
                let _ = h.verify(&SecretString::new(PASSWORD), Some(&s)).await;
                d.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let hashes_per_s = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();

    // 2. End to end through the real server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let data_dir = std::env::temp_dir().join(format!("gatehouse-bench-{port}"));
    let database_url = fresh_sqlite_url();
    let vars: HashMap<&str, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL", database_url.clone()),
        ("GATEHOUSE_PUBLIC_URL", format!("http://localhost:{port}")),
        ("GATEHOUSE_DATA_DIR", data_dir.display().to_string()),
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
    let store = gatehouse_core::store::Store::connect(&database_url, 2)
        .await
        .expect("store");
    for i in 0..USERS {
        let id = format!("bench-user-{i}");
        let email = format!("bench{i}@example.com");
        store
            .create_user(&gatehouse_core::store::NewUser {
                id: &id,
                email: &email,
                display_name: "Bench",
                password_hash: Some(&hash),
                is_admin: false,
                now: 0,
            })
            .await
            .expect("user");
    }
    let serving = state.clone();
    tokio::spawn(async move { http::serve(listener, serving, std::future::pending()).await });
    let base = format!("http://localhost:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..USERS {
        let (client, base, ok, other) = (client.clone(), base.clone(), ok.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            let email = format!("bench{i}@example.com");
            let ip = format!("10.9.{}.{}", i / 250, i % 250 + 1);
            while start.elapsed() < MEASURE {
                let r = client
                    .post(format!("{base}/sign-in"))
                    .header("origin", &base)
                    .header("x-forwarded-for", &ip)
                    .form(&[("email", email.as_str()), ("password", PASSWORD)])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::SEE_OTHER => {
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sign_ins_per_s = ok.load(Ordering::Relaxed) as f64 / elapsed;
    println!("cores: {cores}");
    println!("argon2id hashes per second (all cores): {hashes_per_s:.1}");
    println!("password sign-ins per second (end to end): {sign_ins_per_s:.1}");
    println!("shed or failed requests: {}", other.load(Ordering::Relaxed));
    println!(
        "ratio sign-ins / hashes: {:.2}",
        sign_ins_per_s / hashes_per_s.max(f64::MIN_POSITIVE)
    );
}
