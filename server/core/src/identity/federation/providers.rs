//! The providers an admin configures: their settings (secrets sealed), order and state.

use super::*;

impl Identity {
    /// Adds a provider or replaces the one with the same id; the secret is sealed at rest.
    pub async fn put_provider(
        &self,
        input: ProviderInput,
        now: i64,
    ) -> Result<Result<Provider, ProviderConfigError>, AuthError> {
        let existing = self.store.find_provider(&input.id).await?;
        let provider = match self.provider_from_input(input, existing.as_ref()) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let sealed_secret = match &provider.secret {
            Some(secret) => Some(
                seal::seal(&self.key, PROVIDER_SECRET_SEAL, secret.expose().as_bytes())
                    .map_err(|e| internal(&e))?,
            ),
            None => None,
        };
        let position = match &existing {
            Some(p) => p.position,
            None => self
                .store
                .list_providers()
                .await?
                .iter()
                .map(|p| p.position + 1)
                .max()
                .unwrap_or(0),
        };
        let record = ProviderRecord {
            id: provider.id.clone(),
            kind: provider.kind.as_str().into(),
            display_name: provider.display_name.clone(),
            settings: serde_json::to_string(&provider.settings).map_err(|e| internal(&e))?,
            sealed_secret,
            enabled: provider.enabled,
            position,
            created_at: existing.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        self.store.put_provider(&record).await?;
        Ok(Ok(Provider {
            position,
            ..provider
        }))
    }

    pub(super) fn provider_from_input(
        &self,
        input: ProviderInput,
        existing: Option<&ProviderRecord>,
    ) -> Result<Provider, ProviderConfigError> {
        if !valid_provider_id(&input.id) {
            return Err(ProviderConfigError::Id);
        }
        let display_name = input
            .display_name
            .unwrap_or_else(|| input.kind.default_name().to_string());
        let display_name =
            validate_display_name(&display_name).map_err(|_| ProviderConfigError::DisplayName)?;
        let issuer = match input.kind {
            ProviderKind::Oidc => input.issuer,
            kind => input
                .issuer
                .or_else(|| kind.default_issuer(input.tenant.as_deref())),
        }
        .map(|i| i.trim_end_matches('/').to_string())
        .filter(|i| acceptable_provider_url(i))
        .ok_or(ProviderConfigError::Issuer)?;
        let client_id = input.client_id.trim().to_string();
        if client_id.is_empty() || client_id.len() > 512 {
            return Err(ProviderConfigError::ClientId);
        }
        let mut endpoints = input.kind.default_endpoints();
        let o = input.endpoints;
        endpoints = Endpoints {
            authorization: o.authorization.or(endpoints.authorization),
            token: o.token.or(endpoints.token),
            userinfo: o.userinfo.or(endpoints.userinfo),
            jwks: o.jwks.or(endpoints.jwks),
            emails: o.emails.or(endpoints.emails),
        };
        for (name, url) in [
            ("authorization", &endpoints.authorization),
            ("token", &endpoints.token),
            ("userinfo", &endpoints.userinfo),
            ("jwks", &endpoints.jwks),
            ("emails", &endpoints.emails),
        ] {
            if let Some(url) = url {
                if !acceptable_provider_url(url) {
                    return Err(ProviderConfigError::Endpoint(name));
                }
            }
        }
        if !input.kind.is_openid_connect()
            && (endpoints.authorization.is_none()
                || endpoints.token.is_none()
                || endpoints.userinfo.is_none())
        {
            return Err(ProviderConfigError::Endpoint(
                "authorization/token/userinfo",
            ));
        }
        let scopes = input.scopes.unwrap_or_else(|| input.kind.default_scopes());
        if scopes.is_empty()
            || scopes
                .iter()
                .any(|s| s.is_empty() || s.len() > 100 || !s.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ProviderConfigError::Scopes);
        }
        let c = &input.claims;
        if c.email.is_empty() || c.email_verified.is_empty() || c.name.is_empty() {
            return Err(ProviderConfigError::Claims);
        }
        // A new secret replaces the stored one; otherwise the stored one is kept.
        let secret = match input.secret {
            Some(s) if !s.expose().trim().is_empty() => Some(SecretString::new(s.expose().trim())),
            _ => match existing.and_then(|p| p.sealed_secret.as_deref()) {
                Some(sealed) => Some(
                    self.open_secret(sealed)
                        .map_err(|_| ProviderConfigError::Secret)?,
                ),
                None => None,
            },
        };
        if input.kind == ProviderKind::Apple {
            let ok = input
                .apple
                .as_ref()
                .is_some_and(|a| !a.team_id.trim().is_empty() && !a.key_id.trim().is_empty())
                && secret
                    .as_ref()
                    .is_some_and(|s| s.expose().contains("BEGIN PRIVATE KEY"));
            if !ok {
                return Err(ProviderConfigError::Apple);
            }
        } else if secret.is_none() {
            return Err(ProviderConfigError::Secret);
        }
        Ok(Provider {
            id: input.id,
            kind: input.kind,
            display_name,
            settings: ProviderSettings {
                issuer,
                client_id,
                scopes,
                claims: input.claims,
                endpoints,
                apple: input.apple,
            },
            secret,
            enabled: input.enabled,
            position: 0,
        })
    }

