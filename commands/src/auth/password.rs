//! argon2id password hashing, on tokio's blocking pool.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use tokio::sync::Semaphore;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Hashes and verifies passwords without blocking the async workers, at most
/// a few at a time so a burst of logins cannot exhaust memory.
#[derive(Clone)]
pub struct Hasher {
    dummy: Arc<String>,
    limit: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The hashing failed (should not happen with valid parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

impl Hasher {
    /// A hasher with a dummy hash for unknown users.
    pub fn new() -> Self {
        let dummy = hash_now("not a password of anyone's").unwrap_or_default();
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        Hasher {
            dummy: Arc::new(dummy),
            limit: Arc::new(Semaphore::new(parallel)),
        }
    }

    /// Hashes a password with a fresh salt.
    ///
    /// # Errors
    /// When hashing fails or the blocking pool is gone.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| HashError(e.to_string()))?
    }

    /// Verifies a password against a stored hash; with no hash, verifies
    /// against the dummy so that the answer takes as long, and is false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.limit.acquire().await else {
            return false;
        };
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = Hasher::new();
        let hash = h.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify("correct horse".into(), Some(hash.clone())).await);
        assert!(!h.verify("wrong horse".into(), Some(hash)).await);
        assert!(!h.verify("not a password of anyone's".into(), None).await);
    }
}
