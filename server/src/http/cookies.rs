//! Every cookie Gatehouse sets is made here: `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure`
//! with the `__Host-` prefix whenever the public origin allows it.

use axum::http::header::{HeaderMap, COOKIE};
use axum::http::HeaderValue;

/// The session cookie.
pub const SESSION: &str = "gh_session";
/// The cookie that ties a browser to its code flow (sign-up, code sign-in, reset).
pub const FLOW: &str = "gh_flow";
/// The cookie that ties a browser to its round trip to a sign-in provider.
pub const EXTERNAL: &str = "gh_ext";
/// The cookie that ties a browser to a provider identity waiting to be linked to an account.
pub const LINK: &str = "gh_link";
/// The cookie that ties a browser to an application's authorization request waiting for the
/// person to sign in (or consent).
pub const AUTHORIZE: &str = "gh_authz";
/// A random id per browser, kept for 400 days: a sign-in from a browser the account has not
/// used before is told to its owner.
pub const DEVICE: &str = "gh_device";
/// The device cookie's lifetime (the most browsers allow).
pub const DEVICE_MAX_AGE_S: i64 = 400 * 24 * 60 * 60;
/// The cookie that ties a browser to a sign-in waiting for its second factor.
pub const PENDING_SIGN_IN: &str = "gh_mfa";
/// The cookie that ties a signed-in browser to its email change waiting for the new
/// address's code.
pub const EMAIL_CHANGE: &str = "gh_email";

#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_string()
        }
    }

    /// `Set-Cookie` for a value that lives `max_age_s` seconds (a session cookie when `None`).
    pub fn set(&self, base: &str, value: &str, max_age_s: Option<i64>) -> HeaderValue {
        let mut c = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax",
            self.name(base),
            value
        );
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age_s {
            c.push_str(&format!("; Max-Age={age}"));
        }
        // Values are base64url tokens made by us; nothing user-supplied reaches this header.
        HeaderValue::from_str(&c)
            .unwrap_or_else(|_| HeaderValue::from_static("gh_invalid=; Max-Age=0"))
    }

    pub fn clear(&self, base: &str) -> HeaderValue {
        self.set(base, "", Some(0))
    }

    /// Reads a cookie set by [`CookiePolicy::set`]. Only base64url values are accepted.
    pub fn read(&self, headers: &HeaderMap, base: &str) -> Option<String> {
        let name = self.name(base);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let p = CookiePolicy { secure: true };
        let v = p.set(SESSION, "abc", None);
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-gh_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let insecure = CookiePolicy { secure: false };
        assert_eq!(
            insecure.set(FLOW, "x", Some(60)).to_str().unwrap(),
            "gh_flow=x; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }

    #[test]
    fn reads_only_well_formed_values() {
        let p = CookiePolicy { secure: true };
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-gh_session=tok_EN-1; gh_session=plain"),
        );
        assert_eq!(p.read(&h, SESSION).as_deref(), Some("tok_EN-1"));
        let mut bad = HeaderMap::new();
        bad.insert(COOKIE, HeaderValue::from_static("__Host-gh_session=a%20b"));
        assert_eq!(p.read(&bad, SESSION), None);
    }
}
