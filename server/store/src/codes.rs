//! One-time codes (`one_time_codes`, `send_slots`): each flow's code is consumed by one
//! conditional statement, so a race can never use it twice.

use sqlx::Row;

use crate::{
    CodeAttempt, CodePurpose, CodeRecord, NewCode, Store, StoreError, StoreResult, CODE_COLUMNS,
};

impl Store {
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
}
