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
mod model;
mod oauth;
pub mod testing;
pub use admin::*;
pub use model::*;
pub use oauth::*;

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

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---------------------------------------------------------------- users

    pub async fn create_user(&self, user: &NewUser<'_>) -> StoreResult<User> {
        insert_user(&self.pool, user).await?;
        self.find_user(user.id).await?.ok_or(StoreError::Malformed)
    }

    pub async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| User::from_row(&r)).transpose()
    }

    pub async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| User::from_row(&r)).transpose()
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    pub async fn set_display_name(
        &self,
        user_id: &str,
        display_name: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
            .bind(display_name)
            .bind(now)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets a new password hash and moves the credential epoch on, which ends every session
    /// bound to the old epoch. Only applies if the epoch is still `expected_epoch`, so a change
    /// decided on stale data (a password checked before a concurrent reset) is refused.
    /// Returns the new epoch, or `None` when the account or the epoch moved.
    pub async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        expected_epoch: i64,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "UPDATE users SET password_hash = $1, credential_epoch = credential_epoch + 1, updated_at = $2 \
             WHERE id = $3 AND credential_epoch = $4 RETURNING credential_epoch",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .bind(expected_epoch)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
    }

    pub async fn set_admin(&self, user_id: &str, is_admin: bool, now: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET is_admin = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(is_admin))
            .bind(now)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- one-time codes

    pub async fn create_code(&self, code: &NewCode<'_>) -> StoreResult<()> {
        if self.create_code_if_absent(code).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    /// Creates a code unless one with its id exists; of racing requests for the same id,
    /// exactly one creates it.
    pub async fn create_code_if_absent(&self, code: &NewCode<'_>) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO one_time_codes (id, purpose, email, user_id, code_hash, payload, failed_attempts, \
             sends, created_at, last_sent_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $7, $8) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(code.id)
        .bind(code.purpose.as_str())
        .bind(code.email)
        .bind(code.user_id)
        .bind(code.code_hash)
        .bind(code.payload)
        .bind(code.now)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the flow's code was sent now.
    pub async fn mark_code_sent(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE one_time_codes SET sends = sends + 1, last_sent_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a flow that will never be used.
    pub async fn expire_code(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE one_time_codes SET expires_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Claims the right to send for `slot` (at most once per `window_ms`), recording `flow_id`
    /// as the flow whose code goes out. Returns `None` when claimed, or the flow that holds the
    /// slot. One conditional upsert, so of many racing requests exactly one wins.
    pub async fn claim_send_slot(
        &self,
        slot: &str,
        flow_id: &str,
        window_ms: i64,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let claimed = sqlx::query(
            "INSERT INTO send_slots (slot, flow_id, claimed_at) VALUES ($1, $2, $3) ON CONFLICT (slot) \
             DO UPDATE SET flow_id = $2, claimed_at = $3 WHERE send_slots.claimed_at <= $4",
        )
        .bind(slot)
        .bind(flow_id)
        .bind(now)
        .bind(now - window_ms)
        .execute(&self.pool)
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT flow_id FROM send_slots WHERE slot = $1")
            .bind(slot)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    pub async fn find_code(&self, id: &str) -> StoreResult<Option<CodeRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLUMNS} FROM one_time_codes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| CodeRecord::from_row(&r)).transpose()
    }

    /// Tries a submitted code. Success consumes the code in the same statement that checks it,
    /// so of many concurrent submissions of one valid code exactly one succeeds. A wrong code
    /// counts one failed attempt; after `max_attempts` the code is dead.
    pub async fn try_consume_code(
        &self,
        id: &str,
        purpose: CodePurpose,
        code_hash: &str,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<CodeAttempt> {
        let consumed = sqlx::query(&format!(
            "UPDATE one_time_codes SET consumed_at = $1 WHERE id = $2 AND purpose = $3 AND code_hash = $4 \
             AND consumed_at IS NULL AND expires_at > $1 AND failed_attempts < $5 RETURNING {CODE_COLUMNS}"
        ))
        .bind(now)
        .bind(id)
        .bind(purpose.as_str())
        .bind(code_hash)
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = consumed {
            return Ok(CodeAttempt::Accepted(CodeRecord::from_row(&row)?));
        }
        let failed = sqlx::query(
            "UPDATE one_time_codes SET failed_attempts = failed_attempts + 1 WHERE id = $1 AND purpose = $2 \
             AND consumed_at IS NULL AND expires_at > $3 AND failed_attempts < $4 RETURNING failed_attempts",
        )
        .bind(id)
        .bind(purpose.as_str())
        .bind(now)
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        match failed {
            Some(row) => {
                let attempts: i64 = row.try_get(0)?;
                if attempts >= max_attempts {
                    Ok(CodeAttempt::Exhausted)
                } else {
                    Ok(CodeAttempt::Wrong {
                        attempts_left: max_attempts - attempts,
                    })
                }
            }
            None => Ok(CodeAttempt::Dead),
        }
    }

    /// Replaces the code of a live flow with a new one, at most once per `min_interval_ms`.
    /// Failed attempts are not reset. Returns the flow when a new code should be sent.
    pub async fn resend_code(
        &self,
        id: &str,
        new_code_hash: &str,
        min_interval_ms: i64,
        max_attempts: i64,
        new_expires_at: i64,
        now: i64,
    ) -> StoreResult<Option<CodeRecord>> {
        let row = sqlx::query(&format!(
            "UPDATE one_time_codes SET code_hash = $1, last_sent_at = $2, expires_at = $3, sends = sends + 1 \
             WHERE id = $4 AND consumed_at IS NULL AND last_sent_at <= $5 AND failed_attempts < $6 \
             AND expires_at > $2 RETURNING {CODE_COLUMNS}"
        ))
        .bind(new_code_hash)
        .bind(now)
        .bind(new_expires_at)
        .bind(id)
        .bind(now - min_interval_ms)
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| CodeRecord::from_row(&r)).transpose()
    }

    /// Consumes a code-less grant (for example the right to set a new password after a reset
    /// code was proven). Single use.
    pub async fn consume_grant(
        &self,
        id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> StoreResult<Option<CodeRecord>> {
        let row = sqlx::query(&format!(
            "UPDATE one_time_codes SET consumed_at = $1 WHERE id = $2 AND purpose = $3 AND consumed_at IS NULL \
             AND expires_at > $1 RETURNING {CODE_COLUMNS}"
        ))
        .bind(now)
        .bind(id)
        .bind(purpose.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| CodeRecord::from_row(&r)).transpose()
    }

    // ---------------------------------------------------------------- throttling

    /// Reads the failure counter for (scope, subject); a missing row is a zero counter.
    pub async fn throttle_state(&self, scope: &str, subject: &str) -> StoreResult<ThrottleState> {
        let row = sqlx::query(
            "SELECT failures, last_failure_at FROM auth_throttle WHERE scope = $1 AND subject = $2",
        )
        .bind(scope)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(ThrottleState {
                failures: r.try_get(0)?,
                last_failure_at: r.try_get(1)?,
            }),
            None => Ok(ThrottleState::default()),
        }
    }

    /// Claims the right to evaluate one attempt: moves the counter from `seen.failures` to
    /// `seen.failures + 1` only if nobody else moved it first. The count is taken before the
    /// secret is checked and cleared on success, so the number of evaluations can never exceed
    /// the number of counted failures, however many requests race.
    pub async fn throttle_claim(
        &self,
        scope: &str,
        subject: &str,
        seen: ThrottleState,
        now: i64,
    ) -> StoreResult<bool> {
        if seen.failures == 0 && seen.last_failure_at == 0 {
            let inserted = sqlx::query(
                "INSERT INTO auth_throttle (scope, subject, failures, last_failure_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (scope, subject) DO NOTHING",
            )
            .bind(scope)
            .bind(subject)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(true);
            }
        }
        let updated = sqlx::query(
            "UPDATE auth_throttle SET failures = failures + 1, last_failure_at = $1 \
             WHERE scope = $2 AND subject = $3 AND failures = $4 AND last_failure_at = $5",
        )
        .bind(now)
        .bind(scope)
        .bind(subject)
        .bind(seen.failures)
        .bind(seen.last_failure_at)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Counts a failure without gating (per-IP counters).
    pub async fn throttle_record_failure(
        &self,
        scope: &str,
        subject: &str,
        now: i64,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "INSERT INTO auth_throttle (scope, subject, failures, last_failure_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (scope, subject) DO UPDATE SET failures = auth_throttle.failures + 1, \
             last_failure_at = $3 RETURNING failures",
        )
        .bind(scope)
        .bind(subject)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn throttle_reset(&self, scope: &str, subject: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM auth_throttle WHERE scope = $1 AND subject = $2")
            .bind(scope)
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- authenticator apps

    /// Stores a new, unconfirmed authenticator-app credential.
    pub async fn create_totp(
        &self,
        id: &str,
        user_id: &str,
        sealed_secret: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO totp_credentials (id, user_id, sealed_secret, created_at, last_used_step) VALUES ($1, $2, $3, $4, -1)",
        )
        .bind(id)
        .bind(user_id)
        .bind(sealed_secret)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_totp(&self, user_id: &str) -> StoreResult<Vec<TotpCredential>> {
        let rows = sqlx::query(&format!(
            "SELECT {TOTP_COLUMNS} FROM totp_credentials WHERE user_id = $1 ORDER BY created_at"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TotpCredential::from_row).collect()
    }

    /// Confirms an enrollment with the step of its first correct code, if it is still
    /// unconfirmed and younger than `max_age_ms`.
    pub async fn confirm_totp(
        &self,
        id: &str,
        user_id: &str,
        step: i64,
        max_age_ms: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE totp_credentials SET confirmed_at = $1, last_used_step = $2, last_used_at = $1 \
             WHERE id = $3 AND user_id = $4 AND confirmed_at IS NULL AND created_at > $5",
        )
        .bind(now)
        .bind(step)
        .bind(id)
        .bind(user_id)
        .bind(now - max_age_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the use of `step` on a confirmed credential, only if it is later than every step
    /// used before: of many concurrent submissions of one code, exactly one is accepted.
    pub async fn claim_totp_step(&self, id: &str, step: i64, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE totp_credentials SET last_used_step = $1, last_used_at = $2 \
             WHERE id = $3 AND confirmed_at IS NOT NULL AND last_used_step < $1",
        )
        .bind(step)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_totp(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- passkeys

    /// Stores a newly registered passkey. A credential id already registered (to anyone) is
    /// refused: returns false and stores nothing.
    pub async fn create_passkey(&self, p: &PasskeyRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO passkeys (id, user_id, credential_id, name, passkey, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.credential_id)
        .bind(&p.name)
        .bind(&p.passkey)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn list_passkeys(&self, user_id: &str) -> StoreResult<Vec<PasskeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(PasskeyRecord::from_row).collect()
    }

    pub async fn find_passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<PasskeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| PasskeyRecord::from_row(&r)).transpose()
    }

    /// Records a use: the new credential record replaces `previous` only if nothing changed it
    /// in between, so two racing assertions cannot both move the counter from one value.
    pub async fn record_passkey_use(
        &self,
        id: &str,
        previous: &str,
        updated: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3 AND passkey = $4",
        )
        .bind(updated)
        .bind(now)
        .bind(id)
        .bind(previous)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE passkeys SET name = $1 WHERE user_id = $2 AND id = $3")
            .bind(name)
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_passkey(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM passkeys WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- sign-in providers

    /// Adds a provider, or replaces the one with the same id (its position is kept).
    pub async fn put_provider(&self, p: &ProviderRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_providers (id, kind, display_name, settings, sealed_secret, enabled, \
             position, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, display_name = excluded.display_name, \
             settings = excluded.settings, sealed_secret = excluded.sealed_secret, \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(&p.id)
        .bind(&p.kind)
        .bind(&p.display_name)
        .bind(&p.settings)
        .bind(&p.sealed_secret)
        .bind(i64::from(p.enabled))
        .bind(p.position)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every provider, in display order.
    pub async fn list_providers(&self) -> StoreResult<Vec<ProviderRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM identity_providers ORDER BY position, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ProviderRecord::from_row).collect()
    }

    pub async fn find_provider(&self, id: &str) -> StoreResult<Option<ProviderRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| ProviderRecord::from_row(&r)).transpose()
    }

    pub async fn set_provider_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE identity_providers SET enabled = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(i64::from(enabled))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_provider_position(
        &self,
        id: &str,
        position: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE identity_providers SET position = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(position)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a provider. Identities linked through it stay (they are keyed by issuer), but
    /// nobody can sign in through it any more.
    pub async fn delete_provider(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM identity_providers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- external identities

    /// The account an external identity belongs to.
    pub async fn find_external_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<ExternalIdentity>> {
        let row = sqlx::query(&format!(
            "SELECT {EXTERNAL_IDENTITY_COLUMNS} FROM external_identities WHERE issuer = $1 AND subject = $2"
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| ExternalIdentity::from_row(&r)).transpose()
    }

    pub async fn list_external_identities(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<ExternalIdentity>> {
        let rows = sqlx::query(&format!(
            "SELECT {EXTERNAL_IDENTITY_COLUMNS} FROM external_identities WHERE user_id = $1 \
             ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExternalIdentity::from_row).collect()
    }

    /// Links an external identity to an account. An identity linked already (to anyone) is
    /// refused with [`StoreError::Conflict`].
    pub async fn link_external_identity(&self, e: &ExternalIdentity) -> StoreResult<()> {
        insert_identity(&self.pool, e).await
    }

    /// Creates an account together with its first external identity, in one transaction: no
    /// account without its identity, no identity twice. Every pending sign-up for the same
    /// address ends, so nobody who started one can finish it once the owner has proven the
    /// address through the provider. Conflicts (the email or the identity exists) store
    /// nothing and return [`StoreError::Conflict`].
    pub async fn create_user_with_identity(
        &self,
        user: &NewUser<'_>,
        identity: &ExternalIdentity,
    ) -> StoreResult<User> {
        let mut tx = self.pool.begin().await?;
        insert_user(&mut *tx, user).await?;
        insert_identity(&mut *tx, identity).await?;
        sqlx::query(
            "UPDATE one_time_codes SET consumed_at = $1 WHERE email = $2 AND consumed_at IS NULL \
             AND purpose IN ('sign_up_password', 'sign_up_code')",
        )
        .bind(user.now)
        .bind(user.email)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.find_user(user.id).await?.ok_or(StoreError::Malformed)
    }

    pub async fn touch_external_identity(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE external_identities SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn unlink_external_identity(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM external_identities WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- phone numbers

    /// Starts adding a phone number: any unverified number of the account is replaced.
    pub async fn create_phone(&self, p: &PhoneNumber) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM phone_numbers WHERE user_id = $1 AND verified_at IS NULL")
            .bind(&p.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO phone_numbers (id, user_id, number, created_at, verified_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.number)
        .bind(p.created_at)
        .bind(p.verified_at)
        .bind(p.last_used_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_phones(&self, user_id: &str) -> StoreResult<Vec<PhoneNumber>> {
        let rows = sqlx::query(&format!(
            "SELECT {PHONE_COLUMNS} FROM phone_numbers WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(PhoneNumber::from_row).collect()
    }

    /// Marks a number proven, once.
    pub async fn verify_phone(&self, user_id: &str, id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE phone_numbers SET verified_at = $1 WHERE user_id = $2 AND id = $3 AND verified_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn touch_phone(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE phone_numbers SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_phone(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM phone_numbers WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether an account has a usable second factor (a passkey, a confirmed authenticator
    /// app or a proven phone number), in one statement: every sign-in asks.
    pub async fn has_second_factor(&self, user_id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM passkeys WHERE user_id = $1) \
             + (SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NOT NULL) \
             + (SELECT COUNT(*) FROM phone_numbers WHERE user_id = $1 AND verified_at IS NOT NULL)",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(n > 0)
    }

    /// Removes every second factor of an account (passkeys, authenticator apps, phone numbers,
    /// recovery codes) and ends all its sessions, in one transaction. Returns how many methods
    /// went.
    pub async fn delete_second_factors(&self, user_id: &str) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for table in ["passkeys", "totp_credentials", "phone_numbers"] {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for table in ["recovery_codes", "sessions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    // ---------------------------------------------------------------- audit log

    pub async fn record_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, occurred_at, actor_user_id, subject_user_id, action, detail, client_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.id)
        .bind(e.occurred_at)
        .bind(e.actor_user_id.as_deref())
        .bind(e.subject_user_id.as_deref())
        .bind(&e.action)
        .bind(&e.detail)
        .bind(&e.client_ip)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent audit entries about one account (newest first).
    pub async fn audit_for_user(&self, user_id: &str, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE subject_user_id = $1 \
             ORDER BY occurred_at DESC, id DESC LIMIT $2"
        ))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditEntry::from_row).collect()
    }

    /// When `action` was last recorded about the account, if ever.
    pub async fn last_audit_at(&self, user_id: &str, action: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(occurred_at) FROM audit_log WHERE subject_user_id = $1 AND action = $2",
        )
        .bind(user_id)
        .bind(action)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    // ---------------------------------------------------------------- recovery codes

    /// Replaces a user's recovery codes with a new set, in one transaction: the old set stops
    /// working the moment the new one exists.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[(String, String)],
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for (id, hash) in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(user_id)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses a recovery code: true only for the one request that marks it used.
    pub async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many of a user's recovery codes are still unused.
    pub async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    // ---------------------------------------------------------------- sessions

    pub async fn create_session(&self, s: &NewSession<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, credential_epoch, amr, auth_time, created_at, \
             last_seen_at, expires_at, client_ip, user_agent, second_factor_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7, $8, $9, $10)",
        )
        .bind(s.id)
        .bind(s.token_hash)
        .bind(s.user_id)
        .bind(s.credential_epoch)
        .bind(s.amr)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(s.client_ip)
        .bind(s.user_agent)
        .bind(s.second_factor_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every session of a user that was completed with the given second factor.
    pub async fn delete_sessions_with_second_factor(
        &self,
        user_id: &str,
        second_factor_id: &str,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND second_factor_id = $2")
            .bind(user_id)
            .bind(second_factor_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Keeps at most `keep` live sessions of a user, never touching `protect` (the session just
    /// created). Dead sessions (expired, idle too long, or bound to an old credential epoch) go
    /// first; then the oldest live ones. Returns how many ended.
    pub async fn trim_sessions(
        &self,
        user_id: &str,
        protect: &str,
        keep: i64,
        idle_ms: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let dead = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 AND (expires_at <= $3 OR last_seen_at <= $4 \
             OR credential_epoch <> (SELECT credential_epoch FROM users WHERE id = $1))",
        )
        .bind(user_id)
        .bind(protect)
        .bind(now)
        .bind(now - idle_ms)
        .execute(&self.pool)
        .await?;
        let old = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 AND id NOT IN \
             (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 ORDER BY created_at DESC, id DESC LIMIT $3)",
        )
        .bind(user_id)
        .bind(protect)
        .bind((keep - 1).max(0))
        .execute(&self.pool)
        .await?;
        Ok(dead.rows_affected() + old.rows_affected())
    }

    /// The live session for a cookie token hash: not expired, not idle for longer than
    /// `idle_ms`, bound to the user's current credential epoch, and the user not disabled.
    pub async fn find_live_session(
        &self,
        token_hash: &str,
        idle_ms: i64,
        now: i64,
    ) -> StoreResult<Option<(Session, User)>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS_S}, {USER_COLUMNS_U} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 \
             AND s.credential_epoch = u.credential_epoch AND u.disabled = 0"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((Session::from_row(&r)?, User::from_row(&r)?))),
            None => Ok(None),
        }
    }

    /// Whether the session with this id is live for its browser: not expired, not idle for
    /// longer than `idle_ms`, on its user's current credentials. Reading it records nothing.
    pub async fn session_is_live(&self, id: &str, idle_ms: i64, now: i64) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 \
             AND s.expires_at > $2 AND s.last_seen_at > $3 \
             AND s.credential_epoch = u.credential_epoch AND u.disabled = 0",
        )
        .bind(id)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Records activity, at most once per `granularity_ms` to keep reads cheap.
    pub async fn touch_session(&self, id: &str, granularity_ms: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(id)
            .bind(now - granularity_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a session onto a new credential epoch (the session that changed the password).
    pub async fn rebind_session(&self, id: &str, epoch: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET credential_epoch = $1 WHERE id = $2")
            .bind(epoch)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn list_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS_S} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.user_id = $1 \
             AND s.expires_at > $2 AND s.credential_epoch = u.credential_epoch ORDER BY s.created_at DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Session::from_row).collect()
    }

    /// Every unexpired session row of an account, on any credential epoch: the sessions a
    /// password change has just cut off are among them until their rows are deleted.
    pub async fn session_rows(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS_S} FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 \
             ORDER BY s.created_at DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Session::from_row).collect()
    }

    pub async fn delete_session(&self, user_id: &str, session_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_session_by_token_hash(&self, token_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every session of a user except `keep` (if given). Returns how many ended.
    pub async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Housekeeping: removes expired sessions, abandoned authenticator enrollments, codes a day
    /// past expiry, send slots and
    /// throttle counters that have gone quiet, and delivered or old messages. A closed password
    /// path (a counter at or above `keep_closed_at`) is kept until another way in reopens it.
    pub async fn purge_expired(&self, now: i64, keep_closed_at: i64) -> StoreResult<u64> {
        const DAY: i64 = 86_400_000;
        let mut removed = 0;
        let statements: [(&str, i64); 10] = [
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

    /// Takes one unit from a fixed-window budget of `limit` per `window_ms` for (scope, subject),
    /// in one conditional statement: of many racing requests, exactly `limit` get `true`.
    pub async fn take_budget(
        &self,
        scope: &str,
        subject: &str,
        limit: i64,
        window_ms: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "INSERT INTO auth_throttle (scope, subject, failures, last_failure_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (scope, subject) DO UPDATE SET \
             failures = CASE WHEN auth_throttle.last_failure_at <= $4 THEN 1 ELSE auth_throttle.failures + 1 END, \
             last_failure_at = CASE WHEN auth_throttle.last_failure_at <= $4 THEN $3 ELSE auth_throttle.last_failure_at END \
             WHERE auth_throttle.last_failure_at <= $4 OR auth_throttle.failures < $5 RETURNING failures",
        )
        .bind(scope)
        .bind(subject)
        .bind(now)
        .bind(now - window_ms)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Marks a delivered message as sent and removes its content: codes must not outlive their
    /// delivery in plain text.
    pub async fn redact_delivered_message(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, subject = '(delivered)', body = '(delivered)', last_error = NULL WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- sign-in log

    pub async fn record_sign_in(&self, e: &SignInLogEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sign_in_log (id, occurred_at, user_id, email, application, client_ip, user_agent, \
             method, result, failure_reason, session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.id)
        .bind(e.occurred_at)
        .bind(e.user_id.as_deref())
        .bind(&e.email)
        .bind(&e.application)
        .bind(&e.client_ip)
        .bind(&e.user_agent)
        .bind(&e.method)
        .bind(&e.result)
        .bind(e.failure_reason.as_deref())
        .bind(e.session_id.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent sign-in attempts for an email (newest first).
    pub async fn sign_ins_for_email(
        &self,
        email: &str,
        limit: i64,
    ) -> StoreResult<Vec<SignInLogEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {SIGN_IN_COLUMNS} FROM sign_in_log WHERE email = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2"
        ))
        .bind(email)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignInLogEntry::from_row).collect()
    }

    /// The newest sign-in attempts, whoever made them.
    pub async fn recent_sign_ins(&self, limit: i64) -> StoreResult<Vec<SignInLogEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {SIGN_IN_COLUMNS} FROM sign_in_log ORDER BY occurred_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignInLogEntry::from_row).collect()
    }

    // ---------------------------------------------------------------- outbox

    pub async fn enqueue_message(&self, m: &OutboxMessage) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO outbox (id, created_at, channel, recipient, subject, body, sent_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&m.id)
        .bind(m.created_at)
        .bind(&m.channel)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(m.sent_at)
        .bind(m.last_error.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_message(
        &self,
        id: &str,
        sent_at: Option<i64>,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, last_error = $2 WHERE id = $3")
            .bind(sent_at)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Messages to one recipient, newest first.
    pub async fn messages_for(&self, recipient: &str) -> StoreResult<Vec<OutboxMessage>> {
        let rows = sqlx::query(
            "SELECT id, created_at, channel, recipient, subject, body, sent_at, last_error FROM outbox \
             WHERE recipient = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(recipient)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OutboxMessage::from_row).collect()
    }

    // ---------------------------------------------------------------- settings

    pub async fn get_setting(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    pub async fn put_setting(&self, name: &str, value: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
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

async fn insert_user<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    user: &NewUser<'_>,
) -> StoreResult<()> {
    // An address another account may still take back (a live email-change undo link) is
    // refused like one that has an account.
    let done = sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, is_admin, disabled, \
         credential_epoch, created_at, updated_at) SELECT $1, $2, $3, $4, $5, 0, 0, $6, $6 \
         WHERE NOT EXISTS (SELECT 1 FROM one_time_codes r WHERE r.purpose = $7 AND r.email = $2 \
         AND r.consumed_at IS NULL AND r.expires_at > $6)",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.display_name)
    .bind(user.password_hash)
    .bind(i64::from(user.is_admin))
    .bind(user.now)
    .bind(CodePurpose::EmailChangeUndo.as_str())
    .execute(executor)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// The account of `e` is `e.user_id`.
async fn insert_identity<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    e: &ExternalIdentity,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO external_identities (id, user_id, provider_id, issuer, subject, email, \
         created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&e.id)
    .bind(&e.user_id)
    .bind(&e.provider_id)
    .bind(&e.issuer)
    .bind(&e.subject)
    .bind(&e.email)
    .bind(e.created_at)
    .bind(e.last_used_at)
    .execute(executor)
    .await?;
    Ok(())
}

pub(crate) fn bool_col(row: &AnyRow, name: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(name)? != 0)
}
