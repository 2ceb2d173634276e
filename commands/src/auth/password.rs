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
//!
//! The 19 MiB of a hash are not allocated per hash: a thread takes a buffer
//! from a shared stock and gives it back after the job, and the whole stock
//! is freed once no job has come for [`KEEP_MEMORY`]. A flood of logins
//! thus reuses at most one buffer per thread (a fresh buffer per hash cost
//! its mapping and page faults, 14 ms of CPU more per registration on the
//! 2-core development machine, half as much again), and an idle process
//! holds none. A freed buffer goes back to the system only because the
//! `forum` binary fixes glibc's mmap threshold at start
//! (`src/allocator.rs`); otherwise glibc keeps it in an arena.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    self, rand_core::OsRng, Output, ParamsString, PasswordHash, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// How many jobs wait for a hashing thread by default (`FORUM_HASH_QUEUE`).
pub const DEFAULT_QUEUE: usize = 16;

/// How long the hashing buffers are kept once no job comes: long enough
/// for the next login of a burst, short enough that an idle process holds
/// none of their 19 MiB each.
pub const KEEP_MEMORY: Duration = Duration::from_secs(2);

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

/// A queued job: runs the hash in the memory it is given, or is given none
/// because its deadline has passed.
type Job = Box<dyn FnOnce(Option<&mut Memory>) + Send>;

/// The working memory of one hash (grown to the parameters' size on use).
type Memory = Vec<Block>;

/// The buffers of the threads between jobs; all freed after
/// [`KEEP_MEMORY`] without a job.
#[derive(Default)]
struct Stock(Mutex<Vec<Memory>>);

impl Stock {
    fn take(&self) -> Memory {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, memory: Memory) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(memory);
    }

    fn free(&self) {
        let freed = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        // Unmapped outside the lock.
        drop(freed);
    }

    /// How many buffers are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A fixed set of threads taking jobs from one bounded queue; they end when
/// the last handle is dropped.
struct Workers {
    queue: mpsc::SyncSender<(Option<Instant>, Job)>,
    /// Jobs refused because the queue was full, and dropped unhashed
    /// because their deadline had passed (for tests and logs).
    busy: AtomicU64,
    expired: Arc<AtomicU64>,
    /// The threads' buffers (for tests).
    #[cfg(test)]
    stock: Arc<Stock>,
}

impl Workers {
    fn new(n: usize, queue: usize, keep: Duration) -> Self {
        let (tx, jobs) = mpsc::sync_channel::<(Option<Instant>, Job)>(queue);
        let jobs = Arc::new(Mutex::new(jobs));
        let expired = Arc::new(AtomicU64::new(0));
        let stock = Arc::new(Stock::default());
        for i in 0..n {
            let (jobs, expired, stock) = (jobs.clone(), expired.clone(), stock.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    // One thread at a time waits on the queue, never longer
                    // than `keep`: a wait that long means every buffer in
                    // the stock is idle.
                    let next = jobs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .recv_timeout(keep);
                    let (deadline, job) = match next {
                        Ok(next) => next,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            stock.free();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        expired.fetch_add(1, Ordering::Relaxed);
                        job(None);
                    } else {
                        let mut memory = stock.take();
                        job(Some(&mut memory));
                        stock.give(memory);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "password hashing thread not started");
            }
        }
        Workers {
            queue: tx,
            busy: AtomicU64::new(0),
            expired,
            #[cfg(test)]
            stock,
        }
    }

    /// Runs `f` on a worker, in that worker's memory, unless the queue is
    /// full or `deadline` passes before a worker takes it.
    async fn run<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = tx.send(memory.map(f).ok_or(Refused::Expired));
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

const ALGORITHM: Algorithm = Algorithm::Argon2id;
const VERSION: Version = Version::V0x13;

fn params() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default()
}

