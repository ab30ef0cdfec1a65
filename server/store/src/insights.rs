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

/// Rows written per statement, and ids or buckets asked for per statement.
const WRITE_CHUNK: usize = 200;
const READ_CHUNK: usize = 500;

/// `($1, $2, ..), (..)`: `rows` groups of `columns` placeholders, numbered in order.
fn values(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, ..`: `count` placeholders.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first and last successful sign-in of an account at an application (`*`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpan {
    pub user_id: String,
    pub application: String,
    pub first_at: i64,
    pub last_at: i64,
}

/// One stored distinct-user sketch.
#[derive(Clone, PartialEq, Eq)]
pub struct SketchRow {
    pub span: String,
    pub bucket: i64,
    pub kind: String,
    pub application: String,
    pub sketch: Vec<u8>,
}

impl std::fmt::Debug for SketchRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SketchRow")
            .field("span", &self.span)
            .field("bucket", &self.bucket)
            .field("kind", &self.kind)
            .field("application", &self.application)
            .field("bytes", &self.sketch.len())
            .finish()
    }
}

impl SketchRow {
    fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Self> {
        Ok(SketchRow {
            span: r.try_get(0)?,
            bucket: r.try_get(1)?,
            kind: r.try_get(2)?,
            application: r.try_get(3)?,
            sketch: r.try_get(4)?,
        })
    }
}

/// Everything one rollup batch writes besides the watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupWrite {
    pub deltas: Vec<CountDelta>,
    pub users: Vec<UserSpan>,
    pub sketches: Vec<SketchRow>,
}

/// An event counted like a sign-in: its kind (`text`), value (a country calling code) and
/// result (`sent`, `refused`, `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsightEvent {
    pub id: String,
    pub occurred_at: i64,
    pub application: String,
    pub kind: String,
    pub value: String,
    pub result: String,
}

/// The insert of one event; on SQLite its `seq` follows the last (one writer), on PostgreSQL
/// it is the writing transaction's id.
fn insert_event(
    e: &InsightEvent,
    backend: Backend,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT INTO insight_events (id, occurred_at, application, kind, value, result, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM insight_events))"
        }
        Backend::Postgres => {
            "INSERT INTO insight_events (id, occurred_at, application, kind, value, result) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        }
    };
    sqlx::query(sql)
        .bind(&e.id)
        .bind(e.occurred_at)
        .bind(&e.application)
        .bind(&e.kind)
        .bind(&e.value)
        .bind(&e.result)
}

/// The watermark of the events rollup.
pub const EVENT_ROLLUP: &str = "events";

/// How many accounts have each kind of method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MethodUsers {
    pub accounts: i64,
    pub totp: i64,
    pub passkey: i64,
    pub sms: i64,
    pub recovery_codes: i64,
    /// Accounts with an authenticator app, a passkey or a proven phone number.
    pub any_second_factor: i64,
}

impl Store {
    /// Rows of transactions with a `seq` below this can no longer appear: on PostgreSQL the
    /// oldest transaction still running; on SQLite, whose one writer commits rows in `seq`
    /// order, no bound.
    async fn commit_horizon(&self) -> StoreResult<i64> {
        Ok(match self.backend() {
            Backend::Sqlite => i64::MAX,
            Backend::Postgres => {
                sqlx::query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(self.pool())
                    .await?
                    .try_get::<i64, _>(0)?
            }
        })
    }

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
        let horizon = self.commit_horizon().await?;
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

