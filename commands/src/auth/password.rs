//! argon2id password hashing, on a few threads of its own.
//!
//! Each hash allocates 19 MiB. On tokio's blocking pool, that memory would
//! stay cached in the allocator arena of every pool thread that ever hashed
//! (tens of threads, hundreds of MiB resident); a fixed set of one thread
//! per core bounds it, and hashing is CPU-bound anyway.

use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use tokio::sync::oneshot;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Hashes and verifies passwords without blocking the async workers, one
/// per core at a time, so a burst of logins cannot exhaust memory.
#[derive(Clone)]
pub struct Hasher {
    dummy: Arc<String>,
    workers: Arc<Workers>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs from one queue; they end when the
/// last handle is dropped.
struct Workers {
    queue: mpsc::Sender<Job>,
}

impl Workers {
    fn new(n: usize) -> Self {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..n {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match jobs.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "password hashing thread not started");
            }
        }
        Workers { queue }
    }

    /// Runs `f` on a worker; `None` when no worker is left.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }
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
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            dummy: Arc::new(dummy),
            workers: Arc::new(Workers::new(cores)),
        }
    }

    /// Hashes a password with a fresh salt.
    ///
    /// # Errors
    /// When hashing fails or no hashing thread is left.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.workers
            .run(move || hash_now(&password))
            .await
            .ok_or_else(|| HashError("no hashing thread".into()))?
    }

    /// Verifies a password against a stored hash; with no hash, verifies
    /// against the dummy so that the answer takes as long, and is false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        let ok = self.workers.run(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        });
        ok.await.unwrap_or(false) && real
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
