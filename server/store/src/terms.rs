//! The tenant's terms of use: published versions (never changed once published) and each
//! account's acceptance of a version.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreError, StoreResult};

/// One published version of the terms of use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermsRecord {
    pub version: i64,
    pub title: String,
    pub body: String,
    pub published_at: i64,
    pub published_by: Option<String>,
}

impl TermsRecord {
    fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(TermsRecord {
            version: row.try_get("version")?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            published_at: row.try_get("published_at")?,
            published_by: row.try_get("published_by")?,
        })
    }
}

/// An account's acceptance of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermsAcceptance {
    pub version: i64,
    pub accepted_at: i64,
    pub client_ip: String,
}

const TERMS_COLUMNS: &str = "version, title, body, published_at, published_by";

impl Store {
    /// The newest published version, if any.
    pub async fn current_terms(&self) -> StoreResult<Option<TermsRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {TERMS_COLUMNS} FROM terms_of_use ORDER BY version DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(TermsRecord::from_row).transpose()
    }

    /// Every published version, newest first.
    pub async fn terms_history(&self) -> StoreResult<Vec<TermsRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {TERMS_COLUMNS} FROM terms_of_use ORDER BY version DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TermsRecord::from_row).collect()
    }

    /// Publishes a new version (one more than the newest) and returns it. Two instances
    /// publishing at once cannot both take a number: the second is retried on the next one.
    pub async fn publish_terms(
        &self,
        title: &str,
        body: &str,
        by: Option<&str>,
        now: i64,
    ) -> StoreResult<i64> {
        for _ in 0..3 {
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM terms_of_use")
                .fetch_one(&self.pool)
                .await?;
            let version = newest.unwrap_or(0) + 1;
            let inserted = sqlx::query(
                "INSERT INTO terms_of_use (version, title, body, published_at, published_by) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(version)
            .bind(title)
            .bind(body)
            .bind(now)
            .bind(by)
            .execute(&self.pool)
            .await;
            match inserted.map_err(StoreError::from) {
                Ok(_) => return Ok(version),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Records that the account accepted `version` (once: accepting again keeps the first).
    pub async fn accept_terms(
        &self,
        user_id: &str,
        version: i64,
        client_ip: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO terms_acceptances (user_id, version, accepted_at, client_ip) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, version) DO NOTHING",
        )
        .bind(user_id)
        .bind(version)
        .bind(now)
        .bind(client_ip)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the account accepted `version`.
    pub async fn has_accepted_terms(&self, user_id: &str, version: i64) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM terms_acceptances WHERE user_id = $1 AND version = $2",
        )
        .bind(user_id)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Every version the account accepted, newest first.
    pub async fn terms_acceptances(&self, user_id: &str) -> StoreResult<Vec<TermsAcceptance>> {
        let rows = sqlx::query(
            "SELECT version, accepted_at, client_ip FROM terms_acceptances WHERE user_id = $1 \
             ORDER BY version DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TermsAcceptance {
                    version: r.try_get("version")?,
                    accepted_at: r.try_get("accepted_at")?,
                    client_ip: r.try_get("client_ip")?,
                })
            })
            .collect()
    }
}
