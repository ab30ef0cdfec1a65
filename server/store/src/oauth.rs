//! Persistence of the OpenID Connect provider: clients, signing keys, waiting authorization
//! requests, grants with their codes and tokens, and remembered consent.
//!
//! Codes and refresh tokens are consumed by one conditional `UPDATE ... RETURNING`, so of many
//! concurrent redemptions exactly one wins. Whether a token is still good is decided by one
//! query over its grant, the user and the session, so revoking a grant, disabling the user,
//! changing their credentials or ending a session-bound sign-in takes effect at once.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{bool_col, Store, StoreResult};

const CLIENT_COLUMNS: &str = "id, name, logo_url, confidential, secret_hash, redirect_uris, \
     post_logout_redirect_uris, grant_types, allowed_origins, first_party, id_token_alg, \
     backchannel_logout_uri, created_at, updated_at, api_scopes";
const KEY_COLUMNS: &str =
    "id, alg, sealed_private, public_jwk, created_at, retired_at, unpublish_at";
const GRANT_COLUMNS: &str = "g.id, g.client_id, g.user_id, g.session_id, g.scope, \
     g.credential_epoch, g.offline, g.auth_time, g.amr, g.created_at, g.expires_at, g.revoked_at, \
     g.origin_asn, g.origin_country";

/// A registered application. Lists are JSON arrays of strings.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    pub logo_url: Option<String>,
    pub confidential: bool,
    /// SHA-256 (hex) of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub allowed_origins: String,
    pub first_party: bool,
    pub id_token_alg: String,
    pub backchannel_logout_uri: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// API scopes granted to the application's own calls (client credentials).
    pub api_scopes: String,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("confidential", &self.confidential)
            .field(
                "secret_hash",
                &self.secret_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_uris", &self.redirect_uris)
            .field("grant_types", &self.grant_types)
            .field("first_party", &self.first_party)
            .field("api_scopes", &self.api_scopes)
            .finish()
    }
}

impl ClientRecord {
    fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(ClientRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            logo_url: row.try_get("logo_url")?,
            confidential: bool_col(row, "confidential")?,
            secret_hash: row.try_get("secret_hash")?,
            redirect_uris: row.try_get("redirect_uris")?,
            post_logout_redirect_uris: row.try_get("post_logout_redirect_uris")?,
            grant_types: row.try_get("grant_types")?,
            allowed_origins: row.try_get("allowed_origins")?,
            first_party: bool_col(row, "first_party")?,
            id_token_alg: row.try_get("id_token_alg")?,
            backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            api_scopes: row.try_get("api_scopes")?,
        })
    }
}

/// A token signing key; the private half is sealed.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub id: String,
    pub alg: String,
    pub sealed_private: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub unpublish_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("id", &self.id)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl SigningKeyRecord {
    fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(SigningKeyRecord {
            id: row.try_get("id")?,
            alg: row.try_get("alg")?,
            sealed_private: row.try_get("sealed_private")?,
            public_jwk: row.try_get("public_jwk")?,
            created_at: row.try_get("created_at")?,
            retired_at: row.try_get("retired_at")?,
            unpublish_at: row.try_get("unpublish_at")?,
        })
    }
}

/// An authorization: a client acting for a user (or, without a user, for itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    /// The Gatehouse session it was made in; tokens of a grant that is not `offline` live only
    /// as long as that session.
    pub session_id: Option<String>,
    pub scope: String,
    pub credential_epoch: i64,
    pub offline: bool,
    pub auth_time: Option<i64>,
    pub amr: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// The network its tokens were first issued to: autonomous system and country.
    pub origin_asn: Option<i64>,
    pub origin_country: Option<String>,
}

impl GrantRecord {
    fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(GrantRecord {
            id: row.try_get("id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            session_id: row.try_get("session_id")?,
            scope: row.try_get("scope")?,
            credential_epoch: row.try_get("credential_epoch")?,
            offline: bool_col(row, "offline")?,
            auth_time: row.try_get("auth_time")?,
            amr: row.try_get("amr")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            origin_asn: row.try_get("origin_asn")?,
            origin_country: row.try_get("origin_country")?,
        })
    }
}

/// A redeemed authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub grant_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub expires_at: i64,
}

/// What redeeming a code found.
#[derive(Debug)]
pub enum CodeRedemption {
    /// This caller consumed the code.
    Redeemed(CodeGrant),
    /// The code was consumed before: replay. Its grant has been revoked.
    Replayed,
    /// No such code.
    Unknown,
}

/// What using a refresh token found.
#[derive(Debug)]
pub enum RefreshUse {
    /// This caller used the token (it is now spent); the grant it belongs to.
    Used(String),
    /// The token was already spent: its whole family (grant) has been revoked.
    Replayed,
    /// No such token, or expired.
    Unknown,
}

