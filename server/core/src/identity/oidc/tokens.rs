//! The token endpoint and what the tokens are good for: code redemption with PKCE, refresh
//! rotation with replay detection, client credentials, userinfo, introspection and revocation.

use super::*;

impl Identity {
    // ------------------------------------------------------------ token endpoint

    /// Authenticates a client: confidential clients by their secret (Basic or post), public
    /// clients by their id alone. Unknown clients and wrong secrets look the same.
    pub async fn authenticate_client(&self, auth: &ClientAuth) -> Result<Client, TokenError> {
        let client = self
            .client(&auth.client_id)
            .await?
            .ok_or(TokenError::InvalidClient)?;
        match (&client.secret_hash, &auth.secret) {
            (Some(hash), Some(secret)) if secret_matches(secret.expose(), hash) => Ok(client),
            (None, None) if !client.confidential => Ok(client),
            _ => Err(TokenError::InvalidClient),
        }
    }

    pub async fn token(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let grant_type = match req.grant_type.as_str() {
            "" => return Err(TokenError::InvalidRequest("grant_type is required")),
            g => GrantType::parse(g).ok_or(TokenError::UnsupportedGrantType)?,
        };
        if !client.allows(grant_type) {
            return Err(TokenError::UnauthorizedClient);
        }
        match grant_type {
            GrantType::AuthorizationCode => self.redeem_code(client, req, now).await,
            GrantType::RefreshToken => self.refresh(client, req, now).await,
            GrantType::ClientCredentials => self.client_credentials(client, req, now).await,
        }
    }

    pub(super) async fn redeem_code(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let code = req
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .ok_or(TokenError::InvalidRequest("code is required"))?;
        let redirect_uri = req
            .redirect_uri
            .as_deref()
            .ok_or(TokenError::InvalidRequest("redirect_uri is required"))?;
        let verifier = req.code_verifier.as_deref();
        if verifier.is_some_and(|v| !is_pkce_string(v)) {
            return Err(TokenError::InvalidRequest("code_verifier is malformed"));
        }
        let redeemed = match self.store.redeem_code(&token_hash(code), now).await? {
            CodeRedemption::Redeemed(c) => c,
            CodeRedemption::Replayed => {
                tracing::warn!(client = %client.id, "authorization code reused; its tokens are revoked");
                return Err(TokenError::InvalidGrant(
                    "the code was already used; tokens issued with it are revoked",
                ));
            }
            CodeRedemption::Unknown => {
                return Err(TokenError::InvalidGrant("unknown or expired code"))
            }
        };
        if redeemed.expires_at <= now {
            return Err(TokenError::InvalidGrant("unknown or expired code"));
        }
        let grant = self
            .store
            .grant_live_at_use(&redeemed.grant_id, now, Some(now))
            .await?
            .ok_or(TokenError::InvalidGrant(
                "the authorization is no longer valid",
            ))?;
        if grant.client_id != client.id {
            self.store.revoke_grant(&grant.id, now).await?;
            return Err(TokenError::InvalidGrant(
                "the code was issued to another client",
            ));
        }
        if redeemed.redirect_uri.as_bytes() != redirect_uri.as_bytes() {
            self.store.revoke_grant(&grant.id, now).await?;
            return Err(TokenError::InvalidGrant(
                "redirect_uri differs from the authorization request",
            ));
        }
        let pkce_ok = match (&redeemed.code_challenge, verifier) {
            (Some(challenge), Some(v)) => {
                pkce_s256(v).as_bytes().ct_eq(challenge.as_bytes()).into()
            }
            (None, None) => true,
            _ => false,
        };
        if !pkce_ok {
            self.store.revoke_grant(&grant.id, now).await?;
            return Err(TokenError::InvalidGrant("PKCE verification failed"));
        }
        // The grant becomes live now, for the lifetime of its refresh tokens.
        let expires_at = grant.created_at + REFRESH_TOKEN_TTL_MS;
        self.store.activate_grant(&grant.id, expires_at).await?;
        let origin = self.network_of(&req.client_ip);
        self.store
            .set_grant_origin(
                &grant.id,
                origin.asn.map(i64::from),
                origin.country.as_deref(),
            )
            .await?;
        let grant = GrantRecord {
            expires_at,
            ..grant
        };
        self.issue_tokens(client, &grant, redeemed.nonce.as_deref(), true, now)
            .await
    }

