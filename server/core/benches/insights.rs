//! The insights dashboards and their rollup at scale: a year of generated sign-ins
//! (`GATEHOUSE_BENCH_SIGN_INS`, 10 million by default, over `GATEHOUSE_BENCH_USERS` accounts,
//! 1 million by default) written to the sign-in log, counted by the rollup job from scratch,
//! then a minute of new rows at 500 sign-ins/s counted as the job does every minute; then each
//! dashboard (users, authentications, MFA, security) read 20 times for the last 30 days (Europe/Paris), the last 90 days
//! (Asia/Kolkata, half an hour off UTC) and the last 12 months (America/New_York), for all
//! applications and for one. On SQLite, and on PostgreSQL when
//! `GATEHOUSE_TEST_POSTGRES_URL` is set. Prints the rates and the 50th and 95th percentiles
//! against the targets (rollup at least 500 rows/s, each dashboard under 200 ms at p95), and
//! the active-user estimates against an exact count over the log: their error and the time
//! each takes.

#![allow(clippy::expect_used)]

use std::time::Instant;

use gatehouse_core::generate::{self, Plan};
use gatehouse_core::identity::insights::{self as reports, authentications, mfa, policies, risks};
use gatehouse_core::insights::{self, Period};
use gatehouse_core::store::testing::{fresh_postgres_url, fresh_sqlite_url, postgres_url};
use gatehouse_core::store::{NewUser, SignInLogEntry, Store};

