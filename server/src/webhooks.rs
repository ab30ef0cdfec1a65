//! The webhook worker: every few seconds each instance reads whether a delivery is due; the
//! one that then takes the `webhooks` lease in the database sends the due deliveries (one
//! endpoint's in order, the endpoints side by side), records each attempt and gives the lease
//! back. A stopped instance's lease runs out, so another takes over; a delivery whose result
//! was not recorded is sent again with the same `webhook-id`, which receivers use to drop
//! repeats.

use std::sync::OnceLock;
use std::time::Duration;

use gatehouse_core::identity::webhooks::{AttemptOutcome, DueDelivery, PreparedDelivery};
use gatehouse_core::identity::AuthError;

use crate::AppState;

/// The lease's name.
pub const WEBHOOK_JOB: &str = "webhooks";
/// How long an endpoint gets to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often each instance looks for due deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Deliveries read per pass, and per endpoint within one pass: the lease outlasts a pass in
/// which every one of an endpoint's attempts times out.
const PASS_LIMIT: i64 = 200;
const PER_ENDPOINT: usize = 10;
const LEASE_MS: i64 = 2 * PER_ENDPOINT as i64 * DELIVERY_TIMEOUT.as_millis() as i64;

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(DELIVERY_TIMEOUT)
                .user_agent(concat!("Gatehouse-Webhooks/", env!("CARGO_PKG_VERSION")))
                .build()
                .ok()
        })
        .as_ref()
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPass {
    /// Whether this instance held the lease (false when nothing was due or another held it).
    pub ran: bool,
    pub delivered: u64,
    pub failed: u64,
    pub given_up: u64,
}

/// One pass of the worker as instance `holder`.
pub async fn deliver_due(state: &AppState, holder: &str) -> Result<WebhookPass, AuthError> {
    let identity = &state.identity;
    let now = state.now();
    if !identity.webhook_delivery_due(now).await? {
        return Ok(WebhookPass::default());
    }
    if !identity
        .take_job_lease(WEBHOOK_JOB, holder, LEASE_MS, now)
        .await?
    {
        return Ok(WebhookPass::default());
    }
    let result = send_due(state, now).await;
    identity
        .release_job_lease(WEBHOOK_JOB, holder, state.now())
        .await?;
    result
}

async fn send_due(state: &AppState, now: i64) -> Result<WebhookPass, AuthError> {
    let mut pass = WebhookPass {
        ran: true,
        ..WebhookPass::default()
    };
    let mut by_endpoint: Vec<(String, Vec<PreparedDelivery>)> = Vec::new();
    for due in state
        .identity
        .due_webhook_deliveries(now, PASS_LIMIT)
        .await?
    {
        match due {
            DueDelivery::Send(d) => {
                match by_endpoint.iter_mut().find(|(id, _)| *id == d.endpoint_id) {
                    Some((_, list)) if list.len() >= PER_ENDPOINT => {}
                    Some((_, list)) => list.push(d),
                    None => by_endpoint.push((d.endpoint_id.clone(), vec![d])),
                }
            }
            DueDelivery::Unsendable {
                endpoint_id,
                event_id,
                attempts,
                reason,
            } => {
                tracing::warn!(endpoint = %endpoint_id, event = %event_id, reason, "webhook given up");
                state
                    .identity
                    .give_up_webhook(&endpoint_id, &event_id, attempts, reason, now)
                    .await?;
                pass.given_up += 1;
            }
        }
    }
    let Some(http) = client() else {
        tracing::warn!("webhooks: no HTTP client");
        return Ok(pass);
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (_, deliveries) in by_endpoint {
        let (state, http) = (state.clone(), http.clone());
        tasks.spawn(async move { send_endpoint(&state, &http, deliveries).await });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((delivered, failed))) => {
                pass.delivered += delivered;
                pass.failed += failed;
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "webhook task ended early"),
        }
    }
    Ok(pass)
}

/// Sends one endpoint's deliveries in order, stopping at its first failure (the rest wait for
/// the next pass). Returns (delivered, failed).
async fn send_endpoint(
    state: &AppState,
    http: &reqwest::Client,
    deliveries: Vec<PreparedDelivery>,
) -> Result<(u64, u64), AuthError> {
    let mut delivered = 0;
    for d in deliveries {
        let outcome = attempt(state, http, &d).await;
        state
            .identity
            .record_webhook_attempt(&d, &outcome, state.now())
            .await?;
        match outcome {
            AttemptOutcome::Status(s) if (200..300).contains(&s) => delivered += 1,
            AttemptOutcome::Status(s) => {
                tracing::warn!(endpoint = %d.endpoint_id, event = %d.event_id, status = s, "webhook refused");
                return Ok((delivered, 1));
            }
            AttemptOutcome::Failed(reason) => {
                tracing::warn!(endpoint = %d.endpoint_id, event = %d.event_id, reason = %reason, "webhook not delivered");
                return Ok((delivered, 1));
            }
        }
    }
    Ok((delivered, 0))
}

async fn attempt(state: &AppState, http: &reqwest::Client, d: &PreparedDelivery) -> AttemptOutcome {
    let timestamp = state.now().div_euclid(1000);
    let Some(headers) = d.headers(timestamp) else {
        return AttemptOutcome::Failed("the signing secret is not in the whsec_ form".into());
    };
    let mut request = http
        .post(&d.url)
        .header("content-type", "application/json")
        .body(d.body.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(reply) => AttemptOutcome::Status(reply.status().as_u16()),
        Err(e) => AttemptOutcome::Failed(describe(e)),
    }
}

/// Why a request got no answer, in words without its URL.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer within 10 s".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() {
        "answered with a redirect (not followed)".into()
    } else {
        let e = e.without_url();
        format!("request failed: {}", gatehouse_core::error_chain(&e))
    }
}

/// Runs [`deliver_due`] every [`POLL_INTERVAL`] on this instance.
pub fn spawn_webhooks(state: AppState) -> tokio::task::JoinHandle<()> {
    let holder = gatehouse_core::tokens::random_id();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match deliver_due(&state, &holder).await {
                Ok(p) if p.delivered + p.failed + p.given_up > 0 => tracing::info!(
                    delivered = p.delivered,
                    failed = p.failed,
                    given_up = p.given_up,
                    "webhooks"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook delivery failed"),
            }
        }
    })
}
