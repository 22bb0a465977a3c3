//! Where actix actors run. The actors are the speaker's ([`crate::speaker`]) and the controller
//! leader's ([`crate::controller`]); they hold coordination state and talk by typed messages; sockets, Raft and timers that wait
//! on I/O run in tokio tasks that send them messages.

use std::sync::OnceLock;

use actix_rt::{Arbiter, ArbiterHandle, System};

/// Where to start actors: the current arbiter inside an actix `System` (the binaries run on one,
/// over a multi-thread tokio runtime), else one dedicated arbiter thread shared by everything
/// in the process that runs outside a `System` (library users and tests on plain tokio).
pub fn arbiter() -> ArbiterHandle {
    if let Some(current) = Arbiter::try_current() {
        return current;
    }
    static FALLBACK: OnceLock<ArbiterHandle> = OnceLock::new();
    FALLBACK
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("ironlb-actors".into())
                .spawn(move || {
                    let system = System::new();
                    system.block_on(async {
                        let _ = tx.send(Arbiter::current());
                    });
                    // Runs until the process exits: nothing stops this System.
                    let _ = system.run();
                });
            match spawned.ok().and_then(|_| rx.recv().ok()) {
                Some(handle) => handle,
                // Without a thread there is nowhere to run actors at all; this is an invariant
                // of the process (it could not spawn a single thread), not a recoverable error.
                None => panic!("cannot start the actor thread"),
            }
        })
        .clone()
}

/// Runs `f` on the actor arbiter and returns what it returns (typically the `Addr` of the
/// actors it started).
pub async fn on_arbiter<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let arbiter = arbiter();
    let sent = arbiter.spawn_fn(move || {
        let _ = tx.send(f());
    });
    match (sent, rx.await) {
        (true, Ok(value)) => value,
        // The arbiter lives as long as the process (see `arbiter`), so it always runs `f`.
        _ => panic!("the actor arbiter has stopped"),
    }
}

/// Runs `f` on a new arbiter thread of its own and returns what it returns: for an actor whose
/// work grows with the number of Services, so that it never holds up the actors that keep
/// leases and sessions alive.
pub async fn on_new_arbiter<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    // A new arbiter registers with the running System, so it is made on the shared arbiter's
    // thread; it runs until the process exits (its handle is kept by the actors started on it).
    let handle = on_arbiter(|| Arbiter::new().handle()).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = handle.spawn_fn(move || {
        let _ = tx.send(f());
    });
    match (sent, rx.await) {
        (true, Ok(value)) => value,
        // The arbiter was made just above and nothing stops it.
        _ => panic!("a new actor arbiter has stopped"),
    }
}

#[cfg(test)]
mod tests {
    use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, WrapFuture};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An actor with a one-message mailbox, stuck until `release` fires.
    struct Busy {
        got: Arc<AtomicUsize>,
        release: Option<tokio::sync::oneshot::Receiver<()>>,
    }

    impl Actor for Busy {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            ctx.set_mailbox_capacity(1);
            if let Some(rx) = self.release.take() {
                ctx.wait(
                    async move {
                        let _ = rx.await;
                    }
                    .into_actor(self),
                );
            }
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Note;

    impl Handler<Note> for Busy {
        type Result = ();
        fn handle(&mut self, _: Note, _: &mut Context<Self>) {
            self.got.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Stop;

    impl Handler<Stop> for Busy {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    /// The background loops (leadership, confirmations, views, a speaker's links) deliver with
    /// `send().await` or `do_send`, which wait out or ignore a full mailbox; they end only when
    /// the actor has stopped. With `try_send`, a busy actor's full mailbox ended them for good.
    #[actix_rt::test]
    async fn a_full_mailbox_delays_the_loops_but_never_ends_them() {
        let got = Arc::new(AtomicUsize::new(0));
        let (release, rx) = tokio::sync::oneshot::channel();
        let addr = Busy {
            got: got.clone(),
            release: Some(rx),
        }
        .start();
        // Let it start (and shrink its mailbox), then fill the mailbox.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        for _ in 0..10 {
            addr.do_send(Note);
        }
        // A sender that finds the mailbox full is parked: its next try_send fails.
        let _ = addr.try_send(Note);
        assert!(
            addr.try_send(Note).is_err(),
            "the mailbox is full: try_send gives up"
        );
        let relay = {
            let addr = addr.clone();
            actix_rt::spawn(async move {
                for _ in 0..20 {
                    if addr.send(Note).await.is_err() {
                        return false;
                    }
                }
                true
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _ = release.send(());
        assert!(relay.await.unwrap(), "the relay delivered everything");
        assert!(got.load(Ordering::SeqCst) >= 31, "{got:?}");
        // Only a stopped actor ends a loop.
        addr.send(Stop).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(addr.send(Note).await.is_err());
    }
}
