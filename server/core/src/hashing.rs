//! Argon2id password hashing (19 MiB, t=2, p=1) on a bounded pool.
//!
//! Each hash takes tens of milliseconds of one core and 19 MiB of memory, so hashing runs off the
//! async executor with at most one hash per core at a time. Requests beyond a bounded queue are
//! refused at once with [`HashError::Overloaded`] (the server answers 503 with `Retry-After`)
//! instead of piling up and exhausting memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::password::normalize_password;
use crate::secret::SecretString;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("too many password checks in progress")]
    Overloaded,
    #[error("password hashing failed")]
    Failed,
}

struct Inner {
    permits: Arc<Semaphore>,
    /// How long checks waited for a permit (seconds), for the metrics.
    waits: prometheus::Histogram,
    queued: AtomicUsize,
    max_queued: usize,
    wait_limit: Duration,
    params: Params,
    dummy_hash: String,
}

/// A place in the hashing queue, given back when dropped.
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<Self> {
        let slot = QueueSlot(queued);
        (queued.fetch_add(1, Ordering::SeqCst) < max).then_some(slot)
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The bounded Argon2id pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("max_queued", &self.inner.max_queued)
            .finish()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_now(params: &Params, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)
        .hash_password(normalize_password(password).as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError::Failed)
}

impl PasswordHasher {
    /// `workers` hashes run at once (one per core); up to `max_queued` more wait, each at most
    /// `wait_limit`.
    pub fn new(workers: usize, max_queued: usize, wait_limit: Duration) -> Result<Self, HashError> {
        // OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1.
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|_| HashError::Failed)?;
        let dummy_hash = hash_now(&params, "dummy password for unknown accounts")?;
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(workers.max(1))),
                waits: crate::metrics::hash_wait_histogram(),
                queued: AtomicUsize::new(0),
                max_queued: max_queued.max(1),
                wait_limit,
                params,
                dummy_hash,
            }),
        })
    }

    /// One worker per available core.
    pub fn for_this_machine() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::new(cores, cores * 32, Duration::from_secs(5))
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Params) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let inner = &self.inner;
        // The queue slot is released by a guard, so a request dropped while it waits (client
        // gone, request timeout) cannot leak it.
        let slot = QueueSlot::take(&inner.queued, inner.max_queued).ok_or(HashError::Overloaded)?;
        let started = std::time::Instant::now();
        let permit =
            tokio::time::timeout(inner.wait_limit, inner.permits.clone().acquire_owned()).await;
        inner.waits.observe(started.elapsed().as_secs_f64());
        drop(slot);
        let permit = match permit {
            Ok(Ok(p)) => p,
            _ => return Err(HashError::Overloaded),
        };
        let params = inner.params.clone();
        // The permit travels with the job: if the request is dropped, the core stays counted as
        // busy until the hash really ends.
        tokio::task::spawn_blocking(move || {
            let result = job(&params);
            drop(permit);
            result
        })
        .await
        .map_err(|_| HashError::Failed)
    }

    /// Password checks waiting for a hashing slot now.
    pub fn queue_depth(&self) -> usize {
        self.inner.queued.load(Ordering::SeqCst)
    }

    /// The histogram of waits for a hashing slot.
    pub fn wait_histogram(&self) -> prometheus::Histogram {
        self.inner.waits.clone()
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move |params| hash_now(params, password.expose()))
            .await?
    }

    /// Verifies `password` against `stored`. With no stored hash (unknown account, or an
    /// account without a password) a dummy hash is verified instead, so both cost the same.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let password = password.clone();
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.inner.dummy_hash).to_string();
        let ok = self
            .run(move |params| {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return false;
                };
                argon2(params)
                    .verify_password(normalize_password(password.expose()).as_bytes(), &parsed)
                    .is_ok()
            })
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_exactly() {
        let h = PasswordHasher::new(2, 8, Duration::from_secs(5)).unwrap();
        let pw = SecretString::new("correct horse battery");
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(&pw, Some(&stored)).await.unwrap());
        for wrong in [
            "Correct horse battery",
            "correct horse battery ",
            "correct horse batter",
        ] {
            assert!(
                !h.verify(&SecretString::new(wrong), Some(&stored))
                    .await
                    .unwrap(),
                "{wrong}"
            );
        }
        // Unknown account: the dummy hash is checked and the answer is always no.
        assert!(!h.verify(&pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn any_unicode_password_verifies_against_its_own_hash() {
        use rand::{Rng, SeedableRng};
        let h = PasswordHasher::new(2, 64, Duration::from_secs(30)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let pool: Vec<char> = "aZ9 ~ÅéﬁⅣ①ｶﾞ가\u{301}ßΣς😀👩\u{200d}💻\u{fe0f}\t\u{a0}"
            .chars()
            .collect();
        for _ in 0..12 {
            let len = rng.gen_range(1..1000);
            let p: String = (0..len)
                .map(|_| pool[rng.gen_range(0..pool.len())])
                .collect();
            let secret = SecretString::new(p.clone());
            let stored = h.hash(&secret).await.unwrap();
            assert!(h.verify(&secret, Some(&stored)).await.unwrap(), "{p:?}");
            let mut other = p.clone();
            other.push('x');
            assert!(!h
                .verify(&SecretString::new(other), Some(&stored))
                .await
                .unwrap());
        }
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let h = PasswordHasher::new(1, 8, Duration::from_secs(5)).unwrap();
        let long = "a".repeat(200);
        let stored = h.hash(&SecretString::new(long.clone())).await.unwrap();
        assert!(!h
            .verify(&SecretString::new(long[..72].to_string()), Some(&stored))
            .await
            .unwrap());
        assert!(h
            .verify(&SecretString::new(long), Some(&stored))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn abandoned_requests_give_their_queue_place_back() {
        let h = PasswordHasher::new(1, 2, Duration::from_secs(30)).unwrap();
        let pw = SecretString::new("some long password");
        for _ in 0..20 {
            // Start a hash and abandon it at once, as a disconnected client does.
            let fut = h.hash(&pw);
            let _ = tokio::time::timeout(Duration::from_millis(1), fut).await;
        }
        assert_eq!(h.inner.queued.load(Ordering::SeqCst), 0);
        assert!(h.hash(&pw).await.is_ok(), "the pool still serves");
    }

    #[tokio::test]
    async fn excess_load_is_refused_not_queued_forever() {
        let h = PasswordHasher::new(1, 1, Duration::from_secs(30)).unwrap();
        let pw = SecretString::new("some long password");
        let (a, b, c) = tokio::join!(h.hash(&pw), h.hash(&pw), h.hash(&pw));
        let refused = [&a, &b, &c]
            .iter()
            .filter(|r| matches!(r, Err(HashError::Overloaded)))
            .count();
        assert!(
            refused >= 1,
            "at least one of three must be shed with one worker and one queue slot"
        );
        assert!([&a, &b, &c].iter().any(|r| r.is_ok()));
    }
}
