//! The Layer 2 prober, run in the client's namespace: every interval it asks ARP (IPv4) and NDP
//! (IPv6) for every address and pings each through the kernel, and records every answer's time,
//! kind and (for ARP and NDP) source MAC in `probes.jsonl`. Each ARP or NDP answer is tagged with
//! the round it answers, so two MACs answering one round stand out.

use std::collections::BTreeSet;
use std::io::Write;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{Context, Result};
use pnet_packet::icmp::echo_reply::EchoReplyPacket;
use pnet_packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet_packet::icmp::{IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::echo_reply::EchoReplyPacket as EchoReply6Packet;
use pnet_packet::icmpv6::echo_request::MutableEchoRequestPacket as MutableEchoRequest6Packet;
use pnet_packet::icmpv6::Icmpv6Types;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::Packet;
use socket2::{Domain, Protocol, Socket, Type};

use crate::checker::l2::Reply;
use crate::history::monotonic_ns;
use crate::rawsock::{format_mac, frames, PacketSocket};

/// What to probe.
#[derive(Clone, Debug, clap::Args)]
pub struct ProbeArgs {
    /// The client's interface on the LAN.
    #[arg(long, default_value = "eth0")]
    pub interface: String,
    /// The client's IPv4 address (the ARP sender).
    #[arg(long)]
    pub source_v4: Ipv4Addr,
    /// The client's IPv6 address (the NDP sender).
    #[arg(long)]
    pub source_v6: Ipv6Addr,
    /// Milliseconds between rounds.
    #[arg(long, default_value_t = 10)]
    pub interval_ms: u64,
    /// The run's start on the monotonic clock, nanoseconds (times are counted from it).
    #[arg(long)]
    pub start_ns: u64,
    /// Where the answers go (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    /// The addresses.
    #[arg(required = true)]
    pub addresses: Vec<IpAddr>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Stops the loops on SIGTERM or SIGINT so the answers so far are written out.
pub fn stop_on_signals() {
    // SAFETY: installs a handler that only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
}

/// Whether a stop was asked for.
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Runs until SIGTERM.
pub fn run(args: ProbeArgs) -> Result<()> {
    stop_on_signals();
    let targets: Arc<BTreeSet<IpAddr>> = Arc::new(args.addresses.iter().copied().collect());
    let round = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Reply>();
    let start = args.start_ns;
    let stamp = move || monotonic_ns().saturating_sub(start);
    let ident = (std::process::id() & 0xffff) as u16;
    let socks = Sockets::open(&args.interface)?;

    let mut threads = Vec::new();
    // ARP and NDP answers.
    for (sock, proto) in [(socks.arp.clone(), "arp"), (socks.ndp.clone(), "ndp")] {
        let (tx, targets, round) = (tx.clone(), targets.clone(), round.clone());
        threads.push(std::thread::spawn(move || {
            listen_neighbors(&sock, proto, &tx, &targets, &round, stamp)
        }));
    }
    // Ping answers, through the kernel's own neighbour cache, as a real client sees them.
    for (sock, v6) in [(socks.ping4.clone(), false), (socks.ping6.clone(), true)] {
        let (tx, targets) = (tx.clone(), targets.clone());
        threads.push(std::thread::spawn(move || {
            listen_pings(&sock, v6, ident, &tx, &targets, stamp)
        }));
    }
    // The writer.
    drop(tx);
    let out_path = args.out.clone();
    let writer = std::thread::spawn(move || write_replies(&out_path, &rx));

    send_rounds(&args, &socks, &round, ident);
    for t in threads {
        let _ = t.join();
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    Ok(())
}

/// The prober's sockets, shared by the sender and the listeners.
struct Sockets {
    arp: Arc<PacketSocket>,
    ndp: Arc<PacketSocket>,
    ping4: Arc<Socket>,
    ping6: Arc<Socket>,
}

impl Sockets {
    /// Opens the ARP and IPv6 packet sockets on `interface` and the raw ICMP sockets.
    fn open(interface: &str) -> Result<Self> {
        let arp = PacketSocket::open(interface, 0x0806).context("ARP socket")?;
        let ndp = PacketSocket::open(interface, 0x86dd).context("IPv6 socket")?;
        let ping4 =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).context("ICMP socket")?;
        let ping6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .context("ICMPv6 socket")?;
        for s in [&ping4, &ping6] {
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            s.set_recv_buffer_size(4 << 20)?;
        }
        Ok(Self {
            arp: Arc::new(arp),
            ndp: Arc::new(ndp),
            ping4: Arc::new(ping4),
            ping6: Arc::new(ping6),
        })
    }
}

/// Passes on every ARP or NDP answer for a target, tagged with the round under way.
fn listen_neighbors(
    sock: &PacketSocket,
    proto: &str,
    tx: &mpsc::Sender<Reply>,
    targets: &BTreeSet<IpAddr>,
    round: &AtomicU64,
    stamp: impl Fn() -> u64,
) {
    let mut buf = vec![0u8; 2048];
    while !stopping() {
        let Ok(Some(n)) = sock.recv(&mut buf, Duration::from_millis(50)) else {
            continue;
        };
        let t = stamp();
        if let Some((addr, src)) = frames::parse_answer(&buf[..n]) {
            if targets.contains(&addr) {
                let _ = tx.send(Reply {
                    t,
                    proto: proto.into(),
                    addr,
                    mac: Some(format_mac(&src)),
                    round: Some(round.load(Ordering::Relaxed)),
                });
            }
        }
    }
}

/// Passes on every answer to our pings from a target.
fn listen_pings(
    sock: &Socket,
    v6: bool,
    ident: u16,
    tx: &mpsc::Sender<Reply>,
    targets: &BTreeSet<IpAddr>,
    stamp: impl Fn() -> u64,
) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    while !stopping() {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let t = stamp();
        // SAFETY: recv_from initialised the first n bytes.
        let bytes: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, n) };
        let Some(from) = from.as_socket().map(|s: SocketAddr| s.ip()) else {
            continue;
        };
        if is_our_echo_reply(bytes, v6, ident) && targets.contains(&from) {
            let _ = tx.send(Reply {
                t,
                proto: "ping".into(),
                addr: from,
                mac: None,
                round: None,
            });
        }
    }
}

