//! Usage and insights: the rollup counters of the sign-in log and the watermark of the job
//! that keeps them.
//!
//! The job reads sign-in log rows after its watermark in `(seq, id)` order, folds them into
//! counters and moves the watermark, all in one transaction whose watermark update is
//! conditional on the watermark it started from: an interrupted run leaves nothing behind,
//! and two instances running at once cannot count a row twice.

use sqlx::Row;

use crate::{Backend, SignInLogEntry, Store, StoreResult, SIGN_IN_COLUMNS};

/// The watermark of the sign-in log rollup.
pub const SIGN_IN_ROLLUP: &str = "sign_ins";

/// What a batch adds to one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountDelta {
    pub span: String,
    pub bucket: i64,
    pub application: String,
    pub dim: String,
    pub value: String,
    pub result: String,
    pub n: i64,
}

/// One counter as a report reads it (summed over applications when no application is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    pub bucket: i64,
    pub dim: String,
    pub value: String,
    pub result: String,
    pub n: i64,
}

/// How far a rollup has read: the last row folded in, how many rows in all, when it moved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watermark {
    pub seq: i64,
    pub id: String,
    pub rows_done: i64,
    pub updated_at: i64,
}

impl Store {
    /// The watermark of rollup `name` (the start, before its first run).
    pub async fn watermark(&self, name: &str) -> StoreResult<Watermark> {
        let row = sqlx::query(
            "SELECT seq, id, rows_done, updated_at FROM insight_watermarks WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Watermark {
                seq: r.try_get(0)?,
                id: r.try_get(1)?,
                rows_done: r.try_get(2)?,
                updated_at: r.try_get(3)?,
            },
            None => Watermark {
                seq: i64::MIN,
                ..Watermark::default()
            },
        })
    }

    /// Up to `limit` sign-in log rows after `after` in `(seq, id)` order that no running
    /// transaction can still add to: on PostgreSQL only rows of transactions older than the
    /// oldest one still running; on SQLite, whose one writer commits rows in `seq` order,
    /// every committed row. Each row comes with its `seq`.
    pub async fn sign_ins_to_roll_up(
        &self,
        after: &Watermark,
        limit: i64,
    ) -> StoreResult<Vec<(i64, SignInLogEntry)>> {
        let horizon = match self.backend() {
            Backend::Sqlite => i64::MAX,
            Backend::Postgres => {
                sqlx::query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(self.pool())
                    .await?
                    .try_get::<i64, _>(0)?
            }
        };
        let rows = sqlx::query(&format!(
            "SELECT seq, {SIGN_IN_COLUMNS} FROM sign_in_log \
             WHERE (seq > $1 OR (seq = $1 AND id > $2)) AND seq < $3 \
             ORDER BY seq, id LIMIT $4"
        ))
        .bind(after.seq)
        .bind(&after.id)
        .bind(horizon)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq")?, SignInLogEntry::from_row(r)?)))
            .collect()
    }

    /// Adds `deltas` to the counters and moves rollup `name`'s watermark from `from` to `to`,
    /// in one transaction; nothing is written (`false`) when the watermark is no longer
    /// `from` (another instance moved it first).
    pub async fn apply_rollup(
        &self,
        name: &str,
        from: &Watermark,
        to: &Watermark,
        deltas: &[CountDelta],
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let moved = if from.seq == i64::MIN && from.id.is_empty() {
            sqlx::query(
                "INSERT INTO insight_watermarks (name, seq, id, rows_done, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(to.seq)
            .bind(&to.id)
            .bind(to.rows_done)
            .bind(to.updated_at)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE insight_watermarks SET seq = $1, id = $2, rows_done = $3, \
                 updated_at = $4 WHERE name = $5 AND seq = $6 AND id = $7",
            )
            .bind(to.seq)
            .bind(&to.id)
            .bind(to.rows_done)
            .bind(to.updated_at)
            .bind(name)
            .bind(from.seq)
            .bind(&from.id)
            .execute(&mut *tx)
            .await?
        };
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for d in deltas {
            sqlx::query(
                "INSERT INTO insight_counts (span, bucket, application, dim, value, result, n) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (span, bucket, dim, application, value, result) \
                 DO UPDATE SET n = insight_counts.n + excluded.n",
            )
            .bind(&d.span)
            .bind(d.bucket)
            .bind(&d.application)
            .bind(&d.dim)
            .bind(&d.value)
            .bind(&d.result)
            .bind(d.n)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The counters of span `span` with buckets in `[from, to)` and dimension among `dims`,
    /// of one application or summed over all.
    pub async fn insight_counts(
        &self,
        span: &str,
        from: i64,
        to: i64,
        dims: &[&str],
        application: Option<&str>,
    ) -> StoreResult<Vec<CountRow>> {
        if dims.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..dims.len()).map(|i| format!("${}", i + 5)).collect();
        let sql = format!(
            "SELECT bucket, dim, value, result, CAST(SUM(n) AS BIGINT) FROM insight_counts \
             WHERE span = $1 AND bucket >= $2 AND bucket < $3 \
             AND ($4 = '' OR application = $4) AND dim IN ({}) \
             GROUP BY bucket, dim, value, result",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(span)
            .bind(from)
            .bind(to)
            .bind(application.unwrap_or(""));
        for dim in dims {
            query = query.bind(*dim);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(CountRow {
                    bucket: r.try_get(0)?,
                    dim: r.try_get(1)?,
                    value: r.try_get(2)?,
                    result: r.try_get(3)?,
                    n: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Removes up to `batch` counters with buckets before `before`; returns how many.
    pub async fn prune_insight_counts(&self, before: i64, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM insight_counts WHERE (span, bucket, dim, application, value, result) IN \
             (SELECT span, bucket, dim, application, value, result FROM insight_counts \
              WHERE span IN ('q', 'h', 'd') AND bucket < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
