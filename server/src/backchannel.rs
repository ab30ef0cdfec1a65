//! Delivery of back-channel logout tokens: one POST per application, in the background, with a
//! short timeout and no redirects. A failed delivery is logged (never the token) and not
//! retried: the application's own session check at its next request still applies.

use std::sync::OnceLock;
use std::time::Duration;

use gatehouse_core::identity::backchannel::LogoutNotice;

/// How long an application gets to acknowledge a logout token.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(DELIVERY_TIMEOUT)
                .build()
                .ok()
        })
        .as_ref()
}

/// The delivery the identity core hands the logout tokens of ending sessions to.
pub struct HttpLogoutDelivery;

impl gatehouse_core::identity::LogoutDelivery for HttpLogoutDelivery {
    fn deliver(&self, notices: Vec<LogoutNotice>) {
        deliver(notices);
    }
}

/// Sends each notice in the background.
pub fn deliver(notices: Vec<LogoutNotice>) {
    let Some(http) = client() else {
        tracing::warn!("back-channel logout: no HTTP client");
        return;
    };
    for notice in notices {
        let http = http.clone();
        tokio::spawn(async move {
            let sent = http
                .post(&notice.uri)
                .header("cache-control", "no-store")
                .form(&[("logout_token", notice.token.as_str())])
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(client = %notice.client_id, "back-channel logout delivered")
                }
                Ok(r) => {
                    tracing::warn!(client = %notice.client_id, status = %r.status(), "back-channel logout refused")
                }
                Err(e) => {
                    tracing::warn!(client = %notice.client_id, error = %e.without_url(), "back-channel logout not delivered")
                }
            }
        });
    }
}
