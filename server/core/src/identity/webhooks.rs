//! Webhook endpoints an admin registers, and the deliveries the server's worker sends: each
//! is built at send time from the event's stored rows (so it is the same on every attempt)
//! and signed with the endpoint's secret, which is sealed at rest and shown only once.

use std::collections::HashMap;

use super::*;
use crate::seal;
use crate::store::{WebhookDeliveryRecord, WebhookEndpointRecord};
use crate::webhooks::{self as hooks, FindingEvent};

const WEBHOOK_SECRET_SEAL: &str = "webhook-secret";
/// The longest description kept.
pub const MAX_WEBHOOK_DESCRIPTION: usize = 200;
/// At most this many endpoints, so the fan-out in each event's transaction stays small.
pub const MAX_WEBHOOK_ENDPOINTS: usize = 20;

/// An endpoint as the console shows it (without its secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Until when deliveries are also signed with the secret before the last rotation.
    pub previous_secret_until: Option<i64>,
}

impl WebhookEndpoint {
    fn of(r: &WebhookEndpointRecord, now: i64) -> Self {
        WebhookEndpoint {
            id: r.id.clone(),
            url: r.url.clone(),
            description: r.description.clone(),
            event_types: r.event_types.split(' ').map(str::to_string).collect(),
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            previous_secret_until: r.previous_secret_until.filter(|t| *t > now),
        }
    }
}

/// What an admin enters for a new endpoint.
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookProblem {
    #[error("the URL must be an https address (http only to this machine)")]
    Url,
    #[error("choose at least one event")]
    NoEvents,
    #[error("the description is too long or holds control characters")]
    Description,
    #[error("there are already {MAX_WEBHOOK_ENDPOINTS} endpoints; remove one first")]
    TooMany,
}

/// A new endpoint and its secret, shown this once.
#[derive(Debug)]
pub struct NewWebhook {
    pub endpoint: WebhookEndpoint,
    pub secret: SecretString,
}

/// One delivery ready to send: where, its body, and the secrets that sign it.
pub struct PreparedDelivery {
    pub endpoint_id: String,
    pub url: String,
    pub event_id: String,
    pub event_type: String,
    pub created_at: i64,
    pub attempts: i64,
    pub body: Vec<u8>,
    /// The current secret, then the previous one while it is still valid.
    secrets: Vec<SecretString>,
}

impl std::fmt::Debug for PreparedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedDelivery")
            .field("endpoint_id", &self.endpoint_id)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl PreparedDelivery {
    /// The Standard Webhooks headers of an attempt at `timestamp_s` (Unix seconds).
    pub fn headers(&self, timestamp_s: i64) -> Option<[(&'static str, String); 3]> {
        let secrets: Vec<&SecretString> = self.secrets.iter().collect();
        let signature = hooks::signature_header(&secrets, &self.event_id, timestamp_s, &self.body)?;
        Some([
            ("webhook-id", self.event_id.clone()),
            ("webhook-timestamp", timestamp_s.to_string()),
            ("webhook-signature", signature),
        ])
    }
}

/// A due delivery: ready to send, or one that can never be sent (why, in words).
#[derive(Debug)]
pub enum DueDelivery {
    Send(PreparedDelivery),
    Unsendable {
        endpoint_id: String,
        event_id: String,
        attempts: i64,
        reason: &'static str,
    },
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered with this status (2xx is delivered).
    Status(u16),
    /// No answer: the reason in words (never the URL or a secret).
    Failed(String),
}

fn validate(input: &WebhookInput) -> Result<(String, String, String), WebhookProblem> {
    let url = input.url.trim().to_string();
    if !acceptable_provider_url(&url) || url::Url::parse(&url).is_err() {
        return Err(WebhookProblem::Url);
    }
    let description = input.description.trim().to_string();
    if description.chars().count() > MAX_WEBHOOK_DESCRIPTION
        || description.chars().any(char::is_control)
    {
        return Err(WebhookProblem::Description);
    }
    let types: Vec<&str> = hooks::EVENT_TYPES
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| input.event_types.iter().any(|chosen| chosen == t))
        .collect();
    if types.is_empty() {
        return Err(WebhookProblem::NoEvents);
    }
    Ok((url, description, types.join(" ")))
}

