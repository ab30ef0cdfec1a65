//! Failure counters and fixed-window budgets (`auth_throttle`): every check and count is one
//! statement in the database, so limits hold across instances.

use sqlx::Row;

use crate::{Store, StoreResult, ThrottleState};

impl Store {
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
}
