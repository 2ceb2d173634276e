//! The memory allocator's settings for the `forum` process, made once at
//! start, before any other thread exists.

/// Allocations of at least this many bytes get a mapping of their own from
/// glibc, unmapped when they are freed.
///
/// Above the buffers of connections (HTTP, WebSocket, Postgres and NATS
/// read and write buffers, at most a few hundred KiB), which stay in the
/// arenas and are reused without a system call; below the 19 MiB of an
/// argon2id hash, which then never stays resident.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`], so that large freed
/// blocks go back to the system. Returns false when glibc refused (nothing
/// is changed then); does nothing and returns true on other C libraries.
///
/// Why: glibc starts with a 128 KiB threshold and, whenever a block it had
/// mapped is freed, raises the threshold to that block's size (up to
/// 32 MiB) and its trim threshold to twice that. After the first argon2id
/// buffer (19 MiB) is freed, every later one comes from an arena instead,
/// and stays there: small allocations made between two hashes split the
/// freed space, the next buffer no longer fits and the arena grows by
/// another 19 MiB, and an arena gives its free top back only beyond
/// 38 MiB. Measured on `forum up` (2 cores): 35 MiB resident after start,
/// 398 MiB at rest after 300 registrations (8 at a time) and 9,000 writes;
/// 20 MiB with this threshold (README, "Memory at rest"). Setting it also
/// turns glibc's dynamic adjustment off, which leaves the trim threshold at
/// its 128 KiB default. The password hasher keeps its buffers while hashes
/// keep coming, so that a burst of logins does not pay a fresh mapping per
/// hash (`forum_commands::auth::password`).
pub fn configure() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let threshold = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets glibc's malloc parameters. glibc does
        // not make it safe against allocations running on other threads,
        // and none run: this is called first thing in `main`, before the
        // runtime starts its threads.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        true
    }
}
