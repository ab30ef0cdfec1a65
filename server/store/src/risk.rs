//! Identity Protection storage: risk detections and every change of their state.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreResult};

/// One stored risk detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionRecord {
    pub id: String,
    pub user_id: String,
    /// The sign-in log row it came from, if any.
    pub sign_in_id: Option<String>,
    pub kind: String,
    pub level: String,
    /// `real-time` or `offline`.
    pub timing: String,
    pub detected_at: i64,
    pub state: String,
    /// Structured evidence (JSON).
    pub evidence: String,
    /// The evidence in one sentence.
    pub summary: String,
    pub updated_at: i64,
}

impl DetectionRecord {
    pub(crate) fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(DetectionRecord {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            sign_in_id: row.try_get("sign_in_id")?,
            kind: row.try_get("kind")?,
            level: row.try_get("level")?,
            timing: row.try_get("timing")?,
            detected_at: row.try_get("detected_at")?,
            state: row.try_get("state")?,
            evidence: row.try_get("evidence")?,
            summary: row.try_get("summary")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// One change of a detection's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskStateChange {
    pub id: String,
    pub user_id: String,
    pub detection_id: String,
    pub state: String,
    /// The admin who made it; none for the person themselves or the system.
    pub changed_by: Option<String>,
    pub changed_at: i64,
    pub reason: String,
}

impl RiskStateChange {
    pub(crate) fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(RiskStateChange {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            detection_id: r.try_get("detection_id")?,
            state: r.try_get("state")?,
            changed_by: r.try_get("changed_by")?,
            changed_at: r.try_get("changed_at")?,
            reason: r.try_get("reason")?,
        })
    }
}

pub(crate) const DETECTION_COLUMNS: &str =
    "id, user_id, sign_in_id, kind, level, timing, detected_at, \
     state, evidence, summary, updated_at";

/// The states in which a detection still counts toward the account's risk.
pub const OPEN_RISK_STATES: [&str; 2] = ["at-risk", "confirmed-compromised"];

/// The kinds of detection that are about a sign-in (where and how it came), which completing
/// multifactor authentication remediates; the others are about the account.
pub const SIGN_IN_RISK_KINDS: [&str; 4] = [
    "anonymous-ip",
    "malicious-ip",
    "atypical-travel",
    "unfamiliar-features",
];

impl Store {
    /// Stores a new detection and its first state in one transaction.
    pub async fn record_detection(
        &self,
        d: &DetectionRecord,
        change_id: &str,
        changed_by: Option<&str>,
        reason: &str,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO risk_detections ({DETECTION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&d.id)
        .bind(&d.user_id)
        .bind(d.sign_in_id.as_deref())
        .bind(&d.kind)
        .bind(&d.level)
        .bind(&d.timing)
        .bind(d.detected_at)
        .bind(&d.state)
        .bind(&d.evidence)
        .bind(&d.summary)
        .bind(d.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO risk_state_changes (id, user_id, detection_id, state, changed_by, \
             changed_at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(change_id)
        .bind(&d.user_id)
        .bind(&d.id)
        .bind(&d.state)
        .bind(changed_by)
        .bind(d.detected_at)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        crate::webhooks::fan_out(
            &mut *tx,
            crate::webhooks::EVENT_DETECTION_CREATED,
            change_id,
            d.detected_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The levels of the account's detections still open.
    pub async fn open_risk_levels(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT level FROM risk_detections WHERE user_id = $1 \
             AND state IN ('at-risk', 'confirmed-compromised')",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether the account has an open detection of `kind`.
    pub async fn has_open_detection(&self, user_id: &str, kind: &str) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM risk_detections WHERE user_id = $1 AND kind = $2 \
             AND state IN ('at-risk', 'confirmed-compromised')",
        )
        .bind(user_id)
        .bind(kind)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Every detection of the account, newest first.
    pub async fn detections_of(&self, user_id: &str) -> StoreResult<Vec<DetectionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DETECTION_COLUMNS} FROM risk_detections WHERE user_id = $1 \
             ORDER BY detected_at DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DetectionRecord::from_row).collect()
    }

    /// Moves every open detection of the account to `state`, recording one change each (with
    /// ids from `next_id`). Returns how many changed.
    pub async fn close_open_risk(
        &self,
        user_id: &str,
        state: &str,
        changed_by: Option<&str>,
        reason: &str,
        now: i64,
        next_id: &mut (dyn FnMut() -> String + Send),
    ) -> StoreResult<u64> {
        let open = sqlx::query(
            "SELECT id FROM risk_detections WHERE user_id = $1 \
             AND state IN ('at-risk', 'confirmed-compromised')",
        )
        .bind(user_id);
        self.move_detections(open, user_id, state, changed_by, reason, now, next_id)
            .await
    }

    /// Closes the account's open detections of one `kind` in `state` (a leaked password is
    /// remediated by any new password). Returns how many were open.
    #[allow(clippy::too_many_arguments)]
    pub async fn close_open_risk_of_kind(
        &self,
        user_id: &str,
        kind: &str,
        state: &str,
        reason: &str,
        now: i64,
        next_id: &mut (dyn FnMut() -> String + Send),
    ) -> StoreResult<u64> {
        let open = sqlx::query(
            "SELECT id FROM risk_detections WHERE user_id = $1 AND kind = $2 \
             AND state IN ('at-risk', 'confirmed-compromised')",
        )
        .bind(user_id)
        .bind(kind);
        self.move_detections(open, user_id, state, None, reason, now, next_id)
            .await
    }

    /// The account's changes of risk state, newest first.
    pub async fn risk_history(&self, user_id: &str) -> StoreResult<Vec<RiskStateChange>> {
        let rows = sqlx::query(
            "SELECT id, user_id, detection_id, state, changed_by, changed_at, reason \
             FROM risk_state_changes WHERE user_id = $1 ORDER BY changed_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RiskStateChange::from_row).collect()
    }
}

impl Store {
    /// Replaces the list `kind` with `entries` (one transaction; every instance reloads it with
    /// the Conditional Access change counter). Returns how many entries it holds.
    pub async fn replace_risk_list(
        &self,
        kind: &str,
        entries: &[String],
        now: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM risk_lists WHERE kind = $1")
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        let mut n = 0;
        for entry in entries {
            n += sqlx::query(
                "INSERT INTO risk_lists (kind, entry, imported_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, entry) DO NOTHING",
            )
            .bind(kind)
            .bind(entry)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query(crate::policies::BUMP_VERSION)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Every list entry, as (kind, entry).
    pub async fn risk_list_entries(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT kind, entry FROM risk_lists ORDER BY kind, entry")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Closes the account's open real-time (sign-in) detections made since `since`.
    pub async fn close_recent_sign_in_risk(
        &self,
        user_id: &str,
        since: i64,
        state: &str,
        reason: &str,
        now: i64,
        next_id: &mut (dyn FnMut() -> String + Send),
    ) -> StoreResult<u64> {
        let kinds = SIGN_IN_RISK_KINDS
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id FROM risk_detections WHERE user_id = $1 AND timing = 'real-time' \
             AND detected_at >= $2 AND state IN ('at-risk', 'confirmed-compromised') \
             AND kind IN ({kinds})"
        );
        let recent = sqlx::query(&sql).bind(user_id).bind(since);
        self.move_detections(recent, user_id, state, None, reason, now, next_id)
            .await
    }

    /// Moves the detections `select` names (their ids) to `state` in one transaction, with
    /// one history row each. Returns how many moved.
    #[allow(clippy::too_many_arguments)]
    async fn move_detections<'q>(
        &self,
        select: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        user_id: &str,
        state: &str,
        changed_by: Option<&str>,
        reason: &str,
        now: i64,
        next_id: &mut (dyn FnMut() -> String + Send),
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = select
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        for id in &ids {
            let change_id = next_id();
            sqlx::query("UPDATE risk_detections SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(state)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO risk_state_changes (id, user_id, detection_id, state, changed_by, \
                 changed_at, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&change_id)
            .bind(user_id)
            .bind(id)
            .bind(state)
            .bind(changed_by)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            crate::webhooks::fan_out(
                &mut *tx,
                crate::webhooks::EVENT_DETECTION_STATE_CHANGED,
                &change_id,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

/// What one client address did with passwords over a window: the input of the offline
/// password-spray and failing-address detections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceActivity {
    pub client_ip: String,
    /// Password attempts.
    pub attempts: i64,
    /// Wrong passwords, and attempts refused for too many of them.
    pub failures: i64,
    /// Distinct accounts (emails, known or not) it sent a wrong password for.
    pub failed_accounts: i64,
    pub first_at: i64,
    pub last_at: i64,
}

/// The failure reasons that count as a wrong password.
const WRONG_PASSWORD: &str = "('invalid_credentials', 'throttled')";

impl Store {
    /// The addresses that made at least `min_attempts` password attempts in `[from, to)`,
    /// with what they did.
    pub async fn password_sources(
        &self,
        from: i64,
        to: i64,
        min_attempts: i64,
    ) -> StoreResult<Vec<SourceActivity>> {
        let rows = sqlx::query(&format!(
            "SELECT client_ip, COUNT(*) AS attempts, \
             CAST(SUM(CASE WHEN failure_reason IN {WRONG_PASSWORD} THEN 1 ELSE 0 END) AS BIGINT) \
               AS failures, \
             COUNT(DISTINCT CASE WHEN failure_reason IN {WRONG_PASSWORD} THEN LOWER(email) END) \
               AS failed_accounts, \
             MIN(occurred_at) AS first_at, MAX(occurred_at) AS last_at \
             FROM sign_in_log WHERE method = 'password' AND occurred_at >= $1 \
             AND occurred_at < $2 GROUP BY client_ip HAVING COUNT(*) >= $3 ORDER BY client_ip"
        ))
        .bind(from)
        .bind(to)
        .bind(min_attempts)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceActivity {
                    client_ip: r.try_get("client_ip")?,
                    attempts: r.try_get("attempts")?,
                    failures: r.try_get("failures")?,
                    failed_accounts: r.try_get("failed_accounts")?,
                    first_at: r.try_get("first_at")?,
                    last_at: r.try_get("last_at")?,
                })
            })
            .collect()
    }

    /// The attempts from `client_ip` in `[from, to)` whose password was right (signed in, or
    /// went on to a second factor or another step), oldest first.
    pub async fn proven_passwords_from(
        &self,
        client_ip: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<crate::SignInLogEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM sign_in_log WHERE client_ip = $1 AND occurred_at >= $2 \
             AND occurred_at < $3 AND method = 'password' AND user_id IS NOT NULL \
             AND result IN ('success', 'interrupted') ORDER BY occurred_at, id",
            crate::SIGN_IN_COLUMNS
        ))
        .bind(client_ip)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(crate::SignInLogEntry::from_row).collect()
    }

    /// Whether a detection of `kind` was already made for the sign-in `sign_in_id`.
    pub async fn has_detection_of_sign_in(
        &self,
        sign_in_id: &str,
        kind: &str,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM risk_detections WHERE sign_in_id = $1 AND kind = $2 LIMIT 1",
        )
        .bind(sign_in_id)
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}