/// `password` hashed with a fresh salt, in `memory`, as a PHC string.
fn hash_in(password: &str, memory: &mut Memory) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let params = params();
    let failed = |e: password_hash::Error| HashError::Failed(e.to_string());
    let output = compute(
        &Argon2::new(ALGORITHM, VERSION, params.clone()),
        password.as_bytes(),
        salt.as_salt(),
        memory,
    )
    .map_err(failed)?;
    let hash = PasswordHash {
        algorithm: ALGORITHM.ident(),
        version: Some(VERSION.into()),
        params: ParamsString::try_from(&params).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` is the one of the PHC string `hash`, computed in
/// `memory` with the hash's own algorithm, version and parameters, and
/// compared in constant time (as `argon2`'s `PasswordVerifier` does).
fn verify_in(password: &str, hash: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    compute(&argon, password.as_bytes(), salt, memory).is_ok_and(|output| output == expected)
}

/// The output of `argon` for `password` and `salt`, computed in `memory`
/// (grown if the parameters need more blocks): what
/// `PasswordHasher::hash_password` computes, without allocating its 19 MiB.
fn compute(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    memory: &mut Memory,
) -> password_hash::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let params = argon.params();
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(len, |out| {
        Ok(argon.hash_password_into_with_memory(password, salt, out, &mut memory[..])?)
    })
}

impl Hasher {
    /// A hasher with a dummy hash for unknown users and the default queue.
    pub fn new() -> Self {
        Self::with_queue(DEFAULT_QUEUE)
    }

    /// A hasher whose queue holds at most `queue` waiting jobs (at least 1).
    pub fn with_queue(queue: usize) -> Self {
        Self::with_queue_and_keep(queue, KEEP_MEMORY)
    }

    fn with_queue_and_keep(queue: usize, keep: Duration) -> Self {
        let dummy = hash_in("not a password of anyone's", &mut Memory::new()).unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            dummy: Arc::new(dummy),
            workers: Arc::new(Workers::new(cores, queue.max(1), keep)),
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
            .run(deadline, move |memory| hash_in(&password, memory))
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
            .run(deadline, move |memory| verify_in(&password, &hash, memory))
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

    #[test]
    fn hashes_made_in_reused_memory_are_those_of_the_argon2_crate() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut memory = Memory::new();
        // Ours, checked by the crate's verifier.
        let ours = hash_in("correct horse", &mut memory).expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        let argon = Argon2::new(ALGORITHM, VERSION, params());
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"wrong horse", &parsed).is_err());
        // The crate's, with other parameters (fewer blocks than the memory
        // now holds), checked here in the same memory.
        let small = Params::new(64, 1, 1, None).expect("params");
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(ALGORITHM, VERSION, small)
            .hash_password(b"battery staple", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_in("battery staple", &theirs, &mut memory));
        assert!(!verify_in("battery stapler", &theirs, &mut memory));
        assert!(verify_in("correct horse", &ours, &mut memory));
        assert!(!verify_in("correct horse", "not a phc string", &mut memory));
    }

    #[tokio::test]
    async fn hashing_memory_is_kept_through_a_burst_and_freed_when_idle() {
        let keep = Duration::from_secs(1);
        let h = Hasher::with_queue_and_keep(4, keep);
        let stock = h.workers.stock.clone();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..3 {
            assert_eq!(h.verify("x".into(), None, None).await, Ok(false));
            // The thread gives its buffer back just after it answers, and
            // the stock is freed no sooner than `keep` after the job began.
            let deadline = Instant::now() + keep * 2 / 5;
            while stock.len() == 0 {
                assert!(Instant::now() < deadline, "the buffer was not kept");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(stock.len() <= cores);
        }
        let deadline = Instant::now() + 10 * keep;
        while stock.len() > 0 {
            assert!(
                Instant::now() < deadline,
                "the buffers were kept while idle"
            );
            tokio::time::sleep(keep / 10).await;
        }
        // Hashing again after that works, in a fresh buffer.
        assert_eq!(h.verify("x".into(), None, None).await, Ok(false));
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
