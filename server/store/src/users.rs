//! Accounts: creating, finding and changing the `users` rows.

use sqlx::Row;

use crate::{CodePurpose, NewUser, Store, StoreError, StoreResult, User, USER_COLUMNS};

impl Store {
    /// The emails of the accounts with these ids (gone ones are missing), in one query per
    /// 500 ids.
    pub async fn emails_by_id(
        &self,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, email FROM users WHERE id IN ({})",
                marks.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                found.insert(row.try_get("id")?, row.try_get("email")?);
            }
        }
        Ok(found)
    }

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

    /// Creates many accounts in one transaction (generated data and imports).
    pub async fn create_users(&self, users: &[NewUser<'_>]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for user in users {
            insert_user(&mut *tx, user).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the database holds no account and no sign-in yet.
    pub async fn is_empty(&self) -> StoreResult<bool> {
        let any = sqlx::query("SELECT 1 FROM users UNION ALL SELECT 1 FROM sign_in_log LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(any.is_none())
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
}

pub(crate) async fn insert_user<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
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
