//! Passkeys (WebAuthn): registration from the security-info page, passwordless sign-in with a
//! discoverable credential (by button or by autofill), and the second factor of a pending
//! sign-in.
//!
//! Every ceremony's state lives in the database as a single-use grant that expires after five
//! minutes; the browser only holds its id. User verification is required in every ceremony, so
//! a passkey proves two factors by itself (the device, and the PIN or biometric unlocking it).
//! After each use the credential's signature counter and backup flags are stored; a counter
//! that goes backwards or backup flags that contradict the stored ones are refused and logged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use super::{
    internal, ip_key, AuthError, AuthMethod, Identity, InputProblem, Method, RequestContext,
    SignedIn, Strength,
};
use crate::store::{CodePurpose, CodeRecord, NewCode, PasskeyRecord, Session, User};
use crate::tokens::random_id;

/// How long a ceremony (registration or sign-in) stays open.
pub const CEREMONY_TTL_MS: i64 = 5 * 60 * 1000;
/// Passkey names are 1 to this many characters.
pub const MAX_PASSKEY_NAME: usize = 64;
/// The most passkeys one account may register.
pub const MAX_PASSKEYS: usize = 20;
/// Passwordless ceremonies one client address may open per window (each is a database row).
pub const PASSKEY_CEREMONIES_PER_IP: i64 = 60;
pub const PASSKEY_CEREMONY_WINDOW_MS: i64 = 10 * 60 * 1000;

/// The relying party of every ceremony, from the public URL: its host is the relying-party id
/// and the URL's origin the only accepted origin.
pub fn relying_party(public_url: &str, name: &str) -> Result<Webauthn, String> {
    let origin = Url::parse(public_url).map_err(|e| format!("invalid public URL: {e}"))?;
    let host = origin
        .host_str()
        .ok_or_else(|| "the public URL has no host".to_string())?
        .to_string();
    WebauthnBuilder::new(&host, &origin)
        .and_then(|b| b.rp_name(name).build())
        .map_err(|e| format!("passkeys cannot use this public URL: {e}"))
}

/// An open ceremony: its id (sent back with the browser's answer) and the options for
/// `navigator.credentials`, as WebAuthn's JSON.
#[derive(Debug, Clone)]
pub struct PasskeyCeremony {
    pub id: String,
    pub options: serde_json::Value,
}

/// A registered passkey, as the security-info page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub added_at: i64,
    pub last_used_at: Option<i64>,
    /// Backed up to a cloud account (a synced passkey) rather than bound to one device.
    pub synced: bool,
}

#[derive(Serialize, Deserialize)]
struct Ceremony<T> {
    state: T,
    /// The pending sign-in a second-factor ceremony belongs to.
    #[serde(default)]
    pending_id: Option<String>,
}

fn credential_id(passkey: &Passkey) -> String {
    URL_SAFE_NO_PAD.encode(passkey.cred_id())
}

/// A flag of the stored credential record (`backup_eligible`, `backup_state`).
fn stored_flag(record: &PasskeyRecord, flag: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(&record.passkey)
        .ok()
        .and_then(|v| {
            v.pointer(&format!("/cred/{flag}"))
                .and_then(|b| b.as_bool())
        })
        .unwrap_or(false)
}

fn info(record: &PasskeyRecord) -> PasskeyInfo {
    PasskeyInfo {
        id: record.id.clone(),
        name: record.name.clone(),
        added_at: record.created_at,
        last_used_at: record.last_used_at,
        synced: stored_flag(record, "backup_state"),
    }
}

/// Trims a passkey name and checks it: 1 to 64 characters, no control characters.
pub fn validate_passkey_name(input: &str) -> Result<String, AuthError> {
    let name = input.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_PASSKEY_NAME || name.chars().any(char::is_control) {
        return Err(AuthError::InvalidInput(InputProblem::PasskeyName));
    }
    Ok(name.to_string())
}

/// The `amr` value of a passkey: `swk` for one that syncs between devices (its key lives in
/// software), `hwk` for one bound to a hardware authenticator.
fn passkey_method(backup_eligible: bool) -> AuthMethod {
    if backup_eligible {
        AuthMethod::SyncedPasskey
    } else {
        AuthMethod::DeviceBoundPasskey
    }
}

