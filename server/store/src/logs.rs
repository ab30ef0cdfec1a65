//! The audit log and the sign-in log.

use sqlx::Row;

use crate::{
    AuditEntry, Backend, SignInLogEntry, Store, StoreResult, AUDIT_COLUMNS, SIGN_IN_COLUMNS,
};

/// What [`Store::record_successful_sign_in`] brings up to date: the stored profile, or the
/// log's summary for an account without one.
#[derive(Debug, Clone, Copy)]
pub enum ProfileSeed<'a> {
    Stored(&'a str),
    Log(&'a SignInSummary),
}

/// An account's successful sign-ins as the history-based detections compare with them (see
/// [`Store::sign_in_summary`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInSummary {
    /// How many of the newest were compared.
    pub compared: i64,
    /// When the first successful sign-in of all was.
    pub first_at: Option<i64>,
    /// (kind, value, how many compared sign-ins showed it): kinds `asn`, `country`, `place`
    /// (`COUNTRY|` or `COUNTRY|+CITY`), `browser`, `os`, `device`, `address`.
    pub values: Vec<(String, String, i64)>,
    /// The newest compared sign-in with coordinates made no later than the time asked about
    /// (its time, address, place and coordinates).
    pub last_located: Option<SignInLogEntry>,
}

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

    /// Writes one sign-in log row; a risky one (low, medium or high sign-in risk) is queued
    /// for the webhooks in the same transaction.
    pub async fn record_sign_in(&self, e: &SignInLogEntry) -> StoreResult<()> {
        if !is_risky(e) {
            insert_sign_in(e, self.backend())
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        insert_sign_in(e, self.backend()).execute(&mut *tx).await?;
        crate::webhooks::fan_out(
            &mut *tx,
            crate::webhooks::EVENT_RISKY_SIGN_IN,
            &e.id,
            e.occurred_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the log row of a successful sign-in of an account and brings the account's
    /// sign-in profile up to date in the same transaction: `update` gets the stored profile,
    /// or, for an account without one, the summary of its newest `limit` successful sign-ins
    /// (this one included), and returns the profile to store. A profile another instance
    /// changed meanwhile is read again and updated anew.
    pub async fn record_successful_sign_in(
        &self,
        e: &SignInLogEntry,
        limit: i64,
        update: &(dyn Fn(ProfileSeed<'_>) -> String + Send + Sync),
    ) -> StoreResult<()> {
        let Some(user_id) = e.user_id.as_deref() else {
            return self.record_sign_in(e).await;
        };
        let mut tx = self.pool.begin().await?;
        // The log row first: on SQLite it takes the write lock, so nothing changes the
        // profile between its read and its write below.
        insert_sign_in(e, self.backend()).execute(&mut *tx).await?;
        if is_risky(e) {
            crate::webhooks::fan_out(
                &mut *tx,
                crate::webhooks::EVENT_RISKY_SIGN_IN,
                &e.id,
                e.occurred_at,
            )
            .await?;
        }
        for _ in 0..8 {
            let stored =
                sqlx::query("SELECT profile, version FROM sign_in_profiles WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let written = match stored {
                Some(row) => {
                    let profile: String = row.try_get(0)?;
                    let version: i64 = row.try_get(1)?;
                    let next = update(ProfileSeed::Stored(&profile));
                    sqlx::query(
                        "UPDATE sign_in_profiles SET profile = $1, version = version + 1, \
                         updated_at = $2 WHERE user_id = $3 AND version = $4",
                    )
                    .bind(next)
                    .bind(e.occurred_at)
                    .bind(user_id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                }
                None => {
                    let summary = summary_of(&mut *tx, user_id, limit, e.occurred_at).await?;
                    let first = update(ProfileSeed::Log(&summary));
                    sqlx::query(
                        "INSERT INTO sign_in_profiles (user_id, profile, version, updated_at) \
                         VALUES ($1, $2, 1, $3) ON CONFLICT (user_id) DO NOTHING",
                    )
                    .bind(user_id)
                    .bind(first)
                    .bind(e.occurred_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                }
            };
            if written == 1 {
                break;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes up to `batch` sign-in log rows older than `before`, oldest first, that the
    /// insights rollup has already counted; returns how many.
    pub async fn prune_sign_in_log(&self, before: i64, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM sign_in_log WHERE id IN (SELECT l.id FROM sign_in_log l \
             JOIN insight_watermarks w ON w.name = 'sign_ins' \
             WHERE l.occurred_at < $1 AND (l.seq < w.seq OR (l.seq = w.seq AND l.id <= w.id)) \
             ORDER BY l.occurred_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The account's stored sign-in profile (JSON), if it has one.
    pub async fn sign_in_profile(&self, user_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT profile FROM sign_in_profiles WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// Writes many sign-in log rows in one transaction (imports and generated data; the
    /// sign-in path writes one row at a time with [`Store::record_sign_in`]).
    pub async fn record_sign_ins(&self, entries: &[SignInLogEntry]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for e in entries {
            insert_sign_in(e, self.backend()).execute(&mut *tx).await?;
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
    /// What the history-based detections compare with, computed by the database over the
    /// account's newest `limit` successful sign-ins: how many there are, the distinct values
    /// they showed (with how often), the newest with coordinates made no later than `now`, and
    /// when the first successful sign-in of all was. A few rows come back, not the history.
    pub async fn sign_in_summary(
        &self,
        user_id: &str,
        limit: i64,
        now: i64,
    ) -> StoreResult<SignInSummary> {
        summary_of(&self.pool, user_id, limit, now).await
    }
}

/// [`Store::sign_in_summary`] on a connection or in a transaction.
async fn summary_of<'c, E>(
    executor: E,
    user_id: &str,
    limit: i64,
    now: i64,
) -> StoreResult<SignInSummary>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    const RECENT: &str = "SELECT occurred_at, id, client_ip, country, city, latitude_e6, \
             longitude_e6, accuracy_km, asn, browser, os, device FROM sign_in_log \
             WHERE user_id = $1 AND result = 'success' ORDER BY occurred_at DESC, id DESC LIMIT $2";
    // One statement: the counts of each value, and the newest located sign-in as a row of
    // its own (its place in the extra columns, NULL elsewhere).
    let rows = sqlx::query(&format!(
        "WITH recent AS ({RECENT}) \
             SELECT 'total' AS k, CAST(NULL AS TEXT) AS v, COUNT(*) AS n, \
               CAST(NULL AS BIGINT) AS lat, CAST(NULL AS BIGINT) AS lon, \
               CAST(NULL AS BIGINT) AS acc, CAST(NULL AS TEXT) AS country, \
               CAST(NULL AS TEXT) AS city FROM recent \
             UNION ALL SELECT 'first', NULL, MIN(occurred_at), NULL, NULL, NULL, NULL, NULL \
               FROM sign_in_log WHERE user_id = $1 AND result = 'success' \
             UNION ALL SELECT * FROM (SELECT 'located', client_ip, occurred_at, latitude_e6, \
               longitude_e6, accuracy_km, country, city FROM recent \
               WHERE latitude_e6 IS NOT NULL AND longitude_e6 IS NOT NULL AND occurred_at <= $3 \
               ORDER BY occurred_at DESC, id DESC LIMIT 1) located \
             UNION ALL SELECT 'asn', CAST(asn AS TEXT), COUNT(*), NULL, NULL, NULL, NULL, NULL \
               FROM recent WHERE asn IS NOT NULL GROUP BY asn \
             UNION ALL SELECT 'country', country, COUNT(*), NULL, NULL, NULL, NULL, NULL \
               FROM recent WHERE country IS NOT NULL GROUP BY country \
             UNION ALL SELECT 'place', country || '|' || COALESCE('+' || city, ''), COUNT(*), \
               NULL, NULL, NULL, NULL, NULL FROM recent WHERE country IS NOT NULL \
               GROUP BY country, city \
             UNION ALL SELECT 'browser', browser, COUNT(*), NULL, NULL, NULL, NULL, NULL \
               FROM recent WHERE browser IS NOT NULL GROUP BY browser \
             UNION ALL SELECT 'os', os, COUNT(*), NULL, NULL, NULL, NULL, NULL \
               FROM recent WHERE os IS NOT NULL GROUP BY os \
             UNION ALL SELECT 'device', device, COUNT(*), NULL, NULL, NULL, NULL, NULL \
               FROM recent WHERE device IS NOT NULL GROUP BY device \
             UNION ALL SELECT 'address', client_ip, COUNT(*), NULL, NULL, NULL, NULL, NULL \
               FROM recent GROUP BY client_ip"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(now)
    .fetch_all(executor)
    .await?;
    let mut summary = SignInSummary::default();
    for r in &rows {
        let kind: String = r.try_get(0)?;
        let value: Option<String> = r.try_get(1)?;
        let n: Option<i64> = r.try_get(2)?;
        match (kind.as_str(), value) {
            ("total", _) => summary.compared = n.unwrap_or(0),
            ("first", _) => summary.first_at = n,
            ("located", Some(ip)) => {
                summary.last_located = Some(SignInLogEntry {
                    occurred_at: n.unwrap_or(0),
                    user_id: Some(user_id.to_string()),
                    client_ip: ip,
                    latitude_e6: r.try_get(3)?,
                    longitude_e6: r.try_get(4)?,
                    accuracy_km: r.try_get(5)?,
                    country: r.try_get(6)?,
                    city: r.try_get(7)?,
                    result: "success".into(),
                    ..SignInLogEntry::default()
                })
            }
            (_, Some(v)) => summary.values.push((kind, v, n.unwrap_or(0))),
            _ => {}
        }
    }
    Ok(summary)
}

impl Store {
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

/// Whether the row's sign-in risk makes it a risky sign-in.
fn is_risky(e: &SignInLogEntry) -> bool {
    matches!(e.risk_level.as_deref(), Some("low" | "medium" | "high"))
}

/// The statement that writes one sign-in log row. On SQLite the row's `seq` is the next number (its one writer makes that the commit
/// order); on PostgreSQL the column's default, the writing transaction's id.
fn insert_sign_in(
    e: &SignInLogEntry,
    backend: Backend,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    const COLUMNS: &str = "INSERT INTO sign_in_log (id, occurred_at, user_id, email, application, \
         client_ip, user_agent, method, result, failure_reason, session_id, policies, country, \
         city, latitude_e6, longitude_e6, accuracy_km, asn, browser, os, device, risk_level";
    const VALUES: &str = "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22";
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("{COLUMNS}, seq) {VALUES}, (SELECT COALESCE(MAX(seq), 0) + 1 FROM sign_in_log))")
    });
    static POSTGRES: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{COLUMNS}) {VALUES})"));
    let sql = match backend {
        Backend::Sqlite => SQLITE.as_str(),
        Backend::Postgres => POSTGRES.as_str(),
    };
    sqlx::query(sql)
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
