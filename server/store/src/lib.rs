//! Persistence for Gatehouse.
//!
//! One API over two databases: SQLite (the embedded default) and PostgreSQL (for scale-out).
//! Queries are written once in the common SQL dialect and run through sqlx's `Any` driver;
//! every column is TEXT or a 64-bit integer so both backends decode the same way. Everything
//! another server instance needs lives here, and one-time secrets and counters are consumed by
//! a single conditional statement, so a race can never use a code twice or skip a lockout.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

mod account;
mod admin;
mod codes;
mod factors;
mod federation;
mod insights;
mod jobs;
mod logs;
mod model;
mod oauth;
mod outbox;
mod policies;
mod risk;
mod sessions;
mod settings;
mod terms;
pub mod testing;
mod throttle;
mod users;
mod webhooks;
pub use admin::*;
pub use insights::*;
pub use logs::{ProfileSeed, SignInSummary};
pub use model::*;
pub use oauth::*;
pub use policies::*;
pub use risk::*;
pub use terms::*;
pub use webhooks::*;

/// Errors the store reports. Driver messages stay inside: `Display` never includes SQL text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the record already exists")]
    Conflict,
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("the database is not configured safely: {0}")]
    UnsafeConfiguration(String),
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("stored data is malformed")]
    Malformed,
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
        }
        StoreError::Unavailable(err)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The SQLite settings every connection must run with (checked at start-up).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;";

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`) and verifies the
    /// durability settings. Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = AnyConnectOptions::from_str(url).map_err(|_| StoreError::UnsupportedUrl)?;
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            pool_options = pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(options).await?;
        let store = Store { pool, backend };
        store.check_pragmas().await?;
        Ok(store)
    }

    /// The pool's open connections and how many of them are idle.
    pub fn pool_use(&self) -> (u32, u32) {
        (
            self.pool.size(),
            u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        )
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs pending migrations. A failure is returned, and the caller stops the process.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(StoreError::Migration)
    }

    /// Refuses to run SQLite without WAL, full synchronous commits, foreign keys and a busy
    /// timeout: without them an acknowledged sign-up could be lost or a writer could fail fast.
    async fn check_pragmas(&self) -> StoreResult<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let mut conn = self.pool.acquire().await?;
        let journal: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let synchronous: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let foreign_keys: i64 = sqlx::query("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let busy: i64 = sqlx::query("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(StoreError::UnsafeConfiguration(format!(
                "journal_mode is {journal}, expected wal"
            )));
        }
        if synchronous != 2 {
            return Err(StoreError::UnsafeConfiguration(format!(
                "synchronous is {synchronous}, expected 2 (FULL)"
            )));
        }
        if foreign_keys != 1 {
            return Err(StoreError::UnsafeConfiguration(
                "foreign_keys is off".into(),
            ));
        }
        if busy < 5000 {
            return Err(StoreError::UnsafeConfiguration(format!(
                "busy_timeout is {busy} ms, expected at least 5000"
            )));
        }
        Ok(())
    }

    /// Reads one SQLite pragma (for tests and diagnostics).
    pub async fn sqlite_pragma(&self, name: &str) -> StoreResult<String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Malformed);
        }
        let row = sqlx::query(&format!("PRAGMA {name}"))
            .fetch_one(&self.pool)
            .await?;
        if let Ok(s) = row.try_get::<String, _>(0) {
            return Ok(s);
        }
        Ok(row.try_get::<i64, _>(0)?.to_string())
    }

    /// Closes the pool. On SQLite the WAL is checkpointed into the database first, so a clean
    /// shutdown leaves no write-ahead log behind, whichever connection happens to close last.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = %e, "the WAL checkpoint at close failed");
            }
        }
        self.pool.close().await;
    }

    /// Housekeeping: removes expired sessions, abandoned authenticator enrollments, codes a day
    /// past expiry, send slots and throttle counters that have gone quiet, and delivered or old
    /// messages. A closed password path (a counter at or above `keep_closed_at`) is kept until
    /// another way in reopens it.
    pub async fn purge_expired(&self, now: i64, keep_closed_at: i64) -> StoreResult<u64> {
        const DAY: i64 = 86_400_000;
        let mut removed = 0;
        let statements: [(&str, i64); 11] = [
            ("DELETE FROM sessions WHERE expires_at <= $1", now),
            (
                "DELETE FROM totp_credentials WHERE confirmed_at IS NULL AND created_at <= $1",
                now - DAY,
            ),
            (
                "DELETE FROM phone_numbers WHERE verified_at IS NULL AND created_at <= $1",
                now - DAY,
            ),
            (
                "DELETE FROM one_time_codes WHERE expires_at <= $1",
                now - DAY,
            ),
            ("DELETE FROM send_slots WHERE claimed_at <= $1", now - DAY),
            ("DELETE FROM outbox WHERE created_at <= $1", now - 7 * DAY),
            ("DELETE FROM oauth_requests WHERE expires_at <= $1", now),
            ("DELETE FROM oauth_codes WHERE expires_at <= $1", now - DAY),
            ("DELETE FROM oauth_tokens WHERE expires_at <= $1", now - DAY),
            ("DELETE FROM oauth_grants WHERE expires_at <= $1", now - DAY),
            // Finished webhook deliveries are kept 30 days for the console's history.
            (
                "DELETE FROM webhook_deliveries WHERE created_at <= $1 \
                 AND (delivered_at IS NOT NULL OR given_up_at IS NOT NULL)",
                now - 30 * DAY,
            ),
        ];
        for (sql, cutoff) in statements {
            removed += sqlx::query(sql)
                .bind(cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        removed +=
            sqlx::query("DELETE FROM auth_throttle WHERE last_failure_at <= $1 AND failures < $2")
                .bind(now - 7 * DAY)
                .bind(keep_closed_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(removed)
    }

    /// Row counts of every table, so tests can prove that a refused request changed nothing.
    pub async fn table_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for table in [
            "users",
            "one_time_codes",
            "auth_throttle",
            "sessions",
            "sign_in_log",
            "outbox",
            "settings",
            "send_slots",
            "totp_credentials",
            "recovery_codes",
            "passkeys",
            "audit_log",
            "phone_numbers",
            "identity_providers",
            "external_identities",
            "oauth_clients",
            "signing_keys",
            "oauth_requests",
            "oauth_grants",
            "oauth_codes",
            "oauth_tokens",
            "oauth_consents",
            "known_devices",
        ] {
            let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
            out.push((table.to_string(), n));
        }
        Ok(out)
    }
}

pub(crate) fn bool_col(row: &AnyRow, name: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(name)? != 0)
}
