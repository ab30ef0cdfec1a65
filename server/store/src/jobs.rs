//! Leases of periodic jobs: the instance whose conditional write takes a job's lease runs it;
//! a lease ends when its holder releases it or its time runs out, so a stopped instance never
//! holds a job for longer than one lease.

use sqlx::Row;

use crate::{Store, StoreResult};

impl Store {
    /// Takes (or renews) the lease of job `name` for `holder` until `now + ttl_ms` if nobody
    /// else holds it: one statement, so of instances racing for it exactly one wins.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE job_leases.expires_at <= $4 OR job_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up the lease of job `name` if `holder` holds it, noting that the job finished at
    /// `now`. Returns whether it held it.
    pub async fn release_lease(&self, name: &str, holder: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE job_leases SET expires_at = $1, finished_at = $1 \
             WHERE name = $2 AND holder = $3",
        )
        .bind(now)
        .bind(name)
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up the lease of job `name` without noting a finished run (the job had nothing to
    /// do yet).
    pub async fn drop_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("UPDATE job_leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// When job `name` last finished (milliseconds), if ever.
    pub async fn job_finished_at(&self, name: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT finished_at FROM job_leases WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .filter(|t| *t > 0))
    }
}
