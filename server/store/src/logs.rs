//! The audit log and the sign-in log.

use sqlx::Row;

use crate::{AuditEntry, SignInLogEntry, Store, StoreResult, AUDIT_COLUMNS, SIGN_IN_COLUMNS};

impl Store {
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

    pub async fn record_sign_in(&self, e: &SignInLogEntry) -> StoreResult<()> {
        insert_sign_in(e).execute(&self.pool).await?;
        Ok(())
    }

    /// Writes many sign-in log rows in one transaction (imports and generated data; the
    /// sign-in path writes one row at a time with [`Store::record_sign_in`]).
    pub async fn record_sign_ins(&self, entries: &[SignInLogEntry]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for e in entries {
            insert_sign_in(e).execute(&mut *tx).await?;
        }
        tx.commit().await?;
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
}

impl Store {
    /// The account's newest successful sign-ins (at most `limit`, newest first) and when its
    /// first successful sign-in was: the history the risk detections compare with. Both read
    /// the log's (user, time) index from one end, however long the history.
    pub async fn sign_in_history(
        &self,
        user_id: &str,
        limit: i64,
    ) -> StoreResult<(Vec<SignInLogEntry>, Option<i64>)> {
        // Only what the detections compare, read by position: this runs at every sign-in.
        let rows = sqlx::query(
            "SELECT id, occurred_at, client_ip, country, city, latitude_e6, longitude_e6, \
             accuracy_km, asn, browser, os, device FROM sign_in_log \
             WHERE user_id = $1 AND result = 'success' ORDER BY occurred_at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let recent = rows
            .iter()
            .map(|r| {
                Ok(SignInLogEntry {
                    id: r.try_get(0)?,
                    occurred_at: r.try_get(1)?,
                    user_id: Some(user_id.to_string()),
                    client_ip: r.try_get(2)?,
                    country: r.try_get(3)?,
                    city: r.try_get(4)?,
                    latitude_e6: r.try_get(5)?,
                    longitude_e6: r.try_get(6)?,
                    accuracy_km: r.try_get(7)?,
                    asn: r.try_get(8)?,
                    browser: r.try_get(9)?,
                    os: r.try_get(10)?,
                    device: r.try_get(11)?,
                    result: "success".into(),
                    ..SignInLogEntry::default()
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let first = sqlx::query(
            "SELECT occurred_at FROM sign_in_log WHERE user_id = $1 AND result = 'success' \
             ORDER BY occurred_at LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.try_get::<i64, _>(0))
        .transpose()?;
        Ok((recent, first))
    }

    /// One page of the successful sign-ins of known accounts since `since`, oldest first,
    /// after the row `after` (its time and id): for replaying the log in batches that never
    /// hold the table.
    pub async fn successful_sign_ins_after(
        &self,
        since: i64,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<SignInLogEntry>> {
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(&format!(
            "SELECT {SIGN_IN_COLUMNS} FROM sign_in_log WHERE occurred_at >= $1 \
             AND result = 'success' AND user_id IS NOT NULL \
             AND (occurred_at > $2 OR (occurred_at = $2 AND id > $3)) \
             ORDER BY occurred_at, id LIMIT $4"
        ))
        .bind(since)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignInLogEntry::from_row).collect()
    }
}

/// The statement that writes one sign-in log row.
fn insert_sign_in(
    e: &SignInLogEntry,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(
        "INSERT INTO sign_in_log (id, occurred_at, user_id, email, application, client_ip, user_agent, \
         method, result, failure_reason, session_id, policies, country, city, latitude_e6, \
         longitude_e6, accuracy_km, asn, browser, os, device, risk_level) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22)",
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
    .bind(e.policies.as_deref())
    .bind(e.country.as_deref())
    .bind(e.city.as_deref())
    .bind(e.latitude_e6)
    .bind(e.longitude_e6)
    .bind(e.accuracy_km)
    .bind(e.asn)
    .bind(e.browser.as_deref())
    .bind(e.os.as_deref())
    .bind(e.device.as_deref())
    .bind(e.risk_level.as_deref())
}