    pub(super) async fn refresh(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let token = req
            .refresh_token
            .as_deref()
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or(TokenError::InvalidRequest("refresh_token is required"))?;
        let id = token_hash(token);
        // A token of another client is refused without spending it.
        match self.store.token_grant(&id).await? {
            Some((_, owner, _)) if owner == client.id => {}
            _ => return Err(TokenError::InvalidGrant("unknown refresh token")),
        }
        let grant_id = match self.store.use_refresh_token(&id, now).await? {
            RefreshUse::Used(g) => g,
            RefreshUse::Replayed => {
                tracing::warn!(client = %client.id, "refresh token reused; its family is revoked");
                return Err(TokenError::InvalidGrant(
                    "the refresh token was already used; the session's tokens are revoked",
                ));
            }
            RefreshUse::Unknown => {
                return Err(TokenError::InvalidGrant("unknown or expired refresh token"))
            }
        };
        let mut grant = self
            .store
            .grant_live_at_use(&grant_id, now, Some(now))
            .await?
            .ok_or(TokenError::InvalidGrant(
                "the authorization is no longer valid",
            ))?;
        if let Some(scope) = req.scope.as_deref().filter(|s| !s.is_empty()) {
            let asked = scope_list(scope);
            let granted = scope_list(&grant.scope);
            if !asked.iter().all(|s| granted.contains(s)) {
                return Err(TokenError::InvalidScope);
            }
            grant.scope = asked.join(" ");
        }
        // An application refreshing never keeps the browser's session alive: a grant bound to
        // a session ends when that session does, idle expiry included.
        if !self.grant_session_live(&grant, now).await? {
            return Err(TokenError::InvalidGrant("the session has ended"));
        }
        // Before the policies look: a token used from elsewhere raises the user risk they see.
        self.check_token_network(client, &grant, &req.client_ip, now)
            .await?;
        if self
            .refresh_blocked(client, &grant, &req.client_ip, &req.user_agent, now)
            .await?
        {
            return Err(TokenError::InvalidGrant(
                "a Conditional Access policy blocks this access; the tokens are revoked",
            ));
        }
        self.issue_tokens(client, &grant, None, true, now).await
    }

    /// The anomalous-token detection: a refresh from another country or network than the
    /// grant's tokens were first issued to raises one detection per grant on its account.
    async fn check_token_network(
        &self,
        client: &Client,
        grant: &GrantRecord,
        client_ip: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(user_id) = &grant.user_id else {
            return Ok(());
        };
        let origin = crate::risk::Network {
            asn: grant.origin_asn.and_then(|a| u32::try_from(a).ok()),
            country: grant.origin_country.clone(),
        };
        let here = self.network_of(client_ip);
        let Some(finding) = crate::risk::anomalous_token(&client.name, &origin, &here, client_ip)
        else {
            return Ok(());
        };
        if !self.store.flag_grant_anomalous(&grant.id, now).await? {
            return Ok(());
        }
        self.record_detection_for(user_id, &finding, None, "real-time", now)
            .await
    }

    pub(super) async fn client_credentials(
        &self,
        client: &Client,
        req: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        if !client.confidential {
            return Err(TokenError::UnauthorizedClient);
        }
        // Only the API scopes granted to this client; user scopes make no sense without a
        // user. Without a scope parameter the client gets every scope it was granted
        // (RFC 6749 §3.3 lets the server choose the default).
        let scope = match req.scope.as_deref().map(str::trim) {
            None | Some("") => client.api_scopes.clone(),
            Some(asked) => {
                let mut scopes: Vec<String> = Vec::new();
                for s in asked.split(' ').filter(|s| !s.is_empty()) {
                    if !client.api_scopes.iter().any(|granted| granted == s) {
                        return Err(TokenError::InvalidScope);
                    }
                    if !scopes.iter().any(|k| k == s) {
                        scopes.push(s.to_string());
                    }
                }
                scopes
            }
        };
        let grant = GrantRecord {
            id: random_id(),
            client_id: client.id.clone(),
            user_id: None,
            session_id: None,
            scope: scope.join(" "),
            credential_epoch: 0,
            offline: true,
            auth_time: None,
            amr: None,
            created_at: now,
            expires_at: now + ACCESS_TOKEN_TTL_MS,
            revoked_at: None,
            origin_asn: None,
            origin_country: None,
        };
        self.store.create_grant(&grant, None, now).await?;
        self.issue_tokens(client, &grant, None, false, now).await
    }