/// Whether a grant's tokens are good now: the grant is not revoked or expired, its user exists,
/// is enabled and has not changed credentials, and a session-bound grant's session lives.
const LIVE_GRANT: &str = "$REVOKED AND g.expires_at > $NOW AND (g.user_id IS NULL OR \
     (EXISTS (SELECT 1 FROM users u WHERE u.id = g.user_id AND u.disabled = 0 \
      AND u.credential_epoch = g.credential_epoch) \
      AND (g.offline = 1 OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = g.session_id \
      AND s.expires_at > $NOW))))";

fn live_grant(now_param: &str) -> String {
    LIVE_GRANT
        .replace("$REVOKED", "g.revoked_at IS NULL")
        .replace("$NOW", now_param)
}

/// [`live_grant`] that also accepts a revocation at or after `$since_param`.
fn live_grant_revoked_since(now_param: &str, since_param: &str) -> String {
    LIVE_GRANT
        .replace(
            "$REVOKED",
            &format!("(g.revoked_at IS NULL OR g.revoked_at >= {since_param})"),
        )
        .replace("$NOW", now_param)
}

impl Store {
    // ---------------------------------------------------------------- clients

    pub async fn create_client(&self, c: &ClientRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ))
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.logo_url)
        .bind(i64::from(c.confidential))
        .bind(&c.secret_hash)
        .bind(&c.redirect_uris)
        .bind(&c.post_logout_redirect_uris)
        .bind(&c.grant_types)
        .bind(&c.allowed_origins)
        .bind(i64::from(c.first_party))
        .bind(&c.id_token_alg)
        .bind(&c.backchannel_logout_uri)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(&c.api_scopes)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces everything but the id, the secret and the creation time.
    pub async fn update_client(&self, c: &ClientRecord) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE oauth_clients SET name = $1, logo_url = $2, confidential = $3, \
             redirect_uris = $4, post_logout_redirect_uris = $5, grant_types = $6, \
             allowed_origins = $7, first_party = $8, id_token_alg = $9, \
             backchannel_logout_uri = $10, updated_at = $11, api_scopes = $12 WHERE id = $13",
        )
        .bind(&c.name)
        .bind(&c.logo_url)
        .bind(i64::from(c.confidential))
        .bind(&c.redirect_uris)
        .bind(&c.post_logout_redirect_uris)
        .bind(&c.grant_types)
        .bind(&c.allowed_origins)
        .bind(i64::from(c.first_party))
        .bind(&c.id_token_alg)
        .bind(&c.backchannel_logout_uri)
        .bind(c.updated_at)
        .bind(&c.api_scopes)
        .bind(&c.id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE oauth_clients SET secret_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(secret_hash)
                .bind(now)
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn find_client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| ClientRecord::from_row(&r)).transpose()
    }

    pub async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY name, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(ClientRecord::from_row).collect()
    }

    /// Deletes a client and, through the foreign keys, every grant, code, token and consent.
    pub async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM oauth_clients WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- signing keys

    pub async fn insert_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&k.id)
        .bind(&k.alg)
        .bind(&k.sealed_private)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.retired_at)
        .bind(k.unpublish_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Keys that are still published (active and retired-but-not-yet-unpublished), newest first.
    pub async fn published_signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE unpublish_at IS NULL OR unpublish_at > $1 \
             ORDER BY created_at DESC, id"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(SigningKeyRecord::from_row).collect()
    }

    /// The newest key of `alg` that still signs.
    pub async fn active_signing_key(&self, alg: &str) -> StoreResult<Option<SigningKeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE alg = $1 AND retired_at IS NULL \
             ORDER BY created_at DESC, id LIMIT 1"
        ))
        .bind(alg)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| SigningKeyRecord::from_row(&r)).transpose()
    }

    /// Stops every key of `alg` created before `before` from signing; they stay published until
    /// `unpublish_at`.
    pub async fn retire_signing_keys(
        &self,
        alg: &str,
        before_created_at: i64,
        except_id: &str,
        now: i64,
        unpublish_at: i64,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, unpublish_at = $2 WHERE alg = $3 \
             AND retired_at IS NULL AND created_at <= $4 AND id <> $5",
        )
        .bind(now)
        .bind(unpublish_at)
        .bind(alg)
        .bind(before_created_at)
        .bind(except_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    // ---------------------------------------------------------------- authorization requests

    pub async fn save_authorization_request(
        &self,
        id: &str,
        client_id: &str,
        params: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_requests (id, client_id, params, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(client_id)
        .bind(params)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A waiting request: (client id, parameters JSON, created at).
    pub async fn find_authorization_request(
        &self,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<(String, String, i64)>> {
        let row = sqlx::query(
            "SELECT client_id, params, created_at FROM oauth_requests WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> StoreResult<_> {
            Ok((
                r.try_get("client_id")?,
                r.try_get("params")?,
                r.try_get("created_at")?,
            ))
        })
        .transpose()
    }

    /// Removes a waiting request; true for the one caller that removed it.
    pub async fn take_authorization_request(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM oauth_requests WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---------------------------------------------------------------- grants, codes, tokens

    /// Creates a grant and, when `code` is given, its authorization code, in one transaction.
    pub async fn create_grant(
        &self,
        g: &GrantRecord,
        code: Option<(&str, &CodeGrant)>,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO oauth_grants (id, client_id, user_id, session_id, scope, credential_epoch, \
             offline, auth_time, amr, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
        )
        .bind(&g.id)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(&g.session_id)
        .bind(&g.scope)
        .bind(g.credential_epoch)
        .bind(i64::from(g.offline))
        .bind(g.auth_time)
        .bind(&g.amr)
        .bind(g.created_at)
        .bind(g.expires_at)
        .execute(&mut *tx)
        .await?;
        if let Some((code_hash, c)) = code {
            sqlx::query(
                "INSERT INTO oauth_codes (code_hash, grant_id, redirect_uri, code_challenge, nonce, \
                 created_at, expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            )
            .bind(code_hash)
            .bind(&g.id)
            .bind(&c.redirect_uri)
            .bind(&c.code_challenge)
            .bind(&c.nonce)
            .bind(now)
            .bind(c.expires_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Consumes an authorization code. Of concurrent callers exactly one gets `Redeemed`; a code
    /// that was already consumed revokes its grant (and so every token the first use issued).
    /// An expired code is consumed too and reported as redeemed with its expiry, for the caller
    /// to refuse.
    pub async fn redeem_code(&self, code_hash: &str, now: i64) -> StoreResult<CodeRedemption> {
        let row = sqlx::query(
            "UPDATE oauth_codes SET consumed_at = $1 WHERE code_hash = $2 AND consumed_at IS NULL \
             RETURNING grant_id, redirect_uri, code_challenge, nonce, expires_at",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = row {
            return Ok(CodeRedemption::Redeemed(CodeGrant {
                grant_id: r.try_get("grant_id")?,
                redirect_uri: r.try_get("redirect_uri")?,
                code_challenge: r.try_get("code_challenge")?,
                nonce: r.try_get("nonce")?,
                expires_at: r.try_get("expires_at")?,
            }));
        }
        let replayed = sqlx::query("SELECT grant_id FROM oauth_codes WHERE code_hash = $1")
            .bind(code_hash)
            .fetch_optional(self.pool())
            .await?;
        match replayed {
            Some(r) => {
                let grant_id: String = r.try_get("grant_id")?;
                self.revoke_grant(&grant_id, now).await?;
                Ok(CodeRedemption::Replayed)
            }
            None => Ok(CodeRedemption::Unknown),
        }
    }

    /// Makes a grant whose code was just redeemed live until `expires_at`.
    pub async fn activate_grant(&self, grant_id: &str, expires_at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE oauth_grants SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(grant_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(grant_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every live grant of a user (all their refresh and access tokens).
    pub async fn revoke_user_grants(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Revokes a user's grants to one client (consent withdrawn).
    pub async fn revoke_client_grants_of_user(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1 WHERE user_id = $2 AND client_id = $3 \
             AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The grant if its tokens are good now (see the module documentation).
    pub async fn live_grant(&self, grant_id: &str, now: i64) -> StoreResult<Option<GrantRecord>> {
        self.grant_live_at_use(grant_id, now, None).await
    }

    /// [`Store::live_grant`] for the one caller that just spent its code or refresh token at
    /// `spent_at`: a revocation at or after that moment (the replays of a concurrent race)
    /// does not stop it; its tokens are issued, and are dead on arrival.
    pub async fn grant_live_at_use(
        &self,
        grant_id: &str,
        now: i64,
        spent_at: Option<i64>,
    ) -> StoreResult<Option<GrantRecord>> {
        let live = live_grant_revoked_since("$2", "$3");
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.id = $1 AND {live}"
        ))
        .bind(grant_id)
        .bind(now)
        .bind(spent_at.unwrap_or(i64::MAX))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| GrantRecord::from_row(&r)).transpose()
    }

    /// Records an issued token (access token by jti, refresh token by hash).
    pub async fn insert_token(
        &self,
        id: &str,
        grant_id: &str,
        kind: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_tokens (id, grant_id, kind, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(id)
        .bind(grant_id)
        .bind(kind)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A token of `kind` that is unexpired, unspent and whose grant is live, with the grant.
    pub async fn live_token(
        &self,
        id: &str,
        kind: &str,
        now: i64,
    ) -> StoreResult<Option<(GrantRecord, i64)>> {
        let row = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS}, t.expires_at AS token_expires_at FROM oauth_tokens t \
             JOIN oauth_grants g ON g.id = t.grant_id WHERE t.id = $1 AND t.kind = $2 \
             AND t.used_at IS NULL AND t.expires_at > $3 AND {}",
            live_grant("$3")
        ))
        .bind(id)
        .bind(kind)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some((
                GrantRecord::from_row(&r)?,
                r.try_get("token_expires_at")?,
            ))),
            None => Ok(None),
        }
    }

    /// Spends a refresh token. Of concurrent callers exactly one gets `Used`; a token that was
    /// spent before revokes its whole family.
    pub async fn use_refresh_token(&self, id: &str, now: i64) -> StoreResult<RefreshUse> {
        let row = sqlx::query(
            "UPDATE oauth_tokens SET used_at = $1 WHERE id = $2 AND kind = 'refresh' \
             AND used_at IS NULL AND expires_at > $1 RETURNING grant_id",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = row {
            return Ok(RefreshUse::Used(r.try_get("grant_id")?));
        }
        let spent = sqlx::query(
            "SELECT grant_id FROM oauth_tokens WHERE id = $1 AND kind = 'refresh' \
             AND used_at IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        match spent {
            Some(r) => {
                let grant_id: String = r.try_get("grant_id")?;
                self.revoke_grant(&grant_id, now).await?;
                Ok(RefreshUse::Replayed)
            }
            None => Ok(RefreshUse::Unknown),
        }
    }

    /// The grant, client and kind of a token, if the token is known (whatever its state).
    pub async fn token_grant(&self, id: &str) -> StoreResult<Option<(String, String, String)>> {
        let row = sqlx::query(
            "SELECT t.grant_id, g.client_id, t.kind FROM oauth_tokens t JOIN oauth_grants g \
             ON g.id = t.grant_id WHERE t.id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> StoreResult<_> {
            Ok((
                r.try_get("grant_id")?,
                r.try_get("client_id")?,
                r.try_get("kind")?,
            ))
        })
        .transpose()
    }

    /// Ends one token (an access token revoked on its own).
    pub async fn spend_token(&self, id: &str, now: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE oauth_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live grants of a user, newest first: the applications signed in as them.
    pub async fn live_grants_of_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> StoreResult<Vec<GrantRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {GRANT_COLUMNS} FROM oauth_grants g WHERE g.user_id = $1 AND {} \
             AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.grant_id = g.id \
             AND c.consumed_at IS NULL) ORDER BY g.created_at DESC",
            live_grant("$2")
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(GrantRecord::from_row).collect()
    }

    /// The clients that were authorized in a Gatehouse session.
    pub async fn clients_of_session(&self, session_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT client_id FROM oauth_grants WHERE session_id = $1 ORDER BY client_id",
        )
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
            .collect()
    }

    // ---------------------------------------------------------------- consent

    pub async fn consented_scope(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| r.try_get("scope").map_err(Into::into))
            .transpose()
    }

    pub async fn put_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
             granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The clients a user consented to: (client, scope, granted at).
    pub async fn consents_of_user(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(ClientRecord, String, i64)>> {
        let rows = sqlx::query(&format!(
            "SELECT {}, k.scope AS consent_scope, k.granted_at FROM oauth_consents k \
             JOIN oauth_clients c ON c.id = k.client_id WHERE k.user_id = $1 ORDER BY c.name",
            CLIENT_COLUMNS
                .split(", ")
                .map(|c| format!("c.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    ClientRecord::from_row(r)?,
                    r.try_get("consent_scope")?,
                    r.try_get("granted_at")?,
                ))
            })
            .collect()
    }

    pub async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Notes the network (autonomous system, country) a grant's tokens were first issued to.
    pub async fn set_grant_origin(
        &self,
        grant_id: &str,
        asn: Option<i64>,
        country: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE oauth_grants SET origin_asn = $1, origin_country = $2 WHERE id = $3")
            .bind(asn)
            .bind(country)
            .bind(grant_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a grant as used from an unexpected network; true only for the first caller, so
    /// one grant raises one detection however often it is refreshed.
    pub async fn flag_grant_anomalous(&self, grant_id: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE oauth_grants SET anomaly_at = $1 WHERE id = $2 AND anomaly_at IS NULL",
        )
        .bind(now)
        .bind(grant_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
