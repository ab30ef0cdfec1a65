//! The provider's token signing keys: made on first use, sealed at rest, rotated with the
//! old keys published until their tokens have expired.

use super::*;

impl Identity {
    // ------------------------------------------------------------ signing keys

    pub(super) fn open_key(&self, record: &SigningKeyRecord) -> Result<Arc<SigningKey>, AuthError> {
        if let Ok(cache) = self.signing_keys.lock() {
            if let Some(k) = cache.get(&record.id) {
                return Ok(k.clone());
            }
        }
        let alg = Alg::parse(&record.alg).ok_or_else(|| internal(&jws::JwsError::Key))?;
        let bytes = crate::seal::open(&self.key, SEAL_PURPOSE, &record.sealed_private)
            .map_err(|e| internal(&e))?;
        let key = Arc::new(
            SigningKey::from_private_bytes(alg, record.id.clone(), &bytes)
                .map_err(|e| internal(&e))?,
        );
        if let Ok(mut cache) = self.signing_keys.lock() {
            cache.insert(record.id.clone(), key.clone());
        }
        Ok(key)
    }

    pub(super) async fn new_signing_key(
        &self,
        alg: Alg,
        now: i64,
    ) -> Result<Arc<SigningKey>, AuthError> {
        let key = tokio::task::spawn_blocking(move || SigningKey::generate(alg, random_id()))
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| internal(&e))?;
        let bytes = key.to_private_bytes().map_err(|e| internal(&e))?;
        let sealed =
            crate::seal::seal(&self.key, SEAL_PURPOSE, &bytes).map_err(|e| internal(&e))?;
        self.store
            .insert_signing_key(&SigningKeyRecord {
                id: key.kid().to_string(),
                alg: alg.as_str().to_string(),
                sealed_private: sealed,
                public_jwk: key.public_jwk().to_string(),
                created_at: now,
                retired_at: None,
                unpublish_at: None,
            })
            .await?;
        tracing::info!(kid = %key.kid(), alg = alg.as_str(), "created a token signing key");
        Ok(Arc::new(key))
    }

    /// The key that signs with `alg` now, created on first use.
    pub async fn signing_key(&self, alg: Alg, now: i64) -> Result<Arc<SigningKey>, AuthError> {
        match self.store.active_signing_key(alg.as_str()).await? {
            Some(record) => self.open_key(&record),
            None => self.new_signing_key(alg, now).await,
        }
    }

    /// The published keys (a JWK set): every algorithm's active key and the retired keys whose
    /// tokens may still be in use.
    pub async fn jwks(&self, now: i64) -> Result<Value, AuthError> {
        for alg in Alg::ALL {
            if self.store.active_signing_key(alg.as_str()).await?.is_none() {
                self.new_signing_key(alg, now).await?;
            }
        }
        let keys: Vec<Value> = self
            .store
            .published_signing_keys(now)
            .await?
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(json!({ "keys": keys }))
    }

    /// New keys for every algorithm. The old ones stop signing at once and stay published
    /// until every token they signed has expired. Returns the new key ids.
    pub async fn rotate_signing_keys(&self, now: i64) -> Result<Vec<String>, AuthError> {
        let mut kids = Vec::new();
        for alg in Alg::ALL {
            let key = self.new_signing_key(alg, now).await?;
            self.store
                .retire_signing_keys(
                    alg.as_str(),
                    now,
                    key.kid(),
                    now,
                    now + RETIRED_KEY_PUBLISHED_MS,
                )
                .await?;
            kids.push(key.kid().to_string());
        }
        Ok(kids)
    }

    /// Verifies a JWS signed by one of our published keys; returns its claims.
    pub(super) async fn verify_own_jws(&self, token: &str, now: i64) -> Option<Value> {
        let header = jws::jws_header(token).ok()?;
        let kid = header.get("kid")?.as_str()?;
        let records = self.store.published_signing_keys(now).await.ok()?;
        let record = records.iter().find(|r| r.id == kid)?;
        let key = self.open_key(record).ok()?;
        key.verify(token).ok()
    }
}
