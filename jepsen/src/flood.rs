//! The flooder, run in the attacker's namespace: ARP requests (IPv4 target) or Neighbor
//! Solicitations (IPv6 target) as fast as one sender can put them on the wire, broadcast (or to
//! the solicited-node group) or unicast to one MAC, from one source MAC or a new random one per
//! frame. Any host on the LAN can do this; a speaker must keep its lease through it.

use std::net::IpAddr;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};

use crate::probe::{stop_on_signals, stopping};
use crate::rawsock::{frames, parse_mac, PacketSocket};

/// What to flood.
#[derive(Clone, Debug, clap::Args)]
pub struct FloodArgs {
    /// The attacker's interface.
    #[arg(long, default_value = "eth0")]
    pub interface: String,
    /// The address asked about.
    #[arg(long)]
    pub target: IpAddr,
    /// `broadcast` (multicast for NDP) or a MAC to send to.
    #[arg(long, default_value = "broadcast")]
    pub dst_mac: String,
    /// A new random source MAC for every frame.
    #[arg(long)]
    pub random_source: bool,
}

/// Floods until SIGTERM; prints how many frames went out.
pub fn run(args: FloodArgs) -> Result<()> {
    stop_on_signals();
    let ethertype = if args.target.is_ipv4() {
        0x0806
    } else {
        0x86dd
    };
    let sock = PacketSocket::open(&args.interface, ethertype).context("raw socket")?;
    let own = sock.mac();
    let dst = match args.dst_mac.as_str() {
        "broadcast" => None,
        m => Some(parse_mac(m).with_context(|| format!("bad MAC {m:?}"))?),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(std::process::id()));
    let (src_v4, src_v6) = (
        std::net::Ipv4Addr::new(198, 51, 100, 240),
        "2001:db8:51::240".parse::<std::net::Ipv6Addr>()?,
    );
    let mut sent = 0u64;
    let mut failed = 0u64;
    let started = std::time::Instant::now();
    while !stopping() {
        let src = if args.random_source {
            // Locally administered, unicast.
            let mut m: [u8; 6] = rng.random();
            m[0] = (m[0] | 0x02) & 0xfe;
            m
        } else {
            own
        };
        let frame = match args.target {
            IpAddr::V4(t) => frames::arp_request(src, src_v4, dst.unwrap_or([0xff; 6]), t),
            IpAddr::V6(t) => frames::neighbor_solicit(src, src_v6, dst, t),
        };
        match sock.send(&frame) {
            Ok(()) => sent += 1,
            // A full send queue: the wire is saturated, which is the point.
            Err(_) => failed += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "flood {} to {}: {sent} frames in {secs:.1} s ({:.0}/s), {failed} refused by the kernel",
        args.target,
        args.dst_mac,
        sent as f64 / secs.max(1e-9)
    );
    Ok(())
}