impl Identity {
    /// The WebAuthn user handle of an account: a hash of its id, never personal data.
    fn webauthn_user_id(&self, user_id: &str) -> Uuid {
        let digest = Sha256::digest(format!("gatehouse-webauthn-user:{user_id}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::from_bytes(bytes)
    }

    async fn save_ceremony<T: Serialize>(
        &self,
        purpose: CodePurpose,
        user: Option<&User>,
        ceremony: &Ceremony<T>,
        now: i64,
    ) -> Result<String, AuthError> {
        let payload = serde_json::to_string(ceremony).map_err(|e| internal(&e))?;
        let id = random_id();
        self.store
            .create_code(&NewCode {
                id: &id,
                purpose,
                email: user.map(|u| u.email.as_str()).unwrap_or(""),
                user_id: user.map(|u| u.id.as_str()),
                code_hash: "",
                payload: Some(&payload),
                now,
                expires_at: now + CEREMONY_TTL_MS,
            })
            .await?;
        Ok(id)
    }

    /// Takes a ceremony's state, once: a second answer to the same challenge finds nothing.
    async fn take_ceremony<T: DeserializeOwned>(
        &self,
        id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<(CodeRecord, Ceremony<T>), AuthError> {
        if id.is_empty() || id.len() > 64 {
            return Err(AuthError::CodeDead);
        }
        let record = self
            .store
            .consume_grant(id, purpose, now)
            .await?
            .ok_or(AuthError::CodeDead)?;
        let ceremony = serde_json::from_str(record.payload.as_deref().unwrap_or(""))
            .map_err(|e| internal(&e))?;
        Ok((record, ceremony))
    }

    fn parse_passkey(record: &PasskeyRecord) -> Result<Passkey, AuthError> {
        serde_json::from_str(&record.passkey).map_err(|e| internal(&e))
    }

    /// The account's passkeys, oldest first.
    pub async fn list_passkeys(&self, user_id: &str) -> Result<Vec<PasskeyInfo>, AuthError> {
        Ok(self
            .store
            .list_passkeys(user_id)
            .await?
            .iter()
            .map(info)
            .collect())
    }

    // ------------------------------------------------------------ registration

    /// Opens a registration ceremony for a signed-in account. The account's passkeys are
    /// excluded, so one authenticator is never registered twice; a discoverable credential is
    /// asked for, so the passkey also works without a password.
    pub async fn begin_passkey_registration(
        &self,
        session: &Session,
        user: &User,
        now: i64,
    ) -> Result<PasskeyCeremony, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let existing = self.store.list_passkeys(&user.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(AuthError::LimitReached);
        }
        let exclude = existing
            .iter()
            .map(|r| Self::parse_passkey(r).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_registration(
                self.webauthn_user_id(&user.id),
                &user.email,
                &user.display_name,
                Some(exclude),
            )
            .map_err(|e| internal(&e))?;
        let mut options = serde_json::to_value(&options).map_err(|e| internal(&e))?;
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|s| s.as_object_mut())
        {
            selection.insert("residentKey".into(), "preferred".into());
        }
        let id = self
            .save_ceremony(
                CodePurpose::PasskeyRegistration,
                Some(user),
                &Ceremony {
                    state,
                    pending_id: None,
                },
                now,
            )
            .await?;
        Ok(PasskeyCeremony { id, options })
    }

    /// Completes a registration with the browser's answer. The credential must answer this
    /// ceremony's challenge from this origin, with user verification, and must not be
    /// registered already (to this account or any other).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_passkey_registration(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        ceremony_id: &str,
        name: &str,
        credential: &str,
        now: i64,
    ) -> Result<PasskeyInfo, AuthError> {
        if !self.signed_in_recently(session, now) {
            return Err(AuthError::ReauthenticationRequired);
        }
        let name = validate_passkey_name(name)?;
        let (record, ceremony) = self
            .take_ceremony::<PasskeyRegistration>(
                ceremony_id,
                CodePurpose::PasskeyRegistration,
                now,
            )
            .await?;
        if record.user_id.as_deref() != Some(user.id.as_str()) {
            return Err(AuthError::CodeDead);
        }
        let credential: RegisterPublicKeyCredential =
            serde_json::from_str(credential).map_err(|_| AuthError::PasskeyFailed)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &ceremony.state)
            .map_err(|e| {
                tracing::info!(user.id = %user.id, error = %e, "passkey registration refused");
                AuthError::PasskeyFailed
            })?;
        let stored = PasskeyRecord {
            id: random_id(),
            user_id: user.id.clone(),
            credential_id: credential_id(&passkey),
            name,
            passkey: serde_json::to_string(&passkey).map_err(|e| internal(&e))?,
            created_at: now,
            last_used_at: None,
        };
        let had_factor = self.store.has_second_factor(&user.id).await?;
        if !self.store.create_passkey(&stored).await? {
            tracing::info!(user.id = %user.id, "passkey registration refused: credential already registered");
            return Err(AuthError::PasskeyFailed);
        }
        self.audit(
            ctx,
            &user.id,
            "mfa.passkey.added",
            &format!("passkey {:?}", stored.name),
            now,
        )
        .await?;
        self.count_new_factor(
            session,
            user,
            had_factor,
            passkey_method(stored_flag(&stored, "backup_eligible")),
            &stored.id,
            now,
        )
        .await?;
        tracing::info!(user.id = %user.id, "passkey added");
        Ok(info(&stored))
    }

