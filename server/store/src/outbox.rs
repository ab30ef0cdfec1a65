//! The outbox of emails and texts, delivered by a worker and redacted once sent.

use crate::{OutboxMessage, Store, StoreResult};

impl Store {
    pub async fn enqueue_message(&self, m: &OutboxMessage) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO outbox (id, created_at, channel, recipient, subject, body, sent_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&m.id)
        .bind(m.created_at)
        .bind(&m.channel)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(m.sent_at)
        .bind(m.last_error.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_message(
        &self,
        id: &str,
        sent_at: Option<i64>,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, last_error = $2 WHERE id = $3")
            .bind(sent_at)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Messages to one recipient, newest first.
    pub async fn messages_for(&self, recipient: &str) -> StoreResult<Vec<OutboxMessage>> {
        let rows = sqlx::query(
            "SELECT id, created_at, channel, recipient, subject, body, sent_at, last_error FROM outbox \
             WHERE recipient = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(recipient)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OutboxMessage::from_row).collect()
    }

    /// Marks a delivered message as sent and removes its content: codes must not outlive their
    /// delivery in plain text.
    pub async fn redact_delivered_message(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, subject = '(delivered)', body = '(delivered)', last_error = NULL WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
