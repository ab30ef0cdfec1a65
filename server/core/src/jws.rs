//! Token signing keys and compact JWS (RFC 7515): ES256 (the default), EdDSA (Ed25519) and
//! RS256. Keys are generated here, kept sealed in the database, and published as a JWK set.
//! Only asymmetric algorithms exist: nothing can be signed or accepted with `none` or HMAC.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

/// A signing algorithm Gatehouse offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Es256,
    EdDsa,
    Rs256,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Es256, Alg::EdDsa, Alg::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("the key could not be generated or read")]
    Key,
    #[error("the token is malformed")]
    Malformed,
    #[error("the signature does not verify")]
    BadSignature,
}

enum Material {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
}

/// A private signing key with its key id. `Debug` shows only the id and algorithm.
pub struct SigningKey {
    kid: String,
    material: Material,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// A new random key.
    pub fn generate(alg: Alg, kid: String) -> Result<SigningKey, JwsError> {
        let material = match alg {
            Alg::Es256 => Material::Es256(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
            Alg::EdDsa => {
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                Material::EdDsa(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            Alg::Rs256 => Material::Rs256(Box::new(
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|_| JwsError::Key)?,
            )),
        };
        Ok(SigningKey { kid, material })
    }

    /// The private key as bytes, for sealing (P-256 and Ed25519 scalars; RSA as PKCS#8 DER).
    pub fn to_private_bytes(&self) -> Result<Vec<u8>, JwsError> {
        match &self.material {
            Material::Es256(k) => Ok(k.to_bytes().to_vec()),
            Material::EdDsa(k) => Ok(k.to_bytes().to_vec()),
            Material::Rs256(k) => {
                use rsa::pkcs8::EncodePrivateKey;
                Ok(k.to_pkcs8_der()
                    .map_err(|_| JwsError::Key)?
                    .as_bytes()
                    .to_vec())
            }
        }
    }

    pub fn from_private_bytes(alg: Alg, kid: String, bytes: &[u8]) -> Result<Self, JwsError> {
        let material = match alg {
            Alg::Es256 => Material::Es256(
                p256::ecdsa::SigningKey::from_slice(bytes).map_err(|_| JwsError::Key)?,
            ),
            Alg::EdDsa => {
                let seed: [u8; 32] = bytes.try_into().map_err(|_| JwsError::Key)?;
                Material::EdDsa(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            Alg::Rs256 => {
                use rsa::pkcs8::DecodePrivateKey;
                Material::Rs256(Box::new(
                    rsa::RsaPrivateKey::from_pkcs8_der(bytes).map_err(|_| JwsError::Key)?,
                ))
            }
        };
        Ok(SigningKey { kid, material })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Alg {
        match self.material {
            Material::Es256(_) => Alg::Es256,
            Material::EdDsa(_) => Alg::EdDsa,
            Material::Rs256(_) => Alg::Rs256,
        }
    }

    /// The public half as a JWK (with `kid`, `alg` and `use: sig`).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.material {
            Material::Es256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": point.x().map(|x| b64(x)).unwrap_or_default(),
                    "y": point.y().map(|y| b64(y)).unwrap_or_default(),
                })
            }
            Material::EdDsa(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(k.verifying_key().as_bytes()),
            }),
            Material::Rs256(k) => {
                use rsa::traits::PublicKeyParts;
                json!({
                    "kty": "RSA",
                    "n": b64(&k.n().to_bytes_be()),
                    "e": b64(&k.e().to_bytes_be()),
                })
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg().as_str());
        jwk["use"] = json!("sig");
        jwk
    }