    /// Writes what a batch adds (counters, the users' first and last sign-ins, the merged
    /// sketches) and moves rollup `name`'s watermark from `from` to `to`, in one transaction;
    /// nothing is written (`false`) when the watermark is no longer `from` (another instance
    /// moved it first). Whatever the batch read before this (the users' rows, the sketches)
    /// was as of `from`: every write to them comes through here, behind the same condition.
    pub async fn apply_rollup(
        &self,
        name: &str,
        from: &Watermark,
        to: &Watermark,
        write: &RollupWrite,
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
        // Many rows a statement: one round trip per chunk, not per counter.
        for chunk in write.deltas.chunks(WRITE_CHUNK) {
            let sql = format!(
                "INSERT INTO insight_counts (span, bucket, application, dim, value, result, n) \
                 VALUES {} ON CONFLICT (span, bucket, dim, application, value, result) \
                 DO UPDATE SET n = insight_counts.n + excluded.n",
                values(chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for d in chunk {
                q = q
                    .bind(&d.span)
                    .bind(d.bucket)
                    .bind(&d.application)
                    .bind(&d.dim)
                    .bind(&d.value)
                    .bind(&d.result)
                    .bind(d.n);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in write.users.chunks(WRITE_CHUNK) {
            // Only accounts that still exist: log rows of a deleted account counted after
            // its deletion bring nothing of it back.
            let sql = format!(
                "INSERT INTO insight_user_apps (user_id, application, first_at, last_at) \
                 SELECT v.column1, v.column2, v.column3, v.column4 FROM (VALUES {}) AS v \
                 WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = v.column1) \
                 ON CONFLICT (user_id, application) \
                 DO UPDATE SET first_at = excluded.first_at, last_at = excluded.last_at",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q
                    .bind(&u.user_id)
                    .bind(&u.application)
                    .bind(u.first_at)
                    .bind(u.last_at);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in write.sketches.chunks(WRITE_CHUNK) {
            let sql = format!(
                "INSERT INTO insight_sketches (span, bucket, kind, application, sketch) \
                 VALUES {} ON CONFLICT (span, kind, application, bucket) \
                 DO UPDATE SET sketch = excluded.sketch",
                values(chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q
                    .bind(&k.span)
                    .bind(k.bucket)
                    .bind(&k.kind)
                    .bind(&k.application)
                    .bind(k.sketch.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The first and last successful sign-ins recorded for these accounts, every
    /// application (and `*`).
    pub async fn user_spans(&self, user_ids: &[String]) -> StoreResult<Vec<UserSpan>> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(READ_CHUNK) {
            let sql = format!(
                "SELECT user_id, application, first_at, last_at FROM insight_user_apps \
                 WHERE user_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.push(UserSpan {
                    user_id: r.try_get(0)?,
                    application: r.try_get(1)?,
                    first_at: r.try_get(2)?,
                    last_at: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }

    /// Which of these accounts exist.
    pub async fn existing_users(&self, user_ids: &[String]) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(READ_CHUNK) {
            let sql = format!(
                "SELECT id FROM users WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.push(r.try_get(0)?);
            }
        }
        Ok(out)
    }

    /// The sketches of span `span` and kind `kind` in these buckets, every application.
    pub async fn sketches_at(
        &self,
        span: &str,
        kind: &str,
        buckets: &[i64],
    ) -> StoreResult<Vec<SketchRow>> {
        let mut out = Vec::new();
        for chunk in buckets.chunks(READ_CHUNK) {
            let sql = format!(
                "SELECT span, bucket, kind, application, sketch FROM insight_sketches \
                 WHERE span = $1 AND kind = $2 AND bucket IN ({})",
                placeholders(3, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(span).bind(kind);
            for b in chunk {
                q = q.bind(*b);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.push(SketchRow::from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// The sketches of one application (`*` for all) of span `span` and kind `kind` with
    /// buckets in `[from, to)`.
    pub async fn sketches_between(
        &self,
        span: &str,
        kind: &str,
        application: &str,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<SketchRow>> {
        let rows = sqlx::query(
            "SELECT span, bucket, kind, application, sketch FROM insight_sketches \
             WHERE span = $1 AND kind = $2 AND application = $3 AND bucket >= $4 AND bucket < $5",
        )
        .bind(span)
        .bind(kind)
        .bind(application)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(SketchRow::from_row).collect()
    }

    /// Of the accounts that ever signed in to `application` (`*`: to any), how many there
    /// are, and how many have not signed in since each of `cutoffs`.
    pub async fn inactive_users(
        &self,
        application: &str,
        cutoffs: &[i64],
    ) -> StoreResult<(i64, Vec<i64>)> {
        // One pass over the application's rows (the index on application and last sign-in
        // covers it) counts them all and those under each cutoff.
        let columns: Vec<String> = (0..cutoffs.len())
            .map(|i| {
                format!(
                    "CAST(COALESCE(SUM(CASE WHEN last_at < ${} THEN 1 ELSE 0 END), 0) AS BIGINT)",
                    i + 2
                )
            })
            .collect();
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT){}{} FROM insight_user_apps WHERE application = $1",
            if columns.is_empty() { "" } else { ", " },
            columns.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(application);
        for cutoff in cutoffs {
            q = q.bind(*cutoff);
        }
        let row = q.fetch_one(self.pool()).await?;
        let seen: i64 = row.try_get(0)?;
        let inactive = (0..cutoffs.len())
            .map(|i| row.try_get::<i64, _>(i + 1))
            .collect::<Result<Vec<i64>, _>>()?;
        Ok((seen, inactive))
    }

    /// The distinct accounts with a successful sign-in in `[from, to)`, of one application or
    /// any, counted exactly from the sign-in log (what the sketches estimate; for tests and
    /// the benchmark).
    pub async fn distinct_signed_in(
        &self,
        from: i64,
        to: i64,
        application: Option<&str>,
    ) -> StoreResult<i64> {
        Ok(sqlx::query(
            "SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM sign_in_log \
             WHERE occurred_at >= $1 AND occurred_at < $2 AND result = 'success' \
             AND ($3 = '' OR application = $3)",
        )
        .bind(from)
        .bind(to)
        .bind(application.unwrap_or(""))
        .fetch_one(self.pool())
        .await?
        .try_get(0)?)
    }

    /// Records one counted event (a text message sent, refused or failed).
    pub async fn record_event(&self, e: &InsightEvent) -> StoreResult<()> {
        insert_event(e, self.backend()).execute(self.pool()).await?;
        Ok(())
    }

    /// Records many events in one transaction (generated data).
    pub async fn record_events(&self, events: &[InsightEvent]) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        for e in events {
            insert_event(e, self.backend()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` events after `after` in `(seq, id)` order that no running transaction
    /// can still add to (as [`Store::sign_ins_to_roll_up`]), each with its `seq`.
    pub async fn events_to_roll_up(
        &self,
        after: &Watermark,
        limit: i64,
    ) -> StoreResult<Vec<(i64, InsightEvent)>> {
        let horizon = self.commit_horizon().await?;
        let rows = sqlx::query(
            "SELECT seq, id, occurred_at, application, kind, value, result FROM insight_events \
             WHERE (seq > $1 OR (seq = $1 AND id > $2)) AND seq < $3 ORDER BY seq, id LIMIT $4",
        )
        .bind(after.seq)
        .bind(&after.id)
        .bind(horizon)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)?,
                    InsightEvent {
                        id: r.try_get(1)?,
                        occurred_at: r.try_get(2)?,
                        application: r.try_get(3)?,
                        kind: r.try_get(4)?,
                        value: r.try_get(5)?,
                        result: r.try_get(6)?,
                    },
                ))
            })
            .collect()
    }

    /// Removes up to `batch` events older than `before` that the events rollup has counted.
    pub async fn prune_insight_events(&self, before: i64, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM insight_events WHERE id IN (SELECT e.id FROM insight_events e \
             JOIN insight_watermarks w ON w.name = 'events' \
             WHERE e.occurred_at < $1 AND (e.seq < w.seq OR (e.seq = w.seq AND e.id <= w.id)) \
             ORDER BY e.occurred_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Risk detections made in `[from, to)`, counted by quarter hour (UTC), kind and level.
    pub async fn risk_detection_counts(
        &self,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<(i64, String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT detected_at - (detected_at % 900000) AS q, kind, level, \
             CAST(COUNT(*) AS BIGINT) FROM risk_detections \
             WHERE detected_at >= $1 AND detected_at < $2 GROUP BY q, kind, level",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// How many accounts there are and how many have each kind of method: an authenticator
    /// app, a passkey, a proven phone number, unused recovery codes, and any of them.
    pub async fn method_users(&self) -> StoreResult<MethodUsers> {
        let r = sqlx::query(
            "SELECT \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM users), \
             (SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM totp_credentials WHERE confirmed_at IS NOT NULL), \
             (SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM passkeys), \
             (SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM phone_numbers WHERE verified_at IS NOT NULL), \
             (SELECT CAST(COUNT(DISTINCT user_id) AS BIGINT) FROM recovery_codes WHERE used_at IS NULL), \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM ( \
                SELECT user_id FROM totp_credentials WHERE confirmed_at IS NOT NULL \
                UNION SELECT user_id FROM passkeys \
                UNION SELECT user_id FROM phone_numbers WHERE verified_at IS NOT NULL) m)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(MethodUsers {
            accounts: r.try_get(0)?,
            totp: r.try_get(1)?,
            passkey: r.try_get(2)?,
            sms: r.try_get(3)?,
            recovery_codes: r.try_get(4)?,
            any_second_factor: r.try_get(5)?,
        })
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
              WHERE span IN ('q', 'h', 'd', 'b') AND bucket < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Removes up to `batch` sketches with buckets before `before`; returns how many.
    pub async fn prune_insight_sketches(&self, before: i64, batch: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM insight_sketches WHERE (span, kind, application, bucket) IN \
             (SELECT span, kind, application, bucket FROM insight_sketches \
              WHERE span IN ('q', 'h', 'd', 'b') AND bucket < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
