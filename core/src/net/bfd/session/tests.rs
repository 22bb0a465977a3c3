//! Two BFD tasks talking over loopback on ports of their own (127.0.0.1 and 127.0.0.2): the
//! sockets, the demultiplexer and the timers together, without root.

use std::net::{IpAddr, UdpSocket as StdUdp};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

fn free_port() -> u16 {
    StdUdp::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Default)]
struct Counting {
    drops: AtomicU64,
}

impl BfdObserver for Counting {
    fn state_changed(&self, _: &PeerName, _: State) {}
    fn dropped(&self, _: DropReason) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn fast() -> fsm::SessionConfig {
    fsm::SessionConfig {
        desired_min_tx: Duration::from_millis(20),
        required_min_rx: Duration::from_millis(20),
        detect_mult: 3,
        passive: false,
    }
}

fn key(peer: &str, local: &str) -> SessionKey {
    SessionKey {
        peer: peer.parse::<IpAddr>().unwrap(),
        local: local.parse::<IpAddr>().unwrap(),
        hop: Hop::Single,
    }
}

fn name() -> PeerName {
    PeerName::new("router").unwrap()
}

/// Ports for two tasks that listen on `a` and `b` (single hop) and send to each other.
fn ports(a: u16, b: u16) -> (Ports, Ports) {
    let multi = free_port();
    let pa = Ports {
        single: a,
        multi,
        peer_single: b,
        peer_multi: multi,
    };
    let pb = Ports {
        single: b,
        peer_single: a,
        ..pa
    };
    (pa, pb)
}

async fn wait_state(s: &BfdSession, want: State) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.status().state != want {
        assert!(Instant::now() < deadline, "not {want}: {:?}", s.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Pair {
    a: Bfd,
    b: Bfd,
    sa: BfdSession,
    sb: BfdSession,
    rt_b: tokio::runtime::Runtime,
    observer: Arc<Counting>,
    port_a: u16,
}

/// A on this runtime, B on one of its own (so a test can kill it without a goodbye), both Up.
async fn pair() -> Pair {
    let (port_a, port_b) = (free_port(), free_port());
    let (pa, pb) = ports(port_a, port_b);
    let observer = Arc::new(Counting::default());
    let a = Bfd::start_with_ports(&tokio::runtime::Handle::current(), observer.clone(), pa);
    let rt_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let b = Bfd::start_with_ports(rt_b.handle(), Arc::new(NoObserver), pb);
    let sa = a
        .session(key("127.0.0.2", "127.0.0.1"), name(), fast())
        .await
        .unwrap();
    let sb = b
        .session(key("127.0.0.1", "127.0.0.2"), name(), fast())
        .await
        .unwrap();
    wait_state(&sa, State::Up).await;
    wait_state(&sb, State::Up).await;
    Pair {
        a,
        b,
        sa,
        sb,
        rt_b,
        observer,
        port_a,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_come_up_and_a_silent_peer_is_a_failure() {
    let Pair {
        mut sa, sb, rt_b, ..
    } = pair().await;
    assert_eq!(sa.status().failures, 0);
    // B dies without a word: its runtime goes, then its handle.
    rt_b.shutdown_background();
    drop(sb);
    let t = Instant::now();
    let st = tokio::time::timeout(Duration::from_secs(2), sa.failed_since(0))
        .await
        .expect("A noticed the silence");
    assert_eq!(st.state, State::Down);
    assert_eq!(st.diag, Diag::ControlDetectionTimeExpired);
    // Detection time: 3 x 20 ms, plus scheduling.
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_peer_says_admin_down_which_is_no_failure() {
    let Pair {
        mut sa, sb, rt_b, ..
    } = pair().await;
    drop(sb);
    wait_state(&sa, State::Down).await;
    assert_eq!(sa.status().diag, Diag::NeighborSignaledSessionDown);
    let waited = tokio::time::timeout(Duration::from_millis(300), sa.failed_since(0)).await;
    assert!(waited.is_err(), "AdminDown counted as a failure");
    rt_b.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_shares_the_session_and_garbage_is_counted() {
    let Pair {
        a,
        sa,
        sb,
        rt_b,
        observer,
        port_a,
        ..
    } = pair().await;
    let shared = a.session(sa.key(), name(), fast()).await.unwrap();
    assert_eq!(shared.status().state, State::Up);
    drop(sa);
    // Still held by `shared`: the session stays Up.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shared.status().state, State::Up);
    let before = observer.drops.load(Ordering::Relaxed);
    let junk = StdUdp::bind("127.0.0.2:0").unwrap();
    junk.send_to(&[0x20, 0xc0, 3, 24, 1, 2], ("127.0.0.1", port_a))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while observer.drops.load(Ordering::Relaxed) == before {
        assert!(
            Instant::now() < deadline,
            "the malformed packet was not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(shared.status().state, State::Up);
    drop(sb);
    rt_b.shutdown_background();
}

/// The only session `bfd` lists, once Up with the peer Up and the 20 ms interval in force
/// (the slow 1 s start ends with a Poll Sequence).
async fn settled(bfd: &Bfd) -> BfdSessionView {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = bfd.sessions().await.expect("the task runs");
        assert_eq!(list.len(), 1, "{list:?}");
        let s = &list[0];
        if s.state == "up" && s.remote_state == "up" && s.tx_interval_ms == Some(20) {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "not settled: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_lists_its_session_up_and_knows_the_others_discriminator() {
    let Pair {
        a, b, sa, sb, rt_b, ..
    } = pair().await;
    let (va, vb) = (settled(&a).await, settled(&b).await);
    assert_eq!(va.peer, name());
    assert_eq!((va.address, va.local), (sa.key().peer, sa.key().local));
    assert_eq!((vb.address, vb.local), (sb.key().peer, sb.key().local));
    assert_eq!(va.hop, "single");
    assert_eq!(va.minimum_ttl, None);
    assert_eq!(va.remote_discriminator, Some(vb.local_discriminator));
    assert_eq!(vb.remote_discriminator, Some(va.local_discriminator));
    assert_eq!(va.detection_time_ms, Some(60));
    assert_eq!((va.failures, va.users), (0, 1));
    let json = serde_json::to_value(&va).unwrap();
    assert_eq!(json["state"], "up");
    assert_eq!(json["address"], "127.0.0.2");
    drop(sb);
    rt_b.shutdown_background();
}