/// Whether `bytes` (IPv4 packet, or bare ICMPv6 message) is an echo reply to this prober.
fn is_our_echo_reply(bytes: &[u8], v6: bool, ident: u16) -> bool {
    if v6 {
        EchoReply6Packet::new(bytes).is_some_and(|p| {
            p.get_icmpv6_type() == Icmpv6Types::EchoReply && p.get_identifier() == ident
        })
    } else {
        Ipv4Packet::new(bytes)
            .and_then(|ip| {
                let payload = ip.payload().to_vec();
                EchoReplyPacket::owned(payload)
            })
            .is_some_and(|p| {
                p.get_icmp_type() == IcmpTypes::EchoReply && p.get_identifier() == ident
            })
    }
}

/// Writes the replies as JSON lines until every listener is gone.
fn write_replies(out_path: &Path, rx: &mpsc::Receiver<Reply>) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(out_path)?);
    let mut last_flush = std::time::Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => {
                serde_json::to_writer(&mut out, &r)?;
                out.write_all(b"\n")?;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Flushed now and then, so a prober killed outright loses little.
        if last_flush.elapsed() > Duration::from_millis(200) {
            out.flush()?;
            last_flush = std::time::Instant::now();
        }
    }
    out.flush()?;
    Ok(())
}

/// Asks ARP or NDP and pings every address each round, on a fixed beat, until stopped.
fn send_rounds(args: &ProbeArgs, socks: &Sockets, round: &AtomicU64, ident: u16) {
    let (v4, v6) = by_family(&args.addresses);
    let mac = socks.arp.mac();
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut next = std::time::Instant::now();
    let mut seq: u16 = 0;
    while !stopping() {
        round.fetch_add(1, Ordering::Relaxed);
        seq = seq.wrapping_add(1);
        for t in &v4 {
            let _ = socks
                .arp
                .send(&frames::arp_request(mac, args.source_v4, [0xff; 6], *t));
            let _ = socks.ping4.send_to(
                &echo4(ident, seq),
                &SocketAddr::new(IpAddr::V4(*t), 0).into(),
            );
        }
        for t in &v6 {
            let _ = socks
                .ndp
                .send(&frames::neighbor_solicit(mac, args.source_v6, None, *t));
            let _ = socks.ping6.send_to(
                &echo6(ident, seq),
                &SocketAddr::new(IpAddr::V6(*t), 0).into(),
            );
        }
        next += interval;
        let now = std::time::Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Fell behind (a loaded machine): keep the beat from now on rather than burst.
            next = now;
        }
    }
}

/// The IPv4 and the IPv6 addresses of `addresses`.
fn by_family(addresses: &[IpAddr]) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let v4 = addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6 = addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        })
        .collect();
    (v4, v6)
}

fn echo4(ident: u16, seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 16];
    {
        let mut p = MutableEchoRequestPacket::new(&mut buf).expect("16 bytes hold an echo request");
        p.set_icmp_type(IcmpTypes::EchoRequest);
        p.set_identifier(ident);
        p.set_sequence_number(seq);
    }
    let sum = pnet_packet::icmp::checksum(&IcmpPacket::new(&buf).expect("same buffer"));
    buf[2..4].copy_from_slice(&sum.to_be_bytes());
    buf
}

fn echo6(ident: u16, seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 16];
    let mut p = MutableEchoRequest6Packet::new(&mut buf).expect("16 bytes hold an echo request");
    p.set_icmpv6_type(Icmpv6Types::EchoRequest);
    p.set_identifier(ident);
    p.set_sequence_number(seq);
    // The kernel fills in the ICMPv6 checksum of raw sockets.
    buf
}
