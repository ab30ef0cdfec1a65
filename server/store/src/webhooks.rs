//! Webhook endpoints and the outbox of their deliveries.
//!
//! Events are fanned out to the enabled endpoints that subscribe to them by one
//! `INSERT ... SELECT` inside the transaction that writes the event itself, so an event is
//! stored for delivery exactly when it happened, whatever happens to the instance afterwards.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{bool_col, Store, StoreResult};

/// The event of a new risk detection (its first state change names it).
pub const EVENT_DETECTION_CREATED: &str = "risk_detection.created";
/// The event of a detection moving to another state (the change names it).
pub const EVENT_DETECTION_STATE_CHANGED: &str = "risk_detection.state_changed";
/// The event of a sign-in assessed at low, medium or high risk (its log row names it).
pub const EVENT_RISKY_SIGN_IN: &str = "risky_sign_in.created";
/// A test event an admin sends to one endpoint.
pub const EVENT_TEST: &str = "webhook.test";

/// A registered webhook endpoint. The secrets are sealed; `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpointRecord {
    pub id: String,
    pub url: String,
    pub description: String,
    /// The event types it receives, separated by spaces.
    pub event_types: String,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    /// Until when (milliseconds) deliveries are also signed with the previous secret.
    pub previous_secret_until: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for WebhookEndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret_sealed, \
     previous_secret_sealed, previous_secret_until, enabled, created_at, updated_at";

impl WebhookEndpointRecord {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(WebhookEndpointRecord {
            id: r.try_get("id")?,
            url: r.try_get("url")?,
            description: r.try_get("description")?,
            event_types: r.try_get("event_types")?,
            secret_sealed: r.try_get("secret_sealed")?,
            previous_secret_sealed: r.try_get("previous_secret_sealed")?,
            previous_secret_until: r.try_get("previous_secret_until")?,
            enabled: bool_col(r, "enabled")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// Whether it receives events of `event_type`.
    pub fn receives(&self, event_type: &str) -> bool {
        self.event_types.split(' ').any(|t| t == event_type)
    }
}

/// One event to deliver to one endpoint, and how its delivery went so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDeliveryRecord {
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub given_up_at: Option<i64>,
    /// The HTTP status of the last attempt, when it got one.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "endpoint_id, event_id, event_type, created_at, attempts, \
     next_attempt_at, delivered_at, given_up_at, last_status, last_error";

impl WebhookDeliveryRecord {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(WebhookDeliveryRecord {
            endpoint_id: r.try_get("endpoint_id")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("event_type")?,
            created_at: r.try_get("created_at")?,
            attempts: r.try_get("attempts")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            delivered_at: r.try_get("delivered_at")?,
            given_up_at: r.try_get("given_up_at")?,
            last_status: r.try_get("last_status")?,
            last_error: r.try_get("last_error")?,
        })
    }
}

/// Queues event `event_id` of `event_type` for every enabled endpoint that receives that
/// type: run inside the transaction that writes the event.
pub(crate) async fn fan_out<'c, E>(
    executor: E,
    event_type: &str,
    event_id: &str,
    now: i64,
) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, created_at, \
         attempts, next_attempt_at) \
         SELECT id, $1, $2, $3, 0, $3 FROM webhook_endpoints \
         WHERE enabled = 1 AND (' ' || event_types || ' ') LIKE $4",
    )
    .bind(event_id)
    .bind(event_type)
    .bind(now)
    .bind(format!("% {event_type} %"))
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    pub async fn create_webhook_endpoint(&self, e: &WebhookEndpointRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&e.id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(&e.event_types)
        .bind(&e.secret_sealed)
        .bind(e.previous_secret_sealed.as_deref())
        .bind(e.previous_secret_until)
        .bind(i64::from(e.enabled))
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every endpoint, oldest first.
    pub async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpointRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WebhookEndpointRecord::from_row).collect()
    }

    pub async fn find_webhook_endpoint(
        &self,
        id: &str,
    ) -> StoreResult<Option<WebhookEndpointRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(WebhookEndpointRecord::from_row)
            .transpose()
    }

    /// Replaces the signing secret, keeping the previous one valid until `previous_until`.
    /// Returns whether the endpoint exists.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret_sealed: &str,
        previous_until: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, \
             previous_secret_until = $1, secret_sealed = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(previous_until)
        .bind(secret_sealed)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns an endpoint on or off; returns whether it exists. A disabled endpoint gets no new
    /// events and its pending deliveries wait until it is enabled again.
    pub async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE webhook_endpoints SET enabled = $1, updated_at = $2 WHERE id = $3")
                .bind(i64::from(enabled))
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an endpoint and its deliveries in one transaction; returns whether it existed.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues one event for one endpoint only (a test event an admin sends).
    pub async fn enqueue_webhook_delivery(
        &self,
        endpoint_id: &str,
        event_type: &str,
        event_id: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, created_at, \
             attempts, next_attempt_at) VALUES ($1, $2, $3, $4, 0, $4)",
        )
        .bind(endpoint_id)
        .bind(event_id)
        .bind(event_type)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether any delivery of an enabled endpoint is due at `now` (a read the idle worker
    /// makes instead of taking its lease).
    pub async fn webhook_delivery_due(&self, now: i64) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1 \
             WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL AND d.next_attempt_at <= $1 \
             LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Up to `limit` deliveries of enabled endpoints due at `now`, oldest event first.
    pub async fn due_webhook_deliveries(
        &self,
        now: i64,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRecord>> {
        let columns = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1 \
             WHERE d.delivered_at IS NULL AND d.given_up_at IS NULL AND d.next_attempt_at <= $1 \
             ORDER BY d.created_at, d.event_id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WebhookDeliveryRecord::from_row).collect()
    }

    /// Records one attempt: delivered (`delivered`), or failed and due again at
    /// `next_attempt_at`, or failed for the last time (`next_attempt_at` none). Only a
    /// delivery still pending with `attempts_before` attempts changes, so an attempt is
    /// never recorded twice.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_webhook_attempt(
        &self,
        endpoint_id: &str,
        event_id: &str,
        attempts_before: i64,
        delivered: bool,
        next_attempt_at: Option<i64>,
        status: Option<i64>,
        error: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, \
             delivered_at = $1, given_up_at = $2, next_attempt_at = $3, last_status = $4, \
             last_error = $5 \
             WHERE endpoint_id = $6 AND event_id = $7 AND attempts = $8 \
             AND delivered_at IS NULL AND given_up_at IS NULL",
        )
        .bind(delivered.then_some(now))
        .bind((!delivered && next_attempt_at.is_none()).then_some(now))
        .bind(next_attempt_at.unwrap_or(now))
        .bind(status)
        .bind(error)
        .bind(endpoint_id)
        .bind(event_id)
        .bind(attempts_before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// An endpoint's most recent deliveries, newest event first.
    pub async fn recent_webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDeliveryRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 \
             ORDER BY created_at DESC, event_id DESC LIMIT $2"
        ))
        .bind(endpoint_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WebhookDeliveryRecord::from_row).collect()
    }

    /// One change of a detection's state, by its id.
    pub async fn find_risk_state_change(
        &self,
        id: &str,
    ) -> StoreResult<Option<crate::RiskStateChange>> {
        let row = sqlx::query(
            "SELECT id, user_id, detection_id, state, changed_by, changed_at, reason \
             FROM risk_state_changes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(crate::RiskStateChange::from_row)
            .transpose()
    }
}
