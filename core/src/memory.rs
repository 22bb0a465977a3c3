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

/// How long a member waits after a burst of writes before giving pages back.
pub const BURST_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// Fewest changes that make a burst worth giving pages back after.
const BURST_CHANGES: u32 = 64;

/// Calls `release` (in production [`release_free_memory`], on a blocking thread) each time a
/// burst of writes is over: at least 64 changes on `changes` (a member's applied log position),
/// then `quiet` without any. Not during a burst: trimming takes malloc's locks, and a busy
/// member's latency would pay for it. Returns when `stop` turns true or `changes` closes.
pub async fn release_after_bursts<T: Send + Sync + 'static>(
    mut changes: tokio::sync::watch::Receiver<T>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    quiet: std::time::Duration,
    release: impl Fn() + Clone + Send + 'static,
) {
    let mut seen = 0u32;
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                seen = seen.saturating_add(1);
            }
            // Armed anew on every change: it fires only after `quiet` without one.
            _ = tokio::time::sleep(quiet), if seen >= BURST_CHANGES => {
                seen = 0;
                let release = release.clone();
                let _ = tokio::task::spawn_blocking(release).await;
            }
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
        }
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

    #[tokio::test]
    async fn pages_go_back_once_a_burst_is_over_and_not_for_a_few_writes() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        use std::time::Duration;

        let calls = Arc::new(AtomicU32::new(0));
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let counted = Arc::clone(&calls);
        let task = tokio::spawn(super::release_after_bursts(
            rx,
            stop,
            Duration::from_millis(50),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        ));
        let write = |n: u64| {
            tx.send_replace(n);
        };
        // A few writes, then quiet: not a burst.
        for n in 0..10 {
            write(n);
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // A burst (each change seen), then quiet: one release.
        for n in 10..200 {
            write(n);
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        stop_tx.send_replace(true);
        task.await.unwrap();
    }
}