    fn sign_bytes(&self, input: &[u8]) -> Result<Vec<u8>, JwsError> {
        match &self.material {
            Material::Es256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(input);
                Ok(sig.to_bytes().to_vec())
            }
            Material::EdDsa(k) => {
                use ed25519_dalek::Signer;
                Ok(k.sign(input).to_bytes().to_vec())
            }
            Material::Rs256(k) => {
                use rsa::signature::{SignatureEncoding, Signer};
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
                let sig = signer.try_sign(input).map_err(|_| JwsError::Key)?;
                Ok(sig.to_vec())
            }
        }
    }

    fn verify_bytes(&self, input: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Es256(k) => {
                use p256::ecdsa::signature::Verifier;
                match p256::ecdsa::Signature::from_slice(sig) {
                    Ok(s) => k.verifying_key().verify(input, &s).is_ok(),
                    Err(_) => false,
                }
            }
            Material::EdDsa(k) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => k.verifying_key().verify_strict(input, &s).is_ok(),
                Err(_) => false,
            },
            Material::Rs256(k) => {
                use rsa::signature::Verifier;
                let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.to_public_key());
                match rsa::pkcs1v15::Signature::try_from(sig) {
                    Ok(s) => verifier.verify(input, &s).is_ok(),
                    Err(_) => false,
                }
            }
        }
    }

    /// A compact JWS of `claims` with header `{alg, kid, typ}`.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, JwsError> {
        let header = json!({ "alg": self.alg().as_str(), "kid": self.kid, "typ": typ });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign_bytes(input.as_bytes())?;
        Ok(format!("{input}.{}", b64(&sig)))
    }

    /// Verifies a compact JWS made by this key (same `kid` and `alg` in its header) and returns
    /// its claims. Expiry is the caller's business.
    pub fn verify(&self, token: &str) -> Result<Value, JwsError> {
        let header = jws_header(token)?;
        if header.get("kid").and_then(Value::as_str) != Some(self.kid.as_str())
            || header.get("alg").and_then(Value::as_str) != Some(self.alg().as_str())
        {
            return Err(JwsError::BadSignature);
        }
        let (input, sig) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| JwsError::Malformed)?;
        if !self.verify_bytes(input.as_bytes(), &sig) {
            return Err(JwsError::BadSignature);
        }
        let payload = input.split('.').nth(1).ok_or(JwsError::Malformed)?;
        decode_json(payload)
    }
}

fn decode_json(part: &str) -> Result<Value, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(JwsError::Malformed)
    }
}

/// The (unverified) header of a compact JWS: to find the key to verify it with.
pub fn jws_header(token: &str) -> Result<Value, JwsError> {
    if token.len() > 16 * 1024 {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    decode_json(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_verifies_and_round_trips() {
        for alg in Alg::ALL {
            let key = SigningKey::generate(alg, format!("k-{}", alg.as_str())).unwrap();
            let token = key.sign("JWT", &json!({"sub": "u1"})).unwrap();
            assert_eq!(key.verify(&token).unwrap()["sub"], "u1");
            let header = jws_header(&token).unwrap();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["kid"], key.kid());

            let bytes = key.to_private_bytes().unwrap();
            let again = SigningKey::from_private_bytes(alg, key.kid().into(), &bytes).unwrap();
            assert_eq!(again.public_jwk(), key.public_jwk());
            assert!(again.verify(&token).is_ok());

            // A changed payload, a stripped signature and alg=none are refused.
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = b64(br#"{"sub":"admin"}"#);
            parts[1] = &forged;
            assert!(key.verify(&parts.join(".")).is_err());
            let unsigned = format!("{}.{}.", parts[0], parts[1]);
            assert!(key.verify(&unsigned).is_err());
            let none_header = b64(br#"{"alg":"none","kid":"k"}"#);
            assert!(key.verify(&format!("{none_header}.{forged}.")).is_err());
        }
    }

    #[test]
    fn a_key_does_not_verify_another_keys_tokens() {
        let a = SigningKey::generate(Alg::Es256, "a".into()).unwrap();
        let b = SigningKey::generate(Alg::Es256, "a".into()).unwrap();
        let token = a.sign("JWT", &json!({"x": 1})).unwrap();
        assert!(b.verify(&token).is_err());
        assert!(format!("{a:?}").contains("kid"));
        assert!(!format!("{a:?}").contains(&b64(&a.to_private_bytes().unwrap())));
    }
}
