//! Sign-in providers and the external identities linked to accounts.

use crate::users::insert_user;
use crate::{
    ExternalIdentity, NewUser, ProviderRecord, Store, StoreError, StoreResult, User,
    EXTERNAL_IDENTITY_COLUMNS, PROVIDER_COLUMNS,
};

impl Store {
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
}

/// The account of `e` is `e.user_id`.
pub(crate) async fn insert_identity<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
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
