//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a Gatehouse session ends,
//! each application that signed in with it and registered a back-channel logout URI is sent a
//! logout token, signed like its ID tokens, naming the session (`sid`) and the person (`sub`).

use serde_json::json;

use super::{internal, AuthError, Identity};
use crate::tokens::random_id;

/// How long a logout token is valid.
pub const LOGOUT_TOKEN_TTL_MS: i64 = 2 * 60 * 1000;
/// The `events` member that makes a JWT a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token to deliver. `Debug` never shows the token.
pub struct LogoutNotice {
    pub client_id: String,
    pub uri: String,
    pub token: String,
}

impl std::fmt::Debug for LogoutNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutNotice")
            .field("client_id", &self.client_id)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The logout tokens for the applications that signed in with session `session_id` of
    /// `user_id` and asked to be told when it ends.
    pub async fn logout_notices(
        &self,
        session_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<LogoutNotice>, AuthError> {
        let mut notices = Vec::new();
        for client_id in self.store.clients_of_session(session_id).await? {
            let Some(client) = self.client(&client_id).await? else {
                continue;
            };
            let Some(uri) = client.backchannel_logout_uri.clone() else {
                continue;
            };
            let claims = json!({
                "iss": self.issuer(),
                "aud": client.id,
                "iat": now / 1000,
                "exp": (now + LOGOUT_TOKEN_TTL_MS) / 1000,
                "jti": random_id(),
                "sub": user_id,
                "sid": session_id,
                "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
            });
            let key = self.signing_key(client.id_token_alg, now).await?;
            let token = key.sign("logout+jwt", &claims).map_err(|e| internal(&e))?;
            notices.push(LogoutNotice {
                client_id: client.id,
                uri,
                token,
            });
        }
        Ok(notices)
    }
}
