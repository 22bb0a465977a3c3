//! How long-lived processes use the C allocator.

/// Most malloc arenas for a speaker: glibc's default (eight per core) lets every tokio worker
/// and actor thread grow an arena of its own, and a large assignment freed by one thread after
/// another built it leaves memory stranded in several. Two measured about 120 bytes per BGP
/// prefix less at the peak with 100 000 prefixes, at no cost a speaker notices.
pub const SPEAKER_MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at `n` for the rest of the process; a no-op elsewhere. Call it
/// before the runtime starts its threads, so none has taken an arena of its own yet.
pub fn limit_malloc_arenas(n: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a tuning parameter of the allocator; any value is valid
        // (glibc ignores what it cannot use) and no memory is touched.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, n) };
        if ok != 1 {
            tracing::warn!(arenas = n, "could not cap malloc arenas");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = n;
}

/// Gives the pages malloc holds free back to the system. A member's state is built by many small
/// allocations interleaved with short-lived ones (requests, log entries, replication buffers),
/// and glibc returns only the top of a heap by itself: the free pages in between stay resident.
/// Call it after work that freed much, off the runtime's threads (it walks every arena).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases pages malloc owns and holds free; it takes the
        // arenas' locks itself and touches no live allocation.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capping_arenas_is_accepted() {
        super::limit_malloc_arenas(super::SPEAKER_MALLOC_ARENAS);
        let v: Vec<u8> = vec![1; 1 << 20];
        assert_eq!(v.len(), 1 << 20);
    }
}
