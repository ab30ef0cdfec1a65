//! Browser sessions (`sessions`).

use sqlx::Row;

use crate::{NewSession, Session, Store, StoreResult, User, SESSION_COLUMNS_S, USER_COLUMNS_U};

impl Store {
    pub async fn create_session(&self, s: &NewSession<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, credential_epoch, amr, auth_time, created_at, \
             last_seen_at, expires_at, client_ip, user_agent, second_factor_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7, $8, $9, $10)",
        )
        .bind(s.id)
        .bind(s.token_hash)
        .bind(s.user_id)
        .bind(s.credential_epoch)
        .bind(s.amr)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(s.client_ip)
        .bind(s.user_agent)
        .bind(s.second_factor_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every session of a user that was completed with the given second factor.
    pub async fn delete_sessions_with_second_factor(
        &self,
        user_id: &str,
        second_factor_id: &str,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND second_factor_id = $2")
            .bind(user_id)
            .bind(second_factor_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Keeps at most `keep` live sessions of a user, never touching `protect` (the session just
    /// created). Dead sessions (expired, idle too long, or bound to an old credential epoch) go
    /// first; then the oldest live ones. Returns how many ended.
    pub async fn trim_sessions(
        &self,
        user_id: &str,
        protect: &str,
        keep: i64,
        idle_ms: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let dead = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 AND (expires_at <= $3 OR last_seen_at <= $4 \
             OR credential_epoch <> (SELECT credential_epoch FROM users WHERE id = $1))",
        )
        .bind(user_id)
        .bind(protect)
        .bind(now)
        .bind(now - idle_ms)
        .execute(&self.pool)
        .await?;
        let old = sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2 AND id NOT IN \
             (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 ORDER BY created_at DESC, id DESC LIMIT $3)",
        )
        .bind(user_id)
        .bind(protect)
        .bind((keep - 1).max(0))
        .execute(&self.pool)
        .await?;
        Ok(dead.rows_affected() + old.rows_affected())
    }

    /// The live session for a cookie token hash: not expired, not idle for longer than
    /// `idle_ms`, bound to the user's current credential epoch, and the user not disabled.
    pub async fn find_live_session(
        &self,
        token_hash: &str,
        idle_ms: i64,
        now: i64,
    ) -> StoreResult<Option<(Session, User)>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS_S}, {USER_COLUMNS_U} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 \
             AND s.credential_epoch = u.credential_epoch AND u.disabled = 0"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((Session::from_row(&r)?, User::from_row(&r)?))),
            None => Ok(None),
        }
    }

    /// Whether the session with this id is live for its browser: not expired, not idle for
    /// longer than `idle_ms`, on its user's current credentials. Reading it records nothing.
    pub async fn session_is_live(&self, id: &str, idle_ms: i64, now: i64) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 \
             AND s.expires_at > $2 AND s.last_seen_at > $3 \
             AND s.credential_epoch = u.credential_epoch AND u.disabled = 0",
        )
        .bind(id)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Records activity, at most once per `granularity_ms` to keep reads cheap.
    pub async fn touch_session(&self, id: &str, granularity_ms: i64, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(id)
            .bind(now - granularity_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts a second factor for a session that had proven one (the account's first factor
    /// of a second kind, proven while it was added): the session's methods become `amr`, and
    /// removing that factor later ends the session. A session already completed with a
    /// second factor is left as it is.
    pub async fn add_session_factor(
        &self,
        id: &str,
        amr: &str,
        second_factor_id: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET amr = $1, second_factor_id = $2 \
             WHERE id = $3 AND second_factor_id IS NULL",
        )
        .bind(amr)
        .bind(second_factor_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a session onto a new credential epoch (the session that changed the password).
    pub async fn rebind_session(&self, id: &str, epoch: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET credential_epoch = $1 WHERE id = $2")
            .bind(epoch)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn list_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS_S} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.user_id = $1 \
             AND s.expires_at > $2 AND s.credential_epoch = u.credential_epoch ORDER BY s.created_at DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Session::from_row).collect()
    }

    /// Every unexpired session row of an account, on any credential epoch: the sessions a
    /// password change has just cut off are among them until their rows are deleted.
    pub async fn session_rows(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS_S} FROM sessions s WHERE s.user_id = $1 AND s.expires_at > $2 \
             ORDER BY s.created_at DESC"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Session::from_row).collect()
    }

    pub async fn delete_session(&self, user_id: &str, session_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_session_by_token_hash(&self, token_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every session of a user except `keep` (if given). Returns how many ended.
    pub async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
