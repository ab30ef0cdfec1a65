//! What a customer changes about their own account: its email address (with the old address
//! reserved while its "this wasn't me" link lives) and its deletion, which removes the
//! credentials and personal data and keeps only what the security record needs.

use sqlx::Row;

use crate::{CodePurpose, Store, StoreError, StoreResult};

impl Store {
    /// Whether `email` is held for an account that moved away from it and may still take it
    /// back (a live undo link): nobody else may sign up with it or move to it meanwhile.
    pub async fn email_reserved(&self, email: &str, now: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM one_time_codes WHERE purpose = $1 AND email = $2 \
             AND consumed_at IS NULL AND expires_at > $3",
        )
        .bind(CodePurpose::EmailChangeUndo.as_str())
        .bind(email)
        .bind(now)
        .fetch_one(self.pool())
        .await?
        .try_get(0)?;
        Ok(n > 0)
    }

    /// Replaces the account's email `from` with `to`, if it is still `from`. `Conflict` when
    /// another account has `to`; `false` when the account's email is no longer `from`.
    pub async fn change_email(
        &self,
        user_id: &str,
        from: &str,
        to: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = $1, updated_at = $2 WHERE id = $3 AND email = $4",
        )
        .bind(to)
        .bind(now)
        .bind(user_id)
        .bind(from)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts an address back on an account (an email change undone), whatever it is now.
    /// `Conflict` when another account holds the address.
    pub async fn restore_email(&self, user_id: &str, email: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET email = $1, updated_at = $2 WHERE id = $3")
            .bind(email)
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an account in one transaction: the account row and everything bound to it
    /// (sessions, credentials, second factors, provider identities, grants, consents, known
    /// browsers, flows), the messages to its address and phone numbers, the counters keyed by
    /// them, and the personal fields of its sign-in log rows, which keep only the account id,
    /// time, application, method and result. Returns false when there is no such account.
    pub async fn delete_account(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let Some(row) = sqlx::query("SELECT email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let email: String = row.try_get(0)?;
        sqlx::query(
            "DELETE FROM outbox WHERE recipient = $1 OR recipient IN \
             (SELECT number FROM phone_numbers WHERE user_id = $2)",
        )
        .bind(&email)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE sign_in_log SET email = '', client_ip = '', user_agent = '' WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let mut counters = vec![email.clone(), user_id.to_string()];
        for kind in ["password", "mailbox", "federated", "passkey"] {
            counters.push(format!("{user_id}:{kind}"));
        }
        for subject in &counters {
            sqlx::query("DELETE FROM auth_throttle WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
        }
        for purpose in [CodePurpose::SignUpPassword, CodePurpose::SignUpCode] {
            sqlx::query("DELETE FROM send_slots WHERE slot = $1")
                .bind(format!("{}:{email}", purpose.as_str()))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM one_time_codes WHERE email = $1 OR user_id = $2")
            .bind(&email)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM insight_user_apps WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Malformed);
        }
        tx.commit().await?;
        Ok(true)
    }
}
