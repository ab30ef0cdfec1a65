//! Second factors: authenticator apps, passkeys, phone numbers and recovery codes.

use sqlx::Row;

use crate::{
    PasskeyRecord, PhoneNumber, Store, StoreResult, TotpCredential, PASSKEY_COLUMNS, PHONE_COLUMNS,
    TOTP_COLUMNS,
};

impl Store {
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
}
