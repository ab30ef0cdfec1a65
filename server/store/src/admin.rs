//! What the admin console reads and changes: users by search and page, account state, the
//! sign-in log and the audit log by filter, and the development outbox.

use sqlx::Row;

use crate::{
    AuditEntry, OutboxMessage, SignInLogEntry, Store, StoreResult, User, AUDIT_COLUMNS,
    SIGN_IN_COLUMNS, USER_COLUMNS,
};

const OUTBOX_COLUMNS: &str =
    "id, created_at, channel, recipient, subject, body, sent_at, last_error";

/// A `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Filters of the sign-in log; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInFilter {
    /// Part of the email typed.
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub application: Option<String>,
    pub result: Option<String>,
    pub method: Option<String>,
    pub client_ip: Option<String>,
    /// Milliseconds, inclusive.
    pub from: Option<i64>,
    /// Milliseconds, exclusive.
    pub to: Option<i64>,
    /// One sign-in risk level (`low`, `medium`, `high`).
    pub risk_level: Option<String>,
    /// Only attempts with some sign-in risk (risky sign-ins).
    pub risky: bool,
}

/// Filters of the risk detections; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectionFilter {
    /// Part of the account's email.
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub kind: Option<String>,
    pub level: Option<String>,
    pub state: Option<String>,
    /// The application of the sign-in it came from.
    pub application: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only detections after this one in the report's order (newest first): its detection
    /// time and id. Pages read this way stay consistent while new detections arrive.
    pub after: Option<(i64, String)>,
}

/// Filters of the risky users; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskyUserFilter {
    pub email: Option<String>,
    /// The user risk level (`low`, `medium`, `high`).
    pub level: Option<String>,
    /// `at-risk` or `confirmed-compromised`.
    pub state: Option<String>,
    /// Only accounts after this one in the report's order (most recently detected first):
    /// its last detection time and user id.
    pub after: Option<(i64, String)>,
}

/// An account with open detections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskyUser {
    pub user_id: String,
    pub email: String,
    /// The highest open level.
    pub level: String,
    /// `confirmed-compromised` when an administrator said so, else `at-risk`.
    pub state: String,
    pub open_detections: i64,
    pub last_detected_at: i64,
}

/// Filters of the audit log; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_user_id: Option<String>,
    pub subject_user_id: Option<String>,
    /// An action, or the start of one (`oauth.` matches every application action).
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// SQL conditions and their text parameters, numbered from `$1`.
struct Conditions {
    sql: Vec<String>,
    texts: Vec<String>,
    numbers: Vec<i64>,
}

impl Conditions {
    fn new() -> Self {
        Conditions {
            sql: Vec::new(),
            texts: Vec::new(),
            numbers: Vec::new(),
        }
    }

    fn text(&mut self, template: &str, value: Option<&String>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.texts.push(v.clone());
            self.sql
                .push(template.replace('?', &format!("$T{}", self.texts.len())));
        }
    }

    /// A condition without parameters (its text is the caller's constant).
    fn raw(&mut self, sql: &'static str, on: bool) {
        if on {
            self.sql.push(sql.to_string());
        }
    }

    /// Rows after `(time, id)` in the order `time_column DESC, id`.
    fn after(&mut self, time_column: &str, after: Option<&(i64, String)>) {
        if let Some((at, id)) = after {
            self.numbers.push(*at);
            self.texts.push(id.clone());
            let (n, t) = (self.numbers.len(), self.texts.len());
            self.sql.push(format!(
                "({time_column} < $N{n} OR ({time_column} = $N{n} AND id > $T{t}))"
            ));
        }
    }

    fn number(&mut self, template: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.numbers.push(v);
            self.sql
                .push(template.replace('?', &format!("$N{}", self.numbers.len())));
        }
    }

    /// `WHERE ...` with placeholders renumbered: texts first, then numbers, then `extra` more.
    fn finish(&self) -> (String, usize) {
        let t = self.texts.len();
        let mut clause = if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        };
        for i in (1..=self.numbers.len()).rev() {
            clause = clause.replace(&format!("$N{i}"), &format!("${}", t + i));
        }
        for i in (1..=t).rev() {
            clause = clause.replace(&format!("$T{i}"), &format!("${i}"));
        }
        (clause, t + self.numbers.len())
    }

    fn bind<'q>(
        &'q self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for t in &self.texts {
            q = q.bind(t.as_str());
        }
        for n in &self.numbers {
            q = q.bind(*n);
        }
        q
    }
}

