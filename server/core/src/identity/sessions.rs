//! Sessions after they exist: finding the live one behind a cookie, listing them, and ending
//! them. Ending sessions is one operation here, and it always tells the applications that
//! signed in with them (back-channel logout) before they end, so no way of ending a session
//! (sign-out, RP logout, "sign out everywhere", a password change or reset, a removed method,
//! an admin action, an undone email change, a deleted account) can forget to.

use super::backchannel::LogoutNotice;
use super::{AuthError, Identity, TOUCH_GRANULARITY_MS};
use crate::store::{Session, User};
use crate::tokens::token_hash;

/// Where the logout tokens of ending sessions go. The server sends them over HTTP in the
/// background; delivery never holds up the request that ended the sessions.
pub trait LogoutDelivery: Send + Sync {
    fn deliver(&self, notices: Vec<LogoutNotice>);
}

/// No delivery (a command-line run, or a test that does not look).
pub(super) struct NoLogoutDelivery;

impl LogoutDelivery for NoLogoutDelivery {
    fn deliver(&self, _: Vec<LogoutNotice>) {}
}

/// Which of an account's sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsToEnd<'a> {
    /// One session, by id.
    One(&'a str),
    /// Every session.
    All,
    /// Every session but this one (the one that changed the password).
    AllBut(&'a str),
    /// Every session completed with this second factor (it was removed).
    CompletedWith(&'a str),
}

impl SessionsToEnd<'_> {
    fn includes(&self, session: &Session) -> bool {
        match self {
            SessionsToEnd::One(id) => session.id == *id,
            SessionsToEnd::All => true,
            SessionsToEnd::AllBut(id) => session.id != *id,
            SessionsToEnd::CompletedWith(factor) => {
                session.second_factor_id.as_deref() == Some(*factor)
            }
        }
    }
}

impl Identity {
    /// The live session behind a cookie token, if any; records activity.
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<(Session, User)>, AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let found = self
            .store
            .find_live_session(&token_hash(token), self.config.session_idle_ms, now)
            .await?;
        if let Some((session, _)) = &found {
            self.store
                .touch_session(&session.id, TOUCH_GRANULARITY_MS, now)
                .await?;
        }
        Ok(found)
    }

    /// Ends the session behind a cookie token (sign-out, RP-initiated logout).
    pub async fn sign_out(&self, token: &str, now: i64) -> Result<(), AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(());
        }
        let hash = token_hash(token);
        if let Some((session, user)) = self
            .store
            .find_live_session(&hash, self.config.session_idle_ms, now)
            .await?
        {
            self.end_sessions(&user.id, SessionsToEnd::One(&session.id), now)
                .await?;
        }
        // A session past its idle time is no one's any more; its row goes too.
        self.store.delete_session_by_token_hash(&hash).await?;
        Ok(())
    }

    pub async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, AuthError> {
        Ok(self.store.list_sessions(user_id, now).await?)
    }

    /// Ends one of the user's own sessions. Returns false when there is no such session.
    pub async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        now: i64,
    ) -> Result<bool, AuthError> {
        Ok(self
            .end_sessions(user_id, SessionsToEnd::One(session_id), now)
            .await?
            > 0)
    }

    /// Ends every session of the user, the current one included.
    pub async fn revoke_all_sessions(&self, user_id: &str, now: i64) -> Result<u64, AuthError> {
        self.end_sessions(user_id, SessionsToEnd::All, now).await
    }

    /// Ends `which` sessions of an account: the logout tokens for the applications that signed
    /// in with them are made first, then the sessions end, then the tokens are handed to the
    /// delivery. Returns how many sessions ended.
    pub async fn end_sessions(
        &self,
        user_id: &str,
        which: SessionsToEnd<'_>,
        now: i64,
    ) -> Result<u64, AuthError> {
        let ending: Vec<Session> = self
            .store
            .session_rows(user_id, now)
            .await?
            .into_iter()
            .filter(|s| which.includes(s))
            .collect();
        let mut notices = Vec::new();
        for session in &ending {
            match self.logout_notices(&session.id, user_id, now).await {
                Ok(mut made) => notices.append(&mut made),
                // The sessions end whatever happens to the notices.
                Err(e) => tracing::warn!(error = %e, "back-channel logout tokens not made"),
            }
        }
        let ended = match which {
            SessionsToEnd::One(id) => u64::from(self.store.delete_session(user_id, id).await?),
            SessionsToEnd::All => self.store.delete_other_sessions(user_id, None).await?,
            SessionsToEnd::AllBut(id) => {
                self.store.delete_other_sessions(user_id, Some(id)).await?
            }
            SessionsToEnd::CompletedWith(factor) => {
                self.store
                    .delete_sessions_with_second_factor(user_id, factor)
                    .await?
            }
        };
        if !notices.is_empty() {
            self.logout.deliver(notices);
        }
        Ok(ended)
    }
}