    pub(super) async fn issue_tokens(
        &self,
        client: &Client,
        grant: &GrantRecord,
        nonce: Option<&str>,
        with_refresh: bool,
        now: i64,
    ) -> Result<TokenResponse, TokenError> {
        let access = secret_token();
        let access_expires = (now + ACCESS_TOKEN_TTL_MS).min(grant.expires_at);
        self.store
            .insert_token(
                &token_hash(&access),
                &grant.id,
                "access",
                now,
                access_expires,
            )
            .await?;
        let refresh = if with_refresh && client.allows(GrantType::RefreshToken) {
            let r = secret_token();
            self.store
                .insert_token(&token_hash(&r), &grant.id, "refresh", now, grant.expires_at)
                .await?;
            Some(SecretString::new(r))
        } else {
            None
        };
        let scope = scope_list(&grant.scope);
        let id_token = match (&grant.user_id, scope.iter().any(|s| s == "openid")) {
            (Some(user_id), true) => {
                let user = self
                    .store
                    .find_user(user_id)
                    .await?
                    .ok_or(TokenError::InvalidGrant("the account no longer exists"))?;
                Some(
                    self.id_token(client, grant, &user, &scope, nonce, now)
                        .await?,
                )
            }
            _ => None,
        };
        Ok(TokenResponse {
            access_token: SecretString::new(access),
            expires_in: (access_expires - now) / 1000,
            refresh_token: refresh,
            id_token,
            scope: grant.scope.clone(),
        })
    }

    pub(super) fn user_claims(user: &User, scope: &[String], claims: &mut Value) {
        if scope.iter().any(|s| s == "email") {
            claims["email"] = json!(user.email);
            // Accounts exist only once their email is proven.
            claims["email_verified"] = json!(true);
        }
        if scope.iter().any(|s| s == "profile") {
            claims["name"] = json!(user.display_name);
            claims["updated_at"] = json!(user.updated_at / 1000);
        }
    }