impl Store {
    /// Users whose email or name contains `query` (any case), newest first, and how many match.
    pub async fn search_users(
        &self,
        query: &str,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<User>, i64)> {
        let pattern = contains_pattern(query.trim());
        let condition =
            "(LOWER(email) LIKE $1 ESCAPE '\\' OR LOWER(display_name) LIKE $1 ESCAPE '\\')";
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM users WHERE {condition}"))
            .bind(&pattern)
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {condition} ORDER BY created_at DESC, id \
             LIMIT $2 OFFSET $3"
        ))
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let users = rows
            .iter()
            .map(User::from_row)
            .collect::<StoreResult<_>>()?;
        Ok((users, total))
    }

    /// Disables or enables an account. Disabling moves it to a new credential epoch and deletes
    /// its sessions, so nothing signed in before comes back when it is enabled again.
    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET disabled = $1, updated_at = $2, \
             credential_epoch = credential_epoch + $3 WHERE id = $4",
        )
        .bind(i64::from(disabled))
        .bind(now)
        .bind(i64::from(disabled))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the password and moves the account to a new credential epoch (its sessions and
    /// tokens end); the person sets a new password through a reset.
    pub async fn clear_password(&self, user_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET password_hash = NULL, credential_epoch = credential_epoch + 1, \
             updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sign-in log rows matching `filter`, newest first, and how many match.
    pub async fn filter_sign_ins(
        &self,
        filter: &SignInFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<SignInLogEntry>, i64)> {
        let mut c = Conditions::new();
        let email = filter.email.as_deref().map(contains_pattern);
        c.text("LOWER(email) LIKE ? ESCAPE '\\'", email.as_ref());
        c.text("user_id = ?", filter.user_id.as_ref());
        c.text("application = ?", filter.application.as_ref());
        c.text("result = ?", filter.result.as_ref());
        c.text("method = ?", filter.method.as_ref());
        c.text("client_ip = ?", filter.client_ip.as_ref());
        c.number("occurred_at >= ?", filter.from);
        c.number("occurred_at < ?", filter.to);
        c.text("risk_level = ?", filter.risk_level.as_ref());
        c.raw("risk_level IN ('low', 'medium', 'high')", filter.risky);
        self.filtered_page(
            "sign_in_log",
            SIGN_IN_COLUMNS,
            "occurred_at",
            &c,
            offset,
            limit,
            SignInLogEntry::from_row,
        )
        .await
    }

    /// A page of the rows of a log `table` matching `c`, newest first, and how many match.
    #[allow(clippy::too_many_arguments)]
    async fn filtered_page<T>(
        &self,
        table: &str,
        columns: &str,
        time_column: &str,
        c: &Conditions,
        offset: i64,
        limit: i64,
        from_row: fn(&sqlx::any::AnyRow) -> StoreResult<T>,
    ) -> StoreResult<(Vec<T>, i64)> {
        let (clause, n) = c.finish();
        let count = format!("SELECT COUNT(*) FROM {table} {clause}");
        let total: i64 = c
            .bind(sqlx::query(&count))
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        let sql = format!(
            "SELECT {columns} FROM {table} {clause} ORDER BY {time_column} DESC, id \
             LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let rows = c
            .bind(sqlx::query(&sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let items = rows.iter().map(from_row).collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    /// Risk detections matching `filter`, newest first, and how many match.
    pub async fn filter_detections(
        &self,
        filter: &DetectionFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<crate::DetectionRecord>, i64)> {
        let mut c = Conditions::new();
        let email = filter.email.as_deref().map(contains_pattern);
        c.text(
            "user_id IN (SELECT id FROM users WHERE LOWER(email) LIKE ? ESCAPE '\\')",
            email.as_ref(),
        );
        c.text("user_id = ?", filter.user_id.as_ref());
        c.text("kind = ?", filter.kind.as_ref());
        c.text("level = ?", filter.level.as_ref());
        c.text("state = ?", filter.state.as_ref());
        c.text(
            "sign_in_id IN (SELECT id FROM sign_in_log WHERE application = ?)",
            filter.application.as_ref(),
        );
        c.number("detected_at >= ?", filter.from);
        c.number("detected_at < ?", filter.to);
        c.after("detected_at", filter.after.as_ref());
        self.filtered_page(
            "risk_detections",
            crate::risk::DETECTION_COLUMNS,
            "detected_at",
            &c,
            offset,
            limit,
            crate::DetectionRecord::from_row,
        )
        .await
    }

    /// The accounts with open detections matching `filter`, most recently detected first,
    /// and how many match.
    pub async fn risky_users(
        &self,
        filter: &RiskyUserFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<RiskyUser>, i64)> {
        let mut c = Conditions::new();
        c.raw("d.state IN ('at-risk', 'confirmed-compromised')", true);
        let email = filter.email.as_deref().map(contains_pattern);
        c.text("LOWER(u.email) LIKE ? ESCAPE '\\'", email.as_ref());
        let (clause, n) = c.finish();
        // An unreadable level ranks as high, as in the account's user risk.
        let rank =
            "MAX(CAST(CASE d.level WHEN 'low' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END AS BIGINT))";
        let compromised =
            "MAX(CAST(CASE d.state WHEN 'confirmed-compromised' THEN 1 ELSE 0 END AS BIGINT))";
        let mut having = Vec::new();
        let level = match filter.level.as_deref() {
            Some("low") => Some(1),
            Some("medium") => Some(2),
            Some("high") => Some(3),
            Some(_) => Some(0),
            None => None,
        };
        if let Some(level) = level {
            having.push(format!("{rank} = {level}"));
        }
        match filter.state.as_deref() {
            Some("confirmed-compromised") => having.push(format!("{compromised} = 1")),
            Some("at-risk") => having.push(format!("{compromised} = 0")),
            Some(_) => having.push("1 = 0".into()),
            None => {}
        }
        // The cursor's time is a number of ours, written as such; its id is bound.
        let mut extra = 0;
        if let Some((at, _)) = &filter.after {
            extra = 1;
            having.push(format!(
                "(MAX(d.detected_at) < {at} OR (MAX(d.detected_at) = {at} AND d.user_id > ${}))",
                n + 1
            ));
        }
        let after_id = filter.after.as_ref().map(|(_, id)| id.as_str());
        let having = if having.is_empty() {
            String::new()
        } else {
            format!("HAVING {}", having.join(" AND "))
        };
        let grouped = format!(
            "SELECT d.user_id AS user_id, u.email AS email, {rank} AS level_rank, \
             {compromised} AS compromised, COUNT(*) AS open_detections, \
             MAX(d.detected_at) AS last_detected_at \
             FROM risk_detections d JOIN users u ON u.id = d.user_id {clause} \
             GROUP BY d.user_id, u.email {having}"
        );
        let count = format!("SELECT COUNT(*) FROM ({grouped}) risky");
        let mut count_query = c.bind(sqlx::query(&count));
        if let Some(id) = after_id {
            count_query = count_query.bind(id);
        }
        let total: i64 = count_query.fetch_one(self.pool()).await?.try_get(0)?;
        let sql = format!(
            "{grouped} ORDER BY last_detected_at DESC, user_id LIMIT ${} OFFSET ${}",
            n + extra + 1,
            n + extra + 2
        );
        let mut query = c.bind(sqlx::query(&sql));
        if let Some(id) = after_id {
            query = query.bind(id);
        }
        let rows = query
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let users = rows
            .iter()
            .map(|r| {
                let rank: i64 = r.try_get("level_rank")?;
                let compromised: i64 = r.try_get("compromised")?;
                Ok(RiskyUser {
                    user_id: r.try_get("user_id")?,
                    email: r.try_get("email")?,
                    level: match rank {
                        1 => "low",
                        2 => "medium",
                        _ => "high",
                    }
                    .into(),
                    state: if compromised == 1 {
                        "confirmed-compromised"
                    } else {
                        "at-risk"
                    }
                    .into(),
                    open_detections: r.try_get("open_detections")?,
                    last_detected_at: r.try_get("last_detected_at")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        Ok((users, total))
    }

    /// One risk detection by its id.
    pub async fn find_detection(&self, id: &str) -> StoreResult<Option<crate::DetectionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM risk_detections WHERE id = $1",
            crate::risk::DETECTION_COLUMNS
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| crate::DetectionRecord::from_row(&r))
            .transpose()
    }

    /// The detections made at one sign-in.
    pub async fn detections_of_sign_in(
        &self,
        sign_in_id: &str,
    ) -> StoreResult<Vec<crate::DetectionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM risk_detections WHERE sign_in_id = $1 ORDER BY detected_at, id",
            crate::risk::DETECTION_COLUMNS
        ))
        .bind(sign_in_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(crate::DetectionRecord::from_row).collect()
    }

    /// The state changes of one detection, oldest first.
    pub async fn detection_history(
        &self,
        detection_id: &str,
    ) -> StoreResult<Vec<crate::RiskStateChange>> {
        let rows = sqlx::query(
            "SELECT id, user_id, detection_id, state, changed_by, changed_at, reason \
             FROM risk_state_changes WHERE detection_id = $1 ORDER BY changed_at, id",
        )
        .bind(detection_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(crate::RiskStateChange::from_row).collect()
    }

    pub async fn find_sign_in(&self, id: &str) -> StoreResult<Option<SignInLogEntry>> {
        let row = sqlx::query(&format!(
            "SELECT {SIGN_IN_COLUMNS} FROM sign_in_log WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| SignInLogEntry::from_row(&r)).transpose()
    }

    /// Audit log rows matching `filter`, newest first, and how many match.
    pub async fn filter_audit(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<AuditEntry>, i64)> {
        let mut c = Conditions::new();
        c.text("actor_user_id = ?", filter.actor_user_id.as_ref());
        c.text("subject_user_id = ?", filter.subject_user_id.as_ref());
        let action = filter.action.as_ref().map(|a| {
            let mut p = contains_pattern(a);
            p.remove(0);
            p
        });
        c.text("action LIKE ? ESCAPE '\\'", action.as_ref());
        c.number("occurred_at >= ?", filter.from);
        c.number("occurred_at < ?", filter.to);
        self.filtered_page(
            "audit_log",
            AUDIT_COLUMNS,
            "occurred_at",
            &c,
            offset,
            limit,
            AuditEntry::from_row,
        )
        .await
    }

    /// The newest messages of the outbox (the development outbox when no gateway is set).
    pub async fn recent_messages(&self, limit: i64) -> StoreResult<Vec<OutboxMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(OutboxMessage::from_row).collect()
    }

    /// Records that `user_id` signed in from the device with this hash. Returns whether the
    /// device is new to the account and how many devices the account knew before.
    pub async fn remember_device(
        &self,
        user_id: &str,
        device_hash: &str,
        now: i64,
    ) -> StoreResult<(bool, i64)> {
        let known: i64 = sqlx::query("SELECT COUNT(*) FROM known_devices WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        let inserted = sqlx::query(
            "INSERT INTO known_devices (user_id, device_hash, first_seen, last_seen) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (user_id, device_hash) DO NOTHING",
        )
        .bind(user_id)
        .bind(device_hash)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            sqlx::query(
                "UPDATE known_devices SET last_seen = $1 WHERE user_id = $2 AND device_hash = $3",
            )
            .bind(now)
            .bind(user_id)
            .bind(device_hash)
            .execute(self.pool())
            .await?;
        }
        Ok((inserted, known))
    }

    /// Sign-ins since `since` by result: (result, count).
    pub async fn sign_in_counts(&self, since: i64) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT result, COUNT(*) FROM sign_in_log WHERE occurred_at >= $1 GROUP BY result \
             ORDER BY result",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("Ada"), "%ada%");
        assert_eq!(contains_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }
}
