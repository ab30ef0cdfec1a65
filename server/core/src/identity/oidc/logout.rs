//! RP-initiated logout: checking the ID token hint and the post-logout redirect before the
//! session ends.

use super::*;

impl Identity {
    // ------------------------------------------------------------ logout

    /// Checks an RP-initiated logout request. A hint must be an ID token we signed for this
    /// issuer (expired is fine); a post-logout redirect needs a hint (or client id) naming a
    /// client that registered it byte for byte.
    pub async fn check_logout(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        now: i64,
    ) -> Result<LogoutCheck, LogoutProblem> {
        let hint = match id_token_hint.filter(|h| !h.is_empty()) {
            None => None,
            Some(token) => {
                let claims = self
                    .verify_own_jws(token, now)
                    .await
                    .ok_or(LogoutProblem::BadHint)?;
                if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
                    return Err(LogoutProblem::BadHint);
                }
                let subject = claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .ok_or(LogoutProblem::BadHint)?;
                let aud = match claims.get("aud") {
                    Some(Value::String(a)) => a.clone(),
                    Some(Value::Array(a)) if a.len() == 1 => {
                        a[0].as_str().unwrap_or_default().to_string()
                    }
                    _ => return Err(LogoutProblem::BadHint),
                };
                Some(IdTokenHint {
                    subject: subject.to_string(),
                    client_id: aud,
                    session_id: claims
                        .get("sid")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
            }
        };
        let client_id = match (&hint, client_id.filter(|c| !c.is_empty())) {
            (Some(h), Some(c)) if h.client_id != c => return Err(LogoutProblem::BadHint),
            (Some(h), _) => Some(h.client_id.clone()),
            (None, c) => c.map(str::to_string),
        };
        let client = match &client_id {
            Some(id) => self.client(id).await.ok().flatten(),
            None => None,
        };
        if hint.is_some() && client.is_none() {
            return Err(LogoutProblem::BadHint);
        }
        let redirect = match post_logout_redirect_uri.filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.has_post_logout_redirect_uri(uri));
                if !registered {
                    return Err(LogoutProblem::BadRedirect);
                }
                // Without a verified hint nothing proves the client asked: no redirect.
                if hint.is_none() {
                    None
                } else {
                    let mut params = Vec::new();
                    if let Some(s) = state.filter(|s| s.len() <= MAX_STATE) {
                        params.push(("state", s));
                    }
                    Some(with_query(uri, &params))
                }
            }
        };
        Ok(LogoutCheck {
            hint,
            client,
            redirect,
        })
    }
}
