//! argon2id password hashing, on a few threads of its own, behind a
//! bounded queue (admission control).
//!
//! Each hash allocates 19 MiB. On tokio's blocking pool, that memory would
//! stay cached in the allocator arena of every pool thread that ever hashed
//! (tens of threads, hundreds of MiB resident); a fixed set of one thread
//! per core bounds it, and hashing is CPU-bound anyway.
//!
//! The queue in front of them is bounded (`FORUM_HASH_QUEUE`, 16 jobs by
//! default per process, so a job waits at most about eight hashes, a few
//! hundred milliseconds, on two cores): when it is full a job is refused at once
//! ([`Refused::Busy`], answered `503 unavailable` with `Retry-After`), so a
//! flood of logins costs at most the queue's length of hashes beyond what
//! the threads are doing, and nothing waits behind an ever-growing backlog.
//! A job carries its caller's deadline: a thread that takes a job whose
//! caller has stopped waiting drops it unhashed ([`Refused::Expired`]), so
//! the CPU goes idle as soon as the flood ends. Nothing but hashing goes
//! through this queue: logouts and every other command never wait on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use tokio::sync::oneshot;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// How many jobs wait for a hashing thread by default (`FORUM_HASH_QUEUE`).
pub const DEFAULT_QUEUE: usize = 16;

/// Hashes and verifies passwords without blocking the async workers, one
/// per core at a time, so a burst of logins cannot exhaust memory.
#[derive(Clone)]
pub struct Hasher {
    dummy: Arc<String>,
    workers: Arc<Workers>,
}

/// Why a password was not hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The queue is full: try again shortly.
    #[error("the password hashing queue is full")]
    Busy,
    /// The caller's deadline passed before a thread took the job.
    #[error("the caller's deadline passed before hashing began")]
    Expired,
    /// No hashing thread is left (should not happen).
    #[error("no password hashing thread")]
    NoWorker,
}

/// A queued job: runs the hash, or is told its deadline has passed.
type Job = Box<dyn FnOnce(bool) + Send>;

/// A fixed set of threads taking jobs from one bounded queue; they end when
/// the last handle is dropped.
struct Workers {
    queue: mpsc::SyncSender<(Option<Instant>, Job)>,
    /// Jobs refused because the queue was full, and dropped unhashed
    /// because their deadline had passed (for tests and logs).
    busy: AtomicU64,
    expired: Arc<AtomicU64>,
}

impl Workers {
    fn new(n: usize, queue: usize) -> Self {
        let (tx, jobs) = mpsc::sync_channel::<(Option<Instant>, Job)>(queue);
        let jobs = Arc::new(Mutex::new(jobs));
        let expired = Arc::new(AtomicU64::new(0));
        for i in 0..n {
            let jobs = jobs.clone();
            let expired = expired.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((deadline, job)) = next else { return };
                    let late = deadline.is_some_and(|d| d <= Instant::now());
                    if late {
                        expired.fetch_add(1, Ordering::Relaxed);
                    }
                    job(!late);
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "password hashing thread not started");
            }
        }
        Workers {
            queue: tx,
            busy: AtomicU64::new(0),
            expired,
        }
    }

    /// Runs `f` on a worker unless the queue is full or `deadline` passes
    /// before a worker takes it.
    async fn run<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |run| {
            let _ = tx.send(if run { Ok(f()) } else { Err(Refused::Expired) });
        });
        match self.queue.try_send((deadline, job)) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                self.busy.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::Busy);
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(Refused::NoWorker),
        }
        rx.await.unwrap_or(Err(Refused::NoWorker))
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The hashing failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Refused before hashing (queue full, deadline passed).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// argon2 failed (should not happen with valid parameters).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

impl Hasher {
    /// A hasher with a dummy hash for unknown users and the default queue.
    pub fn new() -> Self {
        Self::with_queue(DEFAULT_QUEUE)
    }

    /// A hasher whose queue holds at most `queue` waiting jobs (at least 1).
    pub fn with_queue(queue: usize) -> Self {
        let dummy = hash_now("not a password of anyone's").unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            dummy: Arc::new(dummy),
            workers: Arc::new(Workers::new(cores, queue.max(1))),
        }
    }

    /// Hashes a password with a fresh salt, unless the caller's `deadline`
    /// passes before a thread takes the job.
    ///
    /// # Errors
    /// When the queue is full, the deadline passed, or hashing fails.
    pub async fn hash(
        &self,
        password: String,
        deadline: Option<Instant>,
    ) -> Result<String, HashError> {
        self.workers
            .run(deadline, move || hash_now(&password))
            .await?
    }

    /// Verifies a password against a stored hash; with no hash, verifies
    /// against the dummy so that the answer takes as long, and is false.
    ///
    /// # Errors
    /// When the queue is full or the deadline passed (nothing was hashed).
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
        deadline: Option<Instant>,
    ) -> Result<bool, Refused> {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.to_string());
        let ok = self
            .workers
            .run(deadline, move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        argon2()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && real)
    }

    /// (jobs refused because the queue was full, jobs dropped unhashed
    /// because their deadline had passed) since start.
    pub fn refusals(&self) -> (u64, u64) {
        (
            self.workers.busy.load(Ordering::Relaxed),
            self.workers.expired.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = Hasher::new();
        let hash = h.hash("correct horse".into(), None).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            h.verify("correct horse".into(), Some(hash.clone()), None)
                .await,
            Ok(true)
        );
        assert_eq!(
            h.verify("wrong horse".into(), Some(hash), None).await,
            Ok(false)
        );
        assert_eq!(
            h.verify("not a password of anyone's".into(), None, None)
                .await,
            Ok(false)
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_late_job_is_not_hashed() {
        let h = Hasher::with_queue(1);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Far more jobs than threads plus queue, all at once: some are
        // refused without waiting.
        let jobs: Vec<_> = (0..cores + 8)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.verify("x".into(), None, None).await })
            })
            .collect();
        let mut busy = 0;
        for j in jobs {
            match j.await.expect("join") {
                Err(Refused::Busy) => busy += 1,
                Ok(false) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(busy >= 1, "no job was refused");
        assert_eq!(h.refusals().0, busy);
        // A job whose deadline has passed is dropped when a thread takes it.
        let past = Instant::now();
        assert_eq!(
            h.verify("x".into(), None, Some(past)).await,
            Err(Refused::Expired)
        );
        assert_eq!(h.refusals().1, 1);
    }
}
