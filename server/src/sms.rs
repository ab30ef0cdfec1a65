//! Text-message delivery through a Twilio-compatible Messages API, used when
//! `GATEHOUSE_SMS_GATEWAY_URL` is set: `POST <url>/Accounts/<sid>/Messages.json` with HTTP basic
//! auth and the form fields `To`, `From`, `Body`. Twilio speaks it, and so do several other
//! providers.

use std::time::Duration;

use gatehouse_core::mail::{DeliveryFuture, Mailer};
use gatehouse_core::store::OutboxMessage;

use crate::config::SmsGateway;

pub struct SmsGatewayClient {
    client: reqwest::Client,
    endpoint: String,
    gateway: SmsGateway,
}

impl SmsGatewayClient {
    pub fn new(gateway: SmsGateway) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot start the SMS client: {e}"))?;
        let endpoint = format!(
            "{}/Accounts/{}/Messages.json",
            gateway.url,
            percent_encode(&gateway.account_sid)
        );
        Ok(SmsGatewayClient {
            client,
            endpoint,
            gateway,
        })
    }
}

/// Encodes a path segment (the account id comes from configuration, not from users).
fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Mailer for SmsGatewayClient {
    fn deliver<'a>(&'a self, message: &'a OutboxMessage) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let response = self
                .client
                .post(&self.endpoint)
                .basic_auth(&self.gateway.account_sid, Some(&self.gateway.auth_token))
                .form(&[
                    ("To", message.recipient.as_str()),
                    ("From", self.gateway.from.as_str()),
                    ("Body", message.body.as_str()),
                ])
                .send()
                .await
                .map_err(|e| {
                    // The error may carry the URL; never the token (it is in a header).
                    if e.is_timeout() {
                        "the SMS gateway did not answer within 10 s".to_string()
                    } else {
                        format!("cannot reach the SMS gateway: {}", e.without_url())
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            // Twilio-style errors carry a numeric code and a message; keep them short.
            let body = response.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .map(|v| {
                    format!(
                        " (code {}: {})",
                        v["code"],
                        v["message"].as_str().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            Err(format!(
                "the SMS gateway refused the message: HTTP {}{}",
                status.as_u16(),
                detail.chars().take(200).collect::<String>()
            ))
        })
    }

    fn is_development_outbox(&self) -> bool {
        false
    }
}