    pub(super) async fn id_token(
        &self,
        client: &Client,
        grant: &GrantRecord,
        user: &User,
        scope: &[String],
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, AuthError> {
        let strength = crate::identity::Strength::parse(grant.amr.as_deref().unwrap_or_default());
        let mut claims = json!({
            "iss": self.issuer(),
            "sub": user.id,
            "aud": client.id,
            "azp": client.id,
            "iat": now / 1000,
            "exp": (now + ID_TOKEN_TTL_MS) / 1000,
            "auth_time": grant.auth_time.unwrap_or(now) / 1000,
            "amr": strength.amr(),
            "acr": strength.acr(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(sid) = &grant.session_id {
            claims["sid"] = json!(sid);
        }
        Self::user_claims(user, scope, &mut claims);
        let key = self.signing_key(client.id_token_alg, now).await?;
        key.sign("JWT", &claims).map_err(|e| internal(&e))
    }

    /// Whether a grant's tokens may still be used as far as its session goes: grants with
    /// `offline_access` and grants without a session outlive it; the others live only while
    /// their session is live for its browser (not expired, not idle too long).
    pub(super) async fn grant_session_live(
        &self,
        grant: &GrantRecord,
        now: i64,
    ) -> Result<bool, AuthError> {
        match (&grant.session_id, grant.offline) {
            (Some(session_id), false) => Ok(self
                .store
                .session_is_live(session_id, self.config.session_idle_ms, now)
                .await?),
            _ => Ok(true),
        }
    }

    /// The live access token `token`, with its grant and user.
    pub async fn access_token_info(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<TokenInfo>, AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let Some((grant, expires_at)) = self
            .store
            .live_token(&token_hash(token), "access", now)
            .await?
        else {
            return Ok(None);
        };
        if !self.grant_session_live(&grant, now).await? {
            return Ok(None);
        }
        let user = match &grant.user_id {
            Some(id) => match self.store.find_user(id).await? {
                Some(u) => Some(u),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(TokenInfo {
            issued_at: expires_at - ACCESS_TOKEN_TTL_MS,
            grant,
            user,
            expires_at,
        }))
    }

    /// Who calls Gatehouse's own API with `token`: the application, for a live access token
    /// it got as itself (client credentials), with the scopes of that token. `None` for
    /// anything else, a person's token included.
    pub async fn api_caller(&self, token: &str, now: i64) -> Result<Option<ApiCaller>, AuthError> {
        let Some(info) = self.access_token_info(token, now).await? else {
            return Ok(None);
        };
        if info.grant.user_id.is_some() {
            return Ok(None);
        }
        // A scope taken away from the application ends at once, not when its tokens expire.
        let Some(client) = self.client(&info.grant.client_id).await? else {
            return Ok(None);
        };
        let scopes = scope_list(&info.grant.scope)
            .into_iter()
            .filter(|s| client.api_scopes.contains(s))
            .collect();
        Ok(Some(ApiCaller {
            client_id: client.id,
            scopes,
        }))
    }

    /// The userinfo response for an access token, or `None` (401) when it is not live or was
    /// not issued for a person with the openid scope.
    pub async fn userinfo(&self, token: &str, now: i64) -> Result<Option<Value>, AuthError> {
        let Some(info) = self.access_token_info(token, now).await? else {
            return Ok(None);
        };
        let scope = scope_list(&info.grant.scope);
        let (Some(user), true) = (info.user, scope.iter().any(|s| s == "openid")) else {
            return Ok(None);
        };
        let mut claims = json!({ "sub": user.id });
        Self::user_claims(&user, &scope, &mut claims);
        Ok(Some(claims))
    }

    /// RFC 7662: what a client may learn about a token. A token issued to another client is
    /// reported inactive (§4 allows it), so no client learns about another's tokens.
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<Value, AuthError> {
        let inactive = json!({ "active": false });
        if let Some(info) = self.access_token_info(token, now).await? {
            if info.grant.client_id != client.id {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "scope": info.grant.scope,
                "client_id": info.grant.client_id,
                "aud": info.grant.client_id,
                "iss": self.issuer(),
                "exp": info.expires_at / 1000,
                "iat": info.issued_at / 1000,
            });
            if let Some(u) = &info.user {
                out["sub"] = json!(u.id);
            }
            return Ok(out);
        }
        if token.len() <= 128 {
            if let Some((grant, expires_at)) = self
                .store
                .live_token(&token_hash(token), "refresh", now)
                .await?
            {
                if grant.client_id != client.id || !self.grant_session_live(&grant, now).await? {
                    return Ok(inactive);
                }
                let mut out = json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": grant.scope,
                    "client_id": grant.client_id,
                    "iss": self.issuer(),
                    "exp": expires_at / 1000,
                });
                if let Some(u) = &grant.user_id {
                    out["sub"] = json!(u);
                }
                return Ok(out);
            }
        }
        Ok(inactive)
    }

    /// RFC 7009: revokes a token of this client. A refresh token takes its whole grant with it;
    /// an access token only itself. Unknown tokens are no error.
    pub async fn revoke_token(
        &self,
        client: &Client,
        token: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(());
        }
        let id = token_hash(token);
        if let Some((grant_id, owner, kind)) = self.store.token_grant(&id).await? {
            if owner == client.id {
                if kind == "refresh" {
                    self.store.revoke_grant(&grant_id, now).await?;
                } else {
                    self.store.spend_token(&id, now).await?;
                }
            }
        }
        Ok(())
    }

    /// Revokes every application grant (refresh and access tokens) of a user.
    pub async fn revoke_user_grants(&self, user_id: &str, now: i64) -> Result<u64, AuthError> {
        Ok(self.store.revoke_user_grants(user_id, now).await?)
    }
}