    pub(super) fn open_secret(&self, sealed: &str) -> Result<SecretString, AuthError> {
        let bytes =
            seal::open(&self.key, PROVIDER_SECRET_SEAL, sealed).map_err(|e| internal(&e))?;
        String::from_utf8(bytes)
            .map(SecretString::new)
            .map_err(|e| internal(&e))
    }

    pub(super) fn provider_from_record(
        &self,
        record: ProviderRecord,
    ) -> Result<Provider, AuthError> {
        let kind =
            ProviderKind::parse(&record.kind).ok_or_else(|| internal(&StoreError::Malformed))?;
        let settings: ProviderSettings =
            serde_json::from_str(&record.settings).map_err(|e| internal(&e))?;
        let secret = match record.sealed_secret.as_deref() {
            Some(sealed) => Some(self.open_secret(sealed)?),
            None => None,
        };
        Ok(Provider {
            id: record.id,
            kind,
            display_name: record.display_name,
            settings,
            secret,
            enabled: record.enabled,
            position: record.position,
        })
    }

    /// Every configured provider, in display order.
    pub async fn providers(&self) -> Result<Vec<Provider>, AuthError> {
        self.store
            .list_providers()
            .await?
            .into_iter()
            .map(|r| self.provider_from_record(r))
            .collect()
    }

    /// An enabled provider by id.
    pub async fn enabled_provider(&self, id: &str) -> Result<Option<Provider>, AuthError> {
        if !valid_provider_id(id) {
            return Ok(None);
        }
        match self.store.find_provider(id).await? {
            Some(r) if r.enabled => Ok(Some(self.provider_from_record(r)?)),
            _ => Ok(None),
        }
    }

    /// The buttons of the sign-in pages: enabled providers in order (no secrets opened).
    pub async fn provider_buttons(&self) -> Result<Vec<ProviderButton>, AuthError> {
        Ok(self
            .store
            .list_providers()
            .await?
            .into_iter()
            .filter(|r| r.enabled)
            .filter_map(|r| {
                Some(ProviderButton {
                    kind: ProviderKind::parse(&r.kind)?,
                    id: r.id,
                    display_name: r.display_name,
                })
            })
            .collect())
    }

    pub async fn set_provider_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(self.store.set_provider_enabled(id, enabled, now).await?)
    }

    pub async fn set_provider_position(
        &self,
        id: &str,
        position: i64,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(self.store.set_provider_position(id, position, now).await?)
    }

    pub async fn remove_provider(&self, id: &str) -> Result<bool, AuthError> {
        Ok(self.store.delete_provider(id).await?)
    }
}