    /// Renames one of the account's passkeys.
    pub async fn rename_passkey(
        &self,
        ctx: &RequestContext,
        user: &User,
        id: &str,
        name: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let name = validate_passkey_name(name)?;
        if !self.store.rename_passkey(&user.id, id, &name).await? {
            return Err(AuthError::CodeDead);
        }
        self.audit(
            ctx,
            &user.id,
            "mfa.passkey.renamed",
            &format!("passkey {name:?}"),
            now,
        )
        .await
    }

    /// Removes a passkey and ends every session signed in with it. Returns whether the current
    /// session was one of them.
    pub async fn remove_passkey(
        &self,
        ctx: &RequestContext,
        session: &Session,
        user: &User,
        id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        self.may_remove_method(session, user, id, now).await?;
        let name = self
            .store
            .list_passkeys(&user.id)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.name)
            .ok_or(AuthError::CodeDead)?;
        if !self.store.delete_passkey(&user.id, id).await? {
            return Err(AuthError::CodeDead);
        }
        self.method_removed(
            ctx,
            session,
            user,
            id,
            "mfa.passkey.removed",
            &format!("passkey {name:?}"),
            now,
        )
        .await
    }

    // ------------------------------------------------------------ sign-in

    /// Opens a passwordless sign-in ceremony: no account is named, the browser offers the
    /// passkeys it has for this site (from a button, or in the email field's autofill).
    pub async fn begin_passkey_sign_in(
        &self,
        ctx: &RequestContext,
        now: i64,
    ) -> Result<PasskeyCeremony, AuthError> {
        if !self
            .store
            .take_budget(
                "passkey_ceremony",
                &ip_key(&ctx.client_ip),
                PASSKEY_CEREMONIES_PER_IP,
                PASSKEY_CEREMONY_WINDOW_MS,
                now,
            )
            .await?
        {
            return Err(AuthError::TooManyRequests);
        }
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| internal(&e))?;
        let options = serde_json::to_value(&options).map_err(|e| internal(&e))?;
        let id = self
            .save_ceremony(
                CodePurpose::PasskeySignIn,
                None,
                &Ceremony {
                    state,
                    pending_id: None,
                },
                now,
            )
            .await?;
        Ok(PasskeyCeremony { id, options })
    }

    /// Completes a passwordless sign-in. The credential names its account (by the user handle
    /// the authenticator stored); user verification makes it a multifactor sign-in.
    pub async fn finish_passkey_sign_in(
        &self,
        ctx: &RequestContext,
        ceremony_id: &str,
        credential: &str,
        now: i64,
    ) -> Result<super::SignInOutcome, AuthError> {
        let ip = self.ip_gate(ctx, now).await?;
        let (_, ceremony) = self
            .take_ceremony::<DiscoverableAuthentication>(
                ceremony_id,
                CodePurpose::PasskeySignIn,
                now,
            )
            .await?;
        let found = self.identify_passkey(credential).await?;
        let Some((credential, record, user)) = found else {
            self.ip_failure(&ip, now).await?;
            return Err(self
                .refuse(
                    ctx,
                    "",
                    None,
                    Method::Passkey,
                    AuthError::PasskeyFailed,
                    now,
                )
                .await?);
        };
        let passkey = Self::parse_passkey(&record)?;
        let result = self.webauthn.finish_discoverable_authentication_v2(
            &credential,
            ceremony.state,
            &passkey,
        );
        let factor = match self
            .record_passkey_use(ctx, &user, &record, passkey, result, now)
            .await
        {
            Ok(factor) => factor,
            Err(err) => {
                self.ip_failure(&ip, now).await?;
                return Err(self
                    .refuse(ctx, &user.email, Some(&user.id), Method::Passkey, err, now)
                    .await?);
            }
        };
        let email = user.email.clone();
        let first = super::FirstFactor {
            credential_id: Some(&record.id),
            ..super::FirstFactor::proven(&email, user, Method::Passkey, Strength::of(factor))
        };
        self.conclude_first_factor(ctx, first, now).await
    }

    /// The credential of a passwordless answer, the passkey it names and its account, when the
    /// answer is well formed and its user handle matches the passkey's account.
    async fn identify_passkey(
        &self,
        credential: &str,
    ) -> Result<Option<(PublicKeyCredential, PasskeyRecord, User)>, AuthError> {
        let Ok(credential) = serde_json::from_str::<PublicKeyCredential>(credential) else {
            return Ok(None);
        };
        let Ok((handle, raw_id)) = self
            .webauthn
            .identify_discoverable_authentication(&credential)
        else {
            return Ok(None);
        };
        let Some(record) = self
            .store
            .find_passkey_by_credential(&URL_SAFE_NO_PAD.encode(raw_id))
            .await?
        else {
            return Ok(None);
        };
        let Some(user) = self.store.find_user(&record.user_id).await? else {
            return Ok(None);
        };
        if handle != self.webauthn_user_id(&user.id) {
            return Ok(None);
        }
        Ok(Some((credential, record, user)))
    }

    /// Stores what an assertion's verification found (counter, backup flags, last use), or
    /// says why it was refused. Returns the passkey's `amr` value.
    async fn record_passkey_use(
        &self,
        ctx: &RequestContext,
        user: &User,
        record: &PasskeyRecord,
        mut passkey: Passkey,
        result: Result<AuthenticationResult, WebauthnError>,
        now: i64,
    ) -> Result<AuthMethod, AuthError> {
        let outcome = match result {
            Ok(outcome) if outcome.user_verified() => outcome,
            Ok(_) => return Err(AuthError::PasskeyFailed),
            Err(
                e @ (WebauthnError::CredentialPossibleCompromise
                | WebauthnError::CredentialBackupEligibilityInconsistent
                | WebauthnError::CredentialMayNotBeHardwareBound),
            ) => {
                tracing::warn!(
                    user.id = %user.id,
                    passkey.id = %record.id,
                    error = %e,
                    "passkey refused: its counter or backup flags contradict the stored ones"
                );
                self.audit(
                    ctx,
                    &user.id,
                    "mfa.passkey.suspicious",
                    &format!("passkey {:?}: {e}", record.name),
                    now,
                )
                .await?;
                return Err(AuthError::PasskeySuspicious);
            }
            Err(e) => {
                tracing::info!(user.id = %user.id, error = %e, "passkey assertion refused");
                return Err(AuthError::PasskeyFailed);
            }
        };
        passkey.update_credential(&outcome);
        let updated = serde_json::to_string(&passkey).map_err(|e| internal(&e))?;
        if !self
            .store
            .record_passkey_use(&record.id, &record.passkey, &updated, now)
            .await?
        {
            // Another assertion of this credential was recorded in between.
            return Err(AuthError::PasskeyFailed);
        }
        Ok(passkey_method(outcome.backup_eligible()))
    }

    // ------------------------------------------------------------ second factor

    /// Opens a passkey ceremony for a pending sign-in, offering the account's passkeys.
    pub async fn begin_passkey_second_factor(
        &self,
        pending_id: &str,
        now: i64,
    ) -> Result<PasskeyCeremony, AuthError> {
        let (pending, user) = self
            .live_flow_with_user(pending_id, CodePurpose::SecondFactor, now)
            .await?;
        let passkeys = self
            .store
            .list_passkeys(&user.id)
            .await?
            .iter()
            .map(Self::parse_passkey)
            .collect::<Result<Vec<_>, _>>()?;
        if passkeys.is_empty() {
            return Err(AuthError::PasskeyFailed);
        }
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| internal(&e))?;
        let options = serde_json::to_value(&options).map_err(|e| internal(&e))?;
        let id = self
            .save_ceremony(
                CodePurpose::PasskeySecondFactor,
                Some(&user),
                &Ceremony {
                    state,
                    pending_id: Some(pending.id),
                },
                now,
            )
            .await?;
        Ok(PasskeyCeremony { id, options })
    }

    /// Completes a pending sign-in with one of the account's passkeys, behind the same
    /// throttles as every other second factor.
    pub async fn verify_passkey_second_factor(
        &self,
        ctx: &RequestContext,
        pending_id: &str,
        ceremony_id: &str,
        credential: &str,
        now: i64,
    ) -> Result<SignedIn, AuthError> {
        let (pending, user) = self
            .live_flow_with_user(pending_id, CodePurpose::SecondFactor, now)
            .await?;
        match self
            .check_passkey_second_factor(ctx, &pending, &user, ceremony_id, credential, now)
            .await
        {
            Ok((passkey_id, factor)) => {
                self.complete_second_factor(
                    ctx,
                    &pending,
                    user,
                    Method::Passkey,
                    factor,
                    Some(&passkey_id),
                    now,
                )
                .await
            }
            Err(err @ AuthError::CodeDead) => Err(err),
            Err(err) => Err(self
                .refuse(ctx, &user.email, Some(&user.id), Method::Passkey, err, now)
                .await?),
        }
    }

    async fn check_passkey_second_factor(
        &self,
        ctx: &RequestContext,
        pending: &CodeRecord,
        user: &User,
        ceremony_id: &str,
        credential: &str,
        now: i64,
    ) -> Result<(String, AuthMethod), AuthError> {
        let ip = self.ip_gate(ctx, now).await?;
        let (subject, attempt) = self.claim_second_factor_attempt(pending, user, now).await?;
        let (_, ceremony) = self
            .take_ceremony::<PasskeyAuthentication>(
                ceremony_id,
                CodePurpose::PasskeySecondFactor,
                now,
            )
            .await?;
        if ceremony.pending_id.as_deref() != Some(pending.id.as_str()) {
            return Err(AuthError::CodeDead);
        }
        let parsed = serde_json::from_str::<PublicKeyCredential>(credential).ok();
        let record = match &parsed {
            Some(c) => self
                .store
                .find_passkey_by_credential(&URL_SAFE_NO_PAD.encode(c.get_credential_id()))
                .await?
                .filter(|r| r.user_id == user.id),
            None => None,
        };
        let (Some(credential), Some(record)) = (parsed, record) else {
            self.ip_failure(&ip, now).await?;
            self.second_factor_failed(ctx, user, attempt, now).await?;
            return Err(AuthError::PasskeyFailed);
        };
        let passkey = Self::parse_passkey(&record)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&credential, &ceremony.state);
        match self
            .record_passkey_use(ctx, user, &record, passkey, result, now)
            .await
        {
            Ok(factor) => {
                self.store.throttle_reset("second_factor", &subject).await?;
                Ok((record.id, factor))
            }
            Err(err) => {
                self.ip_failure(&ip, now).await?;
                self.second_factor_failed(ctx, user, attempt, now).await?;
                Err(err)
            }
        }
    }
}
