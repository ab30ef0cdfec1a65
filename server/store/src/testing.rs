//! Support for tests of this crate and of the crates above it: a fresh, empty database on
//! either backend. PostgreSQL is used when `GATEHOUSE_TEST_POSTGRES_URL` is set.

use std::str::FromStr;

use sqlx::any::AnyConnectOptions;
use sqlx::{Connection, Executor};

/// The PostgreSQL server for tests, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

fn random_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), t % 1_000_000_000_000, n)
}

/// A URL for a new, empty SQLite database file in the system's temporary folder.
pub fn fresh_sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("gatehouse-test-{}", random_suffix()));
    let _ = std::fs::create_dir_all(&dir);
    format!("sqlite://{}?mode=rwc", dir.join("test.db").display())
}

/// Creates a new, empty PostgreSQL database on the test server and returns its URL.
pub async fn fresh_postgres_url(base: &str) -> Result<String, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let name = format!("gatehouse_test_{}", random_suffix());
    let options = AnyConnectOptions::from_str(base)?;
    let mut conn = sqlx::AnyConnection::connect_with(&options).await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    // Replace the database name (the path of the URL), keeping any query string.
    let (without_query, query) = match base.split_once('?') {
        Some((a, q)) => (a, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = without_query.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match without_query[scheme_end..].find('/') {
        Some(i) => &without_query[..scheme_end + i],
        None => without_query,
    };
    Ok(format!("{host_part}/{name}{query}"))
}