const DAY_MS: i64 = 86_400_000;
const WRITE_BATCH: usize = 5_000;
const ROLLUP_BATCH: i64 = 5_000;
const RUNS: usize = 20;
const TARGET_P95_MS: f64 = 200.0;
const TARGET_ROWS_PER_S: f64 = 500.0;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn write(store: &Store, rows: impl Iterator<Item = SignInLogEntry>) -> u64 {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut n = 0;
    for e in rows {
        batch.push(e);
        if batch.len() == WRITE_BATCH {
            store.record_sign_ins(&batch).await.expect("write");
            n += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.record_sign_ins(&batch).await.expect("write");
        n += batch.len() as u64;
    }
    n
}

async fn roll_up_all(store: &Store, now: i64) -> (u64, f64) {
    let started = Instant::now();
    let mut rows = 0;
    loop {
        let run = insights::roll_up(store, now, ROLLUP_BATCH, 200)
            .await
            .expect("rollup");
        rows += run.rows;
        if run.caught_up {
            break;
        }
    }
    (rows, started.elapsed().as_secs_f64())
}

async fn bench(name: &str, store: &Store) {
    let sign_ins = setting("GATEHOUSE_BENCH_SIGN_INS", 10_000_000);
    let users = setting("GATEHOUSE_BENCH_USERS", 1_000_000);
    let now = 1_796_083_200_000; // 2026-12-01T00:00Z
    let plan = Plan {
        users,
        sign_ins,
        days: 365,
        until: now,
        seed: 11,
    };
    let apps: Vec<String> = ["account", "shop", "partner", "support"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The accounts first: users are counted only while their account exists.
    let accounts: Vec<generate::GeneratedUser> = generate::users(&plan, 0).collect();
    for chunk in accounts.chunks(WRITE_BATCH) {
        let rows: Vec<NewUser<'_>> = chunk.iter().map(|u| u.as_new_user()).collect();
        store.create_users(&rows).await.expect("accounts");
    }
    let started = Instant::now();
    let written = write(store, generate::sign_ins(&plan, 0, &apps)).await;
    let write_s = started.elapsed().as_secs_f64();
    println!(
        "{name}: wrote {written} sign-ins over 365 days for {users} accounts in {write_s:.1} s ({:.0} rows/s)",
        written as f64 / write_s
    );
    let (rows, secs) = roll_up_all(store, now).await;
    let rate = rows as f64 / secs;
    println!(
        "{name}: rollup from scratch: {rows} rows in {secs:.1} s = {rate:.0} rows/s (target {TARGET_ROWS_PER_S:.0}: {:.1}x)",
        rate / TARGET_ROWS_PER_S
    );
    // One minute at 500 sign-ins/s, counted as the job does each minute.
    let minute = Plan {
        sign_ins: 30_000,
        days: 1,
        until: now + DAY_MS,
        seed: 12,
        ..plan
    };
    write(store, generate::sign_ins(&minute, 0, &apps)).await;
    let (rows, secs) = roll_up_all(store, now + DAY_MS).await;
    let rate = rows as f64 / secs;
    println!(
        "{name}: one minute of new rows: {rows} rows in {secs:.2} s = {rate:.0} rows/s (target {TARGET_ROWS_PER_S:.0}: {:.1}x)",
        rate / TARGET_ROWS_PER_S
    );
    let views: [(&str, Vec<Period>); 3] = [
        (
            "30 days, Europe/Paris",
            insights::days(now, 30, &insights::zone("Europe/Paris").expect("zone")),
        ),
        (
            "90 days, Asia/Kolkata",
            insights::days(now, 90, &insights::zone("Asia/Kolkata").expect("zone")),
        ),
        (
            "12 months, America/New_York",
            insights::months(now, 12, &insights::zone("America/New_York").expect("zone")),
        ),
    ];
    let year = insights::months(now, 12, &insights::zone("America/New_York").expect("zone"));
    // Distinct users: the sketches against an exact COUNT(DISTINCT) over the sign-in log, for
    // the same periods (what exact sets would have to read whole each time).
    for (label, periods) in &views {
        for app in [None, Some("shop")] {
            let t = Instant::now();
            let report = reports::users(store, periods, &year, now, app)
                .await
                .expect("report");
            let sketch_ms = t.elapsed().as_secs_f64() * 1000.0;
            let t = Instant::now();
            let mut exact = Vec::with_capacity(periods.len());
            for p in periods.iter() {
                exact.push(
                    store
                        .distinct_signed_in(p.from, p.to, app)
                        .await
                        .expect("exact"),
                );
            }
            let exact_ms = t.elapsed().as_secs_f64() * 1000.0;
            let worst = report
                .active
                .cells
                .iter()
                .zip(&exact)
                .map(|(c, e)| (c[0] - e).abs() as f64 / (*e).max(1) as f64)
                .fold(0.0, f64::max);
            println!(
                "{name}: active users, {label:<30} {:<6} sketches {sketch_ms:>8.1} ms (whole dashboard), exact COUNT(DISTINCT) {exact_ms:>9.1} ms ({:.1}x), largest error {:.2}%",
                app.unwrap_or("all"),
                exact_ms / sketch_ms.max(0.001),
                worst * 100.0
            );
        }
    }
    println!(
        "{name}: {:<30} {:<16} {:<10} {:>8} {:>8} {:>8}",
        "period", "dashboard", "apps", "p50 ms", "p95 ms", "p95/200"
    );
    for (label, periods) in &views {
        for app in [None, Some("shop")] {
            for dashboard in ["users", "authentications", "mfa", "security"] {
                let mut times = Vec::with_capacity(RUNS);
                for _ in 0..RUNS {
                    let t = Instant::now();
                    match dashboard {
                        "users" => {
                            reports::users(store, periods, &year, now, app)
                                .await
                                .expect("report");
                        }
                        "authentications" => {
                            authentications(store, periods, app).await.expect("report");
                        }
                        "mfa" => {
                            mfa(store, periods, app).await.expect("report");
                        }
                        _ => {
                            policies(store, periods, app).await.expect("report");
                            risks(store, periods).await.expect("report");
                        }
                    }
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                times.sort_by(f64::total_cmp);
                let p95 = percentile(&times, 0.95);
                println!(
                    "{name}: {label:<30} {dashboard:<16} {:<10} {:>8.1} {p95:>8.1} {:>8.2}",
                    app.unwrap_or("all"),
                    percentile(&times, 0.5),
                    p95 / TARGET_P95_MS
                );
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "insights benchmark on {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let sqlite = Store::connect(&fresh_sqlite_url(), 4)
            .await
            .expect("sqlite");
        sqlite.migrate().await.expect("migrate");
        bench("sqlite", &sqlite).await;
        match postgres_url() {
            Some(base) => {
                let url = fresh_postgres_url(&base).await.expect("postgres database");
                let pg = Store::connect(&url, 8).await.expect("postgres");
                pg.migrate().await.expect("migrate");
                bench("postgres", &pg).await;
            }
            None => println!("postgres: skipped (GATEHOUSE_TEST_POSTGRES_URL is not set)"),
        }
    });
}