impl Identity {
    fn seal_webhook_secret(&self, secret: &SecretString) -> Result<String, AuthError> {
        seal::seal(&self.key, WEBHOOK_SECRET_SEAL, secret.expose().as_bytes())
            .map_err(|e| internal(&e))
    }

    fn open_webhook_secret(&self, sealed: &str) -> Option<SecretString> {
        let bytes = seal::open(&self.key, WEBHOOK_SECRET_SEAL, sealed).ok()?;
        String::from_utf8(bytes).ok().map(SecretString::new)
    }

    pub async fn webhook_endpoints(&self, now: i64) -> Result<Vec<WebhookEndpoint>, AuthError> {
        Ok(self
            .store
            .webhook_endpoints()
            .await?
            .iter()
            .map(|r| WebhookEndpoint::of(r, now))
            .collect())
    }

    pub async fn webhook_endpoint(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<WebhookEndpoint>, AuthError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        Ok(self
            .store
            .find_webhook_endpoint(id)
            .await?
            .map(|r| WebhookEndpoint::of(&r, now)))
    }

    /// An endpoint's most recent deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        limit: i64,
    ) -> Result<Vec<WebhookDeliveryRecord>, AuthError> {
        Ok(self.store.recent_webhook_deliveries(id, limit).await?)
    }

    /// Registers an endpoint with a new secret (returned this once).
    pub async fn admin_create_webhook(
        &self,
        ctx: &RequestContext,
        admin: &User,
        input: &WebhookInput,
        now: i64,
    ) -> Result<Result<NewWebhook, WebhookProblem>, AuthError> {
        let (url, description, event_types) = match validate(input) {
            Ok(v) => v,
            Err(p) => return Ok(Err(p)),
        };
        if self.store.webhook_endpoints().await?.len() >= MAX_WEBHOOK_ENDPOINTS {
            return Ok(Err(WebhookProblem::TooMany));
        }
        let secret = hooks::new_secret();
        let record = WebhookEndpointRecord {
            id: random_id(),
            url,
            description,
            event_types,
            secret_sealed: self.seal_webhook_secret(&secret)?,
            previous_secret_sealed: None,
            previous_secret_until: None,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        self.store.create_webhook_endpoint(&record).await?;
        let detail = format!("{} ({}) for {}", record.url, record.id, record.event_types);
        self.admin_audit(ctx, admin, None, "admin.webhook.created", &detail, now)
            .await?;
        Ok(Ok(NewWebhook {
            endpoint: WebhookEndpoint::of(&record, now),
            secret,
        }))
    }

    /// A new secret for the endpoint (returned this once); the previous one keeps signing
    /// beside it for [`hooks::PREVIOUS_SECRET_MS`], so receivers can switch without a gap.
    pub async fn admin_rotate_webhook_secret(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        now: i64,
    ) -> Result<Option<SecretString>, AuthError> {
        let secret = hooks::new_secret();
        let sealed = self.seal_webhook_secret(&secret)?;
        if !self
            .store
            .rotate_webhook_secret(id, &sealed, now + hooks::PREVIOUS_SECRET_MS, now)
            .await?
        {
            return Ok(None);
        }
        self.admin_audit(ctx, admin, None, "admin.webhook.secret_rotated", id, now)
            .await?;
        Ok(Some(secret))
    }

    /// Turns an endpoint on or off; false if there is no such endpoint.
    pub async fn admin_set_webhook_enabled(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> Result<bool, AuthError> {
        if !self.store.set_webhook_enabled(id, enabled, now).await? {
            return Ok(false);
        }
        let action = if enabled {
            "admin.webhook.enabled"
        } else {
            "admin.webhook.disabled"
        };
        self.admin_audit(ctx, admin, None, action, id, now).await?;
        Ok(true)
    }

    /// Removes an endpoint and its deliveries; false if there is no such endpoint.
    pub async fn admin_delete_webhook(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        let Some(endpoint) = self.store.find_webhook_endpoint(id).await? else {
            return Ok(false);
        };
        self.store.delete_webhook_endpoint(id).await?;
        let detail = format!("{} ({})", endpoint.url, endpoint.id);
        self.admin_audit(ctx, admin, None, "admin.webhook.deleted", &detail, now)
            .await?;
        Ok(true)
    }

    /// Queues a `webhook.test` event for one endpoint; false if there is no such endpoint.
    pub async fn admin_send_test_webhook(
        &self,
        ctx: &RequestContext,
        admin: &User,
        id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        if self.store.find_webhook_endpoint(id).await?.is_none() {
            return Ok(false);
        }
        self.store
            .enqueue_webhook_delivery(id, hooks::TEST_EVENT, &random_id(), now)
            .await?;
        self.admin_audit(ctx, admin, None, "admin.webhook.test_sent", id, now)
            .await?;
        Ok(true)
    }

    /// Takes or renews the lease of periodic job `name` for `holder` (see
    /// [`crate::store::Store::try_lease`]).
    pub async fn take_job_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(self.store.try_lease(name, holder, ttl_ms, now).await?)
    }

    /// Gives the lease of job `name` back, noting that it finished at `now`.
    pub async fn release_job_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.store.release_lease(name, holder, now).await?;
        Ok(())
    }

    /// Whether a delivery is due (the idle worker's one read).
    pub async fn webhook_delivery_due(&self, now: i64) -> Result<bool, AuthError> {
        Ok(self.store.webhook_delivery_due(now).await?)
    }

    /// Up to `limit` due deliveries with their bodies and signing secrets.
    pub async fn due_webhook_deliveries(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, AuthError> {
        let due = self.store.due_webhook_deliveries(now, limit).await?;
        let mut endpoints: HashMap<String, Option<WebhookEndpointRecord>> = HashMap::new();
        let mut out = Vec::with_capacity(due.len());
        for d in due {
            if !endpoints.contains_key(&d.endpoint_id) {
                let e = self.store.find_webhook_endpoint(&d.endpoint_id).await?;
                endpoints.insert(d.endpoint_id.clone(), e);
            }
            let unsendable = |reason| DueDelivery::Unsendable {
                endpoint_id: d.endpoint_id.clone(),
                event_id: d.event_id.clone(),
                attempts: d.attempts,
                reason,
            };
            let Some(Some(endpoint)) = endpoints.get(&d.endpoint_id) else {
                continue;
            };
            let Some(data) = self.webhook_event_data(&d).await? else {
                out.push(unsendable("the event's records no longer exist"));
                continue;
            };
            let mut secrets = Vec::with_capacity(2);
            match self.open_webhook_secret(&endpoint.secret_sealed) {
                Some(s) => secrets.push(s),
                None => {
                    out.push(unsendable(
                        "the signing secret cannot be opened with this instance's key",
                    ));
                    continue;
                }
            }
            if let (Some(sealed), Some(until)) = (
                &endpoint.previous_secret_sealed,
                endpoint.previous_secret_until,
            ) {
                if until > now {
                    if let Some(s) = self.open_webhook_secret(sealed) {
                        secrets.push(s);
                    }
                }
            }
            let body = hooks::envelope(&d.event_type, d.created_at, data).to_string();
            out.push(DueDelivery::Send(PreparedDelivery {
                endpoint_id: d.endpoint_id.clone(),
                url: endpoint.url.clone(),
                event_id: d.event_id.clone(),
                event_type: d.event_type.clone(),
                created_at: d.created_at,
                attempts: d.attempts,
                body: body.into_bytes(),
                secrets,
            }));
        }
        Ok(out)
    }

    /// The data of an event, from its stored rows; none if they are gone.
    async fn webhook_event_data(
        &self,
        d: &WebhookDeliveryRecord,
    ) -> Result<Option<serde_json::Value>, AuthError> {
        match d.event_type.as_str() {
            crate::store::EVENT_DETECTION_CREATED | crate::store::EVENT_DETECTION_STATE_CHANGED => {
                let Some(change) = self.store.find_risk_state_change(&d.event_id).await? else {
                    return Ok(None);
                };
                let Some(detection) = self.store.find_detection(&change.detection_id).await? else {
                    return Ok(None);
                };
                let email = self
                    .store
                    .find_user(&detection.user_id)
                    .await?
                    .map(|u| u.email);
                let sign_in = match &detection.sign_in_id {
                    Some(id) => self.store.find_sign_in(id).await?,
                    None => None,
                };
                Ok(Some(hooks::detection_finding(FindingEvent {
                    detection: &detection,
                    change: &change,
                    email: email.as_deref(),
                    sign_in: sign_in.as_ref(),
                    created: d.event_type == crate::store::EVENT_DETECTION_CREATED,
                })))
            }
            crate::store::EVENT_RISKY_SIGN_IN => Ok(self
                .store
                .find_sign_in(&d.event_id)
                .await?
                .map(|s| hooks::authentication(&s))),
            crate::store::EVENT_TEST => Ok(Some(hooks::test_data(&d.endpoint_id))),
            _ => Ok(None),
        }
    }

    /// Records how an attempt went: delivered on a 2xx, otherwise due again on the retry
    /// schedule, or given up once the event's retry window has passed.
    pub async fn record_webhook_attempt(
        &self,
        d: &PreparedDelivery,
        outcome: &AttemptOutcome,
        now: i64,
    ) -> Result<(), AuthError> {
        let (status, error) = match outcome {
            AttemptOutcome::Status(s) => (Some(i64::from(*s)), None),
            AttemptOutcome::Failed(e) => (None, Some(e.chars().take(300).collect::<String>())),
        };
        let delivered = matches!(outcome, AttemptOutcome::Status(s) if (200..300).contains(s));
        let next = if delivered {
            None
        } else {
            hooks::next_attempt_at(d.created_at, now, d.attempts + 1)
        };
        self.store
            .record_webhook_attempt(
                &d.endpoint_id,
                &d.event_id,
                d.attempts,
                delivered,
                next,
                status,
                error.as_deref(),
                now,
            )
            .await?;
        Ok(())
    }

    /// Gives up a delivery that can never be sent.
    pub async fn give_up_webhook(
        &self,
        endpoint_id: &str,
        event_id: &str,
        attempts: i64,
        reason: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        self.store
            .record_webhook_attempt(
                endpoint_id,
                event_id,
                attempts,
                false,
                None,
                None,
                Some(reason),
                now,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str, types: &[&str]) -> WebhookInput {
        WebhookInput {
            url: url.into(),
            description: "SIEM".into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn endpoints_need_https_and_a_known_event() {
        let all = [
            crate::store::EVENT_DETECTION_CREATED,
            crate::store::EVENT_RISKY_SIGN_IN,
        ];
        assert!(validate(&input("https://siem.example.com/hook", &all)).is_ok());
        assert!(validate(&input("http://127.0.0.1:9000/hook", &all)).is_ok());
        assert_eq!(
            validate(&input("http://siem.example.com/hook", &all)),
            Err(WebhookProblem::Url)
        );
        assert_eq!(
            validate(&input("javascript:alert(1)", &all)),
            Err(WebhookProblem::Url)
        );
        assert_eq!(
            validate(&input(
                "https://siem.example.com",
                &["webhook.test", "nope"]
            )),
            Err(WebhookProblem::NoEvents)
        );
        let mut long = input("https://siem.example.com", &all);
        long.description = "x".repeat(MAX_WEBHOOK_DESCRIPTION + 1);
        assert_eq!(validate(&long), Err(WebhookProblem::Description));
        // The chosen types are kept in the catalogue's order, once each.
        let (_, _, types) = validate(&input(
            "https://siem.example.com",
            &[
                crate::store::EVENT_RISKY_SIGN_IN,
                crate::store::EVENT_DETECTION_CREATED,
                crate::store::EVENT_RISKY_SIGN_IN,
            ],
        ))
        .unwrap();
        assert_eq!(types, "risk_detection.created risky_sign_in.created");
    }
}
